"""Audit entries of nightly runs: what a run did, collected from its own Dagster materializations.

A nightly run writes `run/started` first (asset site_config), `run/finished` with status success last
(asset nightly_run_record), or `run/finished` with status failure from the job's failure hook.
"""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg

from callsight.privacy.audit import Scalar, record_audit

NIGHTLY_JOB = "nightly"
PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"

# Materialization metadata copied into the run's audit entry: (asset, metadata key, audit key).
SUMMARY_FIELDS = (
    ("raw/journal", "window_start", "window_start"),
    ("raw/journal", "window_end", "window_end"),
    ("raw/journal", "retention_cutoff", "retention_cutoff"),
    ("raw/journal", "source_rows", "rows_extracted"),
    ("raw/journal", "loaded_rows", "rows_loaded"),
    ("raw/journal", "quarantined_rows", "rows_quarantined"),
    ("raw/journal", "erased_rows", "rows_erased"),
    ("raw/journal", "expired_rows", "rows_expired"),
    ("raw/journal", "expired_quarantined_rows", "quarantined_rows_expired"),
    ("raw/journal", "source_total_rows", "source_rows_total"),
    ("raw/journal", "unplaced_rows", "rows_unplaced"),
    ("published_warehouse", "build_fingerprint", "build_fingerprint"),
    ("published_warehouse", "marts.fct_calls", "published_call_legs"),
    ("published_warehouse", "kept_builds_expired", "kept_builds_expired"),
    ("superset_access", "skipped", "superset_sync_skipped"),
)


def run_partitions(tags: Mapping[str, str]) -> tuple[str, str]:
    """First and last partition day of a run, from its tags ('' when unpartitioned)."""
    if PARTITION_TAG in tags:
        return tags[PARTITION_TAG], tags[PARTITION_TAG]
    return tags.get(RANGE_START_TAG, ""), tags.get(RANGE_END_TAG, "")


def summary_from_metadata(metadata: Mapping[str, Mapping[str, object]]) -> dict[str, Scalar]:
    """Pure: the audit fields found in {asset key: {metadata key: value}}."""
    out: dict[str, Scalar] = {}
    for asset, key, name in SUMMARY_FIELDS:
        value = metadata.get(asset, {}).get(key)
        if isinstance(value, str | int | float | bool):
            out[name] = value
    return out


def run_summary(instance: dg.DagsterInstance, run_id: str) -> dict[str, Scalar]:
    """Row counts and build fingerprint of a run, from the metadata of what it materialized."""
    found: dict[str, dict[str, object]] = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        event = entry.dagster_event
        if event is None or event.asset_key is None or event.step_materialization_data is None:
            continue
        materialization = event.step_materialization_data.materialization
        found[event.asset_key.to_user_string()] = {k: v.value for k, v in materialization.metadata.items()}
    return summary_from_metadata(found)


@dg.failure_hook(required_resource_keys={"site"})
def audit_failed_run(context: dg.HookContext) -> None:
    """A failed step of a nightly run: record the run as finished with status failure. Only the step and
    the kind of error are recorded (error messages may name files or hosts)."""
    settings = context.resources.site.settings()
    detail: dict[str, Scalar] = {
        "event": "finished",
        "status": "failure",
        "failed_step": context.op.name,
        "error": type(context.op_exception).__name__ if context.op_exception else "unknown",
        **run_summary(context.instance, context.run_id),
    }
    record_audit(settings, "run", context.run_id, detail)
