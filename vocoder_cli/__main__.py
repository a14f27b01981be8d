"""`python -m vocoder_cli` (also what `torchrun -m vocoder_cli train ...` runs)."""

from vocoder_cli.cli.app import main

if __name__ == "__main__":
    main()
