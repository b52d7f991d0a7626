"""Dagster code location: `dagster dev -m callsight.definitions` shows the lineage.

Definitions are built lazily (at load, not import) from the site settings.
"""

from __future__ import annotations

import logging
import smtplib

import dagster as dg

from callsight.defs.assets import FRESHNESS_CHECK, SiteResource, build_assets
from callsight.defs.notify import FailureReport, SmtpConfig, failure_report, notify_admins
from callsight.defs.run_audit import NIGHTLY_JOB, audit_failed_run
from callsight.site.directory import load_directory
from callsight.site.policy import load_policy
from callsight.site.settings import Settings
from callsight.site.yaml_config import ConfigError
from callsight.warehouse.dbt_project import build_vars, dbt_resource, ensure_manifest

FRESHNESS_JOB = "warehouse_freshness"
FAILURE_SENSOR = "nightly_failure_mail"
REPUBLISH_JOB = "republish"
__all__ = ["FAILURE_SENSOR", "FRESHNESS_JOB", "NIGHTLY_JOB", "REPUBLISH_JOB", "build_definitions", "defs"]


def site_timezone(settings: Settings) -> str:
    """The policy's time zone; the default when the policy is not there yet (the run refuses it later)."""
    try:
        return load_policy(settings.effective_policy_path).timezone
    except ConfigError:
        return "Europe/Berlin"


def site_dbt_vars(settings: Settings) -> dict[str, object] | None:
    """The vars the nightly build will run dbt with; None when the policy is not there yet."""
    try:
        return build_vars(load_policy(settings.effective_policy_path).dbt_vars())
    except ConfigError:
        return None


def build_definitions(settings: Settings) -> dg.Definitions:
    ensure_manifest(site_dbt_vars(settings))
    assets = build_assets(site_timezone(settings))
    nightly = dg.define_asset_job(
        NIGHTLY_JOB,
        selection=dg.AssetSelection.all(),
        description="Extract yesterday (+ look-back), build, check, publish, record in the audit log.",
        hooks={audit_failed_run},
    )
    republish = dg.define_asset_job(
        REPUBLISH_JOB,
        selection=dg.AssetSelection.groups("warehouse") | dg.AssetSelection.keys("published_warehouse"),
        description="Build, check and publish from the raw store as it is (used by `callsight erase`).",
    )
    schedule = dg.build_schedule_from_partitioned_job(
        nightly,
        hour_of_day=2,
        minute_of_hour=0,
        name="nightly_0200",
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    freshness = dg.define_asset_job(
        FRESHNESS_JOB,
        selection=dg.AssetSelection.checks(dg.AssetCheckKey(dg.AssetKey("published_warehouse"), FRESHNESS_CHECK)),
        description="Flag the served warehouse as stale when it was not published for CALLSIGHT_STALE_AFTER_HOURS.",
    )
    freshness_schedule = dg.ScheduleDefinition(
        name="warehouse_freshness_hourly",
        job=freshness,
        cron_schedule="30 * * * *",
        execution_timezone=site_timezone(settings),
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )

    @dg.run_failure_sensor(
        name=FAILURE_SENSOR,
        monitored_jobs=[nightly],
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Mails the directory's admins when a nightly run launched by Dagster fails "
        "(`callsight run` mails them itself).",
    )
    def nightly_failure_mail(context: dg.RunFailureSensorContext) -> None:
        report = failure_report(context.instance, context.dagster_run.run_id)
        mail_admins_about_failure(Settings.from_env(), report, context.log)

    return dg.Definitions(
        assets=assets,
        jobs=[nightly, republish, freshness],
        schedules=[schedule, freshness_schedule],
        sensors=[nightly_failure_mail],
        resources={"dbt": dbt_resource(), "site": SiteResource()},
    )


def mail_admins_about_failure(settings: Settings, report: FailureReport, log: logging.Logger) -> list[str]:
    """Mail a failed run's report to the directory's admins; a mail problem is logged, not raised."""
    run_id = report.run_id
    try:
        directory = load_directory(settings.effective_directory_path)
        sent, missing = notify_admins(report, directory, SmtpConfig.from_env(settings.env))
    except (ConfigError, OSError, smtplib.SMTPException, ValueError) as exc:
        log.warning(f"failure mail for run {run_id} not sent: {type(exc).__name__}: {exc}")
        return []
    if missing:
        log.warning(f"admins without an email address in the directory: {', '.join(missing)}")
    log.info(f"failure mail for run {run_id} sent to {len(sent)} admin(s)")
    return sent


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(Settings.from_env())
