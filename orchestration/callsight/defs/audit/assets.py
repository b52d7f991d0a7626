"""The nightly run's record in the audit log."""

import dagster as dg

from callsight.bi.security_events import import_security_events
from callsight.defs.bi.assets import superset_access
from callsight.defs.resources import SiteResource
from callsight.defs.run_audit import NIGHTLY_JOB, run_summary
from callsight.privacy.audit import record_audit


@dg.asset(group_name="audit", deps=[superset_access], kinds={"duckdb"})
def nightly_run_record(context: dg.AssetExecutionContext, site: SiteResource) -> dg.MaterializeResult:
    """The run's record in the audit log: finished, with the row counts and the build fingerprint.
    (A failed run is recorded by the job's failure hook.)"""
    if context.job_name != NIGHTLY_JOB:
        context.log.info("not a nightly run: nothing recorded")
        return dg.MaterializeResult(metadata={"recorded": False})
    detail = {"event": "finished", "status": "success", **run_summary(context.instance, context.run.run_id)}
    entry = record_audit(site.settings(), "run", context.run.run_id, detail)
    security = import_security_events(site.settings())  # refused queries, login bursts (Superset)
    return dg.MaterializeResult(metadata={"recorded": True, "audit_seq": entry.seq, "security_events": security})
