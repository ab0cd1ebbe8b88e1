"""Fixtures: a real PostgreSQL with plpython3u and pgvector, started by pytest-postgresql.

The session builds a template database once with `alembic upgrade head` (768 dimensions);
each test gets a fresh clone of it. PostgreSQL refuses to run as root, so as root run the
tests through `make test`, which runs them as the unprivileged user postgres.

PG_EXTERNAL=host:port runs the suite against a server that is already running (superuser
postgres, trust on that address), for example PostgreSQL 17 or 18 in a Debian tree
(scripts/test-other-majors.sh). Tests that need this machine's server binaries skip there.
"""

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pytest_postgresql import factories
from pytest_postgresql.janitor import DatabaseJanitor

from tests.embed_server import EmbedServer
from tests.helpers import ENGINE, PG_BINDIR, PG_CTL, alembic, prepare_managed, url_for

if hasattr(os, "geteuid") and os.geteuid() == 0:
    pytest.exit(
        "PostgreSQL refuses to run as root: run `make test`, which runs pytest as user postgres",
        returncode=2,
    )


if ENGINE not in ("plpython", "sql"):
    pytest.exit(f"GATE_ENGINE must be plpython or sql, not {ENGINE!r}", returncode=2)


def deploy_head(host: str, port: int, user: str, dbname: str, password: str | None, **_) -> None:
    """pytest-postgresql loader: the template database every test clones."""
    url = url_for(host, port, user, dbname, password)
    if ENGINE == "plpython":
        alembic(url, "upgrade", "head")
        return
    alembic(prepare_managed(url), "upgrade", "head")
    with psycopg.connect(url, autocommit=True) as conn:
        engine = conn.execute("SELECT engine FROM embedding_gate.engine").fetchone()
        languages = conn.execute(
            "SELECT count(*) FROM pg_language WHERE lanname LIKE 'plpython%'"
        ).fetchone()
    assert engine == ("sql",) and languages == (0,), (engine, languages)


EXTERNAL = os.environ.get("PG_EXTERNAL", "")
if EXTERNAL and os.environ.get("PYTEST_XDIST_WORKER"):
    # the tests create cluster-wide roles: workers sharing one server would collide
    pytest.exit("PG_EXTERNAL runs the suite in one process: drop -n (pytest-xdist)", returncode=2)
if EXTERNAL:
    _host, _, _port = EXTERNAL.rpartition(":")
    postgresql_proc = factories.postgresql_noproc(
        host=_host or "127.0.0.1", port=int(_port), user="postgres", load=[deploy_head]
    )
else:
    postgresql_proc = factories.postgresql_proc(executable=PG_CTL, load=[deploy_head])

# tests that drive this machine's server binaries (pg_ctl on the test cluster's data
# directory): they cannot run against an external server
NEEDS_LOCAL_SERVER = {
    "test_a_database_restart_mid_load_fails_clearly_and_a_rerun_completes": (
        "restarts the server with pg_ctl on its data directory"
    ),
}


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers",
        "plpython_only(reason): a test of the PL/Python engine itself (its package, its"
        " functions), skipped under GATE_ENGINE=sql",
    )


def pytest_collection_modifyitems(config, items) -> None:
    if ENGINE == "sql":
        for item in items:
            marker = item.get_closest_marker("plpython_only")
            if marker:
                why = marker.args[0] if marker.args else "a test of the PL/Python engine"
                item.add_marker(pytest.mark.skip(reason=f"GATE_ENGINE=sql: {why}"))
    if not EXTERNAL:
        return
    for item in items:
        reason = NEEDS_LOCAL_SERVER.get(item.originalname)
        if reason:
            item.add_marker(pytest.mark.skip(reason=f"PG_EXTERNAL={EXTERNAL}: this test {reason}"))


postgresql = factories.postgresql("postgresql_proc")


@pytest.fixture
def db(postgresql: psycopg.Connection) -> psycopg.Connection:
    """A connection to a fresh database at head, in autocommit mode."""
    postgresql.autocommit = True
    return postgresql


@pytest.fixture
def doc(db) -> psycopg.Connection:
    """`db` with one document, d1, for chunks to belong to."""
    db.execute("INSERT INTO documents (doc_id) VALUES ('d1')")
    return db


@pytest.fixture
def server() -> Iterator[EmbedServer]:
    """A real HTTP embedding server on loopback (deterministic vectors, scripted faults)."""
    s = EmbedServer()
    yield s
    s.close()


@pytest.fixture
def db_url(postgresql: psycopg.Connection) -> str:
    """The libpq URL of the test's database (for psycopg2, alembic, the loader)."""
    info = postgresql.info
    return url_for(info.host, info.port, info.user, info.dbname, info.password)


@pytest.fixture
def empty_db(postgresql_proc, request) -> Iterator[str]:
    """The URL of a new, empty database (no template): for deployment tests."""
    yield from _new_database(postgresql_proc, f"empty_{request.node.name}")


@pytest.fixture
def other_empty_db(postgresql_proc, request) -> Iterator[str]:
    """A second new, empty database, to compare two deployments."""
    yield from _new_database(postgresql_proc, f"other_{request.node.name}")


def _new_database(postgresql_proc, name: str) -> Iterator[str]:
    p = postgresql_proc
    name = name[:60].replace("[", "_").replace("]", "_").lower()
    with DatabaseJanitor(
        user=p.user,
        host=p.host,
        port=p.port,
        dbname=name,
        password=p.password,
    ):
        yield url_for(p.host, p.port, p.user, name, p.password)


LOGIN = "loader_login"  # a login role in embedding_loader, for the role tests


@pytest.fixture
def loader_url(db, postgresql_proc) -> str:
    """A login role that is a member of embedding_loader, as a deployment grants it."""
    db.execute(
        f"""DO $$ BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{LOGIN}') THEN
                CREATE ROLE {LOGIN} LOGIN IN ROLE embedding_loader;
            END IF;
        END $$"""
    )
    p = postgresql_proc
    return url_for(p.host, p.port, LOGIN, db.info.dbname)


@pytest.fixture
def as_loader(loader_url):
    with psycopg.connect(loader_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def server_without_pgvector(tmp_path) -> Iterator[str]:
    """A real PostgreSQL (this machine's major) whose installation has no pgvector: a
    relocated copy of this machine's (PostgreSQL finds share/ and lib/ relative to its
    binaries), minus vector. Yields the URL of a database on it."""
    from port_for import get_port
    from pytest_postgresql.executors import PostgreSQLExecutor

    if EXTERNAL:
        pytest.skip(f"PG_EXTERNAL={EXTERNAL}: this fixture copies this machine's server binaries")

    def pg_config(option: str) -> Path:
        out = subprocess.check_output([PG_BINDIR / "pg_config", option], text=True)
        return Path(out.strip())

    # the same layout under another prefix: .../lib/postgresql/N/{bin,lib}, .../share/postgresql/N
    prefix = tmp_path / "usr"
    bindir, pkglibdir, sharedir = (pg_config(o) for o in ("--bindir", "--pkglibdir", "--sharedir"))
    root = Path(os.path.commonpath([bindir, pkglibdir, sharedir]))

    def moved(path: Path) -> Path:
        return prefix / path.relative_to(root)

    shutil.copytree(bindir, moved(bindir), symlinks=True)
    moved(pkglibdir).mkdir(parents=True, exist_ok=True)
    for item in pkglibdir.iterdir():
        if not item.name.startswith("vector"):
            (moved(pkglibdir) / item.name).symlink_to(item)
    shutil.copytree(sharedir, moved(sharedir), ignore=shutil.ignore_patterns("vector*"))
    port = get_port(None)
    executor = PostgreSQLExecutor(
        executable=str(moved(bindir) / "pg_ctl"),
        host="127.0.0.1",
        port=port,
        datadir=str(tmp_path / "data"),
        unixsocketdir=str(tmp_path),
        logfile=str(tmp_path / "log"),
        startparams="-w",
        dbname="nopgvector",
        user="postgres",
        password=None,
        options="",
    )
    executor.start()
    try:
        with DatabaseJanitor(user="postgres", host="127.0.0.1", port=port, dbname="nopgvector"):
            with psycopg.connect(url_for("127.0.0.1", port, "postgres", "nopgvector")) as conn:
                available = conn.execute(
                    "SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'"
                ).fetchone()
            assert available == (0,), "the copied server still finds pgvector"
            yield url_for("127.0.0.1", port, "postgres", "nopgvector")
    finally:
        executor.stop()
