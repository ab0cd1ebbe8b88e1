"""An application that keeps its own alembic project deploys the gate from one of its own
revisions and removes it in that revision's downgrade (the recipe of docs/deploy.md).

The project is made as a user makes one: `alembic init migrations` (the folder name
Flask-Migrate uses too), its URL in its alembic.ini, its own revisions, its own
public.alembic_version. Its revision a2 calls loader.deploy on the app's connection, so the
gate joins the app's transaction."""

import os
import subprocess
import sys
import textwrap

import psycopg
import pytest
from alembic.script import ScriptDirectory

from tests.helpers import ROOT, alembic, catalog

HEAD = ScriptDirectory(str(ROOT / "migrations")).get_current_head()

REVISIONS = {
    "a1_notes.py": '''
        """notes: the app's own table, with pgvector

        Revision ID: a1
        Revises:
        """
        from alembic import op

        revision = "a1"
        down_revision = None
        branch_labels = None
        depends_on = None


        def upgrade() -> None:
            op.execute("CREATE EXTENSION IF NOT EXISTS vector")
            op.execute("CREATE TABLE notes (id bigserial PRIMARY KEY, body text NOT NULL)")


        def downgrade() -> None:
            op.execute("DROP TABLE notes")
            op.execute("DROP EXTENSION vector")
    ''',
    "a2_embedding_gate.py": '''
        """the embedding gate, at the installed package's head

        Revision ID: a2
        Revises: a1
        """
        import sqlalchemy as sa
        from alembic import op

        from loader import deploy

        revision = "a2"
        down_revision = "a1"
        branch_labels = None
        depends_on = None


        def upgrade() -> None:
            deploy.upgrade("head", connection=op.get_bind(), embedding_dim=384)
            # the app's own operations go on after the gate's
            op.add_column("notes", sa.Column("reviewed", sa.Boolean(), server_default=sa.false()))


        def downgrade() -> None:
            op.drop_column("notes", "reviewed")
            deploy.downgrade("base", connection=op.get_bind())
    ''',
    "a3_tags.py": '''
        """tags

        Revision ID: a3
        Revises: a2
        """
        import os

        from alembic import op

        revision = "a3"
        down_revision = "a2"
        branch_labels = None
        depends_on = None


        def upgrade() -> None:
            op.execute("CREATE TABLE tags (note_id bigint REFERENCES notes, tag text)")
            if os.environ.get("APP_FAIL"):
                raise RuntimeError("the app's revision a3 fails")


        def downgrade() -> None:
            op.execute("DROP TABLE tags")
    ''',
}


@pytest.fixture
def app(tmp_path, empty_db):
    """An alembic project of the app's own, pointed at the empty database."""
    made = subprocess.run(
        [sys.executable, "-m", "alembic", "init", "migrations"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    ini = tmp_path / "alembic.ini"
    ini.write_text(
        ini.read_text().replace(
            "sqlalchemy.url = driver://user:pass@localhost/dbname",
            "sqlalchemy.url = " + empty_db.replace("postgresql://", "postgresql+psycopg2://"),
        )
    )
    for name, text in REVISIONS.items():
        (tmp_path / "migrations/versions" / name).write_text(textwrap.dedent(text).lstrip())
    return tmp_path


def app_alembic(app, *args, **env) -> subprocess.CompletedProcess:
    """The app's `alembic ...`, run where its alembic.ini is, with no path into the
    checkout: the gate comes from the installed package."""
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DATABASE_URL")}
    return subprocess.run(
        [sys.executable, "-m", "alembic", *args],
        cwd=app, capture_output=True, text=True, timeout=300, env={**environ, **env},
    )  # fmt: skip


def rows(url: str, sql: str):
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def gate_version(url: str) -> list:
    """The rows of the gate's version table ([] where there is none)."""
    with psycopg.connect(url) as conn:
        there = conn.execute("SELECT to_regclass('public.embedding_gate_alembic_version')")
        if there.fetchone()[0] is None:
            return []
        return conn.execute(
            "SELECT version_num FROM public.embedding_gate_alembic_version"
        ).fetchall()


def gate_lines(url: str) -> list:
    """The catalog without the app's own objects."""
    return [
        line
        for line in catalog(url)
        if not any(word in line for word in ("notes", "tags", "alembic_version"))
    ]


def test_an_apps_own_alembic_revision_deploys_the_gate_and_its_downgrade_removes_it(
    app, empty_db, other_empty_db
):
    # a revision after the gate's fails: the app's whole run rolls back, the gate with it
    failed = app_alembic(app, "upgrade", "head", APP_FAIL="1")
    assert failed.returncode != 0
    assert "the app's revision a3 fails" in failed.stderr
    assert catalog(empty_db) == ["extension plpgsql in pg_catalog"]

    up = app_alembic(app, "upgrade", "head")
    assert up.returncode == 0, up.stderr
    assert rows(empty_db, "SELECT version_num FROM public.alembic_version") == [("a3",)]
    assert gate_version(empty_db) == [(HEAD,)]
    # the gate as `alembic upgrade head` in a checkout deploys it, beside the app's tables
    alembic(other_empty_db, "upgrade", "head", embedding_dim=384)
    assert gate_lines(empty_db) == gate_lines(other_empty_db)
    assert "column public.notes.reviewed boolean" in "\n".join(catalog(empty_db))
    # and it works: a zero vector is flagged
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute("INSERT INTO documents (doc_id) VALUES ('d1')")
        conn.execute(
            "INSERT INTO chunks (chunk_id, doc_id, content, embedding) VALUES ('c1', 'd1', 'x', %s)",
            [str([0.0] * 384)],
        )
        assert conn.execute("SELECT quality_issues FROM chunks").fetchone()[0]
    current = app_alembic(app, "current")
    assert "a3 (head)" in current.stdout

    # the app's downgrade of a2 takes the gate away, and only the gate
    down = app_alembic(app, "downgrade", "a1")
    assert down.returncode == 0, down.stderr
    assert rows(empty_db, "SELECT version_num FROM public.alembic_version") == [("a1",)]
    assert gate_version(empty_db) == []
    assert gate_lines(empty_db) == ["extension plpgsql in pg_catalog", "extension vector in public"]
    assert rows(empty_db, "SELECT count(*) FROM notes") == [(0,)]

    # up again, and down to the app's base: nothing is left
    assert app_alembic(app, "upgrade", "head").returncode == 0
    assert gate_version(empty_db) == [(HEAD,)]
    base = app_alembic(app, "downgrade", "base")
    assert base.returncode == 0, base.stderr
    assert catalog(empty_db) == ["extension plpgsql in pg_catalog"]
    assert rows(empty_db, "SELECT count(*) FROM public.alembic_version") == [(0,)]
