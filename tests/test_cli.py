"""The `callsight` console script as a user runs it."""

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from .conftest import dbt_target_env

CALLSIGHT = str(Path(sys.executable).with_name("callsight"))


def run(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CALLSIGHT, *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={"PATH": str(Path(sys.executable).parent), "CALLSIGHT_HOME": str(home), **dbt_target_env(), **env},
    )


@pytest.mark.slow
def test_demo_data_then_run_then_refuse_bad_policy(tmp_path: Path) -> None:
    home = tmp_path / "home"
    r = run(home, "demo-data", "--days", "4", "--users", "12", "--seed", "2")
    assert r.returncode == 0, r.stderr
    assert "demo journal:" in r.stdout and (home / "demo" / "journal.sqlite").exists()
    again = run(home, "demo-data")
    assert again.returncode == 0 and "already" in again.stdout
    r = run(home, "run")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "succeeded" in r.stdout
    con = duckdb.connect(str(home / "warehouse" / "callsight.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM marts.fct_calls").fetchone()[0] > 0
    con.close()
    policy = home / "demo" / "policy.yaml"
    policy.write_text(policy.read_text().replace("mode: truncate", "mode: shred"))
    r = run(home, "run")
    assert r.returncode == 2
    assert str(policy) in r.stdout and "private_calls.mode" in r.stdout and "nothing was written" in r.stdout


def test_secrets_are_required_outside_the_demo(tmp_path: Path) -> None:
    r = run(tmp_path, "provision")
    assert r.returncode != 0
    assert "SUPERSET_SECRET_KEY is not set" in (r.stdout + r.stderr)
