"""A team at 9 a.m. (issue #31): users of the org directory log in and open a random dashboard, then look
at it for a while, again and again, while the served file is published once in the middle.

Opening a dashboard = replaying the chart-data requests a real browser sent for it (capture.py) with the
user's own login and the visit's own native_filters_key, at most six at a time (a browser's HTTP/1.1
connection limit per host), in the order the browser sent them. The open is loaded when its last request
has answered. The first open of each dashboard after a publish (by whichever user comes first) is reported
beside the repeat opens.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from bench.measure import percentile
from callsight.bi.capture import CapturedRequest
from callsight.site.directory import Directory

DASHBOARDS = ("agenten", "kunden", "projekte", "management-summary")
BROWSER_CONNECTIONS = 6  # Chrome's and Firefox's limit of HTTP/1.1 connections per host
ARRIVAL_S = 60.0  # the team's first minute: every user logs in and opens a dashboard in its first second
T = TypeVar("T")


@dataclass(frozen=True)
class TeamOptions:
    users: int = 25
    minutes: float = 5.0
    think: tuple[float, float] = (10.0, 30.0)  # seconds a user looks at an open dashboard
    parallel: int = BROWSER_CONNECTIONS
    seed: int = 1


@dataclass(frozen=True)
class Timed:
    """One request of an open: when it started (clock seconds), how long it took, from the cache, error."""

    start: float
    seconds: float
    cached: bool = False
    error: str | None = None


@dataclass
class DashboardOpen:
    user: str
    slug: str
    start: float
    seconds: float
    requests: list[Timed] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(1 for r in self.requests if r.error)


def open_dashboard(
    fetch: Callable[[T], bool], requests: Sequence[T], pool: Executor, clock: Callable[[], float] = time.monotonic
) -> tuple[float, float, list[Timed]]:
    """Send `requests` through `pool` (its workers = the browser's connections; taken in order) and wait
    for all. `fetch` returns whether the answer came from the cache, raises on an error. Returns the
    start, the seconds until the last answer, and each request's timing in the order given."""

    def one(req: T) -> Timed:
        t0 = clock()
        try:
            cached = fetch(req)
        except Exception as exc:  # every failure counts as an error of this request, never ends the user
            return Timed(t0, clock() - t0, False, f"{type(exc).__name__}: {str(exc)[:200]}")
        return Timed(t0, clock() - t0, bool(cached))

    start = clock()
    futures = [pool.submit(one, r) for r in requests]
    timed = [f.result() for f in futures]
    return start, clock() - start, timed


def as_visit(requests: Sequence[CapturedRequest], key: str) -> list[CapturedRequest]:
    """Pure: `requests` as another visit of the dashboard sends them. Superset gives every visit a
    native_filters_key of its own, and Chrome sends it in form_data.url_params of the native filters' value
    requests (and of any request captured with one); a replay of one captured key would make every visit
    look like the same one to anything keyed by the request."""
    out = []
    for req in requests:
        form_data = req.body.get("form_data")
        url_params = form_data.get("url_params") if isinstance(form_data, dict) else None
        if isinstance(url_params, dict) and (req.slice_id is None or "native_filters_key" in url_params):
            url_params = {**url_params, "native_filters_key": key}
            req = replace(req, body={**req.body, "form_data": {**form_data, "url_params": url_params}})
        out.append(req)
    return out


def pick_team(directory: Directory, n: int, rng: random.Random) -> list[tuple[str, str]]:
    """Pure: n (username, role) of the directory, roles in the directory's proportions (at least one of
    each role it has): "leader" (leaders and deputies), "analyst", "member" (everyone else); no admins.
    Users repeat only when the directory has fewer than n."""
    admins = set(directory.admins)
    analysts = [u for u in directory.analysts if u not in admins]
    leaders = sorted({u for g in directory.groups for u in (*g.leaders, *g.deputies)} - admins - set(analysts))
    taken = admins | set(analysts) | set(leaders)
    members = sorted(set(directory.usernames) - taken)  # group members, and users in no group
    pools = {"leader": leaders, "analyst": analysts, "member": members}
    total = sum(len(p) for p in pools.values())
    if total == 0:
        raise ValueError("the directory has no users to simulate")
    want = {role: max(1, round(n * len(p) / total)) if p else 0 for role, p in pools.items()}
    want["member"] = max(0, n - want["leader"] - want["analyst"]) if members else want["member"]
    team: list[tuple[str, str]] = []
    for role, pool in pools.items():
        chosen = rng.sample(pool, min(want[role], len(pool)))
        team += [(u, role) for u in chosen]
    every = [(u, role) for role, pool in pools.items() for u in pool]
    while len(team) < n:  # fewer users than wanted: some open a second browser
        team.append(every[len(team) % len(every)])
    return team[:n]


def classify(opens: Sequence[DashboardOpen], publishes: Sequence[float]) -> list[str]:
    """Pure: per open "start" (the first of its dashboard before any publish), "first" (the first of its
    dashboard after a publish, by whichever user) or "repeat". Publishes are the clock times they were
    done; an open belongs to the publish before its start."""
    labels = [""] * len(opens)
    seen: set[tuple[int, str]] = set()
    for i in sorted(range(len(opens)), key=lambda k: opens[k].start):
        epoch = sum(1 for p in publishes if p <= opens[i].start)
        key = (epoch, opens[i].slug)
        labels[i] = "repeat" if key in seen else ("first" if epoch else "start")
        seen.add(key)
    return labels


def _ms(values: Sequence[float], p: float) -> float | None:
    return round(percentile(values, p) * 1000, 1) if values else None


def _spread(values: Sequence[float]) -> dict[str, Any]:
    return {"n": len(values), "p50_ms": _ms(values, 50), "p95_ms": _ms(values, 95)}


def summarize(opens: Sequence[DashboardOpen], publishes: Sequence[float], **extra: Any) -> dict[str, Any]:
    """Pure: the team load's figures. Dashboards: the seconds of whole opens; charts: of every request."""
    labels = classify(opens, publishes)
    requests = [r for o in opens for r in o.requests]
    errors = [r.error for r in requests if r.error]

    def part(label: str) -> dict[str, Any]:
        chosen = [o for o, lab in zip(opens, labels, strict=True) if lab == label]
        reqs = [r for o in chosen for r in o.requests]
        cached = sum(r.cached for r in reqs)
        return {**_spread([o.seconds for o in chosen]), "requests_cached": f"{cached}/{len(reqs)}"}

    first_publish = min(publishes, default=float("inf"))
    settled = min((o.start for o in opens), default=0.0) + ARRIVAL_S
    before = [o.seconds for o in opens if o.start < first_publish]
    after = [o.seconds for o in opens if o.start >= first_publish]
    per_dashboard = {
        slug: _spread([o.seconds for o in opens if o.slug == slug]) for slug in sorted({o.slug for o in opens})
    }
    return {
        **extra,
        "opens": len(opens),
        "requests": len(requests),
        "errors": len(errors),
        "error_samples": errors[:5],
        "dashboard": _spread([o.seconds for o in opens]),
        # opens that started before the (first) publish, and after it: the steady state beside a publish's
        "dashboard_before_publish": _spread(before),
        "dashboard_after_publish": _spread(after),
        # opens that started after the team's first minute: the day, without the arrival of all at once
        "dashboard_after_arrival": _spread([o.seconds for o in opens if o.start >= settled]),
        "chart": _spread([r.seconds for r in requests]),
        "start_open": part("start"),
        "first_after_publish": {
            **part("first"),
            "seconds": [round(o.seconds, 2) for o, lab in zip(opens, labels, strict=True) if lab == "first"],
        },
        "repeat_open": part("repeat"),
        "per_dashboard": per_dashboard,
        "publishes": len(publishes),
        "slowest": _slowest(opens, requests),
    }


def _slowest(opens: Sequence[DashboardOpen], requests: Sequence[Timed]) -> dict[str, Any] | None:
    """The slowest open (its seconds, when it started after the first open, the dashboard) and the slowest
    chart request: what a p95 leaves out - a stalled request shows here."""
    if not opens:
        return None
    worst = max(opens, key=lambda o: o.seconds)
    return {
        "open_ms": round(worst.seconds * 1000, 1),
        "open_started_s": round(worst.start - min(o.start for o in opens), 1),
        "open_slug": worst.slug,
        "chart_ms": round(max((r.seconds for r in requests), default=0.0) * 1000, 1),
    }


def replay(session: Any, base_url: str, req: CapturedRequest, timeout: float) -> bool:
    """One captured chart-data request as the logged-in user of `session`; whether every query of it came
    from the cache. Raises on an HTTP error or a query's error."""
    r = session.post(
        f"{base_url}{req.path}",
        data=json.dumps(req.body),
        headers={"Content-Type": "application/json"},
        timeout=timeout,
    )
    if r.status_code != 200:
        raise RuntimeError(f"HTTP {r.status_code}: {r.text[:200]}")
    results = r.json().get("result", [])
    for res in results:
        if res.get("error") or res.get("status") not in (None, "success"):
            raise RuntimeError(f"chart {req.slice_id}: {res.get('error') or res.get('status')}")
    return bool(results) and all(res.get("is_cached") for res in results)


def run_team(
    login: Callable[[str], Any],
    base_url: str,
    team: Sequence[tuple[str, str]],
    captured: Mapping[str, Sequence[CapturedRequest]],
    opts: TeamOptions,
    publish: Callable[[], None],
    timeout: float = 120.0,
) -> dict[str, Any]:
    """Every user of `team` logs in (`login(username)` -> a SupersetClient) and opens random dashboards
    of `captured`, thinking in between, for opts.minutes; one publish half-way. Returns summarize()."""
    import requests as http

    slugs = sorted(captured)
    lock = threading.Lock()
    opens: list[DashboardOpen] = []
    logins: list[float] = []
    failures: list[str] = []
    t0 = time.monotonic()
    stop_at = t0 + opts.minutes * 60

    def user(index: int, username: str) -> None:
        rng = random.Random(opts.seed * 1000 + index)
        try:
            started = time.monotonic()
            client = login(username)
            with lock:
                logins.append(time.monotonic() - started)
        except Exception as exc:  # a failed login is an error of the run
            with lock:
                failures.append(f"login {username}: {type(exc).__name__}: {str(exc)[:200]}")
            return
        # The browser's connection limit: at most `parallel` requests of this user on the wire at once.
        adapter = http.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=opts.parallel, pool_block=True)
        client.session.mount("http://", adapter)
        with ThreadPoolExecutor(max_workers=opts.parallel, thread_name_prefix=f"user{index}") as pool:
            visits = 0
            while time.monotonic() < stop_at:
                slug = rng.choice(slugs)
                visits += 1
                start, seconds, timed = open_dashboard(
                    lambda req: replay(client.session, base_url, req, timeout),
                    as_visit(captured[slug], f"bench-u{index}-v{visits}"),
                    pool,
                )
                with lock:
                    opens.append(DashboardOpen(username, slug, start, seconds, timed))
                time.sleep(max(0.0, min(rng.uniform(*opts.think), stop_at - time.monotonic())))

    threads = [threading.Thread(target=user, args=(i, u), daemon=True) for i, (u, _) in enumerate(team)]
    for t in threads:
        t.start()
    publishes: list[float] = []
    time.sleep(max(0.0, t0 + opts.minutes * 30 - time.monotonic()))
    publish_started = time.monotonic()
    publish()
    publishes.append(time.monotonic())
    for t in threads:
        t.join(timeout=opts.minutes * 60 + 600)
    roles: dict[str, int] = {}
    for _, role in team:
        roles[role] = roles.get(role, 0) + 1
    result = summarize(
        opens,
        publishes,
        users=len(team),
        roles=roles,
        minutes=opts.minutes,
        think_s=list(opts.think),
        parallel=opts.parallel,
        seconds=round(time.monotonic() - t0, 1),
        publish_s=round(publishes[0] - publish_started, 2),
        login=_spread(logins),
    )
    result["errors"] += len(failures)
    result["error_samples"] = (failures + result["error_samples"])[:5]
    return result
