"""Superset's permission checks answered once per chart-data request, and again only after the
permissions changed (issue 31).

A chart-data request asks the metadata DB the same question several times: Superset's dataset access
checks ask "all_database_access" three to four times and "all_datasource_access" two to three times
(can_access_schema -> can_access_all_datasources -> can_access_all_databases, and again inside
can_access_database), and a request with a bearer token checks whether the endpoint is public twice
(Flask-AppBuilder's `protect`). Each is a query. Within one request the answer cannot change in a way
that matters: the request has made its decision with the first answer already.

So inside POST /api/v1/chart/data - a read, which changes no role or permission - each answer is kept
for the rest of that request, keyed by the viewer's role ids (direct and by group: Superset's
`get_user_roles`, from which each of these answers follows), the permission and the view. It lives in
the request's WSGI environ, not in `flask.g`: the night's warm-up runs several users' requests inside one
app context. Any other request (and everything outside a request) asks Superset as before.

Across chart-data requests the answers - view access, public permissions, the view menus a user holds a
permission on (the chart's and datasets' access filter), the row-level security filters of a table - are
kept in the process under the metadata's security token (security_state.py), read once per request: any
write to a role, permission, group or row-level security filter replaces the token in its own transaction,
so a revoked role or permission counts from the next request on, as it does without this. Where the token
cannot be trusted (its triggers missing), each request asks the database again.

Loaded by superset_config.py by path (this file is not in a package) after callsight_lru and
callsight_security_state; Superset never imports callsight.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Hashable
from typing import Any

from flask import g, has_request_context, request

log = logging.getLogger("callsight.access_memo")
CHART_DATA_PATH = "/api/v1/chart/data"
ENVIRON_KEY = "callsight.access_memo"
TOKEN_KEY = "callsight.access_memo.token"
SHARED_SIZE = 50_000  # (token, question) -> answer; a few hundred bytes each
SHARED = sys.modules["callsight_lru"].Lru(SHARED_SIZE)


def request_memo() -> dict[Hashable, Any] | None:
    """This chart-data request's answers, None outside one (nothing is kept there)."""
    if not has_request_context() or request.method != "POST" or request.path != CHART_DATA_PATH:
        return None
    return request.environ.setdefault(ENVIRON_KEY, {})


def request_token() -> str | None:
    """The metadata's security token as this request first saw it (None: keep nothing across requests).

    Read on the request's own connection, before the answers it is to stand for: later reads there see the
    same state or a newer one, never an older one, so no answer is kept under a token newer than its data."""
    if TOKEN_KEY not in request.environ:
        found = None
        if _token_table_ready():
            from superset.extensions import db

            found = sys.modules["callsight_security_state"].token(db.session.connection())
        request.environ[TOKEN_KEY] = found
    return request.environ[TOKEN_KEY]


_ready: list[bool] = []  # once per process: whether the token table exists


def _token_table_ready() -> bool:
    """Whether the metadata DB has the token table (init_metadata.py made it). Asked once per process on a
    connection of its own: on PostgreSQL a failed statement would spoil the request's transaction."""
    if not _ready:
        from superset.extensions import db

        try:
            with db.engine.connect() as con:
                con.exec_driver_sql(f"SELECT token FROM {sys.modules['callsight_security_state'].STATE_TABLE}")
            _ready.append(True)
        except Exception as exc:  # a metadata DB set up before the token: every request asks, as without it
            log.warning("no security token in the metadata DB (%s): access answers are kept per request only", exc)
            _ready.append(False)
    return _ready[0]


def remembered(memo: dict[Hashable, Any], key: Hashable, ask: Callable[[], Any]) -> Any:
    """The answer to `key`: this request's, else the process's under the current token, else `ask()`'s
    (then kept in both). Answers must be immutable: they are handed to several requests."""
    if key in memo:
        return memo[key]
    token = request_token()
    found = SHARED.get((token, key)) if token is not None else None
    if found is None:
        found = ask()
        if token is not None:
            SHARED.put((token, key), found)
    memo[key] = found
    return found


def signed_in() -> Any | None:
    """The request's user when it is a signed-in user of the metadata (not anonymous, not a guest)."""
    user = getattr(g, "user", None)
    if user is None or not getattr(user, "is_authenticated", False) or getattr(user, "is_guest_user", False):
        return None
    return user


def with_access_memo(base: type) -> type:
    """`base` (a Superset security manager class) answering its permission checks once per chart-data
    request, and across chart-data requests while the security token stays the same."""

    class AccessMemoSecurityManager(base):  # type: ignore[misc, valid-type]
        def _callsight_role_ids(self, user: Any) -> tuple[int, ...]:
            """The user's roles, direct and by group: with the token, what decides every answer kept here."""
            return tuple(sorted(role.id for role in self.get_user_roles(user)))

        def _has_view_access(self, user: Any, permission_name: str, view_name: str) -> bool:
            memo = request_memo()
            if memo is None or not getattr(user, "is_authenticated", False):
                return super()._has_view_access(user, permission_name, view_name)
            roles = self._callsight_role_ids(user)
            key = ("view_access", roles, permission_name, view_name)  # roles decide it (names, permissions)
            return remembered(
                memo,
                key,
                lambda: bool(super(AccessMemoSecurityManager, self)._has_view_access(user, permission_name, view_name)),
            )

        def is_item_public(self, permission_name: str, view_name: str) -> bool:
            memo = request_memo()
            if memo is None:
                return super().is_item_public(permission_name, view_name)
            key = ("public", permission_name, view_name)
            return remembered(
                memo,
                key,
                lambda: bool(super(AccessMemoSecurityManager, self).is_item_public(permission_name, view_name)),
            )

        def user_view_menu_names(self, permission_name: str) -> set[str]:
            memo, user = request_memo(), signed_in()
            if memo is None or user is None:
                return super().user_view_menu_names(permission_name)
            roles = self._callsight_role_ids(user)
            key = ("view_menus", roles, permission_name)  # the user's roles, direct and by group, decide it
            return set(
                remembered(
                    memo,
                    key,
                    lambda: frozenset(super(AccessMemoSecurityManager, self).user_view_menu_names(permission_name)),
                )
            )

        def get_rls_filters(self, table: Any) -> list[Any]:
            memo, user = request_memo(), signed_in()
            if memo is None or user is None:
                return super().get_rls_filters(table)
            roles = self._callsight_role_ids(user)
            key = ("rls", roles, table.id)
            return list(
                remembered(memo, key, lambda: tuple(super(AccessMemoSecurityManager, self).get_rls_filters(table)))
            )

    AccessMemoSecurityManager.__name__ = AccessMemoSecurityManager.__qualname__ = f"AccessMemo{base.__name__}"
    return AccessMemoSecurityManager
