"""Timing and memory of one benchmark stage: a child process, its wall time and its peak RSS.

The peak RSS comes from the kernel's high-water marks, no polling, nothing missed between two samples:
a Python stage reports its own (VmHWM, and ru_maxrss of the children it waited for: dbt started by the
Dagster run counts); for any other command it is ru_maxrss from `os.wait4`, taken by a small shim
process between this one and the command: Linux counts the image a child was forked from in its
ru_maxrss, so waiting for the command directly would report this (possibly large) process's size.
Beside it, the peak of the whole process tree at once (the stage, dbt, Superset's gunicorn workers, a
browser: their RSS summed), sampled every half second: what the machine must hold for the stage.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent  # bench/ is a package at the repository's top
MIB = 1024 * 1024
PEAK_KEY = "_peak_rss_mib"  # where a stage reports its own peak in its result JSON
# Runs argv[2:], waits for it and writes its ru_maxrss (KiB) to argv[1]; exits with its exit code.
_SHIM = (
    "import os, subprocess, sys\n"
    "p = subprocess.Popen(sys.argv[2:])\n"
    "_, status, usage = os.wait4(p.pid, 0)\n"
    "open(sys.argv[1], 'w').write(str(usage.ru_maxrss))\n"
    "code = os.waitstatus_to_exitcode(status)\n"
    "sys.exit(code if code >= 0 else 128 - code)\n"
)


@dataclass
class StageResult:
    """One stage of the benchmark: what ran, for how long, at what peak memory, and what it reported."""

    name: str
    seconds: float
    peak_rss_mib: float
    ok: bool
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    tree_peak_rss_mib: float = 0.0  # sampled peak of the process tree's summed RSS (0: not sampled)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def run_child(
    name: str,
    argv: Sequence[str],
    *,
    log: Path,
    env: Mapping[str, str] | None = None,
    result_file: Path | None = None,
    timeout: float | None = None,
) -> StageResult:
    """Run argv as a child process; wall time, peak RSS (ru_maxrss of the child and its waited-for
    descendants) and, if the child wrote it, the JSON object in result_file as detail."""
    log.parent.mkdir(parents=True, exist_ok=True)
    if result_file is not None:
        result_file.unlink(missing_ok=True)
    peak_file = log.with_name(log.name + ".maxrss")
    peak_file.unlink(missing_ok=True)
    with log.open("wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-c", _SHIM, str(peak_file), *argv],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env or os.environ),
            start_new_session=True,  # a timeout kills the shim and the command together
        )
        sampler = TreeSampler(proc.pid)
        sampler.start()
        try:
            proc.wait(timeout=timeout)
        except BaseException as exc:  # timeout, or Ctrl-C: the command must not outlive the benchmark
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            if not isinstance(exc, subprocess.TimeoutExpired):
                raise
        seconds = time.perf_counter() - t0
        tree_peak = sampler.stop()
    peak = int(peak_file.read_text()) * 1024 / MIB if peak_file.exists() else 0.0  # Linux reports KiB
    peak_file.unlink(missing_ok=True)
    detail: dict[str, Any] = {}
    if result_file is not None and result_file.exists():
        detail = json.loads(result_file.read_text(encoding="utf-8"))
        peak = float(detail.pop(PEAK_KEY, peak))
    ok = proc.returncode == 0
    error = None if ok else f"exit {proc.returncode}; last lines of {log}:\n{tail(log)}"
    return StageResult(name, seconds, peak, ok, detail, error, round(tree_peak, 1))


def run_python_stage(
    name: str, stage: str, args: Mapping[str, Any], *, work: Path, env: Mapping[str, str] | None = None
) -> StageResult:
    """`python -m bench.stages <stage>` with args as JSON; the stage writes its detail JSON."""
    result_file = work / "results" / f"{name}.json"
    result_file.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "bench.stages", stage, json.dumps(dict(args)), str(result_file)]
    child_env = dict(env or os.environ)
    child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), child_env.get("PYTHONPATH")]))
    return run_child(name, argv, log=work / "logs" / f"{name}.log", env=child_env, result_file=result_file)


def tree_rss(root: int, processes: Mapping[int, tuple[int, int]]) -> int:
    """Pure: the summed RSS of `root` and all its descendants; processes: pid -> (parent pid, RSS)."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in processes.items():
        children.setdefault(ppid, []).append(pid)
    total, todo, seen = 0, [root], set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += processes.get(pid, (0, 0))[1]
        todo += children.get(pid, [])
    return total


def proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, RSS in bytes) of every process readable in /proc."""
    page = os.sysconf("SC_PAGE_SIZE")
    out = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="ascii", errors="replace") as f:
                fields = f.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
            out[int(entry.name)] = (int(fields[1]), int(fields[21]) * page)  # ppid, rss (pages)
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    return out


class TreeSampler:
    """Samples the summed RSS of a process tree every `interval` seconds in a thread; stop() -> peak MiB."""

    def __init__(self, root: int, interval: float = 0.5) -> None:
        self.root, self.interval, self.peak = root, interval, 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            self.peak = max(self.peak, tree_rss(self.root, proc_table()))
            if self._done.wait(self.interval):
                return

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> float:
        self._done.set()
        self._thread.join()
        return self.peak / MIB


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sequence."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()
