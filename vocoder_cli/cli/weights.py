"""`vocoder weights list | path NAME | pull NAME | import PATH --name NAME | info NAME | add | rm`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from vocoder_cli.cli.common import download_bar, err_console, user_errors
from vocoder_cli.weights import registry
from vocoder_cli.weights.cache import cached_file, cached_files, cached_names, data_dir
from vocoder_cli.weights.download import sha256_of
from vocoder_cli.weights.format import read_metadata
from vocoder_cli.weights.resolve import import_weights, plan_pull, pull_weights, remove_weights, resolve_weights

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
                "kind": entry.kind if entry else "generator",
                "origin": entry.origin if entry else "imported",
                "size": path.stat().st_size if present and path else (entry.size if entry else None),
                "cached": present,
                "verified": bool(entry and entry.verified),
                "download": "manual" if entry and entry.manual else ("yes" if entry and entry.url else "-"),
                "description": entry.description if entry else "imported into the cache",
                "path": str(path) if present else None,
            }
        )
    return rows


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
    table = Table(title=f"weights (cache: {data_dir() / 'weights'})", title_justify="left")
    table.add_column("name", no_wrap=True)
    for column in ("kind", "size", "cached", "source", "description"):
        table.add_column(column, overflow="fold")
    for row in rows:
        source = str(row["origin"])
        if row["origin"] != "bundled" and row["download"] == "manual":
            source += " (manual download)"
        elif row["origin"] in ("builtin", "user") and not row["verified"]:
            source += " (no sha256)"
        table.add_row(
            str(row["name"]),
            str(row["kind"]),
            _size(row["size"]),  # type: ignore[arg-type]
            "[green]yes[/]" if row["cached"] else "no",
            source,
            str(row["description"]),
        )
    out_console.print(table)
    if not registry.bundled_entries():
        out_console.print(
            f"No weights are bundled with this install yet ({registry.BUNDLED_DIR} is empty): "
            "use --weights PATH, `vocoder weights pull NAME` or `vocoder weights import PATH --name NAME`."
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
    no_verify: bool = typer.Option(False, "--no-verify", help="Allow a file without a known sha256 (not verified)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Download NAME into the cache: resumable (run again after an interruption) and sha256-verified."""
    with user_errors():
        plan = plan_pull(name, url, verify=not no_verify)
        if plan.sha256 is None:
            err_console.print(
                f"[bold yellow]warning:[/] {name} is downloaded WITHOUT checksum verification", markup=True
            )
        with download_bar(quiet) as progress:
            task = progress.add_task(name, total=None)
            path = pull_weights(plan, progress=lambda done, total: progress.update(task, completed=done, total=total))
    if plan.sha256 is None:
        err_console.print(f"sha256 of the downloaded file: {sha256_of(path)}")
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
            out_console.print(f"{path} ({_size(path.stat().st_size)})\nsha256: {sha256_of(path)}", markup=False)
            return
        meta = read_metadata(path)
    out_console.print(f"[bold]{path}[/] ({_size(path.stat().st_size)})", markup=True)
    for key in ("generator_config", "mel_config"):
        out_console.print(f"[bold]{key}[/]: {json.dumps(json.loads(meta[key]))}", markup=True)
    for key, value in sorted(meta.items()):
        if key not in ("generator_config", "mel_config"):
            out_console.print(f"{key}: {value}", markup=False)


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
    err_console.print(f"registered {name} in {path}")


@app.command("rm")
def rm(name: str = typer.Argument(..., help="A name in the cache.")) -> None:
    """Delete NAME's files from the cache (registry entries stay)."""
    with user_errors():
        folder = remove_weights(name)
    err_console.print(f"removed {folder}")
