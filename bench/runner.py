"""`make bench` (python -m bench): the whole benchmark for each journal size, side by side with the floor (bare
DuckDB) and the pandas peer, on the same data in the same run. Every stage runs in a child process of
its own (wall time and peak RSS from measure.py). Prints a table with ratios and goals, writes JSON.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from bench.measure import StageResult, load_average, run_python_stage
from bench.report import GOALS, figures, report_lines
from callsight.bi.runtime import WEB_THREADS, WEB_WORKERS


@dataclass(frozen=True)
class BenchOptions:
    work: Path
    out_dir: Path
    night_rows: int = 150_000
    users: int = 120
    seed: int = 1
    postgres: str | None = "host=127.0.0.1 port=5432 dbname=postgres user=postgres"
    superset: bool = True
    chart_samples: int = 10
    load_users: int = 25
    load_seconds: float = 60.0
    publish_every: float = 10.0
    keep: bool = False
    team: bool = True  # the team load (team.py) after the charts
    team_users: int = 25
    team_minutes: float = 5.0
    think: tuple[float, float] = (10.0, 30.0)
    only: tuple[str, ...] = ()  # run just these of RERUNNABLE on the site a --keep run left in `work`
    web: tuple[int, int] = (WEB_WORKERS, WEB_THREADS)  # Superset's gunicorn (workers, threads)


# Stages that can run again on a kept bench site (--only): they only read the served warehouse (and
# republish the same file).
RERUNNABLE = ("charts", "team")


def _say(msg: str) -> None:
    print(msg, flush=True)


def _postgres_database(conninfo: str, name: str, create: bool) -> None:
    import psycopg

    with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if create:
            conn.execute(f'CREATE DATABASE "{name}"')


def _with_db(conninfo: str, name: str) -> str:
    parts = dict(p.split("=", 1) for p in conninfo.split())
    parts["dbname"] = name
    return " ".join(f"{k}={v}" for k, v in parts.items())


def _pg_url(conninfo: str) -> str:
    p = dict(part.split("=", 1) for part in conninfo.split())
    auth = p.get("user", "postgres") + (f":{p['password']}" if "password" in p else "")
    return f"postgresql+psycopg://{auth}@{p.get('host', '127.0.0.1')}:{p.get('port', '5432')}/{p['dbname']}"


def _site_env(home: Path, j: Mapping[str, Any]) -> dict[str, str]:
    """The environment of the stages that run the product on the bench site in `home`."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CALLSIGHT_", "DAGSTER_"))},
        "CALLSIGHT_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "CALLSIGHT_JOURNAL_URL": f"sqlite:///{j['sqlite']}",
        "CALLSIGHT_DIRECTORY": j["directory"],
        "CALLSIGHT_POLICY": j["policy"],
    }


StageFn = Callable[[str, str, Mapping[str, Any], Mapping[str, str] | None], StageResult]


def _stage_runner(rows: int, work: Path, stages: dict[str, StageResult], log: Callable[[str], None]) -> StageFn:
    def stage(name: str, kind: str, args: Mapping[str, Any], env: Mapping[str, str] | None = None) -> StageResult:
        log(f"  [{rows:,}] {name} ...")
        r = run_python_stage(name, kind, args, work=work, env=env)
        stages[name] = r
        tree = f", process tree {r.tree_peak_rss_mib:,.0f} MiB" if r.tree_peak_rss_mib else ""
        log(
            f"  [{rows:,}] {name}: {r.seconds:.1f} s, peak {r.peak_rss_mib:,.0f} MiB{tree}"
            + ("" if r.ok else " FAILED")
        )
        if not r.ok:
            log(r.error or "")
        return r

    return stage


def _superset_stages(
    stage: StageFn, j: Mapping[str, Any], opts: BenchOptions, env: Mapping[str, str], work: Path
) -> None:
    """The stages that serve the warehouse through Superset: chart latency and hammer, the team load."""
    names = opts.only or tuple(n for n, on in (("charts", True), ("team", opts.team)) if on)
    if "charts" in names:
        args = {
            "newest_day": j["night_day"],
            "samples": opts.chart_samples,
            "users": opts.load_users,
            "load_seconds": opts.load_seconds,
            "publish_every": opts.publish_every,
            "web": list(opts.web),
        }
        stage("charts", "charts", args, env)
    if "team" in names:
        args = {
            "users": opts.team_users,
            "minutes": opts.team_minutes,
            "think": list(opts.think),
            "seed": opts.seed,
            "capture_out": str(work / "results" / "team-capture.json"),
            "web": list(opts.web),
        }
        stage("team", "team", args, env)


def rerun_size(rows: int, opts: BenchOptions, log: Callable[[str], None] = _say) -> dict[str, Any]:
    """--only: the chosen Superset stages again on the site a `--keep` run left for this size."""
    work = opts.work / f"rows-{rows}"
    generated = work / "results" / "generate.json"
    home = work / "home"
    if not generated.exists() or not any(home.glob("**/*.duckdb")):
        raise SystemExit(f"--only needs the site of a --keep run of {rows:,} rows in {work}")
    j = json.loads(generated.read_text(encoding="utf-8"))
    stages: dict[str, StageResult] = {}
    _superset_stages(_stage_runner(rows, work, stages, log), j, opts, _site_env(home, j), work)
    return _result(rows, stages, opts)


def bench_size(rows: int, opts: BenchOptions, night_day: date, log: Callable[[str], None] = _say) -> dict[str, Any]:
    """All stages for one journal size. Returns {"rows", "stages": {name: StageResult json}, "figures"}."""
    if opts.only:
        return rerun_size(rows, opts, log)
    work = opts.work / f"rows-{rows}"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    data = work / "data"
    stages: dict[str, StageResult] = {}
    stage = _stage_runner(rows, work, stages, log)
    gen = stage(
        "generate",
        "generate",
        {
            "out": str(data),
            "rows": rows,
            "night_rows": opts.night_rows,
            "rows_per_day": opts.night_rows,
            "night_day": night_day.isoformat(),
            "users": opts.users,
            "seed": opts.seed,
        },
    )
    if not gen.ok:
        return _result(rows, stages, opts)
    j = gen.detail
    sqlite_url = f"sqlite:///{j['sqlite']}"
    common = {"directory": j["directory"], "policy": j["policy"]}
    history = {"first_day": j["first_day"], "last_day": j["last_history_day"]}
    stage("extract_sqlite", "extract", {**common, **history, "url": sqlite_url, "raw": str(work / "raw-sqlite.duckdb")})
    if opts.postgres:
        db = f"callsight_bench_{rows}_{uuid.uuid4().hex[:6]}"
        try:
            _postgres_database(opts.postgres, db, create=True)
        except Exception as exc:  # any connection problem means: no PostgreSQL figures
            log(f"  PostgreSQL skipped: {type(exc).__name__}: {exc}")
        else:
            try:
                conninfo = _with_db(opts.postgres, db)
                if stage("postgres_load", "postgres", {"sqlite": j["sqlite"], "conninfo": conninfo}).ok:
                    url = _pg_url(conninfo)
                    stage(
                        "extract_postgresql",
                        "extract",
                        {**common, **history, "url": url, "raw": str(work / "raw-pg.duckdb")},
                    )
            finally:
                _postgres_database(opts.postgres, db, create=False)
    env = _site_env(work / "home", j)
    build = stage("full_build", "run", history, env)
    if build.ok:
        stage("night", "run", {"first_day": j["night_day"], "last_day": j["night_day"]}, env)
    before = j["night_day"]
    stage("floor", "floor", {**common, "sqlite": j["sqlite"], "out": str(work / "floor.duckdb"), "before": before})
    stage("pandas", "pandas", {**common, "url": sqlite_url, "out": str(work / "pandas.parquet"), "before": before})
    if opts.superset and build.ok:
        _superset_stages(stage, j, opts, env, work)
    result = _result(rows, stages, opts)
    if not opts.keep:
        shutil.rmtree(work, ignore_errors=True)
    return result


def _result(rows: int, stages: dict[str, StageResult], opts: BenchOptions) -> dict[str, Any]:
    return {"rows": rows, "stages": {k: v.to_json() for k, v in stages.items()}, "figures": figures(rows, stages)}


def run_bench(sizes: list[int], opts: BenchOptions, night_day: date | None = None) -> tuple[list[dict[str, Any]], Path]:
    """Run every size, print the table, write the JSON. Returns the results and the JSON path."""
    from callsight.defs.nightly import yesterday

    night = night_day or yesterday("Europe/Berlin")
    started = datetime.now(UTC)
    results = []
    loads = []
    for rows in sizes:
        if opts.only:
            _say(f"benchmark: {', '.join(opts.only)} again on the kept site of {rows:,} rows")
        else:
            _say(f"benchmark: {rows:,} rows of history + {opts.night_rows:,} for the night of {night}")
        loads.append(load_average())
        results.append(bench_size(rows, opts, night))
    end_load = load_average()
    for line in report_lines(results, end_load):
        _say(line)
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    out = opts.out_dir / f"bench-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    doc = {
        "started_utc": started.isoformat(),
        "finished_utc": datetime.now(UTC).isoformat(),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform()},
        "load_average_at_start_of_each_size": loads,
        "load_average_at_end": end_load,
        "night_day": night.isoformat(),
        "goals": GOALS,
        "results": results,
    }
    out.write_text(json.dumps(doc, indent=2, default=str), encoding="utf-8")
    _say(f"\nwrote {out}")
    return results, out
