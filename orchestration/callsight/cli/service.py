"""`callsight service NAME`: one production service in the foreground, as its systemd unit runs it.

Each service is an argv and an environment built from the site's settings (`launch`, the same commands
and environment `callsight serve` gives its children); then this process becomes that server
(os.execvpe), so systemd supervises the real process and its SIGTERM reaches it. Output goes to
stdout/stderr (the journal), not to files in CALLSIGHT_HOME. Secrets given as files (`<NAME>_FILE`, systemd
credentials) are plain variables by then: `callsight` exports them at start (site/secret_files).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from callsight.cli.bind import bind_setting, count_setting, exposure_warning, is_loopback, probe_host, web_split
from callsight.cli.commands import _print, require_secret
from callsight.cli.serve import daemon_argv, dagster_env, ui_argv, warn_if_root
from callsight.site.settings import Settings

SERVICES = {
    "superset-init": "create or upgrade Superset's metadata DB, bootstrap admin and built-in roles, then exit",
    "superset-web": "Superset's web server (gunicorn) on CALLSIGHT_SUPERSET_BIND",
    "celery-worker": "the Celery worker running Superset's e-mail reports",
    "celery-beat": "the one Celery beat queuing due reports",
    "dagster-webserver": "the Dagster UI behind its Host check on CALLSIGHT_DAGSTER_BIND",
    "dagster-daemon": "the Dagster daemon: nightly schedule, freshness check, failure mail",
}
SUPERSET_BIND = "CALLSIGHT_SUPERSET_BIND"
CELERY_CONCURRENCY, DAGSTER_BIND = "CALLSIGHT_CELERY_CONCURRENCY", "CALLSIGHT_DAGSTER_BIND"
DEFAULT_SUPERSET_BIND, DEFAULT_DAGSTER_BIND = "127.0.0.1:8088", "127.0.0.1:3000"
DAGSTER_WARNING = (
    "WARNING: the Dagster UI has no login and can launch runs; it listens on {host}, beyond loopback. "
    "Bind it to 127.0.0.1 and publish it only through the authenticating proxy (deploy/nginx)."
)


@dataclass(frozen=True)
class Launch:
    """What a service runs: the command, its whole environment and working directory, and what to say first."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    warnings: tuple[str, ...] = ()


def superset_launch(name: str, settings: Settings) -> Launch:
    """gunicorn, the Celery worker or beat from the Superset venv, with the environment `serve` gives them."""
    from callsight.bi.runtime import SupersetEnv

    secret = require_secret(settings, "SUPERSET_SECRET_KEY")
    host, port = bind_setting(settings.env, SUPERSET_BIND, DEFAULT_SUPERSET_BIND)
    # Report screenshots: the worker's browser must reach the web server.
    webdriver = settings.env.get("CALLSIGHT_WEBDRIVER_BASEURL") or f"http://{probe_host(host)}:{port}/"
    extra = [("CALLSIGHT_WEBDRIVER_BASEURL", webdriver)]
    if name != "superset-web":  # Celery logs nobody in: superset_config leaves LDAP (and its bind password) out
        extra.append(("CALLSIGHT_SUPERSET_PROCESS", "celery"))
    env = SupersetEnv(settings, secret, extra_env=tuple(extra))
    warnings: list[str] = []
    if name == "superset-web":
        argv = env.web_argv(host, port, *web_split(settings.env))
        warnings += filter(None, [exposure_warning(host, settings.env)])
    else:
        if not settings.env.get("CALLSIGHT_REDIS_URL"):
            raise SystemExit(f"callsight: {name} needs CALLSIGHT_REDIS_URL (Celery's broker); see docs/settings.md")
        if not settings.reports_profile:
            warnings.append("warning: reports need a PostgreSQL metadata DB (SUPERSET_DATABASE_URI); SQLite cannot")
        concurrency = count_setting(settings.env, CELERY_CONCURRENCY, 2)
        argv = env.worker_argv(concurrency) if name == "celery-worker" else env.beat_argv()
    return Launch(argv, env.environ(), settings.home, tuple(warnings))


def dagster_launch(name: str, settings: Settings, base: Mapping[str, str]) -> Launch:
    """The Dagster daemon or UI with the site's settings and secrets (the nightly job syncs Superset)."""
    from callsight.cli.dagster_ui import allowed_hosts

    admin_password = require_secret(settings, "SUPERSET_ADMIN_PASSWORD")
    env = dagster_env(settings, settings.superset_url, admin_password, base)
    if name == "dagster-daemon":
        return Launch(daemon_argv(), env, settings.home)
    try:
        allowed_hosts(settings)  # a bad name fails here, in the unit's status, not in a restart loop
    except ValueError as exc:
        raise SystemExit(f"callsight: {exc}") from None
    host, port = bind_setting(settings.env, DAGSTER_BIND, DEFAULT_DAGSTER_BIND)
    warnings = () if is_loopback(host) else (DAGSTER_WARNING.format(host=host),)
    return Launch(ui_argv(host, port), env, settings.home, warnings)


def launch(name: str, settings: Settings, base: Mapping[str, str]) -> Launch:
    """The service `name` (one of SERVICES but superset-init) for this site; `base` is the inherited environment."""
    if name.startswith("dagster-"):
        return dagster_launch(name, settings, base)
    return superset_launch(name, settings)


def cmd_service(settings: Settings, args: argparse.Namespace) -> int:
    warn_if_root(demo=False)
    try:
        if args.name == "superset-init":
            return init_superset(settings)
        plan = launch(args.name, settings, os.environ)
    except ValueError as exc:
        _print(f"callsight: {exc}")
        return 2
    prepare(args.name, settings)
    for warning in plan.warnings:
        print(warning, file=sys.stderr, flush=True)
    _print(f"callsight service {args.name}: {' '.join(plan.argv[:3])} ...")
    os.chdir(plan.cwd)
    os.execvpe(plan.argv[0], plan.argv, plan.env)  # becomes the server; never returns


def prepare(name: str, settings: Settings) -> None:
    """What must exist before the server starts: Dagster's instance, Superset's state directory."""
    if name.startswith("dagster-"):
        from callsight.defs.nightly import prepare_instance

        prepare_instance(settings)
        return
    from callsight.bi.runtime import SupersetEnv

    SupersetEnv(settings, "").check_installed()
    settings.superset_home.mkdir(parents=True, exist_ok=True)


def init_superset(settings: Settings) -> int:
    """Superset's metadata DB, bootstrap admin and built-in roles, created or upgraded (idempotent)."""
    from callsight.bi.runtime import SupersetEnv, SupersetError

    secret = require_secret(settings, "SUPERSET_SECRET_KEY")
    admin_password = require_secret(settings, "SUPERSET_ADMIN_PASSWORD")
    try:
        SupersetEnv(settings, secret).init_metadata(admin_password)
    except SupersetError as exc:
        _print(f"callsight: {exc}")
        return 1
    _print(f"Superset metadata ready (admin {settings.superset_admin_username})")
    return 0


def add_service_command(sub: argparse._SubParsersAction) -> None:
    lines = "\n".join(f"  {name:<18} {what}" for name, what in SERVICES.items())
    s = sub.add_parser(
        "service",
        help="run one production service in the foreground (what a systemd unit starts)",
        description=f"Run one service in the foreground with the site's environment:\n{lines}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("name", choices=list(SERVICES))
    s.set_defaults(func=cmd_service)
