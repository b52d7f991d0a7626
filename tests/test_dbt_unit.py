"""dbt unit tests for every KPI rule (defined in the models' YAML) run against a throwaway DuckDB."""

import json
import subprocess
import sys
from pathlib import Path

import duckdb

from callsight.config import Calendar, Directory
from callsight.dbt_project import DBT_PROJECT_DIR
from callsight.extract import ensure_raw_store
from callsight.org_store import store_site

DBT = str(Path(sys.executable).with_name("dbt"))


def dbt(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            DBT,
            *args,
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
            "--target-path",
            str(home / "target"),
            "--log-path",
            str(home / "logs"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={
            "CALLSIGHT_HOME": str(home),
            "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "PYTHONPATH": str(DBT_PROJECT_DIR.parent / "orchestration"),  # the profile loads callsight.dbt_guard
        },
    )


def test_dbt_unit_tests_pass(tmp_path: Path) -> None:
    raw = tmp_path / "warehouse" / "journal.duckdb"
    (tmp_path / "warehouse" / "build").mkdir(parents=True)
    con = duckdb.connect(str(raw))
    ensure_raw_store(con)
    con.close()
    store_site(
        raw,
        Directory.model_validate({"users": [{"username": "a", "name": "A"}]}),
        Calendar(),
        range(2026, 2027),
    )
    empty = dbt(tmp_path, "run", "--empty")  # unit tests read column types from the upstream relations
    assert empty.returncode == 0, empty.stdout[-3000:]
    r = dbt(tmp_path, "test", "--select", "test_type:unit")
    assert r.returncode == 0, r.stdout[-5000:]
    results = json.loads((tmp_path / "target" / "run_results.json").read_text())["results"]
    names = {x["unique_id"].split(".")[-1] for x in results if x["status"] == "pass"}
    assert len(names) >= 10
    for rule in (
        "deputy_pickup",
        "chain_of_three_legs",
        "short_abandon",
        "callback_within_the_window_edge",
        "private_call_without_number",
        "spring_dst_switch",
        "across_midnight",
        "small_groups_are_merged_and_analysts_see_pseudonyms",
        "without_works_council_mode_everyone_sees_names",
        "pseudonyms_for_agents_who_left",
    ):
        assert any(rule in n for n in names), rule
