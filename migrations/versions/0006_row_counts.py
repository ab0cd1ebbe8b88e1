"""The row counts of chunks and documents, kept by triggers, for the summary.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29

Only incremental SQL (sql/incremental/0006_*.sql): tables, columns, indexes, roles, rights.
Functions, triggers and views change in sql/idempotent/ (see DEVELOPMENT.md).
"""

from migrations.sources import execute, incremental

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels = None
depends_on = None

# (file, sha256): the sha256 is None until the release that ships this revision
INCREMENTAL = ("0006_row_counts.sql", None)


def upgrade() -> None:
    execute(incremental(*INCREMENTAL))


def downgrade() -> None:
    execute(
        """
        DROP TRIGGER IF EXISTS embedding_gate_count_delete ON public.chunks;
        DROP TRIGGER IF EXISTS embedding_gate_count_truncate ON public.chunks;
        DROP TRIGGER IF EXISTS embedding_gate_count_insert ON public.documents;
        DROP TRIGGER IF EXISTS embedding_gate_count_delete ON public.documents;
        DROP TRIGGER IF EXISTS embedding_gate_count_truncate ON public.documents;
        DROP FUNCTION IF EXISTS embedding_gate._count_rows();
        DROP FUNCTION IF EXISTS embedding_gate._add_rows(text, bigint);
        DROP FUNCTION IF EXISTS embedding_gate.recount();
        DELETE FROM embedding_gate._sources WHERE name = '013_row_counts.sql';
        DROP TABLE embedding_gate._row_counts;
        """
    )
