"""The agent macros of the datasets' SQL (@@audience@@, @@agent_key(col)@@, @@agent_name(col)@@,
@@agent_labels(col)@@, @@visible(col)@@): who is looking, which agents they may see and under which
labels - the privacy rules the asset YAML carries (docs/access.md). Pure text; Superset renders the Jinja."""

from __future__ import annotations

import re


class AssetError(ValueError):
    """An asset file is inconsistent (names the file and what is wrong)."""


# The viewer's visibility set (superset/visibility.py), in Superset's cache key through cache_key_wrapper:
# viewers who may see the same agents share cached results, nobody else reaches them.
VISIBLE_AGENTS = (
    "SELECT agent_username FROM security.visibility_sets "
    "WHERE visibility_set = '{{ cache_key_wrapper(callsight_visibility_set()) }}'"
)
# Who is looking, for the datasets' SQL (Superset's Jinja): admins, analysts or everybody else.
AUDIENCE_JINJA = (
    "{%- set callsight_roles = current_user_roles() or [] -%}\n"
    "{%- set callsight_audience = 'admin' if 'Admin' in callsight_roles else "
    "('analyst' if 'callsight_analyst' in callsight_roles else 'viewer') -%}"
)
_AGENT_MACRO = re.compile(r"@@(audience|agent_labels|agent_key|agent_name|visible)(?:\(([A-Za-z_][\w.]*)\))?@@")


_LABELLED = re.compile(r"@@(agent_key|agent_name)\(([A-Za-z_][\w.]*)\)@@(\s+AS\s+(\w+))?", re.IGNORECASE)


def labels_alias(column: str) -> str:
    """Pure: the alias under which @@agent_labels(col)@@ joins security.agent_labels for that column."""
    return "lbl_" + column.replace(".", "_")


def labels_wanted(column: str) -> str:
    """Pure: the Jinja variable that says whether the query may read the labels of that column."""
    return "callsight_" + labels_alias(column)


def labelled_columns(name: str, sql: str) -> dict[str, list[str]]:
    """Pure: per column given to @@agent_key@@/@@agent_name@@, the dataset columns (aliases) made of its labels."""
    out: dict[str, list[str]] = {}
    for macro, column, as_clause, alias in _LABELLED.findall(sql):
        if not as_clause:
            raise AssetError(f"{name}: @@{macro}({column})@@ needs `AS <column>` after it")
        out.setdefault(column, []).append(alias)
    return out


def agent_sql(macro: str, column: str | None, joined: bool = False) -> str:
    """Pure: the SQL of one agent macro in a dataset's `sql` (works-council mode, security.agent_labels).

    @@audience@@ (first line of the SQL) decides who is looking; @@agent_key(col)@@ is the agent as the
    audience may group by it (the username, or a pseudonym or group label); @@agent_name(col)@@ the name
    shown; @@visible(col)@@ the viewer's own and granted agents (their visibility set) - analysts and
    admins see all agents. Superset also applies the marts' row-level security inside this SQL.

    Where the chart's query may read a column made of labels (superset/query_uses.py; the variable
    labels_wanted(col), set by expand_agent_macros), the labels come from a LEFT JOIN where the dataset's
    FROM clause has @@agent_labels(col)@@ (`joined`; agent_labels is unique per agent, a dbt test), else
    from a subquery per row. Otherwise from a map of all labels: DuckDB drops it when unused, where it keeps
    an unused join or correlated subquery; used, it gives the same values, only slower (figures:
    docs/performance.md)."""
    if macro == "audience":
        return AUDIENCE_JINJA
    if column is None:
        raise AssetError(f"@@{macro}@@ needs a column, e.g. @@{macro}(c.agent_username)@@")
    alias = labels_alias(column)
    wanted = labels_wanted(column)
    if macro == "agent_labels":
        return (
            f"{{% if {wanted} %}}LEFT JOIN security.agent_labels AS {alias} "
            f"ON {alias}.agent_username = {column}{{% endif %}}"
        )

    def label(col: str) -> str:
        used = (
            f"{alias}.{col}"
            if joined
            else f"(SELECT {col} FROM security.agent_labels AS l WHERE l.agent_username = {column})"
        )
        unused = f"(SELECT MAP(list(agent_username), list({col})) FROM security.agent_labels)[{column}]"
        return f"{{% if {wanted} %}}{used}{{% else %}}{unused}{{% endif %}}"

    if macro == "agent_key":
        return (
            f"{{% if callsight_audience == 'admin' %}}{column}{{% else %}}CASE WHEN {column} IS NULL THEN NULL "
            f"ELSE COALESCE({label('{{ callsight_audience }}_key')}, 'Unbekannt') END{{% endif %}}"
        )
    if macro == "agent_name":
        return (
            f"{{% if callsight_audience == 'admin' %}}COALESCE({label('agent_name')}, {column})"
            f"{{% else %}}CASE WHEN {column} IS NULL THEN NULL "
            f"ELSE COALESCE({label('{{ callsight_audience }}_label')}, 'Unbekannt') END{{% endif %}}"
        )
    return f"{{% if callsight_audience == 'viewer' %}}{column} IN ({VISIBLE_AGENTS}){{% else %}}TRUE{{% endif %}}"


def expand_agent_macros(name: str, sql: str) -> str:
    """Pure: every @@macro(col)@@ of a dataset's SQL replaced; the audience must come first. After the
    audience, one Jinja variable per labelled column says whether the query may read its labels."""
    used = _AGENT_MACRO.findall(sql)
    if used and used[0][0] != "audience":
        raise AssetError(f"{name}: a dataset using agent macros must start with @@audience@@")
    if "@@" in _AGENT_MACRO.sub("", sql):
        raise AssetError(f"{name}: unknown @@macro@@ in sql")
    joined = [col for macro, col in used if macro == "agent_labels"]
    if len(joined) != len(set(joined)):
        raise AssetError(f"{name}: @@agent_labels@@ twice for the same column")
    labelled = labelled_columns(name, sql)
    unused = sorted(set(joined) - set(labelled))
    if unused:
        raise AssetError(f"{name}: @@agent_labels({unused[0]})@@ joins labels that nothing uses")
    wanted = "".join(
        f"\n{{%- set {labels_wanted(col)} = callsight_uses({', '.join(repr(a) for a in aliases)}) -%}}"
        for col, aliases in labelled.items()
    )
    out = _AGENT_MACRO.sub(lambda m: agent_sql(m.group(1), m.group(2), m.group(2) in joined), sql)
    return out.replace(AUDIENCE_JINJA, AUDIENCE_JINJA + wanted, 1) if wanted else out
