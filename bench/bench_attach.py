"""How long a writer waits while a live table is attached.

A table of N 768-d rows (default 1,000,000), the shape of a framework's (id, content,
embedding); one writer inserts single rows throughout; the gate is attached in two ways,
each on a fresh copy of the table:

- plain: `SELECT * FROM embedding_gate.attach(t, content_column => ..., check_existing =>
  false)`, which builds the hash index with CREATE INDEX (the writer waits for all of it),
  then the stored rows checked in committed batches (embedding-gate attach's way);
- concurrent: `embedding-gate attach`'s way now: CREATE INDEX CONCURRENTLY first, then
  attach(..., hash_index => it), then the same batches.

It prints the writer's longest wait (one INSERT's latency) during each, and the time each
attach took. `make bench-attach` (BENCH_ARGS="--rows 200000" for a quicker run)."""

import argparse
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psycopg

from bench.cluster import throwaway_database
from bench.data import binary_rows, vectors


def load(url: str, table: str, rows: int) -> None:
    rng = np.random.default_rng(1)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (id text PRIMARY KEY, body text, emb vector(768))")
        step = 20_000
        for start in range(0, rows, step):
            n = min(step, rows - start)
            with conn.cursor().copy(f"COPY {table} FROM STDIN WITH (FORMAT binary)") as copy:
                copy.write(binary_rows(start, vectors(start, n, 768, rng)))
        conn.execute(f"VACUUM ANALYZE {table}")


class Writer(threading.Thread):
    """Inserts single rows until stopped; keeps the longest latency seen."""

    def __init__(self, url: str, table: str):
        super().__init__(daemon=True)
        self.url, self.table = url, table
        self.longest = 0.0
        self.count = 0
        self.stop = threading.Event()
        self.vector = "[" + ",".join(["0.036"] * 768) + "]"

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            # the gate's Python loaded into this session now, not at its first checked
            # INSERT (about a second): what is timed below is waiting, not importing
            conn.execute("SELECT embedding_gate._python_package()")
            k = 0
            while not self.stop.is_set() and k < 10_000_000:
                k += 1
                t = time.perf_counter()
                conn.execute(
                    f"INSERT INTO {self.table} VALUES (%s, %s, %s)",
                    [f"w{k:09d}", f"written {k}", self.vector],
                )
                self.longest = max(self.longest, time.perf_counter() - t)
                self.count += 1
                time.sleep(0.002)


def attach(url: str, table: str, concurrent: bool) -> float:
    from loader import db as loader_db
    from loader.db import connect

    conn = connect(url)
    try:
        t = time.perf_counter()
        options = {"embedding_column": "emb", "content_column": "body"}
        if concurrent:
            options["hash_index"] = loader_db.build_hash_index(conn, table, "emb")
        else:  # the index built by attach itself, under its lock
            pass
        loader_db.attach(conn, table, **options)
        loader_db.check_existing(conn, table, 10_000)
        return time.perf_counter() - t
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database-url", help="an existing database at head (else a throwaway)")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        throwaway_database(args.database_url, Path(tmp)) as url,
    ):
        print(f"{args.rows:,} 768-d rows, one writer inserting single rows throughout")
        results = {}
        for way in ("plain", "concurrent"):
            table = f"live_{way}"
            load(url, table, args.rows)
            writer = Writer(url, table)
            writer.start()
            time.sleep(2)  # its steady state first
            baseline = writer.longest
            took = attach(url, table, way == "concurrent")
            time.sleep(1)
            writer.stop.set()
            writer.join()
            results[way] = (took, writer.longest, baseline, writer.count)
            print(
                f"{way:>10}: attach and check {took:6.2f} s; the writer's longest wait"
                f" {writer.longest * 1000:8.1f} ms (before attach {baseline * 1000:.1f} ms,"
                f" {writer.count:,} inserts)"
            )
        plain, concurrent = results["plain"][1], results["concurrent"][1]
        print(f"longest wait, concurrent against plain: {concurrent / plain:.3f}x")


if __name__ == "__main__":
    main()
