"""pgspot (timescale's linter for SQL security smells) over the whole deployment script.

The script is what `alembic upgrade head --sql` prints (with either engine, `-x engine=`); like an online upgrade, it pins
search_path to pg_catalog, pg_temp first. pgspot cannot read PL/Python (its bodies are
held by the AST test in test_security) and stops at a SQL-standard body (`RETURN expr`), so
those two functions, which look nothing up when they run, are left out and named. Every
finding pgspot still reports must be one of the few below, each with its reason; a new one
fails the test."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

pglast = pytest.importorskip("pglast", reason="pgspot and pglast come with the dev extra")

# finding (as pgspot words it, without the line) -> why it stays
ACCEPTED = {
    # CREATE OR REPLACE in public: the user-facing functions and views live where users
    # expect them. A role that created one of these names first would own it, and CREATE
    # OR REPLACE by the deploying role then fails ("must be owner"): the deployment stops,
    # it never adopts the other role's object (and PostgreSQL 15+ grants no CREATE on public).
    **{
        f"PS002: Unsafe function creation: public.{name}": "public API, see above"
        for name in (
            "verify_embeddings",
            "recheck_embeddings",
            "embedding_measures",
            "preview_thresholds",
            "set_blank_reference",
            "set_blank_calibration",
            "set_degenerate_reference",
        )
    },
    **{
        f"PS015: Unsafe view creation: public.{name}": "public API, see above"
        for name in (
            "low_quality_embeddings",
            "short_content_chunks",
            "embedding_quality_summary",
            "embedding_quality_by_day",
        )
    },
    # procedures that COMMIT cannot carry a SET clause; each pins search_path with
    # set_config as its first statement and again after every COMMIT
    "PS005: Function without explicit search_path: public.recheck_embeddings": "procedure",
    "PS005: Function without explicit search_path: embedding_gate.check_existing": "procedure",
}


def deployment_script(engine: str = "plpython") -> str:
    alembic = Path(sys.executable).parent / "alembic"
    run = subprocess.run(
        [str(alembic), "-c", str(ROOT / "alembic.ini"), "-x", f"engine={engine}"]
        + ["upgrade", "head", "--sql"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none", "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    # as the deployment runs it: search_path pinned first (migrations/env.py)
    assert run.stdout.startswith("SET search_path = pg_catalog, pg_temp;")
    return run.stdout


# the functions with a SQL-standard body (RETURN expr), which pgspot cannot read, per engine
# (the SQL engine's vector_bytes, _hash_bytes and halfvec_bytes are such too: LANGUAGE sql
# over pgvector's send functions instead of LANGUAGE internal)
STANDARD_BODIES = {
    "plpython": ["embedding_gate.halfvec_hash", "embedding_gate.vector_hash"],
    "sql": [
        "embedding_gate._hash_bytes",
        "embedding_gate.halfvec_bytes",
        "embedding_gate.halfvec_hash",
        "embedding_gate.vector_bytes",
        "embedding_gate.vector_hash",
    ],
}


@pytest.mark.parametrize("engine", ["plpython", "sql"])
def test_pgspot_reports_nothing_but_the_accepted_findings(tmp_path, engine):
    script = deployment_script(engine)
    kept, skipped = [], []
    for raw in pglast.parse_sql(script):
        stmt = raw.stmt
        if type(stmt).__name__ == "CreateFunctionStmt" and stmt.sql_body is not None:
            skipped.append(".".join(n.sval for n in stmt.funcname))
            continue
        end = raw.stmt_location + raw.stmt_len if raw.stmt_len else len(script)
        kept.append(script[raw.stmt_location : end].strip() + ";\n")
    assert sorted(skipped) == STANDARD_BODIES[engine]
    path = tmp_path / "deploy.sql"
    path.write_text("".join(kept))
    run = subprocess.run(
        [
            str(Path(sys.executable).parent / "pgspot"),
            "--ignore-lang=plpython3u",
            "--ignore-lang=internal",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    findings = {
        re.sub(r"\(.*\)| at line \d+", "", line).strip()
        for line in run.stdout.splitlines()
        if re.match(r"PS\d+:", line)
    }
    assert "list index out of range" not in run.stdout + run.stderr, run.stdout
    assert findings, "pgspot read nothing"  # the accepted ones at least
    assert findings <= set(ACCEPTED), sorted(findings - set(ACCEPTED))
