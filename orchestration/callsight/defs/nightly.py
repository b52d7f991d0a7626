"""Run the nightly Dagster job once (what the 02:00 schedule does), in-process on the site's instance."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import duckdb

from callsight.journal.sources import Source, SourceUnavailableError, first_start_select
from callsight.site.directory import load_directory
from callsight.site.file_modes import secure_home
from callsight.site.policy import load_policy
from callsight.site.run_lock import one_night
from callsight.site.secret_files import export_secret_files
from callsight.site.settings import Settings

STORAGE_LOCK = ".storage.lock"  # in DAGSTER_HOME: held while Dagster's storage is created or opened


@dataclass(frozen=True)
class RunResult:
    success: bool
    run_id: str
    first: date
    last: date
    failure: str | None = None
    failed_expectations: tuple[str, ...] = ()
    notified: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExecOutcome:
    success: bool
    run_id: str
    failure: str | None = None
    failed_expectations: tuple[str, ...] = ()
    notified: tuple[str, ...] = ()


def yesterday(tz_name: str, now: datetime | None = None) -> date:
    from zoneinfo import ZoneInfo

    now = now or datetime.now(ZoneInfo(tz_name))
    return (now.astimezone(ZoneInfo(tz_name)) - timedelta(days=1)).date()


def raw_store_is_empty(settings: Settings) -> bool:
    if not settings.raw_db.exists():
        return True
    con = duckdb.connect(str(settings.raw_db), read_only=True)
    try:
        found = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'journal'").fetchone()[0]
        return not found or con.execute("SELECT count(*) FROM journal").fetchone()[0] == 0
    finally:
        con.close()


def source_first_day(settings: Settings) -> date | None:
    source = Source(settings.journal_url, settings.journal_table)
    source.probe()
    engine = source.engine()
    try:
        with engine.connect() as conn:
            value = conn.execute(first_start_select(settings.journal_table)).scalar()
    finally:
        engine.dispose()
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("T", " ")[:19])
    return value.date() if isinstance(value, datetime) else value


def plan_range(
    settings: Settings, first: date | None, last: date | None, run_date: date | None = None
) -> tuple[date, date]:
    """Explicit range, or: the initial load (whole source within retention) when the raw store is
    empty, else yesterday's partition (whose look-back window re-reads the recent past)."""
    policy = load_policy(settings.effective_policy_path)
    end = last or (run_date - timedelta(days=1) if run_date else yesterday(policy.timezone))
    if first:
        return first, end
    if last is None and raw_store_is_empty(settings):
        try:
            source_first = source_first_day(settings)
        except SourceUnavailableError:
            return end, end  # the run's extract retries and then fails with the reason

        oldest = end - timedelta(days=policy.retention.journal_days - 1)
        if source_first is not None:
            return max(source_first, oldest), end
    return end, end


def run_nightly(
    settings: Settings,
    first: date | None = None,
    last: date | None = None,
    log_level: str = "INFO",
    full_refresh: bool = False,
    run_date: date | None = None,
) -> RunResult:
    """The nightly job for yesterday (or the given range). `run_date` (today or later) is the date
    retention is measured from; default: the day the run starts. Raises RunBusyError while another
    night runs."""
    # Refuse a bad configuration before anything is written; then one night at a time (run_lock).
    load_directory(settings.effective_directory_path)
    load_policy(settings.effective_policy_path)
    with one_night(settings.home, "nightly run"):
        return _run_nightly(settings, first, last, log_level, full_refresh, run_date)


def _run_nightly(
    settings: Settings, first: date | None, last: date | None, log_level: str, full_refresh: bool, run_date: date | None
) -> RunResult:
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    from callsight.definitions import NIGHTLY_JOB
    from callsight.privacy.retention import RUN_DATE_TAG

    prepare_instance(settings)
    start, end = plan_range(settings, first, last, run_date)
    if start > end:
        raise ValueError(f"empty range: {start} > {end}")
    tags = {RUN_DATE_TAG: run_date.isoformat()} if run_date else {}
    if start != end:
        tags |= {
            ASSET_PARTITION_RANGE_START_TAG: start.isoformat(),
            ASSET_PARTITION_RANGE_END_TAG: end.isoformat(),
        }
    run_config = {
        "loggers": {"console": {"config": {"log_level": log_level}}},
        "ops": {"warehouse_models": {"config": {"full_refresh": full_refresh}}},
    }
    out = _execute(settings, NIGHTLY_JOB, run_config, tags, partition_key=start.isoformat() if start == end else None)
    return RunResult(out.success, out.run_id, start, end, out.failure, out.failed_expectations, out.notified)


def republish(settings: Settings, discard_kept_builds: bool, log_level: str = "WARNING") -> RunResult:
    """Build, check and publish from the raw store as it is, without extracting (after an erasure).
    Raises RunBusyError while another night runs."""
    from callsight.definitions import REPUBLISH_JOB

    run_config = {
        "loggers": {"console": {"config": {"log_level": log_level}}},
        "ops": {
            "published_warehouse": {"config": {"discard_kept_builds": discard_kept_builds, "warm_cache_first": False}}
        },
    }
    with one_night(settings.home, "republish"):
        prepare_instance(settings)
        out = _execute(settings, REPUBLISH_JOB, run_config, {})
    today = date.today()
    return RunResult(out.success, out.run_id, today, today, out.failure, out.failed_expectations, out.notified)


def prepare_instance(settings: Settings) -> None:
    """The site's Dagster instance (DAGSTER_HOME in CALLSIGHT_HOME), for a run or the Dagster UI. Files
    are owner-only also when a run starts inside another program (tests, the benchmark)."""
    export_secret_files(os.environ)  # the exported settings below must not sit beside their <NAME>_FILE
    secure_home(settings)
    os.environ.update(settings.export())
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    instance_yaml = settings.dagster_home / "dagster.yaml"
    if not instance_yaml.exists():
        instance_yaml.write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
    create_storage_once(settings)


def create_storage_once(settings: Settings) -> None:
    """Dagster creates its SQLite storage on first use. Two processes doing that at once (a fresh install's
    units starting together) both stamp the schema version, and every later start fails with "more than one
    head"; so it is created here under a lock, and whoever comes second finds it made."""
    import fcntl

    import dagster as dg

    with open(settings.dagster_home / STORAGE_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with dg.DagsterInstance.get():
            pass


def _execute(
    settings: Settings, job_name: str, run_config: dict, tags: dict[str, str], partition_key: str | None = None
) -> ExecOutcome:
    import dagster as dg

    from callsight.definitions import build_definitions, mail_admins_about_failure
    from callsight.defs.notify import failure_report, summary

    job = build_definitions(settings).resolve_job_def(job_name)
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            instance=instance, partition_key=partition_key, tags=tags, run_config=run_config, raise_on_error=False
        )
        if result.success:
            return ExecOutcome(True, result.run_id)
        msgs = [
            str(e.event_specific_data.error.message).strip()
            for e in result.all_events
            if e.is_step_failure and e.event_specific_data and e.event_specific_data.error
        ]
        report = failure_report(instance, result.run_id)
        # In-process runs are not seen by the daemon's run-failure sensor: mail the admins here.
        notified = mail_admins_about_failure(settings, report, logging.getLogger("callsight"))
    return ExecOutcome(False, result.run_id, summary(report, msgs), report.failed_expectations, tuple(notified))
