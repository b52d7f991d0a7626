"""Test-only halt points: the fault tests (tests/test_faults.py) kill a nightly run at a known stage.

A halt point does nothing unless the variable CALLSIGHT_TEST_HALT_AT names its stage. Then the run
writes a small JSON marker (stage, run id, process id) to the path in CALLSIGHT_TEST_HALT_MARKER and
waits there to be killed. The variables are read from the settings' environment when the point is
reached, never at import. They are for tests only: a run with CALLSIGHT_TEST_HALT_AT set stops at that
stage and, if nobody kills it within HALT_SECONDS, fails.

Stages, in the order a nightly run reaches them:
- `extract`: the window's rows are written to the raw store, the transaction is not yet committed;
- `dbt`: dbt has reported its first built model and is still building the build file;
- `checks`: the warehouse suites have run on the build file, their results are not yet reported;
- `publish`: the build is pruned and verified and the served file is linked into history; the build
  is about to be renamed over the served file.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path

HALT_AT = "CALLSIGHT_TEST_HALT_AT"
HALT_MARKER = "CALLSIGHT_TEST_HALT_MARKER"
STAGES = ("extract", "dbt", "checks", "publish")
HALT_SECONDS = 600.0


class HaltTimeoutError(RuntimeError):
    pass


def halt_point(env: Mapping[str, str], stage: str, run_id: str, seconds: float = HALT_SECONDS) -> None:
    """Stop here when the test asked for this stage (see the module docstring); otherwise return at once."""
    if stage not in STAGES:
        raise ValueError(f"unknown halt stage {stage!r}; stages: {', '.join(STAGES)}")
    if env.get(HALT_AT) != stage:
        return
    marker = env.get(HALT_MARKER)
    if not marker:
        raise ValueError(f"{HALT_AT} is set but {HALT_MARKER} is not")
    path = Path(marker)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"stage": stage, "run_id": run_id, "pid": os.getpid()}), encoding="utf-8")
    os.replace(tmp, path)  # the test never reads half a marker
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.5)
    raise HaltTimeoutError(f"halted at {stage} for {seconds:.0f} s and nobody killed the run")
