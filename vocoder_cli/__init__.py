"""vocoder: batch neural vocoding with HiFi-GAN.

The core package never prints and never exits: it returns values and raises the typed
errors in :mod:`vocoder_cli.errors`; the Typer app in :mod:`vocoder_cli.cli` renders them.
"""

__version__ = "0.1.0"
