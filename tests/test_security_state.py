"""superset/security_state.py on real SQLite and PostgreSQL databases (issue 31): every kind of write to every
table that decides access replaces the token, whatever wrote it; a database missing a trigger or a table has
no token; installing twice changes nothing. The tables here have Superset's names and the columns the
writes need; the real schema is covered by the Superset tests (init_metadata installs it there)."""

from __future__ import annotations

import importlib.util
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from .conftest import reachable, require_service

MODULE = Path(__file__).resolve().parents[1] / "superset" / "security_state.py"


def _load():
    spec = importlib.util.spec_from_file_location("callsight_security_state_test", MODULE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


state = _load()


def _create_tables(engine: sa.Engine, tables: tuple[str, ...]) -> None:
    with engine.begin() as con:
        for table in tables:
            con.exec_driver_sql(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, name TEXT)")
        con.exec_driver_sql("CREATE TABLE ab_user (id INTEGER PRIMARY KEY, last_login TEXT)")


def _token(engine: sa.Engine) -> str | None:
    with engine.connect() as con:
        return state.token(con)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    if request.param == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'superset.db'}")
        yield engine
        engine.dispose()
        return
    require_service(reachable(("127.0.0.1", 5432)), "PostgreSQL on 127.0.0.1:5432")
    name = f"callsight_state_{secrets.token_hex(4)}"
    admin = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as con:
        con.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine = sa.create_engine(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as con:
            con.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.dispose()


def test_every_write_to_a_table_that_decides_access_replaces_the_token(engine: sa.Engine) -> None:
    _create_tables(engine, state.TABLES)
    with pytest.raises(sa.exc.DBAPIError):  # not installed: no token table (access_memo asks for it first)
        _token(engine)
    assert state.install(engine) is True
    assert state.install(engine) is True  # again, as at every start: still one set of triggers
    seen = [_token(engine)]
    assert seen[0] is not None and len(seen[0]) >= 32
    for table in state.TABLES:
        for write in (
            f"INSERT INTO {table} (id, name) VALUES (1, 'a')",
            f"UPDATE {table} SET name = 'b' WHERE id = 1",
            f"DELETE FROM {table} WHERE id = 1",
        ):
            with engine.begin() as con:
                con.exec_driver_sql(write)
            seen.append(_token(engine))
            assert seen[-1] is not None and seen[-1] not in seen[:-1], (table, write)
    with engine.begin() as con:  # a user's login writes to ab_user: no answer kept under the token reads it
        con.exec_driver_sql("INSERT INTO ab_user (id, last_login) VALUES (1, 'now')")
        con.exec_driver_sql("UPDATE ab_user SET last_login = 'later' WHERE id = 1")
    assert _token(engine) == seen[-1]


def test_a_write_in_a_transaction_changes_the_token_with_it(engine: sa.Engine) -> None:
    _create_tables(engine, state.TABLES)
    state.install(engine)
    before = _token(engine)
    with engine.connect() as con:
        con.exec_driver_sql("INSERT INTO ab_user_role (id, name) VALUES (1, 'grant')")
        assert state.token(con) != before  # the writer sees its own new token at once
        con.rollback()
    assert _token(engine) == before  # rolled back: the state and its token are as they were


def test_a_missing_trigger_or_table_leaves_no_token(engine: sa.Engine) -> None:
    _create_tables(engine, state.TABLES[:-1])
    assert state.install(engine) is False  # a table missing: nothing installed
    with pytest.raises(sa.exc.DBAPIError):
        _token(engine)
    with engine.begin() as con:
        con.exec_driver_sql(f"CREATE TABLE {state.TABLES[-1]} (id INTEGER PRIMARY KEY, name TEXT)")
    assert state.install(engine) is True and _token(engine) is not None
    with engine.begin() as con:  # a migration rebuilds a table: its triggers are gone with it
        con.exec_driver_sql("DROP TABLE rls_filter_tables")
        con.exec_driver_sql("CREATE TABLE rls_filter_tables (id INTEGER PRIMARY KEY, name TEXT)")
    assert _token(engine) is None
    assert state.install(engine) is True and _token(engine) is not None  # the next start puts them back
