"""The reports at a million chunks: each view timed, against the naive single-scan count of
the same figures (the baseline) in the same run.

The corpus: N chunks of 768-d vectors (0.1% degenerate), 1% dropped, 0.1% empty content,
lengths from 1 to 2,000 characters, loaded through the gate in INSERT ... SELECT batches.

    make bench-reports                          # a throwaway PostgreSQL, 1,000,000 chunks
    python bench/bench_reports.py --url postgresql://... --rows 200000
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
DISTINCT_VECTORS = 20_000

NAIVE_SUMMARY = """
SELECT count(*), count(*) FILTER (WHERE drop),
       count(*) FILTER (WHERE coalesce(content_length, 0) = 0),
       count(*) FILTER (WHERE embedding IS NOT NULL OR embedding_raw IS NOT NULL),
       count(quality_issues)
FROM chunks
"""
QUERIES = {
    "embedding_quality_summary": "SELECT * FROM embedding_quality_summary",
    "low_quality_embeddings LIMIT 10": "SELECT * FROM low_quality_embeddings LIMIT 10",
    "short_content_chunks": "SELECT * FROM short_content_chunks",
}


def load(conn, rows: int) -> None:
    """DISTINCT_VECTORS vectors into a staging table, then `rows` chunks through the gate."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((DISTINCT_VECTORS, D)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x[::1000] = 0.0
    text = io.StringIO()
    for i, row in enumerate(x):
        text.write(f"{i}\t[" + ",".join(f"{v:.6g}" for v in row.tolist()) + "]\n")
    with conn.cursor() as cur:
        cur.execute("CREATE UNLOGGED TABLE vectors (i integer PRIMARY KEY, v vector(768))")
        cur.copy_expert("COPY vectors FROM STDIN", io.StringIO(text.getvalue()))
        cur.execute("INSERT INTO documents SELECT 'doc' || g FROM generate_series(0, 9999) AS g")
        conn.commit()
        step = 100_000
        for start in range(0, rows, step):
            t = time.perf_counter()
            cur.execute(
                """
                INSERT INTO chunks (chunk_id, doc_id, content, drop, embedding)
                SELECT 'c' || lpad(n::text, 8, '0'), 'doc' || (n %% 10000),
                       CASE WHEN n %% 1000 = 7 THEN ''
                            ELSE repeat('가', 1 + (n::bigint * 7919 %% 2000)::int) END,
                       n %% 100 = 3,
                       CASE WHEN n %% 1000 = 7 THEN NULL ELSE v.v END
                FROM generate_series(%s, %s) AS n JOIN vectors AS v ON v.i = n %% %s
                """,
                [start, min(start + step, rows) - 1, DISTINCT_VECTORS],
            )
            conn.commit()
            print(
                f"  loaded {min(start + step, rows):,} ({time.perf_counter() - t:.1f} s)",
                flush=True,
            )
        cur.execute("DROP TABLE vectors")
        conn.commit()


def timed(conn, sql: str, repeat: int) -> float:
    times = []
    with conn.cursor() as cur:
        for _ in range(repeat):
            start = time.perf_counter()
            cur.execute(sql)
            cur.fetchall()
            times.append(time.perf_counter() - start)
    conn.rollback()
    return statistics.median(times)


def measure(conn, label: str, repeat: int) -> None:
    naive = timed(conn, NAIVE_SUMMARY, repeat)
    print(f"{label}: baseline, the same counts in one scan of chunks: {naive * 1000:,.0f} ms")
    for name, sql in QUERIES.items():
        t = timed(conn, sql, repeat)
        print(f"  {name:33s} {t * 1000:8.1f} ms  {naive / t:7.1f}x faster than the baseline")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a database at head (default: a throwaway cluster)")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, throwaway_database(args.url, Path(tmp)) as url:
        conn = psycopg2.connect(url)
        t = time.perf_counter()
        load(conn, args.rows)
        print(f"{args.rows:,} chunks loaded through the gate in {time.perf_counter() - t:.0f} s")
        with conn.cursor() as cur:
            cur.execute("SELECT pg_size_pretty(pg_table_size('chunks'))")
            print(f"chunks: {cur.fetchone()[0]}")
            cur.execute("SELECT * FROM embedding_quality_summary")
            print(
                "summary:",
                dict(zip([c.name for c in cur.description], cur.fetchone(), strict=True)),
            )
        conn.rollback()
        measure(conn, "right after the load", args.repeat)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("VACUUM ANALYZE")
        conn.autocommit = False
        measure(conn, "after VACUUM ANALYZE (what autovacuum leaves)", args.repeat)
        conn.close()


if __name__ == "__main__":
    main()
