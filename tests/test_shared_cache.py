"""Chart results shared by viewers who may see the same agents, and by nobody else (issue 31).

Two more gunicorns on the session's Superset (same metadata and warehouse) with the data cache in Redis,
as a site with CALLSIGHT_REDIS_URL runs: a result one process computed for a viewer answers another
viewer with the same visibility set in the other process; a viewer with another set, an admin, and - after
a publish that moved a viewer to another set - that viewer, each get their own rows, checked against the
directory YAML (not against the tables the row-level security reads). A publish leaves nothing of the
replaced warehouse in Redis."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import requests

from callsight.bi.api import SupersetAPIError, SupersetClient
from callsight.bi.assets import load_assets
from callsight.bi.capture import CapturedRequest
from callsight.bi.warm_cache import REQUESTS_FILE, WARM_PATH, await_job, viewer_sets, warm_cache
from callsight.defs.bi.warm_cache import superset_cache
from callsight.defs.publish.assets import published_warehouse
from callsight.defs.resources import SiteResource
from callsight.publish.builds import publish
from callsight.site.directory import load_directory
from callsight.site.settings import Settings

from .conftest import SupersetServer, reachable, require_service
from .test_dashboards import charts_of, dashboards
from .test_superset import chart_answer, expected_counts

pytestmark = pytest.mark.superset

REDIS_DB = 12
DASHBOARD = ("agenten",)  # one dashboard is enough to prove it; the night warms all four
JOBS_FOLDER = "warm-jobs"  # superset/warm_cache.py's, under Superset's home


def redis(*args: str) -> str:
    out = subprocess.run(["redis-cli", "-n", str(REDIS_DB), *args], capture_output=True, text=True, check=True)
    return out.stdout


@dataclass(frozen=True)
class TwoProcesses:
    first: str  # URL of one gunicorn
    second: str  # and of the other
    prefix: str  # the Redis key prefix of their shared data cache
    env: dict[str, str]  # what the site sets for it


@pytest.fixture(scope="module")
def two_processes(superset_server: SupersetServer) -> Iterator[TwoProcesses]:
    require_service(reachable(("127.0.0.1", 6379)) and shutil.which("redis-cli") is not None, "Redis on 6379")
    queue = f"callsight-shared-{secrets.token_hex(4)}"
    env = {"CALLSIGHT_REDIS_URL": f"redis://127.0.0.1:6379/{REDIS_DB}", "CALLSIGHT_CELERY_QUEUE": queue}
    with ExitStack() as stack:
        first = stack.enter_context(superset_server.sibling("superset-shared-1.log", **env))
        second = stack.enter_context(superset_server.sibling("superset-shared-2.log", **env))
        yield TwoProcesses(first, second, f"{queue}-data:", env)
    drop_keys(f"{queue}-data:")


def cached_keys(prefix: str) -> set[str]:
    return set(redis("--scan", "--pattern", f"{prefix}*").split())


def drop_keys(prefix: str) -> None:
    if keys := cached_keys(prefix):
        redis("del", *keys)


def test_viewers_share_results_only_within_one_visibility_set(
    superset_server: SupersetServer, two_processes: tuple[str, str, str], tmp_path: Path
) -> None:
    s = superset_server
    first, second, prefix = two_processes.first, two_processes.second, two_processes.prefix
    served = s.site.settings.served_db
    directory = load_directory(s.site.settings.effective_directory_path)
    # viewers only: the cache key also holds the roles (analysts and admins see all, whatever their set)
    sets = {v: name for v, name in viewer_sets(served).items() if v not in directory.analysts + directory.admins}
    by_set: dict[str, list[str]] = {}
    for viewer, name in sorted(sets.items()):
        by_set.setdefault(name, []).append(viewer)
    # two viewers who may see the same agents (a group whose members see each other), one who sees others
    a, b = next(v for v in by_set.values() if len(v) >= 2 and len(expected_counts(s, v[0])) > 1)[:2]
    c = next(v for v in sets if sets[v] != sets[a] and expected_counts(s, v) != expected_counts(s, a))
    assert expected_counts(s, a) == expected_counts(s, b), "same set: same calls, says the directory"

    def client(url: str, user: str) -> SupersetClient:
        password = s.admin_password if user == "admin" else s.user_password
        return SupersetClient(url).login(user, password)

    counts, cached = chart_answer(client(first, a), force=False)
    assert (counts, cached) == (expected_counts(s, a), False)
    counts, cached = chart_answer(client(second, b), force=False)
    assert (counts, cached) == (expected_counts(s, b), True), "b gets what the other process computed for a"
    counts, cached = chart_answer(client(second, c), force=False)
    assert (counts, cached) == (expected_counts(s, c), False), "another set: its own result"
    counts, _ = chart_answer(client(first, "admin"), force=False)
    assert counts == expected_counts(s, None)
    assert len(cached_keys(prefix)) >= 3, "results are kept in Redis"

    # A publish that moves b into c's set (the directory changed): b sees c's agents at once, not a's
    # result cached before, and nothing of the replaced warehouse stays in Redis.
    old_keys = cached_keys(prefix)
    original = shutil.copy2(served, tmp_path / "original.duckdb")
    changed = shutil.copy2(served, tmp_path / "changed.duckdb")
    con = duckdb.connect(str(changed))
    con.execute("UPDATE security.viewer_visibility_sets SET visibility_set = ? WHERE viewer_username = ?", [sets[c], b])
    con.close()
    try:
        publish(Path(changed), served, keep=0)
        counts, cached = chart_answer(client(second, b), force=False)
        assert (counts, cached) == (expected_counts(s, c), False)
        counts, cached = chart_answer(client(first, a), force=False)
        assert (counts, cached) == (expected_counts(s, a), False), "a new warehouse: computed anew"
        assert not old_keys & cached_keys(prefix)
    finally:
        publish(Path(original), served, keep=0)
    counts, _ = chart_answer(client(first, b), force=False)
    assert counts == expected_counts(s, b)


def login(s: SupersetServer, url: str, user: str) -> SupersetClient:
    return SupersetClient(url).login(user, s.admin_password if user == "admin" else s.user_password)


def rows_of(query: dict) -> list[str]:
    """A query's rows, in an order of their own (rows that tie in a chart's sort may come in any order)."""
    return sorted(json.dumps(row, sort_keys=True) for row in query["data"])


def open_as(client: SupersetClient, requests: list[CapturedRequest]) -> tuple[list[bool], list[list[str]]]:
    """A dashboard open as the browser sends it (no `force`): per query whether it came from the cache, and
    each query's rows."""
    cached, rows = [], []
    for r in requests:
        for q in client.post(r.path, r.body)["result"]:
            cached.append(bool(q["is_cached"]))
            rows.append(rows_of(q))
    return cached, rows


def computed_as(client: SupersetClient, requests: list[CapturedRequest]) -> list[list[str]]:
    """The same requests with `force`: computed now for this viewer, never from the cache."""
    return [rows_of(q) for r in requests for q in client.post(r.path, {**r.body, "force": True})["result"]]


def views_logged(s: SupersetServer) -> int:
    """Rows in Superset's action log in a directory user's name: not the admin (the capture opens the
    dashboards as the admin) nor anonymous (its browser's login page)."""
    con = sqlite3.connect(s.site.settings.superset_home / "superset.db")
    try:
        (n,) = con.execute(
            "SELECT count(*) FROM logs JOIN ab_user AS u ON u.id = logs.user_id WHERE u.username <> 'admin'"
        ).fetchone()
    finally:
        con.close()
    return n


def test_the_nights_warm_up_makes_every_viewers_first_open_a_cache_hit_with_their_own_rows(
    superset_server: SupersetServer, two_processes: TwoProcesses, tmp_path: Path
) -> None:
    """The warm-up (one viewer per visibility set, through one process) answers the first open of viewers
    it did not run as, in the other process, with exactly the rows computed for each of them; after a
    publish that moved a viewer to another set, nothing is cached until the next warm-up, which again gives
    each viewer their own rows. Nothing lands in the works council's access log."""
    s, two = superset_server, two_processes
    settings = Settings.from_env({**os.environ, "CALLSIGHT_HOME": str(s.site.home), **two.env})
    served = settings.served_db
    drop_keys(two.prefix)
    (settings.superset_home / REQUESTS_FILE).unlink(missing_ok=True)
    logged = views_logged(s)

    report = warm_cache(settings, two.first, s.admin_password, dashboards=DASHBOARD)
    assert report.captured and report.failed == 0 and report.computed > 0
    assert views_logged(s) == logged, "the warm-up is logged as nobody's chart request or dashboard view"
    memo_keys = [k for k in cached_keys(two.prefix) if ":callsight-key-memo:" in k]  # the keys' Jinja values
    assert len(memo_keys) >= len(report.users), "kept for the web workers, per set and request"
    answer_keys = [k for k in cached_keys(two.prefix) if ":callsight-answer-memo:" in k]  # whole answers
    # (and the capture's own, as the admin opened the dashboard in a browser)
    assert len(answer_keys) >= report.answers >= len(report.users), (len(answer_keys), report)
    memo_keys += answer_keys
    requests = [
        CapturedRequest.from_json(r)
        for r in json.loads((settings.superset_home / REQUESTS_FILE).read_text())["requests"]
    ]
    directory = load_directory(settings.effective_directory_path)
    sets = {v: name for v, name in viewer_sets(served).items() if v not in directory.analysts + directory.admins}
    # viewers the warm-up did not run as: in a set shared with its representative, and alone in their set
    shared = next(u for u in sorted(sets) if u not in report.users and sets[u] in {sets.get(r) for r in report.users})
    alone = next(r for r in report.users if list(sets.values()).count(sets.get(r)) == 1)
    for viewer in (shared, alone, "admin"):
        client = login(s, two.second, viewer)
        cached, rows = open_as(client, requests)
        assert all(cached), (viewer, cached)
        assert rows == computed_as(client, requests), f"{viewer} got rows computed for somebody else"

    # a publish that moves `shared` into the set of `alone`
    original = shutil.copy2(served, tmp_path / "original.duckdb")
    changed = shutil.copy2(served, tmp_path / "changed.duckdb")
    con = duckdb.connect(str(changed))
    con.execute(
        "UPDATE security.viewer_visibility_sets SET visibility_set = ? WHERE viewer_username = ?", [sets[alone], shared]
    )
    con.close()
    try:
        publish(Path(changed), served, keep=0)
        client = login(s, two.second, shared)
        assert not any(open_as(client, requests)[0]), "nothing of the replaced warehouse answers"
        assert not set(memo_keys) & cached_keys(two.prefix), "nor are its key memo and its answers kept"
        again = warm_cache(settings, two.first, s.admin_password, dashboards=DASHBOARD)
        assert not again.captured and again.failed == 0, "the same assets: the stored capture is used"
        cached, rows = open_as(client, requests)
        assert all(cached) and rows == computed_as(client, requests)
        assert rows == open_as(login(s, two.second, alone), requests)[1], "one set now: the same rows"
    finally:
        publish(Path(original), served, keep=0)


def test_a_warm_up_of_the_build_before_its_publish_answers_every_first_open_after_the_swap(
    superset_server: SupersetServer, two_processes: TwoProcesses, tmp_path: Path
) -> None:
    """The night warms the build it is about to publish (`candidate`), here one that moves a viewer into
    another set. Until the swap nobody gets those results: viewers read the served file, computed for
    them (and a process that sees the served file anew keeps the waiting results). After it, the first
    open of every viewer - in the other process, viewers the warm-up did not run as, the moved one, the
    admin - is a cache hit with exactly the rows computed for them in the new build."""
    s, two = superset_server, two_processes
    settings = Settings.from_env({**os.environ, "CALLSIGHT_HOME": str(s.site.home), **two.env})
    served, build = settings.served_db, settings.build_db
    directory = load_directory(settings.effective_directory_path)
    sets = {v: name for v, name in viewer_sets(served).items() if v not in directory.analysts + directory.admins}
    members = {name: sorted(v for v in sets if sets[v] == name) for name in set(sets.values())}
    alone = next(v for v in sorted(sets) if len(members[sets[v]]) == 1)
    moved = next(v for v in sorted(sets) if len(members[sets[v]]) > 1 and v != alone)
    drop_keys(two.prefix)
    original = shutil.copy2(served, tmp_path / "original.duckdb")
    build.parent.mkdir(exist_ok=True)
    shutil.copy2(served, build)
    con = duckdb.connect(str(build))
    con.execute(
        "UPDATE security.viewer_visibility_sets SET visibility_set = ? WHERE viewer_username = ?", [sets[alone], moved]
    )
    con.close()
    try:
        report = warm_cache(settings, two.first, s.admin_password, dashboards=DASHBOARD, candidate=True)
        assert report.failed == 0 and report.computed > 0, report
        requests = [
            CapturedRequest.from_json(r)
            for r in json.loads((settings.superset_home / REQUESTS_FILE).read_text())["requests"]
        ]
        client = login(s, two.second, moved)
        cached, before = open_as(client, requests)
        assert not any(cached), "the build's results are nobody's before it is published"
        assert before == computed_as(client, requests), "the served file's rows until the swap"

        publish(build, served, keep=0)
        others = sorted(v for v in members[sets[moved]] if v not in report.users and v != moved)
        rows = {}
        for viewer in (moved, alone, *others[:1], "admin"):
            client = login(s, two.second, viewer)
            cached, rows[viewer] = open_as(client, requests)
            assert all(cached), (viewer, cached)
            assert rows[viewer] == computed_as(client, requests), f"{viewer} got rows computed for somebody else"
        assert rows[moved] == rows[alone] != before, "the moved viewer sees the new set's calls at once"
    finally:
        build.unlink(missing_ok=True)
        publish(Path(original), served, keep=0)


def test_the_warm_up_endpoint_is_the_admins_and_refuses_bad_requests(
    superset_server: SupersetServer, two_processes: TwoProcesses
) -> None:
    """A member who finds the endpoint cannot run queries in anybody's name, nor can somebody without a
    login; an admin's malformed request, one for an unknown user or for a build that is not there is
    refused, and nothing is cached."""
    s, url = superset_server, two_processes.first
    assert not s.site.settings.build_db.exists()
    directory = load_directory(s.site.settings.effective_directory_path)
    member = next(u for u in directory.usernames if u not in directory.analysts + directory.admins)
    body = {"datasource": {"id": 1, "type": "table"}, "queries": [{"metrics": ["count"]}], "result_type": "full"}
    before = cached_keys(two_processes.prefix)
    attempts = [
        (login(s, url, member), {"users": ["admin"], "requests": [body]}, 403),
        (login(s, url, member), {"users": [member], "requests": [body]}, 403),
        (login(s, url, "admin"), {"users": [member]}, 400),
        (login(s, url, "admin"), {"users": member, "requests": [body]}, 400),
        (login(s, url, "admin"), {"users": [member], "requests": [{"path": "/api/v1/dataset/", "body": body}]}, 400),
        (login(s, url, "admin"), {"users": [member], "requests": [["not", "a", "body"]]}, 400),
        (login(s, url, "admin"), {"users": [member, "nobody-here"], "requests": [body]}, 404),
        (login(s, url, "admin"), {"users": [member], "requests": [body], "candidate": "yes"}, 400),
        (login(s, url, "admin"), {"users": [member], "requests": [body], "candidate": True}, 409),  # no build
        (login(s, url, member), {"users": [member], "requests": [body], "candidate": True}, 403),
    ]
    for client, payload, status in attempts:
        with pytest.raises(SupersetAPIError) as refused:
            client.post(WARM_PATH, payload)
        assert refused.value.status == status, payload
    anonymous = requests.post(f"{url}{WARM_PATH}", json={"users": [member], "requests": [body]}, timeout=30)
    assert anonymous.status_code in (400, 401, 403) and "data" not in anonymous.text
    assert cached_keys(two_processes.prefix) == before, "a refused request computed nothing"


def test_a_warm_up_answers_at_once_and_only_its_admins_may_poll_it(
    superset_server: SupersetServer, two_processes: TwoProcesses
) -> None:
    """The endpoint starts the warm-up's process and answers before it is done (it cannot be: a Superset
    process takes seconds to start), so that no web thread waits for it; the job is polled by admins only,
    by its token and nothing else, and its file holds counts, never data."""
    s, url = superset_server, two_processes.first
    directory = load_directory(s.site.settings.effective_directory_path)
    member = next(u for u in directory.usernames if u not in directory.analysts + directory.admins)
    body = {"datasource": {"id": 1, "type": "table"}, "queries": [{"metrics": ["count"]}], "result_type": "full"}
    admin = login(s, url, "admin")
    job = admin.post(WARM_PATH, {"users": [member], "requests": [body]}, ok=(202,))["job"]
    assert admin.get(f"{WARM_PATH}/{job}") == {"state": "running"}
    with pytest.raises(SupersetAPIError) as refused:
        login(s, url, member).get(f"{WARM_PATH}/{job}")
    assert refused.value.status == 403
    assert requests.get(f"{url}{WARM_PATH}/{job}", timeout=30).status_code == 401
    for token in ("0" * 32, "..%2Fwarm-requests.json", job.upper()):
        with pytest.raises(SupersetAPIError) as refused:
            admin.get(f"{WARM_PATH}/{token}")
        assert refused.value.status == 404, token
    counts = await_job(admin, job, lambda: None, poll=0.2)
    # one request of one query: computed, cached or failed; its whole answer kept or not
    assert counts["computed"] + counts["cached"] + counts["failed"] == 1 and counts["answers"] <= 1, counts
    path = s.site.settings.superset_home / JOBS_FOLDER / f"{job}.json"
    assert json.loads(path.read_text()) == {"state": "done", **counts}
    assert path.stat().st_mode & 0o077 == 0 and path.parent.stat().st_mode & 0o077 == 0


def test_the_night_step_warms_the_dashboards_its_setting_names(
    superset_server: SupersetServer, two_processes: TwoProcesses, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The night's `superset_cache` step as Dagster runs it, from the site's settings: with
    CALLSIGHT_CACHE_WARMUP=off it leaves the shared cache empty; naming a dashboard, it fills it for that one;
    a run launched by hand with an unknown dashboard warms nothing and says so."""
    s, two = superset_server, two_processes
    site = {"CALLSIGHT_HOME": str(s.site.home), "CALLSIGHT_SUPERSET_URL": two.first, **two.env}
    for name, value in {**site, "SUPERSET_ADMIN_PASSWORD": s.admin_password}.items():
        monkeypatch.setenv(name, value)

    def night_step(**config: object) -> dict:
        run_config = {"ops": {"superset_cache": {"config": config}}} if config else None
        result = dg.materialize([superset_cache], resources={"site": SiteResource()}, run_config=run_config)
        [done] = result.asset_materializations_for_node("superset_cache")
        return {k: v.value for k, v in done.metadata.items()}

    drop_keys(two.prefix)
    monkeypatch.setenv("CALLSIGHT_CACHE_WARMUP", "off")
    assert night_step() == {"skipped": "switched off"}
    assert not cached_keys(two.prefix), "switched off: nothing computed"
    monkeypatch.setenv("CALLSIGHT_CACHE_WARMUP", ",".join(DASHBOARD))
    assert night_step(dashboards=["kundn"]) == {"skipped": "unknown dashboards: kundn"}, "a run launched by hand"
    assert not cached_keys(two.prefix)
    warmed = night_step()
    assert warmed["skipped"] == "" and warmed["failed"] == 0 and warmed["computed"] > 0, warmed
    assert warmed["dashboards"] == ", ".join(DASHBOARD), warmed
    kept = json.loads((s.site.settings.superset_home / REQUESTS_FILE).read_text(encoding="utf-8"))["requests"]
    charts = {c for slug in DASHBOARD for c in charts_of(dashboards(load_assets())[slug])}
    assert len({r["slice_id"] for r in kept} - {None}) == len(charts), "the requests of the named dashboard only"
    assert len(cached_keys(two.prefix)) >= warmed["computed"]


def test_the_nights_publish_warms_the_build_before_its_swap_and_a_republish_swaps_at_once(
    superset_server: SupersetServer, two_processes: TwoProcesses, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The `published_warehouse` step as Dagster runs it, on a build beside the served file: the night's
    warms the named dashboard in the build before the swap (a member's first open afterwards is all cache
    hits); a republish (after an erasure) swaps without warming (the same open computes)."""
    s, two = superset_server, two_processes
    site = {"CALLSIGHT_HOME": str(s.site.home), "CALLSIGHT_SUPERSET_URL": two.first, **two.env}
    for name, value in {**site, "SUPERSET_ADMIN_PASSWORD": s.admin_password}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CALLSIGHT_CACHE_WARMUP", ",".join(DASHBOARD))
    settings = Settings.from_env()
    served, build = settings.served_db, settings.build_db
    original = shutil.copy2(served, tmp_path / "original.duckdb")
    step = dg.asset(group_name="publish")(published_warehouse)
    directory = load_directory(settings.effective_directory_path)
    member = next(u for u in directory.usernames if u not in directory.analysts + directory.admins)

    def publish_step(**config: object) -> dict:
        build.parent.mkdir(exist_ok=True)
        shutil.copy2(original, build)
        run_config = {"ops": {"published_warehouse": {"config": config}}}
        result = dg.materialize([step], resources={"site": SiteResource()}, run_config=run_config)
        [done] = result.asset_materializations_for_node("published_warehouse")
        return {k: v.value for k, v in done.metadata.items()}

    def first_open() -> list[bool]:
        kept = json.loads((settings.superset_home / REQUESTS_FILE).read_text(encoding="utf-8"))["requests"]
        return open_as(login(s, two.second, member), [CapturedRequest.from_json(r) for r in kept])[0]

    try:
        drop_keys(two.prefix)
        night = publish_step()
        assert night["warm_up_skipped"] == "" and night["warm_up_failed"] == 0, night
        assert night["warm_up_computed"] > 0 and night["seconds_warm"] > 0, night
        assert not build.exists() and served.stat().st_size > 0
        assert all(first_open()), "warmed before the swap: the first open is a cache hit"
        drop_keys(two.prefix)
        republish = publish_step(discard_kept_builds=True, warm_cache_first=False)
        assert not [k for k in republish if k.startswith("warm_up") or k == "seconds_warm"], republish
        assert not any(first_open()), "no warm-up: the first open computes"
    finally:
        build.unlink(missing_ok=True)
        publish(Path(original), served, keep=0)


KEYS_WITH_AND_WITHOUT_MEMO = """
import json, sys
from superset.app import create_app
app = create_app()
memos = [sys.modules["callsight_parse_memo"], sys.modules["callsight_key_memo"]]
users, requests = json.loads(sys.stdin.read())
from superset import security_manager
from superset.charts.schemas import ChartDataQueryContextSchema
from superset.utils.core import override_user

def another_visit(body, n):  # a browser sends its own native_filters_key with every dashboard visit
    form_data = {**body.get("form_data", {}), "url_params": {"native_filters_key": f"visit-{n}"}}
    return {**body, "form_data": form_data}

def keys_and_sql(user, visit=None):
    got = []
    for path, body in requests:  # each in a request as the chart-data API gets it
        body = body if visit is None else another_visit(body, visit)
        with app.test_request_context(path, method="POST", json=body):
            with override_user(security_manager.find_user(username=user)):
                context = ChartDataQueryContextSchema().load(body)
                for query in context.queries:
                    key = context._processor.query_cache_key(query)
                    got.append([key, context.datasource.get_query_str(query.to_dict())])
    return got

out = {}
for user in users:
    for memo in memos:
        memo.ENABLED = True
    first = keys_and_sql(user, visit=1)
    misses = memos[1].MEMO.misses
    again = keys_and_sql(user, visit=2)
    out[user] = {"queries": len(first), "misses_again": memos[1].MEMO.misses - misses}
    for memo in memos:
        memo.ENABLED = False
    out[user]["same"] = first == again == keys_and_sql(user)
print(json.dumps({"users": out, "parse_hits": memos[0].MEMO.hits, "kept": len(memos[0].MEMO.items()),
                  "intact": memos[0].intact(), "key_hits": memos[1].MEMO.hits, "shared_hits": memos[1].SHARED_HITS}))
"""


def test_the_memos_change_no_cache_key_and_no_query(
    superset_server: SupersetServer, two_processes: TwoProcesses
) -> None:
    """The parse memo and the key memo (superset/parse_memo.py, key_memo.py) inside Superset: for viewers of
    two visibility sets, an analyst and the admin, every query of the dashboard - first and asked again in
    another visit (the browser's own native_filters_key), which the memo answers without building - gets the
    same cache key and the same SQL (row-level security inside the dataset's SQL included) as Superset
    computes without them; both memos answered, and no kept parse tree was changed by the requests. Run
    twice, in two processes sharing the data cache in Redis: the second process's first keys come from what
    the first kept there (as a web worker's after the night's warm-up), and are Superset's own as well."""
    from callsight.bi.runtime import SupersetEnv

    s, two = superset_server, two_processes
    settings = Settings.from_env({**os.environ, "CALLSIGHT_HOME": str(s.site.home), **two.env})
    path = settings.superset_home / REQUESTS_FILE
    if not path.exists():  # this test alone: capture as the night does
        warm_cache(settings, two.first, s.admin_password, dashboards=DASHBOARD)
    captured = [(r["path"], r["body"]) for r in json.loads(path.read_text())["requests"]]
    directory = load_directory(settings.effective_directory_path)
    sets = {v: name for v, name in viewer_sets(settings.served_db).items() if v not in directory.admins}
    viewers = [v for v in sorted(sets) if v not in directory.analysts]
    other = next(v for v in viewers if sets[v] != sets[viewers[0]])
    users = [viewers[0], other, directory.analysts[0], "admin"]
    env = SupersetEnv(settings, s.secret_key, extra_env=tuple(two.env.items())).environ()
    python = settings.superset_venv / "bin" / "python"
    drop_keys(two.prefix)
    runs = []
    for _ in range(2):
        r = subprocess.run(
            [str(python), "-c", KEYS_WITH_AND_WITHOUT_MEMO],
            input=json.dumps([users, captured]),
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
        assert r.returncode == 0, r.stderr[-3000:]
        runs.append(json.loads(r.stdout.strip().splitlines()[-1]))
    for out in runs:
        for user in users:
            assert out["users"][user]["queries"] >= len(captured) and out["users"][user]["same"], (user, out)
            assert out["users"][user]["misses_again"] == 0, ("a new visit's key must not be new", user, out)
        assert out["parse_hits"] > 0 and out["kept"] > 0 and out["intact"], out
        assert out["key_hits"] >= len(captured) * len(users), out
    first, second = runs
    assert first["shared_hits"] == 0, "the cache was emptied: the first process builds every key"
    assert second["shared_hits"] >= len(captured) * len(users), second
    assert [k for k in cached_keys(two.prefix) if ":callsight-key-memo:" in k], "kept under the served version"
