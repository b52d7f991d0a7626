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

GIB = 1024.0
# Goals of issue #10 (not timed tests: the benchmark reports whether they are met).
GOALS: dict[str, str] = {
    "build_vs_floor": "full build <= 1.5 x bare-DuckDB floor",
    "pandas_vs_build": "pandas peer >= 3 x full build (end to end)",
    "extract_sqlite": "extract SQLite >= 1,000,000 rows/s",
    "extract_postgresql": "extract PostgreSQL >= 300,000 rows/s",
    "peak_rss": "peak RSS <= 2 GiB at 10M rows",
    "night": "incremental night <= 60 s",
    "chart_p95": "chart p95 <= 250 ms at 10M rows",
    "load_errors": "0 errors under load",
}


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


def bench_size(rows: int, opts: BenchOptions, night_day: date, log: Callable[[str], None] = _say) -> dict[str, Any]:
    """All stages for one journal size. Returns {"rows", "stages": {name: StageResult json}, "figures"}."""
    work = opts.work / f"rows-{rows}"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    data = work / "data"
    stages: dict[str, StageResult] = {}

    def stage(name: str, kind: str, args: Mapping[str, Any], env: Mapping[str, str] | None = None) -> StageResult:
        log(f"  [{rows:,}] {name} ...")
        r = run_python_stage(name, kind, args, work=work, env=env)
        stages[name] = r
        log(f"  [{rows:,}] {name}: {r.seconds:.1f} s, peak {r.peak_rss_mib:,.0f} MiB" + ("" if r.ok else " FAILED"))
        if not r.ok:
            log(r.error or "")
        return r

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
    home = work / "home"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CALLSIGHT_", "DAGSTER_"))},
        "CALLSIGHT_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "CALLSIGHT_JOURNAL_URL": sqlite_url,
        "CALLSIGHT_DIRECTORY": j["directory"],
        "CALLSIGHT_POLICY": j["policy"],
    }
    build = stage("full_build", "run", history, env)
    if build.ok:
        stage("night", "run", {"first_day": j["night_day"], "last_day": j["night_day"]}, env)
    before = j["night_day"]
    stage("floor", "floor", {**common, "sqlite": j["sqlite"], "out": str(work / "floor.duckdb"), "before": before})
    stage("pandas", "pandas", {**common, "url": sqlite_url, "out": str(work / "pandas.parquet"), "before": before})
    if opts.superset and build.ok:
        stage(
            "charts",
            "charts",
            {
                "newest_day": j["night_day"],
                "samples": opts.chart_samples,
                "users": opts.load_users,
                "load_seconds": opts.load_seconds,
                "publish_every": opts.publish_every,
            },
            env,
        )
    result = _result(rows, stages, opts)
    if not opts.keep:
        shutil.rmtree(work, ignore_errors=True)
    return result


def _result(rows: int, stages: dict[str, StageResult], opts: BenchOptions) -> dict[str, Any]:
    return {"rows": rows, "stages": {k: v.to_json() for k, v in stages.items()}, "figures": figures(rows, stages)}


def figures(rows: int, stages: Mapping[str, StageResult]) -> dict[str, Any]:
    """Headline figures and goal verdicts from the stages (None where a stage is missing or failed)."""

    def ok(name: str) -> StageResult | None:
        s = stages.get(name)
        return s if s is not None and s.ok else None

    f: dict[str, Any] = {"rows": rows}
    gen = ok("generate")
    f["generate_s"] = gen.seconds if gen else None
    for src in ("sqlite", "postgresql"):
        s = ok(f"extract_{src}")
        f[f"extract_{src}_rows_per_s"] = s.detail.get("rows_per_second") if s else None
        f[f"extract_{src}_quarantined"] = s.detail.get("quarantined") if s else None
    for name in ("full_build", "night", "floor", "pandas"):
        s = ok(name)
        f[f"{name}_s"] = s.seconds if s else None
    build, floor, pandas = ok("full_build"), ok("floor"), ok("pandas")
    f["build_steps_s"] = build.detail.get("steps") if build else None
    night = ok("night")
    f["night_steps_s"] = night.detail.get("steps") if night else None
    runs = {"full_build": build, "night": night}
    f["publish_parts_s"] = {n: r.detail.get("publish") for n, r in runs.items() if r} or None
    f["build_vs_floor"] = build.seconds / floor.seconds if build and floor else None
    f["pandas_vs_build"] = pandas.seconds / build.seconds if build and pandas else None
    f["pandas_vs_floor"] = pandas.seconds / floor.seconds if floor and pandas else None
    f["peak_rss_mib"] = {name: round(s.peak_rss_mib) for name, s in stages.items()}
    pipeline = [
        stages[n].peak_rss_mib for n in ("extract_sqlite", "extract_postgresql", "full_build", "night") if n in stages
    ]
    f["pipeline_peak_rss_mib"] = round(max(pipeline)) if pipeline else None
    charts = ok("charts")
    f["chart_p50_ms"] = charts.detail.get("p50_ms") if charts else None
    f["chart_p95_ms"] = charts.detail.get("p95_ms") if charts else None
    f["chart_worst_p95_ms"] = charts.detail.get("worst_chart_p95_ms") if charts else None
    f["load"] = charts.detail.get("load") if charts else None
    f["chart_cached"] = charts.detail.get("cached") if charts else None
    f["goals"] = verdicts(f)
    return f


def verdicts(f: Mapping[str, Any]) -> dict[str, bool | None]:
    """True/False per goal; None when not measured (or not applicable at this size)."""

    def check(value: Any, good: Callable[[Any], bool]) -> bool | None:
        return None if value is None else bool(good(value))

    big = f["rows"] >= 10_000_000
    load = f.get("load") or {}
    return {
        "build_vs_floor": check(f.get("build_vs_floor"), lambda v: v <= 1.5),
        "pandas_vs_build": check(f.get("pandas_vs_build"), lambda v: v >= 3),
        "extract_sqlite": check(f.get("extract_sqlite_rows_per_s"), lambda v: v >= 1_000_000),
        "extract_postgresql": check(f.get("extract_postgresql_rows_per_s"), lambda v: v >= 300_000),
        "peak_rss": check(f.get("pipeline_peak_rss_mib") if big else None, lambda v: v <= 2 * 1024),
        "night": check(f.get("night_s"), lambda v: v <= 60),
        "chart_p95": check(f.get("chart_p95_ms") if big else None, lambda v: v <= 250),
        "load_errors": check(load.get("errors"), lambda v: v == 0),
    }


def _fmt(v: Any, spec: str = ",.1f", unit: str = "") -> str:
    return "-" if v is None else f"{v:{spec}}{unit}"


def report_lines(results: list[dict[str, Any]], load: tuple[float, float, float] | None = None) -> list[str]:
    """The table `python -m bench` prints: one column per journal size."""
    sizes = [r["figures"] for r in results]
    rows: list[tuple[str, list[str]]] = [
        ("journal rows (history)", [f"{f['rows']:,}" for f in sizes]),
        ("generate journal", [_fmt(f["generate_s"], unit=" s") for f in sizes]),
        ("extract SQLite rows/s", [_fmt(f["extract_sqlite_rows_per_s"], ",.0f") for f in sizes]),
        ("extract PostgreSQL rows/s", [_fmt(f["extract_postgresql_rows_per_s"], ",.0f") for f in sizes]),
        ("full build (end to end)", [_fmt(f["full_build_s"], unit=" s") for f in sizes]),
        ("night: +1 day (end to end)", [_fmt(f["night_s"], unit=" s") for f in sizes]),
        ("floor: bare DuckDB script", [_fmt(f["floor_s"], unit=" s") for f in sizes]),
        ("peer: pandas end to end", [_fmt(f["pandas_s"], unit=" s") for f in sizes]),
        ("build / floor", [_fmt(f["build_vs_floor"], ".2f", " x") for f in sizes]),
        ("pandas / build", [_fmt(f["pandas_vs_build"], ".2f", " x") for f in sizes]),
        ("pandas / floor", [_fmt(f["pandas_vs_floor"], ".2f", " x") for f in sizes]),
        ("peak RSS pipeline", [_fmt(f["pipeline_peak_rss_mib"], ",.0f", " MiB") for f in sizes]),
        (
            "chart p50 / p95",
            [f"{_fmt(f['chart_p50_ms'], ',.0f')} / {_fmt(f['chart_p95_ms'], ',.0f')} ms" for f in sizes],
        ),
        ("worst chart p95", [_fmt(f["chart_worst_p95_ms"], ",.0f", " ms") for f in sizes]),
        (
            "chart again: p50 / p95, cached",
            [
                f"{_fmt(c.get('p50_ms'), ',.0f')} / {_fmt(c.get('p95_ms'), ',.0f')} ms, "
                f"{c.get('from_cache', '-')}/{c.get('samples', '-')}"
                for c in (f.get("chart_cached") or {} for f in sizes)
            ],
        ),
        (
            "load: requests / errors",
            [f"{(f['load'] or {}).get('requests', '-')} / {(f['load'] or {}).get('errors', '-')}" for f in sizes],
        ),
        ("load p95", [_fmt((f["load"] or {}).get("p95_ms"), ",.0f", " ms") for f in sizes]),
    ]
    width = max(len(k) for k, _ in rows) + 2
    cols = [max(14, *(len(v[i]) + 2 for _, v in rows)) for i in range(len(sizes))]
    lines = ["".join([f"{k:<{width}}", *(f"{c:>{w}}" for c, w in zip(v, cols, strict=True))]) for k, v in rows]
    lines.append("")
    lines.append(
        "peak RSS per stage (MiB): "
        + "; ".join(f"{f['rows']:,}: " + ", ".join(f"{k} {v:,}" for k, v in f["peak_rss_mib"].items()) for f in sizes)
    )
    for f in sizes:
        for key, what in (("build_steps_s", "full build"), ("night_steps_s", "night")):
            if f.get(key):
                steps = ", ".join(f"{k} {v:.1f}" for k, v in f[key].items())
                lines.append(f"{what} steps at {f['rows']:,} rows (s): {steps}")
        for run, parts in (f.get("publish_parts_s") or {}).items():
            if parts:
                text = ", ".join(f"{k} {v:.1f}" for k, v in parts.items())
                lines.append(f"publish at {f['rows']:,} rows, {run.replace('_', ' ')} (s): {text}")
    lines.append("")
    lines.append("goals:")
    for key, text in GOALS.items():
        marks = []
        for f in sizes:
            v = f["goals"].get(key)
            marks.append("n/a" if v is None else ("met" if v else "MISSED"))
        lines.append(f"  {text:<45} " + "  ".join(f"{m:>8}" for m in marks))
    if load:
        lines.append("")
        lines.append(
            f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (2 cores shared: figures inflate)"
        )
    return lines


def run_bench(sizes: list[int], opts: BenchOptions, night_day: date | None = None) -> tuple[list[dict[str, Any]], Path]:
    """Run every size, print the table, write the JSON. Returns the results and the JSON path."""
    from callsight.defs.nightly import yesterday

    night = night_day or yesterday("Europe/Berlin")
    started = datetime.now(UTC)
    results = []
    loads = []
    for rows in sizes:
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
