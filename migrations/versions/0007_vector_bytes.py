"""The gate reads and hashes an embedding's stored bytes instead of pgvector's vector_send().

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from migrations.sources import execute, pinned, python_module, render

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels = None
depends_on = None

TABLES = (
    "sql/incremental/0007_vector_bytes.sql",
    "65b6d877be4c791390191eb44129a4efdd50a84f7c811de417a6b3a4eb738347",
)
FUNCTIONS = (
    "sql/idempotent/gate.sql",
    "c7f6b9c497e6ed433296a96058b0b541c4f3a61fb176746b8e7ceefb2f444e41",
)
MODULE = (
    "plpython/embedding_gate.py",
    "67f4124f9015589c7f97554d488200a7f4c2819f969fc3e5fbc9372a1a5651e6",
)

# what 0006 had installed, put back on downgrade
FUNCTIONS_0006 = (
    "sql/idempotent/gate.sql",
    "c7f6b9c497e6ed433296a96058b0b541c4f3a61fb176746b8e7ceefb2f444e41",
)
MODULE_0006 = (
    "plpython/embedding_gate.py",
    "15a0397b5fba9ac13878e5840d41e12e411b00df64fffe43c7432d12a0d61665",
)


def upgrade() -> None:
    execute(pinned(revision, *TABLES))
    module = python_module(pinned(revision, *MODULE))
    execute(render(pinned(revision, *FUNCTIONS), **module))


def downgrade() -> None:
    module = python_module(pinned("0006", *MODULE_0006))
    execute(render(pinned("0006", *FUNCTIONS_0006), **module))
    execute(
        """
        ALTER TABLE public.chunks DROP COLUMN embedding_hash;
        CREATE OR REPLACE FUNCTION embedding_gate.vector_hash(embedding public.vector)
        RETURNS bigint
        LANGUAGE sql
        IMMUTABLE STRICT PARALLEL SAFE
        RETURN pg_catalog.hashtextextended(
            pg_catalog.encode(public.vector_send(embedding), 'hex'), 0);
        COMMENT ON FUNCTION embedding_gate.vector_hash(public.vector) IS
            'A 64-bit hash of an embedding''s exact bytes (chunks.embedding_hash); equal '
            'embeddings hash equal, and duplicate_vector compares the bytes of the rare equal '
            'hashes.';
        ALTER TABLE public.chunks
            ADD COLUMN embedding_hash bigint
            GENERATED ALWAYS AS (embedding_gate.vector_hash(embedding)) STORED;
        COMMENT ON COLUMN public.chunks.embedding_hash IS
            'embedding_gate.vector_hash(embedding), computed by the database: the key of the '
            'duplicate_vector check.';
        CREATE INDEX chunks_embedding_hash_idx ON public.chunks
            (embedding_hash, created_at, chunk_id) WHERE embedding_hash IS NOT NULL;
        COMMENT ON INDEX public.chunks_embedding_hash_idx IS
            'duplicate_vector: the chunks with a given embedding hash in (created_at, '
            'chunk_id) order.';
        DROP FUNCTION embedding_gate._hash_bytes(public.vector, bigint);
        DROP FUNCTION embedding_gate.vector_bytes(public.vector);
        """
    )
