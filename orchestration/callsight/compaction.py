"""Rewrite a DuckDB file so that deleted and overwritten values are gone from it.

DuckDB marks deleted rows and frees the blocks of overwritten data, but the bytes stay in the file until
the space is reused. After retention or an erasure removed personal data, the file is copied table by
table into a fresh file (COPY FROM DATABASE keeps schemas, types, constraints and comments) which then
replaces the original atomically.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

import duckdb

from .sources import quote_literal


def compact(path: Path) -> None:
    """Replace `path` by a fresh copy of its contents. Nobody may hold the file open for writing."""
    tmp = path.with_name(path.name + ".compact")
    for stale in (tmp, tmp.with_name(tmp.name + ".wal")):
        stale.unlink(missing_ok=True)
    con = duckdb.connect()
    try:
        con.execute("SET temp_directory = ''")
        con.execute(f"ATTACH {quote_literal(str(path))} AS src (READ_ONLY)")
        con.execute(f"ATTACH {quote_literal(str(tmp))} AS dst")
        con.execute("COPY FROM DATABASE src TO dst")
        con.execute("DETACH dst")
        con.execute("DETACH src")
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    finally:
        con.close()
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.chmod(tmp, stat.S_IMODE(path.stat().st_mode))  # keep the file's permissions
    os.replace(tmp, path)
