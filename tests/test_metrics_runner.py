"""Pairing, length alignment, summary statistics and the process pool (same numbers as serial)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from tests.helpers import tone, write
from vocoder_cli.audio import resample
from vocoder_cli.demo import demo_speech
from vocoder_cli.errors import ConfigError
from vocoder_cli.metrics import (
    pair_paths,
    parse_metrics,
    parse_pairs,
    score_pairs,
    summarise,
)
from vocoder_cli.metrics.base import MetricError
from vocoder_cli.metrics.runner import align, length_check

SR = 22050


def test_pairs_match_by_relative_path_without_extension(tmp_path: Path) -> None:
    write(tmp_path / "ref" / "a.wav", tone(0.5, SR), SR)
    write(tmp_path / "ref" / "spk" / "b.flac", tone(0.5, SR), SR)
    write(tmp_path / "ref" / "only_ref.wav", tone(0.5, SR), SR)
    write(tmp_path / "gen" / "a.flac", tone(0.5, SR), SR)
    write(tmp_path / "gen" / "spk" / "b.wav", tone(0.5, SR), SR)
    write(tmp_path / "gen" / "only_gen.wav", tone(0.5, SR), SR)
    pairs = {p.id: p for p in pair_paths(tmp_path / "ref", tmp_path / "gen")}
    assert sorted(pairs) == ["a", "only_gen", "only_ref", "spk/b"]
    assert pairs["spk/b"].ref == tmp_path / "ref" / "spk" / "b.flac"
    assert pairs["spk/b"].gen == tmp_path / "gen" / "spk" / "b.wav"
    assert pairs["only_gen"].ref is None and pairs["only_ref"].gen is None
    single = pair_paths(tmp_path / "ref" / "a.wav", tmp_path / "gen" / "spk" / "b.wav")
    assert [(p.id, p.ref.name, p.gen.name) for p in single] == [("b", "a.wav", "b.wav")]
    write(tmp_path / "gen" / "a.wav", tone(0.5, SR), SR)
    with pytest.raises(ConfigError, match="two files share the id 'a'"):
        pair_paths(tmp_path / "ref", tmp_path / "gen")


def test_pairs_list_parsing() -> None:
    pairs = parse_pairs(["# comment", "", "r/a.wav\tg/a.wav", "r/b.wav\tg/sub/b.flac\r\n"])
    assert [(p.id, str(p.ref), str(p.gen)) for p in pairs] == [("g/a", "r/a.wav", "g/a.wav"),
                                                              ("g/sub/b", "r/b.wav", "g/sub/b.flac")]
    assert parse_pairs(["g/c.wav"])[0].ref is None
    with pytest.raises(ConfigError, match="list:2: expected"):
        parse_pairs(["a\tb", "a\tb\tc"], "list")
    with pytest.raises(ConfigError, match="listed twice"):
        parse_pairs(["a\tb.wav", "c\tb.flac"])
    with pytest.raises(ConfigError, match="no pairs"):
        parse_pairs(["# nothing"])


def test_length_rule_accepts_a_hop_warns_above_two_and_fails_above_ten() -> None:
    ref = np.zeros(10 * SR, dtype=np.float32)
    r, g = align(ref, ref[:-255], SR)  # under one hop shorter: the usual vocoder case
    assert r.size == g.size == ref.size - 255
    assert length_check(ref.size, ref.size - 512, SR) is None  # 2 hops: accepted silently
    warning = length_check(ref.size, ref.size - 1000, SR)  # 3.9 hops: scored, with the numbers
    assert warning == ("length differs: reference 220500 samples (10.000 s), generated 219500 (9.955 s) at 22050 Hz: "
                       "1000 samples (45 ms) apart, more than the 512 accepted (2 hops); scored on the first 219500 samples")
    assert align(ref, ref[:-2560], SR)[0].size == ref.size - 2560  # 10 hops: still scored (with a warning)
    with pytest.raises(MetricError, match=r"2561 samples \(116 ms\) apart, more than 2560"):
        align(ref, ref[:-2561], SR)
    # the case: a 10-minute output 5.9 s short passed the old 1% rule silently
    ten_min = 10 * 60 * SR
    with pytest.raises(MetricError, match=r"reference 13230000 samples \(600.000 s\), generated 13099905 "
                                          r"\(594.100 s\) at 22050 Hz: 130095 samples \(5900 ms\) apart, more than 2560"):
        length_check(ten_min, ten_min - int(5.9 * SR), SR)
    # tolerances are hops of time, so in samples they follow the reference's rate
    assert length_check(48000, 48000 - 1114, 48000) is None and length_check(48000, 48000 - 1116, 48000)


def test_summary_matches_scipy_t_interval() -> None:
    values = [3.1, 2.7, 3.4, 2.9, 3.8, None, 3.0, float("nan")]
    s = summarise("pesq", values)
    valid = np.array([3.1, 2.7, 3.4, 2.9, 3.8, 3.0])
    low, high = stats.t.interval(0.95, df=5, loc=valid.mean(), scale=stats.sem(valid))
    assert (s.count, s.failures) == (6, 2)
    assert s.mean == pytest.approx(valid.mean()) and s.std == pytest.approx(valid.std(ddof=1))
    assert (s.ci_low, s.ci_high) == (pytest.approx(low), pytest.approx(high))
    one = summarise("x", [1.5])
    assert (one.mean, one.std, one.ci_low, one.count) == (1.5, None, None, 1)
    assert summarise("x", [None]).mean is None


def test_intervals_are_clipped_to_the_valid_range_and_say_so() -> None:
    """The audit's cases: PESQ near its ceiling gave an upper limit of 5.017, STOI 1.009."""
    from vocoder_cli.metrics.registry import valid_range

    pesq = summarise("pesq", [4.64, 4.5, 3.2, 4.6], valid_range("pesq"))
    unclipped = summarise("pesq", [4.64, 4.5, 3.2, 4.6])
    assert unclipped.ci_high > 4.644 and not unclipped.ci_clipped  # the t-interval on its own
    assert pesq.ci_clipped and pesq.ci_high == 4.644 and pesq.ci_low == unclipped.ci_low
    stoi = summarise("stoi", [1.0, 0.999, 0.95], valid_range("stoi"))
    assert stoi.ci_clipped and stoi.ci_high == 1.0 and stoi.mean == pytest.approx(0.983, abs=1e-3)
    inside = summarise("stoi", [0.80, 0.82, 0.81, 0.79], valid_range("stoi"))
    assert not inside.ci_clipped and inside.ci_high < 1.0
    floor = summarise("mcd", [0.1, 0.2, 3.0], valid_range("mcd"))
    assert floor.ci_clipped and floor.ci_low == 0.0 and floor.ci_high > 3.0
    assert valid_range("sisdr") is None and not summarise("sisdr", [-40.0, 30.0, 5.0], None).ci_clipped
    # a MOS predictor's 1-5 is a scale, not a limit of its model: never clipped inside what was observed
    mos = summarise("dnsmos_ovrl", [5.2, 4.9, 1.1], valid_range("dnsmos_ovrl"))
    assert mos.ci_high == 5.2 and mos.ci_low == 1.0 and mos.ci_clipped


def test_t_quantile_fallback_is_close_to_scipy() -> None:
    from vocoder_cli.metrics import summary

    for dof in (1, 2, 3, 4, 5, 10, 30, 100):
        assert summary.t_quantile_series(dof) == pytest.approx(stats.t.ppf(0.975, dof), abs=3e-3)
        assert summary.t_quantile_975(dof) == pytest.approx(stats.t.ppf(0.975, dof), abs=1e-12)


def test_pool_gives_the_serial_numbers_and_keeps_going_after_bad_files(tmp_path: Path, rng) -> None:
    speech = demo_speech(SR)  # the packaged real prompts: always available
    for i in range(4):
        x = speech[i * 2 * SR : i * 2 * SR + int(1.5 * SR)]
        write(tmp_path / "ref" / f"c{i}.wav", x, SR)
        write(tmp_path / "gen" / f"c{i}.wav", x + 0.02 * rng.standard_normal(x.size).astype(np.float32), SR)
    (tmp_path / "gen" / "broken.wav").write_bytes(b"RIFF not audio")
    write(tmp_path / "ref" / "broken.wav", tone(1.5, SR), SR)
    write(tmp_path / "ref" / "short.wav", tone(1.5, SR), SR)
    write(tmp_path / "gen" / "short.wav", tone(1.0, SR), SR)
    pairs = pair_paths(tmp_path / "ref", tmp_path / "gen")
    metrics = parse_metrics("pesq,stoi,sisdr")
    serial = score_pairs(pairs, metrics, workers=1)
    pooled = score_pairs(pairs, metrics, workers=2)
    assert [r.id for r in serial.results] == [r.id for r in pooled.results]
    for a, b in zip(serial.results, pooled.results):  # equal up to BLAS summation order (1 vs N threads)
        assert a.errors == b.errors
        assert a.scores.keys() == b.scores.keys()
        for key, value in a.scores.items():
            assert value == b.scores[key] or value == pytest.approx(b.scores[key], rel=1e-12)
    rows = {r.id: r for r in pooled.results}
    assert "cannot decode audio" in rows["broken"].errors[0] and "broken.wav" in rows["broken"].errors[0]
    assert "length mismatch" in rows["short"].errors[0]
    assert all(not rows[f"c{i}"].failed and rows[f"c{i}"].scores["pesq"] > 1 for i in range(4))
    assert [s.count for s in pooled.summaries()] == [4, 4, 4]
    assert math.isfinite(pooled.summaries()[0].mean)


def test_missing_extra_names_the_extra_to_install(tmp_path: Path) -> None:
    from dataclasses import replace

    from vocoder_cli.metrics import METRICS, MissingExtraError, Pair

    absent = replace(METRICS["pesq"], modules=("pesq_is_not_installed_here",))
    with pytest.raises(MissingExtraError, match=r"needs the \[metrics\] extra .*pip install 'vocoder\[metrics\]'"):
        score_pairs([Pair("a", tmp_path / "a.wav", tmp_path / "a.wav")], [absent], workers=1)
    assert METRICS["pesq"].info()["version"] and METRICS["pesq"].info()["sample_rate"] == 16000


def test_every_metric_is_computed_at_its_declared_rate_so_mixed_rates_compare(tmp_path: Path, rng) -> None:
    """Before: signal metrics at each file's own rate (the same damage gave MCD 20.1 at 96 kHz and 9.7 at
    22.05 kHz). Now the same pair stored at 22.05 and 96 kHz scores the same at the declared rate."""
    from vocoder_cli.metrics.signal import mcd

    hi = 96000
    speech = resample(demo_speech(16000)[: 3 * 16000], 16000, hi)
    damaged = speech + 0.02 * rng.standard_normal(speech.size).astype(np.float32)  # broadband, up to 48 kHz
    for rate in (SR, hi):  # the same recording stored at two rates
        write(tmp_path / "ref" / f"at{rate}.wav", resample(speech, hi, rate), rate, "FLOAT")
        write(tmp_path / "gen" / f"at{rate}.wav", resample(damaged, hi, rate), rate, "FLOAT")
    # at the files' own rates (the old behaviour) the two copies disagree badly
    own = mcd(speech, damaged, hi)["mcd"], mcd(resample(speech, hi, SR), resample(damaged, hi, SR), SR)["mcd"]
    assert own[0] > 1.3 * own[1], own
    metrics = parse_metrics("mstft,mcd,sisdr,lsd,stoi")
    run = score_pairs(pair_paths(tmp_path / "ref", tmp_path / "gen"), metrics, workers=1)
    low, high = run.results
    assert not low.failed and not high.failed, (low.errors, high.errors)
    for key in ("mstft", "mcd", "mcd_dtw", "sisdr", "lsd"):  # measured: equal to the last digit
        assert high.scores[key] == pytest.approx(low.scores[key], rel=1e-9), key
    assert high.scores["stoi"] == pytest.approx(low.scores["stoi"], rel=1e-6)  # 96k -> 10k vs 22.05k -> 10k
    assert {m.name: m.info()["sample_rate"] for m in run.metrics} == {
        "mstft": 22050, "mcd": 22050, "sisdr": 22050, "lsd": 22050, "stoi": 10000}
    # --rate moves the signal metrics (and says so); standard-defined rates cannot move
    at16 = [m.at_rate(16000) for m in parse_metrics("mcd")]
    assert at16[0].info()["sample_rate"] == 16000
    rescored = score_pairs(pair_paths(tmp_path / "ref", tmp_path / "gen"), at16, workers=1)
    assert rescored.results[0].scores["mcd"] != pytest.approx(low.scores["mcd"], rel=1e-2)
    with pytest.raises(ConfigError, match="pesq is defined at 16000 Hz"):
        parse_metrics("pesq")[0].at_rate(22050)


def test_length_warning_and_refusal_reach_the_rows(tmp_path: Path) -> None:
    speech = demo_speech(SR)[: 3 * SR]
    write(tmp_path / "ref" / "ok.wav", speech, SR)
    write(tmp_path / "gen" / "ok.wav", speech[:-300], SR)
    write(tmp_path / "ref" / "warn.wav", speech, SR)
    write(tmp_path / "gen" / "warn.wav", speech[:-1500], SR)
    write(tmp_path / "ref" / "bad.wav", speech, SR)
    write(tmp_path / "gen" / "bad.wav", speech[: 2 * SR], SR)
    run = score_pairs(pair_paths(tmp_path / "ref", tmp_path / "gen"), parse_metrics("sisdr"), workers=1)
    rows = {r.id: r for r in run.results}
    assert not rows["ok"].failed and not rows["ok"].warnings
    assert not rows["warn"].failed and "1500 samples (68 ms) apart" in rows["warn"].warnings[0]
    assert rows["bad"].failed and "22050 samples (1000 ms) apart" in rows["bad"].errors[0]



def test_missing_test_dependency_fails_in_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import require_module

    monkeypatch.setenv("CI", "true")
    with pytest.raises(ModuleNotFoundError):
        require_module("pesq_is_not_installed_here", "metrics")
    assert require_module("numpy", "metrics") is np
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match=r"needs the \[metrics\] extra"):
        require_module("pesq_is_not_installed_here", "metrics")


def _crashes_on_short_clips(ref: np.ndarray, gen: np.ndarray, sr: int) -> dict[str, float]:
    """Stands in for native code that dies on one input (a segfault is a signal, not an exception)."""
    import os
    import signal

    if ref.size < sr:  # SIGKILL: dies like a segfault, without pytest's faulthandler dump
        os.kill(os.getpid(), signal.SIGKILL)
    return {"crashy": float(ref.size)}


def test_a_worker_killed_by_native_code_costs_only_that_file(tmp_path: Path) -> None:
    from dataclasses import replace

    from vocoder_cli.metrics import METRICS

    crashy = replace(METRICS["sisdr"], name="crashy", keys=("crashy",), compute=_crashes_on_short_clips)
    speech = demo_speech(SR)
    for i in range(4):
        write(tmp_path / "ref" / f"c{i}.wav", speech[: 2 * SR], SR)
        write(tmp_path / "gen" / f"c{i}.wav", speech[: 2 * SR], SR)
    write(tmp_path / "ref" / "short.wav", speech[: SR // 2], SR)
    write(tmp_path / "gen" / "short.wav", speech[: SR // 2], SR)
    run = score_pairs(pair_paths(tmp_path / "ref", tmp_path / "gen"), [crashy], workers=2)
    rows = {r.id: r for r in run.results}
    assert all(rows[f"c{i}"].scores["crashy"] == 2 * SR for i in range(4))
    assert rows["short"].scores["crashy"] is None
    assert "crashed the worker process on this file" in rows["short"].errors[0]


def test_pool_workers_never_fork_the_caller() -> None:
    """Scoring workers start from a clean server process: forking the caller deadlocked a worker on an
    import when the caller had threads of its own (a test session's TensorBoard writer did exactly that)."""
    from vocoder_cli.metrics.runner import _pool_context

    assert _pool_context([]).get_start_method() in {"forkserver", "spawn"}
