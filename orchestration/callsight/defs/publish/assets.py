"""The publish: the checked build swapped over the served warehouse."""

import time

import dagster as dg

from callsight.defs.bi.warm_cache import warm_up
from callsight.defs.resources import SiteResource
from callsight.privacy.retention import retention_cutoff
from callsight.publish.builds import prune_build, prune_expired_builds, publish, stored_fingerprint
from callsight.site.halt import halt_point
from callsight.site.home import kept_builds


class PublishConfig(dg.Config):
    """Run options of the publish step. `callsight erase` discards the kept builds: they predate the erasure."""

    discard_kept_builds: bool = False
    # The night warms Superset's cache for the build before the swap (defs/bi/warm_cache.py); a republish
    # after an erasure swaps at once.
    warm_cache_first: bool = True


def published_warehouse(
    context: dg.AssetExecutionContext, site: SiteResource, config: PublishConfig
) -> dg.MaterializeResult:
    """The checked build, its changed weeks of the big facts written into week files, pruned to the served
    schemas, compacted, its dashboards' results computed into Superset's cache, and swapped over the
    served file atomically: the first open after the swap is a cache hit. Kept builds holding calls beyond
    retention + one night are deleted, and the week files no build names any more."""
    s = site.settings()
    policy = site.policy()
    seconds, written = prune_build(s.build_db, s.parts_dir)
    warmed: dict = {}
    if config.warm_cache_first:
        started = time.perf_counter()
        warmed = warm_up(context.log, s, s.cache_warmup, candidate=True)
        seconds["warm"] = time.perf_counter() - started
    started = time.perf_counter()
    counts = publish(
        s.build_db,
        s.served_db,
        keep=0 if config.discard_kept_builds else s.keep_builds,
        before_swap=lambda: halt_point(s.env, "publish", context.run.run_id),
    )
    cutoff = retention_cutoff(site.run_date(context), policy.retention.journal_days)
    pruned = prune_expired_builds(s.served_db, cutoff)
    seconds["swap"] = time.perf_counter() - started
    context.log.info(
        f"published {s.served_db}: {counts}; week files written: {written}; expired kept builds deleted: "
        f"{len(pruned)}; seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items())
    )
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(s.served_db)),
            "build_fingerprint": stored_fingerprint(s.served_db) or "",
            "kept_builds": len(kept_builds(s.served_db)),
            "kept_builds_expired": len(pruned),
            **{f"seconds_{k}": dg.MetadataValue.float(round(v, 2)) for k, v in seconds.items()},
            **{k: dg.MetadataValue.int(v) for k, v in counts.items()},
            **{f"week_files_written_{k}": dg.MetadataValue.int(v) for k, v in written.items()},
            **{f"warm_up_{k}": v for k, v in warmed.items()},
        }
    )


def published_warehouse_asset(models: dg.AssetsDefinition) -> dg.AssetsDefinition:
    """The asset over `published_warehouse`, downstream of every dbt model (known once the manifest is parsed)."""
    return dg.asset(group_name="publish", deps=[models], kinds={"duckdb"})(published_warehouse)
