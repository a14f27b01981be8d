"""Targeted mutation check: does the test suite catch a wrong number where it matters?

Each mutant is one deliberate bug (a text replacement in the source: a changed constant, a dropped
factor, a frame short) that would change what users publish or hear. For each, the repository's tracked
files are copied to a temporary folder, the mutant is applied there (the working tree is never touched),
and the test files that should catch it run with ``python -m pytest -x -q -p no:cacheprovider``. A mutant
is *killed* when those tests fail, *survived* when they pass. Exit status 1 when any survived (or a
mutant no longer applies because the source changed: update its text here), 0 when all were killed.

    python scripts/mutation_check.py                 # all mutants, a Markdown table on stdout
    python scripts/mutation_check.py mcd-no-sqrt2    # only the named ones
    python scripts/mutation_check.py --list
    python scripts/mutation_check.py --baseline      # instead: each selection must pass without a mutant

Run it before each release; docs/testing.md has the last result.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str  # file in the repository
    old: str  # must occur exactly once in that file
    new: str
    tests: tuple[str, ...]  # pytest arguments: files, ``-k`` expressions
    why: str  # what a user would get wrong


MEL, GEN, SIGNAL = "vocoder_cli/mel.py", "vocoder_cli/models/generator.py", "vocoder_cli/metrics/signal.py"
PITCH, SUMMARY, RUNNER = "vocoder_cli/metrics/pitch.py", "vocoder_cli/metrics/summary.py", "vocoder_cli/metrics/runner.py"
REFERENCE, VOCODER = "vocoder_cli/metrics/reference.py", "vocoder_cli/synthesis/vocoder.py"
STREAMING, CREPE = "vocoder_cli/synthesis/streaming.py", "vocoder_cli/models/crepe.py"
OUTSIDE, SIGNAL_T = "tests/test_metrics_outside.py", "tests/test_metrics_signal.py"

MUTANTS: tuple[Mutant, ...] = (
    Mutant("mel-log-floor", MEL, "log_floor: float = 1e-5", "log_floor: float = 1e-4",
           ("tests/test_mel.py",), "every log-mel floor (silence level) moves: mels no longer fit official weights"),
    Mutant("mel-fmax-7600", MEL, "fmax: float | None = 8000.0", "fmax: float | None = 7600.0",
           ("tests/test_mel.py",), "the 22.05 kHz recipe's filterbank tops out at 7.6 kHz instead of 8 kHz"),
    Mutant("mel-mag-eps", MEL, "mag_eps: float = 1e-9", "mag_eps: float = 1e-6",
           ("tests/test_mel.py",), "quiet bins of every mel change"),
    Mutant("generator-no-tanh", GEN, "return torch.tanh(x)", "return x",
           ("tests/test_models.py", "-k", "output_shape"), "the waveform is no longer bounded to [-1, 1]"),
    Mutant("receptive-field-short", VOCODER, "return half + 3  # conv_pre", "return half + 2  # conv_pre",
           ("tests/test_models.py", "-k", "receptive"), "chunked synthesis gets one frame too little context"),
    Mutant("stream-lookahead-short", STREAMING, "return receptive_field_frames(cfg) if cfg",
           "return receptive_field_frames(cfg) - 1 if cfg",
           ("tests/test_streaming.py", "-k", "lookahead or v3 or latency"), "streaming is no longer exact"),
    Mutant("length-accept-3-hops", RUNNER, "ACCEPT_HOPS = 2", "ACCEPT_HOPS = 3",
           ("tests/test_metrics_runner.py", "-k", "length_rule"), "a 3-hop length difference passes silently"),
    Mutant("length-fail-11-hops", RUNNER, "FAIL_HOPS = 10", "FAIL_HOPS = 11",
           ("tests/test_metrics_runner.py", "-k", "length_rule"), "pairs 10-11 hops apart are scored"),
    Mutant("mstft-resolution", SIGNAL, "(512, 50, 240))", "(512, 64, 256))",
           (SIGNAL_T, OUTSIDE, "-k", "mstft"), "M-STFT no longer comparable with BigVGAN's column"),
    Mutant("mstft-eps", SIGNAL, "MSTFT_EPS = 1e-8", "MSTFT_EPS = 1e-5",
           (SIGNAL_T, OUTSIDE, "-k", "mstft"), "the magnitude floor of M-STFT's log term moves"),
    Mutant("mcd-no-sqrt2", SIGNAL, "MCD_CONST = 10.0 / np.log(10.0) * np.sqrt(2.0)",
           "MCD_CONST = 10.0 / np.log(10.0)", (OUTSIDE, "-k", "mcd"), "every MCD is 1.414x too small"),
    Mutant("mcd-with-c0", SIGNAL, "mc_ref = world_mel_cepstra(ref, sr)[:, 1:]\n    mc_gen = world_mel_cepstra(gen, sr)[:, 1:]",
           "mc_ref = world_mel_cepstra(ref, sr)\n    mc_gen = world_mel_cepstra(gen, sr)",
           (OUTSIDE, "-k", "mcd"), "MCD counts the energy coefficient c0"),
    Mutant("mcd-order-13", SIGNAL, "MCEP_ORDER = 24", "MCEP_ORDER = 13",
           (SIGNAL_T, OUTSIDE, "-k", "order_24 or mcd_frame"), "MCD over 13 instead of 24 coefficients"),
    Mutant("mcd-frame-10ms", SIGNAL, "FRAME_PERIOD_MS = 5.0", "FRAME_PERIOD_MS = 10.0",
           (SIGNAL_T, OUTSIDE, "-k", "order_24 or mcd_frame"), "MCD averaged over 10 ms frames"),
    Mutant("mcd-dtw-no-band", SIGNAL, "DTW_BAND_SECONDS = 0.2", "DTW_BAND_SECONDS = 0.0",
           (OUTSIDE, "-k", "dtw"), "MCD-DTW silently becomes the frame-aligned MCD"),
    Mutant("mcep-alpha", SIGNAL, "for alpha in np.arange(0.0, 1.0, 0.001):", "for alpha in np.arange(0.0, 1.0, 0.01):",
           (SIGNAL_T, "-k", "alpha"), "the all-pass constant is not SPTK's (0.46 at 22.05 kHz)"),
    Mutant("lsd-hop", SIGNAL, "LSD_FFT, LSD_HOP = 2048, 512", "LSD_FFT, LSD_HOP = 2048, 256",
           (SIGNAL_T, "-k", "lsd"), "LSD over other frames"),
    Mutant("sisdr-not-zero-mean", SIGNAL, "ref, gen = ref - ref.mean(), gen - gen.mean()", "pass",
           (SIGNAL_T, OUTSIDE, "-k", "sisdr"), "SI-SDR counts a DC offset"),
    Mutant("t-vs-z-interval", SUMMARY, "half = t_quantile_975(n - 1) * std", "half = 1.959963984540054 * std",
           ("tests/test_metrics_runner.py", "-k", "interval or quantile"), "95% intervals too narrow for few files"),
    Mutant("summary-std-ddof0", SUMMARY, "/ (n - 1))", "/ n)",
           ("tests/test_metrics_runner.py", "-k", "interval or quantile"), "the standard deviation is biased low"),
    Mutant("pesq-nb-rate", REFERENCE, "PESQ_NB_RATE = 8_000", "PESQ_NB_RATE = 16_000",
           ("tests/test_metrics_reference.py", "-k", "libraries"), "narrow-band PESQ at the wrong rate"),
    Mutant("stoi-extended", REFERENCE, 'return {"stoi": stoi_at(r, g, extended=False)}',
           'return {"stoi": stoi_at(r, g, extended=True)}',
           ("tests/test_metrics_reference.py", "-k", "libraries"), "STOI reports ESTOI"),
    Mutant("crepe-lower-threshold", PITCH, "LOWER, UPPER, WIDTH, STDS = 0.19, 0.31, 0.2, 1.7",
           "LOWER, UPPER, WIDTH, STDS = 0.2, 0.31, 0.2, 1.7",
           ("tests/test_metrics_pitch.py", "-k", "hysteresis"), "V/UV F1 with another voicing threshold"),
    Mutant("crepe-upper-threshold", PITCH, "LOWER, UPPER, WIDTH, STDS = 0.19, 0.31, 0.2, 1.7",
           "LOWER, UPPER, WIDTH, STDS = 0.19, 0.3, 0.2, 1.7",
           ("tests/test_metrics_pitch.py", "-k", "hysteresis"), "weak voiced runs kept"),
    Mutant("crepe-silence-db", PITCH, "SILENCE_DB = -60.0", "SILENCE_DB = -50.0",
           ("tests/test_metrics_pitch.py", "-k", "silence_threshold"), "quiet voiced frames read as silence"),
    Mutant("crepe-flatten-order", CREPE, "x = x[:, :, 0, :].transpose(1, 2).reshape(", "x = x[:, :, 0, :].reshape(",
           ("tests/test_metrics_pitch.py", "-k", "random_weights"), "CREPE's classifier reads its features shuffled"),
)


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                         capture_output=True, check=True).stdout
    return [p for p in out.decode().split("\0") if p and (REPO / p).is_file()]


def copy_tree(dest: Path) -> None:
    """The working tree's files that git tracks or would track, plus the tests' weights cache (a link)."""
    for rel in tracked_files():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, target)
    cache = REPO / ".test-cache"
    if cache.exists():
        (dest / ".test-cache").symlink_to(cache)


def run_tests(tree: Path, tests: tuple[str, ...], timeout: float) -> tuple[int | None, float, str]:
    """pytest on ``tests`` in ``tree``: (exit status or None on timeout, seconds, pytest's last line)."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=str(tree), VOCODER_TEST_DATA=str(REPO.parent / "shared" / "data"),
               VOCODER_TEST_DATA_DIR=str(REPO / ".test-cache" / "data"))
    start = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
                              cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, time.monotonic() - start, f"over {timeout:.0f} s"
    lines = (done.stdout + done.stderr).strip().splitlines()
    return done.returncode, time.monotonic() - start, lines[-1] if lines else ""


def run_mutant(tree: Path, mutant: Mutant, timeout: float) -> tuple[str, float, str]:
    """Apply, run, restore. Returns (killed | survived | stale | timeout, seconds, last line of pytest)."""
    path = tree / mutant.path
    original = path.read_text()
    if original.count(mutant.old) != 1:
        return "stale", 0.0, f"the text to replace occurs {original.count(mutant.old)} times in {mutant.path}"
    path.write_text(original.replace(mutant.old, mutant.new))
    try:
        code, seconds, last = run_tests(tree, mutant.tests, timeout)
    finally:
        path.write_text(original)
    status = "timeout" if code is None else {0: "survived", 5: "no tests ran"}.get(code, "killed")
    return status, seconds, last


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="mutants to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--baseline", action="store_true",
                        help="only run each test selection without a mutant: all must pass, or a kill means nothing")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per mutant (default 900)")
    args = parser.parse_args()
    chosen = [m for m in MUTANTS if not args.names or m.name in args.names]
    if args.list or not chosen:
        for m in MUTANTS:
            print(f"{m.name:24} {m.path}: {m.why}")
        return 0 if args.list else 2
    bad = 0
    with tempfile.TemporaryDirectory(prefix="mutation-") as tmp:
        tree = Path(tmp)
        copy_tree(tree)
        where = subprocess.run([sys.executable, "-c", "import vocoder_cli; print(vocoder_cli.__file__)"], cwd=tree,
                               env=dict(os.environ, PYTHONPATH=str(tree)), capture_output=True, text=True).stdout
        if not where.startswith(str(tree)):
            print(f"the copy's package is not the one imported ({where.strip()}): nothing would be mutated")
            return 2
        if args.baseline:
            for tests in dict.fromkeys(m.tests for m in chosen):
                code, seconds, last = run_tests(tree, tests, args.timeout)
                print(f"baseline {' '.join(tests)}: {last} ({seconds:.0f} s)", flush=True)
                bad += code != 0
            return 1 if bad else 0
        print("| mutant | file | what it breaks | tests run | result | pytest said | seconds |")
        print("|---|---|---|---|---|---|---|")
        for m in chosen:
            status, seconds, last = run_mutant(tree, m, args.timeout)
            bad += status != "killed"
            tests = " ".join(a if not a.startswith("tests/") else a[len("tests/"):] for a in m.tests)
            said = last.strip("= ").replace("|", "/")
            print(f"| {m.name} | {m.path} | {m.why} | `{tests}` | **{status}** | {said} | {seconds:.0f} |", flush=True)
    print(f"\n{len(chosen) - bad} of {len(chosen)} mutants killed", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
