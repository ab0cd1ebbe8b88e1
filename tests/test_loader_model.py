"""The loader notices a changed model: a loopback embedding server that switches model behind
the same URL and name between two runs, against a real PostgreSQL."""

import json

import numpy as np
import pytest

from loader import load
from loader.calibration import SENTENCES
from loader.db import connect
from loader.embed import Client
from tests.helpers import count, load_corpus, loader_process

MODEL = "sentence-transformers/all-MiniLM-L6-v2"  # what the loopback server's /info names


def corpus_file(path, name: str, documents: int = 2, chunks: int = 5):
    docs = [
        {
            "doc_id": f"{name}{d}",
            "chunks": [
                {"chunk_id": f"{name}{d}-{i}", "content": f"{name} text {d} {i}"}
                for i in range(chunks)
            ],
        }
        for d in range(documents)
    ]
    path.write_text(json.dumps(docs))
    return path


def run(url: str, f, server, *options):
    proc = loader_process(url, f, server.url, *options)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out.decode(), err.decode()


def recorded(db):
    reference, mean = db.execute(
        "SELECT b.reference, c.mean FROM embedding_gate.blank_references b"
        " JOIN embedding_gate.model_calibrations c USING (model) WHERE model = %s",
        [MODEL],
    ).fetchone()
    return np.array(reference), np.array(mean)


def test_a_server_that_changed_model_stops_the_run_before_any_chunk_is_stored(
    db, db_url, server, tmp_path
):
    code, _, err = run(db_url, corpus_file(tmp_path / "a.json", "a"), server)
    assert code == 0, err
    before = recorded(db)
    server.variant = "another model"  # same URL, same name, other vectors
    server.texts_seen.clear()
    code, out, err = run(db_url, corpus_file(tmp_path / "b.json", "b"), server)
    assert code == 1
    assert f"the embedding server answers for model {MODEL!r} otherwise than when it was" in err
    assert "its embedding of the blank text '' at " in err
    assert "the mean of its embeddings of the 40 calibration sentences at " in err
    assert "the 10 chunks stored as" in err and "no chunk of this run was embedded" in err
    assert "--accept-model-change" in err and "run the same command again" not in err
    assert "Traceback" not in err and "loaded" not in out
    # nothing of the run stored, none of its chunks sent to the server
    assert count(db) == 10 and count(db, "SELECT count(*) FROM documents") == 2
    assert not [t for t in server.texts_seen if t.startswith("b text")]
    assert all(np.array_equal(x, y) for x, y in zip(recorded(db), before, strict=True))
    # a rerun of what is stored asks the server nothing, and goes through
    requests = server.requests
    code, out, _ = run(db_url, tmp_path / "a.json", server)
    assert code == 0 and "0 new chunks" in out and server.requests == requests
    # accepted: the new model's calibration is recorded, and the run loads
    code, out, err = run(db_url, tmp_path / "b.json", server, "--accept-model-change")
    assert code == 0, err
    assert "accepted (--accept-model-change)" in err and "re-embed them" in err
    assert "10 new chunks (10 embedded" in out and count(db) == 20
    reference, mean = recorded(db)
    assert np.allclose(reference, server.vector(""), atol=1e-6)
    wanted = np.mean([server.vector(s) for s in SENTENCES], axis=0)
    assert np.allclose(mean, wanted, atol=1e-6)
    for text, _ in load.DEGENERATE_TEXTS:  # the other references are the new model's too
        (got,) = db.execute(
            "SELECT reference FROM embedding_gate.degenerate_references"
            " WHERE model = %s AND text = %s",
            [MODEL, text],
        ).fetchone()
        assert np.allclose(got, server.vector(text), atol=1e-6), text
    # and the next run of the new model goes on without a word
    code, out, err = run(db_url, corpus_file(tmp_path / "c.json", "c"), server)
    assert code == 0 and "10 new chunks" in out and "accepted" not in err, err


def test_a_precision_change_goes_on_and_a_quantization_stops(db, db_url, server, tmp_path):
    """The tolerance (load.SAME_MODEL, 1 - cosine 1e-3): vectors moved by 0.01 (1 - cosine
    5e-5, bfloat16's order) are the same model; moved by 0.2 (2e-2, int8's) they are not."""
    assert run(db_url, corpus_file(tmp_path / "a.json", "a"), server)[0] == 0
    server.perturb = 0.01
    code, out, err = run(db_url, corpus_file(tmp_path / "b.json", "b"), server)
    assert code == 0 and "10 new chunks" in out, err
    server.perturb = 0.2
    code, _, err = run(db_url, corpus_file(tmp_path / "c.json", "c"), server)
    assert code == 1 and "otherwise than when it was calibrated" in err
    similarity = float(err.split("its embedding of the blank text '' at ")[1][:6])
    assert 0.95 < similarity < load.SAME_MODEL
    assert count(db) == 20


def test_the_loader_role_may_not_accept_a_change_for_the_gate(db, loader_url, server, tmp_path):
    """Recording a model's first calibration is open to the loader's role; replacing it needs
    the right to tune the gate, so --accept-model-change stops there, saying so."""
    code, _, err = run(loader_url, corpus_file(tmp_path / "a.json", "a"), server)
    assert code == 0, err
    assert count(db, "SELECT count(*) FROM embedding_gate.model_calibrations") == 1
    server.variant = "another model"
    code, _, err = run(
        loader_url, corpus_file(tmp_path / "b.json", "b"), server, "--accept-model-change"
    )
    assert code == 1
    assert f"this role may not replace the blank reference of model {MODEL!r}" in err
    assert "run the load once as a role that may tune the gate" in err
    assert count(db) == 10


def test_processes_stop_on_a_changed_model_with_one_message(db, db_url, server, tmp_path):
    assert run(db_url, corpus_file(tmp_path / "a.json", "a"), server)[0] == 0
    server.variant = "another model"
    f = corpus_file(tmp_path / "b.json", "b", documents=6)
    code, _, err = run(db_url, f, server, "--processes", "2")
    assert code == 1 and err.count("error: ") == 1
    assert "otherwise than when it was calibrated" in err
    assert count(db) == 10


def test_load_raises_model_changed_and_a_model_without_a_calibration_is_not_compared(
    db, db_url, server, tmp_path
):
    f = corpus_file(tmp_path / "a.json", "a")
    load_corpus(db_url, [f], server.url, blank_reference=True)
    server.variant = "v2"
    conn = connect(db_url)
    try:
        with pytest.raises(load.ModelChanged, match="otherwise than when it was calibrated"):
            load.check_model(conn, Client(server.url), MODEL, 768)
        # another name has nothing recorded: nothing to compare, nothing asked
        requests = server.requests
        assert load.check_model(conn, Client(server.url), "other-model", 768) is None
        assert server.requests == requests
    finally:
        conn.close()


def test_the_loader_records_a_models_references_of_punctuation_and_unknown_characters(
    db, db_url, server, tmp_path
):
    """blank_like's further references (docs/checks.md): the loader embeds "?", "-", "*"
    and a character no tokenizer here knows once per model, and records them."""
    code, _, err = run(db_url, corpus_file(tmp_path / "a.json", "a"), server)
    assert code == 0, err
    got = db.execute(
        "SELECT text, kind FROM embedding_gate.degenerate_references WHERE model = %s", [MODEL]
    ).fetchall()
    assert set(got) == {(t, k) for t, k in load.DEGENERATE_TEXTS}
    assert {k for _, k in got} == {"punctuation", "unknown"}
    server.texts_seen.clear()
    code, _, err = run(db_url, corpus_file(tmp_path / "b.json", "b"), server)
    assert code == 0, err
    assert not {"?", "-", "*", "𓀀"} & set(server.texts_seen)
