"""Run Apache Superset from its own virtual environment: metadata set-up and the web server.

The pipeline never imports Superset; it runs Superset's CLI and gunicorn as child processes and talks
to the server over HTTP (superset_api). Every child process gets umask 077: Superset's metadata DB, its
files and logs under CALLSIGHT_HOME are owner-only (file_modes).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from callsight.site.file_modes import OWNER_ONLY_UMASK, restrict_umask
from callsight.site.secret_files import resolve_secret_files
from callsight.site.settings import REPO_ROOT, Settings

SUPERSET_CONFIG = REPO_ROOT / "superset" / "superset_config.py"
# gunicorn's split on two cores (CALLSIGHT_SUPERSET_WORKERS / _THREADS change it): four processes of four
# threads let a team's burst of requests run on both cores without one GIL queueing eight requests; the
# team at 9 a.m. measured with 2 x 8, 2 x 2, 4 x 2 and 4 x 4 in docs/performance.md (2026-12-06, 13:47-15:35).
WEB_WORKERS, WEB_THREADS = 4, 4
INIT_METADATA = REPO_ROOT / "superset" / "init_metadata.py"


class SupersetError(RuntimeError):
    pass


@dataclass(frozen=True)
class SupersetEnv:
    settings: Settings
    secret_key: str
    extra_env: tuple[tuple[str, str], ...] = ()

    @property
    def bin_dir(self) -> Path:
        return self.settings.superset_venv / "bin"

    def check_installed(self) -> None:
        if not (self.bin_dir / "superset").exists():
            raise SupersetError(f"Superset is not installed in {self.settings.superset_venv}. Run `make venvs` first.")

    def environ(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH"))}
        # Superset gets secrets under their plain names, never beside a <NAME>_FILE (it would refuse both).
        env = resolve_secret_files(env).env
        env.update(self.settings.export())
        env.update(
            {
                "SUPERSET_CONFIG_PATH": str(SUPERSET_CONFIG),
                "SUPERSET_SECRET_KEY": self.secret_key,
                "FLASK_APP": "superset.app:create_app()",
                "PATH": f"{self.bin_dir}:{env.get('PATH', '')}",
            }
        )
        env.update(dict(self.extra_env))
        return env

    def cli(self, *args: str, log: Path | None = None, timeout: float = 600) -> str:
        return self._run([str(self.bin_dir / "superset"), *args], f"superset {' '.join(args[:2])}", log, timeout)

    def _run(
        self, argv: list[str], what: str, log: Path | None, timeout: float, env: dict[str, str] | None = None
    ) -> str:
        self.check_installed()
        restrict_umask()  # the log below, too
        proc = subprocess.run(
            argv,
            env={**self.environ(), **(env or {})},
            text=True,
            capture_output=True,
            timeout=timeout,
            cwd=self.settings.home,
            umask=OWNER_ONLY_UMASK,
        )
        if log:
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("a", encoding="utf-8") as f:
                f.write(f"$ {what} ...\n{proc.stdout}\n{proc.stderr}\n")
        if proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
            raise SupersetError(f"`{what}` failed ({proc.returncode}):\n{tail}")
        return proc.stdout

    def init_metadata(self, admin_password: str, timeout: float = 600) -> None:
        """Create/upgrade the metadata DB, Superset's built-in roles and the bootstrap admin (idempotent),
        in one process (superset/init_metadata.py); the password reaches it in its environment only."""
        restrict_umask()
        self.settings.home.mkdir(parents=True, exist_ok=True)
        self._run(
            [str(self.bin_dir / "python"), str(INIT_METADATA)],
            "superset init-metadata",
            self.settings.log_dir / "superset-init.log",
            timeout,
            env={
                "CALLSIGHT_INIT_ADMIN_USERNAME": self.settings.superset_admin_username,
                "CALLSIGHT_INIT_ADMIN_PASSWORD": admin_password,
            },
        )

    def start_web(
        self,
        host: str = "127.0.0.1",
        port: int = 8088,
        workers: int = WEB_WORKERS,
        log_name: str = "superset-web.log",
        threads: int = WEB_THREADS,
    ) -> subprocess.Popen:
        return self._spawn(self.web_argv(host, port, workers, threads), log_name)

    def web_argv(
        self, host: str = "127.0.0.1", port: int = 8088, workers: int = WEB_WORKERS, threads: int = WEB_THREADS
    ) -> list[str]:
        """gunicorn serving Superset (also what `callsight service superset-web` execs)."""
        return [
            str(self.bin_dir / "gunicorn"),
            "--bind",
            f"{host}:{port}",
            "--workers",
            str(workers),
            "--worker-class",
            "gthread",
            "--threads",
            str(threads),
            "--timeout",
            "120",
            "--graceful-timeout",
            "5",
            # gthread closes a keep-alive connection idle for --keep-alive seconds (default 2) with a
            # plain close: a request the client sends at that moment is reset (ECONNRESET), and
            # clients do not resend a POST. 75 s is above the idle timeouts of common reverse proxies
            # (nginx, load balancers: 60 s), which close first and cleanly.
            "--keep-alive",
            "75",
            "--limit-request-line",
            "0",
            "--limit-request-field_size",
            "0",
            "superset.app:create_app()",
        ]

    def _spawn(self, cmd: list[str], log_name: str) -> subprocess.Popen:
        self.check_installed()
        restrict_umask()  # the log file, too
        log_path = self.settings.log_dir / log_name
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            return subprocess.Popen(
                cmd,
                env=self.environ(),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.settings.home,
                start_new_session=True,
                umask=OWNER_ONLY_UMASK,
            )

    def start_worker(self, concurrency: int = 2, log_name: str = "superset-worker.log") -> subprocess.Popen:
        """Celery worker for Alerts & Reports (screenshots with chromium, CSV, e-mail)."""
        return self._spawn(self.worker_argv(concurrency), log_name)

    def worker_argv(self, concurrency: int = 2) -> list[str]:
        return [
            str(self.bin_dir / "celery"),
            "--app=superset.tasks.celery_app:app",
            "worker",
            "--pool=prefork",
            "-O",
            "fair",
            f"--concurrency={concurrency}",
            "--loglevel=INFO",
        ]

    def start_beat(self, log_name: str = "superset-beat.log") -> subprocess.Popen:
        """The one Celery beat: it queues due reports every minute. Its pid file in CALLSIGHT_HOME makes a
        second beat for the same home refuse to start (two beats would send every report twice)."""
        self.settings.superset_home.mkdir(parents=True, exist_ok=True)
        return self._spawn(self.beat_argv(), log_name)

    def beat_argv(self) -> list[str]:
        state = self.settings.superset_home
        return [
            str(self.bin_dir / "celery"),
            "--app=superset.tasks.celery_app:app",
            "beat",
            f"--pidfile={state / 'celerybeat.pid'}",
            f"--schedule={state / 'celerybeat-schedule'}",
            "--loglevel=INFO",
        ]


def wait_healthy(url: str, proc: subprocess.Popen | None = None, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SupersetError(f"Superset web server exited with code {proc.returncode}; see its log")
        try:
            r = requests.get(f"{url}/health", timeout=5)
            if r.status_code == 200:
                return
            last = f"HTTP {r.status_code}"
        except requests.RequestException as exc:
            last = type(exc).__name__
        time.sleep(1)
    raise SupersetError(f"Superset at {url} not healthy after {timeout:.0f} s ({last})")


def stop(proc: subprocess.Popen, timeout: float = 20) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
