"""Ingest benchmark of the quality gate, printed as ratios measured in one run.

COPY of N random 768-d vectors (0.1% degenerate) into chunks with the gate, versus the same
COPY into a table without it, in --repeat rounds that run every design once, each round in
another order. Each COPY's wall time and its server process's CPU time (which this
machine's I/O stalls do not reach), divided by the ungated COPY of the same round: the
machine's speed drifts between rounds by more than the gate costs. Median (lowest-highest).
The gate runs all six checks: every row names a model with a blank reference (blank_like)
and is looked up by its stored hash (duplicate_vector). The baseline, "ungated", and
"4 checks" COPY into a second database deployed at revision 0004, before those two checks
existed, without and with its gate; "hash only" is this revision's table with the triggers
off, which still computes embedding_hash and maintains its index.
With --alternatives, also the designs the gate did not choose (bench/alternatives.sql): a
row-level trigger, and a statement trigger reading the whole transition table as one bytea.
Then CALL recheck_embeddings() throughput in vectors per second, in both databases.

    make bench                                  # a throwaway PostgreSQL, 50,000 rows
    python bench/bench_gate.py --url postgresql://... --rows 20000
"""

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.cluster import ROOT, throwaway_database  # noqa: E402

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


# design -> the trigger that replaces the gate for the run (None: the gate itself, or none)
DESIGNS = {
    "ungated": None,
    "gate": None,
    "row trigger": "BEFORE INSERT ON chunks FOR EACH ROW EXECUTE FUNCTION bench.row_trigger()",
    "one bytea": "AFTER INSERT ON chunks REFERENCING NEW TABLE AS inserted"
    " FOR EACH STATEMENT EXECUTE FUNCTION bench.one_blob()",
}


def backend_cpu(conn) -> "float | None":
    """CPU seconds the connection's server process has used; None when the server runs on
    another machine (/proc is this one's)."""
    with conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
    conn.commit()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def timed_copy(conn, data: bytes, design: str) -> "tuple[float, float | None]":
    """Wall seconds of the COPY and its commit, and the server process's CPU seconds."""
    trigger = DESIGNS[design]
    with conn.cursor() as cur:
        cur.execute("TRUNCATE chunks")
        cur.execute(
            f"ALTER TABLE chunks {'ENABLE' if design == 'gate' else 'DISABLE'} TRIGGER USER"
        )
        if trigger:
            cur.execute(f"CREATE TRIGGER bench_design {trigger}")
        conn.commit()
        cur.execute("CHECKPOINT")
        conn.commit()
        cpu = backend_cpu(conn)
        start = time.perf_counter()
        cur.copy_expert(
            "COPY chunks (chunk_id, doc_id, content, embedding) FROM STDIN", io.BytesIO(data)
        )
        conn.commit()
        elapsed = time.perf_counter() - start
        cpu = backend_cpu(conn) - cpu if cpu is not None else None
        if trigger:
            cur.execute("SELECT count(quality_issues) FROM chunks")
            if cur.fetchone()[0] == 0:
                raise AssertionError(f"design {design!r} flagged nothing")
            cur.execute("DROP TRIGGER bench_design ON chunks")
        cur.execute("ALTER TABLE chunks ENABLE TRIGGER USER")
        conn.commit()
    return elapsed, cpu


def paired(base: list, other: list) -> str:
    """The ratio base/other of each round, as median (lowest-highest): the machine's speed
    drifts between rounds (the same COPY took 10 s or 13.6 s here), so a design is compared
    with the baseline of its own round."""
    ratios = sorted(b / o for b, o in zip(base, other, strict=True))
    return f"{statistics.median(ratios):.2f}x ({ratios[0]:.2f}-{ratios[-1]:.2f})"


NOTES = {
    "ungated": "revision 0004's table, triggers off",
    "4 checks": "revision 0004's gate",
    "hash only": "this revision's table, triggers off: embedding_hash and its index",
    "gate": "6 checks; target >= 0.80x, goal 0.90x",
}


def report(designs: list, times: dict, cpus: dict, rows: int) -> None:
    """Per design: rows/s (median), and the time and server CPU ratios against the ungated
    COPY of the same round."""
    cpu = {d: c for d, c in cpus.items() if None not in c}
    print(f"{'design':12s} {'rows/s':>8s}  {'vs ungated, per round':24s} {'CPU µs/row':>10s}")
    for design in designs:
        used = ""
        if design in cpu and "ungated" in cpu:
            used = f"{statistics.median(cpu[design]) / rows * 1e6:10.1f}  CPU " + paired(
                cpu["ungated"], cpu[design]
            )
        print(
            f"{design:12s} {rows / statistics.median(times[design]):8,.0f}"
            f"  {paired(times['ungated'], times[design]):24s}{used}"
            f"  ({NOTES.get(design, 'an alternative design')})"
        )
    print(f"ingest, six checks vs revision 0004's four: {paired(times['4 checks'], times['gate'])}")


def prepare(conn) -> None:
    """Document d1, and blank_like on: every row names a model that has a reference."""
    with conn.cursor() as cur:
        cur.execute("INSERT INTO documents (doc_id) VALUES ('d1') ON CONFLICT DO NOTHING")
        cur.execute("ALTER TABLE chunks ALTER COLUMN embedding_model SET DEFAULT 'bench'")
        reference = "[" + ",".join(["0.036"] * D) + "]"
        cur.execute("SELECT set_blank_reference('bench', %s::vector)", [reference])
    conn.commit()


def before_0005(url: str):
    """A connection to a second database of the same cluster, at revision 0004."""
    admin = psycopg2.connect(url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS bench_0004")
        cur.execute("CREATE DATABASE bench_0004")
    admin.close()
    other = url.rsplit("/", 1)[0] + "/bench_0004"
    subprocess.run(
        [sys.executable, "-m", "alembic", "-c", ROOT / "alembic.ini", "upgrade", "0004"],
        check=True,
        env={"DATABASE_URL": other, "PATH": "/usr/bin:/bin"},
    )
    conn = psycopg2.connect(other)
    with conn.cursor() as cur:
        cur.execute("INSERT INTO documents (doc_id) VALUES ('d1')")
    conn.commit()
    return conn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a database at head (default: a throwaway cluster)")
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument(
        "--alternatives", action="store_true", help="also time the designs the gate did not choose"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, throwaway_database(args.url, Path(tmp)) as url:
        conn = psycopg2.connect(url)
        prepare(conn)
        # a second database at revision 0004, before blank_like and duplicate_vector: its
        # table without the gate is the baseline (no embedding_hash column, no hash index),
        # and its gate runs the four checks
        at_0004 = before_0005(url)
        targets = {
            "ungated": (at_0004, "ungated"),
            "4 checks": (at_0004, "gate"),
            "hash only": (conn, "ungated"),
        }
        t0 = time.perf_counter()
        data = copy_text(args.rows)
        print(
            f"{args.rows} rows of {D}-d text COPY ({len(data) / 1e6:.0f} MB)"
            f" built in {time.perf_counter() - t0:.1f} s"
        )
        designs = ["ungated", "4 checks", "hash only", "gate"]
        if args.alternatives:
            with conn.cursor() as cur:
                cur.execute((Path(__file__).parent / "alternatives.sql").read_text())
            conn.commit()
            designs += ["row trigger", "one bytea"]
        times = {d: [] for d in designs}
        cpus = {d: [] for d in designs}
        for r in range(args.repeat):
            # each round in another order: no design always runs first, or last
            for design in designs[r % len(designs) :] + designs[: r % len(designs)]:
                target, as_design = targets.get(design, (conn, design))
                elapsed, cpu = timed_copy(target, data, as_design)
                times[design].append(elapsed)
                cpus[design].append(cpu)
                used = f", server CPU {cpu:.2f} s" if cpu is not None else ""
                print(f"  round {r + 1} {design:12s} {elapsed:.2f} s{used}", flush=True)
        report(designs, times, cpus, args.rows)
        # leave both tables as the gate loaded them, for the recheck
        rechecked = {"gate": conn, "4 checks": targets["4 checks"][0]}
        for target in rechecked.values():
            timed_copy(target, data, "gate")
            target.autocommit = True
            with target.cursor() as cur:
                cur.execute("VACUUM ANALYZE chunks")
        with conn.cursor() as cur:
            cur.execute("SELECT count(*), count(quality_issues) FROM chunks")
            stored, flagged = cur.fetchone()
            print(f"the gate flagged {flagged} of {stored} rows")
            # the baseline: only reading every vector out of the table, as the recheck does
            start = time.perf_counter()
            cur.execute("SELECT sum(length(embedding_gate.vector_bytes(embedding))) FROM chunks")
            read = time.perf_counter() - start
        rechecks = {name: [] for name in rechecked}
        found = {}
        for _ in range(args.repeat):
            for name, target in rechecked.items():
                with target.cursor() as cur:
                    start = time.perf_counter()
                    cur.execute("CALL recheck_embeddings()")
                    found[name] = cur.fetchone()
                    rechecks[name].append(time.perf_counter() - start)
        print(f"reading every vector (baseline): {stored / read:,.0f} vectors/s")
        for name, elapsed in rechecks.items():
            elapsed = statistics.median(elapsed)
            checked, low = found[name]
            print(
                f"recheck_embeddings() {name:8s}: {checked} vectors in {elapsed:.2f} s"
                f" = {checked / elapsed:,.0f} vectors/s, {read / elapsed:.2f}x of the bare read"
                + (f" ({low} low quality; target >= 100,000/s)" if name == "gate" else "")
            )
        ratio = statistics.median(rechecks["4 checks"]) / statistics.median(rechecks["gate"])
        print(f"recheck, six checks vs revision 0004's four: {ratio:.2f}x")
        for target in rechecked.values():
            target.close()


if __name__ == "__main__":
    main()
