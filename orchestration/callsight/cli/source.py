"""`callsight check-source` (is the journal readable, and what will a night make of it) and
`callsight copy-journal` (a consistent copy of a live SQLite journal)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from callsight.cli.commands import _print
from callsight.site.settings import Settings

# The report's languages (extract/source_report.py LANGUAGES; imported only when the command runs,
# so `callsight --help` does not load the readers).
LANGUAGES = ("en", "de")


def report_language(settings: Settings, chosen: str | None) -> str:
    """--lang, else the site's language (CALLSIGHT_LOCALE, German by default), as the mails and the record."""
    return chosen or settings.locale


def cmd_check_source(settings: Settings, args: argparse.Namespace) -> int:
    """Report on CALLSIGHT_JOURNAL_URL / CALLSIGHT_JOURNAL_TABLE; exit 0 ready, 1 warnings, 2 cannot work."""
    from callsight.extract.source_check import exit_code, gather, judge
    from callsight.extract.source_report import report_json, report_text
    from callsight.journal.sources import Source
    from callsight.site.directory import Directory, load_directory
    from callsight.site.policy import Policy, load_policy

    lang = report_language(settings, args.lang)
    # Missing files are no error before the first night (defaults); a file that is there must be valid.
    policy_path, directory_path = settings.effective_policy_path, settings.effective_directory_path
    policy = load_policy(policy_path) if policy_path.exists() else Policy()
    found = directory_path.exists()
    directory = load_directory(directory_path) if found else Directory(users=[])
    source = Source(settings.journal_url, settings.journal_table)
    facts = gather(source, directory, policy, sample_rows=args.sample_rows, directory_found=found)
    findings = judge(facts, args.max_quarantine_share / 100)
    if args.json:
        _print(json.dumps(report_json(facts, findings, lang), ensure_ascii=False, indent=2))
    else:
        _print(report_text(facts, findings, lang).rstrip("\n"))
    return exit_code(findings)


def cmd_copy_journal(settings: Settings, args: argparse.Namespace) -> int:
    from callsight.journal.sqlite_copy import CopyRefusedError, copy_journal

    try:
        result = copy_journal(Path(args.source), Path(args.dest))
    except CopyRefusedError as exc:
        _print(f"callsight copy-journal: {exc}")
        return 2
    _print(
        f"copied {result.source} to {result.dest} ({result.bytes / 2**20:.1f} MiB in {result.seconds:.1f} s); "
        "PRAGMA integrity_check: ok. The copy holds cleartext calls: keep it owner-only, delete it when done."
    )
    return 0


def add_source_commands(sub: argparse._SubParsersAction) -> None:
    """The subparsers of check-source and copy-journal (registered by cli/main.py)."""
    cs = sub.add_parser(
        "check-source", help="before the first night: is the journal readable, what will callsight make of it"
    )
    cs.add_argument("--lang", choices=LANGUAGES, help="report language (default: the site's CALLSIGHT_LOCALE, de)")
    cs.add_argument("--json", action="store_true", help="the same facts as JSON")
    cs.add_argument("--sample-rows", type=int, default=100_000, metavar="N", help="rows read to measure the read rate")
    cs.add_argument(
        "--max-quarantine-share",
        type=float,
        default=1.0,
        metavar="PERCENT",
        help="warn when more of the rows a night reads would be quarantined (default 1)",
    )
    cs.set_defaults(func=cmd_check_source)
    cj = sub.add_parser(
        "copy-journal", help="consistent copy of a live SQLite journal (SQLite backup API), never over the source"
    )
    cj.add_argument("source", metavar="SOURCE.sqlite")
    cj.add_argument("dest", metavar="DEST.sqlite")
    cj.set_defaults(func=cmd_copy_journal)
