"""Timing and memory of one benchmark stage: a child process, its wall time and its peak RSS.

The peak RSS comes from the kernel's high-water marks, no polling, nothing missed between two samples:
a Python stage reports its own (VmHWM, and ru_maxrss of the children it waited for: dbt started by the
Dagster run counts); for any other command it is ru_maxrss from `os.wait4`, taken by a small shim
process between this one and the command: Linux counts the image a child was forked from in its
ru_maxrss, so waiting for the command directly would report this (possibly large) process's size.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
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
        try:
            proc.wait(timeout=timeout)
        except BaseException as exc:  # timeout, or Ctrl-C: the command must not outlive the benchmark
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            if not isinstance(exc, subprocess.TimeoutExpired):
                raise
        seconds = time.perf_counter() - t0
    peak = int(peak_file.read_text()) * 1024 / MIB if peak_file.exists() else 0.0  # Linux reports KiB
    peak_file.unlink(missing_ok=True)
    detail: dict[str, Any] = {}
    if result_file is not None and result_file.exists():
        detail = json.loads(result_file.read_text(encoding="utf-8"))
        peak = float(detail.pop(PEAK_KEY, peak))
    ok = proc.returncode == 0
    error = None if ok else f"exit {proc.returncode}; last lines of {log}:\n{tail(log)}"
    return StageResult(name, seconds, peak, ok, detail, error)


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
