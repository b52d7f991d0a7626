"""Incremental batches: the nightly runs validate the rows that have not passed yet and keep a record of
what passed in a file of their own (row hashes and counts, no values).

A batch marked `incremental: true` knows its rows by their content: the hash of the batch's row, every
column its expectations see. Its expectations are row-wise (and uniqueness), so a row with the content
of a row that passed passes too, whatever wrote it, and a nightly run validates only the rows whose
content has not passed yet: the extract's new and edited legs, the night's marts, and equally a row
altered, added or copied behind the pipeline's back or by a build touching what it should not. A
copy is found by its count (a hash now held by more rows than passed is due); a duplicate key by
validating, with every due row, the rows sharing its unique key's first column. The record is a
DuckDB file of its own (run_suites' `record_db`, attached read-write as RECORD_DB; hashes and counts,
no values, compacted after each run that used it): per batch fingerprint a table of (row hash, rows)
that passed, replaced each time the batch passes (dropping the batch's records under other
fingerprints) and pruned of rows that went when it fails, and when every row was last validated
(`validated_whole_at`). When that is older than REVALIDATE_AFTER, when at least WHOLE_BATCH_SHARE of
the rows are due, or without a usable record (a warning), the batch is validated whole.

A batch over a fact kept in week files (`weeks: fct_calls`, publish/week_files.py) is validated at night
over the weeks the build computes anew instead (int_weeks_changed): every other week is a file written
whole by a publish after the build that computed it passed, and never changed since (a missing,
truncated or recounted file stops the publish and turns the health probe critical). Hashing every row
would read the whole history each night. Its record is the fingerprint and when it last passed whole;
the seventh night, another fingerprint, a published file (no changed weeks) or a missing record
validate it whole.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from callsight.quality.results import ExpectationOutcome
from callsight.quality.suites import BatchSpec, SuiteSpec, partition_key
from callsight.quality.validation import _ident, _validate_batch, repeated_hour_rows
from callsight.site.compaction import scratch_paths
from callsight.site.sql_text import quote_literal
from callsight.warehouse.build_file import changed_weeks

RECORD_DB = "validated_rows"
RECORD_BATCHES_DDL = f"""
CREATE TABLE IF NOT EXISTS {RECORD_DB}.batches (
    fingerprint VARCHAR PRIMARY KEY,
    batch VARCHAR NOT NULL,
    validated_whole_at TIMESTAMP NOT NULL,
    written_at TIMESTAMP NOT NULL
)
"""
# Nightly runs start at about the same time; with half a day of slack for start times, every batch is
# validated whole on the seventh night after it last was.
REVALIDATE_AFTER = timedelta(days=6, hours=12)
# Above this share of due rows a batch is validated whole (filtering would cost more than it saves).
WHOLE_BATCH_SHARE = 0.5
ROW_HASH_SQL = "hash(*COLUMNS(*))"
# TEMP tables on the validating connection: the batch's row hashes with their number of rows, those
# that are due, and the keys of the rows to validate (computed once, not per part of the batch).
ROW_COUNTS_TABLE = "_callsight_row_counts"
DUE_ROWS_TABLE = "_callsight_due_rows"
CHANGED_KEYS_TABLE = "_callsight_changed_keys"
INCREMENTAL_NOTE = " (rows new or changed since they last passed)"
# The column by which a row of a week-file fact belongs to a week (the Monday of its call_date names its file).
WEEK_COLUMN = "call_date"
WEEKS_NOTE = " (the weeks this build computes anew)"


def batch_fingerprint(suite: SuiteSpec, batch: BatchSpec, timezone: str, columns: Sequence[Any] = ()) -> str:
    """Pure: identity of what a batch checks; another query, expectation, time zone or result type
    (`columns`: the query's column names and types; a hash does not tell 1 from true) starts afresh."""
    import hashlib
    import json

    import great_expectations as gx

    spec = {
        "suite": suite.name,
        "batch": batch.name,
        "query": batch.query,
        "expectations": [[e.type, dict(e.kwargs)] for e in batch.expectations],
        "timezone": timezone,
        "columns": [list(map(str, c)) for c in columns],
        # the zone's rules as this machine's tz database has them (the checks read its repeated hours)
        "repeated_hours": repr(repeated_hour_rows(timezone)),
        "gx": gx.__version__,
        "duckdb": duckdb.__version__,
    }
    if batch.weeks:  # validated by week, not by content: a record of row hashes is of no use to it
        spec["weeks"] = batch.weeks
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


def changed_rows_sql(batch: BatchSpec) -> tuple[str, str | None]:
    """Pure: (query, keys): the query of the batch's rows whose hash is in the TEMP table DUE_ROWS_TABLE
    or whose key's first column is in CHANGED_KEYS_TABLE, and the query that fills that table: the key
    (first column) of every due row; None for a batch without a key."""
    due = f"{ROW_HASH_SQL} IN (SELECT row_hash FROM {DUE_ROWS_TABLE})"
    base = f"SELECT * FROM ({batch.query}) AS batch WHERE {due}"
    key = partition_key(batch)
    if not key:
        return base, None
    col = _ident(key[0])
    keys = f"SELECT DISTINCT {col} FROM ({batch.query}) AS batch WHERE {due} AND {col} IS NOT NULL"
    return f"{base} OR {col} IN (SELECT {col} FROM {CHANGED_KEYS_TABLE})", keys


def _scoped(batch: BatchSpec, con: duckdb.DuckDBPyConnection) -> BatchSpec:
    """The batch's rows that have not passed and those sharing their key (CHANGED_KEYS_TABLE filled
    here)."""
    query, keys = changed_rows_sql(batch)
    if keys:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {CHANGED_KEYS_TABLE} AS {keys}")
    return BatchSpec(batch.name, query, batch.expectations, batch.description, batch.incremental)


def week_filter(weeks: Sequence[date]) -> str:
    """Pure: a condition true for the rows of `weeks` (Mondays) and for rows without a day (in no week's
    file), the days as literal dates: DuckDB then reads only those weeks' files."""
    col = _ident(WEEK_COLUMN)
    days = [
        f"({col} >= DATE '{w.isoformat()}' AND {col} < DATE '{(w + timedelta(days=7)).isoformat()}')"
        for w in sorted(weeks)
    ]
    return " OR ".join([f"{col} IS NULL", *days])


def weekly_rows_sql(batch: BatchSpec, weeks: Sequence[date]) -> tuple[str, str | None]:
    """Pure: (query, keys): the query of the batch's rows of `weeks`, and the query of the key (first
    column) of every row of another week that shares its key with one of them (a duplicate of a new leg
    may be old); None for a batch without a key."""
    inside = week_filter(weeks)
    query = f"SELECT * FROM ({batch.query}) AS batch WHERE {inside}"
    key = partition_key(batch)
    if not key:
        return query, None
    col = _ident(key[0])
    keys = (
        f"SELECT DISTINCT {col} FROM ({batch.query}) AS batch WHERE NOT ({inside}) "
        f"AND {col} IN (SELECT {col} FROM ({query}) AS due)"
    )
    return query, keys


def _scoped_to_weeks(batch: BatchSpec, weeks: Sequence[date], con: duckdb.DuckDBPyConnection) -> BatchSpec:
    """The batch's rows of `weeks` and the rows of other weeks sharing their key (read only when there
    are any: the condition would make DuckDB read every week's rows)."""
    query, keys = weekly_rows_sql(batch, weeks)
    if keys:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {CHANGED_KEYS_TABLE} AS {keys}")
        if con.execute(f"SELECT count(*) FROM {CHANGED_KEYS_TABLE}").fetchone()[0]:
            col = _ident(partition_key(batch)[0])
            query += f" OR {col} IN (SELECT {col} FROM {CHANGED_KEYS_TABLE})"
    return BatchSpec(batch.name, query, batch.expectations, batch.description, batch.incremental, batch.weeks)


def _run_weekly_batch(
    context, suite: SuiteSpec, batch: BatchSpec, con, timezone: str, now: datetime, warnings: list[str]
) -> tuple[ExpectationOutcome, ...]:
    """Outcomes of a batch over a fact kept in week files (see the module's docstring). When it passes,
    its record says so (and since when it passed whole); a failed batch leaves the record as it was: its
    weeks are computed anew the next night, as long as no build with them is published."""
    name = f"{suite.name}.{batch.name}"
    try:
        columns = con.execute(f"DESCRIBE {batch.query}").fetchall()
        weeks = changed_weeks(con, batch.weeks or "")
    except duckdb.Error as exc:  # a failing query fails its expectations below, and says why
        warnings.append(f"{name}: validated whole, its query could not be described ({type(exc).__name__})")
        return _validate_batch(context, suite, batch, con)
    fingerprint = batch_fingerprint(suite, batch, timezone, [c[:2] for c in columns])
    scoped, whole_at = batch, None
    if weeks is not None and WEEK_COLUMN not in [c[0] for c in columns]:
        warnings.append(f"{name}: validated whole, its query returns no {WEEK_COLUMN}")
    elif weeks is not None:
        try:
            found = con.execute(
                f"SELECT validated_whole_at FROM {RECORD_DB}.batches WHERE fingerprint = ? AND validated_whole_at >= ?",
                [fingerprint, now - REVALIDATE_AFTER],
            ).fetchone()
            if found:
                whole_at = found[0]
                scoped = _scoped_to_weeks(batch, weeks, con)
        except duckdb.Error as exc:
            warnings.append(f"{name}: its record is unusable, every week is validated: {exc}")
            scoped, whole_at = batch, None
    outcomes = _validate_batch(context, suite, scoped, con, WEEKS_NOTE if whole_at else "")
    if not all(o.success for o in outcomes):
        return outcomes
    try:
        con.execute("BEGIN TRANSACTION")
        _record_passed(con, name, fingerprint, whole_at or now, now)
        con.execute("COMMIT")
    except duckdb.Error as exc:  # the next night validates it whole
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        warnings.append(f"{name}: could not record that it passed: {type(exc).__name__}: {exc}")
    return outcomes


def _record_passed(
    con: duckdb.DuckDBPyConnection, name: str, fingerprint: str, validated_whole_at: datetime, now: datetime
) -> None:
    """In the caller's transaction: the batch passed under `fingerprint`; its records under other
    fingerprints (another query, zone, ...) are of no use now."""
    others = con.execute(
        f"SELECT fingerprint FROM {RECORD_DB}.batches WHERE batch = ? AND fingerprint <> ?", [name, fingerprint]
    ).fetchall()
    _drop_records(con, [f for (f,) in others])
    con.execute(
        f"INSERT OR REPLACE INTO {RECORD_DB}.batches VALUES (?, ?, ?, ?)", [fingerprint, name, validated_whole_at, now]
    )


def _rows_table(fingerprint: str) -> str:
    return f'{RECORD_DB}."rows_{fingerprint}"'


def _due(con: duckdb.DuckDBPyConnection, fingerprint: str, now: datetime) -> tuple[datetime, bool] | None:
    """(validated_whole_at, known) from the record, or None where there is none that holds: `known`
    when fewer than WHOLE_BATCH_SHARE of the batch's rows (ROW_COUNTS_TABLE) are due (DUE_ROWS_TABLE,
    filled here)."""
    found = con.execute(
        f"SELECT validated_whole_at FROM {RECORD_DB}.batches WHERE fingerprint = ? AND validated_whole_at >= ?",
        [fingerprint, now - REVALIDATE_AFTER],
    ).fetchone()
    if not found or not _has_rows_table(con, fingerprint):
        return None
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {DUE_ROWS_TABLE} AS SELECT c.row_hash, c.n "
        f"FROM {ROW_COUNTS_TABLE} AS c LEFT JOIN {_rows_table(fingerprint)} AS r USING (row_hash) "
        "WHERE r.row_hash IS NULL OR c.n > r.n"
    )
    due, total = con.execute(
        f"SELECT (SELECT coalesce(sum(n), 0) FROM {DUE_ROWS_TABLE}), (SELECT coalesce(sum(n), 0) "
        f"FROM {ROW_COUNTS_TABLE})"
    ).fetchone()
    return found[0], due < WHOLE_BATCH_SHARE * total


def _run_incremental_batch(
    context, suite: SuiteSpec, batch: BatchSpec, con, timezone: str, now: datetime, warnings: list[str]
) -> tuple[ExpectationOutcome, ...]:
    """Outcomes of an incremental batch (see the module's docstring). When it passes, its record is
    replaced by its rows as they are now; when it fails, hashes no longer in the batch leave the record
    (rows that went, also expired or erased ones: that can only make more rows due)."""
    name = f"{suite.name}.{batch.name}"
    try:
        columns = con.execute(f"DESCRIBE {batch.query}").fetchall()
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {ROW_COUNTS_TABLE} AS SELECT {ROW_HASH_SQL} AS row_hash, "
            f"count(*) AS n FROM ({batch.query}) AS batch GROUP BY ALL"
        )
    except duckdb.Error as exc:  # a failing query fails its expectations below, and says why
        warnings.append(f"{name}: validated whole, its rows could not be hashed ({type(exc).__name__})")
        return _validate_batch(context, suite, batch, con)
    fingerprint = batch_fingerprint(suite, batch, timezone, [c[:2] for c in columns])
    scoped, known, whole_at = batch, False, None
    try:
        recorded = _due(con, fingerprint, now)
        if recorded is not None:
            whole_at, known = recorded
            if known:
                scoped = _scoped(batch, con)
    except duckdb.Error as exc:  # a damaged record: validated whole, and recorded afresh if it passes
        warnings.append(f"{name}: its record of validated rows is unusable, every row is validated: {exc}")
        scoped, known = batch, False
    outcomes = _validate_batch(context, suite, scoped, con, INCREMENTAL_NOTE if known else "")
    passed = all(o.success for o in outcomes)
    try:
        con.execute("BEGIN TRANSACTION")
        if passed:
            _record_passed(con, name, fingerprint, whole_at if known else now, now)
            con.execute(f"CREATE OR REPLACE TABLE {_rows_table(fingerprint)} AS FROM {ROW_COUNTS_TABLE}")
        elif _has_rows_table(con, fingerprint):
            table = _rows_table(fingerprint)
            con.execute(f"DELETE FROM {table} WHERE row_hash NOT IN (SELECT row_hash FROM {ROW_COUNTS_TABLE})")
            con.execute(
                f"UPDATE {table} AS r SET n = c.n FROM {ROW_COUNTS_TABLE} AS c "
                "WHERE r.row_hash = c.row_hash AND c.n < r.n"
            )
        con.execute("COMMIT")
    except duckdb.Error as exc:  # the next night validates these rows again
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        warnings.append(f"{name}: could not update its record of validated rows: {type(exc).__name__}: {exc}")
    return outcomes


def _has_rows_table(con: duckdb.DuckDBPyConnection, fingerprint: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND table_name = ?",
            [RECORD_DB, f"rows_{fingerprint}"],
        ).fetchone()[0]
    )


# What DuckDB says when another connection holds the file: left alone. Anything else that keeps the
# record from being opened, or a record of another layout, starts it afresh.
LOCKED_MESSAGES = ("Could not set lock on file", "Conflicting lock", "Unique file handle conflict")
BATCHES_COLUMNS = ["fingerprint", "batch", "validated_whole_at", "written_at"]


def record_paths(record_db: Path) -> list[Path]:
    """The record's file and what DuckDB and a compaction may leave beside it."""
    copy, spill = scratch_paths(record_db)
    return [record_db, record_db.with_name(record_db.name + ".wal"), copy, copy.with_name(copy.name + ".wal"), spill]


def delete_record(record_db: Path) -> None:
    """Delete the record of validated rows and whatever copies of it a crash may have left."""
    import shutil

    for path in record_paths(record_db):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _attach_record(con: duckdb.DuckDBPyConnection, record_db: Path, now: datetime, warnings: list[str]) -> bool:
    """Attach the record read-write and drop what has run out. A record held by another run is left
    alone; one that cannot be used otherwise is deleted and started afresh (every row is validated, as
    on a first night)."""
    record_db.parent.mkdir(parents=True, exist_ok=True)
    for attempt in (1, 2):
        try:
            con.execute(f"ATTACH {quote_literal(str(record_db))} AS {RECORD_DB} (READ_WRITE)")
            layout = [
                c
                for (c,) in con.execute(
                    "SELECT column_name FROM duckdb_columns() WHERE database_name = ? AND table_name = 'batches' "
                    "ORDER BY column_index",
                    [RECORD_DB],
                ).fetchall()
            ]
            if layout and layout != BATCHES_COLUMNS:
                raise duckdb.CatalogException(f"the record's table `batches` has the columns {layout}")
            con.execute(RECORD_BATCHES_DDL)
            _forget_unused_records(con, now)
            return True
        except duckdb.Error as exc:
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")
            with contextlib.suppress(duckdb.Error):
                con.execute(f"DETACH {RECORD_DB}")
            if attempt == 2 or any(m in str(exc) for m in LOCKED_MESSAGES):
                warnings.append(f"the record of validated rows ({record_db}) is unusable: {type(exc).__name__}: {exc}")
                return False
            warnings.append(f"the record of validated rows ({record_db}) was unusable and is started afresh: {exc}")
            try:
                delete_record(record_db)
            except OSError as err:
                warnings.append(f"the record of validated rows could not be deleted: {err}")
                return False
    return False


def _drop_records(con: duckdb.DuckDBPyConnection, fingerprints: Sequence[str]) -> None:
    for fingerprint in fingerprints:
        con.execute(f"DROP TABLE IF EXISTS {_rows_table(fingerprint)}")
        con.execute(f"DELETE FROM {RECORD_DB}.batches WHERE fingerprint = ?", [fingerprint])


def _forget_unused_records(con: duckdb.DuckDBPyConnection, now: datetime) -> None:
    """Drop the records not written for REVALIDATE_AFTER (a batch renamed or removed): they would be
    validated whole anyway."""
    old = con.execute(
        f"SELECT fingerprint FROM {RECORD_DB}.batches WHERE written_at < ?", [now - REVALIDATE_AFTER]
    ).fetchall()
    con.execute("BEGIN TRANSACTION")
    _drop_records(con, [f for (f,) in old])
    con.execute("COMMIT")
