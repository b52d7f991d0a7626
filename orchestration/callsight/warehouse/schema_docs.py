"""Analyst documentation: the warehouse schema as Markdown (committed, checked in the tests) and the
browsable dbt docs site built against the published warehouse."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from callsight.site.policy import load_policy
from callsight.site.settings import REPO_ROOT, Settings
from callsight.warehouse.build_file import prepare_build
from callsight.warehouse.dbt_project import DBT_PROJECT_DIR
from callsight.warehouse.exposures import EXPOSURES_FILE, write_exposures

SCHEMA_DOC = REPO_ROOT / "docs" / "warehouse-schema.md"
DOCUMENTED_FOLDERS = (("analyst", "analyst"), ("marts", "marts"), ("security", "security"))


def schema_markdown(project_dir: Path = DBT_PROJECT_DIR) -> str:
    lines = [
        "# Warehouse schema (for analysts)",
        "",
        "Generated from the dbt models' YAML by `callsight schema-doc`; do not edit by hand.",
        "SQL Lab shows analysts the `analyst` schema: views of the marts below in which the agent is a",
        "column `agent` (and `answered_by`, `callback_by`) under the analysts' label - the name, or in",
        "works-council mode a pseudonym or the agent's group - instead of usernames. Every row is masked",
        "per the privacy policy before it lands; row-level security limits what each viewer sees",
        "(analysts and admins see all masked calls). The marts and security tables are documented for",
        "admins and for the definitions of the columns.",
        "For lineage and the SQL of each model, run `make dbt-docs`.",
        "",
    ]
    for folder, schema in DOCUMENTED_FOLDERS:
        # one YAML per model beside its SQL (<model>.yml), in file-name order; sources files have no models
        for yml in sorted((project_dir / "models" / folder).glob("*.yml")):
            doc = yaml.safe_load(yml.read_text(encoding="utf-8")) or {}
            for model in doc.get("models", []):
                name = model["name"].removeprefix(f"{folder}__")  # analyst__calls is analyst.calls
                lines += [
                    f"## `{schema}.{name}`",
                    "",
                    " ".join(model.get("description", "").split()),
                    "",
                ]
                lines += ["| column | type | description |", "| --- | --- | --- |"]
                for col in model.get("columns", []):
                    desc = " ".join(str(col.get("description", "")).split()).replace("|", "\\|")
                    lines.append(f"| `{col['name']}` | {col.get('data_type', '')} | {desc} |")
                lines.append("")
    return "\n".join(lines + exposure_lines(project_dir / "models" / EXPOSURES_FILE.name))


def ref_name(ref: str) -> str:
    """Pure: "ref('fct_calls')" -> fct_calls."""
    return ref.removeprefix("ref('").removesuffix("')")


def exposure_lines(path: Path) -> list[str]:
    """The dashboards and reports (dbt exposures) and the models each reads, for the schema doc."""
    exposures = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("exposures", [])
    lines = [
        "## Dashboards and reports",
        "",
        "What reads the models above (dbt exposures generated from superset/assets; in `make dbt-docs` and",
        "in Dagster's lineage as `superset/<name>`).",
        "",
        "| exposure | type | reads |",
        "| --- | --- | --- |",
    ]
    for e in exposures:
        models = ", ".join(f"`{ref_name(ref)}`" for ref in e["depends_on"])
        label = f"[{e['label']}]({e['url']})" if e["type"] == "dashboard" else e["label"]
        lines.append(f"| {label} (`{e['name']}`) | {e['type']} | {models} |")
    return [*lines, ""]


def write_schema_doc(path: Path = SCHEMA_DOC) -> Path:
    """The exposures first (generated from superset/assets), then the doc that lists them."""
    write_exposures()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(schema_markdown(), encoding="utf-8")
    return path


def generate_dbt_docs(settings: Settings) -> Path:
    """dbt docs against a copy of the published warehouse; returns the static HTML page."""
    if not settings.served_db.exists():
        raise FileNotFoundError(f"{settings.served_db}: no published warehouse yet; run `callsight run` first")
    policy = load_policy(settings.effective_policy_path)
    prepare_build(settings.served_db, settings.build_db)
    target = settings.home / "dbt-docs"
    env = {**os.environ, **settings.export()}
    dbt = str(Path(sys.executable).with_name("dbt"))
    try:
        subprocess.run(
            [
                dbt,
                "docs",
                "generate",
                "--static",
                "--vars",
                json.dumps(policy.dbt_vars()),
                "--project-dir",
                str(DBT_PROJECT_DIR),
                "--profiles-dir",
                str(DBT_PROJECT_DIR),
                "--target-path",
                str(target),
            ],
            check=True,
            env=env,
            capture_output=True,
            text=True,
        )
    finally:
        settings.build_db.unlink(missing_ok=True)
    return target / "static_index.html"
