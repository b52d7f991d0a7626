"""Chart latency through Superset's chart-data API, and the same charts under load while publishes swap
the served file.

Every chart of the asset YAML (superset/assets/charts) becomes the query context the dashboard would
send: its metrics, its x axis (with the time grain), groupby or raw columns, ordering and row limit
(a table with server pagination: its first page and the row count, as two queries of one request),
filtered to the dashboards' default period (the last 30 days of data; pop_kpi charts also ask for the
previous period). Requests go to `POST /api/v1/chart/data` as a logged-in admin of the org directory
with `force: true`, so every request runs its SQL on the served DuckDB file (no result cache). Then
the same without `force`, as a dashboard opened again asks: answered from Superset's data cache (kept
per published version of the warehouse, see superset/served_cache.py).
"""

from __future__ import annotations

import json
import random
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import requests

from bench.measure import percentile
from callsight.bi.api import SupersetClient
from callsight.bi.assets import load_assets, read_assets
from callsight.bi.translate import originals


@dataclass(frozen=True)
class ChartQuery:
    name: str
    table: str
    viz_type: str
    queries: tuple[dict[str, Any], ...]

    def context(self, dataset_id: int, force: bool = True) -> dict[str, Any]:
        return {
            "datasource": {"id": dataset_id, "type": "table"},
            "force": force,
            "queries": list(self.queries),
            "result_format": "json",
            "result_type": "full",
        }


def _period(first: date, last: date) -> str:
    return f"{first.isoformat()} : {(last + timedelta(days=1)).isoformat()}"


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def server_paginated(query: dict[str, Any], page_length: int) -> tuple[dict[str, Any], ...]:
    """Pure: what the dashboard sends for a table with server pagination (Superset 6.1's table plugin,
    buildQuery): the first page (row_limit = page length, capped by the chart's row limit, offset 0) and
    a row count of at most the chart's row limit (is_rowcount: SELECT COUNT(*) over the limited query)."""
    limit = int(query["row_limit"])
    page = {**query, "row_limit": min(page_length, limit) if limit > 0 else page_length, "row_offset": 0}
    count = {**query, "row_limit": limit, "row_offset": 0, "is_rowcount": True}
    return page, count


def dashboard_charts(slugs: tuple[str, ...], assets: dict[str, dict] | None = None) -> frozenset[str]:
    """Pure given `assets`: the names of the charts laid out on the dashboards of `slugs` (issue #31's goal
    is about the four dashboards; the weekly CSV report's chart and the admins' dashboard are not on them).
    `assets`: as written (read_assets), with each dashboard's layout."""
    assets = read_assets() if assets is None else assets
    return frozenset(
        cell["chart"]
        for name, d in assets.items()
        if name.startswith("dashboards/") and d.get("slug") in slugs
        for row in d.get("layout", [])
        for cell in row
    )


def chart_queries(newest_day: date, days: int = 30, assets: dict[str, dict] | None = None) -> list[ChartQuery]:
    """One query context per chart of `assets` (default: the asset YAML without the English twins, which
    ask the same queries), for the `days` days up to newest_day."""
    assets = originals(load_assets()) if assets is None else assets
    tables = {c["uuid"]: c["table_name"] for n, c in assets.items() if n.startswith("datasets/")}
    current = _period(newest_day - timedelta(days=days - 1), newest_day)
    previous = _period(newest_day - timedelta(days=2 * days - 1), newest_day - timedelta(days=days))
    out = []
    for name, chart in sorted(assets.items()):
        if not name.startswith("charts/"):
            continue
        p = chart["params"]
        metrics = _as_list(p.get("metrics")) or _as_list(p.get("metric"))
        metrics += [m for m in _as_list(p.get("percent_metrics")) if m not in metrics]
        columns: list[Any] = []
        if p.get("x_axis"):
            if p.get("time_grain_sqla") or chart["viz_type"].startswith("echarts_timeseries"):
                columns.append(
                    {
                        "columnType": "BASE_AXIS",
                        "expressionType": "SQL",
                        "sqlExpression": p["x_axis"],
                        "label": p["x_axis"],
                        "timeGrain": p.get("time_grain_sqla", "P1D"),
                    }
                )
            else:
                columns.append(p["x_axis"])
        columns += _as_list(p.get("groupby"))
        orderby: list[Any] = []
        if p.get("query_mode") == "raw":
            columns, metrics = _as_list(p.get("all_columns")), []
            orderby = [json.loads(o) for o in _as_list(p.get("order_by_cols"))]
        elif p.get("timeseries_limit_metric"):
            orderby = [[p["timeseries_limit_metric"], not p.get("order_desc", True)]]
        elif chart["viz_type"] == "table" and metrics:
            orderby = [[metrics[0], False]]  # an aggregate table without a sort metric: its first, descending
        base = {
            "columns": columns,
            "orderby": orderby,
            "row_limit": int(p.get("row_limit") or 10000),
            "extras": {"having": "", "where": ""},
        }
        if p.get("query_mode") != "raw":
            # A raw-records table sends no metrics at all (Superset's frontend leaves them out): with
            # an empty list Superset would GROUP BY every column of the call list.
            base["metrics"] = metrics
        periods = [current, previous] if chart["viz_type"] == "pop_kpi" else [current]
        queries = tuple(
            {**base, "filters": [{"col": "call_date", "op": "TEMPORAL_RANGE", "val": period}]} for period in periods
        )
        if chart["viz_type"] == "table" and p.get("server_pagination"):
            queries = server_paginated(queries[0], int(p.get("server_page_length") or 10))
        out.append(ChartQuery(chart["slice_name"], tables[chart["dataset_uuid"]], chart["viz_type"], queries))
    return out


def dataset_ids(client: SupersetClient) -> dict[str, int]:
    return {d["table_name"]: d["id"] for d in client.list_all("dataset", columns=("id", "table_name"))}


def fetch(
    client: SupersetClient, chart: ChartQuery, ids: dict[str, int], force: bool = True
) -> tuple[float, int, bool]:
    """One chart-data request: seconds, rows of the first query, and whether every query of it was
    answered from the cache. Raises on any error."""
    t0 = time.perf_counter()
    data = client.chart_data(chart.context(ids[chart.table], force))
    seconds = time.perf_counter() - t0
    results = data["result"]
    for r in results:
        if r.get("error") or r.get("status") not in (None, "success"):
            raise RuntimeError(f"{chart.name}: {r.get('error') or r.get('status')}")
    rows = int(results[0].get("rowcount", len(results[0].get("data", []))))
    return seconds, rows, all(r.get("is_cached") for r in results)


@dataclass
class ChartLatency:
    name: str
    viz_type: str
    rows: int
    seconds: list[float] = field(default_factory=list)
    from_cache: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "chart": self.name,
            "viz_type": self.viz_type,
            "rows": self.rows,
            "samples": len(self.seconds),
            "from_cache": self.from_cache,
            "p50_ms": round(percentile(self.seconds, 50) * 1000, 1),
            "p95_ms": round(percentile(self.seconds, 95) * 1000, 1),
            "each_ms": [round(s * 1000) for s in self.seconds],  # in order: where the slow ones fall
        }


def measure_latency(
    client: SupersetClient, charts: list[ChartQuery], samples: int, force: bool = True
) -> list[ChartLatency]:
    """Each chart once to warm up, then `samples` timed requests, one after another. `force=False`:
    as a dashboard opened again asks (from the cache, where the server has the result)."""
    ids = dataset_ids(client)
    out = []
    for chart in charts:
        _, rows, _ = fetch(client, chart, ids, force)
        lat = ChartLatency(chart.name, chart.viz_type, rows)
        for _ in range(samples):
            seconds, _, cached = fetch(client, chart, ids, force)
            lat.seconds.append(seconds)
            lat.from_cache += cached
        out.append(lat)
    return out


@dataclass
class LoadResult:
    users: int
    seconds: float
    requests: int
    errors: int
    publishes: int
    latencies: list[float]
    error_samples: list[str]

    def summary(self) -> dict[str, Any]:
        return {
            "users": self.users,
            "seconds": round(self.seconds, 1),
            "requests": self.requests,
            "errors": self.errors,
            "publishes": self.publishes,
            "p50_ms": round(percentile(self.latencies, 50) * 1000, 1) if self.latencies else None,
            "p95_ms": round(percentile(self.latencies, 95) * 1000, 1) if self.latencies else None,
            "error_samples": self.error_samples[:5],
        }


def republish_copy(served: Path) -> None:
    """A publish as the nightly run does it: a complete build file renamed over the served one."""
    from callsight.publish.builds import publish

    build = served.with_name("bench-build.duckdb")
    shutil.copyfile(served, build)
    publish(build, served, keep=1)


def run_load(
    login: Callable[[], SupersetClient],
    charts: list[ChartQuery],
    *,
    users: int,
    seconds: float,
    publish_every: float,
    publish: Callable[[], None],
) -> LoadResult:
    """`users` threads request random charts for `seconds`; meanwhile the served file is republished
    every `publish_every` seconds. Every failed request (HTTP error, chart error, exception) counts."""
    ids = dataset_ids(login())
    clients = [login() for _ in range(users)]
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []
    count = [0]
    stop_at = time.monotonic() + seconds

    def user(client: SupersetClient, seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < stop_at:
            chart = rng.choice(charts)
            try:
                took, _, _ = fetch(client, chart, ids)
                with lock:
                    latencies.append(took)
                    count[0] += 1
            except (requests.RequestException, RuntimeError, KeyError, ValueError) as exc:
                with lock:
                    errors.append(f"{chart.name}: {type(exc).__name__}: {str(exc)[:200]}")
                    count[0] += 1

    t0 = time.monotonic()
    threads = [threading.Thread(target=user, args=(c, i), daemon=True) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    publishes = 0
    while time.monotonic() < stop_at:
        time.sleep(min(publish_every, max(0.0, stop_at - time.monotonic())))
        if time.monotonic() < stop_at:
            publish()
            publishes += 1
    for t in threads:
        t.join(timeout=300)
    return LoadResult(users, time.monotonic() - t0, count[0], len(errors), publishes, latencies, errors)
