"""Concurrent writers (issue 30): the gate adds no failure to an application's writes, and its
verdicts describe each row's current vector when everyone has stopped.

The workload is a LangChain-style application's (langchain-postgres' add_embeddings): several
writer connections upsert overlapping ids of an attached table with INSERT ... ON CONFLICT (id)
DO UPDATE, ids in sorted order, 25 rows a statement, 30% of them zero vectors, with an
occasional single-row DELETE; others upsert and update chunks; meanwhile CALL
recheck_embeddings(), CALL embedding_gate.check_existing() and the reports loop. It is bounded
in statements (and, as a guard, in time) and stops by itself. The same workload on the same
table never attached is the baseline: it has no error either. bench/bench_concurrency.py runs
it at READ COMMITTED and SERIALIZABLE and prints the ratios.
"""

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import psycopg
import pytest

from tests.helpers import vec

D = 16  # the attached table's dimension
CHUNK_D = 768  # the test deployment's (chunks)
IDS = 120  # ids each table's writers draw from (25 a statement: they overlap a lot)
ROWS = 25
ZERO_SHARE = 0.3
DELETE_SHARE = 0.1
GUARD_SECONDS = 60  # a run stops by itself well before; this only bounds a hung one


@dataclass
class Outcome:
    """What a run did: errors per (who, SQLSTATE, message's first line), statements the
    writers committed, and how long the writers took."""

    errors: Counter = field(default_factory=Counter)
    committed: int = 0
    serialization_failures: int = 0
    failure_kinds: Counter = field(default_factory=Counter)  # their messages' first lines
    writer_seconds: float = 0.0
    background: Counter = field(default_factory=Counter)  # loops the background ran
    details: list = field(default_factory=list)  # the first errors' DETAIL and CONTEXT

    def error_lines(self) -> list:
        lines = [f"{n} x {who}: {state} {msg}" for (who, state, msg), n in self.errors.items()]
        return lines + self.details if lines else []


def _vector(rng: random.Random, d: int, zero: bool) -> str:
    if zero:
        return vec(np.zeros(d))
    x = np.array([rng.gauss(0, 1) for _ in range(d)], dtype=np.float32)
    return vec(x / np.linalg.norm(x))


class Workload:
    """The threads of one run, sharing an Outcome; each connects on its own."""

    def __init__(
        self,
        url: str,
        seed: int,
        *,
        table: str = "items",
        attached: bool = True,
        writers: int = 4,
        chunk_writers: int = 2,
        statements: int = 30,
        isolation: str = "read committed",
        background_isolation: "str | None" = None,
        recheck: bool = True,
        reports: bool = True,
    ):
        self.url, self.seed, self.table = url, seed, table
        self.attached = attached
        self.writers, self.chunk_writers, self.statements = writers, chunk_writers, statements
        self.isolation = isolation
        # the sessions' default for the background (recheck, check_existing, reports):
        # the writers' level unless told
        self.background_isolation = background_isolation or isolation
        self.recheck, self.reports = recheck, reports
        self.outcome = Outcome()
        self.lock = threading.Lock()
        self.writing = threading.Event()
        self.deadline = time.monotonic() + GUARD_SECONDS

    def _error(self, who: str, e: psycopg.Error) -> None:
        state = e.sqlstate or "-"
        with self.lock:
            if (
                self.isolation == "serializable"
                and state in ("40001", "40P01")
                and who in ("writer", "chunk writer")
            ):
                # under SERIALIZABLE, an application retries these; counted apart
                self.outcome.serialization_failures += 1
                self.outcome.failure_kinds[str(e).splitlines()[0]] += 1
                return
            self.outcome.errors[(who, state, str(e).splitlines()[0])] += 1
            if len(self.outcome.details) < 5:
                self.outcome.details.append(f"{who}: {e.diag.message_detail} / {e.diag.context}")

    def _connect(self) -> psycopg.Connection:
        conn = psycopg.connect(self.url, autocommit=True)
        conn.execute("SET deadlock_timeout = '200ms'")  # a deadlock shows up in the run
        return conn

    def _writer(self, k: int) -> None:
        rng = random.Random(self.seed * 1000 + k)
        with self._connect() as conn:
            for n in range(self.statements):
                if time.monotonic() > self.deadline:
                    return
                ids = sorted(rng.sample(range(IDS), ROWS))
                rows = [
                    (
                        f"id-{i:04d}",
                        f"text {i} of writer {k}, #{n}",
                        _vector(rng, D, rng.random() < ZERO_SHARE),
                    )
                    for i in ids
                ]
                values = ", ".join(["(%s, %s, %s::vector)"] * len(rows))
                self._write(
                    conn,
                    "writer",
                    [
                        (
                            f"INSERT INTO {self.table} (id, document, embedding) VALUES {values}"
                            " ON CONFLICT (id) DO UPDATE SET embedding = excluded.embedding,"
                            " document = excluded.document",
                            [x for r in rows for x in r],
                        )
                    ],
                )
                if rng.random() < DELETE_SHARE:
                    self._write(
                        conn,
                        "writer",
                        [
                            (
                                f"DELETE FROM {self.table} WHERE id = %s",
                                [f"id-{rng.randrange(IDS):04d}"],
                            )
                        ],
                    )

    def _chunk_writer(self, k: int) -> None:
        rng = random.Random(self.seed * 1000 + 500 + k)
        with self._connect() as conn:
            for n in range(self.statements):
                if time.monotonic() > self.deadline:
                    return
                if rng.random() < 0.5:
                    ids = sorted(rng.sample(range(IDS), ROWS))
                    rows = [
                        (
                            f"c-{i:04d}",
                            "d1",
                            f"chunk {i} by {k}, #{n}",
                            _vector(rng, CHUNK_D, rng.random() < ZERO_SHARE),
                        )
                        for i in ids
                    ]
                    values = ", ".join(["(%s, %s, %s, %s::vector)"] * len(rows))
                    statement = (
                        f"INSERT INTO chunks (chunk_id, doc_id, content, embedding) VALUES {values}"
                        " ON CONFLICT (chunk_id) DO UPDATE SET embedding = excluded.embedding,"
                        " content = excluded.content",
                        [x for r in rows for x in r],
                    )
                else:  # the embeddings of a few chunks, one statement each, in id order
                    statement = None
                    ids = sorted(rng.sample(range(IDS), 3))
                    updates = [
                        (
                            "UPDATE chunks SET embedding = %s::vector WHERE chunk_id = %s",
                            [_vector(rng, CHUNK_D, rng.random() < ZERO_SHARE), f"c-{i:04d}"],
                        )
                        for i in ids
                    ]
                self._write(conn, "chunk writer", [statement] if statement else updates)
                if rng.random() < DELETE_SHARE:
                    self._write(
                        conn,
                        "chunk writer",
                        [
                            (
                                "DELETE FROM chunks WHERE chunk_id = %s",
                                [f"c-{rng.randrange(IDS):04d}"],
                            )
                        ],
                    )

    def _write(self, conn, who: str, statements: list) -> None:
        try:
            with conn.transaction():
                if self.isolation != "read committed":
                    conn.execute(f"SET TRANSACTION ISOLATION LEVEL {self.isolation}")
                for sql, params in statements:
                    conn.execute(sql, params)
            with self.lock:
                self.outcome.committed += 1
        except psycopg.Error as e:
            self._error(who, e)

    def _loop(self, who: str, statements: list) -> None:
        with self._connect() as conn:
            conn.execute(f"SET default_transaction_isolation = '{self.background_isolation}'")
            conn.add_notice_handler(lambda _: None)
            while self.writing.is_set() and time.monotonic() < self.deadline:
                for sql in statements:
                    try:
                        conn.execute(sql)
                        with self.lock:
                            self.outcome.background[who] += 1
                    except psycopg.Error as e:
                        self._error(who, e)

    def run(self) -> Outcome:
        writers = [threading.Thread(target=self._writer, args=(k,)) for k in range(self.writers)]
        writers += [
            threading.Thread(target=self._chunk_writer, args=(k,))
            for k in range(self.chunk_writers)
        ]
        background = []
        if self.recheck:
            background.append(
                (
                    "recheck",
                    [
                        "CALL recheck_embeddings()",
                        "CALL recheck_embeddings(20)",
                    ],
                )
            )
            if self.attached:
                background.append(
                    (
                        "check_existing",
                        [
                            f"CALL embedding_gate.check_existing('{self.table}', 30)",
                        ],
                    )
                )
        if self.reports:
            background.append(
                (
                    "reports",
                    [
                        "SELECT * FROM low_quality_embeddings",
                        "SELECT * FROM embedding_quality_summary",
                        "SELECT * FROM verify_embeddings(20)",
                    ],
                )
            )
        loops = [threading.Thread(target=self._loop, args=b) for b in background]
        self.writing.set()
        for t in loops:
            t.start()
        start = time.monotonic()
        for t in writers:
            t.start()
        for t in writers:
            t.join()
        self.outcome.writer_seconds = time.monotonic() - start
        self.writing.clear()
        for t in loops:
            t.join()
        return self.outcome


def create_table(db, table: str = "items", attach: bool = True, content: bool = True) -> None:
    """A table as langchain-postgres creates it (text id, the text, the vector), and the
    document the chunk writers' chunks belong to."""
    db.execute(
        f"CREATE TABLE {table} (id text PRIMARY KEY, document text,"
        " cmetadata jsonb DEFAULT '{}', embedding vector(16))"
    )
    db.execute("INSERT INTO documents (doc_id) VALUES ('d1') ON CONFLICT DO NOTHING")
    if attach:
        db.execute(
            "SELECT embedding_gate.attach(%s, content_column => %s)",
            [table, "document" if content else None],
        )


def _bad(text: str) -> bool:
    x = np.array([float(c) for c in text.strip("[]").split(",")])
    return bool(np.linalg.norm(x) < 0.1)


def stale_verdicts(db, table: str = "items") -> dict:
    """What the gate's verdicts get wrong now, per table: rows flagged whose vector is fine,
    bad rows unflagged, verdicts of rows that are gone."""
    rows = db.execute(f"SELECT id, embedding::text FROM {table}").fetchall()
    bad = {i for i, e in rows if e is not None and _bad(e)}
    ids = {i for i, _ in rows}
    flagged = {
        r
        for (r,) in db.execute(
            "SELECT row_id FROM embedding_gate.verdicts WHERE table_oid = %s::regclass", [table]
        )
    }
    chunks = db.execute(
        "SELECT chunk_id, embedding::text, quality_issues IS NOT NULL FROM chunks"
    ).fetchall()
    chunk_bad = {c for c, e, _ in chunks if e is not None and _bad(e)}
    chunk_flagged = {c for c, _, f in chunks if f}
    wrong = {
        "flagged but fine": sorted(flagged & ids - bad),
        "bad but not flagged": sorted(bad - flagged),
        "verdict of a vanished row": sorted(flagged - ids),
        "chunk flagged but fine": sorted(chunk_flagged - chunk_bad),
        "bad chunk not flagged": sorted(chunk_bad - chunk_flagged),
    }
    return {k: v for k, v in wrong.items() if v}


# (the third with the background's sessions at SERIALIZABLE by default, as a deployment may
# set default_transaction_isolation: the recheck's batches still run at READ COMMITTED)
@pytest.mark.parametrize(
    ("seed", "background"),
    [(1, "read committed"), (2, "read committed"), (3, "serializable")],
)
def test_concurrent_writers_recheck_and_reports_fail_nothing_and_verdicts_stay_true(
    db, db_url, seed, background
):
    create_table(db)
    outcome = Workload(db_url, seed, background_isolation=background).run()
    assert outcome.error_lines() == []
    assert outcome.committed >= 6 * 30  # every writer's upserts (and its deletes) went through
    assert set(outcome.background) == {"recheck", "check_existing", "reports"}
    assert stale_verdicts(db) == {}
    # and the stores agree with a recheck from scratch
    db.execute("CALL recheck_embeddings()")
    assert stale_verdicts(db) == {}


def test_the_same_workload_without_the_gate_fails_nothing_either(db, db_url):
    """The baseline: the application's workload is free of deadlocks by itself (sorted ids),
    so any error in the test above is the gate's."""
    create_table(db, attach=False)
    outcome = Workload(db_url, 1, attached=False, chunk_writers=0).run()
    assert outcome.error_lines() == []
    assert outcome.committed >= 4 * 30


def _wait_until_blocked_on(db, relation: str) -> None:
    """Until some session waits for a lock on the relation (the event, not a time)."""
    for _ in range(10_000):
        waiting = db.execute(
            "SELECT count(*) FROM pg_locks WHERE relation = %s::regclass AND NOT granted",
            [relation],
        ).fetchone()[0]
        if waiting:
            return
        time.sleep(0.01)
    raise AssertionError(f"nothing waited on {relation}")


# (the SQL engine's writers read the blank references too, whatever their rows' models:
# the lock that holds the recheck here would hold the writer as well)
@pytest.mark.plpython_only("holds the recheck with a lock the SQL engine's writers wait on too")
@pytest.mark.parametrize("table", ["chunks", "attached"])
def test_a_recheck_never_writes_the_verdict_of_a_vector_changed_after_it_read_it(db, db_url, table):
    """The recheck reads a bad row, a writer fixes it and commits before the recheck writes
    its verdicts: the writer's verdict (clean) stays. The recheck is held between its read
    and its write by a lock on the blank references it reads for the row's model (the
    writer's row names none, so the writer does not read them)."""
    rng = random.Random(7)
    d = CHUNK_D if table == "chunks" else D
    if table == "chunks":
        db.execute("INSERT INTO documents (doc_id) VALUES ('d1')")
        db.execute(
            "INSERT INTO chunks (chunk_id, doc_id, content, embedding, embedding_model)"
            " VALUES ('x', 'd1', 'blank', %s, 'm')",
            [_vector(rng, d, True)],
        )
        recheck = "CALL recheck_embeddings()"
        fix = "UPDATE chunks SET embedding = %s, embedding_model = NULL WHERE chunk_id = 'x'"
    else:
        db.execute(
            "CREATE TABLE notes (id text PRIMARY KEY, body text, model text, embedding vector(16))"
        )
        db.execute("INSERT INTO notes VALUES ('x', 'blank', 'm', %s)", [_vector(rng, d, True)])
        db.execute(
            "SELECT embedding_gate.attach('notes', content_column => 'body',"
            " model_column => 'model')"
        )
        recheck = "CALL embedding_gate.check_existing('notes')"
        fix = "UPDATE notes SET embedding = %s, model = NULL WHERE id = 'x'"
    assert flags_of(db, table) == {"x": True}
    errors = []

    def run_recheck():
        try:
            with psycopg.connect(db_url, autocommit=True) as conn:
                conn.execute(recheck)
        except psycopg.Error as e:  # pragma: no cover - shown by the assertion below
            errors.append(e)

    with psycopg.connect(db_url) as holder:
        holder.execute("LOCK TABLE embedding_gate.blank_references IN ACCESS EXCLUSIVE MODE")
        thread = threading.Thread(target=run_recheck)
        thread.start()
        _wait_until_blocked_on(db, "embedding_gate.blank_references")
        db.execute(fix, [_vector(rng, d, False)])  # the writer fixes it and commits
        assert flags_of(db, table) == {"x": False}
        holder.rollback()  # the recheck goes on, with the bad vector it read
        thread.join()
    assert errors == []
    assert flags_of(db, table) == {"x": False}


def flags_of(db, table: str) -> dict:
    """row id -> whether the gate flags it."""
    if table == "chunks":
        rows = db.execute("SELECT chunk_id, quality_issues IS NOT NULL FROM chunks").fetchall()
        return dict(rows)
    flagged = {
        r
        for (r,) in db.execute(
            "SELECT row_id FROM embedding_gate.verdicts WHERE table_oid = 'notes'::regclass"
        )
    }
    return {i: i in flagged for (i,) in db.execute("SELECT id FROM notes")}


def test_a_recheck_that_only_confirms_a_verdict_leaves_it_as_it_is(db):
    """No new version of a flagged chunk or verdict for a writer at SERIALIZABLE to fail on
    (or to wait for) when nothing changed; a change of threshold still rewrites them."""
    rng = random.Random(3)
    db.execute("INSERT INTO documents (doc_id) VALUES ('d1')")
    db.execute(
        "INSERT INTO chunks (chunk_id, doc_id, content, embedding) VALUES ('z', 'd1', '', %s)",
        [_vector(rng, CHUNK_D, True)],
    )
    create_table(db, "notes")
    db.execute(
        "INSERT INTO notes (id, document, embedding) VALUES ('z', '', %s)", [vec(np.zeros(D))]
    )

    def versions():
        return (
            db.execute("SELECT xmin::text FROM chunks WHERE chunk_id = 'z'").fetchone(),
            db.execute(
                "SELECT xmin::text FROM embedding_gate.verdicts"
                " WHERE table_oid = 'notes'::regclass AND row_id = 'z'"
            ).fetchone(),
        )

    before = versions()
    assert None not in before
    db.execute("CALL recheck_embeddings()")
    assert versions() == before
    # (a new min_norm alone keeps the verdict of a zero vector as it was: same codes, same
    # measures; no sparse check changes its codes)
    db.execute("UPDATE embedding_gate.settings SET min_norm = 0.2")
    db.execute("CALL recheck_embeddings()")
    assert versions() == before
    db.execute("UPDATE embedding_gate.settings SET max_near_zero_ratio = 1")
    db.execute("CALL recheck_embeddings()")
    after = versions()
    assert after[0] != before[0] and after[1] != before[1]
    codes = db.execute(
        "SELECT (SELECT quality_issues FROM chunks WHERE chunk_id = 'z'),"
        " (SELECT issues FROM embedding_gate.verdicts WHERE row_id = 'z')"
    ).fetchone()
    assert [sorted(c) for c in codes] == [["low_norm", "low_variance"]] * 2


def test_a_scan_does_not_wait_on_a_writer_holding_a_verdict_it_would_rewrite(db, db_url):
    """A writer has upserted a row's verdict and not committed (an upsert's INSERT and UPDATE
    triggers write verdicts in two passes: holding one, it may go on to another the scan
    holds). check_existing, which would rewrite that verdict (the threshold in its reason
    changed: a share of near-zero components no longer too many), must not wait for the writer: the PL/Python engine's scan skips the rows a
    writer locks; the SQL engine's owner may not lock them (SELECT only), so its scan gives
    up that batch's verdicts after 100 ms. The writer's verdict stays."""
    rng = random.Random(11)
    db.execute("CREATE TABLE notes (id text PRIMARY KEY, body text, embedding vector(16))")
    db.execute(
        "INSERT INTO notes VALUES ('a', 'a', %s), ('b', 'b', %s)",
        [_vector(rng, D, True), _vector(rng, D, True)],
    )
    db.execute("SELECT embedding_gate.attach('notes', content_column => 'body')")
    db.execute("SELECT embedding_gate.set_table_settings('notes', '{\"max_near_zero_ratio\": 1}')")
    small = vec(np.full(D, 0.01))  # another low norm: another reason
    with psycopg.connect(db_url) as writer:
        writer.execute("UPDATE notes SET embedding = %s WHERE id = 'b'", [small])
        with psycopg.connect(db_url, autocommit=True) as scan:
            scan.execute("SET statement_timeout = '10s'")  # a scan that waits fails here
            scan.execute("CALL embedding_gate.check_existing('notes')")
        writer.commit()
    verdicts = {
        r: (i, reason)
        for r, i, reason in db.execute(
            "SELECT row_id, issues, reason FROM embedding_gate.verdicts"
            " WHERE table_oid = 'notes'::regclass"
        )
    }
    assert verdicts["a"][0] == ["low_norm", "low_variance"]  # the scan's, new setting
    assert verdicts["b"][0] == ["low_norm", "low_variance"]  # the writer's own
    assert "(0.04)" in verdicts["b"][1], verdicts
