-- Prototype designs of the insert gate, for bench_gate.py --alternatives only: the same
-- checks (the deployed module's evaluate()) wired differently. Installed in the throwaway
-- benchmark database, never by a migration.

CREATE SCHEMA IF NOT EXISTS bench;

-- The deployed package, whichever version is installed.
CREATE OR REPLACE FUNCTION bench.gate_module() RETURNS void LANGUAGE plpython3u AS $python$
if "bench_gate" not in GD:
    plpy.execute("SELECT embedding_gate._python_package()")
    GD["bench_gate"] = next(m for k, m in GD.items() if k.startswith("embedding_gate:"))
$python$;

-- (a) row level: PL/pgSQL passes embedding_gate.vector_bytes(NEW.embedding) to PL/Python, one vector a call
CREATE OR REPLACE FUNCTION bench.check_one(v bytea) RETURNS text[] LANGUAGE plpython3u AS $python$
if "bench_gate" not in GD:
    plpy.execute("SELECT bench.gate_module()")
g = GD["bench_gate"]
if "bench_t" not in GD:
    GD["bench_t"] = g.settings.current_settings(plpy)[1]
verdicts = g.checks.evaluate(g.codec.from_vector_bytes([v]), GD["bench_t"])
return verdicts.issues(0) or None
$python$;

CREATE OR REPLACE FUNCTION bench.row_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.embedding IS NOT NULL THEN
        NEW.quality_issues := bench.check_one(embedding_gate.vector_bytes(NEW.embedding));
    END IF;
    RETURN NEW;
END
$$;

-- (b) statement level: the whole transition table aggregated into one bytea
CREATE OR REPLACE FUNCTION bench.one_blob() RETURNS trigger LANGUAGE plpython3u AS $python$
if "bench_gate" not in GD:
    plpy.execute("SELECT bench.gate_module()")
g = GD["bench_gate"]
_, t = g.settings.current_settings(plpy)
r = plpy.execute(
    "SELECT array_agg(chunk_id) AS ids, string_agg(embedding_gate.vector_bytes(embedding), ''::bytea) AS blob"
    " FROM inserted WHERE embedding IS NOT NULL"
)[0]
if r["ids"]:
    v = g.checks.evaluate(g.codec.from_vector_blob(r["blob"], len(r["ids"])), t)
    g.triggers.apply_verdicts(plpy, r["ids"], [False] * len(r["ids"]), v, "flag")
$python$;

-- (c) the floor: a statement trigger that reads nothing from its transition table. What
-- PostgreSQL itself spends on an AFTER ... REFERENCING NEW TABLE trigger (it keeps every
-- inserted row for it), before any check runs.
CREATE OR REPLACE FUNCTION bench.empty_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RETURN NULL;
END
$$;

-- (d) the floor of the gate's own way of reading: every row's id and vector bytes moved
-- from the transition table into Python, 4,096 at a time, and nothing else done. Any
-- PL/Python gate that reads its rows pays this before a check runs.
CREATE OR REPLACE FUNCTION bench.read_rows() RETURNS trigger LANGUAGE plpython3u AS $python$
cursor = plpy.cursor(
    "SELECT chunk_id, embedding_gate.vector_bytes(embedding) AS v FROM inserted"
)
while cursor.fetch(4096):
    pass
$python$;
