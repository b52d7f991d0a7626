"""Superset's shared data cache warmed for the night's build: before its swap and after provisioning (issue 31)."""

import logging

import dagster as dg

from callsight.bi.warm_cache import warm_cache
from callsight.defs.resources import SiteResource
from callsight.site.settings import Settings, unknown_dashboards


class WarmConfig(dg.Config):
    # slugs; a run launched by hand may name others than CALLSIGHT_CACHE_WARMUP (None: the setting's)
    dashboards: list[str] | None = None


def warm_up(log: logging.Logger, s: Settings, dashboards: tuple[str, ...], candidate: bool) -> dict:
    """Warm the dashboards' results in the served warehouse or (`candidate`) in the build about to be
    published; the step's metadata. Never raises: the night's data is published either way, and a cold
    cache is slower, not wrong."""
    what = "the build before its publish" if candidate else "the served warehouse"
    if candidate and not s.served_db.exists():
        log.info(f"cache warm-up of {what} skipped: nothing is served yet (the first publish)")
        return {"skipped": "first publish"}
    if not s.cache_warmup:
        log.info(f"cache warm-up of {what} skipped: CALLSIGHT_CACHE_WARMUP is off")
        return {"skipped": "switched off"}
    admin_password = s.secret("SUPERSET_ADMIN_PASSWORD")
    if not admin_password:
        log.info(f"cache warm-up of {what} skipped: SUPERSET_ADMIN_PASSWORD is not set for the nightly job")
        return {"skipped": "no admin password"}
    if unknown := unknown_dashboards(dashboards):
        log.warning(f"cache warm-up skipped: no such dashboard(s) {', '.join(unknown)} in the run's config")
        return {"skipped": f"unknown dashboards: {', '.join(unknown)}"}
    try:
        report = warm_cache(s, s.superset_url, admin_password, dashboards=dashboards, candidate=candidate)
    except Exception as exc:
        log.warning(f"cache warm-up of {what} failed ({type(exc).__name__}: {exc}); dashboards compute on first open")
        return {"skipped": f"failed: {type(exc).__name__}"}
    if report.skipped:
        log.info(f"cache warm-up of {what} skipped: {report.skipped}")
        return {"skipped": report.skipped}
    log.info(
        f"cache warmed for {len(report.users)} viewer(s) in {report.seconds:.1f} s: {report.computed} results "
        f"computed, {report.cached} already cached, {report.failed} failed; dashboards: {', '.join(dashboards)} "
        f"({what}"
        + ("; requests captured anew: the assets changed)" if report.captured else ")")
        + f"; {report.answers} whole answers kept"
    )
    return {
        "skipped": "",
        "visibility_sets": len(report.users),
        "computed": report.computed,
        "cached": report.cached,
        "failed": report.failed,
        "answers": report.answers,
        "seconds": round(report.seconds, 1),
        "captured": report.captured,
        "dashboards": ", ".join(dashboards),
    }


@dg.asset(group_name="publish", deps=[dg.AssetKey("superset_access")], kinds={"superset"})
def superset_cache(context: dg.AssetExecutionContext, site: SiteResource, config: WarmConfig) -> dg.MaterializeResult:
    """The dashboards' chart results (CALLSIGHT_CACHE_WARMUP: all four by default) for their default
    filters, once per distinct visibility set, in Superset's shared cache. Most were computed before the
    swap (published_warehouse); this fills what provisioning changed (new users or sets, new assets)."""
    s = site.settings()
    dashboards = s.cache_warmup if config.dashboards is None else tuple(config.dashboards)
    return dg.MaterializeResult(metadata=warm_up(context.log, s, dashboards, candidate=False))
