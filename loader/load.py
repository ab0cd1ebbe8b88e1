"""Loading: documents and chunks into PostgreSQL, embeddings fetched on the way.

Idempotent by chunk_id: chunks already stored (in chunks, or kept out in
embedding_quarantine) are neither embedded nor inserted again, so a second run, or a run
after a crash, does only what is missing. Chunks are committed with their embeddings, and
inserted with ON CONFLICT DO NOTHING semantics, so two loaders on the same files store each
chunk once. The loader checks no embedding: the database's gate does.
"""

import io
import json
import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice

import psycopg2
import psycopg2.extras

from loader.corpus import Corpus
from loader.db import embedding_dim
from loader.embed import Client, EmbeddingError, parse_text

COLUMNS = (
    "chunk_id, doc_id, chunk_index, content, drop, metadata, embedding, embedding_raw,"
    " embedding_model"
)
_STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS loader_stage"
    " (LIKE public.chunks INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
)


@dataclass
class Stats:
    documents: int = 0
    chunks: int = 0  # chunks inserted by this run
    embedded: int = 0  # of which embedded
    skipped: int = 0  # already stored
    not_embedded: int = 0  # dropped or empty, stored without an embedding
    model: "str | None" = None  # the embedding model, as the server names it
    notes: list = field(default_factory=list)  # what the user should know, one line each


def stored_ids(conn, ids: list) -> set:
    """The chunk_ids among ids already in chunks or in the quarantine."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT chunk_id FROM public.chunks WHERE chunk_id = ANY (%s)"
            " UNION SELECT chunk_id FROM public.embedding_quarantine WHERE chunk_id = ANY (%s)",
            [ids, ids],
        )
        found = {r[0] for r in cur.fetchall()}
    conn.commit()
    return found


def _escape(text: str) -> str:
    """A value in COPY's text format."""
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _raw_literal(values: list) -> str:
    return (
        "{"
        + ",".join("NaN" if x != x else repr(x).replace("inf", "Infinity") for x in values)
        + "}"
    )


def copy_rows(chunks, vectors, model: "str | None" = None) -> str:
    lines = []
    model_text = _escape(model) if model else "\\N"
    for c, v in zip(chunks, vectors, strict=True):
        embedding = v.text if v is not None and v.text is not None else "\\N"
        raw = _raw_literal(v.raw) if v is not None and v.raw is not None else "\\N"
        row_model = model_text if v is not None else "\\N"
        lines.append(
            f"{_escape(c.chunk_id)}\t{_escape(c.doc_id)}\t{c.chunk_index}\t{_escape(c.content)}\t"
            f"{'t' if c.drop else 'f'}\t{_escape(json.dumps(c.metadata, ensure_ascii=False))}\t"
            f"{embedding}\t{raw}\t{row_model}\n"
        )
    return "".join(lines)


def insert_chunks(conn, chunks, vectors, dim: int, model: "str | None" = None) -> int:
    """COPY a batch into chunks and commit; returns how many were new. On a duplicate
    chunk_id (another loader got there first) the batch goes through a staging table and
    INSERT ... ON CONFLICT DO NOTHING instead; on a value pgvector refuses (say 1e39, a
    float4 overflow) the vectors are checked one by one and such ones go to embedding_raw."""
    data = copy_rows(chunks, vectors, model)
    try:
        with conn.cursor() as cur:
            cur.copy_expert(f"COPY public.chunks ({COLUMNS}) FROM STDIN", io.StringIO(data))
            n = cur.rowcount
        conn.commit()
        return n
    except psycopg2.errors.UniqueViolation:
        conn.rollback()
    except psycopg2.errors.DataException:
        conn.rollback()
        vectors = [
            parse_text(v.text, dim, c.chunk_id) if v is not None and v.text else v
            for c, v in zip(chunks, vectors, strict=True)
        ]
        return insert_chunks(conn, chunks, vectors, dim, model)
    with conn.cursor() as cur:
        cur.execute(_STAGE)
        cur.copy_expert(f"COPY loader_stage ({COLUMNS}) FROM STDIN", io.StringIO(data))
        cur.execute(
            f"INSERT INTO public.chunks ({COLUMNS}) SELECT {COLUMNS} FROM loader_stage"
            " ON CONFLICT (chunk_id) DO NOTHING"
        )
        n = cur.rowcount
    conn.commit()
    return n


def record_blank_reference(conn, client: Client, model: str, dim: int) -> "str | None":
    """Embed the empty text and record it as the model's reference for the blank_like check
    (the database keeps the first one; replacing it is the owner's). None when done, else
    why not."""
    with conn.cursor() as cur:
        cur.execute("SELECT FROM embedding_gate.blank_references WHERE model = %s", [model])
        known = cur.rowcount > 0
    conn.rollback()
    if known:
        return None
    try:
        (reference,) = client.embed([""], dim, ["(the empty text)"])
    except EmbeddingError as e:
        return f"no blank reference recorded for {model}, blank_like is not checked: {e}"
    if reference.text is None:
        return f"no blank reference recorded for {model}: its embedding of empty text is not finite"
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT public.set_blank_reference(%s, %s::vector)", [model, reference.text]
            )
        conn.commit()
    except psycopg2.Error as e:
        conn.rollback()
        return f"no blank reference recorded for {model}: {str(e).splitlines()[0]}"
    return None


def insert_documents(conn, documents) -> int:
    with conn.cursor() as cur:
        psycopg2.extras.execute_values(
            cur,
            "INSERT INTO public.documents (doc_id, title, source, metadata) VALUES %s"
            " ON CONFLICT (doc_id) DO NOTHING",
            [
                (d.doc_id, d.title, d.source, json.dumps(d.metadata, ensure_ascii=False))
                for d in documents
            ],
            page_size=1000,
        )
        n = cur.rowcount
    conn.commit()
    return n


class Progress:
    """A one-line progress bar on a terminal; silent otherwise."""

    def __init__(self, total: int, stream=sys.stderr):
        self.total, self.done, self.stream = total, 0, stream
        self.start = time.perf_counter()
        self.enabled = total > 0 and hasattr(stream, "isatty") and stream.isatty()

    def advance(self, n: int) -> None:
        self.done += n
        if self.enabled:
            width = 30
            filled = int(width * self.done / self.total)
            rate = self.done / max(time.perf_counter() - self.start, 1e-9)
            self.stream.write(
                f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done:,}/{self.total:,} chunks"
                f" {rate:,.0f}/s"
            )
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")


def load(
    conn,
    corpus: Corpus,
    client: Client,
    *,
    in_flight: int = 4,
    insert_rows: int = 2000,
    blank_reference: bool = True,
    progress=True,
) -> Stats:
    """Store every document and chunk of the corpus that is not stored yet. Embedded chunks
    are committed in COPYs of up to insert_rows, or fewer whenever the next answer from the
    server is not there yet. With blank_reference, the model's embedding of empty text is
    recorded first where the database has none (for the blank_like check)."""
    stats = Stats()
    dim = embedding_dim(conn)
    stats.documents = insert_documents(conn, corpus.documents)
    todo = []
    chunks = corpus.chunks
    for start in range(0, len(chunks), 10_000):
        part = chunks[start : start + 10_000]
        have = stored_ids(conn, [c.chunk_id for c in part])
        todo += [c for c in part if c.chunk_id not in have]
        stats.skipped += len(have)
    plain = [c for c in todo if not c.embeddable]
    for start in range(0, len(plain), 1000):
        part = plain[start : start + 1000]
        n = insert_chunks(conn, part, [None] * len(part), dim)
        stats.chunks += n
        stats.not_embedded += n
    to_embed = [c for c in todo if c.embeddable]
    if not to_embed:
        return stats
    client.health()
    stats.model = client.info().get("model_id") or client.model
    if not stats.model:
        stats.notes.append(
            "the embedding server names no model (no /info; pass --model): blank_like is not"
            " checked for these chunks"
        )
    elif blank_reference and (note := record_blank_reference(conn, client, stats.model, dim)):
        stats.notes.append(note)
    bar = Progress(len(to_embed)) if progress else Progress(0)
    size = max(client.batch_size, 1)
    batches = [to_embed[i : i + size] for i in range(0, len(to_embed), size)]

    def fetch(batch):
        return batch, client.embed([c.content for c in batch], dim, [c.chunk_id for c in batch])

    pool = ThreadPoolExecutor(max_workers=max(in_flight, 1))
    window: deque = deque()
    pending = iter(batches)
    ready_chunks: list = []
    ready_vectors: list = []

    def flush() -> None:
        n = insert_chunks(conn, ready_chunks, ready_vectors, dim, stats.model)
        stats.chunks += n
        stats.embedded += n
        stats.skipped += len(ready_chunks) - n
        bar.advance(len(ready_chunks))
        ready_chunks.clear()
        ready_vectors.clear()

    try:
        # in order, with up to 2 x in_flight requests ahead of the inserts: bounded memory
        for batch in islice(pending, 2 * max(in_flight, 1)):
            window.append(pool.submit(fetch, batch))
        while window:
            future = window.popleft()
            # commit what is ready rather than wait on the server with it: a fast server
            # gets few large COPYs, a slow one a commit per answer
            if ready_chunks and not future.done():
                flush()
            batch, vectors = future.result()
            for more in islice(pending, 1):
                window.append(pool.submit(fetch, more))
            ready_chunks += batch
            ready_vectors += vectors
            if len(ready_chunks) >= insert_rows:
                flush()
        if ready_chunks:
            flush()
    finally:
        for future in window:
            future.cancel()
        pool.shutdown(wait=True)
        bar.close()
    return stats
