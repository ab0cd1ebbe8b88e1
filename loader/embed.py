"""The embedding client: text-embeddings-inference (`POST /embed`), OpenAI-compatible servers
(`POST .../embeddings`: OpenAI, Azure OpenAI, infinity-emb, vLLM, Together, Mistral, ...)
and Ollama (`POST /api/embed`), over plain HTTP keep-alive connections.

The URL's path says which API a server speaks (`--api` overrides it). An API key goes in an
`Authorization: Bearer` header, other headers (Azure's `api-key`) as given; neither ever
appears in a message. It checks the server first with what that kind of server has (TEI:
/health and /info; OpenAI-compatible: /health and /models under the same prefix, or one
small request; Ollama: /api/tags), learns the model when the server names exactly one, caps
its batch size at TEI's `max_client_batch_size`, retries timeouts, 429 and 5xx with
exponential backoff (honouring Retry-After), splits a batch the server refuses as too large
(413, or 422 "batch size N > maximum allowed batch size M"), and fails clearly on a refused
key, a wrong number of vectors, a wrong dimension, values that are not numbers, or a
response that is not JSON.

Vectors come back as one float32 array per batch (n, d). A JSON null (a
text-embeddings-inference server normalises a zero vector to NaN and writes null) becomes
NaN, and a value beyond float4's range (1e39) becomes Inf: such vectors go to embedding_raw,
and the database's gate flags them nan_or_inf. The client judges no vector itself.

Answers are parsed by orjson (a JSON parser in Rust: about 7x json.loads on 768 numbers a
vector) and turned into one array a batch; anything orjson refuses that Python's json reads
(NaN, numbers beyond a double, a byte order mark, UTF-16) goes through json.loads, as before.
"""

import array
import base64
import binascii
import http.client
import json
import math
import re
import sys
import threading
import time
from urllib.parse import urlsplit

import numpy as np
import orjson

from loader import DEFAULT_EMBED_URL as DEFAULT_URL

# the APIs, and the end of the path that names each (the longest first)
APIS = {"ollama": "/api/embed", "openai": "/embeddings", "tei": "/embed"}

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


class Refused(EmbeddingError):
    """The server refused the request itself (HTTP 4xx): sending it again will not help."""


def guess_api(path: str) -> "str | None":
    """The API a URL path names: "ollama", "openai" or "tei"; None when it names none."""
    path = path.rstrip("/")
    return next((api for api, end in APIS.items() if path.endswith(end)), None)


def parse_headers(lines) -> dict:
    """`Name: value` lines (the --header options, EMBED_API_HEADERS's lines) as a dict."""
    headers = {}
    for line in lines:
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip() or any(c in name for c in " \t\r\n"):
            shown = name.strip()[:40] or "(empty)"
            raise EmbeddingError(f"a header must read 'Name: value' (the one named {shown!r})")
        headers[name.strip()] = value.strip()
    return headers


class Client:
    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        api: "str | None" = None,
        model: "str | None" = None,
        api_key: "str | None" = None,
        headers: "dict | None" = None,
        timeout: float = 60.0,
        retries: int = 5,
        backoff: float = 0.5,
        batch_size: int = 64,
    ):
        self.url = url
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise EmbeddingError(f"EMBED_API_URL {url!r} is not an http(s) URL")
        path = parts.path or "/embed"
        self.api = api or guess_api(path)
        if self.api not in APIS:
            raise EmbeddingError(
                f"cannot tell which API {url} speaks: its path ends in none of /embed"
                " (text-embeddings-inference), /embeddings (OpenAI-compatible), /api/embed"
                " (Ollama); pass --api tei|openai|ollama"
            )
        self.target = path + (f"?{parts.query}" if parts.query else "")
        # what /health, /info, /models are under: the path without its API's own end
        end = APIS[self.api]
        self.prefix = path.rstrip("/")[: -len(end)] if guess_api(path) == self.api else ""
        self.query = f"?{parts.query}" if parts.query else ""
        self.scheme, self.host, self.port = parts.scheme, parts.hostname, parts.port
        self.model = model
        self.headers = dict(headers or {})
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        # what must never be shown: the key and every header value given
        self._secrets = sorted({v for v in [api_key, *self.headers.values()] if v}, key=len)[::-1]
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.batch_size = batch_size
        self.base64 = self.api == "openai"
        self._local = threading.local()

    def scrub(self, text: str) -> str:
        """text with the API key and header values replaced by ***."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
            if secret.startswith("Bearer "):
                text = text.replace(secret[len("Bearer ") :], "***")
        return text

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

    def _request(self, method: str, target: str, body: "bytes | None" = None):
        """(status, response, body bytes); connection errors and timeouts raise _Transient."""
        conn = self._connection()
        headers = dict(self.headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, target, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            self._local.conn = None
            raise _Transient(self.scrub(f"{type(e).__name__}: {e}")) from None
        if response.getheader("Connection", "").lower() == "close":
            conn.close()
            self._local.conn = None
        return response.status, response, data

    def _get(self, path: str, required: bool = False) -> "tuple[int, object]":
        """GET prefix + path: (status, parsed JSON or None); the server must be reachable,
        and answer 200 when `required`."""
        try:
            status, _, body = self._request("GET", self.prefix + path + self.query)
        except _Transient as e:
            raise EmbeddingError(
                f"the embedding server at {self.scrub(self.url)} is not reachable ({e});"
                " start it, or set EMBED_API_URL (the demo's own: `embedding-gate serve`)"
            ) from None
        self._refuse_key(status, f"GET {self.prefix}{path}")
        if required and status != 200:
            raise EmbeddingError(
                f"the embedding server at {self.scrub(self.url)} is not healthy:"
                f" GET {self.prefix}{path} answered {status}"
            )
        try:
            return status, json.loads(body) if status == 200 else None
        except ValueError:
            return status, None

    def _refuse_key(self, status: int, what: str) -> None:
        if status not in (401, 403):
            return
        if self._secrets:
            raise Refused(
                f"the embedding server refused the API key ({what} answered HTTP {status});"
                " check EMBED_API_KEY (or --api-key) and --header"
            )
        raise Refused(
            f"the embedding server wants an API key ({what} answered HTTP {status}):"
            " set EMBED_API_KEY (or --api-key), or the header it expects with --header"
        )

    def check(self) -> dict:
        """Check that the server is there and answers, with what that kind of server has,
        and learn what it says of itself: {"model": the model when it names exactly one,
        "max_batch": its batch limit}. Sets the model when none was given, and lowers the
        batch size to the limit."""
        found: dict = {}
        if self.api == "tei":
            self._get("/health", required=True)
            _, info = self._get("/info")
            if isinstance(info, dict):
                found["model"] = info.get("model_id")
                found["max_batch"] = info.get("max_client_batch_size")
        elif self.api == "ollama":
            _, tags = self._get("/api/tags", required=True)
            found["model"] = _only(tags, "models", "name")
        else:
            health, _ = self._get("/health")
            status, models = self._get("/models")
            found["model"] = _only(models, "data", "id")
            if health != 200 and status != 200:
                self.probe()  # neither: one small request tells
        if not isinstance(found.get("model"), str):
            found["model"] = None
        if self.model is None:
            self.model = found["model"]
        limit = found.get("max_batch")
        if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
            self.batch_size = min(self.batch_size, limit)
        if self.api == "ollama" and not self.model:
            raise EmbeddingError(
                "Ollama needs a model name: pass --model (GET /api/tags lists the models)"
            )
        return found

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

    def _payload(self, texts: list, base64: bool) -> dict:
        if self.api == "tei":
            return {"inputs": texts}
        payload = {"input": texts} | ({"model": self.model} if self.model else {})
        # OpenAI-compatible servers send each vector as base64 of its float32 bytes: a
        # quarter of the bytes of JSON numbers, and no float to parse per component
        return payload | ({"encoding_format": "base64"} if base64 else {})

    def _embed_with_retries(self, texts, dim, names) -> np.ndarray:
        if not self.base64:
            return self._send(texts, dim, names, False)
        try:
            return self._send(texts, dim, names, True)
        except Refused:
            # a server that knows no encoding_format: once more without it, and from then on
            # (refused again: the texts were the cause, and base64 stays on)
            vectors = self._send(texts, dim, names, False)
            self.base64 = False
            return vectors

    def _send(self, texts, dim, names, base64: bool) -> np.ndarray:
        body = _dumps(self._payload(texts, base64))
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                status, response, data = self._request("POST", self.target, body)
                if status == 200:
                    return parse_vectors(data, names, dim, api=self.api)
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
        text = self.scrub(data[:300].decode("utf-8", "replace"))
        self._refuse_key(status, f"POST {self.target.split('?')[0]}")
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
        raise Refused(
            f"the embedding server refused chunks {names[0]}..{names[-1]}: HTTP {status} {text!r}"
        )


def _only(listing, key: str, field: str) -> "str | None":
    """The one model a listing names ({key: [{field: name}, ...]}), or None."""
    items = listing.get(key) if isinstance(listing, dict) else None
    if isinstance(items, list) and len(items) == 1 and isinstance(items[0], dict):
        name = items[0].get(field)
        return name if isinstance(name, str) and name else None
    return None


def _dumps(payload) -> bytes:
    """A request's body: orjson's UTF-8, or json's where orjson refuses (an integer beyond 64
    bits, a lone surrogate: the corpus reader lets neither through)."""
    try:
        return orjson.dumps(payload)
    except TypeError:
        return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def _loads(data):
    """JSON as Python's json reads it, by orjson where it can."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


# what only a string, null, true or false can put in an answer (no number holds these)
_NOT_NUMBERS = (b'"', b"n", b"t", b"f")


def _numbers(parsed, data, n: int, dim: "int | None") -> "np.ndarray | None":
    """A list of n lists of dim numbers as one float32 array, in a single conversion; None
    for anything else (left to the checks that name what is wrong)."""
    if not isinstance(parsed, list) or len(parsed) != n or not n:
        return None
    if not isinstance(data, bytes) or any(c in data for c in _NOT_NUMBERS):
        return None  # a null, a string, true or false: the one-by-one path
    width = dim if dim is not None else len(parsed[0]) if type(parsed[0]) is list else 0
    if not width or any(type(row) is not list or len(row) != width for row in parsed):
        return None
    # array.array's fromlist casts each number to a C float as numpy does (beyond float4's
    # range: Inf), and in 7.8 µs a 768-d vector where np.array(parsed, float32) took 11.9,
    # finding the shape first; anything but numbers (a list in a list) raises, and an
    # integer beyond a double's range overflows: the one-by-one path
    floats = array.array("f")
    add = floats.fromlist
    try:
        for row in parsed:
            add(row)
    except (TypeError, OverflowError):
        return None
    return np.frombuffer(floats, dtype=np.float32).reshape(n, width)


if sys.version_info >= (3, 11):

    def _b64decode(text: str) -> bytes:
        """base64.b64decode(text, validate=True): the same bytes and the same refusals
        (binascii.Error, a ValueError), but checked by binascii in C where b64decode runs a
        regular expression over the text first (an answer of 64 768-d vectors: 0.36 ms ->
        0.25 ms)."""
        return binascii.a2b_base64(text, strict_mode=True)

else:  # strict_mode is new in 3.11

    def _b64decode(text: str) -> bytes:
        return base64.b64decode(text, validate=True)


def _base64s(vectors: list, dim: "int | None") -> "np.ndarray | None":
    """n base64 strings of the same length, each dim float32s, decoded at once (as one
    string: base64 without padding is whole 4-character blocks); None for anything else."""
    if not vectors or not all(type(v) is str for v in vectors):
        return None
    size = len(vectors[0])
    if not size or any(len(v) != size for v in vectors):
        return None
    try:
        raw = _b64decode("".join(vectors))
    except ValueError:
        return None
    per = 4 * dim if dim else len(raw) // len(vectors)
    if not per or per % 4 or len(raw) != per * len(vectors):
        return None
    return np.frombuffer(raw, dtype="<f4").reshape(len(vectors), per // 4)


def parse_vectors(data: bytes, names: list, dim: "int | None", *, api: str) -> np.ndarray:
    """The vectors of an embedding server's answer to len(names) inputs, as an (n, d)
    float32 array: text-embeddings-inference's `[[...], ...]`, OpenAI's
    `{"data": [{"index", "embedding"}, ...]}` or Ollama's `{"embeddings": [[...], ...]}`.
    dim: the dimension the database expects
    (None: any, the same for all). JSON null becomes NaN, a value beyond float4 Inf. Any
    other answer raises EmbeddingError naming the chunks, never another exception."""
    n = len(names)
    span = f"chunks {names[0]}..{names[-1]}" if n else "no chunks"
    try:
        parsed = _loads(data)
    except (ValueError, RecursionError):
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
        raise EmbeddingError(
            f"the embedding server's answer for {span} is not JSON: {text[:200]!r}"
        ) from None
    if api == "ollama":
        vectors = parsed.get("embeddings") if isinstance(parsed, dict) else None
    elif api == "openai":
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
        if (fast := _numbers(parsed, data, n, dim)) is not None:
            return fast
    if api != "tei" and isinstance(vectors, list) and len(vectors) == n:
        if (fast := _base64s(vectors, dim)) is not None:
            return fast
    if not isinstance(vectors, list) or len(vectors) != n:
        got = len(vectors) if isinstance(vectors, list) else type(vectors).__name__
        raise EmbeddingError(f"the embedding server returned {got} vectors for {n} inputs ({span})")
    if dim is None and vectors:
        first = vectors[0]
        dim = len(first) if isinstance(first, list) else 0
        if isinstance(first, str):
            dim = len(_from_base64(first, names[0]))
    out = np.empty((n, dim or 0), dtype=np.float32)
    for i, (vector, name) in enumerate(zip(vectors, names, strict=True)):
        out[i] = _vector(vector, dim or 0, name)
    return out


def _from_base64(text: str, name: str) -> np.ndarray:
    """A vector sent as base64 of its little-endian float32 bytes (OpenAI's base64)."""
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raise EmbeddingError(f"chunk {name}: the embedding is not base64: {_shown(text)}") from None
    if len(raw) % 4:
        raise EmbeddingError(
            f"chunk {name}: the embedding's base64 holds {len(raw)} bytes, not float32s"
        )
    return np.frombuffer(raw, dtype="<f4")


_PLAIN = {float, int}


def _vector(vector, dim: int, name: str) -> np.ndarray:
    """One parsed vector, checked: a list of dim numbers (null: NaN), or base64 of dim
    float32s."""
    if isinstance(vector, str):
        values = _from_base64(vector, name)
        if len(values) != dim or dim == 0:
            raise EmbeddingError(
                f"chunk {name}: the embedding server returned a {len(values)}-dimension vector, "
                f"the database expects {dim} (chunks.embedding is vector({dim}))"
            )
        return values
    if not isinstance(vector, list):
        raise EmbeddingError(f"chunk {name}: the embedding is not a list: {_shown(vector)}")
    if len(vector) != dim or dim == 0:
        raise EmbeddingError(
            f"chunk {name}: the embedding server returned a {len(vector)}-dimension vector, "
            f"the database expects {dim} (chunks.embedding is vector({dim}))"
        )
    if set(map(type, vector)) <= _PLAIN:  # numbers alone (not bool): one conversion
        try:
            with np.errstate(over="ignore"):
                return np.array(vector, dtype=np.float32)
        except OverflowError:  # an integer beyond float range: one by one
            pass
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
