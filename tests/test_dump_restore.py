"""A guarded database survives pg_dump and pg_restore: nothing lost, nothing to do after.

chunks with flagged and quarantined rows, a model's blank reference, and an attached table
that once had a column dropped (a restore renumbers its columns), with settings of its own,
flagged and quarantined rows, dumped in the custom and the plain format and restored into a
new database: the reports say what they said, and every write is checked again."""

import subprocess

import numpy as np
import psycopg
import pytest

from loader import report
from loader.db import connect
from tests.helpers import PG_BINDIR, vec

D = 8
ZERO = vec(np.zeros(D))
GOOD = vec(np.array([0.5, -0.5, 0.5, -0.5, 0.3, -0.3, 0.2, 0.1]))
OTHER = vec(np.array([0.9, 0.1, -0.3, 0.2, 0.1, -0.1, 0.05, 0.2]))
CHUNK_ZERO = vec(np.zeros(768))


def tool(name: str) -> str:
    return str(PG_BINDIR / name)


@pytest.fixture
def guarded(doc, db_url):
    db = doc
    major = db.execute("SHOW server_version_num").fetchone()[0]
    local = subprocess.run([tool("pg_dump"), "--version"], capture_output=True, text=True)
    if int(major) // 10000 > int(local.stdout.split()[-1].split(".")[0]):
        pytest.skip("this machine's pg_dump is older than the server")
    fill(db)
    return db_url


def fill(db) -> None:
    """chunks with a flagged and a quarantined row, an attached table that once had a column
    dropped with settings of its own, flagged and quarantined rows, a model's blank
    reference and calibration, the thresholds changed (db: a database at head with d1)."""
    db.execute(
        "INSERT INTO chunks (chunk_id, doc_id, content, embedding) VALUES ('c1', 'd1', 'x', %s)",
        [CHUNK_ZERO],
    )
    db.execute("SET embedding_gate.mode = 'quarantine'")
    db.execute(
        "INSERT INTO chunks (chunk_id, doc_id, content, embedding) VALUES ('c2', 'd1', 'y', %s)",
        [CHUNK_ZERO],
    )
    db.execute("RESET embedding_gate.mode")
    db.execute("CREATE TABLE notes (id bigint PRIMARY KEY, old text, body text, emb vector(8))")
    db.execute("ALTER TABLE notes DROP COLUMN old")
    db.execute("INSERT INTO notes VALUES (1, 'stored', %s)", [ZERO])
    db.execute("SELECT * FROM embedding_gate.attach('notes', 'emb', content_column => 'body')")
    db.execute("SELECT embedding_gate.set_table_settings('notes', '{\"min_norm\": 0.2}')")
    db.execute("INSERT INTO notes VALUES (2, 'good', %s), (3, 'bad', %s)", [GOOD, ZERO])
    db.execute("SELECT embedding_gate.set_table_settings('notes', '{\"mode\": \"quarantine\"}')")
    db.execute("INSERT INTO notes VALUES (4, 'kept aside', %s)", [ZERO])
    db.execute("SELECT embedding_gate.set_table_settings('notes', '{\"mode\": null}')")
    db.execute("SELECT set_blank_reference('m8', %s)", [OTHER])
    db.execute("SELECT set_blank_calibration('m8', %s, 20)", [GOOD])
    db.execute("UPDATE embedding_gate.settings SET min_variance = 0.0005, min_content_length = 3")


def snapshot(url: str) -> dict:
    """What the reports and the gate's stores say."""
    with psycopg.connect(url) as conn:
        return {
            sql: conn.execute(sql).fetchall()
            for sql in (
                "SELECT table_name, row_id, issues, reason, content_preview, quarantined,"
                " duplicate_of, checked_at FROM low_quality_embeddings ORDER BY 1, 2",
                "SELECT * FROM embedding_quality_summary",
                "SELECT table_name, id_column, embedding_column, content_column, mode,"
                " overrides, embedded, flagged, quarantined FROM embedding_gate.attached"
                " ORDER BY 1",
                "SELECT row_id, row FROM embedding_gate.quarantine ORDER BY 1",
                "SELECT * FROM embedding_gate.settings",
                "SELECT chunk_id, content FROM embedding_quarantine ORDER BY 1",
                "SELECT model, reference FROM embedding_gate.blank_references ORDER BY 1",
                "SELECT model, mean, sample_size, source FROM embedding_gate.model_calibrations"
                " ORDER BY 1",
            )
        }


def new_writes_are_checked(conn) -> None:
    """A bad and a good row into the attached table notes, a bad chunk: the bad ones are
    flagged, the good one not, and notes counts 5 embedded, 3 flagged, 1 quarantined."""
    conn.execute("INSERT INTO notes VALUES (5, 'new bad', %s), (6, 'new good', %s)", [ZERO, OTHER])
    conn.execute(
        "INSERT INTO chunks (chunk_id, doc_id, content, embedding) VALUES ('c3', 'd1', 'z', %s)",
        [CHUNK_ZERO],
    )
    flagged = {
        (t, r) for t, r in conn.execute("SELECT table_name, row_id FROM low_quality_embeddings")
    }
    assert {("public.notes", "5"), ("public.chunks", "c3")} <= flagged
    assert ("public.notes", "6") not in flagged
    assert conn.execute(
        "SELECT embedded, flagged, quarantined FROM embedding_gate.attached"
        " WHERE table_name = 'public.notes'"
    ).fetchone() == (5, 3, 1)


def restore(fmt: str, source: str, target: str, path) -> subprocess.CompletedProcess:
    if fmt == "custom":
        dump = subprocess.run(
            [tool("pg_dump"), "-Fc", "-f", str(path), "-d", source],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert dump.returncode == 0, dump.stderr
        return subprocess.run(
            [tool("pg_restore"), "--exit-on-error", "-d", target, str(path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    dump = subprocess.run(
        [tool("pg_dump"), "-Fp", "-d", source], capture_output=True, text=True, timeout=120
    )
    assert dump.returncode == 0, dump.stderr
    return subprocess.run(
        [tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", target],
        input=dump.stdout,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("fmt", ["custom", "plain"])
def test_a_restored_database_says_the_same_and_checks_every_write(guarded, empty_db, tmp_path, fmt):
    before = snapshot(guarded)
    done = restore(fmt, guarded, empty_db, tmp_path / "gate.dump")
    assert done.returncode == 0, done.stderr
    assert "ERROR" not in done.stderr, done.stderr
    assert snapshot(empty_db) == before
    with psycopg.connect(empty_db, autocommit=True) as conn:
        # writes go on, and new bad rows are caught, in chunks and in the attached table
        new_writes_are_checked(conn)
        # a quarantined row goes back; the table can be detached
        assert conn.execute(
            "SELECT embedding_gate.restore('notes', '4', jsonb_build_object('emb', %s::text))",
            [GOOD],
        ).fetchone() == (True,)
        conn.execute("SELECT embedding_gate.detach('notes')")
        assert conn.execute(
            "SELECT count(*) FROM pg_indexes WHERE tablename = 'notes'"
        ).fetchone() == (1,)  # its primary key: the gate's index went with it


def data_only(fmt: str, source: str, target: str, path, replica: bool):
    """pg_dump --data-only of source loaded into target: pg_restore (custom) or psql
    (plain), as they run by default, or under session_replication_role = replica (the
    table triggers off, the gate's merging ones on)."""
    import os

    env = {**os.environ, "PGOPTIONS": "-c session_replication_role=replica"} if replica else None
    if fmt == "custom":
        dump = subprocess.run(
            [tool("pg_dump"), "-Fc", "--data-only", "-f", str(path), "-d", source],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert dump.returncode == 0, dump.stderr
        return subprocess.run(
            [tool("pg_restore"), "--exit-on-error", "--data-only", "-d", target, str(path)],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
    dump = subprocess.run(
        [tool("pg_dump"), "-Fp", "--data-only", "-d", source],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dump.returncode == 0, dump.stderr
    return subprocess.run(
        [tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", target],
        input=dump.stdout,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def without_checked_at(shot: dict) -> dict:
    """The snapshot without the verdicts' checked_at (a load that fires the gate's triggers
    judges the chunks again, now)."""
    return {sql: [r[:-1] if "checked_at" in sql else r for r in rows] for sql, rows in shot.items()}


@pytest.mark.parametrize(
    ("fmt", "replica"), [("custom", False), ("plain", False), ("custom", True)]
)
def test_a_data_only_restore_into_a_fresh_deployment(guarded, empty_db, tmp_path, fmt, replica):
    """alembic upgrade head on a new database, the application's table created (not
    attached), then the data of the guarded database: the load has no error (the gate's
    own rows that the fresh deployment has are merged: its deployment row, functions and
    revision stay, the dumped settings and registry replace its own), embedding_gate.attached
    says what to run until CALL embedding_gate.repair() has given the attached
    table its triggers and index and counted again; then the reports say what they said
    and writes are checked. Under session_replication_role = replica no table trigger fires
    in the load, so even reject mode (which a load that judges the chunks again would apply
    to the flagged chunks it brings) leaves every row as dumped, checked_at included."""
    from tests.helpers import alembic

    if replica:  # a load that judged the chunks again would fail on the flagged ones
        with psycopg.connect(guarded, autocommit=True) as conn:
            conn.execute("UPDATE embedding_gate.settings SET mode = 'reject'")
    before = snapshot(guarded)
    alembic(empty_db, "upgrade", "head")
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE notes (id bigint PRIMARY KEY, body text, emb vector(8))")
    done = data_only(fmt, guarded, empty_db, tmp_path / "data.dump", replica)
    assert done.returncode == 0, done.stderr
    assert "ERROR" not in done.stderr, done.stderr
    with psycopg.connect(empty_db, autocommit=True) as conn:
        needs = conn.execute("SELECT table_name, needs FROM embedding_gate.attached ORDER BY 1")
        for table, what in needs:
            assert what.startswith("CALL embedding_gate.repair(): rows were loaded"), table
        if not replica:  # the load's triggers counted chunks and documents again
            assert conn.execute(
                "SELECT chunks, documents FROM embedding_quality_summary"
            ).fetchone() == (2, 2)  # 1 and 1, each counted twice
        # the summary and the command line's report say it too, per table
        tables = conn.execute("SELECT tables FROM embedding_quality_summary").fetchone()[0]
        assert {t: f["needs"][:26] for t, f in tables.items()} == {
            "public.chunks": "CALL embedding_gate.repair",
            "public.notes": "CALL embedding_gate.repair",
        }
        c2 = connect(empty_db)
        try:
            text = report.report(c2)
        finally:
            c2.close()
        assert "Needs (public.notes): CALL embedding_gate.repair(): rows were loaded" in text
        conn.execute("CALL embedding_gate.repair()")
        assert conn.execute(
            "SELECT count(*) FROM embedding_gate.attached WHERE needs IS NOT NULL"
        ).fetchone() == (0,)
        tables = conn.execute("SELECT tables FROM embedding_quality_summary").fetchone()[0]
        assert not any("needs" in f for f in tables.values())
    after = snapshot(empty_db)
    if replica:
        assert after == before
    else:
        assert without_checked_at(after) == without_checked_at(before)
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute("UPDATE embedding_gate.settings SET mode = 'flag'")
        new_writes_are_checked(conn)
        assert conn.execute(
            "SELECT chunks, documents FROM embedding_quality_summary"
        ).fetchone() == (2, 1)
        # the next upgrade finds the deployment's own revision and functions
        assert conn.execute("SELECT count(*) FROM embedding_gate_alembic_version").fetchone() == (
            1,
        )
    alembic(empty_db, "upgrade", "head")


def test_moves_and_renames_after_attach(doc):
    """RENAME, SET SCHEMA and renamed columns keep the gate on the table (detach still finds
    its index); a copy made with LIKE ... INCLUDING ALL is a table of its own, not guarded
    until attached; an embedding column turned into halfvec is refused by PostgreSQL while
    the gate's index is on it (detach, alter, attach again)."""
    db = doc
    db.execute("CREATE TABLE notes (id bigint PRIMARY KEY, body text, emb vector(8))")
    db.execute("SELECT * FROM embedding_gate.attach('notes', 'emb', content_column => 'body')")
    db.execute("CREATE SCHEMA archive")
    db.execute("ALTER TABLE notes RENAME TO kept")
    db.execute("ALTER TABLE kept SET SCHEMA archive")
    db.execute("ALTER TABLE archive.kept RENAME COLUMN body TO text_body")
    db.execute("ALTER TABLE archive.kept RENAME COLUMN id TO key")
    db.execute("INSERT INTO archive.kept VALUES (1, 'a', %s), (2, 'b', %s)", [ZERO, ZERO])
    assert db.execute(
        "SELECT row_id, issues FROM low_quality_embeddings WHERE table_name = 'archive.kept'"
        " ORDER BY 1"
    ).fetchall() == [
        ("1", ["low_norm", "low_variance", "sparse"]),
        ("2", ["low_norm", "low_variance", "sparse", "duplicate_vector"]),
    ]
    assert db.execute(
        "SELECT id_column, content_column FROM embedding_gate.attached"
        " WHERE table_name = 'archive.kept'"
    ).fetchone() == ("key", "text_body")
    with pytest.raises(psycopg.Error, match="vector_hash"):
        db.execute("ALTER TABLE archive.kept ALTER COLUMN emb TYPE halfvec(8)")
    db.execute("CREATE TABLE archive.copy (LIKE archive.kept INCLUDING ALL)")
    db.execute("INSERT INTO archive.copy VALUES (1, 'a', %s)", [ZERO])
    assert db.execute(
        "SELECT count(*) FROM low_quality_embeddings WHERE table_name = 'archive.copy'"
    ).fetchone() == (0,)
    db.execute("SELECT embedding_gate.detach('archive.kept')")
    assert db.execute(
        "SELECT count(*) FROM pg_indexes WHERE schemaname = 'archive' AND tablename = 'kept'"
    ).fetchone() == (1,)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_cluster(data, tmp_path) -> int:
    """Start the cluster in data on a free loopback port (its log beside it); the port."""
    port = _free_port()
    log = data.with_suffix(".log")
    start = subprocess.run(
        [
            tool("pg_ctl"),
            "-D",
            str(data),
            "-w",
            "-l",
            str(log),
            "-o",
            f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={tmp_path}",
            "start",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert start.returncode == 0, start.stderr + (log.read_text() if log.exists() else "")
    return port


def test_a_streaming_standby_reads_the_reports_and_checks_writes_once_promoted(
    guarded, postgresql_proc, tmp_path
):
    """pg_basebackup -R of the guarded cluster: on the standby (read-only) the reports,
    verify_embeddings and the command line's report run; promoted, it checks writes."""
    from tests.helpers import url_for

    p = postgresql_proc
    data = tmp_path / "standby"
    backup = subprocess.run(
        [
            tool("pg_basebackup"),
            "-h",
            p.host,
            "-p",
            str(p.port),
            "-U",
            p.user,
            "-D",
            str(data),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert backup.returncode == 0, backup.stderr
    port = start_cluster(data, tmp_path)
    dbname = guarded.rsplit("/", 1)[1]
    standby = url_for("127.0.0.1", port, p.user, dbname)
    try:
        with psycopg.connect(guarded) as primary:
            expected = {
                sql: primary.execute(sql).fetchall()
                for sql in (
                    "SELECT table_name, row_id, issues FROM low_quality_embeddings ORDER BY 1, 2",
                    "SELECT * FROM embedding_quality_summary",
                )
            }
        deadline = 60
        import time

        while True:  # the standby has replayed up to its backup: wait for it to accept
            try:
                conn = psycopg.connect(standby, autocommit=True)
                break
            except psycopg.OperationalError:
                deadline -= 1
                assert deadline > 0, (tmp_path / "standby.log").read_text()
                time.sleep(1)
        with conn:
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
            for sql, rows in expected.items():
                assert conn.execute(sql).fetchall() == rows
            checked = conn.execute("SELECT checked FROM verify_embeddings(100)").fetchone()
            assert checked[0] > 0
            conn.execute("SELECT * FROM embedding_measures()").fetchall()
            c2 = connect(standby)
            try:
                assert "Low-quality embeddings" in report.report(c2)
            finally:
                c2.close()
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                conn.execute("INSERT INTO notes VALUES (9, 'x', %s)", [ZERO])
        promote = subprocess.run(
            [tool("pg_ctl"), "-D", str(data), "-w", "promote"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert promote.returncode == 0, promote.stderr
        with psycopg.connect(standby, autocommit=True) as conn:
            conn.execute("INSERT INTO notes VALUES (9, 'new bad', %s)", [ZERO])
            assert conn.execute(
                "SELECT issues FROM low_quality_embeddings WHERE row_id = '9'"
            ).fetchone() == (["low_norm", "low_variance", "sparse", "duplicate_vector"],)
    finally:
        subprocess.run(
            [tool("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=120,
        )


def test_pg_dumpall_of_the_cluster_into_a_new_cluster(guarded, postgresql_proc, tmp_path):
    """pg_dumpall of the whole cluster (roles, every database) into a new cluster: the
    guarded database says the same there and checks its writes."""
    from tests.helpers import url_for

    p = postgresql_proc
    data = tmp_path / "other"
    initdb(data, p.user)
    port = start_cluster(data, tmp_path)
    try:
        dump = subprocess.run(
            [tool("pg_dumpall"), "-h", p.host, "-p", str(p.port), "-U", p.user],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert dump.returncode == 0, dump.stderr
        loaded = subprocess.run(
            [
                tool("psql"),
                "-X",
                "-q",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                p.user,
                "-d",
                "postgres",
            ],
            input=dump.stdout,
            capture_output=True,
            text=True,
            timeout=600,
        )
        # the one error a dumpall into a new cluster gives: its own superuser exists there
        errors = [line for line in loaded.stderr.splitlines() if "ERROR" in line]
        assert all(f'role "{p.user}" already exists' in line for line in errors), errors
        dbname = guarded.rsplit("/", 1)[1]
        other = url_for("127.0.0.1", port, p.user, dbname)
        assert snapshot(other) == snapshot(guarded)
        with psycopg.connect(other, autocommit=True) as conn:
            conn.execute("INSERT INTO notes VALUES (9, 'new bad', %s)", [ZERO])
            assert conn.execute(
                "SELECT count(*) FROM low_quality_embeddings WHERE row_id = '9'"
            ).fetchone() == (1,)
    finally:
        subprocess.run(
            [tool("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=120,
        )


def initdb(data, user: str) -> None:
    init = subprocess.run(
        [
            tool("initdb"),
            "-D",
            str(data),
            "-U",
            user,
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert init.returncode == 0, init.stderr


def stop_cluster(data, mode: str = "fast") -> None:
    subprocess.run(
        [tool("pg_ctl"), "-D", str(data), "-m", mode, "-w", "stop"],
        capture_output=True,
        timeout=120,
    )


def test_pg_upgrade_of_a_guarded_cluster(postgresql_proc, tmp_path):
    """pg_upgrade (this machine's major to itself, the only pair here) of a cluster with a
    guarded database: the reports say the same, the registry holds the same oids
    (pg_upgrade keeps them, and column numbers), and writes to chunks and to the attached
    table are checked."""
    from tests.helpers import alembic, url_for

    user = postgresql_proc.user
    old, new, work = tmp_path / "old", tmp_path / "new", tmp_path / "work"
    work.mkdir()
    initdb(old, user)
    port = start_cluster(old, tmp_path)
    try:
        with psycopg.connect(url_for("127.0.0.1", port, user, "postgres"), autocommit=True) as c:
            c.execute("CREATE DATABASE guarded")
        url = url_for("127.0.0.1", port, user, "guarded")
        alembic(url, "upgrade", "head")
        with psycopg.connect(url, autocommit=True) as db:
            db.execute("INSERT INTO documents (doc_id) VALUES ('d1')")
            fill(db)
            oids = db.execute(
                "SELECT table_oid::oid, table_oid::text FROM embedding_gate._attached ORDER BY 1"
            ).fetchall()
        before = snapshot(url)
    finally:
        stop_cluster(old)
    initdb(new, user)
    upgrade = subprocess.run(
        [
            tool("pg_upgrade"),
            "-b",
            str(PG_BINDIR),
            "-B",
            str(PG_BINDIR),
            "-d",
            str(old),
            "-D",
            str(new),
            "-U",
            user,
            "-p",
            str(_free_port()),
            "-P",
            str(_free_port()),
            "-s",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=work,
    )
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    port = start_cluster(new, tmp_path)
    try:
        url = url_for("127.0.0.1", port, user, "guarded")
        assert snapshot(url) == before
        with psycopg.connect(url, autocommit=True) as conn:
            assert (
                conn.execute(
                    "SELECT table_oid::oid, table_oid::text FROM embedding_gate._attached ORDER BY 1"
                ).fetchall()
                == oids
            )
            assert conn.execute(
                "SELECT count(*) FROM embedding_gate.attached WHERE needs IS NOT NULL"
            ).fetchone() == (0,)
            new_writes_are_checked(conn)
    finally:
        stop_cluster(new, "immediate")
