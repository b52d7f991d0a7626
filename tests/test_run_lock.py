"""One night at a time (issue 27): the run lock (callsight/site/run_lock.py) between real processes -
two `callsight run` started together, a holder killed with SIGKILL, a Dagster run of the nightly job's
executor while another night holds the lock - and the CALLSIGHT_SCHEDULE setting."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from callsight.definitions import build_definitions
from callsight.defs.one_night import one_night_executor
from callsight.site.halt import HALT_AT, HALT_MARKER
from callsight.site.run_lock import RUN_BUSY_EXIT, RunBusyError, busy_message, holder_record, lock_path, one_night
from callsight.site.settings import REPO_ROOT, Settings

from .conftest import END_DAY, Site, make_site

RUN_TIMEOUT = 600  # seconds a halted run may take to reach its halt point on a busy machine
BUSY_MESSAGE = "another night is running"


def child_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CALLSIGHT_", "DAGSTER_", "SUPERSET_"))}
    env["CALLSIGHT_HOME"] = str(home)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT / "orchestration"), env.get("PYTHONPATH")]))
    return env | extra


def start_holder(home: Path) -> subprocess.Popen:
    """Another process holding the site's run lock until it is killed (prints `held` once it does)."""
    code = (
        "import sys, time; from pathlib import Path; from callsight.site.run_lock import one_night\n"
        f"with one_night(Path({str(home)!r}), 'a test holder'):\n"
        "    print('held', flush=True); time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], env=child_env(home), stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    return make_site(tmp_path_factory.mktemp("run-lock") / "home")


@pytest.fixture(scope="module")
def site_env(site: Site) -> Iterator[None]:
    """The process environment pointing at the module's site (build_definitions parses dbt with it)."""
    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith("CALLSIGHT_")]:
            mp.delenv(key)
        mp.setenv("CALLSIGHT_HOME", str(site.home))
        mp.setenv("DAGSTER_HOME", str(site.home / "dagster"))
        yield


# ---- the lock itself --------------------------------------------------------------------------------
def test_the_busy_message_names_the_holder_and_what_to_do(tmp_path: Path) -> None:
    record = holder_record(4242, datetime(2026, 12, 5, 2, 0, 1, tzinfo=UTC), "nightly run")
    message = busy_message(tmp_path / "run.lock", record)
    assert "nightly run, pid 4242, started 2026-12-05 02:00:01 UTC" in message
    assert BUSY_MESSAGE in message and str(tmp_path / "run.lock") in message and "CALLSIGHT_SCHEDULE=off" in message
    assert "holder unknown" in busy_message(tmp_path / "run.lock", "")


def test_the_lock_nests_in_its_process_and_refuses_another_process(tmp_path: Path) -> None:
    with one_night(tmp_path, "outer"), one_night(tmp_path, "an erasure's republish"):
        holder = json.loads(lock_path(tmp_path).read_text(encoding="utf-8"))
        assert (holder["pid"], holder["what"]) == (os.getpid(), "outer")
    holder = start_holder(tmp_path)
    try:
        busy = pytest.raises(RunBusyError, match=f"{BUSY_MESSAGE} \\(a test holder, pid {holder.pid}, ")
        with busy, one_night(tmp_path, "second"):
            pytest.fail("a second holder got the lock")
    finally:
        stop(holder)
    with one_night(tmp_path, "after the holder"):  # a killed holder leaves nothing that blocks
        pass
    assert lock_path(tmp_path).read_text(encoding="utf-8") == "", "a released lock names no holder"


def test_a_night_refused_while_the_holder_has_only_just_taken_the_lock_still_names_it(tmp_path: Path) -> None:
    """The holder writes its record just after taking the lock; a busy machine may hold it up between the
    two (seen in CI). The refused night waits briefly for the record instead of saying 'holder unknown'."""
    path = lock_path(tmp_path)
    path.write_text(holder_record(2**22 + 1, datetime.now(UTC), "a killed night"), encoding="utf-8")  # no such pid
    code = (
        "import fcntl, os, sys, time; from datetime import UTC, datetime\n"
        "from callsight.site.run_lock import holder_record\n"
        f"fd = os.open({str(path)!r}, os.O_RDWR); fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "print('locked', flush=True); time.sleep(0.8)\n"
        "record = holder_record(os.getpid(), datetime.now(UTC), 'a slow holder').encode()\n"
        "os.ftruncate(fd, 0); os.pwrite(fd, record, 0)\n"
        "time.sleep(600)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], env=child_env(tmp_path), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunBusyError, match=f"\\(a slow holder, pid {holder.pid}, "), one_night(tmp_path, "second"):
            pytest.fail("a second holder got the lock")
    finally:
        stop(holder)


# ---- two `callsight run` at once -----------------------------------------------------------------------
def test_two_runs_started_together_one_runs_the_other_exits_and_a_killed_holder_frees_the_lock(
    site: Site, tmp_path: Path
) -> None:
    runs = []
    for name in ("first", "second"):
        marker = tmp_path / f"{name}.halted.json"
        env = child_env(site.home, **{HALT_AT: "extract", HALT_MARKER: str(marker)}, **_dbt_target())
        log = (tmp_path / f"{name}.log").open("wb")
        command = [sys.executable, "-m", "callsight.cli.main", "run", "--date", END_DAY.isoformat()]
        runs.append((subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path), marker))
    try:
        holder, refused = _which_holds(runs, tmp_path)
        output = (tmp_path / f"{refused}.log").read_text(encoding="utf-8")
        procs = {name: proc for (proc, _), name in zip(runs, ("first", "second"), strict=True)}
        assert procs[refused].returncode == RUN_BUSY_EXIT, output
        assert f"{BUSY_MESSAGE} (nightly run, pid {procs[holder].pid}, started " in output, output
        assert "RUN_START" not in output, "the refused one started no run"
        with pytest.raises(RunBusyError), one_night(site.home, "a third night"):  # the halted run holds it
            pass
        os.kill(procs[holder].pid, signal.SIGKILL)
        assert procs[holder].wait(timeout=30) == -signal.SIGKILL
        with one_night(site.home, "after SIGKILL"):  # the kernel released it with the process
            pass
    finally:
        for proc, _ in runs:
            stop(proc)


def _which_holds(runs: list[tuple[subprocess.Popen, Path]], logs: Path) -> tuple[str, str]:
    """(name of the run that reached its halt point holding the lock, name of the one that exited)."""
    names = ("first", "second")
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        halted = [n for (_, marker), n in zip(runs, names, strict=True) if marker.exists()]
        ended = [n for (proc, _), n in zip(runs, names, strict=True) if proc.poll() is not None]
        if halted and ended:
            assert halted != ended, "one run both halted and ended"
            return halted[0], ended[0]
        if len(ended) == 2 or len(halted) == 2:
            break
        time.sleep(0.2)
    tails = {n: (logs / f"{n}.log").read_text(encoding="utf-8")[-3000:] for n in names}
    pytest.fail(f"expected one run halted holding the lock and one refused; logs: {tails}")


def _dbt_target() -> dict[str, str]:
    target = os.environ.get("DBT_TARGET_PATH")
    return {"DBT_TARGET_PATH": target} if target else {}


# ---- runs Dagster launches (the schedule, the UI) --------------------------------------------------------
@dg.op
def lock_seen_from_another_process() -> bool:
    """True when another process finds the site's lock taken while this run's step runs."""
    code = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR)\n"
        "try:\n    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept BlockingIOError:\n    sys.exit(3)\n"
    )
    lock = lock_path(Settings.from_env().home)
    return subprocess.run([sys.executable, "-c", code, str(lock)], check=False).returncode == 3


@dg.job(executor_def=one_night_executor)
def locked_probe() -> None:
    lock_seen_from_another_process()


def test_the_night_jobs_run_inside_the_lock_and_a_dagster_run_fails_with_its_message(
    site: Site, site_env: None
) -> None:
    defs = build_definitions(site.settings)
    assert defs.resolve_job_def("nightly").executor_def is one_night_executor
    assert defs.resolve_job_def("republish").executor_def is one_night_executor
    with dg.instance_for_test() as instance:
        # The run's own process holds the lock while its steps run, whichever executor mode.
        for mode in ("in_process", "multiprocess"):
            run_config = {"execution": {"config": {mode: {}}}}
            with dg.execute_job(dg.reconstructable(locked_probe), instance=instance, run_config=run_config) as result:
                assert result.success and result.output_for_node("lock_seen_from_another_process") is True, mode
        holder = start_holder(site.home)
        try:
            result = dg.execute_job(dg.reconstructable(locked_probe), instance=instance, raise_on_error=False)
        finally:
            stop(holder)
    assert not result.success
    assert not [e for e in result.all_events if e.is_step_start], "no step ran"
    failure = result.get_run_failure_event().event_specific_data.error
    assert f"{BUSY_MESSAGE} (a test holder, pid {holder.pid}," in failure.message


# ---- CALLSIGHT_SCHEDULE ----------------------------------------------------------------------------------
def test_the_schedule_setting_switches_the_nightly_schedules_default_status(site: Site, site_env: None) -> None:
    statuses = {}
    for value in (None, "on", "off", "OFF"):
        env = dict(site.env) | ({"CALLSIGHT_SCHEDULE": value} if value else {})
        schedule = build_definitions(Settings.from_env(env)).resolve_schedule_def("nightly_0200")
        statuses[value] = schedule.default_status
    running, stopped = dg.DefaultScheduleStatus.RUNNING, dg.DefaultScheduleStatus.STOPPED
    assert statuses == {None: running, "on": running, "off": stopped, "OFF": stopped}
    with pytest.raises(ValueError, match="CALLSIGHT_SCHEDULE must be on or off"):
        Settings.from_env(dict(site.env) | {"CALLSIGHT_SCHEDULE": "daily"})
