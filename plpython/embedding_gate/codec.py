"""pgvector's values as numpy arrays. The gate reads vectors as their stored bytes
(embedding_gate.vector_bytes(): int16 dim, int16 unused, then d float4 in the server's byte
order, which is this process's: PL/Python runs inside the server)."""

import numpy as np


def from_vector_bytes(blobs: list) -> np.ndarray:
    """An (n, d) float32 array from vector_bytes() values, one bytes object per vector, all
    of one dimension."""
    if not blobs:
        return np.empty((0, 0), dtype=np.float32)
    return from_vector_blob(b"".join(blobs), len(blobs))


def from_vector_blob(blob: bytes, n: int) -> np.ndarray:
    """An (n, d) float32 view of n vector_bytes() values concatenated (what
    string_agg(vector_bytes(v), '') returns), no copy."""
    flat = np.frombuffer(blob, dtype=np.float32)
    # the 4-byte header is one float4-sized column: reshape, then drop it
    return flat.reshape(n, len(flat) // n)[:, 1:]


def from_vector_text(text: str) -> np.ndarray:
    """A float32 vector from pgvector's text form, '[1,2,3]' (what a row trigger's TD holds)."""
    return np.array(text.strip()[1:-1].split(","), dtype=np.float32)


def from_halfvec_bytes(blobs: list) -> np.ndarray:
    """An (n, d) float16 array from halfvec_bytes() values (int16 dim, int16 unused, then d
    float16 in the server's byte order), all of one dimension."""
    if not blobs:
        return np.empty((0, 0), dtype=np.float16)
    flat = np.frombuffer(b"".join(blobs), dtype=np.float16)
    # the 4-byte header is two float16-sized columns
    return flat.reshape(len(blobs), len(flat) // len(blobs))[:, 2:]
