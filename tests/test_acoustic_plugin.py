"""The worked plug-in example (tests/plugins/site): registered through the `vocoder.acoustic` entry-point group
as an installed distribution, it speaks through `tts` and makes teacher-forced mels through `mels`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from tests.helpers import tiny_weights, tone, write
from vocoder_cli.cli.app import app
from vocoder_cli.mel import MelConfig, MelSpectrogram

runner = CliRunner()
SITE = Path(__file__).parent / "plugins" / "site"
SR = 22050


@pytest.fixture()
def installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example as an installed distribution: its folder on sys.path, found by importlib.metadata."""
    monkeypatch.syspath_prepend(str(SITE))


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_weights(tmp_path_factory.mktemp("w") / "tiny.safetensors")


def test_example_is_listed_and_speaks(installed: None, tmp_path: Path, weights: Path) -> None:
    listing = runner.invoke(app, ["tts", "--list"])
    assert listing.exit_code == 0 and "example_acoustic:SPEC" in " ".join(listing.stdout.split())
    result = runner.invoke(app, ["tts", "abcdefghij", "-o", str(tmp_path / "x.wav"), "-a", "example",
                                 "-w", str(weights), "--save-mels"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert abs(sf.info(tmp_path / "x.wav").duration - 1.0) < 0.02
    assert np.load(tmp_path / "x.npy").shape == (80, int(1.0 * SR) // 256)
    result = runner.invoke(app, ["tts", "x y", "-o", str(tmp_path / "y.wav"), "-a", "example", "-w", str(weights),
                                 "--acoustic-opt", "contxt=3"])  # fmt: skip
    assert result.exit_code == 2 and "has no option contxt" in result.stderr


def test_example_makes_teacher_forced_mels(installed: None, tmp_path: Path, weights: Path) -> None:
    path = write(tmp_path / "wavs" / "a.wav", tone(0.7, SR), SR)
    wav, _ = sf.read(path, dtype="float32")  # as written (16-bit)
    (tmp_path / "texts.txt").write_text("a|A tone, read aloud.\n")
    args = ["mels", "--teacher-forced", "-a", "example", "--texts", str(tmp_path / "texts.txt"), "-w", str(weights),
            "--acoustic-opt", "context=3", str(tmp_path / "wavs")]  # fmt: skip
    result = runner.invoke(app, [*args, str(tmp_path / "gta")])
    assert result.exit_code == 0, result.output
    gta = np.load(tmp_path / "gta" / "a.npy")
    truth = MelSpectrogram(MelConfig())(torch.from_numpy(wav))[0].numpy()
    assert gta.shape == truth.shape == (80, len(wav) // 256)
    padded = np.concatenate([np.full((80, 3), MelConfig().silence_level, dtype=np.float32), truth], axis=1)
    expected = np.stack([padded[:, t : t + 3].mean(axis=1) for t in range(truth.shape[1])], axis=1)
    assert np.abs(gta - expected).max() < 1e-5  # frame t = mean of true frames t-3 .. t-1
    # a plug-in that loses a frame is an error naming the item, and nothing is trimmed or written
    result = runner.invoke(app, [*args, "--acoustic-opt", "drop_last=1", str(tmp_path / "bad")])
    assert result.exit_code == 1
    assert "a.wav: example returned a mel of shape (80, 59) for a recording mel of (80, 60)" in result.stderr
    assert not (tmp_path / "bad" / "a.npy").exists()
