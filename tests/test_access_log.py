"""Who looked at what (issue 30): a real browser opens dashboards as two people and exports a chart; the
nightly copy of Superset's access log counts exactly that, keeps nothing older than the policy's
access_log.retention_days (in its copy and in Superset's own `logs` table), shows it to admins only,
summarises it in the processing record in German and English, and holds no call data or query details.

One published site and one Superset (SQLite metadata DB) for the module; three nightly runs."""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import duckdb
import pytest
import yaml

from callsight.bi.access_log import DASHBOARD_OPENED, access_events, classify, retention_start
from callsight.bi.api import SupersetAPIError, SupersetClient
from callsight.bi.assets import load_assets
from callsight.privacy.messages_de import ACCESS_RECORD_DE
from callsight.privacy.record import write_report
from callsight.privacy.record_access import KINDS, access_blocks, per_group
from callsight.site.directory import Directory, load_directory
from callsight.site.locale import templates
from callsight.site.policy import load_policy

from .browser import chromium, login, open_dashboard, wait_for
from .conftest import Site, free_port, make_site, require_service
from .privacy_scan import scan
from .test_dashboards import charts_of, dashboards

RETENTION_DAYS = 30
# Dashboard opens per person: the leader of one group and a plain member of another.
LEADER_OPENS = {"agenten": 2, "management-summary": 1}
MEMBER_OPENS = {"kunden": 3}


# ---- pure -------------------------------------------------------------------------------------------
def test_only_opens_exports_and_sql_lab_count_and_their_details_are_dropped() -> None:
    assert classify("log", json.dumps({"event_name": "mount_dashboard", "dashboard_id": 1})) == (DASHBOARD_OPENED, None)
    assert classify("log", '{"event_name": "export_xlsx_dashboard_chart"}') == ("chart exported", "xlsx")
    assert classify("log", '{"event_name": "chart_download_as_image"}') == ("chart exported", "image")
    assert classify("log", '{"event_name": "load_chart"}') is None  # every chart render: not an access
    assert classify("SqlLabRestApi.get_results", '{"path": "/api/v1/sqllab/execute/"}') == ("SQL Lab query", None)
    assert classify("SqlLabRestApi.get_results", '{"path": "/api/v1/sqllab/results/"}') is None
    assert classify("ChartDataRestApi.data", '{"result_format": "csv"}') is None
    assert classify("log", "not json") is None
    rows = [
        (7, "2026-12-01 09:41:59.999", "anna", "log", '{"event_name": "mount_dashboard", "sql": "x"}', 1, "A", "a"),
        (8, "2026-12-01 09:42:01", "anna", "log", '{"event_name": "export_csv_dashboard_chart"}', 1, "A", "a"),
    ]
    events = access_events([(*r, 3, "Chart") for r in rows])
    assert [(e.log_id, e.accessed_at, e.kind, e.chart_name) for e in events] == [
        (7, datetime(2026, 12, 1, 9, 41), DASHBOARD_OPENED, None),  # to the minute; no chart for an open
        (8, datetime(2026, 12, 1, 9, 42), "chart exported", "Chart"),
    ]
    assert retention_start(datetime(2026, 12, 5, 3, 0, tzinfo=UTC), 30) == datetime(2026, 11, 5, 3, 0)


def test_the_record_counts_per_group_and_has_every_text_in_german() -> None:
    directory = Directory.model_validate(
        {
            "users": [{"username": u, "name": u} for u in ("a", "b", "c")],
            "groups": [{"name": "G1", "members": ["a", "b"]}, {"name": "G2", "members": ["a"]}],
        }
    )
    rows = [
        ("A", "Agenten", DASHBOARD_OPENED, 2),
        ("b", "Agenten", DASHBOARD_OPENED, 1),
        ("c", None, "SQL Lab query", 4),
    ]
    counts = per_group(rows, directory)
    assert counts == {
        ("G1", "Agenten", DASHBOARD_OPENED): 3,  # a (any case) and b
        ("G2", "Agenten", DASHBOARD_OPENED): 2,
        ("", "", "SQL Lab query"): 4,  # in no group
    }
    used = templates(access_blocks(RETENTION_DAYS, 9, counts)) | templates(access_blocks(1, None, None))
    used |= templates(list(KINDS.values()))
    assert used == set(ACCESS_RECORD_DE)


# ---- a real Superset --------------------------------------------------------------------------------
@dataclass
class AccessSite:
    site: Site
    url: str
    admin_password: str
    user_password: str
    leader: str = ""
    member: str = ""
    exported_chart: str = ""
    nights: list[datetime] = field(default_factory=list)

    @property
    def superset_db(self) -> Path:
        return self.site.settings.superset_home / "superset.db"

    def superset_rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        with sqlite3.connect(self.superset_db, timeout=30) as con:
            return con.execute(sql, params).fetchall()

    def night(self) -> None:
        from callsight.defs.nightly import run_nightly

        result = run_nightly(self.site.settings, log_level="WARNING")
        assert result.success, result.failure
        self.nights.append(datetime.now(UTC))

    def served(self, sql: str) -> list[tuple]:
        con = duckdb.connect(str(self.site.settings.served_db), read_only=True)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()

    def raw(self, sql: str) -> list[tuple]:
        con = duckdb.connect(str(self.site.settings.raw_db), read_only=True)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()


def directory_groups(s: AccessSite, user: str) -> list:
    directory = load_directory(s.site.settings.effective_directory_path)
    return [g for g in directory.groups if user in g.members]


def people(directory: Directory) -> tuple[str, str]:
    """A group leader, and a plain member of a group the leader is not in (both in one group only)."""
    groups_of = Counter(u for g in directory.groups for u in set(g.members) | set(g.leaders) | set(g.deputies))
    leader_group = next(g for g in directory.groups if g.leaders and groups_of[g.leaders[0]] == 1)
    leader = leader_group.leaders[0]
    member = next(
        m
        for g in directory.groups
        if leader not in g.members
        for m in g.members
        if m not in g.leaders + g.deputies and groups_of[m] == 1
    )
    return leader, member


@pytest.fixture(scope="module")
def access_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AccessSite]:
    """A published site with the access log's retention set to RETENTION_DAYS, and its Superset."""
    import os

    from callsight.bi.runtime import SupersetEnv, stop, wait_healthy
    from callsight.cli.commands import provision

    home = tmp_path_factory.mktemp("access") / "home"
    site = make_site(home, days=10, users=14, seed=23)
    settings = site.settings
    require_service((settings.superset_venv / "bin" / "superset").exists(), "the Superset virtual environment")
    policy_path = settings.effective_policy_path
    policy = yaml.safe_load(policy_path.read_text(encoding="utf-8"))
    policy_path.write_text(yaml.safe_dump({**policy, "access_log": {"retention_days": RETENTION_DAYS}}))
    assert load_policy(policy_path).access_log.retention_days == RETENTION_DAYS
    saved = dict(os.environ)
    os.environ["CALLSIGHT_HOME"] = str(home)
    admin_pw, user_pw = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    env = SupersetEnv(
        settings, secrets.token_urlsafe(32), extra_env=(("CALLSIGHT_AUTH_RATE_LIMIT", "1000 per second"),)
    )
    proc = None
    try:
        out = AccessSite(site, "", admin_pw, user_pw)
        out.night()  # the first night: Superset has no metadata DB yet, nothing to copy
        env.init_metadata(admin_pw)
        port = free_port()
        proc = env.start_web(port=port, workers=2, log_name="superset-access-log.log")
        out.url = f"http://127.0.0.1:{port}"
        wait_healthy(out.url, proc)
        provision(settings, out.url, admin_pw, user_pw)
        yield out
    finally:
        if proc is not None:
            stop(proc)
        os.environ.clear()
        os.environ.update(saved)


def export_first_chart_as_csv(driver) -> str:
    """Superset's own menu of the first chart on the page: Herunterladen -> Export nach .CSV."""
    from selenium.webdriver import ActionChains
    from selenium.webdriver.common.by import By

    holder = driver.find_elements(By.CSS_SELECTOR, "[data-test-chart-id]")[0]
    name = holder.get_attribute("data-test-chart-name")
    ActionChains(driver).move_to_element(holder).perform()
    trigger = holder.find_element(By.CSS_SELECTOR, "button[id^=slice_][id$=-controls]")
    driver.execute_script("arguments[0].click()", trigger)

    def item(text: str):
        found = [i for i in driver.find_elements(By.CSS_SELECTOR, "[role=menuitem]") if i.text.strip() == text]
        return found[0] if found else None

    ActionChains(driver).move_to_element(wait_for(lambda: item("Herunterladen"), 20, "the download menu")).perform()
    driver.execute_script("arguments[0].click()", wait_for(lambda: item("Export nach .CSV"), 20, "Export nach .CSV"))
    return name


@pytest.fixture(scope="module")
def browsed(access_site: AccessSite) -> AccessSite:
    """The leader opens LEADER_OPENS and exports one chart as CSV, the member opens MEMBER_OPENS; old
    events are planted on both sides of the retention; then a night copies and expires."""
    s = access_site
    require_service(Path("/usr/bin/chromium").exists(), "Debian chromium + chromium-driver (apt)")
    directory = load_directory(s.site.settings.effective_directory_path)
    s.leader, s.member = people(directory)
    assets = load_assets()
    before = s.superset_rows("SELECT coalesce(max(id), 0) FROM logs")[0][0]
    for user, opens in ((s.leader, LEADER_OPENS), (s.member, MEMBER_OPENS)):
        with chromium() as driver:
            login(driver, s.url, user, s.user_password)
            for slug, n in opens.items():
                for _ in range(n):
                    open_dashboard(driver, s.url, slug, len(charts_of(dashboards(assets)[slug])))
            if user == s.leader:
                s.exported_chart = export_first_chart_as_csv(driver)

            # The browser reports its events in batches: wait for all of them.
            want = (sum(opens.values()), int(user == s.leader))
            wait_for(partial(events_arrived, s, before, user, want), 30, f"{user}'s events in Superset's log")
    plant_old_events(s)
    plant_chart_data_rows(s)
    s.night()
    return s


def plant_chart_data_rows(s: AccessSite) -> None:
    """Rows of a chart-data request as Superset 6.1 writes them (callsight's action log leaves them out
    now; a site's older rows still hold them): the request with its filters, and the query."""
    form_data = {"time_range": "Last month", "filters": [{"col": "call_date", "op": "TEMPORAL_RANGE"}]}
    rows = [
        ("ChartDataRestApi.data", {"path": "/api/v1/chart/data", "form_data": form_data}),
        ("execute_sql", {"path": "/api/v1/chart/data", "sql": "SELECT count(*) FROM marts.dashboard_calls"}),
    ]
    with sqlite3.connect(s.superset_db, timeout=30) as con:
        (user_id,) = con.execute("SELECT id FROM ab_user WHERE username = ?", (s.leader,)).fetchone()
        con.executemany(
            "INSERT INTO logs (action, user_id, json, dttm) VALUES (?, ?, ?, ?)",
            [(a, user_id, json.dumps(j), datetime.now(UTC).replace(tzinfo=None)) for a, j in rows],
        )


def events_arrived(s: AccessSite, since: int, user: str, want: tuple[int, int]) -> bool:
    """`user` has `want` (dashboard opens, CSV exports) in Superset's log after log id `since`."""
    rows = s.superset_rows(
        "SELECT json FROM logs WHERE id > ? AND action = 'log' "
        "AND user_id = (SELECT id FROM ab_user WHERE username = ?)",
        (since, user),
    )
    names = Counter(json.loads(j).get("event_name") for (j,) in rows)
    return (names["mount_dashboard"], names["export_csv_dashboard_chart"]) == want


def plant_old_events(s: AccessSite) -> None:
    """A dashboard open just older than the retention and one just inside it, in Superset's log (copies
    of a real one, backdated), and an old one in callsight's copy as if copied long ago."""
    now = datetime.now(UTC).replace(tzinfo=None)
    (mount,) = s.superset_rows("SELECT max(id) FROM logs WHERE json LIKE '%mount_dashboard%'")[0]
    for days, marker in ((RETENTION_DAYS + 1, "old"), (RETENTION_DAYS - 1, "kept")):
        stamp = (now - timedelta(days=days)).strftime("%Y-%m-%d %H:%M:%S.%f")
        with sqlite3.connect(s.superset_db, timeout=30) as con:
            con.execute(
                "INSERT INTO logs (action, user_id, dashboard_id, slice_id, json, dttm, duration_ms, referrer) "
                "SELECT action, user_id, dashboard_id, slice_id, json, ?, duration_ms, ? FROM logs WHERE id = ?",
                (stamp, marker, mount),
            )
    con = duckdb.connect(str(s.site.settings.raw_db))
    try:
        con.execute(
            "INSERT INTO access_log VALUES (1, ?, ?, 'dashboard opened', NULL, 1, 'Agenten', 'agenten', NULL, NULL, ?)",
            [now - timedelta(days=RETENTION_DAYS + 5), s.leader, now],
        )
    finally:
        con.close()


@pytest.mark.superset
@pytest.mark.slow
def test_superset_keeps_no_row_of_the_chart_data_requests(browsed: AccessSite) -> None:
    """Each chart the browsers drew was a chart-data request; Superset logged three to six rows for each
    (the request with its filter values, timings) that nothing reads. Other requests are still logged."""
    chart_data = browsed.superset_rows(
        "SELECT action, count(*) FROM logs WHERE action LIKE 'ChartDataRestApi.%' OR action = '_get_data_response' "
        """OR json LIKE '%"path": "/api/v1/chart/data%' GROUP BY action"""
    )
    assert sorted(chart_data) == [("ChartDataRestApi.data", 1), ("execute_sql", 1)], "only the two planted rows"
    actions = {a for (a,) in browsed.superset_rows("SELECT DISTINCT action FROM logs")}
    assert {"log", "DashboardRestApi.get"} <= actions, actions


@pytest.mark.superset
@pytest.mark.slow
def test_the_access_view_counts_the_browsers_opens_and_the_export(browsed: AccessSite) -> None:
    s = browsed
    directory = load_directory(s.site.settings.effective_directory_path)
    opens = s.served(
        "SELECT viewer_username, dashboard_slug, count(DISTINCT access_id) FROM marts.access_log "
        "WHERE access_kind = 'dashboard opened' GROUP BY ALL"
    )
    expected = {(s.leader, slug): n for slug, n in LEADER_OPENS.items()}
    expected |= {(s.member, slug): n for slug, n in MEMBER_OPENS.items()}
    expected[(s.member, "kunden")] += 1  # the open planted just inside the retention copies the member's last
    assert {(u, d): n for u, d, n in opens} == expected
    groups = {u: [g.name for g in directory.groups if u in g.members] for u in (s.leader, s.member)}
    per_group = s.served(
        "SELECT viewer_username, group_name, viewer_role, count(DISTINCT access_id) FROM marts.access_log "
        "WHERE access_kind = 'dashboard opened' GROUP BY ALL ORDER BY ALL"
    )
    assert {(u, g) for u, g, _, _ in per_group} == {(u, g) for u in groups for g in groups[u]}
    assert {u: r for u, _, r, _ in per_group} == {s.leader: "leader", s.member: "member"}
    exports = s.served(
        "SELECT viewer_username, access_kind, export_format, dashboard_slug, chart_name FROM marts.access_log "
        "WHERE access_kind <> 'dashboard opened'"
    )
    assert exports == [(s.leader, "chart exported", "csv", "management-summary", s.exported_chart)]
    minutes = s.served("SELECT DISTINCT second(accessed_at_utc) FROM marts.access_log")
    assert minutes == [(0,)], "to the minute"


@pytest.mark.superset
@pytest.mark.slow
def test_nothing_older_than_the_retention_is_kept_here_or_in_superset(browsed: AccessSite) -> None:
    s = browsed
    start = (s.nights[-1] - timedelta(days=RETENTION_DAYS)).replace(tzinfo=None)
    assert s.superset_rows("SELECT count(*) FROM logs WHERE dttm < ?", (start.strftime("%Y-%m-%d %H:%M:%S"),)) == [(0,)]
    assert s.superset_rows("SELECT referrer FROM logs WHERE referrer IN ('old', 'kept')") == [("kept",)]
    assert s.raw(f"SELECT count(*) FROM access_log WHERE accessed_at < '{start}'") == [(0,)]
    assert s.raw("SELECT count(*) FROM access_log WHERE log_id = 1") == [(0,)], "the old copied event is gone"
    oldest = s.served("SELECT min(accessed_at_utc) FROM marts.access_log")[0][0]
    assert start <= oldest < start + timedelta(days=2), "the open planted just inside the retention is kept"
    copies = s.raw(
        "SELECT copied_rows, expired_rows, superset_expired_rows FROM access_log_copies ORDER BY finished_at"
    )
    opens = sum(LEADER_OPENS.values()) + sum(MEMBER_OPENS.values())
    assert copies[-1] == (opens + 1 + 1, 1, 1), "opens, the kept one, the export; one expired on each side"


@pytest.mark.superset
@pytest.mark.slow
def test_a_second_night_copies_nothing_twice(browsed: AccessSite) -> None:
    s = browsed
    before = s.raw("SELECT count(*), max(log_id) FROM access_log")
    s.night()
    assert s.raw("SELECT count(*), max(log_id) FROM access_log") == before
    assert s.raw("SELECT copied_rows FROM access_log_copies ORDER BY finished_at DESC LIMIT 1") == [(0,)]
    duplicates = s.raw("SELECT log_id FROM access_log GROUP BY log_id HAVING count(*) > 1")
    assert duplicates == []


@pytest.mark.superset
@pytest.mark.slow
def test_only_admins_read_the_access_view(browsed: AccessSite) -> None:
    s = browsed
    admin = SupersetClient(s.url).login("admin", s.admin_password)
    (ds,) = list(admin.list_all("dataset", [("table_name", "eq", "access_log")]))
    data = admin.chart_data(
        {
            "datasource": {"id": ds["id"], "type": "table"},
            "force": True,
            "queries": [{"metrics": ["zugriffe"], "columns": ["access_kind"], "filters": []}],
            "result_format": "json",
            "result_type": "full",
        }
    )
    served = dict(s.served("SELECT access_kind, count(DISTINCT access_id) FROM marts.access_log GROUP BY 1"))
    assert {r["access_kind"]: r["zugriffe"] for r in data["result"][0]["data"]} == served
    # The chart Zugriffe as an admin sees it on the Betrieb dashboard, in a real browser.
    betrieb = dashboards(load_assets(), admin=True)["betrieb"]
    with chromium() as driver:
        login(driver, s.url, "admin", s.admin_password)
        rendered = {c.name: c.text for c in open_dashboard(driver, s.url, "betrieb", len(charts_of(betrieb)))}
    # The dashboard's Zeitraum filter starts as "Last month", which ends before today: of this module's
    # events it shows the open planted a few weeks back, with its group and role.
    (group,) = directory_groups(s, s.member)
    assert f"{group.name} {s.member} member dashboard opened N/A Kunden N/A\n1" in rendered["Zugriffe"]
    assert s.leader not in rendered["Zugriffe"]
    analyst = load_directory(s.site.settings.effective_directory_path).analysts[0]
    for user in (s.leader, s.member, analyst):
        client = SupersetClient(s.url).login(user, s.user_password)
        assert "access_log" not in {d["table_name"] for d in client.list_all("dataset")}, user
        with pytest.raises(SupersetAPIError) as err:
            client.chart_data(
                {
                    "datasource": {"id": ds["id"], "type": "table"},
                    "queries": [{"metrics": ["zugriffe"], "columns": ["viewer_username"]}],
                    "result_format": "json",
                    "result_type": "full",
                }
            )
        assert err.value.status in (403, 404), user


@pytest.mark.superset
@pytest.mark.slow
def test_the_processing_record_summarises_the_access_log_in_both_languages(browsed: AccessSite, tmp_path: Path) -> None:
    s = browsed
    directory = load_directory(s.site.settings.effective_directory_path)
    (member_group,) = [g.name for g in directory.groups if s.member in g.members]
    de = write_report(s.site.settings, "md", tmp_path / "de.md", lang="de").read_text(encoding="utf-8")
    en = write_report(s.site.settings, "md", tmp_path / "en.md", lang="en").read_text(encoding="utf-8")
    section_de = de.split("## Wer hat was angesehen (Zugriffsprotokoll)")[1].split("\n## ")[0]
    section_en = en.split("## Who looked at what (access log)")[1].split("\n## ")[0]
    assert f"Aufbewahrung: {RETENTION_DAYS} Tage" in section_de and f"Retention: {RETENTION_DAYS} days" in section_en
    kunden = MEMBER_OPENS["kunden"] + 1  # and the one planted just inside the retention
    assert f"| {member_group} | Kunden | Dashboard geöffnet | {kunden} |" in section_de
    assert f"| {member_group} | Kunden | dashboard opened | {kunden} |" in section_en
    assert "| Diagramm exportiert | 1 |" in section_de and "| chart exported | 1 |" in section_en
    for person in (s.leader, s.member):
        assert person not in section_de and person not in section_en, "counts only, no names"


@pytest.mark.superset
@pytest.mark.slow
def test_the_copy_holds_no_call_data_query_text_or_filter_values(browsed: AccessSite, tmp_path: Path) -> None:
    s = browsed
    logged = " ".join(j for (j,) in s.superset_rows("SELECT json FROM logs WHERE json IS NOT NULL"))
    needles = ["TEMPORAL_RANGE", "Last month", "form_data", "SELECT"]
    assert all(n in logged for n in needles[:3]), "Superset's log holds filters and queries: the test can fail"
    journal = sqlite3.connect(s.site.home / "demo" / "journal.sqlite")
    try:
        needles += [
            str(v)
            for (v,) in journal.execute(
                "SELECT DISTINCT PhoneNumber FROM journal WHERE length(PhoneNumber) > 6 LIMIT 50"
            ).fetchall()
        ]
        needles += [v for (v,) in journal.execute("SELECT DISTINCT ContactName FROM journal WHERE ContactName <> ''")]
    finally:
        journal.close()
    copy = tmp_path / "scan" / "access.duckdb"
    copy.parent.mkdir()
    con = duckdb.connect(str(copy))
    try:
        con.execute(f"ATTACH '{s.site.settings.raw_db}' AS raw (READ_ONLY)")
        con.execute(f"ATTACH '{s.site.settings.served_db}' AS served (READ_ONLY)")
        con.execute("CREATE TABLE copied AS SELECT * FROM raw.access_log")
        con.execute("CREATE TABLE published AS SELECT * FROM served.marts.access_log")
        assert con.execute("SELECT count(*) FROM copied").fetchone()[0] > 0
    finally:
        con.close()
    assert scan(copy.parent, needles) == []
    columns = {
        c for (c,) in s.served("SELECT column_name FROM information_schema.columns WHERE table_name = 'access_log'")
    }
    assert not columns & {"json", "detail_json", "sql", "query", "filters"}


# ---- a PostgreSQL metadata DB (Superset's production profile) ---------------------------------------
@pytest.mark.postgres
@pytest.mark.superset
@pytest.mark.slow
def test_the_copy_reads_and_expires_a_postgresql_metadata_db(tmp_path: Path) -> None:
    """Superset's own schema (`superset db upgrade`) on PostgreSQL, with log rows as Superset 6.1 writes them."""
    from callsight.bi.access_log import copy_access_log
    from callsight.bi.runtime import SupersetEnv
    from callsight.site.settings import Settings

    from .conftest import reachable

    require_service(reachable(("127.0.0.1", 5432)), "PostgreSQL on 127.0.0.1:5432")
    import psycopg

    db = f"callsight_access_{secrets.token_hex(4)}"
    admin_url = "postgresql://postgres@127.0.0.1:5432/postgres"
    with psycopg.connect(admin_url, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{db}"')
    try:
        uri = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{db}"
        (tmp_path / "home").mkdir()
        settings = Settings.from_env({"CALLSIGHT_HOME": str(tmp_path / "home"), "SUPERSET_DATABASE_URI": uri})
        require_service((settings.superset_venv / "bin" / "superset").exists(), "the Superset virtual environment")
        SupersetEnv(settings, secrets.token_urlsafe(32), extra_env=(("SUPERSET_DATABASE_URI", uri),)).cli(
            "db", "upgrade"
        )
        now = datetime.now(UTC).replace(tzinfo=None)
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{db}") as con:
            user, dash, chart = 7, 5, 9
            con.execute(
                "INSERT INTO ab_user (id, first_name, last_name, username, email, active) "
                "VALUES (%s, 'Anna', 'Schmidt', 'anna.schmidt', 'anna@example.org', true)",
                (user,),
            )
            con.execute("INSERT INTO dashboards (id, dashboard_title, slug) VALUES (%s, 'Agenten', 'agenten')", (dash,))
            con.execute("INSERT INTO slices (id, slice_name) VALUES (%s, 'Telefonate je Agent')", (chart,))
            logged = [
                ("log", {"event_name": "mount_dashboard", "dashboard_id": dash}, dash, None, now),
                ("log", {"event_name": "export_csv_dashboard_chart", "slice_id": chart}, dash, chart, now),
                ("log", {"event_name": "load_chart", "applied_filters": ["Vertrieb"]}, dash, chart, now),
                ("SqlLabRestApi.get_results", {"path": "/api/v1/sqllab/execute/", "sql": "SELECT 1"}, None, None, now),
                ("log", {"event_name": "mount_dashboard"}, dash, None, now - timedelta(days=RETENTION_DAYS + 10)),
            ]
            for log_id, (action, record, dashboard_id, slice_id, dttm) in enumerate(logged, 1):
                con.execute(
                    "INSERT INTO logs (id, action, user_id, dashboard_id, slice_id, json, dttm) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    (log_id, action, user, dashboard_id, slice_id, json.dumps(record), dttm),
                )
        copy = copy_access_log(settings, RETENTION_DAYS)
        assert (copy.copied, copy.expired, copy.superset_expired) == (3, 0, 1)
        raw = duckdb.connect(str(settings.raw_db), read_only=True)
        try:
            rows = raw.execute(
                "SELECT username, access_kind, export_format, dashboard_slug, chart_name FROM access_log "
                "ORDER BY log_id"
            ).fetchall()
        finally:
            raw.close()
        assert rows == [
            ("anna.schmidt", "dashboard opened", None, "agenten", None),
            ("anna.schmidt", "chart exported", "csv", "agenten", "Telefonate je Agent"),
            ("anna.schmidt", "SQL Lab query", None, None, None),
        ]
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{db}") as con:
            assert con.execute(
                "SELECT count(*) FROM logs WHERE dttm < %s", (retention_start(datetime.now(UTC), 30),)
            ).fetchone() == (0,)
            assert con.execute("SELECT count(*) FROM logs").fetchone() == (4,)
        assert copy_access_log(settings, RETENTION_DAYS).copied == 0, "idempotent"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
