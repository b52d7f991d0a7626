"""The Superset dashboards and e-mail reports in Dagster's lineage: external assets, one per dbt exposure
(models/exposures.yml), downstream of the dbt models the exposure reads and of the provisioning."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg

from callsight.defs.warehouse.assets import CallsightTranslator
from callsight.warehouse.dbt_project import dbt_project


def exposure_specs(manifest: Mapping[str, Any]) -> list[dg.AssetSpec]:
    """Pure over the parsed manifest: an asset spec per exposure, its deps the models' asset keys."""
    translator = CallsightTranslator()
    specs = []
    for exposure in sorted(manifest["exposures"].values(), key=lambda e: e["name"]):
        models = [translator.get_asset_key(manifest["nodes"][uid]) for uid in exposure["depends_on"]["nodes"]]
        specs.append(
            dg.AssetSpec(
                key=dg.AssetKey(["superset", exposure["name"]]),
                deps=[*models, dg.AssetKey("superset_access")],  # the data, and the provisioning that imports it
                description=exposure.get("description") or None,
                group_name="bi",
                kinds={"superset"},
                metadata={"url": exposure.get("url", ""), "type": exposure["type"], "label": exposure.get("label", "")},
            )
        )
    return specs


def dashboard_assets(manifest_path: Path | None = None) -> list[dg.AssetSpec]:
    """The specs from the manifest build_definitions has just parsed."""
    path = manifest_path or dbt_project().manifest_path
    return exposure_specs(json.loads(path.read_text(encoding="utf-8")))
