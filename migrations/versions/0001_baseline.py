"""Baseline of release 0.1.0: the extensions, the schema embedding_gate, documents, chunks,
the settings, the quarantine, the blank references, the role embedding_loader.

Revision ID: 0001
Revises:
Create Date: 2026-11-29

The embedding dimension is chosen here, once: `alembic -x embedding_dim=384 upgrade head`,
else the EMBEDDING_DIM environment variable, else 768. The functions, triggers and views
are applied after the revisions, from sql/idempotent/ (see migrations/env.py).

With the SQL engine (`-x engine=sql`, or chosen where plpython3u cannot be created: see
migrations/env.py) the same file runs without its PL/Python parts and with vector_bytes and
_hash_bytes in LANGUAGE sql (migrations.sources.without_plpython): the same tables, and the
same bytes and hashes. With PL/Python it runs as released.
"""

import os

from alembic.util import CommandError

from migrations.sources import (
    drop_public_objects,
    engine,
    execute,
    incremental,
    render,
    without_plpython,
    x_arg,
)

revision: str = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None

# released in 0.1.0: the file's sha256, which must never change
BASELINE = ("0001_baseline.sql", "8f781492ba8ce4e58ddb88bf7d63fa90a4cfa96afb8516b9e6711bd9359b367c")


def embedding_dim() -> int:
    text = x_arg("embedding_dim", os.environ.get("EMBEDDING_DIM", "768"))
    if not text.isdigit() or not 1 <= int(text) <= 16000:
        raise CommandError(f"embedding_dim must be a whole number from 1 to 16000, got {text!r}")
    return int(text)


def upgrade() -> None:
    baseline = incremental(*BASELINE)
    if engine() == "sql":
        baseline = without_plpython(baseline)
    execute(render(baseline, embedding_dim=embedding_dim()))


def downgrade() -> None:
    execute(
        drop_public_objects()
        + """
        DROP TABLE public.embedding_quarantine;
        DROP TABLE public.chunks;
        DROP TABLE public.documents;
        DO $$
        DECLARE
            roles text[] := (SELECT created_roles FROM embedding_gate._deployment);
            extensions text[] := (SELECT created_extensions FROM embedding_gate._deployment);
            name text;
        BEGIN
            DROP SCHEMA embedding_gate CASCADE;
            -- roles belong to the cluster: drop only the one the upgrade created
            FOREACH name IN ARRAY roles LOOP
                BEGIN
                    EXECUTE pg_catalog.format('DROP ROLE %I', name);
                EXCEPTION WHEN dependent_objects_still_exist THEN
                    RAISE NOTICE 'role % kept: it has rights in another database', name;
                END;
            END LOOP;
            FOREACH name IN ARRAY extensions LOOP
                BEGIN
                    EXECUTE pg_catalog.format('DROP EXTENSION %I', name);
                EXCEPTION WHEN dependent_objects_still_exist THEN
                    RAISE NOTICE 'keeping extension %: other objects use it', name;
                END;
            END LOOP;
        END
        $$;
        """
    )
