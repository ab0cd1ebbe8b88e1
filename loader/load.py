"""Loading: documents and chunks into PostgreSQL, embeddings fetched on the way.

Idempotent by chunk_id: chunks already stored (in chunks, or kept out in
embedding_quarantine) are neither embedded nor inserted again, so a second run, or a run
after a crash, does only what is missing. Chunks are committed with their embeddings, and
inserted with ON CONFLICT DO NOTHING semantics, so two loaders on the same files store each
chunk once. The loader checks no embedding: the database's gate does.
"""

import contextlib
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import timezone
from itertools import islice

import numpy as np
import psycopg2

from loader import db
from loader.calibration import SENTENCES
from loader.connection import Opening, another
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


# blank_like's further references of a model (docs/checks.md, "A margin that holds"):
# punctuation alone, and a character the tokenizers do not know (U+13000). The latter is
# safe beside the loader's calibration only: all-MiniLM-L6-v2 reads Hangul as unknown
# characters too, and with the mean of the sample corpus's first 104 rows (all English)
# removed, 63 of its ordinary Korean paragraphs came within 0.357-0.498 of it (against
# 0.35); with the mean of the loader's 40 sentences in 14 languages, which the gate keeps
# as the model's centre (the rows add their spread), they sit at 0.05-0.22
DEGENERATE_TEXTS = (
    ("?", "punctuation"),
    ("-", "punctuation"),
    ("*", "punctuation"),
    ("𓀀", "unknown"),
)


def record_degenerate_references(conn, client: Client, model: str, dim: int) -> "str | None":
    """Embed DEGENERATE_TEXTS and record those the database has no reference of yet for the
    model (set_degenerate_reference: the first is kept, replacing one is the owner's). None
    when done or not needed, else why not."""
    missing = [(t, k) for t, k in DEGENERATE_TEXTS if t not in db.degenerate_texts(conn, model)]
    if not missing:
        return None
    try:
        vectors = client.embed(
            [t for t, _ in missing], dim, [f"(the degenerate text {t!r})" for t, _ in missing]
        )
    except EmbeddingError as e:
        return f"no references of punctuation and unknown characters recorded for {model}: {e}"
    try:
        for (text, kind), vector in zip(missing, vectors, strict=True):
            if np.isfinite(vector).all() and np.any(vector):
                db.set_degenerate_reference(conn, model, vector, text, kind)
    except psycopg2.Error as e:
        conn.rollback()
        return f"no degenerate reference recorded for {model}: {str(e).splitlines()[0]}"
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


# how close to what was recorded a model's answers must be (cosine) for the loader to call
# it the same model. Measured on CPU (docs/benchmarks.md, "A changed model"): the same
# all-MiniLM-L6-v2 in other batch sizes gives 1 - cosine below 3e-13, in float16 2e-6, in
# bfloat16 up to 1.2e-4 (harmless precision changes, let through); its int8 quantization
# 0.04-0.30, another model about 1 (stopped). 1e-3 sits between, 8x above the first.
SAME_MODEL = 0.999


class ModelChanged(EmbeddingError):
    """The embedding server answers for a model name differently from what was recorded of
    that model: another model, version or quantization behind the same name."""


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    norms = np.linalg.norm(a) * np.linalg.norm(b)
    return float(np.dot(a, b) / norms) if norms else 0.0


def check_model(conn, client: Client, model: str, dim: int, accept: bool = False) -> "str | None":
    """Compare the server's answers for a model it has met before with what was recorded of
    the model: its embedding of the blank text (the blank reference) and the mean of its
    embeddings of the calibration sentences (where the loader recorded it from them). A
    cosine below SAME_MODEL, or another dimension, raises ModelChanged saying what differs
    and what to do; with accept, the new model's blank reference and calibration are
    recorded instead (replacing them needs the right to tune the gate) and a note says so.
    None when the model is new or answers as recorded."""
    recorded = db.recorded_model(conn, model)
    if recorded is None:
        return None
    differs, compared = [], []
    reference, mean = recorded["reference"], recorded["mean"]
    if reference is not None:
        text = recorded["blank_text"] or ""
        if len(reference) != dim:
            differs.append(
                f"its recorded blank reference has {len(reference)} dimensions, the server"
                f" answers with {dim}"
            )
        else:
            try:
                now = client.embed([text], dim, [f"(the blank text {text!r})"])[0]
            except Refused as e:
                differs.append(f"the server now refuses the blank text {text!r} ({e})")
            else:
                similarity = _cosine(now, reference)
                compared.append(f"its embedding of the blank text {text!r} at {similarity:.4f}")
                if not similarity >= SAME_MODEL:
                    differs.append(compared[-1])
    if mean is not None and recorded["source"] == "sample":
        if len(mean) != dim:
            differs.append(
                f"its recorded calibration has {len(mean)} dimensions, the server answers"
                f" with {dim}"
            )
        else:
            vectors = client.embed(
                list(SENTENCES), dim, ["(the calibration sentences)"] * len(SENTENCES)
            )
            finite = vectors[np.isfinite(vectors).all(axis=1)]
            similarity = _cosine(finite.mean(axis=0), mean) if len(finite) else 0.0
            compared.append(
                f"the mean of its embeddings of the {len(SENTENCES)} calibration sentences"
                f" at {similarity:.4f}"
            )
            if not similarity >= SAME_MODEL:
                differs.append(compared[-1])
    if not differs:
        return None
    when = recorded["reference_at"] or recorded["mean_at"]
    stored = db.embedded_with(conn, model)
    what = (
        f"the embedding server answers for model {model!r} otherwise than when it was"
        f" calibrated ({when.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC):"
        f" {'; '.join(differs)} (cosine to what was recorded; the same model gives at least"
        f" {SAME_MODEL})"
    )
    if not accept:
        raise ModelChanged(
            f"{what}. Another model, version or quantization is behind the same name, and its"
            f" vectors do not compare with the {stored:,} chunks stored as {model!r}: no chunk"
            " of this run was embedded. Point EMBED_API_URL at the server of the model the"
            " chunks were embedded with; or, if the change is wanted, run again with"
            " --accept-model-change (it records the new model's calibration; replacing it"
            " needs the right to tune the gate) and re-embed the chunks stored before"
        )
    for record, vector in ((_replace_reference, reference), (_replace_calibration, mean)):
        if vector is not None:
            record(conn, client, model, dim, recorded)
    _replace_degenerate(conn, client, model, dim)
    return (
        f"{what}: accepted (--accept-model-change), its new blank reference and calibration"
        f" recorded; the {stored:,} chunks stored as {model!r} before were embedded by the"
        " previous model and do not compare with the new one's: re-embed them"
    )


def _replace_reference(conn, client: Client, model: str, dim: int, recorded: dict) -> None:
    text = recorded["blank_text"] or ""
    vector = client.embed([text], dim, [f"(the blank text {text!r})"])[0]
    _replace(conn, model, "blank reference", db.set_blank_reference, vector, text)


def _replace_calibration(conn, client: Client, model: str, dim: int, recorded: dict) -> None:
    vectors = client.embed(list(SENTENCES), dim, ["(the calibration sentences)"] * len(SENTENCES))
    finite = vectors[np.isfinite(vectors).all(axis=1)]
    if not len(finite):
        raise ModelChanged(
            f"the new model behind {model!r} embeds none of the calibration sentences to a"
            " finite vector: nothing recorded, nothing stored"
        )
    _replace(conn, model, "calibration", db.set_calibration, finite.mean(axis=0), len(finite))


def _replace_degenerate(conn, client: Client, model: str, dim: int) -> None:
    """The new model's embeddings of the degenerate texts recorded of the old one."""
    recorded = db.degenerate_texts(conn, model)
    texts = [(t, k) for t, k in DEGENERATE_TEXTS if t in recorded]
    if not texts:
        return
    vectors = client.embed([t for t, _ in texts], dim, [f"(the text {t!r})" for t, _ in texts])
    for (text, kind), vector in zip(texts, vectors, strict=True):
        what = f"reference for {text!r}"
        _replace(conn, model, what, db.set_degenerate_reference, vector, text, kind)


def _replace(conn, model: str, what: str, record, *args) -> None:
    try:
        record(conn, model, *args)
    except psycopg2.errors.InsufficientPrivilege:
        conn.rollback()
        raise ModelChanged(
            f"--accept-model-change: this role may not replace the {what} of model {model!r}"
            " (that needs UPDATE on embedding_gate.settings, the deployment's owner's right):"
            " run the load once as a role that may tune the gate, with --accept-model-change;"
            " nothing of this run was stored"
        ) from None


def _check_early(client: Client, early: dict) -> None:
    try:
        client.check()
        early["ok"] = True
    except Exception:  # noqa: BLE001 (checked again by prepare(), which raises it)
        early["ok"] = False


class _Segments:
    """The documents of an iterable, read in a thread of its own and handed over in segments
    of about `rows` chunks, at most `ahead` segments ahead: the loader stores one segment
    while the next is read and validated. A failure of the iterable (not a bad document,
    which the reader records and skips) is raised by get().

    With `side` (a callable that opens a second connection), the thread also asks, on that
    connection, which of a segment's chunks are stored already, and stores its documents
    where nothing must come first (none of its chunks is to be embedded, or `may_insert` is
    set: the model was checked): those queries no longer pause the COPY stream of the
    loader's own connection, in which the database waited (docs/benchmarks.md, "A second
    connection"). Where it cannot be opened or fails, the loader asks on its own."""

    _END = object()

    def __init__(self, documents, rows: int, ahead: int = 4, side=None):
        self.queue: queue.Queue = queue.Queue(maxsize=ahead)
        self.closed = threading.Event()
        self.may_insert = threading.Event()
        self.ended = False
        self.thread = threading.Thread(
            target=self._read, args=(documents, rows, side), name="corpus-reader", daemon=True
        )
        self.thread.start()

    def _put(self, item) -> bool:
        while not self.closed.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _read(self, documents, rows: int, side) -> None:
        segment: list = []
        size = 0
        conn = None
        try:
            if side is not None:
                try:
                    conn = side()
                except psycopg2.Error:
                    conn = None
            for doc in documents:
                segment.append(doc)
                size += len(doc.chunks) or 1
                if size >= rows:
                    item, conn = self._asked(segment, conn)
                    if not self._put(item):
                        return
                    segment, size = [], 0
            if segment:
                item, conn = self._asked(segment, conn)
                if not self._put(item):
                    return
            self._put(self._END)
        except BaseException as e:  # noqa: B036 (raised by get() in the loader's thread)
            self._put(e)
        finally:
            if conn is not None:
                conn.close()

    def _asked(self, segment: list, conn) -> tuple:
        """(segment, the chunk_ids of it stored already, documents inserted) where the second
        connection answered; None for what the loader must ask itself; and the connection,
        None once it failed."""
        if conn is None:
            return (segment, None, None), None
        try:
            chunks = [c for d in segment for c in d.chunks]
            have = db.stored_ids(conn, [c.chunk_id for c in chunks]) if chunks else set()
            inserted = None
            if self.may_insert.is_set() or not any(
                c.chunk_id not in have for c in chunks if c.embeddable
            ):
                inserted = db.insert_documents(conn, segment)
            return (segment, have, inserted), conn
        except psycopg2.Error:  # a restart, say: the loader's own connection will tell
            with contextlib.suppress(psycopg2.Error):
                conn.close()
            return (segment, None, None), None

    def get(self, block: bool, stop=None) -> "tuple | None":
        """The next segment, (documents, stored chunk_ids or None, documents inserted or
        None); None at the end of the input, or when none is ready and not block, or once
        `stop` (an Event) is set."""
        while not self.ended:
            try:
                item = self.queue.get(block=block, timeout=0.1 if block else None)
                break
            except queue.Empty:
                if not block or (stop is not None and stop.is_set()):
                    return None
        else:
            return None
        if item is self._END:
            self.ended = True
            return None
        if isinstance(item, BaseException):
            self.ended = True
            raise item
        return item

    def close(self) -> None:
        self.closed.set()


def load(
    conn,
    corpus,
    client: Client,
    *,
    in_flight: int = 4,
    insert_rows: int = 10000,
    linger: float = 0.2,
    open_for: float = 2.0,
    blank_reference: bool = True,
    accept_model_change: bool = False,
    on_progress: "Callable[[int, int], None] | None" = None,
    segment_rows: int = 10000,
    prepare_lock=None,
    stop=None,
    second_connection: bool = True,
) -> Stats:
    """Store every document and chunk of the corpus that is not stored yet. conn: a
    connection, or a connection.Opening (the connection opened and warmed up in a thread,
    which the reader's thread need not wait for). corpus: a
    Corpus, or an iterable of Documents (a corpus.Reader), which is read in a thread of its
    own while what was read before is stored: documents and chunks go in segments of about
    segment_rows chunks (the documents, which chunks are stored already, the chunks stored
    without an embedding, then the rest queued for embedding). Embedded chunks are committed
    in COPYs of up to insert_rows, each answer sent to the database as soon as it is parsed;
    a COPY waits up to `linger` seconds for each next answer, then commits what it has, and
    once it has been open `open_for` seconds it commits at the first answer not there yet.
    With blank_reference, before the first chunk to embed is stored (and before its
    document), the model is checked against what was recorded of it (check_model: a server
    that now answers differently for the same model name raises ModelChanged, unless
    accept_model_change, which records the new model's calibration instead), and its
    embedding of empty text and its calibration (the mean of a sample of ordinary sentences)
    are recorded where the database has none (for the blank_like check); under
    prepare_lock where given (processes sharing a load). on_progress is called with (chunks
    stored so far, chunks to embed found so far) after each commit. stop: an Event that ends
    the load after the COPY under way (what was committed stays). second_connection: the
    reader's thread asks which chunks are stored, and stores documents, on a connection of
    its own (connection.another), so that the loader's connection streams COPYs without
    those pauses; where it cannot be opened, the loader's own connection does it.
    COPYs and segments of 10,000 rows by default (they were 2,000 each): each COPY and each
    segment's queries (stored_ids, the documents) is a pause of the COPY stream, in which
    the database waits; a load of 40,000 chunks has 4-5 COPYs and 4 segments instead of 20
    and 20, and reading its first segment hides behind db.warm_up (docs/benchmarks.md,
    "The database's pace")."""
    stats = Stats()
    documents = corpus.documents if isinstance(corpus, Corpus) else corpus
    side = another(conn) if second_connection else None
    # the server's check (GETs only, nothing stored) in a thread from now on, while the
    # connection warms up and the first segment is read: prepare() takes its answer, or
    # checks again where it failed (so that only a check made when something is to be
    # embedded says what is wrong, as before); unused when nothing is
    early: dict = {}
    checking = threading.Thread(
        target=_check_early, args=(client, early), name="server-check", daemon=True
    )
    checking.start()
    if isinstance(conn, Opening):
        # a connection opened and warmed up in a thread of its own since the caller made it
        # (the CLI: while it imported the loader), while the reader's thread reads
        segments = _Segments(documents, segment_rows, side=side)
        try:
            conn, dim = conn.result(), conn.dimension()
        except BaseException:
            segments.close()
            raise
    else:
        dim = db.embedding_dim(conn)
        segments = _Segments(documents, segment_rows, side=side)
        db.warm_up(conn)  # in the server, while the reader's thread reads the first segment
    queued: deque = deque()  # chunks to embed, their documents stored
    found = 0  # chunks to embed, so far
    ready = False  # the server checked, the model's calibration recorded or compared

    def prepare() -> None:
        nonlocal ready
        checking.join()
        if not early.get("ok"):
            client.check()
        stats.model = client.model
        if not stats.model:
            stats.notes.append(
                "the embedding server names no model (pass --model): blank_like is not checked"
                " for these chunks"
            )
        elif blank_reference:
            with prepare_lock or contextlib.nullcontext():
                if note := check_model(conn, client, stats.model, dim, accept_model_change):
                    stats.notes.append(note)
                for record in (
                    record_blank_reference,
                    record_degenerate_references,
                    record_calibration,
                ):
                    if note := record(conn, client, stats.model, dim):
                        stats.notes.append(note)
        ready = True
        segments.may_insert.set()  # the reader's connection may store documents first now

    def store(item: tuple) -> None:
        """A segment's documents and its chunks without an embedding, stored; the rest of
        its chunks not stored yet, queued. item: from segments.get()."""
        nonlocal found
        segment, have, inserted = item
        chunks = [c for d in segment for c in d.chunks]
        if have is None:
            have = db.stored_ids(conn, [c.chunk_id for c in chunks]) if chunks else set()
        todo = [c for c in chunks if c.chunk_id not in have] if have else chunks
        stats.skipped += len(have)
        embed = [c for c in todo if c.embeddable]
        if embed and not ready:
            prepare()  # before anything of this segment is stored
        if inserted is None:
            inserted = db.insert_documents(conn, segment)
        stats.documents += inserted
        plain = [c for c in todo if not c.embeddable]
        for start in range(0, len(plain), 1000):
            n = db.insert_chunks(conn, plain[start : start + 1000], None)
            stats.chunks += n
            stats.not_embedded += n
        queued.extend(embed)
        found += len(embed)

    def batches():
        """The next batch to embed from what is queued."""
        while queued:
            size = max(client.batch_size, 1)  # check() lowers it to the server's limit
            yield [queued.popleft() for _ in range(min(size, len(queued)))]

    def fetch(batch):
        return batch, client.embed([c.content for c in batch], dim, [c.chunk_id for c in batch])

    pool = ThreadPoolExecutor(max_workers=max(in_flight, 1))
    window: deque = deque()
    ahead = 2 * max(in_flight, 1)  # requests ahead of the inserts: bounded memory
    sent = 0  # rows in the COPY under way
    opened = 0.0  # when it began
    done = 0

    def top_up() -> None:
        for batch in islice(batches(), max(ahead - len(window), 0)):
            window.append(pool.submit(fetch, batch))

    def produce():
        """The next answer's rows for the COPY under way, once the server has answered;
        None to end the COPY and commit: at insert_rows, at the end of what is queued, when
        the next answer is not there `linger` seconds after it was first waited for, or not
        there at all once the COPY has been open `open_for` seconds (a fast server gets few
        large COPYs, a slow one a commit every answer or every `open_for` seconds), or when
        it is a failure (what came before it is committed first). The wait was `linger`
        from the COPY's start, so that a loader slower than the database (TEI's numbers to
        parse, a loaded machine) ended a COPY at any answer not parsed yet 0.2 s in: 11-19
        COPYs for 40,000 chunks instead of 4-5, each a commit and the gate's statement cost
        of about 8 ms."""
        nonlocal sent
        if not window:
            return None
        future = window[0]
        if sent:
            if sent >= insert_rows:
                return None
            if not future.done():
                left = opened + open_for - time.monotonic()
                if left > 0:
                    wait([future], timeout=min(linger, left))
            if not future.done() or future.exception():
                return None
        batch, vectors = future.result()
        window.popleft()
        top_up()
        sent += len(batch)
        return db.copy_rows(batch, vectors, stats.model), len(batch)

    try:
        # in order: the COPY streams each answer to the database as it comes, so the
        # database stores one while the loader waits for and parses the next, and the
        # reader's thread reads the next segment
        while not (stop is not None and stop.is_set()):
            # what the reader has ready (waiting for it only when nothing else is to do),
            # until twice a COPY's rows are queued
            while len(queued) < 2 * insert_rows:
                item = segments.get(not window and not queued, stop)
                if item is None:
                    break
                store(item)
            top_up()
            if not window:
                if segments.ended:
                    break
                continue
            sent, opened = 0, time.monotonic()
            n, rows = db.copy_stream(conn, produce)
            stats.chunks += n
            stats.embedded += n
            stats.skipped += rows - n
            done += rows
            if on_progress:
                on_progress(done, found)
    finally:
        segments.close()
        for future in window:
            future.cancel()
        pool.shutdown(wait=True)
    return stats
