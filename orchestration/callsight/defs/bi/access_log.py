"""Superset's access events copied into the raw store before the warehouse build (issue 30)."""

import dagster as dg

from callsight.bi.access_log import copy_access_log
from callsight.defs.resources import SiteResource

# After the extract and its blocking raw checks (one writer of the raw store at a time), before dbt.
AFTER = [dg.AssetKey(["raw", "journal"])]


@dg.asset(key=["raw", "access_log"], group_name="extract", deps=AFTER, kinds={"duckdb", "superset"})
def access_log(context: dg.AssetExecutionContext, site: SiteResource) -> dg.MaterializeResult:
    """Who opened which dashboard, exported which chart or ran SQL Lab, copied from Superset's metadata DB
    (by log id, to the minute; no query text, filters or data); events older than the policy's
    access_log.retention_days deleted here and in Superset's own log. Runs before dbt, so the night's
    marts.access_log holds everything up to the night's start. A Superset that cannot be read does not stop
    the night: the copy is skipped with a warning and catches up the next night."""
    s, policy = site.settings(), site.policy()
    try:
        copy = copy_access_log(s, policy.access_log.retention_days)
    except Exception as exc:  # the night's calls must not wait for Superset's log
        reason = f"{type(exc).__name__}: {exc}"
        context.log.warning(f"access log not copied: Superset's metadata DB not readable ({reason})")
        return dg.MaterializeResult(metadata={"skipped": True})
    if copy.skipped:
        context.log.info(f"access log: nothing to copy ({copy.skipped})")
    return dg.MaterializeResult(
        metadata={
            "skipped": bool(copy.skipped),
            "copied": copy.copied,
            "expired": copy.expired,
            "superset_expired": copy.superset_expired,
            "copied_through_log_id": copy.copied_through,
        }
    )
