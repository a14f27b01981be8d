"""Prove that our Tacotron2 network (vocoder_cli.tts.tacotron2) equals torchaudio's, with numbers.

torchaudio is not a dependency of this package, so this runs in a side venv that has it (CPU is enough):

    python -m venv /tmp/ta && /tmp/ta/bin/pip install torch==2.9.1 torchvision==0.24.1
    /tmp/ta/bin/pip install torch==2.9.1 'torchaudio==2.9.*' numpy soundfile safetensors
    PYTHONPATH=. /tmp/ta/bin/python scripts/check_tacotron2_equivalence.py [--audio DIR] [--write-fixture PATH]

What it checks (every number is printed; the exit code is 1 when one is over its tolerance):

1. Network. torchaudio's ``Tacotron2`` with the LJSpeech character model's hyper-parameters is built with
   random (seeded) weights and randomised batch-norm statistics; its ``state_dict()`` is loaded into ours
   with ``strict=True``; both run ``infer`` on a batch of texts. The prenet's dropout stays on at
   inference in Tacotron2, so it is made deterministic on both sides in two ways: (a) the same global
   seed before each run, (b) ``F.dropout`` replaced by a replay of fixed masks. Mels, lengths, stop-token
   logits and alignments are compared (tolerance 1e-4), with the stop token firing at different steps and
   with the max-length guard hit. The published checkpoint itself is not downloaded here (its host may be
   unreachable); the weights are random, the architecture and key layout are the real ones.
2. Text. torchaudio's ``TACOTRON2_GRIFFINLIM_CHAR_LJSPEECH`` text processor against our ``encode``.
3. Mels. torchaudio's training recipe (``MelSpectrogram(..., mel_scale='slaney', norm='slaney', power=1)``
   then ``log(clamp(x, 1e-5))``) against our ``MelSpectrogram`` with the ``tacotron2-lj`` mel config, on
   real speech when ``--audio`` names a folder of audio files.

4. Teacher-forced forward (GTA mels). torchaudio's ``Tacotron2.forward(tokens, token_lengths, mels,
   mel_lengths)`` against our ``Tacotron2.teacher_forced`` on the same random state dict, with random "true"
   mels as decoder input: mels before and after the postnet, stop-token logits and alignments (tolerance
   1e-4), with (a) the same global seed and (b) replayed dropout masks; and per item, torchaudio's forward on
   the item alone against our batched ``teacher_forced_trimmed`` with masks replayed from the lone run.

``--write-fixture PATH`` also saves a tiny random-weight torchaudio Tacotron2, its inputs, the dropout
masks it drew and its outputs, so the test suite checks our network against torchaudio without it;
``--write-tf-fixture PATH`` saves the same for the teacher-forced forward.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
import torchaudio
from torch.nn import functional as F  # noqa: N812

from vocoder_cli.tts.tacotron2 import Tacotron2, Tacotron2Config
from vocoder_cli.tts.tacotron2_lj import MEL_CONFIG, SYMBOLS, encode

TOLERANCE = 1e-4
TEXTS = [
    "Hello world! T T S stands for Text to Speech!",
    "The examination and testimony of the experts enabled the Commission to conclude.",
    "Printing, in the only sense with which we are at present concerned.",
]
LJ_PARAMS = dict(  # torchaudio.pipelines._tts.utils._get_taco_params(n_symbols=38)
    mask_padding=False, n_mels=80, n_frames_per_step=1, symbol_embedding_dim=512, encoder_embedding_dim=512,
    encoder_n_convolution=3, encoder_kernel_size=5, decoder_rnn_dim=1024, decoder_max_step=2000,
    decoder_dropout=0.1, decoder_early_stopping=True, attention_rnn_dim=1024, attention_hidden_dim=128,
    attention_location_n_filter=32, attention_location_kernel_size=31, attention_dropout=0.1, prenet_dim=256,
    postnet_n_convolution=5, postnet_kernel_size=5, postnet_embedding_dim=512, gate_threshold=0.5, n_symbol=38,
)  # fmt: skip
_OURS = {f for f in Tacotron2Config.__dataclass_fields__}


def our_config(params: dict) -> Tacotron2Config:
    values = {k: v for k, v in params.items() if k in _OURS}
    return Tacotron2Config(n_symbols=params["n_symbol"], **values)


def randomise(model: torch.nn.Module, seed: int) -> None:
    """Batch-norm statistics away from (0, 1), so a wrong running-stats mapping cannot pass."""
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=gen) * 0.1)
            module.running_var.copy_(torch.rand(module.running_var.shape, generator=gen) + 0.5)


@contextmanager
def recorded_dropout(masks: list[torch.Tensor] | None, seed: int = 1234) -> Iterator[list[torch.Tensor]]:
    """Replace F.dropout: draw masks from a private generator (and record them), or replay ``masks``."""
    original: Callable = F.dropout
    gen = torch.Generator().manual_seed(seed)
    drawn: list[torch.Tensor] = []
    replay = iter(masks) if masks is not None else None

    def dropout(x: torch.Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> torch.Tensor:
        if not training or p == 0.0:
            return x
        mask = next(replay) if replay is not None else (torch.rand(x.shape, generator=gen) >= p).to(x.dtype)
        drawn.append(mask)
        return x * mask / (1.0 - p)

    F.dropout = dropout
    torch.nn.functional.dropout = dropout
    try:
        yield drawn
    finally:
        F.dropout = original
        torch.nn.functional.dropout = original


def tokens_for(texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    ids = sorted((encode(t) for t in texts), key=len, reverse=True)  # torchaudio needs descending lengths
    lengths = torch.tensor([len(i) for i in ids])
    tokens = torch.zeros(len(ids), int(lengths.max()), dtype=torch.int64)
    for row, seq in enumerate(ids):
        tokens[row, : len(seq)] = torch.tensor(seq)
    return tokens, lengths


def run_torchaudio(model: torch.nn.Module, tokens: torch.Tensor, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
    """torchaudio's infer (mels, lengths, alignments) and its decoder's stop-token logits (same RNG draws)."""
    mels, mel_lengths, alignments = model.infer(tokens, lengths)
    return {"mels": mels, "lengths": mel_lengths, "alignments": alignments}


def run_ours(model: Tacotron2, tokens: torch.Tensor, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
    out = model.infer(tokens, lengths)
    return {"mels": out.mels, "lengths": out.lengths, "alignments": out.alignments, "gates": out.gates}


def torchaudio_gates(model: torch.nn.Module, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    memory = model.encoder(model.embedding(tokens).transpose(1, 2), lengths)
    return model.decoder.infer(memory, lengths)[2]


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    if a.shape != b.shape:
        return float("inf")
    return float((a.double() - b.double()).abs().max()) if a.numel() else 0.0


def compare(label: str, ta: dict[str, torch.Tensor], ours: dict[str, torch.Tensor]) -> bool:
    errors = {key: max_diff(ta[key], ours[key]) for key in ta}
    ok = all(e <= TOLERANCE for e in errors.values()) and torch.equal(ta["lengths"], ours["lengths"])
    shown = ", ".join(f"{k} {v:.2e}" for k, v in errors.items())
    print(f"  {label}: lengths {ta['lengths'].tolist()} vs {ours['lengths'].tolist()}; max |diff| {shown} "
          f"-> {'OK' if ok else 'FAIL'}")  # fmt: skip
    return ok


def check_network(args: argparse.Namespace) -> bool:
    print(f"1. network (torchaudio {torchaudio.__version__}, torch {torch.__version__}, random weights, "
          f"decoder_max_step {args.max_steps})")  # fmt: skip
    torch.manual_seed(0)
    params = {**LJ_PARAMS, "decoder_max_step": args.max_steps}
    ta = torchaudio.models.Tacotron2(**params).eval()
    randomise(ta, 1)
    ours = Tacotron2(our_config(params)).eval()
    ours.load_state_dict(ta.state_dict(), strict=True)
    print(f"  state dict: {len(ta.state_dict())} tensors, {sum(p.numel() for p in ta.parameters()):,} parameters,"
          " loaded with strict=True")  # fmt: skip
    tokens, lengths = tokens_for(TEXTS)
    ok = True
    with torch.inference_mode():
        for gate_bias, label in ((None, "stop token as drawn"), (-1e4, "stop never fires: max-length guard")):
            if gate_bias is not None:
                for net in (ta.decoder, ours.decoder):
                    net.gate_layer.bias.fill_(gate_bias)
            else:
                _spread_stops(ta, ours, tokens, lengths, args.max_steps)
            torch.manual_seed(7)
            expected = run_torchaudio(ta, tokens, lengths)
            torch.manual_seed(7)
            expected["gates"] = torchaudio_gates(ta, tokens, lengths)
            torch.manual_seed(7)
            got = run_ours(ours, tokens, lengths)
            ok &= compare(f"{label}, (a) same global seed", expected, got)
            with recorded_dropout(None) as masks:
                expected = run_torchaudio(ta, tokens, lengths)
            with recorded_dropout(None):
                expected["gates"] = torchaudio_gates(ta, tokens, lengths)
            with recorded_dropout(masks) as replayed:
                got = run_ours(ours, tokens, lengths)
            ok &= len(replayed) == len(masks)
            ok &= compare(f"{label}, (b) replayed dropout masks ({len(masks)})", expected, got)
    return ok


def _spread_stops(
    ta: torch.nn.Module, ours: Tacotron2, tokens: torch.Tensor, lengths: torch.Tensor, steps: int
) -> None:
    """Set the stop token's bias so the items stop at different steps before the guard.

    The gate does not feed back into decoding, so one run without early stopping and with a zero bias gives
    each item's raw gate logits; the stop step for any bias follows from them without decoding again.
    The gate weights are scaled up first: random weights give logits that barely move over time.
    """
    for net in (ta.decoder, ours.decoder):
        net.gate_layer.weight.mul_(50.0)
        net.gate_layer.bias.zero_()
    ta.decoder.decoder_early_stopping = False
    torch.manual_seed(7)
    raw = torchaudio_gates(ta, tokens, lengths)  # [B, steps]
    ta.decoder.decoder_early_stopping = True
    best: tuple[int, int, float] = (0, 0, 0.0)
    best_bias = 0.0
    levels = (-raw).flatten().unique()
    for bias in ((levels[1:] + levels[:-1]) / 2).tolist():  # midway between logits: a float-safe margin
        fired = (raw + bias) > 0
        stops = [int(row.nonzero()[0]) + 1 if row.any() else steps for row in fired]
        margin = min(float((raw[b, :stop] + bias).abs().min()) for b, stop in enumerate(stops))
        score = (len(set(stops)), min(stops), margin)
        if max(stops) < steps and margin > 1e-4 and score > best:
            best, best_bias = score, bias
    for net in (ta.decoder, ours.decoder):
        net.gate_layer.bias.fill_(best_bias)


def check_text() -> bool:
    print("2. text processor")
    processor = torchaudio.pipelines.TACOTRON2_GRIFFINLIM_CHAR_LJSPEECH.get_text_processor()
    ok = tuple(processor.tokens) == SYMBOLS
    texts = [*TEXTS, "Mixed CASE, digits 123, symbols #&* and_underscore; (quotes) 'and' \"more\": ok?"]
    for text in texts:
        theirs, _ = processor(text)
        same = theirs[0].tolist() == encode(text)
        ok &= same
    print(f"  symbols equal: {tuple(processor.tokens) == SYMBOLS}; token ids equal on {len(texts)} texts: {ok}")
    return ok


def check_mels(audio: Path | None) -> bool:
    print("3. mel recipe (torchaudio's pipeline_tacotron2 training transform vs our tacotron2-lj mel config)")
    if audio is None:
        print("  skipped: pass --audio DIR (real speech at 22.05 kHz)")
        return True
    import soundfile as sf

    from vocoder_cli.mel import MelSpectrogram

    transform = torchaudio.transforms.MelSpectrogram(
        sample_rate=22050, n_fft=1024, win_length=1024, hop_length=256, f_min=0.0, f_max=8000.0, n_mels=80,
        mel_scale="slaney", normalized=False, power=1, norm="slaney",
    )  # fmt: skip
    ours = MelSpectrogram(MEL_CONFIG)
    worst = 0.0
    files = sorted(p for p in audio.rglob("*") if p.suffix.lower() in (".wav", ".flac"))
    for path in files:
        wav, sr = sf.read(path, dtype="float32")
        assert sr == 22050, f"{path}: {sr} Hz"
        x = torch.from_numpy(wav)
        theirs = torch.log(torch.clamp(transform(x), min=1e-5))
        mine = ours(x)[0]
        worst = max(worst, max_diff(theirs, mine))
    ok = worst <= 1e-3
    print(
        f"  {len(files)} files: max |diff| {worst:.2e} (float32 torchaudio vs float64 ours) -> {'OK' if ok else 'FAIL'}"
    )
    return ok


def tf_inputs(n_mels: int, seed: int = 11) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tokens and lengths of TEXTS (descending) and random log-mel-like decoder inputs [B, n_mels, T] with
    per-item lengths (the padded frames are zero, as a collate function leaves them)."""
    tokens, lengths = tokens_for(TEXTS)
    gen = torch.Generator().manual_seed(seed)
    mel_lengths = torch.tensor([37, 29, 23][: len(TEXTS)])
    mels = torch.randn(len(TEXTS), n_mels, int(mel_lengths.max()), generator=gen) * 2.0 - 5.0
    for i, n in enumerate(mel_lengths.tolist()):
        mels[i, :, n:] = 0.0
    return tokens, lengths, mels, mel_lengths


def run_torchaudio_tf(model: torch.nn.Module, tokens, lengths, mels, mel_lengths) -> dict[str, torch.Tensor]:  # noqa: ANN001
    before, after, gates, alignments = model(tokens, lengths, mels, mel_lengths)
    return {"mels": before, "mels_postnet": after, "gates": gates, "alignments": alignments}


def run_ours_tf(model: Tacotron2, tokens, lengths, mels) -> dict[str, torch.Tensor]:  # noqa: ANN001
    before, after, gates, alignments = model.teacher_forced(tokens, lengths, mels)
    return {"mels": before, "mels_postnet": after, "gates": gates, "alignments": alignments}


def compare_tf(label: str, ta: dict[str, torch.Tensor], ours: dict[str, torch.Tensor]) -> bool:
    errors = {key: max_diff(ta[key], ours[key]) for key in ta}
    ok = all(e <= TOLERANCE for e in errors.values())
    shown = ", ".join(f"{k} {v:.2e}" for k, v in errors.items())
    print(f"  {label}: shapes {tuple(ta['mels_postnet'].shape)}; max |diff| {shown} -> {'OK' if ok else 'FAIL'}")
    return ok


def check_teacher_forced() -> bool:
    print("4. teacher-forced forward (torchaudio Tacotron2.forward vs ours, random LJSpeech-shaped weights)")
    torch.manual_seed(0)
    ta = torchaudio.models.Tacotron2(**LJ_PARAMS).eval()
    randomise(ta, 1)
    ours = Tacotron2(our_config(LJ_PARAMS)).eval()
    ours.load_state_dict(ta.state_dict(), strict=True)
    tokens, lengths, mels, mel_lengths = tf_inputs(LJ_PARAMS["n_mels"])
    ok = True
    with torch.inference_mode():
        torch.manual_seed(7)
        expected = run_torchaudio_tf(ta, tokens, lengths, mels, mel_lengths)
        torch.manual_seed(7)
        ok &= compare_tf("(a) same global seed", expected, run_ours_tf(ours, tokens, lengths, mels))
        with recorded_dropout(None) as masks:
            expected = run_torchaudio_tf(ta, tokens, lengths, mels, mel_lengths)
        with recorded_dropout(masks) as replayed:
            got = run_ours_tf(ours, tokens, lengths, mels)
        ok &= len(replayed) == len(masks)
        ok &= compare_tf(f"(b) replayed dropout masks ({len(masks)})", expected, got)
        worst = 0.0
        for i in range(len(TEXTS)):  # each item alone in torchaudio vs the batch in ours (per-item masks)
            n, t = int(mel_lengths[i]), int(lengths[i])
            with recorded_dropout(None, seed=20 + i) as alone_masks:
                alone = run_torchaudio_tf(ta, tokens[i : i + 1, :t], lengths[i : i + 1], mels[i : i + 1, :, :n],
                                          mel_lengths[i : i + 1])  # fmt: skip
            with recorded_dropout(alone_masks):
                trimmed = ours.teacher_forced_trimmed(tokens[i : i + 1, :t], lengths[i : i + 1], [mels[i, :, :n]])
            worst = max(worst, max_diff(alone["mels_postnet"][0], trimmed[0]))
        item_ok = worst <= TOLERANCE
        print(f"  per item (torchaudio alone vs ours trimmed): frames {mel_lengths.tolist()} kept exactly; "
              f"max |diff| {worst:.2e} -> {'OK' if item_ok else 'FAIL'}")  # fmt: skip
        ok &= item_ok
    return ok


def write_tf_fixture(path: Path) -> None:
    """A tiny torchaudio Tacotron2, teacher-forced inputs, the dropout masks its forward drew and its outputs."""
    from safetensors.torch import save_file

    torch.manual_seed(3)
    ta = torchaudio.models.Tacotron2(**TINY).eval()
    randomise(ta, 4)
    tokens, lengths, mels, mel_lengths = tf_inputs(TINY["n_mels"])
    tensors = {"input.tokens": tokens, "input.lengths": lengths, "input.mels": mels, "input.mel_lengths": mel_lengths}
    with torch.inference_mode():
        tensors |= {f"state.{k}": v.detach().clone() for k, v in ta.state_dict().items()}
        with recorded_dropout(None, seed=5) as masks:
            expected = run_torchaudio_tf(ta, tokens, lengths, mels, mel_lengths)
    tensors |= {f"tf.{k}": v.contiguous() for k, v in expected.items()}
    tensors["tf.masks"] = torch.cat([m.flatten() for m in masks]).to(torch.uint8)
    meta = {"config": json.dumps(TINY), "mask_shapes": json.dumps([list(m.shape) for m in masks]),
            "torchaudio": torchaudio.__version__, "torch": torch.__version__,
            "made_by": "scripts/check_tacotron2_equivalence.py --write-tf-fixture"}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=meta)
    print(f"teacher-forced fixture: {path} ({path.stat().st_size:,} bytes, {len(masks)} dropout masks)")


TINY = dict(
    mask_padding=False, n_mels=80, n_frames_per_step=1, symbol_embedding_dim=16, encoder_embedding_dim=16,
    encoder_n_convolution=2, encoder_kernel_size=5, decoder_rnn_dim=24, decoder_max_step=60,
    decoder_dropout=0.1, decoder_early_stopping=True, attention_rnn_dim=24, attention_hidden_dim=8,
    attention_location_n_filter=4, attention_location_kernel_size=7, attention_dropout=0.1, prenet_dim=16,
    postnet_n_convolution=3, postnet_kernel_size=5, postnet_embedding_dim=16, gate_threshold=0.5, n_symbol=38,
)  # fmt: skip


def write_fixture(path: Path) -> None:
    """A tiny torchaudio Tacotron2, its inputs, the dropout masks it drew and its outputs, for tests/.

    Two runs: ``stop`` (the stop token fires, items end at their own steps) and ``guard`` (the stop
    token's bias at -1e4: every item runs into the max-length guard).
    """
    from safetensors.torch import save_file

    torch.manual_seed(3)
    ta = torchaudio.models.Tacotron2(**TINY).eval()
    randomise(ta, 4)
    tokens, lengths = tokens_for(TEXTS)
    tensors: dict[str, torch.Tensor] = {"input.tokens": tokens, "input.lengths": lengths}
    shapes: dict[str, list[list[int]]] = {}
    with torch.inference_mode():
        _spread_stops(ta, Tacotron2(our_config(TINY)).eval(), tokens, lengths, TINY["decoder_max_step"])
        tensors |= {f"state.{k}": v.detach().clone() for k, v in ta.state_dict().items()}
        for run, bias in (("stop", None), ("guard", -1e4)):
            if bias is not None:
                ta.decoder.gate_layer.bias.fill_(bias)
            with recorded_dropout(None, seed=5) as masks:
                expected = run_torchaudio(ta, tokens, lengths)
            with recorded_dropout(None, seed=5):
                expected["gates"] = torchaudio_gates(ta, tokens, lengths)
            tensors |= {f"{run}.{k}": v.contiguous() for k, v in expected.items()}
            tensors[f"{run}.masks"] = torch.cat([m.flatten() for m in masks]).to(torch.uint8)  # 0/1
            shapes[run] = [list(m.shape) for m in masks]
            print(f"  fixture run {run}: lengths {expected['lengths'].tolist()}, {len(masks)} dropout masks")
    meta = {"config": json.dumps(TINY), "mask_shapes": json.dumps(shapes), "guard_gate_bias": "-1e4",
            "torchaudio": torchaudio.__version__, "torch": torch.__version__,
            "made_by": "scripts/check_tacotron2_equivalence.py --write-fixture"}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=meta)
    print(f"fixture: {path} ({path.stat().st_size:,} bytes)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-steps", type=int, default=300, help="decoder max steps for the check (speed)")
    parser.add_argument("--audio", type=Path, help="folder of 22.05 kHz speech for the mel check")
    parser.add_argument("--write-fixture", type=Path, help="save the tiny reference for tests/")
    parser.add_argument("--write-tf-fixture", type=Path, help="save the tiny teacher-forced reference for tests/")
    parser.add_argument("--fixture-only", action="store_true", help="only write the fixture(s)")
    args = parser.parse_args()
    if args.fixture_only:
        if args.write_tf_fixture:
            write_tf_fixture(args.write_tf_fixture)
        else:
            write_fixture(args.write_fixture or Path("tests/data/tacotron2_tiny_torchaudio.safetensors"))
        return 0
    ok = check_network(args)
    ok &= check_text()
    ok &= check_mels(args.audio)
    ok &= check_teacher_forced()
    if args.write_fixture:
        write_fixture(args.write_fixture)
    if args.write_tf_fixture:
        write_tf_fixture(args.write_tf_fixture)
    print("ALL OK" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
