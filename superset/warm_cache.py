"""The night's cache warm-up, inside Superset: `POST /api/v1/callsight/warm_cache` (admins only, with a
JSON body {"username": ..., "requests": [chart-data request bodies], "candidate": false}) runs each
chart-data request as
Superset's chart-data API would for that user - the same query context, the user's roles, row-level
security and visibility set, the SQL guard - so that the result lands in the shared data cache
(served_cache.py) under the key that user's own dashboard open will look up. The answer carries counts,
never data. Nothing is written to Superset's action log under that user (EVENT_LOGGER below): the log is
where the works council's access log comes from, and the warm-up is nobody's doing. callsight.bi.warm_cache
calls it once per visibility set.

With "candidate": true the requests read the build the night is about to publish, not the served file
(served_warehouse.reading_candidate), and their results wait in the cache under the version that build
will have once published: the first open after the swap is a hit, while everybody else goes on reading
the served file and its cached results. Refused (409) when there is no such build.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import sys
from typing import Any

from flask import Blueprint, jsonify, request
from superset.utils.log import DBEventLogger

log = logging.getLogger("callsight.warm_cache")
ADMIN_ROLE = "Admin"

blueprint = Blueprint("callsight_warm_cache", __name__)
_warming: contextvars.ContextVar[bool] = contextvars.ContextVar("callsight_warming", default=False)


class EventLogger(DBEventLogger):
    """Superset's action log, without what the warm-up does in a user's name (their queries' timings)."""

    def log(self, *args: Any, **kwargs: Any) -> None:
        if not _warming.get():
            super().log(*args, **kwargs)


def _caller() -> Any:
    """The authenticated caller (JWT bearer, as callsight's API client logs in), or None."""
    from flask_jwt_extended import current_user, verify_jwt_in_request

    try:
        verify_jwt_in_request()
    except Exception:
        return None
    return current_user


def run_as(user: Any, bodies: list[dict[str, Any]]) -> dict[str, int]:
    """Each chart-data request body run as `user`; how many results were computed, found cached, failed."""
    token = _warming.set(True)
    try:
        return _run(user, bodies)
    finally:
        _warming.reset(token)


def _run(user: Any, bodies: list[dict[str, Any]]) -> dict[str, int]:
    from superset.charts.schemas import ChartDataQueryContextSchema
    from superset.commands.chart.data.get_data_command import ChartDataCommand
    from superset.utils.core import override_user

    done = {"computed": 0, "cached": 0, "failed": 0}
    with override_user(user):
        for body in bodies:
            try:
                command = ChartDataCommand(ChartDataQueryContextSchema().load(body))
                command.validate()
                result = command.run()
            except Exception as exc:  # one chart failing must not stop the others
                log.warning("warm-up of a chart for %s failed: %s", user.username, type(exc).__name__)
                done["failed"] += 1
                continue
            for query in result.get("queries", []):
                done["cached" if query.get("is_cached") else "computed"] += 1
    return done


@blueprint.route("/api/v1/callsight/warm_cache", methods=["POST"])
def warm_cache() -> Any:
    from superset import security_manager

    caller = _caller()
    if caller is None:
        return jsonify(message="not logged in"), 401
    if ADMIN_ROLE not in {r.name for r in caller.roles}:
        return jsonify(message="admins only"), 403
    body = request.get_json(silent=True) or {}
    username, bodies = body.get("username"), body.get("requests")
    if not isinstance(username, str) or not isinstance(bodies, list):
        return jsonify(message="expected {username, requests}"), 400
    candidate = body.get("candidate", False)
    if not isinstance(candidate, bool):
        return jsonify(message="expected candidate: true or false"), 400
    user = security_manager.find_user(username=username)
    if user is None or not user.is_active:
        return jsonify(message="no such active user"), 404
    served = sys.modules["callsight_served_warehouse"]
    if candidate and not served.candidate_path(sys.modules["callsight_visibility"].served_path()).is_file():
        return jsonify(message="no build waiting to be published"), 409
    with served.reading_candidate() if candidate else contextlib.nullcontext():
        return jsonify(run_as(user, bodies))
