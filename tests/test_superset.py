"""A real Superset server over HTTP: login, chart data per viewer, row-level security, unauthenticated."""

from __future__ import annotations

import json

import duckdb
import pytest
import requests

from callsight.config import load_directory
from callsight.superset_api import SupersetAPIError, SupersetClient

from .conftest import SupersetServer

pytestmark = pytest.mark.superset


FACTS = {"fct_calls": "count", "fct_inbound_calls": "anrufe", "fct_callbacks": "verpasst_extern"}


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


def chart_counts(client: SupersetClient, table: str = "fct_calls") -> dict[str, int]:
    ds = next(iter(client.list_all("dataset", [("table_name", "eq", table)])))
    metric = FACTS[table]
    data = client.chart_data(
        {
            "datasource": {"id": ds["id"], "type": "table"},
            "force": True,
            "queries": [{"metrics": ["count"], "columns": ["agent_username"], "filters": [], "row_limit": 10000}],
            "result_format": "json",
            "result_type": "full",
        }
    )
    return {r["agent_username"]: r[metric] for r in data["result"][0]["data"]}


def test_every_directory_user_sees_exactly_what_the_directory_allows(superset_server: SupersetServer) -> None:
    directory = load_directory(superset_server.site.settings.effective_directory_path)
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
    datasets = {d["table_name"] for d in client.list_all("dataset")}
    assert datasets == set(FACTS)
