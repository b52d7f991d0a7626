"""Fault tests (issue #7): a nightly run killed hard (SIGKILL) at each stage -- extract, dbt, the quality
checks, publish -- leaves the served warehouse byte-identical and queryable (through Superset too), leaves
no process of the run behind, and a rerun converges to what an uninterrupted run publishes. While publishes
swap the served file, chart-data requests to Superset see no error.

`callsight run` runs as a child process and stops at a named stage through a test-only halt point
(callsight/site/halt.py, inert unless CALLSIGHT_TEST_HALT_AT is set); the test kills it there. The tests borrow
the session's published site, because the session's Superset serves its warehouse, and hand it back as
they found it. Two fast tests check the fixes these kills brought up: what a publish or rollback killed
before its rename leaves behind, and the watchdog that makes dbt die with its parent.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from callsight.bi.api import SupersetClient
from callsight.cli.commands import check_ready
from callsight.privacy.audit import read_entries, verify_chain
from callsight.publish.builds import publish, rollback
from callsight.site.directory import load_directory
from callsight.site.halt import HALT_AT, HALT_MARKER, STAGES
from callsight.site.home import kept_builds
from callsight.site.settings import REPO_ROOT, Settings
from callsight.warehouse.dbt_guard import watch_parent

from .conftest import END_DAY, Site, SupersetServer, facts_as_tables, stub_warehouse
from .test_pipeline import content_tables, mart_checksum, served

# The Dagster step that is running when a run halts at each stage.
STEP_OF_STAGE = {
    "extract": "raw__journal",
    "dbt": "warehouse_models",
    "checks": "warehouse_quality_checks",
    "publish": "published_warehouse",
}
RUN_TIMEOUT = 600  # seconds; a nightly run of the small site takes about a minute on a busy 2-core machine


# ---- the site: borrowed, edited, handed back --------------------------------------------------------
def save_state(s: Settings, into: Path) -> Path:
    """Copies of what a run changes: the journal, the raw store, the served warehouse, the kept builds."""
    into.mkdir(parents=True)
    for f in (s.demo_journal_path, s.raw_db, s.served_db):
        shutil.copyfile(f, into / f.name)
    history = s.served_db.parent / "history"
    if history.exists():
        shutil.copytree(history, into / "history")
    if s.parts_dir.exists():  # the week files they name
        shutil.copytree(s.parts_dir, into / "parts")
    return into


def restore_state(s: Settings, saved: Path, journal: bool = True) -> None:
    """Put the saved files back; each file is replaced atomically (Superset may be reading the served one)."""
    shutil.rmtree(s.build_db.parent, ignore_errors=True)
    s.raw_db.with_name(s.raw_db.name + ".wal").unlink(missing_ok=True)
    for f in (s.raw_db, s.served_db, *([s.demo_journal_path] if journal else [])):
        tmp = f.with_name(f.name + ".restore")
        shutil.copyfile(saved / f.name, tmp)
        os.replace(tmp, f)
    history = s.served_db.parent / "history"
    shutil.rmtree(history, ignore_errors=True)
    if (saved / "history").exists():
        shutil.copytree(saved / "history", history)
    if (saved / "parts").exists():  # immutable: those a run deleted come back, new ones are garbage
        shutil.copytree(saved / "parts", s.parts_dir, dirs_exist_ok=True)


@pytest.fixture(scope="module")
def borrowed_site(published_site: Site, tmp_path_factory: pytest.TempPathFactory):
    """The session's published site (the session's Superset serves its warehouse), handed back as it was."""
    s = published_site.settings
    saved = save_state(s, tmp_path_factory.mktemp("borrowed") / "state")
    checksum = mart_checksum(published_site)
    try:
        yield published_site
    finally:
        restore_state(s, saved)
        assert mart_checksum(published_site) == checksum


def edit_the_night(journal: Path, day: date) -> None:
    """What a day at the PBX changes: new calls arrive, a company is added to earlier calls, calls are
    deleted at the source (whole chains)."""
    con = sqlite3.connect(journal)
    with con:
        before = (day - timedelta(days=1)).isoformat()
        offset = con.execute("SELECT max(ID) FROM journal").fetchone()[0]
        con.execute(
            "INSERT INTO journal SELECT ID + ?, datetime(StartTime, '+1 day'), datetime(StopTime, '+1 day'), "
            "DurationTotal, datetime(ConnectTime, '+1 day'), datetime(DisconnectTime, '+1 day'), "
            "DurationConnected, Outbound, Internal, LineNumber, LineName, LineUserName, LocalNumber, "
            "RedirectingNumber, PhoneNumber, ContactName, ContactCompany, ContactEntryID, ContactEntryStoreID, "
            "ContactEntryDBID, CTIServerUserName, SuccessState, Subject, ReadFlag, ProjectName, ProjectID, "
            "PrivateCall, TrackerID || '-next' FROM journal WHERE date(StartTime) = ? AND StartTime < ? "
            "AND date(StopTime) = ?",
            [offset, before, f"{before} 20:00:00", before],
        )
        con.execute(
            "UPDATE journal SET ContactCompany = 'Nachgetragen GmbH' WHERE ID IN (SELECT ID FROM journal "
            "WHERE Internal = 0 AND PrivateCall = 0 AND ContactCompany IS NULL AND StartTime < ? "
            "ORDER BY StartTime DESC LIMIT 25)",
            [before],
        )
        con.execute(
            "DELETE FROM journal WHERE TrackerID IN (SELECT TrackerID FROM journal WHERE Outbound = 0 "
            "AND date(StartTime) = ? ORDER BY ID LIMIT 12)",
            [(day - timedelta(days=3)).isoformat()],
        )
    con.close()


# ---- `callsight run` as a child process ----------------------------------------------------------
@dataclass
class CliRun:
    proc: subprocess.Popen
    log: Path
    marker: Path

    def tail(self) -> str:
        return "\n".join(self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-30:])


def start_run(site: Site, day: date, workdir: Path, name: str, halt_at: str | None = None) -> CliRun:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CALLSIGHT_", "DAGSTER_", "SUPERSET_"))}
    env["CALLSIGHT_HOME"] = str(site.home)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT / "orchestration"), env.get("PYTHONPATH")]))
    marker = workdir / f"{name}.halted.json"
    if halt_at:
        env[HALT_AT], env[HALT_MARKER] = halt_at, str(marker)
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "callsight.cli.main", "run", "--date", day.isoformat()],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
    return CliRun(proc, log, marker)


def run_to_end(site: Site, day: date, workdir: Path, name: str) -> CliRun:
    run = start_run(site, day, workdir, name)
    try:
        rc = run.proc.wait(timeout=RUN_TIMEOUT)
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
    assert rc == 0, f"{name} failed (exit {rc}):\n{run.tail()}"
    return run


def wait_until_halted(run: CliRun, stage: str) -> dict:
    deadline = time.monotonic() + RUN_TIMEOUT
    while not run.marker.exists():
        if run.proc.poll() is not None:
            pytest.fail(f"the run ended (exit {run.proc.returncode}) before it reached {stage}:\n{run.tail()}")
        if time.monotonic() > deadline:
            run.proc.kill()
            pytest.fail(f"the run did not reach {stage} within {RUN_TIMEOUT} s:\n{run.tail()}")
        time.sleep(0.2)
    info = json.loads(run.marker.read_text(encoding="utf-8"))
    assert info["stage"] == stage and info["pid"] == run.proc.pid, info
    return info


# ---- processes ------------------------------------------------------------------------------------
def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        for task in Path(f"/proc/{todo.pop()}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found += children
            todo += children
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # an orphaned zombie is dead even if nobody reaps it


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def kill_hard(run: CliRun) -> list[str]:
    """SIGKILL the run's process (not its process group: like the OOM killer, nothing is passed on to
    the children). Returns the command lines of its children that were still alive 3 s later."""
    children = descendants(run.proc.pid)
    os.kill(run.proc.pid, signal.SIGKILL)
    assert run.proc.wait(timeout=30) == -signal.SIGKILL
    deadline = time.monotonic() + 3
    while any(alive(c) for c in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    survivors = [cmdline(c) for c in children if alive(c)]
    for c in children:  # never leave them running, whatever the assertion says
        if alive(c):
            os.kill(c, signal.SIGKILL)
    return survivors


# ---- what is served ---------------------------------------------------------------------------------
def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def content_checksum(site: Site) -> str:
    """mart_checksum without `extracted_at`: two runs of the same night extract the new and edited rows
    at different instants (and so do a killed run and its rerun); nothing else may differ."""
    tables = content_tables(site)
    digest = hashlib.sha256()
    for schema, table in tables:
        columns = [
            f'"{c}"'
            for (c,) in served(
                site,
                "SELECT column_name FROM information_schema.columns WHERE table_schema = "
                f"'{schema}' AND table_name = '{table}' AND column_name <> 'extracted_at' ORDER BY ordinal_position",
            )
        ]
        digest.update(f"{schema}.{table}({','.join(columns)})".encode())
        digest.update(repr(served(site, f"SELECT {', '.join(columns)} FROM {schema}.{table} ORDER BY ALL")).encode())
    return digest.hexdigest()


def inbound_calls(site: Site) -> int:
    return served(site, "SELECT count(*) FROM marts.fct_inbound_calls")[0][0]


def superset_inbound_calls(server: SupersetServer) -> int:
    """The Management Summary's "Anrufe" as an analyst (who sees every call) gets it over HTTP."""
    analyst = load_directory(server.site.settings.effective_directory_path).analysts[0]
    return check_ready(server.url, analyst, server.user_password)


def run_steps(s: Settings, run_id: str) -> tuple[set[str], set[str], dg.DagsterRunStatus]:
    """Steps that started and that succeeded in the run, from the site's Dagster event log."""
    with dg.DagsterInstance.from_config(str(s.dagster_home)) as instance:
        started = {e.step_key for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)}
        succeeded = {e.step_key for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)}
        return started, succeeded, instance.get_run_by_id(run_id).status


def two_warehouses(s: Settings, tmp_path: Path) -> tuple[Path, Path, dict[str, int]]:
    """Two warehouses that Superset can tell apart: a copy of the served one (a) and one with fewer
    inbound calls (b); their inbound-call counts."""
    a, b = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    shutil.copyfile(s.served_db, a)
    shutil.copyfile(s.served_db, b)
    con = duckdb.connect(str(b))
    facts_as_tables(con)
    con.execute("DELETE FROM marts.fct_inbound_calls WHERE first_call_id % 10 = 0")
    con.close()
    counts = {}
    for name, path in (("a", a), ("b", b)):
        con = duckdb.connect(str(path), read_only=True)
        counts[name] = con.execute("SELECT count(*) FROM marts.fct_inbound_calls").fetchone()[0]
        con.close()
    assert counts["a"] > counts["b"] > 0
    return a, b, counts


def inbound_calls_query(client: SupersetClient) -> dict:
    """The Management Summary's "Anrufe" as a chart-data request, past Superset's result cache (every
    request opens the served file)."""
    (ds,) = list(client.list_all("dataset", [("table_name", "eq", "dashboard_inbound_calls")]))
    return {
        "datasource": {"id": ds["id"], "type": "table"},
        "force": True,
        "queries": [{"metrics": ["anrufe"], "columns": [], "filters": []}],
        "result_format": "json",
        "result_type": "full",
    }


# ---- the tests ------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.superset
def test_a_run_killed_at_any_stage_changes_nothing_served_and_a_rerun_converges(
    borrowed_site: Site, superset_server: SupersetServer, tmp_path: Path
) -> None:
    """The kills follow each other: each run after the first also recovers from what the killed runs
    before it left behind (it gets past their stage), and the last run recovers from all of them."""
    site, s = borrowed_site, borrowed_site.settings
    t0 = time.monotonic()
    edit_the_night(s.demo_journal_path, END_DAY)
    before_bytes, before_marts, before_inbound = file_digest(s.served_db), mart_checksum(site), inbound_calls(site)
    assert superset_inbound_calls(superset_server) == before_inbound

    # What an uninterrupted run publishes for the night; then the site is put back to before it.
    start = save_state(s, tmp_path / "before-the-night")
    before_content = content_checksum(site)
    run_to_end(site, END_DAY, tmp_path, "uninterrupted")
    reference, reference_inbound = content_checksum(site), inbound_calls(site)
    assert reference != before_content and reference_inbound != before_inbound, "the night must change the marts"
    restore_state(s, start, journal=False)
    assert file_digest(s.served_db) == before_bytes
    timings = {"uninterrupted run": time.monotonic() - t0}

    for stage in STAGES:
        t1 = time.monotonic()
        run = start_run(site, END_DAY, tmp_path, f"killed-at-{stage}", halt_at=stage)
        halted = wait_until_halted(run, stage)
        # Meanwhile the served warehouse is as it was and can be queried.
        assert file_digest(s.served_db) == before_bytes
        assert mart_checksum(site) == before_marts
        if stage == "dbt":
            assert any("dbt" in cmdline(c) and " build " in cmdline(c) for c in descendants(run.proc.pid)), (
                "dbt must still be building when the run is killed"
            )
        if stage == "publish":
            assert s.build_db.exists(), "the checked build is ready to be swapped in"
            assert superset_inbound_calls(superset_server) == before_inbound
        survivors = kill_hard(run)
        assert survivors == [], f"processes of the killed run kept running: {survivors}"
        # The kill landed in the stage: its step started and never finished, nothing was published.
        started, succeeded, status = run_steps(s, halted["run_id"])
        assert STEP_OF_STAGE[stage] in started - succeeded, (stage, started, succeeded)
        assert "published_warehouse" not in succeeded and status == dg.DagsterRunStatus.STARTED
        if stage != "extract":  # this run got past the stages at which the runs before it were killed
            assert {STEP_OF_STAGE[x] for x in STAGES[: STAGES.index(stage)]} <= succeeded
        # Afterwards: the same file, the same marts, still queryable.
        assert file_digest(s.served_db) == before_bytes, f"killed at {stage}: the served file changed"
        assert mart_checksum(site) == before_marts
        con = duckdb.connect(str(s.served_db), read_only=True)
        assert con.execute("SELECT count(*) FROM marts.fct_calls").fetchone()[0] > 0
        con.close()
        if stage == "publish":
            assert superset_inbound_calls(superset_server) == before_inbound
        timings[f"killed at {stage}"] = time.monotonic() - t1

    t1 = time.monotonic()
    run_to_end(site, END_DAY, tmp_path, "rerun")
    timings["rerun"] = time.monotonic() - t1
    assert content_checksum(site) == reference, "the rerun must publish what an uninterrupted run publishes"
    assert superset_inbound_calls(superset_server) == reference_inbound
    assert not s.build_db.exists()
    inodes = [p.stat().st_ino for p in [s.served_db, *kept_builds(s.served_db)]]
    assert len(set(inodes)) == len(inodes), "each kept build is a different warehouse"
    con = duckdb.connect(str(s.raw_db), read_only=True)
    try:
        entries = read_entries(con)
    finally:
        con.close()
    assert verify_chain(entries) == [], "the audit log survives the kills intact"
    print("\nfault test timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))


@pytest.mark.slow
@pytest.mark.superset
def test_chart_data_requests_see_no_error_while_publishes_swap_the_served_file(
    borrowed_site: Site, superset_server: SupersetServer, tmp_path: Path
) -> None:
    site, s = borrowed_site, borrowed_site.settings
    a, b, counts = two_warehouses(s, tmp_path)
    analyst = load_directory(s.effective_directory_path).analysts[0]

    stop = threading.Event()
    answers: list[int] = []
    timed: list[tuple[float, float, int]] = []  # (started, ended, answer) of every request
    errors: list[str] = []

    def ask() -> None:
        client = SupersetClient(superset_server.url).login(analyst, superset_server.user_password)
        query = inbound_calls_query(client)
        while not stop.is_set():
            try:
                started = time.monotonic()
                answer = int(client.chart_data(query)["result"][0]["data"][0]["anrufe"])
                timed.append((started, time.monotonic(), answer))
                answers.append(answer)
            except Exception as exc:  # every failure counts, whatever its kind
                errors.append(f"{type(exc).__name__}: {exc}"[:300])

    # Four askers keep queries running in both gunicorn workers: DuckDB hands a new connection to a path
    # the instance that is still open for it, so a worker that opened the file per query answered from
    # a replaced warehouse for as long as its queries overlapped (superset/served_warehouse.py).
    askers = [threading.Thread(target=ask, daemon=True) for _ in range(4)]
    for t in askers:
        t.start()
    swaps, t0 = 0, time.monotonic()
    served_between: list[tuple[float, float, int]] = []  # (swap done, next swap starts, answer due)

    def answered_after(done: float, wanted: int = 3) -> float:
        """Wait until `wanted` requests started after `done` have been answered (or failed; at most 30 s)."""
        until = time.monotonic() + 30
        while sum(1 for started, _, _ in list(timed) if started > done) < wanted and not errors:
            if time.monotonic() > until:
                break
            time.sleep(0.05)
        return time.monotonic()

    try:
        # Publish b (a build renamed over the served file, the replaced one kept), then roll back to a
        # (a kept build renamed over it), again and again, until Superset has answered often enough.
        while (swaps < 20 or len(answers) < 60) and time.monotonic() - t0 < 180:
            s.build_db.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(b, s.build_db)
            publish(s.build_db, s.served_db, keep=s.keep_builds)
            served_between.append((time.monotonic(), answered_after(time.monotonic()), counts["b"]))
            rollback(s.served_db)
            served_between.append((time.monotonic(), answered_after(time.monotonic()), counts["a"]))
            swaps += 2
    finally:
        stop.set()
        for t in askers:
            t.join(timeout=120)
    seen = Counter(answers)
    requests_made = len(answers) + len(errors)
    print(f"\n{requests_made} chart-data requests during {swaps} swaps: answers {dict(seen)}, errors {len(errors)}")
    assert errors == [], errors[:5]
    assert set(seen) == {counts["a"], counts["b"]}, f"Superset must have served both warehouses: {seen}"
    # A request that started after a swap and ended before the next one answers from the warehouse that
    # swap put in place - never from the one it replaced (an erasure or a new mapping of who may see
    # whom takes effect with the publish).
    stale, checked = [], 0
    for started, ended, answer in timed:
        for done, next_swap, due in served_between:
            if done < started and ended < next_swap:
                checked += 1
                if answer != due:
                    stale.append((round(started - t0, 2), answer, due))
    assert checked >= 20, f"too few requests fell between two swaps to tell: {checked}"
    assert stale == [], f"{len(stale)} of {checked} requests answered from a replaced warehouse: {stale[:5]}"
    assert file_digest(s.served_db) == file_digest(a), "the last swap was the rollback to a"
    assert inbound_calls(site) == counts["a"]


@pytest.mark.slow
@pytest.mark.superset
def test_a_publish_takes_effect_with_the_next_request_even_while_a_long_query_runs(
    borrowed_site: Site, superset_server: SupersetServer, tmp_path: Path
) -> None:
    """DuckDB hands a new connection to a path the database instance still open for that path: while a
    long query (an analyst's in SQL Lab, a report) ran on the replaced file, a worker that opened the file
    per query answered every chart from the replaced warehouse - calls an erasure had removed, the old
    mapping of who may see whom. Superset's connections now stay on one version of the file each
    (superset/served_warehouse.py); this is the case that failed before."""
    s = borrowed_site.settings
    _, b, counts = two_warehouses(s, tmp_path)
    admin = SupersetClient(superset_server.url).login("admin", superset_server.admin_password)
    (db,) = [d for d in admin.list_all("database") if d["database_name"] == "callsight"]
    analyst = load_directory(s.effective_directory_path).analysts[0]
    clients = [SupersetClient(superset_server.url).login(analyst, superset_server.user_password) for _ in range(4)]
    query = inbound_calls_query(clients[0])
    assert int(clients[0].chart_data(query)["result"][0]["data"][0]["anrufe"]) == counts["a"]

    long_sql = "SELECT count(*) AS n FROM range(1500000000) AS t(x) WHERE x % 7 = 3"
    running, stop, long_runs = threading.Event(), threading.Event(), []

    def long_queries() -> None:  # one long query after another, in one of the two gunicorn workers
        while not stop.is_set():
            running.set()
            t0 = time.monotonic()
            try:
                r = admin.post(
                    "/api/v1/sqllab/execute/",
                    {"database_id": db["id"], "sql": long_sql, "runAsync": False, "client_id": uuid.uuid4().hex[:10]},
                )
                long_runs.append((time.monotonic() - t0, r.get("status")))
            except Exception as exc:  # reported by the assertion below
                long_runs.append((time.monotonic() - t0, f"{type(exc).__name__}: {exc}"[:300]))
                return

    def answers() -> list[int]:  # 4 users at once, so that both workers answer
        out: list[int] = []

        def one(client: SupersetClient) -> None:
            out.extend(int(client.chart_data(query)["result"][0]["data"][0]["anrufe"]) for _ in range(3))

        threads = [threading.Thread(target=one, args=(c,)) for c in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        return out

    worker = threading.Thread(target=long_queries, daemon=True)
    worker.start()
    seen: dict[str, list[int]] = {}
    try:
        running.wait(30)
        time.sleep(0.5)  # the long query has opened the served file
        for round_ in range(3):
            s.build_db.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(b, s.build_db)
            publish(s.build_db, s.served_db, keep=s.keep_builds)
            seen[f"{round_}: after publishing b"] = answers()
            rollback(s.served_db)
            seen[f"{round_}: after rolling back to a"] = answers()
    finally:
        stop.set()
        worker.join(timeout=180)
    print(f"\nlong queries (s, status): {[(round(t, 1), st) for t, st in long_runs]}")
    assert long_runs and all(status == "success" for _, status in long_runs), long_runs
    assert max(t for t, _ in long_runs) > 2, "the long query must span the swaps"
    for when, got in seen.items():
        due = counts["b"] if "publishing b" in when else counts["a"]
        assert len(got) == 12 and set(got) == {due}, f"{when}: {Counter(got)}, due {due}"


def small_warehouse(path: Path, label: int) -> Path:
    """A file publish() accepts (the required tables), told apart by `label`."""
    return stub_warehouse(path, f"SELECT {label} AS label")


def label(path: Path) -> int:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("SELECT label FROM marts.fct_calls").fetchone()[0]
    finally:
        con.close()


class Killed(Exception):
    pass


def killed() -> None:
    """Stands in for SIGKILL at publish's halt point: publish cleans nothing up between its link and its
    rename, so the files are left as a kill leaves them."""
    raise Killed


def test_a_publish_or_rollback_killed_before_its_rename_leaves_nothing_that_misleads_the_next(tmp_path: Path) -> None:
    (tmp_path / "warehouse").mkdir()
    served = small_warehouse(tmp_path / "warehouse" / "callsight.duckdb", 1)
    publish(small_warehouse(tmp_path / "build.duckdb", 2), served)
    # A publish of build 3 killed just before its rename: build 2 is linked into history and still served.
    with pytest.raises(Killed):
        publish(small_warehouse(tmp_path / "build.duckdb", 3), served, before_swap=killed)
    assert label(served) == 2 and [label(b) for b in kept_builds(served)] == [2, 1]
    publish(tmp_path / "build.duckdb", served)  # the rerun
    assert label(served) == 3
    assert [label(b) for b in kept_builds(served)] == [2, 1], "build 2 is kept once, so build 1 is kept too"
    # A rollback killed between its link and its rename leaves a second name for the served build 3.
    os.link(served, served.parent / "history" / "callsight-99991231T235959999999.duckdb")
    assert rollback(served).name != "callsight-99991231T235959999999.duckdb"
    assert label(served) == 2, "the rollback goes back to the build before, not to the served one"
    assert [label(b) for b in kept_builds(served)] == [3, 1]


def test_the_dbt_guard_fires_once_the_parent_is_gone() -> None:
    parents = iter([41, 41, 41, 1])
    fired = threading.Event()
    thread = watch_parent(41, fired.set, poll_seconds=0.01, parent_now=lambda: next(parents))
    thread.join(timeout=5)
    assert fired.is_set() and not thread.is_alive()
    assert next(parents, None) is None, "it fired when the parent changed, not before"
