"""The `callsight` subcommands that run once and return: demo data, the nightly run, provisioning,
docs, rollback, erasure and the processing record."""

from __future__ import annotations

import argparse
import contextlib
import socket
from datetime import date
from pathlib import Path

from callsight.bi.admin_passwords import ADMIN_PASSWORD, MEMBER_PASSWORD
from callsight.site.policy import load_policy
from callsight.site.settings import Settings
from callsight.site.yaml_config import ConfigError


def _print(msg: str) -> None:
    print(msg, flush=True)


def require_secret(settings: Settings, name: str) -> str:
    value = settings.secret(name)
    if not value:
        raise SystemExit(
            f"callsight: {name} is not set. Secrets come from the environment or a file named by {name}_FILE "
            f"(see docs/settings.md); `make demo` generates demo secrets."
        )
    return value


def cmd_demo_data(settings: Settings, args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from callsight.defs.nightly import yesterday
    from callsight.demo.journal import generate

    end = date.fromisoformat(args.end) if args.end else yesterday("Europe/Berlin")
    if settings.demo_journal_path.exists() and not args.force:
        _print(f"demo data already in {settings.demo_dir} (use --force to regenerate)")
        return 0
    with Progress() as progress:
        task = progress.add_task("Generating demo journal", total=args.days)
        result = generate(
            settings.demo_dir,
            seed=args.seed,
            days=args.days,
            users=args.users,
            end=end,
            table=settings.journal_table,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    _print(f"demo journal: {result.rows} call legs, {result.first_day} .. {result.last_day} -> {result.journal_path}")
    _print(f"org directory: {result.directory_path}\npolicy: {result.policy_path}")
    return 0


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    from callsight.defs.nightly import run_nightly

    first = date.fromisoformat(args.date or args.from_) if (args.date or args.from_) else None
    last = date.fromisoformat(args.date or args.to) if (args.date or args.to) else None
    try:
        result = run_nightly(settings, first, last, full_refresh=args.full_refresh)
    except ConfigError as exc:
        _print(f"callsight: configuration refused, nothing was written:\n{exc}")
        return 2
    if result.success:
        _print(
            f"nightly run {result.run_id} succeeded for {result.first} .. {result.last}; published {settings.served_db}"
        )
        return 0
    _print(
        f"nightly run {result.run_id} FAILED for {result.first} .. {result.last}: {result.failure}\n"
        f"The last good warehouse keeps serving ({settings.served_db})."
    )
    if result.notified:
        _print(f"failure mail sent to {len(result.notified)} admin(s)")
    return 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _superset_up(url: str) -> bool:
    import requests

    try:
        return requests.get(f"{url}/health", timeout=3).status_code == 200
    except requests.RequestException:
        return False


def provision(settings: Settings, url: str, admin_password: str, user_password: str | None) -> None:
    from callsight.bi.admin_passwords import set_admin_passwords
    from callsight.bi.provision import provision_superset

    report = provision_superset(settings, url, admin_password, user_password)
    own = set_admin_passwords(settings, url, admin_password)
    _print(
        f"provisioned Superset at {url}: datasets {sorted(report.datasets)}, "
        f"{len(report.users_created)} users created, {len(report.users_updated)} updated, "
        f"{len(report.users_deactivated)} deactivated, RLS rules {report.rls_rules}"
    )
    if own:
        _print(f"admin logins with their own password (not the members' demo password): {', '.join(own)}")
    elif user_password and not settings.secret(ADMIN_PASSWORD):
        _print(f"WARNING: {MEMBER_PASSWORD} without {ADMIN_PASSWORD}: the directory's admins share it")
    if report.missing_permissions:
        _print(f"note: permissions not offered by this Superset version: {', '.join(report.missing_permissions)}")
    if report.reports is None:
        _print(
            "e-mail reports: not provisioned - they need the production profile "
            "(SUPERSET_DATABASE_URI=postgresql+psycopg2://..., CALLSIGHT_REDIS_URL=redis://...; "
            "see docs/dashboards-and-reports.md)"
        )
    else:
        r = report.reports
        _print(
            f"e-mail reports: {len(r.created)} created, {len(r.updated)} updated, {len(r.deleted)} deleted"
            + (f"; not sent: {'; '.join(r.skipped)}" if r.skipped else "")
        )


def cmd_provision(settings: Settings, args: argparse.Namespace) -> int:
    from callsight.bi.runtime import SupersetEnv, stop, wait_healthy

    secret = require_secret(settings, "SUPERSET_SECRET_KEY")
    admin_password = require_secret(settings, "SUPERSET_ADMIN_PASSWORD")
    user_password = settings.secret(MEMBER_PASSWORD)
    env = SupersetEnv(settings, secret)
    env.init_metadata(admin_password)
    if _superset_up(settings.superset_url):
        provision(settings, settings.superset_url, admin_password, user_password)
        return 0
    port = _free_port()  # no server running: start a temporary one for the API calls
    proc = env.start_web(port=port, workers=1, log_name="superset-provision.log")
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc)
        provision(settings, url, admin_password, user_password)
    finally:
        stop(proc)
    return 0


def check_ready(url: str, username: str, password: str) -> int:
    """'Ready' = chart data served over HTTP from the published warehouse, as a dashboard user: the
    number of inbound calls that user may see (the Management Summary's "Anrufe")."""
    from callsight.bi.api import SupersetClient

    client = SupersetClient(url).login(username, password)
    (ds,) = list(client.list_all("dataset", [("table_name", "eq", "dashboard_inbound_calls")]))
    data = client.chart_data(
        {
            "datasource": {"id": ds["id"], "type": "table"},
            "force": True,
            "queries": [{"metrics": ["anrufe"], "columns": [], "filters": []}],
            "result_format": "json",
            "result_type": "full",
        }
    )
    return int(data["result"][0]["data"][0]["anrufe"])


def cmd_dbt_docs(settings: Settings, args: argparse.Namespace) -> int:
    import functools
    import http.server

    from callsight.warehouse.schema_docs import generate_dbt_docs

    page = generate_dbt_docs(settings)
    _print(f"dbt docs: {page}")
    if args.serve:
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(page.parent))
        with http.server.ThreadingHTTPServer(("127.0.0.1", args.port), handler) as httpd:
            _print(f"serving http://127.0.0.1:{args.port}/static_index.html (Ctrl-C stops)")
            with contextlib.suppress(KeyboardInterrupt):
                httpd.serve_forever()
    return 0


def cmd_dq_docs(settings: Settings, args: argparse.Namespace) -> int:
    import shutil

    from callsight.quality.run import run_suites
    from callsight.quality.suites import load_suites

    if not settings.served_db.exists():
        _print(f"callsight: no published warehouse at {settings.served_db}; run `callsight run` first")
        return 1
    shutil.rmtree(settings.dq_docs_dir, ignore_errors=True)
    timezone = load_policy(settings.effective_policy_path).timezone
    report = run_suites(
        load_suites(), settings.raw_db, settings.served_db, docs_dir=settings.dq_docs_dir, timezone=timezone
    )
    failed = report.failed
    _print(
        f"data quality of {settings.served_db}: {report.expectation_count - len(failed)} of "
        f"{report.expectation_count} expectations met in {len(report.results)} suites"
    )
    for o in failed:
        _print(f"  FAILED {o}")
    _print(f"Data Docs: {report.docs_index}")
    return 0 if report.success else 1


def cmd_rollback(settings: Settings, args: argparse.Namespace) -> int:
    from callsight.publish.builds import PublishError, rollback
    from callsight.site.home import kept_builds

    if args.list:
        for b in kept_builds(settings.served_db):
            _print(b.name)
        return 0
    try:
        restored = rollback(settings.served_db, args.build)
    except PublishError as exc:
        _print(f"callsight: {exc}")
        return 1
    _print(f"serving {restored.name} again as {settings.served_db}; the replaced build is kept in history/")
    return 0


def cmd_erase(settings: Settings, args: argparse.Namespace) -> int:
    import duckdb

    from callsight.privacy.erase_everywhere import erase
    from callsight.privacy.erasure import CONTACT, PHONE, ErasureKeyError, Identifier
    from callsight.site.run_lock import one_night

    try:
        identifiers = [Identifier(PHONE, p) for p in args.phone or []]
        identifiers += [Identifier(CONTACT, c) for c in args.contact or []]
    except ValueError as exc:
        _print(f"callsight: {exc}; nothing was recorded")
        return 2
    if not identifiers:
        _print("callsight erase: name at least one --phone or --contact")
        return 2
    try:
        # The erasure and its republish are one night's work: never beside a running night (run_lock).
        with one_night(settings.home, "callsight erase"):
            result = erase(settings, identifiers)
    except ErasureKeyError as exc:
        _print(f"callsight: {exc}; nothing was recorded")
        return 2
    except duckdb.IOException as exc:
        _print(
            f"callsight: the raw store is busy (a nightly run?): {exc}\n"
            "Run the same `callsight erase` again when the run has finished: repeating a request is harmless."
        )
        return 1
    _print(
        f"erasure request {result.request_id} recorded ({result.identifiers} identifier(s), stored as keyed hashes): "
        f"{result.journal_rows} stored call legs and {result.quarantine_rows} quarantined rows cleared; "
        "later extracts suppress them too"
    )
    if result.published is None:
        _print("no published warehouse yet: the first nightly run builds it without the erased data")
        return 0
    if not result.published:
        _print(
            f"FAILED to republish the warehouse: {result.failure}\n"
            "The served warehouse and the kept builds still hold the erased fields until a run publishes: "
            "fix the cause and run `callsight run`."
        )
        return 1
    _print(f"warehouse rebuilt and published; {result.kept_builds_removed} kept build(s) deleted (they predate it)")
    return 0


def cmd_privacy_report(settings: Settings, args: argparse.Namespace) -> int:
    from callsight.privacy.record import write_report

    output = Path(args.output).resolve() if args.output else None
    path = write_report(settings, args.format, output, lang=getattr(args, "lang", None))
    _print(f"processing record written to {path}")
    return 0


def cmd_schema_doc(settings: Settings, args: argparse.Namespace) -> int:
    from callsight.warehouse.schema_docs import write_schema_doc

    _print(f"wrote {write_schema_doc()}")
    return 0
