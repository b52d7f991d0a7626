"""The benchmark's peers compute what the warehouse computes: floor.sql (bare DuckDB) and the pandas peer
agree with the marts per agent and day on a generated journal, after the real pipeline (a full build
and an incremental night through Dagster, as in test_pipeline.py), across a DST switch."""

from __future__ import annotations

import os
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
from bench.floor import KPI_COLUMNS, run_floor
from bench.generator import BenchJournal, generate_journal
from bench.peer_pandas import run_pandas
from bench.stages import run_timings

from callsight.defs.nightly import run_nightly, yesterday
from callsight.demo.journal import default_policy
from callsight.site.directory import load_directory
from callsight.site.policy import load_policy
from callsight.site.settings import Settings

from .test_bench_gen import last_switch

pytestmark = pytest.mark.slow

# The marts' KPIs per agent and day, named as the peers name them.
MARTS_SQL = """
WITH inbound AS (
    SELECT
        agent_username,
        call_date,
        count(*) AS calls,
        count(*) FILTER (WHERE is_answered) AS answered,
        count(*) FILTER (WHERE is_missed) AS missed,
        coalesce(sum(wait_seconds) FILTER (WHERE is_answered), 0) AS wait_seconds,
        count(*) FILTER (WHERE is_within_service_level) AS within_service_level,
        count(*) FILTER (WHERE counts_for_service_level) AS service_level_base
    FROM marts.fct_inbound_calls GROUP BY ALL
), callbacks AS (
    SELECT
        agent_username,
        call_date,
        count(*) AS missed_external,
        count(*) FILTER (WHERE is_callback_possible) AS callback_possible,
        count(*) FILTER (WHERE is_called_back) AS called_back
    FROM marts.fct_callbacks GROUP BY ALL
)
SELECT i.*, coalesce(c.missed_external, 0) AS missed_external, coalesce(c.callback_possible, 0) AS callback_possible,
    coalesce(c.called_back, 0) AS called_back
FROM inbound AS i LEFT JOIN callbacks AS c USING (agent_username, call_date)
ORDER BY agent_username, call_date
"""


def normalised(df: pd.DataFrame) -> pd.DataFrame:
    out = df[["agent_username", "call_date", *KPI_COLUMNS]].copy()
    out["call_date"] = pd.to_datetime(out["call_date"]).dt.date
    for c in KPI_COLUMNS:
        out[c] = out[c].astype("int64")
    return out.sort_values(["agent_username", "call_date"]).reset_index(drop=True)


def marts(settings: Settings) -> pd.DataFrame:
    con = duckdb.connect(str(settings.served_db), read_only=True)
    try:
        return normalised(con.execute(MARTS_SQL).df())
    finally:
        con.close()


def floor_kpis(j: BenchJournal, out: Path, before: date) -> pd.DataFrame:
    r = run_floor(j.sqlite_path, out, load_policy(j.policy_path), load_directory(j.directory_path), before)
    con = duckdb.connect(str(out), read_only=True)
    try:
        df = con.execute("SELECT * FROM floor_kpis").df()
    finally:
        con.close()
    assert r.groups == len(df)
    return normalised(df)


def pandas_kpis(j: BenchJournal, out: Path, before: date) -> pd.DataFrame:
    policy, directory = load_policy(j.policy_path), load_directory(j.directory_path)
    r = run_pandas(f"sqlite:///{j.sqlite_path}", out, policy, directory, before)
    df = pd.read_parquet(out)
    assert r.groups == len(df)
    return normalised(df)


@pytest.fixture
def bench_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Settings, BenchJournal]:
    """A CALLSIGHT_HOME whose demo journal is a generated bench journal from the day before the latest
    autumn DST switch up to yesterday (retention long enough to keep it)."""
    home = tmp_path / "home"
    night = yesterday("Europe/Berlin")
    fall = last_switch("fall", night)
    policy = default_policy() | {"retention": {"journal_days": 400}}
    j = generate_journal(
        home / "demo",
        rows=12_000,
        night_rows=1_500,
        night_day=night,
        first_day=min(fall - timedelta(days=1), night - timedelta(days=5)),
        users=24,
        seed=3,
        policy=policy,
    )
    for key in [k for k in os.environ if k.startswith("CALLSIGHT_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("CALLSIGHT_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    return Settings.from_env(), j


def test_floor_and_pandas_agree_with_the_marts_after_a_build_and_a_night(
    bench_site: tuple[Settings, BenchJournal], tmp_path: Path
) -> None:
    settings, j = bench_site
    build = run_nightly(settings, j.first_day, j.last_history_day, log_level="WARNING")
    assert build.success, build.failure
    history = marts(settings)
    assert history["calls"].sum() > 5_000 and history["missed"].sum() > 300 and history["called_back"].sum() > 100
    assert history["call_date"].min() == j.first_day and history["call_date"].max() == j.last_history_day
    pd.testing.assert_frame_equal(floor_kpis(j, tmp_path / "f1.duckdb", j.night_day), history)
    pd.testing.assert_frame_equal(pandas_kpis(j, tmp_path / "p1.parquet", j.night_day), history)

    night = run_nightly(settings, j.night_day, j.night_day, log_level="WARNING")
    assert night.success, night.failure
    with dg.DagsterInstance.get() as instance:  # what the benchmark reports of a run
        steps, publish = run_timings(instance, night.run_id)
    assert {"raw__journal", "warehouse_models", "published_warehouse"} <= set(steps)
    # the parts of the publish (weeks: the changed weeks' files; warm: the cache warm-up before the swap,
    # which skips here: no shared cache)
    assert set(publish) == {"weeks", "prune", "compact", "warm", "swap"}
    assert 0 < publish["compact"] < steps["published_warehouse"]
    everything = marts(settings)
    assert everything["call_date"].max() == j.night_day and len(everything) > len(history)
    after = j.night_day + timedelta(days=1)
    pd.testing.assert_frame_equal(floor_kpis(j, tmp_path / "f2.duckdb", after), everything)
    pd.testing.assert_frame_equal(pandas_kpis(j, tmp_path / "p2.parquet", after), everything)
