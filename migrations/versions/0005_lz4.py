"""Embeddings compressed with lz4 instead of pglz (cheaper to fail on incompressible floats).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29

Only incremental SQL (sql/incremental/0005_*.sql): tables, columns, indexes, roles, rights.
Functions, triggers and views change in sql/idempotent/ (see DEVELOPMENT.md).
"""

from migrations.sources import execute, incremental

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels = None
depends_on = None

# (file, sha256): the sha256 is None until the release that ships this revision
INCREMENTAL = ("0005_lz4.sql", None)


def upgrade() -> None:
    execute(incremental(*INCREMENTAL))


def downgrade() -> None:
    execute("ALTER TABLE public.chunks ALTER COLUMN embedding SET COMPRESSION pglz;")
