"""`callsight serve`: Superset (with Celery worker and beat for e-mail reports), the Dagster daemon and
its UI, kept running until Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from callsight.bi.admin_passwords import ADMIN_PASSWORD, MEMBER_PASSWORD
from callsight.cli.bind import exposure_warning, probe_host, web_split
from callsight.cli.commands import _print, _superset_up, check_ready, provision, require_secret
from callsight.site.file_modes import OWNER_ONLY_UMASK
from callsight.site.settings import Settings

ROOT_WARNING = """
 ############################################################################
 #  WARNING: callsight is running as root.                                  #
 #  Run its services as a dedicated unprivileged user (e.g. `callsight`)    #
 #  owning CALLSIGHT_HOME, never as root - docs/running.md              #
 ############################################################################
"""
DASHBOARD_SLUGS = ("management-summary", "agenten", "kunden", "projekte")


def warn_if_root(demo: bool) -> None:
    """Services never run as root; a loud warning, not a refusal (the demo may run on a throwaway box)."""
    if os.geteuid() == 0:
        _print(ROOT_WARNING + ("  (tolerated for the demo on a throwaway machine)\n" if demo else ""))


def serve(
    settings: Settings,
    secret: str,
    admin_password: str,
    demo_logins: list[tuple[str, str, str]] | None,
    port: int = 8088,
    dagster_port: int = 3000,
    once: bool = False,
    dagster_ui: bool = True,
    host: str = "127.0.0.1",
) -> int:
    from callsight.bi.runtime import SupersetEnv, stop, wait_healthy
    from callsight.cli.dagster_ui import allowed_hosts

    # Superset listens on `host`; the Dagster UI has no login and stays on loopback (the proxy publishes it).
    url = f"http://{probe_host(host)}:{port}"
    if warning := exposure_warning(host, settings.env):
        _print(warning)
    try:
        ui_hosts = allowed_hosts(settings)  # a bad name fails now, not after Superset started
        workers, threads = web_split(settings.env)
    except ValueError as exc:
        raise SystemExit(f"callsight: {exc}") from None
    # Report screenshots: the worker's browser must reach this web server.
    webdriver = () if settings.env.get("CALLSIGHT_WEBDRIVER_BASEURL") else (("CALLSIGHT_WEBDRIVER_BASEURL", f"{url}/"),)
    env = SupersetEnv(settings, secret, extra_env=webdriver)
    if _superset_up(url):
        raise SystemExit(f"callsight: something already answers on {url}; stop it first")
    procs: list[subprocess.Popen] = []
    web = env.start_web(host=host, port=port, workers=workers, threads=threads)
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
    env = dagster_env(settings, superset_url, admin_password, os.environ)
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    commands = {"dagster-daemon.log": daemon_argv()}
    if ui_port is not None:
        commands["dagster-ui.log"] = ui_argv("127.0.0.1", ui_port)
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


def dagster_env(settings: Settings, superset_url: str, admin_password: str, base: Mapping[str, str]) -> dict[str, str]:
    """The Dagster daemon's and UI's environment: `base` plus the site's settings and secrets."""
    # The nightly job syncs Superset's users, roles and RLS after publishing: it needs the admin secret.
    env = {
        **base,
        **settings.export(),
        "CALLSIGHT_SUPERSET_URL": superset_url,
        "SUPERSET_ADMIN_PASSWORD": admin_password,
    }
    # the demo's come from its secrets file
    for name in (MEMBER_PASSWORD, ADMIN_PASSWORD, "CALLSIGHT_ERASURE_KEY", "CALLSIGHT_PSEUDONYM_KEY"):
        if settings.secret(name):
            env[name] = settings.secret(name)
    return env


def daemon_argv() -> list[str]:
    return [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-m", "callsight.definitions"]


def ui_argv(host: str, port: int) -> list[str]:
    """The Dagster UI behind its Host check (callsight.cli.dagster_ui)."""
    return [sys.executable, "-m", "callsight.cli.dagster_ui", "--host", host, "--port", str(port)]


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    warn_if_root(demo=False)
    secret = require_secret(settings, "SUPERSET_SECRET_KEY")
    admin_password = require_secret(settings, "SUPERSET_ADMIN_PASSWORD")
    from callsight.bi.runtime import SupersetEnv

    SupersetEnv(settings, secret).init_metadata(admin_password)
    return serve(
        settings,
        secret,
        admin_password,
        None,
        args.port,
        args.dagster_port,
        args.once,
        not args.no_dagster_ui,
        host=args.host,
    )
