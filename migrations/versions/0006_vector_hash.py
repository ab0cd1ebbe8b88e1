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
    "4501fe2a28d744641469214875f4e124fd38743514cefc4f6e959e9411804e15",
)
FUNCTIONS = (
    "sql/idempotent/gate.sql",
    "524e7123d5738ddb82c2d9b4677882ec1aa09875416c391fc9f5667fa1e96a98",
)
MODULE = (
    "plpython/embedding_gate.py",
    "f60f53372ef6f3ee85c5395e808d9e23abfe9d2e03004d5d5d21ad886b184bfc",
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


def downgrade() -> None:
    module = python_module(pinned("0005", *MODULE_0005))
    execute(render(pinned("0005", *FUNCTIONS_0005), **module))
    execute(
        """
        ALTER TABLE public.chunks ALTER COLUMN created_at SET DEFAULT pg_catalog.now();
        COMMENT ON COLUMN public.chunks.created_at IS NULL;
        DROP INDEX public.chunks_embedding_hash_idx;
        ALTER TABLE public.chunks DROP COLUMN embedding_hash;
        DROP FUNCTION embedding_gate.vector_hash(public.vector);
        CREATE INDEX chunks_embedding_hash_idx ON public.chunks
            USING hash (public.vector_send(embedding)) WHERE embedding IS NOT NULL;
        """
    )
