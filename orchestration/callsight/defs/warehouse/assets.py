"""The dbt models (dagster-dbt): built into a fresh build file started from the served warehouse."""

import os
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from callsight.defs.resources import SiteResource
from callsight.publish.builds import stored_fingerprint
from callsight.publish.week_files import damaged_files
from callsight.site.halt import halt_point
from callsight.warehouse.build_file import prepare_build
from callsight.warehouse.dbt_guard import PARENT_PID as DBT_PARENT_PID
from callsight.warehouse.dbt_project import build_vars, dbt_project, vars_arg


class BuildConfig(dg.Config):
    """Run options of the warehouse build (set in the Dagster launchpad or `callsight run --full-refresh`)."""

    full_refresh: bool = False


class CallsightTranslator(DagsterDbtTranslator):
    """dbt sources map onto the assets that land them in the raw store."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return dg.AssetKey(["raw", dbt_resource_props["name"]])
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return "warehouse"


def warehouse_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, site: SiteResource, config: BuildConfig):
    """dbt build (models and their tests) into a fresh build file started from the served warehouse."""
    s = site.settings()
    policy = site.policy()
    prepare_build(s.served_db, s.build_db)
    os.environ["CALLSIGHT_HOME"] = str(s.home)  # profiles.yml reads it in the dbt subprocess
    dbt_vars = build_vars(policy.dbt_vars())  # the vars the manifest was parsed with: a partial parse
    fingerprint = str(dbt_vars["build_fingerprint"])
    # Unit tests are for the test suite; the nightly build runs the models and their data tests.
    args = ["build", "--vars", vars_arg(dbt_vars), "--exclude-resource-type", "unit_test"]
    previous = stored_fingerprint(s.build_db)
    # a damaged week file cannot be continued from: every week is rebuilt from the raw store instead
    damaged = damaged_files(s.build_db, s.parts_dir) if s.build_db.exists() else []
    if damaged:
        context.log.warning(
            "week files of the served warehouse damaged, every week is rebuilt from the raw store: "
            + "; ".join(damaged)
        )
    if config.full_refresh or previous != fingerprint or damaged:
        context.log.info(
            f"full refresh (requested: {config.full_refresh}; fingerprint {previous} -> {fingerprint}; "
            f"damaged week files: {len(damaged)})"
        )
        args.append("--full-refresh")
    # dbt dies with this process (callsight.warehouse.dbt_guard): the variable is for the one dbt started here.
    os.environ[DBT_PARENT_PID] = str(os.getpid())
    try:
        invocation = dbt.cli(args, context=context)
    finally:
        del os.environ[DBT_PARENT_PID]
    for n, event in enumerate(invocation.stream()):
        yield event
        if n == 0:
            halt_point(s.env, "dbt", context.run.run_id)


def warehouse_models_asset() -> dg.AssetsDefinition:
    """The dbt assets over `warehouse_models`: the manifest is parsed at load (with the policy's vars)."""
    project = dbt_project()
    return dbt_assets(manifest=project.manifest_path, project=project, dagster_dbt_translator=CallsightTranslator())(
        warehouse_models
    )
