"""``tacotron2-lj``: torchaudio's Tacotron2 LJSpeech character model, run by our own network code.

The checkpoint is torchaudio's ``TACOTRON2_GRIFFINLIM_CHAR_LJSPEECH`` (a plain state dict, 38 symbols,
its default hyper-parameters); it goes through our weights cache as ``tacotron2-lj``. Its mels follow
torchaudio's training recipe (examples/pipeline_tacotron2): ``MelSpectrogram(n_fft=1024, hop=256,
win=1024, 80 mels, fmin 0, fmax 8000, power 1, Slaney scale and norm)`` with its default centred framing,
then ``ln(clamp(x, 1e-5))``: HiFi-GAN's recipe except the framing, which :mod:`vocoder_cli.tts.mels`
converts. Text: torchaudio's processor lower-cases and keeps the 38 symbols; before that we normalise
English (numbers, abbreviations, accents) as its training transcripts were, and report what is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from vocoder_cli.errors import DownloadError, TextError, WeightsError
from vocoder_cli.mel import MelConfig
from vocoder_cli.tts.base import (
    AcousticOutput,
    LoadOptions,
    PreparedText,
    check_options,
    int_option,
)
from vocoder_cli.tts.english import normalize_english
from vocoder_cli.tts.tacotron2 import Tacotron2, Tacotron2Config

NAME = "tacotron2-lj"
WEIGHTS_NAME = "tacotron2-lj"
WEIGHTS_URL = "https://download.pytorch.org/torchaudio/models/tacotron2_english_characters_1500_epochs_ljspeech.pth"
SYMBOLS: tuple[str, ...] = ("_", "-", "!", "'", "(", ")", ",", ".", ":", ";", "?", " ", *"abcdefghijklmnopqrstuvwxyz")
_INDEX = {symbol: i for i, symbol in enumerate(SYMBOLS)}
# Quote marks carry no sound: LJSpeech's transcripts contain them and training dropped them silently.
_SILENT = frozenset('"\u201c\u201d\u201e\u00ab\u00bb`')
# torchaudio's MelSpectrogram (center=True, reflect padding) computes |STFT| with no epsilon.
MEL_CONFIG = MelConfig(center=True, mag_eps=0.0)
MAX_CHARS = 200  # LJSpeech's longest normalised transcripts are ~190 characters
MAX_STEPS = 2000  # decoder frames: 23.2 s
OPTIONS = ("max_steps", "max_chars")
MAX_STEPS_RANGE = (1, 20000)  # 20000 frames = 232 s: a guard, not a length anyone speaks in one go
MAX_CHARS_RANGE = (20, 1000)  # below ~20 characters splitting cuts words; LJSpeech's longest are ~190


def encode(text: str) -> list[int]:
    """Symbol ids exactly as torchaudio's character processor makes them (lower-case, unknowns dropped)."""
    return [_INDEX[c] for c in text.lower() if c in _INDEX]


def prepare(text: str) -> PreparedText:
    """Normalise English, then keep what the 38 symbols can spell; say what was dropped."""
    normal = normalize_english(text)
    dropped: list[str] = []
    kept = []
    for char in normal:
        if char in _INDEX:
            kept.append(char)
        elif char not in _SILENT and char not in dropped:
            dropped.append(char)
    readable = " ".join("".join(kept).split())
    if not any(c.isalpha() for c in readable):
        why = f" (it cannot read {_quote(dropped)})" if dropped else ""
        raise TextError(f"nothing {NAME} can read is left{why}")
    return PreparedText(readable, tuple(dropped))


def _quote(chars: Sequence[str]) -> str:
    return " ".join(repr(c) for c in chars)


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """torchaudio's checkpoint (a plain state dict), read without unpickling code."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 (any reader error means: not this checkpoint)
        raise WeightsError(f"{path}: not a readable Tacotron2 checkpoint ({exc.__class__.__name__}: {exc})") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: expected a state dict, found {type(state).__name__}")
    return {k.removeprefix("module."): v for k, v in state.items()}


def config_from_state(state: dict[str, torch.Tensor], path: str = "checkpoint") -> Tacotron2Config:
    """The hyper-parameters a torchaudio-layout state dict was built with, read from its tensor shapes."""

    def shape(key: str) -> tuple[int, ...]:
        if key not in state:
            raise WeightsError(f"{path}: not a torchaudio Tacotron2 state dict (no {key})")
        return tuple(state[key].shape)

    def count(prefix: str) -> int:
        return len({k[len(prefix) :].split(".")[0] for k in state if k.startswith(prefix)})

    n_symbols, embedding_dim = shape("embedding.weight")
    n_mels = shape("decoder.linear_projection.weight")[0]
    return Tacotron2Config(
        n_symbols=n_symbols,
        n_mels=n_mels,
        symbol_embedding_dim=embedding_dim,
        encoder_embedding_dim=shape("encoder.convolutions.0.0.weight")[0],
        encoder_n_convolution=count("encoder.convolutions."),
        encoder_kernel_size=shape("encoder.convolutions.0.0.weight")[2],
        decoder_rnn_dim=shape("decoder.decoder_rnn.weight_hh")[1],
        attention_rnn_dim=shape("decoder.attention_rnn.weight_hh")[1],
        attention_hidden_dim=shape("decoder.attention_layer.query_layer.weight")[0],
        attention_location_n_filter=shape("decoder.attention_layer.location_layer.location_conv.weight")[0],
        attention_location_kernel_size=shape("decoder.attention_layer.location_layer.location_conv.weight")[2],
        prenet_dim=shape("decoder.prenet.layers.0.weight")[0],
        postnet_n_convolution=count("postnet.convolutions."),
        postnet_kernel_size=shape("postnet.convolutions.0.0.weight")[2],
        postnet_embedding_dim=shape("postnet.convolutions.0.0.weight")[0],
    )


def build_network(state: dict[str, torch.Tensor], path: str = "checkpoint") -> Tacotron2:
    """Our network, shaped by the state dict (torchaudio's LJSpeech model: its published hyper-parameters),
    loaded strictly. Only character models with our 38 symbols are accepted: the frontend is theirs."""
    cfg = config_from_state(state, path)
    if cfg.n_symbols != len(SYMBOLS) or cfg.n_mels != MEL_CONFIG.n_mels:
        raise WeightsError(
            f"{path}: expected a {len(SYMBOLS)}-symbol character model with {MEL_CONFIG.n_mels} mels, "
            f"found {cfg.n_symbols} symbols and {cfg.n_mels} mels"
        )
    net = Tacotron2(cfg)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{path}: does not fit torchaudio's Tacotron2 layout ({str(exc).splitlines()[0]})") from exc
    return net.eval()


def weights_path(options: LoadOptions) -> Path:
    """The checkpoint: a path, or the ``tacotron2-lj`` cache entry (pulled on first use, unless offline)."""
    from vocoder_cli.weights.resolve import (
        NotPulledError,
        offline_mode,
        plan_pull,
        pull_weights,
        resolve_weights,
    )

    name = options.weights or WEIGHTS_NAME
    try:
        return resolve_weights(name)
    except NotPulledError:
        pass
    if offline_mode(options.offline):
        raise WeightsError(
            f"{NAME} needs its weights and offline mode is on; fetch them once with: "
            f"vocoder weights pull {name} --no-verify (or pass --acoustic-weights PATH)"
        )
    plan = plan_pull(name, verify=options.verify)
    if options.notify is not None:
        options.notify(plan.describe())
    try:
        return pull_weights(plan, options.progress)
    except DownloadError as exc:
        file = (plan.url or WEIGHTS_URL).rsplit("/", 1)[-1]
        raise DownloadError(
            f"{exc}. Without access to that host: download {file} on another machine and pass "
            f"--acoustic-weights PATH, or fetch it from a mirror once with "
            f"`vocoder weights pull {name} --no-verify --url MIRROR_URL`"
        ) from exc


class Tacotron2LJ:
    """The acoustic-model protocol around :class:`Tacotron2` (batched; prenet dropout seeded per batch)."""

    name = NAME
    mel_config = MEL_CONFIG

    def __init__(
        self, net: Tacotron2, device: str = "cpu", seed: int = 0, max_steps: int = MAX_STEPS, max_chars: int = MAX_CHARS
    ) -> None:
        self.net = net.to(device).eval()
        self.device = torch.device(device)
        self.seed = seed
        self.max_steps = max_steps
        self.max_chars = max_chars

    def prepare(self, text: str) -> PreparedText:
        return prepare(text)

    @torch.inference_mode()
    def infer(self, texts: Sequence[str]) -> list[AcousticOutput]:
        tokens, lengths = _tokens(texts)
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # seeding here leaves the caller's generator alone
            torch.manual_seed(self.seed)
            mels, stopped = self.net.infer_trimmed(tokens.to(self.device), lengths, self.max_steps)
        return [AcousticOutput(m.float().cpu(), not s) for m, s in zip(mels, stopped)]

    @torch.inference_mode()
    def teacher_force(self, texts: Sequence[str], mels: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """GTA mels: torchaudio's ``Tacotron2.forward`` with each recording's mel [n_mels, T_i] (centred
        framing, this model's) as decoder input; [n_mels, T_i] each, on the CPU. The prenet's dropout stays on,
        seeded per batch like :meth:`infer`."""
        tokens, lengths = _tokens(texts)
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed)
            out = self.net.teacher_forced_trimmed(tokens.to(self.device), lengths, [m.to(self.device) for m in mels])
        return [m.float().cpu() for m in out]


def _tokens(texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-padded symbol ids [B, T_text] and lengths [B]."""
    ids = [encode(t) for t in texts]
    lengths = torch.tensor([len(i) for i in ids], dtype=torch.int64)
    tokens = torch.zeros(len(ids), int(lengths.max()), dtype=torch.int64)
    for row, seq in enumerate(ids):
        tokens[row, : len(seq)] = torch.tensor(seq)
    return tokens, lengths


def parse_options(options: dict[str, str]) -> tuple[int, int]:
    """``(max_steps, max_chars)`` from ``--acoustic-opt``, checked (a ConfigError names the option)."""
    check_options(NAME, options, OPTIONS)
    max_steps = int_option(NAME, options, "max_steps", MAX_STEPS, MAX_STEPS_RANGE, "decoder frames, 86 a second")
    max_chars = int_option(NAME, options, "max_chars", MAX_CHARS, MAX_CHARS_RANGE, "characters per utterance")
    return max_steps, max_chars


def load(options: LoadOptions) -> Tacotron2LJ:
    max_steps, max_chars = parse_options(options.options)
    path = weights_path(options)
    net = build_network(load_state_dict(path), str(path))
    return Tacotron2LJ(net, options.device, options.seed, max_steps, max_chars)
