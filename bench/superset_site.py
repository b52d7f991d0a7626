"""Superset for a benchmark stage: metadata set up, gunicorn started on a free port, the site provisioned
(the org directory's users, row-level security, the dashboards) as `callsight demo` does, and stopped.
As a company runs it: the data cache shared in Redis (CALLSIGHT_REDIS_URL; a database of its own here)."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from callsight.bi.runtime import WEB_THREADS, WEB_WORKERS
from callsight.site.directory import Directory
from callsight.site.settings import Settings

BENCH_REDIS = "redis://127.0.0.1:6379/14"


@dataclass(frozen=True)
class BenchSite:
    url: str
    user_password: str  # every directory user's (the demo's one member password; admins share it here)
    directory: Directory
    settings: Settings
    pid: int  # gunicorn's master: its tree is Superset's memory
    admin_password: str  # the bootstrap admin's, for the night's cache warm-up
    env: dict[str, str]  # the shared cache's settings (empty: each process caches in its own memory)

    def warm_settings(self) -> Settings:
        """The site's settings as the night sees them (with the shared cache)."""
        return Settings.from_env({**os.environ, "CALLSIGHT_HOME": str(self.settings.home), **self.env})


def user_password(settings: Settings) -> str:
    """The directory users' password of this bench site: made once, kept in its home. Provisioning sets
    a password only for a user it creates, so a later stage (the team load after the charts, or `--only`
    on a kept site) logs in with the password of the first. A site without the file gets its Superset
    metadata afresh (users made with a password nobody knows; the bench's metadata is disposable)."""
    path = settings.home / "bench-user-password"
    if not path.exists():
        (settings.superset_home / "superset.db").unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(12), encoding="utf-8")
    return path.read_text(encoding="utf-8").strip()


@contextmanager
def bench_superset(
    settings: Settings,
    workers: int = WEB_WORKERS,
    threads: int = WEB_THREADS,
    log_name: str = "superset-bench.log",
    shared_cache: bool = True,
) -> Iterator[BenchSite]:
    """A provisioned Superset on the served warehouse of `settings.home`, for the duration of the block:
    gunicorn with `workers` processes of `threads` threads (by default the product's split, bi/runtime.py)."""
    from callsight.bi.runtime import SupersetEnv, stop, wait_healthy
    from callsight.cli.commands import provision
    from callsight.site.directory import load_directory

    admin_pw, user_pw = secrets.token_urlsafe(12), user_password(settings)
    cache = {"CALLSIGHT_REDIS_URL": BENCH_REDIS, "CALLSIGHT_CELERY_QUEUE": f"callsight-bench-{secrets.token_hex(4)}"}
    cache = cache if shared_cache else {}
    env = SupersetEnv(
        settings,
        secrets.token_urlsafe(32),
        extra_env=(("CALLSIGHT_AUTH_RATE_LIMIT", "1000 per second"), *cache.items()),
    )
    env.init_metadata(admin_pw)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = env.start_web(port=port, workers=workers, threads=threads, log_name=log_name)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        provision(settings, url, admin_pw, user_pw)
        directory = load_directory(settings.effective_directory_path)
        yield BenchSite(url, user_pw, directory, settings, proc.pid, admin_pw, cache)
    finally:
        stop(proc)
