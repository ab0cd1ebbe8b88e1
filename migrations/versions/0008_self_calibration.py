"""The gate calibrates itself from the rows it sees; more than one reference a model;
model_mismatch (a model's spread, its threshold).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02

Only incremental SQL (sql/incremental/0008_*.sql): tables, columns, indexes, roles, rights.
Functions, triggers and views change in sql/idempotent/ (see DEVELOPMENT.md).
"""

from migrations.sources import execute, incremental

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels = None
depends_on = None

# (file, sha256): the sha256 is None until the release that ships this revision
INCREMENTAL = ("0008_self_calibration.sql", None)


def upgrade() -> None:
    execute(incremental(*INCREMENTAL))


def downgrade() -> None:
    execute(
        """
        DROP FUNCTION IF EXISTS embedding_gate._add_calibration(text, integer, bigint,
            public.vector, public.vector, integer);
        DROP FUNCTION IF EXISTS public.set_degenerate_reference(text, public.vector, text, text);
        -- the older preview_thresholds() and embedding_measures() come back with the older
        -- tree's `alembic upgrade head`
        DROP FUNCTION IF EXISTS public.preview_thresholds(double precision, double precision,
            double precision, double precision, double precision, double precision);
        DROP FUNCTION IF EXISTS public.embedding_measures(double precision);
        DELETE FROM embedding_gate._sources
            WHERE name IN ('016_calibration_deltas.sql', '029_set_degenerate_reference.sql',
                           '022_embedding_measures.sql', '023_preview_thresholds.sql');
        DROP TABLE embedding_gate._calibration_deltas;
        DROP TABLE embedding_gate.degenerate_references;
        ALTER TABLE embedding_gate.model_calibrations DROP COLUMN spread;
        ALTER TABLE embedding_gate.settings DROP COLUMN max_silent_deviation;
        UPDATE embedding_gate.settings SET blank_similarity = 0.4 WHERE blank_similarity = 0.35;
        ALTER TABLE embedding_gate.settings ALTER COLUMN blank_similarity SET DEFAULT 0.4;
        """
    )
