"""Which blank text a model's reference embeds (servers that refuse the empty text).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

Only incremental SQL (sql/incremental/0002_*.sql): tables, columns, indexes, roles, rights.
Functions, triggers and views change in sql/idempotent/ (see DEVELOPMENT.md).
"""

from migrations.sources import execute, incremental

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None

# (file, sha256): the sha256 is None until the release that ships this revision
INCREMENTAL = ("0002_blank_text.sql", None)


def upgrade() -> None:
    execute(incremental(*INCREMENTAL))


def downgrade() -> None:
    # release 0.1.0's set_blank_reference(text, vector) comes back with its own tree's
    # `alembic upgrade head` (DEVELOPMENT.md)
    execute(
        """
        DROP FUNCTION IF EXISTS public.set_blank_reference(text, public.vector, text);
        DELETE FROM embedding_gate._sources WHERE name = '024_set_blank_reference.sql';
        ALTER TABLE embedding_gate.blank_references DROP COLUMN blank_text;
        """
    )
