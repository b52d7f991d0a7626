"""The two big facts stored as one Parquet file per ISO week, so that a night writes what changed.

Until issue 31 the publish rewrote the whole served file every night (the compaction: what retention, an
erasure or a changed leg deleted must not stay in the file's free blocks), and that grew with every week
kept. Now `fct_calls` and `fct_inbound_calls` are views over files in the parts folder beside the served
file (Settings.parts_dir), one per fact and week (Monday of the local call_date), each written whole and
never changed, named by the build that wrote it. dbt computes the rows of the weeks that changed
(int_weeks_changed, int_call_legs_of_changed_weeks, int_inbound_calls_of_changed_weeks); the publish
writes them into new files, lists every file of each fact in `marts.week_files`, and points the views at
the files. The next build reads that listing (dbt_project/macros/week_files.sql).

A file goes once no build names it: the served one or a kept one (`collect_garbage`). Superset reads the
folder and nothing else (superset/served_warehouse.py); non-admins' SQL cannot name it
(superset/statement_guard.py).
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb

from callsight.site.home import kept_builds, parts_dir
from callsight.site.sql_text import quote_literal
from callsight.warehouse.build_file import CHANGED_WEEKS, changed_weeks, has_table

LISTING = "marts.week_files"


@dataclass(frozen=True)
class Fact:
    name: str
    rows: str  # the build's table of the changed weeks' rows
    order: str  # the row order within a file: the call lists ask for the newest rows first


FACTS = (
    Fact("fct_calls", "intermediate.int_call_legs_of_changed_weeks", "start_time_local DESC, call_id DESC"),
    Fact(
        "fct_inbound_calls", "intermediate.int_inbound_calls_of_changed_weeks", "start_time_local DESC, chain_key DESC"
    ),
)
QUOTED = re.compile(r"'((?:[^']|'')*)'")  # a string literal of SQL (the files a view names)
# <fact>/<Monday>.<build token>.parquet
FILE_NAME = re.compile(r"(fct_calls|fct_inbound_calls)/\d{4}-\d{2}-\d{2}\.[0-9A-Za-z-]+\.parquet")


class WeekFilesError(RuntimeError):
    pass


def new_token() -> str:
    """Names the files of one publish: never the same twice."""
    return datetime.now().strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


def write_weeks(con: duckdb.DuckDBPyConnection, parts: Path, token: str) -> dict[str, int]:
    """In the build (open for writing): each changed week of each fact written into a file of its own, every
    file listed in marts.week_files, the facts' views pointed at their files. Returns the files written per
    fact. Every row of the changed weeks' tables lands in exactly one file, or nothing is listed."""
    if not has_table(con, *CHANGED_WEEKS.split(".")):
        return {}  # no dbt build in this file (a copy of a published one): its facts are as they were
    previous = _listing(con)
    listing: list[tuple] = []
    written: dict[str, int] = {}
    parts.mkdir(exist_ok=True, mode=0o700)
    for fact in FACTS:
        (parts / fact.name).mkdir(exist_ok=True, mode=0o700)
        weeks = set(changed_weeks(con, fact.name) or ())
        rows = con.execute(f"SELECT count(*) FROM {fact.rows}").fetchone()[0]
        kept = [row for row in previous if row[0] == fact.name and row[1] not in weeks]
        new = []
        for week in sorted(weeks):
            file = f"{fact.name}/{week.isoformat()}.{token}.parquet"
            count, newest = _write_week(con, fact, week, parts / file)
            if count:
                new.append((fact.name, week, file, count, newest))
        landed = sum(row[3] for row in new)
        if landed != rows:
            raise WeekFilesError(f"{fact.rows}: {rows} rows, {landed} of them in the weeks written anew")
        files = sorted(kept + new, key=lambda row: row[1], reverse=True)
        _point_view(con, fact, [parts / row[2] for row in files])
        written[fact.name] = len(new)
        listing += files
    con.execute(
        f"CREATE OR REPLACE TABLE {LISTING} "
        "(fact VARCHAR, call_week DATE, file VARCHAR, row_count BIGINT, max_extracted_at TIMESTAMP)"
    )
    if listing:
        con.executemany(f"INSERT INTO {LISTING} VALUES (?, ?, ?, ?, ?)", listing)
    return written


def _listing(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    if not has_table(con, *LISTING.split(".")):
        return []
    return con.execute(f"SELECT fact, call_week, file, row_count, max_extracted_at FROM {LISTING}").fetchall()


def _write_week(con: duckdb.DuckDBPyConnection, fact: Fact, week: date, path: Path) -> tuple[int, datetime | None]:
    """The rows of `week` written into `path` (nothing if there are none): (rows, newest extracted_at)."""
    start, end = (quote_literal(d.isoformat()) for d in (week, week + timedelta(days=7)))
    where = f"call_date >= DATE {start} AND call_date < DATE {end}"
    count, newest = con.execute(f"SELECT count(*), max(extracted_at) FROM {fact.rows} WHERE {where}").fetchone()
    if not count:
        return 0, None
    tmp = path.with_name(path.name + ".tmp")
    con.execute(
        f"COPY (SELECT * FROM {fact.rows} WHERE {where} ORDER BY {fact.order}) TO {quote_literal(str(tmp))} "
        "(FORMAT parquet, COMPRESSION zstd)"
    )
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return count, newest


def _point_view(con: duckdb.DuckDBPyConnection, fact: Fact, paths: list[Path]) -> None:
    """marts.<fact> reads `paths`, newest week first (an empty table of the same columns without any),
    keeping the comments dbt gave the view and its columns."""
    relation = f"marts.{fact.name}"
    table_comment, column_comments = _comments(con, fact.name)
    kind = con.execute(
        "SELECT table_type FROM information_schema.tables WHERE table_catalog = current_database() "
        "AND table_schema = 'marts' AND table_name = ?",
        [fact.name],
    ).fetchone()
    if kind:
        con.execute(f"DROP {'VIEW' if kind[0] == 'VIEW' else 'TABLE'} {relation}")
    if paths:
        con.execute(f"CREATE VIEW {relation} AS {_view_sql_for(paths)}")
    else:
        con.execute(f"CREATE TABLE {relation} AS SELECT * FROM {fact.rows} LIMIT 0")
    what = "VIEW" if paths else "TABLE"
    if table_comment:
        con.execute(f"COMMENT ON {what} {relation} IS {quote_literal(table_comment)}")
    for column, comment in column_comments:
        con.execute(f'COMMENT ON COLUMN {relation}."{column}" IS {quote_literal(comment)}')


def _view_sql_for(paths: list[Path]) -> str:
    return f"SELECT * FROM read_parquet([{', '.join(quote_literal(str(p)) for p in paths)}])"


def _view_files(con: duckdb.DuckDBPyConnection, name: str) -> list[str] | None:
    """The files the view marts.<name> reads, in its order (None if there is no such view)."""
    row = con.execute(
        "SELECT sql FROM duckdb_views() WHERE database_name = current_database() AND schema_name = 'marts' "
        "AND view_name = ?",
        [name],
    ).fetchone()
    return None if row is None else [m.replace("''", "'") for m in QUOTED.findall(row[0])]


def _comments(con: duckdb.DuckDBPyConnection, name: str) -> tuple[str | None, list[tuple[str, str]]]:
    table = con.execute(
        "SELECT comment FROM duckdb_views() WHERE database_name = current_database() AND schema_name = 'marts' "
        "AND view_name = ? UNION ALL SELECT comment FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = 'marts' AND table_name = ?",
        [name, name],
    ).fetchone()
    columns = con.execute(
        "SELECT column_name, comment FROM duckdb_columns() WHERE database_name = current_database() "
        "AND schema_name = 'marts' AND table_name = ? AND comment IS NOT NULL ORDER BY column_index",
        [name],
    ).fetchall()
    return (table[0] if table else None), columns


def repoint(db: Path, parts: Path) -> None:
    """Point the facts' views of the warehouse file `db` at the files it lists in `parts`: after a restore
    or a copy of the whole home to another path (the views name their files by absolute path)."""
    con = duckdb.connect(str(db))
    try:
        listing = _listing(con)
        if not listing:
            return
        for fact in FACTS:
            files = sorted((row for row in listing if row[0] == fact.name), key=lambda row: row[1], reverse=True)
            paths = [parts / row[2] for row in files]
            # a fact without files is an empty table; a view that names these paths already stays as it is
            if paths and _view_files(con, fact.name) != [str(p) for p in paths]:
                _point_view(con, fact, paths)
        con.execute("CHECKPOINT")
    finally:
        con.close()


def misplaced_views(db: Path, parts: Path) -> list[str]:
    """The facts' views of the warehouse file `db` that read files other than those it lists in `parts`,
    one line per view: a home moved or copied to another path by hand (the views name their files by
    absolute path). Reads only the views' SQL."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        listing = _listing(con)
        problems = []
        for fact in FACTS:
            named = _view_files(con, fact.name)
            listed = sorted(str(parts / row[2]) for row in listing if row[0] == fact.name)
            if named is not None and sorted(named) != listed:
                elsewhere = sorted({str(Path(f).parent.parent) for f in named if not f.startswith(f"{parts}/")})
                where = f"files under {', '.join(elsewhere)}" if elsewhere else "other files than it lists"
                problems.append(f"marts.{fact.name} reads {where}")
        return problems
    finally:
        con.close()


def repoint_if_misplaced(db: Path, parts: Path) -> bool:
    """Point the views of `db` at its files in `parts` if they read others (see misplaced_views); only for
    a file nobody reads meanwhile (a kept build, a build copy). Returns whether it did."""
    if not misplaced_views(db, parts):
        return False
    repoint(db, parts)
    return True


def listed_files(db: Path) -> set[str]:
    """The files (relative to the parts folder) a warehouse file lists; none for a file without a listing."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {f for (f,) in con.execute(f"SELECT file FROM {LISTING}").fetchall()}
    except duckdb.CatalogException:
        return set()
    finally:
        con.close()


def damaged_files(db: Path, parts: Path) -> list[str]:
    """What is wrong with the week files the warehouse file `db` lists, one line per file: missing, not
    readable as Parquet (a truncated or overwritten file) or holding other rows than listed. Reads only
    each file's footer: milliseconds, whatever the history."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        listing = [(row[2], row[3]) for row in _listing(con)]
    finally:
        con.close()
    problems = []
    with duckdb.connect() as reader:
        for name, listed in sorted(listing):
            path = parts / name
            if not path.is_file():
                problems.append(f"{name}: missing")
                continue
            try:
                (rows,) = reader.execute("SELECT num_rows FROM parquet_file_metadata(?)", [str(path)]).fetchone()
            except duckdb.Error as exc:
                problems.append(f"{name}: not readable ({str(exc).splitlines()[0]})")
                continue
            if rows != listed:
                problems.append(f"{name}: holds {rows} rows, listed {listed}")
    return problems


def collect_garbage(served: Path) -> list[Path]:
    """Delete every week file (and every half-written one) beside the served warehouse `served` that
    neither it nor a kept build lists. Returns what was deleted."""
    parts = parts_dir(served)
    if not parts.is_dir():
        return []
    named: set[str] = set()
    for build in (served, *kept_builds(served)):
        if build.exists():
            named |= listed_files(build)
    deleted = []
    for path in sorted(parts.glob("*/*")):
        name = path.relative_to(parts).as_posix()
        ours = FILE_NAME.fullmatch(name) or (path.name.endswith(".parquet.tmp") and FILE_NAME.fullmatch(name[:-4]))
        if ours and name not in named:
            path.unlink()
            deleted.append(path)
    return deleted
