"""What the benchmarks COPY: chunks of random unit vectors (every 1000th a zero vector, for
the gate to flag), in COPY's binary format (what serious writers send: pgai's worker,
psycopg 3 with pgvector-python, our loader) and in its text format."""

import io
import struct

import numpy as np

_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
# chunk_id, doc_id, content, embedding
COLUMNS = "chunk_id, doc_id, content, embedding"


def vectors(start: int, n: int, dim: int, rng) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x[(np.arange(start, start + n) % 1000) == 999] = 0.0
    return x


def binary(start: int, x: np.ndarray, doc_id=lambda k: "d1") -> bytes:
    """Binary COPY data of the chunks start.. with the vectors x."""
    n, dim = x.shape
    big = x.astype(">f4")
    vector = struct.pack("!i", 4 + 4 * dim) + struct.pack("!hh", dim, 0)
    out = [_HEADER]
    for i in range(n):
        k = start + i
        fields = [f"c{k:09d}".encode(), doc_id(k).encode(), f"chunk {k}".encode()]
        out.append(struct.pack("!h", 4))
        out += [struct.pack("!i", len(f)) + f for f in fields]
        out.append(vector + big[i].tobytes())
    out.append(struct.pack("!h", -1))
    return b"".join(out)


def text(start: int, x: np.ndarray, doc_id=lambda k: "d1") -> bytes:
    """Text COPY data of the same chunks (6 significant digits a component)."""
    out = io.StringIO()
    for i, row in enumerate(x):
        k = start + i
        vector = "[" + ",".join(f"{v:.6g}" for v in row.tolist()) + "]"
        out.write(f"c{k:09d}\t{doc_id(k)}\tchunk {k}\t{vector}\n")
    return out.getvalue().encode()


def binary_rows(start: int, x: np.ndarray, kind: str = "vector") -> bytes:
    """Binary COPY data of (id, content, embedding) rows, the shape of a framework's table,
    with the vectors x as pgvector's vector or halfvec (float16)."""
    n, dim = x.shape
    width = 2 if kind == "halfvec" else 4
    big = x.astype(">f2" if kind == "halfvec" else ">f4")
    vector = struct.pack("!i", 4 + width * dim) + struct.pack("!hh", dim, 0)
    out = [_HEADER]
    for i in range(n):
        k = start + i
        fields = [f"r{k:09d}".encode(), f"text {k}".encode()]
        out.append(struct.pack("!h", 3))
        out += [struct.pack("!i", len(f)) + f for f in fields]
        out.append(vector + big[i].tobytes())
    out.append(struct.pack("!h", -1))
    return b"".join(out)
