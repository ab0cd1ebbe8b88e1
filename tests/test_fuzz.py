"""Property-based tests of the two parsers of outside input: corpus files (.json, .jsonl)
and embedding-server answers (text-embeddings-inference and OpenAI shapes). No input ends
in a traceback: a corpus error names the file (and the document and field where there is
one), an answer error names the chunks."""

import json
import math
import os
import re
from base64 import b64encode

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loader import corpus, db
from loader.embed import EmbeddingError, parse_vectors

# no example database: the suite runs from a read-only checkout as user postgres; the same
# examples on every run (derandomize), so that CI fails only on a change of the code;
# FUZZ_RANDOM=1 explores new ones
FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,
    derandomize=not os.environ.get("FUZZ_RANDOM"),
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

# JSON values, odd ones included: NaN and Infinity, integers beyond any float, NUL, lone
# surrogates (which json.dumps writes as \ud800 escapes)
odd_text = st.text(
    st.characters(codec=None, categories=None, blacklist_categories=()), max_size=12
) | st.sampled_from(["", "\x00", "a\x00b", "\ud800", "한국어", " ", "<script>"])
numbers = (
    st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([2**31, -(2**31) - 1, 10**400, 1e39, -0.0])
)
scalars = st.none() | st.booleans() | numbers | odd_text
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(odd_text, inner, max_size=4),
    max_leaves=12,
)


def chunk_records():
    fields = {
        "chunk_id": odd_text | json_values,
        "doc_id": odd_text | json_values,
        "content": odd_text | json_values,
        "drop": st.booleans() | json_values,
        "chunk_index": numbers | json_values,
        "metadata": st.dictionaries(odd_text, json_values, max_size=3) | json_values,
    }
    return st.fixed_dictionaries({}, optional=fields)


def document_records():
    fields = {
        "doc_id": odd_text | json_values,
        "title": odd_text | json_values,
        "source": odd_text | json_values,
        "metadata": st.dictionaries(odd_text, json_values, max_size=3) | json_values,
        "chunks": st.lists(chunk_records() | json_values, max_size=4) | json_values,
    }
    return st.fixed_dictionaries({}, optional=fields)


files = st.one_of(
    st.binary(max_size=200).map(lambda b: ("bytes", b)),
    json_values.map(lambda v: ("json", v)),
    st.lists(document_records() | json_values, max_size=5).map(lambda v: ("json", v)),
    st.lists(document_records(), max_size=5).map(lambda v: ("json", {"documents": v})),
    st.lists(document_records() | json_values, max_size=5).map(lambda v: ("jsonl", v)),
)

FILE_ERROR = re.compile(r"(:\d+:\d+)?: (not JSON|not UTF-8|expected a list of documents)")
DOCUMENT_ERROR = re.compile(r""": document (#\d+|'.*'|".*")(: |\.)\w.+""")


def write(tmp_path, kind: str, value, ascii_only: bool):
    if kind == "bytes":
        path = tmp_path / "corpus.json"
        path.write_bytes(value)
    elif kind == "jsonl":
        path = tmp_path / "corpus.jsonl"
        lines = [json.dumps(v, ensure_ascii=ascii_only) for v in value]
        path.write_text("\n".join(lines), encoding="utf-8", errors="surrogatepass")
    else:
        path = tmp_path / "corpus.json"
        text = json.dumps(value, ensure_ascii=ascii_only)
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
    return path


@FUZZ
@given(files, st.booleans())
def test_any_corpus_file_is_read_or_refused_with_its_file_document_and_field(
    tmp_path, file, ascii_only
):
    path = write(tmp_path, *file, ascii_only)
    data = corpus.read([str(path)])
    for error in data.errors:
        assert error.startswith(str(path)), error
        rest = error[len(str(path)) :]
        assert FILE_ERROR.match(rest) or DOCUMENT_ERROR.match(rest), error
    for doc in data.documents:
        assert doc.doc_id and all(c.chunk_id and c.doc_id == doc.doc_id for c in doc.chunks)
        assert all(-(2**31) <= c.chunk_index < 2**31 for c in doc.chunks)


@settings(FUZZ, max_examples=60, suppress_health_check=list(HealthCheck))
@given(st.lists(document_records(), min_size=1, max_size=4), st.integers(0, 10**9))
def test_every_document_the_reader_accepts_is_stored(tmp_path, db_url, records, salt):
    """What the reader accepts, PostgreSQL stores: no NUL, NaN in jsonb, lone surrogate or
    integer overflow gets past it to fail in the database."""
    for r in records:  # unique across examples: the database keeps earlier ones
        if isinstance(r.get("doc_id"), str):
            r["doc_id"] = f"{salt}:{r['doc_id']}"
        chunks = r.get("chunks")
        for c in chunks if isinstance(chunks, list) else []:
            if isinstance(c, dict) and isinstance(c.get("chunk_id"), str):
                c["chunk_id"] = f"{salt}:{c['chunk_id']}"
            if isinstance(c, dict) and "doc_id" in c and isinstance(c["doc_id"], str):
                c["doc_id"] = f"{salt}:{c['doc_id']}"
    path = write(tmp_path, "json", records, ascii_only=True)
    data = corpus.read([str(path)])
    conn = db.connect(db_url)
    try:
        db.insert_documents(conn, data.documents)
        db.insert_chunks(conn, data.chunks, None)
    finally:
        conn.close()


NAMES = ["c1", "c2", "c3"]
vector_items = numbers | st.none() | json_values
base64_vectors = st.binary(min_size=0, max_size=24).map(lambda b: b64encode(b).decode()) | (
    st.text(max_size=12)
)
near_vectors = st.lists(
    st.lists(st.floats(-2, 2, width=32), min_size=4, max_size=4)
    | st.lists(vector_items, min_size=3, max_size=5)
    | base64_vectors
    | json_values,
    min_size=2,
    max_size=4,
)


def openai_shape(vectors, indexes):
    """OpenAI's answer shape; extra indexes are dropped, missing ones left out."""
    pairs = zip(indexes, vectors, strict=False)
    return {"data": [{"index": i, "embedding": v} for i, v in pairs]}


answers = st.one_of(
    st.binary(max_size=100),
    json_values.map(json.dumps),
    near_vectors.map(json.dumps),
    near_vectors.map(lambda v: json.dumps({"embeddings": v})),
    st.tuples(near_vectors, st.lists(json_values | st.integers(-1, 4), min_size=4)).map(
        lambda a: json.dumps(openai_shape(*a))
    ),
)


@FUZZ
@given(answers, st.sampled_from(["tei", "openai", "ollama"]), st.sampled_from([4, None]))
def test_any_server_answer_gives_vectors_or_an_error_naming_the_chunks(answer, api, dim):
    data = answer if isinstance(answer, bytes) else answer.encode("utf-8", "surrogatepass")
    try:
        x = parse_vectors(data, NAMES, dim, api=api)
    except EmbeddingError as e:
        assert re.search(r"chunks? c[123]", str(e)), str(e)
        return
    assert x.dtype == np.float32 and x.shape[0] == len(NAMES)
    assert dim is None or x.shape[1] == dim


@pytest.mark.parametrize("api", ["tei", "openai", "ollama"])
def test_null_becomes_nan_and_beyond_float4_becomes_inf(api):
    vectors = [[0.5, None, 1e39, -(10**400)], [1, 2, 3, 4], [0, 0, 0, 0]]
    shaped = {"openai": openai_shape(vectors, [2, 0, 1]), "ollama": {"embeddings": vectors}}
    x = parse_vectors(json.dumps(shaped.get(api, vectors)).encode(), NAMES, 4, api=api)
    first = x[2] if api == "openai" else x[0]  # OpenAI answers carry their order in "index"
    assert first[0] == 0.5 and math.isnan(first[1]) and first[2] == math.inf
    assert first[3] == -math.inf


def _copy_fields(data: bytes) -> list:
    """The rows of binary COPY data (no header or trailer) as lists of fields (None: NULL)."""
    rows, at = [], 0
    while at < len(data):
        (n,) = np.frombuffer(data, ">i2", 1, at)
        at += 2
        row = []
        for _ in range(n):
            (size,) = np.frombuffer(data, ">i4", 1, at)
            at += 4
            row.append(None if size < 0 else data[at : at + size])
            at += max(size, 0)
        rows.append(row)
    return rows


vector_rows = st.integers(1, 6).flatmap(
    lambda d: st.lists(
        st.lists(st.floats(width=32, allow_nan=True, allow_infinity=True), min_size=d, max_size=d),
        min_size=1,
        max_size=5,
    )
)


@FUZZ
@given(vector_rows, st.sampled_from([None, "model-α"]))
def test_a_batch_encoded_at_once_is_what_pgvector_encodes_row_by_row(rows, model):
    """copy_rows writes a whole batch's vectors in one numpy conversion: each finite row is
    pgvector's own binary form of it, each row with NaN or Inf a real[] in embedding_raw."""
    from pgvector.utils import Vector

    vectors = np.array(rows, dtype=np.float32)
    chunks = [corpus.Chunk(f"c{i}", "d", i, "내용", False, {"i": i}) for i in range(len(rows))]
    fields = _copy_fields(db.copy_rows(chunks, vectors, model))
    assert len(fields) == len(rows)
    for row, vector, chunk in zip(fields, vectors, chunks, strict=True):
        assert len(row) == len(db.COLUMNS)
        assert row[0] == chunk.chunk_id.encode() and row[3] == chunk.content.encode()
        assert row[-1] == (model.encode() if model else None)
        if np.isfinite(vector).all():
            assert row[6] == Vector(vector).to_binary() and row[7] is None
        else:
            assert row[6] is None
            values = np.frombuffer(row[7][20:], dtype=[("size", ">i4"), ("value", ">f4")])
            assert (values["size"] == 4).all()
            assert np.array_equal(values["value"], vector, equal_nan=True)
