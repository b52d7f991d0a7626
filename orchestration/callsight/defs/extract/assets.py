"""The journal extract: the partition window plus the look-back, from the source into the raw store."""

import dagster as dg

from callsight.defs.partitions import daily_partitions, partition_days
from callsight.defs.resources import SiteResource
from callsight.defs.site.assets import site_config
from callsight.extract.run import extract
from callsight.journal.sources import Source, SourceUnavailableError, Window
from callsight.privacy.erasure import ErasureKeyError, erasure_key
from callsight.privacy.retention import retention_cutoff
from callsight.site.halt import halt_point


def journal_extract(context: dg.AssetExecutionContext, site: SiteResource) -> dg.MaterializeResult:
    """Journal legs of the partition window plus the look-back, masked and validated, upserted by ID
    into the raw store. Malformed rows go to the quarantine table with their reason."""
    s = site.settings()
    policy = site.policy()
    first, last = partition_days(context.partition_time_window)
    cutoff = retention_cutoff(site.run_date(context), policy.retention.journal_days)
    window = Window.for_days(first, last, s.lookback_days)
    context.log.info(
        f"extracting StartTime in [{max(window.start, cutoff)}, {max(window.end, cutoff)}) from "
        f"{s.journal_table}; retention keeps calls from {cutoff}"
    )
    source = Source(s.journal_url, s.journal_table)
    try:
        stats = extract(
            source,
            s.raw_db,
            window,
            site.directory(),
            policy,
            context.run_id,
            log=context.log.debug,
            cutoff=cutoff,
            erasure_key=erasure_key(s, required=False),
            before_commit=lambda: halt_point(s.env, "extract", context.run.run_id),
        )
    except ErasureKeyError as exc:
        raise dg.Failure(description=str(exc)) from exc
    except SourceUnavailableError as exc:
        attempt = context.retry_number
        if attempt < s.extract_retries:
            wait = s.extract_retry_delay * 2**attempt
            context.log.warning(f"{exc}; retry {attempt + 1}/{s.extract_retries} in {wait:.0f} s")
            raise dg.RetryRequested(max_retries=s.extract_retries, seconds_to_wait=wait) from exc
        raise dg.Failure(description=f"{exc} (gave up after {attempt} retries)") from exc
    return dg.MaterializeResult(
        metadata={
            "window_start": str(stats.window.start),
            "window_end": str(stats.window.end),
            "retention_cutoff": str(cutoff),
            "source_rows": stats.source_rows,
            "loaded_rows": stats.loaded_rows,
            "quarantined_rows": stats.quarantined_rows,
            "erased_rows": stats.erased_rows,
            "expired_rows": stats.expired_rows,
            "expired_quarantined_rows": stats.expired_quarantined_rows,
            # the whole source (issue 26): every row published, quarantined, expired or later
            "source_total_rows": stats.source_total,
            "source_expired_rows": stats.source_expired_rows,
            "source_later_rows": stats.source_later_rows,
            "unplaced_rows": stats.unplaced_rows,
            "rows_per_second": dg.MetadataValue.float(round(stats.rows_per_second, 1)),
            "reader": stats.reader,
        }
    )


def journal_extract_asset(timezone: str) -> dg.AssetsDefinition:
    """The asset over `journal_extract`: its partitions follow the policy's time zone, read at load."""
    return dg.asset(
        key=["raw", "journal"],
        group_name="extract",
        kinds={"duckdb", "sql"},
        partitions_def=daily_partitions(timezone),
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[site_config],
    )(journal_extract)
