"""dbt exposures for the Superset dashboards and e-mail reports, derived from superset/assets.

Each dashboard's exposure depends on the dbt models its datasets read (charts and native filters);
each report kind that bi/reports.py provisions depends on what its dashboard or chart reads. The
committed models/exposures.yml is generated here (`callsight schema-doc`) and checked in the tests.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from callsight.site.policy import Reports
from callsight.site.settings import REPO_ROOT
from callsight.warehouse.dbt_project import DBT_PROJECT_DIR

# The assets as written (read here, not through callsight.bi: the warehouse comes before Superset).
ASSETS_DIR = REPO_ROOT / "superset" / "assets"
# What bi.assets' agent macros read (tests/test_exposures.py checks it against their expansion).
MACRO_TABLES = {
    "agent_labels": ("security", "agent_labels"),
    "agent_key": ("security", "agent_labels"),
    "agent_name": ("security", "agent_labels"),
    "visible": ("security", "visibility_sets"),
}
# bi.reports.WEEKLY_CSV_CHART, the chart the weekly CSV report mails (the test checks they agree).
WEEKLY_CSV_CHART = "bc64a469-9567-56a5-8ca2-a57c027d516d"
EXPOSURES_FILE = DBT_PROJECT_DIR / "models" / "exposures.yml"
# The schemas whose models Superset reads, each from the dbt folder of the same name.
SERVED_SCHEMAS = ("marts", "security", "analyst")
# No person: the site's admins (Superset role Admin) answer for the dashboards and reports.
OWNER = {"name": "callsight admins"}
REPORTS_URL = "/report/list/"
_TABLE = re.compile(r"\b(" + "|".join(SERVED_SCHEMAS) + r")\.([a-z_][a-z0-9_]*)\b")
_MACRO = re.compile(r"@@(\w+)(?:\([^)]*\))?@@")


class ExposureError(ValueError):
    """The assets read a table that is no dbt model."""


def model_relations(project_dir: Path = DBT_PROJECT_DIR) -> dict[tuple[str, str], str]:
    """Pure over the dbt YAML: (schema, relation) -> model name (analyst__calls is analyst.calls)."""
    out: dict[tuple[str, str], str] = {}
    for schema in SERVED_SCHEMAS:
        for yml in sorted((project_dir / "models" / schema).glob("*.yml")):
            for model in (yaml.safe_load(yml.read_text(encoding="utf-8")) or {}).get("models", []):
                out[(schema, model["name"].removeprefix(f"{schema}__"))] = model["name"]
    return out


def read_asset_files(assets_dir: Path = ASSETS_DIR) -> dict[str, dict]:
    """The asset files as written, by relative path (datasets/..., charts/..., dashboards/...)."""
    return {
        p.relative_to(assets_dir).as_posix(): yaml.safe_load(p.read_text(encoding="utf-8"))
        for p in sorted(assets_dir.rglob("*.yaml"))
    }


def dataset_tables(dataset: dict) -> set[tuple[str, str]]:
    """Pure: the (schema, table) pairs a dataset as written reads - its SQL's tables and those of its agent
    macros (@@audience@@ reads none), else its table."""
    sql = dataset.get("sql")
    if not sql:
        return {(dataset["schema"], dataset["table_name"])}
    macros = {MACRO_TABLES[m] for m in _MACRO.findall(sql) if m in MACRO_TABLES}
    return set(_TABLE.findall(_MACRO.sub("", sql))) | macros


def _description(path: Path) -> str:
    """The asset file's leading comment (what the dashboard or chart shows)."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    return " ".join(lines)


def _refs(tables: set[tuple[str, str]], relations: dict[tuple[str, str], str], what: str) -> list[str]:
    unknown = sorted(f"{s}.{t}" for s, t in tables if (s, t) not in relations)
    if unknown:
        raise ExposureError(f"{what} reads {', '.join(unknown)}: no dbt model")
    return [f"ref('{name}')" for name in sorted({relations[t] for t in tables})]


def dashboard_datasets(raw: dict, assets: dict[str, dict]) -> set[str]:
    """Pure: uuids of the datasets a dashboard reads - its charts' and its native filters'."""
    charts = {c["uuid"]: c for n, c in assets.items() if n.startswith("charts/")}
    by_name = {c["slice_name"]: u for u, c in charts.items()}
    placed = {by_name.get(item["chart"], item["chart"]) for row in raw.get("layout", []) for item in row}
    return {charts[u]["dataset_uuid"] for u in placed} | {
        f["dataset"] for f in raw.get("filters", []) if "dataset" in f
    }


def exposure_name(kind: str, slug: str) -> str:
    return f"{kind}_{slug.replace('-', '_')}"


def build_exposures(assets_dir: Path = ASSETS_DIR, project_dir: Path = DBT_PROJECT_DIR) -> list[dict[str, Any]]:
    """The exposures of every dashboard in the assets and of every report kind, in name order."""
    raw = read_asset_files(assets_dir)
    relations = model_relations(project_dir)
    datasets = {c["uuid"]: c for n, c in raw.items() if n.startswith("datasets/")}

    def reads(uuids: set[str]) -> set[tuple[str, str]]:
        return {t for u in uuids for t in dataset_tables(datasets[u])}

    out: list[dict[str, Any]] = []
    dashboards: dict[str, tuple[str, set[tuple[str, str]]]] = {}
    for name, config in raw.items():
        if not name.startswith("dashboards/"):
            continue
        slug, title = config["slug"], config["dashboard_title"]
        tables = reads(dashboard_datasets(config, raw))
        dashboards[slug] = (title, tables)
        out.append(
            {
                "name": exposure_name("dashboard", slug),
                "label": title,
                "type": "dashboard",
                "maturity": "medium" if config.get("admin_only") else "high",
                "url": f"/superset/dashboard/{slug}/",
                "description": _description(assets_dir / name),
                "depends_on": _refs(tables, relations, name),
                "owner": dict(OWNER),
            }
        )
    # Report kinds as bi/reports.py provisions them: the leaders' dashboards (policy defaults) and the CSV.
    for slug in Reports().leader_dashboards:
        title, tables = dashboards[slug]
        out.append(
            {
                "name": exposure_name("report", slug),
                "label": f"Wochenbericht: {title}",
                "type": "application",
                "maturity": "high",
                "url": REPORTS_URL,
                "description": f"Weekly e-mail to each group leader: the {title} dashboard as PNG or PDF, run as "
                "that leader (only the calls the leader may see); the dashboards of policy reports.leader_dashboards.",
                "depends_on": _refs(tables, relations, f"report {slug}"),
                "owner": dict(OWNER),
            }
        )
    csv_chart = next(c for n, c in raw.items() if n.startswith("charts/") and c["uuid"] == WEEKLY_CSV_CHART)
    out.append(
        {
            "name": "report_weekly_csv",
            "label": "Wochenbericht je Agent und Tag (CSV)",
            "type": "application",
            "maturity": "high",
            "url": REPORTS_URL,
            "description": "Weekly e-mail to analysts (and leaders with reports.leader_csv): inbound KPIs per agent "
            "and day of the last week as CSV, no numbers and no call details.",
            "depends_on": _refs(reads({csv_chart["dataset_uuid"]}), relations, "the weekly CSV report"),
            "owner": dict(OWNER),
        }
    )
    return sorted(out, key=lambda e: e["name"])


class _Dumper(yaml.SafeDumper):
    """dbt's YAML style: lists indented under their key, no anchors."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)

    def ignore_aliases(self, data: Any) -> bool:
        return True


def exposures_yaml(assets_dir: Path = ASSETS_DIR, project_dir: Path = DBT_PROJECT_DIR) -> str:
    head = (
        "# Generated from superset/assets by `callsight schema-doc` (callsight.warehouse.exposures);\n"
        "# do not edit by hand: tests/test_exposures.py fails when it differs from the assets.\n"
    )
    doc = {"version": 2, "exposures": build_exposures(assets_dir, project_dir)}
    return head + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110)


def write_exposures(path: Path = EXPOSURES_FILE) -> Path:
    path.write_text(exposures_yaml(), encoding="utf-8")
    return path


def exposure_problems(exposures: list[dict[str, Any]], assets_dir: Path = ASSETS_DIR) -> list[str]:
    """Pure over the assets: how committed exposures differ from what the assets read (empty: none)."""
    wanted = {e["name"]: e for e in build_exposures(assets_dir)}
    have = {e["name"]: e for e in exposures}
    problems = [f"{name}: no exposure for {wanted[name]['url']}" for name in sorted(wanted.keys() - have.keys())]
    problems += [f"{name}: exposure of nothing in the assets" for name in sorted(have.keys() - wanted.keys())]
    for name in sorted(wanted.keys() & have.keys()):
        if sorted(have[name].get("depends_on", [])) != wanted[name]["depends_on"]:
            problems.append(f"{name}: depends_on {have[name].get('depends_on')} but reads {wanted[name]['depends_on']}")
    return problems


def read_exposures(path: Path = EXPOSURES_FILE) -> list[dict[str, Any]]:
    return (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("exposures", [])
