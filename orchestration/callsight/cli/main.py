"""The `callsight` command."""

from __future__ import annotations

import argparse
import os
import sys

from callsight.bi.admin_passwords import SharedPasswordError
from callsight.cli.backup import add_parsers as add_backup_parsers
from callsight.cli.commands import (
    _print,
    cmd_dbt_docs,
    cmd_demo_data,
    cmd_dq_docs,
    cmd_erase,
    cmd_privacy_report,
    cmd_provision,
    cmd_rollback,
    cmd_run,
    cmd_schema_doc,
)
from callsight.cli.demo import cmd_demo
from callsight.cli.export_assets import add_export_assets_command
from callsight.cli.health import add_health_command
from callsight.cli.ldap import add_ldap_command
from callsight.cli.serve import cmd_serve
from callsight.cli.service import add_service_command
from callsight.cli.source import add_source_commands
from callsight.site.file_modes import secure_home
from callsight.site.run_lock import RunBusyError
from callsight.site.secret_files import export_secret_files
from callsight.site.settings import Settings
from callsight.site.yaml_config import ConfigError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="callsight", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo-data", help="write a demo journal, org directory and policy into CALLSIGHT_HOME")
    d.add_argument("--seed", type=int, default=42)
    d.add_argument("--days", type=int, default=90)
    d.add_argument("--users", type=int, default=60)
    d.add_argument("--end", help="last day (YYYY-MM-DD); default yesterday")
    d.add_argument("--force", action="store_true", help="overwrite existing demo data")
    d.set_defaults(func=cmd_demo_data)
    r = sub.add_parser("run", help="run the nightly job once (extract, build, check, publish)")
    r.add_argument("--date", help="one partition day (YYYY-MM-DD)")
    r.add_argument("--from", dest="from_", help="first partition day of a backfill")
    r.add_argument("--to", help="last partition day of a backfill")
    r.add_argument("--full-refresh", action="store_true", help="rebuild incremental models from scratch")
    r.set_defaults(func=cmd_run)
    pv = sub.add_parser("provision", help="Superset: connection, assets, roles, users, row-level security")
    pv.set_defaults(func=cmd_provision)
    for name, func, helptext in (
        ("serve", cmd_serve, "serve Superset (:8088), the Dagster daemon and UI (:3000)"),
        ("demo", cmd_demo, "demo data -> nightly run -> provision -> serve"),
    ):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("--port", type=int, default=8088)
        s.add_argument("--dagster-port", type=int, default=3000)
        s.add_argument("--once", action="store_true", help="stop after reaching 'ready' (for scripts)")
        s.add_argument(
            "--no-dagster-ui", action="store_true", help="Dagster daemon only (schedules run), no Dagster UI"
        )
        if name == "serve":
            s.add_argument("--host", default="127.0.0.1", help="Superset's listen address (default loopback)")
        s.set_defaults(func=func)
    dd = sub.add_parser("dbt-docs", help="generate (and --serve) the dbt docs for analysts")
    dd.add_argument("--serve", action="store_true")
    dd.add_argument("--port", type=int, default=8081)
    dd.set_defaults(func=cmd_dbt_docs)
    dq = sub.add_parser("dq-docs", help="run the data-quality suites on the published warehouse, write GX Data Docs")
    dq.set_defaults(func=cmd_dq_docs)
    rb = sub.add_parser("rollback", help="serve the previously published warehouse again")
    rb.add_argument("build", nargs="?", help="a kept build (see --list); default the newest")
    rb.add_argument("--list", action="store_true", help="list the kept builds, newest first")
    rb.set_defaults(func=cmd_rollback)
    er = sub.add_parser(
        "erase", help="erasure request (GDPR Art. 17): clear a number's or contact's calls everywhere, now"
    )
    er.add_argument("--phone", action="append", metavar="NUMBER", help="phone number, any format (repeatable)")
    er.add_argument("--contact", action="append", metavar="NAME", help="contact name (repeatable)")
    er.set_defaults(func=cmd_erase)
    pr = sub.add_parser("privacy-report", help="processing record for the DPO and works council, from the live config")
    pr.add_argument("--format", choices=("md", "html"), default="md")
    pr.add_argument("--lang", choices=("de", "en"), help="language (default: CALLSIGHT_LOCALE, else de)")
    pr.add_argument("--output", metavar="PATH", help="default: CALLSIGHT_HOME/reports/processing-record-<date>.<fmt>")
    pr.set_defaults(func=cmd_privacy_report)
    sd = sub.add_parser("schema-doc", help="regenerate docs/warehouse-schema.md from the dbt YAML")
    sd.set_defaults(func=cmd_schema_doc)
    add_source_commands(sub)  # check-source, copy-journal
    add_service_command(sub)  # one production service in the foreground (systemd units)
    add_health_command(sub)
    add_backup_parsers(sub)  # backup, restore, export-erasures
    add_ldap_command(sub)  # directory-from-ldap
    add_export_assets_command(sub)  # Superset UI edits back into superset/assets
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        # <NAME>_FILE secrets become plain variables for this process and all it starts (secret_files).
        for warning in export_secret_files(os.environ):
            _print(f"callsight: warning: {warning}")
        settings = Settings.from_env()
    except ValueError as exc:
        _print(f"callsight: {exc}")
        return 2
    secure_home(settings)  # owner-only files for this command and every process it starts
    try:
        return args.func(settings, args)
    except ConfigError as exc:
        _print(f"callsight: configuration refused:\n{exc}")
        return 2
    except SharedPasswordError as exc:
        _print(f"callsight: {exc}")
        return 2
    except RunBusyError as exc:
        _print(f"callsight: {exc}")
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
