"""Who looked at what: Superset's access events copied into the raw store, and their retention (issue 30).

Superset logs every request and every browser event in its metadata DB (table `logs`) and keeps them
forever. Each night this copies the few that say who looked at which figures into the raw store's
`access_log` (journal/raw_store.py), incrementally by Superset's log id, and deletes rows older than
the policy's `access_log.retention_days` from both the copy and Superset's `logs` table. What counts
(found in Superset 6.1's own log, see tests/test_access_log.py):

- `dashboard opened`: the browser's `mount_dashboard` event (also when the dashboard list opens it
  without a page load);
- `chart exported`: the browser's export events of a dashboard chart or in Explore (csv, xlsx, image,
  json) and of a whole dashboard (image, pdf);
- `SQL Lab query`, `SQL Lab export`: the execute and CSV-export requests of SQL Lab.

Kept per event: Superset's log id, the time to the minute (UTC), the username, the kind and export
format, the dashboard (id, title, slug) and chart (id, name). Never query text, filter values or data.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import astuple, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from callsight.journal.raw_store import connect_raw_store, ensure_access_log
from callsight.privacy.audit import append
from callsight.site.settings import Settings

DASHBOARD_OPENED, CHART_EXPORTED, DASHBOARD_EXPORTED = "dashboard opened", "chart exported", "dashboard exported"
SQL_LAB_QUERY, SQL_LAB_EXPORT = "SQL Lab query", "SQL Lab export"
# The browser's event names (superset-frontend logger actions) -> (kind, export format).
BROWSER_EVENTS: dict[str, tuple[str, str | None]] = {
    "mount_dashboard": (DASHBOARD_OPENED, None),
    "export_csv_dashboard_chart": (CHART_EXPORTED, "csv"),
    "export_xlsx_dashboard_chart": (CHART_EXPORTED, "xlsx"),
    "chart_download_as_csv": (CHART_EXPORTED, "csv"),
    "chart_download_as_csv_pivoted": (CHART_EXPORTED, "csv"),
    "chart_download_as_xls": (CHART_EXPORTED, "xlsx"),
    "chart_download_as_json": (CHART_EXPORTED, "json"),
    "chart_download_as_image": (CHART_EXPORTED, "image"),
    "dashboard_download_as_image": (DASHBOARD_EXPORTED, "image"),
    "dashboard_download_as_pdf": (DASHBOARD_EXPORTED, "pdf"),
}
SQL_LAB_EXECUTE_PATH = "/api/v1/sqllab/execute/"
ACTIONS = ("log", "SqlLabRestApi.get_results", "SqlLabRestApi.export_csv")

# Superset's log rows that may count, with the names of their user, dashboard and chart (portable SQL;
# {p} is the driver's parameter mark). The LIKEs only narrow; classify() decides.
READ_SQL = """
SELECT l.id, l.dttm, u.username, l.action, l.json, l.dashboard_id, d.dashboard_title, d.slug,
       l.slice_id, s.slice_name
FROM logs l
LEFT JOIN ab_user u ON u.id = l.user_id
LEFT JOIN dashboards d ON d.id = l.dashboard_id
LEFT JOIN slices s ON s.id = l.slice_id
WHERE l.id > {p} AND l.action IN ('log', 'SqlLabRestApi.get_results', 'SqlLabRestApi.export_csv')
  AND (l.action <> 'log' OR l.json LIKE {p} OR l.json LIKE {p} OR l.json LIKE {p})
ORDER BY l.id
"""
READ_PATTERNS = ("%mount_dashboard%", "%export%", "%download%")  # parameters: psycopg reads % as a mark
MAX_ID_SQL = "SELECT max(id) FROM logs"
# Ids read again below the high-water mark: a row whose transaction committed after the last copy read
# past its id is not lost (rows copied already are recognised by id and time).
OVERLAP_IDS = 1000
DELETE_SQL = "DELETE FROM logs WHERE dttm < {p}"


@dataclass(frozen=True)
class AccessEvent:
    log_id: int
    accessed_at: datetime  # UTC, to the minute
    username: str | None
    kind: str
    export_format: str | None
    dashboard_id: int | None
    dashboard_title: str | None
    dashboard_slug: str | None
    chart_id: int | None
    chart_name: str | None


@dataclass(frozen=True)
class AccessCopy:
    copied: int
    expired: int
    superset_expired: int
    copied_through: int
    skipped: str | None = None  # why nothing was read (no Superset metadata DB yet)


# ---- pure -------------------------------------------------------------------------------------------
def classify(action: str, json_text: str | None) -> tuple[str, str | None] | None:
    """Pure: (kind, export format) of one Superset log row, or None when it is no access event."""
    try:
        record = json.loads(json_text) if json_text else {}
    except ValueError:
        record = {}
    if not isinstance(record, dict):
        record = {}
    if action == "log":
        return BROWSER_EVENTS.get(str(record.get("event_name")))
    if action == "SqlLabRestApi.get_results" and record.get("path") == SQL_LAB_EXECUTE_PATH:
        return (SQL_LAB_QUERY, None)
    if action == "SqlLabRestApi.export_csv":
        return (SQL_LAB_EXPORT, "csv")
    return None


def to_minute(value: datetime | str) -> datetime:
    """Pure: a stored Superset time (naive UTC; SQLite gives text) cut to the minute."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.replace(second=0, microsecond=0)


def access_events(rows: Sequence[Sequence[Any]]) -> list[AccessEvent]:
    """Pure: the access events among rows of READ_SQL (the json is read for the kind, then dropped)."""
    out = []
    for log_id, dttm, username, action, json_text, dash_id, title, slug, slice_id, slice_name in rows:
        found = classify(action, json_text)
        if found is None or dttm is None:
            continue
        kind, fmt = found
        chart = (slice_id, slice_name) if kind == CHART_EXPORTED else (None, None)
        out.append(AccessEvent(int(log_id), to_minute(dttm), username, kind, fmt, dash_id, title, slug, *chart))
    return out


def retention_start(now: datetime, days: int) -> datetime:
    """Pure: the oldest moment kept (naive UTC): events before it are deleted."""
    return now.astimezone(UTC).replace(tzinfo=None, microsecond=0) - timedelta(days=days)


# ---- Superset's metadata DB -------------------------------------------------------------------------
def metadata_url(settings: Settings) -> str:
    """Superset's metadata DB as superset/superset_config.py chooses it (as operations/probes.py)."""
    return settings.env.get("SUPERSET_DATABASE_URI") or f"sqlite:///{settings.superset_home / 'superset.db'}"


class NoMetadataDb(RuntimeError):
    """Superset has no metadata DB here yet (never started)."""


@contextmanager
def metadata_db(url: str, timeout: float = 30) -> Iterator[tuple[Any, str]]:
    """A connection to Superset's metadata DB (SQLite or PostgreSQL) and its parameter mark; commits at
    the end of the block."""
    if url.startswith("sqlite:"):
        path = Path(url.removeprefix("sqlite:///").partition("?")[0])
        if not path.exists():
            raise NoMetadataDb(f"no Superset metadata DB at {path}")
        con = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=timeout)
        try:
            yield con, "?"
            con.commit()
        finally:
            con.close()
        return
    if url.startswith("postgres"):
        import psycopg

        rest = url.partition("://")[2]  # psycopg wants no SQLAlchemy driver name
        with psycopg.connect(f"postgresql://{rest}", connect_timeout=max(1, int(timeout))) as con:
            yield con, "%s"
        return
    raise ValueError("Superset's metadata DB is neither SQLite nor PostgreSQL")


# ---- the nightly copy -------------------------------------------------------------------------------
def copy_access_log(settings: Settings, retention_days: int, now: datetime | None = None) -> AccessCopy:
    """Copy Superset's new access events into the raw store and apply the retention to both; one audit
    entry with the counts. Idempotent: a second copy finds nothing new."""
    now = now or datetime.now(UTC)
    start = retention_start(now, retention_days)
    con = connect_raw_store(settings)
    try:
        ensure_access_log(con)
        mark = con.execute("SELECT coalesce(max(copied_through), 0) FROM access_log_copies").fetchone()[0]
        try:
            with metadata_db(metadata_url(settings)) as (meta, p):
                newest = meta.execute(MAX_ID_SQL).fetchone()[0] or 0
                if newest < mark:  # a new metadata DB (ids start again): read it all, keyed by id and time
                    mark = 0
                since = max(0, mark - OVERLAP_IDS)
                events = access_events(meta.execute(READ_SQL.format(p=p), (since, *READ_PATTERNS)).fetchall())
                superset_expired = meta.execute(DELETE_SQL.format(p=p), (_param(start, p),)).rowcount
        except NoMetadataDb as exc:
            con.execute("DELETE FROM access_log WHERE accessed_at < ?", [start])
            return AccessCopy(0, 0, 0, mark, skipped=str(exc))
        return _store(con, events, start, max(mark, newest), superset_expired, now)
    finally:
        con.close()


def _param(value: datetime, mark: str) -> datetime | str:
    # SQLite holds Superset's times as text 'YYYY-MM-DD HH:MM:SS.ffffff': compare text with text.
    return value.strftime("%Y-%m-%d %H:%M:%S") if mark == "?" else value


def _store(
    con: duckdb.DuckDBPyConnection,
    events: list[AccessEvent],
    start: datetime,
    through: int,
    superset_expired: int,
    now: datetime,
) -> AccessCopy:
    copied_at = now.astimezone(UTC).replace(tzinfo=None, microsecond=0)
    rows = [(*astuple(e), copied_at) for e in events if e.accessed_at >= start]
    con.execute("BEGIN TRANSACTION")
    try:
        before = con.execute("SELECT count(*) FROM access_log").fetchone()[0]
        if rows:
            con.execute("CREATE TEMP TABLE new_access AS SELECT * FROM access_log LIMIT 0")
            con.executemany("INSERT INTO new_access VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            con.execute(
                "INSERT INTO access_log SELECT n.* FROM new_access n WHERE NOT EXISTS (SELECT 1 FROM access_log a "
                "WHERE a.log_id = n.log_id AND a.accessed_at = n.accessed_at)"
            )
            con.execute("DROP TABLE new_access")
        copied = con.execute("SELECT count(*) FROM access_log").fetchone()[0] - before
        expired = con.execute("DELETE FROM access_log WHERE accessed_at < ? RETURNING log_id", [start]).fetchall()
        con.execute(
            "INSERT INTO access_log_copies VALUES (?, ?, ?, ?, ?)",
            [through, copied, len(expired), superset_expired, copied_at],
        )
        detail = {"copied": copied, "expired": len(expired), "superset_expired": superset_expired}
        append(con, "access_log", "copy", {**detail, "copied_through": through, "kept_from": start.isoformat()})
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return AccessCopy(copied, len(expired), superset_expired, through)
