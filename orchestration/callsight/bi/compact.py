"""Superset's export of an asset back into the compact form of superset/assets: the inverse of
assets.expand, guided by the asset's file in the repository (its key order, `extends`, SQL macros).

`clean` is an exported or expanded asset without what Superset generates per server (ids, the night's
build, empty defaults it adds); `view` is that in the shape the compact form can express (a dashboard's
rows instead of its position tree) and refuses what it cannot (tabs, markdown, headers). An asset whose
compact form does not expand to the same view is refused, never written half right."""

from __future__ import annotations

import copy
from typing import Any

from callsight.bi.agent_macros import expand_agent_macros
from callsight.bi.assets import (
    CALLSIGHT_KEYS,
    CHART_DEFAULTS,
    COLUMN_DEFAULTS,
    DASHBOARD_DEFAULTS,
    DATASET_DEFAULTS,
    PERIOD_FILTER,
    SELECT_CONTROLS,
)

METRIC_DEFAULTS: dict[str, Any] = {
    "metric_type": None,
    "currency": None,
    "extra": None,
    "warning_text": None,
    "description": None,
}
# Chart params Superset sets per server or per save: the dataset's id, the chart's and its dashboards' ids.
GENERATED_PARAMS = ("datasource", "slice_id", "dashboards")
# Keys an adhoc filter gets in the chart editor, not part of what it filters.
FILTER_EDITOR_KEYS = ("filterOptionName", "isExtra", "isNew", "datasourceWarning")
# Dashboard metadata Superset keeps per server (chart ids, cross-filter scopes derived from the layout).
GENERATED_METADATA = ("chart_configuration", "global_chart_configuration", "positions")
# Dashboard metadata Superset writes by itself whenever an owner or admin merely views a dashboard (PUT
# /api/v1/dashboard/<id>/colors: the colours its charts drew), so never an edit. color_scheme and
# label_colors, which that call writes back unchanged, stay: choosing them in the UI is an edit.
VIEW_WRITTEN_METADATA = ("color_scheme_domain", "shared_label_colors", "map_label_colors")
ID_METADATA = ("timed_refresh_immune_slices", "expanded_slices", "filter_scopes")
CHART_META = {"chartId", "width", "height", "uuid", "sliceName"}
EMPTY: tuple[Any, ...] = (None, {}, [], "", "{}")


class ExportRefused(ValueError):
    """An asset exported from Superset cannot be written back as the compact form (says why and what to do)."""


def kind_of(name: str) -> str:
    return name.split("/", 1)[0]


def _no_none(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}


def _by_name(items: list[dict], key: str) -> dict[str, dict]:
    return {i[key]: _no_none(i) for i in sorted(items, key=lambda i: i[key])}


def clean(name: str, config: dict) -> dict:
    """Pure: an asset (Superset's export or assets.expand's) without ids, the build stamp and nulls;
    a dataset's columns and metrics by name. Never raises on a well-formed asset (fingerprints use it)."""
    out = {k: v for k, v in copy.deepcopy(config).items() if v is not None and k not in CALLSIGHT_KEYS}
    kind = kind_of(name)
    if kind == "datasets":
        extra = {k: v for k, v in (out.get("extra") or {}).items() if k != "callsight_build"}
        out.pop("extra", None)
        if extra:
            out["extra"] = extra
        out["columns"] = _by_name(out.get("columns", []), "column_name")
        out["metrics"] = _by_name(out.get("metrics", []), "metric_name")
    elif kind == "charts":
        out.pop("query_context", None)  # the chart editor derives it from params
        params = {k: v for k, v in (out.get("params") or {}).items() if k not in GENERATED_PARAMS}
        for key in ("annotation_layers", "extra_form_data", "url_params"):
            if params.get(key) in EMPTY:
                params.pop(key, None)
        if "adhoc_filters" in params:
            params["adhoc_filters"] = [
                {k: v for k, v in f.items() if k not in FILTER_EDITOR_KEYS} for f in params["adhoc_filters"]
            ]
        out["params"] = params
    elif kind == "dashboards":
        position = out.get("position") or {}
        uuids = {n["meta"]["chartId"]: n["meta"].get("uuid") for n in _nodes(position, "CHART")}
        for node in _nodes(position, "CHART"):
            node["meta"].pop("chartId", None)
        metadata = {
            k: v
            for k, v in (out.get("metadata") or {}).items()
            if v not in EMPTY and k not in GENERATED_METADATA + VIEW_WRITTEN_METADATA
        }
        filters = []
        for f in metadata.pop("native_filter_configuration", []):
            f = {k: v for k, v in f.items() if k != "chartsInScope"}  # provision sets it from the layout
            scope = dict(f.get("scope") or {})
            scope["excluded"] = sorted(uuids.get(i, str(i)) for i in scope.get("excluded", []))
            f["scope"] = scope
            if f.get("filterType") == "filter_select":
                f["controlValues"] = {**SELECT_CONTROLS, **(f.get("controlValues") or {})}
            filters.append(f)
        if filters:
            metadata["native_filter_configuration"] = filters
        out["metadata"] = metadata
    return out


def _nodes(position: dict, kind: str) -> list[dict]:
    return [n for n in position.values() if isinstance(n, dict) and n.get("type") == kind]


def layout_rows(name: str, position: dict) -> list[list[dict]]:
    """Pure: the dashboard's rows of charts [{chart: uuid, width, height}], or ExportRefused for any
    element the compact form has no words for."""
    grid = position.get("GRID_ID") or {}
    rows = []
    for row_id in grid.get("children", []):
        row = position.get(row_id) or {}
        if row.get("type") != "ROW":
            raise ExportRefused(_unsupported(name, row.get("type", "?"), row_id))
        if (row.get("meta") or {}).get("background", "BACKGROUND_TRANSPARENT") != "BACKGROUND_TRANSPARENT":
            raise ExportRefused(f"{name}: row {row_id} has a background; the compact form's rows have none")
        items = []
        for child_id in row.get("children", []):
            child = position.get(child_id) or {}
            if child.get("type") != "CHART":
                raise ExportRefused(_unsupported(name, child.get("type", "?"), child_id))
            meta = child.get("meta") or {}
            other = sorted(set(meta) - CHART_META)
            if other:
                raise ExportRefused(
                    f"{name}: chart {meta.get('sliceName')!r} has {', '.join(other)} on the dashboard, which the "
                    "compact form cannot carry: rename the chart itself instead, or undo it in Superset's UI"
                )
            items.append({"chart": meta.get("uuid"), "width": meta.get("width", 4), "height": meta.get("height", 50)})
        rows.append(items)
    return rows


def _unsupported(name: str, kind: str, node: str) -> str:
    return (
        f"{name}: the dashboard has a {kind} element ({node}). The compact form (superset/assets, rows of charts) "
        "cannot express tabs, columns, headers, markdown or dividers: remove it in Superset's UI and export "
        "again, or keep the dashboard's layout in the YAML by hand (docs/dashboards-and-reports.md)"
    )


def view(name: str, cleaned: dict) -> dict:
    """Pure: the cleaned asset as the compact form can state it: a dashboard's rows instead of its position
    tree (ExportRefused for anything else in it), its native filters in order with excluded charts sorted."""
    if kind_of(name) != "dashboards" or "position" not in cleaned:
        return cleaned
    out = {k: v for k, v in cleaned.items() if k != "position"}
    out["layout"] = layout_rows(name, cleaned["position"])
    return out


def differences(a: Any, b: Any, path: str = "", limit: int = 6) -> list[str]:
    """Pure: where two values differ, as dotted paths (at most `limit`)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in list(a) + [k for k in b if k not in a]:
            if a.get(k) != b.get(k):
                out += differences(a.get(k), b.get(k), f"{path}.{k}" if path else str(k), limit)
        return out[:limit]
    return [] if a == b else [path or "(value)"]


# ---- the reverse of expand ------------------------------------------------------------------------


def _fields(values: dict, defaults: dict, template: dict, skip: tuple[str, ...] = ()) -> dict:
    """Pure: the keys of an asset the compact form writes: the template's keys (in its order, as the file
    has them), then every other key whose value is not its default (a missing value is null)."""
    out: dict[str, Any] = {}
    for k in [*template, *values, *defaults]:
        if k in skip or k in out:
            continue
        if k in CALLSIGHT_KEYS:  # callsight's own (never in Superset): as the file has it
            if k in template:
                out[k] = template[k]
            continue
        if k in template or values.get(k) != defaults.get(k):
            out[k] = values.get(k)
    return out


def compact_chart(cleaned: dict, template: dict) -> dict:
    """Pure: a chart as the compact form (Superset's params without what expand_chart adds)."""
    out = _fields(cleaned, CHART_DEFAULTS, template, skip=("params", "query_context"))
    params = dict(cleaned.get("params") or {})
    params.pop("datasource", None)
    if params.get("viz_type") == cleaned.get("viz_type"):
        params.pop("viz_type")
    filters = list(params.get("adhoc_filters", []))
    if filters and filters[0] == PERIOD_FILTER and not any(f.get("operator") == "TEMPORAL_RANGE" for f in filters[1:]):
        filters = filters[1:]
    params.pop("adhoc_filters", None)
    if filters or "adhoc_filters" in template.get("params", {}):
        params["adhoc_filters"] = filters
    order = list(template.get("params", {}))
    out["params"] = {k: params[k] for k in order + [k for k in params if k not in order] if k in params}
    return {k: out[k] for k in _order(out, template, ("params",))}


def _order(out: dict, template: dict, after: tuple[str, ...]) -> list[str]:
    """Template keys first, new keys before the `after` keys (the long ones) of a new asset."""
    keys = [k for k in template if k in out]
    rest = [k for k in out if k not in keys]
    return keys + [k for k in rest if k not in after] + [k for k in rest if k in after]


def _item(values: dict, defaults: dict, template: dict | None) -> dict:
    full = {**defaults, **values}
    return _fields(full, defaults, template or {})


def _items(values: dict[str, dict], defaults: dict, templates: list[dict], key: str) -> list[dict]:
    """Pure: columns or metrics in the template's order, new ones after, each without its defaults."""
    by = {t[key]: t for t in templates}
    names = [n for n in by if n in values] + [n for n in values if n not in by]
    return [_item(values[n], defaults, by.get(n)) for n in names]


def compact_dataset(name: str, cleaned: dict, template: dict, assets: dict[str, dict], databases: int) -> dict:
    """Pure: a dataset as the compact form. `assets` holds the (already converted) datasets it may extend;
    a changed SQL is refused: the repository's SQL has the agent macros that carry the privacy rules."""
    if template.get("sql") or cleaned.get("sql"):
        expected = expand_agent_macros(name, template["sql"]) if template.get("sql") else None
        if template and cleaned.get("sql") != expected:
            raise ExportRefused(
                f"{name}: the dataset's SQL was changed in Superset's UI. It is not written back: the SQL in "
                "the YAML carries the privacy rules (@@audience@@, @@agent_key@@, @@visible@@ ...). Make the "
                "change in the YAML's `sql` and let the next import bring it to Superset"
            )
    skip = ("columns", "metrics", "extends", "add_columns", "drop_columns")
    if databases == 1 and "database_uuid" not in template:
        skip += ("database_uuid",)
    base = next(
        (c for n, c in assets.items() if kind_of(n) == "datasets" and c.get("table_name") == template.get("extends")),
        None,
    )
    inherited = {"main_dttm_col": base.get("main_dttm_col")} if base else {}  # what expand takes from the base
    out = _fields(cleaned, {**DATASET_DEFAULTS, **inherited}, template, skip=skip)
    if template.get("sql"):
        out["sql"] = template["sql"]
    if base is None:
        out["metrics"] = _items(cleaned["metrics"], METRIC_DEFAULTS, template.get("metrics", []), "metric_name")
        out["columns"] = _items(cleaned["columns"], COLUMN_DEFAULTS, template.get("columns", []), "column_name")
        return {k: out[k] for k in _order(out, template, ("metrics", "columns"))}
    out["extends"] = template["extends"]
    base_metrics = {m["metric_name"]: _no_none({**METRIC_DEFAULTS, **m}) for m in base.get("metrics", [])}
    if "metrics" in template or cleaned["metrics"] != dict(sorted(base_metrics.items())):
        out["metrics"] = _items(
            cleaned["metrics"], METRIC_DEFAULTS, template.get("metrics", base.get("metrics", [])), "metric_name"
        )
    base_cols = {c["column_name"]: {**COLUMN_DEFAULTS, **c} for c in base.get("columns", [])}
    have = cleaned["columns"]
    dropped = [c for c in template.get("drop_columns", []) if c not in have]
    dropped += [c for c in base_cols if c not in have and c not in dropped]
    own = template.get("columns", [])
    own_names = {c["column_name"] for c in own}
    if own:
        out["columns"] = _items({n: have[n] for n in have if n in own_names}, COLUMN_DEFAULTS, own, "column_name")
    added = []
    templates = {c["column_name"]: c for c in template.get("add_columns", [])}
    for col in template.get("add_columns", []) + [{"column_name": n} for n in have if n not in templates]:
        n = col["column_name"]
        if n not in have or n in own_names:
            continue
        full = {**COLUMN_DEFAULTS, **have[n]}
        if n not in base_cols:
            added.append(_item(have[n], COLUMN_DEFAULTS, templates.get(n)))
            continue
        diff = {k: v for k, v in full.items() if v != base_cols[n].get(k)}
        if diff:
            keys = [k for k in templates.get(n, {}) if k in diff or k == "column_name"]
            entry = {"column_name": n, **{k: full[k] for k in keys if k != "column_name"}}
            added.append({**entry, **{k: v for k, v in diff.items() if k not in entry}})
    if dropped:
        out["drop_columns"] = dropped
    if added:
        out["add_columns"] = added
    return {k: out[k] for k in _order(out, template, ("sql", "drop_columns", "metrics", "columns", "add_columns"))}


def compact_dashboard(
    name: str, cleaned: dict, template: dict, chart_names: dict[str, str], named_before: dict[str, str] | None = None
) -> dict:
    """Pure: a dashboard as the compact form: `layout` rows from its position tree, `filters` from its
    native filters (datasets by uuid), `metadata` for settings beside the defaults. `chart_names` maps
    chart uuids to names: the layout names a chart where its name is unique (`named_before`: the names
    the template's layout may still use)."""
    skip = ("position", "metadata", "layout", "filters", "json_metadata", "position_json")
    out = _fields(cleaned, DASHBOARD_DEFAULTS, template, skip=skip)
    unique = {u: n for u, n in chart_names.items() if list(chart_names.values()).count(n) == 1}
    by_name = {n: u for u, n in {**(named_before or {}), **unique}.items()}
    # The file's entry of a chart: its way of naming the chart, its keys even where they are defaults.
    placed = {by_name.get(i["chart"], i["chart"]): i for row in template.get("layout", []) for i in row}
    layout = []
    for row in layout_rows(name, cleaned.get("position") or {}):
        items = []
        for item in row:
            was = placed.get(item["chart"], {})
            chart = was["chart"] if was.get("chart") in (item["chart"], unique.get(item["chart"])) else None
            entry: dict[str, Any] = {"chart": chart or unique.get(item["chart"], item["chart"])}
            for key, default in (("width", 4), ("height", 50)):
                if item[key] != default or key in was:
                    entry[key] = item[key]
            items.append(entry)
        layout.append(items)
    metadata = dict(cleaned.get("metadata") or {})
    templates = {f["id"]: f for f in template.get("filters", [])}
    native = metadata.pop("native_filter_configuration", [])
    filters = [_compact_filter(name, f, templates.get(f["id"], {})) for f in native]
    defaults = {"color_scheme": "supersetColors", "cross_filters_enabled": False, "refresh_frequency": 0}
    settings = {k: v for k, v in metadata.items() if defaults.get(k, object()) != v}
    for k in ID_METADATA:
        if k in settings:
            raise ExportRefused(f"{name}: metadata.{k} names charts by id; the compact form cannot carry it")
    if filters or "filters" in template:
        out["filters"] = filters
    if settings:
        out["metadata"] = settings
    out["layout"] = layout
    return {k: out[k] for k in _order(out, template, ("metadata", "filters", "layout"))}


def _compact_filter(name: str, f: dict, template: dict) -> dict:
    """Pure: one native filter as the compact form's filter (time or select)."""
    out: dict[str, Any] = {"id": f["id"], "name": f["name"]}
    if f.get("description"):
        out["description"] = f["description"]
    if f.get("filterType") == "filter_time":
        out["type"] = "time"
        value = ((f.get("defaultDataMask") or {}).get("filterState") or {}).get("value", "No filter")
        if value != "No filter" or "default" in template:
            out["default"] = value
    elif f.get("filterType") == "filter_select":
        targets = f.get("targets") or [{}]
        target = targets[0]
        out.update(type="select", column=target.get("column", {}).get("name"), dataset=target.get("datasetUuid"))
        excluded = (f.get("scope") or {}).get("excluded", [])
        if excluded:
            kept = template.get("exclude_charts", [])
            out["exclude_charts"] = kept if sorted(kept) == excluded else excluded
        controls = {k: v for k, v in (f.get("controlValues") or {}).items() if SELECT_CONTROLS.get(k) != v}
        if controls:
            out["controls"] = controls
    else:
        raise ExportRefused(
            f"{name}: filter {f.get('name')!r} is a {f.get('filterType')}; the compact form has time and select "
            "filters only: change it in Superset's UI or write the filter into the YAML by hand"
        )
    return {k: out[k] for k in [k for k in template if k in out] + [k for k in out if k not in template]}
