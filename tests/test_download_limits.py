"""URL downloads stop at the size the weights registry gives: a server that announces or sends more is cut off
there and leaves nothing behind (a real local HTTP server, file:// URLs, the real `weights pull`)."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vocoder_cli.cli.app import app
from vocoder_cli.errors import DownloadError
from vocoder_cli.weights.download import download_file

ENDLESS = 10 << 20  # what the hostile server sends: 10 MiB


class Sent:
    bytes = 0


@pytest.fixture()
def hostile_server() -> Iterator[tuple[str, type[Sent]]]:
    """/unsized sends ENDLESS bytes with no Content-Length (HTTP/1.0, ends by closing); /sized announces
    them in Content-Length. ``Sent.bytes`` counts what the server managed to write."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server API)
            self.send_response(200)
            if self.path == "/sized":
                self.send_header("Content-Length", str(ENDLESS))
            self.end_headers()
            block = b"\0" * 65536
            try:
                for _ in range(ENDLESS // len(block)):
                    self.wfile.write(block)
                    Sent.bytes += len(block)
            except OSError:
                pass  # the client hung up

    Sent.bytes = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", Sent
    finally:
        server.shutdown()
        server.server_close()


def test_a_stream_longer_than_the_known_size_is_cut_off(tmp_path: Path, hostile_server) -> None:
    url, _ = hostile_server
    dest = tmp_path / "weights.bin"
    with pytest.raises(DownloadError, match="sent more than the 100000 bytes expected; stopped there"):
        download_file(f"{url}/unsized", dest, "0" * 64, max_bytes=100_000)
    assert list(tmp_path.iterdir()) == []  # no .part to resume: nothing of it is worth keeping


def test_an_announced_size_over_the_known_size_is_refused_before_reading(tmp_path: Path, hostile_server) -> None:
    url, _ = hostile_server
    with pytest.raises(DownloadError, match=f"announces {ENDLESS} bytes, more than the 100000 expected; refused"):
        download_file(f"{url}/sized", tmp_path / "weights.bin", "0" * 64, max_bytes=100_000)
    assert list(tmp_path.iterdir()) == []


def test_without_a_known_size_the_checksum_still_decides(tmp_path: Path, hostile_server) -> None:
    """No size given (LJSpeech's archive): the whole transfer is read, then the sha256 refuses it."""
    url, sent = hostile_server
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download_file(f"{url}/unsized", tmp_path / "weights.bin", "0" * 64)
    assert sent.bytes == ENDLESS and list(tmp_path.iterdir()) == []


def test_exact_size_passes_and_a_stale_longer_part_is_dropped(tmp_path: Path) -> None:
    payload = bytes(range(256)) * 40
    source = tmp_path / "src.bin"
    source.write_bytes(payload)
    dest = tmp_path / "out" / "file.bin"
    dest.parent.mkdir()
    (dest.parent / "file.bin.part").write_bytes(b"x" * (len(payload) + 5))  # longer than the file can be
    sha = hashlib.sha256(payload).hexdigest()
    assert download_file(source.as_uri(), dest, sha, max_bytes=len(payload)).read_bytes() == payload
    with pytest.raises(DownloadError, match=f"announces {len(payload)} bytes, more than the {len(payload) - 1}"):
        download_file(source.as_uri(), tmp_path / "other.bin", sha, max_bytes=len(payload) - 1)


def test_weights_pull_uses_the_registry_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A user entry whose URL serves more than its declared size: `weights pull` stops, exit 2, nothing cached."""
    monkeypatch.setenv("VOCODER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("VOCODER_OFFLINE", raising=False)
    blob = bytes(5000)
    (tmp_path / "blob.bin").write_bytes(blob)
    from vocoder_cli.weights.registry import user_registry_path

    user_registry_path().parent.mkdir(parents=True, exist_ok=True)
    user_registry_path().write_text(json.dumps({"weights": [{
        "name": "blob", "kind": "crepe", "url": (tmp_path / "blob.bin").as_uri(),
        "sha256": hashlib.sha256(blob).hexdigest(), "size": 4000,
    }]}))
    result = CliRunner().invoke(app, ["weights", "pull", "blob", "--quiet"])
    assert result.exit_code == 2 and "announces 5000 bytes, more than the 4000 expected" in result.output
    assert not (tmp_path / "data" / "weights" / "blob" / "blob.bin").exists()
