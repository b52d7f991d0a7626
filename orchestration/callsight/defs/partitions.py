"""Daily partitions of the journal, in the site time zone."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg

PARTITIONS_START = "2020-01-01"
PARTITIONS_START_YEAR = 2020


def partition_days(tw: dg.TimeWindow) -> tuple[date, date]:
    """First and last local day of a partition (range). Aware datetimes subtract on the wall clock,
    so DST days of 23 or 25 hours map to their own date."""
    return tw.start.date(), (tw.end - timedelta(days=1)).date()


def daily_partitions(timezone: str) -> dg.DailyPartitionsDefinition:
    return dg.DailyPartitionsDefinition(start_date=PARTITIONS_START, timezone=timezone)
