"""Journals for the tests: ProCall-shaped rows, a SQLite journal file, a journal table on a live
PostgreSQL or MariaDB server, and reading a DuckDB file back."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import duckdb
import sqlalchemy as sa

from callsight.journal.contract import FLAG_COLUMNS, INT_COLUMNS, JOURNAL_COLUMNS, JOURNAL_DDL, TIME_COLUMNS
from callsight.journal.sources import Source, Window
from callsight.site.directory import Directory

from .conftest import require_service

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
MARIADB_URL = "mysql+pymysql://root@127.0.0.1:3306/test?charset=utf8mb4"
DIRECTORY = Directory.model_validate(
    {"users": [{"username": "a.b", "name": "A B"}], "private_lines": ["+49 8151 3680-199"]}
)
WIN = Window(datetime(2026, 3, 1), datetime(2026, 4, 1))


def row(i: int, start: str, **kw) -> dict:
    """One journal leg of agent a.b with a customer's number; `kw` overrides any column."""
    base = {c: None for c in JOURNAL_COLUMNS}
    base.update(
        ID=i,
        StartTime=start,
        StopTime=start,
        DurationTotal=30,
        DurationConnected=0,
        Outbound=0,
        Internal=0,
        LineNumber="+49 8151 3680-201",
        CTIServerUserName="a.b",
        SuccessState=0,
        ReadFlag=1,
        PrivateCall=0,
        TrackerID=f"t{i}",
        PhoneNumber="+49 89 1234567",
        ContactName="Karl Kunde",
        ContactCompany="Kunde GmbH",
        Subject="Angebot",
    )
    base.update(kw)
    return base


def write_journal(path: Path, rows: list[dict], start_required: bool = True) -> Source:
    """A SQLite journal file as ProCall writes it, without the ID's primary key so that duplicates can
    be written; `start_required=False` drops StartTime's NOT NULL too (SQLite then holds anything)."""
    ddl = JOURNAL_DDL.format(table="journal").replace("ID INTEGER PRIMARY KEY", "ID INTEGER")
    if not start_required:
        ddl = ddl.replace("StartTime DATETIME NOT NULL", "StartTime DATETIME")
    con = sqlite3.connect(path)
    con.execute(ddl)
    con.executemany(
        f"INSERT INTO journal VALUES ({','.join('?' for _ in JOURNAL_COLUMNS)})",
        [tuple(r[c] for c in JOURNAL_COLUMNS) for r in rows],
    )
    con.commit()
    con.close()
    return Source(f"sqlite:///{path}", "journal")


def journal_table(name: str, metadata: sa.MetaData) -> sa.Table:
    """The journal table with the server's own types (date/time, small integers, strings)."""
    cols = []
    for c in JOURNAL_COLUMNS:
        if c in TIME_COLUMNS:
            t = sa.DateTime
        elif c in FLAG_COLUMNS:
            t = sa.SmallInteger
        elif c == "ID":
            t = sa.BigInteger
        elif c in INT_COLUMNS:
            t = sa.Integer
        else:
            t = sa.String(1024) if c == "Subject" else sa.String(255)
        cols.append(sa.Column(c, t, primary_key=c == "ID", autoincrement=False))
    return sa.Table(name, metadata, *cols, mysql_charset="utf8mb4")


def server_journal(
    url: str, what: str, rows: list[dict], loose: bool = False, text_start: bool = False
) -> Iterator[tuple[str, sa.Engine]]:
    """A journal table of a random name on a live server, dropped afterwards: (table, engine).
    `loose`: every column nullable, no primary key, and with `text_start` StartTime held as text."""
    engine = sa.create_engine(url)
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as exc:
        require_service(False, f"{what} ({exc.orig})")
    name = f"journal_{uuid.uuid4().hex[:8]}"
    table = journal_table(name, sa.MetaData())
    if loose:
        columns = [
            sa.Column(c.name, sa.String(32) if c.name == "StartTime" and text_start else c.type, nullable=True)
            for c in table.columns
        ]
        table = sa.Table(name, sa.MetaData(), *columns, mysql_charset="utf8mb4")
    table.create(engine)
    try:
        if rows:
            with engine.begin() as conn:
                conn.execute(table.insert(), [{c: r.get(c) for c in JOURNAL_COLUMNS} for r in rows])
        yield name, engine
    finally:
        table.drop(engine)
        engine.dispose()


def duckdb_rows(path: Path, sql: str, params: list | None = None) -> list[tuple]:
    """Rows of one query on a DuckDB file, opened read-only and closed again."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()
