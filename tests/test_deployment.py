"""Deployment: `alembic upgrade head` / `downgrade base` on a real PostgreSQL."""

import dataclasses
import os
import shutil
import subprocess
import sys

import numpy as np
import psycopg
import pytest
from alembic.script import ScriptDirectory

from migrations import sources
from tests.cases import DEFAULTS
from tests.helpers import ENGINE, ROOT, alembic, catalog, prepare_managed, url_for, vec

ALEMBIC = [sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini")]


def run_alembic(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The alembic command line, as a user runs it."""
    return subprocess.run(
        [*ALEMBIC, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
        timeout=300,
    )


def test_upgrade_down_up_leaves_the_same_catalog(empty_db):
    """Up to head, down to base, up again: the second install equals the first, and base
    leaves exactly what was there before."""
    before = catalog(empty_db)
    alembic(empty_db, "upgrade", "head")
    first = catalog(empty_db)
    assert "relation r public.chunks -- Text chunks of the documents and their embeddings." in first
    assert "column public.chunks.embedding vector(768) -- " in "\n".join(first)
    assert "extension vector in public" in first
    assert "extension plpython3u in pg_catalog" in first
    alembic(empty_db, "downgrade", "base")
    assert catalog(empty_db) == before
    alembic(empty_db, "upgrade", "head")
    assert catalog(empty_db) == first


def test_downgrade_keeps_extensions_it_did_not_create(empty_db):
    """An extension that was there before the deployment is still there after base."""
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION vector")
    alembic(empty_db, "upgrade", "head")
    alembic(empty_db, "downgrade", "base")
    with psycopg.connect(empty_db) as conn:
        extensions = {r[0] for r in conn.execute("SELECT extname FROM pg_extension")}
    assert extensions == {"plpgsql", "vector"}


@pytest.mark.parametrize(("dim", "other"), [(768, 384), (384, 768)])
def test_deployment_accepts_its_dimension_and_refuses_another(empty_db, dim, other):
    """The dimension chosen at upgrade time is the column's; another size is refused."""
    alembic(empty_db, "upgrade", "head", embedding_dim=dim)
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute("INSERT INTO documents (doc_id) VALUES ('d1')")
        conn.execute(
            "INSERT INTO chunks (chunk_id, doc_id, content, embedding) VALUES ('c1', 'd1', 'x', %s)",
            [str([0.5] * dim)],
        )
        with pytest.raises(
            psycopg.errors.DataException, match=f"expected {dim} dimensions, not {other}"
        ):
            conn.execute(
                "INSERT INTO chunks (chunk_id, doc_id, embedding) VALUES ('c2', 'd1', %s)",
                [str([0.5] * other)],
            )
        stored = conn.execute("SELECT chunk_id, vector_dims(embedding) FROM chunks").fetchall()
    assert stored == [("c1", dim)]


def test_content_length_counts_characters_not_bytes(db):
    """Korean text: five characters are fifteen bytes in UTF-8, and the length is 5."""
    db.execute("INSERT INTO documents (doc_id) VALUES ('d1')")
    db.execute("INSERT INTO chunks (chunk_id, doc_id, content) VALUES ('c1', 'd1', '안녕하세요')")
    assert db.execute("SELECT content_length, octet_length(content) FROM chunks").fetchone() == (
        5,
        15,
    )


def test_cli_connects_from_db_variables_and_reports_the_revision(empty_db):
    """`alembic upgrade head` with DB_HOST/DB_PORT/DB_NAME/DB_USER and -x embedding_dim."""
    info = psycopg.conninfo.conninfo_to_dict(empty_db)
    env = {
        "DB_HOST": info["host"],
        "DB_PORT": str(info["port"]),
        "DB_NAME": info["dbname"],
        "DB_USER": info["user"],
        "DATABASE_URL": "",
    }
    up = run_alembic("-x", "embedding_dim=384", "upgrade", "head", env=env)
    assert up.returncode == 0, up.stderr
    current = run_alembic("current", env=env)
    assert "(head)" in current.stdout
    with psycopg.connect(empty_db) as conn:
        dim = conn.execute("SELECT embedding_dim FROM embedding_gate._deployment").fetchone()
    assert dim == (384,)


def test_offline_script_builds_the_same_schema_as_online(empty_db, db_url):
    """`alembic upgrade head --sql` prints a script a DBA can review; applied with psql to an
    empty database it gives the catalog of an online upgrade (PL/Python bodies intact).
    Under the SQL engine: the script of `-x engine=sql`, applied by the managed owner."""
    engine = ["-x", "engine=sql"] if ENGINE == "sql" else []
    script = run_alembic(*engine, "upgrade", "head", "--sql", env={"DATABASE_URL": empty_db})
    assert script.returncode == 0, script.stderr
    assert "CREATE TABLE public.chunks" in script.stdout
    deployer = prepare_managed(empty_db) if ENGINE == "sql" else empty_db
    applied = subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", deployer],
        input=script.stdout,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert applied.returncode == 0, applied.stderr
    assert catalog(empty_db) == catalog(db_url)


def test_non_utf8_database_is_refused_with_a_reason(postgresql_proc):
    """Lengths are characters: a SQL_ASCII database would count bytes, so it is refused."""
    p = postgresql_proc
    with psycopg.connect(url_for(p.host, p.port, p.user, "postgres"), autocommit=True) as conn:
        conn.execute(
            "CREATE DATABASE ascii_db ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
        )
    try:
        result = run_alembic(
            "upgrade", "head", env={"DATABASE_URL": url_for(p.host, p.port, p.user, "ascii_db")}
        )
        output = result.stdout + result.stderr
        assert result.returncode != 0
        assert (
            'database "ascii_db" uses encoding SQL_ASCII; the embedding gate needs UTF8' in output
        )
        assert "Traceback" not in output
    finally:
        with psycopg.connect(url_for(p.host, p.port, p.user, "postgres"), autocommit=True) as conn:
            conn.execute("DROP DATABASE ascii_db")


def test_upgrade_without_pgvector_says_what_is_missing_and_how_to_get_it(server_without_pgvector):
    """No traceback: one message naming pgvector, and a hint with the way to install it."""
    result = run_alembic("upgrade", "head", env={"DATABASE_URL": server_without_pgvector})
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "pgvector is not installed on this PostgreSQL server" in output
    assert "scripts/install-server.sh" in output
    assert "github.com/pgvector/pgvector" in output
    assert "Traceback" not in output
    with psycopg.connect(server_without_pgvector) as conn:
        leftovers = conn.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'embedding_gate'"
        ).fetchone()
    assert leftovers == (0,)


LATER_REVISION = '''"""A later release's revision, for the upgrade test: one incremental change.

Revision ID: 9999
"""

from migrations.sources import execute

revision = "9999"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute("ALTER TABLE embedding_gate.settings ADD COLUMN max_norm double precision;")


def downgrade() -> None:
    execute("ALTER TABLE embedding_gate.settings DROP COLUMN max_norm;")
'''

FUNCTION_VERSIONS = (
    "SELECT p.oid::regprocedure::text, p.xmin::text FROM pg_proc AS p"
    " WHERE p.pronamespace IN ('public'::regnamespace, 'embedding_gate'::regnamespace)"
    " AND p.prolang <> (SELECT oid FROM pg_language WHERE lanname = 'internal')"
    " AND NOT EXISTS (SELECT FROM pg_depend AS d WHERE d.objid = p.oid AND d.deptype = 'e')"
)


@pytest.fixture
def later_release(tmp_path):
    """The tree of a later release: the migrations with revision 0002 added, and one
    function changed in sql/idempotent/ (its comment). Returns both folders."""
    migrations = tmp_path / "migrations"
    shutil.copytree(ROOT / "migrations", migrations, ignore=shutil.ignore_patterns("__pycache__"))
    head = ScriptDirectory(str(ROOT / "migrations")).get_current_head()
    (migrations / "versions/9999_later.py").write_text(LATER_REVISION.replace("{head}", head))
    idempotent = tmp_path / "idempotent"
    shutil.copytree(ROOT / "sql/idempotent", idempotent)
    verify = idempotent / "020_verify_embeddings.sql"
    verify.write_text(verify.read_text().replace("Changes nothing.", "Changes nothing (0.2)."))
    return migrations, idempotent


def test_an_upgrade_to_a_later_release_applies_its_revision_and_recreates_only_what_changed(
    empty_db, other_empty_db, later_release, monkeypatch
):
    """A database deployed at this release and upgraded to a later one has the catalog of a
    fresh install of the later one. The upgrade runs the new revision's incremental SQL once
    and re-creates only the function whose definition changed."""
    alembic(empty_db, "upgrade", "head")
    with psycopg.connect(empty_db) as conn:
        before = dict(conn.execute(FUNCTION_VERSIONS).fetchall())
    later_release, idempotent = later_release
    monkeypatch.setattr(sources, "IDEMPOTENT", idempotent)
    alembic(empty_db, "upgrade", "head", migrations=later_release)
    with psycopg.connect(empty_db) as conn:
        after = dict(conn.execute(FUNCTION_VERSIONS).fetchall())
        assert conn.execute(
            "SELECT version_num FROM public.embedding_gate_alembic_version"
        ).fetchone() == ("9999",)
        comment = conn.execute(
            "SELECT obj_description('public.verify_embeddings(integer)'::regprocedure)"
        ).fetchone()[0]
    assert comment.endswith("Changes nothing (0.2).")
    assert [f for f in before if before[f] != after[f]] == ["verify_embeddings(integer)"]
    alembic(other_empty_db, "upgrade", "head", migrations=later_release)
    assert catalog(empty_db) == catalog(other_empty_db)
    # again at head: nothing changed, nothing is re-created
    alembic(empty_db, "upgrade", "head", migrations=later_release)
    with psycopg.connect(empty_db) as conn:
        assert dict(conn.execute(FUNCTION_VERSIONS).fetchall()) == after
    # and back: this release's tables, then nothing
    alembic(empty_db, "downgrade", "-1", migrations=later_release)
    assert not any("max_norm" in line for line in catalog(empty_db))
    alembic(empty_db, "downgrade", "base", migrations=later_release)
    assert catalog(empty_db) == ["extension plpgsql in pg_catalog"]


def test_the_released_baseline_is_pinned_and_unchanged():
    """0.1.0 is released: its incremental file carries a pin, and still has that hash."""
    from importlib import import_module

    baseline = import_module("migrations.versions.0001_baseline")
    name, pin = baseline.BASELINE
    assert pin is not None
    assert sources.sha256((ROOT / "sql/incremental" / name).read_text(encoding="utf-8")) == pin


def test_the_settings_hold_the_contracts_defaults(db):
    """The one source of the thresholds' defaults is the settings table: it holds what
    DESIGN.md promises."""
    row = db.execute(
        "SELECT mode, min_norm, min_variance, near_zero_epsilon, max_near_zero_ratio,"
        " blank_similarity, max_silent_deviation, min_content_length FROM embedding_gate.settings"
    ).fetchone()
    assert row == ("flag", *dataclasses.astuple(DEFAULTS), 10)


def test_embeddings_that_compress_are_compressed_with_lz4(doc):
    """lz4 gives up on incompressible floats faster than pglz (revision 0005); a vector that
    does compress (all zeros) is stored lz4-compressed."""
    doc.execute(
        "INSERT INTO chunks (chunk_id, doc_id, embedding) VALUES ('z', 'd1', %s), ('r', 'd1', %s)",
        [vec(np.zeros(768)), vec(np.random.default_rng(1).standard_normal(768))],
    )
    forms = dict(doc.execute("SELECT chunk_id, pg_column_compression(embedding) FROM chunks"))
    assert forms == {"z": "lz4", "r": None}


# alembic's own DDL for a version table, as an application's alembic creates it
APP_VERSION_TABLE = (
    "CREATE TABLE public.alembic_version (version_num varchar(32) NOT NULL,"
    " CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
)
GATE_VERSION = "SELECT version_num FROM public.embedding_gate_alembic_version"


def test_the_gate_keeps_its_revision_beside_an_apps_own_history(empty_db):
    """An application's public.alembic_version (a revision the gate does not know) is never
    read as the gate's, never written, never the cause of a failure: up, down, up."""
    head = ScriptDirectory(str(ROOT / "migrations")).get_current_head()
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute(APP_VERSION_TABLE)
        conn.execute("INSERT INTO public.alembic_version VALUES ('ae1027a6acf')")
    alembic(empty_db, "upgrade", "head")
    with psycopg.connect(empty_db) as conn:
        assert conn.execute(GATE_VERSION).fetchall() == [(head,)]
        assert conn.execute("SELECT * FROM public.alembic_version").fetchall() == [("ae1027a6acf",)]
    current = run_alembic("current", env={"DATABASE_URL": empty_db})
    assert current.returncode == 0, current.stderr
    assert f"{head} (head)" in current.stdout
    alembic(empty_db, "downgrade", "base")
    with psycopg.connect(empty_db) as conn:
        assert conn.execute("SELECT * FROM public.alembic_version").fetchall() == [("ae1027a6acf",)]
        # base leaves nothing of the gate, its version table included
        assert conn.execute(
            "SELECT pg_catalog.to_regclass('public.embedding_gate_alembic_version')"
        ).fetchone() == (None,)


@pytest.mark.parametrize("app_row", [None, "ae1027a6acf"])
def test_a_database_deployed_with_01s_layout_moves_the_gates_row_to_its_own_table(
    empty_db, app_row
):
    """0.1 kept the gate's revision in public.alembic_version. The same `alembic upgrade
    head` moves it to the gate's table and goes on from there; another row stays where it
    is, and the table goes only when the gate's row was all it held."""
    alembic(empty_db, "upgrade", "0001")
    with psycopg.connect(empty_db, autocommit=True) as conn:
        # what 0.1 left: the revision in alembic's default table, no table of the gate's
        conn.execute("DROP TABLE public.embedding_gate_alembic_version")
        conn.execute(APP_VERSION_TABLE)
        conn.execute("INSERT INTO public.alembic_version VALUES ('0001')")
        if app_row:
            conn.execute("INSERT INTO public.alembic_version VALUES (%s)", [app_row])
    result = run_alembic("upgrade", "head", env={"DATABASE_URL": empty_db})
    assert result.returncode == 0, result.stderr
    head = ScriptDirectory(str(ROOT / "migrations")).get_current_head()
    with psycopg.connect(empty_db) as conn:
        assert conn.execute(GATE_VERSION).fetchall() == [(head,)]
        left = conn.execute("SELECT pg_catalog.to_regclass('public.alembic_version')").fetchone()
        if app_row:
            assert conn.execute("SELECT * FROM public.alembic_version").fetchall() == [(app_row,)]
        else:
            assert left == (None,)
        # the revisions after 0001 ran: 0007's registry is there
        assert conn.execute("SELECT pg_catalog.to_regclass('embedding_gate.attached')").fetchone()[
            0
        ]
    alembic(empty_db, "downgrade", "base")
    expected = ["extension plpgsql in pg_catalog"]
    if app_row:
        expected = [line for line in catalog(empty_db) if "alembic_version" not in line]
    assert catalog(empty_db) == expected
