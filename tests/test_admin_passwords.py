"""No Admin-role demo login shares the members' demo password (issue 25): the bootstrap admin has its own,
the directory's admins get CALLSIGHT_DEMO_ADMIN_PASSWORD after every provisioning."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from callsight.bi.admin_passwords import SharedPasswordError, check_distinct, set_admin_passwords
from callsight.bi.api import SupersetAPIError, SupersetClient
from callsight.site.directory import load_directory
from callsight.site.settings import Settings

from .conftest import SupersetServer, make_site


def test_an_admin_password_equal_to_the_members_is_refused() -> None:
    check_distinct("member-pw", {"SUPERSET_ADMIN_PASSWORD": "a", "CALLSIGHT_DEMO_ADMIN_PASSWORD": "b"})
    check_distinct(None, {"SUPERSET_ADMIN_PASSWORD": None})
    with pytest.raises(SharedPasswordError, match="CALLSIGHT_DEMO_ADMIN_PASSWORD must differ"):
        check_distinct("same", {"SUPERSET_ADMIN_PASSWORD": "a", "CALLSIGHT_DEMO_ADMIN_PASSWORD": "same"})


def test_the_demo_banner_gives_the_directory_admin_its_own_password(tmp_path: Path) -> None:
    from callsight.cli.demo import demo_logins

    site = make_site(tmp_path / "home", days=2, users=12)
    logins = demo_logins(site.settings, "member-pw", "admin-pw")
    admin = load_directory(site.settings.effective_directory_path).admins[0]
    assert (admin, "admin-pw", "directory admin: everything, own password") in logins
    assert {pw for user, pw, _ in logins if user != admin} == {"member-pw"}
    assert all(user != admin for user, _, _ in demo_logins(site.settings, "member-pw"))


def logs_in(url: str, user: str, password: str) -> bool:
    try:
        SupersetClient(url).login(user, password)
    except SupersetAPIError as exc:
        assert exc.status == 401, exc
        return False
    return True


@pytest.mark.superset
def test_directory_admins_lose_the_members_password(superset_server: SupersetServer) -> None:
    """The suite's Superset provisioned everyone, admins too, with the members' password (as provisioning
    does at creation); afterwards the admin logs in with the admin password only. Restored at the end:
    other modules log in as the admin with the members' password."""
    site = superset_server.site
    directory = load_directory(site.settings.effective_directory_path)
    admin = directory.admins[0]
    member = next(u for u in directory.usernames if u not in directory.admins + directory.analysts)
    admin_pw = secrets.token_urlsafe(12)
    settings = Settings.from_env(
        {
            **site.env,
            "CALLSIGHT_DEMO_PASSWORD": superset_server.user_password,
            "CALLSIGHT_DEMO_ADMIN_PASSWORD": admin_pw,
        }
    )
    url = superset_server.url
    assert logs_in(url, admin, superset_server.user_password)
    try:
        assert set_admin_passwords(settings, url, superset_server.admin_password) == sorted(directory.admins)
        assert not logs_in(url, admin, superset_server.user_password)
        assert logs_in(url, admin, admin_pw)
        assert logs_in(url, member, superset_server.user_password)
        # without an admin demo password nothing is changed; with the members' one it is refused
        assert set_admin_passwords(site.settings, url, superset_server.admin_password) == []
        same = Settings.from_env({**settings.env, "CALLSIGHT_DEMO_ADMIN_PASSWORD": superset_server.user_password})
        with pytest.raises(SharedPasswordError):
            set_admin_passwords(same, url, superset_server.admin_password)
    finally:
        client = SupersetClient(url).login("admin", superset_server.admin_password)
        for user in client.list_all("security/users"):
            if user["username"] in directory.admins:
                client.put(f"/api/v1/security/users/{user['id']}", {"password": superset_server.user_password})
