"""The public Python API, through its public names (``import vocoder_cli as vc``)."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers import tiny_generator, tiny_weights, tone, write

import vocoder_cli as vc

SR = 22050
HOP = 256


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_weights(tmp_path_factory.mktemp("w") / "tiny.safetensors")


@pytest.fixture(scope="module")
def vocoder(weights: Path) -> vc.Vocoder:
    return vc.load(weights, backend="torch")


def test_import_is_cheap_and_every_public_name_resolves() -> None:
    code = "import sys, vocoder_cli; print('torch' in sys.modules, 'typer' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]
    for name in vc.__all__:
        assert getattr(vc, name) is not None, name
        assert name in dir(vc)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        vc.nope  # noqa: B018


def test_public_functions_survive_imports_of_same_named_subpackages() -> None:
    """``vocoder_cli.tts`` and ``vocoder_cli.report`` are subpackages: the functions have other names."""
    import vocoder_cli.report.build  # noqa: F401
    import vocoder_cli.tts.synthesis  # noqa: F401

    assert callable(vc.speak) and callable(vc.build_report) and callable(vc.score)


def test_the_cli_commands_call_the_public_functions() -> None:
    """No second path: each command module holds the very function objects ``vc`` exports."""
    from vocoder_cli.cli import report, resynth, score, tts

    assert resynth.resynthesize is vc.resynthesize and resynth.load is vc.load
    assert tts.speak is vc.speak
    assert score.score_files is vc.score
    assert report.build_report is vc.build_report


def test_mel_and_vocode_give_exact_lengths(vocoder: vc.Vocoder) -> None:
    assert (vocoder.sample_rate, vocoder.hop_length, vocoder.n_mels) == (SR, HOP, 80)
    one = torch.from_numpy(tone(1.0, SR))
    mel = vocoder.mel(one)
    assert mel.shape == (1, 80, SR // HOP) and mel.dtype == torch.float32
    pair = vocoder.mel(torch.stack([one, one * 0.5]))
    assert pair.shape == (2, 80, SR // HOP)
    assert torch.allclose(pair[0], mel[0])
    wav = vocoder.vocode(mel[0])
    assert isinstance(wav, torch.Tensor) and wav.shape == (mel.shape[-1] * HOP,)
    assert vocoder.vocode(pair).shape == (2, mel.shape[-1] * HOP)


def test_a_padded_batch_with_lengths_ignores_the_padding(vocoder: vc.Vocoder) -> None:
    short = vocoder.mel(torch.from_numpy(tone(0.4, SR, freq=330.0)))[0]
    long = vocoder.mel(torch.from_numpy(tone(1.0, SR)))[0]
    lengths = [short.shape[-1], long.shape[-1]]

    def padded(fill: float) -> torch.Tensor:
        batch = torch.full((2, 80, long.shape[-1]), fill)
        batch[0, :, : short.shape[-1]] = short
        batch[1] = long
        return batch

    zeros = vocoder.vocode(padded(0.0), lengths=lengths)  # zeros: louder than any real frame of this tone
    other = vocoder.vocode(padded(-3.0), lengths=lengths)
    assert [w.shape[0] for w in zeros] == [short.shape[-1] * HOP, long.shape[-1] * HOP]
    assert all(torch.equal(a, b) for a, b in zip(zeros, other))  # what the padding held never matters
    assert float(zeros[0].abs().max()) > 0.01  # real audio, not zeros
    listed = vocoder.vocode([short, long])
    assert torch.allclose(listed[1], zeros[1], atol=1e-5)


def test_from_model_vocodes_a_generator_in_memory_as_its_saved_file(weights: Path, vocoder: vc.Vocoder) -> None:
    mel = torch.full((80, 60), -4.0)
    mel[:, 10:40] = -1.0
    saved = vocoder.vocode(mel)
    generator = tiny_generator()  # the generator tiny_weights saved
    assert torch.equal(vc.Vocoder.from_model(generator).vocode(mel), saved)
    generator.apply_weight_norm()  # as during training
    in_training = vc.Vocoder.from_model(generator, name="step 1000")
    assert in_training.name == "step 1000" and torch.allclose(in_training.vocode(mel), saved, atol=1e-4)

    class Repeat(torch.nn.Module):  # any module mel [B, n_mels, F] -> audio [B, 1, F * hop]
        def forward(self, mel: torch.Tensor) -> torch.Tensor:
            return mel.mean(1, keepdim=True).repeat_interleave(HOP, dim=-1) / 20

    other = vc.Vocoder.from_model(Repeat())
    assert other.vocode([mel, mel[:, :7]])[1].shape == (7 * HOP,)
    with pytest.raises(vc.ConfigError, match="upsamples by 256"):
        vc.Vocoder.from_model(generator, vc.MelConfig(hop_length=128, n_fft=512, win_length=512))


def test_vocode_refuses_mels_of_another_recipe(vocoder: vc.Vocoder) -> None:
    with pytest.raises(vc.MelMismatchError, match="n_mels=80"):
        vocoder.vocode(torch.full((40, 10), -5.0))
    with pytest.raises(vc.MelMismatchError, match="linear-amplitude"):
        vocoder.vocode(torch.rand(80, 10) + 0.1)
    with pytest.raises(vc.ConfigError, match="lengths"):
        vocoder.vocode(torch.full((2, 80, 10), -5.0), lengths=[10, 11])
    with pytest.raises(vc.AudioError, match="NaN"):
        vocoder.mel(torch.tensor([0.0, float("nan")] * 2000))


def test_stream_equals_offline_resynthesis(vocoder: vc.Vocoder) -> None:
    audio = tone(1.5, SR)
    offline = vocoder.vocode(vocoder.mel(torch.from_numpy(audio))[0]).numpy()
    blocks = list(vocoder.stream(np.array_split(audio, 37)))
    streamed = np.concatenate(blocks)
    assert len(blocks) > 1 and streamed.shape == offline.shape
    assert np.abs(streamed - offline).max() < 1e-4
    live = vocoder.streamer()
    pushed = np.concatenate([live.push(b) for b in np.array_split(audio, 5)] + [live.finish()])
    assert np.abs(pushed - offline).max() < 1e-4 and live.latency.ms > 0


def test_load_default_offline_says_what_to_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOCODER_DATA_DIR", str(tmp_path))
    with pytest.raises(vc.WeightsError, match="vocoder weights pull hifigan-universal-v1"):
        vc.load(offline=True)
    with pytest.raises(vc.WeightsError, match="unknown weights"):
        vc.load("no-such-weights")
    gl = vc.load("griffin-lim")
    assert gl.name == "griffin-lim" and gl.vocode(torch.full((80, 20), -5.0)).shape == (20 * HOP,)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without a GPU")
def test_load_on_cuda_without_a_gpu_is_a_config_error(weights: Path) -> None:
    with pytest.raises(vc.ConfigError, match="no CUDA GPU"):
        vc.load(weights, device="cuda")
    with pytest.raises(vc.ConfigError, match="fp16 runs on CUDA only"):
        vc.load(weights, precision="fp16")


def test_resynthesize_writes_reports_rows_and_never_replaces(tmp_path: Path, vocoder: vc.Vocoder) -> None:
    src = tmp_path / "in"
    write(src / "a.wav", tone(0.5, 16000), 16000)
    write(src / "sub" / "b.flac", tone(0.3, SR), SR)
    (src / "broken.wav").write_bytes(b"RIFF" + bytes(100))
    seen: list[tuple[float, int]] = []
    result = vc.resynthesize(src, tmp_path / "out", weights=vocoder, on_progress=lambda d, t: seen.append((d, t)))
    assert sorted(Path(p).relative_to(tmp_path / "out").as_posix() for p in result.written) == ["a.wav", "sub/b.wav"]
    assert [f.source for f in result.failures] == [str(src / "broken.wav")] and not result.ok
    assert sf.info(tmp_path / "out" / "sub" / "b.wav").frames == int(0.3 * SR) // HOP * HOP
    assert seen[-1] == (3, 3)
    again = vc.resynthesize(src / "a.wav", tmp_path / "out", weights=vocoder)
    assert len(again.refused) == 1 and not again.written
    kept = vc.resynthesize(src / "a.wav", tmp_path / "out", weights=vocoder, skip_existing=True)
    assert kept.skipped == [str(src / "a.wav")] and kept.ok
    piped = vc.resynthesize("-", "-", weights=vocoder, stdin=(src / "a.wav").read_bytes(), out_sr=16000)
    wav, rate = sf.read(io.BytesIO(piped.stdout or b""))
    assert rate == 16000 and abs(wav.size - 8000) < 16000 * HOP / SR


def test_resynthesize_by_weights_path_and_usage_errors(tmp_path: Path, weights: Path) -> None:
    src = write(tmp_path / "in" / "a.wav", tone(0.5, SR), SR)
    result = vc.resynthesize([src], tmp_path / "out.flac", weights=weights, backend="torch", float_output=False)
    assert result.ok and result.vocoder is not None and result.vocoder.name == str(weights)
    with pytest.raises(vc.VocoderError, match="exists"):
        vc.resynthesize([src], tmp_path / "out.flac", weights=weights, backend="torch")
    with pytest.raises(vc.VocoderError):
        vc.resynthesize(tmp_path / "in", tmp_path / "in" / "out", weights=weights)  # output inside the input


def test_speak_writes_each_text_and_lists_the_bad_ones(tmp_path: Path, vocoder: vc.Vocoder) -> None:
    pytest.importorskip("espeakng_loader", reason="needs the [tts] extra")
    result = vc.speak({"hello": "Hello there.", "blank": "   "}, tmp_path / "tts", weights=vocoder)
    assert [Path(p).name for p in result.written] == ["hello.wav"]
    assert [(p.id, p.reason) for p in result.failures] == [("blank", "whitespace-only text")]
    assert result.acoustic == "espeak" and not result.ok
    assert sf.info(tmp_path / "tts" / "hello.wav").frames % HOP == 0
    one = vc.speak("Good morning.", tmp_path / "one.wav", weights=vocoder, save_mels=True)
    assert one.ok and (tmp_path / "one.npy").is_file()
    mel = np.load(tmp_path / "one.npy")
    assert mel.shape[0] == 80 and sf.info(tmp_path / "one.wav").frames == mel.shape[1] * HOP
    with pytest.raises(vc.ConfigError, match="too_long"):
        vc.speak("x", tmp_path / "x.wav", too_long="cut", weights=vocoder)


def test_score_gives_rows_and_summary_as_data(tmp_path: Path) -> None:
    speech = tone(2.0, 16000)
    for name in ("a", "b"):
        write(tmp_path / "ref" / f"{name}.wav", speech, 16000)
    write(tmp_path / "gen" / "a.wav", speech, 16000)  # identical: STOI 1
    write(tmp_path / "gen" / "b.wav", speech + 0.3 * np.random.default_rng(0).standard_normal(speech.size).astype(np.float32), 16000)
    plans: list[vc.ScorePlan] = []
    run = vc.score(tmp_path / "ref", tmp_path / "gen", metrics="stoi", workers=1, on_plan=plans.append)
    assert plans[0].steps == 2 and [m.name for m in plans[0].metrics] == ["stoi"]
    rows = {row["id"]: row for row in run.rows()}
    assert rows["a"]["stoi"] == pytest.approx(1.0, abs=1e-6) and rows["b"]["stoi"] < 0.95
    (summary,) = run.summary()
    assert summary["metric"] == "stoi" and summary["count"] == 2 and summary["library"].startswith("pystoi")
    assert summary["mean"] == pytest.approx((rows["a"]["stoi"] + rows["b"]["stoi"]) / 2)
    listed = vc.score(pairs=[(tmp_path / "ref" / "a.wav", tmp_path / "gen" / "b.wav")], metrics=["stoi"], workers=1)
    assert listed.rows()[0]["stoi"] == pytest.approx(rows["b"]["stoi"])
    (tmp_path / "gen" / "b.wav").unlink()
    missing = vc.score(tmp_path / "ref", tmp_path / "gen", metrics="stoi", workers=1)
    assert [r.id for r in missing.failures] == ["b"] and "error" in missing.rows()[1]
    with pytest.raises(vc.ConfigError, match="stoi need references"):
        vc.score(gen=tmp_path / "gen", metrics="stoi")


def test_build_report_writes_the_page(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="needs the [report] extra")
    speech = tone(1.0, 16000)
    for name in ("a", "b"):
        write(tmp_path / "ref" / f"{name}.wav", speech, 16000)
        write(tmp_path / "gen" / f"{name}.wav", speech, 16000)
    plans: list[object] = []
    result = vc.build_report(tmp_path / "rep", {"set": (tmp_path / "ref", tmp_path / "gen")}, metrics="stoi",
                             examples=1, workers=1, on_plan=plans.append)
    assert result.index == tmp_path / "rep" / "index.html" and result.index.is_file()
    assert len(plans) == 1 and not result.problems
    (group,) = result.groups
    assert group.run is not None and [r.scores["stoi"] for r in group.run.results] == [pytest.approx(1.0, abs=1e-3)] * 2
    with pytest.raises(vc.ConfigError):
        vc.build_report(tmp_path / "rep2", ["bad-spec-without-equals"])


def test_audio_files_round_trip(tmp_path: Path) -> None:
    clip = sorted(vc.demo_folder().glob("*.flac"))[0]
    audio = vc.load_audio(clip, SR)
    assert audio.dtype == torch.float32 and audio.dim() == 1 and audio.numel() > SR
    path = vc.save_audio(tmp_path / "x" / "copy.wav", audio, SR, float_output=True)
    assert torch.allclose(vc.load_audio(path), audio)
    with pytest.raises(vc.AudioError, match="file not found"):
        vc.load_audio(tmp_path / "missing.wav")
