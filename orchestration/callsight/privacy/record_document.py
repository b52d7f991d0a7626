"""What the processing record says: the document as blocks (headings, paragraphs, lists, tables), composed
from the gathered facts; record.py renders it as Markdown or HTML.
"""

from __future__ import annotations

from collections.abc import Iterable

from callsight.journal.contract import JOURNAL_COLUMNS
from callsight.privacy.erasure import ERASED_COLUMNS
from callsight.privacy.masking import CONTACT_COLUMNS, NUMBER_COLUMNS, normalize_number
from callsight.privacy.record_facts import Facts, visible_agents
from callsight.privacy.retention import retention_cutoff
from callsight.site.directory import Directory
from callsight.site.home import kept_builds
from callsight.site.policy import Policy
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
