"""A real browser (Debian chromium, headless, driven by selenium) looking at Superset dashboards."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from callsight.bi.capture import CHROMEDRIVER, CHROMIUM
from callsight.bi.capture import CHROMIUM_ARGS as CAPTURE_ARGS

from .conftest import require_service

# Headless Chromium on this kind of machine needs these (TOOLCHAIN.md); a window of a dashboard's width.
CHROMIUM_ARGS = (*(a for a in CAPTURE_ARGS if not a.startswith("--window-size=")), "--window-size=1600,2400")
CHART = "[data-test-chart-id]"
LOADING = "[data-test=loading-indicator], .loading"
ERROR = "[role=alert], [data-test=error-tooltip], .ant-alert-error"


@dataclass
class RenderedChart:
    chart_id: int
    name: str
    viz_type: str
    text: str


@contextmanager
def chromium(extra_args: tuple[str, ...] = ()) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    require_service(CHROMIUM.exists() and CHROMEDRIVER.exists(), "Debian chromium + chromium-driver (apt)")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for arg in CHROMIUM_ARGS + extra_args:
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def login(driver, base_url: str, username: str, password: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{base_url}/login/")
    wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "[data-test=username-input]"), 30, "the login form")
    driver.find_element(By.CSS_SELECTOR, "[data-test=username-input]").send_keys(username)
    driver.find_element(By.CSS_SELECTOR, "[data-test=password-input]").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "[data-test=login-button]").click()
    wait_for(lambda: "/login" not in driver.current_url, 30, f"{username} to be logged in")


def bootstrap(driver) -> dict:
    """Superset's bootstrap data of the current page (user, locale, ...)."""
    from selenium.webdriver.common.by import By

    return json.loads(driver.find_element(By.CSS_SELECTOR, "#app").get_attribute("data-bootstrap"))


def open_dashboard(driver, base_url: str, slug: str, n_charts: int, timeout: float = 120) -> list[RenderedChart]:
    """Open a dashboard and wait until all its charts have rendered; raise on any chart error."""
    from selenium.webdriver.common.by import By

    driver.get(f"{base_url}/superset/dashboard/{slug}/")

    def rendered() -> list | None:
        errors = [e.text.strip() for e in driver.find_elements(By.CSS_SELECTOR, ERROR) if e.text.strip()]
        if errors:
            raise AssertionError(f"dashboard {slug}: chart error(s): {errors}")
        holders = driver.find_elements(By.CSS_SELECTOR, CHART)
        if len(holders) < n_charts or driver.find_elements(By.CSS_SELECTOR, LOADING):
            return None
        out = []
        for h in holders:
            body = h.find_elements(By.CSS_SELECTOR, "[data-test=slice-container]")
            # A chart has rendered when its container holds the drawing: text, a table or a canvas/svg.
            if not body or not (body[0].text.strip() or body[0].find_elements(By.CSS_SELECTOR, "canvas, svg")):
                return None
            out.append(
                RenderedChart(
                    int(h.get_attribute("data-test-chart-id")),
                    h.get_attribute("data-test-chart-name"),
                    h.get_attribute("data-test-viz-type"),
                    body[0].text,
                )
            )
        return out

    charts = wait_for(rendered, timeout, f"all {n_charts} charts of {slug} to render")
    time.sleep(1)  # animations settle before the screenshot
    return charts


def screenshot(driver, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
    return path


def german_number(text: str) -> float:
    """'2.778' -> 2778, '79,8%' -> 0.798, '11,1' -> 11.1 (German d3 locale)."""
    t = text.strip().rstrip("↑↓").strip()
    percent = t.endswith("%")
    value = float(t.rstrip("%").replace(".", "").replace(",", "."))
    return value / 100 if percent else value


__all__ = ["bootstrap", "chromium", "german_number", "login", "open_dashboard", "screenshot"]
