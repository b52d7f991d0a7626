"""The cache warm-up's jobs (warm_cache.py): the web worker that takes a warm-up starts its process and answers
at once with a job token; the process writes its counts to the job's file, and whichever worker takes a
poll answers from that file. No web thread waits for a warm-up: one that did held it for minutes, and with
two threads per worker the users whose connections that worker held waited with it (docs/performance.md).

A job's file (<token>.json, owner-only, in the jobs folder under Superset's home) holds its state:
{"state": "running", "pid"}, {"state": "done", "computed", "cached", "failed", "answers"} or {"state": "failed",
"message"} - counts and a reason, never data. A plain thread in the worker that started the process reaps
it and records a process that ended without its counts; if that worker is gone, a poll finds the process
gone instead.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

TOKEN = re.compile(r"[0-9a-f]{32}")
KEEP = 24 * 3600  # seconds a job's file is kept after its process was stopped at the latest
GONE_GRACE = 2.0  # seconds a poll gives the reaper of a process that has just ended to record how it ended


def job_path(folder: Path, token: str) -> Path | None:
    """Pure: the file of the job `token`, or None if it is no token (a poll names nothing else)."""
    return folder / f"{token}.json" if TOKEN.fullmatch(token) else None


def write(path: Path, state: dict[str, Any]) -> None:
    """The job's state, replaced whole: a poll reads the old state or the new, never half of one."""
    part = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(state, f)
    os.replace(part, path)


def read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def state(path: Path) -> dict[str, Any] | None:
    """What a poll answers: the job's state without its process id; None for no such job. A running job
    whose process is gone (its worker too, or the reaper would have said so) has failed."""
    job = read(path)
    if job is not None and job["state"] == "running" and not alive(job["pid"]):
        deadline = time.monotonic() + GONE_GRACE  # its counts, or its reaper's word on how it ended, may follow
        while (job := read(path)) is not None and job["state"] == "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        if job is not None and job["state"] == "running":
            job = {"state": "failed", "message": "the warm-up's process is gone without its counts"}
    return None if job is None else {k: v for k, v in job.items() if k != "pid"}


def forget_old(folder: Path, now: float, timeout: float) -> None:
    """Remove the files of jobs that ended long ago: every process is stopped `timeout` after its start."""
    for path in folder.iterdir():
        try:
            if path.stat().st_mtime < now - timeout - KEEP:
                path.unlink()
        except FileNotFoundError:
            pass


def start(folder: Path, argv: list[str], job: dict[str, Any], env: dict[str, str], timeout: float) -> str:
    """Start `argv` + [the job's file] with `job` as JSON on its stdin; its token. The process reads the job
    only once the file says it runs, so that its counts cannot be overwritten by that."""
    folder.mkdir(mode=0o700, exist_ok=True)
    forget_old(folder, time.time(), timeout)
    token = secrets.token_hex(16)
    path = folder / f"{token}.json"
    proc = subprocess.Popen([*argv, str(path)], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env, text=True)
    write(path, {"state": "running", "pid": proc.pid})
    threading.Thread(target=_reap, args=(proc, path, json.dumps(job), timeout), daemon=True).start()
    return token


def _reap(proc: subprocess.Popen, path: Path, job: str, timeout: float) -> None:
    try:
        proc.communicate(job, timeout=timeout)
        message = f"the warm-up's process ended (exit {proc.returncode}) without its counts"
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        message = f"the warm-up's process was stopped after {timeout:.0f} s"
    job_now = read(path)
    if job_now is None or job_now["state"] == "running":
        write(path, {"state": "failed", "message": message})


def finish(path: Path, counts: dict[str, int]) -> None:
    """The process's last step: its counts in the job's file."""
    write(path, {"state": "done", **counts})
