"""``speak()``: text -> acoustic model -> log-mel -> vocoder -> audio files (`vocoder tts`).

Same rules as the command: a bad text is a failure row and the batch goes on, characters a model cannot
read are dropped with a warning (refused with ``strict``), a text over the model's limit is split at
sentence boundaries (or refused), existing files are never replaced unless ``overwrite``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from vocoder_cli.api.notes import Notify, log_notice
from vocoder_cli.api.vocoder import Vocoder, load
from vocoder_cli.audio import output_problem
from vocoder_cli.errors import AudioError, ConfigError
from vocoder_cli.outputs import OutputPolicy
from vocoder_cli.shards import Shard, take_shard
from vocoder_cli.tts.base import LoadOptions
from vocoder_cli.tts.mels import MelBridge, bridge
from vocoder_cli.tts.registry import DEFAULT_ACOUSTIC, check_acoustic_options, load_acoustic
from vocoder_cli.tts.synthesis import STDIO, TtsJob, TtsOptions, TtsReport, TtsRunner, plan_jobs
from vocoder_cli.tts.texts import TextItem, mark_duplicates

SINGLE_ID = "tts"


@dataclass
class TtsResult(TtsReport):
    """What a run did. From :class:`~vocoder_cli.tts.synthesis.TtsReport`: ``written`` (paths), ``skipped``,
    ``refused``, ``failures`` and ``warnings`` (rows with ``id``, ``source``, ``reason``), ``audio_seconds``,
    ``wall_seconds``, ``stage_seconds`` and ``real_time_factor(stage)``. Here also: the ``vocoder`` used,
    the ``acoustic`` model's name and ``stdout`` (the WAV bytes when the output was ``"-"``)."""

    vocoder: Vocoder | None = None
    acoustic: str = ""
    stdout: bytes | None = None

    @property
    def ok(self) -> bool:
        """Nothing failed or was refused (the command's exit code 0)."""
        return not self.failures and not self.refused


def _items(text: str | Mapping[str, str] | Sequence[TextItem], batch: bool | None) -> tuple[list[TextItem], bool]:
    """The items to speak and whether they form a batch (a folder of outputs)."""
    if batch is not None and not isinstance(text, (str, Mapping)):
        return list(text), batch
    if isinstance(text, str):
        return [TextItem(SINGLE_ID, text, "<argument>")], False
    if isinstance(text, Mapping):
        return mark_duplicates([TextItem(str(k), v, f"<{k}>") for k, v in text.items()]), True
    return list(text), True


def speak(
    text: str | Mapping[str, str] | Sequence[TextItem],
    output: str | Path,
    *,
    acoustic: str = DEFAULT_ACOUSTIC,
    acoustic_weights: str | None = None,
    acoustic_options: Mapping[str, str] | None = None,
    weights: str | Path | Vocoder | None = None,
    device: str = "cpu",
    precision: str = "fp32",
    backend: str = "auto",
    batch_size: int = 8,
    seed: int = 0,
    too_long: str = "split",
    strict: bool = False,
    save_mels: bool = False,
    skip_existing: bool = False,
    overwrite: bool = False,
    out_sr: int | None = None,
    float_output: bool = False,
    offline: bool | None = None,
    verify: bool = True,
    notify: Notify | None = log_notice,
    download_progress: Callable[[int, int | None], None] | None = None,
    input_dirs: Sequence[str | Path] = (),
    batch: bool | None = None,
    on_ready: Callable[[Vocoder, MelBridge], None] | None = None,
    shard: Shard | None = None,
    on_shard: Callable[[int, list[TtsJob]], None] | None = None,
    on_progress: Callable[[float, int], None] | None = None,
) -> TtsResult:
    """Speak ``text`` into ``output``.

    ``text``: one string (``output`` is an audio file such as ``out.wav``, or ``"-"``: the WAV bytes come
    back in ``result.stdout``), or a mapping id -> text (``output`` is a folder; each item becomes
    ``<id>.wav``). ``acoustic``: ``espeak`` (offline, robotic; the ``[tts]`` extra) or ``tacotron2-lj``
    (LJSpeech voice, ~113 MB fetched on first use; needs ``verify=False``), or a plug-in;
    ``acoustic_options``: its KEY -> VALUE options (espeak: voice, rate, pitch). ``weights``: the vocoder
    as in :func:`~vocoder_cli.api.vocoder.load`, or a loaded :class:`Vocoder`. ``save_mels`` also writes
    each mel as ``<id>.npy`` in the vocoder's recipe. ``too_long``: ``split`` or ``refuse`` texts over the
    model's limit; ``strict`` refuses texts with characters the model cannot read. ``out_sr`` (Hz),
    ``float_output``, ``skip_existing``, ``overwrite``: as :func:`~vocoder_cli.api.resynth.resynthesize`.

    ``text`` may also be :class:`~vocoder_cli.tts.texts.TextItem` objects with ``batch`` saying whether
    ``output`` is a folder; ``input_dirs``: folders the texts came from (``output`` must not overlap them).
    ``on_ready(vocoder, bridge)`` is called once both models are loaded, before any text is spoken
    (``bridge.explanation`` says how the acoustic model's mels are adapted, when they are);
    ``on_progress(done, total)`` follows the items. ``shard``/``on_shard``: as
    :func:`~vocoder_cli.api.resynth.resynthesize` (texts sorted by output path, dealt longest text first). Raises for usage problems before anything is written;
    per-item problems are rows of the result (``result.ok`` is False when there are any)."""
    if too_long not in ("split", "refuse"):
        raise ConfigError(f"too_long must be split or refuse, not {too_long!r}")
    items, batch = _items(text, batch)
    options = dict(acoustic_options or {})
    check_acoustic_options(acoustic, options)
    policy = OutputPolicy.from_flags(overwrite, skip_existing)
    jobs = plan_jobs(items, str(output), batch=batch, save_mels=save_mels, policy=policy, input_dirs=list(input_dirs))
    if shard is not None and shard.sharded:
        total = len(jobs)
        jobs = take_shard(jobs, shard, key=lambda job: job.target, size=lambda job: len(job.item.text or ""))
        if on_shard is not None:
            on_shard(total, jobs)
        if not jobs:
            return TtsResult()
    vocoder = weights if isinstance(weights, Vocoder) else load(
        weights, device, precision, backend, offline=offline, notify=notify, batch_size=batch_size
    )
    model = load_acoustic(
        acoustic,
        LoadOptions(
            target_mel=vocoder.mel_config, device=vocoder.device, weights=acoustic_weights, offline=offline,
            verify=verify, seed=seed, options=options, notify=notify, progress=download_progress,
        ),
    )  # fmt: skip
    mel_bridge = bridge(model.mel_config, vocoder.mel_config, model.name)
    subtype = "FLOAT" if float_output else "PCM_16"
    single = not batch and str(output) != STDIO
    if (problem := output_problem(str(output) if single else "OUT.wav", out_sr or vocoder.sample_rate, subtype)):
        raise AudioError(str(output), problem) if single else ConfigError(problem)
    if on_ready is not None:
        on_ready(vocoder, mel_bridge)
    runner = TtsRunner(
        model,
        vocoder.engine,
        mel_bridge,
        TtsOptions(
            too_long=too_long, strict=strict, policy=policy, batch_size=batch_size,
            group_size=max(batch_size, 8), out_sr=out_sr, subtype=subtype,
        ),
    )  # fmt: skip
    total = len(jobs)
    report, payload = runner.run(jobs, on_progress=None if on_progress is None else (lambda d: on_progress(d, total)))
    return TtsResult(**vars(report), vocoder=vocoder, acoustic=model.name, stdout=payload)
