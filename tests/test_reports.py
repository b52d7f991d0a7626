"""Scheduled e-mail reports with real parts: Superset's production profile (PostgreSQL metadata DB, Celery
worker and one beat on Redis, gunicorn, selenium + Debian chromium) and a local SMTP sink."""

from __future__ import annotations

import csv
import email
import io
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from pathlib import Path

import duckdb
import pytest

from callsight.bi.api import SupersetClient
from callsight.bi.assets import load_assets
from callsight.bi.provision import Provisioner
from callsight.bi.reports import REPORT_PREFIX, report_specs
from callsight.site.directory import load_directory
from callsight.site.policy import load_policy
from callsight.site.settings import Settings

from .conftest import Site, free_port, reachable, redis_command, require_service
from .test_dashboards import browser_session, json_rison, visible_agents

pytestmark = [pytest.mark.superset, pytest.mark.slow]

PG = ("127.0.0.1", 5432)
REDIS = ("127.0.0.1", 6379)
REDIS_DB = 9
WEEKLY_CSV_DATASET = "05d1dea5-5f7e-5c87-be6c-70905dede5e7"  # dashboard_inbound_calls


@dataclass
class Mailbox:
    messages: list[Message] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


@dataclass
class ReportsServer:
    url: str
    site: Site
    settings: Settings
    admin_password: str
    user_password: str
    mailbox: Mailbox
    provisioner_policy: object


def policy_with_leader_csv(site: Site):
    policy = load_policy(site.settings.effective_policy_path)
    return policy.model_copy(update={"reports": policy.reports.model_copy(update={"leader_csv": True})})


def provision_with_reports(server_url: str, settings: Settings, admin_pw: str, user_pw: str, policy) -> Provisioner:
    client = SupersetClient(server_url).login(settings.superset_admin_username, admin_pw)
    directory = load_directory(settings.effective_directory_path)
    p = Provisioner(
        client, directory, settings.served_db, user_pw, settings.superset_admin_username, policy, with_reports=True
    )
    p.run()
    return p


@pytest.fixture(scope="module")
def reports_server(published_site: Site) -> Iterator[ReportsServer]:
    from aiosmtpd.controller import Controller

    from callsight.bi.runtime import SupersetEnv, stop, wait_healthy

    require_service(reachable(PG), "PostgreSQL on 127.0.0.1:5432 (Superset metadata DB for reports)")
    require_service(reachable(REDIS), "Redis on 127.0.0.1:6379 (Celery broker for reports)")
    require_service(Path("/usr/bin/chromium").exists(), "Debian chromium + chromium-driver (report screenshots)")
    import psycopg

    db = f"callsight_reports_{secrets.token_hex(4)}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{db}"')
    redis_command(REDIS_DB, "FLUSHDB")
    mailbox = Mailbox()
    smtp_port = free_port()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    profile = {
        "SUPERSET_DATABASE_URI": f"postgresql+psycopg2://postgres@127.0.0.1:5432/{db}",
        "CALLSIGHT_REDIS_URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
        "CALLSIGHT_CELERY_QUEUE": f"callsight-test-{db}",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_port),
        "SMTP_STARTTLS": "false",
        "SMTP_SSL": "false",
        "SMTP_MAIL_FROM": "callsight@example.com",
        "CALLSIGHT_WEBDRIVER_BASEURL": f"{url}/",
        "CALLSIGHT_AUTH_RATE_LIMIT": "1000 per second",
    }
    settings = Settings.from_env({**published_site.settings.env, **profile})
    assert settings.reports_profile
    admin_pw, user_pw = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    env = SupersetEnv(settings, secrets.token_urlsafe(32), extra_env=tuple(profile.items()))
    procs = []
    try:
        env.init_metadata(admin_pw)
        procs.append(env.start_web(port=port, workers=2, log_name="superset-reports-web.log"))
        wait_healthy(url, procs[0])
        procs.append(env.start_worker(concurrency=2))
        procs.append(env.start_beat())
        policy = policy_with_leader_csv(published_site)
        provision_with_reports(url, settings, admin_pw, user_pw, policy)
        yield ReportsServer(url, published_site, settings, admin_pw, user_pw, mailbox, policy)
    finally:
        for proc in reversed(procs):
            stop(proc)
        smtp.stop()
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def callsight_reports(admin: SupersetClient) -> dict[str, dict]:
    """callsight's reports with their owners' usernames (the API gives owner ids)."""
    usernames = {u["id"]: u["username"] for u in admin.list_all("security/users")}
    out = {}
    for r in admin.list_all("report", columns=("id", "name")):
        if r["name"].startswith(REPORT_PREFIX):
            detail = admin.get(f"/api/v1/report/{r['id']}")["result"]
            detail["owner_usernames"] = [usernames[o["id"]] for o in detail["owners"]]
            out[r["name"]] = detail
    return out


def test_reports_are_provisioned_per_leader_run_as_that_leader_and_never_duplicated(
    reports_server: ReportsServer,
) -> None:
    s = reports_server
    directory = load_directory(s.settings.effective_directory_path)
    specs, skipped = report_specs(directory, s.provisioner_policy)
    leaders = {lead for g in directory.groups for lead in g.leaders}
    assert leaders and not skipped
    admin = SupersetClient(s.url).login("admin", s.admin_password)
    reports = callsight_reports(admin)
    assert set(reports) == {spec.name for spec in specs}
    for spec in specs:
        r = reports[spec.name]
        assert r["owner_usernames"] == [spec.owner], "runs as its owner: the leader"
        assert r["crontab"] == "0 7 * * 1" and r["timezone"] == "Europe/Berlin"
        assert r["recipients"][0]["recipient_config_json"]
    for leader in leaders:
        mine = {n for n, r in reports.items() if r["owner_usernames"] == [leader] and r["dashboard"]}
        assert len(mine) == 2, f"{leader}: Management Summary and Agenten"
    ids = {n: r["id"] for n, r in reports.items()}
    provision_with_reports(s.url, s.settings, s.admin_password, s.user_password, s.provisioner_policy)
    again = callsight_reports(admin)
    assert {n: r["id"] for n, r in again.items()} == ids, "re-provisioning updates, never duplicates"


def subject(m: Message) -> str:
    return str(email.header.make_header(email.header.decode_header(m["Subject"])))


def delivered(m: Message) -> bool:
    """A report mail with its content (a failed run mails an error notice instead)."""
    return bool(parts(m, "image") or parts(m, "application") or parts(m, "text", "csv"))


def wait_for_mail(mailbox: Mailbox, wanted: dict[str, tuple[str, str]], timeout: float) -> dict[str, Message]:
    """The first delivered mail of every wanted report ({name: (recipient, subject)}), or what came in time."""
    deadline = time.monotonic() + timeout
    while True:
        got: dict[str, Message] = {}
        for m in list(mailbox.messages):
            for name, (to, subj) in wanted.items():
                if to in (m["To"] or "") and subject(m).endswith(subj) and delivered(m):
                    got.setdefault(name, m)
        if set(got) == set(wanted) or time.monotonic() > deadline:
            return got
        time.sleep(5)


def parts(message: Message, maintype: str, subtype: str | None = None) -> list[bytes]:
    out = []
    for part in message.walk():
        if part.get_content_maintype() == maintype and (subtype is None or part.get_content_subtype() == subtype):
            out.append(part.get_payload(decode=True) or b"")
    return out


def test_triggered_schedules_mail_each_leader_only_what_they_may_see(reports_server: ReportsServer) -> None:
    s = reports_server
    admin = SupersetClient(s.url).login("admin", s.admin_password)
    everything = callsight_reports(admin)
    # What each leader may see is a question of data: every CSV report (rows per leader) is triggered.
    # The screenshots run as their owners just the same (the test above); one per format shows they render.
    screenshots: dict[str, str] = {}
    for name, r in sorted(everything.items()):
        if r["report_format"] in ("PNG", "PDF"):
            screenshots.setdefault(r["report_format"], name)
    reports = {n: r for n, r in everything.items() if r["report_format"] not in ("PNG", "PDF")}
    reports |= {n: everything[n] for n in screenshots.values()}
    assert len(reports) > len(screenshots) >= 1
    # Trigger: those reports due every minute; the one beat queues them, the worker sends them.
    for r in reports.values():
        admin.put(f"/api/v1/report/{r['id']}", {"crontab": "* * * * *"})
    directory = load_directory(s.settings.effective_directory_path)
    emails = {u.username: u.email for u in directory.users}
    wanted = {n: (emails[r["owner_usernames"][0]], r["email_subject"]) for n, r in reports.items()}
    try:
        mails = wait_for_mail(s.mailbox, wanted, timeout=600)
    finally:
        for r in reports.values():
            admin.put(f"/api/v1/report/{r['id']}", {"active": False})
    missing = set(reports) - set(mails)
    assert not missing, f"no mail for {sorted(missing)}; see {s.settings.log_dir}/superset-worker.log"

    con = duckdb.connect(str(s.settings.served_db), read_only=True)
    web = browser_session(s.url, "admin", s.admin_password)
    tr = web.get(f"{s.url}/api/v1/time_range/?q={json_rison('Last week')}", timeout=30).json()["result"][0]
    since, until = datetime.fromisoformat(tr["since"]).date(), datetime.fromisoformat(tr["until"]).date()
    user_label = next(
        col["verbose_name"]
        for n, c in load_assets().items()
        if n.startswith("datasets/") and c["uuid"] == WEEKLY_CSV_DATASET
        for col in c["columns"]
        if col["column_name"] == "agent_username"
    )
    for name, r in reports.items():
        owner = r["owner_usernames"][0]
        mail = mails[name]
        assert emails[owner] in mail["To"]
        if r["report_format"] in ("PNG", "PDF"):
            images = parts(mail, "image") + parts(mail, "application", "pdf")
            assert images and all(len(b) > 5000 for b in images), f"{name}: a non-empty screenshot"
            continue
        (payload,) = parts(mail, "text", "csv") or parts(mail, "application")
        rows = list(csv.DictReader(io.StringIO(payload.decode("utf-8-sig"))))
        mine = visible_agents(s, owner)
        want = con.execute(
            "SELECT count(DISTINCT (call_date, agent_username)) FROM marts.fct_inbound_calls "
            "WHERE call_date >= ? AND call_date < ? AND (? OR agent_username IN (SELECT unnest(?)))",
            [since, until, mine is None, sorted(mine or [])],
        ).fetchone()[0]
        assert rows and len(rows) == want, name
        # The CSV header carries the dataset's labels: agent_username is "Benutzer".
        key = next(k for k in ("agent_username", user_label) if k in rows[0])
        assert {row[key] for row in rows} <= (mine if mine is not None else set(emails)), name
        if mine is not None:
            assert {row[key] for row in rows} <= mine, f"{name}: only rows {owner} may see"
    con.close()


def test_a_second_beat_for_the_same_home_refuses_to_start(reports_server: ReportsServer) -> None:
    from callsight.bi.runtime import SupersetEnv

    env = SupersetEnv(
        reports_server.settings, secrets.token_urlsafe(32), extra_env=tuple(reports_server.settings.env.items())
    )
    proc = env.start_beat(log_name="superset-beat-second.log")
    try:
        assert proc.wait(timeout=60) != 0, "a second beat must not run"
    finally:
        if proc.poll() is None:
            proc.kill()
    assert os.path.exists(reports_server.settings.home / "superset" / "celerybeat.pid")
