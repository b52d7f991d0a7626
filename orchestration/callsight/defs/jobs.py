"""The nightly and republish jobs (the freshness job lives with its check in defs/publish/freshness.py)."""

from __future__ import annotations

import dagster as dg

from callsight.defs.one_night import one_night_executor
from callsight.defs.run_audit import NIGHTLY_JOB, audit_failed_run

REPUBLISH_JOB = "republish"

nightly_job = dg.define_asset_job(
    NIGHTLY_JOB,
    selection=dg.AssetSelection.all(),
    description="Extract yesterday (+ look-back), build, check, publish, record in the audit log.",
    hooks={audit_failed_run},
    executor_def=one_night_executor,
)

republish_job = dg.define_asset_job(
    REPUBLISH_JOB,
    selection=dg.AssetSelection.groups("warehouse") | dg.AssetSelection.keys("published_warehouse"),
    description="Build, check and publish from the raw store as it is (used by `callsight erase`).",
    executor_def=one_night_executor,
)


def nightly_schedule(running: bool) -> dg.ScheduleDefinition:
    """Yesterday's partition at 02:00 in the partitions' (the policy's) time zone. Stopped by default
    where cron starts the nights instead (CALLSIGHT_SCHEDULE=off); a status switched in the UI wins."""
    return dg.build_schedule_from_partitioned_job(
        nightly_job,
        hour_of_day=2,
        minute_of_hour=0,
        name="nightly_0200",
        default_status=dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED,
    )
