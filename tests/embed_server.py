"""A real HTTP embedding server on loopback for the tests: the text-embeddings-inference
API of embedding_server.py with a deterministic stand-in model, and scripted faults."""

import hashlib
import io
import json
import threading
import time
from collections import deque

import numpy as np

from embedding_server import make_server

D = 768


def vector_for(text: str, dim: int = D) -> list:
    """A unit vector that depends only on the text; "<zero>" gives NaN (as
    text-embeddings-inference does when it normalises a zero vector)."""
    if text == "<zero>":
        return [float("nan")] * dim
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    x = np.random.default_rng(seed).standard_normal(dim)
    return (x / np.linalg.norm(x)).tolist()


class EmbedServer:
    """Serves on 127.0.0.1:<free port>. `faults` is a queue of what the next POSTs get
    instead of vectors: (status, body), ("sleep", seconds) or ("vectors", list)."""

    def __init__(self, dim: int = D, max_batch: int = 64):
        self.dim = dim
        self.faults: deque = deque()
        self.requests = 0
        self.delay = 0.0  # seconds before each answer
        self.texts_seen: list = []
        self.lock = threading.Lock()
        outer = self

        def encode(texts):
            return [vector_for(t, outer.dim) for t in texts]

        self.server = make_server(encode, "127.0.0.1", 0, max_batch=max_batch)
        handler = self.server.RequestHandlerClass
        original = handler.do_POST

        def do_post(h):
            with outer.lock:
                outer.requests += 1
                fault = outer.faults.popleft() if outer.faults else None
            if outer.delay:
                time.sleep(outer.delay)
            if fault is None:
                length = int(h.headers.get("Content-Length", 0))
                body = h.rfile.read(length)
                payload = json.loads(body)
                with outer.lock:
                    outer.texts_seen += payload.get("inputs", payload.get("input", []))
                real, h.rfile = h.rfile, io.BytesIO(body)
                try:
                    return original(h)
                finally:
                    h.rfile = real
            h.rfile.read(int(h.headers.get("Content-Length", 0)))
            kind, value = fault
            if kind == "sleep":
                time.sleep(value)
                return h._send(200, "[]")
            if kind == "vectors":
                return h._send(200, json.dumps(value))
            return h._send(kind, value)

        handler.do_POST = do_post
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/embed"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


if __name__ == "__main__":  # a server in a process of its own, for tests that kill it
    server = EmbedServer()
    print(server.url, flush=True)
    server.thread.join()
