"""The reports on a fixture corpus with known bad vectors, short, empty and dropped chunks,
and Korean text: low_quality_embeddings, short_content_chunks, embedding_quality_summary,
embedding_measures() and preview_thresholds()."""

from collections import Counter

import numpy as np
import pytest
from embedding_gate.checks import CODES, evaluate

from tests.cases import DEFAULTS, D, one_hot, unit_random
from tests.helpers import chunk, write_chunks

KOREAN = "임베딩 품질을 데이터베이스가 직접 지킵니다. 빈 청크는 검색을 망칩니다. " * 4

# chunk_id -> (doc_id, content, drop, embedding or None, NaN/Inf raw vector or None)
CORPUS = {
    "en-1": ("d-en", "Retrieval needs embeddings that mean something.", False, unit_random(), None),
    "en-2": ("d-en", "PostgreSQL checks every vector on insert.", False, unit_random(), None),
    "en-3": ("d-en", "A third, ordinary English paragraph.", False, unit_random(), None),
    "ko-1": ("d-ko", KOREAN, False, unit_random(), None),
    "ko-zero": ("d-ko", KOREAN, False, np.zeros(D), None),
    "ko-short": ("d-ko", "ㅋㅋㅋ", False, unit_random(), None),
    "blank": ("d-mix", " ", False, one_hot(0.0234), None),
    "dot": ("d-mix", ".", False, one_hot(1.0), None),
    "nan": ("d-mix", "the server sent NaN", False, None, np.r_[np.nan, np.ones(D - 1)]),
    "nine-chars": ("d-mix", "123456789", False, unit_random(), None),
    "ten-chars": ("d-mix", "1234567890", False, unit_random(), None),
    "empty": ("d-mix", "", False, None, None),
    "no-content": ("d-mix", None, False, None, None),
    "dropped": ("d-mix", "a dropped chunk", True, None, None),
    "dropped-bad": ("d-mix", "x", True, np.full(D, 1e-4), None),
}
# inserted in quarantine mode: kept out of chunks
QUARANTINED = {"quarantined": ("d-mix", "?", False, np.full(D, 0.5), None)}
DOCUMENTS = ("d-en", "d-ko", "d-mix")


def expected_codes(spec) -> list:
    x = spec[3] if spec[3] is not None else spec[4]
    return [] if x is None else evaluate(x.reshape(1, -1), DEFAULTS).issues(0)


def insert(conn, corpus) -> None:
    rows = [
        chunk(k, e, r, doc_id=d, content=c, drop=drop) for k, (d, c, drop, e, r) in corpus.items()
    ]
    write_chunks(conn, rows)


@pytest.fixture
def corpus(db):
    with db.cursor() as cur:
        cur.executemany("INSERT INTO documents (doc_id) VALUES (%s)", [(d,) for d in DOCUMENTS])
    insert(db, CORPUS)
    with db.transaction():
        db.execute("SET LOCAL embedding_gate.mode = 'quarantine'")
        insert(db, QUARANTINED)
    return db


def test_low_quality_embeddings_lists_flagged_and_quarantined_chunks(corpus):
    rows = corpus.execute(
        "SELECT chunk_id, doc_id, issues, reason, content_length, content_preview, quarantined,"
        " norm IS NOT NULL, checked_at IS NOT NULL FROM low_quality_embeddings"
    ).fetchall()
    everything = {**CORPUS, **QUARANTINED}
    bad = {k for k, spec in everything.items() if expected_codes(spec)}
    assert (
        {r[0] for r in rows}
        == bad
        == {"ko-zero", "blank", "dot", "nan", "dropped-bad", "quarantined"}
    )
    for chunk_id, doc_id, codes, reason, length, preview, quarantined, has_norm, checked in rows:
        spec = everything[chunk_id]
        assert (doc_id, codes, quarantined) == (
            spec[0],
            expected_codes(spec),
            chunk_id in QUARANTINED,
        )
        assert length == len(spec[1]) and preview == spec[1][:100] and checked and reason
        assert has_norm == (chunk_id != "nan")
    by_id = {r[0]: r for r in rows}
    # Korean: the preview is 100 characters (not bytes), the length counts characters
    assert len(KOREAN) > 100 and len(KOREAN.encode()) > 2 * len(KOREAN)
    assert by_id["ko-zero"][5] == KOREAN[:100] and by_id["ko-zero"][4] == len(KOREAN)
    assert by_id["blank"][3].startswith("norm too low (0.0234)")
    assert by_id["nan"][3] == f"NaN or Inf in 1 of {D} components"


def test_short_content_chunks_lists_the_shortest_embedded_and_marks_drop_candidates(corpus):
    rows = corpus.execute("SELECT * FROM short_content_chunks").fetchall()
    embedded = {
        k: spec
        for k, spec in CORPUS.items()
        if not spec[2] and (spec[3] is not None or spec[4] is not None)
    }
    # fewer than ten embedded chunks under 10 characters here: the ten shortest are listed
    expected = sorted(embedded, key=lambda k: (len(embedded[k][1]), k))[:10]
    assert [r[0] for r in rows] == expected
    for chunk_id, doc_id, length, preview, candidate in rows:
        assert (doc_id, length, preview) == (
            CORPUS[chunk_id][0],
            len(CORPUS[chunk_id][1]),
            CORPUS[chunk_id][1][:100],
        )
        assert candidate == (length < 10)
    assert {r[0] for r in rows if r[4]} == {"blank", "dot", "ko-short", "nine-chars"}
    # the minimum is a setting; every chunk under it is listed, beyond the ten shortest
    corpus.execute("UPDATE embedding_gate.settings SET min_content_length = 1000")
    rows = corpus.execute("SELECT chunk_id, drop_candidate FROM short_content_chunks").fetchall()
    assert {r[0] for r in rows} == set(embedded) and all(r[1] for r in rows)


def test_summary_numbers_equal_counts_computed_from_the_corpus(corpus):
    row = corpus.execute("SELECT * FROM embedding_quality_summary").fetchone()
    names = [c.name for c in corpus.execute("SELECT * FROM embedding_quality_summary").description]
    got = dict(zip(names, row, strict=True))
    got["low_quality_pct"] = float(got["low_quality_pct"])  # numeric, two decimals
    embedded = [k for k, s in CORPUS.items() if s[3] is not None or s[4] is not None]
    bad = [s for s in {**CORPUS, **QUARANTINED}.values() if expected_codes(s)]
    codes = Counter(code for s in bad for code in expected_codes(s))
    assert got == {
        "documents": len(DOCUMENTS),
        "chunks": len(CORPUS),
        "dropped": sum(s[2] for s in CORPUS.values()),
        "empty_content": sum(not s[1] for s in CORPUS.values()),
        "embedded": len(embedded) + len(QUARANTINED),
        "low_quality": len(bad),
        "low_quality_pct": round(100 * len(bad) / (len(embedded) + len(QUARANTINED)), 2),
        "quarantined": len(QUARANTINED),
        "issue_counts": dict(codes),
        # what each figure counts, per table
        "tables": {
            "public.chunks": {
                "embedded": len(embedded) + len(QUARANTINED),
                "low_quality": len(bad),
                "quarantined": len(QUARANTINED),
            }
        },
    }


def test_summary_of_an_empty_database(db):
    assert db.execute("SELECT * FROM embedding_quality_summary").fetchone() == (
        0,
        0,
        0,
        0,
        0,
        0,
        None,
        0,
        {},
        {"public.chunks": {"embedded": 0, "low_quality": 0, "quarantined": 0}},
    )


def test_embedding_measures_match_numpy(corpus):
    rows = {r[0]: r[1:7] for r in corpus.execute("SELECT * FROM embedding_measures()")}
    stored = {k for k, s in CORPUS.items() if s[3] is not None or s[4] is not None}
    assert set(rows) == stored
    x = CORPUS["en-1"][3].astype(np.float64)
    norm, variance, ratio, similarity, model, codes = rows["en-1"]
    assert norm == pytest.approx(np.linalg.norm(x)) and variance == pytest.approx(x.var())
    assert ratio == pytest.approx(np.mean(np.abs(x) < 0.001)) and codes == []
    assert (similarity, model) == (None, None)  # no model, so no blank_like measure
    assert rows["nan"] == (None, None, 0.0, None, None, ["nan_or_inf"])
    # another epsilon counts other components as near zero
    wide = dict(corpus.execute("SELECT chunk_id, near_zero_ratio FROM embedding_measures(1.0)"))
    assert wide["en-1"] == 1.0


def test_preview_predicts_exactly_what_recheck_then_flags(corpus):
    proposed = {
        "min_norm": 0.2,
        "min_variance": 0.01,
        "near_zero_epsilon": 0.01,
        "max_near_zero_ratio": 0.5,
    }
    rows = corpus.execute(
        "SELECT check_code, flagged_now, flagged_proposed FROM preview_thresholds("
        "min_norm => %(min_norm)s, min_variance => %(min_variance)s,"
        " near_zero_epsilon => %(near_zero_epsilon)s, max_near_zero_ratio => %(max_near_zero_ratio)s)",
        proposed,
    ).fetchall()
    before = {code: n for code, n, _ in rows}
    predicted = {code: n for code, _, n in rows}

    def flagged_per_code() -> dict:
        counts = dict(
            corpus.execute(
                "SELECT code, count(*) FROM chunks, unnest(quality_issues) AS code GROUP BY code"
            ).fetchall()
        )
        counts["any"] = corpus.execute("SELECT count(quality_issues) FROM chunks").fetchone()[0]
        return {code: counts.get(code, 0) for code in (*CODES, "any")}

    assert before == flagged_per_code()
    corpus.execute(
        "UPDATE embedding_gate.settings SET min_norm = %(min_norm)s, min_variance = %(min_variance)s,"
        " near_zero_epsilon = %(near_zero_epsilon)s, max_near_zero_ratio = %(max_near_zero_ratio)s",
        proposed,
    )
    corpus.execute("CALL recheck_embeddings(3)")
    assert flagged_per_code() == predicted
    assert predicted["any"] > before["any"]


def test_preview_shows_that_the_stricter_example_flags_every_unit_vector(db):
    """The reference pipeline's 'stricter' thresholds (norm 0.2, variance 0.01) flag every
    unit-normalised 768-d vector: its variance is about 1/768 = 0.0013."""
    db.execute("INSERT INTO documents (doc_id) VALUES ('d1')")
    insert(db, {f"u{i}": ("d1", "text", False, unit_random(), None) for i in range(200)})
    rows = {
        r[0]: r[1:]
        for r in db.execute(
            "SELECT check_code, p50, flagged_now, flagged_proposed, flagged_proposed_pct, note"
            " FROM preview_thresholds(min_norm => 0.2, min_variance => 0.01)"
        )
    }
    p50, now, proposed, pct, note = rows["low_variance"]
    assert p50 == pytest.approx(1 / D, rel=0.01) and (now, proposed, pct) == (0, 200, 100.0)
    assert "1/d = 0.001302" in note
    assert rows["low_norm"][2:4] == (0, 0.0) and rows["any"][2] == 200
    # nothing changed
    assert db.execute("SELECT count(quality_issues) FROM chunks").fetchone() == (0,)
    assert db.execute("SELECT min_norm, min_variance FROM embedding_gate.settings").fetchone() == (
        0.1,
        0.001,
    )


def test_preview_refuses_a_negative_threshold(db):
    with pytest.raises(Exception, match="min_norm is -1.0, expected a non-negative number"):
        db.execute("SELECT * FROM preview_thresholds(min_norm => -1)")


def test_every_view_and_column_a_user_reads_has_a_comment(db):
    missing = db.execute(
        "SELECT c.relname || coalesce('.' || a.attname, '') FROM pg_class AS c"
        " LEFT JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0"
        " WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'v'"
        " AND (obj_description(c.oid, 'pg_class') IS NULL"
        "      OR (a.attname IS NOT NULL AND col_description(c.oid, a.attnum) IS NULL))"
    ).fetchall()
    views = db.execute("SELECT viewname FROM pg_views WHERE schemaname = 'public' ORDER BY 1")
    assert [v for (v,) in views] == [
        "embedding_quality_by_day",
        "embedding_quality_summary",
        "low_quality_embeddings",
        "short_content_chunks",
    ]
    assert missing == []


def test_cli_report_prints_the_summary_and_writes_a_valid_png(corpus, db_url, tmp_path, capsys):
    import matplotlib.image

    from loader.cli import main

    png = tmp_path / "quality.png"
    assert main(["--database-url", db_url, "report", "--limit", "3", "--png", str(png)]) == 0
    out = capsys.readouterr().out
    assert "Total documents:                  3" in out
    assert "Low-quality embeddings:           6 (46.15%)" in out  # of 13 embedded
    assert (
        out.count("    reason: ") == 3 and "Low-quality embeddings (first 3, newest first)" in out
    )
    assert f"wrote {png} (the measures of 12 embeddings)" in out  # in chunks, NaN included
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _ = matplotlib.image.imread(png).shape
    assert (width, height) == (1560, 1140)  # six measures and the days, 3 x 3


def test_the_summary_s_totals_follow_every_kind_of_write(doc):
    """The totals of chunks and documents are kept by triggers, not counted: they follow
    inserts, deletes, a quarantine's moves, cascades from documents, and TRUNCATE."""

    def totals() -> tuple:
        kept = doc.execute("SELECT documents, chunks FROM embedding_quality_summary").fetchone()
        counted = doc.execute(
            "SELECT (SELECT count(*) FROM documents), (SELECT count(*) FROM chunks)"
        ).fetchone()
        assert kept == counted
        return kept

    doc.execute("INSERT INTO documents (doc_id) VALUES ('d2'), ('d3')")
    write_chunks(doc, [chunk(f"a{i}", unit_random()) for i in range(30)], "copy")
    write_chunks(doc, [chunk(f"b{i}", unit_random(), doc_id="d2") for i in range(5)])
    assert totals() == (3, 35)
    doc.execute("DELETE FROM chunks WHERE chunk_id IN ('a1', 'a2')")
    doc.execute("DELETE FROM documents WHERE doc_id = 'd2'")  # its 5 chunks go with it
    assert totals() == (2, 28)
    doc.execute("UPDATE embedding_gate.settings SET mode = 'quarantine'")
    write_chunks(doc, [chunk("zero", np.zeros(D)), chunk("fine", unit_random())])
    assert totals() == (2, 29)  # the zero vector went to the quarantine
    for i in range(150):  # a statement each: their deltas are folded every 64
        write_chunks(doc, [chunk(f"c{i}", unit_random())])
    assert totals() == (2, 179)
    rows = doc.execute(
        "SELECT count(*) FROM embedding_gate._row_counts WHERE relation = 'chunks'"
    ).fetchone()[0]
    assert rows <= 64
    doc.execute("TRUNCATE chunks")
    assert totals() == (2, 0)
    doc.execute("TRUNCATE documents CASCADE")
    assert totals() == (0, 0)
    # rows written with the triggers off (the owner can) are counted again on demand
    doc.execute("INSERT INTO documents (doc_id) VALUES ('d9')")
    doc.execute("ALTER TABLE chunks DISABLE TRIGGER USER")
    write_chunks(doc, [chunk("off", unit_random(), doc_id="d9")])
    doc.execute("ALTER TABLE chunks ENABLE TRIGGER USER")
    kept = doc.execute("SELECT documents, chunks FROM embedding_quality_summary").fetchone()
    assert kept == (1, 0)
    recounted = doc.execute("SELECT * FROM embedding_gate.recount()").fetchall()
    assert recounted == [("chunks", 1), ("documents", 1)] and totals() == (1, 1)
