"""A virtual dataset's SQL parsed once per Superset process, not three times per chart request (issue 31).

For every chart request - also one then answered from the cache, to compute its key - Superset parses the
dataset's SQL rendered for the viewer (to check it is one statement; to check it is read-only and to apply
the row-level security of the tables it reads) and the SQL as stored (to collect those tables' predicates
for the key). The texts repeat: the stored SQL always, the rendered one for every viewer of a visibility
set (docs/performance.md, "What a cache hit costs").

Here the parse trees are kept (least recently used, MEMO_SIZE texts), within those three calls only: the
statements made from a kept tree read it (tables, is_mutating, format) or replace it with a transformed
copy (apply_rls); nothing there changes a tree in place. Everywhere else (SQL Lab, the SQL guard) parses
as before. Loaded by superset_config.py."""

from __future__ import annotations

import contextvars
import functools
import sys
from typing import Any

MEMO_SIZE = 512  # about 90 KiB per tree of a dashboard dataset: at most some 45 MiB per process
ENABLED = True  # tests compare against Superset's own parsing by switching it off in their process
_on: contextvars.ContextVar[bool] = contextvars.ContextVar("callsight_parse_memo", default=False)
MEMO = sys.modules["callsight_lru"].Lru(MEMO_SIZE)  # (class, text, engine) -> trees
_original_parse: Any = None


def within_memo(original: Any) -> Any:
    """`original` with the memo on for the parses it makes."""

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = _on.set(True)
        try:
            return original(*args, **kwargs)
        finally:
            _on.reset(token)

    return wrapper


def _parse(cls: type, script: str, engine: str) -> list[Any]:
    """SQLStatement._parse, answered from the memo while it is on."""
    if ENABLED and _on.get():
        key = (cls, script, engine)
        trees = MEMO.get(key)
        if trees is None:  # parsed outside the lock: two threads may parse one text, never wait on each other
            trees = tuple(_original_parse(cls, script, engine))
            MEMO.put(key, trees)
        return list(trees)
    return _original_parse(cls, script, engine)


def intact() -> bool:
    """Every kept tree still equals what parsing its text anew gives (nothing changed one in place)."""
    return all(list(trees) == _original_parse(*key) for key, trees in MEMO.items())


def install() -> None:
    """Patch Superset once per process (FLASK_APP_MUTATOR)."""
    global _original_parse
    import superset.utils.rls as rls
    from superset.models.helpers import ExploreMixin
    from superset.sql.parse import SQLStatement

    if getattr(SQLStatement, "callsight_parse_memo", False):
        return
    _original_parse = SQLStatement._parse.__func__
    SQLStatement._parse = classmethod(_parse)
    ExploreMixin.get_rendered_sql = within_memo(ExploreMixin.get_rendered_sql)
    ExploreMixin.get_from_clause = within_memo(ExploreMixin.get_from_clause)
    # imported by SqlaTable.get_extra_cache_keys at each call, so the module's attribute is what it gets
    rls.collect_rls_predicates_for_sql = within_memo(rls.collect_rls_predicates_for_sql)
    SQLStatement.callsight_parse_memo = True
