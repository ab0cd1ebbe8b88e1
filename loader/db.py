"""The database connection: DATABASE_URL, or DB_HOST, DB_PORT, DB_NAME, DB_USER, DB_PASSWORD."""

import os
from urllib.parse import quote

import psycopg2


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


def embedding_dim(conn) -> int:
    """The dimension of chunks.embedding, as the deployment chose it."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT atttypmod FROM pg_catalog.pg_attribute"
            " WHERE attrelid = 'public.chunks'::regclass AND attname = 'embedding'"
        )
        row = cur.fetchone()
    conn.rollback()
    if not row:
        raise RuntimeError("no table chunks with an embedding column: run `alembic upgrade head`")
    return row[0]
