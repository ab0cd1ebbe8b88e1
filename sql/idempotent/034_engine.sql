-- Which engine runs the gate's checks in this database (issue 25), as the deployment chose
-- it: plpython (PL/Python with numpy) or sql (set-based SQL over pgvector's operators).
-- No secret: every role may read it (the view runs as its owner, who reads _deployment).
CREATE OR REPLACE VIEW embedding_gate.engine AS
SELECT d.engine,
       CASE d.engine
           WHEN 'plpython' THEN 'PL/Python (numpy): every check and function of the gate'
           ELSE 'SQL (pgvector''s operators): every check, trigger and function of the gate; '
                'no event triggers (a later partition or a dropped attached table waits for '
                'CALL embedding_gate.repair()), and the gate''s owner reads an attached table '
                'only where it was granted SELECT on it'
       END AS description,
       d.embedding_dim,
       d.deployed_at
FROM embedding_gate._deployment AS d;
COMMENT ON VIEW embedding_gate.engine IS
    'Which engine runs the checks (plpython or sql), chosen at the first `alembic upgrade`.';
GRANT SELECT ON embedding_gate.engine TO PUBLIC;
