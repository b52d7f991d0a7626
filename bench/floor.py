"""The floor of the benchmark: floor.sql, one bare DuckDB script over the raw journal table.

It reads the SQLite journal through DuckDB's sqlite scanner (the same reader as the extract), computes
the headline KPIs per agent and day and writes them into a DuckDB file: no masking pass, no
validation, no quarantine, no history, no checks, no publish. What callsight does on top costs what
the benchmark shows as the ratio to this.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb

from callsight.journal.sources import extension_directory
from callsight.site.directory import Directory
from callsight.site.policy import Policy

KPI_COLUMNS = (
    "calls",
    "answered",
    "missed",
    "wait_seconds",
    "within_service_level",
    "service_level_base",
    "missed_external",
    "callback_possible",
    "called_back",
)


@dataclass(frozen=True)
class PeerResult:
    """What a peer computed: rows read, KPI groups (agent, day) written, seconds end to end."""

    rows: int
    groups: int
    seconds: float


def floor_sql() -> str:
    return (Path(__file__).parent / "floor.sql").read_text(encoding="utf-8")


def run_floor(
    journal: Path, out: Path, policy: Policy, directory: Directory, before: date, table: str = "journal"
) -> PeerResult:
    """KPIs of the journal legs that start before `before`, into table floor_kpis of `out`."""
    t0 = time.perf_counter()
    out.unlink(missing_ok=True)
    con = duckdb.connect(str(out), config={"extension_directory": extension_directory()})
    try:
        con.execute("SET enable_progress_bar = false")
        con.execute("LOAD sqlite")
        con.execute(f"ATTACH '{journal}' AS lite (TYPE sqlite, READ_ONLY)")
        con.execute(
            f"CREATE TEMP VIEW journal AS SELECT * FROM lite.{table} WHERE \"StartTime\" < '{before.isoformat()}'"
        )
        variables = {
            "tz": policy.timezone,
            "sl_threshold": policy.service_level.threshold_seconds,
            "short_abandon": policy.service_level.short_abandon_seconds,
            "callback_hours": policy.callback.window_hours,
            "private_lines": list(directory.private_lines),
            "mask_private": policy.private_calls.mode != "keep",
        }
        for name, value in variables.items():
            con.execute(f"SET VARIABLE {name} = ?", [value])
        con.execute(floor_sql())
        rows = con.execute("SELECT count(*) FROM floor_legs").fetchone()[0]
        groups = con.execute("SELECT count(*) FROM floor_kpis").fetchone()[0]
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return PeerResult(rows, groups, time.perf_counter() - t0)
