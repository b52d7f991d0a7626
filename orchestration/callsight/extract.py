"""Nightly journal extract: read a window of the source journal in chunks, mask, validate, upsert.

The source is any SQLAlchemy URL. Private data is masked (privacy.apply_privacy) before a row is
written anywhere; malformed rows are quarantined with their reason; the window is replaced in one
transaction, so rows edited or deleted in the source within the window are mirrored.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import sqlalchemy as sa

from .config import Directory, Policy
from .demo_data import JOURNAL_COLUMNS
from .privacy import apply_privacy

TIME_COLUMNS = ("StartTime", "StopTime", "ConnectTime", "DisconnectTime")
INT_COLUMNS = ("DurationTotal", "DurationConnected")
FLAG_COLUMNS = ("Outbound", "Internal", "SuccessState", "ReadFlag", "PrivateCall")
TEXT_COLUMNS = tuple(
    c for c in JOURNAL_COLUMNS if c not in (*TIME_COLUMNS, *INT_COLUMNS, *FLAG_COLUMNS, "ID")
)
HASHED_COLUMNS = tuple(f'"{c}"' for c in (*JOURNAL_COLUMNS, "_is_private"))
MAX_TEXT = {"Subject": 4000}
DEFAULT_MAX_TEXT = 1000
MAX_DURATION_SECONDS = 24 * 3600
CHUNK_ROWS = 50_000
CONTROL_CHARS = r"[\x00-\x08\x0a-\x1f\x7f]"

RAW_DDL = """
CREATE TABLE IF NOT EXISTS journal (
    ID BIGINT PRIMARY KEY,
    StartTime TIMESTAMP NOT NULL,
    StopTime TIMESTAMP,
    DurationTotal INTEGER,
    ConnectTime TIMESTAMP,
    DisconnectTime TIMESTAMP,
    DurationConnected INTEGER,
    Outbound SMALLINT,
    Internal SMALLINT,
    LineNumber VARCHAR,
    LineName VARCHAR,
    LineUserName VARCHAR,
    LocalNumber VARCHAR,
    RedirectingNumber VARCHAR,
    PhoneNumber VARCHAR,
    ContactName VARCHAR,
    ContactCompany VARCHAR,
    ContactEntryID VARCHAR,
    ContactEntryStoreID VARCHAR,
    ContactEntryDBID VARCHAR,
    CTIServerUserName VARCHAR,
    SuccessState SMALLINT,
    Subject VARCHAR,
    ReadFlag SMALLINT,
    ProjectName VARCHAR,
    ProjectID VARCHAR,
    PrivateCall SMALLINT,
    TrackerID VARCHAR,
    _is_private BOOLEAN NOT NULL,
    _row_hash UBIGINT,
    _run_id VARCHAR NOT NULL,
    _extracted_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
    source_id VARCHAR,
    start_time_text VARCHAR,
    reason VARCHAR NOT NULL,
    row_json VARCHAR NOT NULL,
    _is_private BOOLEAN NOT NULL,
    _run_id VARCHAR NOT NULL,
    _extracted_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS extract_runs (
    run_id VARCHAR NOT NULL,
    window_start TIMESTAMP NOT NULL,
    window_end TIMESTAMP NOT NULL,
    source_rows BIGINT NOT NULL,
    loaded_rows BIGINT NOT NULL,
    quarantined_rows BIGINT NOT NULL,
    seconds DOUBLE NOT NULL,
    finished_at TIMESTAMP NOT NULL
);
"""


class SchemaDriftError(RuntimeError):
    """The source journal lacks columns callsight needs."""


@dataclass(frozen=True)
class Window:
    """Half-open local wall-clock interval [start, end) over StartTime."""

    start: datetime
    end: datetime

    @classmethod
    def for_days(cls, first: date, last: date, lookback_days: int = 1) -> Window:
        """Window covering the partitions first..last plus the look-back before `last`."""
        begin = min(first, last - timedelta(days=lookback_days - 1))
        return cls(
            datetime.combine(begin, datetime.min.time()),
            datetime.combine(last + timedelta(days=1), datetime.min.time()),
        )


@dataclass(frozen=True)
class ExtractStats:
    run_id: str
    window: Window
    source_rows: int
    loaded_rows: int
    quarantined_rows: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.source_rows / self.seconds if self.seconds else 0.0


# ---- reading ------------------------------------------------------------------------------------
def check_source_schema(engine: sa.Engine, table: str) -> None:
    insp = sa.inspect(engine)
    if not insp.has_table(table):
        raise SchemaDriftError(f"journal table {table!r} not found in the source database")
    present = {c["name"].lower() for c in insp.get_columns(table)}
    missing = [c for c in JOURNAL_COLUMNS if c.lower() not in present]
    if missing:
        raise SchemaDriftError(f"journal table {table!r} lacks column(s): {', '.join(missing)}")


def window_query(table: str, window: Window, dialect: str) -> tuple[sa.Select, dict]:
    src = sa.table(table, *(sa.column(c) for c in JOURNAL_COLUMNS))
    start, end = window.start, window.end
    if dialect == "sqlite":  # the UCServer writes text timestamps into SQLite
        params = {"w_start": start.strftime("%Y-%m-%d %H:%M:%S"), "w_end": end.strftime("%Y-%m-%d %H:%M:%S")}
    else:
        params = {"w_start": start, "w_end": end}
    query = (
        sa.select(*src.c)
        .where(src.c.StartTime >= sa.bindparam("w_start"), src.c.StartTime < sa.bindparam("w_end"))
        .order_by(src.c.ID)
    )
    return query, params


def read_window(
    engine: sa.Engine, table: str, window: Window, chunk_rows: int = CHUNK_ROWS
) -> Iterator[pd.DataFrame]:
    query, params = window_query(table, window, engine.dialect.name)
    with engine.connect().execution_options(stream_results=True, yield_per=chunk_rows) as conn:
        result = conn.execute(query, params)
        while True:
            rows = result.fetchmany(chunk_rows)
            if not rows:
                break
            yield pd.DataFrame.from_records(rows, columns=list(JOURNAL_COLUMNS))


# ---- validation ---------------------------------------------------------------------------------
def _to_ts(series: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(series):
        return series.astype("datetime64[us]")
    return pd.to_datetime(
        series.astype("object").where(series.notna(), None), errors="coerce", format="mixed"
    ).astype("datetime64[us]")


def normalize_and_validate(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Cast to the raw schema. Returns (typed frame, reason per row; None where the row is fine)."""
    out = pd.DataFrame(index=frame.index)
    reasons = pd.Series([None] * len(frame), index=frame.index, dtype="object")

    def flag(mask: pd.Series, reason: str) -> None:
        hit = mask.fillna(False).astype(bool) & reasons.isna()
        reasons[hit] = reason

    ids = pd.to_numeric(frame["ID"], errors="coerce")
    flag(ids.isna(), "ID missing or not an integer")
    out["ID"] = ids.astype("Int64")
    for col in TIME_COLUMNS:
        out[col] = _to_ts(frame[col])
        flag(frame[col].notna() & out[col].isna(), f"{col} unparseable")
    flag(out["StartTime"].isna(), "StartTime missing or unparseable")
    for col in INT_COLUMNS:
        val = pd.to_numeric(frame[col], errors="coerce")
        flag(frame[col].notna() & val.isna(), f"{col} not a number")
        flag(val < 0, f"{col} negative")
        flag(val > MAX_DURATION_SECONDS, f"{col} longer than 24 hours")
        out[col] = val.round().astype("Int64")
    for col in FLAG_COLUMNS:
        val = pd.to_numeric(frame[col], errors="coerce")
        flag(~val.isin([0, 1]) & frame[col].notna(), f"{col} not 0/1")
        out[col] = val.where(val.isin([0, 1])).astype("Int16")
    flag(out["StopTime"] < out["StartTime"], "StopTime before StartTime")
    flag(out["DisconnectTime"] < out["ConnectTime"], "DisconnectTime before ConnectTime")
    flag(out["ConnectTime"] < out["StartTime"], "ConnectTime before StartTime")
    for col in TEXT_COLUMNS:
        val = frame[col].astype("string")
        limit = MAX_TEXT.get(col, DEFAULT_MAX_TEXT)
        flag(val.str.len() > limit, f"{col} longer than {limit} characters")
        flag(val.str.contains(CONTROL_CHARS, regex=True), f"{col} contains control characters")
        out[col] = val
    flag(out["ID"].duplicated(keep=False), "ID duplicated in source")
    return out, reasons


# ---- loading ------------------------------------------------------------------------------------
def ensure_raw_store(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(RAW_DDL)


def extract(
    engine: sa.Engine,
    table: str,
    raw_db: Path,
    window: Window,
    directory: Directory,
    policy: Policy,
    run_id: str,
    chunk_rows: int = CHUNK_ROWS,
    log: Callable[[str], None] = lambda _m: None,
) -> ExtractStats:
    """Replace `window` in the raw store with the masked, validated source rows."""
    t0 = time.perf_counter()
    check_source_schema(engine, table)
    raw_db.parent.mkdir(parents=True, exist_ok=True)
    now = datetime.now()
    source = loaded = quarantined = 0
    con = duckdb.connect(str(raw_db))
    try:
        ensure_raw_store(con)
        con.execute("BEGIN TRANSACTION")
        con.execute("CREATE OR REPLACE TEMP TABLE incoming AS SELECT * FROM journal LIMIT 0")
        con.execute("CREATE OR REPLACE TEMP TABLE seen (source_id VARCHAR)")
        for chunk in read_window(engine, table, window, chunk_rows):
            source += len(chunk)
            seen = pd.DataFrame({"source_id": chunk["ID"].map(lambda v: None if v is None else str(v))})
            con.register("seen_df", seen)
            con.execute("INSERT INTO seen SELECT source_id FROM seen_df")
            con.unregister("seen_df")
            masked = apply_privacy(chunk, policy.private_calls, directory.private_lines)
            typed, reasons = normalize_and_validate(masked)
            typed["_is_private"] = masked["_is_private"]
            typed["_run_id"] = run_id
            typed["_extracted_at"] = now
            good = typed[reasons.isna()]
            bad = masked[reasons.notna()]
            if len(good):
                con.register("chunk_df", good)
                con.execute("INSERT INTO incoming BY NAME SELECT * FROM chunk_df")
                con.unregister("chunk_df")
                loaded += len(good)
            if len(bad):
                q = pd.DataFrame(
                    {
                        "source_id": bad["ID"].map(lambda v: None if v is None else str(v)),
                        "start_time_text": bad["StartTime"].map(lambda v: None if v is None else str(v)),
                        "reason": reasons[reasons.notna()],
                        "row_json": bad[list(JOURNAL_COLUMNS)].apply(
                            lambda r: json.dumps(
                                {k: (None if pd.isna(v) else str(v)) for k, v in r.items()},
                                ensure_ascii=False,
                            ),
                            axis=1,
                        ),
                        "_is_private": bad["_is_private"],
                        "_run_id": run_id,
                        "_extracted_at": now,
                    }
                )
                con.register("q_df", q)
                con.execute("INSERT INTO quarantine BY NAME SELECT * FROM q_df")
                con.unregister("q_df")
                quarantined += len(bad)
            log(f"extract: {source} source rows read")
        # Mirror the window: rows deleted in the source disappear, edited rows are replaced, and
        # unchanged rows keep their _extracted_at, so that dbt's incremental models see only changes.
        params = [window.start, window.end]
        con.execute(f"UPDATE incoming SET _row_hash = hash({', '.join(HASHED_COLUMNS)})")
        con.execute(
            "DELETE FROM journal WHERE StartTime >= ? AND StartTime < ? "
            "AND ID NOT IN (SELECT ID FROM incoming)",
            params,
        )
        con.execute(
            "DELETE FROM journal WHERE ID IN (SELECT i.ID FROM incoming i JOIN journal j ON i.ID = j.ID "
            "WHERE i._row_hash IS DISTINCT FROM j._row_hash)"
        )
        con.execute(
            "INSERT INTO journal SELECT * FROM incoming i WHERE NOT EXISTS "
            "(SELECT 1 FROM journal j WHERE j.ID = i.ID)"
        )
        # A rerun of the window supersedes what earlier runs quarantined for the same rows.
        con.execute(
            "DELETE FROM quarantine WHERE _run_id <> ? AND (source_id IN (SELECT source_id FROM seen) OR "
            "(TRY_CAST(start_time_text AS TIMESTAMP) >= ? AND TRY_CAST(start_time_text AS TIMESTAMP) < ?))",
            [run_id, *params],
        )
        seconds = time.perf_counter() - t0
        con.execute(
            "INSERT INTO extract_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [run_id, window.start, window.end, source, loaded, quarantined, seconds, now],
        )
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise
    finally:
        con.close()
    return ExtractStats(run_id, window, source, loaded, quarantined, time.perf_counter() - t0)
