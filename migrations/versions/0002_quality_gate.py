"""Quality gate: quality columns, settings, quarantine, the PL/Python checks and triggers.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from migrations.sources import execute, pinned, python_module, render

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None

TABLES = (
    "sql/incremental/0002_quality_gate.sql",
    "903ab3b510904c4fa822c11a11494b37b2b9621353697ce16062107ce5caeff7",
)
FUNCTIONS = (
    "sql/idempotent/gate.sql",
    "7db7ce3693600d4c1f41385836ab05fe3335a2f480baaec4555a987d9fcd9ee7",
)
MODULE = (
    "plpython/embedding_gate.py",
    "9f7b0562feba0aa6d96e1f60e87cc45c65185f4bf3d114297036169ff1b830ca",
)


def upgrade() -> None:
    execute(pinned(revision, *TABLES))
    module = python_module(pinned(revision, *MODULE))
    execute(render(pinned(revision, *FUNCTIONS), **module))


def downgrade() -> None:
    execute(
        """
        DROP PROCEDURE public.recheck_embeddings(integer, bigint, bigint);
        DROP FUNCTION embedding_gate._recheck_batch(text, integer);
        DROP FUNCTION public.verify_embeddings(integer);
        DROP TRIGGER embedding_gate_reject ON public.chunks;
        DROP FUNCTION embedding_gate._raise_rejected();
        DROP TRIGGER embedding_gate_update ON public.chunks;
        DROP TRIGGER embedding_gate_insert ON public.chunks;
        DROP FUNCTION embedding_gate._check_updated();
        DROP FUNCTION embedding_gate._check_inserted();
        DROP FUNCTION embedding_gate._python_module();
        DROP TABLE public.embedding_quarantine;
        DROP TABLE embedding_gate.settings;
        DROP INDEX public.chunks_flagged_idx;
        ALTER TABLE public.chunks
            DROP CONSTRAINT chunks_embedding_raw_dimension,
            DROP CONSTRAINT chunks_one_embedding_input,
            DROP COLUMN quality_checked_at,
            DROP COLUMN quality_near_zero_ratio,
            DROP COLUMN quality_variance,
            DROP COLUMN quality_norm,
            DROP COLUMN quality_reason,
            DROP COLUMN quality_issues,
            DROP COLUMN embedding_raw;
        """
    )
