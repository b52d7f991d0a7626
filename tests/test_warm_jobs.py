"""The cache warm-up's jobs (superset/warm_jobs.py) with real processes: the start answers before the process
is done, a poll sees it run and then its counts, and a process that ends without its counts, is stopped or
is gone is reported as failed - never as running for ever. The endpoint over HTTP: tests/test_shared_cache.py."""

from __future__ import annotations

import importlib.util
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("callsight_warm_jobs_test", REPO_ROOT / "superset" / "warm_jobs.py")
assert _spec is not None and _spec.loader is not None
jobs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(jobs)

# A stand-in for the warm-up's process: reads its job, waits for a file to appear (the test's go), then
# writes the counts it was told to, or exits with the code it was told to.
CHILD = f"""
import json, os, sys, time
sys.path.insert(0, {str(REPO_ROOT / "superset")!r})
import warm_jobs
job = json.loads(sys.stdin.read())
while not os.path.exists(job["go"]):
    time.sleep(0.02)
if job.get("exit"):
    sys.exit(job["exit"])
warm_jobs.finish(__import__("pathlib").Path(sys.argv[1]), job["counts"])
"""


def until(what: Any, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if got := what():
            return got
        time.sleep(0.05)
    raise AssertionError("timed out")


def start(folder: Path, job: dict[str, Any], timeout: float = 60) -> Path:
    token = jobs.start(folder, [sys.executable, "-c", CHILD], job, dict(os.environ), timeout)
    path = jobs.job_path(folder, token)
    assert path is not None
    return path


def test_the_start_answers_at_once_and_a_poll_sees_the_counts(tmp_path: Path) -> None:
    go, folder = tmp_path / "go", tmp_path / "jobs"
    path = start(folder, {"go": str(go), "counts": {"computed": 5, "cached": 2, "failed": 1}})
    # the process waits for the go: the start returned while it runs
    assert jobs.state(path) == {"state": "running"}
    time.sleep(0.5)
    assert jobs.state(path) == {"state": "running"}, "still waiting for its go"
    go.touch()
    done = until(lambda: (s := jobs.state(path)) and s["state"] != "running" and s)
    assert done == {"state": "done", "computed": 5, "cached": 2, "failed": 1}
    time.sleep(0.3)
    assert jobs.state(path) == done, "the reaper keeps the counts"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in folder.iterdir()] == [path.name], "no part-written file is left"


def test_a_process_that_ends_without_its_counts_has_failed(tmp_path: Path) -> None:
    go = tmp_path / "go"
    go.touch()
    path = start(tmp_path / "jobs", {"go": str(go), "exit": 3})
    failed = until(lambda: (s := jobs.state(path)) and s["state"] != "running" and s)
    assert failed["state"] == "failed" and "exit 3" in failed["message"]


def test_a_process_past_its_time_is_stopped(tmp_path: Path) -> None:
    path = start(tmp_path / "jobs", {"go": str(tmp_path / "never")}, timeout=1)
    failed = until(lambda: (s := jobs.state(path)) and s["state"] != "running" and s)
    assert failed == {"state": "failed", "message": "the warm-up's process was stopped after 1 s"}


def test_a_running_job_whose_process_is_gone_has_failed(tmp_path: Path) -> None:
    """Its worker was stopped with it (no reaper left to say so): a poll must not wait for ever."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    path = tmp_path / f"{'a' * 32}.json"
    jobs.write(path, {"state": "running", "pid": gone.pid})
    assert jobs.state(path) == {"state": "failed", "message": "the warm-up's process is gone without its counts"}
    jobs.write(path, {"state": "running", "pid": os.getpid()})
    assert jobs.state(path) == {"state": "running"}


def test_a_poll_just_after_the_process_ended_answers_how_its_reaper_says_it_ended(tmp_path: Path) -> None:
    """The reaper records the exit a moment after the process is gone; a poll in that moment (seen in CI on a
    busy machine) waits for it rather than answering 'gone without its counts'."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    path = tmp_path / f"{'b' * 32}.json"
    jobs.write(path, {"state": "running", "pid": gone.pid})
    said = {"state": "failed", "message": "the warm-up's process ended (exit 3) without its counts"}
    reaper = threading.Timer(0.5, jobs.write, (path, said))
    reaper.start()
    try:
        assert jobs.state(path) == said
    finally:
        reaper.join()


def test_a_poll_names_a_job_and_nothing_else(tmp_path: Path) -> None:
    assert jobs.job_path(tmp_path, "0" * 32) == tmp_path / f"{'0' * 32}.json"
    for token in ("../../superset.db", "0" * 31, "0" * 33, "A" * 32, "", f"{'0' * 32}/x"):
        assert jobs.job_path(tmp_path, token) is None, token
    assert jobs.state(tmp_path / f"{'0' * 32}.json") is None, "no such job"


def test_old_jobs_are_forgotten(tmp_path: Path) -> None:
    old, new = tmp_path / f"{'1' * 32}.json", tmp_path / f"{'2' * 32}.json"
    for path in (old, new):
        jobs.write(path, {"state": "done", "computed": 0, "cached": 0, "failed": 0})
    now = time.time()
    os.utime(old, (now - 3600 - jobs.KEEP - 10,) * 2)
    jobs.forget_old(tmp_path, now, 3600)
    assert not old.exists() and new.exists()
