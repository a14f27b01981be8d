"""The fine-tuning recipe of docs/finetune.md end to end on the CPU, with tiny steps: real recordings +
transcripts -> `prepare` -> GTA mels (`mels --teacher-forced`) -> `train --init-from hifigan-universal-v1
--gta-mels` (two steps) -> free-running mels (`tts --save-mels`) -> `resynth --from-mels` with the fine-tuned
generator. The acoustic model is a tiny random Tacotron2 with the LJSpeech model's symbols and mels (the
published checkpoint is 113 MB); every file format and rule between the steps is the real one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from tests.test_tts_tacotron2 import _random_lj_state
from vocoder_cli.cli.app import app
from vocoder_cli.tts.tacotron2_lj import _tokens, build_network, prepare

pytestmark = [pytest.mark.network, pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]
runner = CliRunner()
TEXT = "in being comparatively modern."


def _stopping_tacotron2(path: Path, text: str, at_least: int = 15, probe: int = 60) -> int:
    """A tiny random Tacotron2 whose stop token fires at a known step (at least ``at_least``) for ``text``
    (seed 0, alone in its batch), saved as torchaudio's checkpoint; returns that step. The gate does not feed
    back into decoding, so a probe run that never stops gives the raw stop logits; the gate weights are drawn
    until their maximum comes late enough, and the bias put midway below it (the gate fires there first)."""
    tokens, lengths = _tokens([prepare(text).text])
    for seed in range(1, 100):
        state = _random_lj_state(gate_bias=-100.0)
        shape = state["decoder.gate_layer.weight"].shape
        state["decoder.gate_layer.weight"] = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
        net = build_network(state)
        with torch.inference_mode(), torch.random.fork_rng():
            torch.manual_seed(0)  # what Tacotron2LJ.infer does with --seed 0
            raw = net._decode(tokens, lengths, probe, mask_padding=True).gates[0] + 100.0
        step = int(raw.argmax())
        if step >= at_least:
            second = float(raw[:step].max())
            state["decoder.gate_layer.bias"] = torch.tensor([-(second + float(raw[step])) / 2])
            torch.save(state, path)
            return step + 1
    raise AssertionError("no gate weights stop late enough")


@pytest.mark.data
def test_gta_finetune_recipe_end_to_end(tmp_path: Path, data_dir: Path, package_index: None) -> None:
    dev = data_dir / "ljspeech" / "dev"
    frames_at_stop = _stopping_tacotron2(tmp_path / "tacotron2.pth", TEXT)
    acoustic = ["--acoustic-weights", str(tmp_path / "tacotron2.pth")]

    def cli(*args: str) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, (args[0], result.output)
        return result.stderr

    # 1. recordings -> a dataset folder (manifests); the transcripts stay in metadata.csv
    cli("prepare", "folder", str(dev / "wavs"), str(tmp_path / "data"), "--segment", "1024", "-q")
    # 2. teacher-forced mels in the mel config of the weights to fine-tune, one per recording, exact frames
    cli("mels", "--teacher-forced", "--texts", str(dev / "metadata.csv"), *acoustic,
        "--weights", "hifigan-universal-v1", str(dev / "wavs"), str(tmp_path / "gta"))  # fmt: skip
    for clip in sorted((dev / "wavs").glob("*.flac")):
        assert np.load(tmp_path / "gta" / f"{clip.stem}.npy").shape == (80, sf.info(clip).frames // 256)
    # 3. fine-tune the universal generator on them (two steps)
    run = tmp_path / "run"
    sets = ["disc_width=0.125", "segment=1024", "batch_size=2", "num_workers=0", "val_interval=1000",
            "checkpoint_interval=2"]  # fmt: skip
    log = cli("train", "--run", str(run), "--data", str(tmp_path / "data"), "--init-from", "hifigan-universal-v1",
              "--gta-mels", str(tmp_path / "gta"), "--max-steps", "2", "--device", "cpu",
              *[arg for item in sets for arg in ("--set", item)])  # fmt: skip
    assert "end step 2" in " ".join(log.split()) or (run / "checkpoints" / "g_00000002.safetensors").is_file()
    assert json.loads((run / "config.json").read_text())["gta_mels"] == str((tmp_path / "gta").resolve())
    tuned = str(run / "checkpoints" / "g_00000002.safetensors")
    # 4. free-running mels from the acoustic model, vocoded by the fine-tuned generator
    cli("tts", TEXT, "-o", str(tmp_path / "tts.wav"), "-a", "tacotron2-lj", *acoustic, "-w", tuned, "--save-mels",
        "--float", "--backend", "torch")  # fmt: skip
    mel = np.load(tmp_path / "tts.npy")
    assert mel.shape == (80, frames_at_stop - 1)  # centred -> HiFi-GAN framing drops the last frame
    cli("resynth", "--from-mels", str(tmp_path / "tts.npy"), str(tmp_path / "re.wav"), "-w", tuned, "--float",
        "--backend", "torch")  # one backend for both: `auto` times torch against ONNX Runtime on each load
    spoken, _ = sf.read(tmp_path / "tts.wav", dtype="float32")
    again, sr = sf.read(tmp_path / "re.wav", dtype="float32")
    assert sr == 22050 and len(again) == mel.shape[-1] * 256 and np.abs(again).max() > 1e-3
    assert np.array_equal(spoken, again)  # tts and resynth --from-mels agree on the saved free-running mel
