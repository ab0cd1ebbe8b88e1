"""The process that parses embedding servers' answers of JSON numbers for a load
(load.ParseProcess): `python -m loader.parse_worker`, reading requests on stdin and writing
answers on stdout until stdin ends (the loader ended, or died).

A request: "!IIi" (the answer's length, the metadata's length, the dimension or -1), the
metadata (JSON: {"api", "names"}), the answer's bytes. An answer: b"V" and "!II" (rows,
columns) then the float32 array's bytes; or b"E" and "!I" then the EmbeddingError's message
(UTF-8). The process writes b"R" once numpy and the parser are imported."""

import struct
import sys

REQUEST = struct.Struct("!IIi")
VECTORS = struct.Struct("!II")
ERROR = struct.Struct("!I")


def main() -> int:
    import numpy as np
    import orjson

    from loader.embed import EmbeddingError, parse_vectors

    read, out = sys.stdin.buffer.read, sys.stdout.buffer
    out.write(b"R")
    out.flush()
    while True:
        head = read(REQUEST.size)
        if len(head) < REQUEST.size:
            return 0
        size, meta_size, dim = REQUEST.unpack(head)
        meta = orjson.loads(read(meta_size))
        data = read(size)
        try:
            vectors = parse_vectors(data, meta["names"], None if dim < 0 else dim, api=meta["api"])
        except EmbeddingError as e:
            message = str(e).encode("utf-8", "replace")
            out.write(b"E" + ERROR.pack(len(message)) + message)
        else:
            vectors = np.ascontiguousarray(vectors, dtype=np.float32)
            out.write(b"V" + VECTORS.pack(*vectors.shape) + vectors.tobytes())
        out.flush()


if __name__ == "__main__":
    sys.exit(main())
