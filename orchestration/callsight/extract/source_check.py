"""Before the first night: is the journal readable, and what will the extract make of it?

`gather` asks the source the night's own questions, read-only: the schema against the contract, rows
per month, the counting pass (extract.run's placement), the staging SELECT over the rows a night reads
(quarantine reasons and private calls, counted in DuckDB: no row reaches Python but through the
SQLAlchemy reader, as in the extract) and the read rate of a sample. `judge` turns the facts into
findings and an exit code; `report_text` and `report_json` say them. Counts and rules only: no
number, name or subject of any call is ever part of the facts."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import duckdb
import sqlalchemy as sa

from callsight.extract.accounting import unplaced_reason_sql
from callsight.extract.reading import DUPLICATES_TABLE, index_window
from callsight.extract.run import CHUNK_ROWS, HORIZON
from callsight.extract.staging import staged_select
from callsight.journal.contract import JOURNAL_COLUMNS, TYPE_FAMILIES
from callsight.journal.raw_store import ensure_raw_store
from callsight.journal.sources import (
    EARLIEST_START,
    Placement,
    Source,
    SourceUnavailableError,
    Window,
    memory_connection,
)
from callsight.journal.timezones import folds
from callsight.privacy.masking import private_sql
from callsight.privacy.retention import retention_cutoff
from callsight.site.directory import Directory
from callsight.site.policy import Policy

SAMPLE_ROWS = 100_000
# Share of the rows a night reads that may be quarantined before the check warns.
MAX_QUARANTINE_SHARE = 0.01
# The newest call should be younger than this: an older one means ProCall stopped writing here.
RECENT_DAYS = 7

READY, WARNINGS, CANNOT_WORK = 0, 1, 2


@dataclass(frozen=True)
class Column:
    """A column of the journal table judged against the contract: ok, missing, retyped or extra."""

    name: str
    declared: str | None
    status: str
    expected: tuple[str, ...] = ()


@dataclass(frozen=True)
class PrivateCounts:
    """Private calls among the rows a night reads: all of them, and those on a private line of the
    org directory (the rest are private by their PrivateCall flag alone)."""

    total: int = 0
    on_private_line: int = 0


@dataclass
class SourceFacts:
    """What the check learned; never a value of a call. Times are local wall-clock times of the site."""

    url: str
    table: str
    reader: str
    today: date
    error: str | None = None
    error_kind: str | None = None  # unreachable, table_missing, unreadable
    columns: list[Column] = field(default_factory=list)
    months: dict[str, int] = field(default_factory=dict)
    undated_rows: int = 0  # rows with no usable StartTime (or one before 1980 or far ahead)
    first_day: str | None = None
    last_day: str | None = None
    cutoff: datetime | None = None
    until: datetime | None = None
    horizon: datetime | None = None
    kinds: dict[str, int] = field(default_factory=dict)  # expired, placed, later, unplaced
    quarantine: dict[str, int] = field(default_factory=dict)
    read_rows: int = 0
    private: PrivateCounts = PrivateCounts()
    private_mode: str = "truncate"
    truncate_digits: int = 3
    private_lines: int = 0
    directory_found: bool = True
    sample_rows: int = 0
    sample_seconds: float = 0.0

    @property
    def total_rows(self) -> int:
        return sum(self.kinds.values())

    @property
    def quarantined_rows(self) -> int:
        return sum(self.quarantine.values())

    @property
    def rows_per_second(self) -> float:
        return self.sample_rows / self.sample_seconds if self.sample_seconds else 0.0


@dataclass(frozen=True)
class Finding:
    """One thing to tell: level error (cannot work), warning or note; `code` names the message."""

    level: str
    code: str
    params: dict[str, object] = field(default_factory=dict)


# ---- pure judging ----------------------------------------------------------------------------------
def judge_columns(present: dict[str, str]) -> list[Column]:
    """Pure: the contract's columns (missing, retyped or ok, by the extract's type families) and the
    table's extra ones, from the table's column names and declared types (as the database names them)."""
    by_lower = {name.lower(): (name, declared.lower()) for name, declared in present.items()}
    out = []
    for name in JOURNAL_COLUMNS:
        found = by_lower.get(name.lower())
        families = TYPE_FAMILIES[name]
        if found is None:
            out.append(Column(name, None, "missing", families))
        elif not any(f in found[1] for f in families):
            out.append(Column(name, found[1], "retyped", families))
        else:
            out.append(Column(name, found[1], "ok", families))
    wanted = {c.lower() for c in JOURNAL_COLUMNS}
    out += [Column(name, declared.lower(), "extra") for name, declared in present.items() if name.lower() not in wanted]
    return out


def months_of(days: dict[str | None, int], horizon: datetime) -> tuple[dict[str, int], int, str | None, str | None]:
    """Pure: from rows per day as the source writes it, rows per month (YYYY-MM), the rows with no
    usable day (none, before EARLIEST_START, at or after the horizon), and the first and last usable day."""
    low, high = EARLIEST_START.strftime("%Y-%m-%d"), horizon.strftime("%Y-%m-%d")
    months: dict[str, int] = {}
    undated = 0
    usable = []
    for day, n in days.items():
        if day is None or not (low <= day < high):
            undated += n
        else:
            months[day[:7]] = months.get(day[:7], 0) + n
            usable.append(day)
    usable.sort()
    return dict(sorted(months.items())), undated, usable[0] if usable else None, usable[-1] if usable else None


def judge(facts: SourceFacts, max_quarantine_share: float = MAX_QUARANTINE_SHARE) -> list[Finding]:
    """Pure: the findings, worst first."""
    if facts.error_kind == "table_missing":
        return [Finding("error", "table_missing", {"table": facts.table, "url": facts.url})]
    if facts.error_kind:
        return [Finding("error", facts.error_kind, {"detail": facts.error or ""})]
    out: list[Finding] = []
    for c in facts.columns:
        if c.status == "missing":
            out.append(Finding("error", "column_missing", {"column": c.name}))
        elif c.status == "retyped":
            expected = ", ".join(c.expected)
            out.append(Finding("error", "column_retyped", {"column": c.name, "type": c.declared, "expected": expected}))
    extra = [c.name for c in facts.columns if c.status == "extra"]
    if any(f.level == "error" for f in out):
        return out
    if facts.total_rows == 0:
        out.append(Finding("warning", "empty", {}))
    elif facts.last_day is None or facts.last_day < (facts.today - timedelta(days=RECENT_DAYS)).isoformat():
        out.append(Finding("warning", "not_recent", {"days": RECENT_DAYS, "last_day": facts.last_day or "-"}))
    share = facts.quarantined_rows / facts.read_rows if facts.read_rows else 0.0
    if facts.quarantined_rows and share > max_quarantine_share:
        params = {"rows": facts.quarantined_rows, "share": round(100 * share, 2), "limit": 100 * max_quarantine_share}
        out.append(Finding("warning", "quarantine_share", params))
    elif facts.quarantined_rows:
        out.append(Finding("note", "quarantine_some", {"rows": facts.quarantined_rows, "share": round(100 * share, 2)}))
    if facts.kinds.get("expired"):
        # history older than the retention period is the policy at work, not a fault of the journal
        out.append(Finding("note", "expired", {"rows": facts.kinds["expired"], "cutoff": _day(facts.cutoff)}))
    if facts.kinds.get("unplaced"):
        out.append(Finding("warning", "unplaced", {"rows": facts.kinds["unplaced"]}))
    if facts.kinds.get("later"):
        out.append(Finding("note", "later", {"rows": facts.kinds["later"], "until": _day(facts.until)}))
    if not facts.directory_found:
        out.append(Finding("note", "no_directory", {}))
    if facts.private.total and facts.private_mode == "keep":
        out.append(Finding("note", "private_kept", {"rows": facts.private.total}))
    if extra:
        out.append(Finding("note", "extra_columns", {"columns": ", ".join(extra)}))
    return out


def exit_code(findings: list[Finding]) -> int:
    levels = {f.level for f in findings}
    return CANNOT_WORK if "error" in levels else WARNINGS if "warning" in levels else READY


def _day(t: datetime | None) -> str:
    return t.strftime("%Y-%m-%d") if t else "-"


# ---- gathering (read-only I/O) ---------------------------------------------------------------------
def night_placement(policy: Policy, today: date) -> Placement:
    """The placement a night run today would use for an initial load: retention cutoff, today's
    midnight (the end of yesterday's partition) and the horizon (extract.run)."""
    until = datetime.combine(today, datetime.min.time())
    horizon = datetime.combine(today + HORIZON, datetime.min.time())
    return Placement(retention_cutoff(today, policy.retention.journal_days), until, max(until, horizon))


def gather(
    source: Source,
    directory: Directory,
    policy: Policy,
    today: date | None = None,
    sample_rows: int = SAMPLE_ROWS,
    directory_found: bool = True,
) -> SourceFacts:
    """Ask the source what the check reports (see the module). Never writes the source; a source that
    cannot be reached, or lacks its table, gives facts with `error_kind` set."""
    today = today or datetime.now(policy.tz).date()
    facts = SourceFacts(
        source.display_url,
        source.table,
        source.kind,
        today,
        private_mode=policy.private_calls.mode,
        truncate_digits=policy.private_calls.truncate_digits,
        private_lines=len(directory.private_lines),
        directory_found=directory_found,
    )
    try:
        source.probe()
        present = _declared_columns(source)
    except SourceUnavailableError as exc:
        return _failed(facts, source, "unreachable", exc)
    except (sa.exc.SQLAlchemyError, ImportError, OSError) as exc:
        return _failed(facts, source, "unreadable", exc)
    if present is None:
        facts.error_kind = "table_missing"
        facts.error = f"journal table {source.table!r} not found in {source.display_url}"
        return facts
    facts.columns = judge_columns(present)
    if any(c.status in ("missing", "retyped") for c in facts.columns):
        return facts
    source.use_types({c.name: c.declared or "" for c in facts.columns if c.status == "ok"})
    placement = night_placement(policy, today)
    facts.cutoff, facts.until, facts.horizon = placement.cutoff, placement.until, placement.horizon
    con = memory_connection()
    try:
        source.attach(con)
        counts = source.counts(con, placement)
        facts.kinds = {
            k: sum(n for kind, _, n in counts if kind == k) for k in ("expired", "placed", "later", "unplaced")
        }
        dated = months_of(_rows_per_day(source, con), placement.horizon)
        facts.months, facts.undated_rows, facts.first_day, facts.last_day = dated
        _stage(facts, source, con, directory, policy, placement)
        facts.sample_rows, facts.sample_seconds = _sample(source, con, placement, sample_rows)
    except SourceUnavailableError as exc:
        return _failed(facts, source, "unreachable", exc)
    except (duckdb.Error, sa.exc.SQLAlchemyError, ValueError) as exc:
        return _failed(facts, source, "unreadable", exc)
    finally:
        con.close()
    return facts


def _failed(facts: SourceFacts, source: Source, kind: str, exc: BaseException) -> SourceFacts:
    facts.error_kind = kind
    facts.error = scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, source)
    return facts


def scrub(message: str, source: Source) -> str:
    """The message without the source's password (drivers may quote the connection string)."""
    password = source.url.password
    return message.replace(str(password), "***") if password else message


def _declared_columns(source: Source) -> dict[str, str] | None:
    """Column name -> declared type of the journal table, or None when there is no such table."""
    engine = source.engine()
    try:
        insp = sa.inspect(engine)
        if not insp.has_table(source.table):
            return None
        return {c["name"]: str(c["type"]) for c in insp.get_columns(source.table)}
    finally:
        engine.dispose()


def _rows_per_day(source: Source, con: duckdb.DuckDBPyConnection) -> dict[str | None, int]:
    """Rows per StartTime day as the source writes it (None: no usable StartTime), counted by the source."""
    t = source.terms
    assert t is not None
    sql = (
        f"SELECT d, count(*) AS n FROM (SELECT CASE WHEN {t.start_ok} THEN {t.day} END AS d "
        f"FROM {t.table}) days GROUP BY d"
    )
    if source.kind == "sqlalchemy":
        engine = source.engine()
        try:
            with engine.connect() as conn:
                rows = conn.execute(sa.text(sql.replace(":", "\\:"))).fetchall()
        finally:
            engine.dispose()
    else:
        func = {"sqlite": "sqlite_query", "postgres": "postgres_query", "mysql": "mysql_query"}[source.kind]
        quoted = "'" + sql.replace("'", "''") + "'"
        rows = con.execute(
            f"SELECT CAST(d AS VARCHAR), CAST(n AS BIGINT) FROM {func}('journal_src', {quoted})"
        ).fetchall()
    return {None if d is None else str(d): int(n) for d, n in rows}


def _tally_sql(staged: str, private_lines: list[str]) -> str:
    """Rows of the staging SELECT by reason, private or not, and on a private line or not (the private
    test again with the flag set aside); counted in DuckDB."""
    on_line = private_sql(private_lines, flag_is_text=False)
    return (
        f"SELECT _reason, _is_private, {on_line} AS on_line, count(*) "
        f'FROM (SELECT * REPLACE (0 AS "PrivateCall") FROM ({staged})) GROUP BY ALL'
    )


def _stage(
    facts: SourceFacts,
    source: Source,
    con: duckdb.DuckDBPyConnection,
    directory: Directory,
    policy: Policy,
    placement: Placement,
) -> None:
    """The extract's passes over the rows a night reads (extract.run): the window's placed rows with
    the IDs that repeat, and the unplaced rows with their reasons; an empty in-memory raw store stands
    in for the site's (the check must not touch it)."""
    window = Window(placement.cutoff, placement.until)
    con.execute("ATTACH ':memory:' AS store")
    ensure_raw_store(con, "store")
    index_window(source, con, window, CHUNK_ROWS, placement)
    repeated = folds(policy.timezone, window.start.date(), window.end.date() + timedelta(days=1))
    lines = directory.private_lines

    def window_sql(relation: str, types: dict[str, str]) -> str:
        return staged_select(relation, policy, lines, types, False, DUPLICATES_TABLE, None, repeated)

    def unplaced_sql(relation: str, types: dict[str, str]) -> str:
        staged = staged_select(relation, policy, lines, types, repeated=repeated, always_json=True)
        return f"SELECT * REPLACE ({unplaced_reason_sql(placement)} AS _reason) FROM ({staged})"

    reader = con.cursor()
    source.configure(reader)
    tallies: list[tuple[str | None, bool, bool, int]] = []
    try:
        tallies += _tally(source, reader, window, placement, window_sql, lines, unplaced=False)
        if facts.kinds.get("unplaced"):
            tallies += _tally(source, reader, window, placement, unplaced_sql, lines, unplaced=True)
    finally:
        reader.close()
    quarantine: dict[str, int] = {}
    for reason, _, _, n in tallies:
        if reason is not None:
            quarantine[reason] = quarantine.get(reason, 0) + n
    facts.quarantine = dict(sorted(quarantine.items(), key=lambda kv: (-kv[1], kv[0])))
    facts.read_rows = sum(n for *_, n in tallies)
    facts.private = PrivateCounts(
        sum(n for _, private, _, n in tallies if private),
        sum(n for _, private, on_line, n in tallies if private and on_line),
    )


def _tally(
    source: Source,
    reader: duckdb.DuckDBPyConnection,
    window: Window,
    placement: Placement,
    sql_for: Callable[[str, dict[str, str]], str],
    private_lines: list[str],
    unplaced: bool,
) -> list[tuple[str | None, bool, bool, int]]:
    """(reason, private, on a private line, rows) of one pass, read as extract.reading reads it."""
    if source.kind == "sqlalchemy":
        out = []
        for chunk in source.chunks(window, CHUNK_ROWS, placement, unplaced):
            reader.register("chunk_df", chunk)
            relation = "SELECT CAST(COLUMNS(*) AS VARCHAR) FROM chunk_df"
            out += reader.execute(_tally_sql(sql_for(relation, {}), private_lines)).fetchall()
            reader.unregister("chunk_df")
        return out
    relation = source.unplaced_relation_sql(placement) if unplaced else source.relation_sql(window, placement)
    types = {name: str(kind) for name, kind, *_ in reader.execute(f"DESCRIBE {relation}").fetchall()}
    return reader.execute(_tally_sql(sql_for(relation, types), private_lines)).fetchall()


def _sample(source: Source, con: duckdb.DuckDBPyConnection, placement: Placement, rows: int) -> tuple[int, float]:
    """(rows, seconds) reading up to `rows` of the window through the night's reader, every column."""
    if rows <= 0:
        return 0, 0.0
    window = Window(placement.cutoff, placement.until)
    t0 = time.perf_counter()
    if source.kind == "sqlalchemy":
        n = 0
        chunks = source.chunks(window, min(rows, CHUNK_ROWS), placement)
        try:
            for chunk in chunks:
                n += len(chunk)
                if n >= rows:
                    break
        finally:
            chunks.close()
        return n, time.perf_counter() - t0
    reader = con.cursor()
    try:
        source.configure(reader)
        cols = ", ".join(f'"{c}"' for c in JOURNAL_COLUMNS)
        relation = source.relation_sql(window, placement)
        (n,) = reader.execute(
            f"SELECT count(h) FROM (SELECT hash({cols}) AS h FROM ({relation}) LIMIT {int(rows)})"
        ).fetchone()
    finally:
        reader.close()
    return int(n), time.perf_counter() - t0
