"""Nothing bad gets published: the quality checks block the publish in Dagster and in `callsight run`,
the served warehouse stays as it was, the admins get one mail each, and a stale warehouse is flagged."""

from __future__ import annotations

import hashlib
import re
import sqlite3
from datetime import date, datetime, time, timedelta

import dagster as dg
import duckdb
import pytest
import yaml

from callsight.cli.main import main
from callsight.definitions import FAILURE_SENSOR, FRESHNESS_JOB, NIGHTLY_JOB, build_definitions
from callsight.defs.notify import failure_report
from callsight.defs.publish.freshness import FRESHNESS_CHECK
from callsight.quality.suites import load_suites
from callsight.site.settings import Settings
from callsight.warehouse.build_file import prepare_build

from .conftest import Site, SmtpSink, facts_as_tables

pytestmark = pytest.mark.slow


def digest(site: Site) -> str:
    return hashlib.sha256(site.settings.served_db.read_bytes()).hexdigest()


def served_rows(site: Site) -> int:
    con = duckdb.connect(str(site.settings.served_db), read_only=True)
    try:
        return con.execute("SELECT count(*) FROM marts.fct_calls").fetchone()[0]
    finally:
        con.close()


def last_day(s: Settings) -> str:
    con = duckdb.connect(str(s.served_db), read_only=True)
    try:
        return str(con.execute("SELECT max(call_date) FROM marts.fct_calls").fetchone()[0])
    finally:
        con.close()


def check_keys(stage: str) -> set[dg.AssetCheckKey]:
    return {dg.AssetCheckKey(dg.AssetKey(list(s.asset)), s.name) for s in load_suites() if s.stage == stage}


def descendants(graph, key: dg.AssetKey) -> set[dg.AssetKey]:
    seen, todo = set(), [key]
    while todo:
        for child in graph.get(todo.pop()).child_keys:
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def test_the_checks_are_blocking_and_sit_between_extract_dbt_and_publish(published_copy: Site) -> None:
    defs = build_definitions(published_copy.settings)
    graph = defs.resolve_asset_graph()
    published = dg.AssetKey("published_warehouse")
    for stage in ("raw", "warehouse"):
        for key in check_keys(stage):
            assert key in graph.asset_check_keys and graph.get(key).blocking, key
            assert published in descendants(graph, key.asset_key), key
    # the raw checks gate dbt: the staging model of the journal is downstream of raw/journal
    assert dg.AssetKey(["staging", "stg_procall__calls"]) in graph.get(dg.AssetKey(["raw", "journal"])).child_keys
    fresh = dg.AssetCheckKey(published, FRESHNESS_CHECK)
    assert not graph.get(fresh).blocking
    assert defs.resolve_schedule_def("warehouse_freshness_hourly").cron_schedule == "30 * * * *"
    assert defs.resolve_sensor_def(FAILURE_SENSOR) is not None


def test_a_corrupted_build_is_not_published(published_copy: Site) -> None:
    """The build file is corrupted between dbt and the checks (a leg added, an old leg altered); then
    the checks and the publish run. The build, a copy of the served file, lists no weeks computed anew,
    so the fact suites validate every week: both corrupted legs are found."""
    s = published_copy.settings
    assert s.validated_rows_db.exists()
    before, rows = digest(published_copy), served_rows(published_copy)
    prepare_build(s.served_db, s.build_db)  # what the dbt asset starts from
    con = duckdb.connect(str(s.build_db))
    facts_as_tables(con)
    con.execute(
        "INSERT INTO marts.fct_calls SELECT * REPLACE (call_id + 1000000000 AS call_id, -30 AS talk_seconds) "
        "FROM marts.fct_calls WHERE NOT is_answered LIMIT 1"
    )
    con.execute(
        "UPDATE marts.fct_calls SET ring_seconds = -3 "
        "WHERE call_id = (SELECT min(call_id) FROM marts.fct_calls WHERE NOT is_answered)"
    )
    con.close()
    defs = build_definitions(s)
    job = defs.resolve_job_def(NIGHTLY_JOB).get_subset(
        asset_selection={dg.AssetKey("published_warehouse")}, asset_check_selection=check_keys("warehouse")
    )
    with dg.DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(instance=instance, raise_on_error=False, partition_key=last_day(s))
        report = failure_report(instance, result.run_id)
    assert not result.success
    materialized = {e.asset_key for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"}
    assert dg.AssetKey("published_warehouse") not in materialized
    assert report.failed_checks == ("marts/fct_calls: fct_calls", "marts/fct_calls: row_reconciliation")
    assert report.failed_expectations == (
        "fct_calls.fct_calls: expect_column_values_to_be_between(ring_seconds, min_value=0, max_value=86400): "
        f"1 of {rows + 1} rows unexpected",
        "fct_calls.fct_calls: expect_column_values_to_be_between(talk_seconds, min_value=0, max_value=86400): "
        f"1 of {rows + 1} rows unexpected",
        "row_reconciliation.row_counts: expect_column_pair_values_to_be_equal(fct_calls_rows, raw_journal_rows) "
        f"(published fact rows = raw journal rows): 1 of 1 rows unexpected "
        f"(fct_calls_rows={rows + 1}, raw_journal_rows={rows})",
    )
    assert not report.published
    assert digest(published_copy) == before, "the served warehouse must stay byte-identical"
    assert served_rows(published_copy) == rows, "and still be queryable"
    assert s.build_db.exists(), "the rejected build is left for inspection; the next run starts afresh"


def test_callsight_run_fails_naming_the_expectation_and_mails_each_admin_once(
    published_copy: Site, smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    s = published_copy.settings
    # Two admins with an address, one without.
    path = s.effective_directory_path
    directory = yaml.safe_load(path.read_text(encoding="utf-8"))
    users = directory["users"]
    admins = [users[0], users[1], users[2]]
    admins[2].pop("email", None)
    directory["admins"] = [u["username"] for u in admins]
    path.write_text(yaml.safe_dump(directory, allow_unicode=True), encoding="utf-8")
    expected_to = {admins[0]["email"], admins[1]["email"]}
    for key, value in smtp_sink.env().items():
        monkeypatch.setenv(key, value)
    # A leg that stops before it starts lands in the raw store outside any extract window (an older
    # tool wrote it, or a restore went wrong) but within retention; it carries data that must never
    # reach a mail.
    needles = ["+49 30 5550147", "Erika Vertraulich", "Geheim und Partner GmbH", "Kündigung besprechen"]
    last = date.fromisoformat(last_day(s))
    start = datetime.combine(last - timedelta(days=s.lookback_days + 20), time(10, 0))
    con = duckdb.connect(str(s.raw_db))
    con.execute(
        'INSERT INTO journal SELECT * REPLACE ("ID" + 1000000000 AS "ID", '
        '? AS "StartTime", ? AS "StopTime", '
        'NULL AS "ConnectTime", NULL AS "DisconnectTime", ? AS "PhoneNumber", ? AS "ContactName", '
        '? AS "ContactCompany", ? AS "Subject") FROM journal LIMIT 1',
        [start, start - timedelta(minutes=2), *needles],
    )
    con.close()
    # The source holds that leg too: a day whose row count agrees between the source and the raw store is
    # not read again (issue 26), so the raw store keeps the leg as it is.
    src = sqlite3.connect(s.demo_journal_path)
    src.row_factory = sqlite3.Row
    row = dict(src.execute("SELECT * FROM journal LIMIT 1").fetchone())
    row.update(ID=row["ID"] + 1000000000, StartTime=str(start), StopTime=str(start - timedelta(minutes=2)))
    row.update(ConnectTime=None, DisconnectTime=None, PhoneNumber=needles[0], ContactName=needles[1])
    row.update(ContactCompany=needles[2], Subject=needles[3])
    src.execute(f"INSERT INTO journal ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))
    src.commit()
    src.close()
    before = digest(published_copy)
    capsys.readouterr()

    assert main(["run", "--date", last.isoformat()]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "The last good warehouse keeps serving" in out
    assert (
        "raw_journal.journal: expect_column_pair_values_a_to_be_greater_than_b(StopTime_unfolded, StartTime, "
        "or_equal=True, ignore_row_if='either_value_is_missing') (stop >= start): 1 of" in out
    )
    assert "failure mail sent to 2 admin(s)" in out
    assert digest(published_copy) == before
    assert served_rows(published_copy) > 0

    mails = smtp_sink.messages()
    assert sorted(m["To"] for m in mails) == sorted(expected_to)
    journal = sqlite3.connect(s.demo_journal_path)
    private = {
        v
        for col in ("PhoneNumber", "ContactName", "ContactCompany", "Subject")
        for (v,) in journal.execute(f"SELECT DISTINCT {col} FROM journal WHERE {col} IS NOT NULL")
        if len(v) >= 6
    }
    for mail in mails:
        body = mail.get_payload(decode=True).decode("utf-8")
        # the site's language (CALLSIGHT_LOCALE, German by default) for admins without a locale of their own
        assert "Nachtlauf fehlgeschlagen" in mail["Subject"]
        assert (
            "raw_journal.journal: expect_column_pair_values_a_to_be_greater_than_b(StopTime_unfolded, StartTime" in body
        )
        assert "Nichts wurde veröffentlicht" in body
        leaked = [v for v in [*needles, *private] if v in body or v in str(mail["Subject"])]
        assert leaked == [], leaked

    # Runs that Dagster launches (schedule, UI) are mailed by the run-failure sensor instead.
    run_id = next(line for line in out.splitlines() if "FAILED" in line).split()[2]
    defs = build_definitions(s)
    sensor = defs.resolve_sensor_def(FAILURE_SENSOR)
    with dg.DagsterInstance.get() as instance:
        run = instance.get_run_by_id(run_id)
        failure = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)[0].dagster_event
        context = dg.build_run_status_sensor_context(
            sensor_name=FAILURE_SENSOR, dagster_event=failure, dagster_instance=instance, dagster_run=run
        ).for_run_failure()
        sensor(context)
    again = smtp_sink.messages()[len(mails) :]
    assert sorted(m["To"] for m in again) == sorted(expected_to)
    assert all(run_id in m.get_payload(decode=True).decode("utf-8") for m in again)


def test_a_stale_warehouse_is_flagged(published_copy: Site) -> None:
    s = published_copy.settings
    defs = build_definitions(s)
    job = defs.resolve_job_def(FRESHNESS_JOB)
    key = dg.AssetCheckKey(dg.AssetKey("published_warehouse"), FRESHNESS_CHECK)

    def evaluate() -> dg.AssetCheckEvaluation:
        with dg.DagsterInstance.ephemeral() as instance:
            result = job.execute_in_process(instance=instance)
        (evaluation,) = result.get_asset_check_evaluations()
        assert evaluation.asset_check_key == key
        return evaluation

    assert evaluate().passed
    con = duckdb.connect(str(s.served_db))
    con.execute("UPDATE marts.build_info SET built_at = built_at - INTERVAL 37 HOUR")
    con.close()
    stale = evaluate()
    # 37 h back, plus the minutes the check itself took on a busy machine.
    hours = re.fullmatch(r"stale: published (\d+\.\d) h ago \(limit 36 h\)", stale.description)
    assert not stale.passed and hours and 37.0 <= float(hours.group(1)) < 38.0, stale.description
    assert timedelta(hours=s.stale_after_hours) == timedelta(hours=36)


def test_dq_docs_are_written_under_callsight_home_without_data_values(
    published_copy: Site, capsys: pytest.CaptureFixture
) -> None:
    from .privacy_scan import scan

    s = published_copy.settings
    assert main(["dq-docs"]) == 0
    out = capsys.readouterr().out
    total = sum(len(b.expectations) for x in load_suites() for b in x.batches)
    assert f"{total} of {total} expectations met" in out
    page = s.dq_docs_dir / "callsight.html"
    assert page.exists() and page.is_relative_to(s.home)
    html = page.read_text(encoding="utf-8")
    links = [line.split('href="')[1].split('"')[0] for line in html.split("<tr") if 'href="validations/' in line]
    assert len(links) == sum(len(x.batches) for x in load_suites())
    assert all((s.dq_docs_dir / link).exists() for link in links)
    # results are counts: no phone number, company or agent of the warehouse appears in the docs
    con = duckdb.connect(str(s.served_db), read_only=True)
    values = [
        v
        for (v,) in con.execute(
            "SELECT DISTINCT phone_number FROM marts.fct_calls WHERE length(phone_number) >= 8 UNION "
            "SELECT DISTINCT contact_company FROM marts.fct_calls WHERE contact_company IS NOT NULL UNION "
            "SELECT DISTINCT agent_username FROM marts.fct_calls"
        ).fetchall()
    ]
    con.close()
    assert len(values) > 20
    assert scan(s.dq_docs_dir, values) == []
