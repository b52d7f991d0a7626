"""A small thread-safe least-recently-used map, shared by the parse memo and the key memo (issue 31).

Loaded by superset_config.py before them, as `callsight_lru`."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any


class Lru:
    """At most `size` values by key, the least recently used dropped first; counts hits and misses."""

    def __init__(self, size: int) -> None:
        self.size, self.hits, self.misses = size, 0, 0
        self._values: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            found = self._values.get(key)
            if found is None:
                self.misses += 1
            else:
                self._values.move_to_end(key)
                self.hits += 1
            return found

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._values[key] = value
            self._values.move_to_end(key)
            while len(self._values) > self.size:
                self._values.popitem(last=False)

    def items(self) -> list[tuple[Hashable, Any]]:
        with self._lock:
            return list(self._values.items())
