"""The pure rules of superset/sql_guard.py, run in Superset's environment (its sqlglot) without a server:
which fragments pass layer 1 for a viewer and an analyst, and which final queries pass layer 2."""

from __future__ import annotations

import json
import subprocess

import pytest

from callsight.site.settings import REPO_ROOT, Settings

from .conftest import require_service

COLUMNS = ["call_date", "agent_username", "talk_seconds", "is_inbound", "phone_number"]
# fragment -> (viewer may send it, analyst may send it)
FRAGMENTS = {
    "call_date": (True, True),
    '"talk_seconds"': (True, True),
    "COUNT(*)": (True, True),
    "count( * )": (True, True),
    "sum(talk_seconds)": (False, True),
    "avg(talk_seconds) FILTER (WHERE is_inbound)": (False, True),
    "CASE WHEN is_inbound THEN 1 ELSE 0 END": (False, True),
    "date_trunc('week', call_date)": (False, True),
    "count(*) FROM marts.fct_calls UNION ALL SELECT count(*)": (False, False),
    "(SELECT count(*) FROM marts.fct_calls)": (False, False),
    "count(*) AS x": (False, False),
    "count(*), sum(talk_seconds)": (False, False),
    "max(viewer_username)": (False, False),
    "max(c.phone_number)": (False, False),
    "current_setting('memory_limit')": (False, False),
    "length(query('SELECT 1'))": (False, False),
    "count(*) -- x": (False, False),
    "{{ current_username() }}": (False, False),
    "sum(": (False, False),
    "": (False, False),
}
SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
import sql_guard as g
cases = json.loads(sys.stdin.read())
dataset = g.Dataset(frozenset(cases["columns"]), frozenset({"count"}), frozenset({"P1D", "P1W"}))
out = {"fragments": {}, "final": {}}
for text in cases["fragments"]:
    verdict = []
    for custom in (False, True):
        query = {"metrics": [{"expressionType": "SQL", "sqlExpression": text, "label": "x"}]}
        try:
            g.check_query_object(query, dataset, g.Asker(custom_sql=custom))
            verdict.append(True)
        except g.GuardRefusal:
            verdict.append(False)
    out["fragments"][text] = verdict
trusted = g.Trusted((cases["inner"],), None, (cases["predicate"],))
for name, sql in cases["final"].items():
    try:
        regenerated = g.check_final_query(sql, trusted)
        out["final"][name] = "passed" if "virtual_table" in regenerated else "passed without its dataset"
    except g.GuardRefusal as refusal:
        out["final"][name] = refusal.reason
sys.modules["callsight_sql_guard"] = g
import statement_guard as st
out["statements"] = {}
for sql in cases["statements"]:
    try:
        st.check_statement(sql)
        out["statements"][sql] = "passed"
    except g.GuardRefusal as refusal:
        out["statements"][sql] = refusal.reason
print(json.dumps(out))
"""
INNER = "SELECT c.call_date, c.agent_username, c.talk_seconds FROM marts.fct_calls AS c WHERE TRUE"
PREDICATE = "(agent_username IN (SELECT agent_username FROM security.viewer_agents WHERE viewer_username = 'me'))"
FROM = f"FROM ({INNER}) AS virtual_table"
OTHER_VIEWER = PREDICATE.replace("'me'", "'boss'")
FINAL = {
    "plain": f"SELECT call_date, count(*) AS n {FROM} WHERE {PREDICATE} AND call_date > '2026-01-01' GROUP BY 1",
    "issue 25": f"SELECT count(*) FROM marts.fct_calls UNION ALL SELECT count(*) AS x {FROM} WHERE {PREDICATE}",
    "subquery in select": f"SELECT (SELECT max(viewer_username) FROM security.viewer_agents) {FROM} WHERE {PREDICATE}",
    "predicate for another viewer": f"SELECT count(*) {FROM} WHERE {OTHER_VIEWER}",
    "other source": f"SELECT count(*) FROM ({INNER.replace('WHERE TRUE', '')}) AS virtual_table WHERE {PREDICATE}",
    "cte": f"WITH x AS (SELECT 1) SELECT count(*) {FROM} WHERE {PREDICATE}",
    "join": f"SELECT count(*) {FROM} JOIN marts.dim_agent AS a ON TRUE WHERE {PREDICATE}",
    "two statements": f"SELECT count(*) {FROM} WHERE {PREDICATE}; SELECT 1",
    "series limit": (
        f"SELECT call_date, count(*) {FROM} JOIN (SELECT call_date AS call_date__ {FROM} WHERE {PREDICATE} "
        f"GROUP BY 1 ORDER BY count(*) DESC LIMIT 5) AS series_limit ON call_date = call_date__ WHERE {PREDICATE} "
        "GROUP BY 1"
    ),
    "row count": f"SELECT count(*) AS rowcount FROM (SELECT call_date {FROM} WHERE {PREDICATE}) AS rowcount_qry",
    "row count of a union": (
        "SELECT count(*) AS rowcount FROM (SELECT phone_number FROM marts.fct_calls UNION ALL "
        f"SELECT call_date {FROM} WHERE {PREDICATE}) AS rowcount_qry"
    ),
}
EXPECTED_FINAL = {
    "plain": "passed",
    "issue 25": "final_shape",
    "subquery in select": "final_relation",
    "predicate for another viewer": "final_relation",
    "other source": "final_source",
    "cte": "final_relation",
    "join": "final_join",
    "two statements": "final_statements",
    "series limit": "passed",
    "row count": "passed",
    "row count of a union": "final_source",
}

PARTS = "/srv/callsight/warehouse/parts"
# A non-admin's statement outside the chart path (statement_guard.py) -> the verdict.
STATEMENTS = {
    "SELECT count(*) FROM analyst.calls": "passed",
    "WITH c AS (SELECT * FROM calls) SELECT c.x FROM c JOIN analyst.groups AS g ON TRUE": "passed",
    "SELECT * FROM range(10)": "passed",
    "DESCRIBE analyst.calls": "passed",
    f"SELECT * FROM read_parquet('{PARTS}/fct_calls-2026-W49.parquet')": "statement_file",
    f"SELECT * FROM '{PARTS}/fct_calls-2026-W49.parquet'": "statement_file",
    f'SELECT * FROM "{PARTS}/x.parquet"': "statement_file",
    f"FROM '{PARTS}/x.parquet'": "statement_file",
    "SELECT * FROM 'x.parquet'": "statement_file",
    f"SELECT * FROM analyst.calls WHERE x IN (FROM '{PARTS}/x.parquet')": "statement_file",
    f"SELECT * FROM analyst.calls, LATERAL (SELECT * FROM read_parquet('{PARTS}/x'))": "statement_file",
    f"SELECT * FROM range((SELECT count(*) FROM glob('{PARTS}/*')))": "statement_file",
    f"PIVOT read_parquet('{PARTS}/x') ON a USING count(*)": "statement_not_query",
    f"SELECT * FROM parquet_metadata('{PARTS}/x')": "statement_file",
    "SELECT * FROM read_parquet(getvariable('p'))": "statement_file",
    "SELECT * FROM query_table('marts.fct_calls')": "statement_file",
    "SELECT * FROM duckdb_views()": "statement_file",
    "SELECT 1; SELECT * FROM read_csv('/etc/passwd')": "statement_file",
    "SELECT current_setting('allowed_directories')": "statement_function",
    f"COPY (SELECT 1) TO '{PARTS}/fct_calls-2026-W49.parquet'": "statement_not_query",
    f"EXPORT DATABASE '{PARTS}/copy'": "statement_unparsable",
    f"ATTACH '{PARTS}/x.duckdb'": "statement_not_query",
    "SET VARIABLE p = '/srv'": "statement_not_query",
    "SELECT * FROM (": "statement_unparsable",
}


@pytest.fixture(scope="module")
def verdicts() -> dict:
    python = Settings.from_env({}).superset_venv / "bin" / "python"
    require_service(python.exists(), "Superset virtual environment (make venvs)")
    cases = {
        "columns": COLUMNS,
        "fragments": list(FRAGMENTS),
        "inner": INNER,
        "predicate": PREDICATE,
        "final": FINAL,
        "statements": list(STATEMENTS),
    }
    r = subprocess.run(
        [str(python), "-c", SCRIPT, str(REPO_ROOT / "superset")],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


def test_layer_one_lets_viewers_name_columns_and_analysts_write_plain_expressions(verdicts: dict) -> None:
    got = {text: tuple(v) for text, v in verdicts["fragments"].items()}
    assert got == FRAGMENTS


def test_layer_two_accepts_only_the_dataset_and_its_predicates(verdicts: dict) -> None:
    assert verdicts["final"] == EXPECTED_FINAL


def test_other_statements_read_tables_by_name_only(verdicts: dict) -> None:
    assert verdicts["statements"] == STATEMENTS
