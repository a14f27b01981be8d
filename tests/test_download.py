"""Resumable, verified downloads against a real local HTTP server (Range requests) and file:// URLs."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from vocoder_cli.errors import DownloadError
from vocoder_cli.weights.download import copy_verified, download_file, sha256_of

PAYLOAD = bytes(range(256)) * 4096 + b"tail"  # 1 MiB + 4 bytes: more than one read chunk
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


@dataclass
class FileServer:
    """A tiny HTTP server for one payload: honours Range, can cut the next response short."""

    payload: bytes
    url: str = ""
    requests: list[str | None] = field(default_factory=list)  # the Range header of each GET
    bytes_sent: int = 0
    cut_next_after: int | None = None  # send only this many bytes of the next body, then hang up
    honour_range: bool = True


def _handler(state: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server API)
            header = self.headers.get("Range")
            state.requests.append(header)
            data, start, total = state.payload, 0, len(state.payload)
            if header and state.honour_range:
                start = int(header.removeprefix("bytes=").split("-")[0])
                if start >= total:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{total}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{total - 1}/{total}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if state.cut_next_after is not None:
                body, state.cut_next_after = body[: state.cut_next_after], None
                self.close_connection = True
            state.bytes_sent += len(body)  # counted before sending, so the client never sees a stale count
            self.wfile.write(body)

    return Handler


@pytest.fixture()
def server() -> Iterator[FileServer]:
    state = FileServer(PAYLOAD)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/weights.bin"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


def test_download_verifies_and_reports_progress(server: FileServer, tmp_path: Path) -> None:
    seen: list[tuple[int, int | None]] = []
    dest = download_file(server.url, tmp_path / "w.bin", PAYLOAD_SHA, progress=lambda d, t: seen.append((d, t)))
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "w.bin.part").exists()
    assert seen[0] == (0, len(PAYLOAD)) and seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert server.requests == [None]


def test_interrupted_download_resumes_with_a_range_request(server: FileServer, tmp_path: Path) -> None:
    dest = tmp_path / "w.bin"
    server.cut_next_after = 300_000
    with pytest.raises(DownloadError, match="run again to resume"):
        download_file(server.url, dest, PAYLOAD_SHA)
    part = tmp_path / "w.bin.part"
    assert not dest.exists()
    assert part.stat().st_size == 300_000 and part.read_bytes() == PAYLOAD[:300_000]

    download_file(server.url, dest, PAYLOAD_SHA)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests == [None, "bytes=300000-"]
    assert server.bytes_sent == len(PAYLOAD)  # nothing was sent twice


def test_a_complete_part_file_is_finished_after_http_416(server: FileServer, tmp_path: Path) -> None:
    (tmp_path / "w.bin.part").write_bytes(PAYLOAD)
    dest = download_file(server.url, tmp_path / "w.bin", PAYLOAD_SHA)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests == [f"bytes={len(PAYLOAD)}-"] and server.bytes_sent == 0


def test_server_without_range_support_restarts_from_zero(server: FileServer, tmp_path: Path) -> None:
    server.honour_range = False
    (tmp_path / "w.bin.part").write_bytes(b"stale bytes from another file")
    dest = download_file(server.url, tmp_path / "w.bin", PAYLOAD_SHA)
    assert dest.read_bytes() == PAYLOAD


def test_checksum_mismatch_raises_and_keeps_nothing(server: FileServer, tmp_path: Path) -> None:
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(DownloadError, match=f"expected sha256 {wrong}, got {PAYLOAD_SHA}"):
        download_file(server.url, tmp_path / "w.bin", wrong)
    assert list(tmp_path.iterdir()) == []  # no final file, and the corrupt .part is gone


def test_corrupt_partial_bytes_are_caught_by_the_checksum(server: FileServer, tmp_path: Path) -> None:
    (tmp_path / "w.bin.part").write_bytes(b"X" * 1000)  # a resume appends the real tail to junk
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download_file(server.url, tmp_path / "w.bin", PAYLOAD_SHA)
    assert not (tmp_path / "w.bin.part").exists()
    assert download_file(server.url, tmp_path / "w.bin", PAYLOAD_SHA).read_bytes() == PAYLOAD  # clean retry works


def test_a_verified_cached_file_is_not_fetched_again(server: FileServer, tmp_path: Path) -> None:
    dest = download_file(server.url, tmp_path / "w.bin", PAYLOAD_SHA.upper())
    mtime = dest.stat().st_mtime_ns
    assert download_file(server.url, dest, PAYLOAD_SHA) == dest
    assert len(server.requests) == 1 and dest.stat().st_mtime_ns == mtime


def test_a_cached_file_with_the_wrong_checksum_is_replaced(server: FileServer, tmp_path: Path) -> None:
    dest = tmp_path / "w.bin"
    dest.write_bytes(b"old corrupt copy")
    assert download_file(server.url, dest, PAYLOAD_SHA).read_bytes() == PAYLOAD
    assert len(server.requests) == 1


def test_http_errors_and_unreachable_hosts_are_download_errors(server: FileServer, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="cannot download"):
        download_file("http://127.0.0.1:1/nothing", tmp_path / "a.bin")
    with pytest.raises(DownloadError, match="cannot download"):
        download_file((tmp_path / "missing.bin").as_uri(), tmp_path / "b.bin")


def test_file_urls_and_copy_verified(tmp_path: Path) -> None:
    source = tmp_path / "src.bin"
    source.write_bytes(PAYLOAD)
    assert download_file(source.as_uri(), tmp_path / "a" / "x.bin", PAYLOAD_SHA).read_bytes() == PAYLOAD
    copied = copy_verified(source, tmp_path / "b" / "x.bin", PAYLOAD_SHA)
    assert sha256_of(copied) == PAYLOAD_SHA
    with pytest.raises(DownloadError, match="checksum mismatch"):
        copy_verified(source, tmp_path / "c" / "x.bin", "0" * 64)
    assert not (tmp_path / "c" / "x.bin").exists()
