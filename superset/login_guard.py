"""Login throttling for Superset that really triggers, on the login form (POST /login/) and the REST login
(POST /api/v1/security/login) alike, with DB and LDAP logins.

Why Superset's own throttle never triggered: Flask-AppBuilder's AUTH_RATE_LIMIT is a Flask-Limiter limit,
Flask-Limiter is off unless SUPERSET_ENV=production (RATELIMIT_ENABLED), and even switched on Superset 6.1
puts it on its React login view, which answers GET only - the form's POST goes to Flask-AppBuilder's
AuthDBView and the REST login to SecurityApi, neither limited. It also counted every attempt, successes
included, per client address: a company behind one proxy logging in at 9 a.m. would have been refused.

Here FAILED logins are counted, under two rules (superset_config.py: CALLSIGHT_LOGIN_GUARD):
* per client address ("30 per minute"): one source guessing passwords of many accounts;
* per account ("10 per 5 minutes"): many sources guessing one account's password. A name that is no
  account is counted under a keyed hash of what was typed, like an account: the answers do not tell which
  names exist.
When a rule reaches its limit, that address or account is refused with HTTP 429 (no detail) for the rule's
period - its correct password too - and ONE `login_burst` security event is written (security_events.py).
Refused attempts are not counted, so a block ends one period after the burst. A successful login clears
its account's count (not its address's).

The counts are shared by all gunicorn workers: in Redis when CALLSIGHT_REDIS_URL is set (production: also
shared by Superset web servers on several hosts), otherwise in a small SQLite file beside the metadata
(CALLSIGHT_HOME/superset/login-guard.sqlite, owner-only; one host). If the store fails, logins go on
unthrottled and the server log says so: a full disk must not lock everybody out.

Loaded by superset_config.py by path (this file is not in a package); Superset never imports callsight.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import importlib.util
import ipaddress
import logging
import os
import re
import sqlite3
import sys
import time
from dataclasses import dataclass
from typing import Any

from flask import Response, current_app, has_request_context, request
from superset.security import SupersetSecurityManager

log = logging.getLogger("callsight.login_guard")

# The two password logins and how they are named in an event.
LOGIN_PATHS = {"/login/": "form", "/api/v1/security/login": "api"}
REFUSED_API = '{"message": "Too Many Requests"}'
# The form's answer (a page the browser shows): which rule, how long or why stays unsaid.
REFUSED_FORM = (
    "Zu viele fehlgeschlagene Anmeldungen - bitte später erneut versuchen.\nToo many failed logins - try later.\n"
)
_RULE = re.compile(r"^\s*(\d+)\s*(?:per|/)\s*(\d+)?\s*(second|minute|hour|day)s?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


@dataclass(frozen=True)
class Rule:
    """At `limit` failures within `seconds` (counted from the first), refuse for `seconds`."""

    limit: int
    seconds: int

    @classmethod
    def parse(cls, text: str) -> Rule:
        """Flask-Limiter's notation: "30 per minute", "10 per 5 minutes", "5/second"."""
        match = _RULE.match(text or "")
        if not match or int(match.group(1)) < 1 or int(match.group(2) or 1) < 1:
            raise ValueError(f"login throttle: {text!r} is not a rule like '30 per minute' or '10 per 5 minutes'")
        count, every, unit = match.groups()
        return cls(int(count), int(every or 1) * _UNIT_SECONDS[unit.lower()])


class FileStore:
    """Counts and blocks in one SQLite file; SQLite's lock serialises the workers' updates."""

    def __init__(self, path: str):
        self.path = path
        self._created = False

    @contextlib.contextmanager
    def _db(self):
        if not self._created:
            os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))  # owner-only before SQLite opens it
        con = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        try:
            if not self._created:
                con.execute("CREATE TABLE IF NOT EXISTS counts (key TEXT PRIMARY KEY, n INTEGER, expires REAL)")
                con.execute("CREATE TABLE IF NOT EXISTS blocks (key TEXT PRIMARY KEY, until REAL)")
                self._created = True
            yield con
        finally:
            con.close()

    def blocked(self, keys: list[str]) -> bool:
        marks = ",".join("?" * len(keys))
        with self._db() as con:
            sql = f"SELECT 1 FROM blocks WHERE until > ? AND key IN ({marks}) LIMIT 1"
            return con.execute(sql, (time.time(), *keys)).fetchone() is not None

    def fail(self, key: str, rule: Rule) -> int | None:
        """Count a failure; the count when it reaches the limit (the key is then blocked), else None."""
        now = time.time()
        with self._db() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                con.execute("DELETE FROM counts WHERE expires <= ?", (now,))
                con.execute("DELETE FROM blocks WHERE until <= ?", (now,))
                con.execute(
                    "INSERT INTO counts VALUES (?, 1, ?) ON CONFLICT (key) DO UPDATE SET n = n + 1",
                    (key, now + rule.seconds),
                )
                (n,) = con.execute("SELECT n FROM counts WHERE key = ?", (key,)).fetchone()
                if n >= rule.limit:
                    con.execute("DELETE FROM counts WHERE key = ?", (key,))
                    con.execute("INSERT OR REPLACE INTO blocks VALUES (?, ?)", (key, now + rule.seconds))
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return n if n >= rule.limit else None

    def clear(self, key: str) -> None:
        with self._db() as con:
            con.execute("DELETE FROM counts WHERE key = ?", (key,))


class RedisStore:
    """The same in Redis: one atomic script per failure, keys expire by themselves."""

    _FAIL = """
    local n = redis.call('INCR', KEYS[1])
    if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
    if n >= tonumber(ARGV[1]) then
      redis.call('DEL', KEYS[1])
      redis.call('SET', KEYS[2], '1', 'EX', ARGV[2])
      return n
    end
    return 0
    """

    def __init__(self, url: str, prefix: str):
        import redis

        self.redis = redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3)
        self.prefix = prefix
        self._fail = self.redis.register_script(self._FAIL)

    def blocked(self, keys: list[str]) -> bool:
        return self.redis.exists(*(f"{self.prefix}block:{k}" for k in keys)) > 0

    def fail(self, key: str, rule: Rule) -> int | None:
        keys = [f"{self.prefix}fail:{key}", f"{self.prefix}block:{key}"]
        return int(self._fail(keys=keys, args=[rule.limit, rule.seconds])) or None

    def clear(self, key: str) -> None:
        self.redis.delete(f"{self.prefix}fail:{key}")


@dataclass(frozen=True)
class Account:
    key: str  # "user:<id>" or "name:<keyed hash of the typed name>"
    subject: str  # what an event names: "user:<id>", or "user:unknown" (never the typed text)
    name_hash: str | None = None


class LoginGuard:
    def __init__(self, config: dict[str, Any], secret_key: str, metadata_uri: str):
        self.address_rule = Rule.parse(config["address"])
        self.account_rule = Rule.parse(config["account"])
        self._secret = secret_key.encode()
        if config.get("redis_url"):
            # One installation = one metadata DB: its user ids are what the keys count.
            namespace = hashlib.sha256(metadata_uri.encode()).hexdigest()[:12]
            self.store: FileStore | RedisStore = RedisStore(config["redis_url"], f"callsight:login:{namespace}:")
        else:
            self.store = FileStore(config["state_file"])
        log.info(
            "login throttle: %s failures per %s s per address, %s per %s s per account, counted in %s",
            self.address_rule.limit,
            self.address_rule.seconds,
            self.account_rule.limit,
            self.account_rule.seconds,
            type(self.store).__name__,
        )

    def name_hash(self, typed: str) -> str:
        return hmac.new(self._secret, typed.strip().lower().encode(), hashlib.sha256).hexdigest()[:16]

    def refused(self, address: str, account: Account | None) -> bool:
        keys = [f"addr:{address}"] + ([account.key] if account else [])
        try:
            return self.store.blocked(keys)
        except Exception:
            log.exception("login throttle: the store failed; this login is not throttled")
            return False

    def failed(self, address: str, account: Account | None, via: str) -> None:
        try:
            address_burst = self.store.fail(f"addr:{address}", self.address_rule)
            account_burst = self.store.fail(account.key, self.account_rule) if account else None
        except Exception:
            log.exception("login throttle: the store failed; this failed login is not counted")
            return
        if address_burst:
            self._burst(address, address_burst, self.address_rule, rule="address", via=via)
        if account and account_burst:
            extra = {"address": address} | ({"name_hash": account.name_hash} if account.name_hash else {})
            self._burst(account.subject, account_burst, self.account_rule, rule="account", via=via, **extra)

    def succeeded(self, account: Account) -> None:
        try:
            self.store.clear(account.key)
        except Exception:
            log.exception("login throttle: the store failed")

    @staticmethod
    def _burst(subject: str, failures: int, limit: Rule, **detail: Any) -> None:
        """One event per burst: written by the failure that reached the limit (the store says which)."""
        _security_events().record(
            "login_burst",
            subject=subject,
            failures=failures,
            window_seconds=limit.seconds,
            blocked_seconds=limit.seconds,
            **detail,
        )


def _security_events() -> Any:
    """security_events.py, registered as superset_config's _load_beside does (one module whoever loads it)."""
    name = "callsight_security_events"
    if name not in sys.modules:
        path = os.path.join(os.path.dirname(__file__), "security_events.py")
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def client_address() -> str:
    """The address the request came from (behind a proxy: what Superset's ENABLE_PROXY_FIX makes of it). IPv6
    clients count per /64, which one client usually holds whole."""
    raw = request.remote_addr or "unknown"
    try:
        ip = ipaddress.ip_address(raw)
    except ValueError:
        return raw[:100]
    if ip.version == 6 and ip.ipv4_mapped:
        return str(ip.ipv4_mapped)
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _typed_username() -> str | None:
    if request.path == "/api/v1/security/login":
        payload = request.get_json(silent=True)
        name = payload.get("username") if isinstance(payload, dict) else None
    else:
        name = request.form.get("username")
    return name if isinstance(name, str) and name.strip() else None


class LoginGuardSecurityManager(SupersetSecurityManager):
    """Superset's security manager plus the login throttle: three small overrides, nothing else changed."""

    def __init__(self, appbuilder: Any):
        super().__init__(appbuilder)
        config = current_app.config  # built at start: a rule that does not parse stops the server here
        self.login_guard = LoginGuard(
            config["CALLSIGHT_LOGIN_GUARD"], config["SECRET_KEY"], config["SQLALCHEMY_DATABASE_URI"]
        )

    def before_request(self) -> Response | None:
        # Flask-AppBuilder runs this before every view: a throttled login is answered here, before the
        # login views run (the REST one would turn any exception into a 500).
        super().before_request()
        via = LOGIN_PATHS.get(request.path) if request.method == "POST" else None
        if via is None or not self.login_guard.refused(client_address(), self._account(_typed_username())):
            return None
        if via == "api":
            return Response(REFUSED_API, 429, mimetype="application/json", headers={"Cache-Control": "no-store"})
        return Response(REFUSED_FORM, 429, mimetype="text/plain", headers={"Cache-Control": "no-store"})

    def auth_user_db(self, username: str, password: str) -> Any:  # form and REST login, provider "db": counted
        return self._counted(username, super().auth_user_db(username, password))

    def auth_user_ldap(self, username: str, password: str) -> Any:  # the same throttle for LDAP logins
        return self._counted(username, super().auth_user_ldap(username, password))

    def _counted(self, username: str | None, user: Any) -> Any:
        if has_request_context():
            guard = self.login_guard
            if user is not None:
                guard.succeeded(Account(f"user:{user.id}", f"user:{user.id}"))
            else:
                via = LOGIN_PATHS.get(request.path, "other")
                guard.failed(client_address(), self._account(username), via)
        return user

    def _account(self, typed: str | None) -> Account | None:
        """The account a typed name means (username or e-mail, as Flask-AppBuilder looks it up)."""
        if not isinstance(typed, str) or not typed.strip():
            return None
        user = self.find_user(username=typed) or self.find_user(email=typed)
        if user is not None:
            return Account(f"user:{user.id}", f"user:{user.id}")
        name_hash = self.login_guard.name_hash(typed)
        return Account(f"name:{name_hash}", "user:unknown", name_hash)
