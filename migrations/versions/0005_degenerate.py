"""blank_like and duplicate_vector: the degenerate embeddings of normalising models.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from migrations.sources import execute, pinned, python_module, render

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels = None
depends_on = None

TABLES = (
    "sql/incremental/0005_degenerate.sql",
    "a9b0bc5cedd1a295f02ea87c0e7dedb59be97ea631ed5d24292c297fdd67b838",
)
FUNCTIONS = (
    "sql/idempotent/gate.sql",
    "149f3c394c8cd00e131f8adfd08183ffa37fca269831f9798dab3f3f4f6753f8",
)
MODULE = (
    "plpython/embedding_gate.py",
    "275d882052d80c39aab607041d5d4261e773c1b3afe36008d05e31b2e13b7702",
)
REPORTS = (
    "sql/idempotent/reports.sql",
    "cac3574c008cb4498a5dbb1cdddd831b60b0a5d3b9182b55296c5f79fec169cf",
)

# what 0004 had installed, put back on downgrade
FUNCTIONS_0003 = (
    "sql/idempotent/gate.sql",
    "cf98a5f7d8eaa23ea461a10a6d5a10d9f8fdedf0e56cfd216c6d69712176e140",
)
MODULE_0003 = (
    "plpython/embedding_gate.py",
    "2d12f0cbc56274068fb691e9079cd1287d278e0fd4fde3e4dec346ace15a7945",
)
REPORTS_0004 = (
    "sql/idempotent/reports.sql",
    "7eb0621a67dcb1ed3d5ab2b0072f08c67c7eacba7f99563264e31705995bbf8d",
)


def upgrade() -> None:
    execute(pinned(revision, *TABLES))
    module = python_module(pinned(revision, *MODULE))
    execute(render(pinned(revision, *FUNCTIONS), **module))
    execute(pinned(revision, *REPORTS))
    execute(
        """
        REVOKE EXECUTE ON FUNCTION public.set_blank_reference(text, vector) FROM PUBLIC;
        GRANT EXECUTE ON FUNCTION public.set_blank_reference(text, vector) TO embedding_loader;
        """
    )


def downgrade() -> None:
    execute(
        """
        DROP VIEW public.low_quality_embeddings;
        DROP FUNCTION public.set_blank_reference(text, vector);
        DROP FUNCTION public.preview_thresholds(double precision, double precision,
            double precision, double precision, double precision);
        DROP TABLE embedding_gate.blank_references;
        ALTER TABLE embedding_gate.settings DROP COLUMN blank_similarity;
        DROP INDEX public.chunks_embedding_hash_idx;
        ALTER TABLE public.embedding_quarantine DROP COLUMN embedding_model,
            DROP COLUMN quality_blank_similarity, DROP COLUMN quality_duplicate_of;
        ALTER TABLE public.chunks DROP COLUMN embedding_model,
            DROP COLUMN quality_blank_similarity, DROP COLUMN quality_duplicate_of;
        COMMENT ON COLUMN public.chunks.quality_issues IS
            'Issue codes the gate found (nan_or_inf, low_norm, low_variance, sparse); NULL when clean.';
        """
    )
    module = python_module(pinned("0003", *MODULE_0003))
    execute(render(pinned("0003", *FUNCTIONS_0003), **module))
    execute(pinned("0004", *REPORTS_0004))
    execute(
        """
        GRANT SELECT ON public.low_quality_embeddings TO embedding_loader;
        """
    )
