"""Ingest benchmark of the quality gate, printed as ratios measured in one run.

COPY of N random 768-d vectors (0.1% degenerate) into chunks with the gate, versus the same
COPY into a table without it, in --repeat rounds that run every design once, each round in
another order. The baseline is binary COPY into the same table with its triggers off (the
strongest there is: text COPY spends two thirds of its time parsing floats); text COPY's
figures are printed beside. Each COPY's wall time and its server process's CPU time (which this
machine's I/O stalls do not reach), divided by the ungated COPY of the same round: the
machine's speed drifts between rounds by more than the gate costs. Median (lowest-highest).
The gate runs all six checks: every row names a model with a blank reference (blank_like)
and is looked up by its stored hash (duplicate_vector). The baseline, "ungated", is the
same table with its triggers off (it still computes embedding_hash and keeps its indexes).
With --alternatives, also the designs the gate did not choose (bench/alternatives.sql): a
row-level trigger, and a statement trigger reading the whole transition table as one bytea.
With --one-path, also a copy of chunks (its columns, generated hash, indexes and foreign
key) guarded by embedding_gate.attach() instead of chunks' own triggers: what chunks'
ingest would cost with its verdicts in the attached tables' store (issue 29).
With --engines, also "gate (SQL engine)": the same binary COPY into chunks with the SQL
engine's triggers (sql/engine_sql/, issue 25; applied by no deployment yet) in place of the
PL/Python ones, swapped in as tests/test_sql_engine.py does (its files applied, which
CREATE OR REPLACE the triggers embedding_gate_insert and embedding_gate_update) and back
after each COPY; its ratios to "ungated" stand beside the PL/Python gate's, in the same rounds.
Then CALL recheck_embeddings() throughput in vectors per second, in both databases. Then
the gate on attached tables (embedding_gate.attach()): binary COPY into a framework-shaped
768-d vector table and a 3072-d halfvec table, each against the same table never attached.

    make bench                                  # a throwaway PostgreSQL, 50,000 rows
    make bench BENCH_ARGS="--engines --rows 20000 --repeat 5"   # both engines, one run
    python bench/bench_gate.py --url postgresql://... --rows 20000
"""

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import data  # noqa: E402
from bench.cluster import throwaway_database  # noqa: E402

D = 768
ROOT = Path(__file__).resolve().parent.parent
# the SQL engine's triggers on chunks (issue 25), as tests/test_sql_engine.py installs them
SQL_ENGINE = ROOT / "sql" / "engine_sql"
ENGINE_TRIGGERS = ("embedding_gate_insert", "embedding_gate_update")


def copy_data(rows: int, seed: int = 1) -> "dict[str, bytes]":
    """The same `rows` chunks as binary and as text COPY data."""
    x = data.vectors(0, rows, D, np.random.default_rng(seed))
    return {"binary": data.binary(0, x), "text": data.text(0, x)}


# design -> the trigger that replaces the gate for the run (None: the gate itself, or none);
# a design whose name ends in " text" COPYs the text format, the others the binary one
DESIGNS = {
    "ungated": None,
    "gate": None,
    "ungated text": None,
    "gate text": None,
    "gate (SQL engine)": None,
    "row trigger": "BEFORE INSERT ON chunks FOR EACH ROW EXECUTE FUNCTION bench.row_trigger()",
    "one bytea": "AFTER INSERT ON chunks REFERENCING NEW TABLE AS inserted"
    " FOR EACH STATEMENT EXECUTE FUNCTION bench.one_blob()",
    "empty transition": "AFTER INSERT ON chunks REFERENCING NEW TABLE AS inserted"
    " FOR EACH STATEMENT EXECUTE FUNCTION bench.empty_transition()",
    "read rows": "AFTER INSERT ON chunks REFERENCING NEW TABLE AS inserted"
    " FOR EACH STATEMENT EXECUTE FUNCTION bench.read_rows()",
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


def _copy(conn, sql: str, payload: bytes) -> "tuple[float, float | None]":
    """Wall seconds of a COPY and its commit, after a checkpoint, and the server process's
    CPU seconds."""
    with conn.cursor() as cur:
        cur.execute("CHECKPOINT")
        conn.commit()
        cpu = backend_cpu(conn)
        start = time.perf_counter()
        cur.copy_expert(sql, io.BytesIO(payload))
        conn.commit()
        elapsed = time.perf_counter() - start
    return elapsed, (backend_cpu(conn) - cpu if cpu is not None else None)


def _trigger_definitions(conn) -> "list[str]":
    """CREATE OR REPLACE TRIGGER statements of chunks' gate triggers as they are now."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT pg_get_triggerdef(oid) FROM pg_trigger"
            " WHERE tgrelid = 'public.chunks'::regclass AND tgname = ANY (%s) ORDER BY tgname",
            [list(ENGINE_TRIGGERS)],
        )
        found = [r[0] for r in cur.fetchall()]
    conn.commit()
    if len(found) != len(ENGINE_TRIGGERS):
        raise AssertionError(f"chunks has {len(found)} of the triggers {ENGINE_TRIGGERS}")
    return [d.replace("CREATE TRIGGER", "CREATE OR REPLACE TRIGGER", 1) for d in found]


def prepare_engines(conn) -> "dict[str, list[str]]":
    """The SQL engine's functions, created by its trigger files (sql/engine_sql/001, 010,
    011, as tests/test_sql_engine.py applies them: they also replace chunks' insert and
    update triggers), then the PL/Python triggers put back. Returns, per engine, the
    statements that install its triggers on chunks."""
    engines = {"plpython": _trigger_definitions(conn)}
    with conn.cursor() as cur:
        # (only the files of the triggers: the others, 003 and the stubs of 090, are a SQL
        # engine deployment's, and 090 would replace recheck_embeddings here)
        for name in ("001_settings.sql", "010_insert_trigger.sql", "011_update_trigger.sql"):
            cur.execute((SQL_ENGINE / name).read_text(encoding="utf-8"))
    conn.commit()
    engines["sql"] = _trigger_definitions(conn)
    if engines["sql"] == engines["plpython"]:
        raise AssertionError(f"{SQL_ENGINE} replaced no trigger on chunks")
    use_engine(conn, engines, "plpython")
    return engines


# with --engines: design -> rows flagged by each of its COPYs (the two engines side by side)
FLAGGED: "dict[str, list[int]]" = {}


def use_engine(conn, engines: dict, engine: str) -> None:
    """chunks' insert and update triggers those of `engine` ("plpython" or "sql")."""
    with conn.cursor() as cur:
        for statement in engines[engine]:
            cur.execute(statement)
    conn.commit()


def prepare_one_path(conn) -> None:
    """chunks_attached: chunks' columns, defaults, generated hash and indexes (LIKE ...
    INCLUDING ALL), guarded by embedding_gate.attach() instead of chunks' own triggers:
    what chunks would cost if its verdicts went the attached tables' way (issue 29)."""
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE chunks_attached (LIKE chunks INCLUDING ALL)")
        # (LIKE copies no foreign key: chunks' to documents is part of what a row costs)
        cur.execute("ALTER TABLE chunks_attached ADD FOREIGN KEY (doc_id) REFERENCES documents")
        cur.execute(
            "SELECT embedding_gate.attach('chunks_attached', content_column => 'content',"
            " model_column => 'embedding_model')"
        )
    conn.commit()


def timed_copy(
    conn, payloads: dict, design: str, engines: "dict | None" = None
) -> "tuple[float, float | None]":
    """Wall seconds of the COPY and its commit, and the server process's CPU seconds."""
    if design == "one path":
        with conn.cursor() as cur:
            cur.execute("TRUNCATE chunks_attached")
        conn.commit()
        return _copy(
            conn,
            f"COPY chunks_attached ({data.COLUMNS}) FROM STDIN WITH (FORMAT binary)",
            payloads["binary"],
        )
    trigger = DESIGNS[design]
    form = "text" if design.endswith(" text") else "binary"
    gated = design.startswith("gate")
    engine = design == "gate (SQL engine)"
    if engine:
        use_engine(conn, engines, "sql")
    with conn.cursor() as cur:
        cur.execute("TRUNCATE chunks")
        cur.execute(f"ALTER TABLE chunks {'ENABLE' if gated else 'DISABLE'} TRIGGER USER")
        if trigger:
            cur.execute(f"CREATE TRIGGER bench_design {trigger}")
        conn.commit()
        elapsed, cpu = _copy(
            conn, f"COPY chunks ({data.COLUMNS}) FROM STDIN WITH (FORMAT {form})", payloads[form]
        )
        if trigger and design not in ("empty transition", "read rows"):
            cur.execute("SELECT count(quality_issues) FROM chunks")
            if cur.fetchone()[0] == 0:
                raise AssertionError(f"design {design!r} flagged nothing")
        if engines is not None and design in ("gate", "gate (SQL engine)"):
            cur.execute("SELECT count(quality_issues) FROM chunks")
            FLAGGED.setdefault(design, []).append(cur.fetchone()[0])
            if FLAGGED[design][-1] == 0:
                raise AssertionError(f"design {design!r} flagged nothing")
        if trigger:
            cur.execute("DROP TRIGGER bench_design ON chunks")
        cur.execute("ALTER TABLE chunks ENABLE TRIGGER USER")
        conn.commit()
    if engine:
        use_engine(conn, engines, "plpython")
    return elapsed, cpu


def paired(base: list, other: list) -> str:
    """The ratio base/other of each round, as median (lowest-highest): the machine's speed
    drifts between rounds (the same COPY took 10 s or 13.6 s here), so a design is compared
    with the baseline of its own round."""
    ratios = sorted(b / o for b, o in zip(base, other, strict=True))
    return f"{statistics.median(ratios):.2f}x ({ratios[0]:.2f}-{ratios[-1]:.2f})"


NOTES = {
    "ungated": "binary COPY into the same table, triggers off: the baseline",
    "gate": "binary COPY, 6 checks; target >= 0.90x",
    "ungated text": "text COPY, triggers off",
    "gate text": "text COPY, 6 checks",
    "gate (SQL engine)": "binary COPY, 6 checks, the SQL engine's triggers (issue 25)",
    "one path": "binary COPY into a copy of chunks guarded by attach(): one verdict path",
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


def prepare(conn) -> None:
    """Document d1, and blank_like on: every row names a model that has a reference and a
    calibration."""
    mean = np.random.default_rng(2).standard_normal(D) * 0.01
    with conn.cursor() as cur:
        cur.execute("INSERT INTO documents (doc_id) VALUES ('d1') ON CONFLICT DO NOTHING")
        cur.execute("ALTER TABLE chunks ALTER COLUMN embedding_model SET DEFAULT 'bench'")
        reference = "[" + ",".join(["0.036"] * D) + "]"
        cur.execute("SELECT set_blank_reference('bench', %s::vector)", [reference])
        cur.execute(
            "SELECT set_blank_calibration('bench', %s::real[]::vector, 40)", [mean.tolist()]
        )
    conn.commit()


# attached tables: (name, type, dimension, share of --rows)
ATTACHED = [("fw_vector_768", "vector", 768, 1), ("fw_halfvec_3072", "halfvec", 3072, 4)]


def timed_table_copy(conn, table: str, payload: bytes) -> "tuple[float, float | None]":
    """Wall and server CPU seconds of a binary COPY into an emptied table."""
    with conn.cursor() as cur:
        cur.execute(f"TRUNCATE {table}")
    conn.commit()
    return _copy(
        conn, f"COPY {table} (id, content, embedding) FROM STDIN WITH (FORMAT binary)", payload
    )


def bench_attached(conn, rows: int, repeat: int) -> None:
    """Per table shape: binary COPY into the table attached to the gate, into the same table
    never attached (no trigger, no hash index), and into one with the hash index alone (as
    chunks' baseline has), each round in another order, over `repeat` rounds."""
    print("attached tables (embedding_gate.attach), binary COPY:")
    with conn.cursor() as cur:
        for name, kind, dim, _ in ATTACHED:
            for table in (name, name + "_plain", name + "_indexed"):
                cur.execute(
                    f"CREATE TABLE {table} (id text PRIMARY KEY, content text,"
                    f" embedding {kind}({dim}))"
                )
            # the index attach() creates, alone: what chunks' baseline pays too
            cur.execute(f"CREATE INDEX ON {name}_indexed (embedding_gate.{kind}_hash(embedding))")
            # blank_like on, as on chunks: a model of this dimension, with its reference
            model = f"bench{dim}"
            reference = np.full(dim, 1 / dim**0.5, dtype=np.float32)
            mean = np.random.default_rng(2).standard_normal(dim) * 0.01
            cur.execute(
                "SELECT set_blank_reference(%s, %s::real[]::vector)", [model, reference.tolist()]
            )
            cur.execute(
                "SELECT set_blank_calibration(%s, %s::real[]::vector, 40)", [model, mean.tolist()]
            )
            cur.execute(
                "SELECT embedding_gate.attach(%s, content_column => 'content', model => %s)",
                [name, model],
            )
            # a unit vector's variance is about 1/d: 0.0003 at 3072-d, under the default
            cur.execute(
                "SELECT embedding_gate.set_table_settings(%s, jsonb_build_object("
                "'min_variance', 0.1 / %s))",
                [name, dim],
            )
    conn.commit()
    for name, kind, dim, share in ATTACHED:
        n = rows // share
        x = data.vectors(0, n, dim, np.random.default_rng(3))
        payload = data.binary_rows(0, x, kind)
        designs = ["plain", "indexed", "gate"]
        times = {d: [] for d in designs}
        cpus = {d: [] for d in designs}
        for r in range(repeat):
            for design in designs[r % 3 :] + designs[: r % 3]:
                table = name if design == "gate" else f"{name}_{design}"
                elapsed, cpu = timed_table_copy(conn, table, payload)
                times[design].append(elapsed)
                cpus[design].append(cpu)
        with conn.cursor() as cur:
            cur.execute(
                "SELECT flagged FROM embedding_gate.attached WHERE table_name = %s",
                ["public." + name],
            )
            flagged = cur.fetchone()[0]
        conn.commit()
        print(
            f"  {name}, {n:,} rows, {flagged} flagged:"
            f" {n / statistics.median(times['plain']):,.0f} rows/s never attached"
        )
        for design, base in (("gate", "plain"), ("indexed", "plain"), ("gate", "indexed")):
            cpu = ""
            if None not in cpus[design] + cpus[base]:
                extra = (statistics.median(cpus[design]) - statistics.median(cpus[base])) / n
                cpu = f", CPU {paired(cpus[base], cpus[design])}, +{extra * 1e6:.1f} µs/row"
            print(f"    {design} vs {base}: {paired(times[base], times[design])}{cpu}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a database at head (default: a throwaway cluster)")
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument(
        "--alternatives", action="store_true", help="also time the designs the gate did not choose"
    )
    parser.add_argument(
        "--one-path",
        action="store_true",
        help="also time a copy of chunks guarded by attach() (one verdict path for every table)",
    )
    parser.add_argument(
        "--engines",
        action="store_true",
        help="also time chunks with the SQL engine's triggers (sql/engine_sql/) in place of"
        " the PL/Python ones",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, throwaway_database(args.url, Path(tmp)) as url:
        conn = psycopg2.connect(url)
        prepare(conn)
        t0 = time.perf_counter()
        payloads = copy_data(args.rows)
        print(
            f"{args.rows} rows of {D}-d vectors, binary COPY {len(payloads['binary']) / 1e6:.0f} MB"
            f" and text COPY {len(payloads['text']) / 1e6:.0f} MB,"
            f" built in {time.perf_counter() - t0:.1f} s"
        )
        designs = ["ungated", "gate", "ungated text", "gate text"]
        if args.alternatives:
            with conn.cursor() as cur:
                cur.execute((Path(__file__).parent / "alternatives.sql").read_text())
            conn.commit()
            designs += ["row trigger", "one bytea", "empty transition", "read rows"]
        if args.one_path:
            prepare_one_path(conn)
            designs.append("one path")
        engines = None
        if args.engines:
            engines = prepare_engines(conn)
            designs.append("gate (SQL engine)")
        times = {d: [] for d in designs}
        cpus = {d: [] for d in designs}
        for r in range(args.repeat):
            # each round in another order: no design always runs first, or last
            for design in designs[r % len(designs) :] + designs[: r % len(designs)]:
                elapsed, cpu = timed_copy(conn, payloads, design, engines)
                times[design].append(elapsed)
                cpus[design].append(cpu)
                used = f", server CPU {cpu:.2f} s" if cpu is not None else ""
                print(f"  round {r + 1} {design:12s} {elapsed:.2f} s{used}", flush=True)
        report(designs, times, cpus, args.rows)
        print(f"text COPY, gate vs no gate: {paired(times['ungated text'], times['gate text'])}")
        if engines is not None:
            print(
                "rows flagged a COPY: PL/Python "
                + "/".join(map(str, sorted(set(FLAGGED["gate"]))))
                + ", SQL engine "
                + "/".join(map(str, sorted(set(FLAGGED["gate (SQL engine)"]))))
            )
        # leave the table as the gate loaded it, for the recheck
        timed_copy(conn, payloads, "gate")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("VACUUM ANALYZE chunks")
            cur.execute("SELECT count(*), count(quality_issues) FROM chunks")
            stored, flagged = cur.fetchone()
            print(f"the gate flagged {flagged} of {stored} rows")
            # the baseline: only reading every vector out of the table, as the recheck does
            start = time.perf_counter()
            cur.execute("SELECT sum(length(embedding_gate.vector_bytes(embedding))) FROM chunks")
            read = time.perf_counter() - start
            rechecks = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                cur.execute("CALL recheck_embeddings()")
                checked, low = cur.fetchone()
                rechecks.append(time.perf_counter() - start)
        elapsed = statistics.median(rechecks)
        print(f"reading every vector (baseline): {stored / read:,.0f} vectors/s")
        print(
            f"recheck_embeddings(): {checked} vectors in {elapsed:.2f} s"
            f" = {checked / elapsed:,.0f} vectors/s, {read / elapsed:.2f}x of the bare read"
            f" ({low} low quality; target >= 100,000/s)"
        )
        conn.autocommit = False
        bench_attached(conn, args.rows, args.repeat)
        conn.close()


if __name__ == "__main__":
    main()
