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

from callsight.defs.messages_de import MAIL_DE
from callsight.site.directory import Directory
from callsight.site.locale import DEFAULT_LOCALE, Msg, msg, render

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


def admin_languages(directory: Directory, site_locale: str) -> tuple[list[tuple[str, str]], list[str]]:
    """Pure: (address, language) of each admin with an address - their `locale` in the directory, else
    the site's - and the admins without an address. An address shared by admins gets the first one's."""
    by_name = {u.username: u for u in directory.users}
    emails, missing = admin_recipients(directory)
    chosen: dict[str, str] = {}
    for name in directory.admins:
        user = by_name[name]
        if user.email:
            chosen.setdefault(user.email, user.locale or site_locale)
    return [(email, chosen[email]) for email in emails], missing


def _msg(subject: str, to: str, mail_from: str, lines: list[str], lang: str) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = mail_from
    msg["To"] = to
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain=mail_from.rpartition("@")[2] or None)
    msg.set_content("\n".join(lines) + "\n")
    msg["Content-Language"] = lang  # after set_content, which replaces the Content-* headers
    return msg


def compose(report: FailureReport, to: str, mail_from: str, site: str, lang: str = "en") -> EmailMessage:
    """Pure: the failure mail for one admin, in `lang` (de or en)."""
    served = (
        msg("The warehouse was published before the failure (a later step failed).")
        if report.published
        else msg("Nothing was published: Superset keeps serving the last good warehouse.")
    )
    texts: list[object] = [
        msg("The callsight job '{job}' failed on {site}.", job=report.job_name, site=site),
        "",
        msg("Run:        {run}", run=report.run_id),
        msg("Partitions: {partitions}", partitions=report.partitions),
        served,
        "",
        msg("Failed steps:"),
        *(f"  - {s}" for s in report.failed_steps),
        *(() if report.failed_steps else (msg("  - (none recorded)"),)),
    ]
    if report.failed_checks:
        texts += ["", msg("Failed data-quality checks:"), *(f"  - {c}" for c in report.failed_checks)]
    if report.failed_expectations:
        texts += ["", msg("Failed expectations:"), *(f"  - {e}" for e in report.failed_expectations)]
    texts += [
        "",
        msg("Details: the run in Dagster (callsight serve: http://127.0.0.1:3000/runs/{run})", run=report.run_id),
        msg("and the logs in CALLSIGHT_HOME/logs. `callsight dq-docs` shows the data-quality results."),
        msg("This mail contains no call data."),
    ]
    subject = msg("[callsight] nightly run failed on {site} ({partitions})", site=site, partitions=report.partitions)
    return _msg(_text(subject, lang), to, mail_from, [_text(t, lang) for t in texts], lang)


def _text(text: object, lang: str) -> str:
    return render(text, lang, MAIL_DE)


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
    report: FailureReport,
    directory: Directory,
    config: SmtpConfig,
    site: str | None = None,
    site_locale: str = DEFAULT_LOCALE,
) -> tuple[list[str], list[str]]:
    """Mail every admin with an address, each in their language; returns (addresses mailed, admins
    without an address)."""
    addressees, missing = admin_languages(directory, site_locale)
    site = site or socket.gethostname()
    send(config, (compose(report, to, config.mail_from, site, lang) for to, lang in addressees))
    return [to for to, _ in addressees], missing


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
    published: str = ""  # stale: when the served warehouse was last published (ISO 8601, UTC), if known
    summary_de: str = ""  # the summary in German, from the same facts (empty in older cursors: English)


@dataclass(frozen=True)
class Alert:
    """One mail to send: an incident began (`recovered` False) or ended (`recovered` True, at `at`)."""

    incident: Incident
    recovered: bool
    at: str  # ISO 8601, UTC


def incident_title(incident: Incident) -> Msg | str:
    """Pure: what the incident is, for the subject and the first line."""
    if incident.kind == "stale":
        published = incident.published or msg("(time unknown)")
        return msg("the served warehouse is stale", published=published)  # de: "nicht veröffentlicht seit"
    if incident.kind == "killed":
        return msg("a nightly run was killed")
    return incident.kind


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


def compose_alert(alert: Alert, to: str, mail_from: str, site: str, lang: str = "en") -> EmailMessage:
    """Pure: the mail for one admin when an incident begins or ends, in `lang` (de or en); no call data."""
    incident = alert.incident
    title = incident_title(incident)
    summary = incident.summary_de if lang == "de" and incident.summary_de else incident.summary
    published = [msg("Published: {published}", published=incident.published)] if incident.published else []
    if alert.recovered:
        subject = msg("[callsight] RECOVERED: {title} on {site}", title=title, site=site)
        texts: list[object] = [
            msg("Recovered on {site}: {title}.", site=site, title=title),
            "",
            msg("Incident:  {kind}", kind=incident.kind),
            msg("Since:     {since}", since=incident.since),
            msg("Recovered: {at}", at=alert.at),
            *published,
            msg("It was:    {summary}", summary=summary),
            "",
            msg("Nothing to do. `callsight health` shows the state of every part."),
        ]
    else:
        subject = msg("[callsight] ALERT: {title} on {site}", title=title, site=site)
        texts = [
            msg("Alert on {site}: {title}.", site=site, title=title),
            "",
            msg("Incident: {kind}", kind=incident.kind),
            msg("Since:    {since}", since=incident.since),
            *published,
            msg("Now:      {summary}", summary=summary),
            "",
            *(msg(line) for line in INCIDENT_ADVICE.get(incident.kind, ())),
            "",
            msg("You get one mail now and one when it recovers, not one per check."),
        ]
    texts += ["", msg("This mail contains no call data.")]
    return _msg(_text(subject, lang), to, mail_from, [_text(t, lang) for t in texts], lang)


def alert_admins(
    alerts: Sequence[Alert],
    directory: Directory,
    config: SmtpConfig,
    site: str | None = None,
    site_locale: str = DEFAULT_LOCALE,
) -> tuple[list[str], list[str]]:
    """Mail every admin with an address each alert, in their language; returns (addresses mailed,
    admins without an address)."""
    addressees, missing = admin_languages(directory, site_locale)
    site = site or socket.gethostname()
    send(config, (compose_alert(a, to, config.mail_from, site, lang) for a in alerts for to, lang in addressees))
    return [to for to, _ in addressees], missing
