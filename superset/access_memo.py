"""Superset's permission checks answered once per chart-data request (issue 31).

A chart-data request asks the metadata DB the same question several times: Superset's dataset access
checks ask "all_database_access" three to four times and "all_datasource_access" two to three times
(can_access_schema -> can_access_all_datasources -> can_access_all_databases, and again inside
can_access_database), and a request with a bearer token checks whether the endpoint is public twice
(Flask-AppBuilder's `protect`). Each is a query. Within one request the answer cannot change in a way
that matters: the request has made its decision with the first answer already.

So inside POST /api/v1/chart/data - a read, which changes no role or permission - each answer is kept
for the rest of that request only, keyed by the user, their role ids, the permission and the view. It
lives in the request's WSGI environ, not in `flask.g`: the night's warm-up runs several users' requests
inside one app context. Any other request (and everything outside a request) asks Superset as before,
and the next request asks the database again: a revoked role or permission counts from the next request on,
as it does without this.

Loaded by superset_config.py by path (this file is not in a package); Superset never imports callsight.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from flask import has_request_context, request

CHART_DATA_PATH = "/api/v1/chart/data"
ENVIRON_KEY = "callsight.access_memo"


def request_memo() -> dict[Hashable, bool] | None:
    """This chart-data request's answers, None outside one (nothing is kept there)."""
    if not has_request_context() or request.method != "POST" or request.path != CHART_DATA_PATH:
        return None
    return request.environ.setdefault(ENVIRON_KEY, {})


def with_access_memo(base: type) -> type:
    """`base` (a Superset security manager class) answering its permission checks once per chart-data
    request."""

    class AccessMemoSecurityManager(base):  # type: ignore[misc, valid-type]
        def _has_view_access(self, user: Any, permission_name: str, view_name: str) -> bool:
            memo = request_memo()
            if memo is None or not getattr(user, "is_authenticated", False):
                return super()._has_view_access(user, permission_name, view_name)
            roles = tuple(sorted(role.id for role in self.get_user_roles(user)))
            key = ("view_access", user.id, roles, permission_name, view_name)
            if key not in memo:
                memo[key] = bool(super()._has_view_access(user, permission_name, view_name))
            return memo[key]

        def is_item_public(self, permission_name: str, view_name: str) -> bool:
            memo = request_memo()
            if memo is None:
                return super().is_item_public(permission_name, view_name)
            key = ("public", permission_name, view_name)
            if key not in memo:
                memo[key] = bool(super().is_item_public(permission_name, view_name))
            return memo[key]

    AccessMemoSecurityManager.__name__ = AccessMemoSecurityManager.__qualname__ = f"AccessMemo{base.__name__}"
    return AccessMemoSecurityManager
