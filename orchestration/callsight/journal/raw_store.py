"""The raw store (CALLSIGHT_HOME/warehouse/journal.duckdb) and the one place its tables are defined.

It holds the masked mirror of the journal, the quarantine, the extract runs, the erasure register, the
audit log, Superset's access log and the number-key salt. The extract, the audit log and the erasure
open it through here."""

from __future__ import annotations

import secrets
import time

import duckdb

from callsight.journal.contract import JOURNAL_COLUMNS, JOURNAL_TYPES
from callsight.site.settings import Settings

_JOURNAL_COLS_DDL = ",\n    ".join(
    f'"{c}" {JOURNAL_TYPES[c]}' + (" NOT NULL" if c in ("ID", "StartTime") else "") for c in JOURNAL_COLUMNS
)


RAW_DDL = f"""
CREATE TABLE IF NOT EXISTS {{db}}journal (
    {_JOURNAL_COLS_DDL},
    _is_private BOOLEAN NOT NULL,
    _row_hash UBIGINT,
    _run_id VARCHAR NOT NULL,
    _extracted_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS {{db}}quarantine (
    source_id VARCHAR,
    start_time_text VARCHAR,
    reason VARCHAR NOT NULL,
    row_json VARCHAR NOT NULL,
    _is_private BOOLEAN NOT NULL,
    _run_id VARCHAR NOT NULL,
    _extracted_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS {{db}}extract_runs (
    run_id VARCHAR NOT NULL,
    window_start TIMESTAMP NOT NULL,
    window_end TIMESTAMP NOT NULL,
    source_rows BIGINT NOT NULL,
    loaded_rows BIGINT NOT NULL,
    quarantined_rows BIGINT NOT NULL,
    seconds DOUBLE NOT NULL,
    finished_at TIMESTAMP NOT NULL
);
-- Rows of the window deleted by retention in the same run (a chain that began before the cutoff
-- expires whole): source rows = loaded + quarantined, and loaded = in the journal + expired.
ALTER TABLE {{db}}extract_runs ADD COLUMN IF NOT EXISTS expired_in_window BIGINT DEFAULT 0;
-- The whole source as the counting pass found it (sources.Placement): total rows, expired (usable
-- StartTime before the cutoff), placed (in [cutoff, reconciled_until)), later (from there up to the
-- horizon) and unplaced; healed_from: where the window was moved back to because the counts of a day
-- before it differed between the source and the raw store.
ALTER TABLE {{db}}extract_runs ADD COLUMN IF NOT EXISTS source_total BIGINT;
ALTER TABLE {{db}}extract_runs ADD COLUMN IF NOT EXISTS source_expired BIGINT;
ALTER TABLE {{db}}extract_runs ADD COLUMN IF NOT EXISTS source_placed BIGINT;
ALTER TABLE {{db}}extract_runs ADD COLUMN IF NOT EXISTS source_later BIGINT;
ALTER TABLE {{db}}extract_runs ADD COLUMN IF NOT EXISTS source_unplaced BIGINT;
ALTER TABLE {{db}}extract_runs ADD COLUMN IF NOT EXISTS retention_cutoff TIMESTAMP;
ALTER TABLE {{db}}extract_runs ADD COLUMN IF NOT EXISTS reconciled_until TIMESTAMP;
ALTER TABLE {{db}}extract_runs ADD COLUMN IF NOT EXISTS horizon TIMESTAMP;
ALTER TABLE {{db}}extract_runs ADD COLUMN IF NOT EXISTS healed_from TIMESTAMP;
-- Quarantined rows no partition day can hold (no usable StartTime or ID, or one implausibly far
-- ahead): keyed by ID, replaced every night by the unplaced pass. And when each row was first refused
-- (kept while it stays refused for the same reason; _extracted_at is the last night that read it).
ALTER TABLE {{db}}quarantine ADD COLUMN IF NOT EXISTS _unplaced BOOLEAN DEFAULT false;
ALTER TABLE {{db}}quarantine ADD COLUMN IF NOT EXISTS _first_quarantined_at TIMESTAMP;
-- Legs from the cutoff on that retention deleted because their chain began before it (a call expires
-- whole): the source still has them, so the accounting counts them as expired. IDs and days only.
CREATE TABLE IF NOT EXISTS {{db}}retention_expired ("ID" BIGINT, start_day DATE NOT NULL, _run_id VARCHAR NOT NULL);
"""


def ensure_raw_store(con: duckdb.DuckDBPyConnection, db: str = "") -> None:
    prefix = f"{db}." if db else ""
    con.execute(RAW_DDL.format(db=prefix))
    # Rows scrubbed by an erasure before the scrubbed-row hash existed had none (see SCRUBBED_ROW_HASH).
    if con.execute(f"SELECT 1 FROM {prefix}journal WHERE _row_hash IS NULL LIMIT 1").fetchone():
        con.execute(f"UPDATE {prefix}journal SET _row_hash = {SCRUBBED_ROW_HASH} WHERE _row_hash IS NULL")
    if con.execute(f"SELECT 1 FROM {prefix}quarantine WHERE _first_quarantined_at IS NULL LIMIT 1").fetchone():
        con.execute(
            f"UPDATE {prefix}quarantine SET _first_quarantined_at = _extracted_at WHERE _first_quarantined_at IS NULL"
        )
    ensure_register(con, db)
    ensure_audit_log(con, db)
    ensure_access_log(con, db)
    ensure_number_key_salt(con, db)  # the analysts' number keys (privacy/number_keys.py)
    # Where the raw checks once recorded the extract stamps that passed; they now keep their record of
    # validated rows in a file of their own (quality/).
    con.execute(f"DROP TABLE IF EXISTS {prefix}quality_validated")


AUDIT_DDL = """
CREATE TABLE IF NOT EXISTS {db}audit_log (
    seq BIGINT NOT NULL,
    event_id VARCHAR NOT NULL,
    recorded_at TIMESTAMP NOT NULL,
    kind VARCHAR NOT NULL,
    subject VARCHAR NOT NULL,
    detail VARCHAR NOT NULL,
    previous_hash VARCHAR NOT NULL,
    entry_hash VARCHAR NOT NULL
);
"""


# Superset's access events (bi/access_log.py): who opened which dashboard, exported which chart, ran
# SQL Lab, to the minute. log_id is Superset's `logs.id` (the high-water mark of the next copy); never
# query text, filter values or data. access_log_copies: one row per nightly copy, with its counts.
ACCESS_LOG_DDL = """
CREATE TABLE IF NOT EXISTS {db}access_log (
    log_id BIGINT NOT NULL,
    accessed_at TIMESTAMP NOT NULL,
    username VARCHAR,
    access_kind VARCHAR NOT NULL,
    export_format VARCHAR,
    dashboard_id BIGINT,
    dashboard_title VARCHAR,
    dashboard_slug VARCHAR,
    chart_id BIGINT,
    chart_name VARCHAR,
    _copied_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS {db}access_log_copies (
    copied_through BIGINT NOT NULL,
    copied_rows BIGINT NOT NULL,
    expired_rows BIGINT NOT NULL,
    superset_expired_rows BIGINT NOT NULL,
    finished_at TIMESTAMP NOT NULL
);
"""


def ensure_access_log(con: duckdb.DuckDBPyConnection, db: str = "") -> None:
    con.execute(ACCESS_LOG_DDL.format(db=f"{db}." if db else ""))


LOCK_WAIT_SECONDS = 60.0


def ensure_audit_log(con: duckdb.DuckDBPyConnection, db: str = "") -> None:
    con.execute(AUDIT_DDL.format(db=f"{db}." if db else ""))


def connect_raw_store(settings: Settings, wait_seconds: float = LOCK_WAIT_SECONDS) -> duckdb.DuckDBPyConnection:
    """Open the raw store for writing, waiting while another process (a run's dbt build) holds it."""
    settings.raw_db.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            return duckdb.connect(str(settings.raw_db))
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


# The row hash of a scrubbed journal row. The extract's 64-bit hash of a source row is 0 only by a
# 2^-64 chance (and then the scrubbed row would merely stay as it is, already without personal data),
# so the next extract that reads the row replaces it by its own suppressed version. Not NULL: a row
# erased before the look-back window is never read again, and every stored row must have a hash
# (raw_journal suite); NULL made every later night fail its raw checks.
SCRUBBED_ROW_HASH = 0


REGISTER_DDL = """
CREATE TABLE IF NOT EXISTS {db}erasure_register (
    request_id VARCHAR NOT NULL,
    requested_at TIMESTAMP NOT NULL,
    identifier_kind VARCHAR NOT NULL,
    identifier_hash VARCHAR NOT NULL,
    key_check VARCHAR NOT NULL
);
"""


def ensure_register(con: duckdb.DuckDBPyConnection, db: str = "") -> None:
    con.execute(REGISTER_DDL.format(db=f"{db}." if db else ""))


SALT_TABLE = "number_key_salt"


def ensure_number_key_salt(con: duckdb.DuckDBPyConnection, db: str = "") -> None:
    """The raw store's salt table with its one salt, made on first use and never replaced."""
    prefix = f"{db}." if db else ""
    con.execute(f"CREATE TABLE IF NOT EXISTS {prefix}{SALT_TABLE} (salt VARCHAR NOT NULL)")
    # A parameter, not part of the statement: the salt appears in no SQL text that could be logged.
    con.execute(
        f"INSERT INTO {prefix}{SALT_TABLE} SELECT ? WHERE NOT EXISTS (SELECT 1 FROM {prefix}{SALT_TABLE})",
        [secrets.token_hex(32)],
    )
