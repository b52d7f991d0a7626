"""superset/served_warehouse.py: Superset's connections to the served DuckDB file stay on the version of
the file that is served now, share one DuckDB instance per version, and cannot change its settings.

Plain `duckdb.connect(path)` shares one instance among all open connections to a path, so a connection
opened after a publish, while another one is still open, reads the replaced file. These tests publish
with callsight's own `publish` while connections to the old version are open."""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
from pathlib import Path
from types import ModuleType

import duckdb
import pytest
from sqlalchemy.engine import make_url

from callsight.publish.builds import publish, rollback
from callsight.site.settings import REPO_ROOT, Settings

from .conftest import stub_warehouse


def _module() -> ModuleType:
    name = "served_warehouse_under_test"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "superset" / "served_warehouse.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


served_warehouse = _module()
CONFIG = {"enable_external_access": False}


def build(path: Path, version: int, rows: int = 1000) -> Path:
    """A warehouse file `publish` accepts: its required tables, fct_calls with `rows` rows of `version`."""
    return stub_warehouse(path, f"SELECT range AS id, {version} AS version FROM range({rows})")


def version_of(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute("SELECT max(version) FROM marts.fct_calls").fetchone()[0]


@pytest.fixture
def served(tmp_path: Path):
    (tmp_path / "warehouse").mkdir()
    path = build(tmp_path / "warehouse" / "callsight.duckdb", 1)
    sw = served_warehouse.ServedWarehouse(path, CONFIG)
    yield sw
    sw.close()


def test_after_a_publish_new_connections_read_the_new_file_while_old_queries_finish(served, tmp_path: Path) -> None:
    before = served.connect()
    assert version_of(before) == 1
    publish(build(tmp_path / "build.duckdb", 2), served.path)
    after = served.connect()
    assert version_of(after) == 2
    # the connection opened before the publish still works - on the file it started with
    assert version_of(before) == 1
    # and once it is closed, nothing is left of the old version: every new connection reads version 2
    before.close()
    assert [version_of(served.connect()) for _ in range(3)] == [2, 2, 2]
    # a rollback is a publish too
    rollback(served.path)
    assert version_of(served.connect()) == 1
    assert version_of(after) == 2
    assert served.versions_opened == 3


def test_connections_to_one_version_share_one_instance(served) -> None:
    first = served.connect()
    first.execute("SELECT count(*) FROM marts.fct_calls").fetchall()
    others = [served.connect() for _ in range(20)]
    assert served.versions_opened == 1
    # one instance: the catalog is the served file's, as with a plain connection to it
    names = {c.execute("SELECT current_database()").fetchone()[0] for c in [first, *others]}
    assert names == {"callsight"}
    for c in [first, *others]:
        c.close()


def test_connections_from_many_threads_during_publishes_always_read_a_whole_version(served, tmp_path: Path) -> None:
    errors: list[str] = []
    seen: set[int] = set()
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                con = served.connect()
                n, low, high = con.execute(
                    "SELECT count(*), min(version), max(version) FROM marts.fct_calls"
                ).fetchone()
                con.close()
                if low != high or n != 1000 * high:
                    errors.append(f"mixed or partial version: {n} rows, versions {low}..{high}")
                seen.add(high)
            except Exception as exc:  # every failure counts
                errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for version in range(2, 7):
        publish(build(tmp_path / f"build{version}.duckdb", version, rows=1000 * version), served.path)
    # the readers go on until one of them has read the last version (it raced the stop under load in CI)
    deadline = time.monotonic() + 30
    while 6 not in seen and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    for t in threads:
        t.join()
    assert errors == []
    assert version_of(served.connect()) == 6
    assert 6 in seen


def test_sql_cannot_change_settings_reach_files_or_write(served, tmp_path: Path) -> None:
    con = served.connect()
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n")
    for sql in (
        "SET threads = 1",
        "SET memory_limit = '100GB'",
        "SET enable_external_access = true",
        f"SELECT * FROM read_csv('{secret}')",
        f"ATTACH '{tmp_path / 'other.duckdb'}' AS other",
        f"COPY marts.fct_calls TO '{tmp_path / 'out.csv'}'",
        "DELETE FROM marts.fct_calls",
    ):
        with pytest.raises(duckdb.Error):
            con.execute(sql)
    assert not (tmp_path / "out.csv").exists()
    assert con.execute("SELECT count(*) FROM marts.fct_calls").fetchone()[0] == 1000


def with_parts_view(path: Path, parts: Path, week: str, version: int) -> Path:
    """The warehouse file at `path` with a view `marts.weekly` over a Parquet file of `parts` holding `version`."""
    parts.mkdir(exist_ok=True)
    file = parts / f"fct_calls-{week}.parquet"
    con = duckdb.connect(str(path))
    try:
        con.execute(f"COPY (SELECT range AS id, {version} AS version FROM range(10)) TO '{file}'")
        con.execute(f"CREATE VIEW marts.weekly AS SELECT * FROM read_parquet(['{file}'])")
    finally:
        con.close()
    return file


def test_the_views_read_the_parts_folder_and_sql_no_other_file(tmp_path: Path) -> None:
    """The served file's views may read files in the parts folder beside it (the candidate's, in the
    build folder, the same one); nothing else, and no SQL can widen that. A connection opened after a
    publish is as locked as the first."""
    (tmp_path / "warehouse" / "build").mkdir(parents=True)
    path = build(tmp_path / "warehouse" / "callsight.duckdb", 1)
    parts = served_warehouse.parts_path(path)
    assert parts == Settings.from_env({"CALLSIGHT_HOME": str(tmp_path)}).parts_dir == tmp_path / "warehouse" / "parts"
    with_parts_view(path, parts, "w1", 1)
    candidate = build(served_warehouse.candidate_path(path), 2)
    with_parts_view(candidate, parts, "w2", 2)
    elsewhere = tmp_path / "elsewhere.parquet"
    duckdb.sql(f"COPY (SELECT 42 AS secret) TO '{elsewhere}'")
    sw = served_warehouse.ServedWarehouse(path, CONFIG)
    try:
        with served_warehouse.reading_candidate():
            assert sw.connect().execute("SELECT max(version) FROM marts.weekly").fetchone()[0] == 2
        con = sw.connect()
        assert con.execute("SELECT max(version), count(*) FROM marts.weekly").fetchone() == (1, 10)
        publish(candidate, path)
        for c in (con, sw.connect()):
            for sql in (
                f"SELECT * FROM read_parquet('{elsewhere}')",
                f"SELECT * FROM '{elsewhere}'",
                f"SELECT * FROM read_parquet('{parts}/../../elsewhere.parquet')",
                f"SELECT * FROM glob('{tmp_path}/*')",
                f"SET allowed_directories = ['{tmp_path}/']",
                "SET enable_external_access = true",
                "RESET allowed_directories",
            ):
                with pytest.raises(duckdb.Error):
                    c.execute(sql)
        assert sw.connect().execute("SELECT max(version) FROM marts.weekly").fetchone()[0] == 2
        # the folder itself is readable by path: the SQL guard (sql_guard.py) keeps non-admins' SQL off it
        assert sw.connect().execute(f"SELECT count(*) FROM read_parquet('{parts}/*.parquet')").fetchone()[0] == 20
    finally:
        sw.close()


def test_nothing_published_is_a_clear_error(tmp_path: Path) -> None:
    sw = served_warehouse.ServedWarehouse(tmp_path / "missing.duckdb", CONFIG)
    with pytest.raises(FileNotFoundError, match=r"missing\.duckdb"):
        sw.connect()


@pytest.mark.parametrize(
    ("uri", "connect_args", "handled"),
    [
        ("duckdb:////srv/callsight/warehouse/callsight.duckdb", {"read_only": True, "config": CONFIG}, True),
        ("duckdb:////srv/callsight/warehouse/callsight.duckdb", {"config": CONFIG}, False),  # not read-only
        (
            "duckdb:////srv/callsight/warehouse/callsight.duckdb",
            {"read_only": True, "preload_extensions": ["x"]},
            False,
        ),
        ("duckdb:///:memory:", {"read_only": True}, False),
        ("duckdb:///md:analytics", {"read_only": True}, False),
        ("duckdb:///relative.duckdb", {"read_only": True}, False),
        ("postgresql://u@localhost/db", {"read_only": True}, False),
    ],
)
def test_the_mutator_takes_only_read_only_duckdb_files(uri: str, connect_args: dict, handled: bool) -> None:
    url = make_url(uri)
    params = {"poolclass": object, "connect_args": connect_args}
    out_url, out = served_warehouse.connection_mutator(url, params, "someone", None, None)
    assert out_url is url
    assert ("creator" in out) is handled
    assert {k: v for k, v in out.items() if k != "creator"} == params


IN_SUPERSET = """
import runpy, sys
import duckdb, duckdb_engine
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

served_db = sys.argv[2]
before = duckdb_engine.Dialect().identifier_preparer.reserved_words.copy()
config = runpy.run_path(sys.argv[1])
config["cache_duckdb_reserved_words"]()  # what the config's app hook does for DuckDB (the rest needs an app)
def no_query(*a, **k):
    raise AssertionError("a DuckDB query while making a dialect")
duckdb.cursor = no_query
after = duckdb_engine.Dialect().identifier_preparer.reserved_words
assert after == before, sorted(after ^ before)[:10]
# as Superset makes an engine for every query: NullPool, the database's connect_args, the mutator
url = make_url("duckdb:///" + served_db)
params = {"poolclass": NullPool, "connect_args": {"read_only": True, "config": {"enable_external_access": False}}}
names = set()
for _ in range(5):
    url2, kwargs = config["DB_CONNECTION_MUTATOR"](url, dict(params), "someone", None, None)
    with create_engine(url2, **kwargs).connect() as con:
        names.add(con.execute(text("SELECT current_database() || ':' || count(*) FROM marts.fct_calls")).scalar())
served = sys.modules["callsight_served_warehouse"].served(served_db, {"enable_external_access": False})
print(sorted(names), served.versions_opened)
"""


@pytest.mark.superset
def test_in_superset_engines_share_the_version_and_dialects_ask_duckdb_nothing(tmp_path: Path) -> None:
    """In Superset's environment: the config's mutator gives SQLAlchemy engines (made per query, as
    Superset does) connections to one open version of the file; duckdb_engine's reserved words are the
    same as before they were cached, and making a dialect no longer queries DuckDB."""
    import os
    import subprocess

    from callsight.site.settings import Settings

    from .conftest import require_service

    python = Settings.from_env({}).superset_venv / "bin" / "python"
    require_service(python.exists(), "Superset venv")
    (tmp_path / "warehouse").mkdir()
    db = build(tmp_path / "warehouse" / "callsight.duckdb", 1)
    env = {"PATH": os.environ["PATH"], "CALLSIGHT_HOME": str(tmp_path), "SUPERSET_SECRET_KEY": "test-only"}
    r = subprocess.run(
        [str(python), "-c", IN_SUPERSET, str(REPO_ROOT / "superset" / "superset_config.py"), str(db)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["['callsight:1000']", "1"], r.stdout


# Superset's data cache as superset_config.py makes it, over the served file sys.argv[2] (the other
# arguments in `others`): query() reads it as a chart does, chart(key) answers from the cache or queries.
CACHE_PRELUDE = """
import json, os, runpy, sys
from flask import Flask
from flask_caching import Cache
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

served_db, *others = sys.argv[2:]
config = runpy.run_path(sys.argv[1])
cache = Cache(Flask("test"), config=config["DATA_CACHE_CONFIG"])  # as Superset makes its data cache
url = make_url("duckdb:///" + served_db)
params = {"poolclass": NullPool, "connect_args": {"read_only": True, "config": {"enable_external_access": False}}}

def query():
    url2, kwargs = config["DB_CONNECTION_MUTATOR"](url, dict(params), "someone", None, None)
    with create_engine(url2, **kwargs).connect() as con:
        return con.execute(text("SELECT max(version) FROM marts.fct_calls")).scalar()

def chart(key):  # as Superset answers a chart: look up; on a miss query and store
    if (hit := cache.get(key)) is not None:
        return ["cached", hit]
    value = query()
    cache.set(key, value)
    return ["queried", value]
"""

CACHE_IN_SUPERSET = (
    CACHE_PRELUDE
    + """
version_2, version_3 = others
out = [chart("k"), chart("k")]
os.replace(version_2, served_db)  # a publish
out += [chart("k"), chart("k")]
# a query that read version 2 and ends after version 3 is published: its result is not stored
cache.get("slow")
value = query()
os.replace(version_3, served_db)
cache.set("slow", value)
out += [["slow", value, cache.get("slow")], chart("slow"), chart("slow")]
out.append(sorted(key.split(":", 1)[-1] for key in cache.cache._cache))  # what the cache still holds
print(json.dumps(out))
"""
)


def in_superset(script: str, home: Path, *args: Path) -> list:
    """`script` run by the Superset venv's python with superset_config.py and `args`; its last printed line."""
    import json
    import os
    import subprocess

    from callsight.site.settings import Settings

    from .conftest import require_service

    python = Settings.from_env({}).superset_venv / "bin" / "python"
    require_service(python.exists(), "Superset venv")
    env = {"PATH": os.environ["PATH"], "CALLSIGHT_HOME": str(home), "SUPERSET_SECRET_KEY": "test-only"}
    config = REPO_ROOT / "superset" / "superset_config.py"
    r = subprocess.run(
        [str(python), "-c", script, *map(str, (config, *args))], capture_output=True, text=True, env=env, timeout=300
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.splitlines()[-1])


CANDIDATE_IN_SUPERSET = (
    CACHE_PRELUDE
    + """
(candidate,) = others
served = sys.modules["callsight_served_warehouse"]

def warming(key):
    with served.reading_candidate():
        return chart(key)

def seen_anew():  # as a process sees the served file for the first time: it drops the other versions'
    cache.cache._versions = None

out = [chart("k"), warming("k"), warming("k"), chart("k"), warming("only-warmed")]
seen_anew()
out.append(chart("served-only"))
os.replace(candidate, served_db)  # the publish of the warmed build
out += [chart("k"), chart("only-warmed"), chart("served-only")]
out.append(sorted(key.split(":", 1)[-1] for key in cache.cache._cache))
print(json.dumps(out))
"""
)


@pytest.mark.superset
def test_a_warm_up_of_the_candidate_waits_unseen_in_the_cache_until_it_is_published(tmp_path: Path) -> None:
    """The data cache of superset_config.py: results computed while warming the build about to be published
    read that build, are found by no other request before the publish (the served file's results stay and
    keep answering), survive a process that drops the other versions' results meanwhile, and answer the
    first request after the publish."""
    from callsight.site.settings import Settings

    (tmp_path / "warehouse" / "build").mkdir(parents=True)
    db = build(tmp_path / "warehouse" / "callsight.duckdb", 1)
    candidate = build(Settings.from_env({"CALLSIGHT_HOME": str(tmp_path)}).build_db, 2)
    assert candidate == served_warehouse.candidate_path(db), "Superset's candidate is the night's build"
    assert in_superset(CANDIDATE_IN_SUPERSET, tmp_path, db, candidate) == [
        ["queried", 1],
        ["queried", 2],  # the candidate's version: not the served file's result
        ["cached", 2],
        ["cached", 1],  # everybody else: the served file's result, still there
        ["queried", 2],
        ["queried", 1],
        ["cached", 2],  # after the publish: the warmed results
        ["cached", 2],
        ["queried", 2],  # computed before the publish from the served file: gone with it
        ["k", "only-warmed", "served-only"],
    ]


@pytest.mark.superset
def test_superset_never_answers_a_chart_from_a_replaced_warehouse_out_of_its_cache(tmp_path: Path) -> None:
    """The data cache of superset_config.py, made as Superset makes it: a result is cached for the
    version of the served file its query read; a publish makes the old results unreachable and drops
    them; a result read from a version replaced before it was stored is not stored."""
    (tmp_path / "warehouse").mkdir()
    db = build(tmp_path / "warehouse" / "callsight.duckdb", 1)
    versions = [build(tmp_path / f"build{v}.duckdb", v) for v in (2, 3)]
    assert in_superset(CACHE_IN_SUPERSET, tmp_path, db, *versions) == [
        ["queried", 1],
        ["cached", 1],
        ["queried", 2],
        ["cached", 2],
        ["slow", 2, None],
        ["queried", 3],
        ["cached", 3],
        ["slow"],
    ]


def test_a_result_belongs_to_the_version_its_connections_read(tmp_path: Path) -> None:
    """versions_read: what the served data cache stores a result under."""
    (tmp_path / "warehouse").mkdir()
    path = build(tmp_path / "warehouse" / "callsight.duckdb", 1)
    sw = served_warehouse.served(str(path), CONFIG)

    def mine(versions):
        assert versions is not None
        return dict(versions)[str(path)]

    v1 = mine(served_warehouse.versions_now())
    served_warehouse.watch_reads()
    assert mine(served_warehouse.versions_read()) == v1  # nothing read yet: the version there now
    first = sw.connect()
    assert version_of(first) == 1
    publish(build(tmp_path / "build2.duckdb", 2), path)
    v2 = mine(served_warehouse.versions_now())
    assert v2 not in (v1, None)
    assert mine(served_warehouse.versions_read()) == v1  # read before the publish: version 1's
    second = sw.connect()
    assert version_of(second) == 2
    assert served_warehouse.versions_read() is None  # one query, two versions: neither
    served_warehouse.watch_reads()
    third = sw.connect()
    publish(build(tmp_path / "build3.duckdb", 3), path)
    other = threading.Thread(target=lambda: sw.connect().close())  # another thread's reads are its own
    other.start()
    other.join()
    assert mine(served_warehouse.versions_read()) == v2
    for con in (first, second, third):
        con.close()
    sw.close()


def test_a_thread_warming_the_candidate_reads_the_build_and_its_instance_is_served_after_the_publish(
    tmp_path: Path,
) -> None:
    """Inside reading_candidate() a thread reads the build beside the served file, under the version the
    build will have once published; every other thread reads the served file meanwhile. After the
    publish the candidate's instance (its buffer cache warm) is the served one: nothing is opened again."""
    (tmp_path / "warehouse" / "build").mkdir(parents=True)
    path = str(build(tmp_path / "warehouse" / "callsight.duckdb", 1))
    candidate = build(served_warehouse.candidate_path(path), 2)
    served = served_warehouse.served(path, CONFIG)  # registered: versions_now() names it
    assert version_of(served.connect()) == 1
    served_now = served_warehouse.versions_now()
    with served_warehouse.reading_candidate():
        warming = served.connect()
        assert version_of(warming) == 2
        candidate_version = dict(served_warehouse.versions_now())[path]
        assert candidate_version != dict(served_now)[path]
        other: list[int] = []
        reader = threading.Thread(target=lambda: other.append(version_of(served.connect())))
        reader.start()
        reader.join()
        assert other == [1], "another thread reads the served file meanwhile"
    assert served_warehouse.candidate_now() is False
    assert version_of(served.connect()) == 1 and served_warehouse.versions_now() == served_now
    assert served.versions_opened == 2
    publish(candidate, served.path, keep=0)
    assert dict(served_warehouse.versions_now())[path] == candidate_version
    assert version_of(served.connect()) == 2
    assert served.versions_opened == 2, "the warmed instance is served now; nothing opened again"
    assert version_of(warming) == 2
    with served_warehouse.reading_candidate(), pytest.raises(FileNotFoundError):
        served.connect()  # no build waiting: a clear error, not the served file

    # a build warmed but never published (a republish after an erasure came first): released at that publish
    stale = build(served_warehouse.candidate_path(path), 3)
    with served_warehouse.reading_candidate():
        assert version_of(served.connect()) == 3
    held = served._candidate
    publish(build(tmp_path / "erased.duckdb", 4), Path(path), keep=0)
    assert version_of(served.connect()) == 4
    assert served._candidate is None and not held.link.exists(), "its instance and descriptor are let go"
    stale.unlink()
    served.close()


def test_a_forked_child_opens_its_own_instance(served, tmp_path: Path) -> None:
    """A Celery pool worker is forked from a parent that may have connected: the child must not use the
    parent's DuckDB instance (not fork-safe), and the parent keeps working."""
    import os

    assert version_of(served.connect()) == 1
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what it reads and how many versions it opened, then leave at once
        try:
            con = served.connect()
            os.write(write, f"{version_of(con)} {served.versions_opened}".encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    assert os.read(read, 100).decode() == "1 2"  # read version 1 through an instance of its own
    os.close(read)
    assert version_of(served.connect()) == 1
    assert served.versions_opened == 1


def test_a_query_on_a_replaced_version_can_still_spill_to_disk(tmp_path: Path) -> None:
    """A query that outlives its version's publish may still need DuckDB's temp directory (beside the
    version's link): releasing the version must not take it away."""
    (tmp_path / "warehouse").mkdir()
    served_db = tmp_path / "warehouse" / "callsight.duckdb"
    con = duckdb.connect(str(build(served_db, 1, rows=1)))
    con.execute(
        "CREATE TABLE marts.big AS "
        "SELECT range AS i, md5(range::VARCHAR) || md5((range + 1)::VARCHAR) AS s FROM range(600000)"
    )
    con.close()
    sw = served_warehouse.ServedWarehouse(served_db, {**CONFIG, "memory_limit": "40MB", "threads": 1})
    try:
        before = sw.connect()
        publish(build(tmp_path / "build.duckdb", 2), served_db)
        assert version_of(sw.connect()) == 2  # the first version is released now
        # sorting ~60 MB of text under a 40 MB limit spills into the released version's temp directory
        rows = before.execute("SELECT s FROM marts.big ORDER BY s DESC").fetchall()
        assert len(rows) == 600_000 and rows[0] > rows[-1]
    finally:
        sw.close()
