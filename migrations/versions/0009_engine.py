"""Which engine runs the checks: embedding_gate._deployment.engine (plpython or sql).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02

Only incremental SQL (sql/incremental/0009_*.sql): tables, columns, indexes, roles, rights.
Functions, triggers and views change in sql/idempotent/ (see DEVELOPMENT.md). The engine is
chosen by migrations/env.py before any revision runs (a deployment that exists keeps its
own); this revision records it.
"""

from migrations.sources import engine, execute, incremental

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels = None
depends_on = None

# (file, sha256): the sha256 is None until the release that ships this revision
INCREMENTAL = ("0009_engine.sql", None)


def upgrade() -> None:
    execute(incremental(*INCREMENTAL))
    if engine() == "sql":
        execute("UPDATE embedding_gate._deployment SET engine = 'sql';")


def downgrade() -> None:
    # (below 0009, a database without plpython3u is taken for the SQL engine's: env.py)
    execute(
        """
        DROP VIEW IF EXISTS embedding_gate.engine;
        DELETE FROM embedding_gate._sources WHERE name = '034_engine.sql';
        ALTER TABLE embedding_gate._deployment DROP COLUMN engine;
        """
    )
