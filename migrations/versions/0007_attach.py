"""Attach: the gate guards tables it did not create (registry, verdicts, quarantine).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29

Only incremental SQL (sql/incremental/0007_*.sql): tables, columns, indexes, roles, rights.
Functions, triggers and views change in sql/idempotent/ (see DEVELOPMENT.md).
"""

from migrations.sources import execute, incremental

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels = None
depends_on = None

# (file, sha256): the sha256 is None until the release that ships this revision
INCREMENTAL = ("0007_attach.sql", None)


def upgrade() -> None:
    execute(incremental(*INCREMENTAL))


# the functions and procedures of the idempotent files this revision's tables serve
ROUTINES = (
    "attach",
    "detach",
    "set_table_settings",
    "restore",
    "check_existing",
    "_check_existing",
    "_register",
    "_unregister",
    "_may_own",
    "_qualified",
    "_refuse_unless_owner",
    "_add_triggers",
    "_drop_triggers",
    "_check_attached",
    "_forget_rows",
    "_forget_dropped",
    "_follow_partitions",
    "_move_quarantined",
    "_pending_moves",
    "_quarantined",
    "_take_quarantined",
    "_quarantine_holds",
    "_gate_trigger",
    "_caller_may_check",
    "_refusal",
    "_reads_all",
    "_policies_trusted",
    "_lock_for_reading",
    "_visible",
    "halfvec_bytes",
    "halfvec_hash",
    "_hash_halfvec",
    "repair",
    "_merge_restored",
)


def downgrade() -> None:
    # every attached table goes back to what it was: no trigger, no index of the gate's
    names = ", ".join(f"'{name}'" for name in ROUTINES)
    execute(
        f"""
        DROP EVENT TRIGGER IF EXISTS embedding_gate_forget_dropped;
        DROP EVENT TRIGGER IF EXISTS embedding_gate_follow_partitions;
        -- the data-only load's merge triggers (sql/idempotent/028) on tables older than this
        DROP TRIGGER IF EXISTS embedding_gate_merge_restored ON embedding_gate._deployment;
        DROP TRIGGER IF EXISTS embedding_gate_merge_restored ON embedding_gate._sources;
        DROP TRIGGER IF EXISTS embedding_gate_merge_restored ON embedding_gate.settings;
        DO $$
        BEGIN
            IF pg_catalog.to_regclass('public.embedding_gate_alembic_version') IS NOT NULL THEN
                DROP TRIGGER IF EXISTS embedding_gate_merge_restored
                    ON public.embedding_gate_alembic_version;
            END IF;
        END
        $$;
        DO $$
        DECLARE
            t regclass;
        BEGIN
            FOR t IN SELECT a.table_oid FROM embedding_gate.attached_tables AS a
                     WHERE EXISTS (SELECT FROM pg_class AS c WHERE c.oid = a.table_oid)
                       AND a.table_oid <> 'public.chunks'::regclass LOOP
                PERFORM embedding_gate.detach(t, drop_quarantined => true);
            END LOOP;
        END
        $$;
        DROP VIEW IF EXISTS embedding_gate.attached;
        -- CASCADE: the report views read these tables (and _row_counts' policy). Every
        -- idempotent file is then re-applied by the next `upgrade head` of whichever tree
        -- runs it.
        DROP VIEW embedding_gate.attached_tables CASCADE;
        DROP TABLE embedding_gate.quarantine, embedding_gate.verdicts,
            embedding_gate._attached CASCADE;
        -- (the summary's function gained a column here: an older tree makes its own)
        DROP VIEW IF EXISTS public.embedding_quality_summary;
        DROP FUNCTION IF EXISTS embedding_gate._quality_summary();
        ALTER TABLE embedding_gate._row_counts DISABLE ROW LEVEL SECURITY;
        REVOKE ALL ON embedding_gate._row_counts FROM PUBLIC;
        REVOKE SELECT ON embedding_gate.settings, embedding_gate.blank_references,
            embedding_gate.model_calibrations FROM PUBLIC;
        DELETE FROM embedding_gate._sources;
        DO $$
        DECLARE
            r regprocedure;
        BEGIN
            -- in the order of ROUTINES: halfvec_hash calls _hash_halfvec
            FOR r IN SELECT p.oid FROM pg_proc AS p
                     WHERE p.pronamespace = 'embedding_gate'::regnamespace
                       AND p.proname IN ({names})
                     ORDER BY array_position(ARRAY[{names}]::name[], p.proname) LOOP
                EXECUTE format('DROP ROUTINE %s', r);
            END LOOP;
        END
        $$;
        DELETE FROM embedding_gate._row_counts WHERE relation NOT IN ('chunks', 'documents');
        ALTER TABLE embedding_gate._deployment DROP COLUMN data_loaded_at;
        ALTER TABLE embedding_gate._row_counts DROP CONSTRAINT _row_counts_relation_check;
        ALTER TABLE embedding_gate._row_counts ADD CONSTRAINT _row_counts_relation_check
            CHECK (relation IN ('chunks', 'documents'));
        """
    )
