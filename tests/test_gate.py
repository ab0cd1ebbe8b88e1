"""The quality gate in a real PostgreSQL: triggers, modes, COPY, updates, verify, recheck."""

import numpy as np
import psycopg
import pytest
from embedding_gate.codec import from_vector_bytes
from embedding_gate.triggers import REJECTED_SQLSTATE

from tests.cases import CASES, D, unit_random
from tests.helpers import ROOT, chunk, vec, write_chunks


def put(conn, chunk_id: str, x) -> None:
    """Insert one chunk of document d1 with embedding x and no content."""
    write_chunks(conn, [chunk(chunk_id, x, content=None)])


def issues(conn) -> dict:
    return dict(
        conn.execute("SELECT chunk_id, quality_issues FROM chunks ORDER BY chunk_id").fetchall()
    )


@pytest.mark.plpython_only("the SQL engine's vector_bytes is vector_send's, only compared")
def test_stored_bytes_decode_to_the_stored_floats(db):
    """embedding_gate.vector_bytes(), how the gate reads vectors: pgvector's stored form
    (int16 dim, int16 0, float4 in the server's byte order) decodes to the exact floats."""
    values = np.array([[1.5, -2.25, 0.0, -0.0], [3.0, 4.0, -0.5, 1e-7]], dtype=np.float32)
    rows = db.execute(
        "SELECT embedding_gate.vector_bytes(v::vector) FROM unnest(%s::text[]) AS v",
        [[vec(x) for x in values]],
    ).fetchall()
    got = from_vector_bytes([r[0] for r in rows])
    assert got.dtype == np.float32 and got.shape == values.shape
    assert got.tobytes() == values.tobytes()  # -0.0 included
    assert len(rows[0][0]) == 4 + 4 * 4


def test_every_boundary_case_gets_its_codes_through_the_insert_trigger(doc):
    """The shared boundary cases, inserted in one multi-row INSERT, read back from chunks."""
    write_chunks(doc, [chunk(name, x) for name, (x, _) in CASES.items()])
    stored = issues(doc)
    assert {name: stored[name] or [] for name in CASES} == {n: c for n, (_, c) in CASES.items()}


def test_flagged_rows_store_reason_and_measures_clean_rows_store_nothing(doc):
    doc.execute(
        "INSERT INTO chunks (chunk_id, doc_id, embedding) VALUES ('bad', 'd1', %s), ('good', 'd1', %s)",
        [vec(np.eye(D)[0] * 0.0234), vec(unit_random())],
    )
    rows = {
        r[0]: r[1:]
        for r in doc.execute(
            "SELECT chunk_id, quality_reason, round(quality_norm::numeric, 4), quality_checked_at IS NOT NULL"
            " FROM chunks"
        )
    }
    assert rows["bad"][0].startswith("norm too low (0.0234)")
    assert float(rows["bad"][1]) == pytest.approx(0.0234) and rows["bad"][2] is True
    assert rows["good"] == (None, None, True)


def test_several_codes_are_all_recorded(doc):
    doc.execute(
        "INSERT INTO chunks (chunk_id, doc_id, embedding) VALUES ('z', 'd1', %s)",
        [vec(np.zeros(D))],
    )
    assert issues(doc) == {"z": ["low_norm", "low_variance", "sparse"]}


BAD = {17: np.zeros(D), 4242: np.full(D, 0.5), 9001: np.eye(D)[5]}


def ten_thousand_rows(with_nan: bool = False):
    rng = np.random.default_rng(3)
    for i in range(10_000):
        x = BAD.get(i)
        if x is None:
            x = rng.standard_normal(D).astype(np.float32)
            x /= np.linalg.norm(x)
        yield chunk(f"c{i:05d}", x)


@pytest.mark.parametrize("mode", ["flag", "quarantine", "reject"])
@pytest.mark.parametrize("how", ["copy", "insert"])
def test_modes_on_ten_thousand_rows_with_three_bad(doc, mode, how):
    """flag stores all with 3 flagged; quarantine leaves 9,997 in chunks and 3 in quarantine
    with raw values; reject stores nothing and names a chunk and reason."""
    doc.execute("UPDATE embedding_gate.settings SET mode = %s", [mode])
    rows = list(ten_thousand_rows())
    if mode == "reject":
        with pytest.raises(
            psycopg.Error, match=r'embedding of chunk "c00017" rejected: norm too low \(0\)'
        ) as e:
            write_chunks(doc, rows, how)
        assert e.value.sqlstate == REJECTED_SQLSTATE == "QG001"
        assert doc.execute("SELECT count(*) FROM chunks").fetchone() == (0,)
        assert doc.execute("SELECT count(*) FROM embedding_quarantine").fetchone() == (0,)
        return
    write_chunks(doc, rows, how)
    counts = doc.execute("SELECT count(*), count(quality_issues) FROM chunks").fetchone()
    quarantined = doc.execute(
        "SELECT chunk_id, quality_issues, embedding_raw FROM embedding_quarantine ORDER BY chunk_id"
    ).fetchall()
    if mode == "flag":
        assert counts == (10_000, 3)
        assert quarantined == []
    else:
        assert counts == (9_997, 0)
        assert [(q[0], q[1]) for q in quarantined] == [
            ("c00017", ["low_norm", "low_variance", "sparse"]),
            ("c04242", ["low_variance"]),
            ("c09001", ["sparse"]),
        ]
        for chunk_id, _, stored_raw in quarantined:
            assert np.array_equal(np.array(stored_raw, dtype=np.float32), BAD[int(chunk_id[1:])])


@pytest.mark.parametrize("mode", ["flag", "quarantine"])
def test_nan_and_inf_reach_the_gate_and_the_rest_of_the_copy_loads(doc, mode):
    """pgvector refuses NaN/Inf, so writers send such vectors to embedding_raw: they are
    flagged (or quarantined) nan_or_inf with their raw values, and the other rows load."""
    doc.execute("UPDATE embedding_gate.settings SET mode = %s", [mode])
    nan = unit_random().astype(np.float64)
    nan[10] = np.nan
    inf = unit_random().astype(np.float64)
    inf[0] = np.inf
    finite_raw = unit_random()
    write_chunks(
        doc,
        [
            chunk("a", unit_random()),
            chunk("b", embedding_raw=nan),
            chunk("c", embedding_raw=inf),
            chunk("d", embedding_raw=finite_raw),  # a finite vector sent raw is stored as a vector
        ],
        "copy",
    )
    where = "chunks" if mode == "flag" else "embedding_quarantine"
    kept = dict(
        doc.execute(
            f"SELECT chunk_id, embedding_raw FROM {where} WHERE chunk_id IN ('b', 'c')"
        ).fetchall()
    )
    assert np.isnan(kept["b"][10]) and np.isinf(kept["c"][0])
    assert np.allclose(np.nan_to_num(kept["b"]), np.nan_to_num(nan.astype(np.float32)))
    flagged = dict(
        doc.execute(
            f"SELECT chunk_id, quality_issues FROM {where} WHERE quality_issues IS NOT NULL"
        ).fetchall()
    )
    assert flagged == {"b": ["nan_or_inf"], "c": ["nan_or_inf"]}
    d = doc.execute(
        "SELECT embedding::real[], embedding_raw, quality_issues FROM chunks WHERE chunk_id = 'd'"
    ).fetchone()
    assert np.array_equal(np.array(d[0], dtype=np.float32), finite_raw) and d[1:] == (None, None)
    assert doc.execute("SELECT count(*) FROM chunks WHERE chunk_id IN ('a', 'd')").fetchone() == (
        2,
    )


def test_plain_vector_input_refuses_nan_before_the_gate(doc):
    """What pgvector itself does with NaN (and why embedding_raw exists)."""
    with pytest.raises(psycopg.errors.DataException, match="NaN not allowed in vector"):
        doc.execute(
            "INSERT INTO chunks (chunk_id, doc_id, embedding) VALUES ('n', 'd1', %s)",
            ["[NaN" + ",0" * (D - 1) + "]"],
        )


def calls_of(conn, function: str) -> int:
    """Calls of a function so far (track_functions), after flushing this backend's counts."""
    conn.execute("SELECT pg_stat_force_next_flush()")  # flushed when the backend goes idle
    conn.execute("SELECT pg_stat_clear_snapshot()")
    row = conn.execute(
        "SELECT calls FROM pg_stat_user_functions WHERE schemaname || '.' || funcname = %s",
        [function],
    ).fetchone()
    return row[0] if row else 0


def test_updating_the_embedding_rechecks_it_and_content_alone_does_not(doc):
    """An UPDATE of the embedding runs the checks (row trigger); an UPDATE of content alone
    never calls the engine's function (the trigger's column list and WHEN skip it)."""
    doc.execute("SET track_functions = 'all'")
    doc.execute(
        "INSERT INTO chunks (chunk_id, doc_id, content, embedding) VALUES ('u', 'd1', 'x', %s)",
        [vec(unit_random())],
    )
    # (the engine's: embedding_gate._check_updated, or _sql_check_updated)
    (checker,) = doc.execute(
        "SELECT tgfoid::regproc::text FROM pg_trigger"
        " WHERE tgrelid = 'chunks'::regclass AND tgname = 'embedding_gate_update'"
    ).fetchone()
    before = calls_of(doc, checker)
    doc.execute("UPDATE chunks SET content = 'only the text' WHERE chunk_id = 'u'")
    doc.execute("UPDATE chunks SET embedding = embedding WHERE chunk_id = 'u'")  # same value
    assert calls_of(doc, checker) == before
    doc.execute("UPDATE chunks SET embedding = %s WHERE chunk_id = 'u'", [vec(np.zeros(D))])
    assert calls_of(doc, checker) == before + 1
    assert issues(doc) == {"u": ["low_norm", "low_variance", "sparse"]}
    doc.execute("UPDATE chunks SET embedding = %s WHERE chunk_id = 'u'", [vec(unit_random())])
    assert issues(doc) == {"u": None}


def test_update_in_quarantine_mode_keeps_the_old_embedding(doc):
    good = unit_random()
    doc.execute(
        "INSERT INTO chunks (chunk_id, doc_id, embedding) VALUES ('u', 'd1', %s)", [vec(good)]
    )
    doc.execute("UPDATE embedding_gate.settings SET mode = 'quarantine'")
    doc.execute("UPDATE chunks SET embedding = %s WHERE chunk_id = 'u'", [vec(np.zeros(D))])
    stored = doc.execute("SELECT embedding::real[], quality_issues FROM chunks").fetchone()
    assert np.array_equal(np.array(stored[0], dtype=np.float32), good) and stored[1] is None
    assert doc.execute("SELECT chunk_id, quality_issues FROM embedding_quarantine").fetchall() == [
        ("u", ["low_norm", "low_variance", "sparse"])
    ]


def test_update_in_reject_mode_fails_with_its_own_sqlstate(doc):
    doc.execute(
        "INSERT INTO chunks (chunk_id, doc_id, embedding) VALUES ('u', 'd1', %s)",
        [vec(unit_random())],
    )
    doc.execute("UPDATE embedding_gate.settings SET mode = 'reject'")
    with pytest.raises(psycopg.Error) as e:
        doc.execute("UPDATE chunks SET embedding = %s WHERE chunk_id = 'u'", [vec(np.full(D, 0.5))])
    assert e.value.sqlstate == "QG001"
    assert e.value.diag.message_primary == 'embedding of chunk "u" rejected: variance too low (0)'
    assert e.value.diag.table_name == "chunks"
    assert issues(doc) == {"u": None}


def test_threshold_change_applies_to_the_next_row_and_set_local_overrides_it(doc):
    x = np.full(D, 0.01, dtype=np.float32) * np.tile([1, -1], D // 2)  # norm 0.277, variance 1e-4
    doc.execute("UPDATE embedding_gate.settings SET min_variance = 0.00001")
    put(doc, "a", x)
    doc.execute("UPDATE embedding_gate.settings SET min_norm = 0.3")
    put(doc, "b", x)
    with doc.transaction():
        doc.execute("SET LOCAL embedding_gate.min_norm = '0.01'")
        doc.execute("SET LOCAL embedding_gate.min_variance = '0.001'")
        doc.execute(
            "INSERT INTO chunks (chunk_id, doc_id, embedding) VALUES ('c', 'd1', %s)", [vec(x)]
        )
    put(doc, "d", x)
    assert issues(doc) == {"a": None, "b": ["low_norm"], "c": ["low_variance"], "d": ["low_norm"]}


def test_bad_override_value_is_refused_with_its_name(doc):
    with doc.transaction():
        doc.execute("SET LOCAL embedding_gate.mode = 'lenient'")
        with pytest.raises(
            psycopg.errors.InvalidParameterValue, match="embedding_gate.mode is 'lenient'"
        ):
            doc.execute(
                "INSERT INTO chunks (chunk_id, doc_id, embedding) VALUES ('a', 'd1', %s)",
                [vec(unit_random())],
            )


def test_override_needs_the_right_to_change_settings(doc):
    """A role that may insert but not change the settings cannot loosen them per transaction."""
    doc.execute("CREATE ROLE writer")
    doc.execute("GRANT INSERT, SELECT ON chunks, documents TO writer")
    doc.execute("GRANT USAGE ON SCHEMA embedding_gate TO writer")
    with doc.transaction():
        doc.execute("SET LOCAL ROLE writer")
        doc.execute("SET LOCAL embedding_gate.min_norm = '0'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="may not override"):
            doc.execute(
                "INSERT INTO chunks (chunk_id, doc_id, embedding) VALUES ('a', 'd1', %s)",
                [vec(np.zeros(D))],
            )


def test_verify_embeddings_reports_a_sample_with_counts_per_code(doc):
    write_chunks(
        doc,
        [chunk(f"g{i}", unit_random()) for i in range(50)]
        + [chunk("z", np.zeros(D)), chunk("k", np.full(D, 0.5))],
        "copy",
    )
    checked, low, rate, counts = doc.execute("SELECT * FROM verify_embeddings(1000)").fetchone()
    assert (checked, low) == (52, 2) and rate == pytest.approx(2 / 52)
    assert counts == {
        "nan_or_inf": 0,
        "low_norm": 1,
        "low_variance": 2,
        "sparse": 1,
        "blank_like": 0,
        "duplicate_vector": 0,
        "model_mismatch": 0,
    }
    assert doc.execute("SELECT checked FROM verify_embeddings(10)").fetchone() == (10,)
    assert doc.execute("SELECT checked FROM verify_embeddings()").fetchone() == (52,)


def test_recheck_applies_new_thresholds_to_every_stored_row_in_batches(doc):
    """Stricter thresholds flag rows stored earlier; reverting them clears the flags."""
    write_chunks(doc, [chunk(f"g{i:03d}", unit_random()) for i in range(120)], "copy")
    assert doc.execute("SELECT count(quality_issues) FROM chunks").fetchone() == (0,)
    doc.execute("UPDATE embedding_gate.settings SET min_norm = 0.2, min_variance = 0.01")
    checked, low = doc.execute("CALL recheck_embeddings(50)").fetchone()
    assert (checked, low) == (120, 120)
    assert doc.execute("SELECT DISTINCT quality_issues FROM chunks").fetchall() == [
        (["low_variance"],)
    ]
    doc.execute("UPDATE embedding_gate.settings SET min_norm = 0.1, min_variance = 0.001")
    assert doc.execute("CALL recheck_embeddings()").fetchone() == (120, 0)
    assert doc.execute("SELECT count(quality_issues) FROM chunks").fetchone() == (0,)


def test_rolled_back_transaction_leaves_no_trace_in_the_quarantine(doc):
    doc.execute("UPDATE embedding_gate.settings SET mode = 'quarantine'")
    doc.autocommit = False
    doc.execute(
        "INSERT INTO chunks (chunk_id, doc_id, embedding) VALUES ('z', 'd1', %s)",
        [vec(np.zeros(D))],
    )
    assert doc.execute("SELECT count(*) FROM embedding_quarantine").fetchone() == (1,)
    doc.rollback()
    doc.autocommit = True
    assert doc.execute("SELECT count(*) FROM embedding_quarantine").fetchone() == (0,)


@pytest.mark.plpython_only("the PL/Python package embedded in the database")
def test_installed_package_is_the_current_plpython_source_with_colons_intact(db):
    """One source of truth: the loader function embeds every module of
    plpython/embedding_gate/ verbatim, slices like [:20] included (alembic's text() would
    have read `:20` as a parameter), and the server imports them as one package."""
    body = db.execute("SELECT prosrc FROM pg_proc WHERE proname = '_python_package'").fetchone()[0]
    modules = sorted((ROOT / "plpython/embedding_gate").glob("*.py"))
    assert {m.stem for m in modules} >= {"checks", "codec", "queries", "triggers", "scans"}
    for module in modules:
        assert f"'{module.stem}': r'''" + module.read_text(encoding="utf-8") + "'''" in body
    assert "[:20]" in (ROOT / "plpython/embedding_gate/triggers.py").read_text()
    notices: list = []
    db.add_notice_handler(lambda d: notices.append(d.message_primary))
    db.execute(
        """DO LANGUAGE plpython3u $$
import sys
plpy.execute("SELECT embedding_gate._python_package()")
names = sorted(n.split(".")[1] for n in sys.modules if n.startswith("embedding_gate_") and "." in n)
plpy.notice(",".join(names))
$$"""
    )
    assert notices == [",".join(m.stem for m in modules if m.stem != "__init__")]
