"""A fresh install's units start together (issue 27's CI run): the Dagster webserver, the daemon and a first
`callsight run` all prepare the site's Dagster instance at the same moment. Dagster creates its SQLite storage
on first use; done twice at once it stamps the schema version twice and every later start fails with
"more than one head". Real processes on a fresh DAGSTER_HOME, released together."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from .test_run_lock import child_env

STARTERS = 6

PREPARE = """
import sys, time
from pathlib import Path
go = Path(sys.argv[1])
from callsight.defs.nightly import prepare_instance
from callsight.site.settings import Settings
settings = Settings.from_env()
while not go.exists():
    time.sleep(0.005)
prepare_instance(settings)
import dagster as dg
with dg.DagsterInstance.get() as instance:
    instance.get_runs(limit=1)
print("ok")
"""


def version_rows(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute("select version_num from alembic_version").fetchall()


def test_units_starting_together_create_one_dagster_storage(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PREPARE, str(go)],
            env=child_env(home),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(STARTERS)
    ]
    time.sleep(8)  # every starter has imported callsight and waits at the line
    go.touch()
    outcomes = [p.communicate(timeout=180) for p in procs]
    failures = [err[-1500:] for p, (_, err) in zip(procs, outcomes, strict=True) if p.returncode != 0]
    assert not failures, failures
    assert all(out.strip() == "ok" for out, _ in outcomes)
    dagster_home = home / "dagster"
    for db in (dagster_home / "schedules" / "schedules.db", dagster_home / "history" / "runs.db"):
        assert len(version_rows(db)) == 1, db
