import sqlite3
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from callsight.extract.run import extract
from callsight.journal.contract import JOURNAL_COLUMNS, JOURNAL_DDL
from callsight.journal.sources import SchemaDriftError, Source, Window
from callsight.site.policy import Policy, PrivateCalls

from .journals import DIRECTORY, WIN, row, write_journal
from .journals import duckdb_rows as raw
from .privacy_scan import scan


def test_window_for_days_includes_lookback() -> None:
    w = Window.for_days(date(2026, 3, 29), date(2026, 3, 29), lookback_days=35)
    assert w.start == datetime(2026, 2, 23) and w.end == datetime(2026, 3, 30)
    w = Window.for_days(date(2026, 1, 1), date(2026, 3, 29), lookback_days=35)
    assert w.start == datetime(2026, 1, 1)


def test_malformed_rows_are_quarantined_with_reason(tmp_path: Path) -> None:
    rows = [
        row(1, "2026-03-02 09:00:00"),
        row(2, "2026-03-02 09:00:00", StopTime="2026-03-02 08:00:00"),
        row(3, "2026-03-02 09:00:00", DurationTotal=-4),
        row(4, "2026-03-02 09:00:00", DurationConnected=10**7),
        row(5, "2026-03-02 09:00:00", Outbound=7),
        row(6, "2026-03-02 09:00:00", ContactName="Evil\x1b[31m"),
        row(7, "2026-03-02 09:00:00", Subject="x" * 5000),
        row(8, "2026-03-02 09:00:00", ConnectTime="2026-03-02 09:00:10", DisconnectTime="2026-03-02 09:00:05"),
        row(9, "2026-03-02 25:99:00"),
        row(10, "2026-03-02 09:00:00", StopTime="gestern"),
        row(11, "2026-03-02 09:00:00", PrivateCall=1, DurationTotal="lang"),
    ]
    source = write_journal(tmp_path / "j.sqlite", rows)
    raw_db = tmp_path / "raw.duckdb"
    stats = extract(source, raw_db, WIN, DIRECTORY, Policy(), "run1")
    # '2026-03-02 25:99:00' sorts inside the window as text (SQLite), so it is read and quarantined.
    assert stats.source_rows == 11
    assert stats.loaded_rows + stats.quarantined_rows == stats.source_rows
    assert stats.loaded_rows == 1
    reasons = dict(raw(raw_db, "SELECT source_id, reason FROM quarantine"))
    assert reasons == {
        "2": "StopTime before StartTime",
        "3": "DurationTotal negative",
        "4": "DurationConnected longer than 24 hours",
        "5": "Outbound not 0/1",
        "6": "ContactName contains control characters",
        "7": "Subject longer than 4000 characters",
        "8": "DisconnectTime before ConnectTime",
        "9": "StartTime unparseable",
        "10": "StopTime unparseable",
        "11": "DurationTotal not a number",
    }
    # quarantined private rows are masked too: no cleartext name or full number in the quarantine
    q11 = raw(raw_db, "SELECT row_json, _is_private FROM quarantine WHERE source_id = '11'")[0]
    assert q11[1] is True and "Karl Kunde" not in q11[0] and "1234567" not in q11[0] and "1234XXX" in q11[0]
    # a rerun supersedes, it does not duplicate
    extract(source, raw_db, WIN, DIRECTORY, Policy(), "run2")
    assert raw(raw_db, "SELECT count(*), min(_run_id) FROM quarantine") == [(10, "run2")]


def test_calls_across_the_repeated_autumn_hour_are_loaded_not_quarantined(tmp_path: Path) -> None:
    """On 25 October 2026 Berlin clocks go back from 03:00 to 02:00: 02:00-03:00 happens twice. A call
    from 02:57 (summer time) to 02:02 (winter time) ends before it began on the wall clock, and is
    fine; a stop before the repeated hour, or an order that no reading of the clock explains, is not."""
    rows = [
        row(1, "2026-10-25 02:57:06", StopTime="2026-10-25 02:02:42", DurationTotal=336),
        row(
            2,
            "2026-10-25 02:50:00",
            ConnectTime="2026-10-25 02:59:00",
            DisconnectTime="2026-10-25 02:01:00",
            StopTime="2026-10-25 02:01:00",
        ),
        row(3, "2026-10-25 02:58:00", ConnectTime="2026-10-25 02:05:00", StopTime="2026-10-25 02:06:00"),
        row(4, "2026-10-25 02:57:06", StopTime="2026-10-25 01:58:00"),
        row(5, "2026-10-25 03:05:00", StopTime="2026-10-25 02:59:00"),
        row(6, "2026-10-25 02:57:06", StopTime="2026-10-24 02:59:00"),
        row(7, "2026-10-26 02:57:06", StopTime="2026-10-26 02:02:42"),
        row(8, "2026-03-29 02:57:06", StopTime="2026-03-29 02:02:42"),
    ]
    source = write_journal(tmp_path / "j.sqlite", rows)
    raw_db = tmp_path / "raw.duckdb"
    extract(source, raw_db, Window(datetime(2026, 3, 1), datetime(2026, 11, 1)), DIRECTORY, Policy(), "run1")
    assert sorted(i for (i,) in raw(raw_db, 'SELECT "ID" FROM journal')) == [1, 2, 3]
    assert dict(raw(raw_db, "SELECT source_id, reason FROM quarantine")) == {
        "4": "StopTime before StartTime",
        "5": "StopTime before StartTime",
        "6": "StopTime before StartTime",
        "7": "StopTime before StartTime",
        "8": "StopTime before StartTime",
    }
    # In New York the hour repeats on 1 November 2026, not on 25 October.
    new_york = Policy(timezone="America/New_York")
    extract(source, raw_db, Window(datetime(2026, 3, 1), datetime(2026, 11, 2)), DIRECTORY, new_york, "run2")
    assert raw(raw_db, "SELECT count(*) FROM quarantine WHERE source_id = '1'") == [(1,)]


def test_upsert_mirrors_edits_and_deletes_in_window_only(tmp_path: Path) -> None:
    rows = [
        row(1, "2026-02-10 10:00:00"),
        row(2, "2026-03-05 10:00:00", ContactCompany=None),
        row(3, "2026-03-06 10:00:00"),
    ]
    path = tmp_path / "j.sqlite"
    source = write_journal(path, rows)
    raw_db = tmp_path / "raw.duckdb"
    extract(
        source,
        raw_db,
        Window(datetime(2026, 2, 1), datetime(2026, 4, 1)),
        DIRECTORY,
        Policy(),
        "r1",
    )
    con = sqlite3.connect(path)
    con.execute("UPDATE journal SET ContactCompany = 'Nachgetragen AG' WHERE ID = 2")
    con.execute("DELETE FROM journal WHERE ID IN (1, 3)")
    con.commit()
    con.close()
    extract(source, raw_db, WIN, DIRECTORY, Policy(), "r2")
    got = raw(raw_db, "SELECT ID, ContactCompany, _run_id FROM journal ORDER BY ID")
    # ID 1 lies before the window: kept; ID 3 was deleted in the window: gone; ID 2 edited: updated
    assert got == [(1, "Kunde GmbH", "r1"), (2, "Nachgetragen AG", "r2")]
    before = raw(raw_db, "SELECT * EXCLUDE (_run_id, _extracted_at) FROM journal ORDER BY ID")
    extract(source, raw_db, WIN, DIRECTORY, Policy(), "r3")
    assert raw(raw_db, "SELECT * EXCLUDE (_run_id, _extracted_at) FROM journal ORDER BY ID") == before


def test_a_rerun_writes_only_what_changed_and_counts_every_source_row(tmp_path: Path) -> None:
    """Unchanged rows of the look-back are recognised by ID and row hash and not written again; edited,
    new, newly malformed, moved and deleted rows are, and the run's counts still cover every source row
    (source = loaded + quarantined = journal rows of the window + quarantined)."""
    path = tmp_path / "j.sqlite"
    rows = [row(i, f"2026-03-{i + 1:02d} 10:00:00") for i in range(1, 6)]
    rows.append(row(6, "2026-03-07 10:00:00", DurationTotal=-1))
    source = write_journal(path, rows)
    raw_db = tmp_path / "raw.duckdb"

    def counts(stats) -> tuple[int, int, int, int]:
        return stats.source_rows, stats.loaded_rows, stats.quarantined_rows, stats.written_rows

    def journal() -> list[tuple]:
        return raw(raw_db, "SELECT ID, ContactCompany, _run_id FROM journal ORDER BY ID")

    def logged(run: str) -> tuple:
        (logged,) = raw(
            raw_db, f"SELECT source_rows, loaded_rows, quarantined_rows FROM extract_runs WHERE run_id = '{run}'"
        )
        return logged

    assert counts(extract(source, raw_db, WIN, DIRECTORY, Policy(), "r1")) == (6, 5, 1, 5)
    assert counts(extract(source, raw_db, WIN, DIRECTORY, Policy(), "r2")) == (6, 5, 1, 0), "nothing written again"
    assert journal() == [(i, "Kunde GmbH", "r1") for i in range(1, 6)]
    assert logged("r2") == (6, 5, 1)
    assert raw(raw_db, "SELECT source_id, _run_id FROM quarantine") == [("6", "r2")]

    con = sqlite3.connect(path)
    con.execute("UPDATE journal SET ContactCompany = 'Nachgetragen AG' WHERE ID = 2")  # edited
    con.execute("UPDATE journal SET DurationTotal = -5 WHERE ID = 3")  # now malformed
    con.execute("UPDATE journal SET StartTime = '2026-02-20 10:00:00' WHERE ID = 4")  # moved out of the window
    con.execute("DELETE FROM journal WHERE ID = 5")  # deleted
    con.execute(
        f"INSERT INTO journal VALUES ({','.join('?' for _ in JOURNAL_COLUMNS)})",
        tuple(row(7, "2026-03-20 10:00:00")[c] for c in JOURNAL_COLUMNS),
    )  # new
    con.commit()
    con.close()
    assert counts(extract(source, raw_db, WIN, DIRECTORY, Policy(), "r3")) == (5, 3, 2, 2)
    assert journal() == [(1, "Kunde GmbH", "r1"), (2, "Nachgetragen AG", "r3"), (7, "Kunde GmbH", "r3")]
    assert logged("r3") == (5, 3, 2)
    assert raw(raw_db, "SELECT source_id, reason FROM quarantine ORDER BY 1") == [
        ("3", "DurationTotal negative"),
        ("6", "DurationTotal negative"),
    ]
    # the row moved out of the window arrives again with the range it moved to
    extract(source, raw_db, Window(datetime(2026, 2, 1), datetime(2026, 4, 1)), DIRECTORY, Policy(), "r4")
    assert [r[0] for r in journal()] == [1, 2, 4, 7]
    # a stored row moving into the window from outside it is replaced, not doubled
    con = sqlite3.connect(path)
    con.execute("UPDATE journal SET StartTime = '2026-03-25 10:00', StopTime = '2026-03-25 10:00' WHERE ID = 4")
    con.commit()
    con.close()
    assert counts(extract(source, raw_db, WIN, DIRECTORY, Policy(), "r5")) == (6, 4, 2, 1)
    assert raw(raw_db, 'SELECT "ID", "StartTime", _run_id FROM journal WHERE "ID" = 4') == [
        (4, datetime(2026, 3, 25, 10), "r5")
    ]


@pytest.mark.parametrize("mode", ["truncate", "drop"])
def test_private_calls_never_land_in_cleartext(tmp_path: Path, mode: str) -> None:
    rows = [
        row(
            1,
            "2026-03-02 09:00:00",
            PrivateCall=1,
            PhoneNumber="+49 171 5550199",
            ContactName="Dr. Hausarzt",
            Subject="Befund",
        ),
        row(
            2,
            "2026-03-02 09:05:00",
            LineNumber="+49 8151 3680-199",
            PhoneNumber="+49 89 4440123",
            ContactCompany="Privatbank",
        ),
    ]
    source = write_journal(tmp_path / "j.sqlite", rows)
    raw_db = tmp_path / "raw.duckdb"
    extract(source, raw_db, WIN, DIRECTORY, Policy(private_calls=PrivateCalls(mode=mode)), "r")
    secrets = ["5550199", "4440123", "Hausarzt", "Befund", "Privatbank"]
    assert scan(tmp_path, secrets) == [f"{tmp_path / 'j.sqlite'}: bytes contain {s!r}" for s in secrets]
    # the scanner finds what is there (positive control): the non-private number of the source
    assert scan(tmp_path, ["3680-201"]) != []
    numbers = raw(raw_db, "SELECT PhoneNumber FROM journal ORDER BY ID")
    assert numbers == ([("+49 171 5550XXX",), ("+49 89 4440XXX",)] if mode == "truncate" else [(None,), (None,)])


def test_schema_drift_names_the_column(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    con = sqlite3.connect(path)
    con.execute(JOURNAL_DDL.format(table="journal").replace("TrackerID", "TrackingID"))
    con.close()
    with pytest.raises(SchemaDriftError, match="lacks column\\(s\\): TrackerID"):
        extract(
            Source(f"sqlite:///{path}", "journal"),
            tmp_path / "r.duckdb",
            WIN,
            DIRECTORY,
            Policy(),
            "r",
        )
    with pytest.raises(SchemaDriftError, match="'calls' not found"):
        extract(
            Source(f"sqlite:///{path}", "calls"),
            tmp_path / "r.duckdb",
            WIN,
            DIRECTORY,
            Policy(),
            "r",
        )
    assert not (tmp_path / "r.duckdb").exists()


def test_changed_column_type_is_schema_drift_naming_the_column(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    con = sqlite3.connect(path)
    con.execute(JOURNAL_DDL.format(table="journal").replace("StartTime DATETIME", "StartTime BLOB"))
    con.close()
    with pytest.raises(SchemaDriftError, match="column 'StartTime' has type BLOB"):
        extract(Source(f"sqlite:///{path}", "journal"), tmp_path / "r.duckdb", WIN, DIRECTORY, Policy(), "r")


def test_dst_partitions_cover_the_local_day() -> None:
    """Daily partitions in Europe/Berlin: 29 March 2026 has 23 hours, 25 October 2026 has 25; each
    partition's extract window is that local calendar day, whatever its length."""
    from callsight.defs.partitions import daily_partitions, partition_days

    parts = daily_partitions("Europe/Berlin")
    for key, hours in (("2026-03-29", 23), ("2026-10-25", 25), ("2026-06-01", 24)):
        tw = parts.time_window_for_partition_key(key)
        assert tw.end.timestamp() - tw.start.timestamp() == hours * 3600
        first, last = partition_days(tw)
        assert first == last == date.fromisoformat(key)
        w = Window.for_days(first, last, lookback_days=1)
        assert (w.start, w.end) == (datetime.fromisoformat(key), datetime.fromisoformat(key) + timedelta(days=1))


def store_contents(raw_db: Path) -> tuple[list[tuple], list[tuple]]:
    journal = raw(raw_db, "SELECT * EXCLUDE (_run_id, _extracted_at) FROM journal ORDER BY ID")
    quarantine = raw(
        raw_db, "SELECT source_id, reason, row_json, _is_private FROM quarantine ORDER BY source_id, reason, row_json"
    )
    return journal, quarantine


def test_batches_give_the_same_raw_store_as_one_pass(tmp_path: Path) -> None:
    """The window is streamed in batches (memory holds a batch, not the window): however small the
    batches, quarantine, duplicates, edits and deletions come out as in one pass."""
    rows = [row(i, f"2026-03-{1 + i % 28:02d} 09:{i % 60:02d}:00") for i in range(1, 41)]
    rows[4] = row(5, "2026-03-05 09:00:00", DurationTotal=-1)  # malformed
    rows[30] = row(31, "2026-03-20 09:00:00", PrivateCall=1, Outbound=9)  # malformed and private
    rows.append(row(3, "2026-03-25 10:00:00"))  # ID 3 twice, far apart: both copies quarantined
    rows.append(row(7, "2026-03-26 10:00:00", DurationTotal=-2))  # ID 7 twice, the copy malformed
    rows.append(row(99, "2026-02-10 10:00:00"))  # before the window
    path = tmp_path / "j.sqlite"
    source = write_journal(path, rows)
    fallback = Source(f"sqlite:///{path}", "journal", reader="sqlalchemy")
    runs = {
        "one pass": lambda db, r: extract(source, db, WIN, DIRECTORY, Policy(), r, batch_rows=10**6),
        "batches of 3": lambda db, r: extract(source, db, WIN, DIRECTORY, Policy(), r, batch_rows=3),
        "batches of 1": lambda db, r: extract(source, db, WIN, DIRECTORY, Policy(), r, batch_rows=1),
        "fallback chunks of 2": lambda db, r: extract(fallback, db, WIN, DIRECTORY, Policy(), r, chunk_rows=2),
    }
    first = {name: run(tmp_path / f"{i}.duckdb", "r1") for i, (name, run) in enumerate(runs.items())}
    assert {(s.source_rows, s.loaded_rows, s.quarantined_rows) for s in first.values()} == {(42, 36, 6)}
    reference = store_contents(tmp_path / "0.duckdb")
    reasons = sorted((sid, why) for sid, why, *_ in reference[1])
    assert reasons == [
        ("3", "ID duplicated in source"),
        ("3", "ID duplicated in source"),
        ("31", "Outbound not 0/1"),
        ("5", "DurationTotal negative"),
        ("7", "DurationTotal negative"),
        ("7", "ID duplicated in source"),
    ]
    for i, name in enumerate(runs):
        assert store_contents(tmp_path / f"{i}.duckdb") == reference, name
    # edits, deletions and a repaired row cross batch borders the same way
    con = sqlite3.connect(path)
    con.execute("UPDATE journal SET ContactCompany = 'Nachgetragen AG' WHERE ID IN (2, 17, 40)")
    con.execute("DELETE FROM journal WHERE ID IN (1, 12, 13, 38) OR (ID = 3 AND StartTime LIKE '2026-03-25%')")
    con.execute("UPDATE journal SET DurationTotal = 30 WHERE ID = 5")
    con.commit()
    con.close()
    second = {name: run(tmp_path / f"{i}.duckdb", "r2") for i, (name, run) in enumerate(runs.items())}
    assert {(s.source_rows, s.loaded_rows, s.quarantined_rows) for s in second.values()} == {(37, 34, 3)}
    reference = store_contents(tmp_path / "0.duckdb")
    ids = [r[0] for r in reference[0]]
    assert 1 not in ids and 12 not in ids and 38 not in ids and 3 in ids and 5 in ids and 99 not in ids
    assert sorted((sid, why) for sid, why, *_ in reference[1]) == [
        ("31", "Outbound not 0/1"),
        ("7", "DurationTotal negative"),
        ("7", "ID duplicated in source"),
    ]
    for i, name in enumerate(runs):
        assert store_contents(tmp_path / f"{i}.duckdb") == reference, name
        stamps = raw(tmp_path / f"{i}.duckdb", "SELECT ID, _run_id FROM journal WHERE ID IN (2, 4, 17) ORDER BY ID")
        assert stamps == [(2, "r2"), (4, "r1"), (17, "r2")], name  # unchanged rows keep their stamp
    # the same window again changes nothing, stamps included
    before = raw(tmp_path / "1.duckdb", "SELECT * FROM journal ORDER BY ID")
    runs["batches of 3"](tmp_path / "1.duckdb", "r3")
    assert raw(tmp_path / "1.duckdb", "SELECT * FROM journal ORDER BY ID") == before


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_window_far_larger_than_the_memory_cap_streams_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """Memory holds a batch and the window's IDs and hashes, never the window's rows: under a DuckDB
    memory cap of 160 MB (no spilling: cleartext stays in memory; a row group of the raw store being
    written takes about 45 MB of it), 600,000 legs (200 MB as SQLite) load in batches of 20,000, and load
    again unchanged (the stored rows' anti join), with every row counted. From PostgreSQL too, whose
    pass-through query gives DuckDB no row estimate (the anti join must still build on the stored rows)."""
    import uuid

    from bench.generator import generate_journal, write_postgres

    import callsight.extract.run as extract_module
    from callsight.site.directory import load_directory
    from callsight.site.policy import load_policy

    night = date(2026, 3, 30)
    j = generate_journal(tmp_path / "j", rows=600_000, night_rows=0, rows_per_day=60_000, night_day=night, users=40)
    source = Source(f"sqlite:///{j.sqlite_path}", "journal")
    table = f"journal_stream_{uuid.uuid4().hex[:8]}"
    if kind == "postgres":
        write_postgres(j.sqlite_path, "host=127.0.0.1 port=5432 user=postgres dbname=test", table)
        source = Source("postgresql+psycopg://postgres@127.0.0.1:5432/test", table)
    directory, policy = load_directory(j.directory_path), load_policy(j.policy_path)
    window = Window(datetime(2026, 1, 1), datetime.combine(night, datetime.min.time()))
    assert j.sqlite_path.stat().st_size > 160 * 2**20
    monkeypatch.setattr(extract_module, "MEMORY_LIMIT", "160MB")
    raw_db = tmp_path / "raw.duckdb"
    try:
        first = extract(source, raw_db, window, directory, policy, "r1", batch_rows=20_000)
        again = extract(source, raw_db, window, directory, policy, "r2", batch_rows=20_000)
    finally:
        if kind == "postgres":
            engine = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/test")
            with engine.begin() as conn:
                conn.execute(sa.text(f'DROP TABLE IF EXISTS "{table}"'))
            engine.dispose()
    assert first.source_rows == again.source_rows == 600_000
    assert first.loaded_rows + first.quarantined_rows == 600_000 and first.written_rows == first.loaded_rows
    assert again.written_rows == 0 and again.loaded_rows == first.loaded_rows
