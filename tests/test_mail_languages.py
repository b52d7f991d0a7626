"""Every mail callsight sends, in German and in English: the same facts in both, German as a German
admin expects it, no call data in either; each admin gets the language of their `locale` in the org
directory, else the site's (CALLSIGHT_LOCALE, default de), through a real SMTP sink."""

from __future__ import annotations

import ast
import logging
import re
import sqlite3
import string
from datetime import UTC, date, datetime, time, timedelta
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from pathlib import Path

import duckdb
import pytest
import yaml

from callsight.cli.main import main
from callsight.defs import notify
from callsight.defs.audit import silence
from callsight.defs.audit.silence import killed_incident, mail_alerts
from callsight.defs.messages_de import MAIL_DE
from callsight.defs.notify import Alert, FailureReport, Incident, admin_languages, compose, compose_alert
from callsight.site.directory import Directory, User
from callsight.site.locale import parse_locale
from callsight.site.settings import Settings
from callsight.site.yaml_config import ConfigError

from .conftest import Site, SmtpSink

REPORT = FailureReport(
    "run-7f3a",
    "nightly",
    "2026-12-04",
    ("raw_quality_checks (CheckError)",),
    ("raw_journal: raw_quality_checks",),
    ("raw_journal.journal: expect_column_values_to_not_be_null(StartTime): 3 of 1204",),
    False,
)
STALE = Incident(
    "stale", "2026-12-05 01:00 UTC", "served warehouse stale: published 41.0 h ago (limit 36 h)", "2026-12-03 08:00 UTC"
)
KILLED = Incident("killed", "2026-12-04 17:00 UTC", "night r1 started 13.0 h ago, never finished (unknown to Dagster)")
FROM, SITE = "callsight@example.org", "telefon-01"


def mails(lang: str) -> dict[str, EmailMessage]:
    """Every kind of mail, composed for one admin in `lang`."""
    return {
        "failure": compose(REPORT, "admin@example.org", FROM, SITE, lang),
        "published": compose(REPORT.__class__(**{**REPORT.__dict__, "published": True}), "a@x", FROM, SITE, lang),
        "nothing recorded": compose(FailureReport("r", "nightly", "-", (), (), (), False), "a@x", FROM, SITE, lang),
        "stale": compose_alert(Alert(STALE, False, "2026-12-05 06:00 UTC"), "a@x", FROM, SITE, lang),
        "stale recovered": compose_alert(Alert(STALE, True, "2026-12-05 09:00 UTC"), "a@x", FROM, SITE, lang),
        "killed": compose_alert(Alert(KILLED, False, "2026-12-05 06:00 UTC"), "a@x", FROM, SITE, lang),
        "killed recovered": compose_alert(Alert(KILLED, True, "2026-12-05 09:00 UTC"), "a@x", FROM, SITE, lang),
    }


def numbers(text: str) -> set[str]:
    """The numbers in a text (dates, times, counts, ids split at separators); the German stale alert
    repeats its date in the title, so the sets are compared, not how often each occurs."""
    return set(re.findall(r"\d+", text))


def whole(message: Message) -> tuple[str, str]:
    """(subject, body) decoded, as a mail client shows them."""
    subject = str(make_header(decode_header(message["Subject"])))
    payload = message.get_payload(decode=True)
    return subject, payload.decode("utf-8") if isinstance(payload, bytes) else message.get_content()


# ---- composed --------------------------------------------------------------------------------------------
def test_each_mail_in_both_languages_with_the_same_facts() -> None:
    english, german = mails("en"), mails("de")
    for kind in english:
        (en_subject, en_body), (de_subject, de_body) = whole(english[kind]), whole(german[kind])
        assert de_body != en_body, kind
        assert numbers(de_subject + de_body) == numbers(en_subject + en_body), kind
        for fact in ("telefon-01", "run-7f3a", "2026-12-0", "UTC"):
            assert (fact in en_subject + en_body) == (fact in de_subject + de_body), (kind, fact)
        assert de_body.rstrip().endswith("Diese Mail enthält keine Anrufdaten."), kind
        assert en_body.rstrip().endswith("This mail contains no call data."), kind
        assert german[kind]["Content-Language"] == "de" and english[kind]["Content-Language"] == "en"

    subject, body = whole(german["failure"])
    assert subject == "[callsight] Nachtlauf fehlgeschlagen auf telefon-01 (2026-12-04)"
    assert "Nichts wurde veröffentlicht" in body and "Fehlgeschlagene Schritte:" in body
    assert "expect_column_values_to_not_be_null(StartTime): 3 of 1204" in body  # names stay as Dagster gives them
    assert "Das Warehouse wurde vor dem Fehler veröffentlicht" in whole(german["published"])[1]
    assert "(keine erfasst)" in whole(german["nothing recorded"])[1]

    subject, body = whole(german["stale"])
    assert subject == "[callsight] STÖRUNG auf telefon-01: Warehouse nicht veröffentlicht seit 2026-12-03 08:00 UTC"
    assert "Seit:       2026-12-05 01:00 UTC" in body and "Zu prüfen:" in body
    subject, body = whole(german["stale recovered"])
    assert subject.startswith("[callsight] Wieder in Ordnung auf telefon-01: Warehouse nicht veröffentlicht seit ")
    assert "Behoben:    2026-12-05 09:00 UTC" in body and "Nichts zu tun." in body
    assert whole(german["killed"])[0] == "[callsight] STÖRUNG auf telefon-01: Nachtlauf abgebrochen"
    assert "OOM-Killer (journalctl -k)" in whole(german["killed"])[1]
    assert whole(english["killed"])[0] == "[callsight] ALERT: a nightly run was killed on telefon-01"


def test_every_mail_text_has_its_german_translation() -> None:
    """All branches: every template in notify.py and audit/silence.py (and each advice line) is in the
    catalogue, with the same placeholders."""
    sources = (Path(notify.__file__), Path(silence.__file__))
    used = {
        node.args[0].value
        for source in sources
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", None) == "msg"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }
    used |= {line for lines in notify.INCIDENT_ADVICE.values() for line in lines}
    assert used - set(MAIL_DE) == set() and set(MAIL_DE) - used == set()

    def fields(template: str) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name}

    # the stale title's German names when it was published; English says so in the body
    assert [k for k, v in MAIL_DE.items() if fields(k) != fields(v) and k != "the served warehouse is stale"] == []


def test_the_language_setting_and_a_users_locale() -> None:
    assert parse_locale(None) == parse_locale("") == "de"  # German sites
    assert parse_locale("en") == parse_locale("en_US.UTF-8") == parse_locale("EN") == "en"
    assert parse_locale("de_DE") == "de"
    for bad in ("fr", "english", "d"):
        with pytest.raises(ValueError, match="CALLSIGHT_LOCALE"):
            parse_locale(bad)
    assert Settings.from_env({"CALLSIGHT_HOME": "/tmp/x"}).locale == "de"
    assert Settings.from_env({"CALLSIGHT_HOME": "/tmp/x", "CALLSIGHT_LOCALE": "en"}).locale == "en"

    directory = Directory(
        users=[
            User(username="anna", name="Anna", email="anna@x", locale="en"),
            User(username="bernd", name="Bernd", email="bernd@x"),
            User(username="carla", name="Carla"),
        ],
        admins=["anna", "bernd", "carla"],
    )
    assert admin_languages(directory, "de") == ([("anna@x", "en"), ("bernd@x", "de")], ["carla"])
    assert admin_languages(directory, "en") == ([("anna@x", "en"), ("bernd@x", "en")], ["carla"])


def test_a_locale_other_than_de_or_en_is_refused(site: Site) -> None:
    from callsight.site.directory import load_directory

    path = site.settings.effective_directory_path
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["users"][0]["locale"] = "fr"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError, match="locale"):
        load_directory(path)


# ---- sent ----------------------------------------------------------------------------------------------
def journal_values(site: Site) -> list[str]:
    """Numbers, contacts, companies and notes of the journal: none may reach a mail."""
    con = sqlite3.connect(site.settings.demo_journal_path)
    values: set[str] = set()
    for col in ("PhoneNumber", "ContactName", "ContactCompany", "Subject"):
        values |= {r[0] for r in con.execute(f"SELECT DISTINCT {col} FROM journal WHERE {col} IS NOT NULL")}
    con.close()
    return sorted(v for v in values if len(v) >= 6)


def two_admins(site: Site) -> tuple[str, str]:
    """Make the directory's first two users its admins, the first reading English: (english, german) address."""
    path = site.settings.effective_directory_path
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    first, second = data["users"][0], data["users"][1]
    first["locale"] = "en"
    second.pop("locale", None)
    data["admins"] = [first["username"], second["username"]]
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    assert first["email"] and second["email"]
    return first["email"], second["email"]


@pytest.mark.slow
def test_a_failed_night_mails_each_admin_in_their_language_without_call_data(
    published_copy: Site, smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    english_admin, german_admin = two_admins(published_copy)
    for key, value in smtp_sink.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("CALLSIGHT_LOCALE", raising=False)  # a German site
    s = Settings.from_env()
    # A leg that stops before it starts, in the raw store and the source, carrying data that must not reach
    # a mail: the night's data-quality check fails on it (as in test_publish_gate).
    needles = ["+49 30 5550199", "Erika Vertraulich", "Geheim und Partner GmbH", "Kündigung besprechen"]
    con = duckdb.connect(str(s.served_db), read_only=True)
    last = con.execute("SELECT max(call_date) FROM marts.fct_calls").fetchone()[0]
    con.close()
    start = datetime.combine(last - timedelta(days=s.lookback_days + 20), time(10, 0))
    con = duckdb.connect(str(s.raw_db))
    con.execute(
        'INSERT INTO journal SELECT * REPLACE ("ID" + 1000000000 AS "ID", ? AS "StartTime", ? AS "StopTime", '
        'NULL AS "ConnectTime", NULL AS "DisconnectTime", ? AS "PhoneNumber", ? AS "ContactName", '
        '? AS "ContactCompany", ? AS "Subject") FROM journal LIMIT 1',
        [start, start - timedelta(minutes=2), *needles],
    )
    con.close()
    src = sqlite3.connect(s.demo_journal_path)
    src.row_factory = sqlite3.Row
    row = dict(src.execute("SELECT * FROM journal LIMIT 1").fetchone())
    row.update(ID=row["ID"] + 1000000000, StartTime=str(start), StopTime=str(start - timedelta(minutes=2)))
    row.update(ConnectTime=None, DisconnectTime=None, PhoneNumber=needles[0], ContactName=needles[1])
    row.update(ContactCompany=needles[2], Subject=needles[3])
    src.execute(f"INSERT INTO journal ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))
    src.commit()
    src.close()

    assert main(["run", "--date", date.isoformat(last)]) == 1
    assert "failure mail sent to 2 admin(s)" in capsys.readouterr().out
    by_to = {m["To"]: whole(m) for m in smtp_sink.messages()}
    assert set(by_to) == {english_admin, german_admin}
    en_subject, en_body = by_to[english_admin]
    de_subject, de_body = by_to[german_admin]
    assert en_subject.startswith("[callsight] nightly run failed on ") and "Nothing was published" in en_body
    assert (
        de_subject.startswith("[callsight] Nachtlauf fehlgeschlagen auf ") and "Nichts wurde veröffentlicht" in de_body
    )
    assert "expect_column_pair_values_a_to_be_greater_than_b(StopTime_unfolded, StartTime" in de_body
    assert numbers(de_subject + de_body) == numbers(en_subject + en_body)
    private = [*needles, *journal_values(published_copy)]
    fixed = " ".join(MAIL_DE.values())  # words of the fixed German text are no leak
    for subject, body in (by_to[english_admin], by_to[german_admin]):
        leaked = [v for v in private if (v in body or v in subject) and v not in fixed]
        assert leaked == []


def test_an_incidents_summary_in_both_languages() -> None:
    night = silence.Night("r9", datetime(2026, 12, 4, 17, 0, tzinfo=UTC), None, None)
    incident = killed_incident([night], lambda run_id: "FAILURE", datetime(2026, 12, 5, 6, 0, tzinfo=UTC), 12)
    assert incident is not None
    assert incident.summary == "night r9 started 13.0 h ago, never finished (Dagster says FAILURE)"
    assert incident.summary_de == "Nachtlauf r9 vor 13.0 h gestartet, nie beendet (laut Dagster FAILURE)"
    german = whole(compose_alert(Alert(incident, False, "2026-12-05 06:00 UTC"), "a@x", FROM, SITE, "de"))[1]
    english = whole(compose_alert(Alert(incident, False, "2026-12-05 06:00 UTC"), "a@x", FROM, SITE, "en"))[1]
    assert "Befund:     Nachtlauf r9 vor 13.0 h gestartet" in german and "Now:      night r9 started" in english
    # an incident from a cursor written before German summaries: its English summary
    old = Incident(KILLED.kind, KILLED.since, KILLED.summary)
    assert KILLED.summary in whole(compose_alert(Alert(old, True, "x"), "a@x", FROM, SITE, "de"))[1]


@pytest.mark.slow
def test_silence_alerts_go_out_in_each_admins_language(
    published_copy: Site, smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    english_admin, german_admin = two_admins(published_copy)
    for key, value in smtp_sink.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CALLSIGHT_LOCALE", "de_DE.UTF-8")
    settings = Settings.from_env()
    log = logging.getLogger("test")
    assert mail_alerts(settings, [Alert(KILLED, False, "2026-12-05 06:00 UTC")], log)
    assert mail_alerts(settings, [Alert(KILLED, True, "2026-12-05 09:00 UTC")], log)
    sent = [(m["To"], *whole(m)) for m in smtp_sink.messages()]
    assert [(to, subject) for to, subject, _ in sent] == [
        (english_admin, "[callsight] ALERT: a nightly run was killed on " + sent[0][1].rsplit(" ", 1)[1]),
        (german_admin, "[callsight] STÖRUNG auf " + sent[1][1].split(" auf ")[1]),
        (english_admin, "[callsight] RECOVERED: a nightly run was killed on " + sent[2][1].rsplit(" ", 1)[1]),
        (german_admin, "[callsight] Wieder in Ordnung auf " + sent[3][1].split(" auf ")[1]),
    ]
    assert sent[1][1].endswith(": Nachtlauf abgebrochen") and sent[3][1].endswith(": Nachtlauf abgebrochen")
    assert "Diese Mail enthält keine Anrufdaten." in sent[1][2] and "This mail contains no call data." in sent[0][2]
    values = journal_values(published_copy)
    assert not [
        v for _, subject, body in sent for v in values if v in subject + body and v not in " ".join(MAIL_DE.values())
    ]
