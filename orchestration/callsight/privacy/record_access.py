"""The processing record's section on who looked at what (issue 30): that Superset's access log is kept,
why and how long, and its events per group and dashboard over the retention period - counts only, no
names. Pure: composed from the counts the record's facts gathered (record_facts.py); German in
messages_de.ACCESS_RECORD_DE.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from callsight.site.directory import Directory
from callsight.site.locale import Msg, msg

NO_GROUP = ""
# The kinds bi/access_log.py records, as the record names them.
KINDS: dict[str, Msg] = {
    "dashboard opened": msg("dashboard opened"),
    "chart exported": msg("chart exported"),
    "dashboard exported": msg("dashboard exported"),
    "SQL Lab query": msg("SQL Lab query"),
    "SQL Lab export": msg("SQL Lab export"),
}
AccessCounts = dict[tuple[str, str, str], int]  # (group or NO_GROUP, dashboard or "", kind) -> events


def per_group(rows: Iterable[tuple[str | None, str | None, str, int]], directory: Directory) -> AccessCounts:
    """Pure: (username, dashboard, kind, events) rows as events per group, dashboard and kind. A viewer
    in several groups counts in each; one in none (an analyst, an admin) under NO_GROUP."""
    groups: dict[str, set[str]] = {}
    for g in directory.groups:
        for u in set(g.members) | set(g.leaders) | set(g.deputies):
            groups.setdefault(u.lower(), set()).add(g.name)
    counts: Counter[tuple[str, str, str]] = Counter()
    for username, dashboard, kind, n in rows:
        for group in groups.get((username or "").lower()) or {NO_GROUP}:
            counts[(group, dashboard or "", kind)] += n
    return dict(counts)


def access_blocks(days: int, total: int | None, counts: AccessCounts | None) -> list[tuple]:
    """Pure: the section's blocks; total/counts None when the raw store could not be read."""
    blocks: list[tuple] = [
        ("h2", msg("Who looked at what (access log)")),
        (
            "p",
            msg(
                "Superset records who opened which dashboard, exported which chart or dashboard and ran which "
                "SQL Lab query. Every night callsight copies these events from Superset's log into its raw store "
                "and publishes them for admins only as `marts.access_log` (dashboard Betrieb, chart Zugriffe): "
                "who, when to the minute, which dashboard and chart - never query text, filter values or data. "
                "Purpose: the works council and the data-protection officer can check who looked at whose "
                "figures (German Works Constitution Act, section 87(1) no. 6). Retention: {days} days; older "
                "events are deleted every night from callsight's copy and from Superset's own log.",
                days=days,
            ),
        ),
    ]
    if total is None or counts is None:
        blocks.append(("p", msg("Access events: unavailable (a nightly run holds the raw store; try again).")))
        return blocks
    blocks.append(
        ("p", msg("Access events in the last {days} days: {total}. Per group and dashboard:", days=days, total=total))
    )
    rows = [
        [group or msg("no group"), dashboard or "-", KINDS.get(kind, kind), str(n)]
        for (group, dashboard, kind), n in sorted(counts.items(), key=lambda kv: (kv[0][0] == NO_GROUP, kv[0]))
    ]
    headers = [msg("group"), msg("dashboard"), msg("access"), msg("events")]
    blocks.append(("table", headers, rows or [["-", "-", "-", "0"]]))
    return blocks
