"""Rewrite a DuckDB file so that deleted and overwritten values are gone from it.

DuckDB marks deleted rows and frees the blocks of overwritten data, but the bytes stay in the file until
the space is reused. After retention or an erasure removed personal data, the file is copied table by
table into a fresh file (COPY FROM DATABASE keeps schemas, types, constraints and comments) which then
replaces the original atomically.

DuckDB's memory is capped (MEMORY_LIMIT): the cap costs no time (figures: docs/performance.md). What
does not fit spills into a private folder beside the file (mode 0700), removed afterwards: it holds the
file's own current rows, which are masked (raw store and warehouse alike), never anything deleted.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from pathlib import Path

import duckdb

from callsight.site.file_modes import GROUP_OTHER_BITS
from callsight.site.sql_text import quote_literal

MEMORY_LIMIT = "512MB"


def scratch_paths(path: Path) -> tuple[Path, Path]:
    """(copy, spill folder): where a compaction of `path` writes before the copy replaces the file. A
    compaction that crashed leaves them behind (the next one removes them)."""
    return path.with_name(path.name + ".compact"), path.with_name(path.name + ".compact-spill")


def copy_database(src: Path, dst: Path, spill: Path, memory_limit: str = MEMORY_LIMIT) -> None:
    """Copy everything in the DuckDB file `src` (attached read-only) into the new file `dst`, spilling
    to the folder `spill`."""
    shutil.rmtree(spill, ignore_errors=True)
    spill.mkdir(mode=0o700)
    con = duckdb.connect()
    try:
        con.execute(f"SET temp_directory = {quote_literal(str(spill))}")
        con.execute(f"SET memory_limit = {quote_literal(memory_limit)}")
        con.execute(f"ATTACH {quote_literal(str(src))} AS src (READ_ONLY)")
        con.execute(f"ATTACH {quote_literal(str(dst))} AS dst")
        con.execute("COPY FROM DATABASE src TO dst")
        con.execute("DETACH dst")
        con.execute("DETACH src")
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)


def compact(path: Path, memory_limit: str = MEMORY_LIMIT) -> None:
    """Replace `path` by a fresh copy of its contents. Nobody may hold the file open for writing."""
    tmp, spill = scratch_paths(path)
    for stale in (tmp, tmp.with_name(tmp.name + ".wal")):
        stale.unlink(missing_ok=True)
    try:
        copy_database(path, tmp, spill, memory_limit)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    # The file's permissions, without group or other bits (file_modes: owner-only).
    os.chmod(tmp, stat.S_IMODE(path.stat().st_mode) & ~GROUP_OTHER_BITS)
    os.replace(tmp, path)
