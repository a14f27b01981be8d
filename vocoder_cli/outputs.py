"""Where a command's outputs go and what it may replace: one rule for every command that writes files
(`resynth`, `tts`, `prepare`, and any later one), decided before any work.

- **Names.** Two inputs never share one output name. Names are compared as the common file systems
  compare them: letter case and Unicode normalisation ignored (macOS, Windows), trailing dots and
  spaces ignored (Windows), so a run makes the same files everywhere. Inputs whose output names
  collide (``x.flac`` and ``x.ogg`` both becoming ``x.wav``) keep their source extension instead
  (``x.flac.wav``, ``x.ogg.wav``); when even that cannot tell them apart (``A.wav`` and ``a.wav``, or
  ``d1/a.wav`` and ``d2/a.wav`` mirrored into one folder), the later input is refused with the reason.
- **Existing files.** A file the command did not write in this run is never replaced unless the user
  says so: :class:`OutputPolicy` refuses by default, replaces with ``--overwrite``, and keeps what is
  there with ``--skip-existing`` (a resume). A batch turns a refusal into a per-item row; a single named
  output that exists is a usage error before any work.
- **Overlap.** An output tree inside an input tree, an input inside the output tree, or the same folder
  for both is refused (:func:`check_separate`), links resolved: a later run would read its own outputs,
  or an output could land on an input.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

from vocoder_cli.errors import VocoderError

STDIO = "-"
REFUSE, OVERWRITE, SKIP = "refuse", "overwrite", "skip"  # what to do with an output that exists
WRITE = "write"


class OutputError(VocoderError):
    """Outputs cannot be written as asked (existing files, overlapping trees, contradictory flags): a usage
    error, raised before any work."""


# -- names ---------------------------------------------------------------------------------------------


def name_key(path: str | PurePath) -> str:
    """The identity of a relative output path on the common file systems: Unicode canonical caseless form
    (macOS and Windows ignore letter case; macOS ignores the composed/decomposed difference), trailing dots
    and spaces of each component dropped (Windows drops them)."""
    parts = []
    for part in PurePath(path).parts:
        folded = unicodedata.normalize("NFD", unicodedata.normalize("NFD", part).casefold())
        parts.append(folded.rstrip(". ") or folded)
    return "/".join(parts)


@dataclass(frozen=True)
class Claim:
    """The output name an input gets: ``name`` (relative), or None when it is refused because ``clash``
    (the index of an earlier input) already has that name; ``renamed`` when its source extension was kept
    to tell it apart from another input."""

    name: PurePath | None
    clash: int | None = None
    renamed: bool = False


def claim_names(natural: Sequence[PurePath], fallback: Sequence[PurePath | None] | None = None) -> list[Claim]:
    """One distinct output name per input (compared with :func:`name_key`), deterministic for a given list.

    ``natural[i]`` is the name input i wants (``a/x.wav``), ``fallback[i]`` the longer one it takes when
    that collides (``a/x.flac.wav``; None: no other name). Every input of a colliding group takes its
    fallback, so no input keeps the plain name at another's expense; this repeats until nothing collides.
    An input whose last-resort name (fallback, else natural) equals an earlier input's is refused: no
    renaming could separate them. (A fallback that keeps the whole source name collides only where the
    natural names do, so nothing is refused that renaming could have saved.)
    """
    fallback = fallback if fallback is not None else [None] * len(natural)
    claims: list[Claim | None] = [None] * len(natural)
    last_resort: dict[str, int] = {}
    for i, (nat, fb) in enumerate(zip(natural, fallback)):
        key = name_key(fb if fb is not None else nat)
        if key in last_resort:
            claims[i] = Claim(None, clash=last_resort[key])
        else:
            last_resort[key] = i
    names = {i: natural[i] for i in range(len(natural)) if claims[i] is None}
    renamed: set[int] = set()
    while True:
        groups: dict[str, list[int]] = {}
        for i, name in names.items():
            groups.setdefault(name_key(name), []).append(i)
        promote = [
            i
            for group in groups.values()
            if len(group) > 1
            for i in group
            if i not in renamed and fallback[i] is not None
        ]
        if not promote:
            break
        for i in promote:
            names[i] = fallback[i]  # type: ignore[assignment]  (checked above)
            renamed.add(i)
    for i, name in names.items():
        claims[i] = Claim(name, renamed=i in renamed)
    return [c for c in claims if c is not None]


def keep_extension(rel: PurePath, out_ext: str) -> PurePath:
    """The fallback name of ``rel``: its whole name plus ``out_ext`` (``x.flac`` -> ``x.flac.wav``)."""
    return rel.with_name(rel.name + out_ext)


def collision_reason(
    target: str | PurePath, other_target: str | PurePath, other_source: str, fix: str = "rename one of them"
) -> str:
    """Why an input is refused: its output would be the same file as ``other_source``'s (``fix``: what the
    user can do about it)."""
    if str(target) == str(other_target):
        return f"its output {target} is also the output of {other_source}: give them separate output folders"
    return (
        f"its output {target} and {other_target} (the output of {other_source}) are one file on macOS and "
        f"Windows (names that differ only in letter case or accents); {fix}"
    )


# -- existing files ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """What to do with one item whose outputs are ``targets``: ``write``, ``skip`` or ``refuse`` (with the
    reason, naming the files)."""

    action: str
    reason: str | None = None


@dataclass(frozen=True)
class OutputPolicy:
    """What to do with an output file that exists and was not written by this run: ``refuse`` (default),
    ``overwrite`` (``--overwrite``) or ``skip`` the item (``--skip-existing``, a resume)."""

    existing: str = REFUSE

    @classmethod
    def from_flags(cls, overwrite: bool = False, skip_existing: bool = False) -> OutputPolicy:
        if overwrite and skip_existing:
            raise OutputError("--overwrite and --skip-existing contradict each other: give one of them")
        return cls(OVERWRITE if overwrite else SKIP if skip_existing else REFUSE)

    def decide(self, targets: Sequence[str | Path]) -> Decision:
        """One item's fate. Under ``skip`` the item is skipped only when all its outputs exist; when some do
        and some do not, writing the rest would replace the ones there, so it is refused."""
        files = [str(t) for t in targets if str(t) != STDIO]
        present = [t for t in files if os.path.lexists(t)]  # a link counts: replacing it loses it too
        if not present or self.existing == OVERWRITE:
            return Decision(WRITE)
        if self.existing == SKIP and len(present) == len(files):
            return Decision(SKIP)
        there = _and(present)
        if self.existing == SKIP:
            missing = _and([t for t in files if t not in present])
            absent = "does not" if len(files) - len(present) == 1 else "do not"
            return Decision(
                REFUSE, f"{there} {_exists(present)} but {missing} {absent}: not replaced (add --overwrite to "
                "write them all again)",
            )  # fmt: skip
        it = "it" if len(present) == 1 else "them"
        return Decision(
            REFUSE, f"{there} already {_exists(present)}: not replaced (add --overwrite to replace {it}, or "
            f"--skip-existing to keep {it})",
        )  # fmt: skip

    def check_single(self, targets: Sequence[str | Path]) -> Decision:
        """A single named output (``-o out.wav``): refusing it is a usage error, raised before any work."""
        decision = self.decide(targets)
        if decision.action == REFUSE:
            present = [str(t) for t in targets if str(t) != STDIO and os.path.lexists(t)]
            if self.existing == SKIP:
                raise OutputError(decision.reason or "")
            raise OutputError(
                f"{_and(present)} already {_exists(present)}: add --overwrite to replace "
                f"{'it' if len(present) == 1 else 'them'} (or write somewhere else)"
            )
        return decision


def _and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _exists(items: Sequence[str]) -> str:
    return "exists" if len(items) == 1 else "exist"


def check_output_folder(
    folder: Path, policy: OutputPolicy, is_own: Callable[[Path], bool], command: str
) -> None:
    """For a command that writes a whole folder (``prepare``): an absent or empty folder, or one this
    command wrote before (``is_own``: a re-run updates its own output), is fine; any other non-empty folder
    is refused unless ``--overwrite``."""
    if not os.path.lexists(folder):
        return
    if not folder.is_dir():
        raise OutputError(f"{folder}: exists and is not a folder")
    if is_own(folder) or policy.existing == OVERWRITE:
        return
    try:
        empty = next(os.scandir(folder), None) is None
    except OSError as exc:
        raise OutputError(f"{folder}: cannot read the folder ({exc.strerror or exc})") from None
    if not empty:
        raise OutputError(
            f"{folder} is not empty and was not written by {command}: give a new or empty folder, or add "
            "--overwrite to write into it (files of the same names are replaced)"
        )


# -- overlapping trees -----------------------------------------------------------------------------------


def _within(folder: str | Path, path: str | Path) -> bool:
    """Whether ``path`` is ``folder`` or lies under it, links resolved; a folder reached under another
    spelling (letter case on macOS/Windows, a bind mount) counts too, compared by identity."""
    real_folder, real = os.path.realpath(folder), os.path.realpath(path)
    if real == real_folder or real.startswith(real_folder.rstrip(os.sep) + os.sep):
        return True
    try:
        target = os.stat(real_folder)
    except OSError:
        return False  # a folder that does not exist yet contains nothing
    probe = Path(real)
    for candidate in (probe, *probe.parents):
        try:
            if os.path.samestat(os.stat(candidate), target):
                return True
        except OSError:
            continue
    return False


def _shown(path: str | Path) -> str:
    """A path as the user gave it, plus where it really is when links lead elsewhere."""
    real = os.path.realpath(path)
    return str(path) if os.path.abspath(path) == real else f"{path} (really {real})"


def check_separate(inputs: Iterable[str | Path], output: str | Path, *, output_is_folder: bool = True) -> None:
    """Refuse input and output trees that overlap: the same folder (or file), the output inside an input
    folder (a later run reads the outputs as inputs), or an input inside the output folder (its output can
    land on it). ``inputs`` are files or folders (``-`` and missing paths are skipped); the message names
    both paths."""
    if str(output) == STDIO:
        return
    out = Path(output)
    for item in inputs:
        if str(item) == STDIO:
            continue
        source = Path(item)
        if not os.path.exists(source):
            continue  # a missing input is that input's own failure ("file not found"), not an overlap
        is_folder = source.is_dir()
        if is_folder and output_is_folder and _within(source, out) and _within(out, source):
            raise OutputError(
                f"input {_shown(source)} and output {_shown(out)} are the same folder: write the outputs elsewhere"
            )
        if not is_folder and not output_is_folder and os.path.lexists(out) and _within(source, out):
            raise OutputError(f"input {_shown(source)} and output {_shown(out)} are the same file")
        if is_folder and _within(source, out):
            raise OutputError(
                f"output {_shown(out)} is inside input folder {_shown(source)}: a later run would read its own "
                "outputs; write them outside it"
            )
        if output_is_folder and _within(out, source):
            raise OutputError(
                f"input {_shown(source)} is inside output folder {_shown(out)}: its output could land on it and a "
                "later run would read outputs as inputs; write them outside it"
            )
