"""Python's full garbage collections in a Superset process, kept short (issue 31).

A gunicorn worker holds millions of objects that live as long as it does - the modules, classes and
functions of Superset and its libraries, SQLAlchemy's metadata - and Python's cyclic collector walked all
of them in every full (generation 2) collection: about a quarter of a second each, a dozen times in a few
minutes of chart requests, stalling whatever request ran then (docs/performance.md). `gc.freeze()` moves
every object alive at that moment into a permanent generation the collector skips. Done twice: when the
app is made (after a collection: nothing serves yet), and once more after the process's first FREEZE_AFTER
requests, when the modules Superset imports lazily (SQL dialects, parts of pandas) are in - without a
collection there, which would stall the requests of the moment as long as one of those it saves. A frozen
object is still freed when its reference count drops; only what those first requests left behind in
reference cycles stays (a bounded, one-off amount). Loaded by superset_config.py.
"""

from __future__ import annotations

import gc
import threading
from typing import Any

FREEZE_AFTER = 50

_seen = 0
_lock = threading.Lock()


def freeze(collect: bool = True) -> None:
    """Exempt everything alive (after collecting what is garbage now) from later collections."""
    if collect:
        gc.collect()
    gc.freeze()


def count_request(response: Any) -> Any:
    """Flask after_request: freeze once more after the FREEZE_AFTER-th request of this process."""
    global _seen
    with _lock:
        _seen += 1
        now = _seen == FREEZE_AFTER
    if now:
        freeze(collect=False)  # gc.freeze() alone only moves lists: no stall
    return response


def install(app: Any) -> None:
    freeze()
    app.after_request(count_request)
