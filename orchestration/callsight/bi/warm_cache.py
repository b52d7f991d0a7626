"""The night's cache warm-up (issue 31): after provisioning, the chart-data requests of the four dashboards
run once per distinct visibility set, so that the first open after a publish is answered from the cache.

Superset's data cache keys a result by the query, the viewer's roles and visibility set (superset/
visibility.py): one viewer of each (role, set) warms it for everyone with the same. The requests are what a
browser sends when it opens each dashboard with its default filters, captured in a real chromium as the
admin (capture.py) when the assets change, and kept in CALLSIGHT_HOME/superset/warm-requests.json
(owner-only; request bodies, no data). Superset runs them as each viewer (superset/warm_cache.py): the
viewer's own row-level security, nothing logged as a dashboard view.

Two calls at once (one per core) while nobody else uses Superset; one while somebody does (a publish by
day), judged by Superset's action log (in_use), so that a warm-up leaves people a core.

Needs the shared data cache (CALLSIGHT_REDIS_URL): without it every Superset process has a cache of its
own in memory, and a warm-up would fill one of them.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import requests

from callsight.bi.access_log import NoMetadataDb, metadata_db, metadata_url
from callsight.bi.api import SupersetClient
from callsight.bi.assets import load_assets
from callsight.bi.capture import CapturedRequest, capture_dashboards, verify_capture
from callsight.bi.roles import ROLE_ADMIN, ROLE_ANALYST, role_for
from callsight.site.directory import load_directory
from callsight.site.settings import WARMABLE_DASHBOARDS, Settings

REQUESTS_FILE = "warm-requests.json"
WARM_PATH = "/api/v1/callsight/warm_cache"
# Requests per call (a call stays far below gunicorn's timeout), and calls at once: one per core, so that
# both of a 2-core machine's gunicorn workers compute (docs/performance.md, "Shared cache") - while nobody
# else uses Superset. While someone does (a publish by day), one call at a time: a core stays theirs.
CHUNK = 12
PARALLEL = 2
ACTIVE_SECONDS = 120  # someone other than the bootstrap admin in Superset's action log this recently: in use
RECENT_LOG_ROWS = 20_000  # the newest log rows looked at, however long the log is kept
PAUSE_SECONDS = 5.0  # how often a stepped-aside call looks again
# Superset's newest log rows of a user other than `admin` (the warm-up itself logs nothing in the viewers'
# names: superset/warm_cache.py; the login page, anonymous, is no load).
ACTIVITY_SQL = """
SELECT count(*) FROM logs l JOIN ab_user u ON u.id = l.user_id
WHERE l.id > {p} AND l.dttm >= {p} AND u.username <> {p}
"""


@dataclass
class WarmReport:
    skipped: str = ""  # why nothing was warmed ("" when it ran)
    captured: bool = False  # the requests were captured anew (the assets changed)
    users: list[str] = field(default_factory=list)  # one per (role, visibility set)
    computed: int = 0
    cached: int = 0
    failed: int = 0
    seconds: float = 0.0
    shared_seconds: float = 0.0  # how long calls stepped aside because people were using Superset


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


def warm_cache(
    settings: Settings, url: str, admin_password: str, dashboards: Sequence[str] = WARMABLE_DASHBOARDS
) -> WarmReport:
    """Warm Superset's shared data cache for every (role, visibility set) of the org directory."""
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
    report.users = representatives(roles, viewer_sets(settings.served_db))
    bodies = [r.body for r in captured]
    chunks = [(user, bodies[i : i + CHUNK]) for user in report.users for i in range(0, len(bodies), CHUNK)]
    clients = threading.local()

    def warm(chunk: tuple[str, list[dict]]) -> dict[str, int]:
        if not hasattr(clients, "client"):  # one login per thread: a session is not shared between threads
            clients.client = SupersetClient(url).login(settings.superset_admin_username, admin_password)
        return clients.client.post(WARM_PATH, {"username": chunk[0], "requests": chunk[1]})

    done, report.shared_seconds = run_chunks(chunks, warm, lambda: in_use(settings))
    for counts in done:
        report.computed += counts["computed"]
        report.cached += counts["cached"]
        report.failed += counts["failed"]
    report.seconds = time.monotonic() - started
    return report


def run_chunks(
    chunks: Sequence[tuple[str, list[dict]]],
    warm: Callable[[tuple[str, list[dict]]], dict[str, int]],
    busy: Callable[[], bool],
    parallel: int = PARALLEL,
    pause: float = PAUSE_SECONDS,
) -> tuple[list[dict[str, int]], float]:
    """Every chunk through `warm`, `parallel` calls at once while `busy()` is false, one call while it is
    true (the others look again every `pause` s). The answers, and the seconds the others stood aside."""
    queue, answers, lock, failed = deque(chunks), [], threading.Lock(), threading.Event()
    aside = [0.0]

    def worker(first: bool) -> None:
        while not failed.is_set():
            if not first and queue and busy():
                time.sleep(pause)
                with lock:
                    aside[0] += pause
                continue
            with lock:
                if not queue:
                    return
                chunk = queue.popleft()
            try:
                answer = warm(chunk)
            except BaseException:
                failed.set()  # the others stop too
                raise
            with lock:
                answers.append(answer)

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        for future in [pool.submit(worker, i == 0) for i in range(parallel)]:
            future.result()  # a failed call fails the warm-up (the step logs it; the night stands)
    return answers, aside[0] / max(1, parallel - 1)


def in_use(settings: Settings, now: datetime | None = None) -> bool:
    """Someone other than the bootstrap admin used Superset in the last ACTIVE_SECONDS (its action log)."""
    since = (now or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None) - timedelta(seconds=ACTIVE_SECONDS)
    try:
        with metadata_db(metadata_url(settings), timeout=5) as (con, p):
            newest = con.execute("SELECT coalesce(max(id), 0) FROM logs").fetchone()[0]
            when = since.strftime("%Y-%m-%d %H:%M:%S") if p == "?" else since  # SQLite holds text
            args = (newest - RECENT_LOG_ROWS, when, settings.superset_admin_username)
            return con.execute(ACTIVITY_SQL.format(p=p), args).fetchone()[0] > 0
    except NoMetadataDb:
        return False
