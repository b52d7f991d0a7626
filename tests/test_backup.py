"""`callsight backup` / `restore` (issue 28): a lost server comes back as it was, erasures outlive
backups, a killed backup leaves the previous archive, a damaged archive is refused before anything is
written, Superset's metadata comes back (SQLite file and PostgreSQL)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from callsight.defs.nightly import run_nightly
from callsight.operations.archive import (
    ArchiveError,
    Entry,
    Manifest,
    check_member_name,
    compare,
    prune_archives,
    verify_archive,
)
from callsight.operations.backup import (
    DIRECTORY,
    DQ_RECORD,
    KEPT_BUILD,
    POLICY,
    RAW_STORE,
    SERVED,
    SUPERSET_PG,
    SUPERSET_SQLITE,
    WEEK_FILE,
    backup,
)
from callsight.operations.erasure_register import RegisterRow, added, check_keys, from_json, merge, to_json
from callsight.operations.restore import Reapplied, RestoreError, needs_rebuild, put_in_place, restore
from callsight.operations.superset_metadata import POSTGRESQL, SQLITE, parse_uri
from callsight.privacy.audit import read_entries, verify_chain
from callsight.privacy.erase_everywhere import erase
from callsight.privacy.erasure import PHONE, ErasureKeyError, Identifier, ScrubCounts, key_check
from callsight.publish.builds import SERVED_SCHEMAS, verify
from callsight.publish.week_files import listed_files
from callsight.site.file_modes import loose_paths
from callsight.site.halt import HALT_AT, HALT_MARKER
from callsight.site.home import kept_builds
from callsight.site.run_lock import RunBusyError
from callsight.site.settings import REPO_ROOT

from .conftest import Site, copy_home, make_site, require_service
from .privacy_scan import scan

KEY = "backup-test-erasure-key-0123456789"
# Columns that differ between two sites' runs of the same night (when and by which run a row was made).
VOLATILE_COLUMNS = ("built_at", "dbt_invocation_id", "run_id", "_run_id", "extracted_at", "_extracted_at")


# ---- set-up: a production-like site, its journal outside CALLSIGHT_HOME (the PBX's, not ours) -----------
@pytest.fixture(scope="module")
def key_in_environment() -> Iterator[None]:
    """The erasure key as the services see it (the nightly assets read the environment)."""
    saved = dict(os.environ)
    os.environ["CALLSIGHT_ERASURE_KEY"] = KEY
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, key_in_environment: None) -> Site:
    """Two nights published (so one build is kept), Superset metadata in SQLite; not modified by tests."""
    root = tmp_path_factory.mktemp("backup")
    site = make_site(root / "base", days=20, users=16, seed=5)
    source = root / "pbx" / "journal.sqlite"
    source.parent.mkdir()
    shutil.move(site.settings.demo_journal_path, source)
    site.env |= {"CALLSIGHT_JOURNAL_URL": f"sqlite:///{source}", "CALLSIGHT_ERASURE_KEY": KEY}
    first = run_nightly(site.settings)
    assert first.success, first.failure
    again = run_nightly(site.settings, first.last, first.last)
    assert again.success, again.failure
    assert kept_builds(site.settings.served_db)
    site.settings.superset_home.mkdir(mode=0o700)
    metadata = sqlite3.connect(site.settings.superset_home / "superset.db")
    with metadata:
        metadata.execute("CREATE TABLE ab_user (id INTEGER PRIMARY KEY, username TEXT)")
        metadata.executemany("INSERT INTO ab_user VALUES (?, ?)", [(1, "admin"), (2, "maria.mueller")])
    metadata.close()
    return site


def clone(base: Site, home: Path) -> Site:
    """A private copy of the base site (same PBX journal)."""
    copy_home(base.home, home, shutil.ignore_patterns("dagster", "logs", "backups"))
    return Site(home, {**base.env, "CALLSIGHT_HOME": str(home)})


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def served_tables(path: Path) -> dict[str, tuple[int, int]]:
    """Per served table and view: (rows, an order-independent hash of its rows without the volatile
    columns). The listing of the week files names them by the build that wrote them: left out."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "UNION ALL SELECT schema_name, view_name FROM duckdb_views() WHERE database_name = current_database() "
            "AND NOT internal"
        ).fetchall()
        out = {}
        for schema, table in tables:
            if schema not in SERVED_SCHEMAS or table in ("build_info", "audit_log", "week_files"):
                continue
            cols = [
                r[0]
                for r in con.execute(
                    "SELECT column_name FROM duckdb_columns() WHERE schema_name = ? AND table_name = ? "
                    "AND database_name = current_database()",
                    [schema, table],
                ).fetchall()
                if r[0] not in VOLATILE_COLUMNS
            ]
            select = ", ".join(f'"{c}"' for c in cols)
            rows, digest = con.execute(
                f'SELECT count(*), coalesce(sum(hash({select})), 0) FROM "{schema}"."{table}"'
            ).fetchone()
            out[f"{schema}.{table}"] = (rows, int(digest))
        return out
    finally:
        con.close()


def superset_users(path: Path) -> list[tuple]:
    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT id, username FROM ab_user ORDER BY id").fetchall()
    finally:
        con.close()


def audit(site: Site) -> list:
    con = duckdb.connect(str(site.settings.raw_db), read_only=True)
    try:
        return read_entries(con)
    finally:
        con.close()


# ---- the drill: backup, lose the home, restore, next night -----------------------------------------
@pytest.mark.slow
def test_a_site_restored_after_losing_its_home_publishes_the_next_night_like_one_that_never_lost_it(
    base: Site, tmp_path: Path
) -> None:
    site, control = clone(base, tmp_path / "site"), clone(base, tmp_path / "control")
    settings = site.settings
    before_served = sha256(settings.served_db)
    before_kept = {p.name: sha256(p) for p in kept_builds(settings.served_db)}
    before_directory = settings.effective_directory_path.read_bytes()
    before_policy = settings.effective_policy_path.read_bytes()
    before_log = audit(site)

    result = backup(settings, tmp_path / "offsite" / "callsight.tar.gz", compress=True)
    assert result.path.stat().st_mode & 0o777 == 0o600
    kinds = {e.kind for e in result.manifest.files}
    assert {RAW_STORE, DQ_RECORD, SERVED, KEPT_BUILD, WEEK_FILE, SUPERSET_SQLITE, DIRECTORY, POLICY} <= kinds
    assert verify_archive(result.path) == result.manifest
    with tarfile.open(result.path) as tar:
        names = tar.getnames()
    assert names[-1] == "manifest.json" and not any("env" in n or "secret" in n for n in names)
    assert "CALLSIGHT_ERASURE_KEY" in result.manifest.facts["secrets_not_included"]

    shutil.rmtree(settings.home)  # the server is lost; the secrets (environment) and the PBX are not

    restored = restore(settings, result.path)
    assert restored.republished is None, "no erasure is newer than the archive's warehouse"
    assert sha256(settings.served_db) == before_served
    assert {p.name: sha256(p) for p in kept_builds(settings.served_db)} == before_kept
    assert settings.effective_directory_path.read_bytes() == before_directory
    assert settings.effective_policy_path.read_bytes() == before_policy
    assert superset_users(settings.superset_home / "superset.db") == [(1, "admin"), (2, "maria.mueller")]
    assert settings.validated_rows_db.exists()
    log = audit(site)
    assert verify_chain(log) == [] and log[: len(before_log)] == before_log
    assert (log[-1].kind, json.loads(log[-1].detail)["event"]) == ("operations", "restored")
    assert loose_paths(settings.home) == [], "everything restored is owner-only"

    night, control_night = run_nightly(settings), run_nightly(control.settings)
    assert night.success, night.failure
    assert control_night.success, control_night.failure
    restored_tables, control_tables = served_tables(settings.served_db), served_tables(control.settings.served_db)
    assert "marts.fct_calls" in restored_tables and restored_tables["marts.fct_calls"][0] > 0
    assert restored_tables == control_tables


# ---- erasures outlive backups -----------------------------------------------------------------------
def busiest_number(site: Site) -> str:
    journal = sqlite3.connect(site.settings.journal_url.removeprefix("sqlite:///"))
    try:
        return journal.execute(
            "SELECT PhoneNumber FROM journal WHERE PrivateCall = 0 AND Internal = 0 AND PhoneNumber IS NOT NULL "
            "GROUP BY 1 HAVING count(*) >= 3 ORDER BY count(*) DESC, 1 LIMIT 1"
        ).fetchone()[0]
    finally:
        journal.close()


@pytest.mark.slow
def test_restoring_an_archive_from_before_an_erasure_keeps_the_erased_calls_erased(
    base: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from callsight.cli.main import main

    site = clone(base, tmp_path / "site")
    settings = site.settings
    archive = backup(settings, tmp_path / "offsite" / "before-erasure.tar").path
    number = busiest_number(site)
    needles = [number, number.replace(" ", "").lstrip("+")]
    assert scan(settings.home, needles), "positive control: the number is in the site before the erasure"
    for key, value in site.env.items():
        monkeypatch.setenv(key, value)

    assert erase(settings, [Identifier(PHONE, number)]).published
    assert main(["export-erasures", "--output", str(tmp_path / "apart" / "register.json")]) == 0
    export = tmp_path / "apart" / "register.json"
    assert export.stat().st_mode & 0o777 == 0o600 and number not in export.read_text()
    assert scan(settings.home, needles) == []

    # the same server: the live register is merged into the restored one
    with pytest.raises(RestoreError, match="--force"):
        restore(settings, archive)
    same = restore(settings, archive, force=True)
    assert (same.register_rows_added, same.republished) == (1, True)
    assert same.scrubbed.journal_rows > 0
    assert kept_builds(settings.served_db) == [], "the archive's kept builds predate the erasure"
    assert scan(settings.home, needles) == []

    # a new server: the register export kept apart carries the erasure
    shutil.rmtree(settings.home)
    assert main(["restore", str(archive), "--erasures", str(export)]) == 0
    assert scan(settings.home, needles) == []
    log = audit(site)
    assert verify_chain(log) == []
    assert [json.loads(e.detail)["event"] for e in log if e.kind == "operations"][-2:] == ["restored", "published"]

    # and the nights after it: the extract suppresses the number, as before the loss
    night = run_nightly(settings)
    assert night.success, night.failure
    assert scan(settings.home, needles) == []


# ---- a killed backup, a damaged archive, a busy or occupied site ------------------------------------
@pytest.mark.slow
def test_a_backup_killed_midway_leaves_the_previous_archive_intact(base: Site, tmp_path: Path) -> None:
    site = clone(base, tmp_path / "site")
    output = tmp_path / "offsite" / "callsight.tar"
    previous = backup(site.settings, output)
    before = sha256(output)
    marker = tmp_path / "halted.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CALLSIGHT_", "DAGSTER_", "SUPERSET_"))}
    env |= {**site.env, HALT_AT: "backup", HALT_MARKER: str(marker)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT / "orchestration"), env.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "callsight.cli.main", "backup", "--output", str(output)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while not marker.exists():
            assert proc.poll() is None, f"the backup ended (exit {proc.returncode}) before its halt point"
            assert time.monotonic() < deadline, "the backup never reached its halt point"
            time.sleep(0.2)
        partial = [p for p in output.parent.iterdir() if p.name.startswith(f".{output.name}.partial-")]
        assert partial and partial[0].stat().st_size > 0, "the new archive was being written"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert sha256(output) == before
    assert verify_archive(output) == previous.manifest
    # the next backup removes what the killed one left behind
    backup(site.settings, output)
    assert sorted(p.name for p in output.parent.iterdir()) == [output.name]
    verify_archive(output)


@pytest.fixture(scope="module")
def archive(base: Site, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return backup(base.settings, tmp_path_factory.mktemp("archives") / "callsight.tar").path


def test_a_restore_into_another_home_points_the_warehouse_at_its_own_week_files(
    archive: Path, base: Site, tmp_path: Path
) -> None:
    """The facts' views name their week files by path (publish/week_files.py): restored under another
    CALLSIGHT_HOME, the served warehouse and the kept builds read the files there - and only there, as
    Superset opens them - with the same rows."""
    moved = Site(tmp_path / "moved", {**base.env, "CALLSIGHT_HOME": str(tmp_path / "moved")}).settings
    restore(moved, archive)
    builds = [moved.served_db, *kept_builds(moved.served_db)]
    assert len(builds) == 1 + len(kept_builds(base.settings.served_db))
    for build in builds:
        assert verify(build, moved.parts_dir)["marts.fct_calls"] > 0
    assert verify(moved.served_db, moved.parts_dir) == verify(base.settings.served_db, base.settings.parts_dir)
    named = {f for b in builds for f in listed_files(b)}
    assert named and {p.relative_to(moved.parts_dir).as_posix() for p in moved.parts_dir.rglob("*.parquet")} == named


def test_a_damaged_archive_is_refused_before_anything_is_written(archive: Path, tmp_path: Path, base: Site) -> None:
    with tarfile.open(archive) as tar:
        member = tar.getmember("raw/journal.duckdb")
    damaged = tmp_path / "damaged.tar"
    data = bytearray(archive.read_bytes())
    data[member.offset_data + member.size // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(archive.read_bytes()[: member.offset_data + member.size // 2])
    home = tmp_path / "new-server"
    settings = Site(home, {**base.env, "CALLSIGHT_HOME": str(home)}).settings
    with pytest.raises(ArchiveError, match=r"raw/journal\.duckdb: checksum mismatch"):
        restore(settings, damaged)
    with pytest.raises(ArchiveError):
        restore(settings, truncated)
    assert not home.exists(), "nothing was written"


def test_a_restore_refuses_a_running_night_and_an_occupied_site(archive: Path, base: Site, tmp_path: Path) -> None:
    site = clone(base, tmp_path / "site")
    before = sha256(site.settings.raw_db)
    with pytest.raises(RestoreError, match="--force"):
        restore(site.settings, archive)
    # a night holds the run lock; then something else (in another process) holds the raw store
    flock = (
        "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
        "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(120)"
    )
    night = subprocess.Popen(
        [sys.executable, "-c", flock, str(site.home / "run.lock")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert night.stdout is not None and night.stdout.readline().strip() == "held"
        with pytest.raises(RunBusyError, match="another night is running"):
            restore(site.settings, archive, force=True)
    finally:
        night.kill()
        night.wait(timeout=30)
    hold = "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); print('held', flush=True); time.sleep(120)"
    night = subprocess.Popen([sys.executable, "-c", hold, str(site.settings.raw_db)], stdout=subprocess.PIPE, text=True)
    try:
        assert night.stdout is not None and night.stdout.readline().strip() == "held"
        with pytest.raises(RestoreError, match="in use"):
            restore(site.settings, archive, force=True)
    finally:
        night.kill()
        night.wait(timeout=30)
    assert sha256(site.settings.raw_db) == before
    assert not list(site.home.glob(".callsight-restore*")), "no staging folder left behind"


def test_restore_refuses_an_erasure_register_it_cannot_apply(archive: Path, base: Site, tmp_path: Path) -> None:
    export = tmp_path / "register.json"
    row = RegisterRow(datetime(2026, 1, 2, 3, 4, 5), "r1", PHONE, "0" * 64, key_check("another-key-0123456789"))
    export.write_text(to_json([row], datetime(2026, 1, 3)), encoding="utf-8")
    home = tmp_path / "new-server"
    settings = Site(home, {**base.env, "CALLSIGHT_HOME": str(home)}).settings
    with pytest.raises(ErasureKeyError, match="another CALLSIGHT_ERASURE_KEY"):
        restore(settings, archive, [export])
    assert not settings.raw_db.exists() and not settings.served_db.exists()


# ---- Superset's metadata in PostgreSQL --------------------------------------------------------------
def postgres_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture
def postgres_metadata() -> Iterator[str]:
    require_service(postgres_up(), "PostgreSQL on 127.0.0.1:5432 (Superset metadata DB)")
    import psycopg

    db = f"callsight_backup_{os.getpid()}_{time.monotonic_ns() % 10**6}"
    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{db}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{db}"
    finally:
        with psycopg.connect(admin, autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def test_superset_metadata_in_postgresql_is_dumped_and_restored(
    base: Site, tmp_path: Path, postgres_metadata: str
) -> None:
    import psycopg

    with psycopg.connect(postgres_metadata, autocommit=True) as con:
        con.execute("CREATE TABLE ab_user (id integer PRIMARY KEY, username text)")
        con.execute("INSERT INTO ab_user VALUES (1, 'admin'), (2, 'maria.mueller')")
    site = clone(base, tmp_path / "site")
    (site.home / "superset" / "superset.db").unlink()
    site.env["SUPERSET_DATABASE_URI"] = postgres_metadata.replace("postgresql://", "postgresql+psycopg2://")
    result = backup(site.settings, tmp_path / "offsite" / "pg.tar")
    assert [e.name for e in result.manifest.by_kind(SUPERSET_PG)] == ["superset/metadata.pgdump"]
    with psycopg.connect(postgres_metadata, autocommit=True) as con:
        con.execute("DELETE FROM ab_user WHERE id = 2")
        con.execute("INSERT INTO ab_user VALUES (3, 'intruder')")
    assert restore(site.settings, result.path, force=True).republished is None
    with psycopg.connect(postgres_metadata) as con:
        assert con.execute("SELECT id, username FROM ab_user ORDER BY id").fetchall() == [
            (1, "admin"),
            (2, "maria.mueller"),
        ]
    # an archive with PostgreSQL metadata needs a site that names the database to restore it into
    del site.env["SUPERSET_DATABASE_URI"]
    with pytest.raises(RestoreError, match="SUPERSET_DATABASE_URI"):
        restore(site.settings, result.path, force=True)


# ---- pure parts ------------------------------------------------------------------------------------
def test_keep_prunes_the_oldest_archives(tmp_path: Path) -> None:
    for stamp in ("20261201T020000Z", "20261202T020000Z", "20261203T020000Z"):
        (tmp_path / f"callsight-{stamp}.tar").write_bytes(b"x")
    (tmp_path / "register.json").write_text("{}")
    gone = prune_archives(tmp_path, keep=2)
    assert [p.name for p in gone] == ["callsight-20261201T020000Z.tar"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "callsight-20261202T020000Z.tar",
        "callsight-20261203T020000Z.tar",
        "register.json",
    ]


def test_registers_merge_by_request_and_identifier() -> None:
    key = "a-key-of-sixteen-or-more"
    a = RegisterRow(datetime(2026, 1, 1), "r1", PHONE, "h1", key_check(key))
    b = RegisterRow(datetime(2026, 2, 1), "r2", PHONE, "h2", key_check(key))
    assert merge([a], [b, a], [b]) == [a, b]
    assert added([a], merge([a], [b])) == [b]
    assert from_json(to_json([a, b], datetime(2026, 3, 1))) == [a, b]
    check_keys([a, b], key)
    check_keys([], None)
    with pytest.raises(ErasureKeyError, match="not set"):
        check_keys([a], None)


def test_a_restore_rebuilds_when_the_archived_warehouse_may_hold_erased_calls() -> None:
    old = RegisterRow(datetime(2026, 1, 1), "r1", PHONE, "h1", "k")
    new = RegisterRow(datetime(2026, 2, 1), "r2", PHONE, "h2", "k")
    none = ScrubCounts(0, 0)
    assert not needs_rebuild(Reapplied([], [], [], none), None)
    assert not needs_rebuild(Reapplied([old], [old], [], none), datetime(2026, 1, 2))
    assert needs_rebuild(Reapplied([old], [old], [], none), datetime(2025, 12, 31)), "built before the request"
    assert needs_rebuild(Reapplied([old], [old, new], [new], none), datetime(2026, 3, 1)), "a request since"
    assert needs_rebuild(Reapplied([old], [old], [], ScrubCounts(0, 1)), datetime(2026, 3, 1))


def test_manifest_checks_names_sizes_and_checksums() -> None:
    manifest = Manifest("2026-12-05T00:00:00+00:00", "0.1.0", (Entry("a/b", "k", "d", 3, "ab"),))
    assert Manifest.from_json(manifest.to_json()) == manifest
    assert compare(manifest, {"a/b": (3, "ab")}) == []
    assert compare(manifest, {"a/b": (3, "cd"), "c": (1, "x")}) == [
        "c: in the archive but not in its manifest",
        "a/b: checksum mismatch (the file was altered or damaged)",
    ]
    assert compare(manifest, {}) == ["a/b: missing from the archive"]
    for bad in ("/etc/passwd", "../x", "a/../../x", ""):
        with pytest.raises(ArchiveError):
            check_member_name(bad)


def test_the_metadata_uri_says_where_superset_keeps_its_metadata() -> None:
    assert parse_uri("sqlite:////srv/callsight/superset/superset.db?check_same_thread=false").path == Path(
        "/srv/callsight/superset/superset.db"
    )
    assert parse_uri("sqlite:////x.db").kind == SQLITE
    pg = parse_uri("postgresql+psycopg2://superset:s%40cret@db.internal:5433/superset")
    assert (pg.kind, pg.url, pg.password) == (POSTGRESQL, "postgresql://superset@db.internal:5433/superset", "s@cret")


def test_a_restored_sqlite_file_does_not_replay_the_write_ahead_log_of_the_file_it_replaces(tmp_path: Path) -> None:
    """Superset's SQLite metadata runs in WAL mode: a server that died with a log beside the file it had
    open must not have that log applied to the restored file."""
    dst = tmp_path / "superset" / "superset.db"
    dst.parent.mkdir()
    old = sqlite3.connect(dst)
    assert old.execute("PRAGMA journal_mode=WAL").fetchone() == ("wal",)
    old.execute("CREATE TABLE ab_user (id INTEGER PRIMARY KEY, username TEXT)")
    old.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with old:
        old.executemany("INSERT INTO ab_user VALUES (?, ?)", [(i, f"lost{i}") for i in range(1, 200)])
    crashed = {log: dst.with_name(dst.name + log).read_bytes() for log in ("-wal", "-shm")}
    assert len(crashed["-wal"]) > 4096, "the rows are in the log, not yet in the file"
    old.close()  # a clean close folds the log in; put back what a crash would have left
    for log, data in crashed.items():
        dst.with_name(dst.name + log).write_bytes(data)

    staged = tmp_path / "staged.db"
    new = sqlite3.connect(staged)
    new.execute("PRAGMA journal_mode=WAL")
    new.execute("CREATE TABLE ab_user (id INTEGER PRIMARY KEY, username TEXT)")
    with new:
        new.execute("INSERT INTO ab_user VALUES (1, 'admin')")
    new.close()

    put_in_place(staged, dst)
    restored = sqlite3.connect(dst)
    try:
        assert restored.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert restored.execute("SELECT * FROM ab_user").fetchall() == [(1, "admin")]
    finally:
        restored.close()
