"""Great Expectations suites (data_quality/suites): definitions, the raw store after a real extract,
the published warehouse, and corruptions each suite must catch by name."""

from __future__ import annotations

import dataclasses
import shutil
import struct
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest
import yaml

from callsight.extract.run import extract
from callsight.journal.contract import JOURNAL_COLUMNS
from callsight.publish.freshness import ServedState, judge
from callsight.quality.results import describe
from callsight.quality.run import run_suites
from callsight.quality.suites import SuiteError, load_suites, parse_suite, partition_key
from callsight.quality.validation import part_queries, vectorisable
from callsight.site.policy import Policy
from callsight.site.settings import REPO_ROOT

from .conftest import Site, facts_as_tables
from .journals import DIRECTORY, WIN, row, write_journal


def failed_names(report) -> set[str]:
    return {f"{o.suite}.{o.batch}: {o.expectation}" for o in report.failed}


# ---- definitions -----------------------------------------------------------------------------------
def test_every_suite_is_a_valid_gx_suite_on_a_real_asset() -> None:
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    suites = load_suites()
    assert {s.name for s in suites} >= {"raw_journal", "extract_reconciliation", "fct_calls", "row_reconciliation"}
    for suite in suites:
        assert suite.stage == ("raw" if suite.asset[0] == "raw" else "warehouse"), suite.name
        for batch in suite.batches:
            for e in batch.expectations:
                # builds the GX expectation: an unknown type or argument raises here
                ExpectationConfiguration(type=e.type, kwargs=dict(e.kwargs)).to_domain_obj()


def _schema(suite: str, batch: str) -> list[str]:
    spec = next(s for s in load_suites() if s.name == suite)
    expectations = next(b for b in spec.batches if b.name == batch).expectations
    return next(e.kwargs["column_list"] for e in expectations if e.type.startswith("expect_table_columns"))


def test_expected_columns_match_the_extract_and_the_dbt_contracts() -> None:
    assert _schema("raw_journal", "columns") == [
        *JOURNAL_COLUMNS,
        "_is_private",
        "_row_hash",
        "_run_id",
        "_extracted_at",
    ]
    marts = sorted((REPO_ROOT / "dbt_project/models/marts").glob("*.yml"))
    models = {"models": [m for yml in marts for m in yaml.safe_load(yml.read_text(encoding="utf-8"))["models"]]}
    contract = {m["name"]: [c["name"] for c in m["columns"]] for m in models["models"]}
    for suite, batch, model in [
        ("fct_calls", "columns", "fct_calls"),
        ("fct_inbound_calls", "columns", "fct_inbound_calls"),
        ("fct_callbacks", "columns", "fct_callbacks"),
        ("dimensions", "dim_agent", "dim_agent"),
        ("dimensions", "dim_date", "dim_date"),
    ]:
        assert _schema(suite, batch) == contract[model], model


def test_a_bad_suite_is_refused_with_file_and_entry(tmp_path: Path) -> None:
    path = tmp_path / "broken.yml"
    good = {
        "suite": "s",
        "asset": "marts/fct_calls",
        "stage": "warehouse",
        "description": "d",
        "batches": [
            {
                "name": "b",
                "query": "SELECT 1 AS x",
                "expectations": [{"type": "expect_table_row_count_to_equal", "value": 1}],
            }
        ],
    }
    assert parse_suite(path, good).batches[0].expectations[0].kwargs == {"value": 1}
    with pytest.raises(SuiteError, match=r"broken\.yml: stage"):
        parse_suite(path, {**good, "stage": "sometimes"})
    no_type = {**good, "batches": [{**good["batches"][0], "expectations": [{"value": 1}]}]}
    with pytest.raises(SuiteError, match=r"broken\.yml: batch b: each expectation needs `type"):
        parse_suite(path, no_type)
    # an incremental batch validates some of its rows: its checks must add up over rows (a row count needs all)
    incremental = {**good["batches"][0], "incremental": True}
    with pytest.raises(SuiteError, match=r"broken\.yml: batch b: `incremental` needs row-wise expectations"):
        parse_suite(path, {**good, "batches": [incremental]})
    row_wise = {**incremental, "expectations": [{"type": "expect_column_values_to_not_be_null", "column": "x"}]}
    assert parse_suite(path, {**good, "batches": [row_wise]}).batches[0].incremental
    with pytest.raises(SuiteError, match=r"broken\.yml: batches\.0\.incremental: Input should be a valid boolean"):
        parse_suite(path, {**good, "batches": [{**row_wise, "incremental": {"stamp": "_extracted_at"}}]})
    # a batch by week is an incremental batch over one of the facts kept in week files
    assert parse_suite(path, {**good, "batches": [{**row_wise, "weeks": "fct_calls"}]}).batches[0].weeks == "fct_calls"
    with pytest.raises(SuiteError, match=r"broken\.yml: batch b: `weeks` is for an `incremental` batch"):
        parse_suite(path, {**good, "batches": [{**row_wise, "incremental": False, "weeks": "fct_calls"}]})
    with pytest.raises(SuiteError, match=r"broken\.yml: batches\.0\.weeks: Input should be 'fct_calls'"):
        parse_suite(path, {**good, "batches": [{**row_wise, "weeks": "dim_agent"}]})


def test_results_carry_counts_and_never_values() -> None:
    result = {"element_count": 9, "unexpected_count": 2, "partial_unexpected_list": ["+49 89 1234567", "Karl Kunde"]}
    text = describe("expect_column_values_to_be_in_set", {"column": "phone_number"}, result)
    assert text == "2 of 9 rows unexpected"
    schema = describe(
        "expect_table_columns_to_match_ordered_list", {"column_list": ["a", "b"]}, {"observed_value": ["a", "c"]}
    )
    assert schema == "missing columns ['b'], unexpected columns ['c']"
    assert (
        describe("expect_column_max_to_be_between", {}, {"observed_value": "Karl Kunde"}) == "observed value not shown"
    )


def test_narrow_integers_are_widened_for_gx_and_keep_their_values(tmp_path: Path) -> None:
    """DuckDB's INTEGER/SMALLINT arrive as int32/int16, which GX checks one Python call per value."""
    con = duckdb.connect()
    frame = con.execute(
        "SELECT CAST(x - 2 AS INTEGER) AS i, CAST(x AS SMALLINT) AS s, CAST(x AS UTINYINT) AS u, x AS b,"
        " x / 2 AS f, 'v' || x AS t, x > 2 AS flag FROM range(5) AS r(x)"
    ).df()
    out = vectorisable(frame)
    assert [str(out[c].dtype) for c in ("i", "s", "u", "b")] == ["int64"] * 4
    assert all(out[c].dtype == frame[c].dtype for c in ("f", "t", "flag"))
    assert all((out[c] == frame[c]).all() for c in frame.columns)
    assert out["i"].tolist() == [-2, -1, 0, 1, 2]

    # with NULLs DuckDB hands them over as pandas' nullable Int32/UInt8 (GX: one Python call per value):
    # float64 with NaN, exact; a nullable BIGINT stays (a double would round it)
    nullable = con.execute(
        "SELECT CASE WHEN x <> 2 THEN CAST(x * 1000000 - 2147483648 AS INTEGER) END AS i,"
        " CASE WHEN x <> 2 THEN CAST(x AS UTINYINT) END AS u,"
        " CASE WHEN x <> 2 THEN 9007199254740993 + x END AS big FROM range(5) AS r(x)"
    ).df()
    assert [str(nullable[c].dtype) for c in ("i", "u", "big")] == ["Int32", "UInt8", "Int64"]
    out = vectorisable(nullable)
    assert [str(out[c].dtype) for c in ("i", "u", "big")] == ["float64", "float64", "Int64"]
    assert out["i"].isna().tolist() == [False, False, True, False, False]
    assert out["i"].dropna().astype("int64").tolist() == nullable["i"].dropna().astype("int64").tolist()
    assert out["i"].iloc[0] == -2147483648 and out["big"].iloc[4] == 9007199254740997

    # and a range check on such a column still finds the rows outside the range
    db = tmp_path / "w.duckdb"
    with duckdb.connect(str(db)) as w:
        w.execute("CREATE TABLE t AS SELECT CAST(x AS INTEGER) AS secs FROM range(-3, 10) AS r(x)")
        w.execute(
            "CREATE TABLE n AS SELECT CASE WHEN x % 4 <> 0 THEN CAST(x AS INTEGER) END AS secs"
            " FROM range(-3, 10) AS r(x)"
        )
    raw = tmp_path / "raw.duckdb"
    duckdb.connect(str(raw)).close()
    suite = parse_suite(
        tmp_path / "s.yml",
        {
            "suite": "probe",
            "asset": "marts/t",
            "stage": "warehouse",
            "description": "probe",
            "batches": [
                {
                    "name": "t",
                    "query": "SELECT secs FROM t",
                    "expectations": [
                        {"type": "expect_column_values_to_be_between", "column": "secs", "min_value": 0, "max_value": 5}
                    ],
                },
                {
                    "name": "n",
                    "query": "SELECT secs FROM n",
                    "expectations": [
                        {
                            "type": "expect_column_values_to_be_between",
                            "column": "secs",
                            "min_value": 0,
                            "max_value": 5,
                        },
                        {"type": "expect_column_values_to_not_be_null", "column": "secs"},
                    ],
                },
            ],
        },
    )
    plain, nullable_range, nulls = run_suites([suite], raw, db).results[0].outcomes
    assert not plain.success and plain.detail == "7 of 13 rows unexpected"
    # NULLs are missing values, not out of range: -3, -2, -1, 6, 7, 9 are; 0, 4, 8 are NULL
    assert not nullable_range.success and nullable_range.detail == "6 of 13 rows unexpected"
    assert not nulls.success and nulls.detail == "3 of 13 rows unexpected"


def test_a_failing_query_fails_its_expectations_without_quoting_data(tmp_path: Path) -> None:
    raw_db = tmp_path / "raw.duckdb"
    duckdb.connect(str(raw_db)).close()
    data = {
        "suite": "probe",
        "asset": "raw/journal",
        "stage": "raw",
        "description": "d",
        "batches": [
            {
                "name": "cast",
                "query": "SELECT CAST('Karl Kunde' AS INTEGER) AS x",
                "expectations": [{"type": "expect_table_row_count_to_equal", "value": 1}],
            },
            {
                "name": "missing",
                "query": "SELECT * FROM raw.nowhere",
                "expectations": [{"type": "expect_table_row_count_to_equal", "value": 0}],
            },
        ],
    }
    report = run_suites([parse_suite(tmp_path / "probe.yml", data)], raw_db)
    assert [o.detail for o in report.failed] == [
        "query failed: ConversionException",
        "query failed: CatalogException: Catalog Error: Table with name nowhere does not exist!",
    ]


def test_freshness_is_judged_on_the_publish_time() -> None:
    from datetime import UTC

    now = datetime(2026, 11, 30, 2, 30, tzinfo=UTC)
    limit = timedelta(hours=36)
    assert judge(ServedState(now - timedelta(hours=35), None), now, limit).fresh
    stale = judge(ServedState(now - timedelta(hours=37), None), now, limit)
    assert not stale.fresh and stale.reason.startswith("stale: published 37.0 h ago")
    assert not judge(ServedState(None, None), now, limit).fresh


# ---- the raw store after a real extract --------------------------------------------------------------
def test_raw_suites_reconcile_a_real_extract_and_catch_tampering(tmp_path: Path) -> None:
    rows = [row(i, f"2026-03-{2 + i % 20:02d} 09:00:00") for i in range(1, 40)]
    rows += [
        row(100, "2026-03-05 09:00:00", StopTime="2026-03-05 08:00:00"),  # quarantined: stop before start
        row(101, "2026-03-05 09:00:00", DurationTotal=-4),  # quarantined: negative duration
        row(102, "2026-03-05 25:99:00"),  # quarantined: unparseable start
    ]
    source = write_journal(tmp_path / "journal.sqlite", rows)
    raw_db = tmp_path / "journal.duckdb"
    stats = extract(source, raw_db, WIN, DIRECTORY, Policy(), "run-1")
    assert (stats.source_rows, stats.loaded_rows, stats.quarantined_rows) == (42, 39, 3)
    raw_suites = [s for s in load_suites() if s.stage == "raw"]
    ok = run_suites(raw_suites, raw_db)
    assert ok.success, [str(o) for o in ok.failed]
    assert ok.expectation_count == sum(len(b.expectations) for s in raw_suites for b in s.batches)

    # A row slipped into the window behind the extract's back: the log no longer matches the store.
    slipped = tmp_path / "slipped.duckdb"
    shutil.copy(raw_db, slipped)
    con = duckdb.connect(str(slipped))
    con.execute('INSERT INTO journal SELECT * REPLACE ("ID" + 1000 AS "ID") FROM journal LIMIT 1')
    con.close()
    report = run_suites(raw_suites, slipped)
    assert failed_names(report) == {
        "extract_reconciliation.latest_extract_run: expect_column_pair_values_to_be_equal(loaded_rows, "
        "journal_rows_in_window)",
        "extract_reconciliation.latest_extract_run: expect_column_pair_values_to_be_equal(source_rows, "
        "recounted_source_rows)",
        # over the whole source too: one row more than the source has
        "extract_reconciliation.whole_source: expect_column_values_to_be_between(unaccounted_rows, min_value=0, "
        "max_value=0)",
        "extract_reconciliation.whole_source: expect_column_pair_values_to_be_equal(source_placed, stored_placed)",
    }
    assert "loaded_rows=39, journal_rows_in_window=40" in str(report.failed[0])
    assert "(unaccounted_rows=-1)" in str(report.failed[2])

    # A leg that stops before it starts, written outside any extract window (the extract never sees it).
    bad = tmp_path / "bad.duckdb"
    shutil.copy(raw_db, bad)
    con = duckdb.connect(str(bad))
    con.execute(
        'INSERT INTO journal SELECT * REPLACE ("ID" + 2000 AS "ID", TIMESTAMP \'2025-01-02 10:00:00\' AS "StartTime", '
        'TIMESTAMP \'2025-01-02 09:00:00\' AS "StopTime", NULL AS "ConnectTime", NULL AS "DisconnectTime") '
        "FROM journal LIMIT 1"
    )
    con.close()
    report = run_suites(raw_suites, bad)
    stop_before_start = (
        "raw_journal.journal: expect_column_pair_values_a_to_be_greater_than_b(StopTime_unfolded, StartTime, "
        "or_equal=True, ignore_row_if='either_value_is_missing') (stop >= start)"
    )
    assert [str(o) for o in report.failed] == [f"{stop_before_start}: 1 of 40 rows unexpected"]

    # Berlin clocks went back at 03:00 on 26 October 2025: a leg from 02:57 summer time to 02:02 winter
    # time (connected 02:59, disconnected 02:01) is in order; a stop at 01:58 is not, nor is it in New York.
    def with_leg(name: str, start: str, stop: str, connect: str | None = None, disconnect: str | None = None) -> Path:
        path = tmp_path / f"{name}.duckdb"
        shutil.copy(raw_db, path)
        con = duckdb.connect(str(path))
        con.execute(
            'INSERT INTO journal SELECT * REPLACE ("ID" + 3000 AS "ID", CAST(? AS TIMESTAMP) AS "StartTime", '
            'CAST(? AS TIMESTAMP) AS "StopTime", CAST(? AS TIMESTAMP) AS "ConnectTime", '
            'CAST(? AS TIMESTAMP) AS "DisconnectTime") FROM journal LIMIT 1',
            [start, stop, connect, disconnect],
        )
        con.close()
        return path

    folded = with_leg(
        "folded", "2025-10-26 02:57:06", "2025-10-26 02:02:42", "2025-10-26 02:59:00", "2025-10-26 02:01:00"
    )
    ok = run_suites(raw_suites, folded, timezone="Europe/Berlin")
    assert ok.success, [str(o) for o in ok.failed]
    assert [str(o) for o in run_suites(raw_suites, folded, timezone="America/New_York").failed] == [
        f"{stop_before_start}: 1 of 40 rows unexpected",
        "raw_journal.journal: expect_column_pair_values_a_to_be_greater_than_b(DisconnectTime_unfolded, ConnectTime, "
        "or_equal=True, ignore_row_if='either_value_is_missing') (connect <= disconnect): 1 of 40 rows unexpected",
    ]
    too_early = with_leg("too_early", "2025-10-26 02:57:06", "2025-10-26 01:58:00")
    report = run_suites(raw_suites, too_early, timezone="Europe/Berlin")
    assert [str(o) for o in report.failed] == [f"{stop_before_start}: 1 of 40 rows unexpected"]


def test_nightly_raw_checks_validate_the_legs_that_have_not_passed(tmp_path: Path) -> None:
    """The raw journal's batch is incremental: after a real extract its legs are validated once, then the
    legs a later extract adds or edits, with the legs sharing their ID, and a leg added, copied or changed
    behind the extract's back the same night."""

    def legs(n: int, edited: int = 0) -> list[dict]:
        return [
            row(i, f"2026-03-{2 + i % 20:02d} 09:00:00", DurationTotal=31 if i == edited else 30)
            for i in range(1, n + 1)
        ]

    raw_db, record = tmp_path / "journal.duckdb", tmp_path / "validated_rows.duckdb"
    extract(write_journal(tmp_path / "j1.sqlite", legs(39)), raw_db, WIN, DIRECTORY, Policy(), "run-1")
    raw_suites = [s for s in load_suites() if s.stage == "raw"]
    night = datetime(2026, 3, 31, 2, 0)
    unique, not_null = "expect_column_values_to_be_unique(ID)", "expect_column_values_to_not_be_null(ID)"
    note = " (rows new or changed since they last passed)"

    def check(day: int):
        return run_suites(
            raw_suites,
            raw_db,
            timezone="Europe/Berlin",
            incremental=True,
            now=night + timedelta(days=day),
            record_db=record,
        )

    def detail(report, expectation: str) -> str:
        return next(o.detail for o in report.result("raw_journal").outcomes if o.expectation == expectation)

    def failed(report) -> list[str]:
        return [f"{o.expectation}: {o.detail}" for o in report.failed]

    def tamper(sql: str) -> None:
        with duckdb.connect(str(raw_db)) as con:
            con.execute(sql)

    first = check(0)
    assert first.success and detail(first, unique) == "0 of 39 rows unexpected"  # all of them
    assert detail(check(1), unique) == f"0 of 0 rows unexpected{note}"
    # A second extract edits one leg and adds one: those two are validated.
    extract(write_journal(tmp_path / "j2.sqlite", legs(40, edited=7)), raw_db, WIN, DIRECTORY, Policy(), "run-2")
    second = check(2)
    assert second.success and detail(second, not_null) == f"0 of 2 rows unexpected{note}"

    # A leg with the ID of an old one (outside the extract's window): both legs are validated, the
    # duplicate is found, and nothing is recorded, so the next night finds it again.
    tamper(
        "INSERT INTO journal SELECT * REPLACE (TIMESTAMP '2026-04-30 23:00:00' AS _extracted_at, "
        'TIMESTAMP \'2025-01-02 10:00:00\' AS "StartTime") FROM journal WHERE "ID" = 3'
    )
    for day in (3, 4):
        assert failed(check(day)) == [f"{unique}: 2 of 2 rows unexpected{note}"]
    tamper("DELETE FROM journal WHERE _extracted_at = TIMESTAMP '2026-04-30 23:00:00'")
    # A leg added with an old stamp (a restore gone wrong), and one changed in place keeping its stamp:
    # both found the same night.
    tamper(
        'INSERT INTO journal SELECT * REPLACE (9999 AS "ID", TIMESTAMP \'2025-01-02 10:00:00\' AS "StartTime", '
        'TIMESTAMP \'2025-01-02 09:00:00\' AS "StopTime") FROM journal WHERE "ID" = 8'
    )
    tamper('UPDATE journal SET "Outbound" = 7 WHERE "ID" = 5')
    stop = (
        "expect_column_pair_values_a_to_be_greater_than_b(StopTime_unfolded, StartTime, or_equal=True, "
        "ignore_row_if='either_value_is_missing')"
    )
    outbound = "expect_column_values_to_be_in_set(Outbound, value_set=[0, 1])"
    assert failed(check(4)) == [f"{outbound}: 1 of 2 rows unexpected{note}", f"{stop}: 1 of 2 rows unexpected{note}"]
    # An exact copy of a leg: more legs with its content than passed; found by its ID (and, being in the
    # extract's window, by the extract's reconciliation).
    tamper('DELETE FROM journal WHERE "ID" = 9999')
    tamper('UPDATE journal SET "Outbound" = 0 WHERE "ID" = 5')
    tamper('INSERT INTO journal SELECT * FROM journal WHERE "ID" = 11')
    # (and leg 5, mended: its content left the record while the leg was changed)
    assert f"{unique}: 2 of 3 rows unexpected{note}" in failed(check(5))
    tamper('DELETE FROM journal WHERE "ID" = 11 AND rowid = (SELECT max(rowid) FROM journal)')
    mended = check(5)
    assert mended.success and detail(mended, not_null) == f"0 of 1 rows unexpected{note}"
    assert detail(check(6), not_null) == f"0 of 0 rows unexpected{note}"


def test_nightly_checks_by_content_validate_the_rows_that_have_not_passed(tmp_path: Path) -> None:
    """An incremental batch (`incremental: true`, known by content) validates the rows whose content has not
    passed yet and the rows sharing their key: new rows, an old row altered in place or copied, an old
    key given to a new row; what passed is recorded in its own file; every row again when the whole
    batch passed more than REVALIDATE_AFTER ago, in another time zone, without the record, or with a
    damaged one."""
    from callsight.quality.validated_rows import REVALIDATE_AFTER, ROW_HASH_SQL

    warehouse, record = tmp_path / "build.duckdb", tmp_path / "state" / "validated_rows.duckdb"
    raw_db = tmp_path / "journal.duckdb"
    duckdb.connect(str(raw_db)).close()

    def sql(statement: str) -> None:
        with duckdb.connect(str(warehouse)) as con:
            con.execute(statement)

    sql("CREATE SCHEMA marts")
    sql("CREATE TABLE marts.legs AS SELECT range AS id, range % 7 AS v, 'x' || range AS label FROM range(1, 41)")
    suite = parse_suite(
        tmp_path / "legs.yml",
        {
            "suite": "legs",
            "asset": "marts/legs",
            "stage": "warehouse",
            "description": "d",
            "batches": [
                {
                    "name": "legs",
                    "query": "SELECT id, v FROM marts.legs",
                    "incremental": True,
                    "expectations": [
                        {"type": "expect_column_values_to_not_be_null", "column": "id"},
                        {"type": "expect_column_values_to_be_unique", "column": "id"},
                        {"type": "expect_column_values_to_be_between", "column": "v", "min_value": 0, "max_value": 9},
                    ],
                }
            ],
        },
    )
    night = datetime(2026, 3, 31, 2, 0)
    note = " (rows new or changed since they last passed)"
    unique, between = (
        "expect_column_values_to_be_unique(id)",
        "expect_column_values_to_be_between(v, min_value=0, max_value=9)",
    )

    def check(when: datetime, timezone: str = "Europe/Berlin", record_db: Path | None = record):
        return run_suites(
            [suite], raw_db, warehouse, timezone=timezone, incremental=True, now=when, record_db=record_db
        )

    def details(report) -> dict[str, str]:
        return {o.expectation: o.detail for o in report.result("legs").outcomes}

    def recorded_tables() -> list[str]:
        with duckdb.connect(str(record)) as con:
            return [t for (t,) in con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()]

    first = check(night)
    assert first.success and details(first)[unique] == "0 of 40 rows unexpected"  # every row, no note
    assert len(recorded_tables()) == 2  # the batches' table and this batch's rows
    assert details(check(night + timedelta(days=1)))[unique] == f"0 of 0 rows unexpected{note}"
    # Columns the batch does not read change nothing; new rows are validated.
    sql("UPDATE marts.legs SET label = 'y'")
    sql("INSERT INTO marts.legs VALUES (41, 1, 'z'), (42, 2, 'z')")
    assert details(check(night + timedelta(days=2)))[unique] == f"0 of 2 rows unexpected{note}"

    # An old row altered in place (a build touching what it should not): found, night after night. A
    # row that goes that night (expired) leaves the record although the batch failed.
    with duckdb.connect(str(warehouse), read_only=True) as con:
        (expired,) = con.execute(f"SELECT {ROW_HASH_SQL} FROM (SELECT id, v FROM marts.legs WHERE id = 6)").fetchone()
    assert struct.pack("<Q", expired) in record.read_bytes()  # positive control
    sql("UPDATE marts.legs SET v = 12 WHERE id = 5")
    sql("DELETE FROM marts.legs WHERE id = 6")
    for day in (3, 4):
        assert [f"{o.expectation}: {o.detail}" for o in check(night + timedelta(days=day)).failed] == [
            f"{between}: 1 of 1 rows unexpected{note}"
        ]
        assert struct.pack("<Q", expired) not in record.read_bytes()
    sql("UPDATE marts.legs SET v = 5 WHERE id = 5")
    sql("INSERT INTO marts.legs VALUES (6, 6, 'y')")  # back, and due again
    # An exact copy of an old row: its content has more rows than passed; the key finds both copies.
    sql("INSERT INTO marts.legs SELECT * FROM marts.legs WHERE id = 8")
    assert [f"{o.expectation}: {o.detail}" for o in check(night + timedelta(days=4)).failed] == [
        f"{unique}: 2 of 4 rows unexpected{note}"  # and rows 5 and 6: their content left the record
    ]
    sql("DELETE FROM marts.legs WHERE id = 8 AND label = 'y' AND rowid = (SELECT max(rowid) FROM marts.legs)")
    # A new row with an old row's key: the old row is validated with it.
    sql("INSERT INTO marts.legs VALUES (9, 6, 'n')")
    assert [f"{o.expectation}: {o.detail}" for o in check(night + timedelta(days=4)).failed] == [
        f"{unique}: 2 of 4 rows unexpected{note}"
    ]
    sql("DELETE FROM marts.legs WHERE label = 'n'")
    mended = check(night + timedelta(days=4, hours=1))
    assert mended.success and details(mended)[unique] == f"0 of 2 rows unexpected{note}"  # rows 5 and 6

    # Every row on the seventh night after the whole batch last passed, also when that run starts a
    # little earlier in the day, when at least half the rows are due, and without the record.
    seventh = night + REVALIDATE_AFTER + timedelta(minutes=1)
    assert details(check(seventh - timedelta(minutes=2)))[unique] == f"0 of 0 rows unexpected{note}"
    assert details(check(seventh))[unique] == "0 of 42 rows unexpected"
    assert details(check(seventh + timedelta(days=1)))[unique] == f"0 of 0 rows unexpected{note}"
    sql("INSERT INTO marts.legs SELECT range, 3, 'm' FROM range(100, 143)")
    assert details(check(seventh + timedelta(days=2)))[unique] == "0 of 85 rows unexpected"
    assert details(check(seventh + timedelta(days=2), record_db=None))[unique] == "0 of 85 rows unexpected"
    # In another time zone: another fingerprint, whose record replaces the batch's (and back again).
    assert len(recorded_tables()) == 2
    for timezone in ("UTC", "Europe/Berlin"):
        assert details(check(seventh + timedelta(days=2), timezone))[unique] == "0 of 85 rows unexpected"
        assert len(recorded_tables()) == 2
    # Another column type is another fingerprint (a hash does not tell an INTEGER 5 from a BIGINT 5).
    sql("ALTER TABLE marts.legs ALTER v TYPE INTEGER")
    assert details(check(seventh + timedelta(days=2)))[unique] == "0 of 85 rows unexpected"
    # The record of a batch not written for REVALIDATE_AFTER (renamed, removed) is dropped.
    renamed = dataclasses.replace(suite, name="legs_renamed")
    run_suites([renamed], raw_db, warehouse, incremental=True, now=seventh, record_db=record)
    assert len(recorded_tables()) == 3
    later = seventh + timedelta(days=2) + REVALIDATE_AFTER - timedelta(minutes=1)
    assert details(check(later))[unique] == f"0 of 0 rows unexpected{note}"
    assert len(recorded_tables()) == 2

    # The hashes of rows that went (expired, erased) leave the file, free blocks included.
    sql("INSERT INTO marts.legs SELECT range, 1, 'r' FROM range(1000, 301000)")
    assert details(check(later))[unique] == "0 of 300085 rows unexpected"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        gone = con.execute(
            f"SELECT {ROW_HASH_SQL} FROM (SELECT id, v FROM marts.legs WHERE label = 'r' AND id % 1000 = 7)"
        ).fetchall()
    packed = [struct.pack("<Q", h) for (h,) in gone]
    assert len(packed) == 300 and all(h in record.read_bytes() for h in packed)  # positive control
    sql("DELETE FROM marts.legs WHERE label = 'r'")
    assert details(check(later))[unique] == f"0 of 0 rows unexpected{note}"
    assert [h for h in packed if h in record.read_bytes()] == []

    # A damaged record file is started afresh, a damaged table of it is replaced: a warning, and every
    # row is validated.
    with duckdb.connect(str(record)) as con:
        (table,) = con.execute("SELECT table_name FROM duckdb_tables() WHERE table_name LIKE 'rows_%'").fetchone()
        con.execute(f'CREATE OR REPLACE TABLE "{table}" (row_hash VARCHAR)')
    bad_table = check(later)
    assert bad_table.success and details(bad_table)[unique] == "0 of 85 rows unexpected"
    assert len(bad_table.warnings) == 1 and "its record of validated rows is unusable" in bad_table.warnings[0]
    # A record held by another process is left alone: a warning, and every row is validated.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(record)!r}); print(1, flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"1"
        held = check(later)
    finally:
        holder.kill()
        holder.wait()
    assert held.success and details(held)[unique] == "0 of 85 rows unexpected"
    assert len(held.warnings) == 1 and "is unusable" in held.warnings[0] and "lock" in held.warnings[0]
    assert details(check(later))[unique] == f"0 of 0 rows unexpected{note}"  # its record is intact
    # A record of another layout (an older version's) is started afresh.
    with duckdb.connect(str(record)) as con:
        con.execute("ALTER TABLE batches DROP COLUMN batch")
    older = check(later)
    assert older.success and details(older)[unique] == "0 of 85 rows unexpected"
    assert len(older.warnings) == 1 and "started afresh" in older.warnings[0]
    assert details(check(later))[unique] == f"0 of 0 rows unexpected{note}"
    record.write_bytes(b"not a database")
    damaged = check(later)
    assert damaged.success and details(damaged)[unique] == "0 of 85 rows unexpected"
    assert len(damaged.warnings) == 1 and "was unusable and is started afresh" in damaged.warnings[0]
    assert details(check(later + timedelta(days=1)))[unique] == f"0 of 0 rows unexpected{note}"


def test_nightly_checks_of_a_fact_in_week_files_validate_the_weeks_the_build_computes_anew(tmp_path: Path) -> None:
    """A batch over a fact kept in week files (`weeks: fct_calls`) validates at night the weeks the
    build computes anew, rows without a day and the rows of other weeks sharing a key with them; the
    other weeks are files that passed when written. Every week again on the seventh night, under
    another fingerprint, without the build's weeks (a published file) or without a record."""
    from datetime import date

    from callsight.quality.validated_rows import REVALIDATE_AFTER

    warehouse, record = tmp_path / "build.duckdb", tmp_path / "validated_rows.duckdb"
    raw_db = tmp_path / "journal.duckdb"
    duckdb.connect(str(raw_db)).close()
    old, new = date(2026, 3, 16), date(2026, 3, 23)  # Mondays: a kept week's file and a week computed anew
    files = {week: tmp_path / "parts" / f"{week}.parquet" for week in (old, new)}
    files[old].parent.mkdir()

    def write_week(week: date, rows: str) -> None:
        """The week's file: (id, v, call_date) rows; its days run from the Monday."""
        with duckdb.connect() as con:
            con.execute(
                f"COPY (SELECT id, v, DATE '{week}' + CAST(id % 7 AS INTEGER) AS call_date FROM ({rows})) "
                f"TO '{files[week]}' (FORMAT parquet)"
            )

    def sql(statement: str) -> None:
        with duckdb.connect(str(warehouse)) as con:
            con.execute(statement)

    write_week(old, "SELECT range AS id, range % 7 AS v FROM range(1, 31)")
    write_week(new, "SELECT range AS id, range % 7 AS v FROM range(31, 41)")
    sql("CREATE SCHEMA marts")
    sql(f"CREATE VIEW marts.fct_calls AS SELECT * FROM read_parquet(['{files[new]}', '{files[old]}'])")
    sql("CREATE SCHEMA intermediate")
    sql(f"CREATE TABLE intermediate.int_weeks_changed AS SELECT 'fct_calls' AS fact, DATE '{new}' AS call_week")
    batch = {
        "name": "fct_calls",
        "query": "SELECT id, v, call_date FROM marts.fct_calls",
        "incremental": True,
        "weeks": "fct_calls",
        "expectations": [
            {"type": "expect_column_values_to_be_unique", "column": "id"},
            {"type": "expect_column_values_to_be_between", "column": "v", "min_value": 0, "max_value": 9},
        ],
    }
    definition = {"suite": "legs", "asset": "marts/fct_calls", "stage": "warehouse", "description": "d"}
    suite = parse_suite(tmp_path / "legs.yml", {**definition, "batches": [batch]})
    night = datetime(2026, 3, 24, 2, 0)
    note = " (the weeks this build computes anew)"
    unique, between = (
        "expect_column_values_to_be_unique(id)",
        "expect_column_values_to_be_between(v, min_value=0, max_value=9)",
    )

    def check(when: datetime, timezone: str = "Europe/Berlin", record_db: Path | None = record, batches=(suite,)):
        return run_suites(
            list(batches), raw_db, warehouse, timezone=timezone, incremental=True, now=when, record_db=record_db
        )

    def details(report) -> dict[str, str]:
        return {o.expectation: o.detail for o in report.result("legs").outcomes}

    def failed(report) -> list[str]:
        return [f"{o.expectation}: {o.detail}" for o in report.failed]

    assert details(check(night))[unique] == "0 of 40 rows unexpected"  # no record yet: every week
    assert details(check(night + timedelta(days=1)))[unique] == f"0 of 10 rows unexpected{note}"
    # A bad value in the week computed anew is found; one in a kept week's file (rewritten behind the
    # pipeline's back, as many rows) waits for the seventh night.
    write_week(new, "SELECT range AS id, CASE WHEN range = 33 THEN 12 ELSE range % 7 END AS v FROM range(31, 41)")
    assert failed(check(night + timedelta(days=2))) == [f"{between}: 1 of 10 rows unexpected{note}"]
    write_week(new, "SELECT range AS id, range % 7 AS v FROM range(31, 41)")
    write_week(old, "SELECT range AS id, CASE WHEN range = 5 THEN 12 ELSE range % 7 END AS v FROM range(1, 31)")
    assert check(night + timedelta(days=2)).success  # the failed night left the record as it was
    seventh = night + REVALIDATE_AFTER + timedelta(minutes=1)
    assert failed(check(seventh)) == [f"{between}: 1 of 40 rows unexpected"]
    write_week(old, "SELECT range AS id, range % 7 AS v FROM range(1, 31)")
    assert details(check(seventh))[unique] == "0 of 40 rows unexpected"
    assert details(check(seventh + timedelta(days=1)))[unique] == f"0 of 10 rows unexpected{note}"
    # A key of the week computed anew that a kept week holds too: both rows are validated.
    write_week(new, "SELECT CASE WHEN range = 31 THEN 4 ELSE range END AS id, range % 7 AS v FROM range(31, 41)")
    assert failed(check(seventh + timedelta(days=1))) == [f"{unique}: 2 of 11 rows unexpected{note}"]
    write_week(new, "SELECT range AS id, range % 7 AS v FROM range(31, 41)")
    # A row without a day belongs to no week's file: it is validated too.
    sql("CREATE TABLE marts.dayless AS SELECT 99 AS id, 12 AS v, CAST(NULL AS DATE) AS call_date")
    sql(
        "CREATE OR REPLACE VIEW marts.fct_calls AS SELECT * FROM marts.dayless UNION ALL "
        f"SELECT * FROM read_parquet(['{files[new]}', '{files[old]}'])"
    )
    assert failed(check(seventh + timedelta(days=1))) == [f"{between}: 1 of 11 rows unexpected{note}"]
    sql("DELETE FROM marts.dayless")
    # Every week in a published file (no weeks computed anew), in another time zone (another
    # fingerprint), without a record, or when the query returns no day (a warning).
    sql("ALTER TABLE intermediate.int_weeks_changed RENAME TO weeks_aside")
    assert details(check(seventh + timedelta(days=1)))[unique] == "0 of 40 rows unexpected"
    sql("ALTER TABLE intermediate.weeks_aside RENAME TO int_weeks_changed")
    assert details(check(seventh + timedelta(days=1), "UTC"))[unique] == "0 of 40 rows unexpected"
    assert details(check(seventh + timedelta(days=1), "UTC"))[unique] == f"0 of 10 rows unexpected{note}"
    assert details(check(seventh + timedelta(days=1), "UTC", None))[unique] == "0 of 40 rows unexpected"
    # With no week computed anew (a night without changed legs) nothing of the fact is validated again.
    sql("DELETE FROM intermediate.int_weeks_changed")
    assert details(check(seventh + timedelta(days=1), "UTC"))[unique] == f"0 of 0 rows unexpected{note}"
    dayless = parse_suite(
        tmp_path / "legs.yml", {**definition, "batches": [{**batch, "query": "SELECT id, v FROM marts.fct_calls"}]}
    )
    for _ in range(2):
        report = check(seventh + timedelta(days=1), batches=(dayless,))
        assert details(report)[unique] == "0 of 40 rows unexpected"
        assert report.warnings == ("legs.fct_calls: validated whole, its query returns no call_date",)


# ---- the published warehouse ---------------------------------------------------------------------------
@pytest.mark.slow
def test_every_suite_passes_on_the_published_warehouse(published_site: Site) -> None:
    s = published_site.settings
    suites = load_suites()
    report = run_suites(suites, s.raw_db, s.served_db)
    assert report.success, [str(o) for o in report.failed]
    # every expectation of every suite ran: none was skipped or lost on the way
    assert report.expectation_count == sum(len(b.expectations) for suite in suites for b in suite.batches)
    assert {r.suite.name for r in report.results} == {suite.name for suite in suites}


CORRUPTIONS = {
    "negative talk time": (
        "UPDATE marts.fct_calls SET talk_seconds = -5 "
        "WHERE call_id = (SELECT min(call_id) FROM marts.fct_calls WHERE NOT is_answered)",
        {"fct_calls.fct_calls: expect_column_values_to_be_between(talk_seconds, min_value=0, max_value=86400)"},
    ),
    "agent missing from dim_agent": (
        "UPDATE marts.fct_calls SET agent_username = 'nobody.known' "
        "WHERE call_id = (SELECT min(call_id) FROM marts.fct_calls)",
        {"referential_integrity.fct_calls_agent_not_in_dim_agent: expect_table_row_count_to_equal(value=0)"},
    ),
    "leg lost between raw store and marts": (
        "DELETE FROM marts.fct_calls WHERE call_id = (SELECT max(call_id) FROM marts.fct_calls WHERE NOT is_inbound)",
        {"row_reconciliation.row_counts: expect_column_pair_values_to_be_equal(fct_calls_rows, raw_journal_rows)"},
    ),
    "service-level flag against the policy": (
        "UPDATE marts.fct_inbound_calls SET is_within_service_level = NOT is_within_service_level "
        "WHERE chain_key = (SELECT min(chain_key) FROM marts.fct_inbound_calls)",
        {"fct_inbound_calls.calls_with_inconsistent_service_level: expect_table_row_count_to_equal(value=0)"},
    ),
    "inbound call without its legs": (
        "UPDATE marts.fct_inbound_calls SET chain_key = 'ghost' "
        "WHERE chain_key = (SELECT min(chain_key) FROM marts.fct_inbound_calls)",
        {
            "referential_integrity.inbound_chain_not_in_fct_calls: expect_table_row_count_to_equal(value=0)",
            "referential_integrity.inbound_first_leg_not_in_chain: expect_table_row_count_to_equal(value=0)",
        },
    ),
    "column dropped": (
        "ALTER TABLE marts.fct_callbacks DROP COLUMN contact_company",
        {"fct_callbacks.columns: expect_table_columns_to_match_ordered_list()"},
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_each_corruption_fails_the_expectation_that_guards_it(
    published_site: Site, tmp_path: Path, corruption: str
) -> None:
    sql, expected = CORRUPTIONS[corruption]
    s = published_site.settings
    copy = tmp_path / "callsight.duckdb"
    shutil.copy(s.served_db, copy)
    con = duckdb.connect(str(copy))
    facts_as_tables(con)
    con.execute(sql)
    con.close()
    report = run_suites([x for x in load_suites() if x.stage == "warehouse"], s.raw_db, copy)
    assert failed_names(report) == expected
    if corruption == "leg lost between raw store and marts":
        n = duckdb.connect(str(s.raw_db), read_only=True).execute("SELECT count(*) FROM journal").fetchone()[0]
        assert f"fct_calls_rows={n - 1}, raw_journal_rows={n}" in str(report.failed[0])


def test_how_each_suite_batch_may_be_split() -> None:
    batches = {f"{s.name}.{b.name}": b for s in load_suites() for b in s.batches}
    assert partition_key(batches["raw_journal.journal"]) == ("ID",)
    assert partition_key(batches["fct_calls.fct_calls"]) == ("call_id",)
    assert partition_key(batches["dimensions.dim_agent_groups"]) == ("group_name", "agent_username")
    assert partition_key(batches["fct_calls.columns"]) == ()
    # row counts and one-row reconciliations need the whole batch
    assert partition_key(batches["fct_calls.legs_answered_without_talk_time"]) is None
    assert partition_key(batches["dimensions.build_info"]) is None
    two_keys = parse_suite(
        Path("two.yml"),
        {
            "suite": "two",
            "asset": "a",
            "stage": "raw",
            "description": "d",
            "batches": [
                {
                    "name": "b",
                    "query": "SELECT 1",
                    "expectations": [
                        {"type": "expect_column_values_to_be_unique", "column": "x"},
                        {"type": "expect_column_values_to_be_unique", "column": "y"},
                    ],
                }
            ],
        },
    )
    assert partition_key(two_keys.batches[0]) is None


def test_parts_hold_every_row_once_and_equal_keys_together() -> None:
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE t AS SELECT CASE WHEN x % 11 = 0 THEN NULL ELSE x % 97 END AS k, x AS v FROM range(5000) r(x)"
    )
    parts = [con.execute(q, p).fetchall() for q, p in part_queries("SELECT k, v FROM t", "k", [10, 40, 41, 90])]
    assert len(parts) == 5
    assert sorted(v for p in parts for _, v in p) == list(range(5000))
    homes: dict[object, int] = {}
    for i, p in enumerate(parts):
        for k, _ in p:
            assert homes.setdefault(k, i) == i
    assert {k for k, _ in parts[0]} == {None, *range(11)} and {k for k, _ in parts[2]} == {41}
    assert part_queries("SELECT 1 AS k", "k", []) == [("SELECT 1 AS k", [])]


@pytest.mark.slow
def test_suites_in_parts_find_exactly_what_they_find_whole(
    published_site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Big batches are validated in parts (GX on pandas keeps several copies of a batch in memory).
    With parts of a few hundred rows, a corrupted warehouse and raw store give the same outcomes, with
    the same counts, as whole batches."""
    import callsight.quality.validation as quality

    s = published_site.settings
    raw, wh = tmp_path / "journal.duckdb", tmp_path / "callsight.duckdb"
    shutil.copy(s.raw_db, raw)
    shutil.copy(s.served_db, wh)
    with duckdb.connect(str(wh)) as con:
        facts_as_tables(con)
        # a duplicated leg (same call_id, far apart in the table), out-of-range values and a missing key
        con.execute("INSERT INTO marts.fct_calls SELECT * FROM marts.fct_calls ORDER BY call_id LIMIT 3")
        con.execute("UPDATE marts.fct_calls SET ring_seconds = -1 WHERE call_id % 50 = 7")
        con.execute("UPDATE marts.fct_inbound_calls SET call_hour = 24 WHERE first_call_id % 40 = 3")
    with duckdb.connect(str(raw)) as con:
        con.execute('UPDATE journal SET "Outbound" = 7 WHERE "ID" % 30 = 1')
        con.execute('INSERT INTO journal SELECT * FROM journal ORDER BY "ID" DESC LIMIT 2')

    def outcomes() -> list[tuple[str, bool, str]]:
        report = run_suites(load_suites(), raw, wh)
        return [
            (f"{o.suite}.{o.batch}: {o.expectation}", o.success, o.detail) for r in report.results for o in r.outcomes
        ]

    whole = outcomes()
    monkeypatch.setattr(quality, "PART_ROWS", 300)
    parted = outcomes()
    assert parted == whole
    failed = {name: detail for name, ok, detail in whole if not ok}
    assert failed["fct_calls.fct_calls: expect_column_values_to_be_unique(call_id)"].startswith("6 of ")
    assert "raw_journal.journal: expect_column_values_to_be_unique(ID)" in failed
    assert "raw_journal.journal: expect_column_values_to_be_in_set(Outbound, value_set=[0, 1])" in failed
    assert (
        "fct_inbound_calls.fct_inbound_calls: expect_column_values_to_be_between(call_hour, min_value=0, max_value=23)"
        in failed
    )
    n = duckdb.connect(str(wh), read_only=True).execute("SELECT count(*) FROM marts.fct_calls").fetchone()[0]
    assert n > 10 * 300  # the big batches really were split


def test_a_batch_without_a_key_is_validated_in_streamed_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Row-wise checks only: the batch streams in chunks of whole vectors (2,048 rows), and the counts
    add up to those of the whole batch."""
    import callsight.quality.validation as quality

    db, raw = tmp_path / "w.duckdb", tmp_path / "raw.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute(
            "CREATE TABLE t AS SELECT CAST(x % 100 AS INTEGER) AS secs,"
            " CASE WHEN x % 7 = 0 THEN 'x' ELSE 'a' END AS kind,"
            " CASE WHEN x % 1000 = 1 THEN NULL ELSE x END AS id FROM range(10000) AS r(x)"
        )
    duckdb.connect(str(raw)).close()
    expectations = [
        {"type": "expect_column_values_to_be_between", "column": "secs", "min_value": 0, "max_value": 89},
        {"type": "expect_column_values_to_be_in_set", "column": "kind", "value_set": ["a"]},
        {"type": "expect_column_values_to_not_be_null", "column": "id"},
    ]
    spec = {"suite": "s", "asset": "a", "stage": "warehouse", "description": "d"}
    suite = parse_suite(
        tmp_path / "s.yml",
        {**spec, "batches": [{"name": "t", "query": "SELECT * FROM t", "expectations": expectations}]},
    )
    assert partition_key(suite.batches[0]) == ()
    frames: list[int] = []
    real = quality.vectorisable
    monkeypatch.setattr(quality, "vectorisable", lambda f: frames.append(len(f)) or real(f))

    def details() -> list[str]:
        frames.clear()
        return [o.detail for o in run_suites([suite], raw, db).results[0].outcomes]

    whole = details()
    assert frames == [10000]
    monkeypatch.setattr(quality, "PART_ROWS", 4096)
    assert (
        details()
        == whole
        == ["1000 of 10000 rows unexpected", "1429 of 10000 rows unexpected", "10 of 10000 rows unexpected"]
    )
    assert frames == [4096, 4096, 1808]
    monkeypatch.setattr(quality, "PART_ROWS", 300)  # less than a vector: one vector at a time
    assert details() == whole and len(frames) == 5
