"""Where every source row belongs: the unplaced rows' reasons, and the first day before the window
whose count differs between the source and the raw store (that day is read again)."""

from __future__ import annotations

import contextlib
from datetime import date, datetime

import duckdb

from callsight.journal.sources import EARLIEST_START, Placement, Window


def unplaced_reason_sql(placement: Placement) -> str:
    """The reason of an unplaced row that the staging found nothing wrong with (constant texts only)."""
    horizon, earliest = Placement.literal(placement.horizon), Placement.literal(EARLIEST_START)
    return (
        "coalesce(_reason, CASE "
        f"WHEN \"StartTime\" >= TIMESTAMP {horizon} THEN 'StartTime in the future' "
        f"WHEN \"StartTime\" < TIMESTAMP {earliest} THEN 'StartTime before {EARLIEST_START.year}' "
        "ELSE 'ID or StartTime not in the journal''s plain form' END)"
    )


def first_differing_day(
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
    return max(placement.cutoff, day_start(differing[0]))


def day_start(day: str) -> datetime:
    """Midnight of a day as the source wrote it (YYYY-MM-DD; an impossible day such as 2026-02-30, which
    text sources allow, counts from the first of its month, or of its year)."""
    with contextlib.suppress(ValueError):
        return datetime.combine(date.fromisoformat(day), datetime.min.time())
    with contextlib.suppress(ValueError):
        return datetime(int(day[:4]), max(1, min(12, int(day[5:7]))), 1)
    return EARLIEST_START
