"""Data-quality checks at scale: time and peak memory of the Great Expectations suites.

Builds a small demo warehouse with a real nightly run, then inflates the raw journal and fct_calls
(the two largest tables, read whole into pandas by the suites) to --rows legs with fresh IDs, and runs
the raw and warehouse suites on it. Prints figures; asserts nothing about speed. The inflated legs never
went through the extract, so the extract reconciliation is expected to fail here.

    python bench/bench_quality.py --rows 1000000
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from callsight.defs.nightly import run_nightly, yesterday
from callsight.demo.journal import generate
from callsight.quality.run import run_suites
from callsight.quality.suites import load_suites
from callsight.site.settings import Settings


def inflate(db: Path, table: str, id_column: str, rows: int, raw_attach: Path | None = None) -> int:
    con = duckdb.connect(str(db))
    try:
        schema, name = table.split(".") if "." in table else ("main", table)
        if con.execute(
            "SELECT count(*) FROM duckdb_views() WHERE schema_name = ? AND view_name = ?", [schema, name]
        ).fetchone()[0]:  # a fact kept in week files: its rows made a table of the file, then inflated
            con.execute(f"CREATE TABLE {table}__rows AS SELECT * FROM {table}")
            con.execute(f"DROP VIEW {table}")
            con.execute(f"ALTER TABLE {table}__rows RENAME TO {name}")
        base = con.execute(f"SELECT count(*), max({id_column}) FROM {table}").fetchone()
        copies = max(1, -(-rows // base[0]))
        con.execute(
            f"CREATE OR REPLACE TABLE {table} AS SELECT t.* REPLACE ({id_column} + r.i * {base[1] + 1} AS {id_column}) "
            f"FROM {table} AS t, (SELECT range AS i FROM range({copies})) AS r LIMIT {rows}"
        )
        con.execute("CHECKPOINT")
        return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        con.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        generate(home / "demo", seed=5, days=30, users=24, end=yesterday("Europe/Berlin"))
        os.environ["CALLSIGHT_HOME"] = str(home)
        settings = Settings.from_env()
        result = run_nightly(settings, log_level="WARNING")
        if not result.success:
            print(f"nightly run failed: {result.failure}")
            return 1
        raw_rows = inflate(settings.raw_db, "journal", '"ID"', args.rows)
        fct_rows = inflate(settings.served_db, "marts.fct_calls", "call_id", args.rows)
        print(f"raw journal {raw_rows:,} rows, marts.fct_calls {fct_rows:,} rows")
        import great_expectations  # noqa: F401  (import time is not part of the figures)

        before_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        for stage in ("raw", "warehouse"):
            suites = [s for s in load_suites() if s.stage == stage]
            t0 = time.perf_counter()
            report = run_suites(suites, settings.raw_db, settings.served_db)
            seconds = time.perf_counter() - t0
            print(
                f"{stage:<9} suites: {report.expectation_count} expectations in {seconds:.1f} s "
                f"({len(report.failed)} failed)"
            )
            for outcome in report.failed:
                print(f"    failed: {outcome}")
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS of the process: {before_mib:.0f} MiB before the checks, {peak_mib:.0f} MiB after")
    return 0


if __name__ == "__main__":
    sys.exit(main())
