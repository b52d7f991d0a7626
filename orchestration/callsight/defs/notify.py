"""Mail the directory's admins when a nightly run fails.

The mail says which run failed, which steps and which data-quality expectations, and whether the
warehouse was published; it never carries exception text or data values (they can hold call data),
only step names, expectation names and counts. One message per admin, so no admin sees the others'
addresses. SMTP settings come from the environment, with the same names and defaults as Superset's
(docs/settings.md).
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from callsight.site.directory import Directory

PUBLISH_ASSET = "published_warehouse"


@dataclass(frozen=True)
class SmtpConfig:
    host: str = "localhost"
    port: int = 25
    starttls: bool = True
    use_ssl: bool = False
    user: str = ""
    password: str = field(default="", repr=False)
    mail_from: str = "callsight@localhost"
    timeout: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SmtpConfig:
        def flag(name: str, default: str) -> bool:
            return (env.get(name) or default).strip().lower() == "true"

        port = env.get("SMTP_PORT") or "25"
        if not port.isdigit():
            raise ValueError(f"SMTP_PORT must be a port number, got {port!r}")
        return cls(
            host=env.get("SMTP_HOST") or "localhost",
            port=int(port),
            starttls=flag("SMTP_STARTTLS", "true"),
            use_ssl=flag("SMTP_SSL", "false"),
            user=env.get("SMTP_USER") or "",
            password=env.get("SMTP_PASSWORD") or "",
            mail_from=env.get("SMTP_MAIL_FROM") or "callsight@localhost",
        )


@dataclass(frozen=True)
class FailureReport:
    """What went wrong in a run, without any data: step names, error classes, expectation names."""

    run_id: str
    job_name: str
    partitions: str
    failed_steps: tuple[str, ...]
    failed_checks: tuple[str, ...]
    failed_expectations: tuple[str, ...]
    published: bool


def admin_recipients(directory: Directory) -> tuple[list[str], list[str]]:
    """Pure: (email addresses of the directory's admins, admins without an address)."""
    by_name = {u.username: u for u in directory.users}
    emails, missing = [], []
    for name in directory.admins:
        email = by_name[name].email
        if email:
            emails.append(email)
        else:
            missing.append(name)
    return sorted(set(emails)), missing


def compose(report: FailureReport, to: str, mail_from: str, site: str) -> EmailMessage:
    """Pure: the failure mail for one admin."""
    msg = EmailMessage()
    msg["Subject"] = f"[callsight] nightly run failed on {site} ({report.partitions})"
    msg["From"] = mail_from
    msg["To"] = to
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain=mail_from.rpartition("@")[2] or None)
    served = (
        "The warehouse was published before the failure (a later step failed)."
        if report.published
        else "Nothing was published: Superset keeps serving the last good warehouse."
    )
    lines = [
        f"The callsight job '{report.job_name}' failed on {site}.",
        "",
        f"Run:        {report.run_id}",
        f"Partitions: {report.partitions}",
        served,
        "",
        "Failed steps:",
        *(f"  - {s}" for s in report.failed_steps or ("(none recorded)",)),
    ]
    if report.failed_checks:
        lines += ["", "Failed data-quality checks:", *(f"  - {c}" for c in report.failed_checks)]
    if report.failed_expectations:
        lines += ["", "Failed expectations:", *(f"  - {e}" for e in report.failed_expectations)]
    lines += [
        "",
        "Details: the run in Dagster (callsight serve: http://127.0.0.1:3000/runs/" + report.run_id + ")",
        "and the logs in CALLSIGHT_HOME/logs. `callsight dq-docs` shows the data-quality results.",
        "This mail contains no call data.",
    ]
    msg.set_content("\n".join(lines) + "\n")
    return msg


def send(config: SmtpConfig, messages: Iterable[EmailMessage]) -> int:
    """Send over one SMTP connection; returns the number of messages accepted."""
    messages = list(messages)
    if not messages:
        return 0
    if config.use_ssl:
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(
            config.host, config.port, timeout=config.timeout, context=ssl.create_default_context()
        )
    else:
        smtp = smtplib.SMTP(config.host, config.port, timeout=config.timeout)
    with smtp:
        if config.starttls and not config.use_ssl:
            smtp.starttls(context=ssl.create_default_context())
        if config.user:
            smtp.login(config.user, config.password)
        for msg in messages:
            smtp.send_message(msg)
    return len(messages)


def notify_admins(
    report: FailureReport, directory: Directory, config: SmtpConfig, site: str | None = None
) -> tuple[list[str], list[str]]:
    """Mail every admin with an address; returns (addresses mailed, admins without an address)."""
    recipients, missing = admin_recipients(directory)
    site = site or socket.gethostname()
    send(config, (compose(report, to, config.mail_from, site) for to in recipients))
    return recipients, missing


# ---- reading a run's failure from the Dagster instance ---------------------------------------------
def _root_cause(error: object) -> str:
    while getattr(error, "cause", None) is not None:
        error = error.cause
    return str(getattr(error, "cls_name", "") or "error")


def failure_report(instance: object, run_id: str) -> FailureReport:
    """The run's failed steps and checks from the instance's event log (in-process or daemon runs)."""
    from dagster import DagsterEventType

    run = instance.get_run_by_id(run_id)  # type: ignore[attr-defined]
    tags = run.tags if run else {}
    partitions = tags.get("dagster/partition") or (
        f"{tags.get('dagster/asset_partition_range_start')} .. {tags.get('dagster/asset_partition_range_end')}"
        if tags.get("dagster/asset_partition_range_start")
        else "-"
    )
    steps, checks, expectations = [], [], []
    published = False
    for entry in instance.all_logs(run_id):  # type: ignore[attr-defined]
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type == DagsterEventType.STEP_FAILURE:
            error = event.event_specific_data.error if event.event_specific_data else None
            steps.append(f"{event.step_key} ({_root_cause(error)})")
        elif event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            if not evaluation.passed:
                checks.append(f"{evaluation.asset_key.to_user_string()}: {evaluation.check_name}")
                listed = evaluation.metadata.get("failed_expectations")
                if listed is not None and isinstance(listed.value, list):
                    expectations.extend(str(x) for x in listed.value)
        elif (
            event.event_type == DagsterEventType.ASSET_MATERIALIZATION
            and event.asset_key is not None
            and event.asset_key.to_user_string() == PUBLISH_ASSET
        ):
            published = True
    return FailureReport(
        run_id=run_id,
        job_name=run.job_name if run else "?",
        partitions=partitions,
        failed_steps=tuple(steps),
        failed_checks=tuple(checks),
        failed_expectations=tuple(expectations),
        published=published,
    )


def summary(report: FailureReport, step_messages: Sequence[str] = ()) -> str:
    """One text for the CLI: the step failure messages and the failed expectations by name."""
    parts = list(step_messages) or list(report.failed_steps) or ["run failed"]
    text = "; ".join(parts)
    if report.failed_expectations:
        text += "\nFailed data-quality expectations:\n" + "\n".join(f"  - {e}" for e in report.failed_expectations)
    return text


# ---- alerts that notice silence (defs/audit/silence.py) ---------------------------------------------
@dataclass(frozen=True)
class Incident:
    """Something that went quiet: `kind` names it (stale, killed), `since` when it began (UTC)."""

    kind: str
    since: str  # ISO 8601, UTC
    summary: str  # one line without data: ages, run ids, step names


@dataclass(frozen=True)
class Alert:
    """One mail to send: an incident began (`recovered` False) or ended (`recovered` True, at `at`)."""

    incident: Incident
    recovered: bool
    at: str  # ISO 8601, UTC


INCIDENT_TITLES = {
    "stale": ("the served warehouse is stale", "Das ausgelieferte Warehouse ist veraltet"),
    "killed": ("a nightly run was killed", "Ein nächtlicher Lauf wurde abgebrochen"),
}
INCIDENT_ADVICE = {
    "stale": (
        "No warehouse was published for longer than CALLSIGHT_STALE_AFTER_HOURS: the nightly runs fail,",
        "do not start, or were killed. Superset keeps serving the last good build.",
        "Look at: the nightly runs in Dagster (http://127.0.0.1:3000/runs), `callsight health`,",
        "CALLSIGHT_HOME/logs, and whether the Dagster daemon (schedule nightly_0200) is running.",
    ),
    "killed": (
        "A nightly run started and never finished: its process died (power cut, OOM killer, kill -9)",
        "or is hung. Nothing was published by it; Superset keeps serving the last good build.",
        "Look at: the kernel log for the OOM killer (journalctl -k), CALLSIGHT_HOME/logs, the run in",
        "Dagster (mark it canceled there), then start the night again with `callsight run`.",
    ),
}


def compose_alert(alert: Alert, to: str, mail_from: str, site: str) -> EmailMessage:
    """Pure: the mail for one admin when an incident begins or ends; no call data."""
    title, title_de = INCIDENT_TITLES.get(alert.incident.kind, (alert.incident.kind, alert.incident.kind))
    msg = EmailMessage()
    state = "RECOVERED" if alert.recovered else "ALERT"
    msg["Subject"] = f"[callsight] {state}: {title} on {site}"
    msg["From"] = mail_from
    msg["To"] = to
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain=mail_from.rpartition("@")[2] or None)
    if alert.recovered:
        lines = [
            f"Recovered on {site}: {title}.",
            "",
            f"Incident:  {alert.incident.kind}",
            f"Since:     {alert.incident.since}",
            f"Recovered: {alert.at}",
            f"It was:    {alert.incident.summary}",
            "",
            "Nothing to do. `callsight health` shows the state of every part.",
            "",
            f"-- Deutsch: Behoben auf {site}: {title_de} (seit {alert.incident.since}, behoben {alert.at}).",
        ]
    else:
        lines = [
            f"Alert on {site}: {title}.",
            "",
            f"Incident: {alert.incident.kind}",
            f"Since:    {alert.incident.since}",
            f"Now:      {alert.incident.summary}",
            "",
            *INCIDENT_ADVICE.get(alert.incident.kind, ()),
            "",
            "You get one mail now and one when it recovers, not one per check.",
            "",
            f"-- Deutsch: Störung auf {site}: {title_de} (seit {alert.incident.since}).",
            "Eine Mail jetzt, eine weitere, wenn es behoben ist.",
        ]
    lines += ["", "This mail contains no call data."]
    msg.set_content("\n".join(lines) + "\n")
    return msg


def alert_admins(
    alerts: Sequence[Alert], directory: Directory, config: SmtpConfig, site: str | None = None
) -> tuple[list[str], list[str]]:
    """Mail every admin with an address each alert; returns (addresses mailed, admins without an address)."""
    recipients, missing = admin_recipients(directory)
    site = site or socket.gethostname()
    send(config, (compose_alert(a, to, config.mail_from, site) for a in alerts for to in recipients))
    return recipients, missing
