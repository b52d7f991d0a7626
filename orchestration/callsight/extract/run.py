"""Nightly journal extract: read a window of the source journal, mask, validate, mirror.

First one pass over the window's IDs (which IDs exist, which occur twice). Then one streaming SELECT
per source (one per chunk, for the SQLAlchemy fallback) reads the source rows, masks private calls
(privacy.py) and types and validates every row in DuckDB; nothing but masked rows leaves it. Rows
whose ID and row hash equal a stored row of the window are unchanged and end there: the nightly
look-back re-reads weeks of calls of which few change. The rest is taken in batches of whole row
groups, and each batch is mirrored into the raw store at once: edited rows are replaced, new rows
inserted, unchanged rows keep their extraction stamp (dbt's incremental models build on that);
malformed rows go to the quarantine table with their reason. Rows deleted in the source disappear
when the stream is done. All of it is one transaction, and memory holds a batch and the window's IDs,
not the window: every row is written once, straight into the raw journal.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa

from callsight.journal.contract import FLAG_COLUMNS, INT_COLUMNS, JOURNAL_COLUMNS, TEXT_COLUMNS, TIME_COLUMNS
from callsight.journal.raw_store import ensure_raw_store
from callsight.journal.sources import (
    EARLIEST_START,
    Placement,
    SchemaDriftError,
    Source,
    SourceUnavailableError,
    Window,
    check_schema,
    memory_connection,
)
from callsight.journal.timezones import Fold, folds, in_same_fold_sql
from callsight.privacy.erasure import (
    check_key,
    erased_sql,
    prepare_matching,
    suppressed_columns_sql,
)
from callsight.privacy.masking import masked_columns_sql, private_sql
from callsight.privacy.retention import PurgeCounts, clip_window, purge_store
from callsight.site.compaction import compact
from callsight.site.directory import Directory
from callsight.site.policy import Policy
from callsight.site.sql_text import quote_literal

__all__ = [
    "ExtractStats",
    "SchemaDriftError",
    "SourceUnavailableError",
    "Window",
    "extract",
    "staged_select",
]

MAX_TEXT = {"Subject": 4000}
DEFAULT_MAX_TEXT = 1000
MAX_DURATION_SECONDS = 24 * 3600
CHUNK_ROWS = 100_000
# Rows per batch streamed into the raw store: one row group. Memory holds about one batch.
BATCH_ROWS = 122_880
# Tables of the window's IDs, in the in-memory database (not TEMP: the reading cursor and the writing
# connection both see them): every source row's parsed ID, the duplicated ones, the stored rows' hashes.
SOURCE_IDS_TABLE = "window_source_ids"
DUPLICATES_TABLE = "window_duplicate_ids"
STORED_TABLE = "window_stored"
# The stored rows (anywhere in the store, not only in the window) whose ID the window's source holds:
# the only rows a batch can replace. Per batch, the store is then searched only when a batch holds one.
KNOWN_TABLE = "window_known_ids"
# DuckDB's memory cap for the extract. Without one it keeps every block it wrote cached, up to 80 % of
# the machine's memory. What it must hold: a batch, and per row of the window its ID, the stored
# (ID, row hash), the known ID and their hash tables, about 60 bytes (0.6 GB for a window of 10M rows).
MEMORY_LIMIT = "1536MB"
# Rows starting this many days after today or later are implausible: quarantined (sources.Placement).
HORIZON = timedelta(days=2)
CONTROL_CHARS = r"[\x00-\x08\x0a-\x1f\x7f]"


@dataclass(frozen=True)
class ExtractStats:
    """source_rows: rows of the window in the source = loaded + quarantined; written_rows: of these,
    the new and edited ones written by this run (the others were stored unchanged); erased_rows: of
    the written ones, those whose personal fields the erasure register suppressed."""

    run_id: str
    window: Window
    source_rows: int
    loaded_rows: int
    quarantined_rows: int
    seconds: float
    reader: str
    erased_rows: int = 0
    expired_rows: int = 0
    expired_quarantined_rows: int = 0
    written_rows: int = 0
    unplaced_rows: int = 0  # quarantined by the unplaced pass (not counted in source_rows: not in the window)
    source_total: int = 0  # the counting pass: every row of the source
    source_expired_rows: int = 0
    source_later_rows: int = 0
    healed_from: datetime | None = None  # the window was moved back to here (a day's counts differed)

    @property
    def rows_per_second(self) -> float:
        return self.source_rows / self.seconds if self.seconds else 0.0


# ---- the staging SELECT: mask, type, validate ------------------------------------------------------
TARGET = {
    "ID": "BIGINT",
    **dict.fromkeys(TIME_COLUMNS, "TIMESTAMP"),
    **dict.fromkeys((*INT_COLUMNS, *FLAG_COLUMNS), "DOUBLE"),
}


def _parse(col: str) -> str:
    """Parse a source column once (DuckDB's cast ignores surrounding blanks; '' parses to NULL)."""
    return f'TRY_CAST("{col}" AS {TARGET[col]})'


def _unparseable(col: str, source_type: str) -> str:
    """The value is there but did not parse (checked only where parsing gave NULL)."""
    present = f"trim(\"{col}\") <> ''" if source_type == "VARCHAR" else "true"
    return f'_v_{col} IS NULL AND "{col}" IS NOT NULL AND {present}'


def _reasons(types: dict[str, str], repeated: Sequence[Fold] = ()) -> list[tuple[str, str]]:
    """(condition, reason) in order, over the parsed columns _v_<col>; the first that holds wins.
    Times out of order on the wall clock are accepted where both lie in one of the `repeated` local
    intervals (clocks going back): the earlier in the first pass, the later in the second."""
    out = [("_v_ID IS NULL", "ID missing or not an integer")]
    out += [(_unparseable(c, types[c]), f"{c} unparseable") for c in TIME_COLUMNS]
    out.append(("_v_StartTime IS NULL", "StartTime missing or unparseable"))
    for c in INT_COLUMNS:
        out += [
            (_unparseable(c, types[c]), f"{c} not a number"),
            (f"_v_{c} < 0", f"{c} negative"),
            (f"_v_{c} > {MAX_DURATION_SECONDS}", f"{c} longer than 24 hours"),
        ]
    out += [(f"({_unparseable(c, types[c])}) OR _v_{c} NOT IN (0, 1)", f"{c} not 0/1") for c in FLAG_COLUMNS]
    for begins, ends in (("StartTime", "StopTime"), ("ConnectTime", "DisconnectTime"), ("StartTime", "ConnectTime")):
        folded = in_same_fold_sql(f"_v_{begins}", f"_v_{ends}", list(repeated))
        out.append((f"_v_{ends} < _v_{begins} AND NOT {folded}", f"{ends} before {begins}"))
    for c in TEXT_COLUMNS:
        limit = MAX_TEXT.get(c, DEFAULT_MAX_TEXT)
        out.append((f'length("{c}") > {limit}', f"{c} longer than {limit} characters"))
    return out


def _reason_sql(types: dict[str, str], duplicates: str | None = None, repeated: Sequence[Fold] = ()) -> str:
    whens = " ".join(f"WHEN {cond} THEN '{why}'" for cond, why in _reasons(types, repeated))
    # One regular expression over all text columns per row; only rows that match look column by column.
    all_text = "concat(" + ", ".join(f'"{c}"' for c in TEXT_COLUMNS) + ")"
    per_column = " ".join(
        f"WHEN regexp_matches(\"{c}\", '{CONTROL_CHARS}') THEN '{c} contains control characters'" for c in TEXT_COLUMNS
    )
    # A well-formed row whose ID occurs more than once in the window (IDs in the table `duplicates`).
    dup = f"WHEN _v_ID IN (SELECT \"ID\" FROM {duplicates}) THEN 'ID duplicated in source' " if duplicates else ""
    return f"CASE {whens} WHEN regexp_matches({all_text}, '{CONTROL_CHARS}') THEN CASE {per_column} END {dup}END"


def staged_select(
    relation: str,
    policy: Policy,
    private_lines: list[str],
    types: dict[str, str],
    erasure: bool = False,
    duplicates: str | None = None,
    stored: str | None = None,
    repeated: Sequence[Fold] = (),
    always_json: bool = False,
) -> str:
    """SQL turning source rows into masked, typed rows with a reason for malformed ones.

    `types` are the DuckDB types of the relation's columns (VARCHAR for text sources). With `erasure`,
    rows whose source numbers or contact name match the erasure register (see erasure.prepare_matching)
    lose their personal fields (_is_erased); the match is made on the source values, before masking.
    `duplicates` names a table of IDs that occur more than once in the window: such rows, when nothing
    else is wrong with them, are quarantined as duplicated. `stored` names a table of ("ID", _row_hash)
    of stored rows: a well-formed row equal to one of them is left out (it is unchanged). `repeated`
    are the site's repeated local intervals (timezones.folds) around the window: times out of order on
    the wall clock within one of them are not malformed. `always_json`: every row's masked JSON, also
    of rows without a reason (the unplaced pass quarantines them all)."""
    types = {
        c: ("VARCHAR" if types.get(c, "VARCHAR").upper().startswith("VARCHAR") else types[c]) for c in JOURNAL_COLUMNS
    }
    masked = masked_columns_sql(policy.private_calls, "_p")
    replace = ", ".join(f'{expr} AS "{col}"' for col, expr in masked.items())
    suppressed = ", ".join(f'{expr} AS "{col}"' for col, expr in suppressed_columns_sql("_e").items())
    text_cols = ", ".join(f'CAST("{c}" AS VARCHAR) AS "{c}"' for c in TEXT_COLUMNS)
    other_cols = ", ".join(f'"{c}"' for c in JOURNAL_COLUMNS if c not in TEXT_COLUMNS)
    parsed = ", ".join(f"{_parse(c)} AS _v_{c}" for c in TARGET)
    private_flag = private_sql(private_lines, types["PrivateCall"] == "VARCHAR")
    typed = []
    for c in JOURNAL_COLUMNS:
        if c in TEXT_COLUMNS:
            typed.append(f'"{c}"')
        elif c in INT_COLUMNS:
            typed.append(f'TRY_CAST(round(_v_{c}) AS INTEGER) AS "{c}"')
        elif c in FLAG_COLUMNS:
            typed.append(f'CASE WHEN _v_{c} IN (0, 1) THEN CAST(_v_{c} AS SMALLINT) END AS "{c}"')
        else:
            typed.append(f'_v_{c} AS "{c}"')
    typed_values = [t.rsplit(" AS ", 1)[0] for t in typed]
    as_json = "json_object(" + ", ".join(f"'{c}', CAST(\"{c}\" AS VARCHAR)" for c in JOURNAL_COLUMNS) + ")"
    # An anti join, not `WHERE NOT EXISTS (...)`: DuckDB turns that correlated subquery into a delim
    # join, which holds every staged row of the window in memory before the first batch comes out
    # (out of memory at 10M rows under MEMORY_LIMIT). The hash table is built on the stored (ID, hash).
    unchanged = f'ANTI JOIN {stored} AS s ON s."ID" = staged."ID" AND s._row_hash = staged._row_hash' if stored else ""
    return f"""
        WITH src AS (SELECT {other_cols}, {text_cols} FROM ({relation})),
        flagged AS (SELECT *, {private_flag} AS _p, {erased_sql() if erasure else "false"} AS _e FROM src),
        masked AS (SELECT * {f"REPLACE ({replace})" if replace else ""} FROM flagged),
        erased AS (SELECT * {f"REPLACE ({suppressed})" if erasure else ""} FROM masked),
        parsed AS (SELECT *, {parsed} FROM erased),
        checked AS (SELECT *, {_reason_sql(types, duplicates, repeated)} AS _reason FROM parsed),
        staged AS (
            SELECT {", ".join(typed)}, _p AS _is_private, _e AS _is_erased, _reason,
                   CASE WHEN _reason IS NULL THEN hash({", ".join(typed_values)}, _p) END AS _row_hash,
                   CASE WHEN {"true" if always_json else "_reason IS NOT NULL"} THEN {as_json} END AS _row_json,
                   CAST("ID" AS VARCHAR) AS _source_id, CAST("StartTime" AS VARCHAR) AS _start_text
            FROM checked
        )
        SELECT staged.* FROM staged {unchanged}
    """


# ---- the extract ---------------------------------------------------------------------------------
# TEMP table of the run: since when each quarantined row (by ID, or by its masked JSON where it has
# none) has been refused for its reason, taken before the run replaces any quarantined row.
SINCE_TABLE = "quarantine_since"
# A staged batch (`batch`) as quarantine rows, in the quarantine table's column order.
QUARANTINE_SELECT = f"""
    SELECT b._source_id, b._start_text, b._reason, b._row_json, b._is_private, $run_id, $now, $unplaced,
           coalesce(s.since, $now)
    FROM batch AS b
    LEFT JOIN {SINCE_TABLE} AS s ON s.k = coalesce(b._source_id, md5(b._row_json)) AND s.reason = b._reason
"""
COUNTS_SQL = "SELECT count(*), count(_reason), count(*) FILTER (WHERE _is_erased) FROM batch"


def _mirror_batch(con: duckdb.DuckDBPyConnection, batch: pa.Table, run_id: str, now: datetime) -> tuple[int, int, int]:
    """Mirror a batch of staged rows into the raw store; returns (rows, quarantined, erased).

    The SQL reads `batch` by its Python name (DuckDB's replacement scan). Not con.register(): the view
    it creates stays in the open transaction with its batch until the commit, so memory would grow
    with the window again.

    Well-formed rows: a stored row with the same ID and another row hash is replaced, a new ID is
    inserted. Their IDs are remembered (window_written_ids); so are the malformed rows' IDs
    (window_bad_ids), whose stored rows go. Malformed rows wait in window_quarantine until the stream
    is done, and earlier quarantine entries of the batch's IDs are superseded."""
    con.execute("DELETE FROM store.quarantine WHERE NOT _unplaced AND source_id IN (SELECT _source_id FROM batch)")
    con.execute(
        f"INSERT INTO window_quarantine {QUARANTINE_SELECT} WHERE b._reason IS NOT NULL",
        {"run_id": run_id, "now": now, "unplaced": False},
    )
    con.execute('INSERT INTO window_written_ids SELECT "ID" FROM batch WHERE _reason IS NULL')
    con.execute('INSERT INTO window_bad_ids SELECT "ID" FROM batch WHERE _reason IS NOT NULL AND "ID" IS NOT NULL')
    # A well-formed row of the batch whose ID is stored is an edit: rows equal to their stored row were
    # left out by the staging SELECT, and no two well-formed rows of a window share an ID (duplicates
    # are quarantined). Its stored row goes and the new one is inserted with the new rows. The store
    # is only searched when the batch holds edits: a first load, or a night of new calls, never does.
    edited = f'SELECT "ID" FROM batch WHERE _reason IS NULL AND "ID" IN (SELECT "ID" FROM memory.{KNOWN_TABLE})'
    if con.execute(f"SELECT EXISTS ({edited})").fetchone()[0]:
        con.execute(f'DELETE FROM store.journal WHERE "ID" IN ({edited})')
    columns = ", ".join(f'"{c}"' for c in JOURNAL_COLUMNS)
    con.execute(
        f"INSERT INTO store.journal SELECT {columns}, _is_private, _row_hash, ?, ? FROM batch WHERE _reason IS NULL",
        [run_id, now],
    )
    rows, quarantined, erased = con.execute(COUNTS_SQL).fetchone()
    return int(rows), int(quarantined), int(erased)


def _staged_batches(
    source: Source,
    reader: duckdb.DuckDBPyConnection,
    window: Window,
    sql_for: Callable[[str, dict[str, str]], str],
    chunk_rows: int,
    batch_rows: int,
    placement: Placement | None = None,
    unplaced: bool = False,
) -> Iterator[pa.Table]:
    """The window's staged (masked, typed, checked) rows in batches, read on `reader` (with a
    `placement`, its placed rows only; with `unplaced`, the placement's unplaced rows instead of the
    window). Tables, not record batches: DuckDB scans a table as often as asked, a record batch only once."""
    if source.kind == "sqlalchemy":
        for chunk in source.chunks(window, chunk_rows, placement, unplaced):
            reader.register("chunk_df", chunk)
            # all text, also a column that is empty throughout the chunk (pandas cannot tell its type)
            relation = "SELECT CAST(COLUMNS(*) AS VARCHAR) FROM chunk_df"
            yield reader.execute(sql_for(relation, {})).fetch_arrow_table()
            reader.unregister("chunk_df")
        return
    relation = (
        source.unplaced_relation_sql(placement) if unplaced and placement else source.relation_sql(window, placement)
    )
    types = {name: str(kind) for name, kind, *_ in reader.execute(f"DESCRIBE {relation}").fetchall()}
    for batch in _planned_as_written(reader, sql_for(relation, types)).fetch_record_batch(batch_rows):
        yield pa.Table.from_batches([batch])


def _planned_as_written(reader: duckdb.DuckDBPyConnection, sql: str) -> duckdb.DuckDBPyConnection:
    """Execute the staging SELECT with its joins' build sides as written. A pass-through query
    (postgres_query, mysql_query) gives DuckDB no row estimate, so it assumes one row and would build
    the unchanged-row anti join's hash table on the window's staged rows instead of the stored (ID,
    row hash): every row of the window in memory (out of memory under MEMORY_LIMIT once a window of
    stored rows is read again, as every night). execute() plans the statement; its rows are read
    afterwards. The setting is the instance's: it is put back at once, on a connection of its own
    (another statement on `reader` would end the stream)."""
    settings = reader.cursor()
    try:
        (previous,) = settings.execute("SELECT current_setting('disabled_optimizers')").fetchone()
        settings.execute("SET disabled_optimizers = 'build_side_probe_side'")
        try:
            return reader.execute(sql)
        finally:
            settings.execute(f"SET disabled_optimizers = {quote_literal(previous or '')}")
    finally:
        settings.close()


def _index_window(
    source: Source, con: duckdb.DuckDBPyConnection, window: Window, chunk_rows: int, placement: Placement | None = None
) -> None:
    """The tables SOURCE_IDS_TABLE (every source row's parsed ID, NULL where it has none),
    DUPLICATES_TABLE, STORED_TABLE (ID and row hash of the stored rows of the window) and KNOWN_TABLE
    (the IDs of stored rows, in the window or not, that the window's source holds)."""
    con.execute(f'CREATE OR REPLACE TABLE memory.{SOURCE_IDS_TABLE} ("ID" BIGINT)')
    if source.kind == "sqlalchemy":
        for chunk in source.window_ids(window, chunk_rows, placement):
            con.execute(
                f"INSERT INTO memory.{SOURCE_IDS_TABLE} "
                "SELECT TRY_CAST(v AS BIGINT) FROM unnest(CAST(? AS VARCHAR[])) t(v)",
                [chunk],
            )
    else:
        con.execute(f"INSERT INTO memory.{SOURCE_IDS_TABLE} {source.window_ids_sql(window, placement)}")
    con.execute(
        f'CREATE OR REPLACE TABLE memory.{DUPLICATES_TABLE} AS SELECT "ID" FROM memory.{SOURCE_IDS_TABLE} '
        'WHERE "ID" IS NOT NULL GROUP BY 1 HAVING count(*) > 1'
    )
    con.execute(
        f'CREATE OR REPLACE TABLE memory.{STORED_TABLE} AS SELECT "ID", _row_hash FROM store.journal '
        'WHERE "StartTime" >= ? AND "StartTime" < ?',
        [window.start, window.end],
    )
    con.execute(
        f'CREATE OR REPLACE TABLE memory.{KNOWN_TABLE} AS SELECT "ID" FROM store.journal '
        f'WHERE "ID" IN (SELECT "ID" FROM memory.{SOURCE_IDS_TABLE})'
    )


def extract(
    source: Source,
    raw_db: Path,
    window: Window,
    directory: Directory,
    policy: Policy,
    run_id: str,
    chunk_rows: int = CHUNK_ROWS,
    log: Callable[[str], None] = lambda _m: None,
    cutoff: datetime | None = None,
    erasure_key: str | None = None,
    before_commit: Callable[[], None] = lambda: None,
    batch_rows: int = BATCH_ROWS,
) -> ExtractStats:
    """Replace `window` in the raw store with the masked, validated source rows.

    With a retention `cutoff`, only the window's part from the cutoff on is read, and expired calls are
    deleted from the raw store (retention.purge_store), which is then compacted. Rows matching the
    erasure register land without their personal fields; a non-empty register needs `erasure_key`.
    `before_commit` runs when everything is written and the transaction is about to commit (the fault
    tests halt a run there, see halt.py). `batch_rows` (DuckDB readers) and `chunk_rows` (SQLAlchemy
    fallback) bound the rows held in memory at once; the result does not depend on them."""
    t0 = time.perf_counter()
    if cutoff is not None:
        window = clip_window(window, cutoff)
    source.probe()
    engine = source.engine()
    try:
        source.use_types(check_schema(engine, source.table))
    finally:
        engine.dispose()
    raw_db.parent.mkdir(parents=True, exist_ok=True)
    now = datetime.now()
    # Without a retention cutoff (tests, benchmarks) the extract answers for the window alone: what lies
    # before it counts as expired and no day before it is read again.
    placement = Placement(
        cutoff if cutoff is not None else window.start,
        window.end,
        max(window.end, datetime.combine(datetime.now(policy.tz).date() + HORIZON, datetime.min.time())),
    )
    con = memory_connection()
    try:
        con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
        source.attach(con)
        con.execute(f"ATTACH {quote_literal(str(raw_db))} AS store")
        ensure_raw_store(con, "store")
        erasure = check_key(con, erasure_key, "store") > 0
        # The counting pass: the whole source in one count query run by the source itself. A day before
        # the window whose count differs from the raw store's (a row deleted, added or fixed there since
        # the look-back passed it) is read again: the window starts at the first such day.
        counts = source.counts(con, placement)
        healed_from = _first_differing_day(con, counts, placement, window)
        if healed_from is not None:
            log(f"extract: counts of days before the window differ from the source's: reading from {healed_from}")
            window = Window(healed_from, window.end)
        # The source is read on a cursor of its own (same database instance, own session): its streaming
        # result is consumed batch by batch while `con` writes the raw store in one transaction.
        _index_window(source, con, window, chunk_rows, placement)
        reader = con.cursor()
        source.configure(reader)
        if erasure:
            prepare_matching(reader, erasure_key or "", "store")

        # A leg starts in the window and lasts at most a day (MAX_DURATION_SECONDS).
        repeated = folds(policy.timezone, window.start.date(), window.end.date() + timedelta(days=1))

        def sql_for(relation: str, types: dict[str, str]) -> str:
            return staged_select(
                relation, policy, directory.private_lines, types, erasure, DUPLICATES_TABLE, STORED_TABLE, repeated
            )

        def unplaced_sql_for(relation: str, types: dict[str, str]) -> str:
            staged = staged_select(
                relation, policy, directory.private_lines, types, erasure, repeated=repeated, always_json=True
            )
            return f"SELECT * REPLACE ({_unplaced_reason_sql(placement)} AS _reason) FROM ({staged})"

        # Inserts that keep their order fill the raw journal's row groups one after the other and write
        # each to the file when it is full, while the transaction is still open. Unordered (parallel)
        # inserts write about twice as fast, but leave their rows in memory until the commit, also in
        # batches of whole row groups (measured with DuckDB 1.4: out of memory under the streaming
        # test's cap), so memory would grow with the window.
        con.execute("SET SESSION preserve_insertion_order = true")
        con.execute("BEGIN TRANSACTION")
        con.execute('CREATE TEMP TABLE window_written_ids ("ID" BIGINT)')
        con.execute('CREATE TEMP TABLE window_bad_ids ("ID" BIGINT)')
        con.execute("CREATE TEMP TABLE window_quarantine AS FROM store.quarantine LIMIT 0")
        con.execute(
            f"CREATE TEMP TABLE {SINCE_TABLE} AS SELECT coalesce(source_id, md5(row_json)) AS k, reason, "
            "min(coalesce(_first_quarantined_at, _extracted_at)) AS since FROM store.quarantine GROUP BY ALL"
        )
        params = [window.start, window.end]
        # A rerun of the window supersedes what earlier runs quarantined for the same rows (by their
        # start time as the source compares it: the window's bounds are midnights).
        con.execute(
            "DELETE FROM store.quarantine WHERE NOT _unplaced AND ("
            "(TRY_CAST(start_time_text AS TIMESTAMP) >= $1 AND TRY_CAST(start_time_text AS TIMESTAMP) < $2) "
            "OR (start_time_text >= strftime($1, '%Y-%m-%d %H:%M:%S') "
            "AND start_time_text < strftime($2, '%Y-%m-%d %H:%M:%S')))",
            params,
        )
        # The window is read again, and with it the legs retention took from it (purge_store records them anew).
        con.execute("DELETE FROM store.retention_expired WHERE start_day >= $1 AND start_day < $2", params)
        streamed = quarantined = erased = 0
        for batch in _staged_batches(source, reader, window, sql_for, chunk_rows, batch_rows, placement):
            rows, bad, gone = _mirror_batch(con, batch, run_id, now)
            streamed, quarantined, erased = streamed + rows, quarantined + bad, erased + gone
            log(f"extract: {streamed} new, edited or malformed rows streamed")
        con.execute("INSERT INTO store.quarantine FROM window_quarantine")
        # The unplaced pass: the rows no window holds, found by the source, all quarantined; what was
        # quarantined as unplaced before and is not now (fixed or deleted at the source) leaves. When the
        # counting pass found none, the source is not asked again.
        con.execute("DELETE FROM store.quarantine WHERE _unplaced")
        unplaced = 0
        found = any(k == "unplaced" and n for k, _, n in counts)
        for batch in (
            _staged_batches(source, reader, window, unplaced_sql_for, chunk_rows, batch_rows, placement, unplaced=True)
            if found
            else ()
        ):
            con.execute(
                f"INSERT INTO store.quarantine {QUARANTINE_SELECT}", {"run_id": run_id, "now": now, "unplaced": True}
            )
            # entries an earlier version wrote for these rows within a window
            con.execute(
                "DELETE FROM store.quarantine WHERE NOT _unplaced AND _run_id <> ? "
                "AND source_id IN (SELECT _source_id FROM batch)",
                [run_id],
            )
            unplaced += batch.num_rows
            erased += batch.filter(batch.column("_is_erased")).num_rows
        reader.close()
        # Stored rows of the window that this run did not write go when their ID has left the window
        # (deleted in the source, or moved) or is now malformed; the others are the unchanged rows.
        con.execute(
            'DELETE FROM store.journal WHERE "StartTime" >= ? AND "StartTime" < ? '
            'AND "ID" NOT IN (SELECT "ID" FROM window_written_ids) '
            f'AND ("ID" NOT IN (SELECT "ID" FROM memory.{SOURCE_IDS_TABLE} WHERE "ID" IS NOT NULL) '
            'OR "ID" IN (SELECT "ID" FROM window_bad_ids))',
            params,
        )
        before, unchanged = con.execute(
            'SELECT count(*), count(*) FILTER (WHERE "ID" NOT IN (SELECT "ID" FROM window_written_ids)) '
            'FROM store.journal WHERE "StartTime" >= ? AND "StartTime" < ?',
            params,
        ).fetchone()
        source_rows = streamed + unchanged
        purged = purge_store(con, cutoff, "store", run_id) if cutoff is not None else PurgeCounts(0, 0)
        expired_in_window = (
            before
            - con.execute(
                'SELECT count(*) FROM store.journal WHERE "StartTime" >= ? AND "StartTime" < ?', params
            ).fetchone()[0]
        )
        seconds = time.perf_counter() - t0
        loaded = source_rows - quarantined
        totals = {
            kind: sum(n for k, _, n in counts if k == kind) for kind in ("expired", "placed", "later", "unplaced")
        }
        con.execute(
            "INSERT INTO store.extract_runs (run_id, window_start, window_end, source_rows, loaded_rows, "
            "quarantined_rows, seconds, finished_at, expired_in_window, source_total, source_expired, "
            "source_placed, source_later, source_unplaced, retention_cutoff, reconciled_until, horizon, healed_from) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                run_id,
                window.start,
                window.end,
                source_rows,
                loaded,
                quarantined,
                seconds,
                now,
                expired_in_window,
                sum(totals.values()),
                totals["expired"],
                totals["placed"],
                totals["later"],
                totals["unplaced"],
                placement.cutoff,
                placement.until,
                placement.horizon,
                healed_from,
            ],
        )
        before_commit()
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise
    finally:
        con.close()
    if purged.total:
        compact(raw_db)  # deleted values must not linger in free blocks of the file
        log(f"retention: {purged.journal_rows} journal and {purged.quarantine_rows} quarantined rows deleted")
    if unplaced:
        log(f"extract: {unplaced} rows without a usable StartTime or ID (or far ahead) quarantined")
    return ExtractStats(
        run_id,
        window,
        source_rows,
        loaded,
        quarantined,
        time.perf_counter() - t0,
        source.kind,
        erased_rows=erased,
        expired_rows=purged.journal_rows,
        expired_quarantined_rows=purged.quarantine_rows,
        written_rows=streamed - quarantined,
        unplaced_rows=unplaced,
        source_total=sum(totals.values()),
        source_expired_rows=totals["expired"],
        source_later_rows=totals["later"],
        healed_from=healed_from,
    )


def _unplaced_reason_sql(placement: Placement) -> str:
    """The reason of an unplaced row that the staging found nothing wrong with (constant texts only)."""
    horizon, earliest = Placement.literal(placement.horizon), Placement.literal(EARLIEST_START)
    return (
        "coalesce(_reason, CASE "
        f"WHEN \"StartTime\" >= TIMESTAMP {horizon} THEN 'StartTime in the future' "
        f"WHEN \"StartTime\" < TIMESTAMP {earliest} THEN 'StartTime before {EARLIEST_START.year}' "
        "ELSE 'ID or StartTime not in the journal''s plain form' END)"
    )


def _first_differing_day(
    con: duckdb.DuckDBPyConnection, counts: list[tuple[str, str | None, int]], placement: Placement, window: Window
) -> datetime | None:
    """The first day before the window whose placed rows in the source (`counts`) differ in number
    from the raw store's (its journal legs, the rows quarantined within a window and the legs retention
    took with their chain), as a window start; None when every such day agrees."""
    source_days = {d: n for k, d, n in counts if k == "placed" and d is not None}
    fmt = "%Y-%m-%d %H:%M:%S"
    start, until = placement.cutoff.strftime(fmt), window.start.strftime(fmt)
    stored = dict(
        con.execute(
            """
            SELECT day, count(*) FROM (
                SELECT strftime(CAST("StartTime" AS DATE), '%Y-%m-%d') AS day FROM store.journal
                WHERE "StartTime" >= CAST($1 AS TIMESTAMP) AND "StartTime" < CAST($2 AS TIMESTAMP)
                UNION ALL
                SELECT left(start_time_text, 10) FROM store.quarantine
                WHERE NOT _unplaced AND start_time_text >= $1 AND start_time_text < $2
                UNION ALL
                SELECT strftime(start_day, '%Y-%m-%d') FROM store.retention_expired
                WHERE start_day >= CAST($1 AS TIMESTAMP) AND start_day < CAST($2 AS TIMESTAMP)
            ) GROUP BY day
            """,
            [start, until],
        ).fetchall()
    )
    first = window.start.strftime("%Y-%m-%d")
    differing = sorted(d for d in set(source_days) | set(stored) if d < first and source_days.get(d) != stored.get(d))
    if not differing:
        return None
    return max(placement.cutoff, _day_start(differing[0]))


def _day_start(day: str) -> datetime:
    """Midnight of a day as the source wrote it (YYYY-MM-DD; an impossible day such as 2026-02-30, which
    text sources allow, counts from the first of its month, or of its year)."""
    with contextlib.suppress(ValueError):
        return datetime.combine(date.fromisoformat(day), datetime.min.time())
    with contextlib.suppress(ValueError):
        return datetime(int(day[:4]), max(1, min(12, int(day[5:7]))), 1)
    return EARLIEST_START
