"""What a non-admin's own SQL statement may read outside the chart path: tables and views by name only.

The served file's views read files of one folder beside it (served_warehouse.parts_path), so the engine
lets any SQL on its connections read that folder too - every call of the history, past the row-level
security of the views and the analyst schema's pseudonyms. Chart queries are held by sql_guard.py's
layers; this check holds the rest of what a user's SQL reaches Superset's engine with (SQL Lab, a virtual
dataset's columns, an alert's query): queries only (the engine would let COPY TO and EXPORT write into
that folder), no table function but the number generators (read_parquet, glob, query_table, ...), no
path or file name in FROM (DuckDB's replacement scan: FROM '/x/y.parquet'), none of sql_guard's
forbidden functions anywhere, nothing that does not parse.

Pure functions over sqlglot trees; sql_guard_hooks.py applies them to every statement of a non-admin."""

from __future__ import annotations

import re
import sys

import sqlglot
from sqlglot import exp

sql_guard = sys.modules["callsight_sql_guard"]  # registered by superset_config._load_beside

# A table or view by name: what the warehouse's schemas hold. Anything else in FROM is a file.
PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Table functions that only generate numbers.
GENERATORS = frozenset({"range", "generate_series"})


def check_statement(sql: str) -> None:
    """Refuse (sql_guard.GuardRefusal) a script that reads anything but tables and views by name."""
    try:
        statements = [s for s in sqlglot.parse(sql, read=sql_guard.DIALECT) if s is not None]
    except sqlglot.errors.SqlglotError:
        raise sql_guard.GuardRefusal("statement_unparsable", "the statement does not parse") from None
    for statement in statements:
        if not isinstance(statement, (exp.Query, exp.Describe)):
            # COPY TO and EXPORT would write into the parts folder: the engine allows it there
            raise sql_guard.GuardRefusal("statement_not_query", "only SELECT (and DESCRIBE) statements are allowed")
        for node in statement.walk():
            if isinstance(node, exp.Table) and not _plain_table(node):
                raise sql_guard.GuardRefusal(
                    "statement_file", "read tables and views by their name; files and table functions are not allowed"
                )
            name = sql_guard.forbidden_function(node)
            if name:
                raise sql_guard.GuardRefusal("statement_function", f"the function {name}() is not allowed")


def _plain_table(table: exp.Table) -> bool:
    if isinstance(table.this, exp.Func):
        return sql_guard.function_name(table.this) in GENERATORS
    return isinstance(table.this, exp.Identifier) and all(
        PLAIN_NAME.fullmatch(part.name) for part in table.parts if isinstance(part, exp.Identifier)
    )
