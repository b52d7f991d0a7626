"""`callsight check-source` and `callsight copy-journal` (issue 28) on real journals: SQLite files and
tables on the live PostgreSQL and MariaDB servers. What the check says it would quarantine is compared
with what a real extract of the same journal quarantines; private calls are counted, never shown."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from callsight.cli.main import build_parser
from callsight.cli.source import LANGUAGES
from callsight.extract.run import extract
from callsight.extract.source_check import (
    CANNOT_WORK,
    READY,
    WARNINGS,
    SourceFacts,
    exit_code,
    gather,
    judge,
    judge_columns,
    months_of,
    night_placement,
)
from callsight.extract.source_report import LANGUAGES as REPORT_LANGUAGES
from callsight.extract.source_report import report_json, report_text
from callsight.journal.contract import JOURNAL_COLUMNS, JOURNAL_DDL
from callsight.journal.sources import Source, Window
from callsight.journal.sqlite_copy import CopyRefusedError, copy_journal
from callsight.site.policy import Policy
from callsight.site.settings import Settings

from .journals import DIRECTORY, MARIADB_URL, PG_URL, duckdb_rows, journal_table, row, server_journal, write_journal
from .privacy_scan import scan

POLICY = Policy()
TODAY = datetime.now(POLICY.tz).date()
# What the fixture's private calls hold: none of it may appear in any report.
PRIVATE_VALUES = [
    "+49 170 5550123",
    "1705550123",
    "5550123",
    "Paula Privatmann",
    "Privatmann",
    "Praxis Dr. Heil",
    "Arzttermin",
    "+49 171 5559876",
    "5559876",
    "Otto Geheimrat",
    "Geheimrat",
    "Geburtstagsgeschenk",
]
PASSWORD = "Geheim-Pw-4711"


def at(days_ago: int, hour: int = 10) -> str:
    return (datetime.combine(TODAY - timedelta(days=days_ago), datetime.min.time()) + timedelta(hours=hour)).strftime(
        "%Y-%m-%d %H:%M:%S"
    )


def good_rows() -> list[dict]:
    """Calls of the last 30 days, two of them private (one flagged, one on the directory's private line)."""
    rows = [row(i, at(1 + i % 30)) for i in range(1, 41)]
    rows.append(
        row(
            100,
            at(2),
            PrivateCall=1,
            PhoneNumber="+49 170 5550123",
            ContactName="Paula Privatmann",
            ContactCompany="Praxis Dr. Heil",
            Subject="Arzttermin",
        )
    )
    rows.append(
        row(
            101,
            at(3),
            LineNumber="+49 8151 3680-199",
            PhoneNumber="+49 171 5559876",
            ContactName="Otto Geheimrat",
            Subject="Geburtstagsgeschenk",
        )
    )
    return rows


def bad_rows() -> list[dict]:
    """The good calls, malformed ones (one of them private), a duplicated ID and rows outside any window."""
    return [
        *good_rows(),
        row(200, at(4), StopTime=at(5)),
        row(201, at(4), DurationTotal=-5),
        row(202, at(5), Outbound=2),
        row(203, at(6)),
        row(203, at(7)),
        row(204, at(6), DurationConnected=90000, PrivateCall=1, ContactName="Paula Privatmann", Subject="Arzttermin"),
        row(205, at(400)),  # before the retention cutoff
        row(206, "2099-01-01 10:00:00"),  # far ahead: unplaced
    ]


BACKENDS = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.postgres),
    pytest.param("mariadb", marks=pytest.mark.mariadb),
]
SERVER_URLS = {"postgresql": PG_URL, "mariadb": MARIADB_URL}


@pytest.fixture(scope="module", params=BACKENDS)
def journals(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A good and a bad journal on one backend: {"kind", "good": Source, "bad": Source}."""
    kind = request.param
    if kind == "sqlite":
        tmp = tmp_path_factory.mktemp("sqlite-journals")
        yield {"kind": kind, "good": write_journal(tmp / "good.sqlite", good_rows()), "bad": bad_source_sqlite(tmp)}
        return
    url = SERVER_URLS[kind]
    good = server_journal(url, kind, good_rows())
    bad = server_journal(url, kind, bad_rows(), loose=True)
    good_table, _ = next(good)
    bad_table, _ = next(bad)
    try:
        yield {"kind": kind, "good": Source(url, good_table), "bad": Source(url, bad_table)}
    finally:
        good.close()
        bad.close()


def bad_source_sqlite(tmp: Path) -> Source:
    """SQLite holds anything: the bad journal also has a StartTime that is no time at all."""
    return write_journal(tmp / "bad.sqlite", [*bad_rows(), row(207, "kaputt")], start_required=False)


@pytest.fixture(scope="module")
def checked(journals: dict) -> dict[str, SourceFacts]:
    """The check's facts for both journals, gathered once per backend."""
    return {name: gather(fresh(journals[name]), DIRECTORY, POLICY, sample_rows=1000) for name in ("good", "bad")}


def fresh(source: Source, reader: str = "auto") -> Source:
    """A new Source on the same journal (a Source remembers the types it was checked with)."""
    return Source(source.url.render_as_string(hide_password=False), source.table, reader)


# ---- the facts -----------------------------------------------------------------------------------
def test_good_journal_is_ready(checked: dict[str, SourceFacts]) -> None:
    facts = checked["good"]
    findings = judge(facts)
    assert exit_code(findings) == READY, findings
    assert [c.status for c in facts.columns] == ["ok"] * len(JOURNAL_COLUMNS)
    assert facts.total_rows == facts.kinds["placed"] == facts.read_rows == 42
    assert sum(facts.months.values()) == 42 and facts.undated_rows == 0
    assert facts.last_day == (TODAY - timedelta(days=1)).isoformat()
    assert facts.first_day == (TODAY - timedelta(days=30)).isoformat()
    assert facts.quarantine == {}
    assert (facts.private.total, facts.private.on_private_line) == (2, 1)
    assert facts.sample_rows == 42 and facts.rows_per_second > 0


def test_bad_journal_warns(checked: dict[str, SourceFacts], journals: dict) -> None:
    facts = checked["bad"]
    findings = judge(facts)
    assert exit_code(findings) == WARNINGS
    codes = {f.code for f in findings if f.level == "warning"}
    assert codes == {"quarantine_share", "unplaced"}
    assert {f.code for f in findings if f.level == "note"} >= {"expired"}, "old history is told, not warned about"
    assert facts.kinds["expired"] == 1
    assert facts.kinds["unplaced"] == (2 if journals["kind"] == "sqlite" else 1)
    assert facts.quarantine["ID duplicated in source"] == 2
    assert facts.quarantine["StartTime in the future"] == 1
    assert facts.quarantine["StopTime before StartTime"] == 1
    assert facts.quarantine["DurationTotal negative"] == 1
    assert facts.quarantine["Outbound not 0/1"] == 1
    assert facts.quarantine["DurationConnected longer than 24 hours"] == 1


def test_quarantine_and_private_calls_equal_a_real_extract(
    checked: dict[str, SourceFacts], journals: dict, tmp_path: Path
) -> None:
    """The night's own extract of the same journal quarantines exactly the reasons the check reported,
    and marks as private the calls the check counted."""
    facts = checked["bad"]
    placement = night_placement(POLICY, TODAY)
    raw_db = tmp_path / "raw.duckdb"
    stats = extract(
        fresh(journals["bad"]),
        raw_db,
        Window(placement.cutoff, placement.until),
        DIRECTORY,
        POLICY,
        "check-source-comparison",
        cutoff=placement.cutoff,
    )
    extracted = dict(duckdb_rows(raw_db, "SELECT reason, count(*) FROM quarantine GROUP BY reason"))
    assert extracted == facts.quarantine
    assert stats.source_total == facts.total_rows
    assert stats.source_expired_rows == facts.kinds["expired"]
    assert stats.unplaced_rows == facts.kinds["unplaced"]
    (private,) = duckdb_rows(
        raw_db,
        "SELECT (SELECT count(*) FROM journal WHERE _is_private) + (SELECT count(*) FROM quarantine WHERE _is_private)",
    )
    assert private[0] == facts.private.total == 3


def test_sqlalchemy_reader_reports_the_same(checked: dict[str, SourceFacts], journals: dict, tmp_path: Path) -> None:
    """The reader Microsoft SQL Server gets (SQLAlchemy in chunks) reports what the DuckDB readers do.
    On SQLite without the text StartTime: SQLAlchemy's SQLite dialect cannot parse it as a date/time."""
    if journals["kind"] == "sqlite":
        source = write_journal(tmp_path / "bad.sqlite", bad_rows())
        expected = gather(fresh(source), DIRECTORY, POLICY, sample_rows=1000)
    else:
        source, expected = journals["bad"], checked["bad"]
    facts = gather(fresh(source, reader="sqlalchemy"), DIRECTORY, POLICY, sample_rows=1000)
    assert facts.reader == "sqlalchemy"
    assert (facts.quarantine, facts.kinds, facts.private) == (expected.quarantine, expected.kinds, expected.private)
    assert facts.months == expected.months


@pytest.mark.parametrize("lang", ["en", "de"])
def test_reports_hold_no_private_value(checked: dict[str, SourceFacts], lang: str, tmp_path: Path) -> None:
    for facts in checked.values():
        findings = judge(facts)
        text = report_text(facts, findings, lang)
        as_json = json.dumps(report_json(facts, findings, lang), ensure_ascii=False)
        (tmp_path / f"report-{lang}.txt").write_text(text + as_json, encoding="utf-8")
        assert scan(tmp_path, PRIVATE_VALUES) == []
        assert "Agent" in text or "agent" in text  # the rule is stated


def test_german_report_speaks_procall(checked: dict[str, SourceFacts]) -> None:
    text = report_text(checked["bad"], judge(checked["bad"]), "de")
    for term in ("Journal-Tabelle", "Journaleinträge", "Quarantäne", "Private Gespräche", "Anruf", "WARNUNG"):
        assert term in text, term
    assert "verkürzter Rufnummer" in text  # truncate in the vendor's words
    assert "StopTime before StartTime" in text  # the reasons as the quarantine table holds them
    english = report_text(checked["bad"], judge(checked["bad"]), "en")
    assert "Quarantine" in english and "Quarantäne" not in english


def test_retyped_and_missing_columns_cannot_work(journals: dict, tmp_path: Path) -> None:
    """DurationConnected as a date/time, Subject gone, one extra column: exit 2 naming both, extra noted."""
    source = retyped_journal(journals["kind"], tmp_path)
    try:
        facts = gather(source, DIRECTORY, POLICY)
    finally:
        drop_retyped(journals["kind"], source)
    findings = judge(facts)
    assert exit_code(findings) == CANNOT_WORK
    errors = {(f.code, f.params["column"]) for f in findings if f.level == "error"}
    assert errors == {("column_retyped", "DurationConnected"), ("column_missing", "Subject")}
    text = report_text(facts, findings, "en")
    assert "DurationConnected" in text and "Subject" in text and "Bemerkung2" in text


def retyped_journal(kind: str, tmp_path: Path) -> Source:
    if kind == "sqlite":
        ddl = JOURNAL_DDL.format(table="journal").replace("DurationConnected INTEGER", "DurationConnected DATETIME")
        ddl = ddl.replace("    Subject VARCHAR(1024),\n", "    Bemerkung2 VARCHAR(64),\n")
        path = tmp_path / "retyped.sqlite"
        con = sqlite3.connect(path)
        con.execute(ddl)
        con.close()
        return Source(f"sqlite:///{path}", "journal")
    url = SERVER_URLS[kind]
    engine = sa.create_engine(url)
    name = f"journal_retyped_{os.getpid()}"
    columns = [
        sa.Column(c.name, sa.DateTime if c.name == "DurationConnected" else c.type)
        for c in journal_table(name, sa.MetaData()).columns
        if c.name != "Subject"
    ]
    sa.Table(name, sa.MetaData(), *columns, sa.Column("Bemerkung2", sa.String(64))).create(engine)
    engine.dispose()
    return Source(url, name)


def drop_retyped(kind: str, source: Source) -> None:
    if kind != "sqlite":
        engine = source.engine()
        sa.Table(source.table, sa.MetaData()).drop(engine)
        engine.dispose()


# ---- the command ---------------------------------------------------------------------------------
def run_command(argv: list[str], env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """The subcommand as `callsight` runs it, in this process (stdout only)."""
    args = build_parser().parse_args(argv)
    code = args.func(Settings.from_env(env), args)
    return code, capsys.readouterr().out


def site_env(tmp_path: Path, source: Source) -> dict[str, str]:
    """A site whose org directory has the fixture's private line and whose policy is the default."""
    directory = tmp_path / "directory.yaml"
    directory.write_text(
        'users: [{username: a.b, name: A B}]\nprivate_lines: ["+49 8151 3680-199"]\n', encoding="utf-8"
    )
    policy = tmp_path / "policy.yaml"
    policy.write_text("timezone: Europe/Berlin\n", encoding="utf-8")
    return {
        "CALLSIGHT_HOME": str(tmp_path / "home"),
        "CALLSIGHT_JOURNAL_URL": source.url.render_as_string(hide_password=False),
        "CALLSIGHT_JOURNAL_TABLE": source.table,
        "CALLSIGHT_DIRECTORY": str(directory),
        "CALLSIGHT_POLICY": str(policy),
    }


def test_command_exit_codes_text_and_json(journals: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good, bad = site_env(tmp_path, journals["good"]), site_env(tmp_path, journals["bad"])
    code, out = run_command(["check-source", "--sample-rows", "100"], good | {"CALLSIGHT_LOCALE": "en"}, capsys)
    assert code == READY and "Verdict: ready" in out
    code, out = run_command(["check-source", "--sample-rows", "100"], good, capsys)
    assert code == READY and "Ergebnis: bereit" in out, "the site's language, German by default"
    code, out = run_command(["check-source", "--json"], bad, capsys)
    facts = json.loads(out)
    assert code == WARNINGS == facts["exit_code"]
    assert facts["private"]["total"] == 3 and facts["quarantined_rows"] == 8 - (journals["kind"] != "sqlite")
    assert {f["code"] for f in facts["findings"]} >= {"quarantine_share", "expired", "unplaced"}
    code, out = run_command(["check-source", "--lang", "de"], bad | {"CALLSIGHT_LOCALE": "en"}, capsys)
    assert code == WARNINGS and "Quarantäne" in out
    code, out = run_command(["check-source"], bad | {"CALLSIGHT_LOCALE": "de_DE"}, capsys)
    assert "Ergebnis: bereit, mit Warnungen" in out
    assert not any(v in out for v in PRIVATE_VALUES)
    missing = {"CALLSIGHT_JOURNAL_TABLE": "kein_journal", "CALLSIGHT_LOCALE": "en"}
    code, out = run_command(["check-source"], good | missing, capsys)
    assert code == CANNOT_WORK and "kein_journal" in out and "not found" in out


def test_missing_directory_is_a_note(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before the first night there may be no org directory yet: the flag alone is counted, and said so."""
    source = write_journal(tmp_path / "j.sqlite", good_rows())
    env = site_env(tmp_path, source) | {"CALLSIGHT_DIRECTORY": str(tmp_path / "none.yaml")}
    code, out = run_command(["check-source", "--json"], env, capsys)
    facts = json.loads(out)
    assert code == READY and facts["private"]["total"] == 1 and facts["directory_found"] is False
    assert [f["code"] for f in facts["findings"]] == ["no_directory"]


@pytest.mark.parametrize(
    "url",
    [
        pytest.param(f"postgresql+psycopg://callsight:{PASSWORD}@127.0.0.1:1/test", id="postgresql"),
        pytest.param(f"mysql+pymysql://callsight:{PASSWORD}@127.0.0.1:1/test", id="mariadb"),
    ],
)
def test_unreachable_server_cannot_work_without_showing_the_password(url: str, tmp_path: Path) -> None:
    """The real entry point (python -m callsight.cli.main): exit 2, the cause named, the password not."""
    env = {**os.environ, "CALLSIGHT_HOME": str(tmp_path), "CALLSIGHT_JOURNAL_URL": url}
    for argv in (["check-source"], ["check-source", "--json"]):
        done = subprocess.run(
            [sys.executable, "-m", "callsight.cli.main", *argv], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == CANNOT_WORK, done.stderr
        assert PASSWORD not in done.stdout + done.stderr
        assert "127.0.0.1" in done.stdout and ("reach" in done.stdout or "erreichbar" in done.stdout)


def test_missing_sqlite_journal_is_never_created(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere" / "journal.sqlite"
    env = {"CALLSIGHT_HOME": str(tmp_path / "home"), "CALLSIGHT_JOURNAL_URL": f"sqlite:///{missing}"}
    code, out = run_command(["check-source"], env, capsys)
    assert code == CANNOT_WORK and "not found" in out
    assert not missing.exists() and not missing.parent.exists()


def test_the_check_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Read-only: the journal file is unchanged and no raw store appears in CALLSIGHT_HOME."""
    source = write_journal(tmp_path / "j.sqlite", bad_rows())
    before = (tmp_path / "j.sqlite").read_bytes()
    env = site_env(tmp_path, source)
    code, _ = run_command(["check-source"], env, capsys)
    assert code == WARNINGS
    assert (tmp_path / "j.sqlite").read_bytes() == before
    assert not (tmp_path / "home").exists() or not list((tmp_path / "home").rglob("*.duckdb"))


def test_languages_agree() -> None:
    assert LANGUAGES == REPORT_LANGUAGES


# ---- pure parts ----------------------------------------------------------------------------------
def test_judge_columns_case_and_families() -> None:
    present = {c.lower(): "VARCHAR(64)" for c in JOURNAL_COLUMNS}
    present |= {"id": "BIGINT", "starttime": "datetime2", "durationtotal": "int", "Extra": "text"}
    judged = {c.name: c.status for c in judge_columns(present)}
    assert judged["ID"] == "ok" and judged["StartTime"] == "ok" and judged["Extra"] == "extra"
    assert judged["DurationConnected"] == "retyped"  # VARCHAR is no number family
    assert judged["Outbound"] == "retyped"


def test_months_of_sets_aside_unusable_days() -> None:
    horizon = datetime(2026, 12, 7)
    months, undated, first, last = months_of(
        {"2026-11-03": 2, "2026-11-30": 1, "2026-12-01": 4, None: 3, "0000-00-00": 1, "2099-01-01": 1}, horizon
    )
    assert months == {"2026-11": 3, "2026-12": 4} and undated == 5
    assert (first, last) == ("2026-11-03", "2026-12-01")


def test_no_recent_calls_warns() -> None:
    facts = SourceFacts("sqlite:///j", "journal", "sqlite", date(2026, 12, 5), kinds={"placed": 5})
    facts.last_day = "2026-11-20"
    assert [f.code for f in judge(facts)] == ["not_recent"]
    facts.last_day = "2026-12-01"
    assert judge(facts) == []


# ---- copy-journal ----------------------------------------------------------------------------------
def big_journal(path: Path, rows: int, journal_mode: str) -> None:
    """A journal of `rows` legs written by SQLite itself (fast), in pairs sharing a TrackerID."""
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA journal_mode = {journal_mode}")
    con.execute(JOURNAL_DDL.format(table="journal"))
    con.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
        "INSERT INTO journal (ID, StartTime, StopTime, DurationTotal, Outbound, PhoneNumber, ContactName, TrackerID) "
        "SELECT i, '2026-11-01 10:00:00', '2026-11-01 10:01:00', 60, 0, '+49 89 ' || i, "
        "printf('Kunde %08d mit einem langen Namen', i), 'pair' || ((i + 1) / 2) FROM n",
        [rows],
    )
    con.commit()
    con.close()


@pytest.mark.parametrize("journal_mode", ["delete", "wal"])
def test_copy_journal_is_a_consistent_snapshot_under_a_writer(journal_mode: str, tmp_path: Path) -> None:
    """A writer inserts pairs of legs (one transaction each) while the copy runs: the copy passes
    PRAGMA integrity_check and holds only whole pairs, between the counts before and after."""
    source, dest = tmp_path / "journal.sqlite", tmp_path / "copy" / "journal-copy.sqlite"
    big_journal(source, 400_000, journal_mode)
    stop, written, started = threading.Event(), [0], threading.Event()

    def writer() -> None:
        con = sqlite3.connect(source, timeout=60)
        i = 10_000_000
        while not stop.is_set():
            with con:  # one transaction: both legs of the call or neither
                con.executemany(
                    "INSERT INTO journal (ID, StartTime, TrackerID) VALUES (?, '2026-12-01 09:00:00', ?)",
                    [(i, f"live{i}"), (i + 1, f"live{i}")],
                )
            i += 2
            written[0] += 2
            started.set()
        con.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert started.wait(30)
        before = written[0]
        result = copy_journal(source, dest)
        during = written[0]
        time.sleep(0.2)
    finally:
        stop.set()
        thread.join()
    assert result.dest == dest and dest.is_file()
    assert oct(dest.stat().st_mode & 0o777) == oct(0o600)  # cleartext calls: owner-only
    con = sqlite3.connect(dest)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        total, live = con.execute("SELECT count(*), count(*) FILTER (WHERE ID >= 10000000) FROM journal").fetchone()
        broken = con.execute("SELECT count(*) FROM (SELECT TrackerID FROM journal GROUP BY 1 HAVING count(*) <> 2)")
        assert broken.fetchone()[0] == 0
    finally:
        con.close()
    assert total == 400_000 + live
    assert before <= live <= during + 2 and live % 2 == 0  # +2: a pair committed, not yet counted
    assert written[0] > live  # the writer went on writing: the copy was made while ProCall wrote
    assert not [p for p in dest.parent.iterdir() if p.name.endswith(".tmp")]


def test_copy_journal_refuses_to_overwrite_the_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_journal(tmp_path / "journal.sqlite", good_rows())
    path = Path(source.url.database or "")
    before = path.read_bytes()
    (tmp_path / "link.sqlite").symlink_to(path)
    for dest in (path, tmp_path / "." / "journal.sqlite", tmp_path / "link.sqlite", Path(f"{path}-wal")):
        with pytest.raises(CopyRefusedError):
            copy_journal(path, dest)
    assert path.read_bytes() == before
    code, out = run_command(["copy-journal", str(path), str(path)], {"CALLSIGHT_HOME": str(tmp_path)}, capsys)
    assert code == 2 and "journal itself" in out
    missing = tmp_path / "missing.sqlite"
    code, out = run_command(["copy-journal", str(missing), str(tmp_path / "c.sqlite")], {}, capsys)
    assert code == 2 and "not found" in out and not missing.exists()
    code, out = run_command(["copy-journal", str(path), str(tmp_path / "c.sqlite")], {}, capsys)
    assert code == 0 and "integrity_check: ok" in out
    copied = sqlite3.connect(tmp_path / "c.sqlite")
    assert copied.execute("SELECT count(*) FROM journal").fetchone()[0] == len(good_rows())
    copied.close()
