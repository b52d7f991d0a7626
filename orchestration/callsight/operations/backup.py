"""`callsight backup`: everything needed after losing the server, in one archive (see docs/operations.md).

Parts: the raw store (masked journal mirror, quarantine, erasure register, audit log, number-key salt),
the data-quality record, the served warehouse and the kept builds with the week files they name
(publish/week_files.py), Superset's metadata database and its
security events not yet in the audit log, the org directory and the policy, and the demo journal when the
site runs on it. Each part is copied consistently while the services run (operations/snapshots.py).
Secrets are not part of it: the archive names the variables to keep apart.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from callsight.operations.archive import (
    PARTIAL_MARK,
    Manifest,
    Part,
    prune_archives,
    remove_stale_partials,
    write_archive,
)
from callsight.operations.erasure_register import read_register
from callsight.operations.snapshots import LOCK_WAIT_SECONDS, copy_duckdb, copy_sqlite, link_or_copy
from callsight.operations.superset_metadata import SQLITE, locate, pg_dump
from callsight.publish.builds import served_build_id, stored_fingerprint
from callsight.publish.week_files import listed_files
from callsight.site.file_modes import restrict_umask
from callsight.site.halt import HALT_AT, HALT_MARKER
from callsight.site.home import kept_builds
from callsight.site.settings import Settings

# Part kinds: the manifest says what each file is, and a restore puts it back by its kind.
RAW_STORE = "raw_store"
DQ_RECORD = "data_quality_record"
SERVED = "served_warehouse"
KEPT_BUILD = "kept_build"
WEEK_FILE = "week_file"
WEEK_FILES_IN_ARCHIVE = "warehouse/parts"  # + the file's name relative to the parts folder
SUPERSET_SQLITE = "superset_metadata_sqlite"
SUPERSET_PG = "superset_metadata_postgresql"
SECURITY_EVENTS = "superset_security_events"
DIRECTORY = "org_directory"
POLICY = "policy"
DEMO_JOURNAL = "demo_journal"
# Kept apart from every archive (docs/operations.md, "Secrets").
SECRETS = ("CALLSIGHT_ERASURE_KEY", "CALLSIGHT_PSEUDONYM_KEY", "SUPERSET_SECRET_KEY", "SUPERSET_ADMIN_PASSWORD")
HALT_STAGE = "backup"  # test-only: CALLSIGHT_TEST_HALT_AT=backup stops after the first file is archived
HALT_SECONDS = 600.0


class BackupError(RuntimeError):
    pass


@dataclass(frozen=True)
class BackupResult:
    path: Path
    manifest: Manifest
    pruned: tuple[Path, ...]
    seconds: float

    @property
    def size(self) -> int:
        return self.path.stat().st_size


def default_output(settings: Settings, compress: bool, now: datetime | None = None) -> Path:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return settings.home / "backups" / f"callsight-{stamp}.tar{'.gz' if compress else ''}"


def callsight_version() -> str:
    try:
        return metadata.version("callsight")
    except metadata.PackageNotFoundError:
        return "unknown"


def collect_parts(settings: Settings, work: Path, wait_seconds: float) -> Iterator[Part]:
    """Copy or pin each part in `work` (owner-only) and describe it; the raw store first."""
    if not settings.raw_db.exists():
        raise BackupError(f"no raw store at {settings.raw_db}: nothing to back up before the first night")
    raw = work / "journal.duckdb"
    copy_duckdb(settings.raw_db, raw, wait_seconds)
    yield Part(
        "raw/journal.duckdb",
        RAW_STORE,
        "raw store: masked journal, quarantine, erasure register, audit log, number-key salt",
        raw,
        str(settings.raw_db),
    )
    if settings.validated_rows_db.exists():
        record = work / "validated_rows.duckdb"
        copy_duckdb(settings.validated_rows_db, record, wait_seconds)
        yield Part(
            "raw/validated_rows.duckdb",
            DQ_RECORD,
            "data-quality record of validated rows (row hashes)",
            record,
            str(settings.validated_rows_db),
        )
    builds = []
    if settings.served_db.exists():
        served = work / "callsight.duckdb"
        link_or_copy(settings.served_db, served)
        builds.append(served)
        yield Part("warehouse/callsight.duckdb", SERVED, "served warehouse", served, str(settings.served_db))
    for kept in kept_builds(settings.served_db):
        pinned = work / "history" / kept.name
        pinned.parent.mkdir(exist_ok=True, mode=0o700)
        try:
            link_or_copy(kept, pinned)
        except FileNotFoundError:  # a night pruned it meanwhile
            continue
        builds.append(pinned)
        yield Part(f"warehouse/history/{kept.name}", KEPT_BUILD, "kept build (callsight rollback)", pinned, str(kept))
    yield from _week_file_parts(settings, work, builds)
    yield from _superset_parts(settings, work)
    for path, name, kind, what in (
        (settings.effective_directory_path, "config/directory.yaml", DIRECTORY, "org directory"),
        (settings.effective_policy_path, "config/policy.yaml", POLICY, "policy"),
    ):
        if path.exists():
            copy = work / Path(name).name
            shutil.copyfile(path, copy)
            yield Part(name, kind, what, copy, str(path))
    if settings.is_demo_journal() and settings.demo_journal_path.exists():
        journal = work / "journal.sqlite"
        copy_sqlite(settings.demo_journal_path, journal)
        yield Part(
            "demo/journal.sqlite",
            DEMO_JOURNAL,
            "demo journal (the demo's source)",
            journal,
            str(settings.demo_journal_path),
        )


def _week_file_parts(settings: Settings, work: Path, builds: list[Path]) -> Iterator[Part]:
    """The week files the pinned warehouse files name (hard links: the files are never changed)."""
    for name in sorted(set().union(*(listed_files(b) for b in builds))):
        pinned = work / "parts" / name
        pinned.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            link_or_copy(settings.parts_dir / name, pinned)
        except FileNotFoundError as exc:  # only a republish with no kept builds (an erasure's) deletes them
            raise BackupError(f"{name}: a week file of the warehouse went during the backup; run it again") from exc
        yield Part(f"{WEEK_FILES_IN_ARCHIVE}/{name}", WEEK_FILE, "week file of the warehouse", pinned, str(pinned))


def _superset_parts(settings: Settings, work: Path) -> Iterator[Part]:
    db = locate(settings)
    if db.kind == SQLITE:
        if db.path is not None and db.path.exists():
            copy = work / "superset.db"
            copy_sqlite(db.path, copy)
            yield Part("superset/superset.db", SUPERSET_SQLITE, "Superset metadata (SQLite)", copy, str(db.path))
    else:
        dump = work / "superset.pgdump"
        pg_dump(db, dump)
        yield Part("superset/metadata.pgdump", SUPERSET_PG, "Superset metadata (pg_dump, custom format)", dump, db.url)
    events = settings.superset_home / "security-events.jsonl"
    if events.exists():
        copy = work / events.name
        shutil.copyfile(events, copy)
        yield Part(
            "superset/security-events.jsonl",
            SECURITY_EVENTS,
            "Superset security events not yet moved into the audit log",
            copy,
            str(events),
        )


def site_facts(settings: Settings, raw_copy: Path) -> dict[str, object]:
    """What a restore and an admin want to know without opening the files (no personal data)."""
    import duckdb

    con = duckdb.connect(str(raw_copy), read_only=True)
    try:
        register = read_register(con)
    finally:
        con.close()
    newest = max((r.requested_at for r in register), default=None)
    return {
        "site_home": str(settings.home),
        "erasure_requests": len({r.request_id for r in register}),
        "erasure_identifiers": len(register),
        "newest_erasure_request": newest.isoformat() if newest else None,
        "served_build_id": served_build_id(settings.served_db),
        "served_build_fingerprint": stored_fingerprint(settings.served_db),
        "superset_metadata": locate(settings).kind,
        "secrets_not_included": list(SECRETS),
    }


def backup(
    settings: Settings,
    output: Path | None = None,
    compress: bool = False,
    keep: int | None = None,
    wait_seconds: float = LOCK_WAIT_SECONDS,
) -> BackupResult:
    """Write one archive of the site (temp name, then renamed); with `keep`, prune older default-named
    archives in the same folder down to `keep`."""
    started = time.perf_counter()
    restrict_umask()
    output = (output or default_output(settings, compress)).resolve()
    output.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    remove_stale_partials(output.parent)
    work = output.parent / f".callsight-backup-work{PARTIAL_MARK}{os.getpid()}"
    work.mkdir(mode=0o700)
    try:
        parts = list(collect_parts(settings, work, wait_seconds))
        facts = site_facts(settings, parts[0].source)
        manifest = write_archive(
            output, parts, callsight_version(), facts, compress, after_member=lambda _name: _halt(settings)
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    pruned = tuple(prune_archives(output.parent, keep)) if keep else ()
    return BackupResult(output, manifest, pruned, time.perf_counter() - started)


def _halt(settings: Settings) -> None:
    """Test-only (like site/halt.py): with CALLSIGHT_TEST_HALT_AT=backup, write the marker and wait to
    be killed, with the archive half written under its temporary name."""
    if settings.env.get(HALT_AT) != HALT_STAGE:
        return
    marker = Path(settings.env[HALT_MARKER])
    marker.write_text(json.dumps({"stage": HALT_STAGE, "pid": os.getpid()}), encoding="utf-8")
    time.sleep(HALT_SECONDS)
    raise BackupError(f"halted at {HALT_STAGE} for {HALT_SECONDS:.0f} s and nobody killed the backup")
