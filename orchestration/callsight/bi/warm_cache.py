"""The night's cache warm-up (issue 31): after provisioning, the chart-data requests of the four dashboards
run once per distinct visibility set, so that the first open after a publish is answered from the cache.

Superset's data cache keys a result by the query, the viewer's roles and visibility set (superset/
visibility.py): one viewer of each (role, set) warms it for everyone with the same. The requests are what a
browser sends when it opens each dashboard with its default filters, captured in a real chromium as the
admin (capture.py) when the assets change, and kept in CALLSIGHT_HOME/superset/warm-requests.json
(owner-only; request bodies, no data). Superset runs them as each viewer (superset/warm_cache.py): the
viewer's own row-level security, nothing logged as a dashboard view.

The night warms twice: first the build it is about to publish (`candidate`: before the swap, while
everybody still reads the served file; its results wait under the version the build will have once
published), then after the swap and provisioning whatever that changed (new users or sets, new assets):
a result already there costs a cache hit, not a query.

Needs the shared data cache (CALLSIGHT_REDIS_URL): without it every Superset process has a cache of its
own in memory, and a warm-up would fill one of them.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import requests

from callsight.bi.api import SupersetAPIError, SupersetClient
from callsight.bi.assets import load_assets
from callsight.bi.capture import CapturedRequest, capture_dashboards, verify_capture
from callsight.bi.roles import ROLE_ADMIN, ROLE_ANALYST, role_for
from callsight.site.directory import load_directory
from callsight.site.settings import WARMABLE_DASHBOARDS, Settings

REQUESTS_FILE = "warm-requests.json"
WARM_PATH = "/api/v1/callsight/warm_cache"
# Calls at once, each a Superset process of its own at the lowest CPU priority (superset/warm_cache.py): one
# per core of a 2-core machine, taking what people's requests leave (docs/performance.md, "Shared cache").
PARALLEL = 2
TIMEOUT = 4 * 3600  # seconds, as superset/warm_cache.py's
POLL = 2.0  # seconds between the polls for a warm-up's counts: one short request each


@dataclass
class WarmReport:
    skipped: str = ""  # why nothing was warmed ("" when it ran)
    captured: bool = False  # the requests were captured anew (the assets changed)
    users: list[str] = field(default_factory=list)  # one per (role, visibility set)
    computed: int = 0
    cached: int = 0
    failed: int = 0
    answers: int = 0  # whole answers kept for the viewers of each key (superset/answer_memo.py)
    seconds: float = 0.0


def representatives(roles: Mapping[str, str], viewer_sets: Mapping[str, str]) -> list[str]:
    """Pure: one user for each distinct (role, visibility set), the first by name. Analysts and admins are
    not limited by a set (row-level security leaves them out): one of each role. Viewers without a set in
    the warehouse are left out (they see nothing). Those who stand for the most users come first: a
    warm-up still running when people arrive (a publish by day) has served most of them already."""
    chosen: dict[tuple[str, str], list[str]] = {}
    for user in sorted(roles):
        role = roles[user]
        if role in (ROLE_ADMIN, ROLE_ANALYST):
            chosen.setdefault((role, ""), []).append(user)
        elif user in viewer_sets:
            chosen.setdefault((role, viewer_sets[user]), []).append(user)
    return [users[0] for users in sorted(chosen.values(), key=lambda users: (-len(users), users[0]))]


def assets_key(client: SupersetClient, dashboards: Sequence[str]) -> str:
    """What the captured requests depend on: the dashboards, the asset files and Superset's ids of the
    charts and their datasets (a re-created chart gets a new id)."""
    ids = sorted((c["id"], c["datasource_id"]) for c in client.list_all("chart", columns=("id", "datasource_id")))
    payload = json.dumps([list(dashboards), load_assets(), ids], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def stored_requests(path: Path, key: str) -> list[CapturedRequest] | None:
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    if stored.get("key") != key:
        return None
    return [CapturedRequest.from_json(r) for r in stored["requests"]]


def capture(
    settings: Settings, url: str, admin_password: str, client: SupersetClient, dashboards: Sequence[str]
) -> list[CapturedRequest]:
    """The dashboards' requests in a real browser as the admin; refused if one is incomplete."""
    captured = capture_dashboards(url, settings.superset_admin_username, admin_password, dashboards)
    slices = {d["slug"]: d["id"] for d in client.list_all("dashboard") if d.get("slug") in dashboards}
    problems = []
    for slug, sent in captured.items():
        charts = client.get(f"/api/v1/dashboard/{slices[slug]}/charts")["result"]
        problems += verify_capture(slug, sent, [c["id"] for c in charts])
    if problems:
        raise RuntimeError("capturing the dashboards' requests: " + "; ".join(problems))
    return [r for slug in dashboards for r in captured[slug]]


def viewer_sets(served_db: Path) -> dict[str, str]:
    con = duckdb.connect(str(served_db), read_only=True)
    try:
        rows = con.execute("SELECT viewer_username, visibility_set FROM security.viewer_visibility_sets").fetchall()
    finally:
        con.close()
    return dict(rows)


def await_job(lane: SupersetClient, job: str, login: Callable[[], object], poll: float = POLL) -> dict[str, int]:
    """A warm-up's counts once its process is done (the endpoint answers at once, superset/warm_jobs.py);
    logged in anew when the login expires (Superset's: after 15 minutes) during a long warm-up."""
    deadline, relogged = time.monotonic() + TIMEOUT + 60, False
    while time.monotonic() < deadline:
        try:
            state = lane.get(f"{WARM_PATH}/{job}")
        except SupersetAPIError as exc:
            if exc.status != 401 or relogged:
                raise
            login()
            relogged = True
            continue
        relogged = False
        if state["state"] == "done":
            return {k: state.get(k, 0) for k in ("computed", "cached", "failed", "answers")}
        if state["state"] != "running":
            raise RuntimeError(f"the cache warm-up failed: {state.get('message', state['state'])}")
        time.sleep(poll)
    raise TimeoutError(f"the cache warm-up did not end within {TIMEOUT + 60} s")


def warm_cache(
    settings: Settings,
    url: str,
    admin_password: str,
    dashboards: Sequence[str] = WARMABLE_DASHBOARDS,
    candidate: bool = False,
) -> WarmReport:
    """Warm Superset's shared data cache for every (role, visibility set) of the org directory, in the
    served warehouse or (`candidate`) in the build about to be published (settings.build_db)."""
    if not settings.env.get("CALLSIGHT_REDIS_URL"):
        return WarmReport(skipped="no shared cache (CALLSIGHT_REDIS_URL is not set)")
    try:
        requests.get(f"{url}/health", timeout=10).raise_for_status()
    except requests.RequestException as exc:
        return WarmReport(skipped=f"Superset at {url} not reachable ({type(exc).__name__})")
    started = time.monotonic()
    client = SupersetClient(url).login(settings.superset_admin_username, admin_password)
    report = WarmReport()
    path = settings.superset_home / REQUESTS_FILE
    key = assets_key(client, dashboards)
    captured = stored_requests(path, key)
    if captured is None:
        captured = capture(settings, url, admin_password, client, dashboards)
        path.write_text(json.dumps({"key": key, "requests": [r.to_json() for r in captured]}), encoding="utf-8")
        path.chmod(0o600)
        report.captured = True
    directory = load_directory(settings.effective_directory_path)
    roles = {u: role_for(directory, u) for u in directory.usernames}
    report.users = representatives(roles, viewer_sets(settings.build_db if candidate else settings.served_db))
    sent = [{"path": r.path, "body": r.body} for r in captured]  # as the browser sent them: the key memo's key
    # users in turn over the calls: those who stand for the most users first in each
    lanes = [report.users[i::PARALLEL] for i in range(PARALLEL) if report.users[i::PARALLEL]]

    def warm(users: list[str]) -> dict[str, int]:
        lane = SupersetClient(url).login(settings.superset_admin_username, admin_password)
        job = lane.post(WARM_PATH, {"users": users, "requests": sent, "candidate": candidate}, ok=(202,))["job"]
        return await_job(lane, job, lambda: lane.login(settings.superset_admin_username, admin_password))

    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        for done in pool.map(warm, lanes):
            report.computed += done["computed"]
            report.cached += done["cached"]
            report.failed += done["failed"]
            report.answers += done["answers"]
    report.seconds = time.monotonic() - started
    return report
