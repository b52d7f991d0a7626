"""`callsight demo`: generated demo secrets, the demo's reports profile (its own PostgreSQL database,
Redis, a local SMTP outbox), the demo logins, then demo data -> nightly run -> provision -> serve."""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import socket
import time
from pathlib import Path

from callsight.bi.admin_passwords import ADMIN_PASSWORD, MEMBER_PASSWORD, check_distinct
from callsight.cli.commands import _free_port, _print, cmd_demo_data, cmd_run
from callsight.cli.serve import serve, warn_if_root
from callsight.site.directory import Directory, load_directory
from callsight.site.settings import Settings

DEMO_BANNER = """
 ############################################################################
 #  callsight DEMO - generated data, generated demo secrets, demo passwords.  #
 #  Not for production: set SUPERSET_SECRET_KEY, SUPERSET_ADMIN_PASSWORD and  #
 #  point CALLSIGHT_JOURNAL_URL / CALLSIGHT_DIRECTORY / CALLSIGHT_POLICY at   #
 #  your own journal and configuration instead.                               #
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


def viewer_grants(served_db: Path, viewer: str) -> list[tuple[str, str]] | None:
    """(agent, grant reasons) of security.viewer_agents for one viewer, from the built warehouse;
    None while there is none (before the first nightly run)."""
    import duckdb

    if not served_db.exists():
        return None
    try:
        con = duckdb.connect(str(served_db), read_only=True)
    except duckdb.Error:
        return None
    try:
        return con.execute(
            "SELECT agent_username, grant_reasons FROM security.viewer_agents WHERE viewer_username = ? ORDER BY 1",
            [viewer],
        ).fetchall()
    except duckdb.Error:
        return None
    finally:
        con.close()


def describe_grants(viewer: str, grants: list[tuple[str, str]] | None, directory: Directory) -> str:
    """Pure: how many agents a viewer sees and why, from viewer_agents' reasons ('own', 'leader:G' -
    leaders and deputies alike, told apart by the directory - and 'group:G')."""
    if grants is None:
        return "sees own calls and those granted by their groups (warehouse not built yet)"
    reasons = {r.strip() for _, rs in grants for r in rs.split(",") if r.strip()}
    deputies = {g.name for g in directory.groups if viewer in g.deputies and viewer not in g.leaders}
    parts = ["own calls"] if "own" in reasons else []
    for kind, text in (("leader", "{role} of {g}"), ("group", "group journal of {g} shared with its members")):
        for g in sorted(r.split(":", 1)[1] for r in reasons if r.startswith(kind + ":")):
            parts.append(text.format(role="deputy" if g in deputies else "leader", g=g))
    n = len(grants)
    return f"sees {n} agent{'' if n == 1 else 's'} ({', '.join(parts)})"


def demo_logins(settings: Settings, password: str, admin_password: str | None = None) -> list[tuple[str, str, str]]:
    """(username, password, what they see) for a group leader, a plain member, an analyst and, given its
    password (never the members': admin_passwords), the directory's first admin. What a leader or member
    sees comes from the built warehouse's visibility mapping (security.viewer_agents)."""
    directory = load_directory(settings.effective_directory_path)
    picks: list[tuple[str, str, str]] = []

    def sees(user: str) -> str:
        return describe_grants(user, viewer_grants(settings.served_db, user), directory)

    group = next((g for g in directory.groups if g.journal_visible_to_leader and g.leaders), None)
    if group:
        picks.append((group.leaders[0], password, f"leader of {group.name}: {sees(group.leaders[0])}"))
        plain = next((m for m in group.members if m not in group.leaders + group.deputies), None)
        if plain:
            picks.append((plain, password, f"member of {group.name}: {sees(plain)}"))
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
