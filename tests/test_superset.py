"""A real Superset server over HTTP: login, chart data per viewer, row-level security, unauthenticated."""

from __future__ import annotations

import http.client
import json
import shutil
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import duckdb
import pytest
import requests
import yaml

from callsight.bi.api import SupersetAPIError, SupersetClient
from callsight.bi.assets import load_assets
from callsight.publish.builds import publish
from callsight.site.directory import load_directory

from .conftest import SupersetServer, facts_as_tables

pytestmark = pytest.mark.superset


# mart -> (the dataset viewers read it through, metric counting its rows)
FACTS = {
    "fct_calls": ("dashboard_calls", "count"),
    "fct_inbound_calls": ("dashboard_inbound_calls", "anrufe"),
    "fct_callbacks": ("dashboard_callbacks", "verpasst_extern"),
}


def expected_counts(server: SupersetServer, viewer: str | None, table: str = "fct_calls") -> dict[str, int]:
    """Independent of Superset and of the viewer_agents model: derived from the directory YAML."""
    directory = load_directory(server.site.settings.effective_directory_path)
    con = duckdb.connect(str(server.site.settings.served_db), read_only=True)
    try:
        rows = dict(con.execute(f"SELECT agent_username, count(*) FROM marts.{table} GROUP BY 1").fetchall())
    finally:
        con.close()
    if viewer is None or viewer in directory.analysts or viewer in directory.admins:
        return rows
    visible = {viewer}
    for g in directory.groups:
        everyone = set(g.members) | set(g.leaders) | set(g.deputies)
        if viewer not in everyone:
            continue
        if g.journal_visible_to_group or (g.journal_visible_to_leader and viewer in g.leaders + g.deputies):
            visible |= everyone
    return {a: n for a, n in rows.items() if a in visible}


def chart_counts(client: SupersetClient, mart: str = "fct_calls") -> dict[str, int]:
    return chart_answer(client, mart)[0]


def chart_answer(client: SupersetClient, mart: str = "fct_calls", force: bool = True) -> tuple[dict[str, int], bool]:
    """Rows per agent as a chart of the mart shows them, and whether Superset answered from its cache."""
    table, metric = FACTS[mart]
    (ds,) = list(client.list_all("dataset", [("table_name", "eq", table)]))
    assert ds["table_name"] == table
    data = client.chart_data(
        {
            "datasource": {"id": ds["id"], "type": "table"},
            "force": force,
            "queries": [{"metrics": [metric], "columns": ["agent_username"], "filters": [], "row_limit": 10000}],
            "result_format": "json",
            "result_type": "full",
        }
    )
    (result,) = data["result"]
    return {r["agent_username"]: r[metric] for r in result["data"]}, bool(result["is_cached"])


def test_every_directory_user_sees_exactly_what_the_directory_allows(superset_server: SupersetServer) -> None:
    directory = load_directory(superset_server.site.settings.effective_directory_path)
    # the org exercises every case: all option combinations, a deputy, a user in two groups, a leader who
    # is a plain member elsewhere, and an agent in no group
    combos = {(g.journal_visible_to_group, g.journal_visible_to_leader) for g in directory.groups}
    assert len(directory.groups) >= 3 and len(combos) == 4 and all(g.deputies for g in directory.groups)
    member_of: dict[str, int] = {}
    for g in directory.groups:
        for u in set(g.members + g.leaders + g.deputies):
            member_of[u] = member_of.get(u, 0) + 1
    assert max(member_of.values()) >= 2
    assert any(
        g.leaders[0] in o.members and g.leaders[0] not in o.leaders
        for g in directory.groups
        for o in directory.groups
        if o is not g
    )
    assert [u for u in directory.usernames if u not in member_of and u not in directory.analysts + directory.admins]
    checked = 0
    for user in directory.users:
        client = SupersetClient(superset_server.url).login(user.username, superset_server.user_password)
        for table in FACTS:
            got, want = chart_counts(client, table), expected_counts(superset_server, user.username, table)
            assert got == want, (user.username, table)
        checked += 1
    assert checked == len(directory.users)
    # the check has teeth: a leader sees more than their own calls, a plain member only their own
    leader = next(
        g.leaders[0] for g in directory.groups if g.journal_visible_to_leader and not g.journal_visible_to_group
    )
    assert len(expected_counts(superset_server, leader)) > 1


def test_cached_charts_are_each_viewers_own_and_end_with_the_published_warehouse(
    superset_server: SupersetServer, tmp_path: Path
) -> None:
    """Charts asked as the dashboards ask (no `force`: Superset may answer from its data cache): a
    viewer never gets a result cached for another, and once a publish has replaced the warehouse (here:
    one agent's calls gone, as after an erasure) nobody gets a result of the replaced one."""
    s = superset_server
    served = s.site.settings.served_db
    directory = load_directory(s.site.settings.effective_directory_path)
    leader = next(
        g.leaders[0] for g in directory.groups if g.journal_visible_to_leader and not g.journal_visible_to_group
    )
    member = next(u for u in directory.usernames if list(expected_counts(s, u)) == [u])
    clients = {u: SupersetClient(s.url).login(u, s.user_password) for u in (leader, member)}
    clients["admin"] = SupersetClient(s.url).login("admin", s.admin_password)

    def check_everyone(rounds: int = 3) -> list[bool]:
        cached = []
        for _ in range(rounds):
            for who, client in clients.items():
                counts, from_cache = chart_answer(client, force=False)
                assert counts == expected_counts(s, None if who == "admin" else who), (who, from_cache)
                cached.append(from_cache)
        return cached

    assert any(check_everyone()), "the data cache answers (one connection stays with one gunicorn worker)"
    gone = sorted(set(expected_counts(s, leader)) - {leader})[0]
    original = shutil.copy2(served, tmp_path / "original.duckdb")
    changed = shutil.copy2(served, tmp_path / "changed.duckdb")
    con = duckdb.connect(str(changed))
    facts_as_tables(con)
    con.execute("DELETE FROM marts.fct_calls WHERE agent_username = ?", [gone])
    con.close()
    try:
        publish(Path(changed), served, keep=0)
        assert gone not in expected_counts(s, leader) and gone not in expected_counts(s, None)
        assert any(check_everyone()), "cached again, for the new warehouse"
    finally:
        publish(Path(original), served, keep=0)
    assert gone in chart_answer(clients["admin"], force=False)[0]


def test_the_management_summary_dashboard_is_imported(superset_server: SupersetServer) -> None:
    admin = SupersetClient(superset_server.url).login("admin", superset_server.admin_password)
    dash = admin.get("/api/v1/dashboard/management-summary")["result"]
    assert dash["dashboard_title"] == "Management Summary"
    charts = admin.get("/api/v1/dashboard/management-summary/charts")["result"]
    assert {c["slice_name"] for c in charts} >= {"Anrufe", "Service Level", "Verpasste Anrufe"}
    db = next(iter(admin.list_all("database", [("database_name", "eq", "callsight")])))
    detail = admin.get(f"/api/v1/database/{db['id']}/connection")["result"]
    args = json.loads(detail["extra"])["engine_params"]["connect_args"]
    assert args == {"read_only": True, "config": {"enable_external_access": False}}
    assert detail["sqlalchemy_uri"] == f"duckdb:///{superset_server.site.settings.served_db}"


def test_unauthenticated_and_wrong_password_are_refused(superset_server: SupersetServer) -> None:
    r = requests.post(f"{superset_server.url}/api/v1/chart/data", json={}, timeout=30)
    assert r.status_code == 401
    r = requests.get(f"{superset_server.url}/api/v1/dataset/", timeout=30)
    assert r.status_code == 401
    with pytest.raises(SupersetAPIError) as err:
        SupersetClient(superset_server.url).login("admin", "wrong-password")
    assert err.value.status == 401


def test_viewers_have_no_sql_lab_and_no_raw_tables(superset_server: SupersetServer) -> None:
    directory = load_directory(superset_server.site.settings.effective_directory_path)
    member = directory.groups[0].members[-1]
    client = SupersetClient(superset_server.url).login(member, superset_server.user_password)
    with pytest.raises(SupersetAPIError) as err:
        client.post("/api/v1/sqllab/execute/", {"database_id": 1, "sql": "SELECT 1", "runAsync": False})
    assert err.value.status in (401, 403)
    datasets = {(d["schema"], d["table_name"]) for d in client.list_all("dataset")}
    shipped = {
        (c["schema"], c["table_name"])
        for n, c in load_assets().items()
        if n.startswith("datasets/") and not c.get("admin_only") and c["schema"] == "marts"
    }
    assert {t for t, _ in FACTS.values()} <= {t for _, t in datasets}
    assert datasets == shipped, "viewers see the dashboard datasets and nothing else"
    assert {schema for schema, _ in datasets} == {"marts"}, "no raw, staging, security or analyst tables"
    assert not {t for _, t in datasets} & set(FACTS), "the marts with real usernames are for admins"


def test_csv_export_carries_only_permitted_rows(superset_server: SupersetServer) -> None:
    directory = load_directory(superset_server.site.settings.effective_directory_path)
    for user in directory.users:
        client = SupersetClient(superset_server.url).login(user.username, superset_server.user_password)
        (ds,) = list(client.list_all("dataset", [("table_name", "eq", "dashboard_calls")]))
        r = client.session.post(
            f"{superset_server.url}/api/v1/chart/data",
            json={
                "datasource": {"id": ds["id"], "type": "table"},
                "force": True,
                "queries": [
                    {
                        "columns": ["call_id", "agent_username"],
                        "metrics": [],
                        "row_limit": 100000,
                        "orderby": [["call_id", True]],
                    }
                ],
                "result_format": "csv",
                "result_type": "full",
            },
            timeout=120,
        )
        assert r.status_code == 200, r.text[:300]
        lines = r.content.decode("utf-8-sig").strip().splitlines()
        agents = {line.rsplit(",", 1)[1] for line in lines[1:]}
        want = expected_counts(superset_server, user.username)
        assert len(lines) - 1 == sum(want.values()) and agents == set(want), user.username


def sql_lab(client: SupersetClient, database_id: int, sql: str) -> dict:
    return client.post(
        "/api/v1/sqllab/execute/",
        {
            "database_id": database_id,
            "sql": sql,
            "schema": "marts",
            "runAsync": False,
            "client_id": uuid.uuid4().hex[:10],
            "queryLimit": 1000,
        },
        ok=(200, 202, 400, 403, 422, 500),
    )


def test_sql_lab_for_analysts_analyst_schema_only_no_files(superset_server: SupersetServer) -> None:
    directory = load_directory(superset_server.site.settings.effective_directory_path)
    analyst = SupersetClient(superset_server.url).login(directory.analysts[0], superset_server.user_password)
    (db,) = [d for d in analyst.list_all("database") if d["database_name"] == "callsight"]
    ok = sql_lab(analyst, db["id"], "SELECT count(*) AS n FROM analyst.calls")
    total = sum(expected_counts(superset_server, None).values())
    assert ok.get("data") == [{"n": total}], ok
    for forbidden in (
        "SELECT agent_username FROM marts.fct_calls",
        "SELECT * FROM security.viewer_agents",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/hostname')",
        f"ATTACH '{superset_server.site.settings.raw_db}' AS r",
    ):
        result = sql_lab(analyst, db["id"], forbidden)
        assert not result.get("data"), (forbidden, result)
        assert result.get("errors") or result.get("message") or result.get("status") == "failed", result


def test_a_superset_user_outside_the_directory_sees_nothing(superset_server: SupersetServer) -> None:
    admin = SupersetClient(superset_server.url).login("admin", superset_server.admin_password)
    roles = {r["name"]: r["id"] for r in admin.list_all("security/roles")}
    name = f"outsider{uuid.uuid4().hex[:6]}"
    admin.post(
        "/api/v1/security/users/",
        {
            "first_name": "Out",
            "last_name": "Sider",
            "username": name,
            "email": f"{name}@example.org",
            "active": True,
            "roles": [roles["Gamma"]],
            "password": "outsider-pw-123",
        },
    )
    outsider = SupersetClient(superset_server.url).login(name, "outsider-pw-123")
    assert list(outsider.list_all("dataset")) == []
    (ds,) = list(admin.list_all("dataset", [("table_name", "eq", "fct_calls")]))
    with pytest.raises(SupersetAPIError) as err:
        outsider.chart_data(
            {
                "datasource": {"id": ds["id"], "type": "table"},
                "queries": [{"metrics": ["count"], "columns": []}],
                "result_format": "json",
                "result_type": "full",
            }
        )
    assert err.value.status in (403, 404)


def test_removed_and_foreign_callsight_users_are_deactivated_by_the_next_nightly_run(
    superset_server: SupersetServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from callsight.cli.commands import provision
    from callsight.defs.nightly import run_nightly

    settings = superset_server.site.settings
    path = settings.effective_directory_path
    original = path.read_text(encoding="utf-8")
    directory = load_directory(path)
    leaver = next(g.members[-1] for g in directory.groups if g.members[-1] not in g.leaders + g.deputies)
    admin = SupersetClient(superset_server.url).login("admin", superset_server.admin_password)
    roles = {r["name"]: r["id"] for r in admin.list_all("security/roles")}
    stranger = f"stranger{uuid.uuid4().hex[:6]}"
    admin.post(
        "/api/v1/security/users/",
        {
            "first_name": "S",
            "last_name": "T",
            "username": stranger,
            "email": f"{stranger}@example.org",
            "active": True,
            "roles": [roles["callsight_viewer"]],
            "password": "stranger-pw-123",
        },
    )
    SupersetClient(superset_server.url).login(leaver, superset_server.user_password)
    data = yaml.safe_load(original)
    data["users"] = [u for u in data["users"] if u["username"] != leaver]
    for g in data["groups"]:
        for role in ("leaders", "deputies", "members"):
            g[role] = [u for u in g[role] if u != leaver]
    try:
        path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        monkeypatch.setenv("CALLSIGHT_HOME", str(settings.home))
        monkeypatch.setenv("CALLSIGHT_SUPERSET_URL", superset_server.url)
        monkeypatch.setenv("SUPERSET_ADMIN_PASSWORD", superset_server.admin_password)
        monkeypatch.setenv("CALLSIGHT_DEMO_PASSWORD", superset_server.user_password)
        night = run_nightly(settings.__class__.from_env())
        assert night.success, night.failure
        for user, pw in ((leaver, superset_server.user_password), (stranger, "stranger-pw-123")):
            with pytest.raises(SupersetAPIError) as err:
                SupersetClient(superset_server.url).login(user, pw)
            assert err.value.status == 401, user
        # The audit log records both deactivations, and the leaver's group changes nobody else's account.
        changes = provisioning_entries(settings)
        assert changes[f"user:{leaver}"]["change"] == "deactivated"
        assert changes[f"user:{stranger}"]["change"] == "deactivated"
    finally:
        # put the directory back and rebuild: later tests expect the original warehouse mapping
        path.write_text(original, encoding="utf-8")
        assert run_nightly(settings.__class__.from_env()).success
        provision(settings, superset_server.url, superset_server.admin_password, superset_server.user_password)
    SupersetClient(superset_server.url).login(leaver, superset_server.user_password)  # back in, back active
    assert provisioning_entries(settings)[f"user:{leaver}"] == {"change": "updated", "reactivated": 1}
    # Provisioning again changes nothing and records nothing.
    before = len(provisioning_entries(settings, latest_only=False))
    provision(settings, superset_server.url, superset_server.admin_password, superset_server.user_password)
    assert len(provisioning_entries(settings, latest_only=False)) == before


def provisioning_entries(settings, latest_only: bool = True) -> dict:
    """subject -> detail of the provisioning entries in the site's audit log (the latest per subject), or
    all entries in order when latest_only is False. The hash chain must hold."""
    from callsight.privacy.audit import read_entries, verify_chain

    con = duckdb.connect(str(settings.raw_db), read_only=True)
    try:
        entries = read_entries(con)
    finally:
        con.close()
    assert verify_chain(entries) == []
    mine = [e for e in entries if e.kind == "provisioning"]
    if not latest_only:
        return {i: e for i, e in enumerate(mine)}
    return {e.subject: json.loads(e.detail) for e in mine}


def test_the_demo_readiness_check_reads_the_leaders_calls(superset_server: SupersetServer) -> None:
    from callsight.cli.commands import check_ready
    from callsight.cli.demo import demo_logins

    leader, password, role = demo_logins(superset_server.site.settings, superset_server.user_password)[0]
    assert role.startswith("leader of")
    want = sum(expected_counts(superset_server, leader, "fct_inbound_calls").values())
    assert check_ready(superset_server.url, leader, password) == want > 0


def test_an_idle_keep_alive_connection_is_still_open_after_gunicorns_default(superset_server: SupersetServer) -> None:
    """gunicorn's gthread worker closes a keep-alive connection idle for --keep-alive seconds (default
    2) with a plain close; a request sent at that moment is reset, and browsers' API clients do not
    resend a POST (seen in the benchmark's load test). Served with a longer keep-alive, a connection
    idle for 4 s takes the next request."""
    parts = urlsplit(superset_server.url)
    con = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        con.request("GET", "/health")
        first = con.getresponse()
        assert first.status == 200 and first.read() == b"OK"
        assert con.sock is not None
        local = con.sock.getsockname()
        time.sleep(4)
        con.request("GET", "/health")  # on the same socket: http.client does not reconnect by itself
        again = con.getresponse()
        assert again.status == 200 and again.read() == b"OK"
        assert con.sock is not None and con.sock.getsockname() == local
    finally:
        con.close()


def _holding(path: Path) -> set[int]:
    """The processes with `path` open."""
    held = set()
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            if any(fd.resolve() == path for fd in fd_dir.iterdir()):
                held.add(int(fd_dir.parent.name))
        except OSError:  # gone, or not ours
            continue
    return held


def test_the_web_workers_keep_their_sqlite_metadata_connections_between_requests(
    superset_server: SupersetServer,
) -> None:
    """Superset on SQLAlchemy 1.4 opened a new SQLite connection for each of a request's checkouts (four
    per chart request) and closed it again; superset_config.py pools them."""
    settings = superset_server.site.settings
    metadata = (settings.superset_home / "superset.db").resolve()
    admin = SupersetClient(superset_server.url).login(settings.superset_admin_username, superset_server.admin_password)
    for _ in range(6):  # both workers, whichever takes them
        admin.get("/api/v1/chart/?q=(page_size:1)")
    time.sleep(0.5)  # every request has ended
    gunicorn = {p for p in _holding(metadata) if b"gunicorn" in Path(f"/proc/{p}/cmdline").read_bytes()}
    assert gunicorn, f"no gunicorn worker holds {metadata} open between requests"
