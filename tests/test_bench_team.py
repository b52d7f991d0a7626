"""The benchmark's team load (issue #31), its pure parts: the browser's six-at-a-time request scheduling,
dashboard-open percentiles, first open after a publish vs repeat, the team's roles, the parser of Chrome's
performance log (a sample recorded from a real capture of the Agenten dashboard), the capture's checks,
and the process tree's peak memory. The load itself is measured by `make bench`, never timed here."""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from urllib.parse import unquote

import pytest
from bench.__main__ import build_parser
from bench.measure import StageResult, run_child, tree_rss
from bench.report import GOALS, figures, report_lines
from bench.team import DashboardOpen, Timed, as_visit, classify, open_dashboard, pick_team, summarize

from callsight.bi.capture import CapturedRequest, parse_performance_log, verify_capture
from callsight.bi.runtime import WEB_THREADS, WEB_WORKERS
from callsight.demo.journal import build_org
from callsight.site.directory import Directory

FIXTURE = Path(__file__).parent / "fixtures" / "bench_performance_log.json"


# ---- six at a time ---------------------------------------------------------------------------------
def test_open_sends_six_at_a_time_in_order_and_ends_with_the_last_answer() -> None:
    sleeps = [0.4] * 6 + [0.1, 0.2]
    started: list[int] = []
    in_flight, most = [0], [0]
    lock = threading.Lock()

    def fetch(i: int) -> bool:
        with lock:
            started.append(i)
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        time.sleep(sleeps[i])
        with lock:
            in_flight[0] -= 1
        return i % 2 == 0

    with ThreadPoolExecutor(max_workers=6) as pool:
        start, seconds, timed = open_dashboard(fetch, range(8), pool)
    assert most[0] == 6, "six requests on the wire at once, never more"
    assert started.index(6) < started.index(7) and set(started[:6]) == set(range(6)), "sent in the order given"
    # The 7th and 8th wait for a free connection: they start when the first of the six has answered.
    assert all(t.start - start < 0.2 for t in timed[:6])
    assert timed[6].start - start >= 0.39 and timed[7].start - start >= 0.39
    assert 0.59 <= seconds < 1.5, seconds  # the 8th: 0.4 waiting + 0.2 answering
    assert [t.cached for t in timed] == [i % 2 == 0 for i in range(8)]
    assert all(abs(t.seconds - s) < 0.2 and t.seconds >= s for t, s in zip(timed, sleeps, strict=True))


def test_a_failing_request_is_an_error_of_the_open_not_of_the_user() -> None:
    def fetch(i: int) -> bool:
        if i == 1:
            raise RuntimeError("HTTP 500: boom")
        return False

    with ThreadPoolExecutor(max_workers=6) as pool:
        _, _, timed = open_dashboard(fetch, range(3), pool)
    assert [t.error for t in timed] == [None, "RuntimeError: HTTP 500: boom", None]
    assert DashboardOpen("u", "agenten", 0, 1, timed).errors == 1


# ---- first after publish, percentiles --------------------------------------------------------------
def _open(slug: str, start: float, seconds: float, charts: list[float] | None = None) -> DashboardOpen:
    reqs = [Timed(start, s, cached=s < 0.1) for s in (charts or [seconds])]
    return DashboardOpen("u", slug, start, seconds, reqs)


def test_first_open_of_each_dashboard_after_a_publish_and_repeats() -> None:
    opens = [
        _open("agenten", 105, 1),  # after the publish at 100, but not the first agenten: repeat
        _open("agenten", 10, 1),  # start
        _open("kunden", 30, 1),  # start
        _open("agenten", 20, 1),  # repeat
        _open("agenten", 101, 1),  # first after the publish
        _open("kunden", 150, 1),  # first after the publish
        _open("projekte", 99.9, 1),  # before the publish: start
    ]
    assert classify(opens, [100.0]) == ["repeat", "start", "start", "repeat", "first", "first", "start"]
    assert classify(opens, []) == ["repeat", "start", "start", "repeat", "repeat", "repeat", "start"]


def test_summary_percentiles_of_whole_opens_and_of_charts() -> None:
    opens = [_open("agenten", float(i), seconds=i / 10, charts=[0.05, i / 20]) for i in range(1, 21)]
    opens.append(_open("kunden", 200, 9.0, charts=[9.0]))
    opens[3].requests.append(Timed(3, 0.2, error="RuntimeError: chart 7: timeout"))
    s = summarize(opens, [150.0], users=3)
    assert s["users"] == 3 and s["opens"] == 21 and s["requests"] == 42
    assert s["errors"] == 1 and s["error_samples"] == ["RuntimeError: chart 7: timeout"]
    # Nearest rank over the 21 opens: 0.1 .. 2.0 s and 9.0 s.
    assert s["dashboard"] == {"n": 21, "p50_ms": 1100.0, "p95_ms": 2000.0}
    # Opens started before the publish at 150 s (the twenty of agenten) and after it (kunden, at 200 s).
    assert s["dashboard_before_publish"] == {"n": 20, "p50_ms": 1000.0, "p95_ms": 1900.0}
    assert s["dashboard_after_publish"] == {"n": 1, "p50_ms": 9000.0, "p95_ms": 9000.0}
    # After the first minute from the first open (at 1 s): none of agenten's (1..20 s), kunden's at 200 s.
    assert s["dashboard_after_arrival"] == {"n": 1, "p50_ms": 9000.0, "p95_ms": 9000.0}
    assert summarize(opens[5:], [])["dashboard_after_arrival"]["n"] == 1, "counted from the first open (6 s)"
    assert summarize([*opens[:20], _open("kunden", 61.0, 0.5)], [])["dashboard_after_arrival"] == {
        "n": 1,
        "p50_ms": 500.0,
        "p95_ms": 500.0,
    }
    # Charts: 21 answers of 0.05 s, then 0.1 .. 1.0 s, one of 0.2 s (the error) and 9.0 s: 42.
    assert s["chart"] == {"n": 42, "p50_ms": 50.0, "p95_ms": 950.0}
    assert s["first_after_publish"]["n"] == 1 and s["first_after_publish"]["seconds"] == [9.0]
    assert s["first_after_publish"]["p95_ms"] == 9000.0 and s["first_after_publish"]["requests_cached"] == "0/1"
    assert s["start_open"]["n"] == 1 and s["repeat_open"]["n"] == 19
    assert s["repeat_open"]["requests_cached"] == "19/39"  # the 0.05 s answers (of the 19 repeats) were cached
    assert s["per_dashboard"]["kunden"] == {"n": 1, "p50_ms": 9000.0, "p95_ms": 9000.0}
    assert s["publishes"] == 1
    # What the p95 leaves out: kunden's 9 s open, 199 s after the first open, and its 9 s request.
    assert s["slowest"] == {"open_ms": 9000.0, "open_started_s": 199.0, "open_slug": "kunden", "chart_ms": 9000.0}
    assert summarize([], [])["slowest"] is None
    json.dumps(s)


# ---- the team ---------------------------------------------------------------------------------------
def test_team_of_members_leaders_and_analysts_as_the_directory_has() -> None:
    _, raw = build_org(random.Random(1), 120)
    directory = Directory.model_validate(raw)
    team = pick_team(directory, 25, random.Random(3))
    roles = [r for _, r in team]
    assert len(team) == 25 and len({u for u, _ in team}) == 25
    assert roles.count("analyst") == 1 and 2 <= roles.count("leader") <= 4 and roles.count("member") >= 20
    assert not {u for u, _ in team} & set(directory.admins)
    leaders = {u for g in directory.groups for u in (*g.leaders, *g.deputies)}
    assert all((r == "leader") == (u in leaders) for u, r in team)
    assert pick_team(directory, 25, random.Random(3)) == team, "the same seed, the same team"


def test_a_small_directory_repeats_users() -> None:
    _, raw = build_org(random.Random(1), 8)
    directory = Directory.model_validate(raw)
    team = pick_team(directory, 25, random.Random(1))
    assert len(team) == 25 and {r for _, r in team} == {"leader", "member", "analyst"}
    assert len({u for u, _ in team}) == len(directory.users) - len(directory.admins)


# ---- the capture --------------------------------------------------------------------------------------
def test_parse_a_recorded_performance_log() -> None:
    doc = json.loads(FIXTURE.read_text(encoding="utf-8"))
    reqs = parse_performance_log(doc["entries"])
    assert [r.slice_id for r in reqs] == doc["expected_slice_ids"]
    assert all(r.status == 200 for r in reqs)
    assert all(r.path.startswith("/api/v1/chart/data") for r in reqs)
    charts = [r for r in reqs if r.slice_id is not None]
    assert all(f'form_data={{"slice_id":{r.slice_id}}}' in unquote(r.path) for r in charts)
    assert {r.body.get("force") for r in reqs} == {False}, "force as the browser sent it"
    assert all(r.queries >= 1 and r.body["datasource"]["type"] == "table" for r in reqs)
    assert sum(r.queries for r in charts) > len(charts), "a chart that sends two queries"
    assert not verify_capture("agenten", reqs, doc["dashboard_chart_ids"])
    assert CapturedRequest.from_json(json.loads(json.dumps(reqs[0].to_json()))) == reqs[0]


def test_each_visit_sends_its_own_native_filters_key_and_nothing_else_changes() -> None:
    doc = json.loads(FIXTURE.read_text(encoding="utf-8"))
    reqs = parse_performance_log(doc["entries"])
    before = json.dumps([r.to_json() for r in reqs], sort_keys=True)
    one, two = as_visit(reqs, "visit-1"), as_visit(reqs, "visit-2")
    assert json.dumps([r.to_json() for r in reqs], sort_keys=True) == before, "the capture is left as it was"
    assert len(one) == len(reqs) and any(r.slice_id is None for r in reqs) and any(r.slice_id for r in reqs)
    for orig, a, b in zip(reqs, one, two, strict=True):
        if orig.slice_id is None:  # a native filter's values: the visit's own key
            assert a.body["form_data"]["url_params"] == {"native_filters_key": "visit-1"}
            assert b.body["form_data"]["url_params"] == {"native_filters_key": "visit-2"}
        for r in (a, b):  # all but the key as captured
            assert {**r.body, "form_data": {**r.body["form_data"], "url_params": {}}} == orig.body
            assert (r.path, r.slice_id, r.status) == (orig.path, orig.slice_id, orig.status)
    chart = next(r for r in reqs if r.slice_id)
    assert as_visit([chart], "visit-1") == [chart], "a chart captured without a key is sent as captured"
    keyed = replace(chart, body={**chart.body, "form_data": {**chart.body["form_data"], "url_params": {"a": 1}}})
    keyed.body["form_data"]["url_params"]["native_filters_key"] = "captured"
    (again,) = as_visit([keyed], "visit-3")
    assert again.body["form_data"]["url_params"] == {"a": 1, "native_filters_key": "visit-3"}
    plain = CapturedRequest("/api/v1/chart/data", {"queries": [{}]}, None, 200)
    assert as_visit([plain], "visit-1") == [plain], "a request without the dashboard's URL parameters"


def _event(method: str, **params: object) -> dict:
    return {"message": json.dumps({"message": {"method": method, "params": params}}), "level": "INFO"}


def test_a_body_left_out_of_the_log_is_asked_for_and_other_requests_ignored() -> None:
    url = 'http://127.0.0.1:1/api/v1/chart/data?form_data={"slice_id":5}&dashboard_id=2'
    entries = [
        _event("Network.requestWillBeSent", requestId="1", request={"url": url, "method": "POST", "hasPostData": True}),
        _event("Network.requestWillBeSent", requestId="2", request={"url": "http://x/api/v1/log/", "method": "POST"}),
        _event("Network.requestWillBeSent", requestId="3", request={"url": url, "method": "GET"}),
        _event("Network.responseReceived", requestId="1", response={"status": 500}),
    ]
    asked: list[str] = []

    def body(rid: str) -> str:
        asked.append(rid)
        return json.dumps({"queries": [{}], "force": False})

    (req,) = parse_performance_log(entries, body)
    assert asked == ["1"] and req.slice_id == 5 and req.status == 500 and req.queries == 1
    assert req.path == '/api/v1/chart/data?form_data={"slice_id":5}&dashboard_id=2'
    assert verify_capture("x", [req], [5, 6]) == ["x: no request for chart(s) [6]", "x: responses not 200: [(5, 500)]"]
    assert verify_capture("x", [req], []) == [
        "x: requests for chart(s) not on the dashboard [5]",
        "x: responses not 200: [(5, 500)]",
    ]


# ---- peak memory of the process tree ----------------------------------------------------------------
def test_tree_rss_sums_a_process_and_its_descendants_only() -> None:
    table = {1: (0, 10), 2: (1, 20), 3: (2, 30), 4: (1, 40), 5: (0, 1000), 6: (5, 7)}
    assert tree_rss(1, table) == 100 and tree_rss(2, table) == 50 and tree_rss(5, table) == 1007
    assert tree_rss(99, table) == 0


def test_tree_peak_counts_a_parent_and_child_holding_memory_at_once(tmp_path: Path) -> None:
    hold = "import time; b = bytearray({n} * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); time.sleep({s})"
    child = hold.format(n=300, s=1.5)
    spawn = f"import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', {child!r}])"
    parent = f"{spawn}; {hold.format(n=250, s=0)}; p.wait()"
    r = run_child("tree", [sys.executable, "-c", parent], log=tmp_path / "t.log")
    assert r.ok and 300 <= r.peak_rss_mib < 500, r.peak_rss_mib  # the largest single process
    assert r.tree_peak_rss_mib >= 550, r.tree_peak_rss_mib  # both at once


# ---- report and flags --------------------------------------------------------------------------------
def _team_detail(p95_ms: float, errors: int) -> dict:
    part = {"n": 4, "p50_ms": 800.0, "p95_ms": 1200.0, "requests_cached": "0/40"}
    return {
        "users": 25,
        "opens": 120,
        "errors": errors,
        "dashboard": {"n": 120, "p50_ms": 900.0, "p95_ms": p95_ms},
        "chart": {"n": 1100, "p50_ms": 150.0, "p95_ms": 600.0},
        "first_after_publish": {**part, "seconds": [0.8, 1.2]},
        "repeat_open": {**part, "n": 110, "p50_ms": 500.0},
        "per_dashboard": {},
        "superset_peak_rss_mib": 1234,
        "web": {"workers": 3, "threads": 4},
        "slowest": {"open_ms": 2500.0, "open_started_s": 3.4, "open_slug": "kunden", "chart_ms": 1900.0},
    }


def test_team_figures_in_the_table_beside_the_hammer_with_the_goal() -> None:
    stages = {
        "team": StageResult("team", 400, 900, True, _team_detail(1400.0, 0), tree_peak_rss_mib=2500.0),
        "charts": StageResult("charts", 90, 300, True, {"load": {"requests": 300, "errors": 0, "p95_ms": 4600.0}}),
    }
    f = figures(83_000, stages)
    assert f["goals"]["team_dashboard_p95"] is True and set(f["goals"]) == set(GOALS)
    assert f["tree_peak_rss_mib"] == {"team": 2500}
    assert (
        figures(83_000, {**stages, "team": StageResult("team", 1, 1, True, _team_detail(1400.0, 1))})["goals"][
            "team_dashboard_p95"
        ]
        is False
    )
    assert (
        figures(83_000, {**stages, "team": StageResult("team", 1, 1, True, _team_detail(1600.0, 0))})["goals"][
            "team_dashboard_p95"
        ]
        is False
    )
    text = "\n".join(report_lines([{"rows": 83_000, "stages": {}, "figures": f}]))
    assert "hammer p95" in text and "4,600 ms" in text
    assert "team: users / opens / errors" in text and "25 / 120 / 0" in text
    assert "0.90 / 1.40 s" in text and "0.15 / 0.60 s" in text  # dashboard loaded; chart
    assert "0.80 / 1.20 s (4)" in text and "0.50 / 1.20 s (110)" in text  # first after publish; repeat
    assert "team: Superset peak RSS" in text and "1,234 MiB" in text
    assert "team: gunicorn workers x threads" in text and "3 x 4" in text
    assert "2.50 s (+3 s) / 1.90 s" in text  # the slowest open, when it started, the slowest chart
    assert "whole process tree (sampled every 0.5 s): 83,000: team 2,500" in text
    assert "team: dashboard loaded p95 <= 1.5 s, 0 errors" in text


def test_team_flags() -> None:
    a = build_parser().parse_args(["--only", "team", "--team-users", "5", "--team-minutes", "1", "--think", "2,4"])
    assert a.only == ("team",) and a.team_users == 5 and a.team_minutes == 1.0 and a.think == (2.0, 4.0)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--only", "generate"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--think", "30,10"])
    default = build_parser().parse_args([])
    assert (default.web_workers, default.web_threads) == (WEB_WORKERS, WEB_THREADS), "the service's split"
    w = build_parser().parse_args(["--web-workers", "3", "--web-threads", "4"])
    assert (w.web_workers, w.web_threads) == (3, 4)
    for bad in ("0", "-1", "two"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["--web-threads", bad])
