"""Pairing, length alignment, summary statistics and the process pool (same numbers as serial)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from tests.helpers import tone, write
from vocoder_cli.errors import ConfigError
from vocoder_cli.metrics import pair_paths, parse_metrics, parse_pairs, score_pairs, summarise
from vocoder_cli.metrics.base import MetricError
from vocoder_cli.metrics.bench import demo_speech
from vocoder_cli.metrics.runner import align

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


def test_align_trims_within_tolerance_and_refuses_a_real_mismatch() -> None:
    ref = np.zeros(10 * SR, dtype=np.float32)
    r, g = align(ref, ref[: -255], SR)  # under one hop shorter: the usual vocoder case
    assert r.size == g.size == ref.size - 255
    r, g = align(ref[:SR], ref[: SR - 500], SR)  # 1 s clip: 2 hops (512 samples) allowed
    assert r.size == SR - 500
    with pytest.raises(MetricError, match=r"length mismatch: reference 10.000 s, generated 9.000 s"):
        align(ref, ref[: 9 * SR], SR)
    align(ref, ref[: int(9.91 * SR)], SR)  # 0.9% of a long clip is allowed ...
    with pytest.raises(MetricError):
        align(ref, ref[: int(9.8 * SR)], SR)  # ... 2% is not


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
