"""The gate on the tables RAG frameworks write, through the frameworks' own public APIs:
langchain-postgres (PGVector, with and without embedding_length, and PGVectorStore),
llama-index-vector-stores-postgres (vector and halfvec) and pgvector-haystack (halfvec).

Each writes good texts and three bad ones with a deterministic embedding class of ours: a
blank text embeds as the model's blank reference (blank_like), a marker text as a zero
vector (low_norm, ...) and another as a short vector padded with zeros (sparse). The attach
calls are the README's ("Guard your framework's table"), read from it, the model renamed."""

import hashlib
import re
import uuid

import numpy as np
import psycopg
import pytest

from tests.helpers import ROOT, vec

DIM = 32
MODEL = "fake-embedder"
GOOD = ["the cat sat on the mat", "PostgreSQL guards the data", "한국어 문장도 평범한 텍스트다"]
BAD = ["", "ZERO marks a failed embedding", "PADDED marks a short vector"]


def _unit(seed_text: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(seed_text.encode()).digest()[:8], "big")
    x = np.random.default_rng(seed).standard_normal(DIM)
    return x / np.linalg.norm(x)


REFERENCE = _unit("the model's embedding of empty text")


def embed(text: str) -> list:
    """The deterministic model: blank -> its reference, ZERO -> zeros, PADDED -> two
    components then zeros, anything else -> a unit vector seeded by the text."""
    if not text.strip():
        return REFERENCE.tolist()
    if text.startswith("ZERO"):
        return [0.0] * DIM
    v = _unit(text)
    if text.startswith("PADDED"):
        v[2:] = 0
    return v.tolist()


@pytest.fixture
def gate(db):
    """The database with the fake model's blank reference and calibration recorded."""
    mean = np.mean([_unit(f"calibration sentence {i}") for i in range(40)], axis=0)
    db.execute("SELECT set_blank_reference(%s, %s)", [MODEL, vec(REFERENCE)])
    db.execute("SELECT set_blank_calibration(%s, %s, 40)", [MODEL, vec(mean)])
    return db


def readme_snippets() -> dict:
    """The README's attach calls, by the comment line above each: {comment: SQL}."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Guard your framework's table", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sql\n(.*?)```", section, re.S).group(1)
    found, comment = {}, None
    for line in block.splitlines():
        if line.startswith("--"):
            comment = line[2:].strip()
        elif line.strip():
            found[comment] = line.replace("'text-embedding-3-small'", f"'{MODEL}'")
    return found


def readme_snippet(framework: str) -> str:
    """The README's attach call whose comment starts with the framework's name."""
    (sql,) = [
        v
        for k, v in readme_snippets().items()
        if k.startswith(framework + " ") or k.startswith(framework + ":")
    ]
    return sql


def sqlalchemy_url(url: str, driver: str) -> str:
    return url.replace("postgresql://", f"postgresql+{driver}://", 1)


def fresh_langchain_tables(vectorstores) -> None:
    """LangChain's PGVector declares its tables once per process, with the first dimension
    it is given: forget them, so that each test declares its own."""
    from sqlalchemy.orm import declarative_base

    vectorstores._classes = None
    vectorstores.Base = declarative_base()


# --- one adapter per framework: create its table, write texts, search ---------------------


class LangChainPGVector:
    table, readme = "langchain_pg_embedding", "LangChain PGVector"
    content = "document"

    def __init__(self, url, embedding_length=DIM):
        from langchain_core.embeddings import Embeddings
        from langchain_postgres import PGVector, vectorstores

        fresh_langchain_tables(vectorstores)

        class Fake(Embeddings):
            def embed_documents(self, texts):
                return [embed(t) for t in texts]

            def embed_query(self, text):
                return embed(text)

        self.store = PGVector(
            embeddings=Fake(),
            connection=sqlalchemy_url(url, "psycopg"),
            collection_name="docs",
            embedding_length=embedding_length,
        )

    def add(self, texts):
        self.store.add_texts(texts, ids=[f"doc-{i}" for i in range(len(texts))])

    def search(self, text):
        return [d.page_content for d in self.store.similarity_search(text, k=1)]

    def close(self):
        self.store._engine.dispose()


class LangChainUnconstrained(LangChainPGVector):
    def __init__(self, url):
        super().__init__(url, embedding_length=None)


class LangChainPGVectorStore:
    table, readme = "my_documents", "LangChain PGVectorStore"
    content = "content"

    def __init__(self, url):
        from langchain_core.embeddings import Embeddings
        from langchain_postgres import PGEngine, PGVectorStore

        class Fake(Embeddings):
            def embed_documents(self, texts):
                return [embed(t) for t in texts]

            def embed_query(self, text):
                return embed(text)

        self.engine = PGEngine.from_connection_string(sqlalchemy_url(url, "psycopg"))
        self.engine.init_vectorstore_table(self.table, DIM)
        self.store = PGVectorStore.create_sync(self.engine, Fake(), self.table)

    def add(self, texts):
        self.store.add_texts(texts, ids=[str(uuid.uuid5(uuid.NAMESPACE_URL, t)) for t in texts])

    def search(self, text):
        return [d.page_content for d in self.store.similarity_search(text, k=1)]

    def close(self):
        self.engine._run_as_sync(self.engine.close())


class LlamaIndex:
    table, readme = "data_docs", "LlamaIndex"
    content = "text"
    halfvec = False

    def __init__(self, url):
        from llama_index.core.embeddings import BaseEmbedding
        from llama_index.vector_stores.postgres import PGVectorStore

        class Fake(BaseEmbedding):
            def _get_text_embedding(self, text):
                return embed(text)

            def _get_query_embedding(self, query):
                return embed(query)

            async def _aget_query_embedding(self, query):
                return embed(query)

        self.embed_model = Fake()
        self.store = PGVectorStore.from_params(
            connection_string=sqlalchemy_url(url, "psycopg2"),
            async_connection_string=sqlalchemy_url(url, "asyncpg"),
            table_name="docs",
            embed_dim=DIM,
            use_halfvec=self.halfvec,
        )
        self.store._initialize()  # creates data_li now, so that it can be attached first

    def add(self, texts):
        from llama_index.core.schema import TextNode

        vectors = self.embed_model.get_text_embedding_batch(texts)
        self.store.add([TextNode(text=t, embedding=v) for t, v in zip(texts, vectors, strict=True)])

    def search(self, text):
        from llama_index.core.vector_stores.types import VectorStoreQuery

        query = VectorStoreQuery(query_embedding=embed(text), similarity_top_k=1)
        return [n.get_content() for n in self.store.query(query).nodes]

    def close(self):
        self.store._engine.dispose()


class LlamaIndexHalfvec(LlamaIndex):
    halfvec = True


class Haystack:
    table, readme = "haystack_documents", "Haystack"
    content = "content"

    def __init__(self, url):
        from haystack.utils import Secret
        from haystack_integrations.document_stores.pgvector import PgvectorDocumentStore

        self.store = PgvectorDocumentStore(
            connection_string=Secret.from_token(url),
            embedding_dimension=DIM,
            vector_type="halfvec",
            recreate_table=True,
        )
        self.store._ensure_db_setup()

    def add(self, texts):
        from haystack import Document

        self.store.write_documents(
            [Document(id=f"doc-{i}", content=t, embedding=embed(t)) for i, t in enumerate(texts)]
        )

    def search(self, text):
        from haystack_integrations.components.retrievers.pgvector import (
            PgvectorEmbeddingRetriever,
        )

        retriever = PgvectorEmbeddingRetriever(document_store=self.store, top_k=1)
        return [d.content for d in retriever.run(query_embedding=embed(text))["documents"]]

    def close(self):
        pass


FRAMEWORKS = [
    LangChainPGVector,
    LangChainUnconstrained,
    LangChainPGVectorStore,
    LlamaIndex,
    LlamaIndexHalfvec,
    Haystack,
]


@pytest.mark.parametrize("mode", ["flag", "quarantine", "reject"])
@pytest.mark.parametrize("framework", FRAMEWORKS, ids=lambda f: f.__name__)
def test_a_framework_writes_through_the_gate(gate, db_url, framework, mode):
    store = framework(db_url)
    try:
        gate.execute(readme_snippet(store.readme))
        gate.execute(
            "SELECT embedding_gate.set_table_settings(%s, jsonb_build_object('mode', %s::text))",
            [store.table, mode],
        )
        texts = GOOD[:2] + BAD + GOOD[2:]
        if mode == "reject":
            with pytest.raises(Exception, match="rejected"):
                store.add(texts)
            # (PGVectorStore writes and commits one text at a time: the good ones before)
            stored = gate.execute(
                f"SELECT count(*) FROM {store.table} WHERE {store.content} = ANY (%s)", [BAD]
            ).fetchone()
            assert stored == (0,)
            return
        store.add(texts)
        found = gate.execute(
            "SELECT content_preview, issues, quarantined FROM low_quality_embeddings"
            " WHERE table_name = %s ORDER BY 1",
            [f"public.{store.table}"],
        ).fetchall()
        quarantined = mode == "quarantine"
        assert [(c, q) for c, _, q in found] == [(t, quarantined) for t in sorted(BAD)]
        assert {c: i for c, i, _ in found}[""] == ["blank_like"]
        dimension = gate.execute(
            "SELECT dimension FROM embedding_gate.attached WHERE table_name <> 'public.chunks'"
        ).fetchone()[0]
        assert dimension == (None if framework is LangChainUnconstrained else DIM)
        stored = {r[0] for r in gate.execute(f"SELECT {store.content} FROM {store.table}")}
        assert stored == set(GOOD) | (set() if quarantined else set(BAD))
        for text in GOOD:
            assert store.search(text) == [text]
    finally:
        store.close()


def test_attach_works_inside_an_alembic_migration(gate, db_url, tmp_path):
    """The attach call of the README, in a user's own alembic migration (op.execute)."""
    from alembic import command
    from alembic.config import Config

    gate.execute("CREATE TABLE notes (id bigint PRIMARY KEY, body text, embedding vector(32))")
    (tmp_path / "versions").mkdir()
    (tmp_path / "env.py").write_text(
        "from alembic import context\n"
        "from sqlalchemy import create_engine\n"
        "engine = create_engine(context.config.get_main_option('sqlalchemy.url'))\n"
        "with engine.connect() as connection:\n"
        "    context.configure(connection=connection, version_table='notes_alembic_version')\n"
        "    with context.begin_transaction():\n"
        "        context.run_migrations()\n"
    )
    (tmp_path / "script.py.mako").write_text("")
    (tmp_path / "versions" / "a1_guard_notes.py").write_text(
        'revision = "a1"\ndown_revision = None\n'
        "from alembic import op\n\n\n"
        "def upgrade():\n"
        "    op.execute(\"SELECT embedding_gate.attach('notes', content_column => 'body')\")\n\n\n"
        "def downgrade():\n"
        "    op.execute(\"SELECT embedding_gate.detach('notes')\")\n"
    )
    cfg = Config()
    cfg.set_main_option("script_location", str(tmp_path))
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(db_url, "psycopg2"))
    command.upgrade(cfg, "head")
    assert gate.execute("SELECT table_name FROM embedding_gate.attached ORDER BY 1").fetchall() == [
        ("public.chunks",),
        ("public.notes",),
    ]
    gate.execute("INSERT INTO notes VALUES (1, 'x', %s)", [vec(np.zeros(32))])
    assert gate.execute("SELECT row_id FROM low_quality_embeddings").fetchall() == [("1",)]
    command.downgrade(cfg, "base")
    assert gate.execute("SELECT count(*) FROM embedding_gate.attached").fetchone() == (1,)


def test_langchain_with_the_real_model(db, db_url):
    """all-MiniLM-L6-v2 through LangChain's PGVector: blank-like texts flagged, paragraphs
    not, after recording the model's reference and calibration as the loader does."""
    from langchain_core.embeddings import Embeddings
    from langchain_postgres import PGVector, vectorstores

    import embedding_server
    from loader.calibration import SENTENCES

    encode, dim = embedding_server.minilm()

    class MiniLM(Embeddings):
        def embed_documents(self, texts):
            return [list(map(float, v)) for v in encode(texts)]

        def embed_query(self, text):
            return self.embed_documents([text])[0]

    db.execute("SELECT set_blank_reference('all-MiniLM-L6-v2', %s)", [vec(encode([""])[0])])
    mean = np.mean(encode(SENTENCES), axis=0)
    db.execute(
        "SELECT set_blank_calibration('all-MiniLM-L6-v2', %s, %s)", [vec(mean), len(SENTENCES)]
    )
    fresh_langchain_tables(vectorstores)
    store = PGVector(
        embeddings=MiniLM(), connection=sqlalchemy_url(db_url, "psycopg"), embedding_length=dim
    )
    try:
        db.execute(
            "SELECT embedding_gate.attach('langchain_pg_embedding', content_column =>"
            " 'document', model => 'all-MiniLM-L6-v2')"
        )
        paragraphs = [s for s in SENTENCES[:12]]
        blank_like = ["", " ", ".", "..."]
        store.add_texts(paragraphs + blank_like)
        got = db.execute(
            "SELECT content_preview FROM low_quality_embeddings"
            " WHERE 'blank_like' = ANY (issues) ORDER BY 1"
        ).fetchall()
        assert [g[0] for g in got] == sorted(blank_like)
        assert store.similarity_search(paragraphs[0], k=1)[0].page_content == paragraphs[0]
    finally:
        store._engine.dispose()


def test_reject_reaches_the_framework_as_the_gate_s_error(gate, db_url):
    store = LangChainPGVector(db_url)
    try:
        gate.execute(
            "SELECT embedding_gate.attach('langchain_pg_embedding',"
            " content_column => 'document', model => %s)",
            [MODEL],
        )
        gate.execute(
            "SELECT embedding_gate.set_table_settings('langchain_pg_embedding',"
            ' \'{"mode": "reject"}\')'
        )
        with pytest.raises(Exception) as e:
            store.add(["ZERO again"])
        orig = getattr(e.value, "orig", e.value)
        assert isinstance(orig, psycopg.Error) and orig.sqlstate == "QG001"
    finally:
        store.close()


def test_pgai_s_two_write_patterns(gate):
    """pgai's vectorizer worker cannot run here; its two ways of writing can: binary COPY
    into the store table, and UPDATE of an embedding column."""
    from pgvector.psycopg import register_vector

    register_vector(gate)
    gate.execute(
        "CREATE TABLE blog_embedding_store (embedding_uuid uuid PRIMARY KEY DEFAULT"
        " gen_random_uuid(), id int NOT NULL, chunk_seq int NOT NULL, chunk text NOT NULL,"
        " embedding vector(32) NOT NULL)"
    )
    gate.execute(readme_snippet("pgai"))
    texts = GOOD + BAD
    with (
        gate.cursor() as cur,
        cur.copy(
            "COPY blog_embedding_store (id, chunk_seq, chunk, embedding) FROM STDIN"
            " WITH (FORMAT binary)"
        ) as copy,
    ):
        copy.set_types(["int4", "int4", "text", "vector"])
        for i, t in enumerate(texts):
            copy.write_row((i, 0, t, np.array(embed(t), dtype=np.float32)))
    found = gate.execute("SELECT content_preview FROM low_quality_embeddings ORDER BY 1").fetchall()
    assert [f[0] for f in found] == sorted(BAD)
    # the UPDATE pattern: a column of a source table filled in place
    gate.execute("CREATE TABLE blog (id int PRIMARY KEY, body text, embedding vector(32))")
    gate.execute(
        "INSERT INTO blog SELECT i, t, NULL FROM unnest(%s::text[]) WITH ORDINALITY AS u(t, i)",
        [texts],
    )
    gate.execute(
        "SELECT embedding_gate.attach('blog', content_column => 'body', model => %s)", [MODEL]
    )
    for i, t in enumerate(texts, start=1):
        gate.execute("UPDATE blog SET embedding = %s WHERE id = %s", [vec(embed(t)), i])
    found = gate.execute(
        "SELECT content_preview FROM low_quality_embeddings WHERE table_name = 'public.blog'"
        " ORDER BY 1"
    ).fetchall()
    assert [f[0] for f in found] == sorted(BAD)
