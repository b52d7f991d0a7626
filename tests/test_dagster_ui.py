"""The Dagster UI answers only requests addressed to loopback or to a name the admin allowed (DNS rebinding,
issue 25); `callsight serve --no-dagster-ui` runs the daemon alone."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from callsight.cli.dagster_ui import allowed_hosts
from callsight.site.settings import Settings

from .conftest import Site, dbt_target_env, free_port, make_site

PROXY_NAME = "dagster.example.org"


def settings_with(hosts: str) -> Settings:
    return Settings.from_env({"CALLSIGHT_HOME": "/srv/callsight", "CALLSIGHT_DAGSTER_ALLOWED_HOSTS": hosts})


def test_allowed_hosts_are_loopback_plus_the_configured_names() -> None:
    assert allowed_hosts(settings_with("")) == ["127.0.0.1", "localhost"]
    assert allowed_hosts(settings_with(" Dagster.Example.org, *.corp.example ")) == [
        "127.0.0.1",
        "localhost",
        PROXY_NAME,
        "*.corp.example",
    ]
    for bad in ("*", "dagster.example.org:443", "https://dagster.example.org", "a*.example.org", "*example.org"):
        with pytest.raises(ValueError, match="CALLSIGHT_DAGSTER_ALLOWED_HOSTS"):
            allowed_hosts(settings_with(bad))


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """The launcher `callsight serve` starts, on a free loopback port, for a small demo site."""
    site: Site = make_site(tmp_path_factory.mktemp("ui") / "home", days=2, users=8)
    port = free_port()
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "CALLSIGHT_HOME": str(site.home),
        "CALLSIGHT_DAGSTER_ALLOWED_HOSTS": PROXY_NAME,
        **dbt_target_env(),
    }
    log = (site.home.parent / "dagster-ui.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "callsight.cli.dagster_ui", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240  # the code location loads first (dbt parse)
        while True:
            assert proc.poll() is None, f"the Dagster UI exited ({proc.returncode}); see {log.name}"
            try:
                if requests.get(f"{url}/server_info", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, f"the Dagster UI did not answer; see {log.name}"
            time.sleep(1)
        yield url, port
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
        log.close()


def get(url: str, host: str) -> requests.Response:
    return requests.get(url, headers={"Host": host}, timeout=30)


def test_the_ui_answers_loopback_names(ui: tuple[str, int]) -> None:
    url, port = ui
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost"):
        r = get(f"{url}/", host)
        assert r.status_code == 200, host
        assert "Dagster" in r.text
    assert get(f"{url}/server_info", f"127.0.0.1:{port}").json()["dagster_version"]


def test_a_foreign_host_is_refused_before_dagster_sees_it(ui: tuple[str, int]) -> None:
    """A page on evil.example whose name was rebound to 127.0.0.1: the browser sends its own name."""
    url, port = ui
    for path in ("/", "/server_info", "/graphql?query=%7Bversion%7D"):
        for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1.evil.example:{port}", ""):
            r = get(f"{url}{path}", host)
            assert r.status_code == 400, (path, host)
            assert "dagster" not in r.text.lower()
    r = requests.post(f"{url}/graphql", json={"query": "{version}"}, headers={"Host": "evil.example"}, timeout=30)
    assert r.status_code == 400


def test_the_configured_proxy_name_passes(ui: tuple[str, int]) -> None:
    url, port = ui
    for host in (PROXY_NAME, f"{PROXY_NAME}:443", f"{PROXY_NAME}:{port}"):
        assert get(f"{url}/server_info", host).status_code == 200, host
    assert get(f"{url}/", "other.example.org").status_code == 400


def test_without_the_ui_only_the_daemon_runs(site: Site) -> None:
    """`callsight serve --no-dagster-ui`: the schedules still run (the daemon), nothing listens for a UI."""
    from callsight.bi.runtime import stop
    from callsight.cli.serve import start_dagster

    procs = start_dagster(site.settings, "http://127.0.0.1:9", "not-used", None)
    try:
        assert [Path(p.args[0]).name for p in procs] == ["dagster-daemon"]
        time.sleep(5)
        assert procs[0].poll() is None, (site.home / "logs" / "dagster-daemon.log").read_text()[-2000:]
        assert (site.home / "dagster" / "dagster.yaml").exists()
    finally:
        for p in procs:
            stop(p)
