"""Helpers shared by the tests, the one place for them: driving alembic, writing rows,
reading the catalog, running the loader as a user does."""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import numpy as np
import psycopg
from alembic import command
from alembic.config import Config

try:
    from pgvector import Vector
except ImportError:  # pgvector-python before 0.4 (langchain-postgres pins it)
    from pgvector.utils import Vector

from loader import corpus, load
from loader.db import connect
from loader.embed import Client

ROOT = Path(__file__).resolve().parent.parent


def _pg_bindir() -> Path:
    """PG_BINDIR, else the newest major installed under /usr/lib/postgresql (Debian's
    layout: 15 on Debian 12, 17 on Debian 13) that has pgvector, else pg_config's."""
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])
    majors = [
        p.parent
        for p in Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")
        if p.parent.parent.name.isdigit()
    ]
    if majors:
        return max(
            majors,
            key=lambda bindir: (
                Path(
                    f"/usr/share/postgresql/{bindir.parent.name}/extension/vector.control"
                ).exists(),
                int(bindir.parent.name),
            ),
        )
    pg_config = shutil.which("pg_config")
    if pg_config:
        return Path(subprocess.check_output([pg_config, "--bindir"], text=True).strip())
    return Path("/usr/lib/postgresql/bin")


PG_BINDIR = _pg_bindir()
PG_CTL = str(PG_BINDIR / "pg_ctl") if (PG_BINDIR / "pg_ctl").exists() else shutil.which("pg_ctl")


# GATE_ENGINE=sql runs the tests against the SQL engine (issue 25), deployed as on a managed
# service: a superuser creates `vector`, and a database owner with CREATEROLE who is not a
# superuser runs `alembic upgrade head` (its engine choice, auto, finds it cannot create
# plpython3u). `make test-sql-engine` runs the contract tests so.
ENGINE = os.environ.get("GATE_ENGINE", "plpython")
MANAGED_OWNER = "gate_managed_owner"


def prepare_managed(url: str, owner: str = MANAGED_OWNER, read_all: bool = True) -> str:
    """As a managed service's provider leaves a database (the superuser at `url`): owned by
    `owner` (CREATEROLE, not a superuser), with `vector` created. read_all: the owner also
    reads every table (pg_read_all_data), as docs/deploy.md says an admin lets the gate's
    owner read the tables it attaches (the tests' tables are created by postgres and by roles
    of their own); it never bypasses row-level security. Returns the URL of that owner on the
    same database, the role that deploys the gate there."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f"""DO $$ BEGIN
                IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{owner}') THEN
                    CREATE ROLE {owner} LOGIN CREATEROLE NOSUPERUSER;
                END IF;
            END $$"""
        )
        if read_all:
            conn.execute(f"GRANT pg_read_all_data TO {owner}")
        conn.execute(f'ALTER DATABASE "{info["dbname"]}" OWNER TO {owner}')
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    return url_for(info["host"], int(info["port"]), owner, info["dbname"], info.get("password"))


def as_gate_owner(conn: psycopg.Connection) -> psycopg.Connection:
    """A new connection (autocommit) to conn's database as the role that owns the gate: the
    managed owner under the SQL engine, conn's own (superuser) role otherwise."""
    i = conn.info
    user = MANAGED_OWNER if ENGINE == "sql" else i.user
    return psycopg.connect(url_for(i.host, i.port, user, i.dbname, i.password), autocommit=True)


def follow_partitions(conn: psycopg.Connection) -> list:
    """SELECT embedding_gate.follow_partitions() as conn's role: what a table's owner runs
    after partition DDL where the gate has no event triggers (the SQL engine). Where it has
    them (PL/Python, deployed by a superuser) there is nothing left to do."""
    return conn.execute("SELECT * FROM embedding_gate.follow_partitions()").fetchall()


def forget_dropped(conn: psycopg.Connection) -> None:
    """Without event triggers (the SQL engine), CALL embedding_gate.repair() as the gate's
    owner forgets attached tables that were dropped; with them it has nothing to forget."""
    if ENGINE == "sql":
        with as_gate_owner(conn) as owner:
            owner.execute("CALL embedding_gate.repair()")


def url_for(host: str, port: int, user: str, dbname: str, password: str | None = None) -> str:
    auth = quote(user) + (":" + quote(password) if password else "")
    return f"postgresql://{auth}@{host}:{port}/{dbname}"


def alembic(url: str, cmd: str, target: str, migrations: "Path | None" = None, **x: object):
    """Run `alembic -x k=v ... <cmd> <target>` against url, in process (migrations: another
    copy of the migrations folder)."""
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if migrations is not None:
        cfg.set_main_option("script_location", str(migrations))
    cfg.cmd_opts = argparse.Namespace(x=[f"{k}={v}" for k, v in x.items()])
    getattr(command, cmd)(cfg, target)


def vec(x) -> str:
    """pgvector's text form of a vector (float32, as the database stores it)."""
    return Vector(np.asarray(x, dtype=np.float32)).to_text()


def raw(x) -> str:
    """A real[] literal, NaN and Infinity included."""
    return (
        "{"
        + ",".join(str(float(v)).replace("inf", "Infinity").replace("nan", "NaN") for v in x)
        + "}"
    )


def chunk(chunk_id: str, embedding=None, embedding_raw=None, **columns) -> dict:
    """One row of chunks for write_chunks(): vectors as arrays (None: NULL), embedding_raw
    with NaN/Inf allowed; other columns by name (doc_id "d1" and content "text of <id>" by
    default)."""
    return {
        "chunk_id": chunk_id,
        "doc_id": "d1",
        "content": f"text of {chunk_id}",
        "embedding": None if embedding is None else vec(embedding),
        "embedding_raw": None if embedding_raw is None else raw(embedding_raw),
        **columns,
    }


def write_chunks(conn, rows: list, how: str = "insert") -> None:
    """Store chunk() rows (all with the same columns) in one statement: one multi-row
    INSERT, or one COPY (text format) with how="copy"."""
    columns = list(rows[0])
    names = ", ".join(columns)
    if how == "copy":
        with conn.cursor() as cur, cur.copy(f"COPY chunks ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row[c] for c in columns])
        return
    casts = {"embedding": "::vector", "embedding_raw": "::real[]", "metadata": "::jsonb"}
    one = "(" + ", ".join("%s" + casts.get(c, "") for c in columns) + ")"
    conn.execute(
        f"INSERT INTO chunks ({names}) VALUES {', '.join([one] * len(rows))}",
        [row[c] for row in rows for c in columns],
    )


KOREAN = "임베딩 품질은 데이터베이스가 지킵니다 — 한국어 본문 🙂 \t탭과\n줄바꿈, 역슬래시 \\ 도"


def write_corpus(path: Path, documents: int = 5, chunks: int = 8, extra=None) -> Path:
    """A corpus file of `documents` documents of `chunks` Korean chunks each, plus `extra`
    document records as given."""
    docs = [
        {
            "doc_id": f"doc{d}",
            "title": f"문서 {d}",
            "chunks": [
                {"chunk_id": f"doc{d}-{i}", "content": f"{KOREAN} {d}/{i}"} for i in range(chunks)
            ],
        }
        for d in range(documents)
    ]
    path.write_text(json.dumps(docs + (extra or []), ensure_ascii=False), encoding="utf-8")
    return path


def load_corpus(db_url: str, files, embed_url: str, **options):
    """Load files in this process, as `embedding-gate load` does: (corpus, Stats). Without
    the blank reference's extra request unless asked (blank_reference=True)."""
    data = corpus.read([str(f) for f in files])
    blank_reference = options.pop("blank_reference", False)
    client = Client(embed_url, batch_size=options.pop("batch_size", 8), backoff=0.01, **options)
    conn = connect(db_url)
    try:
        return data, load.load(conn, data, client, blank_reference=blank_reference)
    finally:
        conn.close()


def loader_process(db_url: str, corpus_file: Path, embed_url: str, *options: str):
    """`python -m loader load FILE --no-report ...` in a process of its own, as a user runs it."""
    cmd = [sys.executable, "-m", "loader", "--database-url", db_url, "load", str(corpus_file)]
    cmd += ["--embed-url", embed_url, "--no-report", *options]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def interrupted_load(
    db_url: str, loader: subprocess.Popen, disrupt: Callable[[], None], once_stored: int
) -> "tuple[int, str]":
    """Let a running loader process store at least `once_stored` chunks, disrupt() it (kill
    it, restart the database, stop its embedding server), and wait for it to end. Returns
    how many chunks were stored by then (read on a new connection: the database may have
    restarted), and what the loader printed on stderr."""
    deadline = time.monotonic() + 30
    with psycopg.connect(db_url, autocommit=True) as conn:
        while count(conn) < once_stored and time.monotonic() < deadline:
            time.sleep(0.01)
    disrupt()
    _, err = loader.communicate(timeout=60)
    with psycopg.connect(db_url) as conn:
        return count(conn), err.decode()


def count(db, sql: str = "SELECT count(*) FROM chunks") -> int:
    return db.execute(sql).fetchone()[0]


# One row per object the deployment owns, in a form that does not depend on OIDs, so two
# installs can be compared: up -> down -> up, online and offline.
CATALOG_SQL = """
WITH ns AS (
    SELECT oid, nspname FROM pg_namespace
    WHERE nspname IN ('public', 'embedding_gate')
)
SELECT 'extension ' || extname || ' in ' || extnamespace::regnamespace FROM pg_extension
UNION ALL
SELECT 'schema ' || nspname || coalesce(' -- ' || obj_description(oid, 'pg_namespace'), '')
FROM ns WHERE nspname <> 'public'
UNION ALL
SELECT 'relation ' || c.relkind::text || ' ' || ns.nspname || '.' || c.relname
       || coalesce(' -- ' || obj_description(c.oid, 'pg_class'), '')
FROM pg_class c JOIN ns ON ns.oid = c.relnamespace
WHERE c.relkind IN ('r', 'v', 'm', 'S', 'p') AND c.relname <> 'alembic_version'
UNION ALL
SELECT 'column ' || ns.nspname || '.' || c.relname || '.' || a.attname || ' '
       || format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
       || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
       || coalesce(' -- ' || col_description(c.oid, a.attnum), '')
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN ns ON ns.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'v', 'm', 'p')
  AND c.relname <> 'alembic_version'
UNION ALL
SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
FROM pg_constraint WHERE connamespace IN (SELECT oid FROM ns) AND conrelid <> 0
  AND conrelid::regclass::text <> 'alembic_version'
UNION ALL
SELECT 'index ' || pg_get_indexdef(indexrelid) FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid JOIN ns ON ns.oid = c.relnamespace
WHERE c.relname <> 'alembic_version'
UNION ALL
SELECT 'function ' || pg_get_functiondef(p.oid)
       || coalesce(' -- ' || obj_description(p.oid, 'pg_proc'), '')
       || ' acl ' || coalesce(p.proacl::text, 'default')
FROM pg_proc p JOIN ns ON ns.oid = p.pronamespace
WHERE NOT EXISTS (SELECT FROM pg_depend dep WHERE dep.objid = p.oid AND dep.deptype = 'e')
UNION ALL
SELECT 'trigger ' || pg_get_triggerdef(t.oid) FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid JOIN ns ON ns.oid = c.relnamespace WHERE NOT t.tgisinternal
UNION ALL
SELECT 'view ' || c.oid::regclass || ' ' || pg_get_viewdef(c.oid)
FROM pg_class c JOIN ns ON ns.oid = c.relnamespace WHERE c.relkind IN ('v', 'm')
UNION ALL
SELECT 'acl ' || c.oid::regclass || ' ' || coalesce(c.relacl::text, 'default')
FROM pg_class c JOIN ns ON ns.oid = c.relnamespace
WHERE c.relkind IN ('r', 'v', 'm', 'p') AND c.relname <> 'alembic_version'
ORDER BY 1
"""


def catalog(url: str) -> list[str]:
    """What the deployment put in the database, one sorted line per object."""
    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute(CATALOG_SQL)]
