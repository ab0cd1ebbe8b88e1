"""The connection to PostgreSQL, with nothing heavier than psycopg2 imported: the CLI opens
it, and has the gate warmed up in it, while numpy and the rest of the loader are imported
and the first file is read (Opening). The connection comes from DATABASE_URL, or DB_HOST,
DB_PORT, DB_NAME, DB_USER, DB_PASSWORD."""

import functools
import io
import os
import struct
import threading
from urllib.parse import quote

import psycopg2
import psycopg2.errors

# the columns the loader writes; the gate writes the rest
COLUMNS = (
    "chunk_id",
    "doc_id",
    "chunk_index",
    "content",
    "drop",
    "metadata",
    "embedding",
    "embedding_raw",
    "embedding_model",
)
COLUMN_LIST = ", ".join(COLUMNS)
COPY = f"COPY public.chunks ({COLUMN_LIST}) FROM STDIN WITH (FORMAT binary)"
# binary COPY's header and trailer
HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
TRAILER = struct.pack("!h", -1)


def database_url(environ=os.environ) -> str:
    """A libpq URL from the environment (the same variables alembic reads)."""
    url = environ.get("DATABASE_URL")
    if url:
        return url
    user = quote(environ.get("DB_USER", "postgres"), safe="")
    password = environ.get("DB_PASSWORD")
    auth = user + (":" + quote(password, safe="") if password else "")
    host = environ.get("DB_HOST", "localhost")
    port = environ.get("DB_PORT", "5432")
    name = quote(environ.get("DB_NAME", "postgres"), safe="")
    if host.startswith("/"):  # a Unix socket directory
        return f"postgresql://{auth}@/{name}?host={quote(host, safe='')}&port={port}"
    return f"postgresql://{auth}@{host}:{port}/{name}"


def connect(url: "str | None" = None):
    """A psycopg2 connection, UTF-8 on the wire, named in pg_stat_activity."""
    return psycopg2.connect(
        url or database_url(), client_encoding="utf8", application_name="embedding-gate"
    )


def another(conn):
    """What opens a second connection to the same database as conn (an open psycopg2
    connection, or an Opening), as the same role: a callable, made in the caller's thread
    (conn is not touched by the one that calls it). It connects to the Opening's URL, or
    with the parameters libpq used for conn (password included), and raises psycopg2.Error
    where it cannot (a role's CONNECTION LIMIT, say)."""
    if isinstance(conn, Opening):
        return functools.partial(connect, conn.url)
    params = conn.get_dsn_parameters()  # without the password
    password = conn.info.password
    if password:
        params["password"] = password
    params.pop("client_encoding", None)
    params.pop("application_name", None)
    return functools.partial(
        psycopg2.connect, **params, client_encoding="utf8", application_name="embedding-gate"
    )


def embedding_dim(conn) -> int:
    """The dimension of chunks.embedding, as the deployment chose it."""
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT embedding_gate.embedding_dim()")
            dim = cur.fetchone()[0]
    except psycopg2.errors.UndefinedFunction:
        conn.rollback()
        raise RuntimeError(
            "the embedding gate is not deployed: run `alembic upgrade head`"
        ) from None
    conn.rollback()
    return dim


def warm_up(conn) -> None:
    """Have the gate's checks loaded in this session's server process before the first rows
    come: an empty COPY into chunks, rolled back, fires the gate's statement trigger once
    (in a new session, PL/Python imports numpy and the gate's package there: 90-140 ms,
    which the first COPY of a load paid). The loader calls it while the corpus is read, so
    the two overlap. A failure is left for the load's own COPY to report."""
    try:
        with conn.cursor() as cur:
            cur.copy_expert(COPY, io.BytesIO(HEADER + TRAILER))
    except psycopg2.Error:
        pass
    conn.rollback()


class Opening:
    """A connection opened, asked for the embedding's dimension and warmed up (warm_up) in a
    thread of its own, from the moment it is made: psycopg2 lets go of the GIL while it
    waits on the server, so the caller goes on importing and reading meanwhile. result()
    gives the connection, or raises what connecting raised; dimension() the dimension, or
    raises what asking for it raised."""

    def __init__(self, url: "str | None" = None):
        self.url = url
        self.conn = None
        self.dim: int | None = None
        self.error: BaseException | None = None
        self.dim_error: BaseException | None = None
        self.thread = threading.Thread(
            target=self._open, args=(url,), name="connection-opening", daemon=True
        )
        self.thread.start()

    def _open(self, url) -> None:
        try:
            self.conn = connect(url)
        except BaseException as e:  # noqa: B036 (raised by result() in the caller's thread)
            self.error = e
            return
        try:
            self.dim = embedding_dim(self.conn)
        except BaseException as e:  # noqa: B036 (raised by dimension())
            self.dim_error = e
            return
        warm_up(self.conn)

    def result(self):
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.conn

    def dimension(self) -> int:
        self.result()
        if self.dim_error is not None:
            raise self.dim_error
        return self.dim

    def close(self) -> None:
        """Close the connection once it is open (nothing when opening failed)."""
        self.thread.join()
        if self.conn is not None:
            self.conn.close()
