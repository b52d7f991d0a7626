"""Alerts that notice silence: a warehouse not published for CALLSIGHT_STALE_AFTER_HOURS, or a night that
started and never finished (killed: no failure hook ran, so the failure sensor saw nothing).

The admins get one mail when such an incident begins and one when it ends. Which incidents are open
lives in the sensor's cursor, so a restarted daemon neither forgets them nor mails them again.
`decide` is the pure state machine; the sensor only observes, decides, mails and stores the cursor.
"""

from __future__ import annotations

import json
import logging
import smtplib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

import dagster as dg
import duckdb

from callsight.defs.messages_de import MAIL_DE
from callsight.defs.notify import Alert, Incident, SmtpConfig, alert_admins
from callsight.publish.freshness import judge, read_served_state
from callsight.site.directory import load_directory
from callsight.site.locale import Msg, msg, render
from callsight.site.settings import Settings
from callsight.site.yaml_config import ConfigError

SILENCE_SENSOR = "silence_alerts"
DEFAULT_NIGHT_MAX_HOURS = 12
TERMINAL_RUN_STATES = {"SUCCESS", "FAILURE", "CANCELED"}


# ---- nights from the audit log ------------------------------------------------------------------
@dataclass(frozen=True)
class Night:
    """One nightly run as its audit entries tell it (status None while it has not finished)."""

    run_id: str
    started_at: datetime | None  # aware, UTC
    finished_at: datetime | None
    status: str | None
    failed_step: str | None = None


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def nights_from_entries(rows: Iterable[tuple[datetime, str, str]]) -> list[Night]:
    """Pure: the nights in run entries (recorded_at, run id, detail JSON) in log order, by first entry."""
    found: dict[str, Night] = {}
    for recorded_at, run_id, detail_text in rows:
        detail = json.loads(detail_text)
        night = found.get(run_id, Night(run_id, None, None, None))
        if detail.get("event") == "started":
            night = Night(run_id, _utc(recorded_at), night.finished_at, night.status, night.failed_step)
        elif detail.get("event") == "finished":
            status = str(detail.get("status") or "unknown")
            step = detail.get("failed_step")
            night = Night(run_id, night.started_at, _utc(recorded_at), status, str(step) if step else None)
        found[run_id] = night
    return list(found.values())


def read_nights(settings: Settings) -> list[Night]:
    """The nights in the raw store's audit log, opened read-only. Raises duckdb.IOException while a
    writer (a night, an erasure) holds the store."""
    if not settings.raw_db.exists():
        return []
    con = duckdb.connect(str(settings.raw_db), read_only=True)
    try:
        rows = con.execute(
            "SELECT recorded_at, subject, detail FROM audit_log WHERE kind = 'run' ORDER BY seq"
        ).fetchall()
    except duckdb.CatalogException:
        return []  # no audit log yet: nothing ran
    finally:
        con.close()
    return nights_from_entries(rows)


def night_max_hours(env: Mapping[str, str]) -> float:
    """CALLSIGHT_NIGHT_MAX_HOURS: a night unfinished for longer counts as killed."""
    value = env.get("CALLSIGHT_NIGHT_MAX_HOURS") or str(DEFAULT_NIGHT_MAX_HOURS)
    try:
        hours = float(value)
    except ValueError:
        raise ValueError(f"CALLSIGHT_NIGHT_MAX_HOURS must be a number of hours, got {value!r}") from None
    if hours <= 0:
        raise ValueError(f"CALLSIGHT_NIGHT_MAX_HOURS must be positive, got {value!r}")
    return hours


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


# ---- what is silent now -------------------------------------------------------------------------
def stale_incident(settings: Settings, now: datetime) -> Incident | None:
    """The `fresh` check's verdict on the served file, as an incident when it fails."""
    stale_after = timedelta(hours=settings.stale_after_hours)
    state = read_served_state(settings.served_db)
    verdict = judge(state, now, stale_after)
    if verdict.fresh:
        return None
    since = state.built_at + stale_after if state.built_at else now
    published = _stamp(state.built_at) if state.built_at else ""
    if verdict.age is None:
        summary = msg("served warehouse no published warehouse (or no build_info in it)")
    else:
        summary = msg(
            "served warehouse stale: published {hours} h ago (limit {limit} h)",
            hours=f"{verdict.age.total_seconds() / 3600:.1f}",
            limit=f"{stale_after.total_seconds() / 3600:g}",
        )
    return _incident("stale", _stamp(since), summary, published)


def _incident(kind: str, since: str, summary: Msg, published: str = "") -> Incident:
    """The incident with its summary in English and German (one Msg: the same facts)."""
    return Incident(kind, since, render(summary, "en", MAIL_DE), published, render(summary, "de", MAIL_DE))


def killed_incident(
    nights: list[Night], run_status: Callable[[str], str | None], now: datetime, max_hours: float
) -> Incident | None:
    """Pure but for `run_status`: the latest night started, never finished, and is dead - Dagster
    finished it (run monitoring) or it ran longer than `max_hours`."""
    last = nights[-1] if nights else None
    if last is None or last.finished_at is not None or last.started_at is None:
        return None
    status = run_status(last.run_id)
    hours = (now - last.started_at).total_seconds() / 3600
    if status not in TERMINAL_RUN_STATES and hours <= max_hours:
        return None  # still running
    said = msg("Dagster says {status}", status=status) if status else msg("unknown to Dagster")
    summary = msg(
        "night {run} started {hours} h ago, never finished ({said})", run=last.run_id, hours=f"{hours:.1f}", said=said
    )
    return _incident("killed", _stamp(last.started_at), summary)


def dagster_run_status(instance: dg.DagsterInstance) -> Callable[[str], str | None]:
    def status(run_id: str) -> str | None:
        run = instance.get_run_by_id(run_id)
        return run.status.value if run else None

    return status


def observe(
    settings: Settings, run_status: Callable[[str], str | None], now: datetime, log: logging.Logger
) -> dict[str, Incident | None]:
    """Each incident kind open (Incident) or clear (None); a kind that cannot be seen now is left out."""
    seen: dict[str, Incident | None] = {"stale": stale_incident(settings, now)}
    try:
        nights = read_nights(settings)
    except duckdb.IOException:
        log.info("raw store in use (a night is running?): killed nights checked next tick")
    else:
        seen["killed"] = killed_incident(nights, run_status, now, night_max_hours(settings.env))
    return seen


# ---- the state machine --------------------------------------------------------------------------
@dataclass(frozen=True)
class Decision:
    incidents: dict[str, Incident]  # open after this tick: the next cursor
    alerts: list[Alert]  # mails to send now


def decide(open_incidents: Mapping[str, Incident], seen: Mapping[str, Incident | None], now: datetime) -> Decision:
    """Pure: ok -> incident (mail) -> still incident (no mail) -> recovered (mail). A kind missing from
    `seen` could not be observed and stays as it was."""
    incidents = dict(open_incidents)
    alerts: list[Alert] = []
    for kind, current in seen.items():
        before = incidents.get(kind)
        if current is not None and before is None:
            incidents[kind] = current
            alerts.append(Alert(current, recovered=False, at=_stamp(now)))
        elif current is not None and before is not None:
            # since stays: one incident; so does when the warehouse was last published, if known
            incidents[kind] = Incident(
                kind, before.since, current.summary, before.published or current.published, current.summary_de
            )
        elif current is None and before is not None:
            del incidents[kind]
            alerts.append(Alert(before, recovered=True, at=_stamp(now)))
    return Decision(incidents, alerts)


def load_cursor(cursor: str | None) -> dict[str, Incident]:
    if not cursor:
        return {}
    return {kind: Incident(**fields) for kind, fields in json.loads(cursor).get("open", {}).items()}


def dump_cursor(incidents: Mapping[str, Incident]) -> str:
    return json.dumps({"open": {k: asdict(v) for k, v in sorted(incidents.items())}}, sort_keys=True)


def mail_alerts(settings: Settings, alerts: list[Alert], log: logging.Logger) -> bool:
    """Mail the alerts to the directory's admins, each in their language; False (logged) when the mail
    could not go out."""
    try:
        directory = load_directory(settings.effective_directory_path)
        sent, missing = alert_admins(alerts, directory, SmtpConfig.from_env(settings.env), site_locale=settings.locale)
    except (ConfigError, OSError, smtplib.SMTPException, ValueError) as exc:
        log.warning(f"silence alert not sent: {type(exc).__name__}: {exc}")
        return False
    if missing:
        log.warning(f"admins without an email address in the directory: {', '.join(missing)}")
    log.info(f"{len(alerts)} silence alert(s) sent to {len(sent)} admin(s)")
    return True


@dg.sensor(
    name=SILENCE_SENSOR,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Mails the directory's admins once when the served warehouse goes stale or a night is "
    "killed, and once when that recovers (open incidents kept in the cursor).",
)
def silence_alerts(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    settings = Settings.from_env()  # a sensor tick is no run: no SiteResource
    now = datetime.now(UTC)
    seen = observe(settings, dagster_run_status(context.instance), now, context.log)
    decision = decide(load_cursor(context.cursor), seen, now)
    if decision.alerts and not mail_alerts(settings, decision.alerts, context.log):
        return dg.SkipReason("alert mail not sent; tried again next tick")  # cursor unchanged
    context.update_cursor(dump_cursor(decision.incidents))
    kinds = ", ".join(sorted(decision.incidents)) or "none"
    return dg.SkipReason(f"open incidents: {kinds}; mails sent: {len(decision.alerts)}")
