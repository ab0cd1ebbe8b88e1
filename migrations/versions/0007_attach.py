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


def downgrade() -> None:
    # every attached table goes back to what it was: no trigger, no index of the gate's
    execute(
        """
        DO $$
        DECLARE
            t regclass;
        BEGIN
            FOR t IN SELECT a.table_oid FROM embedding_gate.attached_tables AS a
                     WHERE EXISTS (SELECT FROM pg_class AS c WHERE c.oid = a.table_oid) LOOP
                PERFORM embedding_gate.detach(t, drop_quarantined => true);
            END LOOP;
        END
        $$;
        DROP EVENT TRIGGER IF EXISTS embedding_gate_forget_dropped;
        DROP FUNCTION IF EXISTS embedding_gate._forget_dropped();
        DROP FUNCTION IF EXISTS embedding_gate.attach(regclass, name, name, name, text, name, boolean);
        DROP FUNCTION IF EXISTS embedding_gate.detach(regclass);
        DROP FUNCTION IF EXISTS embedding_gate._register(regclass, name, name, text, integer, name, text, name, regclass);
        DROP FUNCTION IF EXISTS embedding_gate._unregister(regclass);
        DROP FUNCTION IF EXISTS embedding_gate._may_own(regclass);
        DROP FUNCTION IF EXISTS embedding_gate.set_table_settings(regclass, jsonb);
        DROP FUNCTION IF EXISTS embedding_gate.restore(regclass, text);
        DROP FUNCTION IF EXISTS embedding_gate._check_attached();
        DROP FUNCTION IF EXISTS embedding_gate._forget_rows();
        DROP FUNCTION IF EXISTS embedding_gate._check_existing(regclass, text, integer);
        DROP PROCEDURE IF EXISTS embedding_gate.check_existing(regclass, integer);
        DROP FUNCTION IF EXISTS embedding_gate.halfvec_bytes(public.halfvec);
        DROP FUNCTION IF EXISTS embedding_gate.halfvec_hash(public.halfvec);
        DROP FUNCTION IF EXISTS embedding_gate._hash_halfvec(public.halfvec, bigint);
        DROP VIEW IF EXISTS embedding_gate.attached;
        -- CASCADE: the report views read these tables. Every idempotent file is then
        -- re-applied by the next `upgrade head` of whichever tree runs it.
        DROP TABLE embedding_gate.quarantine, embedding_gate.verdicts,
            embedding_gate.attached_tables CASCADE;
        DELETE FROM embedding_gate._sources;
        DELETE FROM embedding_gate._row_counts WHERE relation NOT IN ('chunks', 'documents');
        ALTER TABLE embedding_gate._row_counts DROP CONSTRAINT _row_counts_relation_check;
        ALTER TABLE embedding_gate._row_counts ADD CONSTRAINT _row_counts_relation_check
            CHECK (relation IN ('chunks', 'documents'));
        """
    )
