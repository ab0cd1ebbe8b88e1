"""The quality report, from the database's views: in the terminal (the summary in the
reference pipeline's terms and the newest low-quality chunks), as a PNG of the measures the
checks use, and as one self-contained HTML page.

Every string that comes from the data (ids, content, model names) is shown as text, never
interpreted: escaped for HTML, and with control characters written as escapes in the
terminal, so a chunk_id holding an ANSI escape cannot drive the reader's terminal.
"""

import html
import io
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from loader import db

# the contract's issue codes (DESIGN.md), in the order the report lists them
CODES = (
    "nan_or_inf",
    "low_norm",
    "low_variance",
    "sparse",
    "blank_like",
    "duplicate_vector",
    "model_mismatch",
)


def printable(value) -> str:
    """A value for the terminal: control characters (ESC, CSI, newlines, ...) as escapes."""
    text = "" if value is None else str(value)
    return "".join(
        c.encode("unicode_escape").decode("ascii") if unicodedata.category(c) == "Cc" else c
        for c in text
    )


# --- the terminal ---------------------------------------------------------------------------


def format_report(s: dict, low_quality: list) -> str:
    pct = f"{s['low_quality_pct']:.2f}%" if s["low_quality_pct"] is not None else "-"
    lines = [
        "=== Embedding quality ===",
        f"Total documents:         {s['documents']:>10,}",
        f"Total chunks:            {s['chunks']:>10,}",
        f"Dropped:                 {s['dropped']:>10,}",
        f"Empty content:           {s['empty_content']:>10,}",
        f"Embedded:                {s['embedded']:>10,}",
        f"Low-quality embeddings:  {s['low_quality']:>10,} ({pct})",
    ]
    for code, n in sorted(s["issue_counts"].items()):
        lines.append(f"  {printable(code) + ':':23s}{n:>10,}")
    if s["quarantined"]:
        lines.append(f"Quarantined:             {s['quarantined']:>10,}")
    # what to run before a table's counts can be trusted (after a data-only load, say)
    for table, figures in sorted((s.get("tables") or {}).items()):
        if figures.get("needs"):
            lines.append(f"Needs ({printable(table)}): {printable(figures['needs'])}")
    if low_quality:
        lines += ["", f"Low-quality embeddings (first {len(low_quality)}, newest first):"]
        for row in low_quality:
            chunk_id, doc_id, reason, length, preview, quarantined = row[:6]
            where = " [quarantined]" if quarantined else ""
            if chunk_id is None:  # a row of an attached table
                what = f"row {printable(row[9])} of {printable(row[8])}"
            else:
                what = f"chunk {printable(chunk_id)} (document {printable(doc_id)})"
            lines += [
                f"  {what}{where}",
                f"    reason: {printable(reason)}",
                f"    content length: {length}",
                f"    preview: {preview!r}",
            ]
    return "\n".join(lines)


def report(conn, limit: int = 10) -> str:
    return format_report(db.summary(conn), db.low_quality(conn, limit))


# --- what the pictures and the page show, read once ---------------------------------------------


@dataclass
class Snapshot:
    """Everything the PNG and the HTML page show, read from the database once (the measures
    are a scan of every stored embedding)."""

    summary: dict
    settings: dict
    measures: dict
    twins: list
    days: list
    flagged: list
    per_model: list
    per_document: list
    attached: list


def snapshot(conn, limit: int = 200) -> Snapshot:
    """The database's state for the pictures and the page; `limit` flagged chunks."""
    return Snapshot(
        summary=db.summary(conn),
        settings=db.settings(conn),
        measures=db.measures(conn),
        twins=db.twin_groups(conn),
        days=db.quality_by_day(conn),
        flagged=db.low_quality(conn, limit),
        per_model=db.flagged_by(conn, "model"),
        per_document=db.flagged_by(conn, "document"),
        attached=db.attached(conn),
    )


# --- the measures, drawn -----------------------------------------------------------------------


@dataclass
class Panel:
    """One measure a check uses: its values, the threshold, and which rows the check flags."""

    title: str
    code: str
    values: list
    flagged: list  # bool per value: the check flags this row
    threshold: "float | None"
    rule: str  # how the threshold reads, e.g. "flags < 0.1"
    empty: str = "no embeddings"
    log: bool = False  # values spanning orders of magnitude: drawn as log10


def panels(measures: dict, settings: dict, twins: list) -> list:
    """The measures of the checks, each with its threshold and what it flags."""
    issues = measures["issues"]

    def panel(title, code, key, threshold, rule, empty="no embeddings", log=False):
        pairs = [(v, code in (i or [])) for v, i in zip(measures[key], issues, strict=True)]
        pairs = [(v, f) for v, f in pairs if v is not None]
        return Panel(
            title, code, [v for v, _ in pairs], [f for _, f in pairs], threshold, rule, empty, log
        )

    s = settings
    return [
        panel("L2 norm", "low_norm", "norm", s["min_norm"], f"flags < {s['min_norm']:g}"),
        panel(
            "variance of the components",
            "low_variance",
            "variance",
            s["min_variance"],
            f"flags < {s['min_variance']:g}",
        ),
        panel(
            f"share of components with |x| < {s['near_zero_epsilon']:g}",
            "sparse",
            "near_zero_ratio",
            s["max_near_zero_ratio"],
            f"flags > {s['max_near_zero_ratio']:g}",
        ),
        panel(
            "cosine to the blank reference, the model's mean removed",
            "blank_like",
            "blank_similarity",
            s["blank_similarity"],
            f"flags >= {s['blank_similarity']:g}",
            empty="no model with a blank reference and a calibration",
        ),
        panel(
            "deviation on the silent dimensions (median spreads)",
            "model_mismatch",
            "silent_deviation",
            s["max_silent_deviation"],
            f"flags > {s['max_silent_deviation']:g}",
            empty="no model with a spread recorded (100 rows written)",
            log=True,
        ),
        Panel(
            "chunks sharing one embedding, per group",
            "duplicate_vector",
            twins,
            [False] * len(twins),
            None,
            "flags those whose content differs from the earliest's",
            empty="no embedding is stored twice",
        ),
    ]


def _draw(ax, p: Panel, flagged_count: int, total: int) -> None:
    share = f"{flagged_count:,} of {total:,} flagged ({100 * flagged_count / max(total, 1):.2f}%)"
    ax.set_title(f"{p.code}: {share if total else 'nothing stored'}", fontsize=10)
    ax.set_xlabel(f"{p.title}; {p.rule}", fontsize=8)
    if not p.values:
        ax.text(0.5, 0.5, p.empty, ha="center", va="center", transform=ax.transAxes)
        ax.set_yticks([])
        return
    import numpy as np

    values = np.asarray(p.values, dtype=float)
    flags = np.asarray(p.flagged, dtype=bool)
    threshold = p.threshold
    if p.log:  # (a model's own rows sit near 1e-6, another model's from 1e-2: log10)
        values = np.log10(np.maximum(values, 1e-12))
        threshold = None if threshold is None else float(np.log10(max(threshold, 1e-12)))
        ax.set_xlabel(f"log10 of the {p.title}; {p.rule}", fontsize=8)
    low, high = values.min(), values.max()
    if threshold is not None:
        low, high = min(low, threshold), max(high, threshold)
    if high <= low:
        low, high = low - 0.5, high + 0.5
    bins = np.linspace(low, high, 61)
    ax.hist(
        [values[~flags], values[flags]],
        bins=bins,
        stacked=True,
        color=["#4a7ab7", "#c0392b"],
        label=["passes", "flagged"],
    )
    if threshold is not None:
        ax.axvline(threshold, color="#c0392b", linestyle="--", label=f"threshold {p.threshold:g}")
    ax.set_yscale("log")
    ax.set_ylabel("embeddings" if p.threshold is not None else "groups")
    ax.legend(fontsize=7)


def _figure(snap: Snapshot, columns: int = 3):
    """A matplotlib figure of every measure panel and the quality over time, and how many
    stored embeddings it measures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.fonttype"] = "path"  # the SVG needs no font where it is opened
    summary = snap.summary
    found = panels(snap.measures, snap.settings, snap.twins)
    counts = summary["issue_counts"]
    total = len(snap.measures["issues"])
    rows = (len(found) + 1 + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 3.8 * rows))
    axes = list(axes.flat)
    for ax, p in zip(axes, found, strict=False):
        _draw(ax, p, counts.get(p.code, 0), total)
    _draw_days(axes[len(found)], snap.days)
    for ax in axes[len(found) + 1 :]:
        ax.set_visible(False)
    fig.suptitle(
        f"{summary['embedded']:,} embeddings, {summary['low_quality']:,} flagged"
        f" ({summary['low_quality_pct'] or 0:.2f}%)"
    )
    fig.tight_layout()
    return fig, plt, total


def _draw_days(ax, days: list) -> None:
    per_day: dict = {}
    for row in days:
        checked, flagged = per_day.get(row["day"], (0, 0))
        per_day[row["day"]] = (checked + row["checked"], flagged + row["flagged"])
    ax.set_title("quality over time (all tables and models)", fontsize=10)
    if not per_day:
        ax.text(0.5, 0.5, "nothing stored yet", ha="center", va="center", transform=ax.transAxes)
        return
    dates = sorted(per_day)
    labels = [d.isoformat() for d in dates]
    ax.bar(labels, [per_day[d][0] for d in dates], color="#4a7ab7", label="checked")
    ax.bar(labels, [per_day[d][1] for d in dates], color="#c0392b", label="flagged")
    ax.set_ylabel("embeddings per day")
    ax.legend(fontsize=7)
    ax.tick_params(axis="x", labelrotation=30, labelsize=7)


def write_png(snap: Snapshot, path: Path) -> int:
    """A PNG of the measures every check uses, thresholds drawn and flagged rows marked, and
    the quality over time. Returns how many embeddings it shows."""
    fig, plt, total = _figure(snap)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return total


# --- HTML -------------------------------------------------------------------------------------

STYLE = """
body { font-family: "Noto Sans", "Noto Sans CJK KR", sans-serif; margin: 2em; color: #222; }
h1 { margin-bottom: 0.1em; } .sub { color: #666; margin-top: 0; }
.cards { display: flex; gap: 1em; flex-wrap: wrap; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 0.6em 1em; min-width: 8em; }
.card b { display: block; font-size: 1.6em; } .bad b { color: #c0392b; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border-bottom: 1px solid #eee; padding: 0.3em 0.8em; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.preview { font-family: monospace; white-space: pre-wrap; max-width: 40em; }
svg { max-width: 100%; height: auto; }
"""


def _table(head: list, rows: list, numeric: set = frozenset()) -> str:
    """An HTML table; every cell escaped."""
    out = ["<table><tr>", *(f"<th>{html.escape(h)}</th>" for h in head), "</tr>"]
    for row in rows:
        out.append("<tr>")
        for i, cell in enumerate(row):
            text = "" if cell is None else f"{cell:,}" if isinstance(cell, int) else str(cell)
            cls = ' class="n"' if i in numeric else ""
            out.append(f"<td{cls}>{html.escape(text)}</td>")
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def _svg(fig) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def write_html(snap: Snapshot, path: Path) -> None:
    """One self-contained HTML file (no script, font or style fetched from anywhere): the
    summary; counts per check, table, model and source document; the measures of every
    check with its threshold; quality over time; the flagged chunks with their previews."""
    s, settings, days, flagged = snap.summary, snap.settings, snap.days, snap.flagged
    fig, plt, _ = _figure(snap)
    charts = _svg(fig)
    plt.close(fig)
    per_table: dict = {}
    for row in days:
        checked, n = per_table.get(row["table_name"], (0, 0))
        per_table[row["table_name"]] = (checked + row["checked"], n + row["flagged"])
    for row in snap.attached:  # their rows have no insert time: totals only
        per_table[row["table_name"]] = (
            row["embedded"] + row["quarantined"],
            row["flagged"] + row["quarantined"],
        )
    thresholds = {
        "low_norm": f"norm < {settings['min_norm']:g}",
        "low_variance": f"variance < {settings['min_variance']:g}",
        "sparse": f"near-zero share > {settings['max_near_zero_ratio']:g}",
        "blank_like": f"cosine to blank >= {settings['blank_similarity']:g}",
        "nan_or_inf": "any NaN or Inf",
        "duplicate_vector": "same vector, other content",
        "model_mismatch": (
            f"deviation on the model's silent dimensions > {settings['max_silent_deviation']:g}"
        ),
    }
    pct = f"{s['low_quality_pct']:.2f}%" if s["low_quality_pct"] is not None else "-"
    cards = [
        ("documents", f"{s['documents']:,}", ""),
        ("chunks", f"{s['chunks']:,}", ""),
        ("embedded", f"{s['embedded']:,}", ""),
        ("low quality", f"{s['low_quality']:,} ({pct})", " bad" if s["low_quality"] else ""),
        ("quarantined", f"{s['quarantined']:,}", ""),
        ("dropped or empty", f"{s['dropped']:,} / {s['empty_content']:,}", ""),
    ]
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>Embedding quality</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>Embedding quality</h1>",
        f'<p class="sub">mode {html.escape(str(settings["mode"]))}; generated {generated}</p>',
        '<div class="cards">',
        *(
            f'<div class="card{bad}"><b>{html.escape(v)}</b>{html.escape(k)}</div>'
            for k, v, bad in cards
        ),
        "</div>",
        "<h2>Per check</h2>",
        _table(
            ["check", "flagged", "fires when"],
            [(c, s["issue_counts"].get(c, 0), thresholds[c]) for c in CODES],
            {1},
        ),
        "<h2>Per table</h2>",
        _table(
            ["table", "checked", "flagged"],
            [(t, c, n) for t, (c, n) in sorted(per_table.items())],
            {1, 2},
        ),
        "<h2>Per model</h2>",
        _table(["model", "embedded", "flagged"], snap.per_model, {1, 2}),
        "<h2>Per source document (the 20 most flagged)</h2>",
        _table(["document", "embedded", "flagged"], snap.per_document, {1, 2}),
        "<h2>The measures the checks use</h2>",
        "<p>Red: the rows the check flags; the dashed line: its threshold.</p>",
        charts,
        "<h2>Quality over time</h2>",
        _table(
            ["day", "table", "model", "checked", "flagged", "%", "per check"],
            [
                (
                    str(r["day"]),
                    r["table_name"],
                    r["embedding_model"],
                    r["checked"],
                    r["flagged"],
                    str(r["flagged_pct"]),
                    ", ".join(f"{k} {v}" for k, v in r["issue_counts"].items()),
                )
                for r in days
            ],
            {3, 4, 5},
        ),
        f"<h2>Flagged chunks (the {len(flagged):,} newest)</h2>",
        _flagged_table(flagged),
        "</body></html>",
    ]
    path.write_text("\n".join(parts), encoding="utf-8")


def _flagged_table(rows: list) -> str:
    if not rows:
        return "<p>No chunk is flagged.</p>"
    out = ["<table><tr><th>table</th><th>row</th><th>document</th><th>model</th><th>issues</th>"]
    out.append("<th>reason</th><th>length</th><th>preview</th></tr>")
    for _, doc_id, reason, length, preview, quarantined, issues, model, table, row_id in rows:
        cells = [table, row_id, doc_id, model, ", ".join(issues or [])]
        cells += [reason + (" [quarantined]" if quarantined else ""), length]
        out.append("<tr>")
        out += [f"<td>{html.escape('' if c is None else str(c))}</td>" for c in cells]
        # quoted, whitespace and control characters escaped: a blank preview stays visible
        out.append(f'<td class="preview">{html.escape(repr(preview or ""))}</td></tr>')
    out.append("</table>")
    return "".join(out)
