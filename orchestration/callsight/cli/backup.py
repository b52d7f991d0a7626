"""`callsight backup`, `callsight restore` and `callsight export-erasures` (docs/operations.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from callsight.cli.commands import _print
from callsight.site.settings import Settings


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register the three subcommands on the `callsight` parser."""
    b = sub.add_parser("backup", help="archive everything needed after losing the server (no secrets)")
    b.add_argument("--output", metavar="PATH", help="default: CALLSIGHT_HOME/backups/callsight-<UTC time>.tar[.gz]")
    b.add_argument("--gzip", action="store_true", help="compress the archive (.tar.gz)")
    b.add_argument("--keep", type=int, metavar="N", help="then delete all but the newest N archives in that folder")
    b.set_defaults(func=cmd_backup)
    r = sub.add_parser("restore", help="restore an archive; erasures made since are re-applied")
    r.add_argument("archive", help="a `callsight backup` archive")
    r.add_argument(
        "--erasures",
        action="append",
        metavar="FILE",
        help="an erasure register export (`callsight export-erasures`) to re-apply too (repeatable)",
    )
    r.add_argument("--force", action="store_true", help="overwrite the site that is there")
    r.set_defaults(func=cmd_restore)
    e = sub.add_parser("export-erasures", help="write the erasure register (keyed hashes only) to keep apart")
    e.add_argument("--output", metavar="PATH", required=True)
    e.set_defaults(func=cmd_export_erasures)


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def cmd_backup(settings: Settings, args: argparse.Namespace) -> int:
    import duckdb

    from callsight.operations.backup import BackupError, backup
    from callsight.operations.superset_metadata import MetadataError

    if args.keep is not None and args.keep < 1:
        _print("callsight backup: --keep must be at least 1")
        return 2
    output = Path(args.output).resolve() if args.output else None
    try:
        result = backup(settings, output, compress=args.gzip, keep=args.keep)
    except (BackupError, MetadataError, duckdb.Error) as exc:
        _print(f"callsight backup FAILED, the previous archives are untouched: {exc}")
        return 1
    kinds = sorted({e.kind for e in result.manifest.files})
    _print(
        f"backup written to {result.path} ({_size(result.size)}, {len(result.manifest.files)} files: "
        f"{', '.join(kinds)}) in {result.seconds:.1f} s"
    )
    if result.pruned:
        _print(f"older archives deleted: {', '.join(p.name for p in result.pruned)}")
    _print(
        "Not in the archive, keep them apart: CALLSIGHT_ERASURE_KEY, CALLSIGHT_PSEUDONYM_KEY, SUPERSET_SECRET_KEY "
        "and the other secrets of your environment (see docs/operations.md)."
    )
    return 0


def cmd_restore(settings: Settings, args: argparse.Namespace) -> int:
    from callsight.operations.archive import ArchiveError
    from callsight.operations.restore import RestoreError, restore
    from callsight.operations.superset_metadata import MetadataError
    from callsight.privacy.erasure import ErasureKeyError

    exports = [Path(p).resolve() for p in args.erasures or []]
    try:
        result = restore(settings, Path(args.archive).resolve(), exports, force=args.force)
    except (ArchiveError, RestoreError, ErasureKeyError, ValueError) as exc:
        _print(f"callsight restore refused: {exc}")
        return 2
    except MetadataError as exc:
        _print(f"callsight restore FAILED, nothing was put in place: Superset's metadata could not be restored: {exc}")
        return 1
    m = result.manifest
    _print(
        f"restored {result.files} files of the backup of {m.created_at} (callsight {m.callsight_version}); "
        f"{result.kept_builds_restored} kept build(s)"
    )
    _print(
        f"erasure register: {result.register_rows} identifier(s), {result.register_rows_added} not in the archive; "
        f"{result.scrubbed.journal_rows} call legs and {result.scrubbed.quarantine_rows} quarantined rows cleared"
    )
    for note in result.notes:
        _print(f"note: {note}")
    if result.republished is None:
        _print("the archive's warehouse is served: no erasure is newer than it")
        return 0
    if not result.republished:
        _print(
            f"FAILED to rebuild the warehouse without the erased calls: {result.failure}\n"
            "The served warehouse may still hold them until a run publishes: fix the cause and run `callsight run`."
        )
        return 1
    _print("warehouse rebuilt without the erased calls and published; the archive's kept builds were left out")
    return 0


def cmd_export_erasures(settings: Settings, args: argparse.Namespace) -> int:
    from callsight.operations.erasure_register import write_export

    path = Path(args.output).resolve()
    rows = write_export(settings, path)
    _print(f"erasure register ({rows} identifier(s), keyed hashes only) written to {path}: keep it apart")
    return 0
