"""Reports: the views, threshold preview, measures; faster recheck; vectors stored inline.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from migrations.sources import execute, pinned, python_module, render

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None

TABLES = (
    "sql/incremental/0003_reports.sql",
    "ff7d8d7d9e98563a15e123d5f45cdbc8b57f0943888a18ab202674512a428d2d",
)
FUNCTIONS = (
    "sql/idempotent/gate.sql",
    "cf98a5f7d8eaa23ea461a10a6d5a10d9f8fdedf0e56cfd216c6d69712176e140",
)
MODULE = (
    "plpython/embedding_gate.py",
    "2d12f0cbc56274068fb691e9079cd1287d278e0fd4fde3e4dec346ace15a7945",
)
REPORTS = (
    "sql/idempotent/reports.sql",
    "bcd0d3275eec082e9a95d45ed4d00b3ca97e398ff3ba82ca51a99b5541c07c5f",
)

# what 0002 installed, put back on downgrade
FUNCTIONS_0002 = (
    "sql/idempotent/gate.sql",
    "7db7ce3693600d4c1f41385836ab05fe3335a2f480baaec4555a987d9fcd9ee7",
)
MODULE_0002 = (
    "plpython/embedding_gate.py",
    "9f7b0562feba0aa6d96e1f60e87cc45c65185f4bf3d114297036169ff1b830ca",
)


def upgrade() -> None:
    execute(pinned(revision, *TABLES))
    module = python_module(pinned(revision, *MODULE))
    execute(render(pinned(revision, *FUNCTIONS), **module))
    execute(pinned(revision, *REPORTS))


def downgrade() -> None:
    execute(
        """
        DROP VIEW public.embedding_quality_summary;
        DROP VIEW public.short_content_chunks;
        DROP VIEW public.low_quality_embeddings;
        DROP FUNCTION embedding_gate._quality_summary();
        DROP FUNCTION embedding_gate._short_content_chunks();
        DROP FUNCTION public.preview_thresholds(double precision, double precision,
                                                double precision, double precision);
        DROP FUNCTION public.embedding_measures(double precision);
        DROP INDEX public.chunks_not_embedded_idx;
        DROP INDEX public.chunks_empty_content_idx;
        DROP INDEX public.chunks_dropped_idx;
        DROP INDEX public.chunks_embedded_length_idx;
        ALTER TABLE embedding_gate.settings DROP COLUMN min_content_length;
        ALTER TABLE public.chunks ALTER COLUMN embedding SET STORAGE EXTENDED;
        """
    )
    module = python_module(pinned("0002", *MODULE_0002))
    execute(render(pinned("0002", *FUNCTIONS_0002), **module))
