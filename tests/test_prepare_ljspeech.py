"""`vocoder prepare ljspeech` against a local HTTP server serving a small LJSpeech-shaped archive we build:
full download, an interrupted download that resumes with a Range request, a corrupted one that fails the
checksum, and archives that try to escape the extraction folder."""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from tests.test_prepare import speechlike
from vocoder_cli.cli.app import app
from vocoder_cli.data.ljspeech import prepare_ljspeech, safe_extract
from vocoder_cli.data.manifest import read_manifest
from vocoder_cli.errors import ConfigError, DownloadError

N_CLIPS = 6


def build_archive(path: Path) -> bytes:
    """LJSpeech-1.1/{metadata.csv, README, wavs/*.wav} with synthetic audio (one clip silent)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:bz2") as tar:
        lines = []
        for i in range(1, N_CLIPS + 1):
            clip_id = f"LJ001-{i:04d}"
            wav = speechlike(1.0, 22050, 150 + 15 * i, seed=i) if i != N_CLIPS else np.zeros(22050, np.float32)
            data = io.BytesIO()
            sf.write(data, wav, 22050, format="WAV", subtype="PCM_16")
            _add(tar, f"LJSpeech-1.1/wavs/{clip_id}.wav", data.getvalue())
            lines.append(f"{clip_id}|Text number {i}.|text number {i}.")
        lines.append("LJ999-0001|Listed but missing.|listed but missing.")
        _add(tar, "LJSpeech-1.1/metadata.csv", ("\n".join(lines) + "\n").encode())
        _add(tar, "LJSpeech-1.1/README", b"a tiny stand-in for LJSpeech 1.1\n")
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


class _Server(ThreadingHTTPServer):
    payload: bytes = b""
    cut_after: int | None = None  # send only this many bytes of the next response, then drop the connection
    ranges: list[str | None]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        data = self.server.payload
        wanted = self.headers.get("Range")
        self.server.ranges.append(wanted)
        start = int(wanted.split("=")[1].split("-")[0]) if wanted else 0
        body = data[start:]
        self.send_response(206 if wanted else 200)
        if wanted:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.server.cut_after is not None:
            body, self.server.cut_after = body[: self.server.cut_after], None
            self.close_connection = True
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[_Server]:
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.payload = build_archive(tmp_path / "LJSpeech-1.1.tar.bz2")
    srv.ranges = []
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _url(srv: _Server) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}/LJSpeech-1.1.tar.bz2"


def test_download_extract_and_manifests(tmp_path: Path, server: _Server) -> None:
    sha = hashlib.sha256(server.payload).hexdigest()
    out = tmp_path / "lj"
    result = prepare_ljspeech(out, url=_url(server), sha256=sha, val_fraction=0.2, seed=3)
    entries = read_manifest(out / "train.jsonl") + read_manifest(out / "val.jsonl")
    assert len(entries) == N_CLIPS - 1 and len(read_manifest(out / "val.jsonl")) == 1
    assert {e.text for e in entries} == {f"text number {i}." for i in range(1, N_CLIPS)}  # normalised text
    assert all(Path(e.path).is_relative_to((out / "raw").resolve()) for e in entries)
    reasons = {Path(r.path).name: r.reason for r in result.rejected}
    assert reasons["LJ001-0006.wav"].startswith("silent")
    assert reasons["LJ999-0001.wav"].startswith("missing")
    assert (out / "download" / "LJSpeech-1.1.tar.bz2").is_file()
    # A second run reuses the verified archive and the finished extraction (no new request).
    before = len(server.ranges)
    prepare_ljspeech(out, url=_url(server), sha256=sha, val_fraction=0.2, seed=3)
    assert len(server.ranges) == before


def test_interrupted_download_resumes_with_a_range_request(tmp_path: Path, server: _Server) -> None:
    sha = hashlib.sha256(server.payload).hexdigest()
    out = tmp_path / "lj"
    server.cut_after = 3000
    with pytest.raises(DownloadError, match="resume"):
        prepare_ljspeech(out, url=_url(server), sha256=sha)
    part = out / "download" / "LJSpeech-1.1.tar.bz2.part"
    assert part.stat().st_size == 3000
    assert not (out / "download" / "LJSpeech-1.1.tar.bz2").exists()
    prepare_ljspeech(out, url=_url(server), sha256=sha)
    assert server.ranges == [None, "bytes=3000-"]
    assert (out / "download" / "LJSpeech-1.1.tar.bz2").read_bytes() == server.payload
    assert len(read_manifest(out / "train.jsonl")) + len(read_manifest(out / "val.jsonl")) == N_CLIPS - 1


def test_corrupted_download_fails_the_checksum(tmp_path: Path, server: _Server) -> None:
    sha = hashlib.sha256(server.payload).hexdigest()
    corrupted = bytearray(server.payload)
    corrupted[len(corrupted) // 2] ^= 0xFF
    server.payload = bytes(corrupted)
    out = tmp_path / "lj"
    with pytest.raises(DownloadError, match="checksum mismatch"):
        prepare_ljspeech(out, url=_url(server), sha256=sha)
    assert not list((out / "download").iterdir())  # neither the archive nor a .part that a resume would trust
    assert not (out / "train.jsonl").exists()


def test_cli_takes_a_local_archive_or_an_extracted_folder(tmp_path: Path) -> None:
    archive = tmp_path / "LJSpeech-1.1.tar.bz2"
    build_archive(archive)
    runner = CliRunner()
    result = runner.invoke(app, ["prepare", "ljspeech", str(tmp_path / "a"), "--archive", str(archive)])
    assert result.exit_code == 1, result.output  # the silent clip and the missing one were rejected
    assert "kept 5 clips" in " ".join(result.output.split())
    extracted = tmp_path / "a" / "raw" / "LJSpeech-1.1"
    result = runner.invoke(app, ["prepare", "ljspeech", str(tmp_path / "b"), "--archive", str(extracted)])
    assert result.exit_code == 1
    assert len(read_manifest(tmp_path / "b" / "train.jsonl")) + len(read_manifest(tmp_path / "b" / "val.jsonl")) == 5


@pytest.mark.parametrize("kind", ["dotdot", "symlink"])
def test_archive_members_cannot_escape(tmp_path: Path, kind: str) -> None:
    archive = tmp_path / "evil.tar.bz2"
    with tarfile.open(archive, "w:bz2") as tar:
        if kind == "dotdot":
            _add(tar, "LJSpeech-1.1/../../evil.txt", b"owned")
        else:
            link = tarfile.TarInfo("LJSpeech-1.1/link")
            link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(link)
    dest = tmp_path / "deep" / "raw"
    with pytest.raises(ConfigError, match="unsafe"):
        safe_extract(archive, dest)
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "deep" / "evil.txt").exists()
    assert not (dest / "LJSpeech-1.1" / "link").exists()
