"""Thin loader: fetch embeddings, insert chunks; the database checks them."""
