"""`make bench` (python -m bench): the benchmark at scale beside bare DuckDB and pandas; table + JSON.

The benchmark lives outside the callsight package: it drives the product, the product never imports it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.runner import RERUNNABLE, BenchOptions, run_bench
from callsight.bi.runtime import WEB_THREADS, WEB_WORKERS
from callsight.site.settings import Settings


def _think(text: str) -> tuple[float, float]:
    low, high = (float(v) for v in text.split(","))
    if not 0 <= low <= high:
        raise argparse.ArgumentTypeError("--think MIN,MAX with 0 <= MIN <= MAX")
    return low, high


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"a whole number of at least 1, got {text!r}")
    return int(text)


def _only(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names or set(names) - set(RERUNNABLE):
        raise argparse.ArgumentTypeError(f"--only takes {', '.join(RERUNNABLE)}")
    return names


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--rows", type=int, action="append", help="history rows (repeatable); default 1000000")
    p.add_argument("--night-rows", type=int, default=150_000, help="rows of the incremental night")
    p.add_argument("--skip-superset", action="store_true", help="no chart latency and load test")
    p.add_argument("--no-postgres", action="store_true", help="no PostgreSQL extract")
    p.add_argument(
        "--postgres", default="host=127.0.0.1 port=5432 dbname=postgres user=postgres", help="libpq conninfo"
    )
    p.add_argument("--samples", type=int, default=10, help="timed requests per chart")
    p.add_argument("--load-users", type=int, default=25)
    p.add_argument("--load-seconds", type=float, default=60.0)
    p.add_argument("--team-users", type=int, default=25, help="users of the team load (issue #31)")
    p.add_argument("--team-minutes", type=float, default=5.0, help="minutes of the team load")
    p.add_argument("--think", type=_think, default=(10.0, 30.0), help="a user's think time, seconds: MIN,MAX")
    p.add_argument("--skip-team", action="store_true", help="no team load")
    p.add_argument("--web-workers", type=_positive, default=WEB_WORKERS, help="Superset's gunicorn workers")
    p.add_argument("--web-threads", type=_positive, default=WEB_THREADS, help="threads per gunicorn worker")
    p.add_argument(
        "--only",
        type=_only,
        default=(),
        help=f"run just these stages ({','.join(RERUNNABLE)}) again on the site a --keep run left in --work",
    )
    p.add_argument("--work", help="working directory (default CALLSIGHT_HOME/bench)")
    p.add_argument("--out", help="directory of the JSON results (default ./bench-results)")
    p.add_argument("--keep", action="store_true", help="keep the generated journals and warehouses")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    home = Settings.from_env().home
    opts = BenchOptions(
        work=Path(args.work) if args.work else home / "bench",
        out_dir=Path(args.out) if args.out else Path("bench-results"),
        night_rows=args.night_rows,
        postgres=None if args.no_postgres else args.postgres,
        superset=not args.skip_superset,
        chart_samples=args.samples,
        load_users=args.load_users,
        load_seconds=args.load_seconds,
        keep=args.keep or bool(args.only),
        team=not args.skip_team,
        team_users=args.team_users,
        team_minutes=args.team_minutes,
        think=args.think,
        only=args.only,
        web=(args.web_workers, args.web_threads),
    )
    results, _ = run_bench(args.rows or [1_000_000], opts)
    failed = [f"{r['rows']:,}: {name}" for r in results for name, s in r["stages"].items() if not s["ok"]]
    if failed:
        print(f"bench: stages failed: {'; '.join(failed)} (logs under {opts.work})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
