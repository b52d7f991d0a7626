"""The production deployment (issue 27): deploy/systemd's units pass `systemd-analyze verify`; each unit's
command line, run as systemd would run it (its environment file, its credentials as <NAME>_FILE, its
working directory and umask) with the install prefix mapped to this checkout, serves and stops cleanly on
SIGTERM; the nginx examples point at the units' addresses with TLS and, for the Dagster UI, a login."""

from __future__ import annotations

import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from callsight.bi.runtime import WEB_THREADS, WEB_WORKERS
from callsight.cli.bind import exposure_warning, parse_bind, web_split
from callsight.cli.service import SERVICES, launch
from callsight.site.secret_files import SECRET_SETTINGS
from callsight.site.settings import REPO_ROOT, Settings

from .conftest import free_port, make_site, reachable, require_service
from .units import parse_env_file, parse_unit

DEPLOY = REPO_ROOT / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
ENV_FILE = "/etc/callsight/callsight.env"
PREFIX = "/opt/callsight"  # the documented install prefix the committed units name
STATE = "/var/lib/callsight"  # CALLSIGHT_HOME in the example environment file
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # what systemd gives services
REDIS_DB = 11
STOP_GRACE = 30.0  # at most any unit's TimeoutStopSec
# systemd counts a main process ending by SIGTERM as a clean stop (uvicorn re-raises it after shutting down).
CLEAN_EXIT = (0, -signal.SIGTERM)


def unit(name: str) -> dict[str, list[str]]:
    return parse_unit((DEPLOY / "systemd" / f"{name}.service").read_text())["Service"]


def example_env() -> dict[str, str]:
    return parse_env_file((DEPLOY / "etc" / "callsight.env").read_text())


# ---- the files themselves ---------------------------------------------------------------------------


def test_every_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """verify needs ExecStart's binaries to exist: copies with the prefix mapped to this checkout."""
    analyze = shutil.which("systemd-analyze")
    require_service(analyze is not None, "systemd-analyze (Debian package systemd)")
    copies = []
    for path in [*UNITS, DEPLOY / "systemd" / "callsight.target"]:
        text = path.read_text()
        assert str(REPO_ROOT) not in text  # the committed units name the install prefix only
        copy = tmp_path / path.name
        copy.write_text(text.replace(PREFIX, str(REPO_ROOT)))
        copies.append(str(copy))
    r = subprocess.run([analyze, "verify", "--man=no", *copies], capture_output=True, text=True, timeout=60)
    # verify exits 0 on unknown keys or bad values, only warning: a clean unit says nothing.
    assert r.returncode == 0 and r.stderr == "" and r.stdout == "", r.stderr + r.stdout


def test_one_unit_per_service_grouped_by_the_target() -> None:
    names = {p.stem for p in UNITS}
    services = set(SERVICES) - {"superset-init"}
    assert names == {f"callsight-{s}" for s in services}
    target = parse_unit((DEPLOY / "systemd" / "callsight.target").read_text())
    assert {w for line in target["Unit"]["Wants"] for w in line.split()} == {f"{n}.service" for n in names}
    for path in UNITS:
        sections = parse_unit(path.read_text())
        assert sections["Unit"]["PartOf"] == ["callsight.target"]
        assert sections["Install"]["WantedBy"] == ["callsight.target"]
        service = path.stem.removeprefix("callsight-")
        assert sections["Service"]["ExecStart"] == [f"{PREFIX}/.venv/bin/callsight service {service}"]


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.stem)
def test_units_run_unprivileged_hardened_with_one_environment(path: Path) -> None:
    s = parse_unit(path.read_text())["Service"]
    home = example_env()["CALLSIGHT_HOME"]
    expected = {
        "User": ["callsight"],
        "Group": ["callsight"],
        "EnvironmentFile": [ENV_FILE],
        "WorkingDirectory": [home],
        "Restart": ["on-failure"],
        "NoNewPrivileges": ["yes"],
        "ProtectSystem": ["strict"],
        "ReadWritePaths": [home],
        "PrivateTmp": ["yes"],
        "UMask": ["0077"],
        "CapabilityBoundingSet": [""],
        "KillMode": ["mixed"],
    }
    assert {k: s.get(k) for k in expected} == expected
    for line in s.get("ExecStartPre", []) + s["ExecStart"]:
        assert line.startswith(f"{PREFIX}/.venv/bin/callsight service ")


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.stem)
def test_secrets_come_as_credentials_never_in_the_unit(path: Path) -> None:
    s = parse_unit(path.read_text())["Service"]
    loaded = dict(c.split(":", 1) for c in s.get("LoadCredential", []))
    assert loaded, "every service needs at least one secret"
    assert all(src == f"/etc/callsight/credentials/{name}" for name, src in loaded.items())
    files = dict(e.split("=", 1) for e in s.get("Environment", []))
    assert {n.removesuffix("_FILE") for n in files} <= set(SECRET_SETTINGS)
    assert sorted(files.values()) == sorted(f"%d/{name}" for name in loaded)
    assert not set(files) & set(SECRET_SETTINGS), "a secret's value in the unit"


def test_the_example_environment_holds_no_secret() -> None:
    env = example_env()
    assert env["CALLSIGHT_HOME"] == STATE
    assert env["CALLSIGHT_SUPERSET_VENV"].startswith(PREFIX)
    for name in SECRET_SETTINGS:
        value = env.get(name, "")
        # URLs may stand here without a password (local socket, loopback Redis, a journal copy).
        assert not value or ("://" in value and not re.search(r"://[^/@]*:[^/@]*@", value)), name
    assert Settings.from_env(env).home == Path(STATE)


def directives(path: Path, name: str) -> list[str]:
    """The arguments of every `name` directive in an nginx file (comments dropped; no parser needed)."""
    text = "\n".join(line.split("#", 1)[0] for line in path.read_text().splitlines())
    return [m.group(1).strip() for m in re.finditer(rf"(?:^|[;{{}}\s]){name}\s+([^;]*);", text)]


@pytest.mark.parametrize(
    ("conf", "bind"),
    [("callsight-superset.conf", "CALLSIGHT_SUPERSET_BIND"), ("callsight-dagster.conf", "CALLSIGHT_DAGSTER_BIND")],
)
def test_nginx_proxies_to_the_units_over_tls(conf: str, bind: str) -> None:
    path = DEPLOY / "nginx" / conf
    env = example_env()
    assert directives(path, "proxy_pass") == [f"http://{env[bind]}"]
    assert parse_bind(env[bind], bind)[0] == "127.0.0.1"  # the units listen on loopback only
    listens = directives(path, "listen")
    assert "443 ssl http2" in listens and all("ssl" in x or x.rsplit(":", 1)[-1] == "80" for x in listens)
    assert directives(path, "return") == ["301 https://$host$request_uri"]  # plain HTTP only redirects
    assert directives(path, "include") == ["snippets/callsight-tls.conf"]
    assert directives(path, "ssl_certificate") and directives(path, "ssl_certificate_key")
    assert "Host $host" in directives(path, "proxy_set_header")
    tls = DEPLOY / "nginx" / "callsight-tls.conf"
    assert directives(tls, "ssl_protocols") == ["TLSv1.2 TLSv1.3"]
    assert directives(tls, "ssl_session_tickets") == ["off"]
    assert any(h.startswith("Strict-Transport-Security") for h in directives(tls, "add_header"))


def test_nginx_gives_superset_the_headers_it_trusts() -> None:
    """CALLSIGHT_BEHIND_PROXY=1 makes superset_config trust one hop of X-Forwarded-For/-Proto."""
    env = example_env()
    assert env["CALLSIGHT_BEHIND_PROXY"] == "1" and env["CALLSIGHT_HTTPS"] == "1"
    assert (
        'ENABLE_PROXY_FIX = os.environ.get("CALLSIGHT_BEHIND_PROXY"'
        in (REPO_ROOT / "superset" / "superset_config.py").read_text()
    )
    path = DEPLOY / "nginx" / "callsight-superset.conf"
    headers = directives(path, "proxy_set_header")
    assert "X-Forwarded-For $remote_addr" in headers and "X-Forwarded-Proto $scheme" in headers
    public = env["CALLSIGHT_PUBLIC_URL"].removeprefix("https://").rstrip("/")
    assert all(name == public for name in directives(path, "server_name"))


def test_nginx_asks_a_login_for_the_dagster_ui() -> None:
    path = DEPLOY / "nginx" / "callsight-dagster.conf"
    assert directives(path, "auth_basic") == ['"callsight Dagster"']
    assert directives(path, "auth_basic_user_file")
    names = set(directives(path, "server_name"))
    assert names == set(example_env()["CALLSIGHT_DAGSTER_ALLOWED_HOSTS"].split(","))
    assert {"Upgrade $http_upgrade", 'Connection "upgrade"'} <= set(directives(path, "proxy_set_header"))


# ---- the commands the units run ---------------------------------------------------------------------


def test_service_commands_come_from_the_settings(tmp_path: Path) -> None:
    env = {
        "CALLSIGHT_HOME": str(tmp_path),
        "SUPERSET_SECRET_KEY": "k" * 32,
        "SUPERSET_ADMIN_PASSWORD": "p" * 16,
        "CALLSIGHT_SUPERSET_BIND": "127.0.0.1:9001",
        "CALLSIGHT_SUPERSET_WORKERS": "3",
        "CALLSIGHT_SUPERSET_THREADS": "5",
        "CALLSIGHT_DAGSTER_BIND": "127.0.0.1:9002",
    }
    settings = Settings.from_env(env)
    web = launch("superset-web", settings, {})
    assert Path(web.argv[0]).name == "gunicorn" and web.cwd == tmp_path and not web.warnings
    assert " ".join(web.argv).count("--bind 127.0.0.1:9001 --workers 3 --worker-class gthread --threads 5") == 1
    assert web.env["SUPERSET_SECRET_KEY"] == "k" * 32
    assert web.env["CALLSIGHT_WEBDRIVER_BASEURL"] == "http://127.0.0.1:9001/"
    ui = launch("dagster-webserver", settings, {"LANG": "C.UTF-8"})
    assert ui.argv[1:] == ["-m", "callsight.cli.dagster_ui", "--host", "127.0.0.1", "--port", "9002"]
    assert ui.env["LANG"] == "C.UTF-8" and ui.env["SUPERSET_ADMIN_PASSWORD"] == "p" * 16
    assert ui.env["DAGSTER_HOME"] == str(tmp_path / "dagster")
    assert Path(launch("dagster-daemon", settings, {}).argv[0]).name == "dagster-daemon"
    with pytest.raises(SystemExit, match="CALLSIGHT_REDIS_URL"):
        launch("celery-worker", settings, {})
    celery = Settings.from_env({**env, "CALLSIGHT_REDIS_URL": "redis://127.0.0.1:6379/11"})
    for name in ("celery-worker", "celery-beat"):  # no LDAP in the Celery processes (superset_config.py)
        assert launch(name, celery, {}).env["CALLSIGHT_SUPERSET_PROCESS"] == "celery"
    assert "CALLSIGHT_SUPERSET_PROCESS" not in web.env
    with pytest.raises(ValueError, match="CALLSIGHT_SUPERSET_BIND"):
        launch("superset-web", Settings.from_env({**env, "CALLSIGHT_SUPERSET_BIND": "8088"}), {})
    # Without the two settings: the split measured for two cores (bi/runtime.py), as `callsight serve` starts.
    plain = {k: v for k, v in env.items() if k not in ("CALLSIGHT_SUPERSET_WORKERS", "CALLSIGHT_SUPERSET_THREADS")}
    default = " ".join(launch("superset-web", Settings.from_env(plain), {}).argv)
    assert f"--workers {WEB_WORKERS} --worker-class gthread --threads {WEB_THREADS} " in default
    assert web_split({}) == (WEB_WORKERS, WEB_THREADS) == (4, 4)
    for variable, bad in (("CALLSIGHT_SUPERSET_WORKERS", "0"), ("CALLSIGHT_SUPERSET_THREADS", "eight")):
        with pytest.raises(ValueError, match=f"{variable} must be a whole number >= 1, got '{bad}'"):
            launch("superset-web", Settings.from_env({**env, variable: bad}), {})
    with pytest.raises(SystemExit, match="SUPERSET_ADMIN_PASSWORD"):
        launch("dagster-daemon", Settings.from_env({"CALLSIGHT_HOME": str(tmp_path)}), {})
    exposed = launch("superset-web", Settings.from_env({**env, "CALLSIGHT_SUPERSET_BIND": "0.0.0.0:8088"}), {})
    assert "WARNING" in exposed.warnings[0]
    ui_exposed = launch("dagster-webserver", Settings.from_env({**env, "CALLSIGHT_DAGSTER_BIND": "10.1.2.3:3000"}), {})
    assert "no login" in ui_exposed.warnings[0]


def test_callsight_serve_refuses_a_bad_split_before_it_starts_anything(tmp_path: Path) -> None:
    from callsight.cli.serve import serve

    port = free_port()
    settings = Settings.from_env({"CALLSIGHT_HOME": str(tmp_path), "CALLSIGHT_SUPERSET_THREADS": "0"})
    with pytest.raises(SystemExit, match="CALLSIGHT_SUPERSET_THREADS must be a whole number >= 1"):
        serve(settings, "k" * 32, "p" * 16, None, port=port, dagster_ui=False)
    assert not reachable(("127.0.0.1", port)) and not (tmp_path / "logs").exists()


def test_binding_beyond_loopback_warns_unless_behind_the_proxy() -> None:
    assert parse_bind("[::1]:8088", "X") == ("::1", 8088)
    for bad in ("8088", ":8088", "host:", "host:0", "host:http"):
        with pytest.raises(ValueError, match="X must be HOST:PORT"):
            parse_bind(bad, "X")
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        assert exposure_warning(host, {}) is None
    for host in ("0.0.0.0", "192.0.2.7", "callsight.example.com"):
        assert "WARNING" in (exposure_warning(host, {}) or "")
        assert exposure_warning(host, {"CALLSIGHT_BEHIND_PROXY": "1"}) is None


# ---- each unit's command line, run as systemd would -------------------------------------------------


@dataclass
class Deployment:
    """One site and credentials; every unit runs against them, as on one server."""

    home: Path
    credentials: Path
    env_file: dict[str, str]  # the example file's variables, mapped to this site
    superset_url: str
    dagster_port: int

    def local(self, value: str) -> str:
        """A path or value of the committed files, mapped to this checkout and site."""
        return value.replace(PREFIX, str(REPO_ROOT)).replace(STATE, str(self.home))

    def environment(self, service: dict[str, list[str]]) -> dict[str, str]:
        """What systemd passes: its own few variables, the EnvironmentFile=, then Environment= (%d: the
        credentials directory)."""
        env = {"PATH": SYSTEMD_PATH, "HOME": str(self.home), "LANG": "C.UTF-8", "USER": "callsight"}
        env["CREDENTIALS_DIRECTORY"] = str(self.credentials)
        assert service["EnvironmentFile"] == [ENV_FILE]
        env.update(self.env_file)
        for line in service.get("Environment", []):
            key, _, value = line.partition("=")
            env[key] = value.replace("%d", str(self.credentials))
        return env

    def command(self, line: str) -> list[str]:
        return [self.local(word) for word in shlex.split(line)]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    root = tmp_path_factory.mktemp("deploy")
    site = make_site(root / "home", days=2, users=8)
    credentials = root / "credentials"
    credentials.mkdir(mode=0o700)
    for name in ("superset-secret-key", "superset-admin-password", "callsight-erasure-key"):
        (credentials / name).write_text(secrets.token_urlsafe(32) + "\n")
        (credentials / name).chmod(0o400)
    web_port, dagster_port = free_port(), free_port()
    home = str(site.home)
    example = {k: v.replace(PREFIX, str(REPO_ROOT)).replace(STATE, home) for k, v in example_env().items()}
    # What differs on this machine from the example site, and only that.
    example.update(
        {
            "CALLSIGHT_JOURNAL_URL": f"sqlite:///{site.home / 'demo' / 'journal.sqlite'}",
            "CALLSIGHT_DIRECTORY": str(site.home / "demo" / "directory.yaml"),
            "CALLSIGHT_POLICY": str(site.home / "demo" / "policy.yaml"),
            "CALLSIGHT_SUPERSET_BIND": f"127.0.0.1:{web_port}",
            "CALLSIGHT_SUPERSET_URL": f"http://127.0.0.1:{web_port}",
            "CALLSIGHT_WEBDRIVER_BASEURL": f"http://127.0.0.1:{web_port}/",
            "CALLSIGHT_SUPERSET_WORKERS": "1",  # a start in seconds
            "CALLSIGHT_DAGSTER_BIND": f"127.0.0.1:{dagster_port}",
            "CALLSIGHT_REDIS_URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
            "CALLSIGHT_CELERY_QUEUE": f"callsight-deploy-{secrets.token_hex(4)}",
            "SMTP_HOST": "127.0.0.1",
        }
    )
    example.pop("SUPERSET_DATABASE_URI")  # no PostgreSQL login `callsight` here: SQLite metadata
    return Deployment(site.home, credentials, example, f"http://127.0.0.1:{web_port}", dagster_port)


@dataclass
class Running:
    proc: subprocess.Popen
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert self.proc.poll() is None, f"exited ({self.proc.returncode}) before {what}:\n{self.text()[-3000:]}"
            assert time.monotonic() < deadline, f"no {what} after {timeout:.0f} s:\n{self.text()[-3000:]}"
            time.sleep(1)

    def stop(self) -> int:
        """SIGTERM to the main process alone (KillMode=mixed), as `systemctl stop` sends it."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
            raise AssertionError(f"still running {STOP_GRACE:.0f} s after SIGTERM:\n{self.text()[-3000:]}") from None


@pytest.fixture
def start(deployment: Deployment) -> Iterator[Callable[[str], Running]]:
    """Runs a unit's ExecStart like systemd: its environment, working directory, umask; output to a log."""
    started: list[Running] = []

    def run(name: str) -> Running:
        service = unit(f"callsight-{name}")
        env = deployment.environment(service)
        cwd = deployment.local(service["WorkingDirectory"][0])
        log = deployment.home.parent / f"{name}.log"
        for line in service.get("ExecStartPre", []):
            pre = subprocess.run(
                deployment.command(line), env=env, cwd=cwd, capture_output=True, text=True, timeout=600, umask=0o077
            )
            assert pre.returncode == 0, pre.stdout[-3000:] + pre.stderr[-3000:]
        with log.open("wb") as out:
            proc = subprocess.Popen(
                deployment.command(service["ExecStart"][0]),
                env=env,
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                umask=0o077,
            )
        started.append(Running(proc, log))
        return started[-1]

    yield run
    for running in started:
        if running.proc.poll() is None:
            os.killpg(running.proc.pid, signal.SIGKILL)
            running.proc.wait(timeout=10)


def program(proc: subprocess.Popen) -> str:
    """What the unit's main process runs now: `callsight service` must have exec'd into the server."""
    return Path(f"/proc/{proc.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def answers(url: str, host: str | None = None) -> int | None:
    try:
        return requests.get(url, headers={"Host": host} if host else {}, timeout=5).status_code
    except requests.RequestException:
        return None


def require_superset() -> None:
    venv = REPO_ROOT / ".venv-superset"  # the example's CALLSIGHT_SUPERSET_VENV, mapped
    require_service((venv / "bin" / "gunicorn").exists(), f"Superset virtual environment {venv} (make venvs)")


@pytest.mark.superset
def test_superset_web_unit_serves_and_stops(deployment: Deployment, start: Callable[[str], Running]) -> None:
    require_superset()
    web = start("superset-web")  # its ExecStartPre sets up the metadata first
    web.wait_for("HTTP 200 on /health", lambda: answers(f"{deployment.superset_url}/health") == 200)
    assert "gunicorn" in program(web.proc)
    assert (deployment.home / "superset").stat().st_mode & 0o077 == 0
    assert web.stop() in CLEAN_EXIT


@pytest.mark.superset
def test_celery_worker_unit_gets_ready_and_stops(deployment: Deployment, start: Callable[[str], Running]) -> None:
    require_superset()
    require_service(reachable(("127.0.0.1", 6379)), "Redis on 127.0.0.1:6379")
    worker = start("celery-worker")
    worker.wait_for("the worker's ready line", lambda: re.search(r"celery@\S+ ready\.", worker.text()) is not None)
    assert "celery" in program(worker.proc) and " worker " in program(worker.proc)
    assert deployment.env_file["CALLSIGHT_CELERY_QUEUE"] in worker.text()
    assert worker.stop() in CLEAN_EXIT


@pytest.mark.superset
def test_celery_beat_unit_schedules_and_stops(deployment: Deployment, start: Callable[[str], Running]) -> None:
    require_superset()
    require_service(reachable(("127.0.0.1", 6379)), "Redis on 127.0.0.1:6379")
    beat = start("celery-beat")
    pidfile = deployment.home / "superset" / "celerybeat.pid"
    beat.wait_for("beat's start", lambda: "beat: Starting..." in beat.text() and pidfile.exists())
    assert str(deployment.home / "superset" / "celerybeat-schedule") in beat.text()  # its banner
    assert list((deployment.home / "superset").glob("celerybeat-schedule*"))
    assert " beat " in program(beat.proc)
    assert beat.stop() in CLEAN_EXIT
    assert not pidfile.exists()


def test_dagster_webserver_unit_guards_its_host_and_stops(
    deployment: Deployment, start: Callable[[str], Running]
) -> None:
    ui = start("dagster-webserver")
    url = f"http://127.0.0.1:{deployment.dagster_port}/server_info"
    ui.wait_for("the Dagster UI", lambda: answers(url) == 200)  # the code location loads first (dbt parse)
    assert "callsight.cli.dagster_ui" in program(ui.proc)
    proxy_name = deployment.env_file["CALLSIGHT_DAGSTER_ALLOWED_HOSTS"]
    assert answers(url, proxy_name) == 200
    assert answers(url, "evil.example") == 400
    assert ui.stop() in CLEAN_EXIT


def test_dagster_daemon_unit_runs_the_daemons_and_stops(
    deployment: Deployment, start: Callable[[str], Running]
) -> None:
    daemon = start("dagster-daemon")
    daemon.wait_for(
        "the daemons' start", lambda: "SchedulerDaemon" in daemon.text() and "SensorDaemon -" in daemon.text()
    )
    assert "dagster-daemon run" in program(daemon.proc)
    assert daemon.stop() in CLEAN_EXIT
    assert "Daemon threads shut down" in daemon.text()
