"""ONNX export of a generator and an ONNX Runtime generator behind the same interface as the torch one.

An exported file is self-describing like our ``.safetensors``: its ``metadata_props`` hold ``format``,
``generator_config`` and ``mel_config`` as JSON (plus provenance), so ``--weights model.onnx`` works
anywhere weights are accepted. Axes: input ``mel`` [batch, n_mels, frames], output ``audio``
[batch, 1, frames * hop], batch and frames dynamic. Exported with the TorchScript exporter
(``dynamo=False``): on torch 2.13 it gives the same graph accuracy as the dynamo exporter in a third of
the export time and needs no onnxscript (see docs/performance.md). The ``onnx`` extra provides
``onnx`` (export only) and ``onnxruntime`` (running).
"""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vocoder_cli.audio import atomic_write_bytes
from vocoder_cli.errors import ConfigError, WeightsError
from vocoder_cli.mel import MelConfig, MelSpectrogram
from vocoder_cli.models.config import GeneratorConfig
from vocoder_cli.models.generator import Generator

FORMAT_TAG = "vocoder-generator-onnx/1"
OPSET = 17
MIN_OPSET = 13  # the oldest opset this tool offers; the newest is the installed exporter's (supported_opsets)
ACCURACY_BAR = 1e-4  # max |onnx - torch| / max |torch| on the probe mel
CHECK_KEY = "check_max_rel_error"
_OWN_KEYS = ("format", "generator_config", "mel_config")


def _import(name: str, extra: str = "onnx"):  # type: ignore[no-untyped-def]
    try:
        return __import__(name)
    except ImportError as exc:
        raise WeightsError(f"the ONNX backend needs {name}: pip install 'vocoder[{extra}]'") from exc


def relative_error(out: np.ndarray, ref: np.ndarray) -> float:
    """max |out - ref| / max |ref|: the accuracy bar the backends are held to."""
    return float(np.max(np.abs(out - ref)) / max(float(np.max(np.abs(ref))), 1e-12))


def probe_mel(mel: MelConfig, frames: int = 96) -> torch.Tensor:
    """[1, n_mels, frames] log-mel of real speech (the bundled demo clip) for the export check."""
    import soundfile as sf

    from vocoder_cli.audio import resample
    from vocoder_cli.demo import demo_folder

    demo = demo_folder() / "auth-incorrect.flac"
    wav, sr = sf.read(demo, dtype="float32")
    wav = resample(wav, sr, mel.sample_rate)[: frames * mel.hop_length]
    with torch.inference_mode():
        return MelSpectrogram(mel)(torch.from_numpy(np.ascontiguousarray(wav))[None])


def supported_opsets() -> tuple[int, int]:
    """The opsets ``export_onnx`` accepts here: MIN_OPSET up to the highest the installed torch's
    TorchScript exporter supports (20 on torch 2.13; above it torch only warns and the result is untested)."""
    try:
        from torch.onnx import _constants

        high = getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", None) or _constants.ONNX_MAX_OPSET
    except (ImportError, AttributeError):  # a torch that moved its constants: the one we test
        high = OPSET
    return MIN_OPSET, max(int(high), MIN_OPSET)


def check_opset(opset: int) -> None:
    """A ConfigError naming the supported range when ``opset`` is outside it (before any work)."""
    low, high = supported_opsets()
    if not low <= opset <= high:
        raise ConfigError(f"--opset {opset}: supported here: {low}..{high} ({high} is the newest the installed "
                          f"torch {torch.__version__} exporter writes; default {OPSET})")


def _export_bytes(generator: Generator, opset: int) -> bytes:
    """The TorchScript exporter's ONNX model (dynamic batch and frames) as bytes."""
    _import("onnx")
    example = torch.full((1, generator.cfg.n_mels, 32), -5.0)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter announces the dynamo one
        torch.onnx.export(
            generator.eval(), (example,), buf, dynamo=False, opset_version=opset,
            input_names=["mel"], output_names=["audio"], do_constant_folding=True,
            dynamic_axes={"mel": {0: "batch", 2: "frames"}, "audio": {0: "batch", 2: "samples"}},
        )
    return buf.getvalue()


@dataclass(frozen=True)
class ExportResult:
    path: Path
    max_rel_error: float  # on the probe mel, ONNX Runtime vs PyTorch eager
    size: int

    @property
    def passed(self) -> bool:
        return self.max_rel_error <= ACCURACY_BAR


def export_onnx(
    generator: Generator,
    mel: MelConfig,
    path: str | Path,
    *,
    metadata: dict[str, str] | None = None,
    opset: int = OPSET,
) -> ExportResult:
    """Export ``generator`` with its configs in the model metadata, check it with ONNX Runtime against
    PyTorch on a real-speech mel, and write it atomically to ``path``."""
    onnx = _import("onnx")
    generator.cfg.check_mel(mel)
    check_opset(opset)
    try:
        model = onnx.load_from_string(_export_bytes(generator, opset))
    except (RuntimeError, ValueError, TypeError) as exc:  # torch.onnx's own failures (OnnxExporterError is one)
        raise ConfigError(f"torch's ONNX exporter failed at opset {opset}: {_first_line(exc)}") from None
    probe = probe_mel(mel)
    with torch.inference_mode():
        expected = generator(probe).numpy()
    try:
        session = make_session(model.SerializeToString())
    except Exception as exc:  # noqa: BLE001 (onnxruntime raises its own pybind classes)
        ort = _import("onnxruntime")
        raise ConfigError(f"ONNX Runtime {ort.__version__} cannot load the opset {opset} export "
                          f"({_first_line(exc)}): choose a lower --opset") from None
    error = relative_error(session.run(None, {"mel": probe.numpy()})[0], expected)
    provenance = {k: v for k, v in (metadata or {}).items() if k not in _OWN_KEYS}
    props = {
        **provenance,
        "format": FORMAT_TAG,
        "generator_config": json.dumps(generator.cfg.to_dict()),
        "mel_config": json.dumps(mel.to_dict()),
        "opset": str(opset),
        "exported_with": f"torch {torch.__version__} (TorchScript exporter)",
        CHECK_KEY: f"{error:.3e}",
    }
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    payload = model.SerializeToString()
    return ExportResult(atomic_write_bytes(path, payload), error, len(payload))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def make_session(model: str | Path | bytes, threads: int | None = None, *, spinning: bool = False):  # type: ignore[no-untyped-def]
    """An ONNX Runtime CPU session: all graph optimisations, ``threads`` intra-op threads (default: torch's).

    Idle worker threads sleep instead of spinning (``spinning=False``): measured side by side on a shared
    2-core machine, V1 ran 4-7% faster that way (docs/performance.md); a spinning pool burns the cores
    that other processes, and its own other thread, need."""
    ort = _import("onnxruntime")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.log_severity_level = 3  # errors only: no warnings about unused initialisers on stderr
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


class OnnxGenerator(nn.Module):
    """Mel [B, n_mels, frames] -> waveform [B, 1, frames * hop], run by ONNX Runtime on the CPU.

    An ``nn.Module`` only so that it drops in where the torch Generator goes; it has no parameters."""

    def __init__(self, session, cfg: GeneratorConfig) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.session = session
        self.cfg = cfg

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        if mel.device.type != "cpu":
            raise ConfigError("the onnx backend runs on the CPU (use --backend torch for CUDA)")
        batch = np.ascontiguousarray(mel.detach().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(None, {"mel": batch})[0])


@dataclass
class LoadedOnnx:
    generator: OnnxGenerator
    mel: MelConfig
    config: GeneratorConfig
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def max_rel_error(self) -> float:
        try:
            return float(self.metadata.get(CHECK_KEY, "nan"))
        except ValueError:
            return float("nan")


def load_onnx(path: str | Path, threads: int | None = None) -> LoadedOnnx:
    """Open one of our ONNX files; anything else is a WeightsError naming the file and the reason."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such ONNX file")
    _import("onnxruntime")
    try:
        session = make_session(path, threads)
    except Exception as exc:  # noqa: BLE001 (onnxruntime raises its own pybind classes)
        raise WeightsError(f"{path}: not a readable ONNX model ({_first_line(exc)})") from None
    meta = dict(session.get_modelmeta().custom_metadata_map)
    if meta.get("format") != FORMAT_TAG:
        raise WeightsError(
            f"{path}: an ONNX model, but not a vocoder generator (metadata format {meta.get('format')!r}, "
            f"expected {FORMAT_TAG!r}); make one with `vocoder export onnx WEIGHTS OUT.onnx`"
        )
    try:
        cfg = GeneratorConfig.from_dict(json.loads(meta["generator_config"]))
        mel = MelConfig.from_dict(json.loads(meta["mel_config"]))
    except (KeyError, json.JSONDecodeError, TypeError, ConfigError) as exc:
        raise WeightsError(f"{path}: broken config metadata ({exc})") from exc
    inputs = [i.name for i in session.get_inputs()]
    if inputs != ["mel"]:
        raise WeightsError(f"{path}: expected one input named 'mel', found {inputs}")
    return LoadedOnnx(OnnxGenerator(session, cfg), mel, cfg, meta)


def is_onnx_path(path: str | Path) -> bool:
    return str(path).lower().endswith(".onnx")


def cache_path(weights: Path, opset: int = OPSET, sha256: str | None = None) -> Path:
    """Where the ONNX export of a weights file is cached: keyed by the file's sha256 (``sha256`` if the
    caller has it), the opset and the ONNX Runtime version, under the cache dir (``$VOCODER_CACHE_DIR/onnx/``)."""
    from vocoder_cli.weights.cache import cache_dir
    from vocoder_cli.weights.download import sha256_of

    ort = _import("onnxruntime")
    return cache_dir() / "onnx" / f"{(sha256 or sha256_of(weights))[:16]}-opset{opset}-ort{ort.__version__}.onnx"


def cached_export(weights: Path, target: Path | None = None, opset: int = OPSET) -> Path:
    """The cached ONNX file (``target``, default :func:`cache_path`) for a ``.safetensors`` weights file,
    exported (and checked) on first use."""
    from vocoder_cli.weights.format import load_generator

    target = target or cache_path(weights, opset)
    if not target.is_file():
        loaded = load_generator(weights)
        export_onnx(loaded.generator, loaded.mel, target, metadata=loaded.metadata, opset=opset)
    return target
