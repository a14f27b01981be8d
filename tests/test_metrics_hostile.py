"""Every per-file metric fed the hostile corpus of issue 13: a 1-sample pair (pystoi raised an AxisError
that ended the batch), clips under 25 ms, silence and DC on either side (SI-SDR 0 dB / M-STFT 0
"perfect" before), denormals, huge float samples, an impulse, Nyquist, square waves, NaN and empty files.

Nothing may escape the runner: each file is a row with finite scores or with the reason it failed, and
a silent or DC-only signal is always a failure, never a number in the mean."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import write
from vocoder_cli.demo import demo_speech
from vocoder_cli.metrics import METRICS, pair_paths, score_pairs
from vocoder_cli.metrics.reference import stoi_at

SR = 22050

# id -> (reference, generated, what the row must say); None: it may score or fail, but must not crash.
EXPECTED_FAILURE = {
    "one_sample": "DC only",
    "silent_gen": "generated audio is silent",
    "silent_ref": "reference is silent",
    "silent_both": "generated audio is silent",
    "dc_gen": "generated audio is DC only",
    "dc_ref": "reference is DC only",
    "denormal_gen": "generated audio is silent",
    "nan_gen": "NaN/inf",
    "empty_gen": "empty file",
}


def hostile_corpus(root: Path) -> dict[str, tuple[np.ndarray | bytes, np.ndarray | bytes]]:
    """Write ref/ID.wav and gen/ID.wav (32-bit float, so huge and tiny values survive) for every case."""
    rng = np.random.default_rng(13)
    speech = demo_speech(SR)[: 2 * SR]
    noisy = speech + 0.02 * rng.standard_normal(speech.size).astype(np.float32)
    n = speech.size
    cases: dict[str, tuple[np.ndarray | bytes, np.ndarray | bytes]] = {
        "good": (speech, noisy),
        "one_sample": (np.array([0.3], np.float32), np.array([0.3], np.float32)),
        "ten_samples": (speech[5000:5010], noisy[5000:5010]),
        "twenty_ms": (speech[5000:5441], noisy[5000:5441]),
        "silent_gen": (speech, np.zeros(n, np.float32)),
        "silent_ref": (np.zeros(n, np.float32), speech),
        "silent_both": (np.zeros(n, np.float32), np.zeros(n, np.float32)),
        "dc_gen": (speech, np.full(n, 0.25, np.float32)),
        "dc_ref": (np.full(n, -0.1, np.float32), speech),
        "denormal_gen": (speech, (1e-38 * rng.standard_normal(n)).astype(np.float32)),
        "huge_gen": (speech, 1e4 * speech),
        "impulse_gen": (speech, np.eye(1, n, n // 2, dtype=np.float32)[0]),
        "nyquist_gen": (speech, np.tile(np.array([0.5, -0.5], np.float32), n // 2)),
        "square_gen": (speech, np.sign(speech).astype(np.float32)),
        "noise_gen": (speech, rng.uniform(-1, 1, n).astype(np.float32)),
        "nan_gen": (speech, np.where(np.arange(n) == 7, np.nan, speech).astype(np.float32)),
        "empty_gen": (speech, b""),
    }
    for key, (ref, gen) in cases.items():
        for side, signal in (("ref", ref), ("gen", gen)):
            path = root / side / f"{key}.wav"
            if isinstance(signal, bytes):
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(signal)
            else:
                write(path, signal, SR, "FLOAT")
    return cases


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    hostile_corpus(root)
    return root


PER_FILE = [m for m in METRICS.values() if not m.neural]


@pytest.mark.parametrize("metric", PER_FILE, ids=[m.name for m in PER_FILE])
def test_hostile_corpus_gives_rows_never_an_escape(corpus: Path, metric) -> None:  # type: ignore[no-untyped-def]
    run = score_pairs(pair_paths(corpus / "ref", corpus / "gen"), [metric], workers=1)
    rows = {r.id: r for r in run.results}
    assert len(rows) == 17
    for result in run.results:
        for key in metric.keys:
            value = result.scores[key]
            assert value is None or math.isfinite(value), (result.id, key, value)
            if value is None:
                assert result.errors, result.id  # a missing number always comes with its reason
    assert not rows["good"].failed, rows["good"].errors
    for case, reason in EXPECTED_FAILURE.items():
        if case in ("silent_ref", "dc_ref") and not metric.paired:
            assert not rows[case].failed, (case, rows[case].errors)  # reference-free: the reference is unused
            continue
        assert rows[case].failed and all(rows[case].scores[k] is None for k in metric.keys), case
        assert reason in "; ".join(rows[case].errors), (case, rows[case].errors)
    # a missing output can never raise the mean: only real scores are counted
    assert all(s.count + s.failures == 17 for s in run.summaries())


def test_a_library_exception_becomes_the_reason_with_its_type() -> None:
    """pystoi on one sample raises numpy's AxisError; the wrapper turns it into the row's reason."""
    from vocoder_cli.metrics.base import MetricError

    with pytest.raises(MetricError, match=r"pystoi raised AxisError: axis 1 is out of bounds"):
        stoi_at(np.array([0.3]), np.array([0.3]), extended=False)


def test_one_sample_pair_through_the_cli_exits_1_with_a_row(corpus: Path) -> None:
    """The issue's reproduction: `vocoder score REF GEN -m stoi` on a 1-sample pair."""
    from typer.testing import CliRunner

    from vocoder_cli.cli.app import app

    result = CliRunner().invoke(app, ["score", str(corpus / "ref" / "one_sample.wav"),
                                      str(corpus / "gen" / "one_sample.wav"), "-m", "stoi,estoi,mcd,sisdr",
                                      "-f", "jsonl", "--per-file"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    row = __import__("json").loads(result.stdout)
    assert row["stoi"] is None and row["sisdr"] is None and "DC only" in row["error"]
