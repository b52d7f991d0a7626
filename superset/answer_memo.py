"""A chart-data answer kept whole for every viewer whose request would get the same bytes (issue 31).

A chart-data request whose results are all in the cache still costs Superset its query context, the chart
and dashboard checks of `raise_for_access`, the cache keys (key_memo.py), the payload and its JSON: most of a
cached answer's time. Here the whole JSON answer is kept in the site's data cache (served_cache.py: under
the served warehouse's version, dropped with it) under a key of everything that answer depends on, and the
next request with the same key gets those bytes without any of that work:

* the request: its JSON body without the dashboard URL's parameters (key_memo.without_url_params), its URL
  arguments, and each time range in it as Superset resolves it now ("Last week" moves at midnight);
* the viewer: their roles (direct and by group), their visibility set, and their user id where they own a
  dataset, chart or dashboard (Superset grants owners access beyond their roles);
* the metadata's security token (security_state.py): it changes with every write to roles, permissions,
  row-level security, databases, datasets, their columns and metrics, charts, dashboards and their owners;
* the served warehouse's version: a request during which a publish replaced the served file (with it, a
  viewer's visibility set may change) neither is answered from here nor keeps its answer.
* the code: callsight's Superset modules (the files beside this one), Superset's version and the SQL guard's
  layers (a deploy that makes the guard stricter gives no answer kept before it).

Only an answer that Superset itself would give the next viewer of that key is kept: HTTP 200, JSON, every
query a success, for a signed-in user (no guest), a request without Jinja of its own, whose dataset's
templates and every row-level security clause of the site (a virtual dataset's query gets those of the
tables it reads) use only key_memo.ALLOWED_NAMES (nothing that reads the user's name or the time), without
annotation layers and without a relative start or end of its own. A result just computed is kept as its
next cache hit reads (is_cached, and cached_dttm: when Superset stored it), and only while it is in the
cache. A forced request (`force`) is never answered from here; its new answer replaces the kept one of the
same request without `force`. Authentication and the endpoint's permission
(Flask-AppBuilder's `protect`) run for every request as before; a refusal, a failure or a CSV is never
kept, so a request the SQL guard refuses is refused again. The night's warm-up stores the answers of the
build it warms (warm_cache.py), so that the first open after the swap is answered from here.

Loaded by superset_config.py by path after key_memo and served_cache; installed in FLASK_APP_MUTATOR, before
Superset registers its API views.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("callsight.answer_memo")
ENABLED = True  # tests compare with Superset's own answers by switching it off in their process
PREFIX = "answer-memo:"  # its values in the data cache (served_cache.py), beside the key memo's
MAX_BYTES = 256 << 10  # larger answers are not kept (the cache holds their results): a call list page is a few KB
COUNTS = {"answered": 0, "kept": 0, "asked": 0}  # this process's (tests, benchmarks)
OWNED_SQL = (
    "SELECT count(*) FROM (SELECT user_id FROM sqlatable_user WHERE user_id = :u UNION ALL "
    "SELECT user_id FROM slice_user WHERE user_id = :u UNION ALL SELECT user_id FROM dashboard_user WHERE user_id = :u"
    ") AS owned"  # PostgreSQL before 16 wants the alias
)
RLS_SQL = "SELECT clause FROM row_level_security_filters"
VERSIONS_KEY = "callsight.answer_memo.served"  # in the request's environ: the served version its key names
_keep_as: contextvars.ContextVar[str | None] = contextvars.ContextVar("callsight_answer_memo", default=None)


def _module(name: str) -> Any:
    return sys.modules[name]  # loaded beside superset_config.py (not in a package)


# What Superset's schema (marshmallow's Boolean) reads as `force: false`; anything else it reads as true or
# refuses, so it is taken as forced (Superset answers it, or refuses it, itself). False equals 0 here.
NOT_FORCED = frozenset(
    {None, False, "f", "F", "false", "False", "FALSE", "0", "off", "Off", "OFF", "n", "N", "no", "No", "NO"}
)


def asks_force(value: Any) -> bool:
    """Pure: whether a body's `force` asks Superset to compute the results again."""
    try:
        return value not in NOT_FORCED
    except TypeError:  # unhashable (a list, an object)
        return True


def plain_body(body: Any) -> bool:
    """Pure: whether a chart-data body is one whose answer may be kept (see the module's doc)."""
    if not isinstance(body, dict) or asks_force(body.get("force")) or not isinstance(body.get("datasource"), dict):
        return False
    if body.get("result_format", "json") != "json" or body.get("result_type", "full") != "full":
        return False
    queries = body.get("queries")
    if not isinstance(queries, list) or not queries or not all(isinstance(q, dict) for q in queries):
        return False
    if any(set(q) <= _module("callsight_key_memo").SLICE_ONLY_KEYS for q in queries):  # the chart's saved query
        return False
    if any(q.get("annotation_layers") for q in queries):
        return False
    whole = json.dumps(body, default=str)
    return not ("{{" in whole or "{%" in whole or "relative_start" in whole or "relative_end" in whole)


def time_ranges(body: dict[str, Any]) -> list[tuple[str, Any]]:
    """Pure: (time range, time shift) of each query's own range and TEMPORAL_RANGE filters, in order."""
    found = []
    for query in body.get("queries") or []:
        shift = query.get("time_shift")
        if isinstance(query.get("time_range"), str):
            found.append((query["time_range"], shift))
        for flt in query.get("filters") or []:
            if isinstance(flt, dict) and flt.get("op") == "TEMPORAL_RANGE" and isinstance(flt.get("val"), str):
                found.append((flt["val"], shift))
    return found


def resolved(ranges: list[tuple[str, Any]]) -> list[str] | None:
    """The ranges as Superset resolves them now (None: one does not resolve; Superset then says why)."""
    from superset.common.utils.time_range_utils import get_since_until_from_time_range

    try:
        return [repr(get_since_until_from_time_range(time_range=t, time_shift=s)) for t, s in ranges]
    except Exception:
        return None


def as_cache_hit(queries: list[dict[str, Any]], stored_at: Callable[[Any], str | None]) -> list[dict[str, Any]] | None:
    """Pure: the queries of an answer as the next request reads them from the cache. A result just computed
    says is_cached and carries the time Superset stored it (`stored_at(cache_key)`, None: not in the cache)
    as cached_dttm. None where any query is not a success or not in the cache."""
    out = []
    for query in queries:
        if not isinstance(query, dict) or query.get("status") != "success" or query.get("error"):
            return None
        if query.get("is_cached") is not True:
            stored = stored_at(query.get("cache_key"))
            if stored is None:
                return None
            query = {**query, "cached_dttm": stored, "is_cached": True}
        out.append(query)
    return out


def _stored_at(cache_key: Any) -> str | None:
    """When Superset stored the result of `cache_key` in its data cache (QueryCacheManager's "dttm")."""
    from superset.extensions import cache_manager

    value = cache_manager.data_cache.get(cache_key) if isinstance(cache_key, str) and cache_key else None
    return value.get("dttm") if isinstance(value, dict) else None


def answer_bytes(queries: list[dict[str, Any]]) -> bytes | None:
    """The JSON answer of a cache hit of these queries, as Superset's chart-data API writes it."""
    from superset.utils import json as superset_json

    hit = as_cache_hit(queries, _stored_at)
    if hit is None:
        return None
    text = superset_json.dumps({"result": hit}, default=superset_json.json_int_dttm_ser, ignore_nan=True)
    return text.encode() if isinstance(text, str) else text


def _owner_salt(user: Any) -> str:
    """The user's id where they own anything (the answer may be theirs alone), else "-"."""
    from sqlalchemy import text
    from superset.extensions import db

    memo = _module("callsight_access_memo")
    owned = memo.remembered(
        memo.request_memo(),
        ("owns", user.id),
        lambda: int(db.session.execute(text(OWNED_SQL), {"u": user.id}).scalar() or 0),
    )
    return str(user.id) if owned else "-"


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """callsight's Superset modules (every .py file beside this one, as every process of the site has them),
    Superset's version and the SQL guard's layers: an answer kept before a deploy that changed any of them (a
    stricter guard, say) is not given after it."""
    from importlib.metadata import version

    layers = os.environ.get(_module("callsight_sql_guard_hooks").LAYERS_ENV, "")
    digest = hashlib.sha256(f"{version('apache-superset')}|{layers}".encode())
    for source in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()


_rls_checked = sys.modules["callsight_lru"].Lru(64)  # security token -> every RLS clause of the site allowed


def rls_allowed() -> bool:
    """Whether every row-level-security clause of the site uses key_memo's allowed names only. A virtual
    dataset's query gets the clauses of the tables its SQL reads, rendered for the viewer (Superset 6.1,
    utils/rls.py), which Superset's own cache key holds and this one does not: a clause that reads the
    viewer's name, the URL or the time anywhere keeps answers from being kept. Checked once per token."""
    from sqlalchemy import text
    from superset.extensions import db

    token = _module("callsight_access_memo").request_token()
    if token is None:
        return False
    if (known := _rls_checked.get(token)) is None:
        clauses = [str(c or "") for (c,) in db.session.execute(text(RLS_SQL))]
        known = _module("callsight_key_memo").allowed(clauses)
        _rls_checked.put(token, known)
    return known


def forced() -> bool:
    """Whether this request asks Superset to compute its results again (`force`)."""
    from flask import request

    body = request.get_json(cache=True, silent=True) if request.is_json else None
    return isinstance(body, dict) and asks_force(body.get("force"))


def answer_key() -> str | None:
    """The key of this chart-data request's answer, `force` aside (a forced request keeps its new answer for
    the same request without it); None where it may not be kept or answered, or cannot be worked out (then
    Superset answers as without the memo)."""
    try:
        return _answer_key()
    except Exception as exc:
        log.warning("answer memo: no key: %s", type(exc).__name__)
        return None


def _answer_key() -> str | None:
    from flask import request
    from superset import security_manager

    memo = _module("callsight_access_memo")
    user = memo.signed_in()
    if not ENABLED or user is None or memo.request_memo() is None or not request.is_json:
        return None
    body = request.get_json(cache=True, silent=True)
    body = {k: v for k, v in body.items() if k != "force"} if isinstance(body, dict) else body
    if not plain_body(body) or (token := memo.request_token()) is None:
        return None
    times = resolved(time_ranges(body))
    if times is None or not hasattr(security_manager, "_callsight_role_ids"):
        return None
    parts = {
        "sent": _module("callsight_key_memo").without_url_params(body),
        "args": sorted(request.args.items(multi=True)),
        "times": times,
        "roles": security_manager._callsight_role_ids(user),
        "owner": _owner_salt(user),
        "set": _module("callsight_visibility").visibility_set(),
        "token": token,
        "served": _served_now(),
        "code": code_version(),
    }
    request.environ[VERSIONS_KEY] = parts["served"]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _served_now() -> str:
    return repr(_module("callsight_served_warehouse").versions_now())


def _same_version() -> bool:
    """Whether the served version is still the one this request's key names. A publish in between (the
    viewer's set may have changed with it) and nothing is answered or kept under that key."""
    from flask import request

    return request.environ.get(VERSIONS_KEY) == _served_now()


def _cache() -> Any | None:
    return _module("callsight_served_cache").memo_cache()


def found(key: str) -> bytes | None:
    cache = _cache()
    if not _same_version():
        return None
    try:
        value = cache.get_memo(PREFIX + key) if cache is not None else None
    except Exception as exc:  # an unreachable cache: Superset answers
        log.warning("answer memo: cache unreadable: %s", type(exc).__name__)
        return None
    return value if isinstance(value, bytes) else None


def keep(key: str, datasource: Any, queries: list[dict[str, Any]]) -> bool:
    """Keep the answer of these queries under `key` where its dataset allows it; whether it was kept. A
    failure keeps nothing (the answer goes out as Superset built it; the next request computes it again)."""
    try:
        kept = _keep(key, datasource, queries)
    except Exception as exc:  # an unwritable cache, an unreadable metadata table
        log.warning("answer memo: not kept: %s", type(exc).__name__)
        return False
    if kept:
        COUNTS["kept"] += 1
    return kept


def _keep(key: str, datasource: Any, queries: list[dict[str, Any]]) -> bool:
    cache = _cache()
    if cache is None or not _same_version() or not _module("callsight_key_memo").templates_allowed(datasource):
        return False
    if not rls_allowed():
        return False
    if getattr(getattr(datasource, "database", None), "impersonate_user", False):  # the key then holds the user
        return False
    answer = answer_bytes(queries)
    if answer is None or len(answer) > MAX_BYTES:
        return False
    cache.set_memo(PREFIX + key, answer)
    return True


def answering(data: Callable[..., Any]) -> Callable[..., Any]:
    """ChartDataRestApi.data (below `protect`) answering from the memo, and keeping what it answered."""

    @functools.wraps(data)
    def answered(self: Any, *args: Any, **kwargs: Any) -> Any:
        from flask import make_response

        key = answer_key()
        if key is None:
            return data(self, *args, **kwargs)
        if not forced():
            COUNTS["asked"] += 1
        if not forced() and (kept := found(key)) is not None:
            COUNTS["answered"] += 1
            response = make_response(kept, 200)
            response.headers["Content-Type"] = "application/json; charset=utf-8"
            return response
        token = _keep_as.set(key)
        try:
            return data(self, *args, **kwargs)
        finally:
            _keep_as.reset(token)

    return answered


def keeping(send: Callable[..., Any]) -> Callable[..., Any]:
    """ChartDataRestApi._send_chart_response keeping a JSON answer of a request answering() asked for."""

    @functools.wraps(send)
    def send_chart_response(self: Any, result: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        response = send(self, result, *args, **kwargs)
        key = _keep_as.get()
        if key is not None and response.status_code == 200 and response.mimetype == "application/json":
            datasource = getattr(result.get("query_context"), "datasource", None)
            keep(key, datasource, result.get("queries") or [])
        return response

    return send_chart_response


def install() -> None:
    """Wrap Superset's chart-data API once per process, before its views are registered (FLASK_APP_MUTATOR):
    under `protect`, so that authentication and the endpoint's permission are Superset's own."""
    from flask_appbuilder.security.decorators import protect
    from superset.charts.data.api import ChartDataRestApi

    if getattr(ChartDataRestApi, "callsight_answer_memo", False):
        return
    exposed = ChartDataRestApi.data
    inner = exposed.__wrapped__  # what protect() wrapped: Superset's statsd and event-log layers and data()
    wrapped = protect()(answering(inner))
    for name, value in vars(exposed).items():  # expose()'s _urls, protect()'s _permission_name
        if name != "__wrapped__":
            setattr(wrapped, name, value)
    ChartDataRestApi.data = wrapped
    ChartDataRestApi._send_chart_response = keeping(ChartDataRestApi._send_chart_response)
    ChartDataRestApi.callsight_answer_memo = True
