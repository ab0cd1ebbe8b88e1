"""embedding_gate.attach(): the gate on tables it did not create, through every write path,
for vector(N), unconstrained vector and halfvec(N) columns, plain and partitioned."""

import re
from uuid import UUID

import numpy as np
import psycopg
import pytest

from tests.helpers import ENGINE, follow_partitions, forget_dropped, vec

D = 16
_rng = np.random.default_rng(15)


def good() -> np.ndarray:
    x = _rng.standard_normal(D).astype(np.float32)
    return x / np.linalg.norm(x)


ZERO = np.zeros(D)
PADDED = np.concatenate([good()[:1], np.zeros(D - 1)])  # a short vector padded with zeros


def flagged(db, table="public.items") -> dict:
    """row_id -> issues of the table's rows in low_quality_embeddings."""
    rows = db.execute(
        "SELECT row_id, issues, quarantined FROM low_quality_embeddings WHERE table_name = %s",
        [table],
    ).fetchall()
    return {r: (sorted(i), q) for r, i, q in rows}


@pytest.fixture(autouse=True)
def gate_reads_new_tables(db):
    """The gate reads an attached table as its own owner, which attach() requires to have
    SELECT on it. Deployed by a superuser (the PL/Python engine here) it has; deployed by a
    database owner who is not one (the SQL engine, GATE_ENGINE=sql, as on a managed service)
    the tables the tests create as postgres are granted to it, as their docs tell a user."""
    owner, superuser = db.execute(
        "SELECT r.rolname, r.rolsuper FROM pg_namespace AS n JOIN pg_roles AS r"
        " ON r.oid = n.nspowner WHERE n.nspname = 'embedding_gate'"
    ).fetchone()
    if not superuser:
        db.execute(f'ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO "{owner}"')
        db.execute(f'ALTER DEFAULT PRIVILEGES GRANT USAGE ON SCHEMAS TO "{owner}"')


@pytest.fixture
def items(db):
    """A framework-style table: bigint id, text, vector(16), and one row stored before."""
    db.execute(
        "CREATE TABLE items (id bigint PRIMARY KEY, body text, meta jsonb DEFAULT '{}',"
        " emb vector(16))"
    )
    db.execute(
        "INSERT INTO items (id, body, emb) VALUES (1, 'one', %s), (2, 'two', %s)",
        [vec(good()), vec(ZERO)],
    )
    return db


def attach(db, table="items", **options):
    names = ", ".join(f"{k} => %s" for k in options)
    sql = f"SELECT * FROM embedding_gate.attach(%s{', ' if options else ''}{names})"
    return db.execute(sql, [table, *options.values()]).fetchone()


def test_attach_checks_stored_rows_then_every_write(items):
    assert attach(items, embedding_column="emb", content_column="body") == ("public.items", 2, 1)
    assert flagged(items) == {"2": (["low_norm", "low_variance", "sparse"], False)}
    # multi-row INSERT, INSERT ... SELECT, COPY (text), UPDATE, upsert, MERGE
    items.execute(
        "INSERT INTO items (id, body, emb) VALUES (3, 'three', %s), (4, 'four', %s)",
        [vec(good()), vec(PADDED)],
    )
    items.execute("INSERT INTO items (id, body, emb) SELECT 5, 'five', %s::vector", [vec(ZERO)])
    with items.cursor() as cur, cur.copy("COPY items (id, body, emb) FROM STDIN") as copy:
        copy.write_row((6, "six", vec(ZERO)))
        copy.write_row((7, "seven", vec(good())))
    items.execute("UPDATE items SET emb = %s WHERE id = 2", [vec(good())])  # fixed
    items.execute("UPDATE items SET emb = %s WHERE id = 3", [vec(ZERO)])  # broken
    items.execute(
        "INSERT INTO items (id, body, emb) VALUES (7, 'seven', %s), (8, 'eight', %s)"
        " ON CONFLICT (id) DO UPDATE SET emb = excluded.emb",
        [vec(ZERO), vec(good())],
    )
    items.execute(
        "MERGE INTO items AS t USING (VALUES (8, %s::vector), (9, %s::vector)) AS s(id, emb)"
        " ON t.id = s.id WHEN MATCHED THEN UPDATE SET emb = s.emb"
        " WHEN NOT MATCHED THEN INSERT (id, body, emb) VALUES (s.id, 'nine', s.emb)",
        [vec(PADDED), vec(ZERO)],
    )
    assert sorted(flagged(items)) == ["3", "4", "5", "6", "7", "8", "9"]
    assert flagged(items)["4"] == (["sparse"], False)
    # a row deleted takes its verdict with it; the table's columns are untouched
    items.execute("DELETE FROM items WHERE id IN (3, 4)")
    assert sorted(flagged(items)) == ["5", "6", "7", "8", "9"]
    columns = items.execute(
        "SELECT string_agg(column_name, ',' ORDER BY ordinal_position)"
        " FROM information_schema.columns WHERE table_name = 'items'"
    ).fetchone()[0]
    assert columns == "id,body,meta,emb"
    summary = items.execute(
        "SELECT embedded, low_quality FROM embedding_quality_summary"
    ).fetchone()
    assert summary == (7, 5)
    items.execute("TRUNCATE items")
    assert flagged(items) == {}
    assert items.execute(
        "SELECT embedded FROM embedding_gate.attached WHERE table_name <> 'public.chunks'"
    ).fetchone() == (0,)


def test_binary_copy_and_the_row_ids_of_every_key_type(db):
    """pgai's worker writes by binary COPY into a table keyed by uuid."""
    from pgvector.psycopg import register_vector

    register_vector(db)
    db.execute(
        "CREATE TABLE store (embedding_uuid uuid PRIMARY KEY, chunk text, embedding vector(16))"
    )
    attach(db, "store", content_column="chunk")
    with (
        db.cursor() as cur,
        cur.copy(
            "COPY store (embedding_uuid, chunk, embedding) FROM STDIN WITH (FORMAT binary)"
        ) as copy,
    ):
        copy.set_types(["uuid", "text", "vector"])
        copy.write_row((UUID(int=1), "fine", good()))
        copy.write_row((UUID(int=2), "", ZERO))
    assert flagged(db, "public.store") == {
        "00000000-0000-0000-0000-000000000002": (["low_norm", "low_variance", "sparse"], False)
    }
    # the other pattern: the worker fills the embedding column by UPDATE
    db.execute(
        "UPDATE store SET embedding = %s WHERE embedding_uuid = '00000000-0000-0000-0000-000000000001'",
        [vec(PADDED)],
    )
    assert flagged(db, "public.store")["00000000-0000-0000-0000-000000000001"] == (
        ["sparse"],
        False,
    )


def test_halfvec_and_unconstrained_vector_columns(db):
    db.execute("CREATE TABLE h (id text PRIMARY KEY, body text, emb halfvec(16))")
    db.execute("CREATE TABLE u (id text PRIMARY KEY, body text, emb vector)")
    attach(db, "h", embedding_column="emb", content_column="body")
    attach(db, "u", embedding_column="emb", content_column="body")
    db.execute(
        "INSERT INTO h VALUES ('a', 'x', %s::halfvec), ('b', 'y', %s::halfvec)",
        [vec(good()), vec(ZERO)],
    )
    db.execute(
        "INSERT INTO u VALUES ('a', 'x', %s), ('b', 'y', %s), ('c', 'z', %s), ('d', 'w', %s)",
        [vec(good()), vec(ZERO), vec(np.ones(3) / 3**0.5), vec(np.zeros(5))],
    )
    assert flagged(db, "public.h") == {"b": (["low_norm", "low_variance", "sparse"], False)}
    assert sorted(flagged(db, "public.u")) == ["b", "c", "d"]  # c: flat (variance 0)
    assert db.execute(
        "SELECT table_name, embedding_type, dimension FROM embedding_gate.attached"
        " WHERE table_name <> 'public.chunks' ORDER BY 1"
    ).fetchall() == [("public.h", "halfvec", 16), ("public.u", "vector", None)]


def test_a_partitioned_table_attaches_at_its_parent(db):
    """Every partition is guarded, including one created later, whether a write names the
    parent or the partition; a partition truncated, detached or dropped takes its rows'
    verdicts along."""
    db.execute(
        "CREATE TABLE parts (doc text, id text, body text, emb vector(16), PRIMARY KEY (doc, id))"
        " PARTITION BY HASH (doc)"
    )
    db.execute("CREATE TABLE parts_0 PARTITION OF parts FOR VALUES WITH (MODULUS 2, REMAINDER 0)")
    attach(db, "parts", embedding_column="emb", id_column="id", content_column="body")
    # a partition created after attaching: the event trigger gives it the gate's triggers;
    # without one (the SQL engine) its owner runs follow_partitions()
    db.execute("CREATE TABLE parts_1 PARTITION OF parts FOR VALUES WITH (MODULUS 2, REMAINDER 1)")
    assert follow_partitions(db) == ([] if ENGINE == "plpython" else [("public.parts_1", "added")])
    rows = [
        (f"doc{i}", f"r{i}", f"text {i}", vec(ZERO if i % 3 == 0 else good())) for i in range(12)
    ]
    db.cursor().executemany("INSERT INTO parts VALUES (%s, %s, %s, %s)", rows)
    assert sorted(flagged(db, "public.parts")) == ["r0", "r3", "r6", "r9"]
    where = dict(db.execute("SELECT id, tableoid::regclass::text FROM parts").fetchall())
    assert set(where.values()) == {"parts_0", "parts_1"}  # both partitions hold rows
    # straight into each partition, the later one too
    for k, partition in enumerate(("parts_0", "parts_1")):
        doc = next(d for d, i, *_ in rows if where[i] == partition)
        db.execute(
            f"INSERT INTO {partition} VALUES (%s, %s, 'direct', %s)", [doc, f"p{k}", vec(PADDED)]
        )
    assert sorted(flagged(db, "public.parts")) == ["p0", "p1", "r0", "r3", "r6", "r9"]
    # a partition truncated takes only its own rows' verdicts
    db.execute("TRUNCATE parts_1")
    left = {i for i, p in where.items() if p == "parts_0"} | {"p0"}
    assert set(flagged(db, "public.parts")) == left & {"p0", "r0", "r3", "r6", "r9"}
    # detached, a partition is a table of its own again: no trigger, its writes unchecked
    db.execute("ALTER TABLE parts DETACH PARTITION parts_0")
    if ENGINE == "sql":
        # no event trigger took them off: its writes fail, saying what to run, until
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="follow_partitions"):
            db.execute("INSERT INTO parts_0 VALUES ('w', 'y', 'z', %s)", [vec(ZERO)])
        assert follow_partitions(db) == [("public.parts_0", "dropped")]
    db.execute("INSERT INTO parts_0 VALUES ('x', 'y', 'z', %s)", [vec(ZERO)])
    assert db.execute(
        "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'parts_0'::regclass"
    ).fetchone() == (0,)
    db.execute("CALL recheck_embeddings()")  # forgets the verdicts of rows gone with it
    assert flagged(db, "public.parts") == {}


def test_a_table_under_row_level_security_is_guarded_where_the_owner_reads_under_a_policy(items):
    """A superuser owner (PL/Python) reads every row past the policies. The SQL engine's
    owner, without BYPASSRLS (RDS's master user), would read under them: attach() guards the
    writes anyway and says, in a warning, that the rows it holds were not checked, and
    check_existing() refuses them with what to do. Its writes are checked either way."""
    items.execute("ALTER TABLE items ENABLE ROW LEVEL SECURITY")
    items.execute("CREATE POLICY only_one ON items USING (id = 1)")
    warnings = []
    items.add_notice_handler(
        lambda d: warnings.append(d.message_primary) if d.severity == "WARNING" else None
    )
    got = attach(items, embedding_column="emb", content_column="body")
    if ENGINE == "plpython":
        assert got == ("public.items", 2, 1) and warnings == []
    else:
        assert got == ("public.items", 0, 0)
        assert warnings == [
            "embedding gate: public.items is guarded from now on, but the rows it holds were not"
            " checked: the gate's owner, gate_managed_owner, would read them under the table's"
            " row-level security policies"
        ]
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="BYPASSRLS"):
            items.execute("CALL embedding_gate.check_existing('items')")
    items.execute("INSERT INTO items (id, body, emb) VALUES (3, 'three', %s)", [vec(ZERO)])
    assert "3" in flagged(items)


def test_duplicates_within_one_table(items):
    attach(items, embedding_column="emb", content_column="body")
    v = good()
    items.execute("INSERT INTO items (id, body, emb) VALUES (10, 'ten', %s)", [vec(v)])
    # the same vector: for another text (a duplicate), for the same text (not one)
    items.execute(
        "INSERT INTO items (id, body, emb) VALUES (12, 'twelve', %s), (11, 'ten', %s)",
        [vec(v), vec(v)],
    )
    items.execute("CREATE TABLE other (id int PRIMARY KEY, body text, embedding vector(16))")
    attach(items, "other", content_column="body")
    items.execute("INSERT INTO other VALUES (1, 'elsewhere', %s)", [vec(v)])  # another table
    got = items.execute(
        "SELECT table_name, row_id, duplicate_of, reason FROM low_quality_embeddings"
        " WHERE 'duplicate_vector' = ANY (issues)"
    ).fetchall()
    assert got == [
        ("public.items", "12", "10", "same embedding as row '10', whose content differs")
    ]


def test_a_scan_keeps_the_duplicates_the_writes_found(items):
    """verify_embeddings and a recheck flag the rows the writes flagged, the same count,
    when ids do not follow the order of the writes (uuids, hashes) and when a text repeats."""
    attach(items, embedding_column="emb", content_column="body")
    v, w = good(), good()
    # one statement each (autocommit): 10 repeats 20's vector with other text; 30 has 20's text
    for i, body, x in [(30, "x", v), (20, "x", v), (10, "y", v), (50, "orig", w), (40, "copy", w)]:
        items.execute("INSERT INTO items (id, body, emb) VALUES (%s, %s, %s)", [i, body, vec(x)])
    sql = (
        "SELECT row_id, duplicate_of FROM low_quality_embeddings"
        " WHERE 'duplicate_vector' = ANY (issues) ORDER BY 1"
    )
    assert items.execute(sql).fetchall() == [("10", "20"), ("40", "50")]
    counts = items.execute("SELECT counts FROM verify_embeddings(1000)").fetchone()[0]
    assert counts["duplicate_vector"] == 2
    items.execute("CALL recheck_embeddings()")
    assert items.execute(sql).fetchall() == [("10", "20"), ("40", "50")]
    # the original gone, its copy is no duplicate any more
    items.execute("DELETE FROM items WHERE id = 50")
    items.execute("CALL recheck_embeddings()")
    assert items.execute(sql).fetchall() == [("10", "20")]


def test_quarantine_and_restore(items):
    attach(items, embedding_column="emb", content_column="body")
    assert items.execute(
        "SELECT embedding_gate.set_table_settings('items', '{\"mode\": \"quarantine\"}')"
    ).fetchone() == ({"mode": "quarantine"},)
    items.execute(
        "INSERT INTO items (id, body, meta, emb) VALUES (20, 'bad', '{\"k\": 1}', %s),"
        " (21, 'good', '{}', %s)",
        [vec(good() / 100), vec(good())],
    )
    assert items.execute("SELECT id FROM items ORDER BY id").fetchall() == [(1,), (2,), (21,)]
    assert flagged(items)["20"] == (["low_norm", "low_variance"], True)
    row = items.execute("SELECT row FROM embedding_gate.quarantine").fetchone()[0]
    assert row["body"] == "bad" and row["meta"] == {"k": 1}
    # still bad: back to the quarantine; fixed: back in the table, every column as it was
    assert items.execute("SELECT embedding_gate.restore('items', '20')").fetchone() == (False,)
    fixed = vec(good())
    assert items.execute(
        "SELECT embedding_gate.restore('items', '20', jsonb_build_object('emb', %s::text))",
        [fixed],
    ).fetchone() == (True,)
    assert items.execute(
        "SELECT body, meta, emb = %s::vector FROM items WHERE id = 20", [fixed]
    ).fetchone() == ("bad", {"k": 1}, True)
    assert "20" not in flagged(items)
    with pytest.raises(psycopg.errors.NoDataFound, match='no row "20" of public.items'):
        items.execute("SELECT embedding_gate.restore('items', '20')")


def test_reject_mode_per_table(items):
    attach(items, embedding_column="emb", content_column="body")
    items.execute("SELECT embedding_gate.set_table_settings('items', '{\"mode\": \"reject\"}')")
    with pytest.raises(
        psycopg.Error, match='embedding of row "30" of public.items rejected: norm too low'
    ) as e:
        items.execute("INSERT INTO items (id, body, emb) VALUES (30, 'x', %s)", [vec(ZERO)])
    assert e.value.sqlstate == "QG001"
    assert e.value.diag.table_name == "items"
    # the global mode stays: chunks still flags
    assert items.execute("SELECT mode FROM embedding_gate.settings").fetchone() == ("flag",)
    # back to the global mode, and a threshold of its own
    items.execute(
        "SELECT embedding_gate.set_table_settings('items', '{\"mode\": null, \"min_norm\": 2}')"
    )
    items.execute("INSERT INTO items (id, body, emb) VALUES (31, 'x', %s)", [vec(good())])
    assert flagged(items)["31"] == (["low_norm"], False)


def test_detach_leaves_the_table_as_it_was(items):
    def shape():
        return items.execute(
            "SELECT (SELECT count(*) FROM pg_trigger WHERE tgrelid = 'items'::regclass),"
            " (SELECT count(*) FROM pg_index WHERE indrelid = 'items'::regclass)"
        ).fetchone()

    before = shape()
    attach(items, embedding_column="emb", content_column="body")
    assert shape() != before
    items.execute("SELECT embedding_gate.detach('items')")
    assert shape() == before
    assert flagged(items) == {}
    items.execute("INSERT INTO items (id, body, emb) VALUES (40, 'x', %s)", [vec(ZERO)])
    assert flagged(items) == {}


@pytest.mark.parametrize(
    "setup, call, error",
    [
        ("", "SELECT embedding_gate.attach('items', 'emb')", "items is attached already"),
        (
            "",
            "SELECT embedding_gate.attach('items2', 'nope')",
            'table public.items2 has no column "nope"',
        ),
        (
            "",
            "SELECT embedding_gate.attach('items2', 'body')",
            'column "body" of public.items2 is of type text',
        ),
        (
            "CREATE TABLE sp (id int PRIMARY KEY, e sparsevec(16))",
            "SELECT embedding_gate.attach('sp', 'e')",
            "of type public.sparsevec\\(16\\): the gate checks vector and halfvec",
        ),
        (
            "CREATE VIEW v AS SELECT * FROM items2",
            "SELECT embedding_gate.attach('v', 'emb')",
            "public.v is a view",
        ),
        (
            "CREATE TEMP TABLE tmp (id int PRIMARY KEY, embedding vector(16))",
            "SELECT embedding_gate.attach('tmp')",
            "is a temporary table",
        ),
        (
            "CREATE TABLE nokey (id int, embedding vector(16))",
            "SELECT embedding_gate.attach('nokey')",
            "has no single-column primary key",
        ),
        (
            "",
            "SELECT embedding_gate.attach('items2', 'emb', content_column => 'text')",
            'has no column "text" \\(content_column\\)',
        ),
        ("", "SELECT embedding_gate.attach('chunks')", "gate's own table"),
        (
            "CREATE TABLE pp (id int PRIMARY KEY, embedding vector(16)) PARTITION BY RANGE (id);"
            " CREATE TABLE pp1 PARTITION OF pp FOR VALUES FROM (0) TO (10)",
            "SELECT embedding_gate.attach('pp1')",
            "public.pp1 is a partition: attach its partitioned table",
        ),
        ("", "SELECT embedding_gate.detach('items2')", "is not attached"),
        ("", "SELECT embedding_gate.detach('chunks')", "public.chunks is the gate's own table"),
    ],
    ids=[
        "twice",
        "missing column",
        "other type",
        "sparsevec",
        "view",
        "temporary",
        "no key",
        "missing content column",
        "chunks",
        "partition",
        "detach unattached",
        "detach chunks",
    ],
)
def test_bad_input_gets_a_clear_error(items, setup, call, error):
    items.execute("CREATE TABLE items2 (id int PRIMARY KEY, body text, emb vector(16))")
    attach(items, embedding_column="emb")
    if setup:
        items.execute(setup)
    with pytest.raises(psycopg.Error, match=error):
        items.execute(call.replace("'items'", "'items'"))


def test_a_quoted_mixed_case_table_in_another_schema_with_hostile_column_names(db):
    """Every statement of an attached table names its columns quoted: names with spaces,
    quotes and semicolons are names, never SQL."""
    db.execute('CREATE SCHEMA "RAG Store"')
    db.execute(
        'CREATE TABLE "RAG Store"."Docs" ("Id"";--" text PRIMARY KEY, "Text x" text,'
        ' "Vec); DROP TABLE t; --" vector(16))'
    )
    got = attach(
        db, '"RAG Store"."Docs"', embedding_column="Vec); DROP TABLE t; --", content_column="Text x"
    )
    assert got[0] == '"RAG Store"."Docs"'
    v = good()
    db.execute(
        "INSERT INTO \"RAG Store\".\"Docs\" VALUES ('a', 't', %s), ('b', 'u', %s), ('c', 'w', %s)",
        [vec(ZERO), vec(v), vec(v)],
    )
    db.execute(
        'UPDATE "RAG Store"."Docs" SET "Vec); DROP TABLE t; --" = %s WHERE "Id"";--" = \'a\'',
        [vec(good())],
    )
    assert flagged(db, '"RAG Store"."Docs"') == {"c": (["duplicate_vector"], False)}
    db.execute("CALL recheck_embeddings()")
    assert flagged(db, '"RAG Store"."Docs"') == {"c": (["duplicate_vector"], False)}
    db.execute('SELECT embedding_gate.detach(\'"RAG Store"."Docs"\')')


def test_only_the_owner_attaches_and_tunes_and_writers_need_no_new_rights(items, postgresql_proc):
    """A role that writes the table (embedding_loader here) stores rows through the gate
    but cannot attach, detach, loosen, restore or write verdicts; the table's owner, not
    a superuser, can do all of it."""
    from tests.helpers import url_for

    items.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON items TO embedding_loader")
    items.execute("CREATE TABLE mine (id int PRIMARY KEY, body text, embedding vector(16))")
    items.execute(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'attach_owner')"
        " THEN CREATE ROLE attach_owner LOGIN; END IF; END $$"
    )
    items.execute("GRANT CREATE ON SCHEMA public TO attach_owner")
    items.execute("ALTER TABLE mine OWNER TO attach_owner")
    items.execute(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'attach_writer')"
        " THEN CREATE ROLE attach_writer LOGIN IN ROLE embedding_loader; END IF; END $$"
    )
    attach(items, embedding_column="emb", content_column="body")
    index = items.execute(
        "SELECT hash_index::text FROM embedding_gate.attached_tables"
        " WHERE table_oid = 'items'::regclass"
    ).fetchone()[0]
    p = postgresql_proc
    as_owner = psycopg.connect(
        url_for(p.host, p.port, "attach_owner", items.info.dbname), autocommit=True
    )
    writer = psycopg.connect(
        url_for(p.host, p.port, "attach_writer", items.info.dbname), autocommit=True
    )
    with as_owner, writer:
        assert attach(as_owner, "mine", content_column="body")[0] == "public.mine"
        as_owner.execute("SELECT embedding_gate.set_table_settings('mine', '{\"min_norm\": 0.2}')")
        writer.execute("INSERT INTO items (id, body, emb) VALUES (50, 'w', %s)", [vec(ZERO)])
        assert "50" in flagged(writer)  # writers read the report
        denied = [
            ("SELECT embedding_gate.attach('mine')", "only the owner of public.mine"),
            ("SELECT embedding_gate.detach('items')", "only the owner of public.items"),
            (
                "SELECT embedding_gate.set_table_settings('items', '{\"mode\": \"flag\"}')",
                "only the owner",
            ),
            ("SELECT embedding_gate.restore('items', '50')", "only the owner"),
            ("CALL embedding_gate.check_existing('items')", "only the owner"),
            ("DELETE FROM embedding_gate.verdicts", "permission denied"),
            (
                "INSERT INTO embedding_gate.verdicts (table_oid, row_id, issues, reason)"
                " VALUES ('items', '1', '{}', '')",
                "permission denied",
            ),
            ("ALTER TABLE items DISABLE TRIGGER embedding_gate_check_insert", "must be owner"),
            ("DROP INDEX " + index, "must be owner"),
        ]
        for sql, error in denied:
            with pytest.raises(psycopg.Error, match=error):
                writer.execute(sql)
        # the registry's policies: a writer's UPDATE or DELETE of it reaches no row
        for sql in (
            "UPDATE embedding_gate.attached_tables SET overrides = '{\"min_norm\": 0}'",
            "DELETE FROM embedding_gate.attached_tables",
            "DELETE FROM embedding_gate.quarantine",
            "DELETE FROM embedding_gate._row_counts",
        ):
            assert writer.execute(sql).rowcount == 0, sql
        assert items.execute(
            "SELECT overrides FROM embedding_gate.attached_tables WHERE table_oid = 'items'::regclass"
        ).fetchone() == ({},)
        # the owner of one table cannot touch another's
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="only the owner"):
            as_owner.execute("SELECT embedding_gate.detach('items')")
        as_owner.execute("SELECT embedding_gate.detach('mine')")


def test_the_command_line_attaches_lists_reports_and_detaches(items, db_url, capsys, tmp_path):
    from loader.cli import main

    assert (
        main(
            [
                "--database-url",
                db_url,
                "attach",
                "items",
                "--embedding",
                "emb",
                "--content",
                "body",
                "--model",
                "m1",
                "--batch-size",
                "1",
            ]
        )
        == 0
    )
    out = capsys.readouterr()
    assert "attached public.items" in out.out
    assert "public.items: 2 stored rows checked, 1 flagged" in out.out
    assert "1 stored rows checked, 0 flagged" in out.err  # progress, a line a batch
    assert main(["--database-url", db_url, "attached"]) == 0
    listed = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    assert listed == [
        ["public.chunks", "embedding", "vector(768)", "[embedding_model]", "flag", "0", "0", "0"],
        ["public.items", "emb", "vector(16)", "m1", "flag", "2", "1", "0"],
    ]
    page = tmp_path / "report.html"
    assert main(["--database-url", db_url, "report", "--html", str(page)]) == 0
    assert "row 2 of public.items" in capsys.readouterr().out
    html = page.read_text()
    assert re.search(r"<td>public.items</td><td[^>]*>2</td><td[^>]*>1</td>", html)  # per table
    assert "<td>public.items</td><td>2</td><td></td><td>m1</td>" in html  # the flagged row
    # bad input: the database's words, no traceback
    assert main(["--database-url", db_url, "attach", "items", "--embedding", "emb"]) == 1
    assert "error: ERROR:  public.items is attached already" in capsys.readouterr().err
    assert main(["--database-url", db_url, "detach", "items"]) == 0
    assert main(["--database-url", db_url, "attached"]) == 0
    assert "public.items" not in capsys.readouterr().out


def test_every_report_covers_attached_tables(items):
    attach(items, embedding_column="emb", content_column="body")
    items.execute("INSERT INTO documents (doc_id) VALUES ('d1')")
    chunk = np.random.default_rng(1).standard_normal(768)
    items.execute(
        "INSERT INTO chunks (chunk_id, doc_id, content, embedding) VALUES"
        " ('c1', 'd1', 'a chunk', %s)",
        [vec(chunk / np.linalg.norm(chunk))],
    )
    measures = items.execute(
        "SELECT table_name, row_id, chunk_id, issues FROM embedding_measures() ORDER BY 1, 2"
    ).fetchall()
    assert measures == [
        ("public.chunks", "c1", "c1", []),
        ("public.items", "1", None, []),
        ("public.items", "2", None, ["low_norm", "low_variance", "sparse"]),
    ]
    assert items.execute("SELECT checked, low_quality FROM verify_embeddings(10)").fetchone() == (
        3,
        1,
    )
    preview = dict(
        items.execute(
            "SELECT check_code, flagged_proposed FROM preview_thresholds(min_norm => 2)"
        ).fetchall()
    )
    assert preview["low_norm"] == 3 and preview["any"] == 3
    # a recheck with a stricter threshold of the table's own
    items.execute("SELECT embedding_gate.set_table_settings('items', '{\"min_norm\": 2}')")
    items.execute("CALL recheck_embeddings()")
    assert sorted(flagged(items)) == ["1", "2"]
    assert items.execute("SELECT low_quality FROM embedding_quality_summary").fetchone() == (2,)


def test_attach_records_the_model_s_blank_reference_from_its_server(db, db_url, server, capsys):
    """A framework's table and the server its embeddings came from: the command line
    records the model's reference and calibration, then flags the rows embedded from
    blank text."""
    from loader.cli import main
    from tests.embed_server import vector_for

    db.execute("CREATE TABLE lc (id text PRIMARY KEY, document text, embedding vector(768))")
    rows = [("a", "a real paragraph"), ("b", ""), ("c", "another paragraph")]
    for row_id, text in rows:
        db.execute("INSERT INTO lc VALUES (%s, %s, %s)", [row_id, text, vec(vector_for(text))])
    args = [
        "--database-url",
        db_url,
        "attach",
        "lc",
        "--content",
        "document",
        "--embed-url",
        server.url,
        "--model",
        "stand-in",
        "--record-reference",
    ]
    assert main(args) == 0
    assert (
        "recorded the blank reference and calibration of stand-in (768-d)"
        in capsys.readouterr().out
    )
    assert flagged(db, "public.lc") == {"b": (["blank_like"], False)}


def test_a_dropped_table_leaves_nothing_behind(items):
    """Haystack's recreate_table drops and recreates its table: the gate forgets the old
    one (verdicts, quarantined rows, counts), and the new one can be attached again."""
    attach(items, embedding_column="emb", content_column="body")
    assert flagged(items) == {"2": (["low_norm", "low_variance", "sparse"], False)}
    items.execute("DROP TABLE items")
    forget_dropped(items)  # without event triggers (the SQL engine): repair() forgets it
    assert items.execute(
        "SELECT count(*) FROM embedding_gate.attached_tables WHERE table_oid <> 'chunks'::regclass"
    ).fetchone() == (0,)
    assert items.execute("SELECT count(*) FROM embedding_gate.verdicts").fetchone() == (0,)
    assert items.execute(
        "SELECT embedded, low_quality FROM embedding_quality_summary"
    ).fetchone() == (0, 0)
    items.execute("CREATE TABLE items (id bigint PRIMARY KEY, body text, emb vector(16))")
    assert attach(items, embedding_column="emb", content_column="body") == ("public.items", 0, 0)


def test_an_update_that_changes_the_id_or_clears_the_embedding_moves_or_drops_the_verdict(items):
    attach(items, embedding_column="emb", content_column="body")
    items.execute("UPDATE items SET id = 99 WHERE id = 2")  # the flagged row, a new id
    assert flagged(items) == {"99": (["low_norm", "low_variance", "sparse"], False)}
    items.execute("UPDATE items SET body = 'renamed' WHERE id = 99")  # same vector
    assert list(flagged(items)) == ["99"]
    items.execute("UPDATE items SET emb = NULL WHERE id = 99")
    assert flagged(items) == {}
    assert items.execute(
        "SELECT embedded FROM embedding_gate.attached WHERE table_name <> 'public.chunks'"
    ).fetchone() == (1,)


def test_the_stored_rows_calibrate_a_model_that_has_only_a_reference(db):
    """As with chunks: a model with a blank reference and no calibration gets one from its
    stored rows (100 or more) when they are checked, and blank_like applies from then on."""
    rng = np.random.default_rng(60)
    unit = lambda x: x / np.linalg.norm(x)  # noqa: E731
    reference = unit(rng.standard_normal(256))
    db.execute("SELECT set_blank_reference('m256', %s)", [vec(reference)])
    db.execute("CREATE TABLE t256 (id int PRIMARY KEY, body text, embedding vector(256))")
    rows = [(i, f"text {i}", vec(unit(rng.standard_normal(256)))) for i in range(120)]
    rows.append((120, "", vec(reference)))
    db.cursor().executemany("INSERT INTO t256 VALUES (%s, %s, %s)", rows)
    attach(db, "t256", content_column="body", model="m256")
    assert db.execute(
        "SELECT sample_size, source FROM embedding_gate.model_calibrations WHERE model = 'm256'"
    ).fetchone() == (121, "stored rows")
    assert flagged(db, "public.t256") == {"120": (["blank_like"], False)}


def test_recount_counts_attached_tables_too(items):
    attach(items, embedding_column="emb", content_column="body")
    items.execute("ALTER TABLE items DISABLE TRIGGER USER")
    items.execute("INSERT INTO items (id, body, emb) VALUES (70, 'x', %s)", [vec(good())])
    items.execute("ALTER TABLE items ENABLE TRIGGER USER")
    assert items.execute(
        "SELECT embedded FROM embedding_gate.attached WHERE table_name <> 'public.chunks'"
    ).fetchone() == (2,)
    assert items.execute("SELECT * FROM embedding_gate.recount()").fetchall() == [
        ("chunks", 0),
        ("documents", 0),
        ("public.items", 3),
    ]
    assert items.execute(
        "SELECT embedded FROM embedding_gate.attached WHERE table_name <> 'public.chunks'"
    ).fetchone() == (3,)


def test_renamed_columns_stay_attached_and_a_dropped_one_is_named(items):
    """The registry keeps columns by number: an ORM migration that renames one does not
    break the table's writes; one that drops the embedding column gets a clear error."""
    attach(items, embedding_column="emb", content_column="body")
    items.execute("ALTER TABLE items RENAME COLUMN emb TO vec")
    items.execute("ALTER TABLE items RENAME COLUMN body TO text")
    items.execute("INSERT INTO items (id, text, vec) VALUES (80, 'x', %s)", [vec(ZERO)])
    assert "80" in flagged(items)
    assert items.execute(
        "SELECT embedding_column, content_column FROM embedding_gate.attached"
        " WHERE table_name = 'public.items'"
    ).fetchone() == ("vec", "text")
    items.execute("ALTER TABLE items DROP COLUMN vec CASCADE")  # the hash index goes too
    with pytest.raises(
        psycopg.errors.ObjectNotInPrerequisiteState,
        match="the embedding column attached on public.items was dropped",
    ):
        items.execute("INSERT INTO items (id, text) VALUES (81, 'y')")
    items.execute("SELECT embedding_gate.detach('items')")
    items.execute("INSERT INTO items (id, text) VALUES (81, 'y')")


def test_chunks_is_listed_and_takes_settings_of_its_own(doc):
    """chunks is a row of the registry like any attached table: listed, and with its own
    mode and thresholds, which its triggers, recheck and reports follow."""
    listed = doc.execute(
        "SELECT id_column, embedding_column, content_column, model_column, mode"
        " FROM embedding_gate.attached WHERE table_name = 'public.chunks'"
    ).fetchone()
    assert listed == ("chunk_id", "embedding", "content", "embedding_model", "flag")
    doc.execute("SELECT embedding_gate.set_table_settings('chunks', '{\"min_norm\": 2}')")
    x = np.random.default_rng(7).standard_normal(768)
    doc.execute(
        "INSERT INTO chunks (chunk_id, doc_id, content, embedding) VALUES"
        " ('c1', 'd1', 'a chunk', %s)",
        [vec(x / np.linalg.norm(x))],
    )
    assert doc.execute("SELECT quality_issues FROM chunks").fetchone() == (["low_norm"],)
    assert doc.execute("SELECT low_quality FROM verify_embeddings()").fetchone() == (1,)
    doc.execute("SELECT embedding_gate.set_table_settings('chunks', '{\"min_norm\": null}')")
    doc.execute("CALL recheck_embeddings()")
    assert doc.execute("SELECT quality_issues FROM chunks").fetchone() == (None,)
    assert doc.execute(
        "SELECT embedded, flagged FROM embedding_gate.attached WHERE table_name = 'public.chunks'"
    ).fetchone() == (1, 0)
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="recheck_embeddings"):
        doc.execute("CALL embedding_gate.check_existing('chunks')")


def test_attach_takes_an_index_built_concurrently(items, db_url):
    """A live table: the hash index is built first with CREATE INDEX CONCURRENTLY (writers go
    on), and attach takes it instead of building one; another index is refused with the
    statement to run."""
    from loader import db as loader_db
    from loader.db import connect

    items.execute("CREATE INDEX items_body_idx ON items (body)")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="CREATE INDEX CONCURRENTLY"):
        attach(items, embedding_column="emb", content_column="body", hash_index="items_body_idx")
    conn = connect(db_url)
    try:
        name = loader_db.build_hash_index(conn, "items", "emb")
    finally:
        conn.close()
    attach(items, embedding_column="emb", content_column="body", hash_index=name)
    assert items.execute(
        "SELECT hash_index FROM embedding_gate.attached_tables WHERE table_oid = 'items'::regclass"
    ).fetchone() == (name,)
    items.execute("INSERT INTO items (id, body, emb) VALUES (7, 'twin', %s)", [vec(ZERO)])
    assert flagged(items)["7"][0] == ["duplicate_vector", "low_norm", "low_variance", "sparse"]
    items.execute("SELECT embedding_gate.detach('items')")
    assert items.execute(
        "SELECT count(*) FROM pg_indexes WHERE indexname = %s", [name]
    ).fetchone() == (0,)


def test_the_rows_written_calibrate_a_model_and_the_rows_before_are_judged_once(db):
    """A model with only a blank reference: the rows written into an attached table (one
    per statement) give it a calibration at its 100th row; the blank row written before it
    is judged then, and the one after at insert."""
    rng = np.random.default_rng(61)
    unit = lambda x: x / np.linalg.norm(x)  # noqa: E731
    reference = unit(rng.standard_normal(256))
    db.execute("SELECT set_blank_reference('w256', %s)", [vec(reference)])
    db.execute("CREATE TABLE w256 (id int PRIMARY KEY, body text, embedding vector(256))")
    attach(db, "w256", content_column="body", model="w256")
    rows = [(i, f"text {i}", vec(unit(rng.standard_normal(256)))) for i in range(120)]
    rows[10] = (10, " ", vec(unit(reference + rng.standard_normal(256) * 0.01)))
    rows[110] = (110, " ", vec(unit(reference + rng.standard_normal(256) * 0.01)))
    for row in rows[:90]:
        db.execute("INSERT INTO w256 VALUES (%s, %s, %s)", row)
    assert flagged(db, "public.w256") == {}
    for row in rows[90:]:
        db.execute("INSERT INTO w256 VALUES (%s, %s, %s)", row)
    assert flagged(db, "public.w256") == {
        "10": (["blank_like"], False),
        "110": (["blank_like"], False),
    }
    assert db.execute(
        "SELECT source, spread IS NOT NULL FROM embedding_gate.model_calibrations"
        " WHERE model = 'w256'"
    ).fetchone() == ("stored rows", True)
