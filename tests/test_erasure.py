"""Erasure (GDPR Art. 17): keyed hashes, suppression in the extract, `callsight erase` end to end."""

import json
import os
import shutil
import sqlite3
import struct
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from callsight.defs.nightly import run_nightly
from callsight.extract.run import extract
from callsight.journal.raw_store import SCRUBBED_ROW_HASH, ensure_register
from callsight.journal.sources import Window
from callsight.privacy.audit import read_entries, verify_chain
from callsight.privacy.erase_everywhere import record_and_scrub
from callsight.privacy.erasure import (
    CONTACT,
    ERASED_COLUMNS,
    PHONE,
    ErasureKeyError,
    Identifier,
    check_key,
    erasure_key,
    hash_sql,
    identifier_hash,
    register_requests,
)
from callsight.site.directory import load_directory
from callsight.site.home import kept_builds
from callsight.site.policy import Policy, load_policy
from callsight.site.settings import Settings

from .conftest import Site, dbt_target_env
from .journals import DIRECTORY, row, write_journal
from .journals import duckdb_rows as raw
from .privacy_scan import scan

KEY = "test-erasure-key-0123456789"
WIN = Window(datetime(2026, 3, 1), datetime(2026, 4, 1))


def test_python_and_sql_compute_the_same_keyed_hash() -> None:
    con = duckdb.connect()
    con.execute("SET VARIABLE callsight_erasure_key = ?", [KEY])
    variants = {
        PHONE: ["+49 89 1234", "0049891234", "+49 (89) 12-34"],
        CONTACT: ["Jürgen Öztürk", " jürgen   ÖZTÜRK ", "JÜRGEN\tÖztürk"],
    }
    for kind, values in variants.items():
        python = {identifier_hash(KEY, kind, v) for v in values}
        sql = {con.execute(f"SELECT {hash_sql(kind, '?')}", [v]).fetchone()[0] for v in values}
        assert len(python) == 1, f"{kind}: the formats of one identifier must match each other"
        assert sql == python, kind
    assert identifier_hash(KEY, PHONE, "+49 89 1234") != identifier_hash(KEY, PHONE, "+49 89 1235")
    assert identifier_hash(KEY, PHONE, "+49 89 1234") != identifier_hash(KEY + "x", PHONE, "+49 89 1234")
    assert con.execute(f"SELECT {hash_sql(PHONE, '?')}", ["unbekannt"]).fetchone()[0] is None
    with pytest.raises(ValueError, match="no digits"):
        Identifier(PHONE, "unbekannt")


def test_the_key_comes_from_the_environment_and_must_match_the_register(tmp_path: Path) -> None:
    with pytest.raises(ErasureKeyError, match="CALLSIGHT_ERASURE_KEY is not set"):
        erasure_key(Settings.from_env({"CALLSIGHT_HOME": str(tmp_path)}), required=True)
    assert erasure_key(Settings.from_env({"CALLSIGHT_HOME": str(tmp_path)}), required=False) is None
    with pytest.raises(ErasureKeyError, match="at least 16"):
        erasure_key(Settings.from_env({"CALLSIGHT_HOME": str(tmp_path), "CALLSIGHT_ERASURE_KEY": "short"}), True)
    con = duckdb.connect()
    ensure_register(con)
    assert check_key(con, None) == 0, "an empty register needs no key"
    register_requests(con, KEY, [Identifier(PHONE, "+49 89 1234")], datetime.now())
    assert check_key(con, KEY) == 1
    with pytest.raises(ErasureKeyError, match="not set"):
        check_key(con, None)
    with pytest.raises(ErasureKeyError, match="not the key"):
        check_key(con, KEY + "-rotated")
    stored = con.execute("SELECT * FROM erasure_register").fetchall()
    assert "1234" not in repr(stored), "the register holds hashes only"


ROWS = [
    row(1, "2026-03-02 09:00:00", ContactEntryID="C-1", Subject="Angebot Karl"),  # +49 89 1234567, Karl Kunde
    row(2, "2026-03-02 09:10:00", PhoneNumber="+49 30 5550001", ContactName="Eva Muster", ContactCompany="Muster AG"),
    row(3, "2026-03-02 09:20:00", PhoneNumber="+49 40 7770001", RedirectingNumber="+49 89 1234567", ContactName=None),
    row(4, "2026-03-02 09:30:00", PhoneNumber="+49 40 8880001", ContactName="Otto Normal", ContactCompany="Normal KG"),
    row(5, "2026-03-02 09:40:00", PrivateCall=1),  # private: the stored number is truncated
    row(6, "2026-03-02 09:50:00", DurationTotal=-4),  # malformed: quarantined
]
ERASED_IDS = {1, 2, 3, 5}
SECRETS = ["1234567", "Karl Kunde", "Kunde GmbH", "Angebot Karl", "5550001", "Eva Muster", "Muster AG"]


def site_settings(home: Path) -> Settings:
    return Settings.from_env({"CALLSIGHT_HOME": str(home), "CALLSIGHT_ERASURE_KEY": KEY})


def request() -> list[Identifier]:
    return [Identifier(PHONE, "0049 (89) 1234567"), Identifier(CONTACT, "  eva MUSTER")]


def check_erased(raw_db: Path) -> None:
    cols = ", ".join(f'"{c}"' for c in ERASED_COLUMNS)
    got = dict((r[0], r[1:]) for r in raw(raw_db, f'SELECT "ID", {cols} FROM journal'))
    assert set(got) == {1, 2, 3, 4, 5}, "erased calls still count"
    for i in ERASED_IDS:
        assert got[i] == (None,) * len(ERASED_COLUMNS), i
    assert got[4][:2] == ("+49 40 8880001", None)
    kept = raw(raw_db, 'SELECT count(*) FROM journal WHERE "DurationTotal" = 30 AND "CTIServerUserName" = \'a.b\'')
    assert kept == [(5,)], "times, durations and agent are kept"
    (quarantined,) = raw(raw_db, "SELECT row_json FROM quarantine")[0]
    assert '"PhoneNumber":null' in quarantined and '"DurationTotal":"-4"' in quarantined


def test_the_extract_suppresses_registered_identifiers_before_they_land(tmp_path: Path) -> None:
    source = write_journal(tmp_path / "j.sqlite", ROWS)
    settings = site_settings(tmp_path / "home")
    settings.raw_db.parent.mkdir(parents=True)
    con = duckdb.connect(str(settings.raw_db))
    ensure_register(con)
    register_requests(con, KEY, request(), datetime.now())
    con.close()
    with pytest.raises(ErasureKeyError):  # a register without its key: nothing is loaded
        extract(source, settings.raw_db, WIN, DIRECTORY, Policy(), "r0")
    stats = extract(source, settings.raw_db, WIN, DIRECTORY, Policy(), "r1", erasure_key=KEY)
    assert (stats.source_rows, stats.loaded_rows, stats.quarantined_rows, stats.erased_rows) == (6, 5, 1, 5)
    check_erased(settings.raw_db)
    assert scan(settings.home, SECRETS) == []
    assert scan(settings.home, ["8880001", "Otto Normal"]) != [], "positive control: kept data is found"
    # the same window again from the unchanged source: still erased, and the rows are not even rewritten
    extract(source, settings.raw_db, WIN, DIRECTORY, Policy(), "r2", erasure_key=KEY)
    check_erased(settings.raw_db)
    assert raw(settings.raw_db, "SELECT DISTINCT _run_id FROM journal") == [("r1",)]


def test_erasure_clears_stored_rows_and_later_extracts_keep_them_cleared(tmp_path: Path) -> None:
    source = write_journal(tmp_path / "j.sqlite", ROWS)
    settings = site_settings(tmp_path / "home")
    settings.raw_db.parent.mkdir(parents=True)
    extract(source, settings.raw_db, WIN, DIRECTORY, Policy(), "r1")
    assert scan(settings.home, SECRETS) != []
    request_id, journal_rows, quarantine_rows = record_and_scrub(settings, request())
    # the private call's stored number is truncated: it cannot be matched in the store, only in the source
    assert (journal_rows, quarantine_rows) == (3, 1)
    assert scan(settings.home, SECRETS) == [], "cleared values are gone from the file, not just hidden"
    rows = raw(settings.raw_db, 'SELECT "ID", _row_hash, _run_id FROM journal WHERE "ID" IN (1, 2, 3) ORDER BY 1')
    assert rows == [(1, SCRUBBED_ROW_HASH, "r1"), (2, SCRUBBED_ROW_HASH, "r1"), (3, SCRUBBED_ROW_HASH, "r1")]
    extract(source, settings.raw_db, WIN, DIRECTORY, Policy(), "r2", erasure_key=KEY)
    check_erased(settings.raw_db)  # now including the private call, matched on its source number
    con = duckdb.connect(str(settings.raw_db), read_only=True)
    entries = read_entries(con)
    con.close()
    assert [(e.kind, e.subject) for e in entries] == [("erasure", request_id)]
    assert '"journal_rows_erased":3' in entries[0].detail and verify_chain(entries) == []


# ---- end to end ---------------------------------------------------------------------------------------
def served(settings: Settings, sql: str) -> list[tuple]:
    con = duckdb.connect(str(settings.served_db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def pick_identifiers(journal: sqlite3.Connection, staff_names: set[str]) -> tuple[str, str, str]:
    """A customer number with several calls, and another customer's name that always comes with the same
    number (and that number with that name only), as they appear in the source; the name is nobody's in
    the org directory."""
    number = journal.execute(
        "SELECT PhoneNumber FROM journal WHERE PrivateCall = 0 AND Internal = 0 AND PhoneNumber IS NOT NULL "
        "GROUP BY 1 HAVING count(*) >= 3 ORDER BY count(*) DESC, 1 LIMIT 1"
    ).fetchone()[0]
    candidates = journal.execute(
        """SELECT min(o.ContactName), o.PhoneNumber FROM journal AS o
           WHERE o.Internal = 0 AND o.PhoneNumber <> ?
           GROUP BY o.PhoneNumber
           HAVING count(*) >= 3 AND count(o.ContactName) = count(*) AND count(DISTINCT o.ContactName) = 1
              AND min(o.ContactName) NOT IN (SELECT i.ContactName FROM journal AS i
                                             WHERE i.PhoneNumber <> o.PhoneNumber AND i.ContactName IS NOT NULL)
              AND o.PhoneNumber NOT IN (SELECT RedirectingNumber FROM journal WHERE RedirectingNumber IS NOT NULL)
           ORDER BY count(*) DESC, 2""",
        [number],
    ).fetchall()
    name, name_number = next((n, p) for n, p in candidates if n not in staff_names)
    return number, name, name_number


@pytest.mark.slow
def test_callsight_erase_end_to_end(tmp_path: Path, site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    from callsight.cli.main import main

    # The PBX's journal is not ours: outside CALLSIGHT_HOME, so that everything under it can be scanned.
    source = tmp_path / "pbx" / "journal.sqlite"
    source.parent.mkdir()
    shutil.move(site.settings.demo_journal_path, source)
    monkeypatch.setenv("CALLSIGHT_JOURNAL_URL", f"sqlite:///{source}")
    monkeypatch.setenv("CALLSIGHT_ERASURE_KEY", KEY)
    settings = Settings.from_env()
    first = run_nightly(settings)
    assert first.success, first.failure
    assert run_nightly(settings, first.last, first.last).success
    assert kept_builds(settings.served_db), "a previous build is kept"
    journal = sqlite3.connect(source)
    staff = {u.name for u in load_directory(settings.effective_directory_path).users}
    number, name, name_number = pick_identifiers(journal, staff)
    digits = number.replace(" ", "").lstrip("+")
    needles = [number, digits, name, name_number, name_number.replace(" ", "").lstrip("+")]
    assert scan(settings.home, needles), "positive control: before the erasure the data is there"
    erased_ids = {
        r[0]
        for r in journal.execute(
            "SELECT ID FROM journal WHERE PhoneNumber = ? OR RedirectingNumber = ? OR ContactName = ?",
            [number, number, name],
        )
    }
    ids = ", ".join(map(str, erased_ids))
    counts_sql = (
        "SELECT (SELECT count(*) FROM marts.fct_calls), (SELECT sum(talk_seconds) FROM marts.fct_calls), "
        "(SELECT count(*) FROM marts.fct_inbound_calls), (SELECT count(*) FROM marts.fct_callbacks), "
        f"(SELECT count(phone_number) FROM marts.fct_calls WHERE call_id NOT IN ({ids}))"
    )
    counts = served(settings, counts_sql)
    personal_left = (
        f"SELECT count(*) FROM marts.fct_calls WHERE call_id IN ({ids}) AND "
        "(phone_number IS NOT NULL OR redirecting_number IS NOT NULL OR contact_company IS NOT NULL "
        "OR phone_number_display IS NOT NULL OR redirecting_number_display IS NOT NULL)"
    )
    assert served(settings, personal_left)[0][0] > 0
    # The checks' record holds a hash of each raw leg as it was validated; the raw batch reads the
    # extract's row hash, itself a hash of the leg's values: numbers and names could be guessed and
    # confirmed against it. It must go with the erasure, file blocks included.
    record = settings.validated_rows_db
    old_hashes = [struct.pack("<Q", h) for h in raw_leg_hashes(settings, erased_ids)]
    assert old_hashes and all(h in record.read_bytes() for h in old_hashes), "positive control"

    # another format of the number than the journal's: '+49 221 ...' is erased by '0049 221 ...'
    assert main(["erase", "--phone", "00" + digits, "--contact", name.upper()]) == 0
    assert record.exists(), "the republish's warehouse checks recorded the facts as they are now"
    assert [p for p in settings.home.rglob("*") if p.is_file() and any(h in p.read_bytes() for h in old_hashes)] == []
    assert served(settings, counts_sql) == counts, "erased calls still count; other calls keep their numbers"
    assert served(settings, personal_left) == [(0,)]
    assert kept_builds(settings.served_db) == [], "kept builds predate the erasure"
    assert scan(settings.home, needles) == []

    # re-extract the same window from the unchanged source: still erased
    again = run_nightly(settings, first.first, first.last)
    assert again.success, again.failure
    assert served(settings, counts_sql) == counts
    assert served(settings, personal_left) == [(0,)]
    assert scan(settings.home, needles) == []

    # the register and the audit log: hashes and counts only; the audit log is published
    con = duckdb.connect(str(settings.raw_db), read_only=True)
    hashes = {r[0] for r in con.execute("SELECT identifier_hash FROM erasure_register").fetchall()}
    entries = read_entries(con)
    con.close()
    assert hashes == {identifier_hash(KEY, PHONE, number), identifier_hash(KEY, CONTACT, name)}
    assert verify_chain(entries) == []
    events = [(e.kind, json.loads(e.detail)) for e in entries]
    assert [d["event"] for k, d in events if k == "erasure"] == ["recorded", "published"]
    runs = [d for k, d in events if k == "run"]
    assert [d["event"] for d in runs] == ["started", "finished"] * 3
    assert runs[-1]["rows_erased"] == len(erased_ids), "the re-extract suppressed every matching source row"
    marts_audit = served(settings, "SELECT event_kind, event_name FROM marts.audit_log ORDER BY audit_seq")
    assert marts_audit == [(k, d["event"]) for k, d in events[:-1]], "published up to the run's own finish"

    # a different key is refused: the run fails before loading anything, the served warehouse stays
    before = settings.served_db.read_bytes()
    monkeypatch.setenv("CALLSIGHT_ERASURE_KEY", KEY + "-other")
    refused = run_nightly(Settings.from_env(), first.last, first.last)
    assert not refused.success and "not the key the erasure register was written with" in refused.failure
    assert settings.served_db.read_bytes() == before
    con = duckdb.connect(str(settings.raw_db), read_only=True)
    last = json.loads(read_entries(con)[-1].detail)
    con.close()
    assert (last["event"], last["status"], last["failed_step"]) == ("finished", "failure", "raw__journal")


def raw_leg_hashes(settings: Settings, ids: set[int]) -> list[int]:
    """The row hashes the raw checks record for these legs (quality.ROW_HASH_SQL over the batch's query)."""
    from callsight.quality.suites import load_suites
    from callsight.quality.validated_rows import ROW_HASH_SQL
    from callsight.quality.validation import connect

    (batch,) = [b for s in load_suites() if s.stage == "raw" for b in s.batches if b.incremental]
    timezone = load_policy(settings.effective_policy_path).timezone
    con = connect(settings.raw_db, timezone=timezone)
    try:
        in_ids = ", ".join(map(str, ids))
        sql = f'SELECT {ROW_HASH_SQL} FROM ({batch.query}) AS batch WHERE "ID" IN ({in_ids})'
        return [h for (h,) in con.execute(f"SELECT * FROM ({sql})").fetchall()]
    finally:
        con.close()


def test_erase_without_a_key_records_nothing(tmp_path: Path) -> None:
    import subprocess
    import sys

    r = subprocess.run(
        [str(Path(sys.executable).with_name("callsight")), "erase", "--phone", "+49 89 1234567"],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "PATH": str(Path(sys.executable).parent),
            "CALLSIGHT_HOME": str(tmp_path),
            "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
            **dbt_target_env(),
        },
    )
    assert r.returncode == 2 and "CALLSIGHT_ERASURE_KEY is not set" in r.stdout and "nothing was recorded" in r.stdout
    assert "1234567" not in r.stdout + r.stderr
    assert not (tmp_path / "warehouse").exists()


@pytest.mark.slow
def test_calls_erased_before_the_look_back_window_do_not_stop_the_next_night(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A night re-reads only the look-back window. Rows erased further back are not extracted again:
    they must still pass the raw checks, and stay erased, night after night."""
    from callsight.cli.main import main

    monkeypatch.setenv("CALLSIGHT_ERASURE_KEY", KEY)
    monkeypatch.setenv("CALLSIGHT_LOOKBACK_DAYS", "2")
    settings = Settings.from_env()
    first = run_nightly(settings)
    assert first.success, first.failure
    journal = sqlite3.connect(settings.demo_journal_path)
    number, old_ids = next(
        (n, ids)
        for n, ids, last in journal.execute(
            "SELECT PhoneNumber, group_concat(ID), max(StartTime) FROM journal "
            "WHERE PrivateCall = 0 AND Internal = 0 AND PhoneNumber IS NOT NULL GROUP BY 1 ORDER BY count(*) DESC"
        )
        if last < (first.last - timedelta(days=5)).isoformat()
    )
    assert main(["erase", "--phone", number]) == 0

    for _ in range(2):
        night = run_nightly(settings, first.last, first.last)
        assert night.success, night.failure
        left = served(
            settings, f"SELECT count(phone_number), count(*) FROM marts.fct_calls WHERE call_id IN ({old_ids})"
        )
        assert left[0][0] == 0 and left[0][1] == len(old_ids.split(","))


def test_rows_scrubbed_without_a_row_hash_get_the_scrubbed_rows_hash(tmp_path: Path) -> None:
    """Stores from before SCRUBBED_ROW_HASH hold scrubbed rows with a NULL hash: the next extract's
    ensure_raw_store gives them the scrubbed rows' hash (every stored row has a hash)."""
    from callsight.journal.raw_store import ensure_raw_store

    con = duckdb.connect(str(tmp_path / "raw.duckdb"))
    ensure_raw_store(con)
    con.execute(
        'INSERT INTO journal ("ID", "StartTime", _is_private, _row_hash, _run_id, _extracted_at) VALUES '
        "(1, TIMESTAMP '2026-03-02 09:00', false, NULL, 'r1', now()),"
        " (2, TIMESTAMP '2026-03-02 09:05', false, 77, 'r1', now())"
    )
    ensure_raw_store(con)
    assert con.execute('SELECT "ID", _row_hash FROM journal ORDER BY 1').fetchall() == [(1, SCRUBBED_ROW_HASH), (2, 77)]
