# Apache Superset configuration for callsight. Loaded by Superset via SUPERSET_CONFIG_PATH.
# This file is configuration, not a Python package: it reads the environment when Superset starts.
# Secrets come from the environment or from files (<NAME>_FILE); there is no default secret key.
import os
from typing import Any

from celery.schedules import crontab


def _load_beside(name: str, filename: str):
    """A module beside this file (this file is loaded by path, not as a package), registered as `name`."""
    import importlib.util
    import sys

    if name not in sys.modules:
        path = os.path.join(os.path.dirname(__file__), filename)
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


# Secrets given as <NAME>_FILE (systemd credentials) become plain variables before anything below reads
# them or anything is written; a secret given both ways or an unusable file stops Superset here.
_load_beside("callsight_secret_files", "secret_files.py").export_secret_files(os.environ)

# Whatever a Superset process writes under CALLSIGHT_HOME (metadata, logs, caches) is owner-only, also
# when a service manager started it without UMask=0077.
os.umask(0o077)
_home = os.path.abspath(os.environ.get("CALLSIGHT_HOME", "var"))
_superset_home = os.path.join(_home, "superset")
os.makedirs(_superset_home, exist_ok=True)

SECRET_KEY = os.environ.get("SUPERSET_SECRET_KEY")
if not SECRET_KEY:
    raise RuntimeError(
        "SUPERSET_SECRET_KEY (or SUPERSET_SECRET_KEY_FILE) is not set. Generate one "
        "(e.g. `openssl rand -base64 42`) and keep it secret; "
        "`make demo` generates a demo key for you."
    )

DATA_DIR = _superset_home
# Metadata DB: SQLite in CALLSIGHT_HOME by default; PostgreSQL for the production profile
# (required for Alerts & Reports).
SQLALCHEMY_DATABASE_URI = os.environ.get(
    "SUPERSET_DATABASE_URI",
    f"sqlite:///{os.path.join(_superset_home, 'superset.db')}?check_same_thread=false",
)
if SQLALCHEMY_DATABASE_URI.startswith("sqlite:"):
    # Keep SQLite's connections (SQLAlchemy 2's default for a file; 1.4 opened a new one for each of the
    # four checkouts of a chart request, each reading the schema again); more than gunicorn's threads per worker.
    from sqlalchemy.pool import QueuePool

    SQLALCHEMY_ENGINE_OPTIONS = {"poolclass": QueuePool, "pool_size": 10, "max_overflow": 10}

FEATURE_FLAGS = {
    # Row-level security clauses and the datasets' SQL use Jinja (visibility.py, bi/assets.py).
    "ENABLE_TEMPLATE_PROCESSING": True,
    # SQL Lab obeys row-level security (for every table that has a dataset).
    "RLS_IN_SQLLAB": True,
    "ALERT_REPORTS": True,
    "DASHBOARD_RBAC": True,
    "EMBEDDED_SUPERSET": False,
    # Registers "Big Number with Time Period Comparison" (pop_kpi): the Management Summary's KPIs beside
    # the previous period of equal length.
    "CHART_PLUGINS_EXPERIMENTAL": True,
}

FAB_ADD_SECURITY_API = True
# Self-registration is off: users come from the org directory only.
AUTH_USER_REGISTRATION = False
PUBLIC_ROLE_LIKE = None

# German first, English switchable (flag menu in the navigation bar).
BABEL_DEFAULT_LOCALE = os.environ.get("CALLSIGHT_LOCALE", "de")
LANGUAGES = {
    "de": {"flag": "de", "name": "Deutsch"},
    "en": {"flag": "us", "name": "English"},
}

# German number format in charts: 1.234,5
D3_FORMAT = {"decimal": ",", "thousands": ".", "grouping": [3], "currency": ["", " €"]}

# ---- logins (login_guard.py) ----------------------------------------------------------------
# FAILED logins are counted per client address and per account, on the login form and the REST login
# alike, shared by all gunicorn workers (in Redis when CALLSIGHT_REDIS_URL is set, else in a small SQLite
# file beside the metadata). At a rule's limit the address or account is refused with HTTP 429 for the
# rule's period and one `login_burst` security event is written. Successful logins are not counted: a
# company behind one proxy (or the test suite) logs in many users at once. docs/access.md, "Logins".
CALLSIGHT_LOGIN_GUARD = {
    "address": os.environ.get("CALLSIGHT_AUTH_RATE_LIMIT", "30 per minute"),
    "account": os.environ.get("CALLSIGHT_AUTH_ACCOUNT_RATE_LIMIT", "10 per 5 minutes"),
    "redis_url": os.environ.get("CALLSIGHT_REDIS_URL"),
    "state_file": os.path.join(_superset_home, "login-guard.sqlite"),
}
# Flask-AppBuilder's AUTH_RATE_LIMIT never applied: Flask-Limiter is off unless SUPERSET_ENV=production, and
# Superset 6.1 puts that limit on its GET-only React login view, not on the form's POST nor the REST login.
# Off on purpose, and so is Flask-Limiter's app-wide limit (Superset: "50 per second" per client address):
# a dashboard asks for all its charts at once, and behind a reverse proxy all users are one address.
AUTH_RATE_LIMITED = False
RATELIMIT_ENABLED = False
RATELIMIT_APPLICATION = None


# Superset's security manager with three small overrides: refuse a throttled login before its view runs,
# count the failures of DB and LDAP logins.
CUSTOM_SECURITY_MANAGER = _load_beside("callsight_login_guard", "login_guard.py").LoginGuardSecurityManager

# LDAP / Active Directory logins (ldap_auth.py, docs/access.md "LDAP logins"): CALLSIGHT_AUTH=ldap; db (the
# default) keeps Superset's own passwords. The org directory still decides who exists and sees what.
_auth = os.environ.get("CALLSIGHT_AUTH", "db").strip().lower() or "db"
if _auth not in ("db", "ldap"):
    raise RuntimeError(f"CALLSIGHT_AUTH must be db or ldap, got {_auth!r}")
# The Celery worker and beat never log anyone in (report screenshots use Superset's machine login): they
# need neither the LDAP settings nor the bind password, which only the web unit is given.
if _auth == "ldap" and os.environ.get("CALLSIGHT_SUPERSET_PROCESS") != "celery":
    _ldap_auth = _load_beside("callsight_ldap_auth", "ldap_auth.py")
    globals().update(_ldap_auth.ldap_config(os.environ))
    CUSTOM_SECURITY_MANAGER = _ldap_auth.ldap_security_manager(
        CUSTOM_SECURITY_MANAGER, frozenset({(os.environ.get("SUPERSET_ADMIN_USERNAME") or "admin").lower()})
    )
# ---- end of logins ---------------------------------------------------------------------------
# The same permission asked several times in one chart-data request is asked of the DB once, and again only
# after the permissions changed (access_memo.py, security_state.py).
_load_beside("callsight_lru", "lru.py")
_load_beside("callsight_security_state", "security_state.py")
CUSTOM_SECURITY_MANAGER = _load_beside("callsight_access_memo", "access_memo.py").with_access_memo(
    CUSTOM_SECURITY_MANAGER
)

# Served over plain HTTP on localhost by default; put a TLS proxy in front in production and set
# CALLSIGHT_HTTPS=1 so that cookies are marked secure.
_https = os.environ.get("CALLSIGHT_HTTPS", "0") == "1"
# Behind the reverse proxy: trust its X-Forwarded-For/-Proto (one hop), so that the login throttle counts
# each client's address, not the proxy's. Only when Superset is reachable through the proxy alone.
ENABLE_PROXY_FIX = os.environ.get("CALLSIGHT_BEHIND_PROXY", "0") == "1"
PROXY_FIX_CONFIG = {"x_for": 1, "x_proto": 1, "x_host": 1, "x_port": 1, "x_prefix": 1}
SESSION_COOKIE_SECURE = _https
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
TALISMAN_ENABLED = True
TALISMAN_CONFIG = {
    "content_security_policy": {
        "base-uri": ["'self'"],
        "default-src": ["'self'"],
        "img-src": ["'self'", "blob:", "data:"],
        "worker-src": ["'self'", "blob:"],
        "connect-src": ["'self'"],
        "object-src": "'none'",
        "style-src": ["'self'", "'unsafe-inline'"],
        "script-src": ["'self'", "'strict-dynamic'"],
    },
    "content_security_policy_nonce_in": ["script-src"],
    "force_https": False,
    "session_cookie_secure": _https,
}

# No CSV upload, no arbitrary database connections from the UI.
PREVENT_UNSAFE_DB_CONNECTIONS = True
CSV_EXTENSIONS: set = set()
EXCEL_EXTENSIONS: set = set()
COLUMNAR_EXTENSIONS: set = set()


# Read-only DuckDB files (the served warehouse): one DuckDB instance per published version of the file,
# reused by every query until a publish replaces the file (see served_warehouse.py: faster, and no query
# ever lands on a replaced warehouse).
DB_CONNECTION_MUTATOR = _load_beside("callsight_served_warehouse", "served_warehouse.py").connection_mutator
# Row-level security and the datasets' SQL name the viewer's visibility set, not the viewer: viewers who may
# see the same agents share cached chart results (visibility.py).
_visibility = _load_beside("callsight_visibility", "visibility.py")
# The datasets join the agents' labels only where the chart's query may read them (query_uses.py).
_query_uses = _load_beside("callsight_query_uses", "query_uses.py")
JINJA_CONTEXT_ADDONS = {
    "callsight_visibility_set": _visibility.visibility_set,
    "callsight_uses": _query_uses.callsight_uses,
}
# The night's cache warm-up runs chart queries as each visibility set's viewer (warm_cache.py), and
# Superset's action log leaves them out: they are nobody's doing. Each runs as a job in a process of its
# own, polled for its counts (warm_jobs.py).
_load_beside("callsight_warm_jobs", "warm_jobs.py")
_warm_cache = _load_beside("callsight_warm_cache", "warm_cache.py")
BLUEPRINTS = [_warm_cache.blueprint]
EVENT_LOGGER = _warm_cache.EventLogger()

SQLLAB_TIMEOUT = 60
SQL_MAX_ROW = 100000

# Caches. Chart results are keyed by Superset on the query, the viewer's roles and visibility set
# (visibility.py), and by served_cache.py on the published version of the served warehouse: a publish (a
# night, an erasure, retention, a new mapping of who sees whom) makes every result of the replaced file
# unreachable at once, so they may live until the next publish. With CALLSIGHT_REDIS_URL in Redis, one cache
# for all Superset processes of the site (the night warms it, bi/warm_cache.py); else in each process's memory.
CACHE_CONFIG = {"CACHE_TYPE": "SimpleCache", "CACHE_DEFAULT_TIMEOUT": 300}
_load_beside("callsight_served_cache", "served_cache.py")
_redis = os.environ.get("CALLSIGHT_REDIS_URL")
_celery_queue = os.environ.get("CALLSIGHT_CELERY_QUEUE", "callsight")
DATA_CACHE_CONFIG = {"CACHE_DEFAULT_TIMEOUT": 24 * 3600}  # results live until the next publish replaces them
if _redis:
    DATA_CACHE_CONFIG.update(
        {
            "CACHE_TYPE": "callsight_served_cache.ServedVersionRedisCache",
            "CACHE_REDIS_URL": _redis,
            "CACHE_KEY_PREFIX": f"{_celery_queue}-data:",  # one installation's results, not another's
        }
    )
else:
    DATA_CACHE_CONFIG.update(
        {
            "CACHE_TYPE": "callsight_served_cache.ServedVersionCache",
            "CACHE_THRESHOLD": 1000,  # results per Superset process; the oldest go first
        }
    )

# ---- Alerts & Reports (production profile: PostgreSQL metadata DB + Redis + Celery) ------------
if _redis:

    class CeleryConfig:
        broker_url = _redis
        result_backend = _redis
        imports = ("superset.sql_lab", "superset.tasks.scheduler")
        worker_prefetch_multiplier = 1
        # One queue per installation, so that two sites sharing a Redis never run each other's reports.
        task_default_queue = _celery_queue
        task_acks_late = False
        beat_schedule = {  # noqa: RUF012
            "reports.scheduler": {"task": "reports.scheduler", "schedule": crontab(minute="*", hour="*")},
            "reports.prune_log": {"task": "reports.prune_log", "schedule": crontab(minute=0, hour=0)},
        }

    CELERY_CONFIG = CeleryConfig
    RESULTS_BACKEND = None

ALERT_REPORTS_EXECUTORS = ["owner"]
WEBDRIVER_TYPE = "chrome"
WEBDRIVER_OPTION_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
# Debian's chromedriver, named explicitly (it starts Debian's chromium): Selenium Manager would
# otherwise try to download a browser (and send usage stats) from the worker. (A top-level
# "binary_location" would reach WebDriver() as an unknown argument in Superset 6.1.)
WEBDRIVER_CONFIGURATION = {
    "options": {"capabilities": {}, "preferences": {}},
    "service": {
        "executable_path": os.environ.get("CALLSIGHT_CHROMEDRIVER", "/usr/bin/chromedriver"),
        "log_output": "/dev/null",
        "service_args": [],
        "port": 0,
        "env": {"SE_AVOID_STATS": "true"},
    },
}
# Big dashboards on a busy server take a while: wait for them rather than mail an error.
SCREENSHOT_LOCATE_WAIT = int(os.environ.get("CALLSIGHT_SCREENSHOT_LOCATE_WAIT", "60"))
SCREENSHOT_LOAD_WAIT = int(os.environ.get("CALLSIGHT_SCREENSHOT_LOAD_WAIT", "180"))
WEBDRIVER_BASEURL = os.environ.get("CALLSIGHT_WEBDRIVER_BASEURL", "http://127.0.0.1:8088/")
WEBDRIVER_BASEURL_USER_FRIENDLY = os.environ.get("CALLSIGHT_PUBLIC_URL", WEBDRIVER_BASEURL)

SMTP_HOST = os.environ.get("SMTP_HOST", "localhost")
SMTP_PORT = int(os.environ.get("SMTP_PORT", "25"))
SMTP_STARTTLS = os.environ.get("SMTP_STARTTLS", "true").lower() == "true"
SMTP_SSL = os.environ.get("SMTP_SSL", "false").lower() == "true"
SMTP_USER = os.environ.get("SMTP_USER", "")
SMTP_PASSWORD = os.environ.get("SMTP_PASSWORD", "")
SMTP_MAIL_FROM = os.environ.get("SMTP_MAIL_FROM", "callsight@localhost")
EMAIL_REPORTS_SUBJECT_PREFIX = "[callsight] "

LOG_LEVEL = os.environ.get("CALLSIGHT_SUPERSET_LOG_LEVEL", "INFO")


def serialise_time_range_parsing() -> None:
    """Superset parses every time range ("Last month", a dashboard's filter) with one shared pyparsing
    grammar, and pyparsing is not thread-safe: with gunicorn's threads, charts that a dashboard loads at
    once failed at random ("Expected '(', found ')'"). One lock around the parse; it takes microseconds."""
    import threading

    from superset.utils import date_parser

    if getattr(date_parser.datetime_eval, "callsight_serialised", False):
        return
    parse, lock = date_parser.datetime_eval, threading.Lock()

    def datetime_eval(datetime_expression=None):
        with lock:
            return parse(datetime_expression)

    datetime_eval.callsight_serialised = True
    date_parser.datetime_eval = datetime_eval


def stable_extra_cache_keys() -> None:
    """Superset returns a dataset's extra cache keys (the visibility set, the roles) as `list(set(...))`,
    whose order follows Python's per-process string hashing: two gunicorn workers computed different keys
    for the same chart and viewer, and a result cached by one was never found by the other. Sorted here."""
    from superset.connectors.sqla.models import SqlaTable

    original = SqlaTable.get_extra_cache_keys
    if getattr(original, "callsight_sorted", False):
        return

    def get_extra_cache_keys(self, query_obj):
        return sorted(original(self, query_obj), key=repr)

    get_extra_cache_keys.callsight_sorted = True
    SqlaTable.get_extra_cache_keys = get_extra_cache_keys


def cache_duckdb_reserved_words() -> None:
    """duckdb_engine asks DuckDB for its reserved words whenever SQLAlchemy makes a DuckDB dialect, and
    Superset makes a new engine - with a new dialect - for every query (its cost: docs/performance.md).
    The words are fixed for an installed DuckDB; ask once per process."""
    import duckdb
    import duckdb_engine
    from sqlalchemy.dialects.postgresql.base import PGIdentifierPreparer

    preparer = duckdb_engine.DuckDBIdentifierPreparer
    if getattr(preparer, "callsight_cached", False):
        return
    with duckdb.connect(":memory:") as con:
        sql = "SELECT keyword_name FROM duckdb_keywords() WHERE keyword_category = 'reserved'"
        reserved = frozenset(PGIdentifierPreparer.reserved_words) | {k for (k,) in con.execute(sql).fetchall()}

    def __init__(self, dialect, **kwargs):  # replaces the class's __init__
        PGIdentifierPreparer.__init__(self, dialect, **kwargs)
        self.reserved_words = set(reserved)

    preparer.__init__ = __init__
    preparer.callsight_cached = True


# What non-admins' chart queries may be (sql_guard.py: custom SQL fragments, the final query's shape), what
# their other SQL may read (statement_guard.py: tables by name) and what goes back to them (no generated
# SQL, no engine errors).
_load_beside("callsight_security_events", "security_events.py")
_load_beside("callsight_sql_guard", "sql_guard.py")
_load_beside("callsight_statement_guard", "statement_guard.py")
_sql_guard_hooks = _load_beside("callsight_sql_guard_hooks", "sql_guard_hooks.py")
# A virtual dataset's SQL parsed once per process, not three times per chart request (parse_memo.py), and
# the Jinja part of a chart's cache key built once per request and visibility set (key_memo.py).
_load_beside("callsight_lru", "lru.py")
_parse_memo = _load_beside("callsight_parse_memo", "parse_memo.py")
_key_memo = _load_beside("callsight_key_memo", "key_memo.py")
# A whole chart-data answer kept for every viewer whose request would get the same bytes (answer_memo.py).
_answer_memo = _load_beside("callsight_answer_memo", "answer_memo.py")
# The served warehouse's default schema asked once per process, not on a new connection per request.
_schema_memo = _load_beside("callsight_schema_memo", "schema_memo.py")
# Full garbage collections that skip what lives as long as the process (gc_freeze.py).
_gc_freeze = _load_beside("callsight_gc_freeze", "gc_freeze.py")


def keep_the_session_of_refused_requests(response: Any) -> Any:  # a Flask response
    """An anonymous request sent away to the login page leaves the session cookie alone. Superset flashes
    "access denied" into the session there, so the answer carried the anonymous session: the login page's
    own parting log request, sent beside the login form, then logged the user out again when its answer
    came after the login's (seen behind nginx over HTTP/2). The login page itself keeps its messages."""
    from flask import request, session
    from flask_login import current_user

    redirected = response.status_code in (301, 302, 303, 307, 308) and "/login/" in (response.location or "")
    if redirected and request.path != "/login/" and not current_user.is_authenticated:
        session.modified = False
    return response


def FLASK_APP_MUTATOR(app) -> None:  # Superset's hook, called with the Flask app
    app.after_request(keep_the_session_of_refused_requests)
    serialise_time_range_parsing()
    stable_extra_cache_keys()
    cache_duckdb_reserved_words()
    _parse_memo.install()
    _schema_memo.install()
    _query_uses.install()  # next to Superset's get_sqla_query, inside the key memo and the guard
    _key_memo.install()  # before the SQL guard, which wraps get_sqla_query around it
    _answer_memo.install()  # before Superset registers its API views
    _sql_guard_hooks.install(app, os.path.join(os.path.dirname(__file__), "assets"))
    _gc_freeze.install(app)  # last: what the hooks above made lives as long as the app
