"""dbt unit tests for every KPI rule (defined in the models' YAML) run against a throwaway DuckDB."""

import json
import re
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import duckdb

from callsight.extract.org_store import store_site
from callsight.journal.raw_store import ensure_raw_store
from callsight.site.directory import Directory
from callsight.site.policy import Calendar
from callsight.warehouse.build_file import prepare_build
from callsight.warehouse.dbt_project import DBT_PROJECT_DIR, model_fingerprint

from .conftest import Site

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
            # the profile loads callsight.warehouse.dbt_guard
            "PYTHONPATH": str(DBT_PROJECT_DIR.parent / "orchestration"),
        },
    )


def empty_site(home: Path) -> Path:
    """An empty raw store with a one-user directory under `home`; returns the raw store's path."""
    raw = home / "warehouse" / "journal.duckdb"
    (home / "warehouse" / "build").mkdir(parents=True)
    con = duckdb.connect(str(raw))
    ensure_raw_store(con)
    con.close()
    store_site(
        raw,
        Directory.model_validate({"users": [{"username": "a", "name": "A"}]}),
        Calendar(),
        range(2026, 2027),
    )
    return raw


def test_dbt_unit_tests_pass(tmp_path: Path) -> None:
    empty_site(tmp_path)
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
        "company_and_project_are_the_greatest_text",
        "a_changed_leg_marks_its_week_now_and_before",
    ):
        assert any(rule in n for n in names), rule


def strings_in(value: object) -> list[str]:
    """Every string in a JSON value (an operator's details: strings, lists and objects of them)."""
    if isinstance(value, str):
        return [value]
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    return [s for item in items for s in strings_in(item)]


def plan_parts(node: dict, operators: list[str], texts: list[str]) -> None:
    """Every operator name and every string of the operators' details of a JSON query plan."""
    operators.append(node["name"].strip())
    texts.extend(strings_in(node.get("extra_info", {})))
    for child in node.get("children", []):
        plan_parts(child, operators, texts)


def test_a_reader_of_one_leg_column_does_not_compute_the_others(tmp_path: Path) -> None:
    """int_call_legs_changed reads only call_id from int_call_legs_enriched to find the legs gone from the
    journal (every night, over the whole history). The view must let DuckDB prune its columns: a CTE read
    more than once is materialized with every column, time-zone conversions and number matching included
    (20 s instead of 0.01 s at 10M legs, the night's dbt step 34 -> 57 s). The plan of such a read names no
    other column."""
    raw = empty_site(tmp_path)
    r = dbt(tmp_path, "run", "--select", "+int_call_legs_enriched")
    assert r.returncode == 0, r.stdout[-3000:]
    con = duckdb.connect(str(tmp_path / "warehouse" / "build" / "callsight.duckdb"), read_only=True)
    con.execute(f"ATTACH '{raw}' AS raw (READ_ONLY)")
    columns = [row[0] for row in con.execute("DESCRIBE intermediate.int_call_legs_enriched").fetchall()]
    explain = "EXPLAIN (FORMAT json) SELECT call_id FROM intermediate.int_call_legs_enriched"
    plan = json.loads(con.execute(explain).fetchall()[0][1])
    con.close()
    operators: list[str] = []
    texts: list[str] = []
    for node in plan:
        plan_parts(node, operators, texts)
    assert "HASH_JOIN" in operators and "call_id" in texts  # a real plan, not an empty result
    assert not [o for o in operators if "CTE" in o], operators
    # start_time_local: the fold joins compare the local times (the view's columns read from the journal)
    named = {c for c in columns if any(re.search(rf"\b{c}\b", t) for t in texts)}
    assert named == {"call_id", "start_time_local"}, named


# Synthetic inbound legs, four per chain, every column the model reads; text values longer than DuckDB
# inlines (12 bytes), as real company and project names are.
SYNTHETIC_LEGS = """
INSERT INTO marts.fct_calls BY NAME
SELECT
    i AS call_id,
    'chain-' || (i // 4) AS chain_key,
    'agent-' || (i % 50) AS agent_username,
    t AS start_time_local,
    t AS start_time_utc,
    CASE WHEN i % 3 = 0 THEN t + INTERVAL 5 SECOND END AS connect_time_utc,
    t + INTERVAL 60 SECOND AS stop_time_utc,
    CAST(t AS DATE) AS call_date,
    hour(t) AS call_hour,
    isodow(t) AS iso_weekday,
    'inbound' AS direction,
    true AS is_inbound,
    false AS is_internal,
    'extern' AS call_scope,
    i % 3 = 0 AS is_answered,
    CASE WHEN i % 3 = 0 THEN 55 ELSE 0 END AS talk_seconds,
    '+49301' || lpad(CAST(i % 100000 AS VARCHAR), 6, '0') AS phone_number,
    'Company number ' || (i % 5000) || ' GmbH & Co. KG' AS contact_company,
    'project-id-' || (i % 300) AS project_id,
    'Project called ' || (i % 300) AS project_name,
    false AS is_private,
    TIMESTAMP '2026-06-01 02:00:00' AS extracted_at
FROM (SELECT range AS i, TIMESTAMP '2026-01-01 08:00:00' + to_seconds(range * 7) AS t FROM range(?))
"""


def test_the_inbound_calls_aggregate_builds_under_a_small_memory_cap(tmp_path: Path) -> None:
    """int_inbound_calls_of_changed_weeks groups every inbound leg by chain in one aggregate; dbt's DuckDB is capped
    (profiles.yml). DuckDB spills an aggregate only when every state has a fixed size - a row() ordering
    key or a max() over text lives outside its buffer manager - so the model keeps none, and a full
    build fits the cap at any size (at 10M legs the previous form ran out of memory under 1 GB,
    docs/performance.md). Here: the full build's statement over 4M legs (1M chains) under a 320 MB cap,
    two threads (the previous form ran out of memory at this size even under 384 MB); every chain comes
    out once, with its first leg and its greatest text."""
    legs, cap = 4_000_000, "320MB"
    empty_site(tmp_path)
    r = dbt(tmp_path, "run", "--empty", "--select", "+fct_calls")
    assert r.returncode == 0, r.stdout[-3000:]
    build = tmp_path / "warehouse" / "build" / "callsight.duckdb"
    con = duckdb.connect(str(build))
    try:  # the legs of a full build: every week written anew
        con.execute(SYNTHETIC_LEGS.replace("marts.fct_calls", "intermediate.int_call_legs_of_changed_weeks"), [legs])
        con.execute(
            "INSERT INTO intermediate.int_weeks_changed SELECT DISTINCT 'fct_inbound_calls', "
            "date_trunc('week', call_date)::DATE FROM intermediate.int_call_legs_of_changed_weeks"
        )
    finally:
        con.close()
    r = dbt(tmp_path, "run", "--select", "fct_calls")  # the view over them (`--empty` made it read nothing)
    assert r.returncode == 0, r.stdout[-3000:]
    r = dbt(tmp_path, "compile", "--select", "int_inbound_calls_of_changed_weeks")  # the full build's statement
    assert r.returncode == 0, r.stdout[-3000:]
    (compiled,) = (tmp_path / "target" / "compiled").rglob("int_inbound_calls_of_changed_weeks.sql")
    con = duckdb.connect(str(build))
    try:
        con.execute(f"SET memory_limit = '{cap}'")
        con.execute(f"SET temp_directory = '{tmp_path / 'spill'}'")
        con.execute("SET threads = 2")
        con.execute(f"CREATE TABLE scratch AS {compiled.read_text()}")
        chains, distinct, first_ok, company = con.execute(
            "SELECT count(*), count(DISTINCT chain_key), "
            "count(*) FILTER (WHERE first_call_id = 4 * CAST(substr(chain_key, 7) AS BIGINT)), "
            "max(contact_company) FILTER (WHERE chain_key = 'chain-1') FROM scratch"
        ).fetchone()
    finally:
        con.close()
    assert (chains, distinct, first_ok) == (legs // 4, legs // 4, legs // 4)
    assert company == "Company number 7 GmbH & Co. KG"  # legs 4-7: numbers 4..7, the greatest text


def failures(home: Path) -> dict[str, int]:
    """Test name -> rows it found, from the last dbt invocation's run_results.json under `home`."""
    results = json.loads((home / "target" / "run_results.json").read_text())["results"]
    return {x["unique_id"].split(".")[2]: x["failures"] for x in results}


def test_the_facts_row_tests_read_the_weeks_the_build_computes_anew(published_copy: Site) -> None:
    """The week-file facts' dbt tests (`where: __changed_weeks__`) read the rows of the weeks a night
    writes anew (intermediate.int_weeks_changed) and rows without a day: every other week is a file
    that passed them when it was written. A bad row in a changed week is found, one in another week is
    left to the warehouse checks' weekly whole run; where the build lists no changed weeks, every row.
    The legs-and-calls test also checks the calls of the legs that changed at the source, whichever
    weeks the build chose to write anew, and those the changed weeks held before, whatever it wrote."""
    home = published_copy.home
    settings = published_copy.settings
    prepare_build(settings.served_db, settings.build_db)
    tests = (
        "not_null_fct_calls_agent_username",
        "unique_fct_calls_call_id",
        "assert_every_inbound_leg_belongs_to_one_inbound_call",
    )
    con = duckdb.connect(str(settings.build_db))
    try:
        weeks = [w for (w,) in con.execute("SELECT DISTINCT call_week FROM marts.week_files ORDER BY 1").fetchall()]
        assert len(weeks) >= 3
        changed, other, touched = weeks[-1], weeks[0], weeks[1]
        (files,) = con.execute(
            "SELECT sql FROM duckdb_views() WHERE schema_name = 'marts' AND view_name = 'fct_calls'"
        ).fetchone()
        con.execute(files.replace("VIEW marts.fct_calls", "VIEW marts.fct_calls_files", 1))
        # a copy of an inbound one-leg call's leg in each week, without its agent: a bad row, a duplicate
        # call_id and a call with more legs than it counts, per week
        single = "chain_key IN (SELECT chain_key FROM marts.fct_inbound_calls WHERE leg_count = 1)"
        copies = " UNION ALL BY NAME ".join(
            f"(SELECT * REPLACE (NULL AS agent_username) FROM marts.fct_calls_files WHERE is_inbound AND {single} "
            f"AND call_date >= DATE '{w}' AND call_date < DATE '{w + timedelta(days=7)}' ORDER BY call_id LIMIT 1)"
            for w in (changed, other, touched)
        )
        con.execute(f"CREATE TABLE marts.planted AS {copies}")
        # and a leg of the changed week that the build lost (its call and the previous file still hold it)
        (lost,) = con.execute(
            f"SELECT call_id FROM marts.fct_calls_files WHERE is_inbound AND {single} AND call_date >= DATE "
            f"'{changed}' AND call_date < DATE '{changed + timedelta(days=7)}' ORDER BY call_id DESC LIMIT 1"
        ).fetchone()
        con.execute(
            f"CREATE OR REPLACE VIEW marts.fct_calls AS FROM marts.fct_calls_files WHERE call_id <> {lost} "
            "UNION ALL BY NAME FROM marts.planted"
        )
        (touched_call,) = con.execute(
            f"SELECT chain_key FROM marts.planted WHERE call_date >= DATE '{touched}' "
            f"AND call_date < DATE '{touched + timedelta(days=7)}'"
        ).fetchone()
        con.execute("CREATE SCHEMA intermediate")
        con.execute(
            f"CREATE TABLE intermediate.int_weeks_changed AS SELECT 'fct_calls' AS fact, DATE '{changed}' AS call_week"
        )
        # a leg of the touched week's call changed at the source (int_call_legs_changed), its week not chosen
        con.execute(
            "CREATE TABLE intermediate.int_call_legs_changed AS SELECT NULL::VARCHAR AS chain_key_now, "
            "false AS is_inbound_now, ? AS chain_key_before, true AS is_inbound_before",
            [touched_call],
        )
    finally:
        con.close()
    dbt(home, "test", "--select", *tests)
    # the changed week's bad row and duplicate; the calls of the changed week (now and before: the planted
    # and the lost leg's) and of the leg changed at the source
    assert failures(home) == dict(zip(tests, (1, 1, 3), strict=True))
    # a file without the build's weeks (a published one): every row
    con = duckdb.connect(str(settings.build_db))
    con.execute("DROP TABLE intermediate.int_weeks_changed")
    con.close()
    dbt(home, "test", "--select", *tests)
    assert failures(home) == dict(zip(tests, (3, 3, 4), strict=True))


def test_a_changed_test_or_contract_rebuilds_every_week_but_lineage_does_not(tmp_path: Path) -> None:
    """The fingerprint decides when a night rebuilds every week: the facts' tests read only the changed
    weeks, so a changed test, contract or singular test must see the others once; a dashboard's lineage
    (exposures.yml) changes no row."""
    project = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    before = model_fingerprint({}, project)
    facts = project / "models" / "marts" / "fct_calls.yml"
    exposures = project / "models" / "exposures.yml"
    exposures.write_text(exposures.read_text() + "\n# a new dashboard\n")
    assert model_fingerprint({}, project) == before
    facts.write_text(facts.read_text().replace("max_value: 23", "max_value: 22", 1))
    assert model_fingerprint({}, project) != before
    changed = model_fingerprint({}, project)
    (project / "tests" / "assert_something_new.sql").write_text("select 1 where false\n")
    assert model_fingerprint({}, project) != changed
