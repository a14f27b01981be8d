"""WV-MOS: the whole loading path with a Lightning-format checkpoint built here (2021-style weight-norm
keys), normalisation equal to transformers' feature extractor, batching exact, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tests.conftest import require_module
from tests.helpers import tone, write
from vocoder_cli.errors import WeightsError
from vocoder_cli.metrics.wvmos import (
    WVMOS,
    find_checkpoint,
    load_wvmos,
    normalise,
    score_batch,
)

transformers = require_module("transformers", "wvmos")

TINY = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
            conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)


def tiny_config():  # type: ignore[no-untyped-def]
    return transformers.Wav2Vec2Config(**TINY)


def lightning_checkpoint(model: WVMOS, path: Path) -> Path:
    """The published file's layout: {'state_dict': {'model.encoder.*', 'model.dense.*'}, ...}, with the
    positional conv's weight norm stored as weight_g / weight_v like transformers 4.x wrote it."""
    state = {}
    for key, value in model.state_dict().items():
        key = key.replace(".parametrizations.weight.original0", ".weight_g")
        key = key.replace(".parametrizations.weight.original1", ".weight_v")
        state[f"model.{key}"] = value.clone()
    torch.save({"epoch": 3, "global_step": 1000, "pytorch-lightning_version": "1.3.8",
                "state_dict": state, "optimizer_states": [], "lr_schedulers": []}, path)
    return path


@pytest.fixture(scope="module")
def original() -> WVMOS:
    torch.manual_seed(0)
    model = WVMOS(tiny_config()).eval()
    for p in model.dense.parameters():  # a head far from zero so scores differ between inputs
        p.data.normal_(0, 0.5)
    return model


@pytest.fixture(scope="module")
def checkpoint(original: WVMOS, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return lightning_checkpoint(original, tmp_path_factory.mktemp("wvmos") / "wav2vec2.ckpt")


def test_loaded_model_scores_like_the_original(original: WVMOS, checkpoint: Path, rng) -> None:
    loaded = load_wvmos(checkpoint, "cpu", tiny_config())
    wav = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    extractor = transformers.Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, do_normalize=True,
                                                      return_attention_mask=False)
    features = extractor(wav, sampling_rate=16000, return_tensors="pt").input_values
    assert torch.allclose(torch.from_numpy(normalise(wav))[None], features, atol=1e-5)
    with torch.no_grad():
        expected = float(original(features)[0])
    assert score_batch(loaded, [wav], "cpu") == pytest.approx([expected], abs=1e-5)


def test_batches_equal_single_clip_scores(checkpoint: Path, rng) -> None:
    model = load_wvmos(checkpoint, "cpu", tiny_config())
    wavs = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (8000, 8000, 12000, 8000)]
    batched = score_batch(model, wavs, "cpu", batch_size=3)
    single = [score_batch(model, [w], "cpu")[0] for w in wavs]
    assert batched == pytest.approx(single, abs=1e-5)
    assert len(set(np.round(single, 6))) == 4  # really different inputs, really different scores


def test_missing_checkpoint_says_how_to_get_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOCODER_DATA_DIR", str(tmp_path))
    with pytest.raises(WeightsError, match="vocoder weights pull wvmos") as info:
        find_checkpoint()
    assert str(tmp_path / "weights" / "wvmos" / "wav2vec2.ckpt") in str(info.value)
    assert "--wvmos-ckpt" in str(info.value)


def test_bad_checkpoints_are_weights_errors(tmp_path: Path, checkpoint: Path) -> None:
    torch.save({"state_dict": {"model.other.weight": torch.zeros(2)}}, tmp_path / "other.ckpt")
    with pytest.raises(WeightsError, match="model.encoder"):
        load_wvmos(tmp_path / "other.ckpt", "cpu", tiny_config())
    torch.save({"state_dict": {"x": Path("not a tensor")}}, tmp_path / "pickle.ckpt")
    with pytest.raises(WeightsError, match="cannot read the WV-MOS checkpoint safely"):
        load_wvmos(tmp_path / "pickle.ckpt", "cpu", tiny_config())
    with pytest.raises(WeightsError, match="does not fit"):  # a tiny file against the base architecture
        load_wvmos(checkpoint, "cpu", transformers.Wav2Vec2Config(**{**TINY, "num_hidden_layers": 2}))


@pytest.mark.slow
def test_score_cli_with_a_full_size_checkpoint(tmp_path: Path) -> None:
    """wav2vec2-base (95M parameters) from the default config, the way `vocoder score` loads it."""
    from vocoder_cli.cli.app import app

    torch.manual_seed(0)
    ckpt = lightning_checkpoint(WVMOS().eval(), tmp_path / "wav2vec2.ckpt")
    write(tmp_path / "gen" / "a.wav", tone(1.0, 44100), 44100)
    write(tmp_path / "gen" / "b.wav", tone(1.0, 22050, freq=330), 22050)
    write(tmp_path / "gen" / "c.wav", tone(1.0, 16000), 16000)  # a's signal, recorded at 16 kHz
    result = CliRunner().invoke(app, ["score", str(tmp_path / "gen"), "-m", "wvmos", "--wvmos-ckpt", str(ckpt),
                                      "-f", "jsonl", "--per-file", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    rows = [__import__("json").loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in rows] == ["a", "b", "c"]
    assert all(isinstance(r["wvmos"], float) and np.isfinite(r["wvmos"]) for r in rows)
    # the 44.1 kHz file is resampled to 16 kHz: it scores like the same tone made at 16 kHz
    assert rows[0]["wvmos"] == pytest.approx(rows[2]["wvmos"], abs=1e-3)
    assert abs(rows[0]["wvmos"] - rows[1]["wvmos"]) > 1e-3


def test_hostile_files_are_rows_not_crashes(checkpoint: Path, tmp_path: Path) -> None:
    from vocoder_cli.metrics import pair_paths
    from vocoder_cli.metrics.runner import FileResult, score_wvmos

    write(tmp_path / "good.wav", tone(1.0, 22050), 22050)
    write(tmp_path / "silent.wav", np.zeros(16000, np.float32), 16000)
    write(tmp_path / "dc.wav", np.full(16000, 0.3, np.float32), 16000, "FLOAT")
    write(tmp_path / "one.wav", np.array([0.5], np.float32), 16000, "FLOAT")
    write(tmp_path / "short.wav", tone(0.05, 16000), 16000)
    (tmp_path / "empty.wav").write_bytes(b"")
    pairs = pair_paths(None, tmp_path)
    results = [FileResult(p.id) for p in pairs]
    score_wvmos(pairs, results, "cpu", checkpoint, encoder_config=tiny_config())
    rows = {r.id: r for r in results}
    assert np.isfinite(rows["good"].scores["wvmos"]) and not rows["good"].failed
    for name, reason in (("silent", "silent"), ("dc", "DC only"), ("one", "DC only"), ("short", "too short for WV-MOS"),
                         ("empty", "empty file")):
        assert rows[name].scores["wvmos"] is None and reason in "; ".join(rows[name].errors), (name, rows[name].errors)
