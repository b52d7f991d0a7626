"""The common peer: the same KPIs as floor.sql, the way many teams do it, end to end in pandas.

`pandas.read_sql` from the journal database, transform in pandas (time zones, chains, wait, service
level, callbacks by merge_asof), and write the result as Parquet.
"""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from bench.floor import KPI_COLUMNS, PeerResult
from callsight.site.directory import Directory
from callsight.site.policy import Policy

# The columns the KPIs need (what such a script selects; all 28 take about twice the memory).
COLUMNS = (
    "ID",
    "TrackerID",
    "CTIServerUserName",
    "StartTime",
    "StopTime",
    "ConnectTime",
    "DurationConnected",
    "Outbound",
    "Internal",
    "PrivateCall",
    "LineNumber",
    "PhoneNumber",
)
QUOTED = tuple(f'"{c}"' for c in COLUMNS)


def _utc(local: pd.Series, tz: str) -> pd.Series:
    """Local wall clock -> naive UTC; the ambiguous autumn hour is read as standard time, a time in the
    skipped spring hour as one hour later (what DuckDB's ICU time zones do)."""
    aware = local.dt.tz_localize(tz, ambiguous=np.zeros(len(local), dtype=bool), nonexistent=pd.Timedelta("1h"))
    return aware.dt.tz_convert("UTC").dt.tz_localize(None)


def kpis(df: pd.DataFrame, policy: Policy, directory: Directory) -> pd.DataFrame:
    tz = policy.timezone
    private = (df["PrivateCall"].astype("int64") == 1) | df["LineNumber"].isin(directory.private_lines)
    start_local = pd.to_datetime(df["StartTime"])
    start_utc = _utc(start_local, tz)
    stop_utc = _utc(pd.to_datetime(df["StopTime"]), tz).fillna(start_utc)
    phone = df["PhoneNumber"].astype("string")
    key = phone.str.replace(r"[^0-9]", "", regex=True)
    no_key = phone.isna() | phone.str.contains("X", regex=False).fillna(True) | (key == "")
    if policy.private_calls.mode != "keep":
        no_key |= private
    legs = pd.DataFrame(
        {
            "id": df["ID"].astype("int64"),
            "chain": df["TrackerID"].fillna("leg:" + df["ID"].astype(str)),
            "agent": df["CTIServerUserName"],
            "inbound": df["Outbound"].astype("int64") == 0,
            "internal": df["Internal"].astype("int64") == 1,
            "answered": df["DurationConnected"].fillna(0).astype("int64") > 0,
            "call_date": start_local.dt.date,
            "start_utc": start_utc,
            "connect_utc": _utc(pd.to_datetime(df["ConnectTime"]), tz),
            "stop_utc": stop_utc,
            "phone_key": key.mask(no_key),
        }
    )
    inbound = legs[legs["inbound"]].sort_values(["start_utc", "id"])
    chains = inbound.drop_duplicates("chain").set_index("chain")[
        ["agent", "call_date", "internal", "phone_key", "start_utc"]
    ]
    grouped = inbound.groupby("chain")
    chains["answered"] = grouped["answered"].any()
    chains["last_stop"] = grouped["stop_utc"].max()
    chains["connect"] = inbound[inbound["answered"]].groupby("chain")["connect_utc"].min()
    chains["wait"] = (chains["connect"] - chains["start_utc"]).dt.total_seconds()
    chains["signalled"] = (chains["last_stop"] - chains["start_utc"]).dt.total_seconds()
    # callbacks: the first outbound leg to the number, or answered inbound leg from it, after the miss
    missed = chains[~chains["answered"] & ~chains["internal"] & chains["phone_key"].notna()].reset_index()
    candidates = legs[~legs["internal"] & (~legs["inbound"] | legs["answered"]) & legs["phone_key"].notna()]
    candidates = candidates[["phone_key", "start_utc"]].rename(columns={"start_utc": "callback_utc"})
    matched = pd.merge_asof(
        missed[["chain", "phone_key", "start_utc"]].sort_values("start_utc"),
        candidates.sort_values("callback_utc"),
        left_on="start_utc",
        right_on="callback_utc",
        by="phone_key",
        direction="forward",
        allow_exact_matches=False,
    )
    window = pd.Timedelta(hours=policy.callback.window_hours)
    back = matched.loc[matched["callback_utc"] <= matched["start_utc"] + window, "chain"]
    chains["called_back"] = chains.index.isin(back)
    c = chains
    sl = policy.service_level
    out = pd.DataFrame(
        {
            "agent_username": c["agent"],
            "call_date": c["call_date"],
            "calls": 1,
            "answered": c["answered"].astype("int64"),
            "missed": (~c["answered"]).astype("int64"),
            "wait_seconds": c["wait"].where(c["answered"], 0).fillna(0),
            "within_service_level": (c["answered"] & (c["wait"] <= sl.threshold_seconds)).astype("int64"),
            "service_level_base": (c["answered"] | (c["signalled"] >= sl.short_abandon_seconds)).astype("int64"),
            "missed_external": (~c["answered"] & ~c["internal"]).astype("int64"),
            "callback_possible": (~c["answered"] & ~c["internal"] & c["phone_key"].notna()).astype("int64"),
            "called_back": c["called_back"].astype("int64"),
        }
    )
    result = out.groupby(["agent_username", "call_date"], as_index=False)[list(KPI_COLUMNS)].sum()
    result["wait_seconds"] = result["wait_seconds"].astype("int64")
    return result


def run_pandas(
    url: str, out: Path, policy: Policy, directory: Directory, before: date, table: str = "journal"
) -> PeerResult:
    """read_sql the legs that start before `before`, compute the KPIs, write them to `out` (Parquet)."""
    t0 = time.perf_counter()
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            df = pd.read_sql(
                sa.text(f'SELECT {", ".join(QUOTED)} FROM "{table}" WHERE "StartTime" < :before'),
                conn,
                params={"before": before.isoformat()},
            )
    finally:
        engine.dispose()
    result = kpis(df, policy, directory)
    result.to_parquet(out, index=False)
    return PeerResult(len(df), len(result), time.perf_counter() - t0)
