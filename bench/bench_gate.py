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
With --engines, a second database in the same cluster deployed with the SQL engine
(sql/engine_sql/, issue 25) as a managed service has it: a superuser creates the role
gate_managed_owner (LOGIN CREATEROLE NOSUPERUSER), makes it the database's owner, creates
`vector` and grants it pg_read_all_data; that role runs `alembic -x engine=sql upgrade head`
and every COPY there. Its "ungated (SQL deployment)" (the same binary COPY, triggers off: its
chunks' embedding_hash is the SQL engine's vector_hash) and "gate (SQL engine)" run in the same
rounds as the PL/Python database's designs; each gate's ratios are to the ungated COPY of its
own database, and the SQL engine's to the PL/Python database's too.
Then CALL recheck_embeddings() throughput in vectors per second, in each database. Then
the gate on attached tables (embedding_gate.attach()): binary COPY into an application's
768-d table items(id bigint, body text, emb vector(768)) and a framework-shaped 3072-d
halfvec table, each against the same table never attached, under each engine (--engines).

    make bench                                  # a throwaway PostgreSQL, 50,000 rows
    make bench BENCH_ARGS="--engines --rows 20000 --repeat 5"   # both engines, one run
    python bench/bench_gate.py --url postgresql://... --rows 20000
"""

import argparse
import io
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg2
from psycopg2.extensions import parse_dsn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import data  # noqa: E402
from bench.cluster import throwaway_database  # noqa: E402

D = 768
ROOT = Path(__file__).resolve().parent.parent
# with --engines: the database deployed with the SQL engine, and the role that owns it
SQL_DATABASE = "gate_bench_sql"
MANAGED_OWNER = "gate_managed_owner"


def copy_data(rows: int, seed: int = 1) -> "dict[str, bytes]":
    """The same `rows` chunks as binary and as text COPY data."""
    x = data.vectors(0, rows, D, np.random.default_rng(seed))
    return {"binary": data.binary(0, x), "text": data.text(0, x)}


# design -> the trigger that replaces the gate for the run (None: the gate itself, or none);
# a design whose name ends in " text" COPYs the text format, the others the binary one; one
# whose name ends in "(SQL ...)" COPYs into the SQL engine's database (--engines)
DESIGNS = {
    "ungated": None,
    "gate": None,
    "ungated text": None,
    "gate text": None,
    "ungated (SQL deployment)": None,
    "gate (SQL engine)": None,
    "row trigger": "BEFORE INSERT ON chunks FOR EACH ROW EXECUTE FUNCTION bench.row_trigger()",
    "one bytea": "AFTER INSERT ON chunks REFERENCING NEW TABLE AS inserted"
    " FOR EACH STATEMENT EXECUTE FUNCTION bench.one_blob()",
    "empty transition": "AFTER INSERT ON chunks REFERENCING NEW TABLE AS inserted"
    " FOR EACH STATEMENT EXECUTE FUNCTION bench.empty_transition()",
    "read rows": "AFTER INSERT ON chunks REFERENCING NEW TABLE AS inserted"
    " FOR EACH STATEMENT EXECUTE FUNCTION bench.read_rows()",
}
# the baseline of a design: the ungated binary COPY into chunks of the same database
BASELINE = {"ungated (SQL deployment)": "ungated", "gate (SQL engine)": "ungated (SQL deployment)"}


def engine_of(design: str) -> str:
    """The database a design COPYs into: "sql" (the SQL engine's) or "plpython"."""
    return (
        "sql"
        if design.endswith("(SQL deployment)") or design.endswith("(SQL engine)")
        else "plpython"
    )


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


def _copy(conn, sql: str, payload: bytes, admin=None) -> "tuple[float, float | None]":
    """Wall seconds of a COPY and its commit, after a checkpoint (by `admin`, a superuser's
    connection, where conn's role may not: the SQL engine's owner), and the server process's
    CPU seconds."""
    with (admin or conn).cursor() as cur:
        cur.execute("CHECKPOINT")
    (admin or conn).commit()
    cpu = backend_cpu(conn)
    with conn.cursor() as cur:
        start = time.perf_counter()
        cur.copy_expert(sql, io.BytesIO(payload))
        conn.commit()
        elapsed = time.perf_counter() - start
    return elapsed, (backend_cpu(conn) - cpu if cpu is not None else None)


def _url(dsn: str, **change: str) -> str:
    """The URL of dsn (a URL or key=value) with its user or dbname changed."""
    info = {**parse_dsn(dsn), **change}
    auth = info["user"] + (":" + info["password"] if info.get("password") else "")
    host, port = info.get("host", "127.0.0.1"), info.get("port", 5432)
    return f"postgresql://{auth}@{host}:{port}/{info['dbname']}"


def deploy_sql_engine(url: str) -> str:
    """The database SQL_DATABASE on url's server (url: a superuser's), left as a managed
    service's provider leaves one (owned by MANAGED_OWNER, LOGIN CREATEROLE NOSUPERUSER,
    who reads every table; `vector` created), then deployed by that owner with the SQL engine,
    as tests/helpers.prepare_managed and tests/conftest.deploy_head do. Returns the owner's URL."""
    admin = psycopg2.connect(url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {SQL_DATABASE}")
        cur.execute(
            f"""DO $$ BEGIN
                IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{MANAGED_OWNER}') THEN
                    CREATE ROLE {MANAGED_OWNER} LOGIN CREATEROLE NOSUPERUSER;
                END IF;
            END $$"""
        )
        cur.execute(f"GRANT pg_read_all_data TO {MANAGED_OWNER}")
        cur.execute(f"ALTER DATABASE {SQL_DATABASE} OWNER TO {MANAGED_OWNER}")
    admin.close()
    there = _url(url, dbname=SQL_DATABASE)
    with psycopg2.connect(there) as conn, conn.cursor() as cur:
        cur.execute("CREATE EXTENSION IF NOT EXISTS vector")
    conn.close()
    owner = _url(url, dbname=SQL_DATABASE, user=MANAGED_OWNER)
    subprocess.run(
        [sys.executable, "-m", "alembic", "-c", ROOT / "alembic.ini"]
        + ["-x", f"embedding_dim={D}", "-x", "engine=sql", "upgrade", "head"],
        check=True,
        env={"DATABASE_URL": owner, "PATH": "/usr/bin:/bin"},
    )
    with psycopg2.connect(owner) as conn, conn.cursor() as cur:
        cur.execute("SELECT engine FROM embedding_gate.engine")
        engine = cur.fetchone()
        cur.execute("SELECT count(*) FROM pg_language WHERE lanname LIKE 'plpython%'")
        languages = cur.fetchone()
    conn.close()
    if engine != ("sql",) or languages != (0,):
        raise AssertionError(f"{SQL_DATABASE}: engine {engine}, {languages[0]} PL/Python languages")
    return owner


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


# design -> rows flagged by each of its COPYs (checked: a gate that flags nothing is broken)
FLAGGED: "dict[str, list[int]]" = {}


def timed_copy(conns: dict, payloads: dict, design: str) -> "tuple[float, float | None]":
    """Wall seconds of the COPY and its commit, and the server process's CPU seconds.
    conns: engine -> connection ("plpython": the superuser's, also for the checkpoints)."""
    admin = conns["plpython"]
    conn = conns[engine_of(design)]
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
    with conn.cursor() as cur:
        cur.execute("TRUNCATE chunks")
        cur.execute(f"ALTER TABLE chunks {'ENABLE' if gated else 'DISABLE'} TRIGGER USER")
        if trigger:
            cur.execute(f"CREATE TRIGGER bench_design {trigger}")
        conn.commit()
        elapsed, cpu = _copy(
            conn,
            f"COPY chunks ({data.COLUMNS}) FROM STDIN WITH (FORMAT {form})",
            payloads[form],
            admin,
        )
        if gated or (trigger and design not in ("empty transition", "read rows")):
            cur.execute("SELECT count(quality_issues) FROM chunks")
            FLAGGED.setdefault(design, []).append(cur.fetchone()[0])
            if FLAGGED[design][-1] == 0:
                raise AssertionError(f"design {design!r} flagged nothing")
        if trigger:
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
    "ungated": "binary COPY into the same table, triggers off: the baseline",
    "gate": "binary COPY, 6 checks, PL/Python engine; target >= 0.90x",
    "ungated text": "text COPY, triggers off",
    "gate text": "text COPY, 6 checks",
    "ungated (SQL deployment)": "binary COPY, triggers off, into chunks of the SQL engine's"
    " database: its baseline",
    "gate (SQL engine)": "binary COPY, 6 checks, the SQL engine (issue 25), as its owner",
    "one path": "binary COPY into a copy of chunks guarded by attach(): one verdict path",
}


def report(designs: list, times: dict, cpus: dict, rows: int) -> None:
    """Per design: rows/s (median), and the wall and server CPU ratios against the ungated
    COPY of the same round into the same database ("ungated (SQL deployment)" for the SQL
    engine's gate, which is also compared with the PL/Python database's "ungated")."""
    cpu = {d: c for d, c in cpus.items() if None not in c}
    width = max(map(len, designs))
    print(
        f"{'design':{width}s} {'rows/s':>8s}  {'wall vs baseline':24s} {'CPU µs/row':>10s}"
        f"  {'CPU vs baseline':24s} baseline"
    )
    for design in designs:
        for base in dict.fromkeys([BASELINE.get(design, "ungated"), "ungated"]):
            used = f"{'':10s}  {'':24s}"
            if design in cpu and base in cpu:
                used = f"{statistics.median(cpu[design]) / rows * 1e6:10.1f}  " + (
                    f"{paired(cpu[base], cpu[design]):24s}"
                )
            first = base == BASELINE.get(design, "ungated")
            print(
                f"{design if first else '':{width}s} "
                + (f"{rows / statistics.median(times[design]):8,.0f}" if first else " " * 8)
                + f"  {paired(times[base], times[design]):24s} {used} {base}"
                + (f"  ({NOTES.get(design, 'an alternative design')})" if first else "")
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


# attached tables: (name, id type, content column, embedding column, type, dimension,
# share of --rows); items is an application's table, the other a framework's
ATTACHED = [
    ("items", "bigint", "body", "emb", "vector", 768, 1),
    ("fw_halfvec_3072", "text", "content", "embedding", "halfvec", 3072, 4),
]


def table_rows(x: np.ndarray, id_type: str, kind: str) -> bytes:
    """Binary COPY data of (id, content, embedding) rows: ids 0.. as bigint or text."""
    if id_type == "text":
        return data.binary_rows(0, x, kind)
    n, dim = x.shape
    width = 2 if kind == "halfvec" else 4
    big = x.astype(">f2" if kind == "halfvec" else ">f4")
    vector = struct.pack("!i", 4 + width * dim) + struct.pack("!hh", dim, 0)
    out = [b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)]
    for k in range(n):
        body = f"text {k}".encode()
        out.append(struct.pack("!hiq", 3, 8, k) + struct.pack("!i", len(body)) + body)
        out.append(vector + big[k].tobytes())
    out.append(struct.pack("!h", -1))
    return b"".join(out)


def prepare_attached(conn) -> None:
    """Per table shape: the table attached to the gate, the same never attached, and one with
    the hash index alone (as chunks' baseline has); blank_like on."""
    with conn.cursor() as cur:
        for name, id_type, content, column, kind, dim, _ in ATTACHED:
            for table in (name, name + "_plain", name + "_indexed"):
                cur.execute(
                    f"CREATE TABLE {table} (id {id_type} PRIMARY KEY, {content} text,"
                    f" {column} {kind}({dim}))"
                )
            # the index attach() creates, alone: what chunks' baseline pays too
            cur.execute(f"CREATE INDEX ON {name}_indexed (embedding_gate.{kind}_hash({column}))")
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
                "SELECT * FROM embedding_gate.attach(%s, %s, content_column => %s, model => %s)",
                [name, column, content, model],
            )
            # a unit vector's variance is about 1/d: 0.0003 at 3072-d, under the default
            cur.execute(
                "SELECT embedding_gate.set_table_settings(%s, jsonb_build_object("
                "'min_variance', 0.1 / %s))",
                [name, dim],
            )
    conn.commit()


ENGINE_NAMES = {"plpython": "PL/Python", "sql": "SQL engine"}


def bench_attached(conns: dict, rows: int, repeat: int) -> None:
    """Per table shape and engine: binary COPY into the table attached to the gate, into the
    same table never attached (no trigger, no hash index), and into one with the hash index
    alone, all in each of `repeat` rounds, each round in another order; ratios to the never
    attached table of the same database and round."""
    print("attached tables (embedding_gate.attach), binary COPY:")
    for conn in conns.values():
        prepare_attached(conn)
    for name, id_type, content, column, kind, dim, share in ATTACHED:
        n = rows // share
        x = data.vectors(0, n, dim, np.random.default_rng(3))
        payload = table_rows(x, id_type, kind)
        sql = f"COPY {{}} (id, {content}, {column}) FROM STDIN WITH (FORMAT binary)"
        designs = [(e, d) for e in conns for d in ("plain", "indexed", "gate")]
        times = {d: [] for d in designs}
        cpus = {d: [] for d in designs}
        # untimed, a COPY into each attached table first (its first in the session)
        for conn in conns.values():
            _copy(conn, sql.format(name), payload, conns["plpython"])
        for r in range(repeat):
            turn = r % len(designs)
            for engine, design in designs[turn:] + designs[:turn]:
                conn = conns[engine]
                table = name if design == "gate" else f"{name}_{design}"
                with conn.cursor() as cur:
                    cur.execute(f"TRUNCATE {table}")
                conn.commit()
                elapsed, cpu = _copy(conn, sql.format(table), payload, conns["plpython"])
                times[engine, design].append(elapsed)
                cpus[engine, design].append(cpu)
        for engine, conn in conns.items():
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT flagged FROM embedding_gate.attached WHERE table_name = %s",
                    ["public." + name],
                )
                flagged = cur.fetchone()[0]
            conn.commit()
            plain = (engine, "plain")
            print(
                f"  {name}, {n:,} rows, {ENGINE_NAMES[engine]}, {flagged} flagged by the last COPY:"
                f" {n / statistics.median(times[plain]):,.0f} rows/s never attached"
            )
            for design, base in (("gate", "plain"), ("indexed", "plain"), ("gate", "indexed")):
                a, b = (engine, design), (engine, base)
                used = ""
                if None not in cpus[a] + cpus[b]:
                    extra = (statistics.median(cpus[a]) - statistics.median(cpus[b])) / n
                    used = f", CPU {paired(cpus[b], cpus[a])}, +{extra * 1e6:.1f} µs/row"
                print(f"    {design} vs {base}: {paired(times[b], times[a])}{used}")


def recheck(conns: dict, engine: str, payloads: dict, repeat: int) -> None:
    """CALL recheck_embeddings() throughput in the engine's database, over chunks as its gate
    loaded them, against only reading every vector out of the table."""
    timed_copy(conns, payloads, "gate" if engine == "plpython" else "gate (SQL engine)")
    conn = conns[engine]
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("VACUUM ANALYZE chunks")
        cur.execute("SELECT count(*), count(quality_issues) FROM chunks")
        stored, flagged = cur.fetchone()
        print(f"{ENGINE_NAMES[engine]}: the gate flagged {flagged} of {stored} rows")
        # the baseline: only reading every vector out of the table, as the recheck does
        start = time.perf_counter()
        cur.execute("SELECT sum(length(embedding_gate.vector_bytes(embedding))) FROM chunks")
        read = time.perf_counter() - start
        rechecks = []
        for _ in range(repeat):
            start = time.perf_counter()
            cur.execute("CALL recheck_embeddings()")
            checked, low = cur.fetchone()
            rechecks.append(time.perf_counter() - start)
    conn.autocommit = False
    elapsed = statistics.median(rechecks)
    print(f"  reading every vector (baseline): {stored / read:,.0f} vectors/s")
    print(
        f"  recheck_embeddings(): {checked} vectors in {elapsed:.2f} s"
        f" = {checked / elapsed:,.0f} vectors/s, {read / elapsed:.2f}x of the bare read"
        f" ({low} low quality; target >= 100,000/s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url", help="a superuser's database at head (default: a throwaway cluster)"
    )
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
        help=f"also time a database ({SQL_DATABASE}, created on the same server) deployed with"
        f" the SQL engine by a database owner who is not a superuser ({MANAGED_OWNER})",
    )
    parser.add_argument(
        "--no-attached", action="store_true", help="skip the attached tables' benchmark"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, throwaway_database(args.url, Path(tmp)) as url:
        conns = {"plpython": psycopg2.connect(url)}
        if args.engines:
            t0 = time.perf_counter()
            conns["sql"] = psycopg2.connect(deploy_sql_engine(url))
            print(
                f"{SQL_DATABASE}: deployed with the SQL engine by {MANAGED_OWNER}"
                f" in {time.perf_counter() - t0:.1f} s"
            )
        for conn in conns.values():
            prepare(conn)
        conn = conns["plpython"]
        t0 = time.perf_counter()
        payloads = copy_data(args.rows)
        print(
            f"{args.rows} rows of {D}-d vectors, binary COPY {len(payloads['binary']) / 1e6:.0f} MB"
            f" and text COPY {len(payloads['text']) / 1e6:.0f} MB,"
            f" built in {time.perf_counter() - t0:.1f} s; load average {os.getloadavg()[0]:.2f}"
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
        if args.engines:
            designs += ["ungated (SQL deployment)", "gate (SQL engine)"]
        width = max(map(len, designs))
        times = {d: [] for d in designs}
        cpus = {d: [] for d in designs}
        # untimed, a gated COPY in each database first: PL/Python's interpreter and numpy
        # start once a connection (0.1-0.2 s), and the caches fill, outside the rounds
        for design in [d for d in ("gate", "gate (SQL engine)") if d in designs]:
            timed_copy(conns, payloads, design)
            FLAGGED.pop(design)
        for r in range(args.repeat):
            # each round in another order: no design always runs first, or last
            for design in designs[r % len(designs) :] + designs[: r % len(designs)]:
                elapsed, cpu = timed_copy(conns, payloads, design)
                times[design].append(elapsed)
                cpus[design].append(cpu)
                used = f", server CPU {cpu:.2f} s" if cpu is not None else ""
                print(f"  round {r + 1} {design:{width}s} {elapsed:.2f} s{used}", flush=True)
        report(designs, times, cpus, args.rows)
        print(f"text COPY, gate vs no gate: {paired(times['ungated text'], times['gate text'])}")
        print(
            "rows flagged a COPY: "
            + ", ".join(
                f"{design} " + "/".join(map(str, sorted(set(FLAGGED[design]))))
                for design in designs
                if design in FLAGGED
            )
        )
        line = "ingest, binary COPY, each engine's gate vs the same table ungated (wall; CPU):"
        for design in ("gate", "gate (SQL engine)"):
            if design in designs:
                base = BASELINE.get(design, "ungated")
                line += f" {design} {paired(times[base], times[design])}"
                if None not in cpus[design] + cpus[base]:
                    line += f"; {paired(cpus[base], cpus[design])}"
        print(line)
        if args.engines:
            print(
                "ungated, the SQL engine's chunks vs the PL/Python deployment's:"
                f" {paired(times['ungated'], times['ungated (SQL deployment)'])}"
            )
        print(f"load average {os.getloadavg()[0]:.2f} after the rounds")
        for engine in conns:
            recheck(conns, engine, payloads, args.repeat)
        if not args.no_attached:
            bench_attached(conns, args.rows, args.repeat)
        print(f"load average {os.getloadavg()[0]:.2f} at the end")
        for conn in conns.values():
            conn.close()
        if args.engines and args.url:
            admin = psycopg2.connect(url)
            admin.autocommit = True
            with admin.cursor() as cur:
                cur.execute(f"DROP DATABASE {SQL_DATABASE}")
            admin.close()


if __name__ == "__main__":
    main()
