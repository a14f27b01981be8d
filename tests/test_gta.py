"""Teacher-forced (GTA) mels: our network against torchaudio's forward (recorded fixture), batch independence,
and `vocoder mels --teacher-forced` on real LJSpeech clips: exact frame counts, named failures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from tests.helpers import tiny_weights, tone, write
from tests.test_tts_tacotron2 import _random_lj_state, replay_dropout  # noqa: F401 (a fixture)
from vocoder_cli.cli.app import app
from vocoder_cli.tts.tacotron2 import Tacotron2
from vocoder_cli.tts.tacotron2_lj import build_network, config_from_state, encode

pytestmark = pytest.mark.usefixtures("one_torch_thread")
runner = CliRunner()
SR = 22050
TF_FIXTURE = Path(__file__).parent / "data" / "tacotron2_tiny_teacher_forced.safetensors"
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_weights(tmp_path_factory.mktemp("w") / "tiny.safetensors")


@pytest.fixture(scope="module")
def acoustic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Tacotron2 with the LJSpeech model's symbols and mels, as torchaudio's checkpoint file."""
    path = tmp_path_factory.mktemp("a") / "tiny_tacotron2.pth"
    torch.save(_random_lj_state(gate_bias=0.0), path)
    return path


def test_teacher_forced_forward_reproduces_torchaudio(replay_dropout: list[torch.Tensor]) -> None:  # noqa: F811
    from safetensors import safe_open

    if not TF_FIXTURE.exists():
        pytest.fail(f"{TF_FIXTURE} is missing: scripts/check_tacotron2_equivalence.py --write-tf-fixture writes it")
    with safe_open(str(TF_FIXTURE), "pt") as f:
        t = {k: f.get_tensor(k) for k in f.keys()}
        shapes = json.loads(f.metadata()["mask_shapes"])
    state = {k.removeprefix("state."): v for k, v in t.items() if k.startswith("state.")}
    net = Tacotron2(config_from_state(state)).eval()
    net.load_state_dict(state, strict=True)
    flat, start = t["tf.masks"].float(), 0
    for shape in shapes:
        n = int(torch.tensor(shape).prod())
        replay_dropout.append(flat[start : start + n].reshape(shape))
        start += n
    with torch.inference_mode():
        before, after, gates, alignments = net.teacher_forced(t["input.tokens"], t["input.lengths"], t["input.mels"])
    assert not replay_dropout, "torchaudio drew more dropout masks than we did"
    assert after.shape == t["tf.mels_postnet"].shape == t["input.mels"].shape  # every input frame kept
    assert (before - t["tf.mels"]).abs().max() <= TOLERANCE
    assert (after - t["tf.mels_postnet"]).abs().max() <= TOLERANCE
    assert (gates - t["tf.gates"]).abs().max() <= TOLERANCE
    assert (alignments - t["tf.alignments"]).abs().max() <= TOLERANCE


def test_teacher_forced_item_does_not_depend_on_batch_mates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.nn.functional, "dropout", lambda x, p=0.5, training=True, inplace=False: x)
    net = build_network(_random_lj_state(gate_bias=0.0))
    texts = [encode("a much longer sentence than the other."), encode("short.")]
    tokens = torch.zeros(2, len(texts[0]), dtype=torch.int64)
    for row, ids in enumerate(texts):
        tokens[row, : len(ids)] = torch.tensor(ids)
    gen = torch.Generator().manual_seed(0)
    mels = [torch.randn(80, 40, generator=gen) - 5.0, torch.randn(80, 17, generator=gen) - 5.0]
    with torch.inference_mode():
        batched = net.teacher_forced_trimmed(tokens, torch.tensor([len(t) for t in texts]), mels)
        alone = net.teacher_forced_trimmed(torch.tensor([texts[1]]), torch.tensor([len(texts[1])]), mels[1:])
    assert [m.shape for m in batched] == [(80, 40), (80, 17)]
    assert (batched[1] - alone[0]).abs().max() < 1e-5


def test_gta_mels_on_real_clips_have_the_recordings_frames(
    tmp_path: Path, data_dir: Path, weights: Path, acoustic: Path
) -> None:
    dev = data_dir / "ljspeech" / "dev"
    out = tmp_path / "gta"
    args = ["mels", "--teacher-forced", "--texts", str(dev / "metadata.csv"), "--acoustic-weights", str(acoustic),
            "--weights", str(weights), str(dev / "wavs"), str(out)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "8 files written" in result.stderr and "teacher-forced tacotron2-lj" in result.stderr
    frames = {}
    for clip in sorted((dev / "wavs").glob("*.flac")):
        mel = np.load(out / f"{clip.stem}.npy")
        frames[clip.stem] = mel.shape[-1]
        assert mel.dtype == np.float32 and mel.shape == (80, sf.info(clip).frames // 256)
        assert np.isfinite(mel).all()
    assert frames == {
        "LJ001-0001": 831, "LJ001-0002": 163, "LJ001-0003": 832, "LJ001-0004": 442,
        "LJ001-0005": 698, "LJ001-0006": 489, "LJ001-0007": 722, "LJ001-0008": 153,
    }  # fmt: skip
    record = json.loads((out / "mel_config.json").read_text())
    assert record["source"].endswith("teacher-forced tacotron2-lj") and record["mel_config"]["center"] is False


def test_items_without_text_or_audio_are_named(tmp_path: Path, weights: Path, acoustic: Path) -> None:
    wavs = tmp_path / "wavs"
    write(wavs / "a.wav", tone(0.5, SR), SR)
    write(wavs / "b.wav", tone(0.5, SR), SR)  # no transcript
    write(wavs / "c.wav", tone(0.5, SR), SR)  # a transcript with nothing readable
    (wavs / "d.wav").write_bytes(b"RIFF.. broken")
    texts = tmp_path / "texts.txt"
    texts.write_text("a|Hello there.\nc|- - -\nd|Fine text.\n")
    out = tmp_path / "gta"
    args = ["mels", "--teacher-forced", "--texts", str(texts), "--acoustic-weights", str(acoustic),
            "--weights", str(weights), str(wavs), str(out)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "b.wav: no transcript with the id 'b'" in result.stderr
    assert "c.wav: nothing tacotron2-lj can read is left" in result.stderr
    assert "d.wav" in result.stderr and "1 file written" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.npy", "mel_config.json"]
    assert np.load(out / "a.npy").shape == (80, int(0.5 * SR) // 256)


def test_teacher_forcing_needs_texts_and_file_names(tmp_path: Path, weights: Path, acoustic: Path) -> None:
    src = write(tmp_path / "a.wav", tone(0.5, SR), SR)
    result = runner.invoke(app, ["mels", "--teacher-forced", "--weights", str(weights), str(src), str(tmp_path / "o")])
    assert result.exit_code == 2 and "give --texts FILE or --transcripts DIR" in result.stderr
    result = runner.invoke(app, ["mels", "--texts", str(src), "--weights", str(weights), str(src), str(tmp_path / "o")])
    assert result.exit_code == 2 and "are for --teacher-forced" in result.stderr
