"""embedding_measures() gains the blank_like similarity and the model, for the report.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29

Only incremental SQL (sql/incremental/0004_*.sql): tables, columns, indexes, roles, rights.
Functions, triggers and views change in sql/idempotent/ (see DEVELOPMENT.md).
"""

from migrations.sources import execute, incremental

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None

# (file, sha256): the sha256 is None until the release that ships this revision
INCREMENTAL = ("0004_report_measures.sql", None)


def upgrade() -> None:
    execute(incremental(*INCREMENTAL))


def downgrade() -> None:
    # the older embedding_measures() comes back with the older tree's `alembic upgrade head`
    execute(
        """
        DROP FUNCTION IF EXISTS public.embedding_measures(double precision);
        DELETE FROM embedding_gate._sources WHERE name = '022_embedding_measures.sql';
        """
    )
