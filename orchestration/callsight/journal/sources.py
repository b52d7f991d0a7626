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

from callsight.journal.contract import JOURNAL_COLUMNS, TYPE_FAMILIES
from callsight.site.sql_text import quote_literal

DUCKDB_KINDS = {"sqlite": "sqlite", "postgresql": "postgres", "mysql": "mysql", "mariadb": "mysql"}
# A StartTime before this is no call time but a default or a typo (the epoch, a zero date, year 1):
# such rows are quarantined, not expired by retention.
EARLIEST_START = datetime(1980, 1, 1)
# The form of a usable StartTime held as text: a date first (what SQLite's text, and a text column
# elsewhere, must start with to compare as a time).
START_GLOB = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*"
START_REGEX = "^[0-9]{4}-[0-9]{2}-[0-9]{2}"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


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


def window_select(table: str, window: Window | None, as_text: bool, where: str | None = None) -> sa.Select:
    """The one query the extract sends to the source (also compiled for MSSQL in the tests). `where`:
    a condition in the source's SQL (Placement.placed_sql); without a window, only that condition."""
    src = sa.table(table, *(sa.column(c, sa.DateTime if c == "StartTime" else sa.String) for c in JOURNAL_COLUMNS))
    cols = [sa.cast(src.c[c], sa.String).label(c) if as_text else src.c[c] for c in JOURNAL_COLUMNS]
    query = sa.select(*cols)
    if window is not None:
        query = query.where(src.c.StartTime >= window.start, src.c.StartTime < window.end)
    return query.where(sa.text(where)) if where else query


def window_ids_select(table: str, window: Window, where: str | None = None) -> sa.Select:
    """The ID of every row in the window (also compiled for MSSQL in the tests)."""
    src = sa.table(table, sa.column("ID"), sa.column("StartTime", sa.DateTime))
    query = sa.select(src.c.ID).where(src.c.StartTime >= window.start, src.c.StartTime < window.end)
    return query.where(sa.text(where)) if where else query


def first_start_select(table: str) -> sa.Select:
    """Earliest StartTime of the journal: where an initial load begins."""
    src = sa.table(table, sa.column("StartTime", sa.DateTime))
    return sa.select(sa.func.min(src.c.StartTime))


def check_schema(engine: sa.Engine, table: str) -> dict[str, str]:
    """The declared type of every journal column (lower case); SchemaDriftError if one is missing or
    of another family."""
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
    return {name: str(present[name.lower()]["type"]).lower() for name in JOURNAL_COLUMNS}


# ---- where every source row belongs: the night's accounting ----------------------------------------
@dataclass(frozen=True)
class Placement:
    """How a night divides the whole source (issue 26: no row vanishes). By StartTime, read as the
    source compares it:
      expired   - a usable StartTime before `cutoff` (retention; counted, never read),
      placed    - a usable StartTime in [cutoff, until) and an integer ID: the days the extract
                  reads and keeps (the window is read; the days before it were, and are read again
                  when their count in the source and in the raw store differ),
      later     - a usable StartTime in [until, horizon) and an integer ID: read by a later night,
      unplaced  - everything else: no usable StartTime (NULL, empty, not a date, before
                  EARLIEST_START), one at or after `horizon` (implausibly far ahead), or, from the
                  cutoff on, no integer ID. No window can hold these rows, so a pass of their own
                  reads them every night and quarantines them, keyed by ID.
    A usable StartTime is what the source holds as a time (a date/time column, NULL aside) or text
    starting with a date (YYYY-MM-DD); an integer ID what an integer column holds, or text that is
    exactly an integer. Each dialect gets the same conditions in its own SQL."""

    cutoff: datetime
    until: datetime
    horizon: datetime

    @staticmethod
    def literal(t: datetime) -> str:
        return "'" + t.strftime(TIME_FORMAT) + "'"


@dataclass(frozen=True)
class Terms:
    """The source dialect's SQL for: StartTime is usable (`start_ok`), the ID is an integer (`id_ok`),
    the StartTime's day as text YYYY-MM-DD (`day`), the quoted StartTime (`start`) and table."""

    start_ok: str
    id_ok: str
    day: str
    start: str
    table: str


def native_terms(dialect: str, table: str, types: dict[str, str]) -> Terms:
    """Pure: Terms in the SQL of `dialect` (sqlite, postgresql, mysql/mariadb, mssql; others get the
    PostgreSQL forms without regular expressions) for a journal whose declared column types are `types`."""
    start_text = not any(f in types.get("StartTime", "text") for f in ("date", "time"))
    id_int = "int" in types.get("ID", "") and dialect != "sqlite"
    if dialect in ("mysql", "mariadb"):
        st, idc, tbl = "`StartTime`", "`ID`", f"`{table}`"
        text = f"CAST({st} AS CHAR)"
        start_ok = f"{st} REGEXP '{START_REGEX}'" if start_text else f"{st} IS NOT NULL"
        id_ok = f"{idc} IS NOT NULL" if id_int else f"CAST({idc} AS CHAR) REGEXP '^-?[0-9]{{1,18}}$'"
        return Terms(start_ok, id_ok, f"LEFT({text}, 10)", st, tbl)
    st, idc, tbl = '"StartTime"', '"ID"', '"' + table.replace('"', '""') + '"'
    if dialect == "sqlite":
        # SQLite keeps any type in any column: only text that starts with a date compares as a time.
        return Terms(
            f"(typeof({st}) = 'text' AND {st} GLOB '{START_GLOB}')",
            f"CAST(CAST({idc} AS INTEGER) AS TEXT) = CAST({idc} AS TEXT)",
            f"substr({st}, 1, 10)",
            st,
            tbl,
        )
    if dialect == "mssql":
        st, idc, tbl = "[StartTime]", "[ID]", f"[{table}]"
        start_ok = f"TRY_CONVERT(datetime2, LEFT({st}, 19), 120) IS NOT NULL" if start_text else f"{st} IS NOT NULL"
        id_ok = f"{idc} IS NOT NULL" if id_int else f"TRY_CONVERT(bigint, {idc}) IS NOT NULL"
        return Terms(start_ok, id_ok, f"LEFT(CONVERT(varchar(30), {st}, 120), 10)", st, tbl)
    regex = dialect == "postgresql"
    start_ok = f"{st} ~ '{START_REGEX}'" if start_text and regex else f"{st} IS NOT NULL"
    if id_int:
        id_ok = f"{idc} IS NOT NULL"
    else:
        id_ok = f"CAST({idc} AS TEXT) ~ '^-?[0-9]{{1,18}}$'" if regex else f"{idc} IS NOT NULL"
    return Terms(start_ok, id_ok, f"LEFT(CAST({st} AS VARCHAR(30)), 10)", st, tbl)


def placed_sql(t: Terms, p: Placement, until: datetime | None = None) -> str:
    """Pure: true exactly for the rows with a usable StartTime in [cutoff, `until` or horizon) and an
    integer ID (never NULL: a CASE of 0/1)."""
    lo, hi = Placement.literal(max(p.cutoff, EARLIEST_START)), Placement.literal(until or p.horizon)
    inner = f"CASE WHEN {t.start} >= {lo} AND {t.start} < {hi} AND {t.id_ok} THEN 1 ELSE 0 END"
    return f"(CASE WHEN {t.start_ok} THEN {inner} ELSE 0 END) = 1"


def unplaced_sql(t: Terms, p: Placement) -> str:
    """Pure: true exactly for the unplaced rows (see Placement)."""
    lo, hi = Placement.literal(EARLIEST_START), Placement.literal(p.horizon)
    cut = Placement.literal(max(p.cutoff, EARLIEST_START))
    inner = (
        f"CASE WHEN {t.start} < {lo} OR {t.start} >= {hi} THEN 1 WHEN {t.start} < {cut} THEN 0 "
        f"WHEN {t.id_ok} THEN 0 ELSE 1 END"
    )
    return f"(CASE WHEN {t.start_ok} THEN {inner} ELSE 1 END) = 1"


def counts_sql(t: Terms, p: Placement) -> str:
    """Pure: the counting pass, one query run by the source itself: rows (kind, day, rows) with kind
    expired, placed, later or unplaced (Placement) and the day only for placed rows."""
    lo, hi = Placement.literal(EARLIEST_START), Placement.literal(p.horizon)
    cut, until = Placement.literal(max(p.cutoff, EARLIEST_START)), Placement.literal(p.until)
    kind = (
        f"CASE WHEN {t.start_ok} THEN (CASE WHEN {t.start} < {lo} OR {t.start} >= {hi} THEN 'unplaced' "
        f"WHEN {t.start} < {cut} THEN 'expired' "
        f"WHEN {t.id_ok} THEN (CASE WHEN {t.start} >= {until} THEN 'later' ELSE 'placed' END) "
        "ELSE 'unplaced' END) ELSE 'unplaced' END"
    )
    day = "CASE WHEN k = 'placed' THEN d END"
    return (
        f"SELECT k, {day} AS placed_day, count(*) AS n FROM "
        f"(SELECT {kind} AS k, {t.day} AS d FROM {t.table}) classified GROUP BY k, {day}"
    )


def duckdb_placed_sql(p: Placement, until: datetime | None = None) -> str:
    """Pure: placed_sql for SQLite's rows as DuckDB's SQLite scanner hands them over (all text), the
    same rows as SQLite's own conditions select (an integer or real never looks like a date)."""
    lo, hi = Placement.literal(max(p.cutoff, EARLIEST_START)), Placement.literal(until or p.horizon)
    return (
        f'coalesce("StartTime" GLOB \'{START_GLOB}\' AND "StartTime" >= {lo} AND "StartTime" < {hi} '
        'AND CAST(TRY_CAST("ID" AS BIGINT) AS VARCHAR) = "ID", false)'
    )


class Source:
    """A journal source bound to an in-memory DuckDB connection."""

    def __init__(self, url: str, table: str, reader: str = "auto"):
        self.url = sa.make_url(url)
        self.table = table
        backend = self.url.get_backend_name()
        self.kind = DUCKDB_KINDS.get(backend, "sqlalchemy") if reader == "auto" else reader
        self.terms: Terms | None = None

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

    def use_types(self, types: dict[str, str]) -> None:
        """The journal's declared column types (check_schema): the night's conditions in the source's SQL."""
        self.terms = native_terms(self.url.get_backend_name(), self.table, types)

    def _terms(self) -> Terms:
        if self.terms is None:
            engine = self.engine()
            try:
                self.use_types(check_schema(engine, self.table))
            finally:
                engine.dispose()
        assert self.terms is not None
        return self.terms

    def _where(self, condition: str) -> str:
        """A source condition for sa.text (its colons are no bind parameters)."""
        return condition.replace(":", "\\:")

    def _native(self, sql: str) -> str:
        """DuckDB SQL over a query the source runs itself (SQLite, PostgreSQL, MySQL/MariaDB)."""
        func = {"sqlite": "sqlite_query", "postgres": "postgres_query", "mysql": "mysql_query"}[self.kind]
        return f"SELECT * FROM {func}('journal_src', {quote_literal(sql)})"

    def relation_sql(self, window: Window, placement: Placement | None = None) -> str:
        """SQL over the attached source yielding the window's rows (text for SQLite and MySQL/MariaDB);
        with a `placement`, only its placed rows (the unplaced ones have a pass of their own)."""
        cols = ", ".join(f'"{c}"' for c in JOURNAL_COLUMNS)
        fmt = "%Y-%m-%d %H:%M:%S"
        start, end = window.start.strftime(fmt), window.end.strftime(fmt)
        if self.kind == "sqlite":
            placed = f" AND {duckdb_placed_sql(placement)}" if placement else ""
            return (
                f'SELECT {cols} FROM journal_src."{self.table}" '
                f"WHERE \"StartTime\" >= '{start}' AND \"StartTime\" < '{end}'{placed}"
            )
        # PostgreSQL, MySQL/MariaDB: a pass-through query. MySQL values come as text (zero dates and the
        # like); PostgreSQL keeps its types.
        where = self._where(placed_sql(self._terms(), placement)) if placement else None
        return self._pass_through(window_select(self.table, window, as_text=self.kind == "mysql", where=where))

    def unplaced_relation_sql(self, placement: Placement) -> str:
        """DuckDB SQL yielding the source's unplaced rows (see Placement), selected by the source itself:
        a condition no index answers, but the source scans for it without handing over any other row."""
        terms = self._terms()
        if self.kind == "sqlite":
            cols = ", ".join(f'"{c}"' for c in JOURNAL_COLUMNS)
            return self._native(f"SELECT {cols} FROM {terms.table} WHERE {unplaced_sql(terms, placement)}")
        where = self._where(unplaced_sql(terms, placement))
        return self._pass_through(window_select(self.table, None, as_text=self.kind == "mysql", where=where))

    def counts(self, con: duckdb.DuckDBPyConnection, placement: Placement) -> list[tuple[str, str | None, int]]:
        """The counting pass: (kind, day of placed rows, rows) over the whole source, counted by the
        source itself in one query (see Placement and counts_sql)."""
        sql = counts_sql(self._terms(), placement)
        if self.kind == "sqlalchemy":
            engine = self.engine()
            try:
                with engine.connect() as conn:
                    rows = conn.execute(sa.text(self._where(sql))).fetchall()
            finally:
                engine.dispose()
        else:
            rows = con.execute(
                f"SELECT CAST(k AS VARCHAR), CAST(placed_day AS VARCHAR), CAST(n AS BIGINT) FROM ({self._native(sql)})"
            ).fetchall()
        return [(str(k), None if d is None else str(d), int(n)) for k, d, n in rows]

    def window_ids_sql(self, window: Window, placement: Placement | None = None) -> str:
        """DuckDB SQL yielding one row per source row of the window: its ID parsed as BIGINT, as the
        extract parses it (' 5' and '5' are the same ID; NULL where there is none). One cheap pass
        over a single column before the rows are streamed."""
        if self.kind == "sqlite":
            return f'SELECT TRY_CAST("ID" AS BIGINT) AS "ID" FROM ({self.relation_sql(window, placement)})'
        where = self._where(placed_sql(self._terms(), placement)) if placement else None
        ids = self._pass_through(window_ids_select(self.table, window, where))
        return f'SELECT TRY_CAST("ID" AS BIGINT) AS "ID" FROM ({ids})'

    def window_ids(self, window: Window, rows: int, placement: Placement | None = None) -> Iterator[list[str | None]]:
        """SQLAlchemy fallback: the window's IDs as text, in chunks."""
        where = self._where(placed_sql(self._terms(), placement)) if placement else None
        engine = self.engine()
        try:
            with engine.connect().execution_options(stream_results=True, yield_per=rows) as conn:
                result = conn.execute(window_ids_select(self.table, window, where))
                while chunk := result.fetchmany(rows):
                    yield [_as_text(r[0]) for r in chunk]
        finally:
            engine.dispose()

    def chunks(
        self, window: Window | None, rows: int, placement: Placement | None = None, unplaced: bool = False
    ) -> Iterator[pd.DataFrame]:
        """SQLAlchemy fallback: stream the window in chunks, values as text (with `unplaced`, the
        placement's unplaced rows instead of a window)."""
        where = None
        if placement is not None:
            where = self._where((unplaced_sql if unplaced else placed_sql)(self._terms(), placement))
        engine = self.engine()
        try:
            with engine.connect().execution_options(stream_results=True, yield_per=rows) as conn:
                result = conn.execute(window_select(self.table, None if unplaced else window, False, where))
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
