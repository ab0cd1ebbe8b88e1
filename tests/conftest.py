"""Fixtures: a real PostgreSQL with plpython3u and pgvector, started by pytest-postgresql.

The session builds a template database once with `alembic upgrade head` (768 dimensions);
each test gets a fresh clone of it. PostgreSQL refuses to run as root, so as root run the
tests through `make test`, which runs them as the unprivileged user postgres.
"""

import os
from collections.abc import Iterator

import psycopg
import pytest
from pytest_postgresql import factories
from pytest_postgresql.janitor import DatabaseJanitor

from tests.embed_server import EmbedServer
from tests.helpers import PG_CTL, alembic, url_for

if hasattr(os, "geteuid") and os.geteuid() == 0:
    pytest.exit(
        "PostgreSQL refuses to run as root: run `make test`, which runs pytest as user postgres",
        returncode=2,
    )


def deploy_head(host: str, port: int, user: str, dbname: str, password: str | None, **_) -> None:
    """pytest-postgresql loader: the template database every test clones."""
    alembic(url_for(host, port, user, dbname, password), "upgrade", "head")


postgresql_proc = factories.postgresql_proc(executable=PG_CTL, load=[deploy_head])
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
