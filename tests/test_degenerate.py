"""blank_like and duplicate_vector through the real triggers, with chosen vectors."""

import numpy as np
import psycopg
import psycopg.sql
import pytest
from embedding_gate import queries

from tests.cases import D, unit_random
from tests.helpers import alembic, chunk, vec, write_chunks


@pytest.fixture
def docs(db):
    db.execute("INSERT INTO documents (doc_id) VALUES ('d1'), ('d2')")
    return db


def with_similarity(reference: np.ndarray, s: float) -> np.ndarray:
    """A unit vector whose cosine similarity to the unit vector reference is s."""
    other = unit_random()
    other -= (other @ reference) * reference
    other /= np.linalg.norm(other)
    return s * reference + np.sqrt(1 - s * s) * other


def insert(conn, rows, doc="d1") -> None:
    """(chunk_id, content, vector, model) rows, one COPY."""
    rows = [chunk(k, x, content=text, embedding_model=m, doc_id=doc) for k, text, x, m in rows]
    write_chunks(conn, rows, "copy")


def verdicts(conn) -> dict:
    return {
        k: (issues, sim, dup)
        for k, issues, sim, dup in conn.execute(
            "SELECT chunk_id, quality_issues, quality_blank_similarity,"
            " quality_duplicate_of FROM chunks"
        )
    }


def calibrate(conn, model: str, mean) -> None:
    conn.execute("SELECT set_blank_calibration(%s, %s, 40)", [model, vec(mean)])


def test_blank_like_flags_at_or_above_the_threshold_for_the_models_reference(docs):
    reference = unit_random()
    docs.execute("SELECT set_blank_reference('m', %s)", [vec(reference)])
    calibrate(docs, "m", np.zeros(D))  # an isotropic model: its mean is 0
    insert(
        docs,
        [
            ("at", "?", with_similarity(reference, 0.351), "m"),
            ("above", ".", with_similarity(reference, 0.81), "m"),
            ("below", "a sentence", with_similarity(reference, 0.34), "m"),
            ("other-model", ".", with_similarity(reference, 0.9), "other"),
            ("no-model", ".", with_similarity(reference, 0.95), None),
        ],
    )
    got = verdicts(docs)
    assert got["at"][:2] == (["blank_like"], pytest.approx(0.351, abs=1e-3))
    assert got["above"][:2] == (["blank_like"], pytest.approx(0.81, abs=1e-3))
    assert got["below"] == got["other-model"] == got["no-model"] == (None, None, None)
    reason = docs.execute("SELECT reason FROM low_quality_embeddings WHERE chunk_id = 'above'")
    assert reason.fetchone()[0] == (
        "like the model's embedding of empty text (cosine 0.810, the model's mean removed)"
    )
    # the tuning report predicts a stricter threshold, and the recheck applies it
    preview = docs.execute(
        "SELECT flagged_now, flagged_proposed FROM preview_thresholds(blank_similarity => 0.3)"
        " WHERE check_code = 'blank_like'"
    ).fetchone()
    assert preview == (2, 3)
    docs.execute("UPDATE embedding_gate.settings SET blank_similarity = 0.3")
    docs.execute("CALL recheck_embeddings()")
    assert docs.execute("SELECT count(*) FROM chunks WHERE 'blank_like' = ANY (quality_issues)")
    assert docs.execute(
        "SELECT blank_like FROM (SELECT (issue_counts->>'blank_like')::int AS"
        " blank_like FROM embedding_quality_summary) s"
    ).fetchone() == (3,)


def test_a_model_without_calibration_is_calibrated_by_its_own_rows_as_they_are_written(docs):
    """An anisotropic model (every text near one common direction): before the gate knows
    the model's mean, blank_like would flag every chunk, so it checks none; the rows written
    give the mean (the gate adds each statement's vectors up), and once there are
    CALIBRATION_ROWS (100) of them the gate records it, judges the rows stored before once,
    and checks every later row at insert. Rows inserted one per statement, as a writer
    other than the loader does after set_blank_reference."""
    rng = np.random.default_rng(11)
    common = unit_random() * 2.0  # unrelated texts end up at cosine ~0.8

    def embedding(x):
        y = x + common
        return y / np.linalg.norm(y)

    blank = unit_random()
    docs.execute("SELECT set_blank_reference('aniso', %s)", [vec(embedding(blank))])
    rows = [
        (f"p{i:02d}", f"paragraph {i}", embedding(rng.standard_normal(D) / np.sqrt(D)), "aniso")
        for i in range(120)
    ]
    # one blank chunk before the model has a calibration, one after
    rows.insert(10, ("blank-early", " ", embedding(blank + rng.standard_normal(D) * 0.01), "aniso"))
    rows.append(("blank-late", " ", embedding(blank + rng.standard_normal(D) * 0.01), "aniso"))
    raw = [embedding(blank) @ x for _, _, x, _ in rows]
    assert min(raw) > 0.7  # by raw cosine, every chunk is "like the empty text"

    def flagged():
        return docs.execute(
            "SELECT chunk_id, quality_issues FROM chunks WHERE quality_issues IS NOT NULL"
            " ORDER BY chunk_id"
        ).fetchall()

    for row in rows[:90]:
        insert(docs, [row])
    assert flagged() == []  # no calibration yet: nothing is checked for blank_like
    for row in rows[90:]:
        insert(docs, [row])
    assert flagged() == [("blank-early", ["blank_like"]), ("blank-late", ["blank_like"])]
    calibration = docs.execute(
        "SELECT sample_size, source FROM embedding_gate.model_calibrations WHERE model = 'aniso'"
    ).fetchone()
    assert calibration[1] == "stored rows" and 100 <= calibration[0] <= 122
    checked, low = docs.execute("CALL recheck_embeddings()").fetchone()
    assert (checked, low) == (122, 2)


def test_a_given_mean_stays_the_centre_and_the_rows_give_their_spread(docs):
    """A mean the loader's sample or a writer gave stays blank_like's centre: a corpus's
    first rows carry its topic and language, and with their mean removed its other
    paragraphs looked like the model's degenerate references (docs/checks.md). The rows
    add their spread, and their own mean on the silent dimensions (model_mismatch's
    fingerprint); a recheck does not replace the given mean either. A replaced mean starts
    the fingerprint again."""
    rng = np.random.default_rng(5)
    given = rng.standard_normal(D) * 0.01
    given[:3] = 0.5  # the sample's mean on the silent dimensions, off the rows' 0.25

    def row():
        x = rng.standard_normal(D) * 0.05 + 0.02  # the rows' own mean: 0.02
        x[:3] = 0.25  # three dimensions that never vary
        return x

    docs.execute("SELECT set_blank_reference('m', %s)", [vec(unit_random())])
    docs.execute("SELECT set_blank_calibration('m', %s, 40, 'sample')", [vec(given)])
    insert(docs, [(f"r{i}", f"paragraph {i}", row(), "m") for i in range(120)])

    def calibration():
        return docs.execute(
            "SELECT source, sample_size, mean, spread IS NOT NULL"
            " FROM embedding_gate.model_calibrations WHERE model = 'm'"
        ).fetchone()

    source, n, mean, has_spread = calibration()
    assert (source, n, has_spread) == ("sample", 120, True)
    np.testing.assert_allclose(mean[3:], given[3:].astype(np.float32))
    np.testing.assert_allclose(mean[:3], 0.25, rtol=1e-5)
    assert (
        docs.execute("SELECT count(*) FROM chunks WHERE quality_issues IS NOT NULL").fetchone()[0]
        == 0
    )
    docs.execute("CALL recheck_embeddings()")
    assert calibration()[:2] == ("sample", 120)
    # the owner replaces the mean (a changed model behind the same name): no spread until
    # the next 100 rows, and the old rows' sums are gone
    docs.execute("SELECT set_blank_calibration('m', %s, 40, 'sample')", [vec(given * 2)])
    assert calibration()[3] is False
    assert docs.execute(
        "SELECT count(*) FROM embedding_gate._calibration_deltas WHERE model = 'm'"
    ).fetchone() == (0,)


def test_duplicate_vector_names_the_earlier_chunk_across_documents(docs):
    v, w = unit_random(), unit_random()
    insert(docs, [("a", "the original text", v, "m")], doc="d1")
    insert(docs, [("b", "another text, same vector", v, "m")], doc="d2")
    insert(docs, [("c", "the original text", v, "m")], doc="d2")  # a's text, stored again
    # within one statement: the earlier by (created_at, chunk_id) is the original
    insert(docs, [("y2", "second", w, "m"), ("y1", "first", w, "m")])
    first, later = (
        k
        for (k,) in docs.execute(
            "SELECT chunk_id FROM chunks WHERE chunk_id IN ('y1', 'y2')"
            " ORDER BY created_at, chunk_id"
        )
    )
    got = verdicts(docs)
    assert got["a"] == (None, None, None)
    assert got["b"] == (["duplicate_vector"], None, "a")
    assert got["c"] == (None, None, None)  # the earliest chunk with v has the same text
    assert got[first] == (None, None, None)
    assert got[later] == (["duplicate_vector"], None, first)
    reason = docs.execute("SELECT reason FROM low_quality_embeddings WHERE chunk_id = 'b'")
    assert reason.fetchone()[0] == "same embedding as chunk 'a', whose content differs"
    # an update that copies a vector is caught too, and a recheck agrees with the triggers
    docs.execute(
        "INSERT INTO chunks (chunk_id, doc_id, content, embedding) VALUES ('u', 'd1', 'u', %s)",
        [vec(unit_random())],
    )
    docs.execute("UPDATE chunks SET embedding = %s WHERE chunk_id = 'u'", [vec(w)])
    before = verdicts(docs)
    assert before["u"] == (["duplicate_vector"], None, first)
    docs.execute("CALL recheck_embeddings(2)")
    assert verdicts(docs) == before


def test_the_order_of_the_writes_decides_which_one_is_the_duplicate(docs):
    # one transaction, two statements, the later chunk_id first: under revision 0005 every
    # row of a transaction had the same created_at, the insert trigger flagged neither and
    # a recheck flagged "z"
    v = unit_random()
    insert(docs, [("z", "written first", v, None)])
    insert(docs, [("a", "written second", v, None)])
    got = verdicts(docs)
    assert got["z"] == (None, None, None)
    assert got["a"] == (["duplicate_vector"], None, "z")
    docs.execute("CALL recheck_embeddings()")
    assert verdicts(docs) == got


def test_the_duplicate_probe_is_one_index_descent_that_skips_the_row_itself(docs):
    """At millions of rows the check must stay an index probe: the index answers the hash
    and the (created_at, chunk_id) order, so neither the row itself nor a later one is read."""
    query = queries.DUPLICATE_ROW
    docs.execute("SET enable_seqscan = off")
    # the simple query protocol: with psycopg's extended one, $1 would be the outer query's
    prepared = docs.pgconn.exec_(
        f"PREPARE duplicate_row(text, text, text, text) AS {query}".encode()
    )
    assert prepared.status == psycopg.pq.ExecStatus.COMMAND_OK, prepared.error_message
    explain = psycopg.sql.SQL("EXPLAIN EXECUTE duplicate_row({}, 'x', '2026-01-01', 'k')")
    plan = "\n".join(
        line for (line,) in docs.execute(explain.format(psycopg.sql.Literal(vec(unit_random()))))
    )
    assert "Index Scan using chunks_embedding_hash_idx" in plan, plan
    cond = next(line for line in plan.splitlines() if "Index Cond" in line)
    assert "embedding_hash =" in cond and "ROW(created_at, chunk_id) <" in cond, plan


def test_a_recheck_finds_the_duplicates_no_trigger_saw_and_drops_stale_ones(docs):
    v = unit_random()
    insert(docs, [("a", "first", v, None)])
    docs.execute("ALTER TABLE chunks DISABLE TRIGGER embedding_gate_insert")
    insert(docs, [("b", "second", v, None), ("same", "first", v, None)])
    docs.execute("ALTER TABLE chunks ENABLE TRIGGER embedding_gate_insert")
    assert verdicts(docs)["b"] == (None, None, None)
    preview = docs.execute(
        "SELECT flagged_now FROM preview_thresholds() WHERE check_code = 'duplicate_vector'"
    )
    assert preview.fetchone() == (1,)
    docs.execute("CALL recheck_embeddings()")
    got = verdicts(docs)
    assert got["b"] == (["duplicate_vector"], None, "a")
    assert got["same"] == (None, None, None)  # the text of the earliest chunk with v
    # a flagged row is looked up again even when its hash is not among the twins given
    # (it may have been written after they were counted)
    docs.execute("SELECT * FROM embedding_gate._recheck_batch(NULL, 100, '{}')")
    assert verdicts(docs)["b"] == (["duplicate_vector"], None, "a")
    # its original gone, b is no longer a duplicate of anything with other content
    docs.execute("DELETE FROM chunks WHERE chunk_id IN ('a', 'same')")
    docs.execute("CALL recheck_embeddings()")
    assert verdicts(docs)["b"] == (None, None, None)


def test_duplicates_follow_the_mode(docs):
    v = unit_random()
    insert(docs, [("a", "one", v, None)])
    docs.execute("UPDATE embedding_gate.settings SET mode = 'quarantine'")
    insert(docs, [("b", "two", v, None)])
    row = docs.execute(
        "SELECT quality_issues, quality_duplicate_of FROM embedding_quarantine"
    ).fetchone()
    assert row == (["duplicate_vector"], "a")
    docs.execute("UPDATE embedding_gate.settings SET mode = 'reject'")
    with pytest.raises(psycopg.Error, match="same embedding as chunk 'a'") as e:
        insert(docs, [("c", "three", v, None)])
    assert e.value.sqlstate == "QG001"


@pytest.mark.parametrize(
    "record",
    [
        "set_blank_reference('m', %s)",
        "set_blank_calibration('m', %s, 40)",
        "set_degenerate_reference('m', %s, '?', 'punctuation')",
    ],
    ids=["reference", "calibration", "degenerate-reference"],
)
def test_a_loader_records_a_model_s_first_vector_but_cannot_replace_it(docs, as_loader, record):
    r1, r2 = unit_random(), unit_random()
    as_loader.execute(f"SELECT {record}", [vec(r1)])
    as_loader.execute(f"SELECT {record}", [vec(r1)])  # the same: fine
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="already has a different"):
        as_loader.execute(f"SELECT {record}", [vec(r2)])
    # a model of another dimension than chunks' (its rows are in an attached table)
    small = np.random.default_rng(384).standard_normal(384)
    as_loader.execute(f"SELECT {record}".replace("'m'", "'small'"), [vec(small)])
    docs.execute(f"SELECT {record}", [vec(r2)])  # the owner may


def test_a_blank_reference_must_have_a_direction_and_the_owner_s_replacement_is_kept(
    docs, as_loader
):
    r1, r2 = unit_random(), unit_random()
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="zero vector"):
        as_loader.execute("SELECT set_blank_reference('z', %s)", [vec(np.zeros(D))])
    as_loader.execute("SELECT set_blank_reference('m', %s)", [vec(r1)])
    docs.execute("SELECT set_blank_reference('m', %s)", [vec(r2)])  # the owner may
    stored = docs.execute("SELECT reference FROM embedding_gate.blank_references").fetchone()[0]
    assert np.allclose(stored, r2, atol=1e-6)


def test_short_vectors_stored_with_a_one_byte_header_hash_and_decode_alike(empty_db):
    """An 8-d vector is 40 bytes, which the table stores with a 1-byte varlena header: the
    stored hash, the byte comparison and the decoding read the same bytes as they do for a
    vector built in memory, at insert and at recheck."""
    alembic(empty_db, "upgrade", "head", embedding_dim=8)
    x = [0.5, -0.25, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute("INSERT INTO documents (doc_id) VALUES ('d1')")
        put = "INSERT INTO chunks (chunk_id, doc_id, content, embedding) VALUES (%s, 'd1', %s, %s)"
        conn.execute(put, ["a", "one", vec(x)])
        conn.execute("ALTER TABLE chunks DISABLE TRIGGER embedding_gate_insert")
        conn.execute(put, ["b", "two", vec(x)])
        conn.execute("ALTER TABLE chunks ENABLE TRIGGER embedding_gate_insert")
        conn.execute(put, ["c", "three", vec(x)])
        size, same_hash = conn.execute(
            "SELECT pg_column_size(embedding), embedding_hash = embedding_gate.vector_hash(%s)"
            " FROM chunks WHERE chunk_id = 'a'",
            [vec(x)],
        ).fetchone()
        assert (size, same_hash) == (1 + 4 + 8 * 4, True)
        found = "SELECT chunk_id, quality_duplicate_of FROM chunks ORDER BY 1"
        assert conn.execute(found).fetchall() == [("a", None), ("b", None), ("c", "a")]
        conn.execute("CALL recheck_embeddings()")
        assert conn.execute(found).fetchall() == [("a", None), ("b", "a"), ("c", "a")]
        norms = conn.execute("SELECT norm FROM embedding_measures()").fetchall()
        assert norms == [(pytest.approx(np.linalg.norm(x)),)] * 3


def test_a_degenerate_reference_names_its_kind_and_a_short_text(docs, as_loader):
    """set_degenerate_reference: kind punctuation or unknown (the empty text's is
    set_blank_reference's), a text of 1 to 16 characters not all whitespace, a vector with
    a direction; a model may have several, one per text."""
    v = vec(unit_random())
    for text, kind, match in [
        ("?", "blank", "'punctuation' or 'unknown'"),
        (" ", "punctuation", "not all whitespace"),
        ("x" * 17, "unknown", "1 to 16 characters"),
    ]:
        with pytest.raises(psycopg.errors.InvalidParameterValue, match=match):
            as_loader.execute("SELECT set_degenerate_reference('m', %s, %s, %s)", [v, text, kind])
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="zero vector"):
        as_loader.execute(
            "SELECT set_degenerate_reference('m', %s, '?', 'punctuation')", [vec(np.zeros(D))]
        )
    as_loader.execute("SELECT set_degenerate_reference('m', %s, '?', 'punctuation')", [v])
    as_loader.execute("SELECT set_degenerate_reference('m', %s, '𓀀', 'unknown')", [v])
    assert docs.execute(
        "SELECT text, kind FROM embedding_gate.degenerate_references ORDER BY kind"
    ).fetchall() == [("?", "punctuation"), ("𓀀", "unknown")]
