"""An attacker's suite against a real Superset (issue 25): a plain member, a leader and an analyst try to
read calls, numbers, the visibility mapping and the audit log through every custom-SQL field of the
chart-data API (JSON and CSV) and the legacy explore endpoint. Every attempt must be refused, or answer
nothing beyond what that person may see - judged against what the test derives itself from the org
directory and the warehouse. The same attempts run against a server with only layer 1 (fragments) and
one with only layer 2 (the final query's shape): each layer holds alone."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import duckdb
import pytest
import requests

from callsight.bi.api import SupersetClient
from callsight.bi.security_events import import_security_events
from callsight.journal.raw_store import connect_raw_store
from callsight.privacy.audit import read_entries
from callsight.site.directory import load_directory

from .conftest import SupersetServer
from .test_superset import expected_counts

pytestmark = pytest.mark.superset

UNION = "count(*) FROM marts.fct_calls UNION ALL SELECT count(*)"  # the request of issue 25, as sent


@dataclass(frozen=True)
class Attack:
    name: str
    build: Callable[[str], dict[str, Any]]  # expression -> one query of the chart-data API
    expression: str


def metric(expr: str) -> dict[str, Any]:
    return {"metrics": [{"expressionType": "SQL", "label": "x", "sqlExpression": expr}], "row_limit": 100000}


def column(expr: str) -> dict[str, Any]:
    return {
        "metrics": ["count"],
        "columns": [{"label": "x", "sqlExpression": expr, "expressionType": "SQL"}],
        "row_limit": 100000,
    }


def x_axis(expr: str) -> dict[str, Any]:
    col = {"label": "x", "sqlExpression": expr, "expressionType": "SQL", "columnType": "BASE_AXIS"}
    return {"metrics": ["count"], "columns": [col], "row_limit": 100000}


def groupby_text(expr: str) -> dict[str, Any]:
    return {"metrics": ["count"], "columns": [expr], "row_limit": 100000}


def orderby(expr: str) -> dict[str, Any]:
    order = [{"expressionType": "SQL", "label": "o", "sqlExpression": expr}, False]
    return {"metrics": ["count"], "columns": ["call_date"], "orderby": [order], "row_limit": 100000}


def where(expr: str) -> dict[str, Any]:
    return {"metrics": ["count"], "columns": [], "extras": {"where": expr}, "row_limit": 100000}


def having(expr: str) -> dict[str, Any]:
    return {"metrics": ["count"], "columns": ["call_date"], "extras": {"having": expr}, "row_limit": 100000}


def adhoc_filter(expr: str) -> dict[str, Any]:
    col = {"label": "f", "sqlExpression": expr, "expressionType": "SQL"}
    return {"metrics": ["count"], "filters": [{"col": col, "op": "IS NOT NULL"}], "row_limit": 100000}


def series_limit(expr: str) -> dict[str, Any]:
    return {
        "metrics": ["count"],
        "columns": ["call_date", "direction"],
        "series_columns": ["direction"],
        "series_limit": 1,
        "series_limit_metric": {"expressionType": "SQL", "label": "s", "sqlExpression": expr},
        "row_limit": 100000,
    }


def time_grain(expr: str) -> dict[str, Any]:
    col = {"label": "x", "sqlExpression": "start_time_local", "columnType": "BASE_AXIS", "timeGrain": expr}
    return {"metrics": ["count"], "columns": [col], "extras": {"time_grain_sqla": expr}, "row_limit": 100000}


def group_filter(value: str) -> dict[str, Any]:
    """A value of the dashboards' group filter, which the dataset's own SQL renders (Jinja, where_in)."""
    return {"metrics": ["count"], "filters": [{"col": "group_name", "op": "IN", "val": [value]}], "row_limit": 10}


LEAK = "string_agg(phone_number || '|' || agent_username, ',') FROM marts.fct_calls"
ATTACKS = [
    Attack("issue 25 request", metric, UNION),
    Attack("union distinct", metric, "count(*) FROM marts.fct_calls UNION SELECT count(*)"),
    Attack("except", metric, "count(*) FROM marts.fct_calls EXCEPT SELECT -1"),
    Attack("intersect", metric, "count(*) FROM marts.fct_calls INTERSECT SELECT count(*)"),
    Attack("union leaks numbers", metric, f"{LEAK} UNION ALL SELECT max(phone_number)"),
    Attack("union by name", metric, "count(*) AS x FROM marts.fct_calls UNION ALL BY NAME SELECT count(*) AS x"),
    Attack("lower case", metric, UNION.lower()),
    Attack("upper case", metric, UNION.upper().replace("COUNT(*)", "COUNT(*)")),
    Attack("quoted names", metric, 'count(*) FROM "marts"."fct_calls" UNION ALL SELECT count(*)'),
    Attack("newlines", metric, "count(*)\nFROM\tmarts.fct_calls\nUNION\nALL\nSELECT count(*)"),
    Attack("subquery", metric, "(SELECT count(*) FROM marts.fct_calls)"),
    Attack("nested subquery", metric, "(SELECT count(*) FROM (SELECT * FROM (SELECT * FROM marts.fct_calls)))"),
    Attack("scalar leak", metric, "(SELECT string_agg(phone_number, ',') FROM marts.fct_calls)"),
    Attack("exists", metric, "count(*) FILTER (WHERE EXISTS (SELECT 1 FROM marts.fct_calls))"),
    Attack("in subquery", metric, "sum(CASE WHEN 1 IN (SELECT 1 FROM marts.fct_calls) THEN 1 END)"),
    Attack(
        "cte", metric, "count(*) FROM (WITH c AS (SELECT * FROM marts.fct_calls) SELECT * FROM c) UNION ALL SELECT 1"
    ),
    Attack(
        "join", metric, "count(*) FROM marts.fct_calls JOIN marts.dim_agent USING (agent_username) UNION ALL SELECT 1"
    ),
    Attack("comma join", metric, "count(*) FROM marts.fct_calls, marts.dim_agent UNION ALL SELECT 1"),
    Attack(
        "visibility mapping", metric, "string_agg(viewer_username, ',') FROM security.viewer_agents UNION ALL SELECT ''"
    ),
    Attack("audit log", metric, "string_agg(event_id, ',') FROM marts.audit_log UNION ALL SELECT ''"),
    Attack("query_table", metric, "(SELECT count(*) FROM query_table('marts.fct_calls'))"),
    Attack("query()", metric, "(SELECT count(*) FROM query('SELECT * FROM marts.fct_calls'))"),
    Attack("read_text", metric, "(SELECT content FROM read_text('/etc/hostname'))"),
    Attack("read_csv", metric, "(SELECT count(*) FROM read_csv('/etc/passwd'))"),
    Attack("current_setting", metric, "current_setting('temp_directory')"),
    Attack("line comment", metric, "count(*) -- harmless?\nFROM marts.fct_calls UNION ALL SELECT count(*)"),
    Attack("block comment", metric, "count(*) /* x */ FROM marts.fct_calls UNION ALL SELECT count(*)"),
    Attack("semicolon", metric, "count(*); SELECT count(*) FROM marts.fct_calls"),
    Attack("dollar quoting", metric, "count(*) FROM marts.fct_calls UNION ALL SELECT $$x$$"),
    Attack("jinja", metric, "{{ 'count(*) FROM marts.fct_calls UNION ALL SELECT count(*)' }}"),
    Attack(
        "jinja statement", metric, "{% if true %}count(*) FROM marts.fct_calls UNION ALL SELECT count(*){% endif %}"
    ),
    Attack("other column", metric, "max(viewer_username)"),
    Attack("qualified column", metric, "max(c.phone_number)"),
    Attack("adhoc column", column, "agent_username FROM marts.fct_calls UNION ALL SELECT agent_username"),
    Attack("adhoc column subquery", column, "(SELECT max(phone_number) FROM marts.fct_calls)"),
    Attack("x-axis", x_axis, "call_date FROM marts.fct_calls UNION ALL SELECT call_date"),
    Attack("groupby text", groupby_text, "(SELECT max(phone_number) FROM marts.fct_calls)"),
    Attack("orderby", orderby, "(SELECT count(*) FROM marts.fct_calls)"),
    Attack("where subquery", where, "agent_username IN (SELECT agent_username FROM marts.fct_calls)"),
    Attack("where or true", where, "1 = 1 UNION ALL SELECT count(*) FROM marts.fct_calls"),
    Attack("having", having, "count(*) > (SELECT 0 FROM marts.fct_calls LIMIT 1)"),
    Attack("filter column", adhoc_filter, "(SELECT max(phone_number) FROM marts.fct_calls)"),
    Attack("series limit metric", series_limit, "count(*) FROM marts.fct_calls UNION ALL SELECT count(*)"),
    Attack("time grain", time_grain, "P1D') FROM marts.fct_calls UNION ALL SELECT date_trunc('day"),
    Attack("group filter value", group_filter, "x') UNION ALL SELECT count(*) FROM marts.fct_calls --"),
    Attack("group filter quote", group_filter, "x'' OR 1=1) OR agent_username IN ('"),
]


@dataclass
class Judge:
    """What one viewer may see: the number of call legs and agents; what no viewer may see: full numbers."""

    username: str
    visible_legs: int
    forbidden: set[str]

    def check(self, status: int, text: str, what: str, counts: bool = True) -> None:
        """Refused without SQL in the error, or answered with nothing beyond the viewer's rows: no
        forbidden value, and (for attacks that count) no number above the viewer's number of legs."""
        assert not any(s in text for s in self.forbidden), f"{what}: {self.username} read data not theirs"
        if status >= 400:
            with contextlib.suppress(ValueError):  # the legacy endpoint echoes the asker's own form data
                text = json.dumps({k: v for k, v in json.loads(text).items() if k != "form_data"})
            assert not re.search(r"\bfct_calls\b|viewer_agents|SELECT|virtual_table", text, re.I), (
                f"{what}: the error shows SQL to {self.username}: {text[:300]}"
            )
            return
        assert status == 200, (what, status, text[:300])
        if not counts:
            rows = [row for result in json.loads(text)["result"] for row in result.get("data") or []]
            assert len(rows) <= self.visible_legs, f"{what}: {self.username} got more rows than theirs"
            return
        numbers = [int(n) for cell in answer_cells(text) for n in re.findall(r"^-?\d{1,12}$", cell.strip())]
        assert all(n <= self.visible_legs for n in numbers), f"{what}: {self.username} got a count beyond theirs"


def answer_cells(text: str) -> list[str]:
    """The values of a chart-data answer: JSON results' data rows, or the cells of a CSV."""
    try:
        body = json.loads(text)
    except ValueError:
        return [cell for line in csv.reader(io.StringIO(text)) for cell in line]
    rows = [row for result in body.get("result", []) for row in result.get("data") or []]
    return [str(v) for row in rows for v in (row.values() if isinstance(row, dict) else row)]


def judges(server: SupersetServer) -> list[Judge]:
    """A plain member, a leader and an analyst, each with what they may see computed from the directory."""
    directory = load_directory(server.site.settings.effective_directory_path)

    def sees_own_calls_only(user: str) -> bool:
        return set(expected_counts(server, user)) == {user}

    # The member and the leader share a group, so the leader sees the member's calls and more, whatever the
    # demo journal's dates hold; the member sees nothing but their own (no group shows them others' calls).
    group = next(
        g for g in directory.groups if g.journal_visible_to_leader and any(sees_own_calls_only(u) for u in g.members)
    )
    leader = group.leaders[0]
    member = next(u for u in group.members if sees_own_calls_only(u))
    con = duckdb.connect(str(server.site.settings.served_db), read_only=True)
    try:
        numbers = {
            n
            for (n,) in con.execute(
                "SELECT DISTINCT phone_number FROM marts.fct_calls WHERE length(phone_number) > 6"
            ).fetchall()
        }
        agents = {a for (a,) in con.execute("SELECT DISTINCT agent_username FROM marts.fct_calls").fetchall()}
        events = {e for (e,) in con.execute("SELECT event_id FROM marts.audit_log").fetchall()}
    finally:
        con.close()
    assert numbers and events, "the warehouse holds full numbers and audit entries to steal"
    out = []
    for user in (member, leader, directory.analysts[0]):
        want = expected_counts(server, user)
        hidden = agents - set(want) if user not in directory.analysts else set()
        out.append(Judge(user, sum(want.values()), numbers | events | {f"|{a}" for a in hidden}))
    assert out[0].visible_legs < out[1].visible_legs < out[2].visible_legs
    return out


def dataset_id(client: SupersetClient, table: str = "dashboard_calls") -> int:
    (ds,) = list(client.list_all("dataset", [("table_name", "eq", table)]))
    return ds["id"]


def chart_data(client: SupersetClient, url: str, ds: int, query: dict, fmt: str = "json", rtype: str = "full"):
    body = {
        "datasource": {"id": ds, "type": "table"},
        "force": True,
        "queries": [query],
        "result_format": fmt,
        "result_type": rtype,
    }
    r = client.session.post(f"{url}/api/v1/chart/data", json=body, timeout=120)
    return r.status_code, r.content.decode("utf-8-sig", "replace")


def browser_session(url: str, username: str, password: str) -> requests.Session:
    """A cookie session as the login page gives it (the legacy explore endpoint wants one)."""
    s = requests.Session()
    page = s.get(f"{url}/login/", timeout=30).text
    token = re.search(r'csrf_token[^>]*value="([^"]+)"', page)
    assert token, "login page without CSRF token"
    r = s.post(
        f"{url}/login/",
        data={"username": username, "password": password, "csrf_token": token.group(1)},
        allow_redirects=False,
        timeout=30,
    )
    assert r.status_code == 302 and "/login" not in r.headers.get("Location", ""), "login failed"
    return s


def legacy_explore(session: requests.Session, url: str, ds: int, expr: str, csv: bool) -> tuple[int, str]:
    form = {
        "datasource": f"{ds}__table",
        "viz_type": "para",
        "series": "agent_username",
        "metrics": [{"expressionType": "SQL", "label": "x", "sqlExpression": expr}],
        "adhoc_filters": [],
        "row_limit": 100000,
        "time_range": "No filter",
    }
    path = "/superset/explore_json/" + ("?csv=true" if csv else "")
    r = session.post(url + path, data={"form_data": json.dumps(form)}, headers={"Referer": url}, timeout=120)
    return r.status_code, r.text


def run_attacks(server: SupersetServer, url: str) -> int:
    """Every attack, for every judge, as JSON and CSV and through the legacy endpoint; returns how many
    attempts were made. Also proves the server answers honest queries with exactly the visible rows."""
    made = 0
    for judge in judges(server):
        client = SupersetClient(url).login(judge.username, server.user_password)
        ds = dataset_id(client)
        status, text = chart_data(client, url, ds, {"metrics": ["count"], "row_limit": 10})
        assert status == 200 and json.loads(text)["result"][0]["data"] == [{"count": judge.visible_legs}], text[:300]
        for attack in ATTACKS:
            for fmt in ("json", "csv"):
                status, text = chart_data(client, url, ds, attack.build(attack.expression), fmt)
                judge.check(status, text, f"{attack.name} ({fmt})")
                made += 1
        for rtype in ("query", "samples", "drill_detail"):
            status, text = chart_data(client, url, ds, metric(UNION), rtype=rtype)
            judge.check(status, text, f"result type {rtype}", counts=False)
            made += 1
        session = browser_session(url, judge.username, server.user_password)
        for attack in ATTACKS[:12]:
            for as_csv in (False, True):
                status, text = legacy_explore(session, url, ds, attack.expression, as_csv)
                judge.check(status, text, f"legacy {attack.name} csv={as_csv}")
                made += 1
    return made


def events(server: SupersetServer) -> list[dict]:
    path = server.site.settings.home / "superset" / "security-events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_every_attack_is_refused_or_sees_only_its_own_rows(superset_server: SupersetServer) -> None:
    before = len(events(superset_server))
    assert len(ATTACKS) >= 40
    made = run_attacks(superset_server, superset_server.url)
    assert made >= 3 * 40 * 2
    refused = [e for e in events(superset_server)[before:] if e["event"] == "query_refused"]
    assert refused and {e["layer"] for e in refused} == {"fragments"}, "layer 1 refuses first, and says so"
    text = json.dumps(refused)
    assert "fct_calls" not in text and "SELECT" not in text, "the events carry no SQL"
    settings = superset_server.site.settings
    import_security_events(settings)
    con = connect_raw_store(settings)
    try:
        entries = [e for e in read_entries(con) if e.kind == "security"]
    finally:
        con.close()
    logged = sum(json.loads(e.detail)["count"] for e in entries if json.loads(e.detail)["event"] == "query_refused")
    assert logged >= len(refused), "every refusal reached the audit log"


def test_viewers_get_no_generated_sql_and_analysts_plain_expressions(superset_server: SupersetServer) -> None:
    directory = load_directory(superset_server.site.settings.effective_directory_path)
    url = superset_server.url
    member = SupersetClient(url).login(directory.groups[0].members[-1], superset_server.user_password)
    ds = dataset_id(member)
    status, text = chart_data(member, url, ds, {"metrics": ["count"], "columns": ["call_date"], "row_limit": 5})
    assert status == 200 and '"query"' not in text, "a viewer's result carries no SQL"
    status, text = chart_data(member, url, ds, metric("sum(talk_seconds)"))
    assert status == 403 and "not available to your role" in text, text[:300]
    status, text = chart_data(member, url, ds, metric("COUNT(*)"))
    assert status == 200, "the row count Superset sends for drill to detail and samples is no custom SQL"
    rules = member.session.get(f"{url}/api/v1/rowlevelsecurity/", timeout=60)
    assert rules.status_code in (401, 403) and "viewer_agents" not in rules.text, "the RLS clauses are admins' only"
    analyst = SupersetClient(url).login(directory.analysts[0], superset_server.user_password)
    status, text = chart_data(analyst, url, ds, metric("sum(talk_seconds) FILTER (WHERE is_inbound)"))
    assert status == 200, text[:300]
    status, text = chart_data(
        analyst, url, ds, {**metric("count(*)"), "extras": {"where": "is_inbound AND ring_seconds > 5"}}
    )
    assert status == 200, text[:300]
    status, text = chart_data(analyst, url, ds, metric("sum(direction)"))  # fails in DuckDB's binder
    assert status >= 400 or '"status": "failed"' in text, text[:300]
    assert "virtual_table" not in text and "SELECT" not in text and "the query failed" in text, text[:300]
    # nor can an analyst change a shipped dataset's SQL or make one that reads beyond the analyst schema
    shipped = analyst.session.put(
        f"{url}/api/v1/dataset/{ds}", json={"sql": "SELECT * FROM marts.fct_calls"}, timeout=60
    )
    assert shipped.status_code in (403, 404, 422), shipped.text[:300]
    db = next(d["id"] for d in analyst.list_all("database") if d["database_name"] == "callsight")
    made = analyst.session.post(
        f"{url}/api/v1/dataset/",
        json={"database": db, "schema": "analyst", "table_name": "mine", "sql": "SELECT * FROM marts.fct_calls"},
        timeout=60,
    )
    assert made.status_code in (403, 422), made.text[:300]
    admin = SupersetClient(url).login("admin", superset_server.admin_password)
    status, text = chart_data(admin, url, ds, metric("count(*)"), rtype="query")
    assert status == 200 and "virtual_table" in text, "admins still see the generated SQL"


@pytest.mark.parametrize("layer", ["fragments", "shape"])
def test_each_layer_alone_still_blocks_every_attack(superset_server: SupersetServer, layer: str) -> None:
    before = len(events(superset_server))
    with superset_server.sibling(f"superset-guard-{layer}.log", CALLSIGHT_SQL_GUARD_LAYERS=layer) as url:
        run_attacks(superset_server, url)
    layers = {e["layer"] for e in events(superset_server)[before:] if e["event"] == "query_refused"}
    assert layers == {layer}, f"only {layer} was on, yet refusals came from {layers}"


def test_analysts_sql_lab_reads_the_analyst_schema_only(superset_server: SupersetServer) -> None:
    """SQL Lab keeps its own schema allowlist: table functions and set operations do not reach past it."""
    directory = load_directory(superset_server.site.settings.effective_directory_path)
    analyst = SupersetClient(superset_server.url).login(directory.analysts[0], superset_server.user_password)
    db = next(d["id"] for d in analyst.list_all("database") if d["database_name"] == "callsight")

    def run(sql: str) -> tuple[int, str]:
        r = sql_lab_as(superset_server, analyst, db, sql)
        return r.status_code, r.text

    status, text = run("SELECT count(*) AS n FROM analyst.calls WHERE number_key IS NOT NULL")
    assert status == 200 and json.loads(text)["data"][0]["n"] > 0, text[:300]
    judge = judges(superset_server)[2]
    for sql in (
        "SELECT string_agg(phone_number, ',') FROM marts.fct_calls",
        "SELECT count(*) FROM analyst.calls UNION ALL SELECT count(*) FROM marts.fct_calls",
        "WITH c AS (SELECT * FROM marts.fct_calls) SELECT string_agg(phone_number, ',') FROM c",
        "SELECT * FROM analyst.calls WHERE chain_key IN (SELECT chain_key FROM marts.fct_calls)",
        "SELECT string_agg(phone_number, ',') FROM query_table('marts.fct_calls')",
        "SELECT * FROM query('SELECT string_agg(phone_number, '','') FROM marts.fct_calls')",
        "SELECT * FROM security.viewer_agents",
        "SELECT * FROM security.number_keys",
        "SELECT * FROM duckdb_tables()",
        "SELECT * FROM read_csv('/etc/passwd')",
    ):
        status, text = run(sql)
        assert status >= 400 or '"status": "failed"' in text, (sql, text[:300])
        assert not any(s in text for s in judge.forbidden), sql


def test_analysts_reach_no_file_of_the_parts_folder(superset_server: SupersetServer) -> None:
    """The served connections may read the parts folder (the views' files; served_warehouse.py): an
    analyst's own SQL - SQL Lab, a dataset of their own - reads no file there, writes none, lists none."""
    settings = superset_server.site.settings
    parts = settings.parts_dir
    made = not parts.exists()
    parts.mkdir(exist_ok=True)
    existing = set(parts.iterdir())
    leak = parts / "fct_calls-leak.parquet"
    con = duckdb.connect(str(settings.served_db), read_only=True)
    try:
        con.execute(f"COPY (SELECT phone_number, agent_username FROM marts.fct_calls) TO '{leak}'")
    finally:
        con.close()
    before = sorted(parts.iterdir())
    directory = load_directory(settings.effective_directory_path)
    analyst = SupersetClient(superset_server.url).login(directory.analysts[0], superset_server.user_password)
    db = next(d["id"] for d in analyst.list_all("database") if d["database_name"] == "callsight")
    judge = judges(superset_server)[2]
    admin = SupersetClient(superset_server.url).login("admin", superset_server.admin_password)
    try:
        # the engine itself would answer: an admin's SQL Lab reads the file
        r = sql_lab_as(superset_server, admin, db, f"SELECT count(*) AS n FROM read_parquet('{leak}')")
        assert r.status_code == 200 and json.loads(r.text)["data"][0]["n"] > 0, r.text[:300]
        for sql in (
            f"SELECT string_agg(phone_number, ',') FROM read_parquet('{leak}')",
            f"SELECT string_agg(phone_number, ',') FROM '{leak}'",
            f"SELECT string_agg(phone_number, ',') FROM read_parquet('{parts}/*.parquet')",
            f"SELECT * FROM analyst.calls WHERE number_key IN (SELECT phone_number FROM '{leak}')",
            f"SELECT string_agg(file, ',') FROM glob('{parts}/*')",
            f"SELECT * FROM parquet_metadata('{leak}')",
            f"COPY (SELECT 1 AS x) TO '{parts}/fct_calls-forged.parquet'",
            f"COPY (SELECT 1 AS x) TO '{leak}'",
        ):
            r = sql_lab_as(superset_server, analyst, db, sql)
            assert r.status_code >= 400 or '"status": "failed"' in r.text, (sql, r.text[:300])
            assert not any(s in r.text for s in judge.forbidden), sql
        # a dataset of their own over the file: refused when Superset reads its columns, or at its first chart
        r = analyst.session.post(
            f"{superset_server.url}/api/v1/dataset/",
            json={
                "database": db,
                "schema": "analyst",
                "table_name": f"leak_{uuid.uuid4().hex[:6]}",
                "sql": (f"SELECT phone_number FROM read_parquet('{leak}')"),
            },
            timeout=120,
        )
        if r.status_code in (200, 201):
            ds = r.json()["id"]
            status, text = chart_data(analyst, superset_server.url, ds, {"columns": ["phone_number"], "metrics": []})
            assert status >= 400, text[:300]
            assert not any(s in text for s in judge.forbidden)
            admin.delete(f"/api/v1/dataset/{ds}")
        assert not any(s in r.text for s in judge.forbidden)
        assert sorted(parts.iterdir()) == before, "nothing written into the folder"
    finally:
        for path in set(parts.iterdir()) - existing:
            path.unlink()
        if made:
            parts.rmdir()
    refused = [e for e in events(superset_server) if e["event"] == "query_refused" and e["layer"] == "statement"]
    assert refused, "the refusals are in the security events"


def sql_lab_as(server: SupersetServer, client: SupersetClient, db: int, sql: str) -> requests.Response:
    body = {"database_id": db, "sql": sql, "schema": "analyst", "runAsync": False, "queryLimit": 1000}
    body["client_id"] = uuid.uuid4().hex[:10]
    return client.session.post(f"{server.url}/api/v1/sqllab/execute/", json=body, timeout=120)
