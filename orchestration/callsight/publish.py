"""Build-file lifecycle: start a build from the served warehouse, prune it, swap it in atomically.

Superset opens the served file read-only. A writer cannot open a DuckDB file a reader holds, so dbt
never touches the served file: it builds a copy, and `publish` renames the checked copy over the served
file with os.replace (atomic on POSIX). Open connections keep the old data; new ones see the new file.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb

# Schemas that Superset may see in the served file. Everything else (staging views over the raw
# store, intermediate tables) is dropped from the build before it is published.
SERVED_SCHEMAS = ("marts", "security")
REQUIRED_TABLES = (("marts", "fct_calls"), ("security", "viewer_agents"))


class PublishError(RuntimeError):
    pass


def prepare_build(served: Path, build: Path) -> None:
    """Fresh build file: a copy of the served warehouse (incremental models continue from it) or empty."""
    build.parent.mkdir(parents=True, exist_ok=True)
    for stale in (build, build.with_name(build.name + ".wal"), build.with_name(build.name + ".tmp")):
        stale.unlink(missing_ok=True)
    if served.exists():
        tmp = build.with_name(build.name + ".tmp")
        shutil.copyfile(served, tmp)
        os.replace(tmp, build)


def prune_build(build: Path) -> None:
    con = duckdb.connect(str(build))
    try:
        schemas = [
            r[0]
            for r in con.execute(
                "SELECT schema_name FROM information_schema.schemata WHERE catalog_name = current_database()"
            ).fetchall()
        ]
        for schema in schemas:
            if schema not in (*SERVED_SCHEMAS, "main", "information_schema", "pg_catalog"):
                con.execute(f'DROP SCHEMA "{schema}" CASCADE')
        con.execute("CHECKPOINT")
    finally:
        con.close()


def verify(path: Path) -> dict[str, int]:
    """Open read-only like Superset does and count the required tables' rows."""
    if not path.exists():
        raise PublishError(f"{path}: no build to publish")
    con = duckdb.connect(str(path), read_only=True)
    try:
        counts = {}
        for schema, table in REQUIRED_TABLES:
            try:
                counts[f"{schema}.{table}"] = con.execute(
                    f"SELECT count(*) FROM {schema}.{table}"
                ).fetchone()[0]
            except duckdb.CatalogException as exc:
                raise PublishError(f"{path}: {schema}.{table} missing") from exc
        return counts
    finally:
        con.close()


def publish(build: Path, served: Path) -> dict[str, int]:
    """Atomically replace the served warehouse by the (pruned, checked) build."""
    counts = verify(build)
    wal = build.with_name(build.name + ".wal")
    if wal.exists():
        raise PublishError(f"{build}: has an un-checkpointed WAL; refusing to publish a half-written file")
    served.parent.mkdir(parents=True, exist_ok=True)
    os.replace(build, served)
    return counts
