"""Foundation: extensions vector and plpython3u, schema embedding_gate, documents, chunks.

Revision ID: 0001
Revises:
Create Date: 2026-11-25

The embedding dimension is chosen here, once: `alembic -x embedding_dim=384 upgrade head`,
else the EMBEDDING_DIM environment variable, else 768.
"""

import os

from alembic.util import CommandError

from migrations.sources import execute, pinned, render, x_arg

revision: str = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None

FOUNDATION = (
    "sql/incremental/0001_foundation.sql",
    "658c9f1253c9d41012defac4b340aafe34bdaf09a0e30103a186ac59199d9662",
)


def embedding_dim() -> int:
    text = x_arg("embedding_dim", os.environ.get("EMBEDDING_DIM", "768"))
    if not text.isdigit() or not 1 <= int(text) <= 16000:
        raise CommandError(f"embedding_dim must be a whole number from 1 to 16000, got {text!r}")
    return int(text)


def upgrade() -> None:
    execute(render(pinned(revision, *FOUNDATION), embedding_dim=embedding_dim()))


def downgrade() -> None:
    execute(
        """
        DROP TABLE public.chunks;
        DROP TABLE public.documents;
        DO $$
        DECLARE
            ext text;
        BEGIN
            FOR ext IN
                SELECT e FROM embedding_gate._deployment, unnest(created_extensions) AS e
            LOOP
                BEGIN
                    EXECUTE pg_catalog.format('DROP EXTENSION %I', ext);
                EXCEPTION WHEN dependent_objects_still_exist THEN
                    RAISE NOTICE 'keeping extension %: other objects use it', ext;
                END;
            END LOOP;
        END
        $$;
        DROP SCHEMA embedding_gate CASCADE;
        """
    )
