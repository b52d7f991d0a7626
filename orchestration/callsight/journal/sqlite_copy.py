"""A consistent copy of a live SQLite journal, made with SQLite's online backup API.

Copying the file while the UCServer writes can catch half a transaction; the backup reads one
snapshot of the database instead. The copy holds cleartext calls: it is owner-only."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

# How long the backup waits for a writer's lock before it gives up.
BUSY_TIMEOUT_SECONDS = 60.0


class CopyRefusedError(ValueError):
    """The copy would overwrite or damage the source, or the source is no usable SQLite file."""


@dataclass(frozen=True)
class CopyResult:
    source: Path
    dest: Path
    bytes: int
    seconds: float


def _same_file(a: Path, b: Path) -> bool:
    """The same file, also through links or another spelling of the path."""
    if a.resolve() == b.resolve():
        return True
    with contextlib.suppress(OSError):
        return b.exists() and os.path.samefile(a, b)
    return False


def refusal(source: Path, dest: Path) -> str | None:
    """Why the copy must not run, or None (it only looks at the two paths)."""
    if not source.is_file():
        return f"journal file {source} not found"
    if _same_file(source, dest):
        return f"destination {dest} is the journal itself"
    resolved = str(source.resolve())
    if any(str(dest.resolve()) == resolved + suffix for suffix in ("-wal", "-shm", "-journal")):
        return f"destination {dest} is a file SQLite keeps beside the journal"
    if dest.is_dir():
        return f"destination {dest} is a directory; name the copy's file"
    return None


def _owner_only_file(path: Path) -> None:
    """Create `path` empty and owner-only before SQLite writes cleartext into it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)


def copy_journal(source: Path, dest: Path) -> CopyResult:
    """Copy the SQLite database `source` to `dest` as one consistent snapshot, while others may write it.

    The source is opened read-only (a missing file is never created); the backup runs in one step, so
    it reads one snapshot (in rollback-journal mode a writer waits for it, in WAL mode it does not).
    The copy is written to a temporary file beside `dest`, checked with PRAGMA integrity_check and
    renamed over `dest`: a failed copy leaves no half file."""
    why = refusal(source, dest)
    if why:
        raise CopyRefusedError(why)
    t0 = time.perf_counter()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp"
    _owner_only_file(tmp)
    try:
        src = sqlite3.connect(f"file:{quote(str(source.resolve()))}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_SECONDS)
        try:
            try:
                src.execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlite3.DatabaseError as exc:
                raise CopyRefusedError(f"{source} is no readable SQLite database: {exc}") from None
            dst = sqlite3.connect(tmp)
            try:
                src.backup(dst)  # one step: one snapshot
                # A plain file for readers: a copy of a WAL journal would need its -shm file beside it.
                dst.execute("PRAGMA journal_mode = DELETE")
                (verdict,) = dst.execute("PRAGMA integrity_check").fetchone()
                if verdict != "ok":
                    raise CopyRefusedError(f"the copy of {source} fails PRAGMA integrity_check: {verdict}")
            finally:
                dst.close()
        finally:
            src.close()
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        for leftover in (tmp, Path(f"{tmp}-journal"), Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            leftover.unlink(missing_ok=True)
        raise
    dir_fd = os.open(dest.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a crash
    finally:
        os.close(dir_fd)
    return CopyResult(source, dest, dest.stat().st_size, time.perf_counter() - t0)
