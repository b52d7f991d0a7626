"""Logins against the company's Active Directory / LDAP (CALLSIGHT_AUTH=ldap) through Flask-AppBuilder's own
AUTH_LDAP, with the org directory as the only source of who sees what (docs/access.md, "LDAP logins"):

* LDAP only says whether the password is right. Users, roles and row-level security come from provisioning:
  AUTH_USER_REGISTRATION stays off, so a name LDAP knows but the org directory does not cannot log in at all,
  and an inactive user (left the directory) is refused before LDAP is asked. LDAP groups never set roles.
* The typed name is matched without regard to case (AD names are case-insensitive) and passed on in lower
  case, the form of the directory's usernames: one person stays one Superset user.
* Passwords kept in Superset serve the bootstrap admin alone, the service account that provisioning and the
  night's cache warm-up log in with: over the REST provider "db", and in the login form (which asks LDAP
  for everybody else). LDAP is never asked for the admin (an AD account of that name must not become it),
  and every other account is refused Superset's passwords. Refusals count in the login throttle.

Loaded by superset_config.py by path. `ldap_config` is pure and needs neither Superset nor python-ldap.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

AUTH_LDAP = 2  # flask_appbuilder.const.AUTH_LDAP


class LdapConfigError(RuntimeError):
    """An LDAP setting missing or unsafe; the message names variables, never the bind password."""


def canonical_username(typed: Any) -> Any:
    """The directory's form of a typed login name: trimmed, lower case (directory usernames are)."""
    return typed.strip().lower() if isinstance(typed, str) else typed


def ldap_config(env: Mapping[str, str]) -> dict[str, Any]:
    """Flask-AppBuilder's settings for LDAP logins from callsight's environment (docs/settings.md)."""
    problems = []
    url = (env.get("CALLSIGHT_LDAP_URL") or "").strip()
    scheme = urlsplit(url).scheme.lower()
    starttls = (env.get("CALLSIGHT_LDAP_STARTTLS") or "0") == "1"
    plain_allowed = (env.get("CALLSIGHT_LDAP_ALLOW_PLAIN") or "0") == "1"
    if scheme not in ("ldap", "ldaps"):
        problems.append("CALLSIGHT_LDAP_URL must be ldaps://host[:port] (or ldap://host with StartTLS)")
    elif scheme == "ldap" and not starttls and not plain_allowed:
        problems.append(
            "CALLSIGHT_LDAP_URL is plain ldap://: set CALLSIGHT_LDAP_STARTTLS=1, use ldaps://, or - for a test "
            "server on loopback only - CALLSIGHT_LDAP_ALLOW_PLAIN=1"
        )
    if scheme == "ldaps" and starttls:
        problems.append("CALLSIGHT_LDAP_STARTTLS=1 is for ldap:// URLs; ldaps:// is TLS already")
    for name in ("CALLSIGHT_LDAP_BIND_DN", "CALLSIGHT_LDAP_BIND_PASSWORD", "CALLSIGHT_LDAP_SEARCH_BASE"):
        if not env.get(name):
            problems.append(f"{name} is not set")
    search_filter = (env.get("CALLSIGHT_LDAP_FILTER") or "").strip()
    if search_filter and not (search_filter.startswith("(") and search_filter.endswith(")")):
        problems.append("CALLSIGHT_LDAP_FILTER must be an LDAP filter in parentheses, e.g. (memberOf=CN=...)")
    ca_file = env.get("CALLSIGHT_LDAP_CA_FILE") or ""
    if problems:
        raise LdapConfigError("CALLSIGHT_AUTH=ldap:\n  " + "\n  ".join(problems))
    return {
        "AUTH_TYPE": AUTH_LDAP,
        "AUTH_LDAP_SERVER": url,
        "AUTH_LDAP_USE_TLS": starttls,
        # Certificates are always checked (against the CA file, else the system's trust store).
        "AUTH_LDAP_TLS_DEMAND": True,
        "AUTH_LDAP_ALLOW_SELF_SIGNED": False,
        "AUTH_LDAP_TLS_CACERTFILE": ca_file,
        # Search with the service account for the typed name, then bind as the entry found.
        "AUTH_LDAP_BIND_USER": env["CALLSIGHT_LDAP_BIND_DN"],
        "AUTH_LDAP_BIND_PASSWORD": env["CALLSIGHT_LDAP_BIND_PASSWORD"],
        "AUTH_LDAP_SEARCH": env["CALLSIGHT_LDAP_SEARCH_BASE"],
        "AUTH_LDAP_SEARCH_FILTER": search_filter,
        "AUTH_LDAP_UID_FIELD": env.get("CALLSIGHT_LDAP_USERNAME_ATTRIBUTE") or "sAMAccountName",
        # Users and roles from the org directory only: no self-registration, no roles from LDAP groups.
        "AUTH_USER_REGISTRATION": False,
        "AUTH_ROLES_SYNC_AT_LOGIN": False,
        "AUTH_ROLES_MAPPING": {},
        "AUTH_USERNAME_CI": True,
        # The REST login takes provider "db" besides "ldap": for the bootstrap admin alone (see below).
        "AUTH_API_LOGIN_ALLOW_MULTIPLE_PROVIDERS": True,
    }


def ldap_security_manager(base: type, service_accounts: frozenset[str]) -> type:
    """`base` (the login throttle's security manager) with LDAP logins in the directory's case and Superset's
    own passwords kept to the service accounts."""

    class LdapSecurityManager(base):  # type: ignore[misc, valid-type]
        def auth_user_ldap(self, username: str, password: str) -> Any:
            if canonical_username(username) in service_accounts:
                # its own Superset password, never LDAP's: an AD account of that name never becomes the admin
                return self.auth_user_db(username, password)
            return super().auth_user_ldap(canonical_username(username), password)

        def auth_user_db(self, username: str, password: str) -> Any:
            if canonical_username(username) not in service_accounts:
                return self._counted(username, None)  # refused, and counted like a wrong password
            return super().auth_user_db(username, password)

    return LdapSecurityManager
