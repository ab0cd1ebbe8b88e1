"""duplicate_vector by a stored 64-bit hash of the embedding, and rows keep their insert order.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from migrations.sources import execute, pinned, python_module, render

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels = None
depends_on = None

TABLES = (
    "sql/incremental/0006_vector_hash.sql",
    "40b6e5fe1ecc6441f7cb276e457048e602e8b174fb17473ea9e6d6013cf7638c",
)
FUNCTIONS = (
    "sql/idempotent/gate.sql",
    "c7f6b9c497e6ed433296a96058b0b541c4f3a61fb176746b8e7ceefb2f444e41",
)
MODULE = (
    "plpython/embedding_gate.py",
    "15a0397b5fba9ac13878e5840d41e12e411b00df64fffe43c7432d12a0d61665",
)

# what 0005 had installed, put back on downgrade
FUNCTIONS_0005 = (
    "sql/idempotent/gate.sql",
    "149f3c394c8cd00e131f8adfd08183ffa37fca269831f9798dab3f3f4f6753f8",
)
MODULE_0005 = (
    "plpython/embedding_gate.py",
    "275d882052d80c39aab607041d5d4261e773c1b3afe36008d05e31b2e13b7702",
)


def upgrade() -> None:
    execute(pinned(revision, *TABLES))
    module = python_module(pinned(revision, *MODULE))
    execute(render(pinned(revision, *FUNCTIONS), **module))
    execute(
        "REVOKE EXECUTE ON FUNCTION embedding_gate._recheck_batch(text, integer, bigint[])"
        " FROM PUBLIC;"
    )


def downgrade() -> None:
    execute("DROP FUNCTION embedding_gate._recheck_batch(text, integer, bigint[]);")
    module = python_module(pinned("0005", *MODULE_0005))
    execute(render(pinned("0005", *FUNCTIONS_0005), **module))
    execute(
        """
        REVOKE EXECUTE ON FUNCTION embedding_gate._recheck_batch(text, integer) FROM PUBLIC;
        ALTER TABLE public.chunks ALTER COLUMN created_at SET DEFAULT pg_catalog.now();
        COMMENT ON COLUMN public.chunks.created_at IS NULL;
        DROP INDEX public.chunks_embedding_hash_idx;
        ALTER TABLE public.chunks DROP COLUMN embedding_hash;
        DROP FUNCTION embedding_gate.vector_hash(public.vector);
        CREATE INDEX chunks_embedding_hash_idx ON public.chunks
            USING hash (public.vector_send(embedding)) WHERE embedding IS NOT NULL;
        """
    )
