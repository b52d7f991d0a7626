"""The chart-data requests Superset's frontend really sends when a dashboard opens, captured once from a
real browser (Debian chromium, headless, selenium) through Chrome's DevTools performance log.

Every `POST /api/v1/chart/data` of the open is kept as sent: the URL with its query string (form_data
with the slice id, dashboard_id), the JSON body (the query context with the dashboard's default native
filters applied, `force` as the browser set it) and the response status. A request without a slice id
is a native filter asking for its values. The night's cache warm-up (warm_cache.py) runs them as one viewer
of each visibility set, the benchmark's team load (bench/team.py) as every simulated user: Superset applies
each user's row-level security itself, as it would to that user's browser.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# As tests/browser.py starts it; a tall window so that every chart of a dashboard is in view.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--window-size=1600,6000",
)
CHART_DATA = "/api/v1/chart/data"


@dataclass(frozen=True)
class CapturedRequest:
    """One chart-data request of a dashboard open, in the order the browser sent it."""

    path: str  # path and query string as sent, e.g. /api/v1/chart/data?form_data=...&dashboard_id=3
    body: dict[str, Any]
    slice_id: int | None  # None: a native filter's values
    status: int | None  # the response's HTTP status in the capture (None: no response seen)

    @property
    def queries(self) -> int:
        return len(self.body.get("queries", []))

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "body": self.body, "slice_id": self.slice_id, "status": self.status}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> CapturedRequest:
        return cls(d["path"], d["body"], d["slice_id"], d["status"])


def _slice_id(url: str, body: Mapping[str, Any]) -> int | None:
    """The chart's id: form_data={"slice_id": N} in the query string, else the body's form_data."""
    for raw in parse_qs(urlsplit(url).query).get("form_data", []):
        try:
            sid = json.loads(raw).get("slice_id")
        except (ValueError, AttributeError):
            continue
        if sid is not None:
            return int(sid)
    sid = (body.get("form_data") or {}).get("slice_id")
    return int(sid) if sid is not None else None


def parse_performance_log(
    entries: Iterable[Mapping[str, Any]], post_data: Callable[[str], str | None] | None = None
) -> list[CapturedRequest]:
    """Pure: the chart-data POSTs of a performance log (`driver.get_log("performance")`: entries whose
    "message" is the JSON of a DevTools event), in the order sent, each with its response status.
    `post_data(request_id)` fetches a body Chrome left out of the event (hasPostData without postData)."""
    sent: dict[str, tuple[str, str | None]] = {}
    order: list[str] = []
    status: dict[str, int] = {}
    for entry in entries:
        event = json.loads(entry["message"])["message"]
        params = event.get("params", {})
        if event.get("method") == "Network.requestWillBeSent":
            req = params["request"]
            if req.get("method") == "POST" and urlsplit(req["url"]).path.rstrip("/") == CHART_DATA:
                rid = params["requestId"]
                body = req.get("postData")
                if body is None and req.get("hasPostData") and post_data is not None:
                    body = post_data(rid)
                if rid not in sent:
                    order.append(rid)
                sent[rid] = (req["url"], body)
        elif event.get("method") == "Network.responseReceived":
            status[params["requestId"]] = int(params["response"]["status"])
    out = []
    for rid in order:
        url, raw = sent[rid]
        body = json.loads(raw) if raw else {}
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        out.append(CapturedRequest(path, body, _slice_id(url, body), status.get(rid)))
    return out


def verify_capture(slug: str, captured: list[CapturedRequest], chart_ids: Iterable[int]) -> list[str]:
    """Pure: what is wrong with a dashboard's capture (empty: nothing). Every chart of the dashboard sent
    at least one request (a chart may send two), no request for a chart elsewhere, every response 200."""
    problems = []
    expected = set(chart_ids)
    seen = {c.slice_id for c in captured if c.slice_id is not None}
    if missing := sorted(expected - seen):
        problems.append(f"{slug}: no request for chart(s) {missing}")
    if foreign := sorted(seen - expected):
        problems.append(f"{slug}: requests for chart(s) not on the dashboard {foreign}")
    if bad := [(c.slice_id, c.status) for c in captured if c.status != 200]:
        problems.append(f"{slug}: responses not 200: {bad}")
    return problems


def _driver() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        raise RuntimeError("capturing the dashboards' requests needs Debian chromium + chromium-driver (apt)")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for arg in CHROMIUM_ARGS:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


def _wait(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)
    return value


def _browser_login(driver: Any, url: str, username: str, password: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{url}/login/")
    _wait(lambda: driver.find_elements(By.CSS_SELECTOR, "[data-test=username-input]"), 60, "the login form")
    driver.find_element(By.CSS_SELECTOR, "[data-test=username-input]").send_keys(username)
    driver.find_element(By.CSS_SELECTOR, "[data-test=password-input]").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "[data-test=login-button]").click()
    try:
        _wait(lambda: "/login" not in driver.current_url, 120, f"{username} to be logged in")
    except TimeoutError as exc:
        alerts = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "[role=alert], .ant-alert") if e.text]
        raise TimeoutError(f"{exc} (at {driver.current_url}; {alerts or 'no message'})") from exc


def _open_and_log(driver: Any, url: str, slug: str, quiet: float, timeout: float) -> list[dict[str, Any]]:
    """Open the dashboard and collect the performance log until no chart-data request is in flight and
    none was sent for `quiet` seconds."""
    driver.get_log("performance")  # drop what came before
    driver.get(f"{url}/superset/dashboard/{slug}/")
    entries: list[dict[str, Any]] = []
    pending: set[str] = set()
    seen = 0
    last_change = time.monotonic()
    deadline = last_change + timeout
    while time.monotonic() < deadline:
        time.sleep(0.5)
        driver.execute_script("window.scrollTo(0, document.body.scrollHeight)")  # any chart out of view
        for entry in driver.get_log("performance"):
            event = json.loads(entry["message"])["message"]
            params, method = event.get("params", {}), event.get("method")
            if method == "Network.requestWillBeSent" and CHART_DATA in params.get("request", {}).get("url", ""):
                pending.add(params["requestId"])
                seen += 1
                last_change = time.monotonic()
            elif method in ("Network.loadingFinished", "Network.loadingFailed") and params.get("requestId") in pending:
                pending.discard(params["requestId"])
                last_change = time.monotonic()
            entries.append(entry)
        if seen and not pending and time.monotonic() - last_change >= quiet:
            return entries
    raise TimeoutError(f"{slug}: chart-data requests still open after {timeout:.0f} s ({len(pending)} pending)")


def capture_dashboards(
    url: str, username: str, password: str, slugs: Iterable[str], quiet: float = 4.0, timeout: float = 180.0
) -> dict[str, list[CapturedRequest]]:
    """Log in as `username` in a real browser and open each dashboard once: its chart-data requests."""
    driver = _driver()
    try:
        _browser_login(driver, url, username, password)
        out = {}
        for slug in slugs:
            entries = _open_and_log(driver, url, slug, quiet, timeout)

            def body(rid: str) -> str | None:
                return driver.execute_cdp_cmd("Network.getRequestPostData", {"requestId": rid}).get("postData")

            out[slug] = parse_performance_log(entries, body)
        return out
    finally:
        driver.quit()
