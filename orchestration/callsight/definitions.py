"""Dagster code location: `dagster dev -m callsight.definitions` shows the lineage.

Definitions are built lazily (at load, not import) from the site settings.
"""

from __future__ import annotations

import dagster as dg

from .assets import SiteResource, build_assets
from .config import ConfigError, load_policy
from .dbt_project import dbt_resource, ensure_manifest
from .run_audit import NIGHTLY_JOB, audit_failed_run
from .settings import Settings

REPUBLISH_JOB = "republish"
__all__ = ["NIGHTLY_JOB", "REPUBLISH_JOB", "build_definitions", "defs"]


def site_timezone(settings: Settings) -> str:
    """The policy's time zone; the default when the policy is not there yet (the run refuses it later)."""
    try:
        return load_policy(settings.effective_policy_path).timezone
    except ConfigError:
        return "Europe/Berlin"


def build_definitions(settings: Settings) -> dg.Definitions:
    ensure_manifest()
    assets = build_assets(site_timezone(settings))
    nightly = dg.define_asset_job(
        NIGHTLY_JOB,
        selection=dg.AssetSelection.all(),
        description="Extract yesterday (+ look-back), build, check, publish, record in the audit log.",
        hooks={audit_failed_run},
    )
    republish = dg.define_asset_job(
        REPUBLISH_JOB,
        selection=dg.AssetSelection.groups("warehouse") | dg.AssetSelection.keys("published_warehouse"),
        description="Build, check and publish from the raw store as it is (used by `callsight erase`).",
    )
    schedule = dg.build_schedule_from_partitioned_job(
        nightly,
        hour_of_day=2,
        minute_of_hour=0,
        name="nightly_0200",
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    return dg.Definitions(
        assets=assets,
        jobs=[nightly, republish],
        schedules=[schedule],
        resources={"dbt": dbt_resource(), "site": SiteResource()},
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(Settings.from_env())
