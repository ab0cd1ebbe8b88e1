"""Roles: embedding_loader writes the corpus and reads the reports, and nothing more.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from migrations.sources import execute, pinned

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None

ROLES = (
    "sql/incremental/0004_roles.sql",
    "812a10388bee8ad3716a79fd898c498b1108e2855f918535f5d6926167bd3449",
)
REPORTS = (
    "sql/idempotent/reports.sql",
    "7eb0621a67dcb1ed3d5ab2b0072f08c67c7eacba7f99563264e31705995bbf8d",
)

# what 0003 installed, put back on downgrade
REPORTS_0003 = (
    "sql/idempotent/reports.sql",
    "bcd0d3275eec082e9a95d45ed4d00b3ca97e398ff3ba82ca51a99b5541c07c5f",
)


def upgrade() -> None:
    execute(pinned(revision, *REPORTS))
    execute(pinned(revision, *ROLES))


def downgrade() -> None:
    execute(
        """
        REVOKE ALL ON public.low_quality_embeddings, public.short_content_chunks,
            public.embedding_quality_summary FROM embedding_loader;
        REVOKE ALL ON public.documents, public.chunks, public.embedding_quarantine
            FROM embedding_loader;
        REVOKE ALL ON embedding_gate.settings FROM embedding_loader;
        REVOKE ALL ON SCHEMA embedding_gate FROM embedding_loader;
        REVOKE ALL ON FUNCTION embedding_gate._short_content_chunks(),
            embedding_gate._quality_summary() FROM embedding_loader;
        GRANT EXECUTE ON FUNCTION embedding_gate._short_content_chunks(),
            embedding_gate._quality_summary(), embedding_gate._recheck_batch(text, integer),
            embedding_gate._check_inserted(), embedding_gate._check_updated(),
            embedding_gate._raise_rejected() TO PUBLIC;
        GRANT EXECUTE ON PROCEDURE public.recheck_embeddings(integer, bigint, bigint) TO PUBLIC;
        DO $$
        BEGIN
            IF 'embedding_loader' = ANY (SELECT unnest(created_roles)
                                         FROM embedding_gate._deployment) THEN
                BEGIN
                    DROP ROLE embedding_loader;
                EXCEPTION WHEN dependent_objects_still_exist THEN
                    RAISE NOTICE 'role embedding_loader kept: it has rights in another database';
                END;
            END IF;
        END
        $$;
        ALTER TABLE embedding_gate._deployment DROP COLUMN created_roles;
        """
    )
    execute(pinned("0003", *REPORTS_0003))
