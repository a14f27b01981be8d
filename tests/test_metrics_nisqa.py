"""NISQA: our network and front end against the official code's numbers on real clips, librosa's mel
spectrogram, masking that makes batches exact, the weights import path, and clear per-file errors."""

from __future__ import annotations

import json
import math
import os
import shutil
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tests.conftest import REPO, require_module, require_shared_weights
from tests.helpers import tone, write
from vocoder_cli.errors import WeightsError
from vocoder_cli.metrics.base import MetricError
from vocoder_cli.metrics.nisqa import (
    MODELS,
    NisqaScorer,
    mel_db,
    mel_filterbank,
    segments,
)
from vocoder_cli.metrics.registry import METRICS
from vocoder_cli.models.nisqa import Nisqa, NisqaConfig, load_nisqa
from vocoder_cli.weights.registry import BUILTIN_ENTRIES

WEIGHTS = Path(os.environ.get("VOCODER_TEST_WEIGHTS", REPO.parent / "shared" / "weights")) / "nisqa"
FILES = {"nisqa": "nisqa.tar", "nisqa-tts": "nisqa_tts.tar"}
# The nisqa_tts.tar network (nisqa.tar's is the NisqaConfig default).
TTS = NisqaConfig(fmax=8000.0, seg_hop=1, max_segments=6000, cnn="standard", cnn_pools=(), cnn_fc=20, td="lstm",
                  pool="last_step_bi", outputs=("mos",))

# Scores of the official code (gabrielmittag/NISQA fe84f0f, nisqaModel in predict_csv mode, as run_predict.py
# builds it), recorded by `scripts/check_nisqa_equivalence.py --official NISQA` in the side venv (torch 2.9.1,
# librosa 0.11); ours agreed within 1.5e-6 there. Order of nisqa: mos, noi, dis, col, loud.
OFFICIAL = {
    "ljspeech/dev/wavs/LJ001-0002.flac": {"nisqa": (3.5829, 3.2420, 4.3864, 4.2182, 4.3519), "nisqa-tts": 4.3947},
    "reader_m/test/wavs/LJ003-0002.flac": {"nisqa": (4.7346, 4.3772, 4.7567, 4.5201, 4.6617), "nisqa-tts": 4.4652},
    "allison_en/test/agent-alreadyon.flac": {"nisqa": (3.3679, 3.7077, 2.8830, 3.2312, 3.6878), "nisqa-tts": 3.7503},
}
NISQA_ORDER = ("nisqa_mos", "nisqa_noi", "nisqa_dis", "nisqa_col", "nisqa_loud")


def random_model(cfg: NisqaConfig, seed: int = 0) -> Nisqa:
    torch.manual_seed(seed)
    model = Nisqa(cfg)
    with torch.no_grad():
        for name, buffer in model.named_buffers():  # batch-norm statistics away from the identity
            if name.endswith("running_var"):
                buffer.uniform_(0.5, 2.0)
            elif name.endswith("running_mean"):
                buffer.normal_(0.0, 0.3)
    return model.eval()


@pytest.fixture(scope="module")
def weights() -> Path:
    require_shared_weights(*(f"nisqa/{f}" for f in FILES.values()))
    return WEIGHTS


# ---------------------------------------------------------------- without the real weights


@pytest.mark.parametrize("cfg", [NisqaConfig(), TTS], ids=["nisqa", "nisqa-tts"])
def test_padded_batches_score_like_single_clips(cfg: NisqaConfig) -> None:
    """Segments [B, S, 1, 48, 15] -> [B, outputs]; what sits in the padding never changes a score."""
    model = random_model(cfg)
    lengths = [9, 3, 6]
    clips = [torch.randn(n, 1, cfg.n_mels, cfg.seg_length) for n in lengths]
    batch = torch.full((3, 9, 1, cfg.n_mels, cfg.seg_length), 123.0)  # garbage after each clip's end
    for i, clip in enumerate(clips):
        batch[i, : clip.shape[0]] = clip
    with torch.no_grad():
        batched = model(batch, torch.tensor(lengths))
        single = torch.cat([model(c[None], torch.tensor([c.shape[0]])) for c in clips])
    assert batched.shape == (3, len(cfg.outputs))
    torch.testing.assert_close(batched, single, atol=1e-6, rtol=0)  # docs/metrics.md: within 1e-6
    assert len({round(v, 4) for v in single[:, 0].tolist()}) == 3  # different clips, different scores


def test_cnn_feature_sizes_follow_the_official_layouts() -> None:
    """adapt: 64 channels x 6 pooled mel rows (width 1); standard: 64 x 6 x 2, projected to 20."""
    assert Nisqa(NisqaConfig()).cnn.fan_out == 384 and Nisqa(TTS).cnn.fan_out == 20
    assert Nisqa(TTS).cnn.flat == 768


def test_front_end_equals_librosa() -> None:
    """NISQA's get_librosa_melspec at the file's own rate: shape [48, 1 + T // hop], values in dB."""
    librosa = require_module("librosa", "test")
    cfg = NisqaConfig()
    for sr, fmax in ((16000, 20000.0), (22050, 20000.0), (22050, 8000.0)):
        wav = tone(0.5, sr, freq=300.0) + 0.01 * np.random.default_rng(0).standard_normal(sr // 2).astype(np.float32)
        hop, win = int(sr * 0.01), int(sr * 0.02)
        with pytest.warns(UserWarning, match="Empty filters") if fmax > sr / 2 else nullcontext():
            ref = librosa.feature.melspectrogram(y=wav, sr=sr, n_fft=4096, hop_length=hop, win_length=win,
                                                 window="hann", center=True, pad_mode="reflect", power=1.0,
                                                 n_mels=48, fmin=0.0, fmax=fmax, htk=False, norm="slaney")
        ref_db = librosa.amplitude_to_db(ref, ref=1.0, amin=1e-4, top_db=80.0)
        ours = mel_db(wav, sr, NisqaConfig(fmax=fmax))
        assert ours.shape == (48, 1 + wav.size // hop) == ref_db.shape
        np.testing.assert_allclose(ours, ref_db, atol=2e-3)
        assert ours.max() - ours.min() <= 80.0 + 1e-4  # floored 80 dB under the clip's maximum
    basis = mel_filterbank(16000, cfg)  # 20 kHz bands above 8 kHz Nyquist: all zero, as librosa keeps them
    with pytest.warns(UserWarning, match="Empty filters"):
        np.testing.assert_allclose(basis, librosa.filters.mel(sr=16000, n_fft=4096, n_mels=48, fmax=20000.0),
                                   rtol=1e-5, atol=1e-9)
    assert (basis[-10:] == 0).all() and (basis[:30].sum(axis=1) > 0).all()


def test_segments_are_15_frame_windows_every_seg_hop_frames() -> None:
    mel = np.arange(48 * 40, dtype=np.float32).reshape(48, 40)
    segs = segments(mel, NisqaConfig())  # seg_hop 4: starts 0, 4, ..., 24 (26 possible starts)
    assert segs.shape == (math.ceil(26 / 4), 1, 48, 15)
    for i in range(segs.shape[0]):
        np.testing.assert_array_equal(segs[i, 0].numpy(), mel[:, 4 * i : 4 * i + 15])
    assert segments(mel, TTS).shape == (26, 1, 48, 15)


def test_short_long_and_odd_inputs_are_clear_metric_errors() -> None:
    scorer = NisqaScorer(random_model(NisqaConfig()), {o: f"nisqa_{o}" for o in NisqaConfig().outputs})
    with pytest.raises(MetricError, match=r"too short for NISQA \(0.100 s < 0.140 s\)"):
        scorer.prepare(tone(0.1, 16000), 16000)
    assert scorer.prepare(tone(0.14, 16000), 16000).shape == (48, 15)  # exactly one segment
    with pytest.raises(MetricError, match="too long for NISQA .*at most 1300, about 52 s"):
        scorer.prepare(np.zeros(53 * 8000, np.float32) + tone(53, 8000), 8000)
    with pytest.raises(MetricError, match="cannot analyse 50 Hz audio"):
        scorer.prepare(tone(1.0, 50), 50)


def test_checkpoints_are_read_safely_and_checked(tmp_path: Path) -> None:
    args = {"model": "NISQA_DE", "cnn_model": "adapt"}
    torch.save({"args": args, "model_state_dict": {}}, tmp_path / "de.tar")
    with pytest.raises(WeightsError, match="unsupported NISQA variant: model 'NISQA_DE'"):
        load_nisqa(tmp_path / "de.tar")
    torch.save({"args": {"x": Path("not allowed")}, "model_state_dict": {}}, tmp_path / "pickle.tar")
    with pytest.raises(WeightsError, match="cannot read the NISQA checkpoint safely"):
        load_nisqa(tmp_path / "pickle.tar")
    torch.save({"state_dict": {}}, tmp_path / "other.tar")
    with pytest.raises(WeightsError, match="not a NISQA checkpoint"):
        load_nisqa(tmp_path / "other.tar")


def test_registry_keys_match_the_model_outputs() -> None:
    for name, (weights_name, keys) in MODELS.items():
        metric = METRICS[name]
        assert set(metric.keys) == set(keys.values()) and not metric.paired and metric.neural
        assert metric.info()["sample_rate"] == "native" and metric.info()["version"]
        entry = next(e for e in BUILTIN_ENTRIES if e.name == weights_name)
        assert entry.kind == "nisqa" and entry.license.startswith("CC BY-NC-SA 4.0")
        assert "CC BY-NC-SA 4.0, non-commercial" in entry.description  # the `weights list` table shows it
        assert entry.url.endswith(f"/weights/{entry.file_name}") and len(entry.sha256 or "") == 64


# ---------------------------------------------------------------- with the real weights (../shared)


@pytest.mark.data
@pytest.mark.parametrize("metric", ["nisqa", "nisqa-tts"])
def test_scores_equal_the_official_code_on_real_clips(metric: str, weights: Path, data_dir: Path,
                                                     one_torch_thread: None) -> None:
    from vocoder_cli.audio import load_audio

    scorer = NisqaScorer.load(metric, weights / FILES[metric])
    audio = [load_audio(data_dir / clip) for clip in OFFICIAL]
    mels = [scorer.prepare(wav, sr) for wav, sr in audio]
    assert [sr for _, sr in audio] == [22050, 22050, 16000]  # each analysed at its own rate: hop 220, 220, 160
    assert [m.shape for m in mels] == [(48, 1 + wav.size // (sr // 100)) for wav, sr in audio]
    for scores, clip in zip(scorer.score(mels), OFFICIAL):
        expected = OFFICIAL[clip][metric]
        if metric == "nisqa":
            assert [scores[k] for k in NISQA_ORDER] == pytest.approx(expected, abs=0.01), clip
        else:
            assert scores["nisqa_tts"] == pytest.approx(expected, abs=0.01), clip


@pytest.mark.data
def test_score_cli_on_a_folder_after_importing_the_weights(weights: Path, data_dir: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """`vocoder weights pull nisqa --url file://COPY` (verified) then `vocoder score GEN -m nisqa`: one row per
    file, a too-short file is a failed row (exit 1); `-m all` skips nisqa-tts until it is pulled."""
    from vocoder_cli.cli.app import app

    monkeypatch.setenv("VOCODER_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    pulled = runner.invoke(app, ["weights", "pull", "nisqa", "--url", (weights / "nisqa.tar").as_uri(), "-q"])
    assert pulled.exit_code == 0, pulled.output
    assert Path(pulled.stdout.strip()) == tmp_path / "data" / "weights" / "nisqa" / "nisqa.tar"
    listed = runner.invoke(app, ["weights", "list"]).stdout.splitlines()
    assert any(line.startswith("nisqa ") and "yes" in line and "CC BY-NC-SA 4.0" in line for line in listed)
    gen = tmp_path / "gen"
    gen.mkdir()
    for clip in list(OFFICIAL)[1:]:
        shutil.copy(data_dir / clip, gen / Path(clip).name)
    write(gen / "short.wav", tone(0.1, 22050), 22050)
    result = runner.invoke(app, ["score", str(gen), "-m", "nisqa", "-f", "json", "--per-file", "--device", "cpu", "-q"])
    assert result.exit_code == 1, result.output
    out = json.loads(result.stdout)
    rows = {r["id"]: r for r in out["files"]}
    assert out["metrics"]["nisqa"]["sample_rate"] == "native" and out["metrics"]["nisqa"]["library"] == "vocoder"
    for clip in list(OFFICIAL)[1:]:
        row = rows[Path(clip).stem]
        assert [row[k] for k in NISQA_ORDER] == pytest.approx(OFFICIAL[clip]["nisqa"], abs=0.01)
    assert rows["short"]["nisqa_mos"] is None and "too short for NISQA" in rows["short"]["error"]
    every = runner.invoke(app, ["score", str(gen / "agent-alreadyon.flac"), "-m", "all", "-f", "jsonl",
                                "--per-file", "--device", "cpu", "-q"])
    assert every.exit_code == 0, every.output
    (row,) = map(json.loads, every.stdout.splitlines())
    assert row["nisqa_mos"] == pytest.approx(OFFICIAL["allison_en/test/agent-alreadyon.flac"]["nisqa"][0], abs=0.01)
    assert "nisqa_tts" not in row and "skipping nisqa-tts" in every.stderr
    assert "vocoder weights pull nisqa-tts" in every.stderr
