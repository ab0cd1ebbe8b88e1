"""`embedding-gate load --processes N`: one process reads and validates the files and hands
each document to one of N loader processes (the one with the fewest chunks so far), which
store their share as a single loader does (load.load, the documents coming from a queue).
No chunk goes to two processes, so none is embedded twice; the first failure stops the
others after the COPY each has under way (what was committed stays, and a rerun finishes);
the summary is one, the sum of theirs."""

import ctypes
import multiprocessing
import os
import queue
import signal
import threading
from collections.abc import Callable

import psycopg2

from loader import load as load_module
from loader.db import connect
from loader.embed import EmbeddingError

# chunks a process is sent at a time (its documents, pickled together)
GROUP_CHUNKS = 500


def describe(e: BaseException) -> "str | None":
    """What a failure of a load means, in a line for the user (None: not a load's failure,
    to raise)."""
    if isinstance(e, (psycopg2.OperationalError, psycopg2.InterfaceError)):
        # the server restarted or went away: the batch in progress was rolled back
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return f"lost the connection to the database ({why})"
    if isinstance(e, psycopg2.Error):
        # the database refused a batch: its message and CONTEXT (the COPY line) say which
        why = " / ".join(line for line in str(e).strip().splitlines() if line.strip())
        return f"the database refused a batch of chunks: {why}"
    if isinstance(e, EmbeddingError):
        return str(e)
    return None


def _die_with(parent: int) -> None:
    """End this process when its parent ends (killed, say): on Linux at once, by
    PR_SET_PDEATHSIG (a COPY under way is rolled back, as a killed loader's is); elsewhere
    _documents() notices it between segments."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError, TypeError):
        pass
    if os.getppid() != parent:  # it ended before prctl
        os._exit(1)


def _documents(inbox, parent: int):
    while True:
        try:
            group = inbox.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent:
                raise RuntimeError("the process that reads the files ended") from None
            continue
        if group is None:
            return
        yield from group


def _worker(
    index: int, parent: int, url: str, client, inbox, outbox, lock, stop, options: dict
) -> None:
    _die_with(parent)
    conn = None
    try:
        conn = connect(url)

        def progress(done: int, found: int) -> None:
            outbox.put(("progress", index, (done, found)))

        stats = load_module.load(
            conn,
            _documents(inbox, parent),
            client,
            prepare_lock=lock,
            stop=stop,
            on_progress=progress,
            **options,
        )
        outbox.put(("done", index, stats))
    except BaseException as e:  # noqa: B036 (told to the parent, which says it)
        why = describe(e) or f"{type(e).__name__}: {e}"
        outbox.put(("error", index, (type(e).__name__, why)))
    finally:
        if conn is not None:
            conn.close()


def load(
    url: str,
    documents,
    client,
    processes: int,
    *,
    on_progress: "Callable[[int, int], None] | None" = None,
    **options,
) -> "tuple[load_module.Stats, list]":
    """Load the documents (an iterable: a corpus.Reader) in `processes` processes. Returns
    the summed Stats and the failures, (exception's class name, what it means) each, the
    first one first. Call it before this process starts any thread (the processes are
    forked)."""
    ctx = multiprocessing.get_context("fork")
    outbox = ctx.Queue()
    lock, stop = ctx.Lock(), ctx.Event()
    inboxes = [ctx.Queue(maxsize=8) for _ in range(processes)]
    workers = [
        ctx.Process(
            target=_worker,
            args=(i, os.getpid(), url, client, inboxes[i], outbox, lock, stop, options),
            name=f"embedding-gate-load-{i}",
            daemon=True,
        )
        for i in range(processes)
    ]
    for w in workers:
        w.start()
    results: dict = {}
    errors: list = []
    counts = [(0, 0)] * processes

    def collect() -> None:
        told: set = set()
        while len(told) < processes:
            try:
                kind, index, value = outbox.get(timeout=0.5)
            except queue.Empty:
                for i, w in enumerate(workers):
                    if i not in told and not w.is_alive() and outbox.empty():
                        told.add(i)
                        why = f"loader process {i + 1} ended without a word ({w.exitcode})"
                        errors.append(("Died", why))
                        stop.set()
                continue
            if kind != "progress":
                told.add(index)
            if kind == "progress":
                counts[index] = value
                if on_progress:
                    on_progress(sum(c[0] for c in counts), sum(c[1] for c in counts))
            elif kind == "done":
                results[index] = value
            else:
                errors.append(value)
                stop.set()

    collector = threading.Thread(target=collect, name="load-results", daemon=True)
    collector.start()

    def send(i: int, item) -> bool:
        while not stop.is_set():
            try:
                inboxes[i].put(item, timeout=0.1)
                return True
            except queue.Full:
                if not workers[i].is_alive():
                    return False
        return False

    sizes = [0] * processes  # chunks given to each
    groups: list = [[] for _ in range(processes)]
    pending = [0] * processes
    try:
        for doc in documents:
            i = min(range(processes), key=sizes.__getitem__)
            n = len(doc.chunks) or 1
            sizes[i] += n
            groups[i].append(doc)
            pending[i] += n
            if pending[i] >= GROUP_CHUNKS:
                if not send(i, groups[i]):
                    break
                groups[i], pending[i] = [], 0
        for i in range(processes):
            if groups[i]:
                send(i, groups[i])
            send(i, None)
    except BaseException:
        stop.set()  # reading failed (or was interrupted): the processes end after their COPY
        raise
    finally:
        for i in range(processes):
            if stop.is_set():
                inboxes[i].cancel_join_thread()
        collector.join()
        for w in workers:
            w.join()
    total = load_module.Stats()
    for stats in results.values():
        for name in ("documents", "chunks", "embedded", "skipped", "not_embedded"):
            setattr(total, name, getattr(total, name) + getattr(stats, name))
        total.model = total.model or stats.model
        total.notes += [n for n in stats.notes if n not in total.notes]
    return total, errors
