"""Login throttling (superset/login_guard.py) on a real Superset over HTTP: a burst of wrong passwords on the
REST login and on the login form is refused with 429 within the burst, the right password too while the
block lasts and again accepted after it, one burst is one `login_burst` security event without passwords or
typed names, and many successful logins from one address are never throttled.

The suite's shared server runs with a raised per-address limit; these tests start a sibling server on the
same metadata with short rules - once with the counts in the SQLite file beside the metadata, once in Redis
(production) - and run sequentially: each test ends with the blocks it caused expired."""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from callsight.bi.api import SupersetClient
from callsight.site.directory import load_directory

from .conftest import SupersetServer, reachable, redis_command, require_service

pytestmark = pytest.mark.superset

# The sibling's rules: (failures, seconds) - at `failures` within `seconds`, refused for `seconds`.
ADDRESS_LIMIT, ACCOUNT_LIMIT, PERIOD = 6, 4, 6
REDIS_DB = 10
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"


@dataclass
class Guarded:
    url: str
    server: SupersetServer
    store: str

    @property
    def events(self) -> Path:
        return self.server.site.settings.home / "superset" / "security-events.jsonl"

    @property
    def password(self) -> str:
        return self.server.user_password

    def clear(self) -> None:
        """Forget all counts and blocks of the store the sibling uses."""
        if self.store == "redis":
            redis_command(REDIS_DB, "FLUSHDB")
            return
        path = self.server.site.settings.home / "superset" / "login-guard.sqlite"
        if path.exists():
            with contextlib.closing(sqlite3.connect(path)) as con, con:
                tables = {name for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                for table in tables & {"counts", "blocks"}:
                    con.execute(f"DELETE FROM {table}")

    def users(self) -> list[str]:
        return [u.username for u in load_directory(self.server.site.settings.effective_directory_path).users]


@pytest.fixture(scope="module", params=["file", "redis"], ids=["sqlite-store", "redis-store"])
def guarded(request: pytest.FixtureRequest, superset_server: SupersetServer) -> Iterator[Guarded]:
    """A sibling Superset with the real login throttle (short rules); counts in SQLite, then in Redis."""
    env = {
        "CALLSIGHT_AUTH_RATE_LIMIT": f"{ADDRESS_LIMIT} per {PERIOD} seconds",
        "CALLSIGHT_AUTH_ACCOUNT_RATE_LIMIT": f"{ACCOUNT_LIMIT} per {PERIOD} seconds",
        "CALLSIGHT_REDIS_URL": "",
    }
    if request.param == "redis":
        require_service(reachable(("127.0.0.1", 6379)), "Redis on 127.0.0.1:6379 (the login throttle's shared store)")
        env["CALLSIGHT_REDIS_URL"] = REDIS_URL
    with superset_server.sibling(f"superset-login-guard-{request.param}.log", **env) as url:
        yield Guarded(url, superset_server, request.param)


@pytest.fixture(autouse=True)
def fresh_counts(guarded: Guarded) -> Iterator[None]:
    """Each test starts with no counts and leaves none (a failed test's block would fail the next ones, and
    the SQLite store is the shared server's too)."""
    guarded.clear()
    yield
    guarded.clear()


def rest_login(url: str, username: str, password: str) -> str:
    """ok | failed | throttled (or the unexpected status)."""
    r = requests.post(
        f"{url}/api/v1/security/login",
        json={"username": username, "password": password, "provider": "db", "refresh": False},
        timeout=60,
    )
    if r.status_code == 429:
        assert username not in r.text and "user" not in r.text.lower(), r.text  # no detail
    return {200: "ok", 401: "failed", 429: "throttled"}.get(r.status_code, f"HTTP {r.status_code}: {r.text[:300]}")


class FormLogin:
    """The login form as a browser posts it (one session, its CSRF token)."""

    def __init__(self, url: str):
        self.url = url
        self.web = requests.Session()
        page = self.web.get(f"{url}/login/", timeout=60).text
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page) or re.search(
            r'value="([^"]+)"[^>]*name="csrf_token"', page
        )
        assert token, "the login form has a CSRF token"
        self.token = token.group(1)

    def __call__(self, username: str, password: str) -> str:
        r = self.web.post(
            f"{self.url}/login/",
            data={"username": username, "password": password, "csrf_token": self.token},
            allow_redirects=False,
            timeout=60,
        )
        if r.status_code == 302:  # back to the form after a failure, elsewhere when logged in
            return "failed" if urlsplit(r.headers["Location"]).path.startswith("/login") else "ok"
        if r.status_code == 429:
            assert username not in r.text, r.text
            return "throttled"
        return f"HTTP {r.status_code}: {r.text[:300]}"


def event_offset(g: Guarded) -> int:
    return g.events.stat().st_size if g.events.exists() else 0


def events_since(g: Guarded, offset: int) -> tuple[str, list[dict]]:
    if not g.events.exists():
        return "", []
    with g.events.open("rb") as f:
        f.seek(offset)
        text = f.read().decode()
    return text, [json.loads(line) for line in text.splitlines()]


def wait_until_accepted(login, username: str, password: str) -> float:
    """Seconds until the right password is accepted again (refused with 429 until then)."""
    start = time.monotonic()
    while True:
        outcome = login(username, password)
        if outcome == "ok":
            return time.monotonic() - start
        assert outcome == "throttled", outcome
        assert time.monotonic() - start < PERIOD + 20, "still refused long after the block's period"
        time.sleep(0.5)


def test_a_burst_on_one_account_over_rest_is_refused_and_recorded_once(guarded: Guarded) -> None:
    url, user, password = guarded.url, guarded.users()[0], guarded.password
    offset = event_offset(guarded)
    wrong = f"wrong-{secrets.token_hex(8)}"

    outcomes = [rest_login(url, user, wrong) for _ in range(ACCOUNT_LIMIT + 4)]
    assert outcomes == ["failed"] * ACCOUNT_LIMIT + ["throttled"] * 4, outcomes
    # The account is blocked, not the attempt: its right password is refused too, on both logins.
    assert rest_login(url, user, password) == "throttled"
    assert FormLogin(url)(user, password) == "throttled"

    text, events = events_since(guarded, offset)
    bursts = [e for e in events if e["event"] == "login_burst"]
    assert len(bursts) == 1, events
    assert wrong not in text and password not in text and user not in text

    waited = wait_until_accepted(lambda u, p: rest_login(url, u, p), user, password)
    assert waited > PERIOD / 2, f"accepted again {waited:.1f} s after the burst: the block did not hold"
    me = SupersetClient(url).login(user, password).get("/api/v1/me/")["result"]
    (burst,) = bursts
    assert burst["subject"] == f"user:{me['id']}"
    assert (burst["rule"], burst["failures"], burst["window_seconds"]) == ("account", ACCOUNT_LIMIT, PERIOD)
    # refusals and the successful login afterwards add no event
    assert [e for e in events_since(guarded, offset)[1] if e["event"] == "login_burst"] == bursts


def test_a_burst_from_one_address_over_the_form_is_refused_and_recorded_once(guarded: Guarded) -> None:
    url, user, password = guarded.url, guarded.users()[1], guarded.password
    offset = event_offset(guarded)
    wrong = f"wrong-{secrets.token_hex(8)}"
    # Guessing across names (none of them an account): each name once, so only the address rule counts.
    names = [f"nobody-{secrets.token_hex(4)}-{i}" for i in range(ADDRESS_LIMIT + 3)]
    form = FormLogin(url)

    outcomes = [form(name, wrong) for name in names]
    assert outcomes == ["failed"] * ADDRESS_LIMIT + ["throttled"] * 3, outcomes
    # Everybody at that address is refused for the period, over either login.
    assert form(user, password) == "throttled"
    assert rest_login(url, user, password) == "throttled"

    text, events = events_since(guarded, offset)
    bursts = [e for e in events if e["event"] == "login_burst"]
    assert len(bursts) == 1, events
    (burst,) = bursts
    assert burst["subject"] == "127.0.0.1"
    assert (burst["rule"], burst["failures"], burst["window_seconds"]) == ("address", ADDRESS_LIMIT, PERIOD)
    assert wrong not in text and password not in text
    assert not any(name in text for name in names), "a typed name that is no account reached the event log"

    waited = wait_until_accepted(FormLogin(url), user, password)
    assert waited > PERIOD / 2, f"accepted again {waited:.1f} s after the burst: the block did not hold"
    assert [e for e in events_since(guarded, offset)[1] if e["event"] == "login_burst"] == bursts


def test_many_successful_logins_from_one_address_are_not_throttled(guarded: Guarded) -> None:
    """A company behind one proxy at 9 a.m.: every user logs in at once, a few mistype first."""
    url, password = guarded.url, guarded.password
    users = guarded.users()
    assert len(users) > 2 * (ADDRESS_LIMIT + ACCOUNT_LIMIT)
    offset = event_offset(guarded)
    typos = [rest_login(url, u, password + "x") for u in users[: ADDRESS_LIMIT - 1]]
    assert typos == ["failed"] * (ADDRESS_LIMIT - 1)

    def both(user: str) -> tuple[str, str]:
        return rest_login(url, user, password), FormLogin(url)(user, password)

    with ThreadPoolExecutor(4) as pool:
        outcomes = dict(zip(users, pool.map(both, users), strict=True))
    assert outcomes == dict.fromkeys(users, ("ok", "ok"))
    assert not [e for e in events_since(guarded, offset)[1] if e["event"] == "login_burst"]
