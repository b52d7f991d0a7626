"""`callsight directory-from-ldap`: a draft of the org directory's users and groups from AD / LDAP groups,
as YAML on stdout (bi/ldap_directory.py). Asks the server with Debian's `ldapsearch` (ldap-utils), using the
LDAP login settings (docs/settings.md); the bind password goes to ldapsearch in an owner-only file."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from callsight.site.settings import Settings


class LdapSearchError(RuntimeError):
    """ldapsearch missing or failing, or the settings unusable; never holds the bind password."""


def ldapsearch_args(env: Mapping[str, str], password_file: Path) -> tuple[list[str], dict[str, str]]:
    """Pure: ldapsearch's common arguments and extra environment from the LDAP login settings."""
    url = env.get("CALLSIGHT_LDAP_URL") or ""
    scheme = urlsplit(url).scheme.lower()
    starttls = env.get("CALLSIGHT_LDAP_STARTTLS") == "1"
    missing = [n for n in ("CALLSIGHT_LDAP_BIND_DN", "CALLSIGHT_LDAP_BIND_PASSWORD") if not env.get(n)]
    if scheme not in ("ldap", "ldaps") or missing:
        raise LdapSearchError(f"set CALLSIGHT_LDAP_URL (ldaps:// or ldap://) and {', '.join(missing) or 'the bind'}")
    if scheme == "ldap" and not starttls and env.get("CALLSIGHT_LDAP_ALLOW_PLAIN") != "1":
        raise LdapSearchError("plain ldap://: set CALLSIGHT_LDAP_STARTTLS=1 or use ldaps://")
    args = ["ldapsearch", "-LLL", "-o", "ldif-wrap=no", "-x", "-H", url]
    args += ["-D", env["CALLSIGHT_LDAP_BIND_DN"], "-y", str(password_file)] + (["-ZZ"] if starttls else [])
    tls = {"LDAPTLS_REQCERT": "demand"} | (
        {"LDAPTLS_CACERT": env["CALLSIGHT_LDAP_CA_FILE"]} if env.get("CALLSIGHT_LDAP_CA_FILE") else {}
    )
    return args, tls


def search(common: list[str], tls: dict[str, str], base: str, scope: str, query: str, attrs: list[str]) -> str:
    proc = subprocess.run(
        [*common, "-b", base, "-s", scope, query, *attrs],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **tls},
    )
    if proc.returncode not in (0, 32):  # 32: no such object (an empty result)
        raise LdapSearchError(f"ldapsearch failed (exit {proc.returncode}): {proc.stderr.strip()[:300]}")
    return proc.stdout


def cmd_directory_from_ldap(settings: Settings, args: argparse.Namespace) -> int:
    from callsight.bi.ldap_directory import draft_directory, parse_ldif, person, render_draft

    env = settings.env
    uid = env.get("CALLSIGHT_LDAP_USERNAME_ATTRIBUTE") or "sAMAccountName"
    base = env.get("CALLSIGHT_LDAP_SEARCH_BASE") or ""
    if not base:
        print("callsight: CALLSIGHT_LDAP_SEARCH_BASE is not set", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="callsight-ldap-") as tmp:
        password_file = Path(tmp) / "bind"
        fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(env.get("CALLSIGHT_LDAP_BIND_PASSWORD") or "")  # no newline: -y sends the file as it is
        try:
            common, tls = ldapsearch_args(env, password_file)
            query = f"(&{env.get('CALLSIGHT_LDAP_FILTER') or '(objectClass=*)'}({uid}=*))"
            found = parse_ldif(search(common, tls, base, "sub", query, [uid, "displayName", "cn", "mail"]))
            groups = [
                g
                for dn in args.group
                for g in parse_ldif(search(common, tls, dn, "base", "(objectClass=*)", ["cn", "member"]))
            ]
        except (LdapSearchError, FileNotFoundError, subprocess.TimeoutExpired) as exc:
            print(f"callsight: {exc}", file=sys.stderr)
            return 2
    people = [p for dn, attrs in found if (p := person(dn, attrs, uid)) is not None]
    draft, notes = draft_directory(people, groups)
    sys.stdout.write(render_draft(draft))
    for note in notes:
        print(f"callsight: note: {note}", file=sys.stderr)
    return 0


def add_ldap_command(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser(
        "directory-from-ldap",
        help="draft the org directory's users and groups from AD / LDAP groups (YAML on stdout, to review)",
    )
    d.add_argument("--group", action="append", required=True, metavar="DN", help="a group's DN (repeatable)")
    d.set_defaults(func=cmd_directory_from_ldap)
