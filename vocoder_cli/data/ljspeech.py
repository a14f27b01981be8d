"""`prepare ljspeech`: download (resumable, verified) or reuse LJSpeech 1.1, extract safely, write manifests."""

from __future__ import annotations

import tarfile
from collections.abc import Callable
from pathlib import Path

from vocoder_cli.data.folder import (
    PrepareResult,
    Progress,
    Rejected,
    claim_dataset_folder,
    prepare_files,
    read_transcripts,
    write_report,
)
from vocoder_cli.data.manifest import REPORT_FILE
from vocoder_cli.data.validate import ValidationRules
from vocoder_cli.errors import ConfigError
from vocoder_cli.weights.download import download_file

LJSPEECH_URL = "https://data.keithito.com/data/speech/LJSpeech-1.1.tar.bz2"
# The published archive (2,748,572,632 bytes); the same value torchaudio's LJSPEECH dataset checks.
LJSPEECH_SHA256 = "be1a30453f28eb8dd26af4101ae40cbf2c50413b1bb21936cbcdc6fae3de8aa5"
ARCHIVE_NAME = "LJSpeech-1.1.tar.bz2"
EXTRACTED_MARKER = ".extracted"

DownloadProgress = Callable[[int, int | None], None]


def find_extracted(root: Path) -> Path | None:
    """The folder holding ``metadata.csv`` and ``wavs/`` at ``root`` or one level below, if any."""
    for candidate in [root, *sorted(p for p in root.iterdir() if p.is_dir())] if root.is_dir() else []:
        if (candidate / "metadata.csv").is_file() and (candidate / "wavs").is_dir():
            return candidate
    return None


def safe_extract(archive: Path, dest: Path) -> Path:
    """Stream-extract ``archive`` into ``dest`` with tarfile's ``data`` filter (no path escapes, no
    links outside, no device files). Returns the extracted dataset folder.

    Streaming mode reads the bz2 file once front to back (a seekable open seeks back per member and
    is many times slower on a 2.6 GB archive). A marker file makes a finished extraction skip next time.
    """
    if not hasattr(tarfile, "data_filter"):
        raise ConfigError("safe extraction needs tarfile filters (Python 3.10.12+, 3.11.4+ or 3.12+)")
    marker = dest / EXTRACTED_MARKER
    if marker.is_file() and (found := find_extracted(dest)) is not None:
        return found
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, mode="r|*") as tar:
            tar.extractall(dest, filter="data")
    except tarfile.FilterError as exc:
        raise ConfigError(f"{archive}: refused an unsafe archive member ({exc})") from None
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ConfigError(f"{archive}: cannot extract ({exc})") from None
    found = find_extracted(dest)
    if found is None:
        raise ConfigError(f"{archive}: no metadata.csv with a wavs/ folder inside (is this LJSpeech?)")
    marker.write_text(str(archive) + "\n", encoding="utf-8")
    return found


def obtain_archive(
    out: Path, url: str = LJSPEECH_URL, sha256: str | None = LJSPEECH_SHA256, progress: DownloadProgress | None = None
) -> Path:
    """Download the archive to ``OUT/download/`` (resuming a ``.part`` file, verifying the checksum)."""
    return download_file(url, out / "download" / ARCHIVE_NAME, sha256, progress=progress)


def prepare_ljspeech(
    out: Path,
    *,
    archive: Path | None = None,
    url: str = LJSPEECH_URL,
    sha256: str | None = LJSPEECH_SHA256,
    rules: ValidationRules | None = None,
    val_fraction: float = 0.05,
    seed: int = 1234,
    download_progress: DownloadProgress | None = None,
    progress: Progress | None = None,
    overwrite: bool = False,
) -> PrepareResult:
    """From a local archive, an extracted folder, or a download; then validate and split like any folder.

    ``out`` is claimed first (:func:`~vocoder_cli.data.folder.claim_dataset_folder`): an extracted folder
    given as ``archive`` must not overlap it, and a non-empty folder `prepare` did not write is refused
    unless ``overwrite``; an interrupted download or extraction is this command's own and resumes."""
    out = Path(out)
    rules = rules or ValidationRules(sample_rate=22050)
    if archive is not None and Path(archive).is_dir():
        root = find_extracted(Path(archive))
        if root is None:
            raise ConfigError(f"{archive}: no metadata.csv with a wavs/ folder (not an extracted LJSpeech)")
        claim_dataset_folder(out, [Path(archive)], overwrite)
    else:
        if archive is not None and not Path(archive).is_file():
            raise ConfigError(f"{archive}: archive not found")
        claim_dataset_folder(out, [], overwrite)
        if archive is None:
            archive = obtain_archive(out, url, sha256, download_progress)
        root = safe_extract(Path(archive), out / "raw")
    texts = read_transcripts(root / "metadata.csv")
    files, missing = [], []
    for clip_id in texts:
        wav = root / "wavs" / f"{clip_id}.wav"
        (files if wav.is_file() else missing).append(wav)
    if not files:
        raise ConfigError(f"{root}: metadata.csv lists no clip that exists under wavs/")
    result = prepare_files(
        files, root, out, rules=rules, texts=texts, val_fraction=val_fraction, seed=seed, progress=progress,
        info={"dataset": "LJSpeech-1.1"},
    )
    if missing:
        result.rejected += [Rejected(str(m), "missing (listed in metadata.csv, no audio file)") for m in missing]
        write_report(out / REPORT_FILE, result.rejected)
    return result
