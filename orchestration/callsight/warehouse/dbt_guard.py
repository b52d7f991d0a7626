"""A dbt-duckdb plugin (listed in dbt_project/profiles.yml) that makes dbt die with the process that started it.

dagster-dbt runs dbt as a child process. When a nightly run is killed hard (SIGKILL, the OOM killer), the
kernel passes nothing on to its children: dbt would go on building for as long as its build takes, writing
the build file and holding the raw store open, so that the next run's extract cannot write it. When dbt
opens its DuckDB adapter, before it writes anything, this plugin starts a watchdog thread in dbt that
SIGKILLs dbt within a fraction of a second once its parent is gone (dbt is then re-parented, so its parent
process id changes). The parent is the process named by CALLSIGHT_DBT_PARENT_PID, which the dbt asset sets
for the one dbt process it starts (so a parent that died before the plugin loaded is noticed too), or else
dbt's parent when the plugin loads.

(The kernel's parent-death signal, prctl PR_SET_PDEATHSIG, is no substitute here: it belongs to the thread
that asks for it, dbt-duckdb loads plugins in a worker thread of dbt's thread pool, and a signal asked for
there did not fire when dbt's parent was killed.)
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from dbt.adapters.duckdb.plugins import BasePlugin

PARENT_PID = "CALLSIGHT_DBT_PARENT_PID"
POLL_SECONDS = 0.2
_started = threading.Lock()


def expected_parent(env: Mapping[str, str], current_parent: int) -> int:
    value = env.get(PARENT_PID, "")
    return int(value) if value.isdigit() else current_parent


def watch_parent(
    parent: int,
    on_orphaned: Callable[[], None],
    poll_seconds: float = POLL_SECONDS,
    parent_now: Callable[[], int] = os.getppid,
) -> threading.Thread:
    """A daemon thread calling `on_orphaned` once `parent_now()` is no longer `parent`."""

    def watch() -> None:
        while parent_now() == parent:
            time.sleep(poll_seconds)
        on_orphaned()

    thread = threading.Thread(target=watch, name="callsight-dbt-guard", daemon=True)
    thread.start()
    return thread


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class Plugin(BasePlugin):
    def initialize(self, plugin_config: dict[str, Any]) -> None:
        if _started.acquire(blocking=False):  # one watchdog per dbt process
            watch_parent(expected_parent(os.environ, os.getppid()), _die)
