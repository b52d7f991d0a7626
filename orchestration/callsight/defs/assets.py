"""Dagster assets of the nightly job: org directory, journal extract, dbt models, publish, audit, and
the data-quality checks (Great Expectations suites in data_quality/suites) that gate the publish."""

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg
import requests
from dagster import AssetExecutionContext
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from callsight.bi.admin_passwords import SharedPasswordError, set_admin_passwords
from callsight.bi.api import SupersetAPIError
from callsight.bi.provision import provision_superset
from callsight.bi.security_events import import_security_events
from callsight.defs.run_audit import NIGHTLY_JOB, run_partitions, run_summary
from callsight.extract.org_store import SITE_TABLES, store_site
from callsight.extract.run import Window, extract
from callsight.journal.sources import Source, SourceUnavailableError
from callsight.privacy.audit import record_audit
from callsight.privacy.erasure import ErasureKeyError, erasure_key
from callsight.privacy.pseudonyms import PseudonymKeyError, pseudonym_key
from callsight.privacy.retention import RUN_DATE_TAG, prune_expired_builds, resolve_run_date, retention_cutoff
from callsight.publish.builds import (
    prune_build,
    publish,
    stored_fingerprint,
)
from callsight.publish.freshness import judge, read_served_state
from callsight.quality.suites import QualityReport, SuiteSpec, load_suites, run_suites
from callsight.site.directory import load_directory
from callsight.site.file_modes import restrict_umask, secure_home
from callsight.site.halt import halt_point
from callsight.site.home import kept_builds
from callsight.site.policy import load_policy
from callsight.site.settings import Settings
from callsight.warehouse.build_file import prepare_build
from callsight.warehouse.dbt_guard import PARENT_PID as DBT_PARENT_PID
from callsight.warehouse.dbt_project import build_vars, dbt_project, vars_arg

PARTITIONS_START = "2020-01-01"
PARTITIONS_START_YEAR = 2020
FRESHNESS_CHECK = "fresh"


class SiteResource(dg.ConfigurableResource):
    """Site settings, read from the environment when a run starts (never at import)."""

    def settings(self) -> Settings:
        # Every asset starts here: what it writes is owner-only, whichever process runs it (file_modes).
        restrict_umask()
        return Settings.from_env()


class BuildConfig(dg.Config):
    """Run options of the warehouse build (set in the Dagster launchpad or `callsight run --full-refresh`)."""

    full_refresh: bool = False


class PublishConfig(dg.Config):
    """Run options of the publish step. `callsight erase` discards the kept builds: they predate the erasure."""

    discard_kept_builds: bool = False


def run_date(context: dg.OpExecutionContext, tz: ZoneInfo) -> date:
    """The run's date in the site time zone (when it was created; a later date may come as a run tag)."""
    record = context.instance.get_run_record_by_id(context.run.run_id)
    created = record.create_timestamp if record else datetime.now(UTC)
    return resolve_run_date(created.astimezone(tz).date(), context.run.tags.get(RUN_DATE_TAG))


class CallsightTranslator(DagsterDbtTranslator):
    """dbt sources map onto the assets that land them in the raw store."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return dg.AssetKey(["raw", dbt_resource_props["name"]])
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return "warehouse"


def partition_days(tw: dg.TimeWindow) -> tuple[date, date]:
    """First and last local day of a partition (range). Aware datetimes subtract on the wall clock,
    so DST days of 23 or 25 hours map to their own date."""
    return tw.start.date(), (tw.end - timedelta(days=1)).date()


def daily_partitions(timezone: str) -> dg.DailyPartitionsDefinition:
    return dg.DailyPartitionsDefinition(start_date=PARTITIONS_START, timezone=timezone)


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


def build_assets(timezone: str) -> list[dg.AssetsDefinition | dg.AssetChecksDefinition]:
    partitions = daily_partitions(timezone)
    suites = load_suites()
    raw_suites = [s for s in suites if s.stage == "raw"]
    warehouse_suites = [s for s in suites if s.stage == "warehouse"]

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
    def site_config(context: AssetExecutionContext, site: SiteResource):
        """Org directory (users, groups, options, staff) and holiday calendar, written to the raw store.
        A nightly run records its start in the audit log first."""
        s = site.settings()
        secure_home(s)  # a run the daemon launched tightens the home too (file_modes)
        if context.job_name == NIGHTLY_JOB:
            first, last = run_partitions(context.run.tags)
            started = {"event": "started", "job": NIGHTLY_JOB, "first_day": first, "last_day": last}
            record_audit(s, "run", context.run.run_id, started)
        directory = load_directory(s.effective_directory_path)
        policy = load_policy(s.effective_policy_path)  # refuse a bad policy before anything is written
        try:
            key = pseudonym_key(s, policy)
        except PseudonymKeyError as exc:
            raise dg.Failure(description=str(exc)) from exc
        this_year = datetime.now(policy.tz).year
        years = range(PARTITIONS_START_YEAR, this_year + 2)
        counts = store_site(s.raw_db, directory, policy.calendar, years, pseudonym_key=key)
        for table, n in counts.items():
            yield dg.MaterializeResult(asset_key=["raw", table], metadata={"rows": dg.MetadataValue.int(n)})

    @dg.asset(
        key=["raw", "journal"],
        group_name="extract",
        kinds={"duckdb", "sql"},
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[site_config],
    )
    def journal_extract(context: AssetExecutionContext, site: SiteResource) -> dg.MaterializeResult:
        """Journal legs of the partition window plus the look-back, masked and validated, upserted by ID
        into the raw store. Malformed rows go to the quarantine table with their reason."""
        s = site.settings()
        directory = load_directory(s.effective_directory_path)
        policy = load_policy(s.effective_policy_path)
        first, last = partition_days(context.partition_time_window)
        cutoff = retention_cutoff(run_date(context, policy.tz), policy.retention.journal_days)
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
                directory,
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

    @dg.multi_asset_check(specs=quality_check_specs(raw_suites), name="raw_quality_checks")
    def raw_quality_checks(context: dg.AssetCheckExecutionContext, site: SiteResource):
        """Great Expectations suites over the raw store, after the extract and before dbt builds on it."""
        s = site.settings()
        timezone = load_policy(s.effective_policy_path).timezone
        # Rows whose content passed before are not validated again (quality.REVALIDATE_AFTER aside).
        report = run_suites(
            raw_suites, s.raw_db, timezone=timezone, incremental=True, now=datetime.now(), record_db=s.validated_rows_db
        )
        _log_report(context, report)
        yield from quality_check_results(report)

    project = dbt_project()

    @dbt_assets(manifest=project.manifest_path, project=project, dagster_dbt_translator=CallsightTranslator())
    def warehouse_models(context: AssetExecutionContext, dbt: DbtCliResource, site: SiteResource, config: BuildConfig):
        """dbt build (models and their tests) into a fresh build file started from the served warehouse."""
        s = site.settings()
        policy = load_policy(s.effective_policy_path)
        prepare_build(s.served_db, s.build_db)
        os.environ["CALLSIGHT_HOME"] = str(s.home)  # profiles.yml reads it in the dbt subprocess
        dbt_vars = build_vars(policy.dbt_vars())  # the vars the manifest was parsed with: a partial parse
        fingerprint = str(dbt_vars["build_fingerprint"])
        # Unit tests are for the test suite; the nightly build runs the models and their data tests.
        args = ["build", "--vars", vars_arg(dbt_vars), "--exclude-resource-type", "unit_test"]
        previous = stored_fingerprint(s.build_db)
        if config.full_refresh or previous != fingerprint:
            context.log.info(
                f"full refresh (requested: {config.full_refresh}; fingerprint {previous} -> {fingerprint})"
            )
            args.append("--full-refresh")
        # dbt dies with this process (callsight.warehouse.dbt_guard): the variable is for the one dbt started here.
        os.environ[DBT_PARENT_PID] = str(os.getpid())
        try:
            invocation = dbt.cli(args, context=context)
        finally:
            del os.environ[DBT_PARENT_PID]
        for n, event in enumerate(invocation.stream()):
            yield event
            if n == 0:
                halt_point(s.env, "dbt", context.run.run_id)

    @dg.multi_asset_check(specs=quality_check_specs(warehouse_suites), name="warehouse_quality_checks")
    def warehouse_quality_checks(context: dg.AssetCheckExecutionContext, site: SiteResource):
        """Great Expectations suites over the build file (raw store attached), before it is published:
        the checks are blocking, so a failed one stops `published_warehouse`."""
        s = site.settings()
        timezone = load_policy(s.effective_policy_path).timezone
        # Rows whose content passed before are not validated again (quality.REVALIDATE_AFTER aside).
        report = run_suites(
            warehouse_suites,
            s.raw_db,
            s.build_db,
            timezone=timezone,
            incremental=True,
            now=datetime.now(),
            record_db=s.validated_rows_db,
        )
        _log_report(context, report)
        halt_point(s.env, "checks", context.run.run_id)
        yield from quality_check_results(report)

    @dg.asset(group_name="publish", deps=[warehouse_models], kinds={"duckdb"})
    def published_warehouse(
        context: AssetExecutionContext, site: SiteResource, config: PublishConfig
    ) -> dg.MaterializeResult:
        """The checked build, pruned to the served schemas, compacted and swapped over the served file
        atomically. Kept builds holding calls beyond retention + one night are deleted."""
        s = site.settings()
        policy = load_policy(s.effective_policy_path)
        seconds = prune_build(s.build_db)
        started = time.perf_counter()
        counts = publish(
            s.build_db,
            s.served_db,
            keep=0 if config.discard_kept_builds else s.keep_builds,
            before_swap=lambda: halt_point(s.env, "publish", context.run.run_id),
        )
        cutoff = retention_cutoff(run_date(context, policy.tz), policy.retention.journal_days)
        pruned = prune_expired_builds(s.served_db, cutoff)
        seconds["swap"] = time.perf_counter() - started
        context.log.info(
            f"published {s.served_db}: {counts}; expired kept builds deleted: {len(pruned)}; seconds: "
            + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items())
        )
        return dg.MaterializeResult(
            metadata={
                "path": dg.MetadataValue.path(str(s.served_db)),
                "build_fingerprint": stored_fingerprint(s.served_db) or "",
                "kept_builds": len(kept_builds(s.served_db)),
                "kept_builds_expired": len(pruned),
                **{f"seconds_{k}": dg.MetadataValue.float(round(v, 2)) for k, v in seconds.items()},
                **{k: dg.MetadataValue.int(v) for k, v in counts.items()},
            }
        )

    @dg.asset(group_name="publish", deps=[published_warehouse], kinds={"superset"})
    def superset_access(context: AssetExecutionContext, site: SiteResource) -> dg.MaterializeResult:
        """Superset users, roles, RLS and assets synced from the org directory after every publish: a user
        removed from the directory can no longer log in after the next run."""
        s = site.settings()
        admin_password = s.secret("SUPERSET_ADMIN_PASSWORD")
        if not admin_password:
            context.log.warning("Superset sync skipped: SUPERSET_ADMIN_PASSWORD is not set for the nightly job")
            return dg.MaterializeResult(metadata={"skipped": True})
        try:
            requests.get(f"{s.superset_url}/health", timeout=10).raise_for_status()
        except requests.RequestException as exc:
            context.log.warning(
                f"Superset sync skipped: {s.superset_url} not reachable ({type(exc).__name__}); "
                "`callsight serve` provisions when it starts"
            )
            return dg.MaterializeResult(metadata={"skipped": True})
        try:
            report = provision_superset(s, s.superset_url, admin_password, s.secret("CALLSIGHT_DEMO_PASSWORD"))
            set_admin_passwords(s, s.superset_url, admin_password)  # demo: admins' own password
        except (requests.RequestException, SupersetAPIError, SharedPasswordError) as exc:
            raise dg.Failure(description=f"Superset at {s.superset_url} could not be synced: {exc}") from exc
        return dg.MaterializeResult(
            metadata={
                "skipped": False,
                "users_created": len(report.users_created),
                "users_updated": len(report.users_updated),
                "users_deactivated": dg.MetadataValue.text(", ".join(report.users_deactivated) or "-"),
            }
        )

    @dg.asset_check(
        asset=published_warehouse,
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

    @dg.asset(group_name="audit", deps=[superset_access], kinds={"duckdb"})
    def nightly_run_record(context: AssetExecutionContext, site: SiteResource) -> dg.MaterializeResult:
        """The run's record in the audit log: finished, with the row counts and the build fingerprint.
        (A failed run is recorded by the job's failure hook.)"""
        if context.job_name != NIGHTLY_JOB:
            context.log.info("not a nightly run: nothing recorded")
            return dg.MaterializeResult(metadata={"recorded": False})
        detail = {"event": "finished", "status": "success", **run_summary(context.instance, context.run.run_id)}
        entry = record_audit(site.settings(), "run", context.run.run_id, detail)
        security = import_security_events(site.settings())  # refused queries, login bursts (Superset)
        return dg.MaterializeResult(metadata={"recorded": True, "audit_seq": entry.seq, "security_events": security})

    return [
        site_config,
        journal_extract,
        raw_quality_checks,
        warehouse_models,
        warehouse_quality_checks,
        published_warehouse,
        published_warehouse_fresh,
        superset_access,
        nightly_run_record,
    ]
