"""Great Expectations suites (data_quality/suites) as blocking asset checks: the raw store before dbt,
the build file before the publish."""

from collections.abc import Iterator, Sequence
from datetime import datetime

import dagster as dg

from callsight.defs.resources import SiteResource
from callsight.quality.results import QualityReport
from callsight.quality.run import run_suites
from callsight.quality.suites import SuiteSpec, load_suites
from callsight.site.halt import halt_point

# The suites are repository files (not site settings): read once, when the module is imported.
SUITES = load_suites()
RAW_SUITES = [s for s in SUITES if s.stage == "raw"]
WAREHOUSE_SUITES = [s for s in SUITES if s.stage == "warehouse"]


def quality_check_specs(suites: Sequence[SuiteSpec]) -> list[dg.AssetCheckSpec]:
    """One blocking check per suite: a failure stops every asset downstream of the checked one."""
    return [
        dg.AssetCheckSpec(s.name, asset=dg.AssetKey(list(s.asset)), blocking=True, description=s.description)
        for s in suites
    ]


def quality_check_results(report: QualityReport) -> Iterator[dg.AssetCheckResult]:
    """Check results that name every failed expectation (names and counts only, never data values)."""
    for r in report.results:
        failed = [str(o) for o in r.failed]
        yield dg.AssetCheckResult(
            asset_key=dg.AssetKey(list(r.suite.asset)),
            check_name=r.suite.name,
            passed=r.success,
            severity=dg.AssetCheckSeverity.ERROR,
            description=f"{len(failed)} of {len(r.outcomes)} expectations failed" if failed else None,
            metadata={
                "expectations": dg.MetadataValue.int(len(r.outcomes)),
                "failed": dg.MetadataValue.int(len(failed)),
                "failed_expectations": dg.MetadataValue.json(failed),
                "suite_file": dg.MetadataValue.path(str(r.suite.path)),
            },
        )


def _log_report(context: dg.AssetCheckExecutionContext, report: QualityReport) -> None:
    for r in report.results:
        context.log.info(f"{r.suite.name}: {len(r.outcomes) - len(r.failed)}/{len(r.outcomes)} expectations met")
    for o in report.failed:
        context.log.error(f"expectation failed: {o}")
    for w in report.warnings:
        context.log.warning(f"data quality: {w}")


@dg.multi_asset_check(specs=quality_check_specs(RAW_SUITES), name="raw_quality_checks")
def raw_quality_checks(context: dg.AssetCheckExecutionContext, site: SiteResource):
    """Great Expectations suites over the raw store, after the extract and before dbt builds on it."""
    s = site.settings()
    # Rows whose content passed before are not validated again (quality.REVALIDATE_AFTER aside).
    report = run_suites(
        RAW_SUITES,
        s.raw_db,
        timezone=site.policy().timezone,
        incremental=True,
        now=datetime.now(),
        record_db=s.validated_rows_db,
    )
    _log_report(context, report)
    yield from quality_check_results(report)


@dg.multi_asset_check(specs=quality_check_specs(WAREHOUSE_SUITES), name="warehouse_quality_checks")
def warehouse_quality_checks(context: dg.AssetCheckExecutionContext, site: SiteResource):
    """Great Expectations suites over the build file (raw store attached), before it is published:
    the checks are blocking, so a failed one stops `published_warehouse`."""
    s = site.settings()
    # Rows whose content passed before are not validated again (quality.REVALIDATE_AFTER aside).
    report = run_suites(
        WAREHOUSE_SUITES,
        s.raw_db,
        s.build_db,
        timezone=site.policy().timezone,
        incremental=True,
        now=datetime.now(),
        record_db=s.validated_rows_db,
    )
    _log_report(context, report)
    halt_point(s.env, "checks", context.run.run_id)
    yield from quality_check_results(report)
