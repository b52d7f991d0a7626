"""Where journal rows come from: the UCServer's database, read through the fastest offline reader.

SQLite, PostgreSQL and MariaDB/MySQL are read by DuckDB's own scanners (the extensions ship in the
duckdb-ext-* packages, nothing is downloaded); any other SQLAlchemy URL (Microsoft SQL Server) is
streamed through SQLAlchemy in chunks. Every reader yields the journal columns as text, so the masking
and validation that follow treat all sources alike.
"""

from __future__ import annotations

import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import sqlalchemy as sa

from .demo_data import JOURNAL_COLUMNS

TIME_COLUMNS = ("StartTime", "StopTime", "ConnectTime", "DisconnectTime")
INT_COLUMNS = ("DurationTotal", "DurationConnected")
FLAG_COLUMNS = ("Outbound", "Internal", "SuccessState", "ReadFlag", "PrivateCall")
TEXT_COLUMNS = tuple(c for c in JOURNAL_COLUMNS if c not in (*TIME_COLUMNS, *INT_COLUMNS, *FLAG_COLUMNS, "ID"))
# Accepted source type families per column: a column of another family is schema drift.
TYPE_FAMILIES = {
    **dict.fromkeys(TIME_COLUMNS, ("date", "time", "char", "text", "clob")),
    **dict.fromkeys(
        (*INT_COLUMNS, *FLAG_COLUMNS, "ID"), ("int", "num", "dec", "bit", "bool", "real", "float", "double")
    ),
    **dict.fromkeys(TEXT_COLUMNS, ("char", "text", "clob", "string", "uniqueidentifier", "int")),
}
DUCKDB_KINDS = {"sqlite": "sqlite", "postgresql": "postgres", "mysql": "mysql", "mariadb": "mysql"}


class SchemaDriftError(RuntimeError):
    """The source journal lacks columns callsight needs, or one has changed its type."""


class SourceUnavailableError(RuntimeError):
    """The journal database cannot be reached (the nightly job retries with backoff)."""


def extension_directory() -> str:
    return str(Path(sysconfig.get_paths()["purelib"]) / "duckdb_ext" / "extensions")


def memory_connection() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that never spills to disk: cleartext source rows stay in memory."""
    con = duckdb.connect(config={"extension_directory": extension_directory()})
    con.execute("SET temp_directory = ''")
    con.execute("SET preserve_insertion_order = false")  # lets scans and inserts run in parallel
    return con


@dataclass(frozen=True)
class Window:
    """Half-open local wall-clock interval [start, end) over StartTime."""

    start: datetime
    end: datetime

    @classmethod
    def for_days(cls, first: date, last: date, lookback_days: int = 1) -> Window:
        """Partitions first..last plus the look-back before `last`, in local wall-clock time."""
        begin = min(first, last - timedelta(days=lookback_days - 1))
        return cls(
            datetime.combine(begin, datetime.min.time()),
            datetime.combine(last + timedelta(days=1), datetime.min.time()),
        )


def window_select(table: str, window: Window, as_text: bool) -> sa.Select:
    """The one query the extract sends to the source (also compiled for MSSQL in the tests)."""
    src = sa.table(table, *(sa.column(c, sa.DateTime if c == "StartTime" else sa.String) for c in JOURNAL_COLUMNS))
    cols = [sa.cast(src.c[c], sa.String).label(c) if as_text else src.c[c] for c in JOURNAL_COLUMNS]
    return sa.select(*cols).where(src.c.StartTime >= window.start, src.c.StartTime < window.end)


def window_ids_select(table: str, window: Window) -> sa.Select:
    """The ID of every row in the window (also compiled for MSSQL in the tests)."""
    src = sa.table(table, sa.column("ID"), sa.column("StartTime", sa.DateTime))
    return sa.select(src.c.ID).where(src.c.StartTime >= window.start, src.c.StartTime < window.end)


def first_start_select(table: str) -> sa.Select:
    """Earliest StartTime of the journal: where an initial load begins."""
    src = sa.table(table, sa.column("StartTime", sa.DateTime))
    return sa.select(sa.func.min(src.c.StartTime))


def check_schema(engine: sa.Engine, table: str) -> None:
    insp = sa.inspect(engine)
    if not insp.has_table(table):
        raise SchemaDriftError(f"journal table {table!r} not found in the source database")
    present = {c["name"].lower(): c for c in insp.get_columns(table)}
    missing = [c for c in JOURNAL_COLUMNS if c.lower() not in present]
    if missing:
        raise SchemaDriftError(f"journal table {table!r} lacks column(s): {', '.join(missing)}")
    for name in JOURNAL_COLUMNS:
        declared = str(present[name.lower()]["type"]).lower()
        if not any(f in declared for f in TYPE_FAMILIES[name]):
            raise SchemaDriftError(
                f"journal column {name!r} has type {declared.upper()}, expected one of the families "
                f"{', '.join(TYPE_FAMILIES[name])}"
            )


class Source:
    """A journal source bound to an in-memory DuckDB connection."""

    def __init__(self, url: str, table: str, reader: str = "auto"):
        self.url = sa.make_url(url)
        self.table = table
        backend = self.url.get_backend_name()
        self.kind = DUCKDB_KINDS.get(backend, "sqlalchemy") if reader == "auto" else reader

    def engine(self) -> sa.Engine:
        return sa.create_engine(self.url)

    @property
    def display_url(self) -> str:
        return self.url.render_as_string(hide_password=True)

    def probe(self) -> None:
        """Fail fast and clearly when the journal database cannot be reached (never create it)."""
        if self.url.get_backend_name() == "sqlite":
            path = Path(self.url.database or "")
            if not path.is_file():
                raise SourceUnavailableError(f"journal database file {path} not found ({self.display_url})")
        engine = self.engine()
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.DBAPIError as exc:
            raise SourceUnavailableError(
                f"cannot reach the journal database {self.display_url}: {str(exc.orig).strip()[:300]}"
            ) from exc
        finally:
            engine.dispose()

    def _conninfo(self, default_port: int, database_key: str) -> str:
        """key=value connection string for DuckDB's postgres (libpq) and mysql scanners."""
        u = self.url
        parts = {
            "host": u.host or "localhost",
            "port": u.port or default_port,
            database_key: u.database,
            "user": u.username,
            "password": u.password,
        }
        return " ".join(f"{k}={v}" for k, v in parts.items() if v is not None)

    def attach(self, con: duckdb.DuckDBPyConnection) -> None:
        if self.kind == "sqlalchemy":
            return
        con.execute(f"LOAD {self.kind}")
        self.configure(con)
        if self.kind == "sqlite":
            target = self.url.database or ""
        elif self.kind == "postgres":
            target = self._conninfo(5432, "dbname")
        else:
            target = self._conninfo(3306, "database")
        try:
            con.execute(f"ATTACH {quote_literal(target)} AS journal_src (TYPE {self.kind}, READ_ONLY)")
        except duckdb.Error as exc:
            # never let the connection string (with its password) reach a log
            message = str(exc).replace(self.url.password or "\0", "***")
            raise SourceUnavailableError(f"cannot attach the journal database {self.display_url}: {message}") from None

    def configure(self, con: duckdb.DuckDBPyConnection) -> None:
        """Session settings the reader needs, on every connection (cursor) that reads the source."""
        if self.kind == "sqlite":
            con.execute("SET sqlite_all_varchar = true")

    def _pass_through(self, query: sa.Select) -> str:
        """A query run by the source server itself (PostgreSQL, MySQL/MariaDB)."""
        sql = str(query.compile(dialect=self.engine().dialect, compile_kwargs={"literal_binds": True}))
        func = "postgres_query" if self.kind == "postgres" else "mysql_query"
        return f"SELECT * FROM {func}('journal_src', {quote_literal(sql)})"

    def relation_sql(self, window: Window) -> str:
        """SQL over the attached source yielding the window's rows (text for SQLite and MySQL/MariaDB)."""
        cols = ", ".join(f'"{c}"' for c in JOURNAL_COLUMNS)
        fmt = "%Y-%m-%d %H:%M:%S"
        start, end = window.start.strftime(fmt), window.end.strftime(fmt)
        if self.kind == "sqlite":
            return (
                f'SELECT {cols} FROM journal_src."{self.table}" '
                f"WHERE \"StartTime\" >= '{start}' AND \"StartTime\" < '{end}'"
            )
        # PostgreSQL, MySQL/MariaDB: a pass-through query. MySQL values come as text (zero dates and the
        # like); PostgreSQL keeps its types.
        return self._pass_through(window_select(self.table, window, as_text=self.kind == "mysql"))

    def window_ids_sql(self, window: Window) -> str:
        """DuckDB SQL yielding one row per source row of the window: its ID parsed as BIGINT, as the
        extract parses it (' 5' and '5' are the same ID; NULL where there is none). One cheap pass
        over a single column before the rows are streamed."""
        if self.kind == "sqlite":
            return f'SELECT TRY_CAST("ID" AS BIGINT) AS "ID" FROM ({self.relation_sql(window)})'
        ids = self._pass_through(window_ids_select(self.table, window))
        return f'SELECT TRY_CAST("ID" AS BIGINT) AS "ID" FROM ({ids})'

    def window_ids(self, window: Window, rows: int) -> Iterator[list[str | None]]:
        """SQLAlchemy fallback: the window's IDs as text, in chunks."""
        engine = self.engine()
        try:
            with engine.connect().execution_options(stream_results=True, yield_per=rows) as conn:
                result = conn.execute(window_ids_select(self.table, window))
                while chunk := result.fetchmany(rows):
                    yield [_as_text(r[0]) for r in chunk]
        finally:
            engine.dispose()

    def chunks(self, window: Window, rows: int) -> Iterator[pd.DataFrame]:
        """SQLAlchemy fallback: stream the window in chunks, values as text."""
        engine = self.engine()
        try:
            with engine.connect().execution_options(stream_results=True, yield_per=rows) as conn:
                result = conn.execute(window_select(self.table, window, as_text=False))
                while batch := result.fetchmany(rows):
                    frame = pd.DataFrame.from_records(batch, columns=list(JOURNAL_COLUMNS))
                    yield frame.map(_as_text).astype("object")
        finally:
            engine.dispose()


def _as_text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def quote_literal(text: str) -> str:
    """A DuckDB/SQL string literal."""
    return "'" + text.replace("'", "''") + "'"
