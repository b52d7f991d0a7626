"""The benchmark's journal generator: shape, determinism, chains, missed calls, callbacks, private calls,
DST, and journals that the real extract loads from SQLite and PostgreSQL with nothing quarantined."""

from __future__ import annotations

import hashlib
import sqlite3
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from bench.generator import BenchJournal, generate_journal, write_postgres

from callsight.demo.journal import PRIVATE_LINE
from callsight.extract.run import extract
from callsight.journal.contract import JOURNAL_COLUMNS
from callsight.journal.sources import Source, Window
from callsight.site.directory import load_directory
from callsight.site.policy import load_policy

from .conftest import require_service

TZ = ZoneInfo("Europe/Berlin")
PG = "host=127.0.0.1 port=5432 user=postgres"


def dst_switches(first: date, last: date) -> list[date]:
    """Days in first..last whose UTC offset differs between 00:30 and 23:30 local time."""
    out = []
    d = first
    while d <= last:
        a = datetime(d.year, d.month, d.day, 0, 30, tzinfo=TZ).utcoffset()
        b = datetime(d.year, d.month, d.day, 23, 30, tzinfo=TZ).utcoffset()
        if a != b:
            out.append(d)
        d += timedelta(days=1)
    return out


def last_switch(kind: str, before: date) -> date:
    """The latest autumn ('fall') or spring DST switch before `before`."""
    days = dst_switches(before - timedelta(days=400), before - timedelta(days=1))
    return [d for d in days if (d.month >= 7) == (kind == "fall")][-1]


def rows(path: Path, sql: str = "SELECT * FROM journal ORDER BY ID") -> list[tuple]:
    con = sqlite3.connect(path)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def digest(path: Path) -> str:
    return hashlib.sha256(repr(rows(path)).encode()).hexdigest()


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> BenchJournal:
    """Two weeks around the latest autumn DST switch: 20,000 legs of history, 3,000 for the night."""
    fall = last_switch("fall", date.today())
    out = tmp_path_factory.mktemp("gen") / "site"
    return generate_journal(
        out, rows=20_000, night_rows=3_000, night_day=fall + timedelta(days=7), first_day=fall - timedelta(days=6)
    )


def test_shape_ids_days_and_columns(journal: BenchJournal) -> None:
    con = sqlite3.connect(journal.sqlite_path)
    try:
        cols = [r[1] for r in con.execute("PRAGMA table_info(journal)")]
        assert tuple(cols) == JOURNAL_COLUMNS
        n, lo, hi, ids = con.execute("SELECT count(*), min(ID), max(ID), count(DISTINCT ID) FROM journal").fetchone()
        assert (n, lo, hi, ids) == (23_000, 1, 23_000, 23_000)
        # IDs follow StartTime, the history precedes the night day, the night holds exactly its rows
        unordered = con.execute(
            "SELECT count(*) FROM journal a JOIN journal b ON b.ID = a.ID + 1 WHERE b.StartTime < a.StartTime"
        ).fetchone()[0]
        assert unordered == 0
        night = journal.night_day.isoformat()
        assert con.execute("SELECT count(*) FROM journal WHERE StartTime < ?", [night]).fetchone()[0] == 20_000
        assert con.execute("SELECT count(*) FROM journal WHERE date(StartTime) = ?", [night]).fetchone()[0] == 3_000
        assert con.execute("SELECT min(date(StartTime)) FROM journal").fetchone()[0] == journal.first_day.isoformat()
        assert journal.last_history_day == journal.night_day - timedelta(days=1)
        # times are text as the UCServer writes them; durations add up
        bad = con.execute(
            "SELECT count(*) FROM journal WHERE length(StartTime) <> 19 OR StopTime < StartTime "
            "OR DurationTotal <> CAST(strftime('%s', StopTime) - strftime('%s', StartTime) AS INTEGER) "
            "OR (ConnectTime IS NULL) <> (DurationConnected = 0) OR SuccessState <> (DurationConnected > 0)"
        ).fetchone()[0]
        assert bad == 0
    finally:
        con.close()


def test_agents_and_lines_come_from_the_directory(journal: BenchJournal) -> None:
    directory = yaml.safe_load(journal.directory_path.read_text(encoding="utf-8"))
    users = {u["username"] for u in directory["users"]}
    agents = {r[0] for r in rows(journal.sqlite_path, "SELECT DISTINCT CTIServerUserName FROM journal")}
    assert agents <= users and len(agents) >= 100
    assert directory["private_lines"] == [PRIVATE_LINE]
    group_of = {m: g["name"] for g in directory["groups"] for m in g["members"]}
    # a forwarded leg rings at a colleague of the same group; RedirectingNumber is the first agent's line
    pairs = rows(
        journal.sqlite_path,
        "SELECT a.CTIServerUserName, b.CTIServerUserName, b.RedirectingNumber, a.LineNumber FROM journal a "
        "JOIN journal b ON a.TrackerID = b.TrackerID AND b.StartTime > a.StartTime AND b.RedirectingNumber = "
        "a.LineNumber",
    )
    assert len(pairs) > 100
    assert all(
        set(directory_groups(directory, first)) & set(directory_groups(directory, second))
        for first, second, *_ in pairs
    )
    assert all(first in group_of for first, *_ in pairs)


def directory_groups(directory: dict, username: str) -> list[str]:
    return [g["name"] for g in directory["groups"] if username in g["members"]]


def test_chains_missed_calls_callbacks_private_calls(journal: BenchJournal) -> None:
    p = journal.sqlite_path
    legs_per_chain = dict(
        rows(p, "SELECT n, count(*) FROM (SELECT count(*) AS n FROM journal GROUP BY TrackerID) GROUP BY n")
    )
    assert set(legs_per_chain) == {1, 2, 3} and legs_per_chain[2] > 100 and legs_per_chain[3] > 10
    # inbound chains where no leg was answered, and ones a colleague picked up
    missed, by_colleague = rows(
        p,
        "SELECT count(*) FILTER (WHERE NOT answered), count(*) FILTER (WHERE answered AND NOT first_answered) FROM ("
        " SELECT TrackerID, max(DurationConnected > 0) AS answered,"
        " max(CASE WHEN RedirectingNumber IS NULL THEN DurationConnected > 0 END) AS first_answered"
        " FROM journal WHERE Outbound = 0 AND Internal = 0 GROUP BY TrackerID)",
    )[0]
    assert missed > 500 and by_colleague > 100
    # callbacks: an outbound 'Rückruf' to the number of an earlier missed inbound call, within hours
    callbacks = rows(
        p,
        "SELECT count(*) FROM journal c WHERE c.Subject = 'Rückruf' AND c.Outbound = 1 AND EXISTS ("
        " SELECT 1 FROM journal m WHERE m.Outbound = 0 AND m.DurationConnected = 0 AND m.PhoneNumber = c.PhoneNumber"
        " AND m.StartTime < c.StartTime AND m.CTIServerUserName = c.CTIServerUserName)",
    )[0][0]
    assert callbacks > 300
    flagged, on_line, internal, companies, projects = rows(
        p,
        "SELECT sum(PrivateCall), sum(LineNumber = ?), sum(Internal), count(ContactCompany), count(ProjectID) "
        "FROM journal".replace("?", f"'{PRIVATE_LINE}'"),
    )[0]
    assert flagged > 50 and on_line > 20 and internal > 1000 and companies > 5000 and projects > 500
    # a private call never carries a project; a call on the private line is never flagged as well
    assert (
        rows(
            p,
            f"SELECT count(*) FROM journal WHERE (PrivateCall = 1 OR LineNumber = '{PRIVATE_LINE}') "
            f"AND ProjectID IS NOT NULL",
        )[0][0]
        == 0
    )


def test_dst_autumn_hour_twice_and_no_call_in_the_skipped_spring_hour(journal: BenchJournal, tmp_path: Path) -> None:
    fall = last_switch("fall", date.today())
    assert journal.first_day < fall < journal.night_day
    in_repeated_hour = rows(
        journal.sqlite_path,
        f"SELECT count(*) FROM journal WHERE StartTime >= '{fall} 02:00:00' AND StartTime < '{fall} 03:00:00'",
    )[0][0]
    assert in_repeated_hour > 0
    spring = last_switch("spring", date.today())
    small = generate_journal(
        tmp_path / "spring",
        rows=20_000,
        night_rows=0,
        night_day=spring + timedelta(days=1),
        first_day=spring - timedelta(days=1),
        users=24,
    )
    per_hour = dict(
        rows(
            small.sqlite_path,
            f"SELECT substr(StartTime, 12, 2), count(*) FROM journal WHERE date(StartTime) = '{spring}' GROUP BY 1",
        )
    )
    assert "02" not in per_hour and per_hour["01"] > 0 and per_hour["03"] > 0


def test_deterministic_for_a_seed(journal: BenchJournal, tmp_path: Path) -> None:
    kw = {"rows": 20_000, "night_rows": 3_000, "night_day": journal.night_day, "first_day": journal.first_day}
    again = generate_journal(tmp_path / "again", **kw)
    assert digest(again.sqlite_path) == digest(journal.sqlite_path)
    assert again.directory_path.read_text(encoding="utf-8") == journal.directory_path.read_text(encoding="utf-8")
    other = generate_journal(tmp_path / "other", seed=2, **kw)
    assert digest(other.sqlite_path) != digest(journal.sqlite_path)


def _extract(journal: BenchJournal, url: str, raw: Path) -> tuple[int, int, int]:
    window = Window(
        datetime.combine(journal.first_day, datetime.min.time()),
        datetime.combine(journal.night_day + timedelta(days=1), datetime.min.time()),
    )
    stats = extract(
        Source(url, "journal"),
        raw,
        window,
        load_directory(journal.directory_path),
        load_policy(journal.policy_path),
        "test",
    )
    return stats.source_rows, stats.loaded_rows, stats.quarantined_rows


def test_the_extract_loads_every_row_from_sqlite(journal: BenchJournal, tmp_path: Path) -> None:
    assert _extract(journal, f"sqlite:///{journal.sqlite_path}", tmp_path / "raw.duckdb") == (23_000, 23_000, 0)


def test_postgresql_copy_loads_through_the_extract_too(journal: BenchJournal, tmp_path: Path) -> None:
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(f"{PG} dbname=postgres", autocommit=True, connect_timeout=5)
    except psycopg.OperationalError:
        require_service(False, "PostgreSQL on 127.0.0.1:5432")
        return
    name = f"callsight_bench_test_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        assert write_postgres(journal.sqlite_path, f"{PG} dbname={name}") == 23_000
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        assert _extract(journal, url, tmp_path / "raw-pg.duckdb") == (23_000, 23_000, 0)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
