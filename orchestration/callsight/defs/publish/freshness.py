"""Is the served warehouse fresh? Checked hourly on the served file's `marts.build_info.built_at`.

Hand-made rather than Dagster's last-update freshness checks: those judge the last materialization
Dagster recorded, while built_at is what is served (and it also moves on a rollback)."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from callsight.defs.resources import SiteResource
from callsight.publish.freshness import judge, read_served_state

FRESHNESS_CHECK = "fresh"
FRESHNESS_JOB = "warehouse_freshness"


@dg.asset_check(
    asset=dg.AssetKey("published_warehouse"),
    name=FRESHNESS_CHECK,
    description="The served warehouse was published within CALLSIGHT_STALE_AFTER_HOURS (default 36 h).",
)
def published_warehouse_fresh(context: dg.AssetCheckExecutionContext, site: SiteResource) -> dg.AssetCheckResult:
    s = site.settings()
    state = read_served_state(s.served_db)
    verdict = judge(state, datetime.now(UTC), timedelta(hours=s.stale_after_hours))
    age_hours = round(verdict.age.total_seconds() / 3600, 2) if verdict.age else -1.0
    (context.log.info if verdict.fresh else context.log.error)(f"{s.served_db}: {verdict.reason}")
    return dg.AssetCheckResult(
        passed=verdict.fresh,
        severity=dg.AssetCheckSeverity.ERROR,
        description=verdict.reason,
        metadata={
            "published_at": dg.MetadataValue.text(state.built_at.isoformat() if state.built_at else "-"),
            "newest_call_utc": dg.MetadataValue.text(str(state.newest_call_utc or "-")),
            "age_hours": dg.MetadataValue.float(age_hours),
        },
    )


freshness_job = dg.define_asset_job(
    FRESHNESS_JOB,
    selection=dg.AssetSelection.checks(dg.AssetCheckKey(dg.AssetKey("published_warehouse"), FRESHNESS_CHECK)),
    description="Flag the served warehouse as stale when it was not published for CALLSIGHT_STALE_AFTER_HOURS.",
)


def freshness_schedule(timezone: str) -> dg.ScheduleDefinition:
    """Hourly at half past, in the policy's time zone (read at load)."""
    return dg.ScheduleDefinition(
        name="warehouse_freshness_hourly",
        job=freshness_job,
        cron_schedule="30 * * * *",
        execution_timezone=timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
