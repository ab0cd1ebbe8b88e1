"""The slower end-to-end test: the bundled embedding server with the real model
(all-MiniLM-L6-v2, 384 dimensions) on loopback, the sample corpus, a 384-d deployment."""

import threading

import pytest

from loader import corpus, load, report
from loader.db import connect
from loader.embed import Client
from tests.helpers import ROOT, alembic

server_module = pytest.importorskip("loader.server")


@pytest.fixture(scope="module")
def model_server():
    encode, dim = server_module.minilm()
    server = server_module.make_server(encode, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/embed", dim
    server.shutdown()
    server.server_close()


def test_the_sample_corpus_through_the_real_model(empty_db, model_server):
    url, dim = model_server
    assert dim == 384
    alembic(empty_db, "upgrade", "head", embedding_dim=dim)
    data = corpus.read([str(ROOT / "data/sample")])
    assert data.errors == []
    conn = connect(empty_db)
    try:
        stats = load.load(conn, data, Client(url), progress=False)
        summary = report.summary(conn)
        with conn.cursor() as cur:
            cur.execute("SELECT chunk_id, content FROM chunks")
            stored = dict(cur.fetchall())
    finally:
        conn.close()
    chunks = data.chunks
    embeddable = [c for c in chunks if c.embeddable]
    assert stats.embedded == len(embeddable) and stats.chunks == len(chunks)
    assert summary["chunks"] == len(chunks) and summary["embedded"] == len(embeddable)
    assert summary["dropped"] == sum(c.drop for c in chunks)
    assert stored == {c.chunk_id: c.content for c in chunks}  # Korean included, exactly
