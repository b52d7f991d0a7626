"""The benchmark's stages, each run in a child process of its own by the runner (measure.py):

    python -m bench.stages <stage> '<json args>' <result.json>

A stage does one thing (generate, load PostgreSQL, extract, a nightly run, the floor, the pandas peer)
and writes what it measured inside itself as JSON; the runner adds wall time and peak RSS.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.measure import PEAK_KEY


def stage_generate(args: dict[str, Any]) -> dict[str, Any]:
    from bench.generator import generate_journal

    j = generate_journal(
        Path(args["out"]),
        rows=args["rows"],
        night_rows=args["night_rows"],
        rows_per_day=args["rows_per_day"],
        night_day=date.fromisoformat(args["night_day"]),
        users=args["users"],
        seed=args["seed"],
    )
    return {
        "sqlite": str(j.sqlite_path),
        "directory": str(j.directory_path),
        "policy": str(j.policy_path),
        "history_rows": j.history_rows,
        "night_rows": j.night_rows,
        "first_day": j.first_day.isoformat(),
        "last_history_day": j.last_history_day.isoformat(),
        "night_day": j.night_day.isoformat(),
    }


def stage_postgres(args: dict[str, Any]) -> dict[str, Any]:
    from bench.generator import write_postgres

    return {"rows": write_postgres(Path(args["sqlite"]), args["conninfo"], args.get("table", "journal"))}


def stage_extract(args: dict[str, Any]) -> dict[str, Any]:
    """One extract of the history window into a fresh raw store (no Dagster): the extract's own rows/s."""
    from callsight.extract.run import extract
    from callsight.journal.sources import Source, Window
    from callsight.site.directory import load_directory
    from callsight.site.policy import load_policy

    first, last = date.fromisoformat(args["first_day"]), date.fromisoformat(args["last_day"])
    window = Window(datetime.combine(first, datetime.min.time()), datetime.combine(last, datetime.min.time()))
    window = Window(window.start, window.end + timedelta(days=1))
    raw = Path(args["raw"])
    raw.unlink(missing_ok=True)
    stats = extract(
        Source(args["url"], args.get("table", "journal")),
        raw,
        window,
        load_directory(Path(args["directory"])),
        load_policy(Path(args["policy"])),
        "bench",
    )
    return {
        "rows": stats.source_rows,
        "loaded": stats.loaded_rows,
        "quarantined": stats.quarantined_rows,
        "seconds": stats.seconds,
        "rows_per_second": stats.rows_per_second,
        "reader": stats.reader,
    }


def stage_run(args: dict[str, Any]) -> dict[str, Any]:
    """A nightly run (Dagster, in-process) over first..last, end to end: extract, checks, dbt, publish.
    The environment (CALLSIGHT_HOME, CALLSIGHT_JOURNAL_URL, ...) comes from the runner."""
    import dagster as dg

    from callsight.defs.nightly import run_nightly
    from callsight.site.settings import Settings

    settings = Settings.from_env()
    t0 = time.perf_counter()
    result = run_nightly(
        settings, date.fromisoformat(args["first_day"]), date.fromisoformat(args["last_day"]), log_level="WARNING"
    )
    seconds = time.perf_counter() - t0
    with dg.DagsterInstance.get() as instance:
        steps, publish = run_timings(instance, result.run_id)
    if not result.success:
        raise RuntimeError(f"nightly run failed: {result.failure}")
    return {"run_id": result.run_id, "seconds": seconds, "steps": steps, "publish": publish}


def run_timings(instance: Any, run_id: str) -> tuple[dict[str, float], dict[str, float]]:
    """Seconds per step of a Dagster run, and of the parts of its publish (prune, compact, warm, swap: the
    metadata of `published_warehouse`)."""
    import dagster as dg

    steps: dict[str, float] = {}
    for s in instance.get_run_step_stats(run_id):
        if s.start_time and s.end_time:
            steps[s.step_key] = round(s.end_time - s.start_time, 2)
    publish: dict[str, float] = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        event = entry.dagster_event
        if event and event.asset_key and event.asset_key.to_user_string() == "published_warehouse":
            metadata = event.step_materialization_data.materialization.metadata
            publish = {k.removeprefix("seconds_"): v.value for k, v in metadata.items() if k.startswith("seconds_")}
    return steps, publish


def stage_floor(args: dict[str, Any]) -> dict[str, Any]:
    from bench.floor import run_floor
    from callsight.site.directory import load_directory
    from callsight.site.policy import load_policy

    r = run_floor(
        Path(args["sqlite"]),
        Path(args["out"]),
        load_policy(Path(args["policy"])),
        load_directory(Path(args["directory"])),
        date.fromisoformat(args["before"]),
    )
    return {"rows": r.rows, "groups": r.groups, "seconds": r.seconds}


def stage_pandas(args: dict[str, Any]) -> dict[str, Any]:
    from bench.peer_pandas import run_pandas
    from callsight.site.directory import load_directory
    from callsight.site.policy import load_policy

    r = run_pandas(
        args["url"],
        Path(args["out"]),
        load_policy(Path(args["policy"])),
        load_directory(Path(args["directory"])),
        date.fromisoformat(args["before"]),
    )
    return {"rows": r.rows, "groups": r.groups, "seconds": r.seconds}


def stage_charts(args: dict[str, Any]) -> dict[str, Any]:
    """Superset on the served warehouse of the bench home: p50/p95 of every chart, then load."""
    from bench.charts import chart_queries, dashboard_charts, measure_latency, republish_copy, run_load
    from bench.superset_site import bench_superset
    from bench.team import DASHBOARDS
    from callsight.bi.api import SupersetClient
    from callsight.site.settings import Settings

    settings = Settings.from_env()
    with bench_superset(settings, *args["web"]) as site:
        admin = site.directory.admins[0]

        def login() -> SupersetClient:
            return SupersetClient(site.url, timeout=120).login(admin, site.user_password)

        charts = chart_queries(date.fromisoformat(args["newest_day"]))
        client = login()
        latencies = measure_latency(client, charts, args["samples"])
        cached = measure_latency(client, charts, args["samples"], force=False)
        load = run_load(
            login,
            charts,
            users=args["users"],
            seconds=args["load_seconds"],
            publish_every=args["publish_every"],
            publish=lambda: republish_copy(settings.served_db),
        )
    every = [s for lat in latencies for s in lat.seconds]
    on_dashboards = dashboard_charts(DASHBOARDS)  # the asset YAML read once
    from bench.measure import percentile

    return {
        "charts": [lat.summary() for lat in latencies],
        "p50_ms": round(percentile(every, 50) * 1000, 1),
        "p95_ms": round(percentile(every, 95) * 1000, 1),
        "worst_chart_p95_ms": max(lat.summary()["p95_ms"] for lat in latencies),
        # the goal of issue #31: the charts of the four dashboards (not the CSV report's, not the admins' page)
        "worst_dashboard_chart_p95_ms": max(
            (lat.summary()["p95_ms"] for lat in latencies if lat.name in on_dashboards), default=None
        ),
        "cached": {
            "charts": [lat.summary() for lat in cached],
            "p50_ms": round(percentile([s for lat in cached for s in lat.seconds], 50) * 1000, 1),
            "p95_ms": round(percentile([s for lat in cached for s in lat.seconds], 95) * 1000, 1),
            "from_cache": sum(lat.from_cache for lat in cached),
            "samples": sum(len(lat.seconds) for lat in cached),
        },
        "load": load.summary(),
        "web": dict(zip(("workers", "threads"), args["web"], strict=True)),
    }


def stage_team(args: dict[str, Any]) -> dict[str, Any]:
    """The team load (issue #31): capture each dashboard's chart-data requests from a real browser as an
    admin, check them, then replay them as a team of directory users (team.py) with a publish half-way."""
    import random
    import shutil
    import threading

    from bench.measure import TreeSampler
    from bench.superset_site import bench_superset
    from bench.team import DASHBOARDS, TeamOptions, pick_team, run_team
    from callsight.bi.api import SupersetClient
    from callsight.bi.capture import capture_dashboards, verify_capture
    from callsight.bi.warm_cache import warm_cache
    from callsight.publish.builds import publish as publish_build
    from callsight.site.settings import Settings

    settings = Settings.from_env()
    opts = TeamOptions(args["users"], args["minutes"], tuple(args["think"]), seed=args.get("seed", 1))
    with bench_superset(settings, *args["web"], log_name="superset-team.log") as site:

        def login(username: str) -> SupersetClient:
            return SupersetClient(site.url, timeout=120).login(username, site.user_password)

        admin = site.directory.admins[0]
        captured = capture_dashboards(site.url, admin, site.user_password, DASHBOARDS)
        client = login(admin)
        chart_ids = {s: [c["id"] for c in client.get(f"/api/v1/dashboard/{s}/charts")["result"]] for s in DASHBOARDS}
        problems = [p for s in DASHBOARDS for p in verify_capture(s, captured[s], chart_ids[s])]
        if problems:
            raise RuntimeError("capture of the dashboards' requests: " + "; ".join(problems))
        if args.get("capture_out"):
            doc = {s: [c.to_json() for c in reqs] for s, reqs in captured.items()}
            Path(args["capture_out"]).write_text(json.dumps(doc, indent=1), encoding="utf-8")
        team = pick_team(site.directory, opts.users, random.Random(opts.seed))
        warmups: list[dict[str, Any]] = []

        def warm(when: str, candidate: bool = False) -> None:
            if args.get("warm", True) and site.env:
                r = warm_cache(site.warm_settings(), site.url, site.admin_password, candidate=candidate)
                warmups.append(
                    {"when": when, "sets": len(r.users), "computed": r.computed, "cached": r.cached}
                    | {"failed": r.failed, "answers": r.answers, "s": round(r.seconds, 1)}
                )

        # A publish by day, as the night does it (defs/publish/assets.py): the new build's results are
        # computed into the cache beside the team, from its start, then the build is swapped in half-way
        # (waiting for that warm-up if it is not done) and the warm-up after provisioning follows, which
        # finds them cached. The build here is a copy of the served file: another file, another version.
        build = settings.build_db
        build.parent.mkdir(parents=True, exist_ok=True)
        background: list[threading.Thread] = []

        def publish() -> None:
            background[0].join()
            publish_build(build, settings.served_db, keep=1)
            background.append(threading.Thread(target=warm, args=("after the publish",), daemon=True))
            background[-1].start()

        warm("before the team")  # the night before the team arrives
        shutil.copyfile(settings.served_db, build)
        background.append(threading.Thread(target=warm, args=("the build, before its publish", True), daemon=True))
        superset_memory = TreeSampler(site.pid)  # gunicorn and its workers during the load (no browser)
        superset_memory.start()
        try:
            background[0].start()
            result = run_team(login, site.url, team, captured, opts, publish)
            for thread in background:
                thread.join()
        finally:
            result_peak = round(superset_memory.stop())
    result["superset_peak_rss_mib"] = result_peak
    result["web"] = dict(zip(("workers", "threads"), args["web"], strict=True))
    result["shared_cache"] = bool(site.env)
    result["warm_ups"] = warmups
    result["capture"] = {
        s: {
            "charts": len(chart_ids[s]),
            "chart_requests": sum(1 for c in captured[s] if c.slice_id is not None),
            "filter_requests": sum(1 for c in captured[s] if c.slice_id is None),
            "queries": sum(c.queries for c in captured[s]),
            "force": sorted({bool(c.body.get("force")) for c in captured[s]}),
        }
        for s in DASHBOARDS
    }
    return result


STAGES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "generate": stage_generate,
    "postgres": stage_postgres,
    "extract": stage_extract,
    "run": stage_run,
    "floor": stage_floor,
    "pandas": stage_pandas,
    "charts": stage_charts,
    "team": stage_team,
}


def own_peak_rss_mib() -> float:
    """Peak RSS of this process (VmHWM: its own address space since exec) and of the children it waited
    for. The kernel's ru_maxrss of a child also counts the image of the parent it was forked from,
    which would add the runner's own size to every stage."""
    import resource

    hwm_kib = 0
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                hwm_kib = int(line.split()[1])
    children_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(hwm_kib, children_kib) / 1024


def main(argv: list[str]) -> int:
    stage, args, out = argv[0], json.loads(argv[1]), Path(argv[2])
    detail = STAGES[stage](args)
    detail[PEAK_KEY] = own_peak_rss_mib()
    out.write_text(json.dumps(detail, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
