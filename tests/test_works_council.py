"""Works-council mode: small groups merged into their group, pseudonyms for analysts - on every surface
(dashboard datasets, agent filter, drill to detail, CSV export, SQL Lab), and Superset's caches follow a
policy change at the next run. Expected labels are derived here from the directory YAML and the key,
independently of the warehouse's security.agent_labels."""

from __future__ import annotations

import secrets
from collections import Counter
from datetime import date, timedelta

import duckdb
import pytest
import yaml

from callsight.bi.api import SupersetAPIError, SupersetClient
from callsight.privacy.pseudonyms import KEY_ENV, PseudonymKeyError, pseudonym, pseudonyms
from callsight.site.directory import Directory, load_directory

from .conftest import Site, SupersetServer
from .privacy_scan import scan
from .test_dashboards import browser_session, visible_agents
from .test_superset import sql_lab


# ---- pure ----------------------------------------------------------------------------------------
def test_pseudonyms_are_stable_keyed_and_distinct() -> None:
    key = "k" * 32
    assert pseudonym(key, "anna") == pseudonym(key, "anna")
    assert pseudonym(key, "anna") != pseudonym(key, "ben")
    assert pseudonym(key, "anna") != pseudonym("x" * 32, "anna"), "without the key nobody recomputes them"
    assert pseudonym(key, "anna").startswith("Agent ") and "anna" not in pseudonym(key, "anna")
    names = [f"user{i:04d}" for i in range(3000)]
    assert len(set(pseudonyms(key, names).values())) == 3000


def test_pseudonymisation_without_a_key_stops_the_run_before_anything_is_published(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    from callsight.defs.nightly import run_nightly

    s = site.settings
    policy = yaml.safe_load(s.effective_policy_path.read_text(encoding="utf-8"))
    policy["works_council"] = {"min_group_size": 3, "pseudonymize_agents_for_analysts": True}
    s.effective_policy_path.write_text(yaml.safe_dump(policy), encoding="utf-8")
    monkeypatch.delenv(KEY_ENV, raising=False)
    result = run_nightly(s)
    assert not result.success
    assert KEY_ENV in str(result.failure)
    assert not s.served_db.exists(), "nothing published"
    monkeypatch.setenv(KEY_ENV, "short")
    result = run_nightly(s.__class__.from_env())
    assert not result.success and "at least 16 characters" in str(result.failure)
    with pytest.raises(PseudonymKeyError):
        from callsight.privacy.pseudonyms import pseudonym_key
        from callsight.site.policy import load_policy

        pseudonym_key(s.__class__.from_env({**site.env}), load_policy(s.effective_policy_path))


# ---- on a real Superset ---------------------------------------------------------------------------
def members_of(directory: Directory) -> dict[str, set[str]]:
    return {g.name: set(g.members) | set(g.leaders) | set(g.deputies) for g in directory.groups}


def expected_labels(directory: Directory, k: int, key: str, agents: set[str]) -> dict[str, dict[str, str]]:
    """audience -> agent -> label, from the directory alone."""
    groups = members_of(directory)
    names = {u.username: u.name for u in directory.users}
    out: dict[str, dict[str, str]] = {"admin": {}, "analyst": {}, "viewer": {}}
    for a in agents:
        mine = sorted(g for g, m in groups.items() if a in m)
        shown = any(len(groups[g]) >= k for g in mine)
        group_label = f"Gruppe: {mine[0]}" if mine else "Ohne Gruppe"
        out["admin"][a] = names.get(a, a)
        out["viewer"][a] = names.get(a, a) if shown else group_label
        if not shown:
            out["analyst"][a] = group_label
        else:
            out["analyst"][a] = pseudonym(key, a) if a in names else "Ehemalige Mitarbeitende"
    return out


def audience(directory: Directory, username: str) -> str:
    if username in directory.admins:
        return "admin"
    return "analyst" if username in directory.analysts else "viewer"


def per_label(client: SupersetClient, dataset_id: int, force: bool = True) -> tuple[Counter, dict]:
    data = client.chart_data(
        {
            "datasource": {"id": dataset_id, "type": "table"},
            "force": force,
            "queries": [{"metrics": ["count"], "columns": ["agent_name"], "filters": [], "row_limit": 10000}],
            "result_format": "json",
            "result_type": "full",
        }
    )
    query = data["result"][0]
    return Counter({r["agent_name"]: r["count"] for r in query["data"]}), query


def dataset_id(client: SupersetClient, table: str) -> int:
    (ds,) = list(client.list_all("dataset", [("table_name", "eq", table)]))
    return ds["id"]


def strings_in(payload: object) -> set[str]:
    if isinstance(payload, str):
        return {payload}
    if isinstance(payload, dict):
        return set().union(*(strings_in(v) for v in payload.values())) if payload else set()
    if isinstance(payload, list):
        return set().union(*(strings_in(v) for v in payload)) if payload else set()
    return set()


@pytest.mark.superset
def test_works_council_mode_on_every_surface_and_caches_follow_the_next_run(
    superset_server: SupersetServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from callsight.defs.nightly import run_nightly

    settings = superset_server.site.settings
    directory = load_directory(settings.effective_directory_path)
    groups = members_of(directory)
    # k: the largest group's size - it stays shown one by one, smaller groups that someone sees are merged
    k = max(len(m) for m in groups.values())
    small = [
        g
        for g in directory.groups
        if len(groups[g.name]) < k and g.leaders and (g.journal_visible_to_leader or g.journal_visible_to_group)
    ]
    assert small, ("the test org has a small group that its leader sees", groups)
    analyst = directory.analysts[0]
    admin = SupersetClient(superset_server.url).login("admin", superset_server.admin_password)
    ana = SupersetClient(superset_server.url).login(analyst, superset_server.user_password)

    # Before: names for analysts; the result is cached (same key, served from the cache).
    before, first = per_label(ana, dataset_id(ana, "dashboard_calls"), force=False)
    _, again = per_label(ana, dataset_id(ana, "dashboard_calls"), force=False)
    assert again["is_cached"] and again["cache_key"] == first["cache_key"]
    names = {u.name for u in directory.users}
    assert set(before) & names, "without works-council mode analysts see names"

    key = secrets.token_urlsafe(32)
    policy_path = settings.effective_policy_path
    original = policy_path.read_text(encoding="utf-8")
    policy = yaml.safe_load(original)
    policy["works_council"] = {"min_group_size": k, "pseudonymize_agents_for_analysts": True}
    policy["retention"] = {"journal_days": 10}
    today = date.today()
    monkeypatch.setenv("CALLSIGHT_HOME", str(settings.home))
    monkeypatch.setenv("CALLSIGHT_SUPERSET_URL", superset_server.url)
    monkeypatch.setenv("SUPERSET_ADMIN_PASSWORD", superset_server.admin_password)
    monkeypatch.setenv("CALLSIGHT_DEMO_PASSWORD", superset_server.user_password)
    monkeypatch.setenv(KEY_ENV, key)
    try:
        policy_path.write_text(yaml.safe_dump(policy, allow_unicode=True), encoding="utf-8")
        night = run_nightly(settings.__class__.from_env())
        assert night.success, night.failure
        con = duckdb.connect(str(settings.served_db), read_only=True)
        legs = dict(con.execute("SELECT agent_username, count(*) FROM marts.fct_calls GROUP BY 1").fetchall())
        agents = {r[0] for r in con.execute("SELECT agent_username FROM marts.dim_agent").fetchall()}
        oldest = con.execute("SELECT min(call_date) FROM marts.fct_calls").fetchone()[0]
        con.close()
        assert oldest >= today - timedelta(days=10), "retention applied in the warehouse"
        labels = expected_labels(directory, k, key, agents)

        # Caches: the same analyst query no longer answers from the old build.
        after, fresh = per_label(ana, dataset_id(ana, "dashboard_calls"), force=False)
        assert fresh["cache_key"] != first["cache_key"] and not fresh["is_cached"]
        assert sum(after.values()) == sum(legs.values()) < sum(before.values()), "expired calls are gone"

        # Every directory user: figures per label equal the warehouse folded by that audience's labels.
        for user in [*directory.users]:
            client = SupersetClient(superset_server.url).login(user.username, superset_server.user_password)
            seen = visible_agents(superset_server, user.username)
            want: Counter = Counter()
            for a, n in legs.items():
                if seen is None or a in seen:
                    want[labels[audience(directory, user.username)][a]] += n
            got, _ = per_label(client, dataset_id(client, "dashboard_calls"))
            assert got == want, user.username
            offered, _ = per_label(client, dataset_id(client, "dashboard_agents"))
            mine = {labels[audience(directory, user.username)][a] for a in agents if seen is None or a in seen}
            assert set(offered) == mine, (user.username, "the agent filter offers the same labels")
        # A leader of a small group reads the group's total, not one member.
        leader = small[0].leaders[0]
        lead = SupersetClient(superset_server.url).login(leader, superset_server.user_password)
        got, _ = per_label(lead, dataset_id(lead, "dashboard_calls"))
        large = [g for g, m in groups.items() if len(m) >= k]
        only_small = {a for a in groups[small[0].name] if not any(a in groups[g] for g in large)}
        hidden_names = {u.name for u in directory.users if u.username in only_small}
        assert hidden_names and not set(got) & hidden_names

        # Analysts, like an attacker: no username or name in chart data, drill-down, CSV, agent filter.
        people = {u.username for u in directory.users} | names
        for table in ("dashboard_calls", "dashboard_inbound_calls", "dashboard_callbacks", "dashboard_agents"):
            ds = dataset_id(ana, table)
            cols = [c["column_name"] for c in ana.get(f"/api/v1/dataset/{ds}")["result"]["columns"]]
            who = [
                c for c in cols if c in ("agent_username", "agent_name", "answered_by_username", "callback_by_username")
            ]
            rows = ana.chart_data(
                {
                    "datasource": {"id": ds, "type": "table"},
                    "force": True,
                    "queries": [{"columns": who, "metrics": [], "row_limit": 100000}],
                    "result_format": "json",
                    "result_type": "full",
                }
            )["result"][0]["data"]
            assert rows and not strings_in(rows) & people, table
            csv = ana.session.post(
                f"{superset_server.url}/api/v1/chart/data",
                json={
                    "datasource": {"id": ds, "type": "table"},
                    "force": True,
                    "queries": [{"columns": who, "metrics": [], "row_limit": 100000}],
                    "result_format": "csv",
                    "result_type": "full",
                },
                timeout=120,
            )
            assert csv.status_code == 200
            cells = {c.strip('"') for line in csv.content.decode("utf-8-sig").splitlines() for c in line.split(",")}
            assert not cells & people, table
        web = browser_session(superset_server.url, analyst, superset_server.user_password)
        ds = dataset_id(ana, "dashboard_calls")
        r = web.post(f"{superset_server.url}/datasource/samples?datasource_id={ds}&datasource_type=table", json={})
        assert r.status_code == 200, r.text[:300]
        assert not strings_in(r.json()) & people, "drill to detail"
        # The marts with usernames are out of reach, in charts and in SQL Lab; analyst.* carries labels.
        (fct,) = list(admin.list_all("dataset", [("table_name", "eq", "fct_calls")]))
        with pytest.raises(SupersetAPIError) as err:
            ana.chart_data(
                {
                    "datasource": {"id": fct["id"], "type": "table"},
                    "queries": [{"columns": ["agent_username"], "metrics": [], "row_limit": 10}],
                    "result_format": "json",
                    "result_type": "full",
                }
            )
        assert err.value.status in (403, 404)
        (db,) = [d for d in ana.list_all("database") if d["database_name"] == "callsight"]
        res = sql_lab(ana, db["id"], "SELECT agent, count(*) AS n FROM analyst.calls GROUP BY 1")
        want = Counter()
        for a, n in legs.items():
            want[labels["analyst"][a]] += n
        assert {r["agent"]: r["n"] for r in res["data"]} == dict(want)
        for forbidden in (
            "SELECT agent_username FROM marts.fct_calls",
            "SELECT * FROM security.agent_labels",
            "SELECT * FROM marts.dim_agent",
        ):
            result = sql_lab(ana, db["id"], forbidden)
            assert not result.get("data"), (forbidden, result)
        # Admins keep real names.
        got, _ = per_label(admin, dataset_id(admin, "dashboard_calls"))
        assert set(got) == {labels["admin"][a] for a in legs}
        # The key itself never lands in a file.
        assert scan(settings.home, [key]) == []
    finally:
        policy_path.write_text(original, encoding="utf-8")
        monkeypatch.delenv(KEY_ENV)
        first_day = today - timedelta(days=40)
        assert run_nightly(settings.__class__.from_env(), first=first_day).success
    got, _ = per_label(ana, dataset_id(ana, "dashboard_calls"))
    assert got == before, "the original policy brings names and the whole history back"
