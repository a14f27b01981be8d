"""Official HiFi-GAN checkpoint import: exact outputs, V1/V2/V3 layouts, discriminators, no code execution.

The "official" models here are an independent compact re-implementation of jik876/hifi-gan's
modules with the legacy ``torch.nn.utils.weight_norm``/``spectral_norm`` (the layout the public
checkpoints were saved from), so the checkpoints below have exactly the official key layout.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from typer.testing import CliRunner

from tests.official_ref import (
    CONFIG_COMMON,
    OFFICIAL_CONFIGS,
    RefGenerator,
    _randomise,
    write_official,
)
from vocoder_cli.cli.app import app
from vocoder_cli.errors import WeightsError
from vocoder_cli.weights.format import load_generator
from vocoder_cli.weights.official import (
    fold_weight,
    import_official_generator,
    load_official_discriminators,
    load_plain_checkpoint,
    official_discriminators,
)

pytestmark = pytest.mark.filterwarnings("ignore:.*torch.nn.utils.(weight|spectral)_norm.*:FutureWarning")
wn = nn.utils.weight_norm
sn = nn.utils.spectral_norm

@pytest.fixture()
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VOCODER_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


MEASURED: dict[str, float] = {}


@pytest.mark.parametrize("preset", ["v1", "v2", "v3"])
def test_import_matches_official_output(preset: str, tmp_path: Path, cli_env: Path) -> None:
    ref, ckpt = write_official(tmp_path / preset, preset)
    keys = ref.state_dict().keys()
    layout = "resblocks.0.convs1.0.weight_g" if preset != "v3" else "resblocks.0.convs.0.weight_g"
    assert layout in keys and "conv_pre.weight_v" in keys and "ups.0.weight_g" in keys

    result = CliRunner().invoke(app, ["weights", "import", str(ckpt), "--name", f"off-{preset}"])
    assert result.exit_code == 0, result.output
    dest = Path(result.stdout.strip())
    assert dest == cli_env / "weights" / f"off-{preset}" / "generator.safetensors"

    loaded = load_generator(dest)
    assert loaded.config.resblock == OFFICIAL_CONFIGS[preset]["resblock"]
    assert loaded.mel.hop_length == 256 and loaded.mel.fmax == 8000 and loaded.metadata["original_file"] == "g_00000000"
    mel = torch.randn(2, 80, 20, generator=torch.Generator().manual_seed(1)) * 2 - 5
    with torch.no_grad():
        expected, actual = ref(mel), loaded.generator(mel)
    assert expected.shape == actual.shape == (2, 1, 20 * 256)
    assert 0.05 < expected.std() < 0.95  # a real signal, neither ~0 nor saturated by tanh
    err = (expected - actual).abs().max().item()
    MEASURED[preset] = err
    print(f"{preset}: max |official - imported| = {err:.3g}")
    assert err <= 1e-5


def test_naive_import_without_the_fold_would_fail() -> None:
    """The equivalence test can fail: using weight_v as the weight gives a clearly different output."""
    ref = RefGenerator(OFFICIAL_CONFIGS["v3"])
    _randomise(ref, 0)
    conv = ref.conv_pre
    conv(torch.zeros(1, 80, 7))  # legacy weight_norm recomputes .weight in a forward pre-hook
    folded = fold_weight(conv.weight_g, conv.weight_v)
    assert torch.allclose(folded, conv.weight, atol=1e-6)
    assert (conv.weight_v - conv.weight).abs().max() > 0.1


def test_fold_uses_dim0_for_conv_transpose() -> None:
    up = wn(nn.ConvTranspose1d(6, 3, 4, 2))
    _randomise(up, 3)
    assert up.weight_g.shape == (6, 1, 1)
    up(torch.zeros(1, 6, 4))  # refresh the legacy hook's .weight
    assert torch.allclose(fold_weight(up.weight_g, up.weight_v), up.weight, atol=1e-6)


def test_import_python_api_and_bare_state_dict_and_folded_keys(tmp_path: Path) -> None:
    ref, ckpt = write_official(tmp_path, "v3", seed=5)
    # a bare state dict (no 'generator' wrapper) with a DataParallel prefix and already-folded weights
    mel = torch.randn(1, 80, 12)
    ref(mel)  # refresh the legacy hooks' .weight
    folded = {}
    for name, module in ref.named_modules():
        if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d)):
            folded[f"module.{name}.weight"] = module.weight.detach().clone()
            folded[f"module.{name}.bias"] = module.bias.detach().clone()
    torch.save(folded, tmp_path / "g_plain")
    for path in (ckpt, tmp_path / "g_plain"):
        imported = import_official_generator(path)
        with torch.no_grad():
            assert (imported.generator(mel) - ref(mel)).abs().max() <= 1e-5


def test_mismatched_config_is_a_clear_error(tmp_path: Path) -> None:
    _, ckpt = write_official(tmp_path, "v3")
    (tmp_path / "v1.json").write_text(json.dumps({**CONFIG_COMMON, **OFFICIAL_CONFIGS["v1"]}))
    with pytest.raises(WeightsError, match=r"ResBlock2 \(V3.*config says resblock '1'"):
        import_official_generator(ckpt, tmp_path / "v1.json")
    v3_wide = {**CONFIG_COMMON, **OFFICIAL_CONFIGS["v3"], "upsample_initial_channel": 512}
    (tmp_path / "wide.json").write_text(json.dumps(v3_wide))
    with pytest.raises(WeightsError, match=r"other shapes \(e.g. conv_pre.weight: file \[256, 80, 7\], config \[512"):
        import_official_generator(ckpt, tmp_path / "wide.json")


def test_missing_config_and_discriminator_file_errors(tmp_path: Path, cli_env: Path) -> None:
    _, ckpt = write_official(tmp_path, "v3")
    (tmp_path / "config.json").unlink()
    result = CliRunner().invoke(app, ["weights", "import", str(ckpt), "--name", "x"])
    assert result.exit_code == 2
    assert "config.json: not found" in result.output and "--config" in result.output
    torch.save({"mpd": {}, "msd": {}, "steps": 1}, tmp_path / "do_00000001")
    (tmp_path / "config.json").write_text(json.dumps({**CONFIG_COMMON, **OFFICIAL_CONFIGS["v3"]}))
    with pytest.raises(WeightsError, match="discriminator checkpoint"):
        import_official_generator(tmp_path / "do_00000001")


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path: Path, cli_env: Path) -> None:
    marker = tmp_path / "pwned"
    evil_dir = tmp_path / "evil"
    evil_dir.mkdir()
    (evil_dir / "config.json").write_text(json.dumps({**CONFIG_COMMON, **OFFICIAL_CONFIGS["v3"]}))
    torch.save({"generator": _Evil(marker)}, evil_dir / "g_00000000")

    with pytest.raises(WeightsError, match="not a plain checkpoint .*system.*it was not loaded"):
        load_plain_checkpoint(evil_dir / "g_00000000")
    result = CliRunner().invoke(app, ["weights", "import", str(evil_dir / "g_00000000"), "--name", "evil"])
    assert result.exit_code == 2
    assert "not a plain checkpoint" in result.output and "it was not loaded" in result.output
    assert not marker.exists()  # the payload never ran
    assert not (cli_env / "weights" / "evil").exists()  # and nothing was written


# ----- discriminators (do_XXXXXXXX) -------------------------------------------------------------


class RefDiscriminatorP(nn.Module):
    def __init__(self, period: int) -> None:
        super().__init__()
        self.period = period
        chans = [1, 32, 128, 512, 1024]
        self.convs = nn.ModuleList(
            [wn(nn.Conv2d(a, b, (5, 1), (3, 1), padding=(2, 0))) for a, b in zip(chans[:-1], chans[1:])]
            + [wn(nn.Conv2d(1024, 1024, (5, 1), 1, padding=(2, 0)))]
        )
        self.conv_post = wn(nn.Conv2d(1024, 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t = x.shape
        if t % self.period:
            x = F.pad(x, (0, self.period - t % self.period), "reflect")
        x = x.view(b, c, -1, self.period)
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.1)
        return torch.flatten(self.conv_post(x), 1, -1)


class RefDiscriminatorS(nn.Module):
    def __init__(self, spectral: bool = False) -> None:
        super().__init__()
        norm = sn if spectral else wn
        specs = [(1, 128, 15, 1, 1, 7), (128, 128, 41, 2, 4, 20), (128, 256, 41, 2, 16, 20), (256, 512, 41, 4, 16, 20),
                 (512, 1024, 41, 4, 16, 20), (1024, 1024, 41, 1, 16, 20), (1024, 1024, 5, 1, 1, 2)]
        self.convs = nn.ModuleList(norm(nn.Conv1d(a, b, k, s, groups=g, padding=p)) for a, b, k, s, g, p in specs)
        self.conv_post = norm(nn.Conv1d(1024, 1, 3, 1, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.1)
        return torch.flatten(self.conv_post(x), 1, -1)


def test_official_discriminators_load_strictly_and_match(tmp_path: Path) -> None:
    torch.manual_seed(0)
    periods = (2, 5)  # the official five periods differ only in the fold; two keep the test fast
    ref_mpd = nn.ModuleDict({"discriminators": nn.ModuleList(RefDiscriminatorP(p) for p in periods)})
    ref_msd = nn.ModuleDict(
        {"discriminators": nn.ModuleList([RefDiscriminatorS(True), RefDiscriminatorS(), RefDiscriminatorS()])}
    )
    for module, seed in ((ref_mpd, 1), (ref_msd, 2)):
        _randomise(module, seed)
    y = torch.randn(1, 1, 1000) * 0.3
    ref_msd.train()
    ref_msd.discriminators[0](y)  # one power iteration: weight_u/weight_v are not their initial values
    ref_mpd.eval(), ref_msd.eval()
    optim = {"state": {}, "param_groups": [{"lr": 2e-4, "betas": (0.8, 0.99), "params": [0, 1]}]}
    torch.save(
        {"mpd": ref_mpd.state_dict(), "msd": ref_msd.state_dict(), "optim_g": optim, "optim_d": optim,
         "steps": 2500000, "epoch": 3000},
        tmp_path / "do_02500000",
    )
    assert "discriminators.0.convs.0.weight_orig" in ref_msd.state_dict()

    mpd_state, msd_state, extra = load_official_discriminators(tmp_path / "do_02500000")
    assert extra["steps"] == 2500000 and extra["epoch"] == 3000 and extra["optim_g"]["param_groups"][0]["lr"] == 2e-4
    assert "discriminators.0.convs.0.parametrizations.weight.original0" in mpd_state
    assert "discriminators.0.convs.0.parametrizations.weight.0._u" in msd_state
    mpd, msd, _ = official_discriminators(tmp_path / "do_02500000", periods)  # strict=True inside
    mpd.eval(), msd.eval()

    y_hat = torch.randn(1, 1, 1000) * 0.3
    errors = []
    with torch.no_grad():
        real, fake, _, _ = mpd(y, y_hat)
        for i, disc in enumerate(ref_mpd.discriminators):
            errors += [(real[i] - disc(y)).abs().max().item(), (fake[i] - disc(y_hat)).abs().max().item()]
            assert disc(y).abs().max() > 1e-2  # real scores, not ~0
        real, _, _, _ = msd(y, y_hat)
        pool = nn.AvgPool1d(4, 2, padding=2)
        inputs = [y, pool(y), pool(pool(y))]
        for i, disc in enumerate(ref_msd.discriminators):
            expected = disc(inputs[i])
            assert expected.abs().max() > 1e-2
            errors.append((real[i] - expected).abs().max().item())
    print(f"discriminators: max |official - ours| = {max(errors):.3g}")
    assert max(errors) == 0.0  # docs/weights.md: "match ... exactly (largest difference 0)"
    with pytest.raises(WeightsError, match="'mpd' does not fit our discriminator"):
        official_discriminators(tmp_path / "do_02500000")  # default five periods: three are missing


def test_discriminator_loader_rejects_a_generator_file(tmp_path: Path) -> None:
    _, ckpt = write_official(tmp_path, "v3")
    with pytest.raises(WeightsError, match="no 'mpd' or 'msd' entry .*generator file"):
        load_official_discriminators(ckpt)
