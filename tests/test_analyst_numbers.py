"""Analysts see numbers as the dashboards do (DESIGN.md "Security in depth", point 4): no column of an
analyst view holds a number of the journal; number_key matches the calls of one number without being
it, keyed with the site's salt, which stays in the raw store (callsight.privacy.number_keys)."""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
from collections import defaultdict

import duckdb
import pytest

from callsight.journal.raw_store import SALT_TABLE
from callsight.privacy.number_keys import number_key
from callsight.site.policy import load_policy
from callsight.warehouse.dbt_project import DBT_PROJECT_DIR

from .conftest import Site
from .journals import duckdb_rows as query
from .privacy_scan import scan


def digits(number: str) -> str:
    return re.sub(r"[^0-9]", "", number)


def display(number: str) -> str:
    """The dashboards' form (dbt macro display_number): the last three characters as XXX."""
    return number[:-3] + "XXX" if len(number) > 3 else "XXX"


def site_salt(site: Site) -> str:
    ((salt,),) = query(site.settings.raw_db, f"SELECT salt FROM {SALT_TABLE}")
    return salt


def analyst_views(site: Site) -> list[str]:
    rows = query(
        site.settings.served_db,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'analyst' ORDER BY 1",
    )
    views = [r[0] for r in rows]
    assert {"calls", "inbound_calls", "callbacks"} <= set(views)
    return views


def journal_numbers(site: Site) -> set[str]:
    """Every full number of the source journal and of the raw store (private ones too, where kept)."""
    src = sqlite3.connect(site.settings.demo_journal_path)
    try:
        source = src.execute("SELECT PhoneNumber, RedirectingNumber FROM journal").fetchall()
    finally:
        src.close()
    stored = query(site.settings.raw_db, 'SELECT "PhoneNumber", "RedirectingNumber" FROM journal')
    return {n for row in source + stored for n in row if n and "X" not in n}


def keyed_calls(site: Site) -> dict[int, tuple[str | None, str | None, str | None, str | None]]:
    """Per call_id of analyst.calls: phone_number, redirecting_number, number_key, chain_key."""
    rows = query(
        site.settings.served_db,
        "SELECT call_id, phone_number, redirecting_number, number_key, chain_key FROM analyst.calls",
    )
    return {r[0]: r[1:] for r in rows}


def number_cells(site: Site, relation: str, numbers: set[str]) -> list[str]:
    """Cells of a served relation that are a number, its digits, or (text) contain a number."""
    number_digits = {digits(n) for n in numbers}
    con = duckdb.connect(str(site.settings.served_db), read_only=True)
    try:
        cursor = con.execute(f"SELECT * FROM {relation}")
        columns = [d[0] for d in cursor.description]
        rows = cursor.fetchall()
    finally:
        con.close()
    found = [f"{relation}: column {c}" for c in columns if "match" in c]
    for row in rows:
        for column, value in zip(columns, row, strict=True):
            text = "" if value is None else str(value)
            if text in numbers or text in number_digits or (isinstance(value, str) and any(n in text for n in numbers)):
                found.append(f"{relation}.{column}: {text}")
    return found


def test_no_analyst_view_holds_a_number_of_the_journal(published_site: Site) -> None:
    # External numbers: internal extensions ('202') are as short as a talk time or a piece of a chain key.
    numbers = {n for n in journal_numbers(published_site) if len(digits(n)) >= 6}
    assert len(numbers) > 50, "positive control: the journal has numbers"
    assert number_cells(published_site, "marts.fct_inbound_calls", numbers), "positive control: the marts have them"
    for view in analyst_views(published_site):
        assert number_cells(published_site, f"analyst.{view}", numbers) == [], view


def test_every_external_call_shows_the_display_form_and_a_keyed_hash(published_site: Site) -> None:
    salt = site_salt(published_site)
    assert re.fullmatch(r"[0-9a-f]{64}", salt), "256 random bits"
    raw = query(
        published_site.settings.raw_db,
        'SELECT "ID", "PhoneNumber", "RedirectingNumber", _is_private FROM journal WHERE "Internal" = 0',
    )
    calls = keyed_calls(published_site)
    checked = 0
    for call_id, number, redirecting, is_private in raw:
        shown, shown_redirecting, key, _ = calls[call_id]
        if is_private:
            assert (shown, shown_redirecting, key) == (None, None, None), call_id
            continue
        assert shown_redirecting == (display(redirecting) if redirecting else None), call_id
        if number is None:
            assert (shown, key) == (None, None), call_id
            continue
        checked += 1
        d = digits(number)
        assert shown == display(number) and shown != number, call_id
        assert key == number_key(salt, d), call_id
        unkeyed = {
            d,
            number,
            *(h(v.encode()).hexdigest()[:16] for h in (hashlib.sha256, hashlib.md5) for v in (d, number)),
        }
        assert key not in unkeyed, f"{call_id}: the key is the number or an unkeyed hash of it"
        assert key != number_key(salt + "0", d), "the salt changes the key"
    assert checked > 50
    # the caller's key of an inbound call is its first leg's
    con = duckdb.connect(str(published_site.settings.served_db), read_only=True)
    try:
        inbound = con.execute(
            "SELECT first_call_id, phone_number, number_key, is_private FROM analyst.inbound_calls"
        ).fetchall()
    finally:
        con.close()
    assert sum(1 for _, _, key, _ in inbound if key) > 20
    for first_call_id, shown, key, is_private in inbound:
        leg_shown, _, leg_key, _ = calls[first_call_id]
        assert (shown, key) == ((None, None) if is_private else (leg_shown, leg_key)), first_call_id


def test_one_key_per_number_and_one_number_per_key(published_site: Site) -> None:
    raw = query(
        published_site.settings.raw_db,
        'SELECT "ID", "PhoneNumber" FROM journal WHERE NOT _is_private AND "PhoneNumber" IS NOT NULL',
    )
    calls = keyed_calls(published_site)
    keys_of: dict[str, set[str]] = defaultdict(set)
    numbers_of: dict[str, set[str]] = defaultdict(set)
    calls_of: dict[str, int] = defaultdict(int)
    for call_id, number in raw:
        key = calls[call_id][2]
        assert key is not None, call_id
        keys_of[digits(number)].add(key)
        numbers_of[key].add(digits(number))
        calls_of[digits(number)] += 1
    assert all(len(k) == 1 for k in keys_of.values()), "every call of one number has the same key"
    assert all(len(n) == 1 for n in numbers_of.values()), "different numbers have different keys"
    assert len(keys_of) > 20 and max(calls_of.values()) >= 3, "positive control: numbers called repeatedly"


def test_analysts_find_the_marts_callbacks_by_number_key(published_site: Site) -> None:
    """The marts match callbacks on the number's digits; analysts, on number_key, get the same answer.
    (The demo policy truncates private numbers; under `keep` the marts also match private calls, which
    analysts see without a number and a key.)"""
    hours = load_policy(published_site.settings.effective_policy_path).callback.window_hours
    by_key = f"""
        WITH missed AS (
            SELECT chain_key, start_time_utc, number_key FROM analyst.inbound_calls
            WHERE is_missed AND NOT is_internal
        ),
        legs AS (
            SELECT chain_key, start_time_utc, number_key FROM analyst.calls
            WHERE number_key IS NOT NULL AND NOT is_internal AND (NOT is_inbound OR is_answered)
        )
        SELECT missed.chain_key, missed.number_key IS NOT NULL, count(legs.chain_key) > 0
        FROM missed LEFT JOIN legs
            ON legs.number_key = missed.number_key AND legs.chain_key <> missed.chain_key
            AND legs.start_time_utc > missed.start_time_utc
            AND legs.start_time_utc <= missed.start_time_utc + INTERVAL ({hours}) HOUR
        GROUP BY ALL ORDER BY 1
    """
    served = published_site.settings.served_db
    analysts = query(served, by_key)
    marts = query(served, "SELECT chain_key, is_callback_possible, is_called_back FROM marts.fct_callbacks ORDER BY 1")
    view = query(served, "SELECT chain_key, is_callback_possible, is_called_back FROM analyst.callbacks ORDER BY 1")
    assert analysts == marts == view
    assert {r[2] for r in marts} == {True, False}, "positive control: returned and unreturned calls"


def test_the_salt_stays_in_the_raw_store(published_site: Site) -> None:
    """Not in the served warehouse, the kept builds, Dagster's logs, dbt's compiled SQL or logs."""
    salt = site_salt(published_site)
    settings = published_site.settings
    hits = scan(settings.home, [salt])
    assert [h for h in hits if h.startswith(str(settings.raw_db))], "positive control: the scan finds it"
    assert [h for h in hits if not h.startswith(str(settings.raw_db))] == []
    assert not query(settings.served_db, "SELECT * FROM duckdb_columns() WHERE column_name ILIKE '%salt%'")
    needle = salt.encode()
    target = DBT_PROJECT_DIR / (os.environ.get("DBT_TARGET_PATH") or "target")
    files = [p for d in (target, DBT_PROJECT_DIR / "logs") if d.exists() for p in d.rglob("*")]
    assert files, "dbt wrote its artefacts here"
    for path in files:
        try:
            data = path.read_bytes() if path.is_file() else b""
        except OSError:  # another process's dbt run replaced it meanwhile
            continue
        assert needle not in data, path


@pytest.mark.slow
def test_keys_survive_a_rebuild_and_go_with_an_erasure(published_copy: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    from callsight.cli.main import main

    settings = published_copy.settings
    ((number,),) = query(
        settings.raw_db,
        'SELECT "PhoneNumber" FROM journal WHERE NOT _is_private AND "Internal" = 0 AND "PhoneNumber" IS NOT NULL '
        "GROUP BY 1 HAVING count(*) >= 2 ORDER BY count(*) DESC, 1 LIMIT 1",
    )
    numbered = 'SELECT "ID" FROM journal WHERE "PhoneNumber" IS NOT NULL'
    before, numbered_before = keyed_calls(published_copy), {r[0] for r in query(settings.raw_db, numbered)}
    erased_key = number_key(site_salt(published_copy), digits(number))
    assert sum(1 for *_, key, _ in before.values() if key == erased_key) >= 2

    monkeypatch.setenv("CALLSIGHT_ERASURE_KEY", "test-erasure-key-0123456789")
    assert main(["erase", "--phone", number]) == 0

    after, numbered_after = keyed_calls(published_copy), {r[0] for r in query(settings.raw_db, numbered)}
    scrubbed = numbered_before - numbered_after
    assert scrubbed and after.keys() == before.keys()
    for call_id, (shown, _, key, _) in after.items():
        if call_id in scrubbed:
            assert (shown, key) == (None, None), f"{call_id}: erased, no number and no key"
        else:
            assert key == before[call_id][2], f"{call_id}: the key is the same after the rebuild"
    assert erased_key not in {key for _, _, key, _ in after.values()}
    gone = f"SELECT count(*) FROM security.number_keys WHERE number_key = '{erased_key}'"
    assert query(settings.served_db, gone) == [(0,)]
