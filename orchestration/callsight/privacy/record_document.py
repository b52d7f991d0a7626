"""What the processing record says: the document as blocks (headings, paragraphs, lists, tables), composed
once from the gathered facts as English templates with the facts as parameters (site/locale.py Msg);
record.py renders it in German or English (privacy/messages_de.py), as Markdown or HTML.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from callsight.journal.contract import JOURNAL_COLUMNS
from callsight.privacy.erasure import ERASED_COLUMNS
from callsight.privacy.masking import CONTACT_COLUMNS, NUMBER_COLUMNS, normalize_number
from callsight.privacy.record_access import access_blocks
from callsight.privacy.record_facts import Facts, visible_agents
from callsight.privacy.retention import retention_cutoff
from callsight.site.directory import Directory
from callsight.site.home import kept_builds
from callsight.site.locale import Msg, msg
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
SUBJECTS = {"E": msg("employee"), "P": msg("other party"), "": msg("no")}
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


Block = tuple  # ("h1"|"h2"|"p", text) | ("ul", [items]) | ("table", [headers], [rows]); text: Msg or str


def _private_treatment(column: str, policy: Policy) -> Msg:
    mode = policy.private_calls.mode
    if mode == "keep" or column not in (*NUMBER_COLUMNS, *CONTACT_COLUMNS):
        return msg("stored like any other call")
    if column in NUMBER_COLUMNS and mode == "truncate":
        return msg("last {digits} digits replaced by X", digits=policy.private_calls.truncate_digits)
    return msg("not stored")


def _columns_table(facts: Facts) -> Block:
    rows = []
    for col in JOURNAL_COLUMNS:
        what, subject = COLUMN_CATALOGUE[col]
        names = [facts.staging_names.get(col, ""), *DERIVED.get(col, ())]
        found = [(n, sorted(set(facts.served_columns[n]))) for n in names if n in facts.served_columns]
        served = "; ".join(f"`{n}` ({', '.join(tables)})" for n, tables in found) or msg("no")
        rows.append(
            [
                f"`{col}`",
                msg(what),
                SUBJECTS[subject],
                msg("yes"),
                served if facts.build else msg("(no warehouse yet)"),
                _private_treatment(col, facts.policy),
                msg("cleared") if col in ERASED_COLUMNS else msg("kept"),
            ]
        )
    headers = [
        msg("journal column"),
        msg("what"),
        msg("personal data of"),
        msg("raw store"),
        msg("published warehouse (marts)"),
        msg("private calls"),
        msg("on erasure"),
    ]
    return ("table", headers, rows)


def _viewers_table(facts: Facts) -> tuple[Block, list[str]]:
    d = facts.directory
    computed = visible_agents(d)
    published = facts.published_visibility
    names = {u.username: u.name for u in d.users}
    roles: dict[str, list[Msg]] = {u: [] for u in names}
    for g in d.groups:
        for u in g.leaders:
            roles[u].append(msg("leader of {group}", group=g.name))
        for u in g.deputies:
            roles[u].append(msg("deputy of {group}", group=g.name))
        for u in set(g.members) - set(g.leaders) - set(g.deputies):
            roles[u].append(msg("member of {group}", group=g.name))
    staff: dict[str, Msg | str] = {
        **dict.fromkeys(d.analysts, msg("analyst: all masked calls")),
        **dict.fromkeys(d.admins, msg("admin: all")),
    }
    rows, differences = [], []
    for user in sorted(names):
        count = published.get(user, 0) if published is not None else len(computed[user])
        if published is not None and count != len(computed[user]):
            differences.append(user)
        rows.append([f"`{user}`", names[user], roles[user] or "-", str(count), staff.get(user, "")])
    headers = [msg("viewer"), msg("name"), msg("groups"), msg("agents whose calls they see"), msg("beyond that")]
    return ("table", headers, rows), differences


def document(facts: Facts) -> list[Block]:
    s, p, d = facts.settings, facts.policy, facts.directory
    cutoff = retention_cutoff(facts.today, p.retention.journal_days)
    blocks: list[Block] = [
        ("h1", msg("callsight: record of processing activities (GDPR Art. 30): call journal analytics")),
        (
            "p",
            msg(
                "Generated {today} by callsight {version} from the live configuration: org directory "
                "`{directory}`, policy `{policy}`, warehouse `{served}`. It contains no call data, only "
                "configuration, counts and dates.",
                today=facts.today.isoformat(),
                version=facts.version,
                directory=s.effective_directory_path,
                policy=s.effective_policy_path,
                served=s.served_db,
            ),
        ),
    ]
    if facts.build:
        current = model_fingerprint(p.dbt_vars(), DBT_PROJECT_DIR)
        same = msg("yes") if facts.build["fingerprint"] == current else msg("no: the next nightly run rebuilds it")
        blocks.append(
            (
                "p",
                msg(
                    "Warehouse in service: built {built}, build fingerprint `{fingerprint}`; built with the "
                    "current policy and models: {same}.",
                    built=f"{facts.build['built_at']:%Y-%m-%d %H:%M %Z}",
                    fingerprint=facts.build["fingerprint"],
                    same=same,
                ),
            )
        )
    else:
        blocks.append(("p", msg("No warehouse has been published yet.")))

    blocks += [
        ("h2", msg("Purpose and data subjects")),
        (
            "p",
            msg(
                "The call journal of the telephone system (one row per call leg) is analysed for reachability, "
                "service level, call volume and callbacks of teams. Controller: the employer operating the "
                "telephone system (ProCall) and this callsight site. Data subjects: the employees in the org "
                "directory ({users} users in {groups} groups) and the other parties of their calls.",
                users=len(d.users),
                groups=len(d.groups),
            ),
        ),
        ("h2", msg("Data stored, per journal column")),
        (
            "p",
            msg(
                "The raw store (`warehouse/journal.duckdb`) holds the journal as masked by the policy; it is never "
                "served. The published warehouse holds the marts listed; Superset reads only that file. The data "
                "quality checks keep a record of the journal and warehouse rows that passed "
                "(`warehouse/validated_rows.duckdb`): 64-bit hashes of rows and their counts, no values."
            ),
        ),
        _columns_table(facts),
        ("h2", msg("Private calls")),
    ]
    lines = len({normalize_number(n) for n in d.private_lines} - {""})
    digits = p.private_calls.truncate_digits
    mode_text = {
        "keep": msg("stored like any other call"),
        "truncate": msg(
            "the last {digits} digits of the numbers are replaced by X; contact name, company, contact ids "
            "and the call note are not stored",
            digits=digits,
        ),
        "drop": msg("numbers, contact name, company, contact ids and the call note are not stored"),
    }[p.private_calls.mode]
    items: list[Msg] = [
        msg(
            "Mode in force: `{mode}`: {text}. Times, durations, agent and direction are kept, so a private "
            "call still counts.",
            mode=p.private_calls.mode,
            text=mode_text,
        ),
        msg(
            "A call is private when the user marked it private or it ran on a private line; private lines "
            "configured: {lines}.",
            lines=lines,
        ),
        msg("Masking happens in the extract, before anything is written."),
    ]
    if facts.calls:
        items.append(
            msg(
                "Call legs in the warehouse: {legs}, of which private: {private}.",
                legs=facts.calls["legs"],
                private=facts.calls["private"],
            )
        )
    blocks.append(("ul", items))
    blocks += [("h2", msg("Retention, look-back and erasure")), ("ul", _retention_lines(facts, cutoff))]

    viewers, differences = _viewers_table(facts)
    source = (
        msg("as published in the warehouse (`security.viewer_agents`)")
        if facts.published_visibility is not None
        else msg("computed from the org directory (no warehouse published yet)")
    )
    blocks += [
        ("h2", msg("Who can see whose calls")),
        (
            "p",
            msg(
                'Everyone sees their own calls. Leaders and deputies of a group with "journal visible to the '
                'group leader" see the calls of all its members; members of a group with "journal visible to '
                'the whole group" see the calls of all members; several groups give the union. Analysts and '
                "admins see all (masked) calls. Enforced by row-level security on every Superset surface "
                "(charts, dashboards, CSV export, SQL Lab, reports). Counts {source}:",
                source=source,
            ),
        ),
        viewers,
    ]
    if differences:
        blocks.append(
            (
                "p",
                msg(
                    "The org directory changed since the warehouse was built: {n} viewer(s) will see a "
                    "different number of agents after the next nightly run.",
                    n=len(differences),
                ),
            )
        )
    blocks += [
        ("h2", msg("Works-council mode")),
        (
            "p",
            msg(
                "Call figures per person can serve to monitor performance and behaviour, which needs the works "
                "council's consent (German Works Constitution Act, section 87(1) no. 6). The policy's works-council "
                "settings in force:"
            ),
        ),
        ("ul", _works_council_lines(facts)),
    ]
    blocks += access_blocks(p.access_log.retention_days, facts.access_total, facts.access_counts)
    blocks += [
        ("h2", msg("Analysts and admins")),
        (
            "ul",
            [
                msg(
                    "Analysts (all masked calls, SQL Lab on the analyst schema): {people}",
                    people=_people(d, d.analysts),
                ),
                msg("Admins (everything in Superset): {people}", people=_people(d, d.admins)),
            ],
        ),
        ("h2", msg("Report recipients")),
        (
            "p",
            msg("Group leaders receive the weekly team reports; a report shows only what its recipient may see."),
        ),
        _recipients_table(facts),
        ("h2", msg("Technical and organisational measures (GDPR Art. 32)")),
        (
            "ul",
            [
                msg(
                    "Private calls are masked in memory before any row is written; malformed rows are "
                    "quarantined masked, too."
                ),
                msg(
                    "Superset opens only the published warehouse, read-only and with external file access "
                    "disabled; raw and staging tables are not in that file."
                ),
                msg(
                    "Row-level security per logged-in user; users removed from the directory are deactivated by "
                    "the next run."
                ),
                msg("Erasure identifiers are hashed with a secret key from the environment (CALLSIGHT_ERASURE_KEY)."),
                msg("The audit log is append-only and hash-chained: an edited or removed entry breaks the chain."),
            ],
        ),
    ]
    return blocks


def _retention_lines(facts: Facts, cutoff: date) -> list[Msg]:
    """Pure: retention, kept builds, look-back, erasure requests and the audit log."""
    s, p = facts.settings, facts.policy
    kept = kept_builds(s.served_db)
    lines = [
        msg(
            "Retention: {days} days, measured from the run's date in {tz}. As of {today} calls that started "
            "before {cutoff} are deleted from the raw store, the quarantine and the warehouse by the next "
            "nightly run (a call forwarded across the cutoff goes as a whole). The files are rewritten so "
            "deleted values do not linger.",
            days=p.retention.journal_days,
            tz=p.timezone,
            today=facts.today.isoformat(),
            cutoff=f"{cutoff:%Y-%m-%d}",
        ),
        msg(
            "Kept previous builds for rollback: at most {keep}; a kept build holding calls older than retention "
            "plus one night is deleted. Kept now: {kept}.",
            keep=s.keep_builds,
            kept=len(kept),
        ),
        msg(
            "Look-back: each nightly run re-reads the last {days} days of the journal (edits and deletions at "
            "the source are applied).",
            days=s.lookback_days,
        ),
    ]
    if facts.calls and facts.calls["first"]:
        lines.append(
            msg("Calls in the warehouse: {first} to {last}.", first=facts.calls["first"], last=facts.calls["last"])
        )
    if facts.erasure is None:
        lines.append(msg("Erasure requests: unavailable (a nightly run holds the raw store; try again)."))
    else:
        requests, identifiers, last = facts.erasure
        when = msg(", the last on {last}", last=f"{last:%Y-%m-%d}") if last else ""
        lines.append(
            msg(
                "Erasure requests (GDPR Art. 17, `callsight erase`): {requests} ({identifiers} identifiers)"
                "{when}. Identifiers are stored only as keyed hashes; matching calls keep their times and "
                "durations but lose numbers, contact name, company, contact ids and note, now and in every "
                "later extract.",
                requests=requests,
                identifiers=identifiers,
                when=when,
            )
        )
    if facts.audit_entries is not None:
        lines.append(
            msg(
                "Audit log: {entries} entries (runs, erasures, provisioning), published as `marts.audit_log`.",
                entries=facts.audit_entries,
            )
        )
    return lines


def _works_council_lines(facts: Facts) -> list[Msg]:
    """Pure: what min_group_size and the analysts' pseudonyms mean for this directory."""
    wc, d = facts.policy.works_council, facts.directory
    k = wc.min_group_size
    if k == 0:
        lines = [msg("Minimum group size: off - leaders, members and analysts see figures per agent.")]
    else:
        sizes = {g.name: len(set(g.members) | set(g.leaders) | set(g.deputies)) for g in d.groups}
        large = {n for n, size in sizes.items() if size >= k}
        shown = {u for g in d.groups if g.name in large for u in set(g.members) | set(g.leaders) | set(g.deputies)}
        merged = sorted(n for n in sizes if n not in large)
        lines = [
            msg(
                "Minimum group size: {k}. Everybody but admins sees an agent's figures one by one only for "
                "members of a group of at least {k}; other agents' calls are merged under their group. Now "
                "shown one by one: {shown} of {people} people; groups merged: {merged}.",
                k=k,
                shown=len(shown),
                people=len(d.users),
                merged=", ".join(merged) or msg("none"),
            )
        ]
    lines.append(
        msg("Analysts see stable pseudonyms instead of names (keyed hash, CALLSIGHT_PSEUDONYM_KEY).")
        if wc.pseudonymize_agents_for_analysts
        else msg("Pseudonyms for analysts: off - analysts see agents' names.")
    )
    return lines


def _people(d: Directory, usernames: Iterable[str]) -> Msg | str:
    names = {u.username: u.name for u in d.users}
    listed = [f"{names[u]} (`{u}`)" for u in usernames]
    return ", ".join(listed) if listed else msg("none")


def _recipients_table(facts: Facts) -> Block:
    d = facts.directory
    visible = visible_agents(d)
    names = {u.username: u.name for u in d.users}
    rows = [
        [g.name, f"{names[u]} (`{u}`)", str(len(visible[u]))]
        for g in sorted(d.groups, key=lambda g: g.name)
        for u in g.leaders
    ]
    headers = [msg("group"), msg("leader"), msg("agents in the report")]
    return ("table", headers, rows or [["-", msg("no group leaders"), "0"]])
