"""Drafting the org directory's users and groups from AD / LDAP groups (`callsight directory-from-ldap`).

Pure: LDIF as `ldapsearch -LLL -o ldif-wrap=no` prints it in, a YAML draft out. The draft is for the admin
to finish: who leads a group and who sees whose calls (the ProCall group options) are not in LDAP, so every
group comes with no leaders and the most private options; the org directory stays the one source of access.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import yaml

from callsight.site.directory import USERNAME_RE

Entry = dict[str, list[str]]  # attribute name (lower case) -> values


@dataclass(frozen=True)
class Person:
    dn: str
    username: str
    name: str
    email: str | None


def parse_ldif(text: str) -> list[tuple[str, Entry]]:
    """Entries of unwrapped LDIF: (dn, attributes); `attr:: base64` decoded, comments skipped."""
    entries: list[tuple[str, Entry]] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        dn, attrs = "", {}
        for line in block.split("\n"):
            if not line or line.startswith("#") or ":" not in line:
                continue
            key, _, value = line.partition(":")
            if value.startswith(":"):
                value = base64.b64decode(value[1:].strip()).decode("utf-8", errors="replace")
            else:
                value = value.strip()
            if key.lower() == "dn":
                dn = value
            else:
                attrs.setdefault(key.lower(), []).append(value)
        if dn:
            entries.append((dn, attrs))
    return entries


def person(dn: str, attrs: Entry, username_attribute: str) -> Person | None:
    """The person of an entry, its login name in the directory's lower case; None without a usable name."""
    raw = (attrs.get(username_attribute.lower()) or [""])[0].strip().lower()
    if not USERNAME_RE.match(raw):
        return None
    first = (attrs.get("displayname") or attrs.get("cn") or [raw])[0]
    email = (attrs.get("mail") or [None])[0]
    return Person(dn, raw, first, email)


def draft_directory(people: list[Person], groups: list[tuple[str, Entry]]) -> tuple[dict, list[str]]:
    """The directory draft (users of the groups, each group's members) and notes on what was left out."""
    by_dn = {p.dn.lower(): p for p in people}
    notes: list[str] = []
    users: dict[str, Person] = {}
    drafted = []
    for dn, attrs in groups:
        name = (attrs.get("cn") or [dn])[0]
        members = []
        for member_dn in attrs.get("member", []):
            p = by_dn.get(member_dn.lower())
            if p is None:
                notes.append(f"{name}: a member without a usable login name or outside the search base left out")
                continue
            users.setdefault(p.username, p)
            members.append(p.username)
        drafted.append(
            {
                "name": name,
                "leaders": [],
                "deputies": [],
                "members": sorted(set(members)),
                # ProCall's options are the admin's to set: the most private until then.
                "journal_visible_to_leader": False,
                "journal_visible_to_group": False,
            }
        )
    user_list = [
        {"username": u.username, "name": u.name} | ({"email": u.email} if u.email else {})
        for u in sorted(users.values(), key=lambda u: u.username)
    ]
    return {"users": user_list, "groups": drafted}, sorted(set(notes))


def render_draft(draft: dict) -> str:
    header = (
        "# Org directory draft from LDAP (callsight directory-from-ldap). Review before use: set each group's\n"
        "# leaders, deputies and journal_visible_to_leader / journal_visible_to_group as in ProCall, and add\n"
        "# analysts, admins and private_lines. Only this file decides who sees whose calls.\n"
    )
    return header + yaml.safe_dump(draft, sort_keys=False, allow_unicode=True)
