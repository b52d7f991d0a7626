"""SQL text helpers shared by every DuckDB statement callsight writes."""

from __future__ import annotations


def quote_literal(text: str) -> str:
    """A DuckDB/SQL string literal."""
    return "'" + text.replace("'", "''") + "'"
