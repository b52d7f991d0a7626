"""One night at a time: whatever starts a night (`callsight run`, the Dagster schedule's run, the
republish of `callsight erase` or a restore) holds an exclusive lock on CALLSIGHT_HOME/run.lock.

The lock is `flock` on an open file, taken without waiting: a second night exits at once with
`RunBusyError` naming the holder (its pid, start time and what it is, written into the file while it
holds the lock; a refused night waits up to RECORD_WAIT for a holder that has only just taken it). The
kernel releases it when the holder's process ends in any way, SIGKILL included. Re-entrant within a
process: a republish inside an erasure that already holds it goes on.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

LOCK_NAME = "run.lock"
RUN_BUSY_EXIT = 75  # sysexits' EX_TEMPFAIL, try again later: unlike a failed run or a refused configuration
RECORD_WAIT = 2.0  # seconds a refused night waits for a holder that has only just taken the lock to name itself

_held: dict[Path, int] = {}  # lock paths this process holds -> how many holders nest in it


class RunBusyError(RuntimeError):
    """Another night holds the lock; nothing was done."""

    exit_code = RUN_BUSY_EXIT


def lock_path(home: Path) -> Path:
    return home / LOCK_NAME


def holder_record(pid: int, started: datetime, what: str) -> str:
    return json.dumps({"pid": pid, "started": started.strftime("%Y-%m-%d %H:%M:%S UTC"), "what": what})


def live_holder(record: str) -> bool:
    """Whether the record names a process that still runs (a killed holder's record stays in the file)."""
    try:
        os.kill(int(json.loads(record)["pid"]), 0)
    except PermissionError:
        return True  # runs, as another user
    except (ValueError, KeyError, TypeError, ProcessLookupError):
        return False
    return True


def read_holder(fd: int) -> str:
    """The holder's record, waiting briefly while it is empty or names an ended process: the holder
    writes it just after taking the lock, and a busy machine may hold it up between the two."""
    deadline = time.monotonic() + RECORD_WAIT
    while True:
        record = os.pread(fd, 4096, 0).decode("utf-8", errors="replace")
        if live_holder(record):
            return record
        if time.monotonic() >= deadline:
            return ""
        time.sleep(0.05)


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
        record = read_holder(fd)
        os.close(fd)
        raise RunBusyError(busy_message(path, record)) from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder_record(os.getpid(), datetime.now(UTC), what).encode(), 0)
        _held[path] = 1
        yield
    finally:
        _held.pop(path, None)
        os.ftruncate(fd, 0)  # a record names a holder only while it holds (a killed one's names an ended process)
        os.close(fd)  # releases the lock
