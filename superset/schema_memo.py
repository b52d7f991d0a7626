"""A DuckDB database's default schema asked once per Superset process, not on a new connection for every
chart request (issue 31).

Superset asks the dataset's database for its default schema for every chart request - for the chart's
cache key and to check schema access - and opens an inspector on a new connection to the served file for
it (BaseEngineSpec.get_default_schema): 7 % of a web worker's time under the team's load, all of them
answered from the cache (docs/performance.md). A DuckDB connection's default schema is what its URL and
connection settings make it, the same for every viewer: kept per (database, URL, settings, catalog), so
an edited connection is asked anew. Other backends are asked every time (on PostgreSQL the answer can
depend on the user a connection runs as). Loaded by superset_config.py.
"""

from __future__ import annotations

from typing import Any

MEMO: dict[tuple[Any, ...], str | None] = {}
_original: Any = None


def get_default_schema(database: Any, catalog: str | None) -> str | None:
    """Database.get_default_schema, answered from the memo for a DuckDB database."""
    key = (database.id, database.sqlalchemy_uri, database.extra, catalog)
    if key in MEMO:
        return MEMO[key]
    answer = _original(database, catalog)
    if database.backend == "duckdb":
        MEMO[key] = answer
    return answer


def install() -> None:
    """Patch Superset once per process (FLASK_APP_MUTATOR)."""
    global _original
    from superset.models.core import Database

    if getattr(Database, "callsight_schema_memo", False):
        return
    _original = Database.get_default_schema
    Database.get_default_schema = get_default_schema
    Database.callsight_schema_memo = True
