"""A failed nightly run mailed to the directory's admins: by the sensor for runs Dagster launched,
by `callsight run` itself for in-process runs (defs/nightly.py)."""

import logging
import smtplib

import dagster as dg

from callsight.defs.jobs import nightly_job
from callsight.defs.notify import FailureReport, SmtpConfig, failure_report, notify_admins
from callsight.site.directory import load_directory
from callsight.site.settings import Settings
from callsight.site.yaml_config import ConfigError

FAILURE_SENSOR = "nightly_failure_mail"


def mail_admins_about_failure(settings: Settings, report: FailureReport, log: logging.Logger) -> list[str]:
    """Mail a failed run's report to the directory's admins, each in their language; a mail problem is
    logged, not raised."""
    run_id = report.run_id
    try:
        directory = load_directory(settings.effective_directory_path)
        sent, missing = notify_admins(report, directory, SmtpConfig.from_env(settings.env), site_locale=settings.locale)
    except (ConfigError, OSError, smtplib.SMTPException, ValueError) as exc:
        log.warning(f"failure mail for run {run_id} not sent: {type(exc).__name__}: {exc}")
        return []
    if missing:
        log.warning(f"admins without an email address in the directory: {', '.join(missing)}")
    log.info(f"failure mail for run {run_id} sent to {len(sent)} admin(s)")
    return sent


@dg.run_failure_sensor(
    name=FAILURE_SENSOR,
    monitored_jobs=[nightly_job],
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Mails the directory's admins when a nightly run launched by Dagster fails "
    "(`callsight run` mails them itself).",
)
def nightly_failure_mail(context: dg.RunFailureSensorContext) -> None:
    report = failure_report(context.instance, context.dagster_run.run_id)
    mail_admins_about_failure(Settings.from_env(), report, context.log)  # a sensor tick is no run: no SiteResource
