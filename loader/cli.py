"""embedding-gate: load JSON corpora through an embedding server into PostgreSQL, check the
server, print the quality report. The database checks the embeddings; this only moves them."""

import argparse
import os
import sys
import time
from pathlib import Path

import psycopg2

from loader import DEFAULT_EMBED_URL as DEFAULT_URL
from loader.connection import Opening, connect, database_url


class Progress:
    """A one-line progress bar on a terminal; silent otherwise."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.start = time.perf_counter()
        self.shown = False
        self.enabled = hasattr(stream, "isatty") and stream.isatty()

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or not total:
            return
        width = 30
        filled = int(width * done / total)
        rate = done / max(time.perf_counter() - self.start, 1e-9)
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,} chunks {rate:,.0f}/s"
        )
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")


def cmd_report(args) -> int:
    from loader import report

    conn = connect(args.database_url)
    try:
        print(report.report(conn, limit=args.limit))
        snap = report.snapshot(conn) if args.png or args.html else None
        if args.png:
            n = report.write_png(snap, Path(args.png))
            print(f"\nwrote {args.png} (the measures of {n:,} embeddings)")
        if args.html:
            report.write_html(snap, Path(args.html))
            print(f"wrote {args.html} (open it in a browser; it fetches nothing)")
    finally:
        conn.close()
    return 0


def cmd_attach(args) -> int:
    from loader import load

    conn = connect(args.database_url)
    try:
        if args.record_reference:
            # the server's embedding of blank text and of ordinary sentences, for blank_like
            client = client_for(args)
            client.check()
            args.model = args.model or client.model
            dim = client.probe()
            for note in (
                load.record_blank_reference(conn, client, args.model, dim),
                load.record_degenerate_references(conn, client, args.model, dim),
                load.record_calibration(conn, client, args.model, dim),
            ):
                if note:
                    print(f"note: {note}", file=sys.stderr)
            print(f"recorded the blank reference and calibration of {args.model} ({dim}-d)")
        return _attach(conn, args)
    finally:
        conn.close()


def _attach(conn, args) -> int:
    from loader import db

    options = {
        "embedding_column": args.embedding,
        "content_column": args.content,
        "id_column": args.id,
        "model": args.model,
        "model_column": args.model_column,
    }
    if args.content:
        # built first, CONCURRENTLY: the table's writers go on meanwhile; attach then holds
        # them only while it creates its triggers
        options["hash_index"] = db.build_hash_index(conn, args.table, args.embedding or "embedding")
    name = db.attach(conn, args.table, **{k: v for k, v in options.items() if v})
    print(f"attached {name}: every write is checked from now on")
    if args.no_check:
        return 0

    def progress(checked: int, flagged: int) -> None:
        print(f"  {checked:,} stored rows checked, {flagged:,} flagged", file=sys.stderr)

    checked, flagged = db.check_existing(conn, name, args.batch_size, progress)
    print(f"{name}: {checked:,} stored rows checked, {flagged:,} flagged")
    return 0


def cmd_detach(args) -> int:
    from loader import db

    conn = connect(args.database_url)
    try:
        db.detach(conn, args.table, args.drop_quarantined)
        print(f"detached {args.table}: its triggers, index and verdicts are gone")
    finally:
        conn.close()
    return 0


def cmd_attached(args) -> int:
    from loader import db
    from loader.report import printable

    conn = connect(args.database_url)
    try:
        rows = db.attached(conn)
    finally:
        conn.close()
    print(
        f"{'table':40s} {'embedding':22s} {'model':20s} {'mode':10s} {'embedded':>10s}"
        f" {'flagged':>8s} {'quarantined':>11s}"
    )
    for r in rows:
        size = r["dimension"] if r["dimension"] is not None else "any"
        column = f"{r['embedding_column']} {r['embedding_type']}({size})"
        model = r["model"] or (f"[{r['model_column']}]" if r["model_column"] else "-")
        print(
            f"{printable(r['table_name']):40s} {printable(column):22s} {printable(model):20s}"
            f" {r['mode']:10s} {r['embedded']:>10,} {r['flagged']:>8,} {r['quarantined']:>11,}"
        )
    return 0


def cmd_watch(args) -> int:
    from loader import watch

    return watch.watch(
        args.database_url,
        max_flagged_share=args.max_flagged_share,
        command=args.exec,
        events=args.events,
    )


def _stopped(why: str) -> int:
    print(f"error: {why}", file=sys.stderr)
    print("what was committed stays; run the same command again to finish", file=sys.stderr)
    return 1


def client_for(args, **options):
    """The embedding client the command line describes: URL, API, model, key, headers."""
    from loader.embed import Client, parse_headers

    lines = os.environ.get("EMBED_API_HEADERS", "").splitlines() + (args.header or [])
    return Client(
        args.embed_url,
        api=args.api,
        model=args.model,
        api_key=args.api_key,
        headers=parse_headers(lines),
        **options,
    )


# the corpus size from which `load` runs two processes by default (--processes): a second
# process parses answers on a second core and streams a second COPY to a second backend, at
# the cost of its start, its connection and the gate's warm-up there (docs/benchmarks.md,
# "Two processes by default")
AUTO_BYTES = 4 << 20


def default_processes(files) -> int:
    """load's processes where --processes is not given: 2 when the files hold AUTO_BYTES or
    more and this process may run on two CPUs or more, on Linux (the processes are forked,
    and end with the one that reads by PR_SET_PDEATHSIG); else 1."""
    if not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2:
        return 1
    try:
        size = sum(f.stat().st_size for f in files)
    except OSError:  # a missing file: the reader says so
        return 1
    return 2 if size >= AUTO_BYTES else 1


def cmd_load(args) -> int:
    from loader import corpus  # orjson alone

    # the files are read while what was read before is stored (load.load reads them in a
    # thread of its own; with --processes, this process reads them for the others)
    reader = corpus.Reader(args.files)
    if args.processes is None:
        args.processes = default_processes(reader.files)
    # one process: its connection opens, and the gate warms up in it (90-180 ms in the
    # server), in a thread of its own from here on, while numpy and the loader are imported
    # and the first file is read (--processes N: each process opens its own, after the fork)
    opening = Opening(args.database_url) if args.processes <= 1 else None
    try:
        return _load(args, reader, opening)
    finally:
        if opening is not None:
            opening.close()


def _load(args, reader, opening: "Opening | None") -> int:
    from loader import load, parallel

    client = client_for(
        args, batch_size=args.batch_size, retries=args.retries, timeout=args.timeout
    )
    options = {"in_flight": args.in_flight, "accept_model_change": args.accept_model_change}
    progress = Progress()
    failure = None  # (the exception's class name, what it means)
    try:
        if opening is None:
            stats, failures = parallel.load(
                args.database_url, reader, client, args.processes, on_progress=progress, **options
            )
            failure = failures[0] if failures else None
        else:
            try:
                stats = load.load(opening, reader, client, on_progress=progress, **options)
            except Exception as e:
                # not connecting is no load's failure: main() says what libpq said, as before
                if e is opening.error or (why := parallel.describe(e)) is None:
                    raise
                failure = (type(e).__name__, why)
    finally:
        progress.close()
    for error in reader.errors:
        print(f"error: {error}", file=sys.stderr)
    if failure is not None:
        kind, why = failure
        if kind == "ModelChanged":  # running the same command again would not help
            print(f"error: {why}", file=sys.stderr)
            return 1
        return _stopped(why)
    for note in stats.notes:
        print(f"note: {note}", file=sys.stderr)
    print(
        f"loaded {reader.documents:,} documents from {len(reader.files):,} files:"
        f" {stats.documents:,} new documents, {stats.chunks:,} new chunks"
        f" ({stats.embedded:,} embedded, {stats.not_embedded:,} dropped or empty),"
        f" {stats.skipped:,} already stored"
    )
    if not args.no_report:
        from loader import report

        # the load's own connection where there is one (a new one costs a backend's start)
        conn = opening.result() if opening is not None else connect(args.database_url)
        try:
            print()
            print(report.report(conn))
        finally:
            if opening is None:
                conn.close()
    return 1 if reader.errors else 0


def cmd_check_server(args) -> int:
    client = client_for(args)
    client.check()
    dim = client.probe()
    model = client.model or "model not named (pass --model)"
    print(
        f"{client.scrub(args.embed_url)}: answers as {client.api}; {model}, {dim} dimensions,"
        f" batch size {client.batch_size}"
    )
    return 0


def cmd_serve(args) -> int:
    import embedding_server

    embedding_server.serve(args.host, args.port)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="embedding-gate", description=__doc__)
    p.add_argument(
        "--database-url",
        default=None,
        help="libpq URL (default: DATABASE_URL, or DB_HOST/DB_PORT/DB_NAME/DB_USER/DB_PASSWORD)",
    )
    sub = p.add_subparsers(dest="command", required=True)

    def embedding_options(p) -> None:
        p.add_argument(
            "--embed-url",
            default=os.environ.get("EMBED_API_URL", DEFAULT_URL),
            help=f"EMBED_API_URL: .../embed (text-embeddings-inference), .../embeddings"
            f" (OpenAI-compatible) or .../api/embed (Ollama); default {DEFAULT_URL}",
        )
        p.add_argument(
            "--api",
            choices=("tei", "openai", "ollama"),
            help="the API the server speaks (default: read from the URL's path)",
        )
        p.add_argument(
            "--model",
            help="the model to ask for and record on chunks (default: the one the server names)",
        )
        p.add_argument(
            "--api-key",
            default=os.environ.get("EMBED_API_KEY") or None,
            help="the server's API key, sent as 'Authorization: Bearer ...' and never shown"
            " (default: EMBED_API_KEY)",
        )
        p.add_argument(
            "--header",
            action="append",
            metavar="'NAME: VALUE'",
            help="an HTTP header to send, e.g. 'api-key: ...' for Azure OpenAI (repeatable;"
            " also EMBED_API_HEADERS, one per line); values are never shown",
        )

    ld = sub.add_parser("load", help="embed and store JSON corpus files (idempotent)")
    ld.add_argument("files", nargs="+", help=".json/.jsonl files or directories of them")
    embedding_options(ld)
    ld.add_argument("--batch-size", type=int, default=64, help="texts per request (64)")
    ld.add_argument("--in-flight", type=int, default=4, help="concurrent requests (4)")
    ld.add_argument(
        "--retries", type=int, default=5, help="retries of a failed request, with backoff (5)"
    )
    ld.add_argument("--timeout", type=float, default=60.0, help="seconds per request (60)")
    ld.add_argument(
        "--processes",
        type=int,
        default=None,
        metavar="N",
        help="loader processes sharing the chunks, each its own; this one reads the files"
        f" (default: 2 for files of {AUTO_BYTES >> 20} MB or more on two CPUs or more, else 1)",
    )
    ld.add_argument(
        "--accept-model-change",
        action="store_true",
        help="when the server answers for a model otherwise than when it was calibrated (another"
        " model behind the same name), record the new calibration and load, instead of stopping",
    )
    ld.add_argument("--no-report", action="store_true", help="skip the final report")
    ld.set_defaults(func=cmd_load)

    ck = sub.add_parser("check-server", help="check that the embedding server answers")
    embedding_options(ck)
    ck.set_defaults(func=cmd_check_server)

    sv = sub.add_parser("serve", help="run the bundled embedding server (the `server` extra)")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=8001)
    sv.set_defaults(func=cmd_serve)

    r = sub.add_parser("report", help="print the quality summary and the low-quality chunks")
    r.add_argument("--limit", type=int, default=10, help="low-quality chunks to show (10)")
    r.add_argument("--png", metavar="FILE", help="also draw the measures the checks use")
    r.add_argument("--html", metavar="FILE", help="also write the whole report as one HTML file")
    r.set_defaults(func=cmd_report)

    a = sub.add_parser(
        "attach", help="guard an existing table (a framework's): check its rows and every write"
    )
    a.add_argument("table", help="the table, e.g. langchain_pg_embedding or myschema.docs")
    a.add_argument("--embedding", help="its embedding column (default: embedding)")
    a.add_argument("--content", help="its text column (duplicate_vector and the reports need it)")
    a.add_argument("--id", help="its row id column (default: the single-column primary key)")
    a.add_argument("--model-column", help="the column naming each row's model (or --model)")
    embedding_options(a)  # --model: the model that embedded its rows (for blank_like)
    a.add_argument(
        "--record-reference",
        action="store_true",
        help="ask the embedding server (--embed-url) for the model's embedding of blank text"
        " and of a sample of sentences, and record them for blank_like",
    )
    a.add_argument("--batch-size", type=int, default=10000, help="rows per commit (10000)")
    a.add_argument("--no-check", action="store_true", help="do not check the stored rows now")
    a.set_defaults(func=cmd_attach)

    dt = sub.add_parser("detach", help="remove the gate from an attached table")
    dt.add_argument("table")
    dt.add_argument("--drop-quarantined", action="store_true", help="discard its quarantined rows")
    dt.set_defaults(func=cmd_detach)

    ls = sub.add_parser("attached", help="list the attached tables")
    ls.set_defaults(func=cmd_attached)

    w = sub.add_parser(
        "watch", help="print a line for every statement that stores flagged embeddings"
    )
    w.add_argument(
        "--max-flagged-share",
        type=float,
        metavar="X",
        help="when a statement's flagged share passes X (0-1): run --exec, or exit with 3",
    )
    w.add_argument(
        "--exec",
        metavar="COMMAND",
        help="the shell command to run when the share is passed (the event's JSON on stdin)",
    )
    w.add_argument("--events", type=int, help="stop after this many events")
    w.set_defaults(func=cmd_watch)

    from loader import deploy

    deploy.add_parser(sub)  # embedding-gate db upgrade|downgrade|current|history
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if args.database_url is None:
        args.database_url = database_url()
    try:
        return args.func(args)
    except psycopg2.Error as e:  # the database's own words name what was wrong
        print(f"error: {(e.pgerror or str(e)).strip()}", file=sys.stderr)
        return 1
    except Exception as e:
        # loader.embed (and numpy with it) is imported by the commands that use it, not here
        embed = sys.modules.get("loader.embed")
        if embed is None or not isinstance(e, embed.EmbeddingError):
            raise
        # before any work: a URL, a header, a server that is not there
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
