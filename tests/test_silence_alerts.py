"""Alerts that notice silence: the pure state machine, and the sensor evaluated tick by tick over a copy of
a published site whose served file goes stale and fresh again (or whose night is killed), its mails
caught by a real SMTP sink."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.header import decode_header, make_header
from email.message import Message

import dagster as dg
import duckdb
import pytest

from callsight.defs.audit.silence import (
    Night,
    decide,
    dump_cursor,
    killed_incident,
    load_cursor,
    nights_from_entries,
    silence_alerts,
)
from callsight.defs.notify import Incident
from callsight.journal.raw_store import connect_raw_store
from callsight.privacy.audit import append
from callsight.site.directory import load_directory

from .conftest import Site, SmtpSink, free_port

NOW = datetime(2026, 12, 5, 6, 0, tzinfo=UTC)
STALE = Incident("stale", "2026-12-05 01:00 UTC", "served warehouse stale: published 41.0 h ago (limit 36 h)")
KILLED = Incident("killed", "2026-12-04 17:00 UTC", "night r1 started 13.0 h ago, never finished (unknown to Dagster)")


# ---- the state machine --------------------------------------------------------------------------
def test_ok_incident_still_incident_recovered() -> None:
    quiet = decide({}, {"stale": None, "killed": None}, NOW)
    assert quiet.incidents == {} and quiet.alerts == []

    began = decide(quiet.incidents, {"stale": STALE, "killed": None}, NOW)
    assert began.incidents == {"stale": STALE}
    assert [(a.incident, a.recovered) for a in began.alerts] == [(STALE, False)]

    later = Incident("stale", "2026-12-05 02:00 UTC", "served warehouse stale: published 42.0 h ago (limit 36 h)")
    still = decide(began.incidents, {"stale": later, "killed": None}, NOW + timedelta(hours=1))
    assert still.alerts == []
    assert still.incidents["stale"].since == STALE.since  # one incident: it began once
    assert still.incidents["stale"].summary == later.summary

    over = decide(still.incidents, {"stale": None, "killed": None}, NOW + timedelta(hours=2))
    assert over.incidents == {}
    [alert] = over.alerts
    assert alert.recovered and alert.incident.since == STALE.since and alert.at == "2026-12-05 08:00 UTC"


def test_an_open_incident_keeps_when_the_warehouse_was_last_published() -> None:
    began = decide({}, {"stale": Incident(STALE.kind, STALE.since, STALE.summary, "2026-12-03 08:00 UTC")}, NOW)
    still = decide(began.incidents, {"stale": STALE}, NOW + timedelta(hours=1))
    assert still.incidents["stale"].published == "2026-12-03 08:00 UTC"
    # a cursor written before the field existed still loads
    old = json.dumps({"open": {"stale": {"kind": "stale", "since": STALE.since, "summary": STALE.summary}}})
    assert load_cursor(old) == {"stale": STALE}
    [recovered] = decide(still.incidents, {"stale": None}, NOW + timedelta(hours=2)).alerts
    assert recovered.recovered and recovered.incident.published == "2026-12-03 08:00 UTC"


def test_incidents_are_independent_and_an_unseen_kind_stays_as_it_was() -> None:
    both = decide({}, {"stale": STALE, "killed": KILLED}, NOW)
    assert len(both.alerts) == 2 and set(both.incidents) == {"stale", "killed"}
    # The raw store was busy: killed not observed this tick, so neither closed nor mailed.
    busy = decide(both.incidents, {"stale": STALE}, NOW)
    assert busy.alerts == [] and set(busy.incidents) == {"stale", "killed"}
    one_over = decide(busy.incidents, {"stale": STALE, "killed": None}, NOW)
    assert [(a.incident.kind, a.recovered) for a in one_over.alerts] == [("killed", True)]


def test_the_cursor_keeps_open_incidents_across_restarts() -> None:
    cursor = dump_cursor({"stale": STALE, "killed": KILLED})
    assert load_cursor(cursor) == {"stale": STALE, "killed": KILLED}
    assert load_cursor(None) == {} and load_cursor("") == {}
    assert decide(load_cursor(cursor), {"stale": STALE, "killed": KILLED}, NOW).alerts == []


def test_nights_and_a_killed_night() -> None:
    t = datetime(2026, 12, 4, 1, 0)
    rows = [
        (t, "r1", json.dumps({"event": "started", "job": "nightly"})),
        (t + timedelta(hours=1), "r1", json.dumps({"event": "finished", "status": "success"})),
        (t + timedelta(days=1), "r2", json.dumps({"event": "started", "job": "nightly"})),
    ]
    nights = nights_from_entries(rows)
    assert [(n.run_id, n.status) for n in nights] == [("r1", "success"), ("r2", None)]
    assert nights[0].finished_at == datetime(2026, 12, 4, 2, 0, tzinfo=UTC)
    started = nights[1].started_at
    assert started == datetime(2026, 12, 5, 1, 0, tzinfo=UTC)

    def unknown(_run_id: str) -> None:
        return None

    assert killed_incident(nights, unknown, started + timedelta(hours=2), 12) is None  # still running
    assert killed_incident(nights, lambda _: "STARTED", started + timedelta(hours=11), 12) is None
    killed = killed_incident(nights, unknown, started + timedelta(hours=13), 12)
    assert killed is not None and killed.since == "2026-12-05 01:00 UTC" and "r2" in killed.summary
    # Dagster's run monitoring marked the dead run failed, though no failure hook wrote to the audit log.
    failed = killed_incident(nights, lambda _: "FAILURE", started + timedelta(hours=1), 12)
    assert failed is not None and "Dagster says FAILURE" in failed.summary
    assert killed_incident(nights[:1], unknown, NOW, 12) is None
    assert killed_incident([Night("r3", None, t.replace(tzinfo=UTC), "failure")], unknown, NOW, 12) is None


# ---- the sensor over a real site and a real SMTP sink -------------------------------------------
def publish_time(site: Site, hours_ago: float) -> None:
    con = duckdb.connect(str(site.settings.served_db))
    try:
        con.execute("UPDATE marts.build_info SET built_at = ?", [datetime.now(UTC) - timedelta(hours=hours_ago)])
    finally:
        con.close()


class Ticks:
    """The daemon's view: one sensor evaluation after another, the cursor carried over."""

    def __init__(self) -> None:
        self.instance = dg.DagsterInstance.ephemeral()
        self.cursor: str | None = None

    def __call__(self) -> str:
        context = dg.build_sensor_context(instance=self.instance, cursor=self.cursor)
        result = silence_alerts(context)
        self.cursor = context.cursor
        return result.skip_message if isinstance(result, dg.SkipReason) else str(result)


@pytest.fixture
def alerting_site(published_copy: Site, smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch) -> Site:
    for name, value in smtp_sink.env().items():
        monkeypatch.setenv(name, value)
    return published_copy


def subject(message: Message) -> str:
    """The decoded subject (German subjects arrive RFC 2047 encoded)."""
    return str(make_header(decode_header(message["Subject"])))


def admin_emails(site: Site) -> list[str]:
    directory = load_directory(site.settings.effective_directory_path)
    by_name = {u.username: u.email for u in directory.users}
    return sorted(by_name[a] for a in directory.admins if by_name[a])


@pytest.mark.slow
def test_a_stale_warehouse_mails_once_and_its_recovery_once(alerting_site: Site, smtp_sink: SmtpSink) -> None:
    # The site's language is German by default (CALLSIGHT_LOCALE unset).
    admins = admin_emails(alerting_site)
    assert admins, "the demo directory has an admin with an address"
    tick = Ticks()
    assert "open incidents: none; mails sent: 0" in tick()
    assert smtp_sink.messages() == []

    publish_time(alerting_site, 40)
    tick()
    [incident] = smtp_sink.messages()
    assert incident["To"] == admins[0]
    assert subject(incident).startswith("[callsight] STÖRUNG auf ")
    assert ": Warehouse nicht veröffentlicht seit 20" in subject(incident)
    body = incident.get_payload(decode=True).decode()
    assert "Störung:    stale" in body and "Seit:" in body and "vor 40.0 h veröffentlicht (Grenze 36 h)" in body
    assert "Zu prüfen:" in body and "Diese Mail enthält keine Anrufdaten." in body
    assert "+49" not in body

    assert "open incidents: stale; mails sent: 0" in tick()  # next tick: still stale, no mail
    assert "mails sent: 0" in tick()
    assert len(smtp_sink.messages()) == 1

    publish_time(alerting_site, 1)
    tick()
    messages = smtp_sink.messages()
    assert len(messages) == 2
    assert subject(messages[1]).startswith("[callsight] Wieder in Ordnung auf ")
    recovery = messages[1].get_payload(decode=True).decode()
    assert "Behoben:" in recovery and "Seit:" in recovery and "+49" not in recovery
    tick()
    assert len(smtp_sink.messages()) == 2


@pytest.mark.slow
def test_in_english_the_same_alerts(alerting_site: Site, smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLSIGHT_LOCALE", "en")
    tick = Ticks()
    publish_time(alerting_site, 40)
    tick()
    [incident] = smtp_sink.messages()
    assert subject(incident).startswith("[callsight] ALERT: the served warehouse is stale on ")
    body = incident.get_payload(decode=True).decode()
    assert "Incident: stale" in body and "Since:" in body and "published 40.0 h ago (limit 36 h)" in body
    assert "Look at:" in body and "This mail contains no call data." in body
    publish_time(alerting_site, 1)
    tick()
    recovery = smtp_sink.messages()[1]
    assert subject(recovery).startswith("[callsight] RECOVERED: the served warehouse is stale on ")
    assert "Recovered:" in recovery.get_payload(decode=True).decode()


@pytest.mark.slow
def test_a_killed_night_mails_once_and_once_when_a_night_finishes(alerting_site: Site, smtp_sink: SmtpSink) -> None:
    tick = Ticks()
    started = datetime.now(UTC) - timedelta(hours=13)
    con = connect_raw_store(alerting_site.settings)
    try:
        append(con, "run", "killed-run", {"event": "started", "job": "nightly"}, now=started)
    finally:
        con.close()
    tick()
    tick()
    [incident] = smtp_sink.messages()
    assert subject(incident).startswith("[callsight] STÖRUNG auf ")
    assert subject(incident).endswith(": Nachtlauf abgebrochen")
    body = incident.get_payload(decode=True).decode()
    assert "Nachtlauf killed-run vor 13.0 h gestartet, nie beendet" in body and "journalctl -k" in body

    con = connect_raw_store(alerting_site.settings)
    try:
        append(con, "run", "next-run", {"event": "started", "job": "nightly"})
        append(con, "run", "next-run", {"event": "finished", "status": "success"})
    finally:
        con.close()
    tick()
    tick()
    messages = smtp_sink.messages()
    assert [subject(m).split(" auf ")[0] for m in messages] == [
        "[callsight] STÖRUNG",
        "[callsight] Wieder in Ordnung",
    ]


@pytest.mark.slow
def test_an_alert_that_could_not_be_mailed_is_tried_again(
    alerting_site: Site, smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish_time(alerting_site, 40)
    tick = Ticks()
    monkeypatch.setenv("SMTP_PORT", str(free_port()))  # nobody listens: the mail fails
    assert tick() == "alert mail not sent; tried again next tick"
    assert tick.cursor is None
    monkeypatch.setenv("SMTP_PORT", str(smtp_sink.port))
    tick()
    assert len(smtp_sink.messages()) == 1 and "stale" in load_cursor(tick.cursor)
