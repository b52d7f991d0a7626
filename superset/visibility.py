"""The logged-in viewer's visibility set, for row-level security and Superset's chart cache.

Superset keys a cached chart result by the Jinja values its SQL used: with the viewer's username in the
row-level security clause, every viewer had results of their own, and 25 people opening the same dashboard
computed it 25 times. The clause now names the viewer's visibility set (security.viewer_visibility_sets: a
hash of the agents the viewer may see) through `callsight_visibility_set()`, wrapped in Superset's
`cache_key_wrapper`; viewers who may see the same agents share a result, and nobody else can reach it.

The set is looked up in the served warehouse that the query will read (the same DuckDB instance as
Superset's connections, served_warehouse.py), once per viewer and published version in each process. A
user the warehouse does not know gets NO_SET, which names no agent.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

NO_SET = "-"  # no md5: matches no row of security.visibility_sets
DATABASE_NAME = "callsight"  # superset/assets/databases/callsight.yaml
LOOKUP = "SELECT visibility_set FROM security.viewer_visibility_sets WHERE viewer_username = ?"

_known: dict[tuple[Any, str], str] = {}
_lock = threading.Lock()
_opened: list[Any] = []


def _served() -> Any:
    return sys.modules["callsight_served_warehouse"]  # loaded beside superset_config.py


def _warehouse() -> Any:
    """The served warehouse as Superset's connections to the `callsight` database open it (its path and
    configuration never change while a process runs: looked up once)."""
    with _lock:
        if _opened:
            return _opened[0]
    from superset import db
    from superset.models.core import Database

    database = db.session.query(Database).filter_by(database_name=DATABASE_NAME).one()
    args = database.get_extra().get("engine_params", {}).get("connect_args", {})
    warehouse = _served().served(database.url_object.database, dict(args.get("config") or {}))
    with _lock:
        _opened[:] = [warehouse]
    return warehouse


def served_path() -> Any:
    """The served file of the `callsight` database (a Path)."""
    return _warehouse().path


def lookup(warehouse: Any, username: str) -> str:
    con = warehouse.connect()
    try:
        row = con.execute(LOOKUP, [username]).fetchone()
    finally:
        con.close()
    return row[0] if row else NO_SET


def visibility_set() -> str:
    """Jinja: the current user's visibility set in the warehouse served now (NO_SET for nobody)."""
    from superset.utils.core import get_username

    username = get_username()
    if not username:
        return NO_SET
    warehouse = _warehouse()
    key = (_served().versions_now(), username)
    with _lock:
        known = _known.get(key)
    if known is None:
        known = lookup(warehouse, username)
        with _lock:
            # a publish: forget the replaced warehouse's sets (not for a warm-up of the candidate: the
            # served warehouse's are still in use)
            if not _served().candidate_now() and any(k[0] != key[0] for k in _known):
                _known.clear()
            _known[key] = known
    return known
