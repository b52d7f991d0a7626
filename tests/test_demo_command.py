"""`callsight demo` (what `make demo` runs) end to end, twice: the second run duplicates nothing."""

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from .conftest import dbt_target_env, free_port, require_service

CALLSIGHT = str(Path(sys.executable).with_name("callsight"))
pytestmark = [pytest.mark.slow, pytest.mark.superset]


def demo(home: Path) -> subprocess.CompletedProcess:
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "CALLSIGHT_HOME": str(home), **dbt_target_env()}
    return subprocess.run(
        [CALLSIGHT, "demo", "--once", "--port", str(free_port()), "--dagster-port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )


def test_demo_reaches_ready_and_is_idempotent(tmp_path: Path) -> None:
    from callsight.site.settings import Settings

    require_service((Settings.from_env({}).superset_venv / "bin" / "superset").exists(), "Superset venv")
    home = tmp_path / "home"
    first = demo(home)
    out = first.stdout
    assert first.returncode == 0, out[-3000:] + first.stderr[-3000:]
    assert "callsight DEMO" in out and "ready: chart data served over HTTP" in out
    assert "leader of" in out and "analyst:" in out and "admin: everything" in out
    assert "60 users created" in out
    # Admin-role logins have passwords of their own: leader, member and analyst share one, the directory's
    # admin and the bootstrap admin each have another.
    logins = [line.split() for line in out.splitlines() if line.startswith("  login ")]
    assert any("directory admin" in " ".join(words) for words in logins)
    assert len({words[3] for words in logins}) == 3, logins
    secrets = home / "demo" / "demo-secrets.env"
    assert secrets.stat().st_mode & 0o777 == 0o600
    assert "CALLSIGHT_DEMO_ADMIN_PASSWORD=" in secrets.read_text()
    assert "WARNING: callsight is running as root" in out or os.geteuid() != 0
    con = duckdb.connect(str(home / "warehouse" / "callsight.duckdb"), read_only=True)
    rows = con.execute("SELECT count(*) FROM marts.fct_calls").fetchone()[0]
    con.close()
    second = demo(home)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    # nothing changed in the directory: no account is touched again
    assert "0 users created, 0 updated" in second.stdout and "demo data already" not in second.stderr
    con = duckdb.connect(str(home / "warehouse" / "callsight.duckdb"), read_only=True)
    assert con.execute("SELECT count(*), count(DISTINCT call_id) FROM marts.fct_calls").fetchone() == (rows, rows)
    con.close()


def test_a_login_line_names_each_grant_of_the_visibility_mapping() -> None:
    from callsight.cli.demo import describe_grants
    from callsight.site.directory import Directory

    directory = Directory.model_validate(
        {
            "users": [{"username": u, "name": u} for u in ("maria", "tom", "anna", "eva")],
            "groups": [
                {"name": "Vertrieb", "leaders": ["eva"], "deputies": ["tom"], "members": ["maria", "tom", "eva"]},
                {"name": "Support", "members": ["maria", "anna"], "journal_visible_to_group": True},
            ],
        }
    )
    grants = [("anna", "group:Support"), ("maria", "group:Support, own")]
    assert describe_grants("maria", grants, directory) == (
        "sees 2 agents (own calls, group journal of Support shared with its members)"
    )
    grants = [("eva", "leader:Vertrieb"), ("maria", "leader:Vertrieb"), ("tom", "leader:Vertrieb, own")]
    assert describe_grants("tom", grants, directory) == "sees 3 agents (own calls, deputy of Vertrieb)"
    assert describe_grants("eva", [("eva", "own")], directory) == "sees 1 agent (own calls)"
    assert "warehouse not built" in describe_grants("eva", None, directory)
