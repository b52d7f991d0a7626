"""`callsight restore ARCHIVE`: put a backup back, with every erasure known anywhere re-applied.

1. The archive is read whole and every file checked against its manifest before anything is written.
2. A site already there (raw store, warehouse, kept builds, Superset's SQLite metadata, a directory or
   policy that differs) is only overwritten with `force`. The restore holds the run lock (site/run_lock.py)
   and the raw store: a night, an erasure or anything else holding either refuses it at once.
3. The files are extracted into a private folder in CALLSIGHT_HOME. The erasure register re-applied is
   the union of the archive's, the live raw store's (if any) and the given exports; the restored raw
   store is scrubbed by it (privacy/erasure.py) and the restore is an audit entry (kind `operations`).
4. The files are moved into place. When the archive's warehouse may hold calls erased since (the
   register grew, rows were scrubbed, or it was built before the newest request), its kept builds and
   data-quality record are left out, and the warehouse is rebuilt and published at once.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

from callsight.journal.raw_store import ensure_raw_store
from callsight.operations.archive import PARTIAL_MARK, Entry, Manifest, extract_archive, verify_archive
from callsight.operations.backup import (
    DEMO_JOURNAL,
    DIRECTORY,
    DQ_RECORD,
    KEPT_BUILD,
    POLICY,
    RAW_STORE,
    SECURITY_EVENTS,
    SERVED,
    SUPERSET_PG,
    SUPERSET_SQLITE,
    WEEK_FILE,
    WEEK_FILES_IN_ARCHIVE,
)
from callsight.operations.erasure_register import (
    RegisterRow,
    added,
    check_keys,
    load_exports,
    merge,
    read_register,
)
from callsight.operations.snapshots import is_lock_error
from callsight.operations.superset_metadata import POSTGRESQL, SQLITE, locate, pg_restore
from callsight.privacy.audit import append, record_audit
from callsight.privacy.erasure import ScrubCounts, erasure_key, prepare_matching, scrub_store
from callsight.publish.builds import stored_fingerprint
from callsight.publish.week_files import repoint
from callsight.quality.validated_rows import delete_record
from callsight.site.compaction import compact
from callsight.site.file_modes import restrict_umask
from callsight.site.home import history_dir, kept_builds
from callsight.site.run_lock import one_night
from callsight.site.settings import Settings

AUDIT_KIND = "operations"


class RestoreError(RuntimeError):
    pass


@dataclass(frozen=True)
class RestoreResult:
    manifest: Manifest
    files: int
    register_rows: int
    register_rows_added: int
    scrubbed: ScrubCounts
    kept_builds_restored: int
    republished: bool | None  # None: the archive's warehouse was up to date with the register
    failure: str | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Reapplied:
    archived: list[RegisterRow]
    merged: list[RegisterRow]
    new: list[RegisterRow]
    scrubbed: ScrubCounts


def needs_rebuild(reapplied: Reapplied, served_built_at: datetime | None) -> bool:
    """Pure: may the archive's warehouse (and kept builds) hold calls the merged register erases?"""
    if reapplied.new or reapplied.scrubbed.journal_rows or reapplied.scrubbed.quarantine_rows:
        return True
    newest = max((r.requested_at for r in reapplied.merged), default=None)
    return newest is not None and (served_built_at is None or served_built_at < newest)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def occupied(settings: Settings, manifest: Manifest) -> list[str]:
    """What a restore would overwrite on this site (empty on a new server)."""
    found = [str(p) for p in (settings.raw_db, settings.served_db) if p.exists()]
    found += [str(p) for p in kept_builds(settings.served_db)]
    db = locate(settings)
    if db.kind == SQLITE and db.path is not None and db.path.exists() and manifest.by_kind(SUPERSET_SQLITE):
        found.append(str(db.path))
    for kind, path in ((DIRECTORY, settings.effective_directory_path), (POLICY, settings.effective_policy_path)):
        entries = manifest.by_kind(kind)
        if entries and path.exists() and _sha256(path) != entries[0].sha256:
            found.append(f"{path} (differs from the archive's)")
    return found


def check_superset_target(settings: Settings, manifest: Manifest) -> None:
    """The archive's metadata must go where this site's Superset looks for it."""
    kind = locate(settings).kind
    if manifest.by_kind(SUPERSET_SQLITE) and kind != SQLITE:
        raise RestoreError(
            "the archive holds Superset metadata in SQLite, but SUPERSET_DATABASE_URI names "
            f"{kind}: unset it (or restore on a site configured like the backed-up one)"
        )
    if manifest.by_kind(SUPERSET_PG) and kind != POSTGRESQL:
        raise RestoreError(
            "the archive holds a PostgreSQL dump of Superset's metadata: set "
            "SUPERSET_DATABASE_URI to the (empty) PostgreSQL database to restore it into"
        )


@contextlib.contextmanager
def holding_raw_store(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection | None]:
    """The live raw store opened for writing (no night can start its extract meanwhile); refused at once
    while a night or another command holds it."""
    if not settings.raw_db.exists():
        yield None
        return
    try:
        con = duckdb.connect(str(settings.raw_db))
    except duckdb.Error as exc:
        if is_lock_error(exc):
            raise RestoreError(
                f"{settings.raw_db} is in use (a nightly run?): restore refused; try again when it has finished"
            ) from exc
        raise
    try:
        con.execute("CHECKPOINT")  # nothing of the old store is left in a WAL beside the new one
        yield con
    finally:
        con.close()


def reapply_register(
    raw: Path, live: Sequence[RegisterRow], exports: Sequence[RegisterRow], key: str | None, detail: dict
) -> Reapplied:
    """Merge the registers into the restored raw store, scrub it, and record the restore (one
    transaction); compacted afterwards when rows were scrubbed."""
    con = duckdb.connect(str(raw))
    try:
        ensure_raw_store(con)  # an archive of an older version gets today's tables
        archived = read_register(con)
        merged = merge(archived, live, exports)
        new = added(archived, merged)
        check_keys(merged, key)
        con.execute("BEGIN TRANSACTION")
        if new:
            con.executemany("INSERT INTO erasure_register VALUES (?, ?, ?, ?, ?)", [r.values() for r in new])
        scrubbed = ScrubCounts(0, 0)
        if merged and key:
            prepare_matching(con, key)
            scrubbed = scrub_store(con, datetime.now())
        append(
            con,
            AUDIT_KIND,
            "restore",
            {
                **detail,
                "event": "restored",
                "register_identifiers": len(merged),
                "register_identifiers_added": len(new),
                "journal_rows_erased": scrubbed.journal_rows,
                "quarantine_rows_erased": scrubbed.quarantine_rows,
            },
        )
        con.execute("COMMIT")
    finally:
        con.close()
    if scrubbed.journal_rows or scrubbed.quarantine_rows:
        compact(raw)
    return Reapplied(archived, merged, new, scrubbed)


def built_at(warehouse: Path | None) -> datetime | None:
    """When a warehouse file was built, as naive local time like the register's request times."""
    if warehouse is None:
        return None
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        value = con.execute("SELECT max(built_at) FROM marts.build_info").fetchone()[0]
    except duckdb.Error:
        return None
    finally:
        con.close()
    if value is None:
        return None
    return value.astimezone().replace(tzinfo=None) if value.tzinfo else value


def put_in_place(staged: Path, dst: Path) -> None:
    """Move a restored file to its place (a rename; a copy and rename across file systems)."""
    dst.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    for log in (".wal", "-wal", "-shm"):  # a write-ahead log of the replaced file (DuckDB's, SQLite's) must not replay
        dst.with_name(dst.name + log).unlink(missing_ok=True)
    try:
        os.replace(staged, dst)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        tmp = dst.with_name(f".{dst.name}.restore-tmp")
        shutil.copyfile(staged, tmp)
        os.chmod(tmp, 0o600)
        os.replace(tmp, dst)


def place_files(settings: Settings, manifest: Manifest, files: dict[str, Path], rebuild: bool) -> tuple[int, list[str]]:
    """Every restored file to where this site keeps it; returns (kept builds restored, notes)."""
    notes: list[str] = []
    by_kind: dict[str, list[Entry]] = {}
    for entry in manifest.files:
        by_kind.setdefault(entry.kind, []).append(entry)
    metadata = locate(settings)
    for entry in by_kind.get(SUPERSET_PG, []):  # first: if it fails (one transaction), nothing was replaced
        pg_restore(metadata, files[entry.name])
    for entry in by_kind.get(SUPERSET_SQLITE, []):
        if metadata.path is not None:
            put_in_place(files[entry.name], metadata.path)
    for entry in by_kind.get(RAW_STORE, []):
        put_in_place(files[entry.name], settings.raw_db)
    delete_record(settings.validated_rows_db)  # the live one describes other rows
    if not rebuild:
        for entry in by_kind.get(DQ_RECORD, []):
            put_in_place(files[entry.name], settings.validated_rows_db)
    shutil.rmtree(settings.build_db.parent, ignore_errors=True)
    settings.served_db.unlink(missing_ok=True)
    for entry in by_kind.get(SERVED, []):
        put_in_place(files[entry.name], settings.served_db)
    for old in kept_builds(settings.served_db):
        old.unlink()
    restored = 0
    if not rebuild:
        for entry in by_kind.get(KEPT_BUILD, []):
            put_in_place(files[entry.name], history_dir(settings.served_db) / Path(entry.name).name)
            restored += 1
    shutil.rmtree(settings.parts_dir, ignore_errors=True)
    for entry in by_kind.get(WEEK_FILE, []):
        put_in_place(files[entry.name], settings.parts_dir / Path(entry.name).relative_to(WEEK_FILES_IN_ARCHIVE))
    for build in (settings.served_db, *kept_builds(settings.served_db)):
        if build.exists():
            repoint(build, settings.parts_dir)  # the views name their files by path: this home's
    for entry in by_kind.get(SECURITY_EVENTS, []):
        put_in_place(files[entry.name], settings.superset_home / Path(entry.name).name)
    for kind, path in ((DIRECTORY, settings.effective_directory_path), (POLICY, settings.effective_policy_path)):
        for entry in by_kind.get(kind, []):
            put_in_place(files[entry.name], path)
    for entry in by_kind.get(DEMO_JOURNAL, []):
        if settings.is_demo_journal():
            put_in_place(files[entry.name], settings.demo_journal_path)
        else:
            notes.append("the archive's demo journal was not restored: this site reads CALLSIGHT_JOURNAL_URL")
    return restored, notes


def restore(
    settings: Settings, archive: Path, erasure_exports: Sequence[Path] = (), force: bool = False
) -> RestoreResult:
    """Restore `archive` into the site of `settings` (see the module docstring)."""
    from callsight.defs.nightly import republish

    restrict_umask()
    manifest = verify_archive(archive)  # nothing is written before the archive is known good
    exports = load_exports(erasure_exports)
    if not manifest.by_kind(RAW_STORE):
        raise RestoreError(f"{archive}: the archive holds no raw store")
    check_superset_target(settings, manifest)
    there = occupied(settings, manifest)
    if there and not force:
        raise RestoreError(
            "a site is already there; restore with --force to overwrite it (its raw store's erasure register "
            "is kept and re-applied):\n  " + "\n  ".join(there)
        )
    key = erasure_key(settings, required=False)
    settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)
    with one_night(settings.home, "restore"):  # no night, erasure or republish meanwhile (RunBusyError)
        files, reapplied, kept, notes, rebuild = _restore_files(settings, archive, manifest, exports, key)
        republished, failure = None, None
        if rebuild and settings.served_db.exists():
            run = republish(settings, discard_kept_builds=True)
            republished, failure = run.success, run.failure
            record_audit(
                settings,
                AUDIT_KIND,
                "restore",
                {
                    "event": "published",
                    "status": "success" if run.success else "failure",
                    "run_id": run.run_id,
                    "build_fingerprint": stored_fingerprint(settings.served_db) or "",
                },
            )
    return RestoreResult(
        manifest,
        files,
        len(reapplied.merged),
        len(reapplied.new),
        reapplied.scrubbed,
        kept,
        republished,
        failure,
        tuple(notes),
    )


def _has_log(con: duckdb.DuckDBPyConnection) -> bool:
    try:
        con.execute("SELECT 1 FROM audit_log LIMIT 1")
    except duckdb.CatalogException:
        return False
    return True


def _restore_files(
    settings: Settings, archive: Path, manifest: Manifest, exports: Sequence[RegisterRow], key: str | None
) -> tuple[int, Reapplied, int, list[str], bool]:
    """Steps 3 and 4 while the live raw store is held: (files, register outcome, kept builds restored,
    notes, whether the warehouse must be rebuilt)."""
    stage = settings.home / f".callsight-restore{PARTIAL_MARK}{os.getpid()}"
    with holding_raw_store(settings) as live:
        live_register = read_register(live) if live is not None else []
        last = live.execute("SELECT max(seq) FROM audit_log").fetchone()[0] if live and _has_log(live) else None
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir(mode=0o700)
        try:
            files = extract_archive(archive, manifest, stage)
            detail = {
                "archive_created_at": manifest.created_at,
                "archive_callsight_version": manifest.callsight_version,
                "replaced_audit_entries": last or 0,
            }
            raw = files[manifest.by_kind(RAW_STORE)[0].name]
            reapplied = reapply_register(raw, live_register, exports, key, detail)
            served = [files[e.name] for e in manifest.by_kind(SERVED)]
            rebuild = needs_rebuild(reapplied, built_at(served[0] if served else None))
            kept, notes = place_files(settings, manifest, files, rebuild)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    return len(files), reapplied, kept, notes, rebuild
