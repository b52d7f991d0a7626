"""An independent check: the headline KPIs computed in plain pandas from the source journal equal
what the marts say, per agent and day. Shares no code with the dbt models."""

import sqlite3

import duckdb
import pandas as pd
import pytest

from callsight.site.policy import load_policy

from .conftest import Site

pytestmark = pytest.mark.slow


def pandas_kpis(journal: pd.DataFrame, tz: str, threshold: int, short_abandon: int) -> pd.DataFrame:
    j = journal.copy()
    for col in ("StartTime", "ConnectTime", "StopTime"):
        local = pd.to_datetime(j[col])
        j[col + "_utc"] = local.dt.tz_localize(tz, ambiguous=False, nonexistent="shift_forward").dt.tz_convert("UTC")
    j["chain"] = j["TrackerID"].where(j["TrackerID"].notna(), "leg:" + j["ID"].astype(str))
    inbound = j[j["Outbound"] == 0]
    first = inbound.sort_values(["StartTime_utc", "ID"]).groupby("chain").head(1).set_index("chain")
    answered = inbound[inbound["DurationConnected"] > 0]
    answer = answered.sort_values(["ConnectTime_utc", "ID"]).groupby("chain").head(1).set_index("chain")
    last_stop = inbound.groupby("chain")["StopTime_utc"].max()
    talk = inbound.groupby("chain")["DurationConnected"].sum()
    calls = pd.DataFrame(
        {
            "agent_username": first["CTIServerUserName"],
            "call_date": pd.to_datetime(first["StartTime"]).dt.date,
            "is_answered": first.index.isin(answer.index),
        },
        index=first.index,
    )
    calls["wait"] = (answer["ConnectTime_utc"] - first["StartTime_utc"]).dt.total_seconds().reindex(calls.index)
    signalled = (last_stop - first["StartTime_utc"]).dt.total_seconds()
    calls["counts_sl"] = calls["is_answered"] | (signalled >= short_abandon)
    calls["within_sl"] = calls["is_answered"] & (calls["wait"] <= threshold)
    calls["talk"] = talk
    out = calls.groupby(["agent_username", "call_date"]).agg(
        calls=("is_answered", "size"),
        answered=("is_answered", "sum"),
        sl_num=("within_sl", "sum"),
        sl_den=("counts_sl", "sum"),
        wait_sum=("wait", "sum"),
        talk_sum=("talk", "sum"),
    )
    out["missed"] = out["calls"] - out["answered"]
    return out.astype("int64").sort_index()


def test_headline_kpis_per_agent_and_day_match_an_independent_pandas_computation(
    published_site: Site,
) -> None:
    settings = published_site.settings
    policy = load_policy(settings.effective_policy_path)
    journal = pd.read_sql("SELECT * FROM journal", sqlite3.connect(settings.demo_journal_path))
    expected = pandas_kpis(
        journal,
        policy.timezone,
        policy.service_level.threshold_seconds,
        policy.service_level.short_abandon_seconds,
    )
    con = duckdb.connect(str(settings.served_db), read_only=True)
    got = con.execute("""
        SELECT agent_username, call_date, count(*) AS calls, sum(is_answered::int) AS answered,
               sum((is_within_service_level AND counts_for_service_level)::int) AS sl_num,
               sum(counts_for_service_level::int) AS sl_den, coalesce(sum(wait_seconds), 0) AS wait_sum,
               sum(talk_seconds) AS talk_sum, sum(is_missed::int) AS missed
        FROM marts.fct_inbound_calls GROUP BY ALL
    """).df()
    n_legs = con.execute("SELECT count(*) FROM marts.fct_calls").fetchone()[0]
    con.close()
    got["call_date"] = pd.to_datetime(got["call_date"]).dt.date
    got = got.set_index(["agent_username", "call_date"])[expected.columns].astype("int64").sort_index()
    assert len(journal) == n_legs
    assert len(expected) > 100 and expected["missed"].sum() > 0 and (expected["calls"] > expected["answered"]).any()
    pd.testing.assert_frame_equal(got, expected)
