"""Superset's shared data cache warmed after the night's provisioning (issue 31)."""

import dagster as dg

from callsight.bi.warm_cache import warm_cache
from callsight.defs.resources import SiteResource
from callsight.site.settings import unknown_dashboards


class WarmConfig(dg.Config):
    # slugs; a run launched by hand may name others than CALLSIGHT_CACHE_WARMUP (None: the setting's)
    dashboards: list[str] | None = None


@dg.asset(group_name="publish", deps=[dg.AssetKey("superset_access")], kinds={"superset"})
def superset_cache(context: dg.AssetExecutionContext, site: SiteResource, config: WarmConfig) -> dg.MaterializeResult:
    """The dashboards' chart results (CALLSIGHT_CACHE_WARMUP: all four by default) for their default
    filters, computed once per distinct visibility set into Superset's shared cache, so the first open after
    a publish is as fast as a repeat. A warm-up that fails does not fail the night: the dashboards then
    compute on first open, as without it."""
    s = site.settings()
    if not s.cache_warmup:
        context.log.info("cache warm-up skipped: CALLSIGHT_CACHE_WARMUP is off")
        return dg.MaterializeResult(metadata={"skipped": "switched off"})
    admin_password = s.secret("SUPERSET_ADMIN_PASSWORD")
    if not admin_password:
        context.log.info("cache warm-up skipped: SUPERSET_ADMIN_PASSWORD is not set for the nightly job")
        return dg.MaterializeResult(metadata={"skipped": "no admin password"})
    dashboards = s.cache_warmup if config.dashboards is None else tuple(config.dashboards)
    if unknown := unknown_dashboards(dashboards):
        context.log.warning(f"cache warm-up skipped: no such dashboard(s) {', '.join(unknown)} in the run's config")
        return dg.MaterializeResult(metadata={"skipped": f"unknown dashboards: {', '.join(unknown)}"})
    try:
        report = warm_cache(s, s.superset_url, admin_password, dashboards=dashboards)
    except Exception as exc:  # the night's data is published; a cold cache is slower, not wrong
        context.log.warning(f"cache warm-up failed ({type(exc).__name__}: {exc}); dashboards compute on first open")
        return dg.MaterializeResult(metadata={"skipped": f"failed: {type(exc).__name__}"})
    if report.skipped:
        context.log.info(f"cache warm-up skipped: {report.skipped}")
        return dg.MaterializeResult(metadata={"skipped": report.skipped})
    context.log.info(
        f"cache warmed for {len(report.users)} viewer(s) in {report.seconds:.1f} s: {report.computed} results "
        f"computed, {report.cached} already cached, {report.failed} failed; dashboards: {', '.join(dashboards)}"
        + (" (requests captured anew: the assets changed)" if report.captured else "")
    )
    return dg.MaterializeResult(
        metadata={
            "skipped": "",
            "visibility_sets": len(report.users),
            "computed": report.computed,
            "cached": report.cached,
            "failed": report.failed,
            "seconds": round(report.seconds, 1),
            "captured": report.captured,
            "dashboards": ", ".join(dashboards),
        }
    )
