"""English twins of the Superset assets: Superset 6.1 has no per-language titles or labels, so every
dataset, chart and dashboard gets a copy with its user-visible texts in English (superset/translations/
en.yaml: German text -> English). German stays the original; the twins are generated at expand time
(bi.assets.load_assets), so whatever provisioning does with an asset - row-level security, admin-only
marks, dataset permissions - it does with its twin too.

A twin: uuid5(German uuid, "en") (stable), dashboards' slug `<slug>-en`, datasets' table `<table>_en`
(Superset wants (database, schema, table) unique) with the same SQL - a physical dataset's twin reads its
table (`SELECT *`), so Superset applies that table's row-level security inside. Values stay as the
warehouse holds them (the twins show exactly the same rows)."""

from __future__ import annotations

import copy
import uuid as uuidlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from callsight.site.settings import REPO_ROOT

TRANSLATIONS_DIR = REPO_ROOT / "superset" / "translations"
LANG = "en"
# Marks a twin with its original's uuid (callsight's own key: provisioning strips it before the import).
TWIN_KEY = "translation_of"
# Chart params that hold text a dashboard shows (axis titles, KPI subheaders, table column headers).
TEXT_PARAMS = ("customColumnName", "x_axis_title", "y_axis_title", "subheader", "subtitle", "header_text")

Translate = Callable[[str], str]


def twin_uuid(original: str, lang: str = LANG) -> str:
    """Pure: the twin's uuid, derived from the original's (superset/sql_guard_hooks.py derives it alike)."""
    return str(uuidlib.uuid5(uuidlib.UUID(original), lang))


def twin_name(name: str, lang: str = LANG) -> str:
    """Pure: the twin's asset path, 'charts/Anrufe.yaml' -> 'charts/Anrufe_en.yaml'."""
    return f"{name.removesuffix('.yaml')}_{lang}.yaml"


def load_catalogue(lang: str = LANG, directory: Path = TRANSLATIONS_DIR) -> dict[str, str]:
    """German text -> text in `lang` (superset/translations/<lang>.yaml)."""
    path = directory / f"{lang}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {str(k): str(v) for k, v in data.items()}


def originals(assets: dict[str, dict]) -> dict[str, dict]:
    """Pure: the assets without their twins (what superset/assets holds)."""
    return {n: c for n, c in assets.items() if not (isinstance(c, dict) and c.get(TWIN_KEY))}


# ---- which texts a user sees ---------------------------------------------------------------------
def _param_texts(params: Any) -> Iterator[str]:
    if isinstance(params, dict):
        for key, value in params.items():
            if key in TEXT_PARAMS and isinstance(value, str) and value:
                yield value
            else:
                yield from _param_texts(value)
    elif isinstance(params, list):
        for item in params:
            yield from _param_texts(item)


def visible_texts(name: str, config: dict) -> Iterator[str]:
    """Pure: the texts of one expanded asset that Superset shows to users (what the catalogue translates)."""
    if name.startswith("dashboards/"):
        yield config["dashboard_title"]
        for f in (config.get("metadata") or {}).get("native_filter_configuration", []):
            yield f["name"]
            yield f.get("description") or ""
    elif name.startswith("charts/"):
        yield config["slice_name"]
        yield config.get("description") or ""
        yield from _param_texts(config.get("params"))
    elif name.startswith("datasets/"):
        yield config.get("description") or ""
        for item in [*config.get("columns", []), *config.get("metrics", [])]:
            yield item.get("verbose_name") or ""
            yield item.get("description") or ""


def untranslated(assets: dict[str, dict], catalogue: dict[str, str]) -> dict[str, list[str]]:
    """Pure: per asset, the visible texts the catalogue lacks (empty: complete)."""
    out: dict[str, list[str]] = {}
    for name, config in originals(assets).items():
        lacking = sorted({t for t in visible_texts(name, config) if t and t not in catalogue})
        if lacking:
            out[name] = lacking
    return out


# ---- the twins -----------------------------------------------------------------------------------
def _translated_params(params: Any, t: Translate) -> Any:
    if isinstance(params, dict):
        return {
            k: t(v) if k in TEXT_PARAMS and isinstance(v, str) and v else _translated_params(v, t)
            for k, v in params.items()
        }
    if isinstance(params, list):
        return [_translated_params(v, t) for v in params]
    return params


def _maybe(text: str | None, t: Translate) -> str | None:
    return t(text) if text else text


def dataset_twin(config: dict, t: Translate) -> dict:
    out = copy.deepcopy(config)
    out.update(
        uuid=twin_uuid(config["uuid"]), table_name=f"{config['table_name']}_{LANG}", **{TWIN_KEY: config["uuid"]}
    )
    if not config.get("sql"):
        out["sql"] = f"SELECT * FROM {config['schema']}.{config['table_name']}"  # RLS of the table applies inside
    out["description"] = _maybe(config.get("description"), t)
    for item in [*out.get("columns", []), *out.get("metrics", [])]:
        item["verbose_name"] = _maybe(item.get("verbose_name"), t)
        item["description"] = _maybe(item.get("description"), t)
    return out


def chart_twin(config: dict, t: Translate) -> dict:
    out = copy.deepcopy(config)
    out.update(
        uuid=twin_uuid(config["uuid"]),
        slice_name=t(config["slice_name"]),
        dataset_uuid=twin_uuid(config["dataset_uuid"]),
        description=_maybe(config.get("description"), t),
        params=_translated_params(config.get("params"), t),
        **{TWIN_KEY: config["uuid"]},
    )
    return out


def dashboard_twin(config: dict, t: Translate) -> dict:
    out = copy.deepcopy(config)
    out.update(
        uuid=twin_uuid(config["uuid"]),
        slug=f"{config['slug']}-{LANG}",
        dashboard_title=t(config["dashboard_title"]),
        **{TWIN_KEY: config["uuid"]},
    )
    for node in (out.get("position") or {}).values():
        if not isinstance(node, dict):
            continue
        meta = node.get("meta") or {}
        if node.get("type") == "HEADER":
            meta["text"] = out["dashboard_title"]
        elif node.get("type") == "CHART":
            meta.update(uuid=twin_uuid(meta["uuid"]), sliceName=t(meta["sliceName"]))
    for f in (out.get("metadata") or {}).get("native_filter_configuration", []):
        f["name"] = t(f["name"])
        f["description"] = _maybe(f.get("description"), t) or ""
        for target in f.get("targets", []):
            if target.get("datasetUuid"):
                target["datasetUuid"] = twin_uuid(target["datasetUuid"])
    return out


TWINS = {"datasets/": dataset_twin, "charts/": chart_twin, "dashboards/": dashboard_twin}


def with_twins(assets: dict[str, dict], catalogue: dict[str, str] | None = None) -> dict[str, dict]:
    """Pure: the expanded assets and their English twins. A text the catalogue lacks stays German (the
    nightly import goes on; tests/test_english_dashboards.py fails on it)."""
    catalogue = load_catalogue() if catalogue is None else catalogue

    def t(text: str) -> str:
        return catalogue.get(text, text)

    out = dict(assets)
    for name, config in assets.items():
        for prefix, make in TWINS.items():
            if name.startswith(prefix) and not config.get(TWIN_KEY):
                out[twin_name(name)] = make(config, t)
    return out
