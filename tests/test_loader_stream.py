"""The loader reads the corpus while it stores it, and `load --processes N` shares the
chunks between processes: against a real PostgreSQL and a loopback embedding server."""

import json
import threading
import time
from collections import Counter

import psycopg

from loader import corpus, load
from loader.db import connect
from loader.embed import Client
from tests.embed_server import EmbedServer
from tests.helpers import KOREAN, count, interrupted_load, loader_process, write_corpus


def test_the_first_chunks_are_stored_before_the_rest_of_the_corpus_is_read(
    db, db_url, server, tmp_path
):
    """A corpus whose later documents can only be read once the first ones are in the
    database: a loader that read everything before storing would never store anything (the
    generator gives up after 60 s and the test fails)."""
    first = [
        corpus.parse_document(
            {
                "doc_id": f"a{d}",
                "chunks": [{"chunk_id": f"a{d}-{i}", "content": f"a {d} {i}"} for i in range(50)],
            },
            "first.json",
            d,
        )
        for d in range(50)  # 2,500 chunks: more than a segment
    ]
    seen_stored = []

    def documents():
        yield from first
        deadline = time.monotonic() + 60
        with psycopg.connect(db_url, autocommit=True) as conn:
            while count(conn) == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
            seen_stored.append(count(conn))
        yield corpus.parse_document(
            {"doc_id": "late", "chunks": [{"chunk_id": "late-0", "content": "late"}]},
            "second.json",
            0,
        )

    conn = connect(db_url)
    try:
        stats = load.load(conn, documents(), Client(server.url, batch_size=64), segment_rows=500)
    finally:
        conn.close()
    assert seen_stored and seen_stored[0] > 0
    assert (stats.documents, stats.chunks, stats.embedded) == (51, 2501, 2501)
    assert count(db) == 2501


def test_bad_input_in_a_later_file_is_named_and_the_rest_loads_once(db, db_url, server, tmp_path):
    """Read as it is stored, the corpus keeps the reader's guarantees: an error names the file,
    the document and the chunk; a chunk_id repeated in a later file is refused there, the
    first one kept; the CLI says so and exits 1; a rerun embeds and stores nothing more."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    write_corpus(folder / "a.json", documents=60, chunks=40)  # 2,400 chunks, read first
    late = folder / "b.jsonl"
    late.write_text(
        "\n".join(
            json.dumps(d, ensure_ascii=False)
            for d in [
                {"doc_id": "ok", "chunks": [{"chunk_id": "ok-0", "content": "fine"}]},
                {"doc_id": "again", "chunks": [{"chunk_id": "doc3-7", "content": "again"}]},
                {"doc_id": "bad", "chunks": [{"chunk_id": "bad-0", "content": 7}]},
            ]
        )
    )
    (folder / "c.json").write_text('[{"doc_id": "x", "chunks": [}]')
    proc = loader_process(db_url, folder, server.url)
    out, err = (s.decode() for s in proc.communicate(timeout=120))
    assert proc.returncode == 1, err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert errors == [
        f"error: {late}: document 'again': chunk 'doc3-7': chunk_id already in"
        f" {folder / 'a.json'}: document 'doc3'",
        f"error: {late}: document 'bad': chunk 'bad-0'.content: required, a string (empty is"
        " allowed)",
        f"error: {folder / 'c.json'}:1:29: not JSON: Expecting value",
    ]
    assert "loaded 61 documents from 3 files: 61 new documents, 2,401 new chunks" in out
    assert count(db) == 2401
    assert db.execute("SELECT content FROM chunks WHERE chunk_id = 'doc3-7'").fetchone() == (
        f"{KOREAN} 3/7",
    )
    embedded = len(server.texts_seen)
    proc = loader_process(db_url, folder, server.url)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert b"0 new chunks" in out and b"2,401 already stored" in out
    assert len(server.texts_seen) == embedded  # nothing embedded twice
    assert count(db) == 2401


def test_processes_share_the_chunks_and_end_with_one_summary(db, db_url, server, tmp_path):
    f = write_corpus(tmp_path / "a.json", documents=30, chunks=20)
    proc = loader_process(db_url, f, server.url, "--processes", "3", "--batch-size", "16")
    out, err = (s.decode() for s in proc.communicate(timeout=120))
    assert proc.returncode == 0, err
    assert out.count("loaded 30 documents from 1 files: 30 new documents, 600 new chunks") == 1
    assert out.count("Total documents:") == 0  # --no-report
    assert count(db) == 600 and count(db, "SELECT count(DISTINCT chunk_id) FROM chunks") == 600
    # each chunk embedded once, by one of the processes
    seen = Counter(t for t in server.texts_seen if t.startswith(KOREAN))
    assert len(seen) == 600 and set(seen.values()) == {1}
    # every process wrote: each has its connection, named the same
    assert count(db, "SELECT count(*) FROM documents") == 30


def test_processes_print_one_report(db, db_url, server, tmp_path):
    import os
    import subprocess
    import sys

    from tests.helpers import ROOT

    f = write_corpus(tmp_path / "a.json", documents=4, chunks=5)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EMBED_API_URL": server.url}
    cmd = [sys.executable, "-m", "loader", "--database-url", db_url, "load", str(f)]
    done = subprocess.run(
        [*cmd, "--processes", "2"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("loaded 4 documents from 1 files") == 1
    assert done.stdout.count("Total documents:") == 1
    assert "Embedded:                        20\n" in done.stdout


def test_processes_stopped_by_a_dead_server_say_it_once_and_a_rerun_completes(db, db_url, tmp_path):
    import os
    import subprocess
    import sys

    from tests.helpers import ROOT

    f = write_corpus(tmp_path / "a.json", documents=10, chunks=20)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    doomed = subprocess.Popen(
        [sys.executable, "-m", "tests.embed_server"], env=env, stdout=subprocess.PIPE, text=True
    )
    url = doomed.stdout.readline().strip()
    options = ["--batch-size", "2", "--in-flight", "1", "--retries", "2", "--processes", "2"]
    proc = loader_process(db_url, f, url, *options)
    stored, err = interrupted_load(db_url, proc, lambda: (doomed.kill(), doomed.wait()), 20)
    assert proc.returncode == 1, err
    assert err.count("error: ") == 1 and "the embedding server failed 3 times" in err
    assert "run the same command again to finish" in err
    assert 20 <= stored < 200
    server = EmbedServer()
    try:
        proc = loader_process(db_url, f, server.url, "--processes", "2")
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert f"{200 - stored:,} new chunks".encode() in out
        assert len([t for t in server.texts_seen if t.startswith(KOREAN)]) == 200 - stored
    finally:
        server.close()
    assert count(db) == 200 and count(db, "SELECT count(DISTINCT chunk_id) FROM chunks") == 200


def test_a_stop_between_copies_keeps_what_was_committed(db, db_url, server):
    """load(stop=...) ends after the COPY under way (what --processes uses when another
    process failed); a second load stores the rest."""
    docs = [
        corpus.parse_document(
            {
                "doc_id": f"d{d}",
                "chunks": [{"chunk_id": f"d{d}-{i}", "content": f"t {d} {i}"} for i in range(10)],
            },
            "mem.json",
            d,
        )
        for d in range(40)
    ]
    stop = threading.Event()

    def progress(done, found):
        stop.set()

    conn = connect(db_url)
    try:
        client = Client(server.url, batch_size=10)
        first = load.load(conn, iter(docs), client, on_progress=progress, stop=stop, insert_rows=50)
        assert 0 < first.embedded < 400
        second = load.load(conn, iter(docs), client)
    finally:
        conn.close()
    assert first.embedded + second.embedded == 400 == count(db)


def test_processes_end_with_a_killed_loader_and_a_rerun_completes(db, db_url, server, tmp_path):
    """SIGKILL of the process that reads the files ends the processes it started too (their
    COPYs under way roll back, as a killed loader's); a rerun stores exactly the rest."""
    f = write_corpus(tmp_path / "a.json", documents=10, chunks=20)
    server.delay = 0.05
    options = ["--batch-size", "5", "--in-flight", "1", "--processes", "2"]
    proc = loader_process(db_url, f, server.url, *options)
    interrupted_load(db_url, proc, proc.kill, once_stored=30)
    deadline = time.monotonic() + 30
    sessions = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'embedding-gate'"
    while count(db, sessions) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert count(db, sessions) == 0  # no loader process left behind
    stored = count(db)
    assert 30 <= stored < 200
    server.delay = 0
    proc = loader_process(db_url, f, server.url, "--processes", "2")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert f"{200 - stored:,} new chunks".encode() in out
    assert count(db) == 200 and count(db, "SELECT count(DISTINCT chunk_id) FROM chunks") == 200


def test_batches_follow_the_servers_limit_once_it_is_known(db, db_url, tmp_path):
    """The server's max_client_batch_size (read by the check before the first request) caps
    the batches from the first one: no request is refused as too large."""
    from tests.helpers import load_corpus

    small = EmbedServer(max_batch=3)
    try:
        load_corpus(db_url, [write_corpus(tmp_path / "a.json", documents=4, chunks=5)], small.url)
        assert small.requests == 7  # 20 chunks, 3 a request
    finally:
        small.close()
    assert count(db) == 20
