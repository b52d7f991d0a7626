"""The `callsight` command."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from callsight.bi.admin_passwords import ADMIN_PASSWORD, MEMBER_PASSWORD, SharedPasswordError, check_distinct
from callsight.site.directory import load_directory
from callsight.site.file_modes import OWNER_ONLY_UMASK, secure_home
from callsight.site.policy import load_policy
from callsight.site.settings import Settings
from callsight.site.yaml_config import ConfigError

DEMO_BANNER = """
 ############################################################################
 #  callsight DEMO - generated data, generated demo secrets, demo passwords.  #
 #  Not for production: set SUPERSET_SECRET_KEY, SUPERSET_ADMIN_PASSWORD and  #
 #  point CALLSIGHT_JOURNAL_URL / CALLSIGHT_DIRECTORY / CALLSIGHT_POLICY at   #
 #  your own journal and configuration instead.                               #
 ############################################################################
"""
ROOT_WARNING = """
 ############################################################################
 #  WARNING: callsight is running as root.                                  #
 #  Run its services as a dedicated unprivileged user (e.g. `callsight`)    #
 #  owning CALLSIGHT_HOME, never as root - docs/running.md              #
 ############################################################################
"""
DEMO_SECRET_NAMES = (
    "SUPERSET_SECRET_KEY",
    "SUPERSET_ADMIN_PASSWORD",
    MEMBER_PASSWORD,
    ADMIN_PASSWORD,
    "CALLSIGHT_ERASURE_KEY",
    "CALLSIGHT_PSEUDONYM_KEY",
)
LONG_SECRETS = ("SUPERSET_SECRET_KEY", "CALLSIGHT_ERASURE_KEY", "CALLSIGHT_PSEUDONYM_KEY")
DASHBOARD_SLUGS = ("management-summary", "agenten", "kunden", "projekte")


def _print(msg: str) -> None:
    print(msg, flush=True)


def warn_if_root(demo: bool) -> None:
    """Services never run as root; a loud warning, not a refusal (the demo may run on a throwaway box)."""
    if os.geteuid() == 0:
        _print(ROOT_WARNING + ("  (tolerated for the demo on a throwaway machine)\n" if demo else ""))


# ---- demo secrets ---------------------------------------------------------------------------------
def demo_secrets(settings: Settings) -> dict[str, str]:
    """Random demo secrets, made once per CALLSIGHT_HOME (file mode 0600); the environment wins."""
    path = settings.demo_dir / "demo-secrets.env"
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                values[k] = v
    changed = False
    for name in DEMO_SECRET_NAMES:
        if not values.get(name):
            values[name] = secrets.token_urlsafe(42 if name in LONG_SECRETS else 12)
            changed = True
    if changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        body = "# callsight DEMO secrets - generated, for this demo home only\n" + "".join(
            f"{k}={v}\n" for k, v in values.items()
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(body)
    return {k: settings.env.get(k) or v for k, v in values.items()}


def require_secret(settings: Settings, name: str) -> str:
    value = settings.secret(name)
    if not value:
        raise SystemExit(
            f"callsight: {name} is not set. Secrets come from the environment "
            f"(see docs/settings.md); `make demo` generates demo secrets."
        )
    return value


# ---- subcommands ----------------------------------------------------------------------------------
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


def serve(
    settings: Settings,
    secret: str,
    admin_password: str,
    demo_logins: list[tuple[str, str, str]] | None,
    port: int = 8088,
    dagster_port: int = 3000,
    once: bool = False,
    dagster_ui: bool = True,
) -> int:
    from callsight.bi.runtime import SupersetEnv, stop, wait_healthy
    from callsight.cli.dagster_ui import allowed_hosts

    url = f"http://127.0.0.1:{port}"
    try:
        ui_hosts = allowed_hosts(settings)  # a bad name fails now, not after Superset started
    except ValueError as exc:
        raise SystemExit(f"callsight: {exc}") from None
    # Report screenshots: the worker's browser must reach this web server.
    webdriver = () if settings.env.get("CALLSIGHT_WEBDRIVER_BASEURL") else (("CALLSIGHT_WEBDRIVER_BASEURL", f"{url}/"),)
    env = SupersetEnv(settings, secret, extra_env=webdriver)
    if _superset_up(url):
        raise SystemExit(f"callsight: something already answers on {url}; stop it first")
    procs: list[subprocess.Popen] = []
    web = env.start_web(port=port)
    procs.append(web)
    try:
        wait_healthy(url, web)
        if settings.reports_profile:
            procs.append(env.start_worker())
            procs.append(env.start_beat())
            _print("e-mail reports: Celery worker and beat started (production profile: PostgreSQL + Redis)")
        provision(settings, url, admin_password, settings.secret(MEMBER_PASSWORD))
        if demo_logins:
            n = check_ready(url, *demo_logins[0][:2])
            _print(
                f"ready: chart data served over HTTP from {settings.served_db} "
                f"({n} inbound calls visible to {demo_logins[0][0]})"
            )
        procs += start_dagster(settings, url, admin_password, dagster_port if dagster_ui else None)
        _print(f"\nSuperset: {url}/   (admin: {settings.superset_admin_username})")
        if dagster_ui:
            _print(f"Dagster:  http://127.0.0.1:{dagster_port}/   (lineage, runs; answers Host {', '.join(ui_hosts)})")
        _print("Dagster daemon: nightly schedule 02:00, freshness check hourly")
        _print("Dashboards: " + "  ".join(f"{url}/superset/dashboard/{slug}/" for slug in DASHBOARD_SLUGS))
        for user, pw, role in demo_logins or []:
            _print(f"  login {user:<24} password {pw:<18} {role}")
        _print(f"Logs: {settings.log_dir}\nStop with Ctrl-C.")
        if once:
            return 0
        stopping = {"flag": False}

        def _stop(_sig: int, _frame: object) -> None:
            stopping["flag"] = True

        # Ctrl-C and SIGTERM both stop cleanly (a background start may have inherited SIGINT as ignored).
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        try:
            while not stopping["flag"]:
                for p in procs:
                    if p.poll() is not None:
                        _print(f"callsight: a server exited ({p.args[0]}, code {p.returncode}); stopping")
                        return 1
                time.sleep(1)
        except KeyboardInterrupt:
            pass
        _print("\nstopping ...")
        return 0
    finally:
        # A second Ctrl-C must not interrupt the shutdown and leave servers behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for p in reversed(procs):
            stop(p)


def start_dagster(
    settings: Settings, superset_url: str, admin_password: str, ui_port: int | None
) -> list[subprocess.Popen]:
    """The Dagster daemon (schedules, sensors, runs launched from the UI) and, with a port, the UI behind
    its Host check (callsight.cli.dagster_ui) - what `dagster dev` started, without its unguarded UI."""
    from callsight.defs.nightly import prepare_instance

    prepare_instance(settings)
    # The nightly job syncs Superset's users, roles and RLS after publishing: it needs the admin secret.
    env = {
        **os.environ,
        **settings.export(),
        "CALLSIGHT_SUPERSET_URL": superset_url,
        "SUPERSET_ADMIN_PASSWORD": admin_password,
    }
    # the demo's come from its secrets file
    for name in (MEMBER_PASSWORD, ADMIN_PASSWORD, "CALLSIGHT_ERASURE_KEY", "CALLSIGHT_PSEUDONYM_KEY"):
        if settings.secret(name):
            env[name] = settings.secret(name)
    bin_dir = Path(sys.executable).parent
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    commands = {"dagster-daemon.log": [str(bin_dir / "dagster-daemon"), "run", "-m", "callsight.definitions"]}
    if ui_port is not None:
        commands["dagster-ui.log"] = [sys.executable, "-m", "callsight.cli.dagster_ui", "--port", str(ui_port)]
    procs = []
    for log_name, command in commands.items():
        with (settings.log_dir / log_name).open("ab") as log:
            procs.append(
                subprocess.Popen(
                    command,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    umask=OWNER_ONLY_UMASK,
                )
            )
    return procs


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    warn_if_root(demo=False)
    secret = require_secret(settings, "SUPERSET_SECRET_KEY")
    admin_password = require_secret(settings, "SUPERSET_ADMIN_PASSWORD")
    from callsight.bi.runtime import SupersetEnv

    SupersetEnv(settings, secret).init_metadata(admin_password)
    return serve(
        settings, secret, admin_password, None, args.port, args.dagster_port, args.once, not args.no_dagster_ui
    )


def demo_logins(settings: Settings, password: str, admin_password: str | None = None) -> list[tuple[str, str, str]]:
    """(username, password, what they see) for a group leader, a plain member, an analyst and, given its
    password (never the members': admin_passwords), the directory's first admin."""
    directory = load_directory(settings.effective_directory_path)
    picks: list[tuple[str, str, str]] = []
    group = next((g for g in directory.groups if g.journal_visible_to_leader and g.leaders), None)
    if group:
        picks.append((group.leaders[0], password, f"leader of {group.name}: sees the group's calls"))
        plain = next((m for m in group.members if m not in group.leaders + group.deputies), None)
        if plain:
            picks.append((plain, password, f"member of {group.name}: sees own calls"))
    picks += [(a, password, "analyst: all masked calls, SQL Lab") for a in directory.analysts[:1]]
    if admin_password:
        admins = [a for a in directory.admins if a != settings.superset_admin_username]
        picks += [(a, admin_password, "directory admin: everything, own password") for a in admins[:1]]
    return picks


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


DEMO_PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def demo_reports_profile(settings: Settings) -> dict[str, str]:
    """The production profile for the demo when PostgreSQL and Redis answer on loopback: a metadata
    database of its own, Redis db 1, and mail into a local sink (CALLSIGHT_HOME/demo/outbox)."""
    if settings.reports_profile:
        return {}
    if not (_reachable("127.0.0.1", 5432) and _reachable("127.0.0.1", 6379)):
        _print(
            "e-mail reports: off (PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379 not both reachable).\n"
            "  Enable: run both, or set SUPERSET_DATABASE_URI=postgresql+psycopg2://... and "
            "CALLSIGHT_REDIS_URL=redis://... (docs/dashboards-and-reports.md)."
        )
        return {}
    # One metadata database and one Celery queue per demo home: two demos never share reports.
    tag = hashlib.sha256(str(settings.home).encode()).hexdigest()[:10]
    database = f"callsight_demo_{tag}"
    try:
        import psycopg

        with psycopg.connect(DEMO_PG_ADMIN, autocommit=True, connect_timeout=5) as con:
            if not con.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone():
                con.execute(f'CREATE DATABASE "{database}"')
    except Exception as exc:
        _print(f"e-mail reports: off (cannot create the demo metadata database: {type(exc).__name__}).")
        return {}
    profile = {
        "SUPERSET_DATABASE_URI": f"postgresql+psycopg2://postgres@127.0.0.1:5432/{database}",
        "CALLSIGHT_REDIS_URL": "redis://127.0.0.1:6379/1",
        "CALLSIGHT_CELERY_QUEUE": f"callsight-{tag}",
    }
    if not settings.env.get("SMTP_HOST"):
        port = start_demo_outbox(settings.home / "demo" / "outbox")
        profile |= {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port), "SMTP_STARTTLS": "false"}
    _print(
        "e-mail reports: on (DEMO production profile: PostgreSQL metadata, Celery on Redis); "
        f"mails land in {settings.home / 'demo' / 'outbox'}"
    )
    return profile


def start_demo_outbox(folder: Path) -> int:
    """A local SMTP sink for the demo: every mail is written to `folder` as an .eml file."""
    from aiosmtpd.controller import Controller

    folder.mkdir(parents=True, exist_ok=True)

    class Outbox:
        async def handle_DATA(self, server, session, envelope):
            name = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}.eml"
            (folder / name).write_bytes(envelope.content)
            return "250 OK"

    port = _free_port()
    Controller(Outbox(), hostname="127.0.0.1", port=port).start()
    return port


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from callsight.bi.runtime import SupersetEnv

    _print(DEMO_BANNER)
    warn_if_root(demo=True)
    values = demo_secrets(settings)
    # Admin-role logins never share the members' demo password (also when the environment sets them).
    admin_secrets = {name: values[name] for name in ("SUPERSET_ADMIN_PASSWORD", ADMIN_PASSWORD)}
    check_distinct(values[MEMBER_PASSWORD], admin_secrets)
    env = dict(settings.env, **values)
    settings = Settings.from_env(env)
    # The nightly run below reads its settings from the process environment: it needs the erasure key
    # once `callsight erase` has been used on the demo.
    os.environ.setdefault("CALLSIGHT_ERASURE_KEY", values["CALLSIGHT_ERASURE_KEY"])
    os.environ.setdefault("CALLSIGHT_PSEUDONYM_KEY", values["CALLSIGHT_PSEUDONYM_KEY"])  # for works-council mode
    settings = Settings.from_env({**env, **demo_reports_profile(settings)})
    if settings.is_demo_journal() and not settings.demo_journal_path.exists():
        rc = cmd_demo_data(settings, argparse.Namespace(seed=42, days=90, users=60, end=None, force=False))
        if rc:
            return rc
    rc = cmd_run(settings, argparse.Namespace(date=None, from_=None, to=None, full_refresh=False))
    if rc:
        return rc
    secret, admin_password = values["SUPERSET_SECRET_KEY"], values["SUPERSET_ADMIN_PASSWORD"]
    _print("setting up Superset metadata (first time takes about half a minute) ...")
    SupersetEnv(settings, secret).init_metadata(admin_password)
    # The first login is checked for chart data ("ready"): a group leader, not the admin.
    logins = [
        *demo_logins(settings, values[MEMBER_PASSWORD], values[ADMIN_PASSWORD]),
        (settings.superset_admin_username, admin_password, "admin: everything"),
    ]
    return serve(
        settings, secret, admin_password, logins, args.port, args.dagster_port, args.once, not args.no_dagster_ui
    )


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

    path = write_report(settings, args.format, Path(args.output).resolve() if args.output else None)
    _print(f"processing record written to {path}")
    return 0


def cmd_schema_doc(settings: Settings, args: argparse.Namespace) -> int:
    from callsight.warehouse.schema_docs import write_schema_doc

    _print(f"wrote {write_schema_doc()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="callsight", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo-data", help="write a demo journal, org directory and policy into CALLSIGHT_HOME")
    d.add_argument("--seed", type=int, default=42)
    d.add_argument("--days", type=int, default=90)
    d.add_argument("--users", type=int, default=60)
    d.add_argument("--end", help="last day (YYYY-MM-DD); default yesterday")
    d.add_argument("--force", action="store_true", help="overwrite existing demo data")
    d.set_defaults(func=cmd_demo_data)
    r = sub.add_parser("run", help="run the nightly job once (extract, build, check, publish)")
    r.add_argument("--date", help="one partition day (YYYY-MM-DD)")
    r.add_argument("--from", dest="from_", help="first partition day of a backfill")
    r.add_argument("--to", help="last partition day of a backfill")
    r.add_argument("--full-refresh", action="store_true", help="rebuild incremental models from scratch")
    r.set_defaults(func=cmd_run)
    pv = sub.add_parser("provision", help="Superset: connection, assets, roles, users, row-level security")
    pv.set_defaults(func=cmd_provision)
    for name, func, helptext in (
        ("serve", cmd_serve, "serve Superset (:8088), the Dagster daemon and UI (:3000)"),
        ("demo", cmd_demo, "demo data -> nightly run -> provision -> serve"),
    ):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("--port", type=int, default=8088)
        s.add_argument("--dagster-port", type=int, default=3000)
        s.add_argument("--once", action="store_true", help="stop after reaching 'ready' (for scripts)")
        s.add_argument(
            "--no-dagster-ui", action="store_true", help="Dagster daemon only (schedules run), no Dagster UI"
        )
        s.set_defaults(func=func)
    dd = sub.add_parser("dbt-docs", help="generate (and --serve) the dbt docs for analysts")
    dd.add_argument("--serve", action="store_true")
    dd.add_argument("--port", type=int, default=8081)
    dd.set_defaults(func=cmd_dbt_docs)
    dq = sub.add_parser("dq-docs", help="run the data-quality suites on the published warehouse, write GX Data Docs")
    dq.set_defaults(func=cmd_dq_docs)
    rb = sub.add_parser("rollback", help="serve the previously published warehouse again")
    rb.add_argument("build", nargs="?", help="a kept build (see --list); default the newest")
    rb.add_argument("--list", action="store_true", help="list the kept builds, newest first")
    rb.set_defaults(func=cmd_rollback)
    er = sub.add_parser(
        "erase", help="erasure request (GDPR Art. 17): clear a number's or contact's calls everywhere, now"
    )
    er.add_argument("--phone", action="append", metavar="NUMBER", help="phone number, any format (repeatable)")
    er.add_argument("--contact", action="append", metavar="NAME", help="contact name (repeatable)")
    er.set_defaults(func=cmd_erase)
    pr = sub.add_parser("privacy-report", help="processing record for the DPO and works council, from the live config")
    pr.add_argument("--format", choices=("md", "html"), default="md")
    pr.add_argument("--output", metavar="PATH", help="default: CALLSIGHT_HOME/reports/processing-record-<date>.<fmt>")
    pr.set_defaults(func=cmd_privacy_report)
    sd = sub.add_parser("schema-doc", help="regenerate docs/warehouse-schema.md from the dbt YAML")
    sd.set_defaults(func=cmd_schema_doc)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        _print(f"callsight: {exc}")
        return 2
    secure_home(settings)  # owner-only files for this command and every process it starts
    try:
        return args.func(settings, args)
    except ConfigError as exc:
        _print(f"callsight: configuration refused:\n{exc}")
        return 2
    except SharedPasswordError as exc:
        _print(f"callsight: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
