"""Extract throughput and peak memory at scale: SQLite and PostgreSQL journals of N rows.

    .venv/bin/python bench/bench_extract.py [--rows 1000000] [--sources sqlite,postgresql] [--rerun]
                                            [--out bench-results/extract.json]

Builds the journals by replicating a generated demo journal (new IDs and TrackerIDs per copy), then
runs one extract of the whole window per source in a child process and reports rows/s, the child's
CPU seconds (all its threads; the PostgreSQL server's are not counted) and peak RSS, and the load
average when it finished: on a shared machine rows/s follows the load, CPU seconds much less.
With --rerun the same window is extracted a second time into the same raw store (the nightly case:
every row compared, nothing changed). PostgreSQL is the loopback server (database `test`); it is
skipped when missing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

import duckdb
import sqlalchemy as sa

from callsight.demo.journal import generate
from callsight.journal.contract import JOURNAL_COLUMNS
from callsight.journal.sources import extension_directory

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
END = date(2026, 10, 30)

RUNNER = """
import sys, json, os, time, resource
from datetime import datetime
from pathlib import Path
from callsight.site.directory import load_directory
from callsight.site.policy import load_policy
from callsight.extract.run import extract
from callsight.journal.sources import Source
url, table, raw, demo, run_id = sys.argv[1:6]
src = Source(url, table)
w = Window(datetime(2026, 7, 1), datetime(2026, 11, 1))  # the generated journal spans 120 days up to END
s = extract(src, Path(raw), w, load_directory(Path(demo) / "directory.yaml"),
            load_policy(Path(demo) / "policy.yaml"), run_id)
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"rows": s.source_rows, "loaded": s.loaded_rows, "seconds": s.seconds, "reader": s.reader,
                  "cpu_seconds": usage.ru_utime + usage.ru_stime, "peak_rss_mib": usage.ru_maxrss / 1024,
                  "load_1min": os.getloadavg()[0]}))
"""


class SkipSource(Exception):
    """The source was not asked for."""


def build_sqlite(demo: Path, target: Path, rows: int) -> int:
    con = duckdb.connect(config={"extension_directory": extension_directory()})
    con.execute("LOAD sqlite")
    con.execute(f"ATTACH '{demo / 'journal.sqlite'}' AS demo (TYPE sqlite, READ_ONLY)")
    base = con.execute("SELECT count(*) FROM demo.journal").fetchone()[0]
    copies = -(-rows // base)
    con.execute(f"ATTACH '{target}' AS big (TYPE sqlite)")
    cols = ", ".join(
        f'"{c}" + k * {base} AS "ID"'
        if c == "ID"
        else f'"{c}" || \'-\' || k AS "{c}"'
        if c == "TrackerID"
        else f'"{c}"'
        for c in JOURNAL_COLUMNS
    )
    con.execute(
        f"CREATE TABLE big.journal AS SELECT {cols} FROM demo.journal, range({copies}) t(k) "
        f'ORDER BY k, "ID" LIMIT {rows}'
    )
    n = con.execute("SELECT count(*) FROM big.journal").fetchone()[0]
    con.close()
    return n


def build_postgres(sqlite_path: Path, table: str) -> int:
    engine = sa.create_engine(PG_URL)
    types = {c: "TIMESTAMP" for c in ("StartTime", "StopTime", "ConnectTime", "DisconnectTime")}
    types.update(
        {
            c: "INTEGER"
            for c in (
                "DurationTotal",
                "DurationConnected",
                "Outbound",
                "Internal",
                "SuccessState",
                "ReadFlag",
                "PrivateCall",
            )
        }
    )
    types["ID"] = "BIGINT PRIMARY KEY"
    ddl = ", ".join(f'"{c}" {types.get(c, "VARCHAR(255)")}' for c in JOURNAL_COLUMNS)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE TABLE "{table}" ({ddl})'))
    engine.dispose()
    con = duckdb.connect(config={"extension_directory": extension_directory()})
    con.execute("LOAD sqlite")
    con.execute("LOAD postgres")
    con.execute(f"ATTACH '{sqlite_path}' AS big (TYPE sqlite, READ_ONLY)")
    con.execute("ATTACH 'host=127.0.0.1 port=5432 dbname=test user=postgres' AS pg (TYPE postgres)")
    casts = ", ".join(
        f'CAST("{c}" AS TIMESTAMP)'
        if types.get(c) == "TIMESTAMP"
        else f'CAST("{c}" AS INTEGER)'
        if types.get(c) == "INTEGER"
        else f'CAST("{c}" AS BIGINT)'
        if c == "ID"
        else f'"{c}"'
        for c in JOURNAL_COLUMNS
    )
    con.execute(f'INSERT INTO pg.public."{table}" SELECT {casts} FROM big.journal')
    n = con.execute(f'SELECT count(*) FROM pg.public."{table}"').fetchone()[0]
    con.close()
    return n


def measure(url: str, table: str, raw: Path, demo: Path, run_id: str = "bench") -> dict:
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", RUNNER, url, table, str(raw), str(demo), run_id],
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - t0
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result.update(wall_seconds=wall, rows_per_second=result["rows"] / result["seconds"])
    return result


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--sources", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    p.add_argument("--rerun", action="store_true", help="also extract the same window again (nothing changed)")
    p.add_argument("--out", default="bench-results/extract.json")
    args = p.parse_args()
    sources = set(args.sources.split(","))
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        generate(work / "demo", seed=1, days=120, users=60, end=END)
        t0 = time.perf_counter()
        n = build_sqlite(work / "demo", work / "big.sqlite", args.rows)
        print(f"built SQLite journal: {n} rows in {time.perf_counter() - t0:.1f} s", flush=True)
        if "sqlite" in sources:
            url = f"sqlite:///{work / 'big.sqlite'}"
            results["sqlite"] = measure(url, "journal", work / "raw-sqlite.duckdb", work / "demo")
            if args.rerun:
                results["sqlite rerun"] = measure(url, "journal", work / "raw-sqlite.duckdb", work / "demo", "again")
        table = f"bench_journal_{uuid.uuid4().hex[:8]}"
        try:
            if "postgresql" not in sources:
                raise SkipSource
            t0 = time.perf_counter()
            build_postgres(work / "big.sqlite", table)
            print(f"built PostgreSQL journal in {time.perf_counter() - t0:.1f} s", flush=True)
            results["postgresql"] = measure(PG_URL, table, work / "raw-pg.duckdb", work / "demo")
            if args.rerun:
                results["postgresql rerun"] = measure(PG_URL, table, work / "raw-pg.duckdb", work / "demo", "again")
        except SkipSource:
            pass
        except sa.exc.OperationalError as exc:
            print(f"PostgreSQL skipped: {exc.orig}")
        finally:
            try:
                engine = sa.create_engine(PG_URL)
                with engine.begin() as conn:
                    conn.execute(sa.text(f'DROP TABLE IF EXISTS "{table}"'))
                engine.dispose()
            except sa.exc.OperationalError:
                pass
    header = f"{'source':<18}{'rows':>12}{'seconds':>10}{'rows/s':>12}{'CPU s':>8}{'peak RSS MiB':>14}{'load':>6}"
    print(f"\n{header}  reader")
    for name, r in results.items():
        print(
            f"{name:<18}{r['rows']:>12,}{r['seconds']:>10.2f}{r['rows_per_second']:>12,.0f}{r['cpu_seconds']:>8.1f}"
            f"{r['peak_rss_mib']:>14,.0f}{r['load_1min']:>6.1f}  {r['reader']}"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": args.rows, "results": results}, indent=2))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
