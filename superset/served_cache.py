"""Superset's chart-data cache, tied to the published version of the served warehouse.

Superset keys a cached chart result by the query, the user's row-level-security filters and the
dataset, but not by the data underneath: after a publish (a night's new calls, an erasure, retention, a
changed mapping of who may see whom) a plain cache kept answering from the replaced warehouse until its
entries timed out. Here every key carries the version of each served file (served_warehouse.py:
device, inode, mtime, size of the file at the served path), so that:

* a lookup asks for the version a query starting now would read; once a publish has replaced the
  file, nothing cached from the old one is reachable, and the first lookup that sees the new version
  empties the cache (what the replaced warehouse held does not stay in memory either);
* a result is stored under the version its query read (the connections it opened since the lookup);
  a result read from a version that is no longer served, or from two versions, is not stored.

Entries can then live until the next publish (DATA_CACHE_CONFIG's timeout) instead of a few minutes.
One cache per process, in memory (like SimpleCache, which it extends): nothing is written to disk.
"""

from __future__ import annotations

import hashlib
import sys
import threading
from typing import Any

from flask_caching.backends.simplecache import SimpleCache


def _served() -> Any:
    # Loaded by path under this name by superset_config.py (neither file is in a package).
    return sys.modules["callsight_served_warehouse"]


class ServedVersionCache(SimpleCache):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._versions: tuple | None = None
        self._versions_lock = threading.Lock()

    def _current(self) -> tuple:
        """The served versions now; a change empties the cache."""
        now = _served().versions_now()
        if now != self._versions:
            with self._versions_lock:
                if now != self._versions:
                    self.clear()
                    self._versions = now
        return now

    @staticmethod
    def _key(versions: tuple, key: str) -> str:
        return hashlib.sha256(repr(versions).encode()).hexdigest()[:16] + ":" + key

    def get(self, key: str) -> Any:
        versions = self._current()
        _served().watch_reads()
        return super().get(self._key(versions, key))

    def _stored_key(self, key: str) -> str | None:
        """The key a result computed since the last lookup is stored under: the versions its query read,
        if they are still served; None (not stored) otherwise."""
        read = _served().versions_read()
        _served().watch_reads()
        return self._key(read, key) if read == self._current() else None

    def set(self, key: str, value: Any, timeout: int | None = None) -> bool:
        stored = self._stored_key(key)
        return stored is not None and super().set(stored, value, timeout)

    def add(self, key: str, value: Any, timeout: int | None = None) -> bool:
        stored = self._stored_key(key)
        return stored is not None and super().add(stored, value, timeout)

    def delete(self, key: str) -> bool:
        return super().delete(self._key(self._current(), key))

    def has(self, key: str) -> bool:
        return super().has(self._key(self._current(), key))
