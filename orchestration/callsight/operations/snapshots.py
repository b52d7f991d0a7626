"""Consistent copies of the site's files while the services run.

DuckDB files that a night writes in place (the raw store, the data-quality record) are copied through a
read-only attachment (COPY FROM DATABASE into a fresh file): a writer cannot hold the file meanwhile, so
the copy is one consistent state, and the free blocks of the original (values deleted by retention or an
erasure) stay behind. While a night holds the write lock the copy waits, like connect_raw_store. The
served warehouse and the kept builds are never written in place (a publish renames a new file over the
served one), so a copy read through one open file handle is a consistent build. SQLite files go through
SQLite's backup API.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from pathlib import Path

import duckdb

from callsight.site.compaction import copy_database

LOCK_WAIT_SECONDS = 600.0
LOCKED = ("lock", "unique file handle conflict")


def is_lock_error(exc: BaseException) -> bool:
    return isinstance(exc, duckdb.Error) and any(word in str(exc).lower() for word in LOCKED)


def copy_duckdb(src: Path, dst: Path, wait_seconds: float = LOCK_WAIT_SECONDS) -> None:
    """A fresh DuckDB file `dst` with everything in `src`, read through a read-only attachment; waits
    while another process holds `src` for writing."""
    spill = dst.with_name(dst.name + ".spill")
    deadline = time.monotonic() + wait_seconds
    while True:
        dst.unlink(missing_ok=True)
        try:
            copy_database(src, dst, spill)
            return
        except duckdb.Error as exc:
            if not is_lock_error(exc) or time.monotonic() > deadline:
                raise
        time.sleep(0.5)


def copy_handle(src: Path, dst: Path) -> None:
    """Copy the file `src` names now through one open handle (a rename over `src` meanwhile does not
    mix two files)."""
    with src.open("rb") as f:
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as w:
            shutil.copyfileobj(f, w, 1 << 20)


def link_or_copy(src: Path, dst: Path) -> None:
    """A hard link to the file `src` names now (no copy: it is never written in place), or a copy
    through one handle where the file system refuses links."""
    try:
        os.link(src, dst)
    except OSError:
        copy_handle(src, dst)


def copy_sqlite(src: Path, dst: Path) -> None:
    """A consistent copy of a SQLite database that may be in use (SQLite's online backup)."""
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
    target = sqlite3.connect(dst)
    try:
        with target:
            source.backup(target)
    finally:
        target.close()
        source.close()
