"""No Admin-role login shares the members' demo password (issue 25).

The demo gives the users it creates from the org directory one shared password (CALLSIGHT_DEMO_PASSWORD)
so that it can print their logins. Admin-role users see and may change everything: the bootstrap admin
has SUPERSET_ADMIN_PASSWORD, and the directory's `admins` get CALLSIGHT_DEMO_ADMIN_PASSWORD, set after
every provisioning - so also an admin added to the directory later, or a member who became one.
"""

from __future__ import annotations

from callsight.bi.api import SupersetClient
from callsight.site.directory import load_directory
from callsight.site.settings import Settings

MEMBER_PASSWORD = "CALLSIGHT_DEMO_PASSWORD"
ADMIN_PASSWORD = "CALLSIGHT_DEMO_ADMIN_PASSWORD"


class SharedPasswordError(ValueError):
    """An Admin-role password equals the members' demo password."""


def check_distinct(member_password: str | None, admin_passwords: dict[str, str | None]) -> None:
    """Pure: refuse when any of the named admin passwords is the members' demo password."""
    if not member_password:
        return
    shared = [name for name, value in admin_passwords.items() if value == member_password]
    if shared:
        raise SharedPasswordError(
            f"{', '.join(shared)} must differ from {MEMBER_PASSWORD}: admins must not share the members' password"
        )


def admin_usernames(settings: Settings) -> list[str]:
    """The directory's admins who get the admin demo password (the bootstrap admin keeps its own)."""
    admins = load_directory(settings.effective_directory_path).admins
    return [a for a in admins if a != settings.superset_admin_username]


def set_admin_passwords(settings: Settings, url: str, bootstrap_password: str) -> list[str]:
    """Give the directory's admins the admin demo password (when one is set); returns their usernames.
    Idempotent: the same password is set again at every provisioning."""
    password = settings.secret(ADMIN_PASSWORD)
    if not password:
        return []
    check_distinct(settings.secret(MEMBER_PASSWORD), {ADMIN_PASSWORD: password})
    wanted = set(admin_usernames(settings))
    if not wanted:
        return []
    client = SupersetClient(url).login(settings.superset_admin_username, bootstrap_password)
    done = []
    for user in client.list_all("security/users"):
        if user["username"] in wanted:
            client.put(f"/api/v1/security/users/{user['id']}", {"password": password})
            done.append(user["username"])
    return sorted(done)
