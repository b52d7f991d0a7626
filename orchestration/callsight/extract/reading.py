"""Reading the window from the source: its IDs first (which exist, which repeat, which are stored),
then its staged rows in batches of whole row groups."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import duckdb
import pyarrow as pa

from callsight.journal.sources import Placement, Source, Window
from callsight.site.sql_text import quote_literal

# Tables of the window's IDs, in the in-memory database (not TEMP: the reading cursor and the writing
# connection both see them): every source row's parsed ID, the duplicated ones, the stored rows' hashes.
SOURCE_IDS_TABLE = "window_source_ids"


DUPLICATES_TABLE = "window_duplicate_ids"


STORED_TABLE = "window_stored"


# The stored rows (anywhere in the store, not only in the window) whose ID the window's source holds:
# the only rows a batch can replace. Per batch, the store is then searched only when a batch holds one.
KNOWN_TABLE = "window_known_ids"


def staged_batches(
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
    for batch in planned_as_written(reader, sql_for(relation, types)).fetch_record_batch(batch_rows):
        yield pa.Table.from_batches([batch])


def planned_as_written(reader: duckdb.DuckDBPyConnection, sql: str) -> duckdb.DuckDBPyConnection:
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


def index_window(
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
