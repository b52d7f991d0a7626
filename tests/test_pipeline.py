"""End to end through Dagster: demo journal -> extract -> dbt -> publish, on temp DuckDB files."""

import hashlib
import shutil
import sqlite3
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from callsight.definitions import NIGHTLY_JOB, build_definitions
from callsight.defs.nightly import run_nightly
from callsight.journal.timezones import folds

from .conftest import END_DAY, Site
from .privacy_scan import scan

pytestmark = pytest.mark.slow


def served(site: Site, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(site.settings.served_db), read_only=True)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def content_tables(site: Site) -> list[tuple[str, str]]:
    """Served tables that two runs over the same data must agree on: all but build_info, audit_log,
    quarantine_summary and week_files (which record when and by which run it was built, or refused rows)."""
    tables = served(
        site,
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_name NOT IN ('build_info', 'audit_log', 'quarantine_summary', 'week_files') ORDER BY ALL",
    )
    assert len(tables) >= 10
    return tables


def week_files(site: Site) -> dict[tuple[str, date], str]:
    """(fact, week) -> the file the served warehouse reads for it."""
    return {(f, w): name for f, w, name in served(site, "SELECT fact, call_week, file FROM marts.week_files")}


def answered_external_leg(journal: sqlite3.Connection) -> dict:
    """A journal row (column -> value) of an answered external inbound call: a template for new legs."""
    journal.row_factory = sqlite3.Row
    try:
        return dict(
            journal.execute(
                "SELECT * FROM journal WHERE Outbound = 0 AND Internal = 0 AND PrivateCall = 0 "
                "AND DurationConnected > 0 LIMIT 1"
            ).fetchone()
        )
    finally:
        journal.row_factory = None


def mart_checksum(site: Site) -> str:
    """Content of every served table but those that record when and by which run it was built."""
    tables = content_tables(site)
    digest = hashlib.sha256()
    for schema, table in tables:
        digest.update(repr(served(site, f"SELECT * FROM {schema}.{table} ORDER BY ALL")).encode())
    return digest.hexdigest()


def test_definitions_load_with_lineage_and_schedule(site: Site) -> None:
    defs = build_definitions(site.settings)
    job = defs.resolve_job_def(NIGHTLY_JOB)
    assert job.partitions_def is not None
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {
        "raw/journal",
        "raw/directory_users",
        "marts/fct_calls",
        "security/viewer_agents",
        "published_warehouse",
    } <= keys
    fct = next(k for k in graph.get_all_asset_keys() if k.to_user_string() == "marts/fct_calls")
    pub = next(k for k in graph.get_all_asset_keys() if k.to_user_string() == "published_warehouse")
    assert fct in graph.get(pub).parent_keys
    upstream = {k.to_user_string() for k in graph.get(fct).parent_keys}
    # the changed weeks' legs and which weeks those are (the previous weeks' files are read by path)
    assert upstream == {"intermediate/int_call_legs_of_changed_weeks", "intermediate/int_weeks_changed"}, upstream
    schedule = defs.resolve_schedule_def("nightly_0200")
    assert schedule.cron_schedule == "0 2 * * *" and schedule.execution_timezone == "Europe/Berlin"


def test_nightly_run_publishes_a_warehouse_and_reruns_identically(site: Site) -> None:
    first = run_nightly(site.settings)
    assert first.success, first.failure
    src = sqlite3.connect(site.settings.demo_journal_path)
    n_source = src.execute("SELECT count(*) FROM journal").fetchone()[0]
    # the first run is the initial load: the whole source, as one Dagster partition range
    lo, hi = src.execute("SELECT min(date(StartTime)), max(date(StartTime)) FROM journal").fetchone()
    assert (first.first.isoformat(), first.last.isoformat()) == (lo, hi)
    assert served(site, "SELECT count(*) FROM marts.fct_calls") == [(n_source,)]
    schemas = {r[0] for r in served(site, "SELECT DISTINCT table_schema FROM information_schema.tables")}
    assert schemas == {"marts", "security", "analyst"}, "raw and staging are never served"
    # every directory user sees at least their own calls
    assert (
        served(site, "SELECT count(*) FROM security.viewer_agents WHERE viewer_username = agent_username")[0][0] == 20
    )
    before = mart_checksum(site)
    again = run_nightly(site.settings, first.first, first.last)
    assert again.success, again.failure
    assert mart_checksum(site) == before
    # a nightly partition (yesterday + look-back) on top changes nothing either
    nightly = run_nightly(site.settings, first.last, first.last)
    assert nightly.success and mart_checksum(site) == before
    # the checks recorded the incremental batches: the raw journal's and fct_callbacks' rows by content,
    # the two facts in week files by week (no rows); validated whole by the first run, and by the two
    # runs since only what had not passed (the weeks computed anew), the record written again
    with duckdb.connect(str(site.settings.validated_rows_db), read_only=True) as con:
        batches = con.execute("SELECT batch, fingerprint, validated_whole_at, written_at FROM batches").fetchall()
        assert sorted(b for b, *_ in batches) == [
            "fct_callbacks.fct_callbacks",
            "fct_calls.fct_calls",
            "fct_inbound_calls.fct_inbound_calls",
            "raw_journal.journal",
        ]
        assert all(whole < written for _, _, whole, written in batches)
        tables = {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        rows = {
            b: con.execute(f'SELECT sum(n) FROM "rows_{fp}"').fetchone()[0]
            for b, fp, *_ in batches
            if f"rows_{fp}" in tables
        }
        assert sorted(rows) == ["fct_callbacks.fct_callbacks", "raw_journal.journal"]
        assert rows["raw_journal.journal"] == n_source


def test_failed_runs_leave_the_served_warehouse_alone(published_copy: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    site, last = published_copy, END_DAY  # a site after its first run
    before = mart_checksum(site)
    served_bytes = site.settings.served_db.read_bytes()
    # 1. source unreachable: retried with backoff, then a clear failure
    monkeypatch.setenv("CALLSIGHT_JOURNAL_URL", f"sqlite:///{site.home}/missing/journal.sqlite")
    monkeypatch.setenv("CALLSIGHT_EXTRACT_RETRIES", "2")
    monkeypatch.setenv("CALLSIGHT_EXTRACT_RETRY_DELAY", "1")
    broken = site.settings.__class__.from_env()
    t0 = time.monotonic()
    failed = run_nightly(broken, last, last)
    assert not failed.success
    assert "journal database file" in failed.failure and "gave up after 2 retries" in failed.failure
    assert time.monotonic() - t0 >= 3  # waited 1 s, then 2 s
    assert not (site.home / "missing").exists(), "an unreachable SQLite journal must not be created"
    assert site.settings.served_db.read_bytes() == served_bytes
    monkeypatch.delenv("CALLSIGHT_JOURNAL_URL")
    # 2. a bad directory is refused before anything is written
    d = site.settings.effective_directory_path
    d.write_text(d.read_text(encoding="utf-8") + "\nbogus_key: 1\n", encoding="utf-8")
    raw_bytes = site.settings.raw_db.read_bytes()
    from callsight.site.yaml_config import ConfigError

    with pytest.raises(ConfigError, match="bogus_key"):
        run_nightly(site.settings, last, last)
    assert site.settings.raw_db.read_bytes() == raw_bytes
    assert mart_checksum(site) == before


def test_a_damaged_week_file_is_reported_then_rebuilt_from_the_raw_store(published_copy: Site) -> None:
    """A truncated week file (a full disk, a bad copy) fails the charts of its week: the health probe names
    it, a publish refuses any build that lists it, and the next night rebuilds every week from the raw
    store instead of continuing from it (continuing would fail reading it)."""
    from callsight.operations.health import State
    from callsight.operations.probes import run_probes
    from callsight.publish.builds import PublishError, verify

    site, settings = published_copy, published_copy.settings
    before, files = mart_checksum(site), week_files(site)
    damaged = sorted(name for (fact, _), name in files.items() if fact == "fct_calls")[0]
    path = settings.parts_dir / damaged
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    probe = next(p for p in run_probes(settings) if p.name == "warehouse")
    assert probe.state == State.CRITICAL and damaged in probe.message and "--full-refresh" in probe.message
    with pytest.raises(PublishError, match=f"week files damaged: {damaged}: not readable"):
        verify(settings.served_db, settings.parts_dir)
    assert run_nightly(settings, END_DAY, END_DAY).success
    assert mart_checksum(site) == before
    assert set(week_files(site)) == set(files) and not set(week_files(site).values()) & set(files.values())
    assert next(p for p in run_probes(settings) if p.name == "warehouse").state == State.OK


def test_a_home_moved_by_hand_is_reported_then_served_from_its_new_place(
    published_copy: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The views name their week files by path: a home moved by hand (to a bigger disk) serves views that
    read the old place. The health probe says so; a rollback and the next night's prune point a kept build
    at the new place instead of refusing or deleting it; the next night serves the new place's files."""
    from callsight.operations.health import State
    from callsight.operations.probes import run_probes
    from callsight.publish.builds import rollback
    from callsight.site.home import kept_builds

    site = published_copy
    assert run_nightly(site.settings, END_DAY, END_DAY).success  # the first build is kept now
    before = mart_checksum(site)
    moved = tmp_path / "bigger-disk" / "callsight"
    moved.parent.mkdir()
    shutil.move(site.home, moved)
    monkeypatch.setenv("CALLSIGHT_HOME", str(moved))
    monkeypatch.setenv("DAGSTER_HOME", str(moved / "dagster"))
    here = Site(moved, {**site.env, "CALLSIGHT_HOME": str(moved)})
    settings = here.settings  # not the process's environment: the first run exported its paths there
    with pytest.raises(duckdb.IOException):  # what every chart meets
        served(here, "SELECT count(*) FROM marts.fct_calls")
    probe = next(p for p in run_probes(settings) if p.name == "warehouse")
    assert probe.state == State.CRITICAL, probe
    assert f"marts.fct_calls reads files under {site.home}/warehouse/parts" in probe.message
    assert "moved" in probe.message and "`callsight run`" in probe.message
    # A rollback serves the kept build read from here (and keeps the served one, still misplaced).
    (kept,) = kept_builds(settings.served_db)
    rollback(settings.served_db, kept.name)
    assert served(here, "SELECT count(*) FROM marts.fct_calls")[0][0] > 0
    assert len(kept_builds(settings.served_db)) == 1
    # The next night keeps that kept build (pointed here, not deleted as unreadable) and serves from here.
    assert run_nightly(settings, END_DAY, END_DAY).success
    assert mart_checksum(here) == before
    assert next(p for p in run_probes(settings) if p.name == "warehouse").state == State.OK
    kept = kept_builds(settings.served_db)
    assert len(kept) == 2
    for build in kept:
        with duckdb.connect(str(build), read_only=True) as con:
            assert con.execute("SELECT count(*) FROM marts.fct_calls").fetchone()[0] > 0


def test_no_cleartext_private_data_in_any_file(tmp_path: Path, site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    # The PBX's journal is not ours: move it outside CALLSIGHT_HOME, then scan everything we wrote.
    source = tmp_path / "pbx" / "journal.sqlite"
    source.parent.mkdir()
    shutil.move(site.settings.demo_journal_path, source)
    monkeypatch.setenv("CALLSIGHT_JOURNAL_URL", f"sqlite:///{source}")
    settings = site.settings.__class__.from_env()
    assert run_nightly(settings).success
    con = sqlite3.connect(source)
    private = "(PrivateCall = 1 OR LineNumber = '+49 8151 3680-199')"

    def exclusive(col: str) -> set[str]:
        priv = {
            r[0]
            for r in con.execute(
                f"SELECT DISTINCT {col} FROM journal WHERE {private} AND {col} IS NOT NULL AND Internal = 0"
            )
        }
        public = {r[0] for r in con.execute(f"SELECT DISTINCT {col} FROM journal WHERE NOT {private}")}
        return priv - public

    needles = sorted(exclusive("PhoneNumber") | exclusive("ContactName") | exclusive("Subject"))
    assert len(needles) >= 5, needles
    assert scan(site.home, needles) == []
    # positive control: a non-private company does reach the warehouse and the scanner sees it
    company = con.execute(
        f"SELECT ContactCompany FROM journal WHERE NOT {private} AND ContactCompany IS NOT NULL LIMIT 1"
    ).fetchone()[0]
    assert scan(site.home, [company])


def test_an_incremental_night_equals_a_full_rebuild(site: Site) -> None:
    journal = sqlite3.connect(site.settings.demo_journal_path)
    last_day = journal.execute("SELECT max(date(StartTime)) FROM journal").fetchone()[0]
    held_back = journal.execute("SELECT * FROM journal WHERE date(StartTime) = ?", [last_day]).fetchall()
    journal.execute("DELETE FROM journal WHERE date(StartTime) = ?", [last_day])
    journal.commit()
    first = run_nightly(site.settings)
    assert first.success, first.failure
    # the night after: yesterday's calls arrive, a company is added to an older call, a call is deleted
    journal.executemany(f"INSERT INTO journal VALUES ({','.join('?' * 28)})", held_back)
    edited, deleted = journal.execute(
        "SELECT ID FROM journal WHERE Internal = 0 AND PrivateCall = 0 AND ContactCompany IS NULL "
        "AND date(StartTime) < ? ORDER BY StartTime DESC LIMIT 2",
        [last_day],
    ).fetchall()
    journal.execute("UPDATE journal SET ContactCompany = 'Nachgetragen GmbH' WHERE ID = ?", edited)
    journal.execute("DELETE FROM journal WHERE ID = ?", deleted)
    journal.commit()
    before = week_files(site)
    week = "date_trunc('week', call_date)::DATE"
    (deleted_week,) = served(site, f"SELECT {week} FROM marts.fct_calls WHERE call_id = {deleted[0]}")[0]
    nightly = run_nightly(site.settings, first.last, first.last)
    assert nightly.success, nightly.failure
    assert served(site, f"SELECT contact_company FROM marts.fct_calls WHERE call_id = {edited[0]}") == [
        ("Nachgetragen GmbH",)
    ]
    assert served(site, f"SELECT count(*) FROM marts.fct_calls WHERE call_id = {deleted[0]}") == [(0,)]
    n_source = journal.execute("SELECT count(*) FROM journal").fetchone()[0]
    assert served(site, "SELECT count(*) FROM marts.fct_calls") == [(n_source,)]
    # the night wrote the weeks it changed anew, and no other (publish/week_files.py); a call's week may
    # be the one before its changed leg's
    changed = {deleted_week} | {
        w
        for (w,) in served(
            site, f"SELECT {week} FROM marts.fct_calls WHERE call_date = ? OR call_id = ?", [last_day, edited[0]]
        )
    }
    now = week_files(site)
    rewritten = {(f, w) for (f, w), name in now.items() if name != before.get((f, w))}
    assert {w for f, w in rewritten if f == "fct_calls"} == changed
    inbound = {w for f, w in rewritten if f == "fct_inbound_calls"}
    assert inbound and inbound <= changed | {w - timedelta(days=7) for w in changed}
    assert len(rewritten) < len(before), "the other weeks' files stay as they were"
    # in each file the newest legs first: a call list's top rows are in its first row groups
    for name in now.values():
        stored = [
            r[0]
            for r in served(
                site,
                f"SELECT start_time_local FROM read_parquet('{site.settings.parts_dir / name}', "
                "file_row_number = true) ORDER BY file_row_number",
            )
        ]
        assert stored == sorted(stored, reverse=True), name
    incremental = mart_checksum(site)
    full = run_nightly(site.settings, first.last, first.last, full_refresh=True)
    assert full.success, full.failure
    assert mart_checksum(site) == incremental


def test_a_policy_change_needs_no_code_change(published_copy: Site) -> None:
    """Lowering the service-level threshold in the policy recomputes every call on the next run."""
    site = published_copy  # a site after its first run
    before = served(site, "SELECT count(*) FILTER (WHERE is_within_service_level) FROM marts.fct_inbound_calls")[0][0]
    policy = site.settings.effective_policy_path
    policy.write_text(policy.read_text().replace("threshold_seconds: 20", "threshold_seconds: 5"))
    again = run_nightly(site.settings, END_DAY, END_DAY)
    assert again.success, again.failure
    after, wrong = served(
        site,
        """
        SELECT count(*) FILTER (WHERE is_within_service_level),
               count(*) FILTER (WHERE is_within_service_level IS DISTINCT FROM
                                      coalesce(is_answered AND wait_seconds <= 5, false))
        FROM marts.fct_inbound_calls""",
    )[0]
    assert wrong == 0 and after < before
    assert served(site, "SELECT service_level_threshold_seconds FROM marts.build_info") == [(5,)]


def test_previous_builds_are_kept_and_can_be_rolled_back(published_copy: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    from callsight.cli.main import main
    from callsight.site.home import kept_builds

    site, last = published_copy, END_DAY  # a site after its first run
    monkeypatch.setenv("CALLSIGHT_KEEP_BUILDS", "2")
    settings = site.settings.__class__.from_env()
    assert kept_builds(settings.served_db) == []
    one = mart_checksum(site)
    journal = sqlite3.connect(settings.demo_journal_path)
    journal.execute("DELETE FROM journal WHERE date(StartTime) = ?", [last.isoformat()])
    journal.commit()
    assert run_nightly(settings, last, last).success
    two = mart_checksum(site)
    assert two != one and len(kept_builds(settings.served_db)) == 1
    assert main(["rollback"]) == 0  # back to the first build
    assert mart_checksum(site) == one
    assert main(["rollback"]) == 0  # a rollback is itself kept: forward again
    assert mart_checksum(site) == two
    assert main(["rollback", "no-such-build.duckdb"]) == 1
    for _ in range(2):
        assert run_nightly(settings, last, last).success
    assert len(kept_builds(settings.served_db)) == 2, "only the newest CALLSIGHT_KEEP_BUILDS builds are kept"


def test_a_call_across_the_repeated_autumn_hour_is_published_with_its_real_times(published_copy: Site) -> None:
    """When clocks go back, a call from 02:57 (summer time) to 02:02 (winter time) ends before it began on
    the wall clock. It passes the extract and the raw and warehouse checks, and the marts measure it on
    the instants it happened: 5 min 36 s, 14 s of ringing."""
    site = published_copy  # a site after its first run
    policy = site.settings.effective_policy_path
    policy.write_text(policy.read_text().replace("journal_days: 180", "journal_days: 400"))
    fold = folds("Europe/Berlin", END_DAY - timedelta(days=380), END_DAY)[-1]
    start, connect = fold.end - timedelta(seconds=174), fold.end - timedelta(seconds=160)
    stop = fold.start + timedelta(seconds=162)
    journal = sqlite3.connect(site.settings.demo_journal_path)
    leg = answered_external_leg(journal)
    call_id = journal.execute("SELECT max(ID) + 1 FROM journal").fetchone()[0]
    at = {k: t.strftime("%Y-%m-%d %H:%M:%S") for k, t in (("start", start), ("connect", connect), ("stop", stop))}
    leg |= {
        "ID": call_id,
        "TrackerID": f"fold-{call_id}",
        "StartTime": at["start"],
        "ConnectTime": at["connect"],
        "DisconnectTime": at["stop"],
        "StopTime": at["stop"],
        "DurationTotal": 336,
        "DurationConnected": 322,
    }
    journal.execute(f"INSERT INTO journal ({', '.join(leg)}) VALUES ({', '.join('?' * len(leg))})", list(leg.values()))
    journal.commit()
    run = run_nightly(site.settings, fold.start.date(), fold.start.date())
    assert run.success, run.failure
    raw = duckdb.connect(str(site.settings.raw_db), read_only=True)
    try:
        assert raw.execute("SELECT count(*) FROM quarantine WHERE source_id = ?", [str(call_id)]).fetchone() == (0,)
    finally:
        raw.close()
    start_utc = start - timedelta(seconds=fold.offset_before)  # the first pass
    stop_utc = stop - timedelta(seconds=fold.offset_after)  # the second
    assert served(
        site,
        f"SELECT start_time_utc, stop_time_utc, ring_seconds, talk_seconds, call_date FROM marts.fct_calls "
        f"WHERE call_id = {call_id}",
    ) == [(start_utc, stop_utc, 14, 322, fold.start.date())]
    assert (stop_utc - start_utc).total_seconds() == 336
    assert served(
        site, f"SELECT wait_seconds, is_answered FROM marts.fct_inbound_calls WHERE first_call_id = {call_id}"
    ) == [(14, True)]


def test_a_call_across_midnight_into_a_new_week_is_recomputed_when_only_its_later_leg_changes(
    published_copy: Site,
) -> None:
    """A call belongs to the week of its first leg (fct_inbound_calls). One that rings on Sunday 23:59:40
    and is answered by a colleague on Monday: when only the Monday leg changes, the night must write the
    Sunday's week of the calls anew too, or the call keeps its old wait (publish/week_files.py)."""
    site = published_copy
    sunday = END_DAY - timedelta(days=(END_DAY.isoweekday() % 7) or 7)
    monday = sunday + timedelta(days=1)
    assert sunday.isoweekday() == 7 and monday <= END_DAY
    journal = sqlite3.connect(site.settings.demo_journal_path)
    template = answered_external_leg(journal)
    first_id = journal.execute("SELECT max(ID) + 1 FROM journal").fetchone()[0]
    tracker = f"midnight-{first_id}"

    def leg(call_id: int, start: str, connect: str | None, stop: str, connected: int) -> dict:
        total = int((datetime.fromisoformat(stop) - datetime.fromisoformat(start)).total_seconds())
        return template | {
            "ID": call_id,
            "TrackerID": tracker,
            "StartTime": start,
            "ConnectTime": connect,
            "DisconnectTime": stop,
            "StopTime": stop,
            "DurationTotal": total,
            "DurationConnected": connected,
        }

    late, early = f"{sunday} 23:59:40", f"{monday} 00:00:10"
    legs = [
        leg(first_id, late, None, early, 0),
        leg(first_id + 1, early, f"{monday} 00:00:15", f"{monday} 00:02:00", 105),
    ]
    for row in legs:
        journal.execute(
            f"INSERT INTO journal ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values())
        )
    journal.commit()
    assert run_nightly(site.settings, sunday, monday).success
    query = f"SELECT call_date, wait_seconds, leg_count FROM marts.fct_inbound_calls WHERE chain_key = '{tracker}'"
    assert served(site, query) == [(sunday, 35, 2)]
    before = week_files(site)
    # only the Monday leg changes: answered 10 s later
    journal.execute(
        "UPDATE journal SET ConnectTime = ?, DurationConnected = 95 WHERE ID = ?", [f"{monday} 00:00:25", first_id + 1]
    )
    journal.commit()
    night = run_nightly(site.settings, monday, monday)
    assert night.success, night.failure
    assert served(site, query) == [(sunday, 45, 2)]
    sunday_week = sunday - timedelta(days=6)
    assert week_files(site)[("fct_inbound_calls", sunday_week)] != before[("fct_inbound_calls", sunday_week)]
    assert week_files(site)[("fct_calls", sunday_week)] == before[("fct_calls", sunday_week)], "no leg changed there"
    incremental = mart_checksum(site)
    assert run_nightly(site.settings, monday, monday, full_refresh=True).success
    assert mart_checksum(site) == incremental
