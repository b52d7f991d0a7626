"""`callsight privacy-report`: the processing record for the data-protection officer and the works council.

Generated from the live configuration (org directory, policy, site settings) and the published warehouse:
what is stored per journal column and how private calls are masked, retention and look-back, who can see
whose calls (per viewer), analysts and admins, report recipients, erasure requests, the build in service.
It holds no call data: only counts, dates, configuration and the names of the people with access.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from importlib import metadata
from pathlib import Path

import duckdb

from callsight.journal.contract import JOURNAL_COLUMNS
from callsight.privacy.erasure import ERASED_COLUMNS
from callsight.privacy.masking import CONTACT_COLUMNS, NUMBER_COLUMNS, normalize_number
from callsight.privacy.retention import retention_cutoff
from callsight.site.directory import Directory, load_directory
from callsight.site.home import kept_builds
from callsight.site.policy import Policy, load_policy
from callsight.site.settings import Settings
from callsight.warehouse.dbt_project import DBT_PROJECT_DIR, model_fingerprint

# What each journal column holds (after the vendor's own description) and whether it is personal data
# of an employee (E), of the other party (P), or neither.
COLUMN_CATALOGUE: dict[str, tuple[str, str]] = {
    "ID": ("journal entry id", ""),
    "StartTime": ("when the call came in or was started", "E"),
    "StopTime": ("when the call ended (hang-up)", "E"),
    "DurationTotal": ("seconds from start to stop", "E"),
    "ConnectTime": ("when the call was answered", "E"),
    "DisconnectTime": ("when the conversation ended", "E"),
    "DurationConnected": ("talk time in seconds", "E"),
    "Outbound": ("flag: outbound or inbound", ""),
    "Internal": ("flag: internal or external", ""),
    "LineNumber": ("number of the line used", "E"),
    "LineName": ("name of the line", "E"),
    "LineUserName": ("ProCall user last assigned to the line", "E"),
    "LocalNumber": ("local number of the line", "E"),
    "RedirectingNumber": ("number of the person who forwarded the call", "P"),
    "PhoneNumber": ("number of the other party", "P"),
    "ContactName": ("name of the other party", "P"),
    "ContactCompany": ("company of the other party", "P"),
    "ContactEntryID": ("contact id of the other party", "P"),
    "ContactEntryStoreID": ("id of the contact store", "P"),
    "ContactEntryDBID": ("id of the contact database", "P"),
    "CTIServerUserName": ("ProCall user name of the agent (also the Superset login)", "E"),
    "SuccessState": ("flag: call successful", "E"),
    "Subject": ("call note (content)", "P"),
    "ReadFlag": ("flag: entry read", "E"),
    "ProjectName": ("project chosen for the call", ""),
    "ProjectID": ("id of that project", ""),
    "PrivateCall": ("flag: marked private by the user", "E"),
    "TrackerID": ("id following a call through forwardings", ""),
}
SUBJECTS = {"E": "employee", "P": "other party", "": "no"}
# Warehouse columns computed from a journal column (besides its renamed copy).
DERIVED: dict[str, tuple[str, ...]] = {
    "StartTime": ("start_time_utc", "call_date", "call_hour", "iso_weekday"),
    "ConnectTime": ("ring_seconds", "wait_seconds"),
    "StopTime": ("signalled_seconds",),
    "DurationConnected": ("talk_seconds", "is_answered"),
    "Outbound": ("direction", "is_inbound"),
    "Internal": ("is_internal", "call_scope"),
    "PhoneNumber": ("phone_match_key", "phone_number_display"),
    "RedirectingNumber": ("redirecting_number_display",),
    "ContactCompany": ("company_name",),
    "PrivateCall": ("is_private",),
    "TrackerID": ("chain_key",),
}
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
    finally:
        con.close()


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


# ---- the document -----------------------------------------------------------------------------------
Block = tuple  # ("h1"|"h2"|"p", text) | ("ul", [items]) | ("table", [headers], [rows])


def _private_treatment(column: str, policy: Policy) -> str:
    mode = policy.private_calls.mode
    if mode == "keep" or column not in (*NUMBER_COLUMNS, *CONTACT_COLUMNS):
        return "stored like any other call"
    if column in NUMBER_COLUMNS and mode == "truncate":
        return f"last {policy.private_calls.truncate_digits} digits replaced by X"
    return "not stored"


def _columns_table(facts: Facts) -> Block:
    rows = []
    for col in JOURNAL_COLUMNS:
        what, subject = COLUMN_CATALOGUE[col]
        names = [facts.staging_names.get(col, ""), *DERIVED.get(col, ())]
        found = [(n, sorted(set(facts.served_columns[n]))) for n in names if n in facts.served_columns]
        served = "; ".join(f"`{n}` ({', '.join(tables)})" for n, tables in found) or "no"
        rows.append(
            [
                f"`{col}`",
                what,
                SUBJECTS[subject],
                "yes",
                served if facts.build else "(no warehouse yet)",
                _private_treatment(col, facts.policy),
                "cleared" if col in ERASED_COLUMNS else "kept",
            ]
        )
    headers = [
        "journal column",
        "what",
        "personal data of",
        "raw store",
        "published warehouse (marts)",
        "private calls",
        "on erasure",
    ]
    return ("table", headers, rows)


def _viewers_table(facts: Facts) -> tuple[Block, list[str]]:
    d = facts.directory
    computed = visible_agents(d)
    published = facts.published_visibility
    names = {u.username: u.name for u in d.users}
    roles: dict[str, list[str]] = {u: [] for u in names}
    for g in d.groups:
        for u in g.leaders:
            roles[u].append(f"leader of {g.name}")
        for u in g.deputies:
            roles[u].append(f"deputy of {g.name}")
        for u in set(g.members) - set(g.leaders) - set(g.deputies):
            roles[u].append(f"member of {g.name}")
    staff = {**dict.fromkeys(d.analysts, "analyst: all masked calls"), **dict.fromkeys(d.admins, "admin: all")}
    rows, differences = [], []
    for user in sorted(names):
        count = published.get(user, 0) if published is not None else len(computed[user])
        if published is not None and count != len(computed[user]):
            differences.append(user)
        rows.append([f"`{user}`", names[user], "; ".join(roles[user]) or "-", str(count), staff.get(user, "")])
    headers = ["viewer", "name", "groups", "agents whose calls they see", "beyond that"]
    return ("table", headers, rows), differences


def document(facts: Facts) -> list[Block]:
    s, p, d = facts.settings, facts.policy, facts.directory
    cutoff = retention_cutoff(facts.today, p.retention.journal_days)
    blocks: list[Block] = [
        ("h1", "callsight: record of processing (call journal analytics)"),
        (
            "p",
            f"Generated {facts.today.isoformat()} by callsight {facts.version} from the live configuration: "
            f"org directory `{s.effective_directory_path}`, policy `{s.effective_policy_path}`, "
            f"warehouse `{s.served_db}`. It contains no call data, only configuration, counts and dates.",
        ),
    ]
    if facts.build:
        current = model_fingerprint(p.dbt_vars(), DBT_PROJECT_DIR)
        same = "yes" if facts.build["fingerprint"] == current else "no: the next nightly run rebuilds it"
        blocks += [
            (
                "p",
                f"Warehouse in service: built {facts.build['built_at']:%Y-%m-%d %H:%M %Z}, build fingerprint "
                f"`{facts.build['fingerprint']}`; built with the current policy and models: {same}.",
            )
        ]
    else:
        blocks.append(("p", "No warehouse has been published yet."))

    blocks += [
        ("h2", "Purpose and data subjects"),
        (
            "p",
            "The call journal of the telephone system (one row per call leg) is analysed for reachability, "
            "service level, call volume and callbacks of teams. Data subjects: the employees in the org directory "
            f"({len(d.users)} users in {len(d.groups)} groups) and the other parties of their calls.",
        ),
        ("h2", "Data stored, per journal column"),
        (
            "p",
            "The raw store (`warehouse/journal.duckdb`) holds the journal as masked by the policy; it is never "
            "served. The published warehouse holds the marts listed; Superset reads only that file. The data "
            "quality checks keep a record of the journal and warehouse rows that passed "
            "(`warehouse/validated_rows.duckdb`): 64-bit hashes of rows and their counts, no values.",
        ),
        _columns_table(facts),
        ("h2", "Private calls"),
    ]
    lines = len({normalize_number(n) for n in d.private_lines} - {""})
    mode_text = {
        "keep": "stored like any other call",
        "truncate": f"the last {p.private_calls.truncate_digits} digits of the numbers are replaced by X; contact "
        "name, company, contact ids and the call note are not stored",
        "drop": "numbers, contact name, company, contact ids and the call note are not stored",
    }[p.private_calls.mode]
    items = [
        f"Mode in force: `{p.private_calls.mode}`: {mode_text}. Times, durations, agent and direction are kept, "
        "so a private call still counts.",
        "A call is private when the user marked it private or it ran on a private line; "
        f"private lines configured: {lines}.",
        "Masking happens in the extract, before anything is written.",
    ]
    if facts.calls:
        items.append(f"Call legs in the warehouse: {facts.calls['legs']}, of which private: {facts.calls['private']}.")
    blocks.append(("ul", items))

    kept = kept_builds(s.served_db)
    retention = [
        f"Retention: {p.retention.journal_days} days, measured from the run's date in {p.timezone}. "
        f"As of {facts.today.isoformat()} calls that started before {cutoff:%Y-%m-%d} are deleted from the raw "
        "store, the quarantine and the warehouse by the next nightly run (a call forwarded across the "
        "cutoff goes as a whole). The files are rewritten so deleted values do not linger.",
        f"Kept previous builds for rollback: at most {s.keep_builds}; a kept build holding calls older than "
        f"retention plus one night is deleted. Kept now: {len(kept)}.",
        f"Look-back: each nightly run re-reads the last {s.lookback_days} days of the journal (edits and "
        "deletions at the source are applied).",
    ]
    if facts.calls and facts.calls["first"]:
        retention.append(f"Calls in the warehouse: {facts.calls['first']} to {facts.calls['last']}.")
    if facts.erasure is None:
        retention.append("Erasure requests: unavailable (a nightly run holds the raw store; try again).")
    else:
        requests, identifiers, last = facts.erasure
        when = f", the last on {last:%Y-%m-%d}" if last else ""
        retention.append(
            f"Erasure requests (GDPR Art. 17, `callsight erase`): {requests} ({identifiers} identifiers){when}. "
            "Identifiers are stored only as keyed hashes; matching calls keep their times and durations but "
            "lose numbers, contact name, company, contact ids and note, now and in every later extract."
        )
    if facts.audit_entries is not None:
        retention.append(
            f"Audit log: {facts.audit_entries} entries (runs, erasures, provisioning), published as `marts.audit_log`."
        )
    blocks += [("h2", "Retention, look-back and erasure"), ("ul", retention)]

    viewers, differences = _viewers_table(facts)
    source = (
        "as published in the warehouse (`security.viewer_agents`)"
        if facts.published_visibility is not None
        else "computed from the org directory (no warehouse published yet)"
    )
    blocks += [
        ("h2", "Who can see whose calls"),
        (
            "p",
            'Everyone sees their own calls. Leaders and deputies of a group with "journal visible to the '
            'group leader" see the calls of all its members; members of a group with "journal visible to '
            'the whole group" see the calls of all members; several groups give the union. Analysts and '
            "admins see all (masked) calls. Enforced by row-level security on every Superset surface "
            f"(charts, dashboards, CSV export, SQL Lab, reports). Counts {source}:",
        ),
        viewers,
    ]
    if differences:
        blocks.append(
            (
                "p",
                f"The org directory changed since the warehouse was built: {len(differences)} viewer(s) will see "
                "a different number of agents after the next nightly run.",
            )
        )
    blocks += [("h2", "Works-council mode"), ("ul", _works_council_lines(facts))]
    blocks += [
        ("h2", "Analysts and admins"),
        (
            "ul",
            [
                f"Analysts (all masked calls, SQL Lab on the analyst schema): {_people(d, d.analysts)}",
                f"Admins (everything in Superset): {_people(d, d.admins)}",
            ],
        ),
        ("h2", "Report recipients"),
        (
            "p",
            "Group leaders receive the weekly team reports; a report shows only what its recipient may see.",
        ),
        _recipients_table(facts),
        ("h2", "Technical and organisational measures"),
        (
            "ul",
            [
                "Private calls are masked in memory before any row is written; malformed rows are quarantined "
                "masked, too.",
                "Superset opens only the published warehouse, read-only and with external file access disabled; "
                "raw and staging tables are not in that file.",
                "Row-level security per logged-in user; users removed from the directory are deactivated by the "
                "next run.",
                "Erasure identifiers are hashed with a secret key from the environment (CALLSIGHT_ERASURE_KEY).",
                "The audit log is append-only and hash-chained: an edited or removed entry breaks the chain.",
            ],
        ),
    ]
    return blocks


def _works_council_lines(facts: Facts) -> list[str]:
    """Pure: what min_group_size and the analysts' pseudonyms mean for this directory."""
    wc, d = facts.policy.works_council, facts.directory
    k = wc.min_group_size
    if k == 0:
        lines = ["Minimum group size: off - leaders, members and analysts see figures per agent."]
    else:
        sizes = {g.name: len(set(g.members) | set(g.leaders) | set(g.deputies)) for g in d.groups}
        large = {n for n, size in sizes.items() if size >= k}
        shown = {u for g in d.groups if g.name in large for u in set(g.members) | set(g.leaders) | set(g.deputies)}
        merged = sorted(n for n in sizes if n not in large)
        lines = [
            f"Minimum group size: {k}. Everybody but admins sees an agent's figures one by one only for members "
            f"of a group of at least {k}; other agents' calls are merged under their group. Now shown one by "
            f"one: {len(shown)} of {len(d.users)} people; groups merged: {', '.join(merged) or 'none'}."
        ]
    lines.append(
        "Analysts see stable pseudonyms instead of names (keyed hash, CALLSIGHT_PSEUDONYM_KEY)."
        if wc.pseudonymize_agents_for_analysts
        else "Pseudonyms for analysts: off - analysts see agents' names."
    )
    return lines


def _people(d: Directory, usernames: Iterable[str]) -> str:
    names = {u.username: u.name for u in d.users}
    listed = [f"{names[u]} (`{u}`)" for u in usernames]
    return ", ".join(listed) if listed else "none"


def _recipients_table(facts: Facts) -> Block:
    d = facts.directory
    visible = visible_agents(d)
    names = {u.username: u.name for u in d.users}
    rows = [
        [g.name, f"{names[u]} (`{u}`)", str(len(visible[u]))]
        for g in sorted(d.groups, key=lambda g: g.name)
        for u in g.leaders
    ]
    return ("table", ["group", "leader", "agents in the report"], rows or [["-", "no group leaders", "0"]])


# ---- rendering --------------------------------------------------------------------------------------
def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: list[Block]) -> str:
    out: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind == "h1":
            out += [f"# {block[1]}", ""]
        elif kind == "h2":
            out += [f"## {block[1]}", ""]
        elif kind == "p":
            out += [block[1], ""]
        elif kind == "ul":
            out += [f"- {item}" for item in block[1]] + [""]
        elif kind == "table":
            headers, rows = block[1], block[2]
            out.append("| " + " | ".join(headers) + " |")
            out.append("| " + " | ".join("---" for _ in headers) + " |")
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
            out.append("")
    return "\n".join(out)


def _inline_html(text: str) -> str:
    """Escape, then render `code` spans."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(str(text)))


def to_html(blocks: list[Block]) -> str:
    title = next((b[1] for b in blocks if b[0] == "h1"), "callsight")
    body: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "p"):
            body.append(f"<{kind}>{_inline_html(block[1])}</{kind}>")
        elif kind == "ul":
            body.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in block[1]) + "</ul>")
        elif kind == "table":
            head = "".join(f"<th>{_inline_html(h)}</th>" for h in block[1])
            rows = "".join("<tr>" + "".join(f"<td>{_inline_html(c)}</td>" for c in r) + "</tr>" for r in block[2])
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
    style = (
        "body{font-family:sans-serif;max-width:70em;margin:2em auto;line-height:1.4}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #999;padding:.2em .5em;"
        "text-align:left;vertical-align:top}th{background:#eee}"
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{style}</style></head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )


def write_report(settings: Settings, fmt: str = "md", output: Path | None = None, today: date | None = None) -> Path:
    facts = gather(settings, today)
    blocks = document(facts)
    text = to_html(blocks) if fmt == "html" else to_markdown(blocks)
    path = output or settings.home / "reports" / f"processing-record-{facts.today.isoformat()}.{fmt}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
