"""Loading: documents and chunks into PostgreSQL, embeddings fetched on the way.

Idempotent by chunk_id: chunks already stored (in chunks, or kept out in
embedding_quarantine) are neither embedded nor inserted again, so a second run, or a run
after a crash, does only what is missing. Chunks are committed with their embeddings, and
inserted with ON CONFLICT DO NOTHING semantics, so two loaders on the same files store each
chunk once. The loader checks no embedding: the database's gate does.
"""

import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from itertools import islice

import numpy as np
import psycopg2

from loader import db
from loader.calibration import SENTENCES
from loader.corpus import Corpus
from loader.embed import Client, EmbeddingError, Refused


@dataclass
class Stats:
    documents: int = 0
    chunks: int = 0  # chunks inserted by this run
    embedded: int = 0  # of which embedded
    skipped: int = 0  # already stored
    not_embedded: int = 0  # dropped or empty, stored without an embedding
    model: "str | None" = None  # the embedding model, as the server names it
    notes: list = field(default_factory=list)  # what the user should know, one line each


# what a model's blank reference embeds: the empty text, or, where a server refuses it
# (OpenAI's API does), a text of whitespace alone
BLANK_TEXTS = ("", " ")


def record_blank_reference(conn, client: Client, model: str, dim: int) -> "str | None":
    """Embed the empty text and record it as the model's reference for the blank_like check
    (the database keeps the first one; replacing it is the owner's); where the server
    refuses "", a text of one space instead. None when recorded as the empty text, else a
    note saying what was done."""
    if db.has_blank_reference(conn, model):
        return None
    refused = []
    for text in BLANK_TEXTS:
        try:
            reference = client.embed([text], dim, [f"(the blank text {text!r})"])[0]
            break
        except Refused as e:
            refused.append(f"{text!r}: {e}")
        except EmbeddingError as e:
            return f"no blank reference recorded for {model}, blank_like is not checked: {e}"
    else:
        return (
            f"no blank reference recorded for {model}: the embedding server refuses every"
            f" blank text, so blank_like is not checked for it ({'; '.join(refused)})"
        )
    if not np.isfinite(reference).all():
        return f"no blank reference recorded for {model}: its embedding of {text!r} is not finite"
    try:
        db.set_blank_reference(conn, model, reference, text)
    except psycopg2.Error as e:
        conn.rollback()
        return f"no blank reference recorded for {model}: {str(e).splitlines()[0]}"
    if text:
        return (
            f"the embedding server refuses the empty text: the blank reference of {model} is"
            f" its embedding of {text!r} instead"
        )
    return None


def record_calibration(conn, client: Client, model: str, dim: int) -> "str | None":
    """Embed the sample of ordinary sentences (loader/calibration.py) and record their mean
    as the model's calibration for blank_like, where the database has none. None when done
    or not needed, else why not."""
    if db.has_calibration(conn, model):
        return None
    try:
        vectors = client.embed(
            list(SENTENCES), dim, ["(the calibration sentences)"] * len(SENTENCES)
        )
    except EmbeddingError as e:
        return f"no calibration recorded for {model}, blank_like waits for a recheck: {e}"
    finite = vectors[np.isfinite(vectors).all(axis=1)]
    if not len(finite):
        return f"no calibration recorded for {model}: its embeddings of the sample are not finite"
    try:
        db.set_calibration(conn, model, finite.mean(axis=0), len(finite))
    except psycopg2.Error as e:
        conn.rollback()
        return f"no calibration recorded for {model}: {str(e).splitlines()[0]}"
    return None


def load(
    conn,
    corpus: Corpus,
    client: Client,
    *,
    in_flight: int = 4,
    insert_rows: int = 2000,
    linger: float = 0.2,
    blank_reference: bool = True,
    on_progress: "Callable[[int, int], None] | None" = None,
) -> Stats:
    """Store every document and chunk of the corpus that is not stored yet. Embedded chunks
    are committed in COPYs of up to insert_rows, each answer sent to the database as soon as
    it is parsed; a COPY waits for the next answer until it has been open `linger` seconds,
    then commits what it has.
    With blank_reference, the model's embedding of empty text and its calibration (the mean
    of a sample of ordinary sentences) are recorded first where the database has none (for
    the blank_like check). on_progress is called with (chunks stored so far, chunks to
    embed) after each commit."""
    stats = Stats()
    dim = db.embedding_dim(conn)
    stats.documents = db.insert_documents(conn, corpus.documents)
    todo = []
    chunks = corpus.chunks
    for start in range(0, len(chunks), 10_000):
        part = chunks[start : start + 10_000]
        have = db.stored_ids(conn, [c.chunk_id for c in part])
        todo += [c for c in part if c.chunk_id not in have]
        stats.skipped += len(have)
    plain = [c for c in todo if not c.embeddable]
    for start in range(0, len(plain), 1000):
        n = db.insert_chunks(conn, plain[start : start + 1000], None)
        stats.chunks += n
        stats.not_embedded += n
    to_embed = [c for c in todo if c.embeddable]
    if not to_embed:
        return stats
    client.check()
    stats.model = client.model
    if not stats.model:
        stats.notes.append(
            "the embedding server names no model (pass --model): blank_like is not checked"
            " for these chunks"
        )
    elif blank_reference:
        for record in (record_blank_reference, record_calibration):
            if note := record(conn, client, stats.model, dim):
                stats.notes.append(note)
    size = max(client.batch_size, 1)
    batches = [to_embed[i : i + size] for i in range(0, len(to_embed), size)]
    done = 0

    def fetch(batch):
        return batch, client.embed([c.content for c in batch], dim, [c.chunk_id for c in batch])

    pool = ThreadPoolExecutor(max_workers=max(in_flight, 1))
    window: deque = deque()
    pending = iter(batches)
    sent = 0  # rows in the COPY under way
    opened = 0.0  # when it began

    def produce():
        """The next answer's rows for the COPY under way, once the server has answered;
        None to end the COPY and commit: at insert_rows, at the end, when the next answer is
        not there by `linger` seconds after the COPY began (a fast server gets few large
        COPYs, a slow one a commit every answer or every `linger` seconds), or when it is a
        failure (what came before it is committed first)."""
        nonlocal sent
        if not window:
            return None
        future = window[0]
        if sent:
            if sent >= insert_rows:
                return None
            wait([future], timeout=max(opened + linger - time.monotonic(), 0))
            if not future.done() or future.exception():
                return None
        batch, vectors = future.result()
        window.popleft()
        for more in islice(pending, 1):
            window.append(pool.submit(fetch, more))
        sent += len(batch)
        return db.copy_rows(batch, vectors, stats.model), len(batch)

    try:
        # in order, with up to 2 x in_flight requests ahead of the inserts: bounded memory;
        # the COPY streams each answer to the database as it comes, so the database stores
        # one while the loader waits for and parses the next
        for batch in islice(pending, 2 * max(in_flight, 1)):
            window.append(pool.submit(fetch, batch))
        while window:
            sent, opened = 0, time.monotonic()
            n, rows = db.copy_stream(conn, produce)
            stats.chunks += n
            stats.embedded += n
            stats.skipped += rows - n
            done += rows
            if on_progress:
                on_progress(done, len(to_embed))
    finally:
        for future in window:
            future.cancel()
        pool.shutdown(wait=True)
    return stats
