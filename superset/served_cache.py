"""Superset's chart-data cache, tied to the published version of the served warehouse.

Superset keys a cached chart result by the query, the user's row-level-security filters and the
dataset, but not by the data underneath: after a publish (a night's new calls, an erasure, retention, a
changed mapping of who may see whom) a plain cache kept answering from the replaced warehouse until its
entries timed out. Here every key carries the version of each served file (served_warehouse.py:
device, inode, mtime, size of the file at the served path), so that:

* a lookup asks for the version a query starting now would read; once a publish has replaced the
  file, nothing cached from the old one is reachable, and the first lookup that sees the new version
  drops every other version's results (what the replaced warehouse held does not stay in memory either);
* a result is stored under the version its query read (the connections it opened since the lookup);
  a result read from a version that is no longer served, or from two versions, is not stored;
* the night's warm-up of the build it is about to publish stores results under the version that build
  will have once published: unreachable until then (and kept when a process drops other versions' results
  meanwhile), found by the first open after the swap.

The memos keep their values here too (get_memo/set_memo, under the same version tag): the key memo
(key_memo.py) what a chart's cache key takes from the dataset's Jinja, in Redis only, and the answer memo
(answer_memo.py) whole chart-data answers, in either backend. The night's warm-up computes them once per
visibility set and request, and the web workers' first requests after a publish find them there instead
of building the query and the answer.

Entries can then live until the next publish (DATA_CACHE_CONFIG's timeout) instead of a few minutes.
Two backends with the same keys: ServedVersionCache keeps one cache per process in memory (SimpleCache);
ServedVersionRedisCache (with CALLSIGHT_REDIS_URL) one for all Superset processes of the site - every
gunicorn worker and the Celery workers answer from what any of them computed, and the night's warm-up
fills it once. There the first process to see a new version deletes the other versions' entries.
"""

from __future__ import annotations

import hashlib
import sys
import threading
from typing import Any

from flask_caching.backends.rediscache import RedisCache
from flask_caching.backends.simplecache import SimpleCache

MEMO_PREFIX = "callsight-"  # + the memo's own prefix


def _served() -> Any:
    # Loaded by path under this name by superset_config.py (neither file is in a package).
    return sys.modules["callsight_served_warehouse"]


def memo_cache(shared: bool = False) -> Any | None:
    """The site's data cache when it keeps memo values (either class below), None otherwise; with
    `shared`, only the one every process of the site reads (Redis)."""
    from superset.extensions import cache_manager

    backend = getattr(cache_manager.data_cache, "cache", None)
    if not isinstance(backend, _ServedVersions) or (shared and not getattr(backend, "shared", False)):
        return None
    return backend


class _ServedVersions:
    """Keys tied to the served versions (mixed in before a flask-caching backend)."""

    _versions: tuple | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._versions_lock = threading.Lock()  # one per cache object, not one shared by the class

    def _forget_other_versions(self, keep: set[str]) -> None:
        """Drop every result whose tag is not in `keep`."""
        raise NotImplementedError

    def _current(self) -> tuple:
        """The served versions now; a change drops what the other versions cached, except what a warm-up
        stored for the build waiting to be published. A thread warming that build
        (served_warehouse.reading_candidate) sees the build's versions and drops nothing: everybody else
        still reads the served ones."""
        now = _served().versions_now()
        if _served().candidate_now():
            return now
        if now != self._versions:
            with self._versions_lock:
                if now != self._versions:
                    waiting = _served().candidate_versions()
                    self._forget_other_versions({self._tag(v) for v in (now, waiting) if v is not None})
                    self._versions = now
        return now

    @staticmethod
    def _tag(versions: tuple) -> str:
        return hashlib.sha256(repr(versions).encode()).hexdigest()[:16]

    @classmethod
    def _key(cls, versions: tuple, key: str) -> str:
        return cls._tag(versions) + ":" + key

    def get(self, key: str) -> Any:
        versions = self._current()
        _served().watch_reads()
        return super().get(self._key(versions, key))  # type: ignore[misc]

    def _stored_key(self, key: str) -> str | None:
        """The key a result computed since the last lookup is stored under: the versions its query read,
        if they are still served; None (not stored) otherwise."""
        read = _served().versions_read()
        _served().watch_reads()
        return self._key(read, key) if read == self._current() else None

    def set(self, key: str, value: Any, timeout: int | None = None) -> bool:
        stored = self._stored_key(key)
        return stored is not None and super().set(stored, value, timeout)  # type: ignore[misc]

    def add(self, key: str, value: Any, timeout: int | None = None) -> bool:
        stored = self._stored_key(key)
        return stored is not None and super().add(stored, value, timeout)  # type: ignore[misc]

    # The memos' values (key_memo.py, answer_memo.py) beside the results and dropped with them, under the
    # version served now or, in a warm-up of the build, that build's: a memo's key names the version it was
    # computed for, so a value stored just after a publish is never found under the new version's key.
    def get_memo(self, key: str) -> Any:
        return super().get(self._key(self._current(), MEMO_PREFIX + key))  # type: ignore[misc]

    def set_memo(self, key: str, value: Any) -> bool:
        return super().set(self._key(self._current(), MEMO_PREFIX + key), value)  # type: ignore[misc]

    def delete(self, key: str) -> bool:
        return super().delete(self._key(self._current(), key))  # type: ignore[misc]

    def has(self, key: str) -> bool:
        return super().has(self._key(self._current(), key))  # type: ignore[misc]


class ServedVersionCache(_ServedVersions, SimpleCache):
    """In this process's memory: a new version drops everything but what was warmed for it."""

    def _forget_other_versions(self, keep: set[str]) -> None:
        with self._lock:  # cachelib's SimpleCache: its dict and lock
            for key in [k for k in self._cache if k.split(":", 1)[0] not in keep]:
                del self._cache[key]


class ServedVersionRedisCache(_ServedVersions, RedisCache):
    """In Redis, shared by the site's Superset processes (CACHE_KEY_PREFIX names the site)."""

    shared = True  # by every process of the site (key_memo.py keeps its values here only then)

    def _forget_other_versions(self, keep: set[str]) -> None:
        stale = [
            k
            for k in self._read_client.scan_iter(match=self.key_prefix + "*", count=1000)
            if k.decode().removeprefix(self.key_prefix).split(":", 1)[0] not in keep
        ]
        for start in range(0, len(stale), 500):
            self._write_client.delete(*stale[start : start + 500])
