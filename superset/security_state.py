"""A token that changes with every write to what decides who may see what in Superset's metadata DB (issue 31).

Triggers on the tables of roles, permissions, groups and row-level security, and of the databases, datasets,
charts and dashboards a chart-data answer depends on (answer_memo.py), replace a random token in
`callsight_security_state` in the same transaction as the write, whatever made it: Superset's own views and
API, `superset init`, a migration's SQL, a hand-made UPDATE. So a reader that sees the token also sees the
state it names, and an answer computed from that state may be reused for as long as the token stays the
same (access_memo.py, answer_memo.py). Writes to users themselves (last login, login count) are not among
them: no answer kept under the token reads the user's row, only their id and roles.

`token()` checks the triggers in the same statement: where one is missing (a migration rebuilt its table,
nobody installed them), there is no token and nothing is reused. `install()` runs with the metadata's
set-up (init_metadata.py), after Superset's migrations, at every service start; it is idempotent.

Standalone (SQLAlchemy 1.4 or 2), so that the pipeline's tests load it too.
"""

from __future__ import annotations

from typing import Any

STATE_TABLE = "callsight_security_state"
TRIGGER_PREFIX = "callsight_security_"
# The metadata tables whose rows decide a chart-data request's access answers: Flask-AppBuilder's roles,
# permissions, view menus and groups, Superset's row-level security filters; and what a whole answer kept by
# answer_memo.py depends on beyond them: databases, datasets with their columns and metrics, charts,
# dashboards (their charts, roles and json_metadata decide dashboard access), and the owners of all three.
TABLES = (
    "ab_role",
    "ab_user_role",
    "ab_permission",
    "ab_view_menu",
    "ab_permission_view",
    "ab_permission_view_role",
    "ab_group",
    "ab_user_group",
    "ab_group_role",
    "row_level_security_filters",
    "rls_filter_roles",
    "rls_filter_tables",
    "dbs",
    "tables",
    "table_columns",
    "sql_metrics",
    "sqlatable_user",
    "slices",
    "slice_user",
    "dashboards",
    "dashboard_slices",
    "dashboard_roles",
    "dashboard_user",
)
SQLITE_EVENTS = ("INSERT", "UPDATE", "DELETE")  # SQLite's triggers are per row, one event each


def _sqlite_statements() -> list[str]:
    new = "lower(hex(randomblob(16)))"
    statements = [
        f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} (id INTEGER PRIMARY KEY CHECK (id = 1), token TEXT NOT NULL)",
        f"INSERT OR IGNORE INTO {STATE_TABLE} (id, token) VALUES (1, {new})",
    ]
    for table in TABLES:
        for event in SQLITE_EVENTS:
            statements.append(
                f"CREATE TRIGGER IF NOT EXISTS {TRIGGER_PREFIX}{table}_{event.lower()} AFTER {event} ON {table} "
                f"BEGIN UPDATE {STATE_TABLE} SET token = {new}; END"
            )
    return statements


def _postgresql_statements() -> list[str]:
    function = f"{TRIGGER_PREFIX}changed"
    statements = [
        f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} (id INTEGER PRIMARY KEY CHECK (id = 1), token TEXT NOT NULL)",
        f"INSERT INTO {STATE_TABLE} (id, token) VALUES (1, gen_random_uuid()::text) ON CONFLICT (id) DO NOTHING",
        f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS "
        f"$$ BEGIN UPDATE {STATE_TABLE} SET token = gen_random_uuid()::text; RETURN NULL; END $$",
    ]
    for table in TABLES:
        name = f"{TRIGGER_PREFIX}{table}"
        statements += [
            f"DROP TRIGGER IF EXISTS {name} ON {table}",
            f"CREATE TRIGGER {name} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
        ]
    return statements


STATEMENTS = {"sqlite": _sqlite_statements, "postgresql": _postgresql_statements}
# How many of callsight's triggers a set-up database has.
EXPECTED_TRIGGERS = {"sqlite": len(TABLES) * len(SQLITE_EVENTS), "postgresql": len(TABLES)}
_PREFIXED = f"substr({{}}, 1, {len(TRIGGER_PREFIX)}) = '{TRIGGER_PREFIX}'"  # no LIKE: '%' is a driver's placeholder
TRIGGER_COUNT = {
    "sqlite": f"SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND {_PREFIXED.format('name')}",
    "postgresql": f"SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal AND {_PREFIXED.format('tgname')}",
}


def install(engine: Any) -> bool:
    """Create the token and the triggers in the metadata DB of `engine`, in one transaction. False (and
    nothing created) for a database other than SQLite or PostgreSQL, or one without all of TABLES."""
    dialect = engine.dialect.name
    if dialect not in STATEMENTS:
        return False
    with engine.begin() as con:
        names = {name.lower() for name in _table_names(con, dialect)}
        if not set(TABLES) <= names:
            return False
        for statement in STATEMENTS[dialect]():
            con.exec_driver_sql(statement)
    return True


def _table_names(con: Any, dialect: str) -> list[str]:
    if dialect == "sqlite":
        rows = con.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'")
    else:
        rows = con.exec_driver_sql("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    return [row[0] for row in rows]


def token(con: Any) -> str | None:
    """The current token on the connection `con`, None where it cannot be trusted (a trigger missing, another
    database). Raises where the token table is missing (never installed)."""
    dialect = con.dialect.name
    if dialect not in TRIGGER_COUNT:
        return None
    row = con.exec_driver_sql(f"SELECT token, ({TRIGGER_COUNT[dialect]}) FROM {STATE_TABLE} WHERE id = 1").first()
    if row is None or row[1] != EXPECTED_TRIGGERS[dialect]:
        return None
    return str(row[0])
