"""Retention (policy `retention.journal_days`): calls older than the retention period leave every store.

The period is measured from the run's date in the site time zone: a run on day D keeps the calls that
started on D - journal_days or later (the same days an initial load reads). A call is its TrackerID
chain: when one leg of a chain is older than the cutoff, the whole chain goes, so no mart keeps half of
an expired call. Each nightly run
  - reads the journal only from the cutoff on (the extract window is clipped),
  - deletes expired legs from the raw journal and expired rows from the quarantine, and compacts the raw
    store so the deleted values are not left in free blocks of the file,
  - lets the incremental marts drop them (their post-hooks delete what the raw store no longer has),
  - deletes kept builds (warehouse/history) that hold calls older than the cutoff minus one day: a build
    published last night survives one more night for `callsight rollback`, older ones do not
    (publish/builds.py `prune_expired_builds`, after the publish).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import duckdb

from callsight.journal.sources import Window

RUN_DATE_TAG = "callsight/run_date"


def retention_cutoff(run_date: date, journal_days: int) -> datetime:
    """First local instant that is kept: midnight of run_date - journal_days."""
    return datetime.combine(run_date - timedelta(days=journal_days), datetime.min.time())


def resolve_run_date(started: date, tagged: str | None) -> date:
    """The run's date: the day it started, or a later day given in the run tag (tests and catch-up runs).
    An earlier tagged date is ignored: a tag can only make retention stricter, never keep data longer."""
    if not tagged:
        return started
    return max(started, date.fromisoformat(tagged))


def clip_window(window: Window, cutoff: datetime) -> Window:
    """The part of the window from the cutoff on (possibly empty: start == end)."""
    start = max(window.start, cutoff)
    return Window(start, max(window.end, start))


@dataclass(frozen=True)
class PurgeCounts:
    journal_rows: int
    quarantine_rows: int

    @property
    def total(self) -> int:
        return self.journal_rows + self.quarantine_rows


def purge_store(con: duckdb.DuckDBPyConnection, cutoff: datetime, db: str = "", run_id: str = "") -> PurgeCounts:
    """Delete expired calls (whole chains) from the raw journal and expired rows from the quarantine.

    Legs from the cutoff on that go with their chain are recorded (ID and day) in `retention_expired`,
    which the night's accounting counts as expired (the source still has them); records of days before
    the cutoff go (the source's count of expired rows holds those). Quarantined rows are compared by
    their start time as the source wrote it (text), those without one by when they were extracted;
    rows quarantined as unplaced (no usable StartTime or ID) never expire: they stay until fixed or
    deleted at the source."""
    p = f"{db}." if db else ""
    chains = f'SELECT "TrackerID" FROM {p}journal WHERE "StartTime" < $cutoff AND "TrackerID" IS NOT NULL'
    con.execute(f"DELETE FROM {p}retention_expired WHERE start_day < CAST($cutoff AS DATE)", {"cutoff": cutoff})
    con.execute(
        f'INSERT INTO {p}retention_expired SELECT "ID", CAST("StartTime" AS DATE), $run_id FROM {p}journal '
        f'WHERE "StartTime" >= $cutoff AND "TrackerID" IN ({chains})',
        {"cutoff": cutoff, "run_id": run_id},
    )
    journal = con.execute(
        f'DELETE FROM {p}journal WHERE "StartTime" < $cutoff OR "TrackerID" IN '
        f'(SELECT "TrackerID" FROM {p}journal WHERE "StartTime" < $cutoff AND "TrackerID" IS NOT NULL)',
        {"cutoff": cutoff},
    ).fetchone()[0]
    quarantine = con.execute(
        f"DELETE FROM {p}quarantine WHERE NOT _unplaced "
        "AND coalesce(start_time_text < strftime($cutoff, '%Y-%m-%d %H:%M:%S'), _extracted_at < $cutoff)",
        {"cutoff": cutoff},
    ).fetchone()[0]
    return PurgeCounts(int(journal), int(quarantine))
