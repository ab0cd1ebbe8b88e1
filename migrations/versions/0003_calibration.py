"""blank_like for every model: each model's calibration (its mean embedding).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29

Only incremental SQL (sql/incremental/0003_*.sql): tables, columns, indexes, roles, rights.
Functions, triggers and views change in sql/idempotent/ (see DEVELOPMENT.md).
"""

from migrations.sources import execute, incremental

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None

# (file, sha256): the sha256 is None until the release that ships this revision
INCREMENTAL = ("0003_calibration.sql", None)


def upgrade() -> None:
    execute(incremental(*INCREMENTAL))


def downgrade() -> None:
    execute(
        """
        DROP FUNCTION IF EXISTS public.set_blank_calibration(text, public.vector, integer, text);
        DELETE FROM embedding_gate._sources WHERE name = '025_set_blank_calibration.sql';
        DROP TABLE embedding_gate.model_calibrations;
        COMMENT ON COLUMN embedding_gate.settings.blank_similarity IS
            'blank_like fires when the cosine similarity of an embedding to its model''s '
            'embedding of empty text is at or above this. all-MiniLM-L6-v2: "." 0.81, '
            '"..." 0.54, "ㅋㅋㅋ" 0.48, real paragraphs below 0.15; '
            'preview_thresholds(blank_similarity => ...) shows the effect.';
        """
    )
