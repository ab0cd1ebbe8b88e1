"""A real HTTP embedding server on loopback for the tests: the text-embeddings-inference
API of embedding_server.py with a deterministic stand-in model, and scripted faults."""

import hashlib
import io
import json
import threading
import time
from base64 import b64encode
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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
        # another model behind the same URL and name: a variant's vectors are those of
        # another text (unrelated to the first model's); `perturb` moves every vector by
        # that distance (1 - cosine about perturb**2 / 2: a precision change, a quantization)
        self.variant: str | None = None
        self.perturb = 0.0
        outer = self

        def encode(texts):
            return [outer.vector(t) for t in texts]

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

    def vector(self, text: str) -> list:
        """The vector this server answers for a text, as its model stands now."""
        same = self.variant is None or text == "<zero>"
        v = vector_for(text if same else f"{self.variant}\x00{text}", self.dim)
        if self.perturb and text != "<zero>":
            seed = int.from_bytes(hashlib.sha256(b"perturb" + text.encode()).digest()[:8], "little")
            noise = np.random.default_rng(seed).standard_normal(self.dim)
            x = np.asarray(v) + self.perturb * noise / np.linalg.norm(noise)
            v = (x / np.linalg.norm(x)).tolist()
        return v

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class ShapedServer:
    """A loopback server of another shape than text-embeddings-inference, for the client's
    tests: OpenAI-compatible (at `path`, e.g. /v1/embeddings or an Azure deployment's
    path with its api-version) or Ollama (/api/embed, /api/tags). With `key`, every request
    must carry it (`Authorization: Bearer <key>`, or the header `key_header`), and a wrong
    one is refused with the key quoted back, as some servers do. `refuse` lists texts the
    server refuses with 400, as OpenAI's API refuses "". `listing`: whether it has /models
    (OpenAI) and /health."""

    def __init__(
        self,
        api: str = "openai",
        path: str = "/v1/embeddings",
        *,
        key: "str | None" = None,
        key_header: str = "Authorization",
        refuse: tuple = (),
        listing: bool = True,
        model: str = "shaped-model",
        dim: int = D,
        base64: bool = True,
    ):
        outer = self
        self.requests: list = []  # (method, path, headers)
        self.bodies: list = []  # the JSON of each POST

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def send(self, status: int, payload) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def allowed(self) -> bool:
                outer.requests.append((self.command, self.path, dict(self.headers)))
                if key is None:
                    return True
                given = self.headers.get(key_header)
                wanted = f"Bearer {key}" if key_header == "Authorization" else key
                if given == wanted:
                    return True
                status = 403 if given else 401
                self.send(status, {"error": {"message": f"Incorrect API key provided: {given}"}})
                return False

            def do_GET(self) -> None:
                if not self.allowed():
                    return
                if api == "ollama" and self.path == "/api/tags":
                    return self.send(200, {"models": [{"name": model}]})
                prefix = path.rsplit("/", 1)[0]
                if listing and self.path == f"{prefix}/models":
                    return self.send(200, {"object": "list", "data": [{"id": model}]})
                if listing and self.path == f"{prefix}/health":
                    return self.send(200, {})
                self.send(404, {"error": "not found"})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                outer.bodies.append(body)
                if not self.allowed():
                    return
                if self.path != path:
                    return self.send(404, {"error": "not found"})
                encoding = body.get("encoding_format", "float")
                if encoding != "float" and not (base64 and encoding == "base64"):
                    return self.send(400, {"error": {"message": "unknown encoding_format"}})
                texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
                if any(t in refuse for t in texts):
                    return self.send(400, {"error": {"message": "'$.input' is invalid."}})
                vectors = [vector_for(t, dim) for t in texts]
                if api == "ollama":
                    return self.send(200, {"model": body.get("model"), "embeddings": vectors})
                if encoding == "base64":  # float32 little-endian bytes, as OpenAI sends them
                    vectors = [
                        b64encode(np.asarray(v, dtype="<f4").tobytes()).decode() for v in vectors
                    ]
                data = [
                    {"object": "embedding", "index": i, "embedding": v}
                    for i, v in enumerate(vectors)
                ]
                self.send(200, {"object": "list", "model": model, "data": data})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{path}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


if __name__ == "__main__":  # a server in a process of its own, for tests that kill it
    server = EmbedServer()
    print(server.url, flush=True)
    server.thread.join()
