"""Superset users from the org directory, and the row-level security that limits which calls they see."""

from __future__ import annotations

import secrets

from callsight.bi.agent_macros import VISIBLE_AGENTS
from callsight.bi.api import SupersetClient
from callsight.bi.roles import CALLSIGHT_ROLES, ROLE_ADMIN, ROLE_ANALYST, ROLE_VIEWER, role_for
from callsight.site.directory import Directory

RLS_VIEWER_NAME = "callsight: calls the viewer may see"
RLS_DENY_NAME = "callsight: default deny"
RLS_VIEWER_CLAUSE = f"agent_username IN ({VISIBLE_AGENTS})"


def user_change(existing: dict, payload: dict, roles: dict[str, int]) -> dict[str, str | int]:
    """Pure: what provisioning would change on an existing Superset user (empty: nothing), for the audit
    log - the role by name, the rest as flags (no names or addresses)."""
    names = {v: k for k, v in roles.items()}
    have = sorted(
        names.get(r["id"], str(r["id"])) if isinstance(r, dict) else str(r) for r in existing.get("roles", [])
    )
    want = sorted(names.get(r, str(r)) for r in payload["roles"])
    change: dict[str, str | int] = {}
    if have != want:
        change["role"] = ", ".join(want)
        change["previous_role"] = ", ".join(have) or "-"
    if not existing.get("active", True):
        change["reactivated"] = 1
    if any(existing.get(k) != payload[k] for k in ("first_name", "last_name", "email")):
        change["profile_updated"] = 1
    if change:
        change["change"] = "updated"
    return change


def rls_differs(existing: dict, wanted: dict) -> bool:
    """Pure: does an RLS rule as listed by Superset differ from the wanted payload? (The list carries no
    description; a changed description alone is not a change of access.)"""

    def ids(items: list) -> list[int]:
        return sorted(i["id"] if isinstance(i, dict) else i for i in items)

    return (
        existing.get("clause") != wanted["clause"]
        or existing.get("filter_type") != wanted["filter_type"]
        or existing.get("group_key") != wanted["group_key"]
        or ids(existing.get("tables", [])) != sorted(wanted["tables"])
        or ids(existing.get("roles", [])) != sorted(wanted["roles"])
    )


def new_user_password(role: str, ldap_logins: bool, demo: str | None, demo_admin: str | None) -> str:
    """Pure: the password a new Superset user is created with. With LDAP logins none that anybody knows:
    Superset's API wants one, and ldap_auth.py refuses its own passwords to everyone but the bootstrap admin."""
    if ldap_logins:
        return secrets.token_urlsafe(32)  # thrown away at once: never logged, printed or stored here
    own = demo_admin if role == ROLE_ADMIN else None
    return own or demo or secrets.token_urlsafe(32)


def split_name(name: str) -> tuple[str, str]:
    first, _, last = name.strip().rpartition(" ")
    return (first or last, last if first else "-")


class UserAccess:
    """The user and row-level-security steps of the Provisioner, which holds the client (`self.c`), the
    directory and the run's report (`self.report`)."""

    c: SupersetClient
    directory: Directory
    ldap_logins: bool = False  # CALLSIGHT_AUTH=ldap: passwords stay with the company's directory

    def sync_users(self, roles: dict[str, int]) -> None:
        existing = {u["username"]: u for u in self.c.list_all("security/users")}
        wanted = {u.username: u for u in self.directory.users}
        for username, user in wanted.items():
            first, last = split_name(user.name)
            role = role_for(self.directory, username)
            payload = {
                "first_name": first,
                "last_name": last,
                "username": username,
                "email": user.email or f"{username}@invalid.local",
                "active": True,
                "roles": [roles[role]],
            }
            if username in existing:
                change = user_change(existing[username], payload, roles)
                if change:
                    if change.get("role") == ROLE_ADMIN and self.admin_user_password and not self.ldap_logins:
                        payload["password"] = self.admin_user_password  # promoted: not the members' password
                    self.c.put(f"/api/v1/security/users/{existing[username]['id']}", payload)
                    self.report.users_updated.append(username)
                    self.report.changes.append((f"user:{username}", change))
            else:
                # Without a demo password, users get an unguessable one: production logins go through
                # the company's identity provider or a password reset by the admin.
                payload["password"] = new_user_password(
                    role, self.ldap_logins, self.user_password, self.admin_user_password
                )
                self.c.post("/api/v1/security/users/", payload)
                self.report.users_created.append(username)
                self.report.changes.append((f"user:{username}", {"change": "created", "role": role}))
        callsight_role_ids = {roles[r] for r in CALLSIGHT_ROLES} | {roles[ROLE_ADMIN]}
        for username, u in existing.items():
            if username in wanted or username == self.bootstrap_admin:
                continue
            detail = self.c.get(f"/api/v1/security/users/{u['id']}")["result"]
            role_ids = {r["id"] for r in detail.get("roles", [])}
            if role_ids & callsight_role_ids and detail.get("active", True):
                self.c.put(f"/api/v1/security/users/{u['id']}", {"active": False})
                self.report.users_deactivated.append(username)
                self.report.changes.append((f"user:{username}", {"change": "deactivated"}))

    # ---- row-level security -------------------------------------------------------------------
    def ensure_rls(self, roles: dict[str, int]) -> None:
        call_tables = sorted(self.report.datasets[k] for k in self.report.call_datasets)
        all_tables = sorted(self.report.datasets.values())
        rules = {
            RLS_VIEWER_NAME: {
                "tables": call_tables,
                "filter_type": "Regular",
                "roles": [roles[ROLE_VIEWER]],
                "group_key": "callsight_viewer",
                "clause": RLS_VIEWER_CLAUSE,
                "description": "Own calls; group calls where the org directory allows it.",
            },
            RLS_DENY_NAME: {
                "tables": all_tables,
                "filter_type": "Base",
                "roles": [roles[ROLE_VIEWER], roles[ROLE_ANALYST], roles[ROLE_ADMIN]],
                "group_key": "callsight_deny",
                "clause": "1 = 0",
                "description": "Anyone without a callsight role sees no call rows.",
            },
        }
        existing = {r["name"]: r for r in self.c.list_all("rowlevelsecurity")}
        for name, rule in rules.items():
            payload = {"name": name, **rule}
            if name in existing:
                if rls_differs(existing[name], payload):
                    self.c.put(f"/api/v1/rowlevelsecurity/{existing[name]['id']}", payload)
                    self.report.changes.append((f"rls:{name}", {"change": "updated", "tables": len(rule["tables"])}))
            else:
                self.c.post("/api/v1/rowlevelsecurity/", payload)
                self.report.changes.append((f"rls:{name}", {"change": "created", "tables": len(rule["tables"])}))
            self.report.rls_rules.append(name)
