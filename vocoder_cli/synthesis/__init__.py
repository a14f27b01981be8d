"""The synthesis engine: how a batch of files (or a live stream) becomes audio.

    vocoder.py          a Vocoder (mel -> waveform model + its mel config), loaded by name or path on a backend
    precision.py        fp32 / bf16 / fp16: what each device and backend can run
    engine.py           Synthesizer: batched, chunked, exact-length synthesis on one device
    resynthesis.py      resynth jobs: plan input -> output paths, load, vocode, write atomically, per-file failures
    streaming.py        StreamingResynthesizer: audio in as it arrives, audio out as soon as it is ready
    stream_generator.py the generator with cached layer state (each sample computed once)
    streamio.py         WAV / raw PCM byte streams in any pieces, and the streaming WAV writer
    griffinlim.py       the no-weights baseline vocoder
    backends/           torch or ONNX Runtime: export, accuracy check, which is faster here (tune.py)
    bench.py            synthesis speed of each backend against the official architecture (reference.py)

Used by `resynth`, `tts`, `report --weights` and `bench synth`; nothing here prints.
"""
