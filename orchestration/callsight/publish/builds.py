"""Build-file lifecycle: start a build from the served warehouse, prune it, swap it in atomically.

Superset opens the served file read-only. A writer cannot open a DuckDB file a reader holds, so dbt
never touches the served file: it builds a copy, and `publish` renames the checked copy over the served
file with os.replace (atomic on POSIX). Open connections keep the old data; new ones see the new file.
The two big facts live in week files beside it (week_files.py), which a build only ever adds: a publish
deletes those no build names any more.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb

from callsight.publish.week_files import (
    collect_garbage,
    damaged_files,
    new_token,
    repoint_if_misplaced,
    write_weeks,
)
from callsight.site.compaction import MEMORY_LIMIT, compact, scratch_paths
from callsight.site.home import history_dir, kept_builds, parts_dir
from callsight.site.sql_text import quote_literal

# Schemas that Superset may see in the served file. Everything else (staging views over the raw
# store, intermediate tables) is dropped from the build before it is published.
SERVED_SCHEMAS = ("marts", "security", "analyst")
REQUIRED_TABLES = (
    ("marts", "fct_calls"),
    ("marts", "fct_inbound_calls"),
    ("marts", "fct_callbacks"),
    ("marts", "dim_agent"),
    ("marts", "dim_date"),
    ("security", "viewer_agents"),
    ("security", "agent_labels"),
    ("analyst", "calls"),
)


class PublishError(RuntimeError):
    pass


def prune_build(build: Path, parts: Path) -> tuple[dict[str, float], dict[str, int]]:
    """Write the changed weeks of the big facts into files of their own in `parts`, drop what Superset may
    not see, then compact. Returns the seconds of each part and the week files written per fact."""
    started = time.perf_counter()
    # a week sorted for its file is capped like the compaction (uncapped, the process took 2.2 GiB at 10M
    # legs); what does not fit spills into the compaction's private folder beside the build
    _, spill = scratch_paths(build)
    shutil.rmtree(spill, ignore_errors=True)
    spill.mkdir(mode=0o700)
    con = duckdb.connect(str(build), config={"memory_limit": MEMORY_LIMIT, "temp_directory": str(spill)})
    try:
        written = write_weeks(con, parts, new_token())
        weeks = time.perf_counter()
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
        shutil.rmtree(spill, ignore_errors=True)
    pruned = time.perf_counter()
    # The build started as a copy of the served file: values that retention, an erasure or an edit removed
    # since are still in its free blocks. A fresh copy leaves them behind - of the small rest: the big facts
    # are in week files, written whole.
    compact(build)
    done = time.perf_counter()
    return {"weeks": weeks - started, "prune": pruned - weeks, "compact": done - pruned}, written


def verify(path: Path, parts: Path) -> dict[str, int]:
    """Open read-only like Superset does - files from `parts` only (superset/served_warehouse.py) - count
    the required tables' rows, and check that each week file it lists holds the rows listed."""
    if not path.exists():
        raise PublishError(f"{path}: no build to publish")
    if damaged := damaged_files(path, parts):
        raise PublishError(f"{path}: week files damaged: " + "; ".join(damaged))
    con = duckdb.connect(str(path), read_only=True)
    try:
        con.execute(f"SET allowed_directories = [{quote_literal(str(parts) + '/')}]")
        con.execute("SET enable_external_access = false")
        counts = {}
        for schema, table in REQUIRED_TABLES:
            try:
                counts[f"{schema}.{table}"] = con.execute(f"SELECT count(*) FROM {schema}.{table}").fetchone()[0]
            except duckdb.CatalogException as exc:
                raise PublishError(f"{path}: {schema}.{table} missing") from exc
            except duckdb.Error as exc:  # a week file gone, or outside the parts folder
                raise PublishError(f"{path}: {schema}.{table} unreadable: {exc}") from exc
        return counts
    finally:
        con.close()


def publish(build: Path, served: Path, keep: int = 3, before_swap: Callable[[], None] = lambda: None) -> dict[str, int]:
    """Atomically replace the served warehouse by the (pruned, checked) build. The build it replaces is
    kept (a hard link: no copy) in history/, the newest `keep` of them; `callsight rollback` restores one.
    `before_swap` runs just before the rename (the fault tests halt a run there, see site/halt.py)."""
    counts = verify(build, parts_dir(served))
    wal = build.with_name(build.name + ".wal")
    if wal.exists():
        raise PublishError(f"{build}: has an un-checkpointed WAL; refusing to publish a half-written file")
    served.parent.mkdir(parents=True, exist_ok=True)
    if served.exists() and keep > 0:
        keep_served(served)
    before_swap()
    os.replace(build, served)
    for old in kept_builds(served)[keep:]:
        old.unlink()
    collect_garbage(served)
    return counts


def keep_served(served: Path) -> None:
    """Keep the served warehouse in history/ (a hard link: no copy) before it is replaced, unless it is
    kept already: a publish or rollback killed between its link and its rename left the link behind, and
    a second name for the same file would push a different build out of the kept ones."""
    history = history_dir(served)
    history.mkdir(exist_ok=True)
    if any(os.path.samefile(served, kept) for kept in kept_builds(served)):
        return
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S%f")
    os.link(served, history / f"{served.stem}-{stamp}.duckdb")


def rollback(served: Path, name: str | None = None) -> Path:
    """Serve a kept build again (the newest by default). The current one is kept in turn, so a
    rollback can itself be rolled back. Atomic like publish. A kept name of the served file itself (left
    by a publish or rollback killed before its rename) is not a build to go back to."""
    builds = [b for b in kept_builds(served) if not (served.exists() and os.path.samefile(b, served))]
    if not builds:
        raise PublishError(f"no kept builds in {history_dir(served)}")
    chosen = next((b for b in builds if b.name == name), None) if name else builds[0]
    if chosen is None:
        raise PublishError(f"{name}: not a kept build; kept: {', '.join(b.name for b in builds)}")
    try:
        repoint_if_misplaced(chosen, parts_dir(served))  # a home moved by hand since it was served
    except duckdb.Error as exc:
        raise PublishError(f"{chosen}: unreadable: {exc}") from exc
    verify(chosen, parts_dir(served))
    if served.exists():
        keep_served(served)
    os.replace(chosen, served)  # a rename: atomic, no copy
    return chosen


def oldest_call_day(path: Path) -> date | None:
    """First call day in a (kept) warehouse; None when it has no calls."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("SELECT min(call_date) FROM marts.fct_calls").fetchone()[0]
    finally:
        con.close()


def prune_expired_builds(served: Path, cutoff: datetime) -> list[Path]:
    """Delete kept builds holding calls from before the day preceding the cutoff (retention + one night),
    and the week files only they listed. A kept build that cannot be read is deleted too: what cannot be
    checked is not kept; one whose views read the files of a home moved by hand is pointed at this home's."""
    allowed = cutoff.date() - timedelta(days=1)
    removed = []
    for build in kept_builds(served):
        try:
            repoint_if_misplaced(build, parts_dir(served))
            oldest = oldest_call_day(build)
        except duckdb.Error:
            oldest = date.min
        if oldest is not None and oldest < allowed:
            build.unlink()
            removed.append(build)
    if removed:
        collect_garbage(served)
    return removed


def _build_info(path: Path, column: str) -> str | None:
    """One value of marts.build_info, None for a new or foreign file."""
    if not path.exists():
        return None
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(f"SELECT {column} FROM marts.build_info").fetchone()[0]
    except duckdb.Error:
        return None
    finally:
        con.close()


def served_build_id(path: Path) -> str | None:
    """The id of the dbt build a warehouse file holds (unique per build)."""
    return _build_info(path, "dbt_invocation_id")


def stored_fingerprint(path: Path) -> str | None:
    """The fingerprint a warehouse file was built with, None for a new or foreign file."""
    return _build_info(path, "build_fingerprint")
