"""Retention: calls older than `retention.journal_days` leave the raw store, the quarantine, the published
warehouse (incremental facts included) and the kept builds."""

import json
import sqlite3
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from callsight.defs.nightly import run_nightly, yesterday
from callsight.extract.run import extract
from callsight.journal.sources import Window
from callsight.privacy.audit import read_entries
from callsight.privacy.retention import clip_window, resolve_run_date, retention_cutoff
from callsight.publish.builds import prune_expired_builds
from callsight.site.home import kept_builds
from callsight.site.policy import Policy

from .conftest import Site
from .journals import DIRECTORY, row, write_journal
from .journals import duckdb_rows as raw
from .privacy_scan import scan
from .test_pipeline import mart_checksum, served


def test_cutoff_run_date_and_window() -> None:
    assert retention_cutoff(date(2026, 3, 29), 10) == datetime(2026, 3, 19)
    assert resolve_run_date(date(2026, 3, 29), None) == date(2026, 3, 29)
    assert resolve_run_date(date(2026, 3, 29), "2026-04-02") == date(2026, 4, 2)
    assert resolve_run_date(date(2026, 3, 29), "2026-01-01") == date(2026, 3, 29), "never keeps data longer"
    w = Window(datetime(2026, 3, 1), datetime(2026, 3, 30))
    assert clip_window(w, datetime(2026, 3, 10)) == Window(datetime(2026, 3, 10), datetime(2026, 3, 30))
    assert clip_window(w, datetime(2026, 2, 1)) == w
    assert clip_window(w, datetime(2026, 4, 5)) == Window(datetime(2026, 4, 5), datetime(2026, 4, 5))


def test_the_extract_purges_expired_calls_as_whole_chains(tmp_path: Path) -> None:
    rows = [
        row(1, "2026-03-05 10:00:00"),
        row(2, "2026-03-09 23:59:50", TrackerID="fwd", PhoneNumber="+49 30 9990001"),  # forwarded across
        row(3, "2026-03-10 00:00:10", TrackerID="fwd", PhoneNumber="+49 30 9990001"),  # midnight
        row(4, "2026-03-10 00:00:00"),
        row(5, "2026-03-20 09:00:00"),
        row(6, "2026-03-06 09:00:00", DurationTotal=-4),  # quarantined, expires
        row(7, "2026-03-12 09:00:00", DurationTotal=-4),  # quarantined, kept
    ]
    source = write_journal(tmp_path / "j.sqlite", rows)
    raw_db = tmp_path / "store" / "raw.duckdb"
    window = Window(datetime(2026, 3, 1), datetime(2026, 4, 1))
    extract(source, raw_db, window, DIRECTORY, Policy(), "r1")
    assert raw(raw_db, "SELECT count(*) FROM journal") == [(5,)]
    assert scan(raw_db.parent, ["9990001"]), "positive control"
    stats = extract(source, raw_db, window, DIRECTORY, Policy(), "r2", cutoff=datetime(2026, 3, 10))
    assert stats.window.start == datetime(2026, 3, 10), "the journal is read from the cutoff on"
    assert (stats.expired_rows, stats.expired_quarantined_rows) == (3, 1)
    assert raw(raw_db, 'SELECT "ID" FROM journal ORDER BY 1') == [(4,), (5,)]
    assert raw(raw_db, "SELECT source_id FROM quarantine") == [("7",)]
    assert scan(raw_db.parent, ["9990001"]) == [], "expired values are not left in the file"


def make_warehouse(path: Path, first_day: date | None) -> Path:
    con = duckdb.connect(str(path))
    con.execute("CREATE SCHEMA marts; CREATE TABLE marts.fct_calls (call_date DATE)")
    if first_day:
        con.execute("INSERT INTO marts.fct_calls VALUES (?), (?)", [first_day, first_day + timedelta(days=3)])
    con.close()
    return path


def test_kept_builds_beyond_retention_plus_one_night_are_deleted(tmp_path: Path) -> None:
    served_db = make_warehouse(tmp_path / "callsight.duckdb", date(2026, 3, 10))
    history = tmp_path / "history"
    history.mkdir()
    last_night = make_warehouse(history / "callsight-20260310T020000000000.duckdb", date(2026, 3, 9))
    older = make_warehouse(history / "callsight-20260309T020000000000.duckdb", date(2026, 3, 8))
    empty = make_warehouse(history / "callsight-20260308T020000000000.duckdb", None)
    broken = history / "callsight-20260307T020000000000.duckdb"
    broken.write_bytes(b"not a warehouse")
    removed = prune_expired_builds(served_db, datetime(2026, 3, 10))
    assert sorted(removed) == sorted([older, broken])
    assert kept_builds(served_db) == [last_night, empty]


@pytest.mark.slow
def test_a_run_removes_calls_older_than_retention_everywhere(site: Site) -> None:
    settings = site.settings
    today = yesterday("Europe/Berlin") + timedelta(days=1)
    policy = settings.effective_policy_path
    policy.write_text(policy.read_text().replace("journal_days: 180", "journal_days: 15"))
    # retention of 15 days: the first run loads [today - 15, yesterday]; a run dated today + 5 keeps
    # only calls from today - 10 on
    later = today + timedelta(days=5)
    cutoff = datetime.combine(today - timedelta(days=10), datetime.min.time())
    journal = sqlite3.connect(settings.demo_journal_path)
    next_id = journal.execute("SELECT max(ID) FROM journal").fetchone()[0] + 1
    template = journal.execute(
        "SELECT * FROM journal WHERE Outbound = 0 AND Internal = 0 AND PrivateCall = 0 LIMIT 1"
    ).fetchone()
    columns = [d[0] for d in journal.execute("SELECT * FROM journal LIMIT 0").description]

    def add(i: int, start: datetime, **values: object) -> None:
        at = start.isoformat(sep=" ")
        rec = dict(zip(columns, template, strict=True)) | {"ID": i, "StartTime": at, "StopTime": at}
        rec |= {"ConnectTime": None, "DisconnectTime": None, "DurationTotal": 0, "DurationConnected": 0} | values
        journal.execute(f"INSERT INTO journal VALUES ({','.join('?' * len(columns))})", [rec[c] for c in columns])

    straddle = cutoff - timedelta(seconds=10)
    add(next_id, straddle, TrackerID="across-the-cutoff")
    add(next_id + 1, cutoff + timedelta(seconds=10), TrackerID="across-the-cutoff")
    add(next_id + 2, cutoff - timedelta(days=3), TrackerID="bad-old", DurationTotal=-4)  # quarantined, expires
    add(next_id + 3, cutoff + timedelta(days=5), TrackerID="bad-new", DurationTotal=-4)  # quarantined, stays
    add(next_id + 4, cutoff + timedelta(hours=8), TrackerID="first-kept")  # a missed call on the first kept day
    # a caller known only from a day that will expire: gone from every file afterwards
    needles = ["+49 711 4242421", "Verfallen GmbH", "Vera Verfallen"]
    add(next_id + 5, cutoff - timedelta(days=2, hours=-9), TrackerID="expiring-caller", PhoneNumber=needles[0],
        ContactCompany=needles[1], ContactName=needles[2], PrivateCall=0, LineNumber="+49 8151 3680-100")  # fmt: skip
    journal.commit()

    first = run_nightly(settings)
    assert first.success, first.failure
    assert first.first == today - timedelta(days=15)
    assert run_nightly(settings, first.last, first.last).success
    fingerprint = served(site, "SELECT build_fingerprint FROM marts.build_info")
    old_raw = raw(settings.raw_db, f"SELECT count(*) FROM journal WHERE \"StartTime\" < '{cutoff}'")[0][0]
    raw_before = raw(settings.raw_db, "SELECT count(*) FROM journal")[0][0]
    assert old_raw > 100
    assert raw(settings.raw_db, "SELECT count(*) FROM quarantine") == [(2,)]
    assert served(site, "SELECT min(call_date) FROM marts.fct_calls")[0][0] < cutoff.date() - timedelta(days=1)
    assert len(kept_builds(settings.served_db)) == 1
    warehouse = settings.warehouse_dir
    assert len(scan(warehouse, needles)) >= 3, "positive control: the caller is stored before"

    expiring = run_nightly(settings, first.last, first.last, run_date=later)
    assert expiring.success, expiring.failure
    # the raw store and the quarantine
    assert raw(settings.raw_db, f"SELECT count(*) FROM journal WHERE \"StartTime\" < '{cutoff}'") == [(0,)]
    assert raw(settings.raw_db, "SELECT count(*) FROM journal WHERE \"TrackerID\" = 'across-the-cutoff'") == [(0,)]
    assert raw(settings.raw_db, "SELECT source_id FROM quarantine") == [(str(next_id + 3),)]
    # the published warehouse, incremental facts included
    for table, column in (("fct_calls", "call_date"), ("fct_inbound_calls", "call_date"),
                          ("fct_callbacks", "call_date"), ("dim_date", "date_day")):  # fmt: skip
        assert served(site, f"SELECT min({column}) FROM marts.{table}") == [(cutoff.date(),)], table
    # counts reconcile with the source: legs from the cutoff on, minus whole chains that began before it,
    # minus the quarantined row
    expected = journal.execute(
        """SELECT count(*) FROM journal WHERE StartTime >= ? AND StartTime < ? AND ID <> ?
           AND (TrackerID IS NULL OR TrackerID NOT IN
                (SELECT TrackerID FROM journal WHERE StartTime < ? AND TrackerID IS NOT NULL))""",
        [cutoff.isoformat(sep=" "), today.isoformat(), next_id + 3, cutoff.isoformat(sep=" ")],
    ).fetchone()[0]
    raw_after = raw(settings.raw_db, "SELECT count(*) FROM journal")[0][0]
    assert raw_after == expected
    assert served(site, "SELECT count(*) FROM marts.fct_calls") == [(expected,)]
    assert served(site, "SELECT build_fingerprint FROM marts.build_info") == fingerprint, "incremental, not rebuilt"
    # the kept builds held calls older than retention + one night: deleted; and no file keeps the number
    assert kept_builds(settings.served_db) == []
    assert scan(warehouse, needles) == []
    # the audit log records what went
    con = duckdb.connect(str(settings.raw_db), read_only=True)
    finished = [json.loads(e.detail) for e in read_entries(con) if e.kind == "run" and '"finished"' in e.detail]
    con.close()
    assert finished[-1]["rows_expired"] == raw_before - raw_after == old_raw + 1  # + the chain's later leg
    assert finished[-1]["quarantined_rows_expired"] == 1 and finished[-1]["kept_builds_expired"] == 2

    # one night later: last night's build survives one more night for a rollback
    nextday = run_nightly(settings, first.last, first.last, run_date=later + timedelta(days=1))
    assert nextday.success, nextday.failure
    (kept,) = kept_builds(settings.served_db)
    con = duckdb.connect(str(kept), read_only=True)
    assert con.execute("SELECT min(call_date) FROM marts.fct_calls").fetchone() == (cutoff.date(),)
    con.close()
    # and the incremental warehouse equals a full rebuild of the same data
    incremental = mart_checksum(site)
    full = run_nightly(settings, first.last, first.last, full_refresh=True, run_date=later + timedelta(days=1))
    assert full.success, full.failure
    assert mart_checksum(site) == incremental
