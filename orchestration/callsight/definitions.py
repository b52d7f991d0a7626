"""Dagster code location: `dagster dev -m callsight.definitions` shows the lineage.

Merges the domain modules under defs/ into one Definitions, built lazily (at load, not import): the
policy is read once here for the partitions' time zone and the dbt parse.
"""

from __future__ import annotations

import dagster as dg

from callsight.defs.audit.assets import nightly_run_record
from callsight.defs.audit.failure_mail import FAILURE_SENSOR, mail_admins_about_failure, nightly_failure_mail
from callsight.defs.audit.silence import SILENCE_SENSOR, silence_alerts
from callsight.defs.bi.access_log import access_log
from callsight.defs.bi.assets import superset_access
from callsight.defs.bi.dashboards import dashboard_assets
from callsight.defs.bi.warm_cache import superset_cache
from callsight.defs.extract.assets import journal_extract_asset
from callsight.defs.jobs import NIGHTLY_JOB, REPUBLISH_JOB, nightly_job, nightly_schedule, republish_job
from callsight.defs.publish.assets import published_warehouse_asset
from callsight.defs.publish.freshness import FRESHNESS_JOB, freshness_job, freshness_schedule, published_warehouse_fresh
from callsight.defs.quality.checks import raw_quality_checks, warehouse_quality_checks
from callsight.defs.resources import resources
from callsight.defs.site.assets import site_config
from callsight.defs.warehouse.assets import warehouse_models_asset
from callsight.site.policy import Policy, load_policy
from callsight.site.settings import Settings
from callsight.site.yaml_config import ConfigError
from callsight.warehouse.dbt_project import build_vars, ensure_manifest

DEFAULT_TIMEZONE = "Europe/Berlin"
__all__ = [
    "FAILURE_SENSOR",
    "FRESHNESS_JOB",
    "NIGHTLY_JOB",
    "REPUBLISH_JOB",
    "SILENCE_SENSOR",
    "build_definitions",
    "defs",
    "mail_admins_about_failure",
]


def site_policy(settings: Settings) -> Policy | None:
    """The site's policy; None when it is not there yet or invalid (the run refuses it later)."""
    try:
        return load_policy(settings.effective_policy_path)
    except ConfigError:
        return None


def build_definitions(settings: Settings) -> dg.Definitions:
    policy = site_policy(settings)
    timezone = policy.timezone if policy else DEFAULT_TIMEZONE
    ensure_manifest(build_vars(policy.dbt_vars()) if policy else None)  # the vars the nightly dbt build gets
    models = warehouse_models_asset()
    return dg.Definitions(
        assets=[
            site_config,
            journal_extract_asset(timezone),
            access_log,
            raw_quality_checks,
            models,
            warehouse_quality_checks,
            published_warehouse_asset(models),
            published_warehouse_fresh,
            superset_access,
            superset_cache,
            *dashboard_assets(),
            nightly_run_record,
        ],
        jobs=[nightly_job, republish_job, freshness_job],
        schedules=[nightly_schedule(settings.nightly_schedule), freshness_schedule(timezone)],
        sensors=[nightly_failure_mail, silence_alerts],
        resources=resources(),
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(Settings.from_env())
