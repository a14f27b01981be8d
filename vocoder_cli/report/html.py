"""The report page: one self-contained HTML file (inline CSS, no scripts, no network) whose figures and
audio are relative links beside it, so it opens from disk and prints. Every user string is escaped."""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote

from vocoder_cli.metrics.report import encodable
from vocoder_cli.report.choose import higher_is_better
from vocoder_cli.report.results import Example, GroupReport, ReportResult

MAX_TABLE_KEYS = 6  # metric columns per comparison table: 4 fixed + 6 x ~110 px fits 1180 px and A4

CSS = """
:root { --ink: #1b1b1b; --muted: #5a5a5a; --line: #d5d5d5; --bad: #a4161a; --warn: #8a5a00; --bg: #f6f6f4; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
       margin: 0 auto; padding: 1.2rem 1.5rem 3rem; max-width: 1180px; }
h1 { font-size: 1.6rem; margin: 0 0 .3rem; } h2 { font-size: 1.3rem; margin: 2.2rem 0 .6rem;
  border-bottom: 2px solid var(--ink); padding-bottom: .2rem; }
h3 { font-size: 1.05rem; margin: 1.4rem 0 .5rem; } h4 { font-size: .95rem; margin: 1rem 0 .3rem; }
p, li { max-width: 62rem; } .muted { color: var(--muted); font-size: .88rem; }
code { font: .85em ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: var(--bg);
       padding: 0 .25em; border-radius: 3px; overflow-wrap: anywhere; }
.scroll { overflow-x: auto; margin: .4rem 0 .8rem; }
table { border-collapse: collapse; font-size: .88rem; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid var(--line); padding: .22rem .5rem; text-align: right; vertical-align: top;
         white-space: nowrap; }
td.wrap, td.err { white-space: normal; }
th { background: var(--bg); font-weight: 600; }
td.l, th.l { text-align: left; } td.err { text-align: left; color: var(--bad); max-width: 34rem; }
td.best { font-weight: 700; background: #eaf4e4; }
tr.set-start td { border-top: 2px solid #9a9a9a; }
img { max-width: 100%; height: auto; display: block; border: 1px solid var(--line); background: #fff; }
figure { margin: .6rem 0 1rem; } figcaption { font-size: .85rem; color: var(--muted); margin-top: .2rem; }
nav ul { columns: 2; padding-left: 1.2rem; margin: .3rem 0; }
.problems { border: 2px solid var(--bad); background: #fff5f5; padding: .5rem 1rem; border-radius: 4px; }
.problems h2 { color: var(--bad); border-color: var(--bad); margin-top: .6rem; }
.ok { border: 1px solid #8bb77a; background: #f3faef; padding: .4rem .8rem; border-radius: 4px; }
.notes { color: var(--warn); }
.example { border-top: 1px solid var(--line); padding-top: .4rem; margin-top: 1rem; }
.players { display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; align-items: center; margin: .4rem 0; }
.players label { font-size: .85rem; color: var(--muted); display: block; }
audio { width: 320px; max-width: 100%; height: 36px; }
.group { page-break-before: auto; }
@media print {
  body { max-width: none; padding: 0; font-size: 10.5pt; }
  .players, nav { display: none; }
  .group { page-break-before: always; }
  figure, table, .example { page-break-inside: avoid; }
  a { color: inherit; text-decoration: none; }
  .scroll { overflow: visible; }
}
"""


def e(value: object) -> str:
    """Escape any text for HTML element content and attribute values (undecodable file-name bytes as
    ``\\xff``: the page is always valid UTF-8)."""
    return html.escape(encodable(str(value)), quote=True)


def url(path: str) -> str:
    """A relative link (percent-encoded, then escaped for the attribute)."""
    return e(quote(path))


def num(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"


def _db(value: float | None) -> str:
    if value is None:
        return "–"
    return "−∞" if value == float("-inf") else f"{value:.1f}"


def arrow(key: str) -> str:
    return "↑" if higher_is_better(key) else "↓"


def _table(head: Sequence[str], rows: Iterable[str], left: Sequence[int] = (0,)) -> str:
    cells = "".join(f'<th{" class=l" if i in left else ""}>{h}</th>' for i, h in enumerate(head))
    return f'<div class="scroll"><table><thead><tr>{cells}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def _same(g: GroupReport) -> str:
    """Rows are comparable when they score against the same references (or are the same set)."""
    return f"ref:{g.group.ref.resolve()}" if g.group.ref is not None else f"set:{g.group.set_name}"


def _comparisons(result: ReportResult) -> str:
    if not result.comparisons:
        return "<p>No set could be scored: see the problems above.</p>"
    out = []
    for c in result.comparisons:  # a table fits a laptop screen and a printed page: wide ones are split
        out += [_comparison(c.groups, keys) for keys in _chunks(c.keys, MAX_TABLE_KEYS)]
        if c.figure:
            out.append(f'<figure><img src="{url(c.figure)}" alt="each metric across sets">'
                       "<figcaption>The distribution of each metric over the files of every set (boxes: "
                       "quartiles and median; whiskers: 1.5 IQR).</figcaption></figure>")
    out.append("<p class=muted>Mean ± half-width of the 95% t-interval over the files where the metric "
               "succeeded (* the interval clipped to the metric's range, e.g. STOI at most 1: shown as "
               "[low, high]); bold: the best of the rows that share one reference folder. ↑ higher is better, "
               "↓ lower is better. Sets scored with different metrics (reference-free ones) have their own "
               f"table; more than {MAX_TABLE_KEYS} metric columns are split over several tables.</p>")
    return "".join(out)


def _comparison(groups: Sequence[GroupReport], keys: Sequence[str]) -> str:
    best: dict[tuple[str, str], float] = {}  # (references, key) -> best mean among the rows sharing them
    for g in groups:
        for key, row in g.summary().items():
            mean = row["mean"]
            if mean is None:
                continue
            slot = (_same(g), key)
            if slot not in best or (mean > best[slot] if higher_is_better(key) else mean < best[slot]):
                best[slot] = mean
    several = {s for s in {_same(g) for g in groups} if sum(_same(g) == s for g in groups) > 1}
    rows, previous = [], None
    for g in groups:
        summary = g.summary()
        cells = [f'<td class=l><a href="#{e(g.group.slug)}">{e(g.group.set_name)}</a></td>',
                 f"<td class=l>{e(g.group.weights or '(given)')}</td>",
                 f"<td>{len(g.run.results) if g.run else 0}</td>",
                 f"<td>{len(g.run.failures) if g.run else 0}</td>"]
        for key in keys:
            row = summary.get(key)
            if row is None or row["mean"] is None:
                cells.append("<td>–</td>")
                continue
            if row["ci_high"] is None:
                text = num(row["mean"])
            elif row.get("ci_clipped"):  # no longer symmetric: the interval itself
                text = f"{num(row['mean'])} [{num(row['ci_low'])}, {num(row['ci_high'])}]*"
            else:
                text = f"{num(row['mean'])} ± {num((row['ci_high'] - row['ci_low']) / 2)}"
            mark = _same(g) in several and best.get((_same(g), key)) == row["mean"]
            cells.append(f'<td{" class=best" if mark else ""}>{text}</td>')
        css = ' class="set-start"' if previous is not None and previous != _same(g) else ""
        previous = _same(g)
        rows.append(f"<tr{css}>{''.join(cells)}</tr>")
    head = ["set", "weights", "files", "failed", *[f"{e(k)} {arrow(k)}" for k in keys]]
    return _table(head, rows, left=(0, 1))


def _chunks(keys: Sequence[str], most: int) -> list[Sequence[str]]:
    """``keys`` in as few runs of at most ``most`` as possible, of near-equal length (15 -> 5, 5, 5)."""
    if not keys:
        return [keys]
    n = math.ceil(len(keys) / most)
    size = math.ceil(len(keys) / n)
    return [keys[i : i + size] for i in range(0, len(keys), size)]


def _problems(result: ReportResult) -> str:
    if not result.problems:
        return '<p class="ok">No problems: every file of every set was paired, read and scored.</p>'
    rows = [f"<tr><td class=l>{e(p.group)}</td><td class=l>{e(p.item) or '(whole set)'}</td>"
            f"<td class=err>{e(p.message)}</td></tr>" for p in result.problems]
    return (f'<section class="problems" id="problems"><h2>Problems ({len(result.problems)})</h2>'
            "<p>These files or sets are missing from the numbers below (a failed file never enters a mean; "
            "it is counted under <em>failures</em>).</p>"
            + _table(["set", "file / folder", "problem"], rows, left=(0, 1, 2)) + "</section>")


def _summary(g: GroupReport) -> str:
    by_key = {k: m for m in g.metrics for k in m.keys}
    rows = []
    for key, row in g.summary().items():
        ci = "–" if row["ci_low"] is None else f"[{num(row['ci_low'])}, {num(row['ci_high'])}]"
        if row.get("ci_clipped"):
            ci += " <span title=\"clipped to the metric's range\">*</span>"
        rate = row["sample_rate"]
        rate_text = f"{rate / 1000:g} kHz" if isinstance(rate, int) else e(rate)
        rows.append(f"<tr><td class=l>{e(key)} {arrow(key)}</td><td>{num(row['mean'])}</td><td>{ci}</td>"
                    f"<td>{num(row['std'])}</td><td>{row['count']}</td><td>{row['failures']}</td>"
                    f"<td class=l>{e(row['library'])}, {rate_text}</td>"
                    f"<td class='l wrap'>{e(by_key[key].description) if key in by_key else ''}</td></tr>")
    return _table(["metric", "mean", "95% interval", "std", "count", "failures", "computed with", "what"],
                  rows, left=(0, 6, 7))


def _ranked_table(g: GroupReport, files: Sequence[Any]) -> str:
    rows = []
    for r in files:
        cells = "".join(f"<td{' class=best' if k == g.rank_key else ''}>{num(r.scores.get(k))}</td>" for k in g.keys)
        rows.append(f"<tr><td class=l>{e(r.id)}</td>{cells}</tr>")
    return _table(["file", *[f"{e(k)} {arrow(k)}" for k in g.keys]], rows)


def _ranking(g: GroupReport, top: int) -> str:
    if g.rank_key is None or not g.ranked:
        return ""
    key, n = g.rank_key, len(g.ranked)
    intro = f"<h3>Worst and best files by {e(key)} {arrow(key)}</h3>"
    if n <= 2 * top:
        return intro + f"<p class=muted>All {n} scored files, worst first.</p>" + _ranked_table(g, g.ranked)
    return (intro + f"<h4>The {top} worst of {n}</h4>" + _ranked_table(g, g.ranked[:top])
            + f"<h4>The {top} best of {n}</h4>" + _ranked_table(g, list(reversed(g.ranked[-top:]))))


def _levels(x: Example) -> str:
    rows = []
    for name, level in (("reference", x.ref_level), ("generated", x.gen_level)):
        if level is not None:
            rows.append(f"<tr><td class=l>{name}</td><td>{_db(level.rms_dbfs)}</td><td>{_db(level.peak_dbfs)}</td></tr>")
    if x.ref_level is not None and x.gen_level is not None:
        d_rms = x.gen_level.rms_dbfs - x.ref_level.rms_dbfs
        d_peak = x.gen_level.peak_dbfs - x.ref_level.peak_dbfs
        rows.append(f"<tr><td class=l>generated − reference</td><td>{num(d_rms, 1)}</td><td>{num(d_peak, 1)}</td></tr>")
    table = _table(["level", "RMS dBFS", "peak dBFS"], rows)
    extra = []
    if x.lag_ms is not None:
        extra.append(f"loudness envelopes {x.lag_ms:+d} ms apart" + (" (aligned: within ±10 ms is estimation noise)"
                     if abs(x.lag_ms) <= 10 else ": the generated audio is shifted; check the pairing or the vocoder"))
    if x.correlation is not None:
        extra.append(f"waveform correlation {x.correlation:+.2f} (near 0: the phase is not the reference's, "
                     "normal for GAN vocoders)" if abs(x.correlation) < 0.5 else f"waveform correlation {x.correlation:+.2f}")
    if x.trimmed_ms:
        extra.append(f"{x.trimmed_ms:.1f} ms trimmed from the longer file")
    return table + (f"<p class=muted>{e('; '.join(extra))}.</p>" if extra else "")


def _players(x: Example) -> str:
    out = []
    for label, src in (("reference", x.ref_audio), ("generated", x.gen_audio)):
        if src:
            out.append(f'<div><label>{label}</label><audio controls preload="metadata">'
                       f'<source src="{url(src)}" type="audio/wav"></audio></div>')
    return f'<div class="players">{"".join(out)}</div>' if out else ""


def _example(g: GroupReport, x: Example) -> str:
    scores = ", ".join(f"{e(k)} {num(x.scores.get(k))}" for k in g.keys)
    head = f'<div class="example"><h4>{e(x.id)} <span class=muted>({e(x.why)})</span></h4>'
    if x.error:
        return head + f"<p class=notes>Not drawn: {e(x.error)}</p></div>"
    caption = ("Top: the two waveforms on one time axis (as the metrics see them: generated audio at the "
               "reference's rate, trimmed to one length) and a 40 ms close-up of the loudest part. Then both "
               "log-mels (HiFi-GAN recipe, 22.05 kHz, 80 bins to 8 kHz) on one colour scale, and their difference."
               if x.ref_level is not None else "The waveform, a 40 ms close-up of its loudest part, and its log-mel "
               "(HiFi-GAN recipe, 22.05 kHz, 80 bins to 8 kHz).")
    fig = (f'<figure><img src="{url(x.figure)}" alt="{e(x.id)}: waveforms and log-mel spectrograms" loading="lazy">'
           f"<figcaption>{caption}</figcaption></figure>") if x.figure else ""
    return head + (f"<p class=muted>{scores}</p>" if scores else "") + _players(x) + _levels(x) + fig + "</div>"


def _group(g: GroupReport, top: int) -> str:
    grp = g.group
    where = (f"reference <code>{e(grp.ref)}</code>, generated <code>{e(grp.gen)}</code>" if grp.ref is not None
             else f"generated <code>{e(grp.gen)}</code> (reference-free: only reference-free metrics)")
    parts = [f'<section class="group" id="{e(grp.slug)}"><h2>{e(grp.name)}</h2><p class=muted>{where}'
             + (f"; generated here by <code>{e(grp.weights)}</code>" if grp.weights else "") + "</p>"]
    if g.run is None:
        parts.append("<p class=notes>Not scored: see Problems.</p></section>")
        return "".join(parts)
    n, failed = len(g.run.results), len(g.run.failures)
    links = " · ".join(f'<a href="{url(p)}">{e(p)}</a>' for p in (g.scores_csv, g.scores_json) if p)
    parts.append(f"<p>{n} files, {failed} failed. Per-file numbers: {links}.</p>")
    if g.keys:
        parts.append("<h3>Summary</h3>" + _summary(g))
    if g.distribution:
        parts.append(f'<figure><img src="{url(g.distribution)}" alt="distributions of every metric for {e(grp.name)}" '
                     'loading="lazy"><figcaption>Each dot is one file; the box spans the quartiles, its line is the '
                     "median, the whiskers reach 1.5 times the interquartile range.</figcaption></figure>")
    if g.warnings:
        items = "".join(f"<li><code>{e(i)}</code>: {e(w)}</li>" for i, w in g.warnings[:50])
        more = f"<li>… and {len(g.warnings) - 50} more</li>" if len(g.warnings) > 50 else ""
        parts.append(f"<h4>Warnings (scored anyway)</h4><ul class=notes>{items}{more}</ul>")
    parts.append(_ranking(g, top))
    if g.examples:
        parts.append(f"<h3>Examples</h3><p class=muted>{len(g.examples)} files chosen by rank "
                     f"({'by ' + e(g.rank_key) if g.rank_key else 'by id'}), listen with headphones.</p>")
        parts.extend(_example(g, x) for x in g.examples)
    parts.append("</section>")
    return "".join(parts)


def render_page(result: ReportResult) -> str:
    """The whole page as one string."""
    nav = "".join(f'<li><a href="#{e(g.group.slug)}">{e(g.group.name)}</a></li>' for g in result.groups)
    notes = "".join(f"<li>{e(n)}</li>" for n in result.notes)
    versions = ", ".join(f"{e(k)} {e(v)}" for k, v in result.versions.items() if v)
    command = f"<p class=muted>Command: <code>{e(result.command)}</code></p>" if result.command else ""
    body = [
        "<header><h1>Vocoder report</h1>",
        f"<p class=muted>{len(result.groups)} set(s), {sum(len(g.run.results) for g in result.groups if g.run)} "
        f"files; built {e(result.created)} in {result.seconds:.0f} s; {versions}.</p>{command}</header>",
        _problems(result),
        (f"<ul class=notes>{notes}</ul>" if notes else ""),
        "<h2>Comparison</h2>", _comparisons(result),
        f"<nav><h3>Sets</h3><ul>{nav}</ul></nav>" if len(result.groups) > 1 else "",
        *(_group(g, result.top) for g in result.groups),
        "<footer><p class=muted>Numbers: <a href=\"summary.json\">summary.json</a>, "
        "<a href=\"summary.csv\">summary.csv</a>, per set under <code>scores/</code> (the same as "
        "<code>vocoder score REF GEN --per-file -f json</code>). Figures under <code>figures/</code>.</p></footer>",
    ]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>Vocoder report</title><style>{CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")
