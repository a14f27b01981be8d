"""The public Python API, re-exported from the package top (``import vocoder_cli as vc``).

    vocoder.py   load() and Vocoder: weights by name or path -> audio to mel, mel to audio, streaming
    resynth.py   resynthesize(): files or folders in, audio out, the `resynth` command's rules and rows
    speak.py     speak(): text -> acoustic model -> vocoder -> audio files (the `tts` command)
    score.py     score(): pairs or folders -> per-file rows and a summary, as data (the `score` command)
    report.py    build_report(): the HTML analysis of `vocoder report`
    files.py     load_audio(), save_audio(), demo_folder(): audio files as tensors
    devices.py   device="auto" and a CUDA device without a GPU, checked first
    notes.py     where one-time notes go by default (the ``vocoder_cli`` logger)

The CLI calls these same functions; docs/api.md shows them at work and states what may change before 1.0.
"""
