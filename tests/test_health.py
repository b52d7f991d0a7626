"""`callsight health` as monitoring runs it (a subprocess; exit codes as Nagios), over homes in each state:
served files with a chosen publish time, audit entries written by the audit log itself, Superset's /health
answered by a small local server or by nobody, a real Celery worker on Redis, report logs in a real
SQLite and PostgreSQL metadata DB."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import pytest

from callsight.journal.raw_store import connect_raw_store
from callsight.operations.health import Perf, ProbeResult, State, Thresholds, summary_line, worst
from callsight.operations.probes import build_space, count_failed_reports, judge_disk, probe_celery, workers_on_queue
from callsight.privacy.audit import append
from callsight.publish.week_files import listed_files
from callsight.site.settings import Settings

from .conftest import Site, free_port, reachable, require_service

NOW = datetime.now(UTC)
REDIS = ("127.0.0.1", 6379)
PG = ("127.0.0.1", 5432)
# Machine-independent: disk limits off unless a test sets them.
QUIET_DISK = {"CALLSIGHT_HEALTH_DISK_WARNING_PERCENT": "0", "CALLSIGHT_HEALTH_DISK_CRITICAL_PERCENT": "0"}


class Health(BaseHTTPRequestHandler):
    """Superset's /health as gunicorn answers it: 200 "OK"."""

    def do_GET(self) -> None:
        body = b"OK" if self.path == "/health" else b"not found"
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def superset_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def served_file(settings: Settings, built_at: datetime) -> None:
    """A served warehouse as the probes read it: marts.build_info.built_at and marts.fct_calls."""
    settings.warehouse_dir.mkdir(parents=True, exist_ok=True)
    settings.served_db.unlink(missing_ok=True)
    con = duckdb.connect(str(settings.served_db))
    try:
        con.execute("CREATE SCHEMA marts")
        con.execute("CREATE TABLE marts.build_info AS SELECT ?::TIMESTAMPTZ AS built_at", [built_at])
        con.execute(
            "CREATE TABLE marts.fct_calls AS SELECT ?::TIMESTAMP AS start_time_utc", [built_at.replace(tzinfo=None)]
        )
    finally:
        con.close()


def night(settings: Settings, started: datetime, finished: datetime | None, status: str = "success") -> str:
    """A night's audit entries, appended to the raw store's audit log as the nightly run writes them."""
    run_id = str(uuid.uuid4())
    con = connect_raw_store(settings)
    try:
        append(con, "run", run_id, {"event": "started", "job": "nightly"}, now=started)
        if finished is not None:
            detail = {"event": "finished", "status": status}
            if status == "failure":
                detail |= {"failed_step": "raw_quality_checks", "error": "DagsterExecutionStepExecutionError"}
            append(con, "run", run_id, detail, now=finished)
    finally:
        con.close()
    return run_id


def home(root: Path, name: str, *, published_hours_ago: float, night_status: str | None = "success") -> Path:
    """A home as it is now (ages are checked to a tenth of an hour)."""
    path, now = root / name, datetime.now(UTC)
    settings = Settings.from_env({"CALLSIGHT_HOME": str(path)})
    served_file(settings, now - timedelta(hours=published_hours_ago))
    if night_status is not None:
        night(settings, now - timedelta(hours=3), now - timedelta(hours=2), night_status)
    return path


@pytest.fixture(scope="module")
def homes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("health")
    return {
        "fresh": home(root, "fresh", published_hours_ago=2),
        "missed": home(root, "missed", published_hours_ago=30),
        "stale": home(root, "stale", published_hours_ago=49.2),
        "failed": home(root, "failed", published_hours_ago=26.5, night_status="failure"),
    }


def health(home: Path, superset_url: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {
        "PATH": os.environ.get("PATH", ""),
        "CALLSIGHT_HOME": str(home),
        "CALLSIGHT_SUPERSET_URL": superset_url,
        **QUIET_DISK,
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "callsight.cli.main", "health", *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_fresh_site_is_ok(homes: dict[str, Path], superset_url: str) -> None:
    out = health(homes["fresh"], superset_url)
    assert out.returncode == 0, out.stdout + out.stderr
    line = out.stdout.strip()
    assert len(out.stdout.strip().splitlines()) == 1
    assert line.startswith("CALLSIGHT OK - "), line
    assert "served warehouse 2.0 h old" in line and "last night succeeded" in line
    assert "| warehouse_age_hours=2;26;36" in line


def test_a_missed_night_warns_and_a_stale_warehouse_is_critical(homes: dict[str, Path], superset_url: str) -> None:
    missed = health(homes["missed"], superset_url)
    assert missed.returncode == 1, missed.stdout
    assert missed.stdout.startswith("CALLSIGHT WARNING - served warehouse 30.0 h old")
    stale = health(homes["stale"], superset_url)
    assert stale.returncode == 2, stale.stdout
    assert stale.stdout.startswith("CALLSIGHT CRITICAL - served warehouse 49.2 h old"), stale.stdout
    # The thresholds are settings.
    relaxed = health(homes["stale"], superset_url, CALLSIGHT_STALE_AFTER_HOURS="72")
    assert relaxed.returncode == 1, relaxed.stdout
    assert health(homes["missed"], superset_url, CALLSIGHT_HEALTH_WAREHOUSE_WARNING_HOURS="31").returncode == 0


def test_a_failed_night_is_critical(homes: dict[str, Path], superset_url: str) -> None:
    out = health(homes["failed"], superset_url)
    assert out.returncode == 2, out.stdout
    assert "last night failed at step raw_quality_checks 2.0 h ago" in out.stdout
    # A failed night before the served warehouse turns stale: the night is named first.
    assert out.stdout.startswith("CALLSIGHT CRITICAL - last night failed"), out.stdout


def test_a_killed_night_is_critical_once_it_outlived_the_longest_night(tmp_path: Path, superset_url: str) -> None:
    path = home(tmp_path, "killed", published_hours_ago=20, night_status=None)
    night(Settings.from_env({"CALLSIGHT_HOME": str(path)}), datetime.now(UTC) - timedelta(hours=2), None)
    running = health(path, superset_url)
    assert running.returncode == 0 and "night running for 2.0 h" in running.stdout, running.stdout
    killed = health(path, superset_url, CALLSIGHT_NIGHT_MAX_HOURS="1.5")
    assert killed.returncode == 2 and "never finished" in killed.stdout, killed.stdout


def test_superset_down_is_critical(homes: dict[str, Path]) -> None:
    out = health(homes["fresh"], f"http://127.0.0.1:{free_port()}")
    assert out.returncode == 2, out.stdout
    assert out.stdout.startswith("CALLSIGHT CRITICAL - Superset not answering at http://127.0.0.1:"), out.stdout


def test_json_names_every_probe_with_state_value_and_message(homes: dict[str, Path], superset_url: str) -> None:
    out = health(homes["stale"], superset_url, "--json")
    assert out.returncode == 2
    report = json.loads(out.stdout)
    assert report["state"] == "CRITICAL" and report["exit_code"] == 2
    assert report["summary"].startswith("CALLSIGHT CRITICAL - served warehouse 49.2 h old")
    probes = {p["name"]: p for p in report["probes"]}
    assert set(probes) == {"warehouse", "night", "superset", "celery", "reports", "disk"}
    for p in probes.values():
        assert set(p) == {"name", "state", "value", "message"}
        assert p["state"] in {"OK", "WARNING", "CRITICAL", "UNKNOWN"}
    assert probes["warehouse"] == {
        "name": "warehouse",
        "state": "CRITICAL",
        "value": 49.2,
        "message": "served warehouse 49.2 h old",
    }
    assert probes["superset"]["state"] == "OK"
    assert probes["celery"]["value"] == "off"  # no CALLSIGHT_REDIS_URL: reports off


def test_a_probe_that_cannot_look_is_unknown_not_a_crash(homes: dict[str, Path], superset_url: str) -> None:
    # Reports on, but no metadata DB to read and no Celery venv: UNKNOWN for those, the rest judged.
    out = health(
        homes["fresh"],
        superset_url,
        "--json",
        CALLSIGHT_REDIS_URL="redis://127.0.0.1:1/0",
        CALLSIGHT_SUPERSET_VENV=str(homes["fresh"] / "no-venv"),
    )
    report = json.loads(out.stdout)
    probes = {p["name"]: p["state"] for p in report["probes"]}
    assert probes["reports"] == "UNKNOWN" and probes["celery"] == "UNKNOWN"
    assert probes["warehouse"] == "OK" and report["exit_code"] == 3
    bad = health(homes["fresh"], superset_url, CALLSIGHT_HEALTH_TIMEOUT="soon")
    assert bad.returncode == 3 and bad.stdout.startswith("CALLSIGHT UNKNOWN - CALLSIGHT_HEALTH_TIMEOUT")


def test_low_disk_warns_and_no_room_for_the_next_build_is_critical(homes: dict[str, Path], superset_url: str) -> None:
    out = health(homes["fresh"], superset_url, CALLSIGHT_HEALTH_DISK_WARNING_PERCENT="100")
    assert out.returncode == 1 and "free under CALLSIGHT_HOME" in out.stdout, out.stdout
    limits = Thresholds()
    assert judge_disk(50 * 2**30, 100 * 2**30, 10 * 2**30, limits).state == State.OK
    assert judge_disk(10 * 2**30, 100 * 2**30, 1, limits).state == State.WARNING
    assert judge_disk(4 * 2**30, 100 * 2**30, 1, limits).state == State.CRITICAL
    assert judge_disk(20 * 2**30, 100 * 2**30, 30 * 2**30, limits).state == State.CRITICAL


def test_room_for_the_next_build_counts_the_week_files_a_full_refresh_writes_anew(published_site: Site) -> None:
    """The served file is the small rest; the facts' week files beside it are most of the data, and a full
    refresh (a policy or code change) writes them all anew while the old ones are still named."""
    s = published_site.settings
    weeks = sum((s.parts_dir / name).stat().st_size for name in listed_files(s.served_db))
    assert weeks > 0
    assert build_space(s) == 2 * s.served_db.stat().st_size + weeks


def test_no_personal_data_in_the_output(homes: dict[str, Path], superset_url: str) -> None:
    out = health(homes["failed"], superset_url, "--json").stdout
    assert "@" not in out and "+49" not in out


def test_the_worst_probe_decides_and_perfdata_follows_the_bar() -> None:
    ok = ProbeResult("a", State.OK, "a fine", 1, (Perf("a_h", 1.5, "", 26, 36),))
    unknown = ProbeResult("b", State.UNKNOWN, "b unknown")
    warning = ProbeResult("c", State.WARNING, "c low", 9, (Perf("c_pct", 9, "%", 15, 5),))
    assert worst([ok, warning, unknown]) == State.UNKNOWN
    assert summary_line([ok, warning, unknown]) == "CALLSIGHT UNKNOWN - b unknown; c low | a_h=1.5;26;36 c_pct=9%;15;5"
    assert summary_line([ok]) == "CALLSIGHT OK - a fine | a_h=1.5;26;36"


# ---- Celery: a real worker on Redis -------------------------------------------------------------
@pytest.fixture(scope="module")
def celery_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    """A plain Celery worker (the Superset env's celery, no Superset app) consuming one queue of its own."""
    require_service(reachable(REDIS), "Redis on 127.0.0.1:6379 (Celery broker)")
    venv = Settings.from_env({}).superset_venv
    require_service((venv / "bin" / "celery").exists(), f"Superset virtual environment {venv} (run `make venvs`)")
    url, queue = "redis://127.0.0.1:6379/13", f"callsight-health-{secrets.token_hex(4)}"
    work = tmp_path_factory.mktemp("celery")
    log = (work / "worker.log").open("wb")
    proc = subprocess.Popen(
        [str(venv / "bin" / "celery"), "worker", "-Q", queue, "--pool=solo", "-n", f"{queue}@%h"],
        env={"CELERY_BROKER_URL": url, "PATH": os.environ.get("PATH", "")},
        cwd=work,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield url, queue, work
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()
        shutil.rmtree(work, ignore_errors=True)


def test_celery_probe_sees_a_live_worker_on_its_queue_only(celery_worker: tuple[str, str, Path]) -> None:
    url, queue, work = celery_worker
    env = {"CALLSIGHT_HOME": str(work), "CALLSIGHT_REDIS_URL": url, "CALLSIGHT_CELERY_QUEUE": queue}
    limits = Thresholds(timeout_seconds=2)
    deadline = time.monotonic() + 60
    while (result := probe_celery(Settings.from_env(env), limits)).state != State.OK and time.monotonic() < deadline:
        time.sleep(1)
    assert result.state == State.OK and result.value == 1, result
    other = probe_celery(Settings.from_env({**env, "CALLSIGHT_CELERY_QUEUE": "another-site"}), limits)
    assert other.state == State.CRITICAL and other.message == "no Celery worker answers on queue another-site"


def test_workers_are_counted_per_queue() -> None:
    output = 'noise\n{"w1@h": [{"name": "callsight"}], "w2@h": [{"name": "other"}], "w3@h": null}\n'
    assert workers_on_queue(output, "callsight") == ["w1@h"]
    assert workers_on_queue("Error: No nodes replied within time constraint", "callsight") == []


# ---- failed report deliveries in Superset's metadata DB -----------------------------------------
LOG_DDL = (
    "CREATE TABLE report_execution_log (id INTEGER PRIMARY KEY, scheduled_dttm TIMESTAMP NOT NULL, "
    "state VARCHAR(50) NOT NULL, error_message TEXT)"
)
NAIVE_NOW = NOW.replace(tzinfo=None)
LOG_ROWS = [
    (1, NAIVE_NOW - timedelta(hours=1), "Error", "anna@example.com: no such chart"),
    (2, NAIVE_NOW - timedelta(hours=5), "Error", "timeout"),
    (3, NAIVE_NOW - timedelta(hours=30), "Error", "old"),
    (4, NAIVE_NOW - timedelta(hours=2), "Success", None),
]


def test_failed_reports_from_a_sqlite_metadata_db(homes: dict[str, Path], superset_url: str, tmp_path: Path) -> None:
    db = tmp_path / "superset.db"
    with sqlite3.connect(db) as con:  # Superset stores naive UTC as text
        con.execute(LOG_DDL)
        con.executemany(
            "INSERT INTO report_execution_log VALUES (?, ?, ?, ?)", [(i, str(t), s, m) for i, t, s, m in LOG_ROWS]
        )
    out = health(
        homes["fresh"], superset_url, "--json", SUPERSET_DATABASE_URI=f"sqlite:///{db}?check_same_thread=false"
    )
    probes = {p["name"]: p for p in json.loads(out.stdout)["probes"]}
    assert probes["reports"] == {
        "name": "reports",
        "state": "WARNING",
        "value": 2,
        "message": "2 report deliveries failed in 24 h",
    }
    assert "example.com" not in out.stdout  # error messages are never shown
    critical = health(
        homes["fresh"],
        superset_url,
        SUPERSET_DATABASE_URI=f"sqlite:///{db}",
        CALLSIGHT_HEALTH_FAILED_REPORTS_CRITICAL="2",
    )
    assert critical.returncode == 2


@pytest.mark.postgres
def test_failed_reports_from_a_postgresql_metadata_db() -> None:
    require_service(reachable(PG), "PostgreSQL on 127.0.0.1:5432")
    import psycopg

    name = f"callsight_health_{secrets.token_hex(4)}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    try:
        url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
        with psycopg.connect(url.replace("+psycopg2", "")) as con:
            con.execute(LOG_DDL)
            con.cursor().executemany("INSERT INTO report_execution_log VALUES (%s, %s, %s, %s)", LOG_ROWS)
        assert count_failed_reports(url, NAIVE_NOW - timedelta(hours=24), 5) == 2
    finally:
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.slow
def test_a_real_night_reads_as_ok_but_for_superset(published_copy: Site) -> None:
    # The audit entries and build_info a real nightly run wrote.
    out = health(published_copy.home, f"http://127.0.0.1:{free_port()}", "--json")
    probes = {p["name"]: p for p in json.loads(out.stdout)["probes"]}
    assert probes["night"]["state"] == "OK" and probes["night"]["value"] == "success", probes["night"]
    assert probes["warehouse"]["state"] == "OK", probes["warehouse"]
    assert probes["superset"]["state"] == "CRITICAL"
