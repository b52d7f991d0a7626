"""What `python -m bench` reports: headline figures and goal verdicts per journal size from the stages'
results, and the table it prints (one column per size)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bench.measure import StageResult

# Goals of issues #10 and #31 (not timed tests: the benchmark reports whether they are met).
GOALS: dict[str, str] = {
    "build_vs_floor": "full build <= 1.5 x bare-DuckDB floor",
    "pandas_vs_build": "pandas peer >= 3 x full build (end to end)",
    "extract_sqlite": "extract SQLite >= 1,000,000 rows/s",
    "extract_postgresql": "extract PostgreSQL >= 300,000 rows/s",
    "peak_rss": "peak RSS <= 2 GiB at 10M rows",
    "night": "incremental night <= 60 s",
    "chart_p95": "chart p95 <= 250 ms at 10M rows",
    "every_chart_p95": "every dashboard chart's p95 <= 250 ms (issue #31)",
    "load_errors": "0 errors under load",
    "team_dashboard_p95": "team: dashboard loaded p95 <= 1.5 s, 0 errors",
}


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
    f["tree_peak_rss_mib"] = {name: round(s.tree_peak_rss_mib) for name, s in stages.items() if s.tree_peak_rss_mib}
    pipeline = [
        stages[n].peak_rss_mib for n in ("extract_sqlite", "extract_postgresql", "full_build", "night") if n in stages
    ]
    f["pipeline_peak_rss_mib"] = round(max(pipeline)) if pipeline else None
    charts = ok("charts")
    f["chart_p50_ms"] = charts.detail.get("p50_ms") if charts else None
    f["chart_p95_ms"] = charts.detail.get("p95_ms") if charts else None
    f["chart_worst_p95_ms"] = charts.detail.get("worst_chart_p95_ms") if charts else None
    f["dashboard_chart_worst_p95_ms"] = charts.detail.get("worst_dashboard_chart_p95_ms") if charts else None
    f["load"] = charts.detail.get("load") if charts else None
    f["chart_cached"] = charts.detail.get("cached") if charts else None
    team = ok("team")
    f["team"] = {k: v for k, v in team.detail.items() if k != "per_dashboard"} if team else None
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
        "every_chart_p95": check(f.get("dashboard_chart_worst_p95_ms"), lambda v: v <= 250),
        "load_errors": check(load.get("errors"), lambda v: v == 0),
        "team_dashboard_p95": check(
            team_p95_and_errors(f.get("team")), lambda v: v[0] is not None and v[0] <= 1500 and v[1] == 0
        ),
    }


def team_p95_and_errors(team: Mapping[str, Any] | None) -> tuple[float | None, int] | None:
    return None if not team else ((team.get("dashboard") or {}).get("p95_ms"), int(team.get("errors", 0)))


def _fmt(v: Any, spec: str = ",.1f", unit: str = "") -> str:
    return "-" if v is None else f"{v:{spec}}{unit}"


def _ms_pair(part: Mapping[str, Any] | None, count: bool = False) -> str:
    p = part or {}
    text = f"{_fmt(_s(p.get('p50_ms')), ',.2f')} / {_fmt(_s(p.get('p95_ms')), ',.2f')} s"
    return text + (f" ({p.get('n', 0)})" if count else "")


def _s(ms: float | None) -> float | None:
    return None if ms is None else ms / 1000


def team_rows(sizes: list[Mapping[str, Any]]) -> list[tuple[str, list[str]]]:
    """The team load's rows of the table, beside the hammer's (issue #31)."""
    teams = [f.get("team") or {} for f in sizes]
    return [
        (
            "team: users / opens / errors",
            [f"{t.get('users', '-')} / {t.get('opens', '-')} / {t.get('errors', '-')}" for t in teams],
        ),
        ("team: dashboard loaded p50 / p95", [_ms_pair(t.get("dashboard")) for t in teams]),
        (
            "team: dashboard, opened before the publish (n)",
            [_ms_pair(t.get("dashboard_before_publish"), True) for t in teams],
        ),
        (
            "team: dashboard, opened after the publish (n)",
            [_ms_pair(t.get("dashboard_after_publish"), True) for t in teams],
        ),
        (
            "team: dashboard, opened after the first minute (n)",
            [_ms_pair(t.get("dashboard_after_arrival"), True) for t in teams],
        ),
        ("team: chart p50 / p95", [_ms_pair(t.get("chart")) for t in teams]),
        ("team: first open after publish (n)", [_ms_pair(t.get("first_after_publish"), True) for t in teams]),
        ("team: repeat open (n)", [_ms_pair(t.get("repeat_open"), True) for t in teams]),
        ("team: Superset peak RSS", [_fmt(t.get("superset_peak_rss_mib"), ",.0f", " MiB") for t in teams]),
        ("team: slowest open (started at) / chart", [_slowest(t.get("slowest")) for t in teams]),
        ("team: gunicorn workers x threads", [_web(t.get("web")) for t in teams]),
        ("team: warm-up: night before / new build / after swap", [_warm_up(t) for t in teams]),
        ("team: the swap waited for the build's warm-up", [_fmt(t.get("publish_s"), ",.0f", " s") for t in teams]),
    ]


def _slowest(s: Mapping[str, Any] | None) -> str:
    if not s:
        return "-"
    return f"{s['open_ms'] / 1000:.2f} s (+{s['open_started_s']:.0f} s) / {s['chart_ms'] / 1000:.2f} s"


def _web(web: Mapping[str, int] | None) -> str:
    return f"{web['workers']} x {web['threads']}" if web else "-"


def _warm_up(team: Mapping[str, Any]) -> str:
    """The warm-ups of the run (the night before the team; the new build, beside the team until its swap;
    after the swap): sets warmed, seconds; why not, if none."""
    if not team:
        return "-"
    if not team.get("shared_cache"):
        return "off (no shared cache)"
    ups = team.get("warm_ups") or []
    return f"{ups[0]['sets']} sets: " + " / ".join(f"{u['s']:.0f} s" for u in ups) if ups else "off"


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
        (
            "worst chart p95, the four dashboards",
            [_fmt(f.get("dashboard_chart_worst_p95_ms"), ",.0f", " ms") for f in sizes],
        ),
        ("worst chart p95, all (with the reports')", [_fmt(f["chart_worst_p95_ms"], ",.0f", " ms") for f in sizes]),
        (
            "chart again: p50 / p95, cached",
            [
                f"{_fmt(c.get('p50_ms'), ',.0f')} / {_fmt(c.get('p95_ms'), ',.0f')} ms, "
                f"{c.get('from_cache', '-')}/{c.get('samples', '-')}"
                for c in (f.get("chart_cached") or {} for f in sizes)
            ],
        ),
        (
            "hammer (no pause): requests / errors",
            [f"{(f['load'] or {}).get('requests', '-')} / {(f['load'] or {}).get('errors', '-')}" for f in sizes],
        ),
        ("hammer p95", [_fmt((f["load"] or {}).get("p95_ms"), ",.0f", " ms") for f in sizes]),
        *team_rows(sizes),
    ]
    width = max(len(k) for k, _ in rows) + 2
    cols = [max(14, *(len(v[i]) + 2 for _, v in rows)) for i in range(len(sizes))]
    lines = ["".join([f"{k:<{width}}", *(f"{c:>{w}}" for c, w in zip(v, cols, strict=True))]) for k, v in rows]
    lines.append("")
    lines.append(
        "peak RSS per stage (MiB), largest process: "
        + "; ".join(f"{f['rows']:,}: " + ", ".join(f"{k} {v:,}" for k, v in f["peak_rss_mib"].items()) for f in sizes)
    )
    trees = [f for f in sizes if f.get("tree_peak_rss_mib")]
    if trees:
        lines.append(
            "peak RSS per stage (MiB), whole process tree (sampled every 0.5 s): "
            + "; ".join(
                f"{f['rows']:,}: " + ", ".join(f"{k} {v:,}" for k, v in f["tree_peak_rss_mib"].items()) for f in trees
            )
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
