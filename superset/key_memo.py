"""The Jinja part of a chart's cache key, kept per process (issue 31).

To find a chart result in the cache, Superset first builds the whole query (`get_extra_cache_keys` ->
`get_sqla_query`), only to collect the values the dataset's Jinja put into the key: the viewer's roles and
visibility set. That was half of the time of a cache hit (docs/performance.md, "What a cache hit costs").
Here those values are kept per process under a key of everything they can depend on, and the query is
built only the first time:

* the request as sent (JSON body without the dashboard URL's parameters, URL arguments, form), the query
  object, the dataset (uid, last change, its SQL and every metric's and column's expression), the viewer's
  row-level-security clauses, roles and visibility set, and the served warehouse's version;
* only where every Jinja template that can take part - the dataset's texts, the RLS clauses - uses
  nothing but ALLOWED_NAMES, none of which reads the user's name, id or e-mail, the URL, the time or
  another dataset, and the request carries no Jinja of its own. Anything else is built as Superset does.

With the shared data cache in Redis the values are kept there too, under the served version (served_cache.py):
the night's warm-up computes them once per visibility set and request, and a web worker's first request
after a publish - every worker's own memo is then of the replaced version - finds them there instead of
building the query (docs/performance.md).

The rest of the key (the query object, the predicates of the tables a virtual dataset reads) Superset
still computes for every request, and so does the SQL guard (it wraps this). Loaded by superset_config.py.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import json
import logging
import sys
from typing import Any

import jinja2
from jinja2 import meta

log = logging.getLogger("callsight.key_memo")
ENABLED = True  # tests compare against Superset's own keys by switching it off in their process
MEMO_PREFIX = "key-memo:"  # its values in the data cache (served_cache.py)
MEMO_SIZE = 20_000  # a few hundred bytes each: one per (visibility set, request) a process has seen
# The Jinja names callsight's datasets and row-level security use (bi/agent_macros.py, bi/users.py).
# callsight_uses reads the query object, which is part of the memo key.
ALLOWED_NAMES = frozenset(
    {"current_user_roles", "cache_key_wrapper", "callsight_visibility_set", "filter_values", "callsight_uses"}
)
# A query of only these keys makes Superset read the chart's saved form data from its metadata (get_form_data).
SLICE_ONLY_KEYS = frozenset({"slice_id", "extra_filters", "adhoc_filters", "viz_type"})

_for_key: contextvars.ContextVar[str | None] = contextvars.ContextVar("callsight_key_memo", default=None)
_jinja = jinja2.Environment()
_jinja.filters.update({"where_in": str, "to_datetime": str})  # Superset's own filters, by name only (analysis)


@functools.lru_cache(maxsize=4096)
def jinja_names(text: str) -> frozenset[str] | None:
    """Pure: the names a Jinja template takes from its context (None: it does not parse)."""
    if "{" not in text:
        return frozenset()
    try:
        return frozenset(meta.find_undeclared_variables(_jinja.parse(text)))
    except jinja2.TemplateSyntaxError:
        return None


def allowed(texts: list[str]) -> bool:
    """Pure: every template among `texts` uses allowed names only."""
    for text in texts:
        names = jinja_names(text)
        if names is None or not names <= ALLOWED_NAMES:
            return False
    return True


MEMO = sys.modules["callsight_lru"].Lru(MEMO_SIZE)  # memo key -> the Jinja values of the key
SHARED_HITS = 0  # values this process found in the shared cache (tests)


def without_url_params(body: dict[str, Any]) -> dict[str, Any]:
    """Pure: the request body without the dashboard URL's parameters. Only Jinja's url_param reads them, which
    no allowed template uses; the browser sends its own native_filters_key with each visit, which would
    otherwise make every visit's key new (and the night's warm-up of no use to it)."""
    out = dict(body)
    if isinstance(out.get("form_data"), dict):
        out["form_data"] = {k: v for k, v in out["form_data"].items() if k != "url_params"}
    if isinstance(out.get("queries"), list):
        out["queries"] = [
            {k: v for k, v in q.items() if k != "url_params"} if isinstance(q, dict) else q for q in out["queries"]
        ]
    return out


def dataset_templates(datasource: Any) -> tuple[list[str], list[str]]:
    """The dataset's texts that Jinja renders (its SQL, its values predicate, each metric's and column's
    expression) and the viewer's row-level-security clauses on it."""
    from superset import security_manager

    texts = [datasource.sql or "", datasource.fetch_values_predicate or ""]
    texts += [m.expression or "" for m in datasource.metrics] + [c.expression or "" for c in datasource.columns]
    return texts, [str(clause) for clause in security_manager.get_rls_cache_key(datasource)]


def templates_allowed(datasource: Any) -> bool:
    """Whether every template of the dataset and of the viewer's row-level security uses allowed names only."""
    if datasource is None or not hasattr(datasource, "metrics"):
        return False
    return allowed([text for part in dataset_templates(datasource) for text in part])


def memo_key(datasource: Any, query_obj: dict[str, Any]) -> str | None:
    """Everything the dataset's Jinja cache keys can depend on for this request, hashed; None where the
    memo does not apply."""
    from flask import has_request_context, request
    from superset import security_manager

    if not has_request_context() or not request.is_json:
        return None
    body = request.get_json(cache=True, silent=True)
    queries = body.get("queries") if isinstance(body, dict) else None
    if not queries or not isinstance(queries[0], dict) or set(queries[0]) <= SLICE_ONLY_KEYS:
        return None
    whole = json.dumps(body, default=str)
    if "{{" in whole or "{%" in whole:  # Jinja of the request's own, wherever it is
        return None
    sent = json.dumps(without_url_params(body), sort_keys=True, default=str)
    texts, rls = dataset_templates(datasource)
    if not allowed(texts + rls):
        return None
    parts = {
        "sent": sent,
        "args": sorted(request.args.items(multi=True)),
        "form": sorted(request.form.items(multi=True)),
        "query": json.dumps(query_obj, sort_keys=True, default=str),
        "dataset": [datasource.uid, str(datasource.changed_on), texts],
        "rls": rls,
        "roles": sorted(role.name for role in security_manager.get_user_roles()),
        "set": sys.modules["callsight_visibility"].visibility_set(),
        "served": repr(sys.modules["callsight_served_warehouse"].versions_now()),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _shared() -> Any:
    return sys.modules["callsight_served_cache"].memo_cache(shared=True)


def _shared_get(key: str) -> tuple[Any, ...] | None:
    global SHARED_HITS
    if (shared := _shared()) is None:
        return None
    try:
        found = shared.get_memo(MEMO_PREFIX + key)
    except Exception as exc:  # an unreachable cache is a miss: the key is built as Superset does
        log.warning("key memo: shared cache unreadable: %s", type(exc).__name__)
        return None
    if isinstance(found, tuple):
        SHARED_HITS += 1
        return found
    return None


def _shared_set(key: str, value: tuple[Any, ...]) -> None:
    if (shared := _shared()) is None:
        return
    try:
        shared.set_memo(MEMO_PREFIX + key, value)
    except Exception as exc:  # the next process builds it again
        log.warning("key memo: shared cache unwritable: %s", type(exc).__name__)


class _JinjaKeys:
    """What get_extra_cache_keys reads of get_sqla_query's answer."""

    def __init__(self, extra_cache_keys: list[Any]) -> None:
        self.extra_cache_keys = extra_cache_keys


def keyed(original: Any) -> Any:
    """SqlaTable.get_extra_cache_keys with the memo key of its request set for get_sqla_query."""

    @functools.wraps(original)
    def get_extra_cache_keys(self: Any, query_obj: dict[str, Any]) -> Any:
        token = _for_key.set(memo_key(self, query_obj) if ENABLED else None)
        try:
            return original(self, query_obj)
        finally:
            _for_key.reset(token)

    return get_extra_cache_keys


def remembered(original: Any) -> Any:
    """ExploreMixin.get_sqla_query answering a key's Jinja values from the memo when it can."""

    @functools.wraps(original)
    def get_sqla_query(self: Any, **kwargs: Any) -> Any:
        key = _for_key.get()
        if key is None:
            return original(self, **kwargs)
        found = MEMO.get(key)
        if found is None and (found := _shared_get(key)) is not None:
            MEMO.put(key, found)
        if found is not None:
            return _JinjaKeys(list(found))
        token = _for_key.set(None)  # whatever the build itself calls is Superset's own
        try:
            built = original(self, **kwargs)
        finally:
            _for_key.reset(token)
        MEMO.put(key, tuple(built.extra_cache_keys))
        _shared_set(key, tuple(built.extra_cache_keys))
        return built

    return get_sqla_query


def install() -> None:
    """Patch Superset once per process (FLASK_APP_MUTATOR), before the SQL guard wraps get_sqla_query."""
    from superset.connectors.sqla.models import SqlaTable
    from superset.models.helpers import ExploreMixin

    if getattr(SqlaTable, "callsight_key_memo", False):
        return
    SqlaTable.get_extra_cache_keys = keyed(SqlaTable.get_extra_cache_keys)
    ExploreMixin.get_sqla_query = remembered(ExploreMixin.get_sqla_query)
    SqlaTable.callsight_key_memo = True
