"""`callsight health`: one line and a Nagios exit code for the company's monitoring (--json: every probe)."""

from __future__ import annotations

import argparse

from callsight.cli.commands import _print
from callsight.site.settings import Settings


def add_health_command(sub: argparse._SubParsersAction) -> None:
    h = sub.add_parser(
        "health",
        help="check Superset, last night, the served warehouse, disk, Celery, reports (exit 0/1/2/3 as Nagios)",
    )
    h.add_argument("--json", action="store_true", help="every probe's state, value and message as JSON")
    h.set_defaults(func=cmd_health)


def cmd_health(settings: Settings, args: argparse.Namespace) -> int:
    from callsight.operations.health import State, report_json, summary_line, worst
    from callsight.operations.probes import run_probes

    try:
        results = run_probes(settings)
    except ValueError as exc:  # a threshold setting that is no number
        _print(f"CALLSIGHT UNKNOWN - {exc}")
        return int(State.UNKNOWN)
    _print(report_json(results) if args.json else summary_line(results))
    return int(worst(results))
