"""Mirroring a batch of staged rows into the raw store: edits replace, new rows insert, malformed rows
wait for the quarantine with their reason and since when they have been refused."""

from __future__ import annotations

from datetime import datetime

import duckdb
import pyarrow as pa

from callsight.extract.reading import KNOWN_TABLE
from callsight.journal.contract import JOURNAL_COLUMNS

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


def mirror_batch(con: duckdb.DuckDBPyConnection, batch: pa.Table, run_id: str, now: datetime) -> tuple[int, int, int]:
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
