"""Is the served warehouse fresh? Its publish time (marts.build_info.built_at) must be recent.

The newest call is reported but not judged: after a weekend or a public holiday it is legitimately
older than a day and a half, while a warehouse that was not published for that long means the
nightly runs are failing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

DEFAULT_STALE_AFTER_HOURS = 36


@dataclass(frozen=True)
class ServedState:
    built_at: datetime | None  # aware (UTC)
    newest_call_utc: datetime | None  # naive UTC, as stored in fct_calls


@dataclass(frozen=True)
class Freshness:
    fresh: bool
    age: timedelta | None
    reason: str


def read_served_state(served: Path) -> ServedState:
    """Publish time and newest call of the served file, opened read-only; empty when there is none."""
    if not served.exists():
        return ServedState(None, None)
    con = duckdb.connect(str(served), read_only=True)
    try:
        built = con.execute("SELECT max(built_at) FROM marts.build_info").fetchone()[0]
        try:  # the calls are in week files: one may be damaged (operations/probes.py reports which)
            newest = con.execute("SELECT max(start_time_utc) FROM marts.fct_calls").fetchone()[0]
        except duckdb.Error:
            newest = None
    except duckdb.Error:
        return ServedState(None, None)
    finally:
        con.close()
    if built is not None and built.tzinfo is None:
        built = built.replace(tzinfo=UTC)
    return ServedState(built.astimezone(UTC) if built else None, newest)


def judge(state: ServedState, now: datetime, stale_after: timedelta) -> Freshness:
    """Pure: fresh when the served warehouse was published less than `stale_after` before `now`."""
    if state.built_at is None:
        return Freshness(False, None, "no published warehouse (or no build_info in it)")
    age = now - state.built_at
    hours = age.total_seconds() / 3600
    limit = stale_after.total_seconds() / 3600
    if age > stale_after:
        return Freshness(False, age, f"stale: published {hours:.1f} h ago (limit {limit:g} h)")
    return Freshness(True, age, f"published {hours:.1f} h ago (limit {limit:g} h)")
