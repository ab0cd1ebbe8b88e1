"""The embedding client: text-embeddings-inference (`POST /embed`) or OpenAI-compatible
(`POST /v1/embeddings`) servers, over plain HTTP keep-alive connections.

It checks `GET /health` first, caps its batch size at the server's `max_client_batch_size`
(`GET /info`), retries timeouts, 429 and 5xx with exponential backoff (honouring
Retry-After), splits a batch the server refuses as too large (413, or 422 "batch size N >
maximum allowed batch size M"), and fails clearly on a wrong number of vectors, a wrong
dimension, values that are not numbers, or a response that is not JSON.

Vectors come back as one float32 array per batch (n, d). A JSON null (a
text-embeddings-inference server normalises a zero vector to NaN and writes null) becomes
NaN, and a value beyond float4's range (1e39) becomes Inf: such vectors go to embedding_raw,
and the database's gate flags them nan_or_inf. The client judges no vector itself.
"""

import http.client
import json
import math
import re
import threading
import time
from urllib.parse import urlsplit

import numpy as np

DEFAULT_URL = "http://localhost:8001/embed"

_BATCH_LIMIT = re.compile(r"batch size (\d+) > maximum allowed batch size (\d+)")


class EmbeddingError(RuntimeError):
    """The embedding server cannot be used, or returned something unusable."""


class _Transient(Exception):
    def __init__(self, why: str, retry_after: "float | None" = None):
        super().__init__(why)
        self.retry_after = retry_after


class _TooLarge(Exception):
    def __init__(self, limit: "int | None"):
        super().__init__(limit)
        self.limit = limit


class Client:
    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        model: "str | None" = None,
        timeout: float = 60.0,
        retries: int = 5,
        backoff: float = 0.5,
        batch_size: int = 32,
    ):
        self.url = url
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise EmbeddingError(f"EMBED_API_URL {url!r} is not an http(s) URL")
        self.openai = parts.path.rstrip("/").endswith("/v1/embeddings")
        self.path = parts.path or "/embed"
        root = parts.path.rstrip("/")
        for suffix in ("/v1/embeddings", "/embed"):
            if root.endswith(suffix):
                root = root[: -len(suffix)]
                break
        self.root = root
        self.scheme, self.host, self.port = parts.scheme, parts.hostname, parts.port
        self.model = model
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.batch_size = batch_size
        self._local = threading.local()

    # --- HTTP ---------------------------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = (
                http.client.HTTPSConnection
                if self.scheme == "https"
                else http.client.HTTPConnection
            )
            conn = self._local.conn = cls(self.host, self.port, timeout=self.timeout)
        return conn

    def _request(self, method: str, path: str, body: "bytes | None" = None):
        """(status, headers, body bytes); connection errors and timeouts raise _Transient."""
        conn = self._connection()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            self._local.conn = None
            raise _Transient(f"{type(e).__name__}: {e}") from None
        if response.getheader("Connection", "").lower() == "close":
            conn.close()
            self._local.conn = None
        return response.status, response, data

    def health(self) -> None:
        """GET /health; raises EmbeddingError with what to do when the server is not there."""
        try:
            status, _, body = self._request("GET", self.root + "/health")
        except _Transient as e:
            raise EmbeddingError(
                f"the embedding server at {self.url} is not reachable ({e}); start it, or set "
                f"EMBED_API_URL (the demo's own: `embedding-gate serve`)"
            ) from None
        if status == 404 and self.openai:
            return  # OpenAI-compatible servers need not have /health
        if status != 200:
            raise EmbeddingError(
                f"the embedding server at {self.url} is not healthy: GET {self.root}/health "
                f"answered {status} {body[:200].decode('utf-8', 'replace')!r}"
            )

    def info(self) -> dict:
        """GET /info where the server has it (text-embeddings-inference), else {}; lowers
        the batch size to the server's max_client_batch_size."""
        try:
            status, _, body = self._request("GET", self.root + "/info")
            data = json.loads(body) if status == 200 else {}
        except (_Transient, ValueError):
            return {}
        limit = data.get("max_client_batch_size") if isinstance(data, dict) else None
        if isinstance(limit, int) and limit > 0:
            self.batch_size = min(self.batch_size, limit)
        return data if isinstance(data, dict) else {}

    # --- embedding ----------------------------------------------------------------------

    def probe(self) -> int:
        """Embed one short text; returns the dimension the server answers with."""
        try:
            return self._embed_with_retries(["dimension probe"], None, ["probe"]).shape[1]
        except _TooLarge:
            raise EmbeddingError("the embedding server refused a one-text batch") from None

    def embed(self, texts: list, dim: int, names: "list | None" = None) -> np.ndarray:
        """The vectors of the texts, in order, as an (n, dim) float32 array; splits the batch
        when the server refuses its size. `names` (chunk ids) name the inputs in errors."""
        names = names or [f"input {i}" for i in range(len(texts))]
        try:
            return self._embed_with_retries(texts, dim, names)
        except _TooLarge as e:
            if len(texts) == 1:
                raise EmbeddingError(
                    f"the embedding server refused chunk {names[0]} alone as too large"
                ) from None
            size = e.limit if e.limit and e.limit < len(texts) else (len(texts) + 1) // 2
            self.batch_size = min(self.batch_size, size)
            parts = [
                self.embed(texts[start : start + size], dim, names[start : start + size])
                for start in range(0, len(texts), size)
            ]
            return np.concatenate(parts)

    def _embed_with_retries(self, texts, dim, names) -> np.ndarray:
        if self.openai:
            payload = {"input": texts} | ({"model": self.model} if self.model else {})
        else:
            payload = {"inputs": texts}
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                status, response, data = self._request("POST", self.path, body)
                if status == 200:
                    return parse_vectors(data, names, dim, openai=self.openai)
                self._refuse(status, response, data, names)
            except _Transient as e:
                if attempt == self.retries:
                    raise EmbeddingError(
                        f"the embedding server failed {self.retries + 1} times for chunks "
                        f"{names[0]}..{names[-1]}: {e}"
                    ) from None
                time.sleep(e.retry_after if e.retry_after is not None else delay)
                delay = min(delay * 2, 30.0)
        raise AssertionError("unreachable")

    def _refuse(self, status: int, response, data: bytes, names) -> None:
        text = data[:300].decode("utf-8", "replace")
        if status == 413:
            raise _TooLarge(None)
        if status == 422 and (m := _BATCH_LIMIT.search(text)):
            raise _TooLarge(int(m.group(2)))
        if status == 429 or status >= 500:
            retry_after = response.getheader("Retry-After")
            try:
                wait = min(float(retry_after), 60.0) if retry_after else None
            except ValueError:
                wait = None
            raise _Transient(f"HTTP {status} {text!r}", wait)
        raise EmbeddingError(
            f"the embedding server refused chunks {names[0]}..{names[-1]}: HTTP {status} {text!r}"
        )


def parse_vectors(data: bytes, names: list, dim: "int | None", *, openai: bool) -> np.ndarray:
    """The vectors of an embedding server's answer to len(names) inputs, as an (n, d)
    float32 array: text-embeddings-inference's `[[...], ...]` or OpenAI's
    `{"data": [{"index", "embedding"}, ...]}`. dim: the dimension the database expects
    (None: any, the same for all). JSON null becomes NaN, a value beyond float4 Inf. Any
    other answer raises EmbeddingError naming the chunks, never another exception."""
    n = len(names)
    span = f"chunks {names[0]}..{names[-1]}" if n else "no chunks"
    try:
        parsed = json.loads(data)
    except (ValueError, RecursionError):
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
        raise EmbeddingError(
            f"the embedding server's answer for {span} is not JSON: {text[:200]!r}"
        ) from None
    if openai:
        items = parsed.get("data") if isinstance(parsed, dict) else None
        if not isinstance(items, list) or not all(isinstance(d, dict) for d in items):
            raise EmbeddingError(
                f"the embedding server's answer for {span} has no 'data' list of objects:"
                f" {_shown(parsed)}"
            )
        order = [d.get("index", i) for i, d in enumerate(items)]
        if [type(k) for k in order] != [int] * len(order) or sorted(order) != list(
            range(len(items))
        ):
            raise EmbeddingError(
                f"the embedding server's answer for {span} has the indexes {_shown(order)}"
            )
        vectors: list = [None] * len(items)
        for i, d in zip(order, items, strict=True):
            vectors[i] = d.get("embedding")
    else:
        vectors = parsed
    if not isinstance(vectors, list) or len(vectors) != n:
        got = len(vectors) if isinstance(vectors, list) else type(vectors).__name__
        raise EmbeddingError(f"the embedding server returned {got} vectors for {n} inputs ({span})")
    if dim is None and vectors:
        dim = len(vectors[0]) if isinstance(vectors[0], list) else 0
    out = np.empty((n, dim or 0), dtype=np.float32)
    for i, (vector, name) in enumerate(zip(vectors, names, strict=True)):
        out[i] = _vector(vector, dim or 0, name)
    return out


def _vector(vector, dim: int, name: str) -> np.ndarray:
    """One parsed vector, checked: a list of dim numbers (null: NaN)."""
    if not isinstance(vector, list):
        raise EmbeddingError(f"chunk {name}: the embedding is not a list: {_shown(vector)}")
    if len(vector) != dim or dim == 0:
        raise EmbeddingError(
            f"chunk {name}: the embedding server returned a {len(vector)}-dimension vector, "
            f"the database expects {dim} (chunks.embedding is vector({dim}))"
        )
    values = []
    for i, x in enumerate(vector):
        if x is None:
            values.append(math.nan)
        elif isinstance(x, float) or (isinstance(x, int) and not isinstance(x, bool)):
            try:
                values.append(float(x))
            except OverflowError:  # an integer beyond float range
                values.append(math.inf if x > 0 else -math.inf)
        else:
            raise EmbeddingError(
                f"chunk {name}: component {i} of the embedding is not a number: {_shown(x)}"
            )
    # beyond float4's range becomes Inf, as the database would store it
    with np.errstate(over="ignore"):
        return np.array(values, dtype=np.float32)


def _shown(value) -> str:
    """A short, printable excerpt of a value from the server."""
    try:
        text = json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError, RecursionError):
        text = repr(type(value))
    return text[:80]
