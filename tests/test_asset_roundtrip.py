"""The Superset asset round-trip (issue 30): `callsight export-assets` writes what was edited in Superset's
UI back into superset/assets in the compact form; the nightly import tells about such an edit (log,
audit entry) and overwrites or keeps it per CALLSIGHT_UI_EDITS. Pure conversions first, then a real
Superset of this module's own (its edits must not reach other modules)."""

from __future__ import annotations

import copy
import json
import logging
import os
import secrets
import shutil
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
import yaml

from callsight.bi.api import SupersetClient
from callsight.bi.asset_export import fetch_export, plan_export
from callsight.bi.asset_yaml import dump_compact, leading_comment
from callsight.bi.assets import ASSETS_DIR, bundle, expand, load_assets, read_assets, render
from callsight.bi.compact import (
    VIEW_WRITTEN_METADATA,
    ExportRefused,
    clean,
    compact_chart,
    compact_dashboard,
    compact_dataset,
    layout_rows,
    view,
)
from callsight.bi.ui_edits import STORE_NAME, UiEdit, find_ui_edits, fingerprint, ui_edit_actions, ui_edit_message
from callsight.cli.main import main
from callsight.privacy.audit import read_entries
from callsight.publish.builds import served_build_id
from callsight.site.settings import Settings

from .browser import chromium, login, open_dashboard
from .conftest import Site, copy_home, free_port, require_service
from .test_dashboards import charts_of, dashboards

KINDS = ("charts", "dashboards", "datasets")
ANRUFE = "charts/Anrufe.yaml"
AGENTEN = "dashboards/Agenten.yaml"
SUMMARY = "dashboards/Management_Summary.yaml"
DASHBOARD_CALLS = "datasets/callsight/dashboard_calls.yaml"


def asset_files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*.yaml"))
        if p.relative_to(root).parts[0] in KINDS
    }


def as_superset_exports(assets: dict[str, dict]) -> dict[str, dict]:
    """What Superset's export gives for imported assets: ids where the bundle has placeholders, the
    night's build stamp, the empty settings Superset adds, columns in another order."""
    out = {}
    for name, config in copy.deepcopy(render(assets, Path("/nowhere.duckdb"), "build-1")).items():
        kind = name.split("/")[0]
        if kind == "charts":
            config["params"] = {**config["params"], "datasource": "17__table", "annotation_layers": []}
        elif kind == "datasets":
            config["columns"] = list(reversed(config["columns"]))
            config["currency_code_column"] = None
        elif kind == "dashboards" and "position" in config:
            for node in config["position"].values():
                if isinstance(node, dict) and node.get("type") == "CHART":
                    node["meta"]["chartId"] += 100
            config["metadata"].update(map_label_colors={}, color_scheme_domain=[])
            for f in config["metadata"]["native_filter_configuration"]:
                f["chartsInScope"] = [i + 100 for i in f["chartsInScope"]]
                f["scope"]["excluded"] = [i + 100 for i in f["scope"]["excluded"]]
        if kind in KINDS:
            out[f"{name.removesuffix('.yaml')}_{len(out) + 1}.yaml"] = config
    return out


def changed_files(plan_files: dict[str, str]) -> dict[str, tuple[str, str]]:
    old = {n: t.decode() for n, t in asset_files(ASSETS_DIR).items()}
    return {n: (old.get(n, ""), t) for n, t in plan_files.items() if old.get(n) != t}


def diff_lines(old: str, new: str) -> tuple[set[str], set[str]]:
    a, b = old.splitlines(), new.splitlines()
    return set(a) - set(b), set(b) - set(a)


# ---- pure: compact <-> expanded, no Superset ------------------------------------------------------


def test_every_asset_file_is_in_the_canonical_form() -> None:
    """Writing what was read gives the same bytes: an export of unchanged assets changes no file."""
    texts = {p.relative_to(ASSETS_DIR).as_posix(): p.read_text(encoding="utf-8") for p in ASSETS_DIR.rglob("*.yaml")}
    loose = sorted(n for n, t in texts.items() if dump_compact(yaml.safe_load(t), leading_comment(t)) != t)
    assert loose == [], "not in the canonical form (python -m callsight.bi.asset_yaml FILE... rewrites them)"


def test_an_export_of_what_was_imported_is_the_repository() -> None:
    plan = plan_export(as_superset_exports(load_assets()), ASSETS_DIR)
    assert plan.refused == [] and plan.new == [] and plan.missing == []
    assert changed_files(plan.files) == {}
    twins = {c["uuid"] for c in load_assets().values() if "uuid" in c} - {c.get("uuid") for c in read_assets().values()}
    assert len(plan.generated) == len(twins)


def compact_of(name: str, cleaned: dict, template: dict, raw: dict[str, dict]) -> dict:
    kind = name.split("/")[0]
    if kind == "charts":
        return compact_chart(cleaned, template)
    if kind == "dashboards":
        return compact_dashboard(
            name, cleaned, template, {c["uuid"]: c["slice_name"] for c in raw.values() if "viz_type" in c}
        )
    return compact_dataset(name, cleaned, template, raw, 1)


def test_the_compact_form_of_each_expanded_asset_is_its_file() -> None:
    """compact(expand(file)) == file, key order included, guided by the file; and without it (an asset
    only Superset has) a compact form that expands to the same asset."""
    raw = read_assets()
    expanded = expand(raw)
    for name, config in raw.items():
        if name.split("/")[0] not in KINDS:
            continue
        cleaned = clean(name, expanded[name])
        compact = compact_of(name, cleaned, config, raw)
        assert list(compact.items()) == list(config.items()), name
        if "extends" not in config:
            fresh = compact_of(name, cleaned, {}, raw)
            again = expand({**raw, name: fresh})[name]
            assert view(name, clean(name, again)) == view(name, cleaned), name


def test_edits_change_exactly_their_lines() -> None:
    expanded = load_assets()
    expanded[ANRUFE]["params"]["y_axis_format"] = ",.1f"
    expanded[ANRUFE]["slice_name"] = "Anrufe gesamt"
    agenten = expanded[AGENTEN]
    widths = [n for n in agenten["position"].values() if isinstance(n, dict) and n.get("type") == "CHART"]
    next(n for n in widths if n["meta"]["sliceName"] == "Reaktionszeit je Agent")["meta"]["width"] = 8
    agenten["metadata"]["native_filter_configuration"][1]["name"] = "Team"
    agenten["metadata"]["refresh_frequency"] = 300
    plan = plan_export(as_superset_exports(expanded), ASSETS_DIR)
    assert plan.refused == []
    changed = changed_files(plan.files)
    # The Management Summary names the renamed chart in its layout: it follows.
    assert sorted(changed) == [ANRUFE, AGENTEN, SUMMARY]
    assert diff_lines(*changed[SUMMARY]) == (
        {"- - {chart: Anrufe, width: 3, height: 40}"},
        {"- - {chart: Anrufe gesamt, width: 3, height: 40}"},
    )
    assert diff_lines(*changed[ANRUFE]) == (
        {"slice_name: Anrufe", "  y_axis_format: ',d'"},
        {"slice_name: Anrufe gesamt", "  y_axis_format: ',.1f'"},
    )
    old, new = diff_lines(*changed[AGENTEN])
    assert old == {"  name: Gruppe", "- - {chart: Reaktionszeit je Agent, width: 12}"}
    # The chart's new name is what the layout names it by; the refresh is a setting beside the defaults.
    assert new == {
        "  name: Team",
        "- - {chart: Reaktionszeit je Agent, width: 8}",
        "metadata:",
        "  refresh_frequency: 300",
    }
    assert changed[ANRUFE][1].startswith(leading_comment(changed[ANRUFE][0])) and leading_comment(changed[ANRUFE][0])


def test_edits_as_the_ui_saves_them() -> None:
    """A chart moved into a new row and a filter added as Superset's dashboard editor writes them; a chart
    saved unchanged in the chart editor (its ids and editor keys are no change)."""
    expanded = load_assets()
    agenten = expanded[AGENTEN]
    position = agenten["position"]
    node = next(
        n
        for n in position.values()
        if isinstance(n, dict) and n.get("meta", {}).get("sliceName") == "Telefonate pro Tag"
    )
    old_row = node["parents"][-1]
    position[old_row]["children"].remove(node["id"])
    position["ROW-N-x7Yk2"] = {
        "type": "ROW",
        "id": "ROW-N-x7Yk2",
        "children": [node["id"]],
        "parents": ["ROOT_ID", "GRID_ID"],
        "meta": {"background": "BACKGROUND_TRANSPARENT"},
    }
    position["GRID_ID"]["children"].append("ROW-N-x7Yk2")
    node["parents"] = ["ROOT_ID", "GRID_ID", "ROW-N-x7Yk2"]
    agenten["metadata"]["native_filter_configuration"].append(
        {
            "id": "NATIVE_FILTER-3fQ9a",
            "controlValues": {
                "enableEmptyFilter": False,
                "defaultToFirstItem": False,
                "multiSelect": False,
                "searchAllOptions": False,
                "inverseSelection": False,
            },
            "name": "Richtung",
            "filterType": "filter_select",
            "targets": [{"column": {"name": "direction"}, "datasetUuid": expanded[DASHBOARD_CALLS]["uuid"]}],
            "defaultDataMask": {"extraFormData": {}, "filterState": {}, "ownState": {}},
            "cascadeParentIds": [],
            "scope": {"rootPath": ["ROOT_ID"], "excluded": []},
            "type": "NATIVE_FILTER",
            "description": "",
            "chartsInScope": [],
            "tabsInScope": [],
        }
    )
    # The editor scopes the filter away from the charts whose dataset has no such column.
    calls = expanded[DASHBOARD_CALLS]["uuid"]
    others = sorted(
        (n["meta"]["chartId"], n["meta"]["uuid"])
        for n in position.values()
        if isinstance(n, dict)
        and n.get("type") == "CHART"
        and next(c for c in expanded.values() if c.get("uuid") == n["meta"]["uuid"])["dataset_uuid"] != calls
    )
    agenten["metadata"]["native_filter_configuration"][-1]["scope"]["excluded"] = [i for i, _ in others]
    params = expanded[ANRUFE]["params"]
    params.update(slice_id=7, dashboards=[1, 4], url_params={})
    params["adhoc_filters"] = [{**params["adhoc_filters"][0], "filterOptionName": "filter_8x1", "isExtra": False}]
    exports = as_superset_exports(expanded)
    next(c for c in exports.values() if c["uuid"] == expanded[ANRUFE]["uuid"])["query_context"] = (
        '{"datasource": {"id": 17}}'
    )
    plan = plan_export(exports, ASSETS_DIR)
    assert plan.refused == []
    changed = changed_files(plan.files)
    assert list(changed) == [AGENTEN]
    compact = yaml.safe_load(plan.files[AGENTEN])
    assert compact["filters"][-1] == {
        "id": "NATIVE_FILTER-3fQ9a",
        "name": "Richtung",
        "type": "select",
        "column": "direction",
        "dataset": calls,
        "exclude_charts": sorted(u for _, u in others),
        "controls": {"multiSelect": False},
    }
    assert others
    assert compact["layout"][-1] == [{"chart": "Telefonate pro Tag", "width": 6}]
    assert {"chart": "Telefonate pro Tag", "width": 6} not in compact["layout"][1]


def test_an_asset_only_superset_has_is_listed_and_written_with_include_new() -> None:
    exports = as_superset_exports(load_assets())
    chart = copy.deepcopy(next(c for c in exports.values() if c["uuid"] == load_assets()[ANRUFE]["uuid"]))
    chart.update(uuid="0f4d9a52-7c1e-4a8b-9d3e-2b6f1c0a9e77", slice_name="Neu")
    exports["charts/Neu_99.yaml"] = chart
    plan = plan_export(exports, ASSETS_DIR)
    assert plan.new == ["charts/Neu.yaml (Neu)"] and "charts/Neu.yaml" not in plan.files
    plan = plan_export(exports, ASSETS_DIR, include_new=True)
    assert plan.refused == [] and list(changed_files(plan.files)) == ["charts/Neu.yaml"]
    written = yaml.safe_load(plan.files["charts/Neu.yaml"])
    assert written == {**yaml.safe_load((ASSETS_DIR / ANRUFE).read_text()), "uuid": chart["uuid"], "slice_name": "Neu"}


def test_a_metric_label_and_a_column_of_an_extending_dataset() -> None:
    expanded = load_assets()
    ds = expanded[DASHBOARD_CALLS]
    next(c for c in ds["columns"] if c["column_name"] == "talk_seconds")["verbose_name"] = "Sprechzeit (s)"
    next(m for m in ds["metrics"] if m["metric_name"] == "count")["verbose_name"] = "Beine"
    plan = plan_export(as_superset_exports(expanded), ASSETS_DIR)
    assert plan.refused == []
    (name,) = changed_files(plan.files)
    compact = yaml.safe_load(plan.files[name])
    assert name == DASHBOARD_CALLS and compact["extends"] == "fct_calls" and "@@audience@@" in compact["sql"]
    assert {"column_name": "talk_seconds", "verbose_name": "Sprechzeit (s)"} in compact["add_columns"]
    assert next(m for m in compact["metrics"] if m["metric_name"] == "count")["verbose_name"] == "Beine"
    again = expand({**read_assets(), name: compact})[name]
    assert view(name, clean(name, again)) == view(name, clean(name, expanded[name]))


def test_a_dataset_sql_edited_in_the_ui_is_refused() -> None:
    expanded = load_assets()
    expanded[DASHBOARD_CALLS]["sql"] = expanded[DASHBOARD_CALLS]["sql"].replace("WHERE ", "WHERE TRUE OR ", 1)
    plan = plan_export(as_superset_exports(expanded), ASSETS_DIR)
    assert changed_files(plan.files) == {}
    (message,) = plan.refused
    assert message.startswith(f"{DASHBOARD_CALLS}: the dataset's SQL was changed in Superset's UI")
    assert "privacy rules" in message and "YAML" in message


def test_tabs_and_markdown_are_refused_with_what_to_do() -> None:
    position = copy.deepcopy(load_assets()[AGENTEN]["position"])
    position["GRID_ID"]["children"].insert(0, "MARKDOWN-1")
    position["MARKDOWN-1"] = {"type": "MARKDOWN", "id": "MARKDOWN-1", "children": [], "meta": {"code": "x"}}
    with pytest.raises(ExportRefused, match=r"has a MARKDOWN element .* cannot express tabs"):
        layout_rows(AGENTEN, position)
    expanded = load_assets()
    expanded[AGENTEN]["position"] = position
    plan = plan_export(as_superset_exports(expanded), ASSETS_DIR)
    assert changed_files(plan.files) == {} and len(plan.refused) == 1 and "MARKDOWN" in plan.refused[0]


def test_ui_edits_are_found_by_fingerprint_not_by_a_changed_repository() -> None:
    imported = render(load_assets(), Path("/nowhere.duckdb"), "build-1")
    exports = as_superset_exports(load_assets())
    recorded = {c["uuid"]: fingerprint(n, c) for n, c in exports.items()}
    assert find_ui_edits(exports, recorded, imported) == []
    edited = copy.deepcopy(exports)
    chart = next(c for n, c in edited.items() if c["slice_name" if n.startswith("charts/") else "uuid"] == "Anrufe")
    chart["params"]["y_axis_format"] = ",.2f"
    assert [e.name for e in find_ui_edits(edited, recorded, imported)] == [ANRUFE]
    # The repository made the same change: nothing to tell (the import changes nothing).
    imported[ANRUFE] = {**imported[ANRUFE], "params": {**imported[ANRUFE]["params"], "y_axis_format": ",.2f"}}
    assert find_ui_edits(edited, recorded, imported) == []
    # A new night's build stamp and ids are no edit.
    restamped = as_superset_exports(load_assets())
    for config in restamped.values():
        config.get("extra", {}) and config["extra"].update(callsight_build="build-2")
    assert {c["uuid"]: fingerprint(n, c) for n, c in restamped.items()} == recorded


def test_colours_superset_writes_on_view_are_no_ui_edit() -> None:
    """Viewing a dashboard makes Superset save the colours its charts drew (as a real browser showed:
    color_scheme_domain; shared_label_colors and map_label_colors by the same call); choosing a colour
    scheme or label colours is still an edit."""
    imported = render(load_assets(), Path("/nowhere.duckdb"), "build-1")
    exports = as_superset_exports(load_assets())
    recorded = {c["uuid"]: fingerprint(n, c) for n, c in exports.items()}
    viewed = copy.deepcopy(exports)
    for n, c in viewed.items():
        if n.startswith("dashboards/"):
            c["metadata"].update(
                color_scheme_domain=["#1FA8C9", "#454E7C"],
                shared_label_colors=["Gruppe A"],
                map_label_colors={"gruppe a": "#1FA8C9"},
            )
    assert find_ui_edits(viewed, recorded, imported) == []
    assert plan_export(viewed, ASSETS_DIR).refused == [] and changed_files(plan_export(viewed, ASSETS_DIR).files) == {}
    for key, value in (("color_scheme", "bnbColors"), ("label_colors", {"Gruppe A": "#FF0000"})):
        edited = copy.deepcopy(viewed)
        (dashboard,) = [c for c in edited.values() if c.get("uuid") == imported[AGENTEN]["uuid"]]
        dashboard["metadata"][key] = value
        assert [e.name for e in find_ui_edits(edited, recorded, imported)] == [AGENTEN], key


def test_keep_keeps_only_assets_with_a_file_of_their_own() -> None:
    """A generated asset (an English twin) cannot be exported into the repository: keeping it would keep
    it for good, so the import overwrites it even with CALLSIGHT_UI_EDITS=keep."""
    edits = [UiEdit(ANRUFE, "u-own"), UiEdit("charts/Anrufe_en.yaml", "u-twin")]
    assert ui_edit_actions(edits, "keep", {"u-own"}) == {"u-own": "kept", "u-twin": "overwritten"}
    assert ui_edit_actions(edits, "overwrite", {"u-own"}) == {"u-own": "overwritten", "u-twin": "overwritten"}
    kept = ui_edit_message(edits[0], "kept")
    assert kept.startswith(f"{ANRUFE} was changed in Superset's UI") and "`callsight export-assets` brings" in kept
    assert "the import overwrites it" in ui_edit_message(edits[1], "overwritten")


def test_ui_edits_setting_is_checked_at_start() -> None:
    assert Settings.from_env({"CALLSIGHT_HOME": "/tmp/x"}).ui_edits == "overwrite"
    assert Settings.from_env({"CALLSIGHT_HOME": "/tmp/x", "CALLSIGHT_UI_EDITS": "Keep"}).ui_edits == "keep"
    with pytest.raises(ValueError, match="CALLSIGHT_UI_EDITS must be overwrite or keep, got 'ignore'"):
        Settings.from_env({"CALLSIGHT_HOME": "/tmp/x", "CALLSIGHT_UI_EDITS": "ignore"})


# ---- a real Superset of this module's own ---------------------------------------------------------


@dataclass
class RoundTripServer:
    url: str
    env: dict[str, str]
    admin_password: str
    user_password: str

    def settings(self, **extra: str) -> Settings:
        return Settings.from_env({**self.env, **extra})

    def admin(self) -> SupersetClient:
        return SupersetClient(self.url).login("admin", self.admin_password)

    def nightly_import(self, mode: str) -> None:
        """What every night does after publishing: provisioning, the asset import first."""
        from callsight.bi.provision import provision_superset

        provision_superset(self.settings(CALLSIGHT_UI_EDITS=mode), self.url, self.admin_password, self.user_password)

    def ui_edit_entries(self) -> list[tuple[str, dict]]:
        con = duckdb.connect(str(self.settings().raw_db), read_only=True)
        try:
            entries = read_entries(con)
        finally:
            con.close()
        return [(e.subject, json.loads(e.detail)) for e in entries if e.subject.startswith("ui_edit:")]


@pytest.fixture(scope="module")
def server(published_site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoundTripServer]:
    """Superset on a copy of the published site, provisioned as a night does (fingerprints recorded)."""
    from callsight.bi.runtime import SupersetEnv, stop, wait_healthy

    settings = published_site.settings
    require_service((settings.superset_venv / "bin" / "superset").exists(), "Superset venv (make venvs)")
    home = tmp_path_factory.mktemp("roundtrip") / "home"
    skip = shutil.ignore_patterns("dagster", "logs", "data_quality", "build", "history", "superset")
    copy_home(published_site.home, home, skip)
    env = {**published_site.env, "CALLSIGHT_HOME": str(home)}
    admin_pw, user_pw = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    superset = SupersetEnv(
        Settings.from_env(env), secrets.token_urlsafe(32), extra_env=(("CALLSIGHT_AUTH_RATE_LIMIT", "1000 per second"),)
    )
    superset.init_metadata(admin_pw)
    port = free_port()
    proc = superset.start_web(port=port, workers=1, log_name="superset-roundtrip.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        s = RoundTripServer(
            url, {**env, "SUPERSET_ADMIN_PASSWORD": admin_pw, "CALLSIGHT_SUPERSET_URL": url}, admin_pw, user_pw
        )
        s.nightly_import("overwrite")
        yield s
    finally:
        stop(proc)


def export_cli(server: RoundTripServer, monkeypatch: pytest.MonkeyPatch, capsys, *args: str) -> tuple[int, str]:
    for key in [k for k in os.environ if k.startswith("CALLSIGHT_")]:
        monkeypatch.delenv(key)
    for key, value in server.env.items():
        monkeypatch.setenv(key, value)
    capsys.readouterr()
    code = main(["export-assets", *args])
    return code, capsys.readouterr().out


def chart(client: SupersetClient, name: str) -> tuple[int, dict]:
    (c,) = [c for c in client.list_all("chart", [("slice_name", "eq", name)])]
    return c["id"], json.loads(client.get(f"/api/v1/chart/{c['id']}")["result"]["params"])


def edit_chart(client: SupersetClient, name: str, **params: object) -> None:
    chart_id, current = chart(client, name)
    client.put(f"/api/v1/chart/{chart_id}", {"params": json.dumps({**current, **params})})


def edit_agenten(client: SupersetClient, width: int, filter_name: str) -> None:
    dash = client.get("/api/v1/dashboard/agenten")["result"]
    position, metadata = json.loads(dash["position_json"]), json.loads(dash["json_metadata"])
    for node in position.values():
        if (
            isinstance(node, dict)
            and node.get("type") == "CHART"
            and node["meta"]["sliceName"] == "Reaktionszeit je Agent"
        ):
            node["meta"]["width"] = width
    metadata["native_filter_configuration"][1]["name"] = filter_name
    client.put(
        f"/api/v1/dashboard/{dash['id']}",
        {"position_json": json.dumps(position), "json_metadata": json.dumps(metadata)},
    )


@pytest.mark.superset
@pytest.mark.slow
def test_export_after_a_fresh_import_is_the_repository(
    server: RoundTripServer, tmp_path: Path, monkeypatch, capsys
) -> None:
    out = tmp_path / "assets"
    code, printed = export_cli(server, monkeypatch, capsys, "--to", str(out))
    assert code == 0, printed
    assert asset_files(out) == asset_files(ASSETS_DIR)
    assert (out / "metadata.yaml").read_bytes() == (ASSETS_DIR / "metadata.yaml").read_bytes()
    assert printed.count("changed: ") == len(asset_files(ASSETS_DIR)) and "REFUSED" not in printed
    code, printed = export_cli(server, monkeypatch, capsys, "--to", str(out))
    assert code == 0 and printed.startswith(f"no changes: {out}"), printed


@pytest.mark.superset
@pytest.mark.slow
def test_ui_edits_round_trip(server: RoundTripServer, tmp_path: Path, monkeypatch, capsys) -> None:
    admin = server.admin()
    edit_chart(admin, "Anrufe", y_axis_format=",.1f")
    edit_agenten(admin, width=8, filter_name="Team")
    checkout = tmp_path / "checkout"
    shutil.copytree(ASSETS_DIR, checkout)
    code, printed = export_cli(server, monkeypatch, capsys, "--to", str(checkout))
    assert code == 0, printed
    assert sorted(line for line in printed.splitlines() if line.startswith("changed: ")) == [
        f"changed: {checkout / ANRUFE}",
        f"changed: {checkout / AGENTEN}",
    ]
    before, after = asset_files(ASSETS_DIR), asset_files(checkout)
    assert sorted(n for n in after if after[n] != before[n]) == [ANRUFE, AGENTEN]
    assert diff_lines(before[ANRUFE].decode(), after[ANRUFE].decode()) == (
        {"  y_axis_format: ',d'"},
        {"  y_axis_format: ',.1f'"},
    )
    assert diff_lines(before[AGENTEN].decode(), after[AGENTEN].decode()) == (
        {"  name: Gruppe", "- - {chart: Reaktionszeit je Agent, width: 12}"},
        {"  name: Team", "- - {chart: Reaktionszeit je Agent, width: 8}"},
    )
    # Import the exported files, export again: the same bytes.
    settings = server.settings()
    served = settings.served_db
    admin.import_assets(bundle(render(load_assets(checkout), served, served_build_id(served))))
    fresh = tmp_path / "fresh"
    code, printed = export_cli(server, monkeypatch, capsys, "--to", str(fresh))
    assert code == 0 and asset_files(fresh) == after, printed
    code, printed = export_cli(server, monkeypatch, capsys, "--to", str(checkout))
    assert code == 0 and printed.startswith("no changes"), printed


@pytest.mark.superset
@pytest.mark.slow
def test_the_nightly_import_keeps_or_overwrites_a_ui_edit(server: RoundTripServer, caplog) -> None:
    server.nightly_import("overwrite")  # whatever other tests left: the repository's assets again
    seen = len(server.ui_edit_entries())
    admin = server.admin()
    assert chart(admin, "Anrufe")[1]["y_axis_format"] == ",d"
    edit_chart(admin, "Anrufe", y_axis_format=",.2f")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="callsight.bi.ui_edits"):
        server.nightly_import("keep")
    assert chart(admin, "Anrufe")[1]["y_axis_format"] == ",.2f"
    (uuid,) = {c["uuid"] for n, c in read_assets().items() if n == ANRUFE}
    assert server.ui_edit_entries()[seen:] == [(f"ui_edit:{ANRUFE}", {"action": "kept", "uuid": uuid})]
    (message,) = [r.getMessage() for r in caplog.records if ANRUFE in r.getMessage()]
    assert "changed in Superset's UI" in message and "kept" in message and "callsight export-assets" in message
    store = server.settings().superset_home / STORE_NAME
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    # Kept until exported: the next night tells again.
    server.nightly_import("keep")
    assert chart(admin, "Anrufe")[1]["y_axis_format"] == ",.2f"
    assert [d["action"] for _, d in server.ui_edit_entries()[seen:]] == ["kept", "kept"]
    server.nightly_import("overwrite")
    assert chart(admin, "Anrufe")[1]["y_axis_format"] == ",d"
    assert server.ui_edit_entries()[seen + 2 :] == [(f"ui_edit:{ANRUFE}", {"action": "overwritten", "uuid": uuid})]
    server.nightly_import("overwrite")  # nothing edited since: nothing to tell
    assert len(server.ui_edit_entries()) == seen + 3


@pytest.mark.superset
@pytest.mark.slow
def test_a_dataset_sql_edited_in_the_ui_is_refused_by_export(
    server: RoundTripServer, tmp_path: Path, monkeypatch, capsys
) -> None:
    admin = server.admin()
    (ds,) = list(admin.list_all("dataset", [("table_name", "eq", "dashboard_calls")]))
    sql = admin.get(f"/api/v1/dataset/{ds['id']}")["result"]["sql"]
    admin.put(
        f"/api/v1/dataset/{ds['id']}",
        {"sql": sql.replace("FROM marts.fct_calls AS c", "FROM marts.fct_calls AS c -- ")},
    )
    checkout = tmp_path / "checkout"
    shutil.copytree(ASSETS_DIR, checkout)
    try:
        code, printed = export_cli(server, monkeypatch, capsys, "--to", str(checkout))
    finally:
        server.nightly_import("overwrite")
    assert code == 1
    assert f"REFUSED {DASHBOARD_CALLS}: the dataset's SQL was changed in Superset's UI" in printed
    assert "Make the change in the YAML's `sql`" in printed
    assert asset_files(checkout) == asset_files(ASSETS_DIR)


def changed_keys(before: dict[str, dict], after: dict[str, dict]) -> dict[str, list[str]]:
    """Per exported file: the keys (a.b.c) whose value differs between two of Superset's exports."""

    def flat(value: object, path: str) -> dict[str, object]:
        if isinstance(value, dict) and value:
            return {k: v for key, item in value.items() for k, v in flat(item, f"{path}.{key}").items()}
        return {path: value}

    out = {}
    for name in sorted(set(before) | set(after)):
        a, b = flat(before.get(name), ""), flat(after.get(name), "")
        keys = sorted(k.lstrip(".") for k in set(a) | set(b) if a.get(k) != b.get(k))
        if keys:
            out[name] = keys
    return out


@pytest.mark.superset
@pytest.mark.slow
def test_opening_dashboards_in_a_browser_is_no_ui_edit(
    server: RoundTripServer, tmp_path: Path, monkeypatch, capsys, caplog
) -> None:
    """Superset writes into a dashboard when it is merely viewed (label colours) by someone who may edit
    it, the admin: no UI edit, no audit entry, export-assets writes nothing; an edit made afterwards is still
    one. (Members may not write dashboards: their views are not opened here.)"""
    server.nightly_import("overwrite")  # the repository's assets, fingerprints recorded
    seen = len(server.ui_edit_entries())
    admin = server.admin()
    before = fetch_export(admin)
    boards = dashboards(load_assets())
    assert set(boards) == {"agenten", "kunden", "projekte", "management-summary"}
    with chromium() as driver:
        login(driver, server.url, "admin", server.admin_password)
        for slug, board in sorted(boards.items()):
            open_dashboard(driver, server.url, slug, len(charts_of(board)))
            time.sleep(3)  # the dashboard saves its label colours after rendering
    written = changed_keys(before, fetch_export(admin))
    # What a real browser made Superset write (6.1: metadata.color_scheme_domain of the dashboards whose
    # charts drew categorical colours, when an admin opened them).
    assert written, "Superset wrote nothing on view: this test no longer shows that such writes are ignored"
    view_keys = {f"metadata.{k}" for k in VIEW_WRITTEN_METADATA}
    assert all(".".join(k.split(".")[:2]) in view_keys for keys in written.values() for k in keys), written
    # export-assets: nothing to write, byte for byte.
    checkout = tmp_path / "checkout"
    shutil.copytree(ASSETS_DIR, checkout)
    code, printed = export_cli(server, monkeypatch, capsys, "--to", str(checkout))
    assert code == 0 and printed.startswith("no changes"), printed
    assert asset_files(checkout) == asset_files(ASSETS_DIR)
    # The nightly import with CALLSIGHT_UI_EDITS=keep: no edit found, nothing kept back, no audit entry.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="callsight.bi.ui_edits"):
        server.nightly_import("keep")
    assert [r.getMessage() for r in caplog.records if "changed in Superset's UI" in r.getMessage()] == []
    assert server.ui_edit_entries()[seen:] == []
    # A real edit of a viewed dashboard is still one (and kept with keep).
    with chromium() as driver:
        login(driver, server.url, "admin", server.admin_password)
        open_dashboard(driver, server.url, "agenten", len(charts_of(boards["agenten"])))
        time.sleep(3)
    edit_agenten(admin, width=8, filter_name="Team")
    try:
        server.nightly_import("keep")
        (uuid,) = {c["uuid"] for n, c in read_assets().items() if n == AGENTEN}
        assert server.ui_edit_entries()[seen:] == [(f"ui_edit:{AGENTEN}", {"action": "kept", "uuid": uuid})]
    finally:
        server.nightly_import("overwrite")
