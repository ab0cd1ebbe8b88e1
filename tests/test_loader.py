"""The loader against a real PostgreSQL and a real HTTP embedding server on loopback."""

import json
import os
import subprocess
import sys
import time

import psycopg
import pytest

from loader.embed import EmbeddingError
from tests.embed_server import EmbedServer, vector_for
from tests.helpers import (
    KOREAN,
    PG_CTL,
    ROOT,
    count,
    interrupted_load,
    load_corpus,
    loader_process,
    write_corpus,
)


def test_load_stores_everything_once_and_a_rerun_embeds_nothing(db, db_url, server, tmp_path):
    f = write_corpus(tmp_path / "a.json")
    _, stats = load_corpus(db_url, [f], server.url)
    assert (stats.documents, stats.chunks, stats.embedded, stats.skipped) == (5, 40, 40, 0)
    requests = server.requests
    _, again = load_corpus(db_url, [f], server.url)
    assert (again.documents, again.chunks, again.skipped) == (0, 0, 40)
    assert server.requests == requests  # nothing embedded twice
    assert count(db) == 40 and count(db, "SELECT count(*) FROM documents") == 5


def test_korean_content_round_trips_byte_for_byte(db, db_url, server, tmp_path):
    load_corpus(db_url, [write_corpus(tmp_path / "a.json", documents=1, chunks=2)], server.url)
    stored = dict(db.execute("SELECT chunk_id, content FROM chunks"))
    assert stored["doc0-1"].encode() == f"{KOREAN} 0/1".encode()
    length = db.execute("SELECT content_length FROM chunks WHERE chunk_id = 'doc0-1'").fetchone()
    assert length == (len(f"{KOREAN} 0/1"),)  # characters, not bytes


def test_dropped_and_empty_chunks_are_stored_but_not_embedded(db, db_url, server, tmp_path):
    doc = {
        "doc_id": "d",
        "chunks": [
            {"chunk_id": "kept", "content": "text"},
            {"chunk_id": "empty", "content": ""},
            {"chunk_id": "dropped", "content": "dropped text", "drop": True},
        ],
    }
    f = tmp_path / "d.json"
    f.write_text(json.dumps([doc]))
    _, stats = load_corpus(db_url, [f], server.url)
    assert (stats.chunks, stats.embedded, stats.not_embedded) == (3, 1, 2)
    assert server.texts_seen == ["text"]
    rows = dict(db.execute("SELECT chunk_id, embedding IS NOT NULL FROM chunks"))
    assert rows == {"kept": True, "empty": False, "dropped": False}


def test_transient_failures_are_retried_and_oversized_batches_split(db, db_url, server, tmp_path):
    f = write_corpus(tmp_path / "a.json", documents=2, chunks=8)
    server.faults.extend(
        [
            (429, '{"error": "overloaded"}'),
            (500, '{"error": "boom"}'),
            (503, "not even JSON"),
            (413, '{"error": "payload too large"}'),
            (422, '{"error": "batch size 8 > maximum allowed batch size 3"}'),
        ]
    )
    _, stats = load_corpus(db_url, [f], server.url, batch_size=8)
    assert stats.chunks == 16 and count(db) == 16


def test_a_timeout_is_retried(db, db_url, server, tmp_path):
    f = write_corpus(tmp_path / "a.json", documents=1, chunks=3)
    server.faults.append(("sleep", 1.5))
    _, stats = load_corpus(db_url, [f], server.url, timeout=0.5)
    assert stats.chunks == 3


def test_wrong_number_of_vectors_fails_clearly_and_stores_nothing_of_it(
    db, db_url, server, tmp_path
):
    f = write_corpus(tmp_path / "a.json", documents=1, chunks=3)
    server.faults.append(("vectors", [[0.1] * 768] * 2))
    with pytest.raises(
        EmbeddingError, match=r"returned 2 vectors for 3 inputs \(chunks doc0-0..doc0-2\)"
    ):
        load_corpus(db_url, [f], server.url)
    assert count(db) == 0


def test_wrong_dimension_fails_clearly(db, db_url, server, tmp_path):
    f = write_corpus(tmp_path / "a.json", documents=1, chunks=1)
    server.faults.append(("vectors", [[0.1] * 384]))
    with pytest.raises(
        EmbeddingError, match=r"chunk doc0-0: .* 384-dimension vector, the database expects 768"
    ):
        load_corpus(db_url, [f], server.url)
    server.faults.append(("vectors", [[]]))
    with pytest.raises(
        EmbeddingError, match=r"chunk doc0-0: .* 0-dimension vector, the database expects 768"
    ):
        load_corpus(db_url, [f], server.url)
    assert count(db) == 0


def test_a_megabyte_of_content_loads_and_one_the_server_refuses_is_named(
    db, db_url, server, tmp_path
):
    big = "임베딩 " * 262_144  # 1,048,576 characters, 2.8 MB of UTF-8
    extra = [{"doc_id": "big", "chunks": [{"chunk_id": "big-0", "content": big}]}]
    f = write_corpus(tmp_path / "a.json", documents=1, chunks=2, extra=extra)
    _, stats = load_corpus(db_url, [f], server.url)
    assert stats.chunks == 3
    row = db.execute(
        "SELECT content = %s, content_length, embedding IS NOT NULL FROM chunks"
        " WHERE chunk_id = 'big-0'",
        [big],
    ).fetchone()
    assert row == (True, 1_048_576, True)
    # a server with a request size limit refuses it alone: named, and the rest stays
    extra[0]["chunks"][0]["chunk_id"] = "big-1"
    extra[0]["doc_id"] = "big1"
    f = write_corpus(tmp_path / "b.json", documents=0, extra=extra)
    server.faults.append((413, '{"error": "payload too large"}'))
    with pytest.raises(EmbeddingError, match="refused chunk big-1 alone as too large"):
        load_corpus(db_url, [f], server.url)
    assert count(db) == 3


def test_non_numeric_values_and_non_json_answers_fail_clearly(db, db_url, server, tmp_path):
    f = write_corpus(tmp_path / "a.json", documents=1, chunks=1)
    server.faults.append(("vectors", [["x"] * 768]))
    with pytest.raises(EmbeddingError, match="component 0 of the embedding is not a number"):
        load_corpus(db_url, [f], server.url)
    server.faults.append((200, "<html>gateway</html>"))
    with pytest.raises(EmbeddingError, match="is not JSON"):
        load_corpus(db_url, [f], server.url)
    assert count(db) == 0


def test_nan_from_the_server_reaches_the_gate_and_the_rest_loads(db, db_url, server, tmp_path):
    extra = [{"doc_id": "z", "chunks": [{"chunk_id": "z-0", "content": "<zero>"}]}]
    f = write_corpus(tmp_path / "a.json", documents=1, chunks=3, extra=extra)
    _, stats = load_corpus(db_url, [f], server.url)
    assert stats.chunks == 4
    row = db.execute(
        "SELECT quality_issues, cardinality(embedding_raw), embedding IS NULL FROM chunks"
        " WHERE chunk_id = 'z-0'"
    ).fetchone()
    assert row == (["nan_or_inf"], 768, True)
    assert count(db, "SELECT count(*) FROM chunks WHERE quality_issues IS NULL") == 3


def test_a_value_beyond_float4_is_stored_raw_and_flagged_and_the_rest_loads(
    db, db_url, server, tmp_path
):
    """1e39 does not fit a float4: pgvector would refuse it (SQLSTATE 22003). The loader
    stores it as Inf in embedding_raw, the gate flags it nan_or_inf, and the batch loads."""
    f = write_corpus(tmp_path / "a.json", documents=1, chunks=3)
    huge = vector_for("huge")
    huge[5] = 1e39
    server.faults.append(("vectors", [vector_for("a"), huge, vector_for("b")]))
    _, stats = load_corpus(db_url, [f], server.url)
    assert stats.chunks == 3
    rows = db.execute(
        "SELECT chunk_id, quality_issues, embedding_raw[6] FROM chunks ORDER BY chunk_id"
    ).fetchall()
    assert rows == [
        ("doc0-0", None, None),
        ("doc0-1", ["nan_or_inf"], float("inf")),
        ("doc0-2", None, None),
    ]


def test_the_cli_ends_without_a_traceback_on_a_value_beyond_float4(db_url, server, tmp_path):
    f = write_corpus(tmp_path / "a.json", documents=1, chunks=1)
    server.faults.append(("vectors", [[1e39] * 768]))
    proc = loader_process(db_url, f, server.url)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert b"Traceback" not in err and b"1 new chunks (1 embedded" in out


def test_a_chunk_index_beyond_integer_is_a_corpus_error_naming_the_field(
    db, db_url, server, tmp_path
):
    extra = [
        {"doc_id": "big", "chunks": [{"chunk_id": "big-0", "content": "x", "chunk_index": 2**40}]}
    ]
    f = write_corpus(tmp_path / "a.json", documents=1, chunks=1, extra=extra)
    data, stats = load_corpus(db_url, [f], server.url)
    assert data.errors == [
        f"{f}: document 'big': chunk 'big-0'.chunk_index: 1099511627776 is out of range"
        " (-2147483648 to 2147483647)"
    ]
    assert stats.chunks == 1 and count(db) == 1


def test_server_down_is_reported_with_what_to_do(db, db_url, tmp_path):
    f = write_corpus(tmp_path / "a.json", documents=1, chunks=1)
    dead = EmbedServer()
    dead.close()
    with pytest.raises(EmbeddingError, match="is not reachable .* start it, or set EMBED_API_URL"):
        load_corpus(db_url, [f], dead.url)


def test_bad_input_names_file_document_and_field_and_loads_the_rest(db, db_url, server, tmp_path):
    good = write_corpus(tmp_path / "good.json", documents=1, chunks=2)
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            [
                {"doc_id": "ok", "chunks": [{"chunk_id": "ok-0", "content": "fine"}]},
                {
                    "doc_id": "nochunkid",
                    "chunks": [{"content": "x"}, {"chunk_id": "n-1", "content": "y"}],
                },
                {"doc_id": "dup", "chunks": [{"chunk_id": "doc0-0", "content": "again"}]},
                {"doc_id": "nul", "chunks": [{"chunk_id": "nul-0", "content": "a\u0000b"}]},
            ]
        )
    )
    broken = tmp_path / "broken.json"
    broken.write_text('[{"doc_id": "x",\n "chunks": [}]')
    data, stats = load_corpus(db_url, [good, bad, broken], server.url)
    assert data.errors == [
        f"{bad}: document 'nochunkid': chunks[0].chunk_id: required, a non-empty string",
        f"{bad}: document 'dup': chunk 'doc0-0': chunk_id already in {good}: document 'doc0'",
        f"{bad}: document 'nul': chunk 'nul-0'.content: contains NUL characters, which"
        " PostgreSQL cannot store",
        f"{broken}:2:13: not JSON: Expecting value",
    ]
    assert sorted(r[0] for r in db.execute("SELECT chunk_id FROM chunks")) == [
        "doc0-0",
        "doc0-1",
        "ok-0",
    ]
    assert (
        count(db, "SELECT count(*) FROM documents WHERE doc_id IN ('nochunkid', 'dup', 'nul')") == 0
    )


def rerun_completes(db_url: str, f, embed_url: str, stored: int) -> None:
    """The same load again stores exactly what the interrupted one had not: 200 chunks,
    each once."""
    _, stats = load_corpus(db_url, [f], embed_url)
    assert stats.chunks == 200 - stored
    with psycopg.connect(db_url) as conn:
        assert count(conn, "SELECT count(*) FROM chunks") == 200
        assert count(conn, "SELECT count(DISTINCT chunk_id) FROM chunks") == 200


def test_a_loader_killed_mid_run_resumes_without_duplicates_or_gaps(db, db_url, server, tmp_path):
    f = write_corpus(tmp_path / "a.json", documents=10, chunks=20)
    server.delay = 0.05
    proc = loader_process(db_url, f, server.url, "--batch-size", "5", "--in-flight", "1")
    stored, _ = interrupted_load(db_url, proc, proc.kill, once_stored=30)
    assert 30 <= stored < 200
    server.delay = 0
    time.sleep(0.3)  # the killed loader's request in flight finishes on the server
    server.texts_seen.clear()
    rerun_completes(db_url, f, server.url, stored)
    # the rerun embedded only what was missing
    assert len(server.texts_seen) == 200 - stored


def test_two_loaders_at_once_store_each_chunk_once(db, db_url, server, tmp_path):
    f = write_corpus(tmp_path / "a.json", documents=10, chunks=20)
    procs = [loader_process(db_url, f, server.url, "--batch-size", "7") for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert count(db) == 200
    assert count(db, "SELECT count(DISTINCT chunk_id) FROM chunks") == 200


def test_the_cli_prints_the_summary_in_the_reference_terms(db, db_url, server, tmp_path):
    f = write_corpus(tmp_path / "a.json", documents=2, chunks=3)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EMBED_API_URL": server.url}
    out = subprocess.run(
        [sys.executable, "-m", "loader", "--database-url", db_url, "load", str(f)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "6 new chunks (6 embedded, 0 dropped or empty)" in out
    assert (
        "Total documents:                  2" in out
        and "Embedded:                         6" in out
    )


def test_check_server(server):
    from loader.cli import main

    assert main(["check-server", "--embed-url", server.url]) == 0


def test_a_database_restart_mid_load_fails_clearly_and_a_rerun_completes(
    db, db_url, server, tmp_path, postgresql_proc
):
    f = write_corpus(tmp_path / "a.json", documents=10, chunks=20)
    server.delay = 0.05
    proc = loader_process(db_url, f, server.url, "--batch-size", "5", "--in-flight", "1")
    restart = [PG_CTL, "restart", "-D", postgresql_proc.datadir, "-m", "fast", "-w"]
    restart += ["-l", str(tmp_path / "restart.log")]
    stored, err = interrupted_load(
        db_url, proc, lambda: subprocess.run(restart, check=True, stdout=subprocess.DEVNULL), 30
    )
    assert proc.returncode == 1
    assert "lost the connection to the database" in err
    assert "run the same command again to finish" in err
    server.delay = 0
    rerun_completes(db_url, f, server.url, stored)
    assert 30 <= stored < 200


def test_the_embedding_server_dying_mid_run_fails_clearly_and_a_rerun_completes(
    db, db_url, tmp_path
):
    f = write_corpus(tmp_path / "a.json", documents=10, chunks=20)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    doomed = subprocess.Popen(
        [sys.executable, "-m", "tests.embed_server"], env=env, stdout=subprocess.PIPE, text=True
    )
    url = doomed.stdout.readline().strip()
    options = ["--batch-size", "2", "--in-flight", "1", "--retries", "2"]
    proc = loader_process(db_url, f, url, *options)
    stored, err = interrupted_load(db_url, proc, lambda: (doomed.kill(), doomed.wait()), 20)
    assert proc.returncode == 1, err
    assert "the embedding server failed 3 times" in err
    assert 20 <= stored < 200
    server = EmbedServer()
    try:
        rerun_completes(db_url, f, server.url, stored)
    finally:
        server.close()


def test_a_failure_while_the_copy_streams_rolls_it_back_and_is_raised(db, db_url, tmp_path):
    """copy_stream sends each part as it is produced; when producing the next part fails,
    what was sent of that COPY is rolled back, the failure is raised as it was, and the
    connection goes on (the loader commits what came before a failed answer, not after)."""
    from loader import corpus as corpus_module
    from loader import db as loader_db

    f = write_corpus(tmp_path / "a.json", documents=1, chunks=4)
    data = corpus_module.read([f])
    conn = loader_db.connect(db_url)
    try:
        loader_db.insert_documents(conn, data.documents)
        parts = [(loader_db.copy_rows(data.chunks[:2], None, None), 2)]

        def produce():
            if parts:
                return parts.pop()
            raise EmbeddingError("the server went away")

        with pytest.raises(EmbeddingError, match="the server went away"):
            loader_db.copy_stream(conn, produce)
        assert count(db) == 0
        rest = [(loader_db.copy_rows(data.chunks, None, None), 4)]
        assert loader_db.copy_stream(conn, lambda: rest.pop() if rest else None) == (4, 4)
        assert count(db) == 4
    finally:
        conn.close()
