"""The org directory and holiday calendar in the raw store; a nightly run's start in the audit log."""

from datetime import datetime

import dagster as dg

from callsight.defs.partitions import PARTITIONS_START_YEAR
from callsight.defs.resources import SiteResource
from callsight.defs.run_audit import NIGHTLY_JOB, run_partitions
from callsight.extract.org_store import SITE_TABLES, store_site
from callsight.privacy.audit import record_audit
from callsight.privacy.pseudonyms import PseudonymKeyError, pseudonym_key
from callsight.site.file_modes import secure_home


@dg.multi_asset(
    name="site_config",
    group_name="extract",
    specs=[
        dg.AssetSpec(
            ["raw", t],
            kinds={"duckdb", "yaml"},
            description=f"{t}: from the org directory and policy, validated, in the raw store.",
        )
        for t in SITE_TABLES
    ],
)
def site_config(context: dg.AssetExecutionContext, site: SiteResource):
    """Org directory (users, groups, options, staff) and holiday calendar, written to the raw store.
    A nightly run records its start in the audit log first."""
    s = site.settings()
    secure_home(s)  # a run the daemon launched tightens the home too (file_modes)
    if context.job_name == NIGHTLY_JOB:
        first, last = run_partitions(context.run.tags)
        started = {"event": "started", "job": NIGHTLY_JOB, "first_day": first, "last_day": last}
        record_audit(s, "run", context.run.run_id, started)
    directory = site.directory()
    policy = site.policy()  # refuse a bad policy before anything is written
    try:
        key = pseudonym_key(s, policy)
    except PseudonymKeyError as exc:
        raise dg.Failure(description=str(exc)) from exc
    this_year = datetime.now(policy.tz).year
    years = range(PARTITIONS_START_YEAR, this_year + 2)
    counts = store_site(s.raw_db, directory, policy.calendar, years, pseudonym_key=key)
    for table, n in counts.items():
        yield dg.MaterializeResult(asset_key=["raw", table], metadata={"rows": dg.MetadataValue.int(n)})
