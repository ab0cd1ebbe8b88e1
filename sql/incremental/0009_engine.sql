-- 0009: which engine runs the checks (issue 25), chosen at the first upgrade and kept here:
-- plpython (PL/Python with numpy) or sql (set-based SQL over pgvector's operators, for
-- databases where plpython3u cannot be created). A deployment older than this revision
-- runs PL/Python; the revision's upgrade() records sql for a new SQL-engine deployment.
ALTER TABLE embedding_gate._deployment
    ADD COLUMN engine text NOT NULL DEFAULT 'plpython'
        CONSTRAINT _deployment_engine_check CHECK (engine IN ('plpython', 'sql'));
COMMENT ON COLUMN embedding_gate._deployment.engine IS
    'The engine of the checks: plpython (PL/Python, numpy) or sql (set-based SQL over '
    'pgvector''s operators), chosen at the first `alembic upgrade`; embedding_gate.engine shows it.';
