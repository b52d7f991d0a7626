"""The night's cache warm-up, inside Superset: `POST /api/v1/callsight/warm_cache` (admins only, with a
JSON body {"users": [...], "requests": [{"path", "body"} of chart-data requests as the browser sent them, or
bare bodies], "candidate": false}) runs each
chart-data request as Superset's chart-data API would for each of the users - the same query context, the
user's roles, row-level security and visibility set, the SQL guard - so that the result lands in the
shared data cache (served_cache.py) under the key that user's own dashboard open will look up. The answer
carries counts, never data. Nothing is written to Superset's action log under those users (EVENT_LOGGER
below): the log is where the works council's access log comes from, and the warm-up is nobody's doing.
callsight.bi.warm_cache calls it with one user per visibility set.

The requests do not run in the web worker that takes the call: it starts a Superset process of its own
for them (this file run as a script, with the worker's environment) at the lowest CPU priority (NICE),
and answers at once (202) with a job token; `GET /api/v1/callsight/warm_cache/<token>` (admins only)
answers with the job's state and, once done, its counts (warm_jobs.py). The warm-up then takes only the
CPU that people's requests leave, and no web thread: a warm-up inside the workers computed on both cores
beside them, a niced thread there stalled the worker's other requests while it held the GIL, and a
worker waiting for the process held a thread for minutes (docs/performance.md).

With "candidate": true the requests read the build the night is about to publish, not the served file
(served_warehouse.reading_candidate), and their results wait in the cache under the version that build
will have once published: the first open after the swap is a hit, while everybody else goes on reading
the served file and its cached results. Refused (409) when there is no such build.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from flask import Blueprint, jsonify, request
from superset.utils.log import DBEventLogger

log = logging.getLogger("callsight.warm_cache")
ADMIN_ROLE = "Admin"
NICE = 19  # the warm-up's process: CPU only when nobody else wants it
TIMEOUT = 4 * 3600  # seconds: a warm-up that takes longer is stopped (the night goes on without it)
JOBS_FOLDER = "warm-jobs"  # under Superset's home: the jobs' states (warm_jobs.py)

blueprint = Blueprint("callsight_warm_cache", __name__)
_warming: contextvars.ContextVar[bool] = contextvars.ContextVar("callsight_warming", default=False)


CHART_DATA_PATH = "/api/v1/chart/data"  # POST: a chart's figures; GET .../<key>: a cached result


class EventLogger(DBEventLogger):
    """Superset's action log, without what the warm-up does in a user's name (their queries' timings) and
    without the chart-data requests' rows: three to six per request (the whole request with its filter
    values, timings), read by nothing - the access log counts the browser's events - and their commits
    were a fifth of a cached answer's time (docs/performance.md)."""

    def log(self, *args: Any, **kwargs: Any) -> None:
        if not _warming.get() and not _serving_chart_data():
            super().log(*args, **kwargs)


def _serving_chart_data() -> bool:
    from flask import has_request_context

    return has_request_context() and request.path.startswith(CHART_DATA_PATH)


def _caller() -> Any:
    """The authenticated caller (JWT bearer, as callsight's API client logs in), or None."""
    from flask_jwt_extended import current_user, verify_jwt_in_request

    try:
        verify_jwt_in_request()
    except Exception:
        return None
    return current_user


def sent_as(item: Any) -> tuple[str, dict[str, Any]] | None:
    """Pure: (path as the browser sent it, body) of one request of the job - {"path", "body"}, or a bare
    body (sent to CHART_DATA_PATH); None if it is neither."""
    if isinstance(item, dict) and set(item) == {"path", "body"}:
        path, body = item["path"], item["body"]
        ok = isinstance(path, str) and path.split("?", 1)[0] == CHART_DATA_PATH and isinstance(body, dict)
        return (path, body) if ok else None
    return (CHART_DATA_PATH, item) if isinstance(item, dict) else None


def run_as(app: Any, user: Any, requests: list[tuple[str, dict[str, Any]]]) -> dict[str, int]:
    """Each chart-data request run as `user`, inside a request as the browser sent it (its path and JSON
    body: the key memo keeps the key's Jinja values and the answer memo the whole answer for the web
    workers, key_memo.py, answer_memo.py); how many results were computed, found cached, failed, and how
    many answers were kept."""
    token = _warming.set(True)
    try:
        return _run(app, user, requests)
    finally:
        _warming.reset(token)


def _run(app: Any, user: Any, requests: list[tuple[str, dict[str, Any]]]) -> dict[str, int]:
    from superset.charts.schemas import ChartDataQueryContextSchema
    from superset.commands.chart.data.get_data_command import ChartDataCommand
    from superset.extensions import db
    from superset.utils.core import override_user

    done = {"computed": 0, "cached": 0, "failed": 0, "answers": 0}
    with override_user(user):
        for path, body in requests:
            try:
                with app.test_request_context(path, method="POST", json=body):
                    # One session serves the whole job: what an earlier request loaded (a dataset, a dashboard's
                    # roles) is read again, after the key's security token, as a web request reads it.
                    db.session.rollback()
                    key = _answers().answer_key()  # before the work, as a web request takes it
                    command = ChartDataCommand(ChartDataQueryContextSchema().load(body))
                    command.validate()
                    result = command.run()
                    done["answers"] += _keep_answer(key, command, result)
            except Exception as exc:  # one chart failing must not stop the others
                log.warning("warm-up of a chart for %s failed: %s", user.username, type(exc).__name__)
                done["failed"] += 1
                continue
            for query in result.get("queries", []):
                done["cached" if query.get("is_cached") else "computed"] += 1
    return done


def _keep_answer(key: str | None, command: Any, result: dict[str, Any]) -> int:
    """The whole answer kept for the viewers of this request's key (answer_memo.py): 1 if it was."""
    datasource = getattr(getattr(command, "_query_context", None), "datasource", None)
    return int(key is not None and _answers().keep(key, datasource, result.get("queries") or []))


def _answers() -> Any:
    return sys.modules["callsight_answer_memo"]


@blueprint.route("/api/v1/callsight/warm_cache", methods=["POST"])
def warm_cache() -> Any:
    from superset import security_manager

    caller = _caller()
    if caller is None:
        return jsonify(message="not logged in"), 401
    if ADMIN_ROLE not in {r.name for r in caller.roles}:
        return jsonify(message="admins only"), 403
    body = request.get_json(silent=True) or {}
    users, bodies, candidate = body.get("users"), body.get("requests"), body.get("candidate", False)
    if not isinstance(users, list) or not all(isinstance(u, str) for u in users) or not isinstance(bodies, list):
        return jsonify(message="expected {users, requests}"), 400
    if any(sent_as(item) is None for item in bodies):
        return jsonify(message="expected requests: chart-data bodies or {path, body}"), 400
    if not isinstance(candidate, bool):
        return jsonify(message="expected candidate: true or false"), 400
    for username in users:
        user = security_manager.find_user(username=username)
        if user is None or not user.is_active:
            return jsonify(message="no such active user"), 404
    served = sys.modules["callsight_served_warehouse"]
    if candidate and not served.candidate_path(sys.modules["callsight_visibility"].served_path()).is_file():
        return jsonify(message="no build waiting to be published"), 409
    try:
        token = in_own_process(users, bodies, candidate)
    except OSError as exc:
        log.warning("warm-up process not started: %s", exc)
        return jsonify(message=f"warm-up not started: {type(exc).__name__}"), 500
    return jsonify(job=token, state="running"), 202


@blueprint.route("/api/v1/callsight/warm_cache/<token>", methods=["GET"])
def warm_cache_job(token: str) -> Any:
    """A warm-up's state: running, done with its counts, or failed with a reason."""
    caller = _caller()
    if caller is None:
        return jsonify(message="not logged in"), 401
    if ADMIN_ROLE not in {r.name for r in caller.roles}:
        return jsonify(message="admins only"), 403
    jobs = sys.modules["callsight_warm_jobs"]
    path = jobs.job_path(jobs_folder(), token)
    job = None if path is None else jobs.state(path)
    if job is None:
        return jsonify(message="no such warm-up"), 404
    return jsonify(job)


def jobs_folder() -> Path:
    from flask import current_app

    return Path(current_app.config["DATA_DIR"]) / JOBS_FOLDER


def child_environment(env: dict[str, str]) -> dict[str, str]:
    """Pure: this process's environment for the warm-up's: secrets as resolved here, not also beside their
    <NAME>_FILE (superset_config refuses a secret given both ways)."""
    return {k: v for k, v in env.items() if not (k.endswith("_FILE") and k.removesuffix("_FILE") in env)}


def in_own_process(users: list[str], bodies: list[Any], candidate: bool) -> str:
    """Start the requests for each user in a Superset process of its own at the lowest CPU priority; the
    job's token."""
    return sys.modules["callsight_warm_jobs"].start(
        jobs_folder(),
        [sys.executable, os.path.abspath(__file__)],
        {"users": users, "requests": bodies, "candidate": candidate},
        child_environment(dict(os.environ)),
        TIMEOUT,
    )


def main() -> int:
    """The warm-up's process: {"users", "requests", "candidate"} on stdin, the counts into the job's file
    (the first argument)."""
    os.nice(NICE)
    result = Path(sys.argv[1])
    job = json.loads(sys.stdin.read())
    from superset.app import create_app

    app = create_app()
    # The module superset_config.py loaded, not this script's: its _warming is what EVENT_LOGGER looks at.
    own = sys.modules["callsight_warm_cache"]
    served = sys.modules["callsight_served_warehouse"]
    done = {"computed": 0, "cached": 0, "failed": 0, "answers": 0}
    with app.app_context():
        from superset import security_manager

        for username in job["users"]:
            user = security_manager.find_user(username=username)
            reading = served.reading_candidate() if job["candidate"] else contextlib.nullcontext()
            with reading:
                for k, v in own.run_as(app, user, [own.sent_as(item) for item in job["requests"]]).items():
                    done[k] += v
    sys.modules["callsight_warm_jobs"].finish(result, done)
    return 0


if __name__ == "__main__":
    sys.exit(main())
