"""Everything callsight writes under CALLSIGHT_HOME is owner-only (issue 25): after a real nightly run, after
the `callsight` command, after Superset set up its metadata and served; a home made looser is tightened.
Each test starts with the common umask 022, so only callsight's own code can make the files private."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Site, dbt_target_env, free_port, require_service

CALLSIGHT = str(Path(sys.executable).with_name("callsight"))


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The umask most systems give a process (022), restored afterwards."""
    saved = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(saved)


def readable_by_others(home: Path) -> list[str]:
    """Every path under `home` (itself included) with a group or other bit, as 'mode path'; symbolic links
    are not followed (their own mode means nothing)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(home):
        for path in [Path(dirpath)] + [Path(dirpath, n) for n in filenames + dirnames]:
            mode = path.lstat().st_mode
            if not stat.S_ISLNK(mode) and mode & 0o077:
                found.append(f"{stat.filemode(mode)} {path.relative_to(home.parent)}")
    return sorted(set(found))


@pytest.mark.slow
def test_a_nightly_run_leaves_nothing_for_group_or_others(site: Site, loose_umask: None) -> None:
    """The demo data was written with umask 022 (0644 files, 0755 folders): the run tightens them, and
    everything it writes - raw store, build and served warehouse, kept builds, the record of validated rows,
    Dagster's storage, logs - is born owner-only."""
    from callsight.defs.nightly import run_nightly

    os.chmod(site.home, 0o755)
    assert readable_by_others(site.home), "the test home should start loose"
    result = run_nightly(site.settings)
    assert result.success, result.failure
    served = site.settings.served_db
    assert served.exists() and (site.home / "dagster").is_dir()
    assert readable_by_others(site.home) == []
    # A second run publishes again: the first build is kept in history/, compaction rewrote the files.
    os.umask(0o022)
    assert run_nightly(site.settings).success
    assert list((served.parent / "history").iterdir())
    assert readable_by_others(site.home) == []


def test_the_callsight_command_tightens_an_existing_home_and_writes_owner_only(
    tmp_path: Path, loose_umask: None
) -> None:
    home = tmp_path / "home"
    (home / "logs").mkdir(parents=True, mode=0o755)
    (home / "logs" / "old.log").write_text("written before\n")
    os.chmod(home, 0o755)
    os.chmod(home / "logs" / "old.log", 0o644)
    outside = tmp_path / "outside.txt"  # a link in the home is not followed
    outside.write_text("not callsight's\n")
    os.chmod(outside, 0o644)
    (home / "link").symlink_to(outside)
    assert len(readable_by_others(home)) == 3
    r = subprocess.run(
        [CALLSIGHT, "demo-data", "--days", "2", "--users", "8"],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": str(Path(sys.executable).parent), "CALLSIGHT_HOME": str(home), **dbt_target_env()},
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert (home / "demo" / "journal.sqlite").exists() and (home / "demo" / "directory.yaml").exists()
    assert readable_by_others(home) == []
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "logs" / "old.log").stat().st_mode) == 0o600
    assert stat.S_IMODE(outside.stat().st_mode) == 0o644


def command_lines_with(secret: str, stop: threading.Event, found: list[str]) -> None:
    """Until `stop`: every process command line on the machine that shows `secret` goes into `found`."""
    while not stop.is_set():
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue  # the process ended meanwhile
            if secret in text:
                found.append(text)
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.superset
def test_superset_metadata_and_files_are_owner_only(tmp_path: Path, loose_umask: None) -> None:
    """Superset's metadata DB, its data folder and logs, written by its set-up and gunicorn (child
    processes); the admin password given to the set-up is on no command line (every local user can read
    those), and a second set-up gives the existing admin the new password."""
    import secrets

    from callsight.bi.api import SupersetAPIError, SupersetClient
    from callsight.bi.runtime import SupersetEnv, stop, wait_healthy
    from callsight.site.settings import Settings

    home = tmp_path / "home"
    settings = Settings.from_env({"CALLSIGHT_HOME": str(home), "PATH": os.environ.get("PATH", "")})
    require_service((settings.superset_venv / "bin" / "superset").exists(), "Superset venv (make venvs)")
    env = SupersetEnv(settings, secrets.token_urlsafe(32))
    first, second = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    shown: list[str] = []
    for password in (first, second):
        done = threading.Event()
        watcher = threading.Thread(target=command_lines_with, args=(password, done, shown))
        watcher.start()
        try:
            os.umask(0o022)
            env.init_metadata(password)
        finally:
            done.set()
            watcher.join()
    assert shown == []
    os.umask(0o022)
    port = free_port()
    proc = env.start_web(port=port, workers=1, log_name="superset-perm.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        SupersetClient(url).login(settings.superset_admin_username, second)
        with pytest.raises(SupersetAPIError):
            SupersetClient(url).login(settings.superset_admin_username, first)
        # the metadata DB writes ahead (init_metadata.py); its log and index files, made by whoever opens
        # it (here under the loose umask), are owner-only too
        metadata = home / "superset" / "superset.db"
        with contextlib.closing(sqlite3.connect(metadata)) as con:
            assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            assert con.execute("SELECT count(*) FROM ab_user").fetchone() == (1,)
            assert metadata.with_name("superset.db-wal").exists() and metadata.with_name("superset.db-shm").exists()
            assert readable_by_others(home) == []
    finally:
        stop(proc)
    assert (home / "superset" / "superset.db").exists() and (home / "logs" / "superset-perm.log").exists()
    assert readable_by_others(home) == []
