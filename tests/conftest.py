"""Shared fixtures. Tests use real parts: real SQLite journals, real Dagster runs, a real Superset
server over HTTP. A test that needs a missing service skips with a clear message, unless
CALLSIGHT_REQUIRE_SERVICES=1 (set by .ci/run) turns that skip into a failure."""

from __future__ import annotations

import contextlib
import mailbox
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from email.message import Message
from pathlib import Path

import duckdb
import pytest

from callsight.defs.nightly import yesterday
from callsight.demo.journal import generate
from callsight.publish.builds import REQUIRED_TABLES
from callsight.publish.week_files import repoint
from callsight.site.home import kept_builds
from callsight.site.settings import REPO_ROOT, Settings

# Journals end yesterday: the first run loads the whole source within the retention period.
END_DAY = yesterday("Europe/Berlin")


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist every worker builds with dbt artefacts of its own (DBT_TARGET_PATH, honoured
    by dbt, dagster-dbt and callsight.warehouse.dbt_project): two dbt parses must not write one manifest."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        os.environ["DBT_TARGET_PATH"] = f"target/{worker}"


# The modules whose tests use the session's Superset server run in one xdist worker: it starts once.
SHARED_SUPERSET_FIXTURES = {"superset_server", "borrowed_site"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Scheduling for pytest-xdist (`--dist loadgroup`, see the Makefile): a module's tests stay in one
    worker (module fixtures are made once); the modules using the shared Superset server form one
    group; the heavy groups come first (shared Superset, then modules with end-to-end runs), so the
    two workers finish together. The order is the same in every worker, as xdist requires."""
    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.module.__name__, []).append(item)
    weight = {}
    for name, tests in modules.items():
        shared = any(SHARED_SUPERSET_FIXTURES & set(t.fixturenames) for t in tests)
        group = "shared-superset" if shared else name
        for t in tests:
            if not t.get_closest_marker("xdist_group"):
                t.add_marker(pytest.mark.xdist_group(group))
        weight[name] = 0 if shared else 1 if any(t.get_closest_marker("slow") for t in tests) else 2
    order = {name: i for i, name in enumerate(modules)}
    items.sort(key=lambda t: (weight[t.module.__name__], order[t.module.__name__]))


_NOT_GROUPED: list[str] = []


def pytest_collection_finish(session: pytest.Session) -> None:
    """In an xdist worker under `--dist loadgroup`, xdist has put each test's group into its nodeid (the
    scheduler groups by it). Where it could not - pytest 9.2 with xdist 3.8, pytest-dev/pytest-xdist#1386 -
    the groups were silently ignored: the Superset modules were spread over both workers, each starting
    its own Superset. Every test then fails at once, saying why, instead of the suite running that way."""
    if getattr(session.config.option, "loadgroup", False):
        _NOT_GROUPED[:] = [i.nodeid for i in session.items if "@" not in i.nodeid.rpartition("]")[2]][:1]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if _NOT_GROUPED:
        pytest.fail(
            f"--dist loadgroup is not grouping ({_NOT_GROUPED[0]} has no @group in its nodeid): pytest-xdist "
            "cannot mark the nodeids of this pytest (pytest-dev/pytest-xdist#1386); install the pytest that "
            "pyproject.toml pins (make venvs)",
            pytrace=False,
        )


def dbt_target_env() -> dict[str, str]:
    """This worker's DBT_TARGET_PATH, for child processes started with an environment of their own."""
    target = os.environ.get("DBT_TARGET_PATH")
    return {"DBT_TARGET_PATH": target} if target else {}


def require_service(available: bool, what: str) -> None:
    if available:
        return
    if os.environ.get("CALLSIGHT_REQUIRE_SERVICES") == "1" or os.environ.get("CI") == "true":
        pytest.fail(f"required service missing: {what}")
    pytest.skip(f"service missing: {what}")


def reachable(addr: tuple[str, int]) -> bool:
    """Something listens on the loopback service's port."""
    try:
        with socket.create_connection(addr, timeout=2):
            return True
    except OSError:
        return False


def redis_command(db: int, *command: str) -> None:
    """SELECT db, then one command, over Redis's wire protocol (the pipeline env has no Redis client)."""

    def encode(*words: str) -> bytes:
        return (f"*{len(words)}\r\n" + "".join(f"${len(w)}\r\n{w}\r\n" for w in words)).encode()

    with socket.create_connection(("127.0.0.1", 6379), timeout=5) as sock:
        sock.sendall(encode("SELECT", str(db)) + encode(*command))
        reply = b""
        while reply.count(b"\r\n") < 2:
            reply += sock.recv(100)
        assert reply == b"+OK\r\n+OK\r\n", reply


@dataclass
class Site:
    home: Path
    env: dict[str, str]

    @property
    def settings(self) -> Settings:
        return Settings.from_env(self.env)


def make_site(home: Path, *, days: int = 20, users: int = 20, seed: int = 7, end: date = END_DAY) -> Site:
    result = generate(home / "demo", seed=seed, days=days, users=users, end=end)
    assert result.rows > 0
    env = {"CALLSIGHT_HOME": str(home), "PATH": os.environ.get("PATH", ""), **dbt_target_env()}
    return Site(home, env)


def stub_warehouse(path: Path, select: str) -> Path:
    """A warehouse file publish() accepts: each of its required tables made by `select` (say
    "SELECT 2 AS version"), so that tests can tell published files apart by what they read back."""
    con = duckdb.connect(str(path))
    try:
        for schema, table in REQUIRED_TABLES:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            con.execute(f"CREATE TABLE {schema}.{table} AS {select}")
    finally:
        con.close()
    return path


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Site:
    """A fresh CALLSIGHT_HOME with a small demo journal; the process environment points at it."""
    s = make_site(tmp_path / "home")
    for key in [k for k in os.environ if k.startswith("CALLSIGHT_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("CALLSIGHT_HOME", str(s.home))
    monkeypatch.setenv("DAGSTER_HOME", str(s.home / "dagster"))
    return s


@pytest.fixture(scope="session")
def published_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """One nightly run over a small journal, shared by read-only tests (session scope)."""
    from callsight.defs.nightly import run_nightly

    home = tmp_path_factory.mktemp("published") / "home"
    s = make_site(home, days=30, users=24, seed=11)
    saved = dict(os.environ)
    os.environ["CALLSIGHT_HOME"] = str(home)
    try:
        result = run_nightly(s.settings)
        assert result.success, result.failure
        yield s
    finally:
        os.environ.clear()
        os.environ.update(saved)


def facts_as_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The big facts of a warehouse file, views over week files, made tables of their rows: for a test that
    corrupts or thins a copy of the served warehouse."""
    for fact in ("fct_calls", "fct_inbound_calls"):
        con.execute(f"CREATE TABLE marts.{fact}__rows AS SELECT * FROM marts.{fact}")
        con.execute(f"DROP VIEW marts.{fact}")
        con.execute(f"ALTER TABLE marts.{fact}__rows RENAME TO {fact}")


def copy_home(home: Path, to: Path, ignore: Callable | None = None) -> None:
    """A copy of a site's home at another path, its warehouse files' views pointed at the copy's week
    files (they name them by path), as a restore does."""
    shutil.copytree(home, to, ignore=ignore)
    settings = Settings.from_env({"CALLSIGHT_HOME": str(to)})
    for build in (settings.served_db, *kept_builds(settings.served_db)):
        if build.exists():
            repoint(build, settings.parts_dir)


@pytest.fixture
def published_copy(published_site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Site:
    """A private copy of the published site (journal, raw store, served warehouse, directory, policy)
    without its Dagster history and without builds other tests kept while publishing on the shared site
    (history/): for tests that break things, at the cost of a file copy, not a run."""
    home = tmp_path / "home"
    copy_home(published_site.home, home, shutil.ignore_patterns("dagster", "logs", "data_quality", "build", "history"))
    for key in [k for k in os.environ if k.startswith("CALLSIGHT_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("CALLSIGHT_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    return Site(home, {**published_site.env, "CALLSIGHT_HOME": str(home)})


@dataclass
class SmtpSink:
    """A real SMTP server (aiosmtpd) on loopback that stores every message in a Maildir."""

    host: str
    port: int
    maildir: Path

    def env(self) -> dict[str, str]:
        return {
            "SMTP_HOST": self.host,
            "SMTP_PORT": str(self.port),
            "SMTP_STARTTLS": "False",
            "SMTP_SSL": "False",
            "SMTP_USER": "",
            "SMTP_PASSWORD": "",
            "SMTP_MAIL_FROM": "callsight@example.org",
        }

    def messages(self) -> list[Message]:
        """Every message, in the order they arrived."""
        box = mailbox.Maildir(self.maildir, create=False)
        return [box.get_message(key) for key in sorted(box.keys(), key=arrival)]


def arrival(key: str) -> tuple[int, ...]:
    """Sort key of a Maildir message name `<seconds>.M<microseconds>P<pid>Q<count>.<host>` (Python's
    mailbox): the microseconds are not zero-padded, so the names alone do not sort by time."""
    match = re.match(r"(\d+)\.M(\d+)P(\d+)Q(\d+)\.", key)
    if match is None:
        raise ValueError(f"not a Maildir message name of Python's mailbox: {key!r}")
    seconds, micros, _pid, count = map(int, match.groups())
    return seconds, micros, count


@pytest.fixture
def smtp_sink(tmp_path: Path) -> Iterator[SmtpSink]:
    try:
        import aiosmtpd  # noqa: F401
    except ImportError:
        require_service(False, "aiosmtpd (the dev extras: pip install -e '.[dev]')")
    port = free_port()
    maildir = tmp_path / "maildir"
    log = (tmp_path / "smtp-sink.log").open("wb")
    command = [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}"]
    proc = subprocess.Popen(
        [*command, "-c", "aiosmtpd.handlers.Mailbox", str(maildir)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"SMTP sink did not start (see {log.name})") from None
                time.sleep(0.1)
        yield SmtpSink("127.0.0.1", port, maildir)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class SupersetServer:
    url: str
    site: Site
    admin_password: str
    user_password: str
    secret_key: str = ""

    @contextlib.contextmanager
    def sibling(self, log_name: str, **env: str) -> Iterator[str]:
        """Another gunicorn on the same metadata DB and warehouse (provisioned already), started with
        extra environment - a security layer switched off, the real login throttle - on a free port;
        yields its URL. One worker: a start takes seconds, not a provisioning."""
        from callsight.bi.runtime import SupersetEnv, stop, wait_healthy

        server_env = SupersetEnv(self.site.settings, self.secret_key, extra_env=tuple(env.items()))
        port = free_port()
        proc = server_env.start_web(port=port, workers=1, log_name=log_name)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, proc)
            yield url
        finally:
            stop(proc)


@pytest.fixture(scope="session")
def superset_server(published_site: Site) -> Iterator[SupersetServer]:
    """A real Superset (gunicorn) on a free port, metadata in the test home, provisioned by callsight."""
    from callsight.bi.runtime import SupersetEnv, stop, wait_healthy
    from callsight.cli.commands import provision

    settings = published_site.settings
    require_service(
        (settings.superset_venv / "bin" / "superset").exists(),
        f"Superset virtual environment {settings.superset_venv} (run `make venvs`)",
    )
    admin_pw, user_pw = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    env = SupersetEnv(
        settings, secrets.token_urlsafe(32), extra_env=(("CALLSIGHT_AUTH_RATE_LIMIT", "1000 per second"),)
    )
    env.init_metadata(admin_pw)
    port = free_port()
    proc = env.start_web(port=port, workers=2, log_name="superset-test.log")
    url = f"http://127.0.0.1:{port}"
    saved = dict(os.environ)
    try:
        wait_healthy(url, proc)
        os.environ["CALLSIGHT_HOME"] = str(published_site.home)
        provision(settings, url, admin_pw, user_pw)
        yield SupersetServer(url, published_site, admin_pw, user_pw, env.secret_key)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        stop(proc)
        log = settings.log_dir / "superset-test.log"
        artefacts = REPO_ROOT / "test-artifacts"
        if log.exists():
            artefacts.mkdir(exist_ok=True)
            shutil.copy(log, artefacts / "superset-test.log")
