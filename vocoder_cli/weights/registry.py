"""The table of named weights: built-in entries, weights bundled in the package, and the user's own.

An entry says where a file comes from (URL), how to check it (sha256) and what it is (kind, licence).
Entries without a published sha256 are *unverified*: pulling them needs an explicit ``--no-verify``.
Entries whose source is not a direct download (Google Drive folders) carry ``manual`` instructions.
Users add their own entries in ``<data dir>/registry.json``::

    {"weights": [{"name": "my-v1", "url": "https://...", "sha256": "...", "kind": "generator"}]}
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from vocoder_cli.audio import atomic_write_bytes
from vocoder_cli.errors import WeightsError
from vocoder_cli.weights.cache import GENERATOR_FILE, check_name, data_dir

USER_REGISTRY_FILE = "registry.json"
BUNDLED_DIR = Path(__file__).resolve().parents[1] / "assets" / "weights"
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class WeightsEntry:
    """One named weights file and where it comes from."""

    name: str
    kind: str  # "generator" (our format), "wvmos" (WV-MOS Lightning checkpoint), ...
    description: str
    file_name: str  # the file's name inside the cache folder <data dir>/weights/<name>/
    url: str | None = None
    sha256: str | None = None  # lowercase hex; None: unverified
    size: int | None = None  # bytes, when known
    license: str = "unknown"
    origin: str = "builtin"  # builtin | bundled | user
    manual: str | None = None  # not a direct download: how to get the file by hand
    checksum_source: str = ""  # where the sha256 comes from

    @property
    def verified(self) -> bool:
        return self.sha256 is not None

    @property
    def downloadable(self) -> bool:
        return self.url is not None and self.manual is None


_HIFIGAN_DRIVE = "https://drive.google.com/drive/folders/1-eEYTB5Av9jNql0WGBlRoi-WH2J7bp5Y"
_HIFIGAN_FOLDERS = {
    # name: (Drive sub-folder, generator, description)
    "hifigan-lj-v1": ("LJ_V1", "V1", "official HiFi-GAN V1, LJSpeech"),
    "hifigan-lj-v2": ("LJ_V2", "V2", "official HiFi-GAN V2, LJSpeech"),
    "hifigan-lj-v3": ("LJ_V3", "V3", "official HiFi-GAN V3, LJSpeech"),
    "hifigan-lj-ft-t2-v1": ("LJ_FT_T2_V1", "V1", "official HiFi-GAN V1, LJSpeech, fine-tuned on Tacotron2 mels"),
    "hifigan-lj-ft-t2-v2": ("LJ_FT_T2_V2", "V2", "official HiFi-GAN V2, LJSpeech, fine-tuned on Tacotron2 mels"),
    "hifigan-lj-ft-t2-v3": ("LJ_FT_T2_V3", "V3", "official HiFi-GAN V3, LJSpeech, fine-tuned on Tacotron2 mels"),
    "hifigan-vctk-v1": ("VCTK_V1", "V1", "official HiFi-GAN V1, VCTK"),
    "hifigan-vctk-v2": ("VCTK_V2", "V2", "official HiFi-GAN V2, VCTK"),
    "hifigan-vctk-v3": ("VCTK_V3", "V3", "official HiFi-GAN V3, VCTK"),
    "hifigan-universal-v1": ("UNIVERSAL_V1", "V1", "official HiFi-GAN V1, universal (many speakers)"),
}


def _official_entry(name: str, folder: str, generator: str, description: str) -> WeightsEntry:
    return WeightsEntry(
        name=name,
        kind="generator",
        description=description,
        file_name=GENERATOR_FILE,
        url=_HIFIGAN_DRIVE,
        license="MIT (jik876/hifi-gan repository)",
        manual=(
            f"the official checkpoints are in a Google Drive folder (no stable direct-download URL): "
            f"open {_HIFIGAN_DRIVE}, download the generator checkpoint and config.json from {folder}/ "
            f"into one folder, then run: vocoder weights import PATH/TO/GENERATOR --name {name}"
        ),
    )


BUILTIN_ENTRIES: tuple[WeightsEntry, ...] = (
    WeightsEntry(
        name="wvmos",
        kind="wvmos",
        description="WV-MOS predictor (wav2vec2-base + head) for `vocoder score --metrics wvmos`",
        file_name="wav2vec2.ckpt",
        url="https://zenodo.org/record/6201162/files/wav2vec2.ckpt?download=1",
        sha256="f222559733f9d660fc0592b39abba9726adec6b97e9030c072c3ed6fa14ef12f",
        license="see https://zenodo.org/record/6201162",
        checksum_source="a third-party project that pins it (not published on the Zenodo record itself)",
    ),
    *(_official_entry(name, *spec) for name, spec in _HIFIGAN_FOLDERS.items()),
)


def bundled_entries() -> list[WeightsEntry]:
    """Generators shipped inside the package (``vocoder_cli/assets/weights/*.safetensors``)."""
    if not BUNDLED_DIR.is_dir():
        return []
    entries = []
    for path in sorted(BUNDLED_DIR.glob("*.safetensors")):
        entries.append(
            WeightsEntry(
                name=path.stem,
                kind="generator",
                description=_bundled_description(path),
                file_name=path.name,
                size=path.stat().st_size,
                license="as the vocoder package",
                origin="bundled",
            )
        )
    return entries


def _bundled_description(path: Path) -> str:
    from vocoder_cli.weights.format import read_metadata

    try:
        return read_metadata(path).get("description", "bundled generator")
    except WeightsError:
        return "bundled file (unreadable metadata)"


def bundled_path(name: str) -> Path | None:
    path = BUNDLED_DIR / f"{name}.safetensors"
    return path if path.is_file() else None


def user_registry_path() -> Path:
    return data_dir() / USER_REGISTRY_FILE


def _entry_from_json(raw: Any, source: Path, index: int) -> WeightsEntry:
    where = f"{source}: entry {index + 1}"
    if not isinstance(raw, dict):
        raise WeightsError(f"{where}: expected an object with name, url and sha256")
    known = {f.name for f in fields(WeightsEntry)} - {"origin"}
    unknown = set(raw) - known
    if unknown:
        raise WeightsError(f"{where}: unknown keys {sorted(unknown)} (known: {sorted(known)})")
    if not raw.get("name") or not raw.get("url"):
        raise WeightsError(f"{where}: 'name' and 'url' are required")
    try:
        check_name(str(raw["name"]))
    except WeightsError as exc:
        raise WeightsError(f"{where}: {exc}") from None
    sha = raw.get("sha256")
    if sha is not None:
        sha = str(sha).lower()
        if not _SHA256_RE.match(sha):
            raise WeightsError(f"{where}: sha256 must be 64 hex digits, got {raw['sha256']!r}")
    kind = str(raw.get("kind", "generator"))
    data = {
        "kind": kind,
        "description": f"user entry: {raw['url']}",
        "file_name": raw.get("file_name") or default_file_name(str(raw["url"]), kind),
        **{k: v for k, v in raw.items() if k not in ("sha256", "kind", "file_name")},
        "sha256": sha,
        "origin": "user",
    }
    try:
        check_name(str(data["file_name"]))
    except WeightsError:
        raise WeightsError(f"{where}: file_name {data['file_name']!r} must be a plain file name") from None
    return WeightsEntry(**data)


def default_file_name(url: str, kind: str) -> str:
    """Generators are stored as generator.safetensors; other kinds keep the URL's file name."""
    if kind == "generator":
        return GENERATOR_FILE
    name = re.sub(r"[^A-Za-z0-9._-]", "_", Path(unquote(urlparse(url).path)).name).lstrip("._-")
    return name[:100] or "download.bin"


def user_entries() -> list[WeightsEntry]:
    """Entries from ``<data dir>/registry.json`` (none when the file does not exist)."""
    path = user_registry_path()
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{path}: not a readable JSON registry ({exc})") from exc
    items = data.get("weights") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise WeightsError(f"{path}: expected {{\"weights\": [...]}} or a list of entries")
    return [_entry_from_json(item, path, i) for i, item in enumerate(items)]


def all_entries() -> dict[str, WeightsEntry]:
    """Every known name: bundled first, then built-in, then user entries (a user entry replaces a
    built-in one of the same name, e.g. to point at a mirror; bundled names cannot be replaced)."""
    entries: dict[str, WeightsEntry] = {}
    for entry in [*BUILTIN_ENTRIES, *user_entries()]:
        entries[entry.name] = entry
    for entry in bundled_entries():
        entries[entry.name] = entry
    return entries


def lookup(name: str) -> WeightsEntry | None:
    return all_entries().get(name)


def add_user_entry(entry: WeightsEntry) -> Path:
    """Add or replace ``entry`` in the user registry file (atomic write); returns its path."""
    path = user_registry_path()
    current = [e for e in user_entries() if e.name != entry.name]
    items = [{k: v for k, v in asdict(e).items() if k != "origin" and v not in (None, "")} for e in [*current, entry]]
    _entry_from_json(items[-1], path, len(items) - 1)  # refuse a bad name or sha256 before writing
    payload = json.dumps({"weights": items}, indent=2) + "\n"
    return atomic_write_bytes(path, payload.encode("utf-8"))
