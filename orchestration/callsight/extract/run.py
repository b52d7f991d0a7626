"""Nightly journal extract: read a window of the source journal, mask, validate, mirror.

The steps live beside this module: reading.py (IDs, batches), staging.py (the staging SELECT),
mirror.py (into the raw store), accounting.py (where every source row belongs).

First one pass over the window's IDs (which IDs exist, which occur twice). Then one streaming SELECT
per source (one per chunk, for the SQLAlchemy fallback) reads the source rows, masks private calls
(privacy/masking.py) and types and validates every row in DuckDB; nothing but masked rows leaves it. Rows
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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import duckdb

from callsight.extract.accounting import first_differing_day, unplaced_reason_sql
from callsight.extract.mirror import QUARANTINE_SELECT, SINCE_TABLE, mirror_batch
from callsight.extract.reading import DUPLICATES_TABLE, SOURCE_IDS_TABLE, STORED_TABLE, index_window, staged_batches
from callsight.extract.staging import staged_select
from callsight.journal.raw_store import ensure_raw_store
from callsight.journal.sources import (
    Placement,
    Source,
    Window,
    check_schema,
    memory_connection,
)
from callsight.journal.timezones import folds
from callsight.privacy.erasure import (
    check_key,
    prepare_matching,
)
from callsight.privacy.retention import PurgeCounts, clip_window, purge_store
from callsight.site.compaction import compact
from callsight.site.directory import Directory
from callsight.site.policy import Policy
from callsight.site.sql_text import quote_literal

CHUNK_ROWS = 100_000
# Rows per batch streamed into the raw store: one row group. Memory holds about one batch.
BATCH_ROWS = 122_880
# DuckDB's memory cap for the extract: without one it keeps every block it wrote cached. It must hold a
# batch and, per row of the window, its IDs, row hashes and their hash tables (docs/performance.md).
MEMORY_LIMIT = "1536MB"
# Rows starting this many days after today or later are implausible: quarantined (sources.Placement).
HORIZON = timedelta(days=2)


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
    tests halt a run there, see site/halt.py). `batch_rows` (DuckDB readers) and `chunk_rows` (SQLAlchemy
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
        healed_from = first_differing_day(con, counts, placement, window)
        if healed_from is not None:
            log(f"extract: counts of days before the window differ from the source's: reading from {healed_from}")
            window = Window(healed_from, window.end)
        # The source is read on a cursor of its own (same database instance, own session): its streaming
        # result is consumed batch by batch while `con` writes the raw store in one transaction.
        index_window(source, con, window, chunk_rows, placement)
        (stored_before,) = con.execute(f"SELECT count(*) FROM memory.{STORED_TABLE}").fetchone()
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
            return f"SELECT * REPLACE ({unplaced_reason_sql(placement)} AS _reason) FROM ({staged})"

        # Inserts that keep their order write each full row group to the file while the transaction is
        # still open; unordered ones are faster but hold their rows until the commit, so memory would
        # grow with the window (docs/performance.md).
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
        for batch in staged_batches(source, reader, window, sql_for, chunk_rows, batch_rows, placement):
            rows, bad, gone = mirror_batch(con, batch, run_id, now)
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
            staged_batches(source, reader, window, unplaced_sql_for, chunk_rows, batch_rows, placement, unplaced=True)
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
        # (deleted in the source, or moved) or is now malformed; the others are the unchanged rows. One
        # anti join at a time over the window's IDs, and none when the window held no stored row before
        # (a first load: every row in it now was written): two at once held 0.8 GB more at 10M legs, the
        # first alone 0.4 GB (docs/performance.md).
        con.execute('CREATE TEMP TABLE window_not_written ("ID" BIGINT)')
        if stored_before:
            con.execute(
                'INSERT INTO window_not_written SELECT "ID" FROM store.journal '
                'WHERE "StartTime" >= ? AND "StartTime" < ? AND "ID" NOT IN (SELECT "ID" FROM window_written_ids)',
                params,
            )
        (not_written,) = con.execute("SELECT count(*) FROM window_not_written").fetchone()
        gone = 0
        if not_written:
            (gone,) = con.execute(
                'DELETE FROM store.journal WHERE "StartTime" >= ? AND "StartTime" < ? AND "ID" IN ('
                'SELECT "ID" FROM window_not_written WHERE '
                f'"ID" NOT IN (SELECT "ID" FROM memory.{SOURCE_IDS_TABLE} WHERE "ID" IS NOT NULL) '
                'OR "ID" IN (SELECT "ID" FROM window_bad_ids))',
                params,
            ).fetchone()
        unchanged = not_written - gone
        (before,) = con.execute(
            'SELECT count(*) FROM store.journal WHERE "StartTime" >= ? AND "StartTime" < ?', params
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
