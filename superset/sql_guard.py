"""What a non-admin's chart query may be, checked in two independent layers (issue 25).

Superset 6.1 checks a custom SQL fragment as `SELECT <fragment>`, so `count(*) FROM t UNION ALL SELECT
count(*)` slips through unfiltered (fixed upstream after 6.1.0). callsight does not rely on that check:

* Layer 1, what may be asked (`check_query_object`): every fragment of a chart query - metrics, columns,
  group-by, order-by, filters, where/having, series-limit metric, time grain - must be a single plain
  expression over the dataset's columns: no set operation, subquery, FROM/JOIN, table, table function,
  statement separator, comment, Jinja or anything that does not parse. Viewers (dashboard readers) may
  send no custom SQL at all, only the dataset's columns and metrics (layer 3).
* Layer 2, what the final query does (`check_final_query`): the SQL Superset is about to run is parsed
  again; the dataset's own SQL (trusted: shipped in superset/assets, with Superset's row-level security
  inside) and the RLS predicates are the only places where a table, subquery or set operation may stand.
  The query DuckDB runs is the SQL regenerated from the very tree that was checked, so no difference
  between this parser and DuckDB's can hide anything.

Pure functions over sqlglot trees; superset_hooks.py applies them inside Superset."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlglot import exp

DIALECT = "duckdb"
MAX_FRAGMENT = 2000
# Characters no chart expression needs, which hide things from one parser or the other: statement
# separators, comments, Jinja, dollar quoting, backslash escapes.
FORBIDDEN_TEXT = (";", "--", "/*", "*/", "{{", "}}", "{%", "%}", "{#", "#}", "$", "\\")
# Functions that read files, run SQL given as text, or reveal the engine's settings.
FORBIDDEN_FUNCTION_PREFIXES = (
    "read_",
    "sniff_",
    "parquet_",
    "glob",
    "query",
    "getenv",
    "current_setting",
    "duckdb_",
    "pragma_",
    "sqlite_",
    "postgres_",
    "mysql_",
    "iceberg_",
    "delta_",
    "json_execute",
    "load",
    "install",
    "attach",
    "checkpoint",
    "which_secret",
    "icu_",
    "test_",
    "enable_",
    "disable_",
)
# Node types that read relations or compose queries: never inside a fragment, and in the final query
# only within the dataset's own SQL and the RLS predicates.
RELATION_NODES: tuple[type[exp.Expression], ...] = (
    exp.Query,  # SELECT, UNION/INTERSECT/EXCEPT
    exp.Subquery,
    exp.Table,
    exp.From,
    exp.Join,
    exp.With,
    exp.CTE,
    exp.Lateral,
    exp.Values,
    exp.Command,
    exp.DDL,
    exp.DML,
    exp.Pragma,
    exp.Use,
    exp.Set,
    exp.Placeholder,
    exp.Parameter,
    exp.SessionParameter,
)
SIMPLE_AGGREGATES = {"SUM", "AVG", "COUNT", "COUNT_DISTINCT", "MIN", "MAX"}
DTTM_ALIAS = "__timestamp"


class GuardRefusal(Exception):
    """A query refused by a layer. `reason` is a short code for the audit log; the message says what is
    wrong in words and never contains the query."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


# ---- layer 1: fragments ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Dataset:
    """What a fragment may refer to: the dataset's column and metric names, and the time grains."""

    columns: frozenset[str]
    metrics: frozenset[str]
    time_grains: frozenset[str]

    def has_column(self, name: str) -> bool:
        return name.lower() in {c.lower() for c in self.columns}


def function_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    return node.sql_name().lower()


def forbidden_function(node: exp.Expression) -> str | None:
    if isinstance(node, exp.Func):
        name = function_name(node)
        if name.startswith(FORBIDDEN_FUNCTION_PREFIXES):
            return name
    return None


def check_expression(text: Any, dataset: Dataset, where: str) -> None:
    """A custom SQL fragment must be one plain expression over the dataset's columns (fail closed)."""
    if not isinstance(text, str) or not text.strip():
        raise GuardRefusal("fragment_not_text", f"{where}: a custom SQL expression must be non-empty text")
    if len(text) > MAX_FRAGMENT:
        raise GuardRefusal("fragment_too_long", f"{where}: custom SQL longer than {MAX_FRAGMENT} characters")
    for token in FORBIDDEN_TEXT:
        if token in text:
            raise GuardRefusal(
                "fragment_forbidden_text",
                f"{where}: custom SQL may not contain {token!r} (statement separators, comments, Jinja, "
                "dollar quoting and backslashes are not allowed)",
            )
    try:
        statements = sqlglot.parse(f"SELECT {text}", read=DIALECT)
    except sqlglot.errors.SqlglotError:
        raise GuardRefusal("fragment_unparsable", f"{where}: custom SQL does not parse as an expression") from None
    if len(statements) != 1 or not isinstance(statements[0], exp.Select):
        raise GuardRefusal("fragment_not_expression", f"{where}: custom SQL must be one expression")
    select = statements[0]
    extra = [k for k, v in select.args.items() if v and k != "expressions"]
    if extra or len(select.expressions) != 1:
        raise GuardRefusal(
            "fragment_not_expression",
            f"{where}: custom SQL must be one expression over the dataset's columns "
            "(no FROM, JOIN, WHERE, set operation, alias or list)",
        )
    (expression,) = select.expressions
    if isinstance(expression, exp.Alias):
        raise GuardRefusal("fragment_not_expression", f"{where}: custom SQL may not carry an alias")
    for node in expression.walk():
        if isinstance(node, RELATION_NODES):
            raise GuardRefusal(
                "fragment_relation",
                f"{where}: custom SQL may not contain a subquery, table, set operation or statement",
            )
        name = forbidden_function(node)
        if name:
            raise GuardRefusal("fragment_function", f"{where}: the function {name}() is not allowed")
        if isinstance(node, exp.Column):
            if node.table or node.args.get("db") or node.args.get("catalog"):
                raise GuardRefusal("fragment_qualified", f"{where}: refer to columns by their name only")
            if not dataset.has_column(node.name):
                raise GuardRefusal("fragment_unknown_column", f"{where}: {node.name!r} is not a column of this dataset")
        if isinstance(node, exp.Star) and not isinstance(node.parent, exp.Count):
            raise GuardRefusal("fragment_star", f"{where}: * is allowed in COUNT(*) only")


def plain_column(text: Any, dataset: Dataset) -> bool:
    """A fragment that is nothing but one of the dataset's column names (Superset's x-axis and columns
    arrive this way)."""
    if not isinstance(text, str):
        return False
    name = text.strip()
    if len(name) > 1 and name[0] == name[-1] == '"':
        name = name[1:-1]
    return dataset.has_column(name)


@dataclass(frozen=True)
class Asker:
    """Who asks: viewers may send no custom SQL (only columns and metrics), analysts plain expressions."""

    custom_sql: bool


# The one fragment Superset itself sends for viewers: the row count of samples, drill to detail and
# table totals.
ROW_COUNT = "count(*)"


def _fragment(text: Any, dataset: Dataset, asker: Asker, where: str) -> None:
    if plain_column(text, dataset):
        return
    if not asker.custom_sql and not (isinstance(text, str) and "".join(text.split()).lower() == ROW_COUNT):
        raise GuardRefusal(
            "custom_sql_not_allowed",
            f"{where}: custom SQL is not available to your role; use the dataset's columns and metrics",
        )
    check_expression(text, dataset, where)


def _time_grain(grain: Any, dataset: Dataset, where: str) -> None:
    if grain is not None and grain not in dataset.time_grains:
        raise GuardRefusal("unknown_time_grain", f"{where}: unknown time grain")


def _column(col: Any, dataset: Dataset, asker: Asker, where: str, names: set[str]) -> None:
    """A column: a dataset column's name, an adhoc column, or - where Superset resolves a text only as
    a name (order-by, filters), never as SQL - one of `names` (metric names, labels of this query)."""
    if isinstance(col, str):
        if col == DTTM_ALIAS or dataset.has_column(col) or col in names:
            return
        _fragment(col, dataset, asker, where)
    elif isinstance(col, Mapping):
        if col.get("sqlExpression") is not None or col.get("expressionType") == "SQL":
            _fragment(col.get("sqlExpression"), dataset, asker, where)
        elif col.get("column_name") is not None:
            if not dataset.has_column(str(col["column_name"])):
                raise GuardRefusal("unknown_column", f"{where}: not a column of this dataset")
        else:
            raise GuardRefusal("unknown_column_form", f"{where}: a column must name a dataset column")
        _time_grain(col.get("timeGrain"), dataset, where)
    elif col is not None:
        raise GuardRefusal("unknown_column_form", f"{where}: a column must be a name or an adhoc column")


def _metric(metric: Any, dataset: Dataset, asker: Asker, where: str) -> None:
    if isinstance(metric, str):
        if metric in dataset.metrics:
            return
        raise GuardRefusal("unknown_metric", f"{where}: not a metric of this dataset")
    if not isinstance(metric, Mapping):
        raise GuardRefusal("unknown_metric_form", f"{where}: a metric must be a name or an adhoc metric")
    kind = metric.get("expressionType")
    if kind == "SIMPLE":
        if str(metric.get("aggregate", "")).upper() not in SIMPLE_AGGREGATES:
            raise GuardRefusal("unknown_aggregate", f"{where}: unknown aggregate")
        _column(metric.get("column"), dataset, asker, where, set())
        if metric.get("column") is None:
            raise GuardRefusal("unknown_column_form", f"{where}: a simple metric needs a column")
    elif kind == "SQL":
        _fragment(metric.get("sqlExpression"), dataset, asker, where)
    else:
        raise GuardRefusal("unknown_metric_form", f"{where}: unknown metric type")


def labels_of(items: Iterable[Any]) -> set[str]:
    return {m["label"] for m in items if isinstance(m, Mapping) and isinstance(m.get("label"), str)}


def check_query_object(query: Mapping[str, Any], dataset: Dataset, asker: Asker) -> None:
    """Layer 1 over the arguments of Superset's get_sqla_query (the v1 chart-data API, the legacy explore
    endpoints, samples, drill to detail and reports all arrive there)."""
    metrics = list(query.get("metrics") or [])
    for i, metric in enumerate(metrics):
        _metric(metric, dataset, asker, f"metric {i + 1}")
    for key in ("series_limit_metric", "timeseries_limit_metric"):
        if query.get(key):
            _metric(query[key], dataset, asker, key)
    columns = [c for key in ("columns", "groupby", "series_columns") for c in query.get(key) or []]
    for key in ("columns", "groupby", "series_columns"):
        for i, col in enumerate(query.get(key) or []):
            _column(col, dataset, asker, f"{key} {i + 1}", set())
    # Superset resolves an order-by or filter text as a name only (a metric, a label of this query)
    names = set(dataset.metrics) | labels_of(metrics) | labels_of(columns)
    names |= labels_of([query[k] for k in ("series_limit_metric", "timeseries_limit_metric") if query.get(k)])
    for i, item in enumerate(query.get("orderby") or []):
        if not isinstance(item, list | tuple) or len(item) != 2:
            raise GuardRefusal("unknown_orderby_form", f"orderby {i + 1}: expected [column or metric, ascending]")
        target, where = item[0], f"orderby {i + 1}"
        if isinstance(target, Mapping) and (target.get("expressionType") == "SIMPLE" or "aggregate" in target):
            _metric(target, dataset, asker, where)
        elif isinstance(target, Mapping) and target.get("sqlExpression") is not None:
            _fragment(target.get("sqlExpression"), dataset, asker, where)
        else:
            _column(target, dataset, asker, where, names)
    for i, flt in enumerate(query.get("filter") or []):
        if not isinstance(flt, Mapping):
            raise GuardRefusal("unknown_filter_form", f"filter {i + 1}: expected an object")
        _column(flt.get("col"), dataset, asker, f"filter {i + 1}", names)
        _time_grain(flt.get("grain"), dataset, f"filter {i + 1}")
    extras = query.get("extras") or {}
    if not isinstance(extras, Mapping):
        raise GuardRefusal("unknown_extras_form", "extras: expected an object")
    for key in ("where", "having"):
        if extras.get(key):
            if not asker.custom_sql:
                raise GuardRefusal("custom_sql_not_allowed", f"extras.{key}: custom SQL is not available to your role")
            check_expression(extras[key], dataset, f"extras.{key}")
    _time_grain(extras.get("time_grain_sqla"), dataset, "time grain")
    granularity = query.get("granularity")
    if granularity is not None and not dataset.has_column(str(granularity)):
        raise GuardRefusal("unknown_column", "granularity: not a column of this dataset")


# ---- layer 2: the final query ---------------------------------------------------------------------
@dataclass(frozen=True)
class Trusted:
    """The parts of a final query that come from the dataset definition and row-level security, not from
    the asker: the dataset's SQL as Superset rendered it (virtual datasets) or its table (physical),
    and the RLS predicates."""

    from_sql: tuple[str, ...]
    table: tuple[str, str] | None  # (schema, name) of a physical dataset
    predicates: tuple[str, ...]


def _parse_one(sql: str, what: str) -> exp.Expression:
    try:
        statements = [s for s in sqlglot.parse(sql, read=DIALECT) if s is not None]
    except sqlglot.errors.SqlglotError:
        raise GuardRefusal("final_unparsable", f"the {what} does not parse") from None
    if len(statements) != 1:
        raise GuardRefusal("final_statements", f"the {what} must be exactly one statement")
    return statements[0]


def _parse_condition(sql: str) -> exp.Expression:
    try:
        return sqlglot.parse_one(sql, read=DIALECT, into=exp.Condition)
    except sqlglot.errors.SqlglotError:
        return _parse_one(f"SELECT 1 WHERE {sql}", "row-level security predicate").args["where"].this


def _strip_parens(node: exp.Expression) -> exp.Expression:
    while isinstance(node, exp.Paren):
        node = node.this
    return node


def _same_table(node: exp.Table, table: tuple[str, str]) -> bool:
    schema, name = table
    return (
        isinstance(node.this, exp.Identifier)
        and node.name.lower() == name.lower()
        and (node.db or schema or "").lower() == (schema or "").lower()
        and not node.args.get("catalog")
        and not node.args.get("joins")
    )


class _Shape:
    def __init__(self, trusted: Trusted) -> None:
        self.froms = [_parse_one(sql, "dataset SQL") for sql in trusted.from_sql]
        self.table = trusted.table
        self.predicates = [_strip_parens(_parse_condition(p)) for p in trusted.predicates]

    def trusted_predicate(self, node: exp.Expression) -> bool:
        bare = _strip_parens(node)
        return any(bare == p for p in self.predicates)

    def check_source(self, source: exp.Expression, depth: int) -> None:
        if isinstance(source, exp.Subquery) and not source.args.get("joins"):
            if any(source.this == f for f in self.froms):
                return
            if type(source.this) is exp.Select:
                # Superset's row count of a paginated table wraps the chart query: it must itself read the
                # dataset only
                self.check_select(source.this, depth + 1)
                return
        elif (
            isinstance(source, exp.Table)
            and self.table
            and _same_table(source, self.table)
            and not source.args.get("laterals")
        ):
            return
        raise GuardRefusal("final_source", "the query reads something other than its dataset")

    def check_outside(self, node: exp.Expression | None, where: str) -> None:
        """No relation outside the trusted parts: walk, skipping the RLS predicates."""
        if node is None:
            return
        stack = [node]
        while stack:
            current = stack.pop()
            if self.trusted_predicate(current) and isinstance(_strip_parens(current), exp.Condition):
                continue
            if isinstance(current, RELATION_NODES):
                raise GuardRefusal("final_relation", f"{where}: a table, subquery or set operation outside the dataset")
            name = forbidden_function(current)
            if name:
                raise GuardRefusal("final_function", f"{where}: the function {name}() is not allowed")
            stack.extend(_children(current))

    def check_select(self, select: exp.Expression, depth: int = 0) -> None:
        if type(select) is not exp.Select:
            raise GuardRefusal("final_shape", "the chart query must be one query over its dataset")
        if depth > 2:
            raise GuardRefusal("final_shape", "the query nests too deep")
        for key, value in select.args.items():
            if value is None or value == []:
                continue
            if key == "from_" or key == "from":
                self.check_source(value.this, depth)
            elif key == "joins":
                for join in value:
                    # Superset's series limit: an inner join on the top groups, itself a query of the dataset
                    source = join.this
                    if not isinstance(source, exp.Subquery):
                        raise GuardRefusal("final_join", "the query joins something other than its dataset")
                    self.check_select(source.this, depth + 1)
                    for k, v in join.args.items():
                        if k != "this":
                            for item in v if isinstance(v, list) else [v]:
                                if isinstance(item, exp.Expression):
                                    self.check_outside(item, "join condition")
            elif key in ("with", "with_"):
                raise GuardRefusal("final_relation", "the query may not define a common table expression")
            else:
                for item in value if isinstance(value, list) else [value]:
                    if isinstance(item, exp.Expression):
                        self.check_outside(item, key)


def _children(node: exp.Expression) -> Iterator[exp.Expression]:
    for value in node.args.values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, exp.Expression):
                yield item


def check_final_query(sql: str, trusted: Trusted) -> str:
    """Layer 2: refuse a final query with any relation outside its trusted parts; returns the SQL to run,
    generated from the checked tree."""
    tree = _parse_one(sql, "chart query")
    _Shape(trusted).check_select(tree)
    return tree.sql(dialect=DIALECT)


def relations_of(sql: str) -> set[tuple[str, str]]:
    """(schema, table) of every table a dataset's SQL reads, CTE names excluded."""
    tree = _parse_one(sql, "dataset SQL")
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    out = set()
    for table in tree.find_all(exp.Table):
        if table.name.lower() in ctes and not table.db:
            continue
        out.add(((table.db or "").lower(), table.name.lower()))
    return out
