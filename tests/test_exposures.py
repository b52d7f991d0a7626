"""The dashboards and e-mail reports are dbt exposures generated from superset/assets: the committed
YAML cannot drift from the assets, and the lineage reaches them in dbt's manifest and in Dagster."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import yaml

from callsight.bi import assets as bi_assets
from callsight.bi.reports import WEEKLY_CSV_CHART as REPORTED_CSV_CHART
from callsight.definitions import build_definitions
from callsight.warehouse.dbt_project import DBT_PROJECT_DIR, dbt_executable
from callsight.warehouse.exposures import (
    ASSETS_DIR,
    EXPOSURES_FILE,
    SERVED_SCHEMAS,
    WEEKLY_CSV_CHART,
    build_exposures,
    dataset_tables,
    exposure_problems,
    exposures_yaml,
    read_exposures,
)
from callsight.warehouse.schema_docs import ref_name

from .conftest import Site

DASHBOARDS = {"agenten", "kunden", "projekte", "management-summary", "betrieb"}


def test_committed_exposures_are_current() -> None:
    assert EXPOSURES_FILE.read_text(encoding="utf-8") == exposures_yaml(), "run `callsight schema-doc`"
    assert exposure_problems(read_exposures()) == []


def test_every_dashboard_and_report_kind_has_an_exposure() -> None:
    by_name = {e["name"]: e for e in read_exposures()}
    slugs = {e["url"].split("/")[-2] for e in by_name.values() if e["type"] == "dashboard"}
    assert slugs == DASHBOARDS
    assert {"report_management_summary", "report_agenten", "report_weekly_csv"} <= by_name.keys()
    summary = by_name["dashboard_management_summary"]
    assert summary["url"] == "/superset/dashboard/management-summary/" and summary["owner"]["name"]
    # The KPIs read the inbound calls and callbacks, the viewers' agents and labels from security.
    assert {"ref('fct_inbound_calls')", "ref('fct_callbacks')", "ref('visibility_sets')"} <= set(summary["depends_on"])
    betrieb = ["ref('access_log')", "ref('audit_log')", "ref('quarantine_summary')"]
    assert by_name["dashboard_betrieb"]["depends_on"] == betrieb


def test_the_assets_are_read_as_superset_gets_them() -> None:
    """The warehouse reads the asset files itself (it comes before bi): what it finds in each dataset's
    SQL equals the tables of the SQL that bi.assets expands and Superset runs."""
    assert ASSETS_DIR == bi_assets.ASSETS_DIR and WEEKLY_CSV_CHART == REPORTED_CSV_CHART
    raw = bi_assets.read_assets()
    expanded = bi_assets.expand(raw)
    table = re.compile(r"\b(" + "|".join(SERVED_SCHEMAS) + r")\.([a-z_][a-z0-9_]*)\b")
    for name, dataset in expanded.items():
        if name.startswith("datasets/") and dataset.get("sql"):
            assert dataset_tables(raw[name]) == set(table.findall(dataset["sql"])), name


def test_a_dashboard_without_exposure_fails(tmp_path: Path) -> None:
    assets = tmp_path / "assets"
    shutil.copytree(ASSETS_DIR, assets)
    fake = yaml.safe_load((assets / "dashboards" / "Betrieb.yaml").read_text(encoding="utf-8"))
    fake.update(dashboard_title="Test", slug="test-dashboard", uuid="00000000-0000-4000-8000-000000000001")
    (assets / "dashboards" / "Test.yaml").write_text(yaml.safe_dump(fake), encoding="utf-8")
    problems = exposure_problems(read_exposures(), assets)
    assert problems == ["dashboard_test_dashboard: no exposure for /superset/dashboard/test-dashboard/"]


def test_an_exposure_reading_other_models_fails() -> None:
    exposures = read_exposures()
    agenten = next(e for e in exposures if e["name"] == "dashboard_agenten")
    agenten["depends_on"] = [r for r in agenten["depends_on"] if r != "ref('fct_calls')"]
    problems = exposure_problems(exposures)
    assert len(problems) == 1 and problems[0].startswith("dashboard_agenten: depends_on"), problems


def test_exposures_are_in_the_dbt_manifest(tmp_path: Path) -> None:
    env = {**os.environ, "CALLSIGHT_HOME": str(tmp_path / "home")}
    subprocess.run(
        [dbt_executable(), "parse", "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
         "--target-path", str(tmp_path / "target")],
        check=True, env=env, capture_output=True, text=True,
    )  # fmt: skip
    manifest = json.loads((tmp_path / "target" / "manifest.json").read_text(encoding="utf-8"))
    found = {e["name"]: sorted(e["depends_on"]["nodes"]) for e in manifest["exposures"].values()}
    wanted = {e["name"]: sorted(f"model.callsight.{ref_name(r)}" for r in e["depends_on"]) for e in build_exposures()}
    assert found == wanted


def test_dashboards_are_dagster_assets_downstream_of_their_marts(site: Site) -> None:
    graph = build_definitions(site.settings).resolve_asset_graph()
    keys = {k.to_user_string(): k for k in graph.get_all_asset_keys()}
    for exposure in read_exposures():
        parents = {k.to_user_string() for k in graph.get(keys[f"superset/{exposure['name']}"]).parent_keys}
        models = {f"{schema}/{ref_name(r)}" for r in exposure["depends_on"] for schema in ("marts", "security")}
        assert "superset_access" in parents and parents - {"superset_access"} <= models, (exposure["name"], parents)
        assert len(parents) == len(exposure["depends_on"]) + 1, exposure["name"]
    assert "marts/fct_inbound_calls" in {
        k.to_user_string() for k in graph.get(keys["superset/dashboard_management_summary"]).parent_keys
    }
