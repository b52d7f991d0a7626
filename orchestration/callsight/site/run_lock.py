"""One night at a time: whatever starts a night (`callsight run`, the Dagster schedule's run, the
republish of `callsight erase` or a restore) holds an exclusive lock on CALLSIGHT_HOME/run.lock.

The lock is `flock` on an open file, taken without waiting: a second night exits at once with
`RunBusyError` naming the holder (its pid, start time and what it is, written into the file). The
kernel releases it when the holder's process ends in any way, SIGKILL included. Re-entrant within a
process: a republish inside an erasure that already holds it goes on.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

LOCK_NAME = "run.lock"
RUN_BUSY_EXIT = 75  # sysexits' EX_TEMPFAIL, try again later: unlike a failed run or a refused configuration

_held: dict[Path, int] = {}  # lock paths this process holds -> how many holders nest in it


class RunBusyError(RuntimeError):
    """Another night holds the lock; nothing was done."""

    exit_code = RUN_BUSY_EXIT


def lock_path(home: Path) -> Path:
    return home / LOCK_NAME


def holder_record(pid: int, started: datetime, what: str) -> str:
    return json.dumps({"pid": pid, "started": started.strftime("%Y-%m-%d %H:%M:%S UTC"), "what": what})


def busy_message(path: Path, record: str) -> str:
    """What the second night says: who holds the lock (as far as its record tells) and what to do."""
    try:
        holder = json.loads(record)
        who = f"{holder['what']}, pid {holder['pid']}, started {holder['started']}"
    except (ValueError, KeyError, TypeError):
        who = "holder unknown: it has only just started"
    return (
        f"another night is running ({who}); this one exits without doing anything. "
        f"Lock: {path}. Only one scheduler should start nights: the Dagster daemon's schedule, or cron "
        "with CALLSIGHT_SCHEDULE=off (docs/running.md, 'One night at a time')."
    )


@contextmanager
def one_night(home: Path, what: str) -> Iterator[None]:
    """Hold the site's run lock for the block, or raise RunBusyError at once."""
    path = lock_path(home.resolve())
    if path in _held:
        _held[path] += 1
        try:
            yield
        finally:
            _held[path] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        record = os.pread(fd, 4096, 0).decode("utf-8", errors="replace")
        os.close(fd)
        raise RunBusyError(busy_message(path, record)) from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder_record(os.getpid(), datetime.now(UTC), what).encode(), 0)
        _held[path] = 1
        yield
    finally:
        _held.pop(path, None)
        os.close(fd)  # releases the lock; the holder's record stays until the next holder overwrites it
