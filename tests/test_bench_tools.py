"""The benchmark's tools: peak RSS and timing of child processes, percentiles, figures, goal verdicts,
the printed table, and the chart-data query contexts built from the asset YAML."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest
from bench.charts import chart_queries, dashboard_charts
from bench.measure import REPO_ROOT, StageResult, percentile, run_child, run_python_stage
from bench.report import GOALS, figures, report_lines, verdicts
from bench.team import DASHBOARDS

from callsight.bi.assets import load_assets
from callsight.bi.translate import originals

from .conftest import dbt_target_env

MIB = 1024 * 1024
ALLOCATE = "import time; b = bytearray({n} * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); time.sleep({s})"


def test_peak_rss_and_wall_time_of_a_child(tmp_path: Path) -> None:
    r = run_child("alloc", [sys.executable, "-c", ALLOCATE.format(n=300, s=0.3)], log=tmp_path / "a.log")
    assert r.ok and r.error is None
    assert 300 <= r.peak_rss_mib < 600, r.peak_rss_mib
    assert r.seconds >= 0.3


def test_peak_rss_is_the_childs_even_when_this_process_is_large(tmp_path: Path) -> None:
    """Linux counts the image a child is forked from in its ru_maxrss; the measure must not."""
    ballast = bytearray(700 * 1024 * 1024)
    ballast[::4096] = b"x" * len(ballast[::4096])
    r = run_child("alloc", [sys.executable, "-c", ALLOCATE.format(n=300, s=0)], log=tmp_path / "a.log")
    assert r.ok and 300 <= r.peak_rss_mib < 600, r.peak_rss_mib
    del ballast


def test_peak_rss_counts_grandchildren(tmp_path: Path) -> None:
    grandchild = ALLOCATE.format(n=400, s=0)
    code = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {grandchild!r}], check=True)"
    r = run_child("parent", [sys.executable, "-c", code], log=tmp_path / "p.log")
    assert r.ok and r.peak_rss_mib >= 400, r.peak_rss_mib


def test_a_failing_child_reports_its_exit_code_and_log(tmp_path: Path) -> None:
    code = "import sys; print('something went wrong here'); sys.exit(3)"
    r = run_child("fail", [sys.executable, "-c", code], log=tmp_path / "f.log")
    assert not r.ok and "exit 3" in r.error and "something went wrong here" in r.error


def test_timeout_kills_the_child(tmp_path: Path) -> None:
    late = tmp_path / "late"
    code = f"import time, pathlib; time.sleep(3); pathlib.Path({str(late)!r}).write_text('still running')"
    r = run_child("slow", [sys.executable, "-c", code], log=tmp_path / "s.log", timeout=1)
    assert not r.ok and r.seconds < 30
    time.sleep(4)
    assert not late.exists(), "the command died with its stage"


def test_python_stage_writes_its_detail(tmp_path: Path) -> None:
    """A real stage in a child: the floor on an empty journal reports its rows and groups."""
    import sqlite3

    from callsight.demo.journal import default_policy
    from callsight.journal.contract import JOURNAL_DDL

    lite = tmp_path / "j.sqlite"
    con = sqlite3.connect(lite)
    con.execute(JOURNAL_DDL.format(table="journal"))
    con.execute(
        "INSERT INTO journal (ID, StartTime, StopTime, DurationTotal, DurationConnected, Outbound, Internal, "
        "PrivateCall, CTIServerUserName, TrackerID, PhoneNumber) VALUES "
        "(1, '2026-03-02 10:00:00', '2026-03-02 10:00:09', 9, 0, 0, 0, 0, 'anna.schmidt', 't1', '+49 89 1'), "
        "(2, '2026-03-02 11:00:00', '2026-03-02 11:01:00', 60, 55, 1, 0, 0, 'anna.schmidt', 't2', '+49 89 1')"
    )
    con.commit()
    con.close()
    policy = tmp_path / "policy.yaml"
    policy.write_text(json.dumps(default_policy()), encoding="utf-8")
    directory = tmp_path / "directory.yaml"
    directory.write_text(json.dumps({"users": [{"username": "anna.schmidt", "name": "Anna"}]}), encoding="utf-8")
    args = {"sqlite": str(lite), "out": str(tmp_path / "f.duckdb"), "before": "2026-03-03"}
    ballast = bytearray(600 * MIB)  # this process is big: a forked child's ru_maxrss would count it
    ballast[::4096] = b"x" * len(ballast[::4096])
    r = run_python_stage("floor", "floor", {**args, "policy": str(policy), "directory": str(directory)}, work=tmp_path)
    del ballast
    assert r.ok, r.error
    assert 50 < r.peak_rss_mib < 500, "a stage reports its own peak, not the runner's size"
    assert "_peak_rss_mib" not in r.detail
    assert r.detail["rows"] == 2 and r.detail["groups"] == 1
    import duckdb

    out = duckdb.connect(str(tmp_path / "f.duckdb"), read_only=True)
    row = out.execute(
        "SELECT calls, missed, missed_external, callback_possible, called_back FROM floor_kpis"
    ).fetchone()
    out.close()
    assert row == (1, 1, 1, 1, 1), "the missed call was returned by the outbound call an hour later"


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50 and percentile(values, 95) == 95 and percentile(values, 100) == 100
    assert percentile([7.0], 95) == 7.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    with pytest.raises(ValueError):
        percentile([], 50)


def _stage(name: str, seconds: float, rss: float, detail: dict | None = None, ok: bool = True) -> StageResult:
    return StageResult(name, seconds, rss, ok, detail or {})


def _stages(build: float, night: float, floor: float, pandas: float, rss: float) -> dict[str, StageResult]:
    return {
        "generate": _stage("generate", 10, 500),
        "extract_sqlite": _stage("extract_sqlite", 5, rss, {"rows_per_second": 1_200_000.0, "quarantined": 0}),
        "extract_postgresql": _stage("extract_postgresql", 5, 900, {"rows_per_second": 250_000.0, "quarantined": 0}),
        "full_build": _stage("full_build", build, 1500, {"steps": {"raw__journal": 4.0, "warehouse_models": 20.0}}),
        "night": _stage(
            "night", night, 1200, {"steps": {"published_warehouse": 9.0}, "publish": {"prune": 0.5, "compact": 8.0}}
        ),
        "floor": _stage("floor", floor, 800),
        "pandas": _stage("pandas", pandas, 3000),
        "charts": _stage(
            "charts",
            90,
            300,
            {
                "p50_ms": 80.0,
                "p95_ms": 240.0,
                "worst_chart_p95_ms": 400.0,
                "worst_dashboard_chart_p95_ms": 260.0,
                "load": {"errors": 0},
                "cached": {"p50_ms": 21.0, "p95_ms": 38.0, "from_cache": 357, "samples": 360},
            },
        ),
    }


def test_figures_ratios_and_goals() -> None:
    f = figures(10_000_000, _stages(build=30, night=61, floor=20, pandas=120, rss=2100))
    assert f["build_vs_floor"] == 1.5 and f["pandas_vs_build"] == 4.0 and f["pandas_vs_floor"] == 6.0
    assert f["pipeline_peak_rss_mib"] == 2100, "the pandas peer's memory is not the pipeline's"
    assert f["peak_rss_mib"]["pandas"] == 3000
    assert f["build_steps_s"] == {"raw__journal": 4.0, "warehouse_models": 20.0}
    assert f["goals"] == {
        "build_vs_floor": True,
        "pandas_vs_build": True,
        "extract_sqlite": True,
        "extract_postgresql": False,
        "peak_rss": False,
        "night": False,
        "chart_p95": True,
        "every_chart_p95": False,
        "load_errors": True,
        "team_dashboard_p95": None,
    }
    assert set(f["goals"]) == set(GOALS)


def test_size_bound_goals_are_not_judged_below_10m_and_failed_stages_are_missing() -> None:
    stages = _stages(build=10, night=20, floor=5, pandas=40, rss=900)
    stages["pandas"] = _stage("pandas", 1, 100, ok=False)
    f = figures(1_000_000, stages)
    assert f["pandas_s"] is None and f["pandas_vs_build"] is None
    assert f["goals"]["peak_rss"] is None and f["goals"]["chart_p95"] is None and f["goals"]["pandas_vs_build"] is None
    assert f["goals"]["build_vs_floor"] is False and f["goals"]["night"] is True
    assert verdicts({"rows": 5}) == dict.fromkeys(GOALS)


def test_report_table_and_json() -> None:
    results = [
        {"rows": 1_000_000, "stages": {}, "figures": figures(1_000_000, _stages(30, 40, 10, 45, 900))},
        {"rows": 10_000_000, "stages": {}, "figures": figures(10_000_000, _stages(300, 61, 100, 600, 2100))},
    ]
    text = "\n".join(report_lines(results, (3.5, 2.0, 1.0)))
    assert "1,000,000" in text and "10,000,000" in text
    assert "3.00 x" in text and "2.00 x" in text  # build / floor at both sizes
    assert "1,200,000" in text and "250,000" in text
    assert "80 / 240 ms" in text
    assert "21 / 38 ms, 357/360" in text  # a dashboard opened again: from the cache, and how often
    assert "night steps at 10,000,000 rows (s): published_warehouse 9.0" in text
    assert "publish at 10,000,000 rows, night (s): prune 0.5, compact 8.0" in text
    assert "load average at the end: 3.50" in text
    goal_lines = [line for line in text.splitlines() if (line.startswith("  ") and "<=" in line) or ">=" in line]
    assert any("MISSED" in line for line in goal_lines) and any("met" in line for line in goal_lines)
    night_line = next(line for line in text.splitlines() if "incremental night" in line)
    assert night_line.split()[-2:] == ["met", "MISSED"]
    json.dumps(results)  # the JSON document holds plain values only


def test_a_query_context_for_every_chart_of_the_assets() -> None:
    assets = originals(load_assets())  # the English twins ask the same queries
    charts = {c["slice_name"]: c for n, c in assets.items() if n.startswith("charts/")}
    datasets = {c["table_name"]: c for n, c in assets.items() if n.startswith("datasets/")}
    queries = chart_queries(date(2026, 11, 27))
    assert sorted(q.name for q in queries) == sorted(charts)
    for q in queries:
        ds = datasets[q.table]
        metrics = {m["metric_name"] for m in ds["metrics"]}
        columns = {c["column_name"] for c in ds["columns"]}
        raw = charts[q.name]["params"].get("query_mode") == "raw"
        for query in q.queries:
            # as the dashboard sends it: a raw-records table has no "metrics" key (an empty list would
            # make Superset group by every column)
            assert ("metrics" not in query) if raw else set(query["metrics"]) <= metrics, (q.name, query)
            names = {c if isinstance(c, str) else c["sqlExpression"] for c in query["columns"]}
            assert names <= columns, (q.name, names - columns)
            assert query["filters"][0]["op"] == "TEMPORAL_RANGE"
            assert query.get("metrics") or query["columns"]
        paginated = bool(charts[q.name]["params"].get("server_pagination"))
        assert len(q.queries) == (2 if q.viz_type == "pop_kpi" or paginated else 1)
        if paginated:
            # as Superset's table plugin asks: the first page, then the row count up to the chart's limit
            page, count = q.queries
            limit = charts[q.name]["params"]["row_limit"]
            assert page["row_limit"] == min(charts[q.name]["params"]["server_page_length"], limit)
            assert page["row_offset"] == 0 and not page.get("is_rowcount")
            assert count["is_rowcount"] is True and count["row_limit"] == limit
            assert page["orderby"] == count["orderby"] and page["filters"] == count["filters"]
        elif q.viz_type == "table" and not raw:
            assert query["orderby"] and query["orderby"][0][1] is False, q.name  # biggest first
    assert any(charts[q.name]["params"].get("query_mode") == "raw" for q in queries)
    assert any(charts[q.name]["params"].get("server_pagination") for q in queries)
    pop = next(q for q in queries if q.viz_type == "pop_kpi")
    assert [x["filters"][0]["val"] for x in pop.queries] == ["2026-10-29 : 2026-11-28", "2026-09-29 : 2026-10-29"]


@pytest.mark.slow
def test_the_manifest_is_parsed_with_the_build_vars_and_only_when_something_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The nightly build runs dbt with build_vars(policy): the manifest is parsed with the same vars
    (so the build's dbt finds its partial-parse state valid) and not again while nothing changed."""
    import duckdb
    from dbt.version import __version__

    from callsight.demo.journal import default_policy
    from callsight.site.policy import Policy
    from callsight.warehouse.dbt_project import build_vars, dbt_project, dbt_resource, ensure_manifest

    (tmp_path / "warehouse" / "build").mkdir(parents=True)
    duckdb.connect(str(tmp_path / "warehouse" / "journal.duckdb")).close()
    monkeypatch.setenv("CALLSIGHT_HOME", str(tmp_path))
    policy = Policy.model_validate(default_policy())
    v1 = build_vars(policy.dbt_vars())
    assert set(v1) == {*policy.dbt_vars(), "build_fingerprint"}
    from dbt.adapters.factory import FACTORY, reset_adapters

    reset_adapters()
    started: list[list[str]] = []
    popen = subprocess.Popen
    monkeypatch.setattr(subprocess, "Popen", lambda args, **kw: started.append(list(args)) or popen(args, **kw))
    manifest = ensure_manifest(v1)
    monkeypatch.setattr(subprocess, "Popen", popen)
    # one dbt process, the parse: no `dbt --version` for the preparer, no dbt adapter loaded in this process
    assert [a[1:2] for a in started] == [["parse"]], started
    assert not FACTORY.adapters, "dagster-dbt loaded dbt's adapter into the calling process"
    parsed = manifest.stat().st_mtime_ns
    assert ensure_manifest(v1).stat().st_mtime_ns == parsed, "nothing changed: no dbt parse"
    doc = json.loads(manifest.read_text(encoding="utf-8"))
    assert doc["metadata"]["dbt_version"] == __version__
    state = dbt_project().project_dir / dbt_project().target_path / "partial_parse.msgpack"
    assert state.exists()
    v2 = build_vars(policy.model_copy(update={"timezone": "Europe/Vienna"}).dbt_vars())
    assert v2["build_fingerprint"] != v1["build_fingerprint"]
    assert ensure_manifest(v2).stat().st_mtime_ns != parsed, "other vars: parsed again"
    assert str(dbt_resource()._cli_version) == __version__  # no `dbt --version` subprocess for it


@pytest.mark.slow
def test_make_bench_end_to_end_on_a_small_journal(tmp_path: Path) -> None:
    """The benchmark as `make bench` runs it (python -m bench from the checkout; without Superset and
    PostgreSQL): every stage succeeds, the extract quarantines nothing, both peers see the same
    agent-days, the JSON holds the figures."""
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--rows",
            "6000",
            "--night-rows",
            "1000",
            "--skip-superset",
            "--no-postgres",
            "--work",
            str(tmp_path / "work"),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=REPO_ROOT,
        env={
            "PATH": str(Path(sys.executable).parent),
            "CALLSIGHT_HOME": str(tmp_path / "home"),
            **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"},  # a checkout outside the install
            **dbt_target_env(),
        },
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "build / floor" in r.stdout and "goals:" in r.stdout
    (out,) = (tmp_path / "out").glob("bench-*.json")
    doc = json.loads(out.read_text(encoding="utf-8"))
    (result,) = doc["results"]
    stages = result["stages"]
    assert set(stages) == {"generate", "extract_sqlite", "full_build", "night", "floor", "pandas"}
    assert all(s["ok"] and s["seconds"] > 0 and s["peak_rss_mib"] > 10 for s in stages.values())
    assert stages["extract_sqlite"]["detail"]["rows"] == 6000
    assert stages["extract_sqlite"]["detail"]["quarantined"] == 0
    assert stages["floor"]["detail"]["groups"] == stages["pandas"]["detail"]["groups"] > 0
    assert {"raw__journal", "warehouse_models", "published_warehouse"} <= set(stages["full_build"]["detail"]["steps"])
    f = result["figures"]
    assert f["build_vs_floor"] == stages["full_build"]["seconds"] / stages["floor"]["seconds"]
    assert not (tmp_path / "work" / "rows-6000").exists(), "the generated data is removed unless --keep"


def test_the_goal_of_every_chart_counts_the_four_dashboards_charts() -> None:
    on_dashboards = dashboard_charts(DASHBOARDS)
    every = {c.name for c in chart_queries(date(2026, 12, 5))}
    assert on_dashboards < every  # each laid-out chart is measured
    # the weekly CSV report's chart and the admins' operations page are measured, but not in the goal
    assert every - on_dashboards == {
        "Wochenbericht je Agent und Tag",
        "Audit-Log",
        "Zugriffe",
        "Quarantäne nach Grund und Tag",
    }
    assert dashboard_charts(("betrieb",)) == {"Audit-Log", "Zugriffe", "Quarantäne nach Grund und Tag"}
