"""Attention Atlas analysis core: models, extraction, views, graphs, export. No Qt here."""
