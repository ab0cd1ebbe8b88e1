"""When the gate's own bookkeeping is broken behind its back (a registry row deleted, a
column dropped or retyped, a trigger or the hash index dropped, the settings or the counts
deleted), a write says what is wrong and what to run, or goes on where nothing is lost;
embedding_gate.attached says what to run; and running it puts the gate right."""

import numpy as np
import psycopg
import pytest

from tests.helpers import vec

ZERO = vec(np.zeros(3))
GOOD = vec(np.array([0.6, -0.5, 0.4]))
CHUNK_ZERO = vec(np.zeros(768))

INSERT_BAD = "INSERT INTO t (id, body, model, emb) VALUES (2, 'bad', 'm', %s)"


@pytest.fixture
def t(doc):
    """An attached table t (id, content, model, embedding) with its hash index built
    beforehand, and one stored flagged row."""
    doc.execute("CREATE TABLE t (id bigint PRIMARY KEY, body text, model text, emb vector(3))")
    doc.execute("CREATE INDEX t_hash ON t (embedding_gate.vector_hash(emb))")
    doc.execute(
        "SELECT * FROM embedding_gate.attach('t', 'emb', content_column => 'body',"
        " model_column => 'model', hash_index => 't_hash')"
    )
    doc.execute("INSERT INTO t VALUES (1, 'stored', 'm', %s)", [ZERO])
    return doc


def refused(db, sql: str, params=()) -> psycopg.errors.Diagnostic:
    with pytest.raises(psycopg.Error) as raised:
        db.execute(sql, params)
    return raised.value.diag


def needs(db) -> "str | None":
    return db.execute(
        "SELECT needs FROM embedding_gate.attached WHERE table_name = 'public.t'"
    ).fetchone()[0]


def test_a_registry_row_deleted(t):
    t.execute("DELETE FROM embedding_gate._attached WHERE table_oid = 't'::regclass")
    diag = refused(t, INSERT_BAD, [ZERO])
    assert diag.sqlstate == "55000"
    assert "table public.t has the embedding gate's trigger but is not attached" in (
        diag.message_primary
    )
    assert "SELECT * FROM embedding_gate.attach('public.t', ...)" in diag.message_hint
    assert "DROP TRIGGER embedding_gate_check_insert ON public.t" in diag.message_hint
    # as the hint says
    t.execute(
        "SELECT * FROM embedding_gate.attach('t', 'emb', content_column => 'body',"
        " model_column => 'model', hash_index => 't_hash')"
    )
    t.execute(INSERT_BAD, [ZERO])
    assert needs(t) is None


@pytest.mark.parametrize("column", ["id", "emb"])
def test_an_attached_column_dropped(t, column):
    """An INSERT said so already; a DELETE failed with `null values cannot be formatted as
    an SQL identifier`."""
    if column == "id":
        t.execute("ALTER TABLE t DROP CONSTRAINT t_pkey")
    t.execute(f"ALTER TABLE t DROP COLUMN {column} CASCADE")
    what = "id" if column == "id" else "embedding"
    insert = (
        "INSERT INTO t (body) VALUES ('x')"
        if column == "id"
        else ("INSERT INTO t (id, body) VALUES (9, 'x')")
    )
    for sql in ("DELETE FROM t", insert):
        diag = refused(t, sql)
        assert diag.sqlstate == "55000", sql
        assert diag.message_primary.endswith(
            f"the {what} column attached on public.t was dropped"
        ), diag.message_primary
        assert diag.message_hint == "detach it: SELECT embedding_gate.detach('public.t')"
    t.execute("TRUNCATE t")  # all of it: nothing to read
    t.execute("SELECT embedding_gate.detach('public.t')")
    t.execute("DELETE FROM t")


def test_a_content_column_retyped(t):
    t.execute("ALTER TABLE t ALTER COLUMN body TYPE bytea USING convert_to(body, 'UTF8')")
    diag = refused(
        t, "INSERT INTO t (id, body, model, emb) VALUES (2, 'x'::bytea, 'm', %s)", [ZERO]
    )
    assert diag.sqlstate == "42804"
    assert "will not read public.t: its content column body is of type bytea" in (
        diag.message_primary
    )
    assert "SELECT embedding_gate.detach('public.t')" in diag.message_hint


def test_the_settings_row_deleted(t):
    """It failed with `IndexError: list index out of range`."""
    t.execute("DELETE FROM embedding_gate.settings")
    assert needs(t).startswith("INSERT INTO embedding_gate.settings DEFAULT VALUES")
    for sql, params in (
        (INSERT_BAD, [ZERO]),
        (
            "INSERT INTO chunks (chunk_id, doc_id, content, embedding) VALUES ('c', 'd1', 'x', %s)",
            [CHUNK_ZERO],
        ),
    ):
        diag = refused(t, sql, params)
        assert diag.sqlstate == "55000"
        assert diag.message_primary.endswith(
            "embedding_gate.settings has no row: the embedding gate has no mode or thresholds"
            " to check this write with"
        )
        assert diag.message_hint.endswith("INSERT INTO embedding_gate.settings DEFAULT VALUES")
    t.execute("INSERT INTO embedding_gate.settings DEFAULT VALUES")
    t.execute(INSERT_BAD, [ZERO])
    assert needs(t) is None


@pytest.mark.parametrize(
    ("mode", "trigger"),
    [
        ("reject", "embedding_gate_raise_rejected"),
        ("quarantine", "embedding_gate_move_quarantined"),
    ],
)
def test_the_trigger_that_carries_out_the_mode_dropped(t, mode, trigger):
    """Without it a rejected row was stored, unflagged, and a quarantined one stayed in the
    table while the quarantine held an empty copy."""
    t.execute(f"SELECT embedding_gate.set_table_settings('t', '{{\"mode\": \"{mode}\"}}')")
    t.execute(f"DROP TRIGGER {trigger} ON t")
    assert needs(t).startswith("CALL embedding_gate.repair(): the table lacks some of the gate")
    diag = refused(t, INSERT_BAD, [ZERO])
    assert diag.sqlstate == "55000"
    assert f"{mode} mode on public.t: the embedding gate's trigger {trigger} is gone from" in (
        diag.message_primary
    )
    assert diag.message_hint == "put the gate's triggers back: CALL embedding_gate.repair()"
    t.execute("CALL embedding_gate.repair()")
    assert needs(t) is None
    if mode == "reject":
        assert refused(t, INSERT_BAD, [ZERO]).sqlstate == "QG001"
    else:
        t.execute(INSERT_BAD, [ZERO])
        assert t.execute("SELECT count(*) FROM t WHERE id = 2").fetchone() == (0,)
        assert t.execute(
            "SELECT row IS NOT NULL FROM embedding_gate.quarantine WHERE row_id = '2'"
        ).fetchone() == (True,)


def test_the_hash_index_dropped(t):
    """Writes go on (duplicate_vector reads the table instead); attached says so, and
    repair() builds it again."""
    t.execute("DROP INDEX t_hash")
    assert needs(t) == (
        "CALL embedding_gate.repair(): its index t_hash is gone, and duplicate_vector reads"
        " the whole table at every write"
    )
    t.execute(INSERT_BAD, [ZERO])
    assert t.execute(
        "SELECT issues FROM low_quality_embeddings WHERE table_name = 'public.t' AND row_id = '2'"
    ).fetchone() == (["low_norm", "low_variance", "sparse", "duplicate_vector"],)
    t.execute("CALL embedding_gate.repair()")
    assert needs(t) is None
    assert t.execute("SELECT pg_get_indexdef('t_hash'::regclass)").fetchone() == (
        "CREATE INDEX t_hash ON public.t USING btree (embedding_gate.vector_hash(emb))",
    )


def test_the_counts_deleted(t):
    """Writes go on; repair() counts again."""
    t.execute("DELETE FROM embedding_gate._row_counts")
    t.execute(INSERT_BAD, [ZERO])
    t.execute("INSERT INTO t VALUES (3, 'good', 'm', %s)", [GOOD])
    assert t.execute(
        "SELECT embedded FROM embedding_gate.attached WHERE table_name = 'public.t'"
    ).fetchone() == (2,)
    t.execute("CALL embedding_gate.repair()")
    assert t.execute(
        "SELECT embedded, flagged FROM embedding_gate.attached WHERE table_name = 'public.t'"
    ).fetchone() == (3, 2)
    assert t.execute("SELECT documents FROM embedding_quality_summary").fetchone() == (1,)


def test_the_deployment_row_deleted(t):
    """embedding_gate.attached still lists the tables, and writes go on."""
    t.execute("DELETE FROM embedding_gate._deployment")
    t.execute(INSERT_BAD, [ZERO])
    assert t.execute(
        "SELECT table_name, needs FROM embedding_gate.attached ORDER BY 1"
    ).fetchall() == [("public.chunks", None), ("public.t", None)]


def test_chunks_reject_trigger_dropped(doc):
    """Without it a rejected chunk was stored, flagged, and the statement went through."""
    doc.execute("UPDATE embedding_gate.settings SET mode = 'reject'")
    doc.execute("DROP TRIGGER embedding_gate_reject ON chunks")
    diag = refused(
        doc,
        "INSERT INTO chunks (chunk_id, doc_id, content, embedding) VALUES ('c', 'd1', 'x', %s)",
        [CHUNK_ZERO],
    )
    assert diag.sqlstate == "55000"
    assert diag.message_primary.endswith(
        "reject mode on public.chunks: the embedding gate's trigger embedding_gate_reject is"
        " gone from it, and without it the gate cannot fail the statement"
    )
    assert "DELETE FROM embedding_gate._sources WHERE name = '012_reject_trigger.sql'" in (
        diag.message_hint
    )
    assert doc.execute("SELECT count(*) FROM chunks").fetchone() == (0,)
