"""The probes of `callsight health`: each looks at one part, read-only and with a short timeout, and
judges what it saw with a pure function beside it. No probe reports personal data: ages, counts, URLs.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import requests

from callsight.defs.audit.silence import Night, night_max_hours, read_nights
from callsight.operations.health import Perf, ProbeResult, State, Thresholds, run_probe
from callsight.publish.freshness import read_served_state
from callsight.publish.week_files import damaged_files, listed_files, misplaced_views
from callsight.site.settings import Settings


# ---- Superset -----------------------------------------------------------------------------------
def probe_superset(settings: Settings, limits: Thresholds) -> ProbeResult:
    """Superset's own /health endpoint at CALLSIGHT_SUPERSET_URL answers 200 "OK"."""
    url = f"{settings.superset_url}/health"
    try:
        response = requests.get(url, timeout=limits.timeout_seconds)
    except requests.RequestException as exc:
        return ProbeResult("superset", State.CRITICAL, f"Superset not answering at {url} ({type(exc).__name__})")
    seconds = response.elapsed.total_seconds()
    perf = (Perf("superset_seconds", round(seconds, 3), "s"),)
    if response.status_code != 200:
        message = f"Superset {url} answers HTTP {response.status_code}"
        return ProbeResult("superset", State.CRITICAL, message, None, perf)
    return ProbeResult("superset", State.OK, f"Superset answers ({seconds:.2f} s)", round(seconds, 3), perf)


# ---- last night ---------------------------------------------------------------------------------
def judge_night(night: Night | None, now: datetime, limits: Thresholds, max_running_hours: float) -> ProbeResult:
    """Pure: the latest night's status and age."""
    if night is None:
        return ProbeResult("night", State.WARNING, "no nightly run recorded yet")
    if night.finished_at is None:
        started = night.started_at or now
        hours = (now - started).total_seconds() / 3600
        if hours <= max_running_hours:
            return ProbeResult("night", State.OK, f"night running for {hours:.1f} h", "running")
        message = f"night started {hours:.1f} h ago never finished (killed?)"
        return ProbeResult("night", State.CRITICAL, message, "unfinished")
    hours = (now - night.finished_at).total_seconds() / 3600
    perf = (Perf("night_age_hours", round(hours, 1), "", limits.night_warning_hours),)
    if night.status != "success":
        step = f" at step {night.failed_step}" if night.failed_step else ""
        return ProbeResult("night", State.CRITICAL, f"last night failed{step} {hours:.1f} h ago", night.status, perf)
    if hours > limits.night_warning_hours:
        return ProbeResult("night", State.WARNING, f"last night finished {hours:.1f} h ago", night.status, perf)
    return ProbeResult("night", State.OK, f"last night succeeded {hours:.1f} h ago", night.status, perf)


def probe_night(settings: Settings, limits: Thresholds, now: datetime) -> ProbeResult:
    """From the audit log's run entries, read-only; UNKNOWN while a writer holds the raw store."""
    try:
        nights = read_nights(settings)
    except duckdb.IOException:
        return ProbeResult("night", State.UNKNOWN, "raw store in use (a night is running?): night not checked")
    return judge_night(nights[-1] if nights else None, now, limits, night_max_hours(settings.env))


# ---- served warehouse ---------------------------------------------------------------------------
def judge_warehouse(built_at: datetime | None, now: datetime, limits: Thresholds, stale_hours: float) -> ProbeResult:
    """Pure: WARNING after a missed night, CRITICAL once the `fresh` check fails."""
    if built_at is None:
        return ProbeResult("warehouse", State.CRITICAL, "no published warehouse")
    hours = (now - built_at).total_seconds() / 3600
    perf = (Perf("warehouse_age_hours", round(hours, 1), "", limits.warehouse_warning_hours, stale_hours),)
    message = f"served warehouse {hours:.1f} h old"
    if hours > stale_hours:
        return ProbeResult("warehouse", State.CRITICAL, message, round(hours, 1), perf)
    if hours > limits.warehouse_warning_hours:
        return ProbeResult("warehouse", State.WARNING, message, round(hours, 1), perf)
    return ProbeResult("warehouse", State.OK, message, round(hours, 1), perf)


def probe_warehouse(settings: Settings, limits: Thresholds, now: datetime) -> ProbeResult:
    """Its age, and CRITICAL while a week file it serves is damaged (the next night rebuilds them) or its
    views read another place's files (a home moved by hand: the next night serves this home's)."""
    state = read_served_state(settings.served_db)
    judged = judge_warehouse(state.built_at, now, limits, float(settings.stale_after_hours))
    if not settings.served_db.exists():
        return judged
    if damaged := damaged_files(settings.served_db, settings.parts_dir):
        message = (
            f"{len(damaged)} week file(s) damaged - {'; '.join(damaged[:3])}{' ...' if len(damaged) > 3 else ''} - "
            "charts of those weeks fail until the next night rebuilds every week from the raw store "
            "(or `callsight run --full-refresh` now)"
        )
    elif misplaced := misplaced_views(settings.served_db, settings.parts_dir):
        message = (
            f"{'; '.join(misplaced)}, not {settings.parts_dir} - the home was moved or copied by hand: every "
            "chart fails until the next night publishes a build reading this home's files (or `callsight run` now)"
        )
    else:
        return judged
    return ProbeResult("warehouse", State.CRITICAL, message, judged.value, judged.perf)


# ---- disk ---------------------------------------------------------------------------------------
def judge_disk(free: int, total: int, needed: int, limits: Thresholds) -> ProbeResult:
    """Pure: free share of the disk; CRITICAL as well when less is free than the next build needs."""
    percent = round(100 * free / total, 1) if total else 0.0
    perf = (Perf("disk_free_percent", percent, "%", limits.disk_warning_percent, limits.disk_critical_percent),)
    message = f"{free / 2**30:.1f} GiB ({percent:g} %) free under CALLSIGHT_HOME"
    if percent < limits.disk_critical_percent:
        return ProbeResult("disk", State.CRITICAL, message, percent, perf)
    if free < needed:
        message += f", the next build needs {needed / 2**30:.1f} GiB"
        return ProbeResult("disk", State.CRITICAL, message, percent, perf)
    if percent < limits.disk_warning_percent:
        return ProbeResult("disk", State.WARNING, message, percent, perf)
    return ProbeResult("disk", State.OK, message, percent, perf)


def build_space(settings: Settings) -> int:
    """Bytes the next build may write: a copy of the served file beside it, compacted once more, and - on
    a full refresh - every week file anew while the served ones stay (publish/week_files.py)."""
    if not settings.served_db.exists():
        return 0
    weeks = [settings.parts_dir / name for name in listed_files(settings.served_db)]
    return 2 * settings.served_db.stat().st_size + sum(p.stat().st_size for p in weeks if p.exists())


def probe_disk(settings: Settings, limits: Thresholds) -> ProbeResult:
    usage = shutil.disk_usage(settings.home)
    needed = build_space(settings)
    return judge_disk(usage.free, usage.total, needed, limits)


# ---- Celery worker ------------------------------------------------------------------------------
def celery_queue(settings: Settings) -> str:
    return settings.env.get("CALLSIGHT_CELERY_QUEUE") or "callsight"


def workers_on_queue(inspect_output: str, queue: str) -> list[str]:
    """Pure: the workers in `celery inspect active_queues --json` output that consume `queue`."""
    for line in reversed(inspect_output.splitlines()):
        if line.startswith("{"):
            replies = json.loads(line)
            return sorted(w for w, queues in replies.items() if any(q.get("name") == queue for q in queues or ()))
    return []


def probe_celery(settings: Settings, limits: Thresholds) -> ProbeResult:
    """A worker answers a broadcast over Redis (`celery inspect active_queues`, the Superset env's celery,
    no Superset import). The broker URL goes by environment, not argv (it may hold a password)."""
    redis_url = settings.env.get("CALLSIGHT_REDIS_URL")
    if not redis_url:
        return ProbeResult("celery", State.OK, "no Celery configured (reports off)", "off")
    celery = settings.superset_venv / "bin" / "celery"
    if not celery.exists():
        return ProbeResult("celery", State.UNKNOWN, f"no celery in {settings.superset_venv}")
    queue = celery_queue(settings)
    proc = subprocess.run(
        [str(celery), "inspect", "active_queues", "--json", "--timeout", f"{limits.timeout_seconds:g}"],
        env={"CELERY_BROKER_URL": redis_url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=limits.timeout_seconds + 30,
        cwd=settings.home,
    )
    workers = workers_on_queue(proc.stdout, queue)
    perf = (Perf("celery_workers", len(workers), "", None, None),)
    if workers:
        return ProbeResult("celery", State.OK, f"{len(workers)} Celery worker(s) on queue {queue}", len(workers), perf)
    if proc.returncode not in (0, 69):  # 69: no worker replied in time
        return ProbeResult("celery", State.UNKNOWN, f"celery inspect failed (exit {proc.returncode})")
    return ProbeResult("celery", State.CRITICAL, f"no Celery worker answers on queue {queue}", 0, perf)


# ---- report deliveries --------------------------------------------------------------------------
def metadata_url(settings: Settings) -> str:
    """Superset's metadata DB as superset/superset_config.py chooses it."""
    return settings.env.get("SUPERSET_DATABASE_URI") or f"sqlite:///{settings.superset_home / 'superset.db'}"


FAILED_REPORTS_SQL = "SELECT count(*) FROM report_execution_log WHERE state = 'Error' AND scheduled_dttm >= {p}"


def count_failed_reports(url: str, since: datetime, timeout: float) -> int:
    """Failed report executions since `since` (naive UTC, as Superset stores them)."""
    if url.startswith("sqlite:"):
        path = Path(url.removeprefix("sqlite:///").partition("?")[0])
        if not path.exists():
            raise FileNotFoundError("no Superset metadata DB")
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout) as con:
            stamp = since.strftime("%Y-%m-%d %H:%M:%S")
            return con.execute(FAILED_REPORTS_SQL.format(p="?"), (stamp,)).fetchone()[0]
    if url.startswith("postgresql"):
        import psycopg

        rest = url.partition("://")[2]  # psycopg wants no SQLAlchemy driver name
        with psycopg.connect(f"postgresql://{rest}", connect_timeout=max(1, int(timeout))) as con:
            return con.execute(FAILED_REPORTS_SQL.format(p="%s"), (since,)).fetchone()[0]
    raise ValueError("metadata DB neither SQLite nor PostgreSQL")


def judge_failed_reports(failed: int, limits: Thresholds) -> ProbeResult:
    perf = (Perf("failed_reports_24h", failed, "", limits.failed_reports_warning, limits.failed_reports_critical),)
    message = f"{failed} report deliveries failed in 24 h"
    if limits.failed_reports_critical and failed >= limits.failed_reports_critical:
        return ProbeResult("reports", State.CRITICAL, message, failed, perf)
    if limits.failed_reports_warning and failed >= limits.failed_reports_warning:
        return ProbeResult("reports", State.WARNING, message, failed, perf)
    return ProbeResult("reports", State.OK, message, failed, perf)


def probe_reports(settings: Settings, limits: Thresholds, now: datetime) -> ProbeResult:
    since = (now - timedelta(hours=24)).astimezone(UTC).replace(tzinfo=None)
    try:
        failed = count_failed_reports(metadata_url(settings), since, limits.timeout_seconds)
    except (FileNotFoundError, sqlite3.OperationalError) as exc:
        if not settings.env.get("CALLSIGHT_REDIS_URL"):  # reports off: nothing can have failed
            return ProbeResult("reports", State.OK, "no reports configured", 0)
        return ProbeResult("reports", State.UNKNOWN, f"report log not readable ({type(exc).__name__})")
    return judge_failed_reports(failed, limits)


def run_probes(settings: Settings, now: datetime | None = None) -> list[ProbeResult]:
    """Every probe, in a fixed order; none raises."""
    now = now or datetime.now(UTC)
    limits = Thresholds.from_env(settings.env)
    probes = {
        "warehouse": lambda: probe_warehouse(settings, limits, now),
        "night": lambda: probe_night(settings, limits, now),
        "superset": lambda: probe_superset(settings, limits),
        "celery": lambda: probe_celery(settings, limits),
        "reports": lambda: probe_reports(settings, limits, now),
        "disk": lambda: probe_disk(settings, limits),
    }
    return [run_probe(name, probe) for name, probe in probes.items()]
