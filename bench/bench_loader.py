"""Loader benchmark: chunks per second from JSON file to committed rows, as a ratio to a plain
COPY of the same rows, measured in one run.

An embedding server on loopback (its own process, so its CPU is not the loader's) answers
instantly with precomputed 768-d vectors, one per text (and for "" and the calibration
sentences, the blank_like reference and calibration the loader records first), already
serialised. The loader reads and validates the JSON files, asks the server, and COPYs into
chunks with the gate on. The baseline COPYs the very rows the loader stored, from memory, in
binary format, into the same gated table. Runs interleaved, median of --repeat; the loader's
own CPU per chunk is printed. The loader runs with its defaults (batch size, requests in
flight) unless told otherwise.

    make bench-loader                                   # a throwaway PostgreSQL, 40,000 chunks
    make bench-loader BENCH_ARGS="--api openai --cli"   # `embedding-gate load` as a user runs it
    make bench-loader BENCH_ARGS="--processes 2"        # `load --processes 2 --no-report`
    make bench-loader BENCH_ARGS="--processes 1"        # one process, without the report
    make bench-loader BENCH_ARGS="--cli --processes 1"  # one process, the report included
    python bench/bench_loader.py --url postgresql://... --chunks 5000
"""

import argparse
import base64
import http.server
import io
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.cluster import ROOT, throwaway_database  # noqa: E402
from loader import corpus, db, load  # noqa: E402
from loader.calibration import SENTENCES  # noqa: E402
from loader.embed import Client  # noqa: E402

D = 768
PER_DOCUMENT = 20


def write_corpus(folder: Path, chunks: int) -> list:
    """JSON files of documents of PER_DOCUMENT chunks, Korean and English; their texts."""
    texts, documents = [], []
    for d in range(0, chunks, PER_DOCUMENT):
        doc_chunks = []
        for i in range(d, min(d + PER_DOCUMENT, chunks)):
            text = f"문단 {i}: 임베딩 품질 검사는 데이터베이스 안에서 실행됩니다. Paragraph {i}."
            texts.append(text)
            doc_chunks.append({"chunk_id": f"c{i:07d}", "content": text, "metadata": {"n": i}})
        documents.append({"doc_id": f"d{d:07d}", "title": f"doc {d}", "chunks": doc_chunks})
    for f in range(4):  # four files, as a pipeline's output would be split
        part = documents[f::4]
        (folder / f"part{f}.json").write_text(json.dumps(part, ensure_ascii=False))
    return texts


def serve(texts: list, port_queue, api: str) -> None:
    """The instant server: every text's vector serialised before the first request, as
    text-embeddings-inference's JSON numbers (/embed) or as OpenAI's base64 (/v1/embeddings)."""
    rng = np.random.default_rng(7)
    answers = {}

    def serialised(row: np.ndarray) -> str:
        if api == "openai":
            return '"' + base64.b64encode(row.astype("<f4").tobytes()).decode() + '"'
        return "[" + ",".join(f"{v:.7g}" for v in row.tolist()) + "]"

    for start in range(0, len(texts), 5000):
        x = rng.standard_normal((min(5000, len(texts) - start), D)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        for text, row in zip(texts[start : start + len(x)], x, strict=True):
            answers[text] = serialised(row)
    # the loader asks once for the embedding of "", the model's blank_like reference, of its
    # degenerate texts (punctuation, an unknown character) and of its calibration sentences
    # (without the degenerate texts, each load spent 15.5 s retrying the server's 500s)
    for text in ["", *(t for t, _ in load.DEGENERATE_TEXTS), *SENTENCES]:
        x = rng.standard_normal(D).astype(np.float32)
        answers[text] = serialised(x / np.linalg.norm(x))

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def _send(self, body: bytes) -> None:
            # the status line, headers and body in one write, as a real server sends them:
            # in two, the body's last segment waits for the client's delayed ACK (Nagle's
            # algorithm), 40 ms on loopback for each small answer (GET /health, /info)
            head = (
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            )
            self.wfile.write(head.encode() + body)

        def do_GET(self) -> None:
            info = {"model_id": "bench", "max_client_batch_size": 256}
            self._send(json.dumps(info if self.path == "/info" else {}).encode())

        def do_POST(self) -> None:
            payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if api == "openai":
                data = ",".join(
                    f'{{"index":{i},"embedding":{answers[t]}}}'
                    for i, t in enumerate(payload["input"])
                )
                self._send(f'{{"object":"list","data":[{data}]}}'.encode())
            else:
                self._send(("[" + ",".join(answers[t] for t in payload["inputs"]) + "]").encode())

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port_queue.put(server.server_address[1])
    server.serve_forever()


def reset(conn) -> None:
    with conn.cursor() as cur:
        cur.execute("TRUNCATE chunks, documents, embedding_quarantine")
        cur.execute("CHECKPOINT")
    conn.commit()


def timed_loader(conn, folder: Path, client: Client, **kwargs) -> "tuple[float, float, int]":
    """Wall and CPU seconds of the whole load, from reading the files to the last commit (the
    files read while the first chunks are stored, as `embedding-gate load` does)."""
    reset(conn)
    wall, cpu = time.perf_counter(), time.process_time()
    stats = load.load(conn, corpus.Reader([folder]), client, **kwargs)
    return time.perf_counter() - wall, time.process_time() - cpu, stats.embedded


def timed_cli(conn, url: str, folder: Path, embed_url: str, processes: int, options: list):
    """Wall seconds of `embedding-gate load FOLDER [--processes N] [options]` run as a user
    runs it (processes 0: the command's default), and its processes' CPU seconds; the count
    of chunks stored."""
    reset(conn)
    cmd = [sys.executable, "-m", "loader", "--database-url", url, "load", str(folder), *options]
    cmd += ["--processes", str(processes)] if processes else []
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EMBED_API_URL": embed_url}
    before = os.times()
    start = time.perf_counter()
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)]
    errors = [p.communicate()[1] for p in procs]
    wall = time.perf_counter() - start
    after = os.times()
    for p, err in zip(procs, errors, strict=True):
        if p.returncode:
            raise AssertionError(f"embedding-gate load failed: {err.decode()[-2000:]}")
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM chunks WHERE embedding IS NOT NULL")
        stored = cur.fetchone()[0]
    conn.commit()
    return wall, cpu, stored


CHUNK_COLUMNS = ", ".join(db.COLUMNS)


def stored_copy(conn) -> "tuple[bytes, bytes]":
    """What the loader stored, as binary COPY data: the baseline's input."""
    out = []
    for table, columns in (
        ("documents", "doc_id, title, source, metadata"),
        ("chunks", CHUNK_COLUMNS),
    ):
        buffer = io.BytesIO()
        with conn.cursor() as cur:
            cur.copy_expert(f"COPY {table} ({columns}) TO STDOUT WITH (FORMAT binary)", buffer)
        out.append(buffer.getvalue())
    conn.commit()
    return out[0], out[1]


def timed_copy(conn, documents: bytes, chunks: bytes) -> float:
    reset(conn)
    start = time.perf_counter()
    with conn.cursor() as cur:
        cur.copy_expert(
            "COPY documents (doc_id, title, source, metadata) FROM STDIN WITH (FORMAT binary)",
            io.BytesIO(documents),
        )
        cur.copy_expert(
            f"COPY chunks ({CHUNK_COLUMNS}) FROM STDIN WITH (FORMAT binary)", io.BytesIO(chunks)
        )
    conn.commit()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a database at head, 768-d (default: a throwaway cluster)")
    parser.add_argument("--chunks", type=int, default=40_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--batch-size", type=int, help="texts per request (default: the loader's default)"
    )
    parser.add_argument("--in-flight", type=int, help="concurrent requests (the loader's default)")
    parser.add_argument(
        "--cli",
        action="store_true",
        help="time `embedding-gate load FOLDER` in a process of its own, report included",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=0,
        help="time `embedding-gate load --processes N --no-report` (N processes, each its share;"
        " with --cli, the report included)",
    )
    parser.add_argument(
        "--api",
        choices=("tei", "openai"),
        default="tei",
        help="the server's shape: JSON numbers (tei, the default) or base64 (openai)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, throwaway_database(args.url, Path(tmp)) as url:
        folder = Path(tmp) / "corpus"
        folder.mkdir()
        texts = write_corpus(folder, args.chunks)
        size = sum(f.stat().st_size for f in folder.iterdir())
        ports = multiprocessing.Queue()
        server = multiprocessing.Process(target=serve, args=(texts, ports, args.api), daemon=True)
        server.start()
        port = ports.get(timeout=300)
        path = "/v1/embeddings" if args.api == "openai" else "/embed"
        embed_url = f"http://127.0.0.1:{port}{path}"
        client = Client(embed_url, **({"batch_size": args.batch_size} if args.batch_size else {}))
        options = ["--batch-size", str(args.batch_size)] if args.batch_size else []
        options += ["--in-flight", str(args.in_flight)] if args.in_flight else []
        kwargs = {"in_flight": args.in_flight} if args.in_flight else {}
        cli = args.cli or bool(args.processes)
        if args.processes and not args.cli:
            options.append("--no-report")
        conn = psycopg2.connect(url)
        how = (
            f"`embedding-gate load{f' --processes {args.processes}' if args.processes else ''}"
            f"{' --no-report' if '--no-report' in options else ''}`"
            if cli
            else f"load.load(), batches of {client.batch_size}"
        )
        print(
            f"{args.chunks:,} chunks in {size / 1e6:.0f} MB of JSON; 768-d vectors, gate on;"
            f" {args.api} server; {how}"
        )
        times: dict = {"loader": [], "copy": [], "cpu": []}
        try:
            for r in range(args.repeat):
                if cli:
                    wall, cpu, embedded = timed_cli(
                        conn, url, folder, embed_url, args.processes, options
                    )
                else:
                    wall, cpu, embedded = timed_loader(conn, folder, client, **kwargs)
                if embedded != args.chunks:
                    raise AssertionError(f"the loader stored {embedded} of {args.chunks}")
                times["loader"].append(wall)
                times["cpu"].append(cpu)
                documents, chunks = stored_copy(conn)
                times["copy"].append(timed_copy(conn, documents, chunks))
                print(
                    f"  run {r + 1}: loader {wall:.2f} s (CPU {cpu:.2f} s),"
                    f" plain COPY {times['copy'][-1]:.2f} s",
                    flush=True,
                )
        finally:
            conn.close()
            server.terminate()
        loader, copy = statistics.median(times["loader"]), statistics.median(times["copy"])
        cpu = statistics.median(times["cpu"])
        print(f"{'':12s} {'chunks/s':>9s}  vs plain COPY")
        print(
            f"{'plain COPY':12s} {args.chunks / copy:9,.0f}  1.00x  (binary, the same rows, gated)"
        )
        ratio = copy / loader
        ratios = sorted(c / w for c, w in zip(times["copy"], times["loader"], strict=True))
        spread = f"({ratios[0]:.2f}-{ratios[-1]:.2f} run by run)"
        print(f"{'loader':12s} {args.chunks / loader:9,.0f}  {ratio:.2f}x  {spread}")
        print(f"loader CPU: {cpu / args.chunks * 1e6:.0f} µs per chunk ({cpu:.2f} s in all)")


if __name__ == "__main__":
    main()
