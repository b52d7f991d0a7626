"""Superset's connections to the served DuckDB warehouse: one DuckDB instance per published version.

Superset opens a new database connection for every query (SQLAlchemy NullPool): for DuckDB that is
a new database instance, which reads the file's catalog and starts with an empty buffer cache - most of
a chart request's time went there. And DuckDB's Python client shares one instance among all open
connections to the same path: while any query of a gunicorn worker still ran on the file a publish had
just replaced, every new connection of that worker got the old instance - the replaced warehouse, with
calls an erasure had removed and the old mapping of who may see whom - and under steady load that could
go on indefinitely.

Here every version of the served file gets its own instance, opened once through a path that names
only that version (a symlink in a private directory to /proc/self/fd/N, N a descriptor held on the
file as it was when looked at) and kept open by an anchor connection. `connect()` looks at the served
path (os.stat) on every call: the same file -> a new connection to the open instance (microseconds, the
cache stays warm); a new file -> a new instance, and the old one is released - queries still running
on it finish, new ones never reach it. The configuration is locked after opening: no SQL statement can
change settings (memory, threads, temp directory) for the others sharing the instance, and external
access stays off but for the one folder beside the served file that the warehouse's own views may read
(`parts_path`: files the publish writes, each read through a view; DuckDB takes the folder only on an
open instance, before external access goes off, so the locking settings are SET on the anchor and every
other connection joins its instance with the anchor's connect-time configuration).

Chart data that Superset caches is tied to the version it was read from (`versions_now`,
`versions_read`; the cache itself is served_cache.py): a publish makes every cached result of the
replaced warehouse unreachable at once.

The candidate: the night warms Superset's cache for the build it is about to publish (warm_cache.py), so
that the first open after the swap is a cache hit. Inside `reading_candidate()` a thread's connections
read the build file beside the served one (`candidate_path`) instead, and its version is the one the
served path will have once the publish renames the build over it (a rename keeps device, inode, mtime
and size). Every other thread goes on reading the served file. When the served path then shows the
candidate's version, its instance - buffer cache warm - becomes the served one; when another file is
published instead (a republish after an erasure), the candidate's instance is let go.

Standalone (duckdb only), so that the pipeline's tests import it without Superset.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

_PROC_FD = Path("/proc/self/fd")
# Where the night builds the next warehouse, relative to the served file (callsight's Settings.build_db).
CANDIDATE_DIR = "build"
# The folder beside the served file whose files the warehouse's views read (callsight's Settings.parts_dir).
PARTS_DIR = "parts"
# Settings SET on the open anchor, in this order, rather than given at connect time.
_LOCKING = ("enable_external_access", "lock_configuration")


def candidate_path(path: str | os.PathLike[str]) -> Path:
    """The build about to be published over the served file at `path`."""
    served = Path(path)
    return served.parent / CANDIDATE_DIR / served.name


_candidate = threading.local()


@contextmanager
def reading_candidate() -> Iterator[None]:
    """In this thread, every served path reads its candidate (versions_now, connect) until the block ends."""
    before = getattr(_candidate, "on", False)
    _candidate.on = True
    try:
        yield
    finally:
        _candidate.on = before


def candidate_now() -> bool:
    """Whether this thread reads the candidates (inside `reading_candidate`)."""
    return getattr(_candidate, "on", False)


def parts_path(path: str | os.PathLike[str]) -> Path:
    """The only folder the connections to the served file at `path` (and to its candidate) may read files in."""
    return Path(path).parent / PARTS_DIR


def open_locked(
    path: str | os.PathLike[str], parts: Path, config: dict[str, Any] | None = None
) -> duckdb.DuckDBPyConnection:
    """A read-only instance of the DuckDB file at `path` whose SQL reads files in `parts` only (none at all
        if external access is on in `config`: then it is the caller's), configuration locked. Other connections
        join it with `duckdb.connect(path, read_only=True, config=connect_config(config))`. External access is
    off unless `config` turns it on (True)."""
    config = config or {}
    con = duckdb.connect(str(path), read_only=True, config=connect_config(config))
    try:
        folder = f"{parts}/".replace("'", "''")
        con.execute(f"SET allowed_directories = ['{folder}']")
        # the week files' footers read once per instance, not by every query (docs/performance.md)
        con.execute("SET parquet_metadata_cache = true")
        con.execute(f"SET enable_external_access = {config.get('enable_external_access') is True}")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


def connect_config(config: dict[str, Any]) -> dict[str, Any]:
    """The settings of `config` that DuckDB takes at connect time (the locking ones are SET after)."""
    return {k: v for k, v in config.items() if k not in _LOCKING}


def _target(path: str | os.PathLike[str]) -> Path:
    return candidate_path(path) if candidate_now() else Path(path)


@dataclass
class _Version:
    identity: tuple[int, int, int, int]
    fd: int
    link: Path
    anchor: duckdb.DuckDBPyConnection
    pid: int  # the process that opened it: a forked child (a Celery pool worker) opens its own


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


class ServedWarehouse:
    """Read-only connections to the DuckDB file at `path`, always to the file that is there now."""

    def __init__(self, path: str | os.PathLike[str], config: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.config = dict(config or {})
        self._lock = threading.Lock()
        self._version: _Version | None = None
        self._candidate: _Version | None = None  # the candidate's instance while it is not served
        self._opened = 0
        self._dir: Path | None = None

    @property
    def versions_opened(self) -> int:
        return self._opened

    def connect(self) -> duckdb.DuckDBPyConnection:
        candidate = candidate_now()
        st = os.stat(_target(self.path))  # FileNotFoundError names the path: nothing published (or built)
        with self._lock:
            if any(v is not None and v.pid != os.getpid() for v in (self._version, self._candidate)):
                # the parent's instances: left alone, they are the parent's to close
                self._version = self._candidate = None
                self._dir = None
            current = self._candidate if candidate else self._version
            if current is None or current.identity != _identity(st):
                current = self._switch(candidate, _identity(st))
            _note_read(self.path, current.identity)
            # the anchor is open (released only under this lock): this joins its instance, settings locked
            return duckdb.connect(str(current.link), read_only=True, config=connect_config(self.config))

    def _switch(self, candidate: bool, identity: tuple[int, int, int, int]) -> _Version:
        """Open the file now at the served path (or the candidate's), or take the candidate's instance
        when that file is what the served path shows now (it was published). Another file published
        (a republish after an erasure) releases the candidate's instance: it is not going to be served."""
        if not candidate and self._candidate is not None and self._candidate.identity == identity:
            new, self._candidate = self._candidate, None
        else:
            if not candidate and self._candidate is not None:
                self._release(self._candidate)
                self._candidate = None
            new = self._open(_target(self.path))
        if candidate:
            old, self._candidate = self._candidate, new
        else:
            old, self._version = self._version, new
        if old is not None:
            self._release(old)
        return new

    def _open(self, path: Path) -> _Version:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="callsight-served-"))
            atexit.register(shutil.rmtree, self._dir, True)
        fd = os.open(path, os.O_RDONLY)
        try:
            identity = _identity(os.fstat(fd))  # what was opened, even if the path changed meanwhile
            self._opened += 1
            folder = self._dir / f"v{self._opened}"  # a path never used again in this process
            folder.mkdir()
            link = folder / self.path.name  # DuckDB names the catalog after the file, as before
            link.symlink_to(_PROC_FD / str(fd))
            anchor = open_locked(link, parts_path(self.path), self.config)
        except BaseException:
            os.close(fd)
            raise
        return _Version(identity, fd, link, anchor, os.getpid())

    @staticmethod
    def _release(version: _Version) -> None:
        # Connections still running on the old instance keep it (and its own file handle) alive until
        # they close; nothing connects through its path again, so its descriptor and link can go. The
        # folder stays (until the process exits): a query still running may spill into its temp
        # directory (<link>.tmp, DuckDB's default), which DuckDB removes when the instance closes.
        version.anchor.close()
        os.close(version.fd)
        version.link.unlink(missing_ok=True)

    def close(self) -> None:
        with self._lock:
            for version in (self._version, self._candidate):
                if version is not None:
                    self._release(version)
            self._version = self._candidate = None


def supported() -> bool:
    """Pinning a version needs /proc/self/fd (Linux)."""
    return _PROC_FD.is_dir()


_registry: dict[tuple[str, tuple[tuple[str, str], ...]], ServedWarehouse] = {}
_registry_lock = threading.Lock()


def served(path: str, config: dict[str, Any]) -> ServedWarehouse:
    """The process-wide ServedWarehouse for a path and configuration."""
    key = (os.path.abspath(path), tuple(sorted((k, repr(v)) for k, v in config.items())))
    with _registry_lock:
        if key not in _registry:
            _registry[key] = ServedWarehouse(key[0], config)
        return _registry[key]


Version = tuple[str, tuple[int, int, int, int] | None]
_reads = threading.local()


def _note_read(path: Path, identity: tuple[int, int, int, int]) -> None:
    seen: dict[str, set] | None = getattr(_reads, "seen", None)
    if seen is None:
        seen = _reads.seen = {}
    seen.setdefault(str(path), set()).add(identity)


def _served_paths() -> list[str]:
    with _registry_lock:
        return sorted({str(w.path) for w in _registry.values()})


def _stat_identity(path: Path) -> tuple[int, int, int, int] | None:
    try:
        return _identity(os.stat(path))
    except FileNotFoundError:
        return None


def versions_now() -> tuple[Version, ...]:
    """(path, identity of the file there now; None if there is none) for every served path of this
    process, sorted by path: what a query starting now would read (inside `reading_candidate`: the
    candidate's identity under the served path, as it will be once published)."""
    return tuple((path, _stat_identity(_target(path))) for path in _served_paths())


def candidate_versions() -> tuple[Version, ...] | None:
    """versions_now() once the candidates there now are published; None if there is none. The cache keeps
    what a warm-up stored for them when it drops the other versions' results."""
    paths = _served_paths()
    candidates = {path: _stat_identity(candidate_path(path)) for path in paths}
    if not any(candidates.values()):
        return None
    return tuple((path, candidates[path] or _stat_identity(Path(path))) for path in paths)


def watch_reads() -> None:
    """Start noting the versions this thread's connections read (`versions_read`)."""
    _reads.seen = {}


def versions_read() -> tuple[Version, ...] | None:
    """The versions this thread read since `watch_reads`, in the form of `versions_now`: the version read
    where a served path was read, the version there now where it was not. None if a path was read in two
    versions (a publish between two connections of one query): no single version a result belongs to."""
    seen: dict[str, set] = getattr(_reads, "seen", None) or {}
    if any(len(identities) > 1 for identities in seen.values()):
        return None
    read = {path: next(iter(identities)) for path, identities in seen.items()}
    return tuple((path, read.get(path, identity)) for path, identity in versions_now())


def connection_mutator(url: Any, params: dict[str, Any], *_: Any) -> tuple[Any, dict[str, Any]]:
    """Superset's DB_CONNECTION_MUTATOR: read-only DuckDB files get their connections from `served`.

    Anything else (other databases, DuckDB in memory or MotherDuck, connect arguments this does not
    know) is left to Superset as it is."""
    args = params.get("connect_args") or {}
    database = url.database or ""
    if (
        url.get_backend_name() != "duckdb"
        or not database
        or database.startswith(":")
        or "://" in database
        or database.startswith("md:")
        or not os.path.isabs(database)
        or args.get("read_only") is not True
        or set(args) - {"read_only", "config"}
        or not supported()
    ):
        return url, params
    warehouse = served(database, dict(args.get("config") or {}))

    def creator() -> Any:
        from duckdb_engine import ConnectionWrapper  # Superset's environment only

        return ConnectionWrapper(warehouse.connect())

    return url, {**params, "creator": creator}
