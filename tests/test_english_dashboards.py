"""English twins of the dashboards (bi/translate.py, superset/translations/en.yaml): a complete catalogue,
stable twins, and - on a real Superset - twins that show exactly what their German originals show to each
user, protected as the originals are, rendering with English titles in a real browser."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml
from bench.charts import ChartQuery, chart_queries, dataset_ids

from callsight.bi.api import SupersetAPIError, SupersetClient
from callsight.bi.assets import ASSETS_DIR, bundle, load_assets, read_assets
from callsight.bi.translate import (
    TRANSLATIONS_DIR,
    TWIN_KEY,
    load_catalogue,
    originals,
    twin_uuid,
    untranslated,
    visible_texts,
)
from callsight.bi.users import RLS_DENY_NAME, RLS_VIEWER_NAME
from callsight.site.directory import load_directory
from callsight.site.settings import REPO_ROOT

from .conftest import SupersetServer, require_service
from .test_dashboards import group_leader, visible_agents

ARTEFACTS = REPO_ROOT / "test-artifacts" / "dashboards"
KINDS = ("datasets/", "charts/", "dashboards/")


def of_kind(assets: dict[str, dict], kind: str) -> dict[str, dict]:
    return {c["uuid"]: c for n, c in assets.items() if n.startswith(kind)}


def twins_by_original(assets: dict[str, dict]) -> dict[str, dict]:
    return {c[TWIN_KEY]: c for c in assets.values() if isinstance(c, dict) and c.get(TWIN_KEY)}


# ---- the catalogue and the twins (no server) ----------------------------------------------------------
class _UniqueKeys(yaml.SafeLoader):
    """YAML keeps the last of two equal keys without a word: a catalogue must not have any."""


def _no_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    keys = [loader.construct_object(k, deep=deep) for k, _ in node.value]
    assert len(keys) == len(set(keys)), f"duplicate keys: {sorted({k for k in keys if keys.count(k) > 1})}"
    return loader.construct_mapping(node, deep)


_UniqueKeys.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def test_the_catalogue_translates_every_text_the_dashboards_show_and_nothing_else() -> None:
    catalogue = load_catalogue()
    yaml.load((TRANSLATIONS_DIR / "en.yaml").read_text(encoding="utf-8"), Loader=_UniqueKeys)
    assets = load_assets()
    assert untranslated(assets, catalogue) == {}, "add the English of these texts to superset/translations/en.yaml"
    used = {t for n, c in originals(assets).items() for t in visible_texts(n, c) if t}
    assert set(catalogue) == used, f"entries of texts no asset shows: {sorted(set(catalogue) - used)}"
    assert all(v.strip() for v in catalogue.values())
    english = set(catalogue.values())
    for name, config in assets.items():
        if config.get(TWIN_KEY):
            texts = {t for t in visible_texts(name, config) if t}
            assert texts and texts <= english, (name, sorted(texts - english))
    # What a dashboard list shows: every English title differs from every German one.
    dashboards = of_kind(assets, "dashboards/")
    german = {c["dashboard_title"] for c in dashboards.values() if not c.get(TWIN_KEY)}
    english_titles = {c["dashboard_title"] for c in dashboards.values() if c.get(TWIN_KEY)}
    assert len(english_titles) == len(german) and not english_titles & german


def test_a_new_chart_without_translation_fails(tmp_path: Path) -> None:
    assets_dir = tmp_path / "assets"
    shutil.copytree(ASSETS_DIR, assets_dir)
    chart = yaml.safe_load((assets_dir / "charts" / "Anrufe.yaml").read_text(encoding="utf-8"))
    chart.update(slice_name="Anrufe am Wochenende", uuid="00000000-0000-4000-8000-0000000000aa")
    chart["params"]["column_config"]["Delta"]["customColumnName"] = "Abstand"
    (assets_dir / "charts" / "Wochenende.yaml").write_text(yaml.safe_dump(chart, allow_unicode=True), encoding="utf-8")
    assets = load_assets(assets_dir)
    lacking = untranslated(assets, load_catalogue())
    assert lacking["charts/Wochenende.yaml"] == ["Abstand", "Anrufe am Wochenende"]
    assert "charts/Anrufe.yaml" not in lacking
    # The nightly import goes on: the chart's twin exists, its missing texts in German.
    twin = twins_by_original(assets)[chart["uuid"]]
    assert twin["slice_name"] == "Anrufe am Wochenende"
    assert twin["params"]["column_config"]["Previous value"]["customColumnName"] == "Previous period"


def test_every_asset_has_one_stable_english_twin_wired_to_twins() -> None:
    assets = load_assets()
    assert load_assets() == assets, "twins are deterministic"
    german = originals(assets)
    assert german == {n: c for n, c in assets.items() if not c.get(TWIN_KEY)}
    assert set(read_assets()) == set(german), "the twins are generated, never files of superset/assets"
    twins = twins_by_original(assets)
    for kind in KINDS:
        for u, c in of_kind(german, kind).items():
            assert twins[u]["uuid"] == twin_uuid(u), (kind, u)
            assert bool(twins[u].get("admin_only")) == bool(c.get("admin_only")), "admin-only twins stay admin-only"
    assert len(twins) == sum(len(of_kind(german, k)) for k in KINDS)
    uuids = [c["uuid"] for c in assets.values() if "uuid" in c]
    assert len(uuids) == len(set(uuids))
    # uuid5(original, "en"): the same on every machine and every night (Superset updates, never duplicates)
    assert twin_uuid("4b45a5e8-9aaa-503e-9e96-127ecb8b221c") == "fffb0e41-1b6c-571c-94e1-83279bad9485"

    datasets = of_kind(assets, "datasets/")
    for u, ds in of_kind(german, "datasets/").items():
        twin = twins[u]
        assert twin["table_name"] == f"{ds['table_name']}_en" and twin["schema"] == ds["schema"]
        assert [c["column_name"] for c in twin["columns"]] == [c["column_name"] for c in ds["columns"]]
        assert [(m["metric_name"], m["expression"]) for m in twin["metrics"]] == [
            (m["metric_name"], m["expression"]) for m in ds["metrics"]
        ]
        # The same SQL (viewer filter, audience), or - for a table - the table, whose RLS applies inside.
        assert twin["sql"] == (ds["sql"] or f"SELECT * FROM {ds['schema']}.{ds['table_name']}")
    for u, chart in of_kind(german, "charts/").items():
        twin = twins[u]
        assert twin["dataset_uuid"] == twin_uuid(chart["dataset_uuid"]) and twin["dataset_uuid"] in datasets
        assert twin["viz_type"] == chart["viz_type"]
        assert {k: v for k, v in twin["params"].items() if k != "column_config"} == {
            k: v for k, v in chart["params"].items() if k != "column_config"
        }, "the same query: only labels differ"
    charts = of_kind(assets, "charts/")
    for u, dash in of_kind(german, "dashboards/").items():
        twin = twins[u]
        assert twin["slug"] == f"{dash['slug']}-en"
        placed = [p["meta"] for p in twin["position"].values() if isinstance(p, dict) and p.get("type") == "CHART"]
        originally = [p["meta"] for p in dash["position"].values() if isinstance(p, dict) and p.get("type") == "CHART"]
        assert [m["uuid"] for m in placed] == [twin_uuid(m["uuid"]) for m in originally]
        assert all(charts[m["uuid"]]["slice_name"] == m["sliceName"] for m in placed)
        assert twin["position"]["HEADER_ID"]["meta"]["text"] == twin["dashboard_title"]
        filters = twin["metadata"]["native_filter_configuration"]
        before = dash["metadata"]["native_filter_configuration"]
        assert [f["id"] for f in filters] == [f["id"] for f in before]
        for f, g in zip(filters, before, strict=True):
            for t, s in zip(f["targets"], g["targets"], strict=True):
                assert t.get("datasetUuid") == (twin_uuid(s["datasetUuid"]) if s.get("datasetUuid") else None)
        if not dash.get("admin_only"):
            for m in placed:  # what test_dashboards asks of the originals: masked dashboard datasets only
                ds = datasets[charts[m["uuid"]]["dataset_uuid"]]
                assert ds["table_name"].startswith("dashboard_") and ds["table_name"].endswith("_en")
                assert not ds.get("admin_only") and "current_user_roles()" in ds["sql"]
    # callsight's own key never reaches Superset
    assert TWIN_KEY.encode() not in bundle(assets)


def test_the_sql_guard_trusts_exactly_the_datasets_callsight_imports() -> None:
    """superset/sql_guard_hooks.py trusts the SQL of shipped datasets by uuid: the twins' must be trusted
    (else a viewer's English dashboard is refused), and no uuid that no imported dataset holds (an analyst
    could import a dataset of their own under it)."""
    python = REPO_ROOT / ".venv-superset" / "bin" / "python"
    require_service(python.exists(), "the Superset virtual environment (make venvs)")
    script = """
import importlib.util, json, sys
def load(name, filename):
    spec = importlib.util.spec_from_file_location(name, f"superset/{filename}")
    module = importlib.util.module_from_spec(spec); sys.modules[name] = module; spec.loader.exec_module(module)
    return module
load("callsight_security_events", "security_events.py")
load("callsight_sql_guard", "sql_guard.py")
load("callsight_statement_guard", "statement_guard.py")
hooks = load("callsight_sql_guard_hooks", "sql_guard_hooks.py")
print(json.dumps(sorted(hooks.shipped_dataset_uuids("superset/assets"))))
"""
    out = subprocess.run([str(python), "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    trusted = set(json.loads(out.stdout))
    assert trusted == set(of_kind(load_assets(), "datasets/"))


# ---- live Superset --------------------------------------------------------------------------------------
def member_of_own_calls(server: SupersetServer) -> str:
    """A member who sees only their own calls (no leader, no group journal)."""
    directory = load_directory(server.site.settings.effective_directory_path)
    return next(u.username for u in directory.users if visible_agents(server, u.username) == {u.username})


def twin_queries() -> list[tuple[ChartQuery, ChartQuery]]:
    """(German chart query, its twin's) for every chart of the users' dashboards, as the dashboard asks."""
    assets = load_assets()
    charts = of_kind(assets, "charts/")
    on_dashboards = {
        p["meta"]["uuid"]
        for d in of_kind(originals(assets), "dashboards/").values()
        if not d.get("admin_only")
        for p in d["position"].values()
        if isinstance(p, dict) and p.get("type") == "CHART"
    }
    names = {charts[u]["slice_name"]: charts[twin_uuid(u)]["slice_name"] for u in on_dashboards}
    assert len(names) == len(on_dashboards) > 20
    # Newest day of the published journal: the charts' period holds calls.
    queries = {q.name: q for q in chart_queries(date.today() - timedelta(days=1), assets=assets)}
    return [(queries[de], queries[en]) for de, en in sorted(names.items())]


def answer(client: SupersetClient, query: ChartQuery, ids: dict[str, int]) -> list[dict]:
    """Every row the chart's query selects, in a canonical order: a chart's row limit cuts rows of equal
    sort value in no fixed order, so the comparison takes them all (limit raised, rows sorted)."""
    whole = replace(query, queries=tuple({**q, "row_limit": 100_000} for q in query.queries))
    results = client.chart_data(whole.context(ids[query.table], force=True))["result"]
    for r in results:
        assert not r.get("error") and r.get("status") in (None, "success"), (query.name, r.get("error"))
        assert r["rowcount"] < 100_000, query.name
    return [
        {"colnames": r["colnames"], "data": sorted(r["data"], key=lambda row: json.dumps(row, sort_keys=True))}
        for r in results
    ]


@pytest.mark.superset
def test_english_charts_show_each_user_exactly_what_their_german_originals_show(
    superset_server: SupersetServer,
) -> None:
    s = superset_server
    pairs = twin_queries()
    leader, group = group_leader(s)
    for user in (member_of_own_calls(s), leader):
        client = SupersetClient(s.url).login(user, s.user_password)
        ids = dataset_ids(client)
        rows = 0
        for de, en in pairs:
            assert ids[de.table] != ids[en.table], "the twin reads its own dataset"
            german, english = answer(client, de, ids), answer(client, en, ids)
            assert english == german, (user, de.name, en.name)
            rows += sum(len(r["data"]) for r in german)
        assert rows > 100, f"{user}: the charts hold data (else equal would prove nothing)"
        # The twin of the call legs holds the user's visible agents only, as the original does.
        legs = client.chart_data(
            {
                "datasource": {"id": ids["dashboard_calls_en"], "type": "table"},
                "force": True,
                "queries": [{"columns": ["agent_username"], "metrics": ["count"], "filters": [], "row_limit": 1000}],
                "result_format": "json",
                "result_type": "full",
            }
        )["result"][0]["data"]
        assert legs and {r["agent_username"] for r in legs} <= visible_agents(s, user), user
    # The group filter (Jinja in the datasets' SQL) narrows a twin as it narrows its original, never widens.
    directory = load_directory(s.site.settings.effective_directory_path)
    other = next(g.name for g in directory.groups if g.name != group and not set(g.members) & visible_agents(s, leader))
    client = SupersetClient(s.url).login(leader, s.user_password)
    ids = dataset_ids(client)
    for table in ("dashboard_inbound_calls", "dashboard_calls", "dashboard_callbacks"):
        metric = {"dashboard_inbound_calls": "anrufe", "dashboard_calls": "count"}.get(table, "verpasst_extern")
        mine = calls_in_groups(client, ids[table], metric, [group])
        assert mine == calls_in_groups(client, ids[f"{table}_en"], metric, [group]), table
        assert 0 < mine <= calls_in_groups(client, ids[f"{table}_en"], metric, []), table
        assert calls_in_groups(client, ids[f"{table}_en"], metric, [other]) == 0, table


def calls_in_groups(client: SupersetClient, dataset: int, metric: str, groups: list[str]) -> int:
    """A dataset's metric with the dashboards' group filter (none: no filter)."""
    filters = [{"col": "group_name", "op": "IN", "val": groups}] if groups else []
    query = {"metrics": [metric], "columns": [], "filters": filters}
    data = client.chart_data(
        {
            "datasource": {"id": dataset, "type": "table"},
            "force": True,
            "queries": [query],
            "result_format": "json",
            "result_type": "full",
        }
    )
    return data["result"][0]["data"][0][metric] or 0


# Admin-only twins and a metric of each (a valid query: refused for who asks, not for its form).
ADMIN_TWINS = {"quarantine_summary_en": "quarantaene", "audit_log_en": "eintraege", "fct_calls_en": "count"}


@pytest.mark.superset
def test_english_twins_are_protected_as_their_originals(superset_server: SupersetServer) -> None:
    s = superset_server
    assets = load_assets()
    german = originals(assets)
    admin = SupersetClient(s.url).login("admin", s.admin_password)
    admin_ids = dataset_ids(admin)
    hidden = {c["table_name"] for c in of_kind(assets, "datasets/").values() if c.get("admin_only")}
    assert set(ADMIN_TWINS) <= hidden
    directory = load_directory(s.site.settings.effective_directory_path)
    analyst = directory.analysts[0]
    for user in (member_of_own_calls(s), group_leader(s)[0], analyst):
        client = SupersetClient(s.url).login(user, s.user_password)
        visible = {d["table_name"] for d in client.list_all("dataset")}
        originals_seen = {t for t in visible if not t.endswith("_en")}
        assert originals_seen and visible == originals_seen | {f"{t}_en" for t in originals_seen}, user
        assert not visible & hidden, user
        for table, metric in ADMIN_TWINS.items():
            with pytest.raises(SupersetAPIError) as err:
                client.chart_data(
                    {
                        "datasource": {"id": admin_ids[table], "type": "table"},
                        "queries": [{"metrics": [metric], "columns": []}],
                        "result_format": "json",
                        "result_type": "full",
                    }
                )
            assert err.value.status in (403, 404), (user, table)
        with pytest.raises(SupersetAPIError) as err:
            client.get("/api/v1/dashboard/betrieb-en")
        assert err.value.status in (403, 404), user
        dashboards = {d["slug"] for d in client.list_all("dashboard")}
        assert dashboards == {d["slug"] for d in of_kind(assets, "dashboards/").values() if not d.get("admin_only")}
    assert [r["name"] for r in admin.get("/api/v1/dashboard/betrieb-en")["result"]["roles"]] == ["Admin"]
    # An analyst's twin of a table of the analyst schema (a dataset over it, its SQL trusted as shipped).
    client = SupersetClient(s.url).login(analyst, s.user_password)
    ids = dataset_ids(client)
    counts = [
        client.chart_data(
            {
                "datasource": {"id": ids[table], "type": "table"},
                "force": True,
                "queries": [{"metrics": ["count"], "columns": [], "filters": []}],
                "result_format": "json",
                "result_type": "full",
            }
        )["result"][0]["data"][0]["count"]
        for table in ("calls", "calls_en")
    ]
    assert counts[0] > 0 and counts[0] == counts[1]

    # Row-level security: the deny-by-default rule lists every dataset, twins included; the viewers' rule
    # the tables with real usernames, which every twin reading them reads as its original does.
    rules = {r["name"]: r for r in admin.list_all("rowlevelsecurity")}
    deny = {t["id"] for t in admin.get(f"/api/v1/rowlevelsecurity/{rules[RLS_DENY_NAME]['id']}")["result"]["tables"]}
    assert deny == {admin_ids[c["table_name"]] for c in of_kind(assets, "datasets/").values()}
    viewer_rule = admin.get(f"/api/v1/rowlevelsecurity/{rules[RLS_VIEWER_NAME]['id']}")["result"]
    call_tables = {t["table_name"] for t in viewer_rule["tables"]}
    assert call_tables == {"fct_calls", "fct_inbound_calls", "fct_callbacks", "dim_agent", "dim_agent_groups"}
    for ds in of_kind(german, "datasets/").values():
        twin_sql = admin.get(f"/api/v1/dataset/{admin_ids[ds['table_name'] + '_en']}")["result"]["sql"]
        if ds["table_name"] in call_tables:
            assert twin_sql == f"SELECT * FROM {ds['schema']}.{ds['table_name']}"


@pytest.mark.superset
def test_an_english_dashboard_renders_in_chromium_with_english_titles(superset_server: SupersetServer) -> None:
    from selenium.webdriver.common.by import By

    from .browser import bootstrap, chromium, login, open_dashboard, screenshot

    s = superset_server
    leader, _ = group_leader(s)
    dashboards = {d["slug"]: d for d in of_kind(load_assets(), "dashboards/").values()}
    catalogue = load_catalogue()
    with chromium() as driver:
        login(driver, s.url, leader, s.user_password)
        rendered = {}
        for slug in ("management-summary", "management-summary-en"):
            d = dashboards[slug]
            names = {
                p["meta"]["sliceName"]
                for p in d["position"].values()
                if isinstance(p, dict) and p.get("type") == "CHART"
            }
            if slug.endswith("-en"):
                driver.get(f"{s.url}/lang/en")  # the UI switched to English (Superset's language menu)
            charts = open_dashboard(driver, s.url, slug, len(names))
            assert {c.name for c in charts} == names
            rendered[slug] = {c.name: c for c in charts}
            page = driver.find_element(By.TAG_NAME, "body").text
            header = driver.execute_script(
                "const h = document.querySelector('[data-test=dashboard-header-container]');"
                "const i = h && h.querySelector('input'); return h ? (i ? i.value : h.textContent) : '';"
            )
            assert driver.title == d["dashboard_title"] and d["dashboard_title"] in header, (driver.title, header)
            for f in d["metadata"]["native_filter_configuration"]:
                assert f["name"] in page, (slug, f["name"])
        screenshot(driver, ARTEFACTS / "management-summary-en.png")
        assert bootstrap(driver)["common"]["locale"] == "en"
        page = driver.find_element(By.TAG_NAME, "body").text
        assert driver.title == "Executive Summary" and "Time range" in page and "Zeitraum" not in page
        # The same figures as the German dashboard: each KPI's headline number.
        kpis = [name for name, chart in rendered["management-summary"].items() if chart.viz_type == "pop_kpi"]
        assert len(kpis) == 7
        for de in kpis:
            german, english = (
                rendered["management-summary"][de].text,
                rendered["management-summary-en"][catalogue[de]].text,
            )
            assert german.splitlines()[0] == english.splitlines()[0], de
        assert "Previous period" in rendered["management-summary-en"][catalogue["Anrufe"]].text
