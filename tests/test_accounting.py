"""Issue 26: every journal row is accounted for, over the whole source, in every live source.

The same bad rows in SQLite, PostgreSQL and MariaDB (their StartTime held as text, as SQLite always
holds it): rows without a usable StartTime (NULL, empty, not a date, before 1980), one far ahead, one
without an ID. Each lands in quarantine with its reason; published + quarantined + expired + later =
source (the GX reconciliation passes); fixed and deleted rows leave the quarantine; a day before the
window whose count changed is read again. Typed server columns add their own bad times (PostgreSQL's
infinity and year 1, MariaDB's zero date). With the unplaced pass taken out, the reconciliation fails and
the failure mail names the difference.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa

from callsight.defs.notify import FailureReport, compose
from callsight.extract.run import extract
from callsight.journal.sources import Source, Window
from callsight.quality.run import run_suites
from callsight.quality.suites import load_suites
from callsight.site.policy import Policy

from .journals import DIRECTORY, MARIADB_URL, PG_URL, row, server_journal, write_journal
from .journals import duckdb_rows as store

CUTOFF = datetime(2026, 1, 1)
WINDOW = Window(datetime(2026, 3, 1), datetime(2026, 4, 1))
RAW_SUITES = [s for s in load_suites() if s.stage == "raw"]


def bad(i: int | str | None, start: str | int | None, **kw) -> dict:
    return row(i, start, StopTime=None, TrackerID=f"b{i}", **kw)


GOOD = [
    row(1, "2026-03-05 10:00:00"),  # in the window
    row(2, "2026-03-20 11:00:00"),  # in the window
    row(3, "2026-02-10 10:00:00"),  # before the window: read the first night (its day's counts differ)
    row(4, "2025-12-01 10:00:00"),  # before the cutoff: expired by retention
    row(5, "2026-04-20 10:00:00"),  # after the window: later
    row(6, "2026-03-06 10:00:00", DurationTotal=-1),  # malformed in the window
]
BAD = [
    bad(11, None),
    bad(12, ""),
    bad(13, "gestern"),
    bad(14, "2100-01-01 10:00:00"),
    bad(15, "1900-01-01 10:00:00"),
    bad(None, "2026-03-07 10:00:00"),
    bad(19, None, PrivateCall=1),  # private: masked before it lands, also in the quarantine
]
EXPECTED = {
    "6": "DurationTotal negative",
    "11": "StartTime missing or unparseable",
    "12": "StartTime missing or unparseable",
    "13": "StartTime unparseable",
    "14": "StartTime in the future",
    "15": "StartTime before 1980",
    None: "ID missing or not an integer",
    "19": "StartTime missing or unparseable",
}
SQLITE_ONLY = [bad("abc", "2026-03-07 10:00:00"), bad(16, " 2026-03-05 10:00:00"), bad(17, 20260305)]
SQLITE_EXPECTED = {
    "abc": "ID missing or not an integer",
    "16": "ID or StartTime not in the journal's plain form",
    "17": "StartTime unparseable",
}


def execute(source: str, where: object, sql: str) -> None:
    """Change the live journal (`where`: the SQLite path or the server's engine)."""
    if source == "sqlite":
        con = sqlite3.connect(where)
        con.execute(sql)
        con.commit()
        con.close()
        return
    quoted = sql.replace('"', "`") if source == "mariadb" else sql
    with where.begin() as conn:
        conn.execute(sa.text(quoted))


@pytest.fixture(scope="module", params=["sqlite", "postgresql", "mariadb"])
def journal(request, tmp_path_factory) -> Iterator[tuple[str, Source, object, str]]:
    """(kind, source, handle to change it, table) with GOOD + BAD rows, one per source for the module."""
    kind = request.param
    if kind == "sqlite":
        path = tmp_path_factory.mktemp("acct") / "journal.sqlite"
        yield kind, write_journal(path, GOOD + BAD + SQLITE_ONLY, start_required=False), path, "journal"
        return
    url, what = (PG_URL, "PostgreSQL on 127.0.0.1:5432") if kind == "postgresql" else (MARIADB_URL, "MariaDB")
    for name, engine in server_journal(url, what, GOOD + BAD, loose=True, text_start=True):
        yield kind, Source(url, name), engine, name


def night(source: Source, raw_db: Path, run: str):
    return extract(source, raw_db, WINDOW, DIRECTORY, Policy(), run, cutoff=CUTOFF)


def reasons(raw_db: Path) -> dict:
    return dict(store(raw_db, "SELECT source_id, reason FROM quarantine"))


def reconciled(raw_db: Path) -> list[str]:
    """The failed expectations of the raw suites (the reconciliation among them)."""
    report = run_suites(RAW_SUITES, raw_db)
    return [str(o) for o in report.failed]


def accounting(raw_db: Path) -> tuple[int, int, int, int, int]:
    """(source, published, quarantined, expired, later) as the reconciliation reads them."""
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{raw_db}' AS raw (READ_ONLY)")
        batch = next(
            b for s in RAW_SUITES if s.name == "extract_reconciliation" for b in s.batches if b.name == "whole_source"
        )
        return con.execute(
            f"SELECT source_rows, published_rows, quarantined_rows, expired_rows, later_rows FROM ({batch.query})"
        ).fetchone()
    finally:
        con.close()


def test_every_source_row_is_published_quarantined_expired_or_later(journal, tmp_path: Path) -> None:
    kind, source, handle, _ = journal
    raw_db = tmp_path / "raw.duckdb"
    expected = EXPECTED | (SQLITE_EXPECTED if kind == "sqlite" else {})
    total = len(GOOD) + len(BAD) + (len(SQLITE_ONLY) if kind == "sqlite" else 0)

    stats = night(source, raw_db, "r1")
    assert reasons(raw_db) == expected
    assert store(raw_db, "SELECT ID FROM journal ORDER BY ID") == [(1,), (2,), (3,)]
    assert stats.healed_from == datetime(2026, 2, 10), "the day before the window was read"
    source_rows, published, quarantined, expired, later = accounting(raw_db)
    assert (source_rows, published, quarantined, expired, later) == (total, 3, len(expected), 1, 1)
    assert published + quarantined + expired + later == source_rows == stats.source_total
    assert reconciled(raw_db) == []
    # nothing of a refused row but its reason, run and times reaches a log or the quarantine's key columns
    private = store(raw_db, "SELECT count(*) FROM quarantine WHERE reason LIKE '%Kunde%' OR reason LIKE '%+49%'")
    assert private == [(0,)]
    (private_row,) = store(raw_db, "SELECT row_json FROM quarantine WHERE source_id = '19'")
    assert "1234567" not in private_row[0] and "Kunde" not in private_row[0], "masked per policy (truncate)"

    # the same night again: the same store, and the rows are refused since the first night
    before = store(raw_db, "SELECT source_id, reason, row_json, _first_quarantined_at FROM quarantine ORDER BY ALL")
    journal_before = store(raw_db, "SELECT * EXCLUDE (_run_id, _extracted_at) FROM journal ORDER BY ID")
    assert night(source, raw_db, "r2").healed_from is None
    assert (
        store(raw_db, "SELECT source_id, reason, row_json, _first_quarantined_at FROM quarantine ORDER BY ALL")
        == before
    )
    assert store(raw_db, "SELECT * EXCLUDE (_run_id, _extracted_at) FROM journal ORDER BY ID") == journal_before
    assert reconciled(raw_db) == []

    # corrected at the source: a StartTime before the window, an ID given; deleted: an unparseable row
    execute(kind, handle, f'UPDATE {source.table} SET "StartTime" = \'2026-02-12 09:00:00\' WHERE "ID" = 11')
    execute(kind, handle, f'UPDATE {source.table} SET "ID" = 18 WHERE "ID" IS NULL')
    execute(kind, handle, f'DELETE FROM {source.table} WHERE "ID" = 13')
    stats = night(source, raw_db, "r3")
    assert stats.healed_from == datetime(2026, 2, 12), "the fixed row's day is read"
    left = {k: v for k, v in expected.items() if k not in ("11", "13", None)}
    assert reasons(raw_db) == left
    assert store(raw_db, "SELECT ID FROM journal ORDER BY ID") == [(1,), (2,), (3,), (11,), (18,)]
    assert accounting(raw_db) == (total - 1, 5, len(left), 1, 1)
    assert reconciled(raw_db) == []
    since = dict(store(raw_db, "SELECT source_id, _first_quarantined_at FROM quarantine"))
    assert since["12"] == dict((k, t) for k, _, _, t in before)["12"], "still refused since the first night"


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_typed_server_columns_hold_bad_times_of_their_own(kind: str, tmp_path: Path) -> None:
    """A date/time column cannot hold text, but NULL, a year far out of range and (PostgreSQL)
    'infinity' or (MariaDB) the zero date."""
    url, what = (PG_URL, "PostgreSQL on 127.0.0.1:5432") if kind == "postgresql" else (MARIADB_URL, "MariaDB")
    for name, engine in server_journal(url, what, [row(1, "2026-03-05 10:00:00"), bad(21, None)], loose=True):
        odd = ["'infinity'", "'0001-01-01 10:00:00'"] if kind == "postgresql" else ["'0000-00-00 00:00:00'"]
        odd.append("'2100-01-01 10:00:00'")
        with engine.begin() as conn:
            if kind == "mariadb":
                conn.execute(sa.text("SET SESSION sql_mode = ''"))
            for i, value in enumerate(odd, start=22):
                q = "`" if kind == "mariadb" else '"'
                conn.execute(sa.text(f"INSERT INTO {q}{name}{q} ({q}ID{q}, {q}StartTime{q}) VALUES ({i}, {value})"))
        raw_db = tmp_path / f"{kind}.duckdb"
        night(Source(url, name), raw_db, "r1")
        got = reasons(raw_db)
        if kind == "postgresql":
            assert got == {
                "21": "StartTime missing or unparseable",
                "22": "StartTime in the future",
                "23": "StartTime before 1980",
                "24": "StartTime in the future",
            }
        else:
            assert got == {
                "21": "StartTime missing or unparseable",
                "22": "StartTime unparseable",
                "23": "StartTime in the future",
            }
        assert store(raw_db, "SELECT ID FROM journal") == [(1,)]
        assert reconciled(raw_db) == []


def test_legs_retention_takes_with_their_chain_stay_accounted(tmp_path: Path) -> None:
    """A call forwarded across the cutoff expires whole: its later leg is still in the source, counted
    as expired (raw.retention_expired), and its day is not read again night after night."""
    rows = [
        row(1, "2026-03-05 10:00:00"),
        row(7, "2025-12-31 23:59:00", TrackerID="tx"),
        row(8, "2026-01-01 00:01:00", TrackerID="tx"),
    ]
    source = write_journal(tmp_path / "j.sqlite", rows, start_required=False)
    raw_db = tmp_path / "raw.duckdb"
    extract(source, raw_db, WINDOW, DIRECTORY, Policy(), "r0", cutoff=datetime(2025, 12, 1))
    assert store(raw_db, "SELECT ID FROM journal ORDER BY ID") == [(1,), (7,), (8,)]
    night(source, raw_db, "r1")
    assert store(raw_db, "SELECT ID FROM journal") == [(1,)]
    assert store(raw_db, 'SELECT "ID", start_day FROM retention_expired') == [(8, datetime(2026, 1, 1).date())]
    assert accounting(raw_db) == (3, 1, 0, 2, 0)
    assert reconciled(raw_db) == []
    assert night(source, raw_db, "r2").healed_from is None
    assert reconciled(raw_db) == []


def test_without_the_unplaced_pass_the_reconciliation_fails_and_the_mail_names_the_difference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mutation check: take the unplaced pass out (its query finds nothing) and the rows without a
    usable StartTime or ID vanish; the whole-source reconciliation notices and names the difference."""
    source = write_journal(tmp_path / "j.sqlite", GOOD + BAD, start_required=False)
    original = Source.unplaced_relation_sql
    monkeypatch.setattr(
        Source, "unplaced_relation_sql", lambda self, p: f"SELECT * FROM ({original(self, p)}) WHERE false"
    )
    raw_db = tmp_path / "raw.duckdb"
    night(source, raw_db, "r1")
    assert reasons(raw_db) == {"6": "DurationTotal negative"}
    failed = reconciled(raw_db)
    assert any(f"unaccounted_rows={len(BAD)}" in f for f in failed), failed
    assert any(f"source_unplaced={len(BAD)}, stored_unplaced=0" in f for f in failed), failed
    report = FailureReport("run-1", "nightly", "2026-03-31", ("raw_quality_checks",), (), tuple(failed), False)
    mail = compose(report, "it.admin@example.com", "callsight@localhost", "site").get_content()
    assert f"unaccounted_rows={len(BAD)}" in mail and "Kunde" not in mail
