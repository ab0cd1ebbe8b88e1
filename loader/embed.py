"""The embedding client: text-embeddings-inference (`POST /embed`) or OpenAI-compatible
(`POST /v1/embeddings`) servers, over plain HTTP keep-alive connections.

It checks `GET /health` first, caps its batch size at the server's `max_client_batch_size`
(`GET /info`), retries timeouts, 429 and 5xx with exponential backoff (honouring
Retry-After), splits a batch the server refuses as too large (413, or 422 "batch size N >
maximum allowed batch size M"), and fails clearly on a wrong number of vectors, a wrong
dimension, values that are not numbers, or a response that is not JSON.

Vectors come back as pgvector text ('[0.1,0.2,...]') without parsing each float: the
server's JSON numbers are already valid pgvector input. A vector with a JSON null (a
text-embeddings-inference server normalises a zero vector to NaN and writes null) comes
back as a list of floats with NaN instead, for embedding_raw: the database gate flags it.
"""

import http.client
import json
import math
import re
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_URL = "http://localhost:8001/embed"

_BATCH_LIMIT = re.compile(r"batch size (\d+) > maximum allowed batch size (\d+)")
# the characters of a vector of JSON numbers: anything else means a value that is not one
_NUMBERS = re.compile(r"[-+0-9.eE,\s]*")


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


@dataclass
class Embedded:
    """One vector: `text` (pgvector input) when every value is a number, else `raw` (floats,
    NaN where the server sent null)."""

    text: "str | None" = None
    raw: "list | None" = None


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
            return len(self._embed_with_retries(["dimension probe"], None, ["probe"])[0].raw)
        except _TooLarge:
            raise EmbeddingError("the embedding server refused a one-text batch") from None

    def embed(self, texts: list, dim: int, names: "list | None" = None) -> list:
        """One Embedded per text, in order; splits the batch when the server refuses its size.
        `names` (chunk ids) name the inputs in errors."""
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
            out = []
            for start in range(0, len(texts), size):
                out += self.embed(texts[start : start + size], dim, names[start : start + size])
            return out

    def _embed_with_retries(self, texts, dim, names) -> list:
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
                    return self._vectors(data, len(texts), dim, names)
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

    def _vectors(self, data: bytes, n: int, dim: "int | None", names) -> list:
        if not self.openai and dim is not None:
            fast = _split_tei(data)
            if fast is not None and len(fast) == n:
                out = []
                for name, inner in zip(names, fast, strict=True):
                    if _NUMBERS.fullmatch(inner) and inner.count(",") + 1 == dim:
                        out.append(Embedded(text="[" + inner + "]"))
                    else:
                        out.append(_one(_loads("[" + inner + "]", names), dim, name))
                return out
        parsed = _loads(data, names)
        if self.openai:
            items = parsed.get("data") if isinstance(parsed, dict) else None
            if not isinstance(items, list):
                raise EmbeddingError(
                    f"the embedding server's answer has no 'data' list: {str(parsed)[:200]}"
                )
            items = sorted(items, key=lambda d: d.get("index", 0) if isinstance(d, dict) else 0)
            vectors = [d.get("embedding") if isinstance(d, dict) else d for d in items]
        else:
            vectors = parsed
        if not isinstance(vectors, list) or len(vectors) != n:
            got = len(vectors) if isinstance(vectors, list) else type(vectors).__name__
            raise EmbeddingError(
                f"the embedding server returned {got} vectors for {n} inputs "
                f"(chunks {names[0]}..{names[-1]})"
            )
        if dim is None:
            return [Embedded(raw=v if isinstance(v, list) else []) for v in vectors]
        return [_one(v, dim, name) for v, name in zip(vectors, names, strict=True)]


def _loads(data, names):
    try:
        return json.loads(data)
    except ValueError:
        text = data if isinstance(data, str) else data.decode("utf-8", "replace")
        raise EmbeddingError(
            f"the embedding server's answer for chunks {names[0]}..{names[-1]} is not JSON: "
            f"{text[:200]!r}"
        ) from None


def parse_text(text: str, dim: int, name: str) -> Embedded:
    """Check a pgvector text the fast path let through, value by value (float4 range)."""
    return _one(json.loads(text), dim, name)


def _split_tei(data: bytes) -> "list | None":
    """The inner texts of a compact '[[...],[...]]' answer, or None when it has another shape."""
    text = data.decode("utf-8", "replace").strip()
    if not (text.startswith("[[") and text.endswith("]]")):
        return None
    return re.split(r"\]\s*,\s*\[", text[2:-2])


def _one(vector, dim: int, name: str) -> Embedded:
    """A parsed vector, checked: a list of dim numbers (null: NaN)."""
    if not isinstance(vector, list):
        raise EmbeddingError(f"chunk {name}: the embedding is not a list: {str(vector)[:80]}")
    if len(vector) != dim:
        raise EmbeddingError(
            f"chunk {name}: the embedding server returned a {len(vector)}-dimension vector, "
            f"the database expects {dim} (chunks.embedding is vector({dim}))"
        )
    values = []
    for i, x in enumerate(vector):
        if x is None:
            values.append(math.nan)
        elif isinstance(x, (int, float)) and not isinstance(x, bool):
            values.append(float(x))
        else:
            raise EmbeddingError(
                f"chunk {name}: component {i} of the embedding is not a number:"
                f" {json.dumps(x)[:40]}"
            )
    # float4 overflow becomes Inf in the database: keep such vectors raw too
    if all(math.isfinite(x) and abs(x) < 3.4e38 for x in values):
        return Embedded(text="[" + ",".join(map(repr, values)) + "]")
    return Embedded(raw=values)
