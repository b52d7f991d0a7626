"""sql_guard.py applied inside Superset: layer 1 at the entry of every chart query (get_sqla_query), layer
2 on the final SQL (get_query_str_extended, whose SQL is what Superset runs), for every user but admins;
statement_guard.py on every other statement a non-admin's request runs (Database.mutate_sql_based_on_config).
Besides: non-admins get no generated SQL back - neither the "View query" result type nor the `query`
field of results - and no error text from the engine (it quotes SQL, schema and table names).

`CALLSIGHT_SQL_GUARD_LAYERS` (default "fragments,shape") exists so that the tests can show each layer
holding alone; a server with a layer off says so loudly in its log. Loaded by superset_config.py."""

from __future__ import annotations

import contextvars
import functools
import glob
import logging
import os
import re
import uuid
from typing import Any

import callsight_security_events as security_events  # registered by superset_config._load_beside
import callsight_sql_guard as sql_guard
import callsight_statement_guard as statement_guard
import yaml

log = logging.getLogger("callsight.sql_guard")
LAYERS_ENV = "CALLSIGHT_SQL_GUARD_LAYERS"
ALL_LAYERS = frozenset({"fragments", "shape"})
ANALYST_ROLE = "callsight_analyst"
ANALYST_SCHEMA = "analyst"
OWN_MESSAGE = "callsight: "
GENERIC_ERROR = "callsight: the query failed; your administrator finds the details in the server log under {ref}"
# Paths whose JSON answers carry query results or errors of chart queries.
QUERY_PATHS = ("/api/v1/chart/", "/superset/explore_json", "/api/v1/datasource/", "/datasource/", "/api/v1/explore/")

_capture: contextvars.ContextVar[dict | None] = contextvars.ContextVar("callsight_sql_guard", default=None)
# Inside a chart query's run (ExploreMixin.query): what it executes is the SQL layer 2 checked.
_chart_run: contextvars.ContextVar[bool] = contextvars.ContextVar("callsight_chart_run", default=False)


def layers_on(environ: Any = os.environ) -> frozenset[str]:
    raw = environ.get(LAYERS_ENV)
    if raw is None:
        return ALL_LAYERS
    return frozenset(p.strip() for p in raw.split(",") if p.strip()) & ALL_LAYERS


def shipped_dataset_uuids(assets_dir: str) -> frozenset[str]:
    """The datasets callsight ships (superset/assets) and their English twins (uuid5 of the original's
    uuid and "en", as callsight.bi.translate.twin_uuid; provisioning imports a twin of every dataset): their
    SQL is trusted. Datasets analysts make themselves may read the analyst schema only."""
    out = set()
    for path in glob.glob(os.path.join(assets_dir, "datasets", "**", "*.yaml"), recursive=True):
        with open(path, encoding="utf-8") as f:
            config = yaml.safe_load(f) or {}
        if config.get("uuid"):
            out.add(str(config["uuid"]))
            out.add(str(uuid.uuid5(uuid.UUID(str(config["uuid"])), "en")))
    return frozenset(out)


# ---- who asks -------------------------------------------------------------------------------------
def _user_roles() -> set[str] | None:
    """Role names of the user the query runs as (a report's executor in Celery); None without a user."""
    from flask import g, has_app_context
    from superset import security_manager

    if not has_app_context() or getattr(g, "user", None) is None:
        return None
    try:
        return {r.name for r in security_manager.get_user_roles()}
    except Exception:  # an anonymous user, a user gone meanwhile
        return set()


def exempt() -> bool:
    roles = _user_roles()
    return roles is not None and "Admin" in roles


def _asker() -> sql_guard.Asker:
    return sql_guard.Asker(custom_sql=ANALYST_ROLE in (_user_roles() or set()))


def _user_subject() -> str:
    from flask import g

    user = getattr(g, "user", None)
    return f"user:{getattr(user, 'id', None) or 'anonymous'}"


def refusal_error(message: str) -> Exception:
    """403 with the message alone (Superset's error handler answers a security exception as JSON)."""
    from superset.errors import ErrorLevel, SupersetError, SupersetErrorType
    from superset.exceptions import SupersetSecurityException

    error = SupersetError(
        message=OWN_MESSAGE + message, error_type=SupersetErrorType.QUERY_SECURITY_ACCESS_ERROR, level=ErrorLevel.ERROR
    )
    return SupersetSecurityException(error)


def _refuse(refusal: sql_guard.GuardRefusal, layer: str, datasource: Any) -> None:
    security_events.record(
        "query_refused",
        _user_subject(),
        layer=layer,
        reason=refusal.reason,
        dataset_id=getattr(datasource, "id", None),
    )
    raise refusal_error(str(refusal)) from None


# ---- layer 1 --------------------------------------------------------------------------------------
def dataset_of(datasource: Any) -> sql_guard.Dataset:
    grains = frozenset(k for k in datasource.db_engine_spec.get_time_grain_expressions() if k)
    return sql_guard.Dataset(
        columns=frozenset(c.column_name for c in datasource.columns),
        metrics=frozenset(m.metric_name for m in datasource.metrics),
        time_grains=grains,
    )


def guard_query_object(original):
    @functools.wraps(original)
    def get_sqla_query(self, **kwargs):
        if not exempt():
            try:
                sql_guard.check_query_object(kwargs, dataset_of(self), _asker())
            except sql_guard.GuardRefusal as refusal:
                _refuse(refusal, "fragments", self)
        return original(self, **kwargs)

    return get_sqla_query


# ---- layer 2 --------------------------------------------------------------------------------------
def _clause_text(clause: Any) -> str:
    text = getattr(clause, "text", None)
    if isinstance(text, str):
        return text
    return str(clause.compile(compile_kwargs={"literal_binds": True}))


def capture_predicates(original):
    @functools.wraps(original)
    def get_sqla_row_level_filters(self, *args, **kwargs):
        clauses = original(self, *args, **kwargs)
        seen = _capture.get()
        if seen is not None:
            seen["predicates"].extend(_clause_text(c) for c in clauses)
        return clauses

    return get_sqla_row_level_filters


def capture_from(original):
    @functools.wraps(original)
    def get_from_clause(self, *args, **kwargs):
        from_clause, cte = original(self, *args, **kwargs)
        seen = _capture.get()
        if seen is not None:
            text = getattr(getattr(getattr(from_clause, "element", None), "element", None), "text", None)
            if isinstance(text, str):
                seen["from_sql"].append(text)
            if cte:
                seen["cte"] = True
        return from_clause, cte

    return get_from_clause


def trusted_parts(datasource: Any, seen: dict, shipped: frozenset[str]) -> sql_guard.Trusted:
    if datasource.sql and str(datasource.uuid) not in shipped:
        for sql in seen["from_sql"]:
            foreign = {r for r in sql_guard.relations_of(sql) if r[0] != ANALYST_SCHEMA}
            if foreign:
                raise sql_guard.GuardRefusal(
                    "dataset_relation", f"a dataset of your own may read the {ANALYST_SCHEMA} schema only"
                )
    table = None if datasource.sql else (datasource.schema or "", datasource.table_name)
    return sql_guard.Trusted(tuple(seen["from_sql"]), table, tuple(seen["predicates"]))


def guard_final_query(original, shipped: frozenset[str]):
    @functools.wraps(original)
    def get_query_str_extended(self, query_obj, *args, **kwargs):
        if exempt():
            return original(self, query_obj, *args, **kwargs)
        seen = {"from_sql": [], "predicates": [], "cte": False}
        token = _capture.set(seen)
        try:
            result = original(self, query_obj, *args, **kwargs)
        finally:
            _capture.reset(token)
        try:
            if seen["cte"]:
                raise sql_guard.GuardRefusal("final_relation", "the query may not define a common table expression")
            sql = sql_guard.check_final_query(result.sql, trusted_parts(self, seen, shipped))
        except sql_guard.GuardRefusal as refusal:
            _refuse(refusal, "shape", self)
        return result._replace(sql=sql)

    return get_query_str_extended


# ---- every other statement ----------------------------------------------------------------------
def guard_statement(sql: str) -> None:
    """A non-admin's SQL outside the chart path - SQL Lab, its CSV export, a virtual dataset's columns, a
    filter's values, an alert - may read tables and views by name only (statement_guard.py). A chart query
    is checked by layer 2 once whole, and then runs the SQL checked: left to it."""
    if _capture.get() is not None or _chart_run.get() or exempt():
        return
    try:
        statement_guard.check_statement(sql)
    except sql_guard.GuardRefusal as refusal:
        _refuse(refusal, "statement", None)


def guard_mutation(original):
    """Database.mutate_sql_based_on_config: Superset passes every statement it runs on a database through
    it (SQL_QUERY_MUTATOR's hook), split or not - the one place all of them meet."""

    @functools.wraps(original)
    def mutate_sql_based_on_config(self, sql_: str, is_split: bool = False) -> str:
        guard_statement(sql_)
        return original(self, sql_, is_split)

    return mutate_sql_based_on_config


def mark_chart_run(original):
    """ExploreMixin.query: runs the SQL of get_query_str_extended (layer 2's) - nothing else."""

    @functools.wraps(original)
    def query(self, query_obj):
        token = _chart_run.set(True)
        try:
            return original(self, query_obj)
        finally:
            _chart_run.reset(token)

    return query


# ---- what goes back: no SQL, no engine errors -----------------------------------------------------
def hide_query(original, result_type: Any):
    @functools.wraps(original)
    def run(query_context, query_obj, force_cached):
        if exempt():
            return original(query_context, query_obj, force_cached)
        if str(getattr(result_type, "value", result_type)) == "query":
            raise refusal_error("the generated SQL is shown to administrators only")
        payload = original(query_context, query_obj, force_cached)
        if isinstance(payload, dict):
            payload.pop("query", None)
        return payload

    return run


def _own(text: str) -> bool:
    """One of callsight's own messages (a refusal): it names a field and a rule, never SQL."""
    return text.startswith(OWN_MESSAGE) and "\n" not in text


def _scrub(value: Any, ref: str, failed: bool) -> Any:
    """The answer without `query` fields, and - in anything that failed - without engine texts."""
    if isinstance(value, list):
        return [_scrub(v, ref, failed) for v in value]
    if not isinstance(value, dict):
        return value
    failed = failed or value.get("status") == "failed" or bool(value.get("error")) or bool(value.get("errors"))
    out = {}
    for key, item in value.items():
        if key == "query":
            continue
        if failed and key in ("error", "message", "error_message") and isinstance(item, str):
            item = item if _own(item) else GENERIC_ERROR.format(ref=ref)
        elif failed and key == "extra" and isinstance(item, dict):
            item = {k: v for k, v in item.items() if k == "issue_codes"}
        elif failed and key == "stacktrace":
            item = None
        out[key] = _scrub(item, ref, failed)
    return out


# What a JSON answer must contain to need scrubbing: a `query` text, an error text, a failed status.
NEEDS_SCRUBBING = re.compile(rb'"(query|error|error_message|message|stacktrace)":\s*"|"errors":\s*\[\s*\{|"failed"')


def scrub_response(response):
    """after_request: a non-admin's JSON answer from a query path carries no SQL and no engine error."""
    from flask import json as flask_json
    from flask import request

    if not request.path.startswith(QUERY_PATHS) or response.mimetype != "application/json" or exempt():
        return response
    if response.direct_passthrough or response.is_streamed:
        return response
    raw = response.get_data()
    if not NEEDS_SCRUBBING.search(raw):
        return response
    try:
        body = flask_json.loads(raw)
    except ValueError:
        return response
    ref = uuid.uuid4().hex[:12]
    scrubbed = _scrub(body, ref, response.status_code >= 400 and response.status_code != 401)  # 401: log in
    if scrubbed != body:
        log.warning("answer to %s scrubbed (ref %s): %s", _user_subject(), ref, str(body)[:2000])
        response.set_data(flask_json.dumps(scrubbed))
    return response


def install(app: Any, assets_dir: str) -> None:
    """Patch Superset's query building once per process (FLASK_APP_MUTATOR)."""
    from superset.common import query_actions
    from superset.connectors.sqla.models import SqlaTable
    from superset.models.core import Database
    from superset.models.helpers import ExploreMixin

    if getattr(ExploreMixin, "callsight_guarded", False):
        app.after_request(scrub_response)
        return
    layers = layers_on()
    if layers != ALL_LAYERS:
        log.warning("SQL GUARD LAYERS OFF: only %s is on - for tests only, never in production", sorted(layers))
    if "fragments" in layers:
        ExploreMixin.get_sqla_query = guard_query_object(ExploreMixin.get_sqla_query)
    if "shape" in layers:
        shipped = shipped_dataset_uuids(assets_dir)
        SqlaTable.get_sqla_row_level_filters = capture_predicates(SqlaTable.get_sqla_row_level_filters)
        ExploreMixin.get_from_clause = capture_from(ExploreMixin.get_from_clause)
        ExploreMixin.get_query_str_extended = guard_final_query(ExploreMixin.get_query_str_extended, shipped)
        ExploreMixin.query = mark_chart_run(ExploreMixin.query)
    Database.mutate_sql_based_on_config = guard_mutation(Database.mutate_sql_based_on_config)
    for result_type, func in list(query_actions._result_type_functions.items()):
        query_actions._result_type_functions[result_type] = hide_query(func, result_type)
    ExploreMixin.callsight_guarded = True
    app.after_request(scrub_response)
