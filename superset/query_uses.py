"""Which of a dataset's columns the chart query being built may refer to, for the datasets' SQL (issue 31).

The dashboards' datasets join the agents' labels (security.agent_labels) to every call for the columns
agent_name and the audience's agent keys. DuckDB keeps that join, or the correlated subquery, even where
the chart never reads those columns: a KPI tile over a month of inbound calls at 10M legs took 57 ms per
query with it and 11 ms without (docs/performance.md). The datasets' SQL (bi/agent_macros.py) asks
`callsight_uses('agent_name', ...)` and joins only where the answer is yes; otherwise it reads the labels
through a form DuckDB drops when unused and that still gives the same values when used. So a wrong "no"
costs time, never a wrong result.

The answer is "yes" unless the query spec Superset builds the SQL from (get_sqla_query's arguments: its
columns, group-by, metrics, filters, extras with custom WHERE/HAVING, ordering, series limits), together
with the expressions of the dataset's saved metrics and calculated columns it names, does not contain the
name anywhere. Outside a query build (column sync, filter values) the answer is always yes.
"""

from __future__ import annotations

import contextvars
import functools
import json
from typing import Any

_building: contextvars.ContextVar[tuple[Any, dict[str, Any]] | None] = contextvars.ContextVar(
    "callsight_query_uses", default=None
)


def spec_text(spec: dict[str, Any], expressions: dict[str, str]) -> str:
    """Pure: the query spec as text, with the expression of every saved metric or calculated column whose
    name it contains added (again, until nothing new is named). `expressions`: name -> SQL expression."""
    text = json.dumps({k: v for k, v in spec.items() if k != "table_columns"}, sort_keys=True, default=str)
    added: set[str] = set()
    while True:
        named = {name for name in expressions if name not in added and name in text}
        if not named:
            return text
        added |= named
        text += "\n" + "\n".join(expressions[name] for name in sorted(named))


def uses(spec: dict[str, Any] | None, expressions: dict[str, str], names: tuple[str, ...]) -> bool:
    """Pure: whether a query of `spec` may refer to any of `names` (always, without a spec)."""
    if spec is None:
        return True
    text = spec_text(spec, expressions)
    return any(name in text for name in names)


def _expressions(datasource: Any) -> dict[str, str]:
    named = {m.metric_name: m.expression or "" for m in getattr(datasource, "metrics", [])}
    named.update({c.column_name: c.expression for c in getattr(datasource, "columns", []) if c.expression})
    return named


def callsight_uses(*names: str) -> bool:
    """Jinja (JINJA_CONTEXT_ADDONS): whether the query being built may refer to any of `names`."""
    building = _building.get()
    if building is None:
        return True
    datasource, spec = building
    return uses(spec, _expressions(datasource), names)


def tracked(original: Any) -> Any:
    """ExploreMixin.get_sqla_query with its arguments known to callsight_uses while it builds."""

    @functools.wraps(original)
    def get_sqla_query(self: Any, *args: Any, **kwargs: Any) -> Any:
        token = _building.set(None if args else (self, kwargs))
        try:
            return original(self, *args, **kwargs)
        finally:
            _building.reset(token)

    return get_sqla_query


def install() -> None:
    """Patch Superset once per process (FLASK_APP_MUTATOR), before the key memo and the SQL guard wrap
    get_sqla_query: this must sit next to Superset's own."""
    from superset.models.helpers import ExploreMixin

    if getattr(ExploreMixin, "callsight_query_uses", False):
        return
    ExploreMixin.get_sqla_query = tracked(ExploreMixin.get_sqla_query)
    ExploreMixin.callsight_query_uses = True
