"""Thin loader: fetch embeddings, insert chunks; the database checks them."""

# the embedding server's URL when EMBED_API_URL is not set (loader.embed.DEFAULT_URL), here so
# that the command line is built without importing numpy
DEFAULT_EMBED_URL = "http://localhost:8001/embed"
