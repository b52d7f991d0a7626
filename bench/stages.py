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
    """Seconds per step of a Dagster run, and of the parts of its publish (prune, compact, swap: the
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
    import secrets
    import socket

    from bench.charts import chart_queries, measure_latency, republish_copy, run_load
    from callsight.bi.api import SupersetClient
    from callsight.bi.runtime import SupersetEnv, stop, wait_healthy
    from callsight.cli.commands import provision
    from callsight.site.directory import load_directory
    from callsight.site.settings import Settings

    settings = Settings.from_env()
    admin_pw, user_pw = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    env = SupersetEnv(
        settings, secrets.token_urlsafe(32), extra_env=(("CALLSIGHT_AUTH_RATE_LIMIT", "1000 per second"),)
    )
    env.init_metadata(admin_pw)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = env.start_web(port=port, workers=args.get("workers", 2), log_name="superset-bench.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        provision(settings, url, admin_pw, user_pw)
        admin = load_directory(settings.effective_directory_path).admins[0]

        def login() -> SupersetClient:
            return SupersetClient(url, timeout=120).login(admin, user_pw)

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
    finally:
        stop(proc)
    every = [s for lat in latencies for s in lat.seconds]
    from bench.measure import percentile

    return {
        "charts": [lat.summary() for lat in latencies],
        "p50_ms": round(percentile(every, 50) * 1000, 1),
        "p95_ms": round(percentile(every, 95) * 1000, 1),
        "worst_chart_p95_ms": max(lat.summary()["p95_ms"] for lat in latencies),
        "cached": {
            "charts": [lat.summary() for lat in cached],
            "p50_ms": round(percentile([s for lat in cached for s in lat.seconds], 50) * 1000, 1),
            "p95_ms": round(percentile([s for lat in cached for s in lat.seconds], 95) * 1000, 1),
            "from_cache": sum(lat.from_cache for lat in cached),
            "samples": sum(len(lat.seconds) for lat in cached),
        },
        "load": load.summary(),
    }


STAGES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "generate": stage_generate,
    "postgres": stage_postgres,
    "extract": stage_extract,
    "run": stage_run,
    "floor": stage_floor,
    "pandas": stage_pandas,
    "charts": stage_charts,
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
