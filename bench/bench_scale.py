"""The single-node design at scale: ingest by binary COPY, the recheck, the summary,
preview_thresholds and verify_embeddings at 1,000,000 and at 10,000,000 chunks, in one run.

N chunks of random unit vectors (384-d by default, so that 10M fit on this machine's disk;
0.1% zero vectors), written through the gate by binary COPY in transactions of --batch rows
(no transaction holds more than one batch). After the first checkpoint (1M by default) and
after the last, each operation is timed and divided by the rows it covers: the cost per row
should stay flat from 1M to 10M. The backend's peak memory (VmHWM) is read from /proc after
each step. The summary is timed right after the load and again after VACUUM ANALYZE.

    make bench-scale                                   # 1M and 10M, 384-d: ~20 GB of disk
    python bench/bench_scale.py --rows 2000000 --checkpoints 1000000
"""

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import data  # noqa: E402
from bench.cluster import throwaway_database  # noqa: E402


def peak_memory(conn) -> str:
    """The backend's peak resident memory (VmHWM), from /proc."""
    with conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
    conn.commit()
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return "?"
    return next(
        (line.split(":")[1].strip() for line in status.splitlines() if "VmHWM" in line), "?"
    )


def timed(conn, sql: str) -> float:
    start = time.perf_counter()
    with conn.cursor() as cur:
        cur.execute(sql)
        cur.fetchall() if cur.description else None
    conn.commit()
    return time.perf_counter() - start


def measure(conn, rows: int) -> None:
    """The operations at `rows` stored chunks, per row and in all."""
    print(f"--- at {rows:,} chunks ---", flush=True)
    summary = timed(conn, "SELECT * FROM embedding_quality_summary")
    print(f"summary right after the load: {summary * 1000:,.0f} ms", flush=True)
    conn.autocommit = True
    vacuum = timed(conn, "VACUUM ANALYZE chunks")
    conn.autocommit = False
    summary = timed(conn, "SELECT * FROM embedding_quality_summary")
    print(f"VACUUM ANALYZE {vacuum:.1f} s; summary after it: {summary * 1000:,.0f} ms")
    conn.autocommit = True
    for name, sql in (
        ("recheck_embeddings()", "CALL recheck_embeddings()"),
        (
            "preview_thresholds(min_norm => 0.2)",
            "SELECT * FROM preview_thresholds(min_norm => 0.2)",
        ),
        ("verify_embeddings(100)", "SELECT * FROM verify_embeddings(100)"),
    ):
        elapsed = timed(conn, sql)
        per_row = "" if "verify" in name else f", {elapsed / rows * 1e6:.2f} µs a row"
        print(f"{name}: {elapsed:.1f} s{per_row}; backend peak {peak_memory(conn)}", flush=True)
    conn.autocommit = False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a database at head (default: a throwaway cluster)")
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--checkpoints", type=int, nargs="*", default=[1_000_000])
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--batch", type=int, default=50_000)
    parser.add_argument("--tmp", help="where the throwaway cluster lives (default: /tmp)")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(dir=args.tmp) as tmp,
        throwaway_database(args.url, Path(tmp), embedding_dim=args.dim) as url,
    ):
        conn = psycopg2.connect(url)
        with conn.cursor() as cur:
            cur.execute(
                "INSERT INTO documents (doc_id) SELECT 'd' || lpad(g::text, 8, '0')"
                " FROM generate_series(0, %s) AS g",
                [args.rows // 10],
            )
        conn.commit()
        rng = np.random.default_rng(1)
        stops = sorted({*args.checkpoints, args.rows})
        stored, copy_time, since = 0, 0.0, 0
        start = time.perf_counter()
        for stop in stops:
            while stored < stop:
                n = min(args.batch, stop - stored)
                x = data.vectors(stored, n, args.dim, rng)
                payload = data.binary(stored, x, doc_id=lambda k: f"d{k // 10:08d}")
                t = time.perf_counter()
                with conn.cursor() as cur:
                    cur.copy_expert(
                        f"COPY chunks ({data.COLUMNS}) FROM STDIN WITH (FORMAT binary)",
                        io.BytesIO(payload),
                    )
                conn.commit()
                copy_time += time.perf_counter() - t
                stored += n
            rate = (stored - since) / copy_time
            print(
                f"ingest to {stored:,}: {rate:,.0f} rows/s by binary COPY with the gate"
                f" ({1e6 / rate:.1f} µs a row); {time.perf_counter() - start:.0f} s so far;"
                f" backend peak {peak_memory(conn)}",
                flush=True,
            )
            copy_time, since = 0.0, stored
            with conn.cursor() as cur:
                cur.execute("SELECT pg_size_pretty(pg_total_relation_size('chunks'))")
                print(f"chunks: {cur.fetchone()[0]} on disk", flush=True)
            conn.commit()
            measure(conn, stored)
        conn.close()


if __name__ == "__main__":
    main()
