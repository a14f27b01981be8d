"""The report's figures as PNG files (matplotlib, Agg backend: no display needed).

Three kinds: the distribution of each metric over a group's files, the same across groups, and for
one sampled file the waveform overlay, both log-mels on one colour scale and their difference.

Set names and file ids are user text: every string drawn passes through :func:`vocoder_cli.printable.visible` and is drawn
with ``parse_math=False`` (matplotlib would read ``$x$`` as math text and raise on ``$\\frac$``).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vocoder_cli.audio import atomic_write_bytes
from vocoder_cli.metrics.base import MissingExtraError
from vocoder_cli.printable import visible
from vocoder_cli.report.examples import ExampleAudio

REF_COLOUR, GEN_COLOUR = "#1f4e9c", "#d9641e"
DPI = 100
DIFF_NATS = 2.0  # the difference panel's fixed range (2 nats = 17 dB), so figures of different sets compare


def require_matplotlib() -> None:
    """Fail before any scoring when the [report] extra is missing."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise MissingExtraError("vocoder report draws its figures with matplotlib, from the [report] extra: "
                                "pip install 'vocoder[report]'")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.titlesize": 10, "figure.dpi": DPI, "savefig.dpi": DPI,
                         "axes.spines.top": False, "axes.spines.right": False,
                         "text.parse_math": False})  # no text of ours is math; user text must stay literal
    return plt


def _save(fig: Any, path: Path) -> Path:
    """PNG with a 256-colour palette (no dithering): a third of the size of RGBA for these plots."""
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", metadata={"Software": None})
    _pyplot().close(fig)
    buf.seek(0)
    image = Image.open(buf).convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return atomic_write_bytes(path, out.getvalue())


def _envelope(wav: np.ndarray, sr: int, bins: int = 2400) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(t, min, max) over ``bins`` spans: what a line through every sample looks like at screen width,
    drawn in a fraction of the time and bytes."""
    if wav.size <= 2 * bins:
        t = np.arange(wav.size) / sr
        return t, wav, wav
    step = wav.size // bins
    body = wav[: step * bins].reshape(bins, step)
    t = (np.arange(bins) * step + step / 2) / sr
    return t, body.min(axis=1), body.max(axis=1)


def _grid(n: int, ncols: int = 3) -> tuple[int, int]:
    cols = min(ncols, max(n, 1))
    return (n + cols - 1) // cols, cols


def distribution_figure(values: dict[str, Sequence[float]], title: str, path: Path) -> Path:
    """One panel per metric key: a box (quartiles, whiskers at 1.5 IQR) over every file's dot."""
    plt = _pyplot()
    keys = list(values)
    rows, cols = _grid(len(keys), 4)
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.6 * rows), squeeze=False)
    rng = np.random.default_rng(0)  # the jitter is decoration; fixed so reruns give identical PNGs
    for ax, key in zip(axes.flat, keys):
        data = np.asarray(values[key], dtype=float)
        if data.size:
            ax.boxplot(data, widths=0.5, showfliers=False, medianprops={"color": GEN_COLOUR})
            ax.scatter(1 + rng.uniform(-0.15, 0.15, data.size), data, s=9, alpha=0.6, color=REF_COLOUR, zorder=3)
        ax.set_title(f"{visible(key)} (n={data.size})", parse_math=False)
        ax.set_xticks([])
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.suptitle(visible(title), x=0.01, ha="left", parse_math=False)
    fig.tight_layout()
    return _save(fig, path)


def comparison_figure(keys: Sequence[str], groups: Sequence[tuple[str, dict[str, Sequence[float]]]],
                      path: Path, better: dict[str, str]) -> Path:
    """One panel per key, one horizontal box per group (labels on the left stay readable)."""
    plt = _pyplot()
    rows, cols = _grid(len(keys), 4 if len(keys) > 3 else 3)
    height = max(1.6, 0.32 * len(groups) + 0.9)
    fig, axes = plt.subplots(rows, cols, figsize=(2.9 * cols, height * rows), squeeze=False)
    everywhere = all(len(g.get(key, [])) for key in keys for _, g in groups)  # then label the first column only
    for i, (ax, key) in enumerate(zip(axes.flat, keys)):
        present = [(label, np.asarray(g[key], dtype=float)) for label, g in groups if len(g.get(key, []))]
        positions = np.arange(len(present))[::-1]
        if present:
            ax.boxplot([d for _, d in present], positions=positions, orientation="horizontal", widths=0.6,
                       showfliers=False, medianprops={"color": GEN_COLOUR})
        ax.set_yticks(positions)
        ax.set_yticklabels([visible(label) if i % cols == 0 or not everywhere else "" for label, _ in present],
                           parse_math=False)
        ax.set_title(f"{visible(key)} ({better[key]})", parse_math=False)
        ax.set_ylim(-0.7, max(len(present), 1) - 0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.tight_layout()
    return _save(fig, path)


def example_figure(example: ExampleAudio, title: str, path: Path) -> Path:
    """Waveform overlay (whole clip, and 40 ms around its loudest part), the log-mels of reference and
    generated audio on one colour scale, and generated minus reference (nats)."""
    plt = _pyplot()
    paired = example.ref is not None
    nrows = 5 if paired else 3
    ratios = [1.0, 1.0, 1.2, 1.2, 1.2][:nrows]
    fig, axes = plt.subplots(nrows, 1, figsize=(10, 1.75 * sum(ratios)), gridspec_kw={"height_ratios": ratios},
                             layout="constrained")
    sr, gen = example.sr, example.gen
    ax = axes[0]
    if paired:
        t, lo, hi = _envelope(example.ref, sr)
        ax.fill_between(t, lo, hi, lw=0.3, color=REF_COLOUR, label="reference")
    t, lo, hi = _envelope(gen, sr)
    ax.fill_between(t, lo, hi, lw=0.3, color=GEN_COLOUR, alpha=0.6 if paired else 1.0, label="generated")
    ax.set_xlim(0, gen.size / sr)
    ax.set_ylabel("amplitude")
    ax.legend(loc="upper right", fontsize=8, ncol=2, frameon=False)
    ax.set_title(visible(title), loc="left", parse_math=False)
    lo, hi = example.zoom
    ax.axvspan(lo / sr, hi / sr, color="0.85", zorder=0)
    ax = axes[1]
    tz = np.arange(lo, hi) / sr * 1000
    if paired:
        ax.plot(tz, example.ref[lo:hi], lw=1.0, color=REF_COLOUR)
    ax.plot(tz, gen[lo:hi], lw=1.0, color=GEN_COLOUR, alpha=0.85 if paired else 1.0)
    ax.set_xlim(tz[0], tz[-1])
    ax.set_xlabel("ms (the shaded span above)")
    ax.set_ylabel("amplitude")
    mels = [("reference log-mel", example.ref_mel), ("generated log-mel", example.gen_mel)] if paired else [
        ("generated log-mel", example.gen_mel)]
    vmin = example.mel_floor
    vmax = max(float(m.max()) for _, m in mels)
    frames_s = example.mel_hop / example.mel_sr
    extent = (0, example.gen_mel.shape[1] * frames_s, 0, example.gen_mel.shape[0])
    image = None
    for ax, (name, mel) in zip(axes[2:], mels):
        image = ax.imshow(mel, origin="lower", aspect="auto", cmap="magma", vmin=vmin, vmax=vmax,
                          extent=extent, interpolation="nearest")
        ax.set_ylabel("mel bin")
        ax.set_title(name, loc="left", fontsize=9)
    fig.colorbar(image, ax=list(axes[2 : 2 + len(mels)]), pad=0.01, fraction=0.03, label="ln(mel)")
    if paired:
        ax = axes[4]
        diff = example.gen_mel - example.ref_mel
        diff_image = ax.imshow(diff, origin="lower", aspect="auto", cmap="RdBu_r", vmin=-DIFF_NATS,
                               vmax=DIFF_NATS, extent=extent, interpolation="nearest")
        ax.set_title(f"generated - reference (red: generated louder; one scale, +-{DIFF_NATS:g} nats, in every "
                     "report)", loc="left", fontsize=9)
        ax.set_ylabel("mel bin")
        fig.colorbar(diff_image, ax=[ax], pad=0.01, fraction=0.03, label="nats")
    axes[-1].set_xlabel("seconds")
    return _save(fig, path)
