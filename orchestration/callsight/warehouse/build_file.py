"""The build file dbt writes: a copy of the served warehouse, never the served file itself.

Superset holds the served file open read-only and a DuckDB writer cannot open a file a reader holds,
so each night's dbt build works on a copy; publish (publish/builds.py) swaps the checked copy in."""

from __future__ import annotations

import os
import shutil
from datetime import date
from pathlib import Path

import duckdb

# The build's table of the weeks of each big fact that it computes anew (the dbt model int_weeks_changed);
# the publish writes them into week files (publish/week_files.py), the checks validate them.
CHANGED_WEEKS = "intermediate.int_weeks_changed"


def prepare_build(served: Path, build: Path) -> None:
    """Fresh build file: a copy of the served warehouse (the facts continue from the week files it lists)
    or empty."""
    build.parent.mkdir(parents=True, exist_ok=True)
    for stale in (build, build.with_name(build.name + ".wal"), build.with_name(build.name + ".tmp")):
        stale.unlink(missing_ok=True)
    if served.exists():
        tmp = build.with_name(build.name + ".tmp")
        shutil.copyfile(served, tmp)
        os.replace(tmp, build)


def has_table(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    """Whether the connection's own database has the table."""
    return con.execute(
        "SELECT count(*) > 0 FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = ? AND table_name = ?",
        [schema, table],
    ).fetchone()[0]


def changed_weeks(con: duckdb.DuckDBPyConnection, fact: str) -> list[date] | None:
    """The weeks (Mondays) of `fact` the build computes anew; None in a file without them (a published
    one, whose intermediate tables the publish dropped)."""
    if not has_table(con, *CHANGED_WEEKS.split(".")):
        return None
    return [w for (w,) in con.execute(f"SELECT call_week FROM {CHANGED_WEEKS} WHERE fact = ?", [fact]).fetchall()]
