"""The SQL engine deployed as on a managed service (issue 25): a superuser creates the
database and `vector` in it, then hands it to a role with CREATEROLE that is not a
superuser (RDS's master user, Supabase's postgres role), and that role deploys the gate with
the default engine choice. plpython3u is never created: auto chooses the SQL engine, and
embedding_gate.engine says so. Chunks' writes are checked by the SQL engine's triggers, the
report views read, what the SQL engine does not implement yet fails with a clear error, and
`downgrade base` removes it all. The SQL engine's baseline reads and hashes vectors in
LANGUAGE sql: the same bytes and hashes as the released baseline's LANGUAGE internal ones.
The `--sql --engine sql` script applies as that role too."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import psycopg
import pytest

from tests.helpers import ROOT, alembic, prepare_managed, vec

# cluster-wide: one name for this file's tests (a file's tests run in one worker)
OWNER = "managed_owner"
GATE = str(Path(sys.executable).parent / "embedding-gate")


@pytest.fixture
def managed(empty_db) -> str:
    """The URL, as OWNER, of a database OWNER owns, with `vector` created by a superuser."""
    return prepare_managed(empty_db, owner=OWNER, read_all=False)


def gate(*args: str, url: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [GATE, "db", *args],
        capture_output=True,
        text=True,
        env={"DATABASE_URL": url, "PATH": "/usr/bin:/bin", "HOME": "/tmp"},
        cwd=ROOT,
        timeout=300,
    )


def _insert(conn, chunk_id, embedding=None, raw=None):
    conn.execute(
        "INSERT INTO chunks (chunk_id, doc_id, content, embedding, embedding_raw)"
        " VALUES (%s, 'd1', %s, %s::vector, %s::real[])",
        [chunk_id, f"content of {chunk_id}", embedding, raw],
    )


def test_a_managed_service_s_owner_deploys_the_sql_engine(managed, empty_db):
    up = gate("upgrade", url=managed)
    assert up.returncode == 0, up.stdout + up.stderr
    # the upgrade says which engine it chose, and what that engine lacks
    assert "engine: sql, SQL (pgvector's operators)" in up.stdout, up.stdout
    assert "every check, trigger and function of the gate" in up.stdout
    with psycopg.connect(managed, autocommit=True) as conn:
        assert conn.execute(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone() == (False,)
        assert conn.execute("SELECT engine FROM embedding_gate.engine").fetchone() == ("sql",)
        assert conn.execute(
            "SELECT count(*) FROM pg_extension WHERE extname = 'plpython3u'"
        ).fetchone() == (0,)
        triggers = dict(conn.execute(
            "SELECT tgname, tgfoid::regproc::text FROM pg_trigger"
            " WHERE tgrelid = 'public.chunks'::regclass AND NOT tgisinternal"
        ).fetchall())  # fmt: skip
        assert triggers["embedding_gate_insert"] == "embedding_gate._sql_check_inserted"
        assert triggers["embedding_gate_update"] == "embedding_gate._sql_check_updated"
        assert conn.execute(
            "SELECT count(*) FROM pg_proc WHERE prolang ="
            " (SELECT oid FROM pg_language WHERE lanname = 'internal')"
            " AND pronamespace = 'embedding_gate'::regnamespace"
        ).fetchone() == (0,)

        conn.execute("INSERT INTO documents (doc_id) VALUES ('d1')")
        rng = np.random.default_rng(1)
        good = rng.standard_normal(768)
        _insert(conn, "good", vec(good / np.linalg.norm(good)))
        _insert(conn, "zero", vec(np.zeros(768)))
        nan = np.full(768, 0.01)
        nan[5] = np.nan
        _insert(conn, "nan", raw="{" + ",".join(map(str, nan)) + "}")
        rows = {
            r[0]: r[1:]
            for r in conn.execute(
                "SELECT chunk_id, quality_issues, quality_reason, embedding IS NULL,"
                " embedding_raw IS NOT NULL FROM chunks"
            )
        }
        assert rows["good"][0] is None
        assert "low_norm" in rows["zero"][0] and rows["zero"][1].startswith("norm too low (0)")
        assert rows["nan"] == (["nan_or_inf"], "NaN or Inf in 1 of 768 components", True, True)

        # the update trigger: a clean row's embedding replaced by a zero vector
        conn.execute(
            "UPDATE chunks SET embedding = %s::vector WHERE chunk_id = 'good'", [vec(good * 0)]
        )
        assert (
            "low_norm"
            in conn.execute("SELECT quality_issues FROM chunks WHERE chunk_id = 'good'").fetchone()[
                0
            ]
        )
        conn.execute(
            "UPDATE chunks SET embedding = %s::vector WHERE chunk_id = 'good'",
            [vec(good / np.linalg.norm(good))],
        )
        with pytest.raises(psycopg.DatabaseError) as rejected:
            with conn.transaction():
                conn.execute("SET LOCAL embedding_gate.mode = 'reject'")
                _insert(conn, "zero2", vec(np.zeros(768)))
        assert rejected.value.diag.sqlstate == "QG001"
        assert 'chunk "zero2" rejected: norm too low (0)' in str(rejected.value)

        low = dict(conn.execute("SELECT chunk_id, issues FROM low_quality_embeddings").fetchall())
        assert set(low) == {"zero", "nan"} and low["nan"] == ["nan_or_inf"]
        summary = conn.execute(
            "SELECT embedded, low_quality, issue_counts FROM embedding_quality_summary"
        ).fetchone()
        assert summary[:2] == (3, 2)
        assert summary[2]["low_norm"] == 1 and summary[2]["nan_or_inf"] == 1

        # the owner's maintenance and the scans, in the SQL engine
        conn.execute("CALL recheck_embeddings()")
        assert conn.execute(
            "SELECT checked, low_quality, counts ->> 'low_norm' FROM verify_embeddings()"
        ).fetchone() == (3, 2, "1")
        measured = conn.execute(
            "SELECT chunk_id, issues FROM embedding_measures() ORDER BY chunk_id"
        ).fetchall()
        assert measured == [
            ("good", []),
            ("nan", ["nan_or_inf"]),
            ("zero", ["low_norm", "low_variance", "sparse"]),
        ]
        preview = {
            r[0]: r[1:]
            for r in conn.execute(
                "SELECT check_code, flagged_now, flagged_proposed"
                " FROM preview_thresholds(min_norm => 2)"
            ).fetchall()
        }
        assert preview["low_norm"] == (1, 2) and preview["any"] == (2, 3)

    # switching a deployment's engine is refused, in one line
    switch = gate("upgrade", "--engine", "plpython", url=managed)
    assert switch.returncode == 1 and "deployed here with the sql engine" in switch.stderr

    down = gate("downgrade", "base", url=managed)
    assert down.returncode == 0, down.stdout + down.stderr
    with psycopg.connect(empty_db) as conn:
        left = conn.execute(
            "SELECT (SELECT count(*) FROM pg_namespace WHERE nspname = 'embedding_gate'),"
            " to_regclass('public.chunks') IS NULL,"
            " to_regclass('public.embedding_gate_alembic_version') IS NULL,"
            " (SELECT array_agg(extname ORDER BY extname) FROM pg_extension)"
        ).fetchone()
    assert left == (0, True, True, ["plpgsql", "vector"])


def test_the_sql_engine_s_vector_bytes_and_hashes_tell_vectors_apart_as_the_internal_ones(
    managed, empty_db
):
    """vector_bytes, _hash_bytes, vector_hash, halfvec_bytes and halfvec_hash of the SQL
    engine (LANGUAGE sql over pgvector's send functions) against the released baseline's
    byteasend and hashvarlenaextended, created by the superuser in pg_temp: two vectors get
    equal bytes where the internal functions give them equal bytes (-0.0 and 0.0 differ in
    both), a vector's hash is the same at every call and differs between these vectors, and
    the seed changes it."""
    alembic(managed, "upgrade", "head", engine="sql")
    vectors = [
        [1.0],
        [0.0, -0.0, 1e-45, -1e-45],
        [0.0, 0.0, 1e-45, -1e-45],
        [3.4028235e38, -3.4028235e38, 1.1754944e-38, 7.0],
        *np.random.default_rng(2).standard_normal((20, 768)).tolist(),
        np.random.default_rng(3).standard_normal(16000).tolist(),
    ]
    vectors.append(list(vectors[5]))  # a vector twice
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION pg_temp.b(public.vector) RETURNS bytea LANGUAGE internal"
            " IMMUTABLE STRICT AS 'byteasend'"
        )
        conn.execute(
            "CREATE FUNCTION pg_temp.hb(public.halfvec) RETURNS bytea LANGUAGE internal"
            " IMMUTABLE STRICT AS 'byteasend'"
        )
        conn.execute("CREATE TEMP TABLE v (n int, e public.vector, h public.halfvec)")
        for n, x in enumerate(vectors):
            half = [min(max(c, -65504.0), 65504.0) for c in x]
            conn.execute("INSERT INTO v VALUES (%s, %s, %s)", [n, vec(x), vec(half)])
        pairs = conn.execute(
            "SELECT a.n, b.n,"
            " embedding_gate.vector_bytes(a.e) = embedding_gate.vector_bytes(b.e),"
            " pg_temp.b(a.e) = pg_temp.b(b.e),"
            " embedding_gate.vector_hash(a.e) = embedding_gate.vector_hash(b.e),"
            " embedding_gate.halfvec_bytes(a.h) = embedding_gate.halfvec_bytes(b.h),"
            " pg_temp.hb(a.h) = pg_temp.hb(b.h),"
            " embedding_gate.halfvec_hash(a.h) = embedding_gate.halfvec_hash(b.h)"
            " FROM v AS a, v AS b WHERE a.n < b.n"
        ).fetchall()
        assert len(pairs) == len(vectors) * (len(vectors) - 1) // 2
        for a, b, ours, internal, hashed, half_ours, half_internal, half_hashed in pairs:
            assert ours == internal == hashed, (a, b)
            assert half_ours == half_internal == half_hashed, (a, b)
        # only the vector given twice
        assert [(a, b) for a, b, ours, *_ in pairs if ours] == [(5, len(vectors) - 1)]
        assert conn.execute(
            "SELECT bool_and(embedding_gate._hash_bytes(e, 0) = embedding_gate.vector_hash(e)"
            " AND embedding_gate._hash_bytes(e, -7) <> embedding_gate._hash_bytes(e, 0)"
            " AND embedding_gate.vector_hash(e) = embedding_gate.vector_hash(e::text::vector))"
            " FROM v"
        ).fetchone() == (True,)


def test_the_sql_engine_s_script_applies_as_the_owner(managed):
    """`embedding-gate db upgrade --sql --engine sql`: the script an admin pastes into a
    provider's console, run as the owner; it names no plpython3u and deploys the SQL engine."""
    script = gate("upgrade", "--sql", "--engine", "sql", url=managed)
    assert script.returncode == 0, script.stderr
    for absent in ("CREATE EXTENSION plpython3u", "LANGUAGE plpython3u", "LANGUAGE internal"):
        assert not re.search("^" + absent, script.stdout, re.MULTILINE), absent
    with psycopg.connect(managed, autocommit=True) as conn:
        conn.execute(script.stdout)
        conn.execute("RESET search_path")  # the script pins it for its session
        assert conn.execute("SELECT engine FROM embedding_gate.engine").fetchone() == ("sql",)
        conn.execute("INSERT INTO documents (doc_id) VALUES ('d1')")
        _insert(conn, "zero", vec(np.zeros(768)))
        assert conn.execute("SELECT quality_issues @> '{low_norm}' FROM chunks").fetchone() == (
            True,
        )
    # PL/Python's script (--sql without --engine) stops at its first statement here
    other = gate("upgrade", "--sql", url=managed)
    assert other.returncode == 0, other.stderr
    with psycopg.connect(managed, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="with the sql engine"):
            conn.execute(other.stdout)
    down = gate("downgrade", "base", url=managed)
    assert down.returncode == 0, down.stdout + down.stderr


def test_a_plpython_deployment_upgrading_stays_plpython(empty_db):
    """A deployment from before the engine was recorded (revision 0008, PL/Python) upgrades
    to head as PL/Python with the default choice, and refuses the SQL engine asked for."""
    alembic(empty_db, "upgrade", "0008")
    with pytest.raises(Exception, match="deployed here with the plpython engine, not sql"):
        alembic(empty_db, "upgrade", "head", engine="sql")
    alembic(empty_db, "upgrade", "head")
    with psycopg.connect(empty_db) as conn:
        assert conn.execute("SELECT engine FROM embedding_gate.engine").fetchone() == ("plpython",)
        assert conn.execute(
            "SELECT tgfoid::regproc::text FROM pg_trigger"
            " WHERE tgrelid = 'public.chunks'::regclass AND tgname = 'embedding_gate_insert'"
        ).fetchone() == ("embedding_gate._check_inserted",)
