"""Superset assets kept as readable YAML under superset/assets, bundled for import with the
environment-specific parts (warehouse path) injected. Nothing machine-specific is committed."""

from __future__ import annotations

import copy
import io
import zipfile
from pathlib import Path
from typing import Any

import yaml

from callsight.bi.agent_macros import AssetError, expand_agent_macros
from callsight.bi.translate import TWIN_KEY, with_twins
from callsight.site.settings import REPO_ROOT

ASSETS_DIR = REPO_ROOT / "superset" / "assets"
WAREHOUSE_PLACEHOLDER = "__CALLSIGHT_SERVED_WAREHOUSE__"


def read_assets(assets_dir: Path = ASSETS_DIR) -> dict[str, dict]:
    """The asset files as written, by relative path (databases/..., datasets/..., charts/..., dashboards/...)."""
    out: dict[str, dict] = {}
    for path in sorted(assets_dir.rglob("*.yaml")):
        out[path.relative_to(assets_dir).as_posix()] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return out


def load_assets(assets_dir: Path = ASSETS_DIR) -> dict[str, dict]:
    """All assets in Superset's import format (compact forms expanded and checked), with their English
    twins (bi/translate.py): provisioning protects a twin as it protects its original."""
    return with_twins(expand(read_assets(assets_dir)))


def render(assets: dict[str, dict], served_db: Path, build_id: str | None = None) -> dict[str, dict]:
    """Inject the served warehouse path; refuse a database definition that could write or read files.

    With the served build's id every dataset's `extra` names that build: the import then changes each
    dataset, and Superset's result caches (keyed on the dataset's change time) no longer answer from an
    older build - calls removed by retention or erasure are gone from the charts at once."""
    rendered: dict[str, dict] = {}
    for name, config in assets.items():
        if name.startswith("datasets/") and build_id:
            config = {**config, "extra": {**(config.get("extra") or {}), "callsight_build": build_id}}
        if name.startswith("databases/"):
            config = dict(config)
            if WAREHOUSE_PLACEHOLDER not in config["sqlalchemy_uri"]:
                raise ValueError(f"{name}: sqlalchemy_uri must contain {WAREHOUSE_PLACEHOLDER}")
            config["sqlalchemy_uri"] = f"duckdb:///{served_db.resolve().as_posix()}"
            args = config.get("extra", {}).get("engine_params", {}).get("connect_args", {})
            if args.get("read_only") is not True or args.get("config", {}).get("enable_external_access") is not False:
                raise ValueError(f"{name}: the warehouse connection must be read_only with external access off")
            if config.get("allow_dml") or config.get("allow_file_upload"):
                raise ValueError(f"{name}: DML and file upload must stay off")
        rendered[name] = config
    return rendered


# Keys of callsight's own, read by provisioning and never sent to Superset.
CALLSIGHT_KEYS = ("admin_only", TWIN_KEY)


def admin_only(assets: dict[str, dict], kind: str) -> set[str]:
    """Names of the assets of one kind marked `admin_only: true` (tables for datasets, slugs for dashboards)."""
    key = {"datasets": "table_name", "dashboards": "slug"}[kind]
    return {c[key] for n, c in assets.items() if n.startswith(f"{kind}/") and c.get("admin_only")}


def bundle(rendered: dict[str, dict]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, config in rendered.items():
            config = {k: v for k, v in config.items() if k not in CALLSIGHT_KEYS}
            zf.writestr(f"callsight_assets/{name}", yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return buf.getvalue()


def uuids_of(assets: dict[str, dict], kind: str) -> dict[str, str]:
    """{uuid: name} of one asset kind ('datasets', 'charts', 'dashboards')."""
    key = {
        "datasets": "table_name",
        "charts": "slice_name",
        "dashboards": "dashboard_title",
        "databases": "database_name",
    }[kind]
    return {c["uuid"]: c[key] for n, c in assets.items() if n.startswith(f"{kind}/")}


# ---- compact asset forms --------------------------------------------------------------------------
# The YAML under superset/assets stays short and readable; these expand it into Superset's import
# format. Dashboard datasets `extend` a mart dataset (same columns and metrics, SQL on top); charts
# leave out Superset's boilerplate; dashboards give `layout` (rows of charts) and `filters` instead
# of Superset's position tree and native-filter JSON.

DATASET_DEFAULTS: dict[str, Any] = {
    "catalog": None,
    "default_endpoint": None,
    "offset": 0,
    "cache_timeout": None,
    "sql": None,
    "params": None,
    "template_params": None,
    "filter_select_enabled": True,
    "fetch_values_predicate": None,
    "extra": None,
    "normalize_columns": False,
    "always_filter_main_dttm": False,
    "folders": None,
    "version": "1.0.0",
}
COLUMN_DEFAULTS: dict[str, Any] = {
    "verbose_name": None,
    "is_dttm": False,
    "is_active": True,
    "type": "VARCHAR",
    "advanced_data_type": None,
    "groupby": True,
    "filterable": True,
    "expression": None,
    "description": None,
    "python_date_format": None,
    "extra": None,
}
CHART_DEFAULTS: dict[str, Any] = {
    "description": None,
    "certified_by": None,
    "certification_details": None,
    "query_context": None,
    "cache_timeout": None,
    "version": "1.0.0",
}
DASHBOARD_DEFAULTS: dict[str, Any] = {
    "description": None,
    "css": "",
    "certified_by": "",
    "certification_details": "",
    "published": True,
    "version": "1.0.0",
}
# Every chart is cut by the dashboard's period: the native time filter overrides this filter.
PERIOD_FILTER = {
    "clause": "WHERE",
    "comparator": "No filter",
    "expressionType": "SIMPLE",
    "operator": "TEMPORAL_RANGE",
    "subject": "call_date",
}


# A select filter's options; `controls` in a filter of the compact form changes some of them.
SELECT_CONTROLS: dict[str, Any] = {
    "enableEmptyFilter": False,
    "multiSelect": True,
    "searchAllOptions": False,
    "inverseSelection": False,
    "defaultToFirstItem": False,
    "sortAscending": True,
}


def _by_kind(assets: dict[str, dict], kind: str) -> dict[str, tuple[str, dict]]:
    return {c["uuid"]: (n, c) for n, c in assets.items() if n.startswith(f"{kind}/")}


def expand_dataset(name: str, config: dict, assets: dict[str, dict]) -> dict:
    own_keys = ("extends", "add_columns", "drop_columns")
    out = {**DATASET_DEFAULTS, **{k: v for k, v in config.items() if k not in own_keys}}
    if out.get("sql"):
        out["sql"] = expand_agent_macros(name, out["sql"])
    if "extends" in config:
        bases = [c for n, c in assets.items() if n.startswith("datasets/") and c["table_name"] == config["extends"]]
        if len(bases) != 1:
            raise AssetError(f"{name}: extends unknown dataset {config['extends']!r}")
        base = bases[0]
        out.setdefault("metrics", copy.deepcopy(base["metrics"]))
        dropped = set(config.get("drop_columns", []))
        unknown = dropped - {c["column_name"] for c in base["columns"]}
        if unknown:
            raise AssetError(f"{name}: drop_columns not in {config['extends']}: {sorted(unknown)}")
        # An add_columns entry naming a base column changes that column (what export-assets writes).
        changed = {c["column_name"]: c for c in config.get("add_columns", [])}
        kept = [{**c, **changed.get(c["column_name"], {})} for c in base["columns"] if c["column_name"] not in dropped]
        added = [c for c in config.get("add_columns", []) if c["column_name"] not in {k["column_name"] for k in kept}]
        out["columns"] = copy.deepcopy(kept) + list(config.get("columns", [])) + added
        out.setdefault("main_dttm_col", base.get("main_dttm_col"))
    else:
        out["columns"] = out.get("columns", []) + config.get("add_columns", [])
    out["columns"] = [{**COLUMN_DEFAULTS, **c} for c in out["columns"]]
    names = [c["column_name"] for c in out["columns"]]
    if len(names) != len(set(names)):
        raise AssetError(f"{name}: duplicate columns {sorted({n for n in names if names.count(n) > 1})}")
    out["metrics"] = [
        {"metric_type": None, "currency": None, "extra": None, "warning_text": None, "description": None, **m}
        for m in out.get("metrics", [])
    ]
    return out


def expand_chart(name: str, config: dict, datasets: dict[str, tuple[str, dict]]) -> dict:
    if config.get("dataset_uuid") not in datasets:
        raise AssetError(f"{name}: unknown dataset_uuid {config.get('dataset_uuid')}")
    out = {**CHART_DEFAULTS, **config}
    params = {"datasource": "__table", "viz_type": config["viz_type"], "extra_form_data": {}, **config["params"]}
    filters = list(params.get("adhoc_filters", []))  # a copy: the compact form stays as it was read
    if not any(f.get("operator") == "TEMPORAL_RANGE" for f in filters):
        filters.insert(0, dict(PERIOD_FILTER))
    params["adhoc_filters"] = filters
    out["params"] = params
    return out


def chart_columns(chart: dict, datasets: dict[str, tuple[str, dict]]) -> set[str]:
    return {c["column_name"] for c in datasets[chart["dataset_uuid"]][1]["columns"]}


def expand_dashboard(name: str, config: dict, charts: dict[str, tuple[str, dict]], datasets: dict) -> dict:
    """`layout`: rows of {chart: name or uuid, width, height}; `filters`: native filters by column (a select
    filter's `controls` change its options); `metadata`: dashboard settings beside the defaults."""
    out = {**DASHBOARD_DEFAULTS, **{k: v for k, v in config.items() if k not in ("layout", "filters", "metadata")}}
    if "layout" not in config:
        return out
    position: dict[str, Any] = {
        "DASHBOARD_VERSION_KEY": "v2",
        "ROOT_ID": {"type": "ROOT", "id": "ROOT_ID", "children": ["GRID_ID"]},
        "GRID_ID": {"type": "GRID", "id": "GRID_ID", "children": [], "parents": ["ROOT_ID"]},
        "HEADER_ID": {"id": "HEADER_ID", "type": "HEADER", "meta": {"text": config["dashboard_title"]}},
    }
    placeholder: dict[str, int] = {}  # chart uuid -> chartId placeholder (import remaps by uuid)
    by_name = {c["slice_name"]: u for u, (_, c) in charts.items()}  # layout names charts by name or uuid
    for r, row in enumerate(config["layout"], start=1):
        row_id = f"ROW-{r}"
        position["GRID_ID"]["children"].append(row_id)
        position[row_id] = {
            "type": "ROW",
            "id": row_id,
            "children": [],
            "parents": ["ROOT_ID", "GRID_ID"],
            "meta": {"background": "BACKGROUND_TRANSPARENT"},
        }
        if sum(item.get("width", 4) for item in row) > 12:
            raise AssetError(f"{name}: row {r} is wider than 12 columns")
        for item in row:
            uuid = by_name.get(item["chart"], item["chart"])
            if uuid not in charts:
                raise AssetError(f"{name}: row {r} names unknown chart {item['chart']!r}")
            if uuid in placeholder:
                raise AssetError(f"{name}: chart {charts[uuid][1]['slice_name']!r} placed twice")
            placeholder[uuid] = len(placeholder) + 1
            chart_id = f"CHART-{uuid[:8]}"
            position[row_id]["children"].append(chart_id)
            position[chart_id] = {
                "type": "CHART",
                "id": chart_id,
                "children": [],
                "parents": ["ROOT_ID", "GRID_ID", row_id],
                "meta": {
                    "chartId": placeholder[uuid],
                    "width": item.get("width", 4),
                    "height": item.get("height", 50),
                    "uuid": uuid,
                    "sliceName": charts[uuid][1]["slice_name"],
                },
            }
    out["position"] = position
    native_filters = []
    for f in config.get("filters", []):
        native_filters.append(_native_filter(name, f, placeholder, charts, datasets))
    out["metadata"] = {
        "color_scheme": "supersetColors",
        "cross_filters_enabled": False,
        "expanded_slices": {},
        "refresh_frequency": 0,
        "timed_refresh_immune_slices": [],
        "default_filters": "{}",
        "native_filter_configuration": native_filters,
        "shared_label_colors": [],
        "label_colors": {},
        **config.get("metadata", {}),  # settings made in Superset's UI (colours, refresh), by export-assets
    }
    return out


def _native_filter(name: str, f: dict, placeholder: dict[str, int], charts: dict, datasets: dict) -> dict:
    excluded = [placeholder[u] for u in f.get("exclude_charts", [])]
    scoped = [u for u in placeholder if placeholder[u] not in excluded]
    base: dict[str, Any] = {
        "id": f["id"],
        "name": f["name"],
        "type": "NATIVE_FILTER",
        "description": f.get("description", ""),
        "cascadeParentIds": [],
        "scope": {"rootPath": ["ROOT_ID"], "excluded": excluded},
        # Superset 6.0/6.1 does not remap chartsInScope on import: provision sets the real ids.
        "chartsInScope": [placeholder[u] for u in scoped],
        "tabsInScope": [],
    }
    if f["type"] == "time":
        value = f.get("default", "No filter")
        return {
            **base,
            "filterType": "filter_time",
            "targets": [{}],
            "controlValues": {"enableEmptyFilter": False},
            "defaultDataMask": {"extraFormData": {"time_range": value}, "filterState": {"value": value}},
        }
    column = f["column"]
    if f["dataset"] not in datasets:
        raise AssetError(f"{name}: filter {f['name']!r} takes values from unknown dataset {f['dataset']}")
    if column not in {c["column_name"] for c in datasets[f["dataset"]][1]["columns"]}:
        raise AssetError(f"{name}: filter {f['name']!r}: dataset has no column {column!r}")
    for u in scoped:
        # A filter on a column the chart's dataset lacks is silently ignored by Superset: refuse it.
        if column not in chart_columns(charts[u][1], datasets):
            raise AssetError(
                f"{name}: filter {f['name']!r} ({column}) is in scope of chart "
                f"{charts[u][1]['slice_name']!r} whose dataset lacks that column"
            )
    return {
        **base,
        "filterType": "filter_select",
        "targets": [{"column": {"name": column}, "datasetUuid": f["dataset"]}],
        "controlValues": {**SELECT_CONTROLS, **f.get("controls", {})},
        "defaultDataMask": {"extraFormData": {}, "filterState": {}, "ownState": {}},
    }


def expand(assets: dict[str, dict]) -> dict[str, dict]:
    """All assets in Superset's import format."""
    out: dict[str, dict] = {}
    databases = [c["uuid"] for n, c in assets.items() if n.startswith("databases/")]
    for name, config in assets.items():
        if name.startswith("datasets/"):
            config = expand_dataset(name, config, assets)
            if "database_uuid" not in config:
                if len(databases) != 1:
                    raise AssetError(f"{name}: database_uuid needed when there is not exactly one database")
                config["database_uuid"] = databases[0]
        out[name] = config
    datasets = _by_kind(out, "datasets")
    for name, config in assets.items():
        if name.startswith("charts/"):
            out[name] = expand_chart(name, config, datasets)
    charts = _by_kind(out, "charts")
    for name, config in assets.items():
        if name.startswith("dashboards/"):
            out[name] = expand_dashboard(name, config, charts, datasets)
    return out
