"""The facts the processing record states, gathered from the live configuration (org directory, policy,
site settings), the published warehouse and the raw store: counts, dates and configuration, no call data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from importlib import metadata
from pathlib import Path

import duckdb

from callsight.privacy.record_access import AccessCounts, per_group
from callsight.site.directory import Directory, load_directory
from callsight.site.policy import Policy, load_policy
from callsight.site.settings import Settings
from callsight.warehouse.dbt_project import DBT_PROJECT_DIR

_STAGING_CAST = re.compile(r'cast\("(\w+)" as [\w ]+\) as (\w+)', re.IGNORECASE)


# ---- who sees whose calls ---------------------------------------------------------------------------
def visible_agents(directory: Directory) -> dict[str, set[str]]:
    """The rule of security/viewer_agents, from the directory: everyone sees their own calls; leaders and
    deputies see their group's when journal_visible_to_leader; members see their group's when
    journal_visible_to_group; several groups give the union. Leaders and deputies are members."""
    visible = {u.username: {u.username} for u in directory.users}
    for g in directory.groups:
        members = set(g.members) | set(g.leaders) | set(g.deputies)
        viewers: set[str] = set()
        if g.journal_visible_to_leader:
            viewers |= set(g.leaders) | set(g.deputies)
        if g.journal_visible_to_group:
            viewers |= members
        for v in viewers:
            visible[v] |= members
    return visible


def warehouse_visibility(served: Path) -> dict[str, int] | None:
    """Agents visible per viewer as published (security.viewer_agents); None without a warehouse."""
    if not served.exists():
        return None
    con = duckdb.connect(str(served), read_only=True)
    try:
        rows = con.execute("SELECT viewer_username, count(*) FROM security.viewer_agents GROUP BY 1").fetchall()
    finally:
        con.close()
    return {v: int(n) for v, n in rows}


# ---- facts gathered for the document ----------------------------------------------------------------
@dataclass
class Facts:
    settings: Settings
    directory: Directory
    policy: Policy
    today: date
    version: str
    build: dict[str, object] | None = None
    calls: dict[str, object] | None = None
    served_columns: dict[str, list[str]] = field(default_factory=dict)
    staging_names: dict[str, str] = field(default_factory=dict)
    published_visibility: dict[str, int] | None = None
    erasure: tuple[int, int, object] | None = None
    audit_entries: int | None = None
    access_total: int | None = None  # Superset access events within the access log's retention
    access_counts: AccessCounts | None = None


def staging_names(project_dir: Path = DBT_PROJECT_DIR) -> dict[str, str]:
    """Journal column -> warehouse column, read from the staging model (the one place they are renamed)."""
    sql = (project_dir / "models" / "staging" / "procall" / "stg_procall__calls.sql").read_text(encoding="utf-8")
    return {src: dst for src, dst in _STAGING_CAST.findall(sql)}


def _served_facts(facts: Facts) -> None:
    served = facts.settings.served_db
    if not served.exists():
        return
    con = duckdb.connect(str(served), read_only=True)
    try:
        row = con.execute("SELECT build_fingerprint, built_at FROM marts.build_info").fetchone()
        facts.build = {"fingerprint": row[0], "built_at": row[1]}
        n, private, first, last = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE is_private), min(call_date), max(call_date) FROM marts.fct_calls"
        ).fetchone()
        facts.calls = {"legs": n, "private": private, "first": first, "last": last}
        for table, column in con.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'marts' ORDER BY 1"
        ).fetchall():
            facts.served_columns.setdefault(column, []).append(table)
    finally:
        con.close()
    facts.published_visibility = warehouse_visibility(served)


def _raw_facts(facts: Facts) -> None:
    raw = facts.settings.raw_db
    if not raw.exists():
        facts.erasure, facts.audit_entries = (0, 0, None), 0
        facts.access_total, facts.access_counts = 0, {}
        return
    try:
        con = duckdb.connect(str(raw), read_only=True)
    except duckdb.IOException:
        return  # a run holds the raw store: reported as unavailable
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if "erasure_register" in tables:
            row = con.execute(
                "SELECT count(DISTINCT request_id), count(*), max(requested_at) FROM erasure_register"
            ).fetchone()
            facts.erasure = (int(row[0]), int(row[1]), row[2])
        else:
            facts.erasure = (0, 0, None)
        facts.audit_entries = (
            con.execute("SELECT count(*) FROM audit_log").fetchone()[0] if "audit_log" in tables else 0
        )
        _access_facts(facts, con, "access_log" in tables)
    finally:
        con.close()


def _access_facts(facts: Facts, con: duckdb.DuckDBPyConnection, present: bool) -> None:
    """Access events within the retention period per username, dashboard and kind (names stay here)."""
    since = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=facts.policy.access_log.retention_days)
    rows = []
    if present:
        rows = con.execute(
            "SELECT username, dashboard_title, access_kind, count(*) FROM access_log WHERE accessed_at >= ? "
            "GROUP BY ALL",
            [since],
        ).fetchall()
    facts.access_total = sum(n for *_, n in rows)
    facts.access_counts = per_group(rows, facts.directory)


def gather(settings: Settings, today: date | None = None) -> Facts:
    policy = load_policy(settings.effective_policy_path)
    directory = load_directory(settings.effective_directory_path)
    try:
        version = metadata.version("callsight")
    except metadata.PackageNotFoundError:
        version = "unknown"
    facts = Facts(settings, directory, policy, today or datetime.now(policy.tz).date(), version)
    facts.staging_names = staging_names()
    _served_facts(facts)
    _raw_facts(facts)
    return facts
