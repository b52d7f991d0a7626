"""The repeated hours of a time zone: where a local wall-clock time names two instants.

When clocks go back (Europe: the last Sunday of October, 03:00 summer time becomes 02:00 winter time),
the local times from 02:00 to 03:00 happen twice. The journal stores local times, so a call that
begins at 02:57 (summer time) and ends at 02:02 (winter time) ends "before" it began on the wall clock.
The extract accepts such a row when both times lie in the same repeated interval; the warehouse
(`timezone_folds` and `int_call_legs_enriched` in dbt) picks for each time the instant that fits the
call. Both use the same definition: a fold is the local interval [start, end) that occurs twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

STEP = timedelta(minutes=15)  # every zone of the tz database changes its offset on a quarter hour


@dataclass(frozen=True)
class Fold:
    """A repeated local interval [start, end) (naive local times); offsets in seconds east of UTC."""

    start: datetime
    end: datetime
    offset_before: int
    offset_after: int

    @property
    def seconds(self) -> int:
        return self.offset_before - self.offset_after


def _offset(zone: ZoneInfo, at_utc: datetime) -> int:
    off = at_utc.astimezone(zone).utcoffset()
    return int(off.total_seconds()) if off else 0


def transitions(tz: str, first: date, last: date) -> list[tuple[datetime, int, int]]:
    """(UTC instant, offset before, offset after) of every offset change from `first` to `last`
    (UTC days, inclusive; changes within a day of either end included). Daily samples, refined to
    the quarter hour where two days differ."""
    zone = ZoneInfo(tz)
    day = datetime.combine(first - timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    end = datetime.combine(last + timedelta(days=2), datetime.min.time(), tzinfo=UTC)
    out: list[tuple[datetime, int, int]] = []
    off = _offset(zone, day)
    while day < end:
        nxt = day + timedelta(days=1)
        off_next = _offset(zone, nxt)
        if off_next != off:
            t, prev = day, off
            while t < nxt:
                t += STEP
                cur = _offset(zone, t)
                if cur != prev:
                    out.append((t.replace(tzinfo=None), prev, cur))
                    prev = cur
        day, off = nxt, off_next
    return out


def folds(tz: str, first: date, last: date) -> list[Fold]:
    """The repeated local intervals of `tz` around the days `first` to `last`."""
    return [
        Fold(at + timedelta(seconds=after), at + timedelta(seconds=before), before, after)
        for at, before, after in transitions(tz, first, last)
        if after < before
    ]


def in_same_fold_sql(begins: str, ends: str, repeated: list[Fold]) -> str:
    """SQL: the local time `ends`, which is before `begins` on the wall clock, can still be after it in
    time: both lie in the same repeated interval (`begins` in its first pass, `ends` in its second)."""
    if not repeated:
        return "false"
    tests = (
        f"({ends} >= TIMESTAMP '{f.start:%Y-%m-%d %H:%M:%S}' AND {begins} < TIMESTAMP '{f.end:%Y-%m-%d %H:%M:%S}')"
        for f in repeated
    )
    return "(" + " OR ".join(tests) + ")"
