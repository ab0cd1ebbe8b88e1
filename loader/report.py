"""The quality report, from the database's views: the summary in the reference pipeline's
terms, the top of low_quality_embeddings, and optionally a PNG histogram of the measures."""

from pathlib import Path

from loader import db


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
        lines.append(f"  {code + ':':23s}{n:>10,}")
    if s["quarantined"]:
        lines.append(f"Quarantined:             {s['quarantined']:>10,}")
    if low_quality:
        lines += ["", f"Low-quality chunks (first {len(low_quality)}, newest first):"]
        for chunk_id, doc_id, reason, length, preview, quarantined in low_quality:
            where = " [quarantined]" if quarantined else ""
            lines += [
                f"  chunk {chunk_id} (document {doc_id}){where}",
                f"    reason: {reason}",
                f"    content length: {length}",
                f"    preview: {preview!r}",
            ]
    return "\n".join(lines)


def report(conn, limit: int = 10) -> str:
    return format_report(db.summary(conn), db.low_quality(conn, limit))


def write_histogram(conn, path: Path) -> int:
    """A PNG with histograms of the norms and variances of every stored embedding, the
    current thresholds drawn as lines. Returns how many embeddings it shows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, settings = db.measures(conn)
    dim = db.embedding_dim(conn)
    norms = [r[0] for r in rows]
    variances = [r[1] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, values, threshold, name in (
        (left, norms, settings["min_norm"], "L2 norm"),
        (right, variances, settings["min_variance"], "variance of the components"),
    ):
        ax.hist(values, bins=60, color="#4a7ab7")
        ax.axvline(threshold, color="#c0392b", linestyle="--", label=f"threshold {threshold:g}")
        ax.set_xlabel(name)
        ax.set_ylabel("embeddings")
        ax.set_yscale("log")
    if dim > 0:
        right.axvline(1 / dim, color="#7f8c8d", linestyle=":", label=f"1/d = {1 / dim:.4g}")
    left.legend()
    right.legend()
    fig.suptitle(f"{len(rows):,} stored embeddings (below the red line: flagged)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return len(rows)
