"""The extract against real journal databases: SQLite (ProCall's default), PostgreSQL and MariaDB on
loopback, the SQLAlchemy streaming fallback, and the queries compiled for Microsoft SQL Server."""

from __future__ import annotations

import sqlite3
from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mssql

from callsight.demo.journal import generate
from callsight.extract.run import extract
from callsight.journal.contract import JOURNAL_COLUMNS
from callsight.journal.sources import Source, Window, check_schema, first_start_select, window_ids_select, window_select
from callsight.site.directory import load_directory
from callsight.site.policy import load_policy

from .journals import MARIADB_URL, PG_URL, journal_table, server_journal

WINDOW = Window(datetime(2026, 4, 1), datetime(2026, 5, 1))
BAD_ROWS = [  # malformed in ways a typed database still allows
    {
        "ID": 9_000_001,
        "StartTime": datetime(2026, 4, 20, 10),
        "StopTime": datetime(2026, 4, 20, 9),
        "Outbound": 0,
        "DurationTotal": 5,
    },
    {"ID": 9_000_002, "StartTime": datetime(2026, 4, 20, 10), "DurationTotal": -3, "Outbound": 0},
    {"ID": 9_000_003, "StartTime": datetime(2026, 4, 20, 10), "Outbound": 7},
    {"ID": 9_000_004, "StartTime": datetime(2026, 4, 20, 10), "Outbound": 0, "ContactName": "Bell\x07"},
]
EXPECTED_REASONS = {
    "9000001": "StopTime before StartTime",
    "9000002": "DurationTotal negative",
    "9000003": "Outbound not 0/1",
    "9000004": "ContactName contains control characters",
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("srcdemo")
    generate(out, seed=21, days=30, users=14, end=date(2026, 4, 30))
    con = sqlite3.connect(out / "journal.sqlite")
    con.row_factory = sqlite3.Row
    rows = [dict(r) for r in con.execute("SELECT * FROM journal")]
    con.close()
    for r in rows:
        for k in ("StartTime", "StopTime", "ConnectTime", "DisconnectTime"):
            r[k] = datetime.fromisoformat(r[k]) if r[k] else None
    return out, rows, load_directory(out / "directory.yaml"), load_policy(out / "policy.yaml")


def loaded(raw_db: Path) -> list[tuple]:
    con = duckdb.connect(str(raw_db), read_only=True)
    try:
        return con.execute("SELECT * EXCLUDE (_run_id, _extracted_at) FROM journal ORDER BY ID").fetchall()
    finally:
        con.close()


def quarantined(raw_db: Path) -> dict[str, str]:
    con = duckdb.connect(str(raw_db), read_only=True)
    try:
        return dict(con.execute("SELECT source_id, reason FROM quarantine").fetchall())
    finally:
        con.close()


@pytest.fixture
def sqlite_reference(demo, tmp_path: Path) -> list[tuple]:
    out, _, directory, policy = demo
    raw = tmp_path / "ref.duckdb"
    extract(Source(f"sqlite:///{out / 'journal.sqlite'}", "journal"), raw, WINDOW, directory, policy, "ref")
    return loaded(raw)


@pytest.mark.parametrize(
    ("url", "what"), [(PG_URL, "PostgreSQL on 127.0.0.1:5432"), (MARIADB_URL, "MariaDB on 127.0.0.1:3306")]
)
def test_server_journals_extract_like_sqlite(demo, sqlite_reference, tmp_path: Path, url: str, what: str) -> None:
    _, rows, directory, policy = demo
    for name, _ in server_journal(url, what, rows + BAD_ROWS):
        source = Source(url, name)
        assert source.kind in ("postgres", "mysql")
        raw = tmp_path / "raw.duckdb"
        stats = extract(source, raw, WINDOW, directory, policy, "r1")
        assert stats.reader == source.kind
        assert stats.source_rows == stats.loaded_rows + stats.quarantined_rows
        assert quarantined(raw) == EXPECTED_REASONS
        assert loaded(raw) == sqlite_reference, "same rows, same masking, same types as from SQLite"
        # a company added later and a deleted call arrive with the next run; a rerun changes nothing
        engine = sa.create_engine(url)
        t = journal_table(name, sa.MetaData())
        edited, deleted = rows[-1]["ID"], rows[-2]["ID"]
        with engine.begin() as conn:
            conn.execute(
                t.update()
                .where(edited == t.c.ID)
                .values(ContactCompany="Später GmbH", PrivateCall=0, LineNumber="+49 8151 3680-200")
            )
            conn.execute(t.delete().where(deleted == t.c.ID))
        engine.dispose()
        extract(source, raw, WINDOW, directory, policy, "r2")
        after = {r[0]: r for r in loaded(raw)}
        assert deleted not in after and after[edited][JOURNAL_COLUMNS.index("ContactCompany")] == "Später GmbH"
        again = loaded(raw)
        extract(source, raw, WINDOW, directory, policy, "r3")
        assert loaded(raw) == again


def test_sqlalchemy_streaming_fallback_matches_the_duckdb_reader(demo, sqlite_reference, tmp_path: Path) -> None:
    out, _, directory, policy = demo
    source = Source(f"sqlite:///{out / 'journal.sqlite'}", "journal", reader="sqlalchemy")
    raw = tmp_path / "raw.duckdb"
    stats = extract(source, raw, WINDOW, directory, policy, "r", chunk_rows=997)
    assert stats.reader == "sqlalchemy"
    assert loaded(raw) == sqlite_reference


def test_every_source_query_compiles_for_microsoft_sql_server() -> None:
    dialect = mssql.dialect()
    for as_text in (False, True):
        sql = str(
            window_select("journal", WINDOW, as_text).compile(dialect=dialect, compile_kwargs={"literal_binds": True})
        )
        assert "FROM journal \nWHERE journal.[StartTime] >= '2026-04-01 00:00:00'" in sql
        assert "journal.[StartTime] < '2026-05-01 00:00:00'" in sql
        assert all(f"[{c}]" in sql for c in JOURNAL_COLUMNS)
    ids = str(window_ids_select("journal", WINDOW).compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    assert ids.startswith("SELECT journal.[ID] \nFROM journal \nWHERE journal.[StartTime] >= '2026-04-01 00:00:00'")
    first = str(first_start_select("journal").compile(dialect=dialect))
    assert first == "SELECT min(journal.[StartTime]) AS min_1 \nFROM journal"
    # the URL documented in docs/journal-sources.md is understood by the installed driver
    assert Source("mssql+pymssql://callsight:secret@ucserver:1433/UCServer", "journal").kind == "sqlalchemy"
    engine = sa.create_engine("mssql+pymssql://callsight:secret@ucserver:1433/UCServer")
    assert engine.dialect.driver == "pymssql"
    assert Source("mssql+pymssql://callsight:secret@ucserver/UCServer", "j").display_url.count("secret") == 0


def test_schema_check_reads_server_types(demo) -> None:
    _, rows, _, _ = demo
    for name, _ in server_journal(PG_URL, "PostgreSQL on 127.0.0.1:5432", rows[:3]):
        check_schema(sa.create_engine(PG_URL), name)


def test_connection_errors_never_show_the_password(tmp_path: Path) -> None:
    from callsight.journal.sources import SourceUnavailableError, memory_connection

    source = Source("postgresql+psycopg://callsight:s3cr3t-pw@127.0.0.1:1/journaldb", "journal")
    for attempt in (source.probe, lambda: source.attach(memory_connection())):
        with pytest.raises(SourceUnavailableError) as err:
            attempt()
        assert "s3cr3t-pw" not in str(err.value) and "127.0.0.1" in str(err.value)
