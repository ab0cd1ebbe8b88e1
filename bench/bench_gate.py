"""Ingest benchmark of the quality gate, printed as ratios measured in one run.

COPY of N random 768-d vectors (0.1% degenerate) into chunks with the gate, versus the same
COPY into the same table with its triggers disabled; runs interleaved, median of --repeat.
Then CALL recheck_embeddings() throughput in vectors per second.

    make bench                                  # a throwaway PostgreSQL, 100,000 rows
    python bench/bench_gate.py --url postgresql://... --rows 20000
"""

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.cluster import throwaway_database  # noqa: E402

D = 768


def copy_text(rows: int, seed: int = 1) -> bytes:
    """COPY text of `rows` chunks: unit-normalised random vectors, every 1000th a zero vector."""
    rng = np.random.default_rng(seed)
    out = io.StringIO()
    for start in range(0, rows, 10_000):
        n = min(10_000, rows - start)
        x = rng.standard_normal((n, D)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        x[(np.arange(start, start + n) % 1000) == 999] = 0.0
        for i, row in enumerate(x):
            vector = "[" + ",".join(f"{v:.6g}" for v in row.tolist()) + "]"
            out.write(f"c{start + i:07d}\td1\tchunk {start + i}\t{vector}\n")
    return out.getvalue().encode()


def timed_copy(conn, data: bytes, gated: bool) -> float:
    with conn.cursor() as cur:
        cur.execute("TRUNCATE chunks")
        cur.execute(f"ALTER TABLE chunks {'ENABLE' if gated else 'DISABLE'} TRIGGER USER")
        conn.commit()
        cur.execute("CHECKPOINT")
        conn.commit()
        start = time.perf_counter()
        cur.copy_expert(
            "COPY chunks (chunk_id, doc_id, content, embedding) FROM STDIN", io.BytesIO(data)
        )
        conn.commit()
        elapsed = time.perf_counter() - start
        cur.execute("ALTER TABLE chunks ENABLE TRIGGER USER")
        conn.commit()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a database at head (default: a throwaway cluster)")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, throwaway_database(args.url, Path(tmp)) as url:
        conn = psycopg2.connect(url)
        with conn.cursor() as cur:
            cur.execute("INSERT INTO documents (doc_id) VALUES ('d1') ON CONFLICT DO NOTHING")
        conn.commit()
        t0 = time.perf_counter()
        data = copy_text(args.rows)
        print(
            f"{args.rows} rows of {D}-d text COPY ({len(data) / 1e6:.0f} MB)"
            f" built in {time.perf_counter() - t0:.1f} s"
        )
        times = {True: [], False: []}
        for r in range(args.repeat):
            for gated in (False, True):
                times[gated].append(timed_copy(conn, data, gated))
                print(
                    f"  run {r + 1} {'gated  ' if gated else 'ungated'}: {times[gated][-1]:.2f} s"
                )
        ungated, gated = statistics.median(times[False]), statistics.median(times[True])
        with conn.cursor() as cur:
            cur.execute("SELECT count(*), count(quality_issues) FROM chunks")
            stored, flagged = cur.fetchone()
        conn.commit()
        print(f"ungated COPY: {args.rows / ungated:,.0f} rows/s (median {ungated:.2f} s)")
        print(
            f"gated COPY:   {args.rows / gated:,.0f} rows/s (median {gated:.2f} s),"
            f" {flagged} of {stored} flagged"
        )
        print(f"gated / ungated throughput: {ungated / gated:.2f}x  (target >= 0.80x, goal 0.90x)")
        conn.autocommit = True
        with conn.cursor() as cur:
            start = time.perf_counter()
            cur.execute("CALL recheck_embeddings()")
            checked, low = cur.fetchone()
            elapsed = time.perf_counter() - start
        print(
            f"recheck_embeddings(): {checked} vectors in {elapsed:.2f} s"
            f" = {checked / elapsed:,.0f} vectors/s"
            f" ({low} low quality; target >= 100,000/s)"
        )
        conn.close()


if __name__ == "__main__":
    main()
