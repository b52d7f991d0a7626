"""superset/schema_memo.py inside Superset (issue 31): the served warehouse's default schema is Superset's own
answer, asked of DuckDB once per process; an edited connection is asked anew, and a database of another
backend every time. Run in the session's Superset metadata, in a child interpreter of Superset's
environment."""

from __future__ import annotations

import json
import subprocess

import pytest

from callsight.bi.runtime import SupersetEnv

from .conftest import SupersetServer

pytestmark = pytest.mark.superset

CHILD = r"""
import json, sys
from superset.app import create_app

app = create_app()
from superset.db_engine_specs.base import BaseEngineSpec
from superset.extensions import db
from superset.models.core import Database

asked = []  # the databases whose engine was asked (each time on a new connection)
original = BaseEngineSpec.get_default_schema.__func__


def counting(cls, database, catalog):
    asked.append(database.backend)
    return original(cls, database, catalog)


BaseEngineSpec.get_default_schema = classmethod(counting)
memo = sys.modules["callsight_schema_memo"]
out = {}
with app.app_context():
    served = next(d for d in db.session.query(Database).all() if d.backend == "duckdb")
    out["own"] = memo._original(served, None)
    asked.clear()
    out["answers"] = [served.get_default_schema(None) for _ in range(3)]
    out["asked"] = list(asked)
    served.extra = json.dumps({**json.loads(served.extra or "{}"), "callsight_test": 1})  # an edited connection
    out["edited"] = served.get_default_schema(None)
    out["asked_edited"] = list(asked)
    db.session.rollback()
    other = Database(database_name="callsight-schema-memo-test", sqlalchemy_uri="sqlite://")
    asked.clear()
    out["other"] = [other.get_default_schema(None) for _ in range(2)]
    out["asked_other"] = list(asked)
print(json.dumps(out))
"""


def test_the_served_warehouse_s_default_schema_is_asked_once_and_is_superset_s_own(
    superset_server: SupersetServer,
) -> None:
    settings = superset_server.site.settings
    r = subprocess.run(
        [str(settings.superset_venv / "bin" / "python"), "-c", CHILD],
        capture_output=True,
        text=True,
        env=SupersetEnv(settings, superset_server.secret_key).environ(),
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["own"] == "main", out
    assert out["answers"] == [out["own"]] * 3, out
    assert out["asked"] == ["duckdb"], "DuckDB asked once for three requests"
    assert out["edited"] == "main" and out["asked_edited"] == ["duckdb", "duckdb"], "an edited connection: anew"
    assert out["other"] == ["main", "main"] and out["asked_other"] == ["sqlite", "sqlite"], "other backends: always"
