"""Turn a weights name or path into a local file: resolve (offline), pull (download), import.

Resolution order for ``resolve_weights(x)``: an existing path; a weights file bundled in the
package; a registry entry's file in the cache; an imported generator in the cache. A registered
name that is not downloaded yet, and an unknown name, both raise a WeightsError that says what to do.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from vocoder_cli.errors import WeightsError
from vocoder_cli.weights import registry
from vocoder_cli.weights.cache import GENERATOR_FILE, cached_file, cached_names, check_name, weight_dir
from vocoder_cli.weights.download import ProgressCallback, copy_verified, download_file, sha256_of
from vocoder_cli.weights.format import load_generator, read_metadata, save_generator
from vocoder_cli.weights.official import import_official_generator

_PATH_SUFFIXES = (".safetensors", ".pt", ".pth", ".ckpt", ".bin")


def _looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text or text.startswith(("~", ".")) or text.lower().endswith(_PATH_SUFFIXES)


def resolve_weights(name_or_path: str | Path) -> Path:
    """The local file for a path or a name; never touches the network."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.is_file():
        return path
    if path.is_dir() and (path / GENERATOR_FILE).is_file():
        return path / GENERATOR_FILE
    if isinstance(name_or_path, Path) or _looks_like_path(text):
        raise WeightsError(f"{text}: no such weights file")
    try:
        check_name(text)
    except WeightsError:
        raise WeightsError(f"{text}: no such weights file, and not a valid weights name") from None
    bundled = registry.bundled_path(text)
    if bundled is not None:
        return bundled
    entry = registry.lookup(text)
    if entry is not None:
        cached = cached_file(text, entry.file_name)
        if cached.is_file():
            return cached
        if entry.manual:
            raise WeightsError(f"weights {text!r} are not in the cache yet: {entry.manual}")
        raise WeightsError(f"weights {text!r} are registered but not downloaded yet; run: vocoder weights pull {text}")
    imported = cached_file(text, GENERATOR_FILE)
    if imported.is_file():
        return imported
    raise WeightsError(_unknown_name_message(text))


def _unknown_name_message(name: str) -> str:
    known = sorted(set(registry.all_entries()) | set(cached_names()))
    message = f"unknown weights {name!r}; known names: {', '.join(known) or '(none)'}"
    if not registry.bundled_entries():
        message += (
            ". This install bundles no weights yet: pass a .safetensors path, `vocoder weights pull NAME`, "
            "or `vocoder weights import PATH --name NAME`"
        )
    return message


@dataclass(frozen=True)
class PullPlan:
    """What a pull will do, so the CLI can warn before the download starts."""

    entry: registry.WeightsEntry
    url: str
    dest: Path
    sha256: str | None  # None: the file will not be verified


def plan_pull(name: str, url: str | None = None, verify: bool = True) -> PullPlan:
    """Check that ``name`` can be downloaded (and verified unless ``verify`` is False)."""
    entry = registry.lookup(check_name(name))
    if entry is None:
        raise WeightsError(_unknown_name_message(name))
    if entry.origin == "bundled":
        raise WeightsError(f"weights {name!r} ship inside the package; there is nothing to pull")
    if url is None:
        if entry.manual:
            raise WeightsError(f"weights {name!r} cannot be downloaded by a script: {entry.manual}")
        if entry.url is None:
            raise WeightsError(f"weights {name!r} have no URL; pass --url")
        url = entry.url
    if verify and entry.sha256 is None:
        raise WeightsError(
            f"weights {name!r} have no known sha256, so the download cannot be verified; "
            "pass --no-verify to fetch them anyway (and check the file yourself)"
        )
    return PullPlan(entry, url, cached_file(name, entry.file_name), entry.sha256 if verify else None)


def pull_weights(plan: PullPlan, progress: ProgressCallback | None = None) -> Path:
    """Download (resuming a ``.part``) and verify; a verified cached file is not fetched again."""
    return download_file(plan.url, plan.dest, plan.sha256, progress=progress)


def import_weights(
    source: str | Path, name: str, config: str | Path | None = None, *, overwrite: bool = False
) -> Path:
    """Put a generator into the cache as ``<name>/generator.safetensors`` in our format.

    ``source`` is our own ``.safetensors`` (checked by loading it, copied byte for byte) or an official
    HiFi-GAN ``g_XXXXXXXX`` checkpoint (converted; ``config.json`` beside it unless ``config`` is given).
    """
    source = Path(source).expanduser()
    if not source.is_file():
        raise WeightsError(f"{source}: no such file")
    dest = cached_file(check_name(name), GENERATOR_FILE)
    if registry.bundled_path(name) is not None:
        raise WeightsError(f"{name!r} is the name of a bundled weights file; choose another name")
    entry = registry.lookup(name)
    if entry is not None and entry.file_name != GENERATOR_FILE:
        raise WeightsError(f"{name!r} is registered for a {entry.kind} file ({entry.file_name}); choose another name")
    if dest.exists() and not overwrite:
        raise WeightsError(f"weights {name!r} already exist at {dest}; pass --force to replace them")
    if source.suffix == ".safetensors" or _is_our_format(source):
        read_metadata(source)  # a foreign .safetensors file gets a clear "not a vocoder generator" error
        if config is not None:
            raise WeightsError(f"{source}: our .safetensors files carry their config; drop --config")
        load_generator(source)  # refuse a file whose tensors do not fit its own config
        dest.unlink(missing_ok=True)  # --force: copy_verified would keep an existing file
        return copy_verified(source, dest, sha256_of(source))
    imported = import_official_generator(source, config)
    metadata = {**imported.metadata, "name": name, "description": f"imported from {source.name}"}
    return save_generator(dest, imported.generator, imported.mel, metadata=metadata)


def _is_our_format(path: Path) -> bool:
    try:
        read_metadata(path)
    except WeightsError:
        return False
    return True


def remove_weights(name: str) -> Path:
    """Delete a name's cache folder (downloads and imports); returns the removed folder."""
    folder = weight_dir(name)
    if not folder.is_dir():
        raise WeightsError(f"weights {name!r} are not in the cache ({folder})")
    shutil.rmtree(folder)
    return folder
