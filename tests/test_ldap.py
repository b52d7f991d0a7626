"""LDAP / Active Directory logins (CALLSIGHT_AUTH=ldap, superset/ldap_auth.py) against a real OpenLDAP server
(Debian's slapd on loopback, a generated tree) and a sibling Superset on the suite's metadata: directory users
log in with their LDAP password over the form, the browser and the REST login and see what the org directory
allows; wrong passwords, accounts the LDAP filter excludes, names outside the org directory and users who left
are refused; any case of a name is the one Superset user; Superset's own passwords serve the bootstrap admin
alone, and provisioning gives new users none that anybody knows."""

from __future__ import annotations

import base64
import importlib.util
import os
import secrets
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from callsight.bi.api import SupersetClient
from callsight.bi.provision import Provisioner, ldap_logins
from callsight.bi.roles import ROLE_ADMIN, ROLE_VIEWER
from callsight.bi.users import new_user_password
from callsight.site.directory import Directory, User, load_directory
from callsight.site.settings import REPO_ROOT

from .conftest import SupersetServer, free_port, require_service
from .test_dashboards import DASHBOARD_DATASETS, ROW_COUNT_METRIC, dataset_id, group_leader, visible_agents
from .test_login_guard import FormLogin

pytestmark = pytest.mark.superset

SLAPD = Path("/usr/sbin/slapd")
SLAPADD = Path("/usr/sbin/slapadd")
SUFFIX = "dc=callsight,dc=test"
PEOPLE = f"ou=people,{SUFFIX}"
READER = f"cn=reader,{SUFFIX}"
GROUP = f"cn=vertrieb-sued,ou=groups,{SUFFIX}"
ALLOWED = "callsight"  # the filter's stand-in for AD's group membership: (employeeType=callsight)


def ldap_auth_module():
    """superset/ldap_auth.py by path, as superset_config.py loads it (it needs neither Superset nor ldap)."""
    spec = importlib.util.spec_from_file_location("callsight_ldap_auth_test", REPO_ROOT / "superset" / "ldap_auth.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- settings, pure --------------------------------------------------------------------------------------
BASE = {
    "CALLSIGHT_LDAP_BIND_DN": READER,
    "CALLSIGHT_LDAP_BIND_PASSWORD": "s3cret-bind",
    "CALLSIGHT_LDAP_SEARCH_BASE": PEOPLE,
}


def test_ldap_settings_want_tls_unless_plain_is_allowed_and_never_show_the_bind_password() -> None:
    m = ldap_auth_module()
    config = m.ldap_config({**BASE, "CALLSIGHT_LDAP_URL": "ldaps://dc1.example.local"})
    assert config["AUTH_TYPE"] == m.AUTH_LDAP and config["AUTH_LDAP_TLS_DEMAND"] and not config["AUTH_LDAP_USE_TLS"]
    assert config["AUTH_LDAP_UID_FIELD"] == "sAMAccountName"
    assert not config["AUTH_USER_REGISTRATION"] and not config["AUTH_ROLES_SYNC_AT_LOGIN"]
    assert config["AUTH_ROLES_MAPPING"] == {} and config["AUTH_USERNAME_CI"]
    assert config["AUTH_API_LOGIN_ALLOW_MULTIPLE_PROVIDERS"]  # provider "db": the bootstrap admin, see below
    starttls = m.ldap_config({**BASE, "CALLSIGHT_LDAP_URL": "ldap://dc1", "CALLSIGHT_LDAP_STARTTLS": "1"})
    assert starttls["AUTH_LDAP_USE_TLS"]
    with pytest.raises(m.LdapConfigError, match="plain ldap://"):
        m.ldap_config({**BASE, "CALLSIGHT_LDAP_URL": "ldap://dc1"})
    plain = m.ldap_config({**BASE, "CALLSIGHT_LDAP_URL": "ldap://127.0.0.1:389", "CALLSIGHT_LDAP_ALLOW_PLAIN": "1"})
    assert plain["AUTH_LDAP_SERVER"] == "ldap://127.0.0.1:389"
    with pytest.raises(m.LdapConfigError) as err:
        m.ldap_config({"CALLSIGHT_LDAP_URL": "http://dc1", "CALLSIGHT_LDAP_FILTER": "memberOf=x"})
    message = str(err.value)
    for name in ("CALLSIGHT_LDAP_URL", "CALLSIGHT_LDAP_BIND_DN", "CALLSIGHT_LDAP_BIND_PASSWORD", "FILTER"):
        assert name in message
    with pytest.raises(m.LdapConfigError) as err:
        m.ldap_config({**BASE, "CALLSIGHT_LDAP_URL": "ldaps://dc1", "CALLSIGHT_LDAP_FILTER": "memberOf=x"})
    assert "s3cret-bind" not in str(err.value)
    assert m.canonical_username("  Claudia.Becker ") == "claudia.becker"


def test_with_ldap_logins_provisioning_gives_new_users_no_known_password() -> None:
    assert not ldap_logins({}) and not ldap_logins({"CALLSIGHT_AUTH": "db"}) and ldap_logins({"CALLSIGHT_AUTH": "LDAP"})
    with pytest.raises(ValueError, match="CALLSIGHT_AUTH"):
        ldap_logins({"CALLSIGHT_AUTH": "saml"})
    assert new_user_password(ROLE_VIEWER, False, "demo-pw", "admin-pw") == "demo-pw"
    assert new_user_password(ROLE_ADMIN, False, "demo-pw", "admin-pw") == "admin-pw"
    made = {new_user_password(role, True, "demo-pw", "admin-pw") for role in (ROLE_VIEWER, ROLE_ADMIN) * 3}
    assert len(made) == 6 and not made & {"demo-pw", "admin-pw"} and all(len(p) >= 40 for p in made)


def test_ldif_parsing_and_the_directory_draft_keep_the_directory_s_lower_case_names() -> None:
    from callsight.bi.ldap_directory import draft_directory, parse_ldif, person

    name = base64.b64encode("Jürgen Weiß".encode()).decode()
    ldif = (
        "# comment\ndn: CN=Jürgen,OU=Staff,DC=x\nsAMAccountName: Juergen.Weiss\ndisplayName:: " + name + "\n\n"
        "dn: CN=Svc,OU=Staff,DC=x\nsAMAccountName: svc$\n\n"
        "dn: CN=Team,DC=x\ncn: Team\nmember: cn=jürgen,ou=staff,dc=x\nmember: CN=Svc,OU=Staff,DC=x\n"
    )
    entries = parse_ldif(ldif)
    people = [p for dn, a in entries[:2] if (p := person(dn, a, "sAMAccountName"))]
    assert [(p.username, p.name, p.email) for p in people] == [("juergen.weiss", "Jürgen Weiß", None)]
    draft, notes = draft_directory(people, entries[2:])
    assert draft["users"] == [{"username": "juergen.weiss", "name": "Jürgen Weiß"}]
    assert draft["groups"][0]["members"] == ["juergen.weiss"] and len(notes) == 1


# ---- a real slapd and a sibling Superset with LDAP logins -------------------------------------------------
@dataclass
class People:
    leader: str
    member: str
    excluded: str  # in the org directory, but the LDAP filter leaves them out (disabled in AD)
    outsider: str  # in LDAP, not in the org directory
    leaver: str  # in LDAP, a deactivated Superset user (left the directory)


def person(uid: str, password: str, allowed: bool) -> str:
    kind = f"employeeType: {ALLOWED}\n" if allowed else "employeeType: former\n"
    return (
        f"dn: uid={uid},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\n"
        f"mail: {uid}@example.org\n{kind}userPassword: {password}\n\n"
    )


def make_certificates(root: Path) -> Path:
    """A test CA and a server certificate for 127.0.0.1 signed by it (openssl), in `root`; the CA's path."""
    root.mkdir(parents=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=root, check=True, capture_output=True)

    key = ("-newkey", "rsa:2048", "-nodes")
    openssl("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=test CA")
    openssl("req", *key, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (root / "ext").write_text("subjectAltName=IP:127.0.0.1\n")
    sign = ("-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-extfile", "ext", "-days", "2")
    openssl("x509", "-req", "-in", "server.csr", *sign, "-out", "server.pem")
    return root / "ca.pem"


def start_slapd(
    root: Path,
    port: int,
    people: People,
    passwords: dict[str, str],
    reader_password: str,
    certificates: Path | None = None,
    scheme: str = "ldap",
) -> subprocess.Popen:
    (root / "db").mkdir(parents=True)
    conf = root / "slapd.conf"
    tls = (
        f"TLSCACertificateFile {certificates}/ca.pem\nTLSCertificateFile {certificates}/server.pem\n"
        f"TLSCertificateKeyFile {certificates}/server.key\n"
        if certificates
        else ""
    )
    conf.write_text(
        tls + "include /etc/ldap/schema/core.schema\ninclude /etc/ldap/schema/cosine.schema\n"
        "include /etc/ldap/schema/inetorgperson.schema\n"
        f"pidfile {root}/slapd.pid\nmodulepath /usr/lib/ldap\nmoduleload back_mdb\n"
        f'database mdb\nsuffix "{SUFFIX}"\nrootdn "cn=root,{SUFFIX}"\ndirectory {root}/db\nmaxsize 10485760\n'
        "access to attrs=userPassword by anonymous auth by * none\n"
        f'access to * by dn.exact="{READER}" read by self read by * none\n'
    )
    tree = (
        f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: callsight\no: callsight test\n\n"
        f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n\n"
        f"dn: {READER}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: reader\n"
        f"userPassword: {reader_password}\n\n"
    )
    tree += "".join(person(uid, pw, uid != people.excluded) for uid, pw in passwords.items())
    members = "".join(f"member: uid={uid},{PEOPLE}\n" for uid in (people.leader, people.member, people.outsider))
    tree += f"dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n\n"
    tree += f"dn: {GROUP}\nobjectClass: groupOfNames\ncn: Vertrieb Süd\n{members}\n"
    (root / "tree.ldif").write_text(tree)
    subprocess.run([str(SLAPADD), "-f", str(conf), "-l", str(root / "tree.ldif")], check=True, capture_output=True)
    return subprocess.Popen(
        [str(SLAPD), "-h", f"{scheme}://127.0.0.1:{port}/", "-f", str(conf), "-d", "0"],
        stdout=(root / "slapd.log").open("wb"),
        stderr=subprocess.STDOUT,
    )


@dataclass
class LdapSite:
    url: str  # the sibling Superset with CALLSIGHT_AUTH=ldap
    server: SupersetServer
    people: People
    passwords: dict[str, str] = field(repr=False)
    admin: SupersetClient
    log: Path
    bind_password: str = field(repr=False)
    ldap_env: dict[str, str] = field(repr=False)


@pytest.fixture(scope="module")
def ldap_site(superset_server: SupersetServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LdapSite]:
    require_service(SLAPD.exists() and SLAPADD.exists(), "Debian's slapd (apt-get install slapd ldap-utils)")
    require_service(
        (superset_server.site.settings.superset_venv / "lib").exists()
        and any((superset_server.site.settings.superset_venv / "lib").glob("python3*/site-packages/ldap")),
        "python-ldap in the Superset venv (make venvs: superset/requirements.txt)",
    )
    directory = load_directory(superset_server.site.settings.effective_directory_path)
    leader, group = group_leader(superset_server)
    member = next(m for g in directory.groups if g.name == group for m in g.members if m not in g.leaders + g.deputies)
    excluded = next(u.username for u in directory.users if u.username not in {leader, member, *directory.admins})
    suffix = uuid.uuid4().hex[:6]
    people = People(leader, member, excluded, f"outsider{suffix}", f"leaver{suffix}")
    passwords = {uid: secrets.token_urlsafe(12) for uid in vars(people).values()}
    passwords["admin"] = secrets.token_urlsafe(12)  # an AD account named like the bootstrap admin
    admin = SupersetClient(superset_server.url).login("admin", superset_server.admin_password)
    roles = {r["name"]: r["id"] for r in admin.list_all("security/roles")}
    # Someone who left: provisioning deactivated their Superset user; AD still knows them.
    leaver_id = admin.post(
        "/api/v1/security/users/",
        {
            "first_name": "Left",
            "last_name": "Company",
            "username": people.leaver,
            "email": f"{people.leaver}@example.org",
            "active": False,
            "roles": [roles[ROLE_VIEWER]],
            "password": secrets.token_urlsafe(16),
        },
    )["id"]
    port = free_port()
    root = tmp_path_factory.mktemp("ldap") / "slapd"
    bind_password = secrets.token_urlsafe(12)
    slapd = start_slapd(root, port, people, passwords, bind_password)
    secret = root.parent / "bind-password"
    secret.write_text(bind_password + "\n")
    secret.chmod(0o600)
    env = {
        "CALLSIGHT_AUTH": "ldap",
        "CALLSIGHT_LDAP_URL": f"ldap://127.0.0.1:{port}",
        "CALLSIGHT_LDAP_ALLOW_PLAIN": "1",
        "CALLSIGHT_LDAP_BIND_DN": READER,
        "CALLSIGHT_LDAP_BIND_PASSWORD_FILE": str(secret),
        "CALLSIGHT_LDAP_SEARCH_BASE": PEOPLE,
        "CALLSIGHT_LDAP_USERNAME_ATTRIBUTE": "uid",
        "CALLSIGHT_LDAP_FILTER": f"(employeeType={ALLOWED})",
        "CALLSIGHT_AUTH_RATE_LIMIT": "1000 per second",
        "CALLSIGHT_AUTH_ACCOUNT_RATE_LIMIT": "1000 per second",
    }
    try:
        deadline = time.monotonic() + 20
        while not (root / "slapd.pid").exists():
            assert slapd.poll() is None and time.monotonic() < deadline, (root / "slapd.log").read_text()
            time.sleep(0.1)
        with superset_server.sibling("superset-ldap.log", **env) as url:
            yield LdapSite(
                url,
                superset_server,
                people,
                passwords,
                admin,
                superset_server.site.settings.log_dir / "superset-ldap.log",
                bind_password,
                {k: v for k, v in env.items() if k.startswith("CALLSIGHT_LDAP_")},
            )
    finally:
        slapd.terminate()
        slapd.wait(timeout=20)
        admin.delete(f"/api/v1/security/users/{leaver_id}")
        shutil.rmtree(root / "db", ignore_errors=True)


def rest_login(url: str, username: str, password: str, provider: str = "ldap") -> requests.Response:
    return requests.post(
        f"{url}/api/v1/security/login",
        json={"username": username, "password": password, "provider": provider, "refresh": False},
        timeout=60,
    )


def ldap_client(url: str, username: str, password: str) -> SupersetClient:
    """SupersetClient logged in over the REST login with provider "ldap"."""
    r = rest_login(url, username, password)
    assert r.status_code == 200, (username, r.status_code, r.text[:200])
    client = SupersetClient(url)
    client.session.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
    client.session.headers["X-CSRFToken"] = client.get("/api/v1/security/csrf_token/")["result"]
    client.session.headers["Referer"] = url
    client.username = username
    return client


def rows_per_agent(client: SupersetClient, table: str) -> dict[str, int]:
    metric = ROW_COUNT_METRIC[table]
    data = client.chart_data(
        {
            "datasource": {"id": dataset_id(client, table), "type": "table"},
            "force": True,
            "queries": [{"metrics": [metric], "columns": ["agent_username"], "row_limit": 10000}],
            "result_format": "json",
            "result_type": "full",
        }
    )
    return {r["agent_username"]: r[metric] for r in data["result"][0]["data"]}


def all_rows(site: LdapSite, table: str) -> dict[str, int]:
    return rows_per_agent(site.admin, table)


def test_directory_users_log_in_over_rest_with_their_ldap_password_and_see_what_the_directory_allows(
    ldap_site: LdapSite,
) -> None:
    p = ldap_site.people
    for viewer in (p.leader, p.member):
        client = ldap_client(ldap_site.url, viewer, ldap_site.passwords[viewer])
        assert client.get("/api/v1/me/")["result"]["username"] == viewer
        mine = visible_agents(ldap_site.server, viewer)
        assert mine is not None and viewer in mine
        for table in DASHBOARD_DATASETS:
            want = {a: n for a, n in all_rows(ldap_site, table).items() if a in mine}
            assert rows_per_agent(client, table) == want, (viewer, table)
    # The leader's group is visible to the leader: more agents than the member's own.
    leader = ldap_client(ldap_site.url, p.leader, ldap_site.passwords[p.leader])
    assert len(rows_per_agent(leader, "dashboard_calls")) > 1


def test_wrong_passwords_excluded_accounts_outsiders_and_leavers_are_refused(ldap_site: LdapSite) -> None:
    p, pw = ldap_site.people, ldap_site.passwords
    assert rest_login(ldap_site.url, p.member, pw[p.member] + "x").status_code == 401
    assert rest_login(ldap_site.url, p.member, "").status_code in (400, 401)
    assert rest_login(ldap_site.url, p.member, pw[p.leader]).status_code == 401  # someone else's password
    # The LDAP filter leaves them out (a disabled AD account, not in the allowed group): refused although
    # the password is right and the org directory knows them.
    assert rest_login(ldap_site.url, p.excluded, pw[p.excluded]).status_code == 401
    # LDAP knows them, the org directory does not: no Superset user, no login, and none is created.
    assert rest_login(ldap_site.url, p.outsider, pw[p.outsider]).status_code == 401
    assert not list(ldap_site.admin.list_all("security/users", [("username", "eq", p.outsider)]))
    # Left the directory: provisioning deactivated them, whatever LDAP says.
    assert rest_login(ldap_site.url, p.leaver, pw[p.leaver]).status_code == 401
    form = FormLogin(ldap_site.url)
    assert form(p.member, pw[p.member] + "x") == "failed"
    assert form(p.outsider, pw[p.outsider]) == "failed"
    assert form(p.leaver, pw[p.leaver]) == "failed"
    assert form(p.member, pw[p.member]) == "ok"


def test_any_case_of_a_name_is_the_one_directory_user(ldap_site: LdapSite) -> None:
    p = ldap_site.people
    users_before = {u["id"] for u in ldap_site.admin.list_all("security/users")}
    ids = set()
    for typed in (p.member, p.member.upper(), p.member.title(), f" {p.member.upper()} "):
        me = ldap_client(ldap_site.url, typed, ldap_site.passwords[p.member]).get("/api/v1/me/")["result"]
        assert me["username"] == p.member
        ids.add(me["id"])
    assert len(ids) == 1
    assert FormLogin(ldap_site.url)(p.leader.upper(), ldap_site.passwords[p.leader]) == "ok"
    assert {u["id"] for u in ldap_site.admin.list_all("security/users")} == users_before


def test_superset_passwords_serve_the_bootstrap_admin_alone(ldap_site: LdapSite) -> None:
    server, p = ldap_site.server, ldap_site.people
    # The suite's members' password is in Superset's metadata, but with LDAP logins it opens nothing.
    assert rest_login(ldap_site.url, p.member, server.user_password, provider="db").status_code == 401
    assert rest_login(ldap_site.url, p.member.upper(), server.user_password, provider="db").status_code == 401
    # Provisioning and the night's capture log in as the bootstrap admin, by its Superset password, over
    # REST and in the form; the AD account of that name never becomes the admin, whichever way it tries.
    assert rest_login(ldap_site.url, "admin", server.admin_password, provider="db").status_code == 200
    assert FormLogin(ldap_site.url)("admin", server.admin_password) == "ok"
    ad_admin = ldap_site.passwords["admin"]
    assert ldap_client(ldap_site.url, p.leader, ldap_site.passwords[p.leader]), "LDAP answers"
    assert FormLogin(ldap_site.url)("admin", ad_admin) == "failed"
    assert FormLogin(ldap_site.url)("Admin", ad_admin) == "failed"
    assert rest_login(ldap_site.url, "admin", ad_admin).status_code == 401
    assert rest_login(ldap_site.url, "admin", ad_admin, provider="db").status_code == 401


def test_provisioning_with_ldap_logins_creates_users_without_a_known_password(ldap_site: LdapSite) -> None:
    server = ldap_site.server
    directory = load_directory(server.site.settings.effective_directory_path)
    newcomer = f"neu{uuid.uuid4().hex[:6]}"
    grown = Directory.model_validate(
        {
            **directory.model_dump(),
            "users": [*directory.model_dump()["users"], User(username=newcomer, name="Neu Ling")],
        }
    )
    admin = SupersetClient(ldap_site.url).login("admin", server.admin_password)
    roles = {r["name"]: r["id"] for r in admin.list_all("security/roles")}
    demo = server.user_password
    provisioner = Provisioner(admin, grown, server.site.settings.served_db, demo, "admin", ldap_logins=True)
    provisioner.sync_users(roles)
    try:
        assert provisioner.report.users_created == [newcomer]
        # Not the demo password, on the server that still takes Superset's passwords either.
        for url in (server.url, ldap_site.url):
            assert rest_login(url, newcomer, demo, provider="db").status_code == 401
    finally:
        for u in admin.list_all("security/users", [("username", "eq", newcomer)]):
            admin.delete(f"/api/v1/security/users/{u['id']}")


def test_a_leader_logs_in_on_the_login_page_in_chromium_and_sees_their_agents(ldap_site: LdapSite) -> None:
    from .browser import bootstrap, chromium, login, wait_for

    p = ldap_site.people
    with chromium() as driver:
        login(driver, ldap_site.url, p.leader.upper(), ldap_site.passwords[p.leader])
        driver.get(f"{ldap_site.url}/superset/welcome/")
        user = wait_for(lambda: bootstrap(driver).get("user"), 30, "the welcome page")
        assert user["username"] == p.leader
        web = requests.Session()
        for cookie in driver.get_cookies():
            web.cookies.set(cookie["name"], cookie["value"])
        client = SupersetClient(ldap_site.url)
        client.session = web
        web.headers["X-CSRFToken"] = client.get("/api/v1/security/csrf_token/")["result"]
        web.headers["Referer"] = ldap_site.url
        mine = visible_agents(ldap_site.server, p.leader)
        want = {a: n for a, n in all_rows(ldap_site, "dashboard_calls").items() if a in mine}
        assert rows_per_agent(client, "dashboard_calls") == want
    with chromium() as driver:
        driver.get(f"{ldap_site.url}/login/")
        with pytest.raises(TimeoutError):
            login(driver, ldap_site.url, p.outsider, ldap_site.passwords[p.outsider])


def test_no_ldap_password_reaches_the_server_log(ldap_site: LdapSite) -> None:
    text = ldap_site.log.read_text(errors="replace") if ldap_site.log.exists() else ""
    assert text, "the sibling wrote its log"
    for secret in (ldap_site.bind_password, *ldap_site.passwords.values()):
        assert secret not in text
    assert os.environ.get("CALLSIGHT_LDAP_BIND_PASSWORD") is None


def test_directory_from_ldap_drafts_users_and_groups_for_the_admin_to_finish(
    ldap_site: LdapSite, capsys: pytest.CaptureFixture
) -> None:
    import yaml

    from callsight.cli.main import build_parser
    from callsight.site.settings import Settings

    # The command as `callsight` parses it, with settings from an environment of its own (main() would put
    # the bind password into this process's environment, where the next sibling would find it twice).
    args = build_parser().parse_args(["directory-from-ldap", "--group", GROUP])
    settings = Settings.from_env({"CALLSIGHT_HOME": str(ldap_site.server.site.home), **ldap_site.ldap_env})
    assert args.func(settings, args) == 0
    out, err = capsys.readouterr()
    draft = yaml.safe_load(out)
    p = ldap_site.people
    # The LDAP filter leaves nobody of this group out but the filtered; names in the directory's case.
    assert [u["username"] for u in draft["users"]] == sorted([p.leader, p.member, p.outsider])
    assert all(u["email"] == f"{u['username']}@example.org" for u in draft["users"])
    (group,) = draft["groups"]
    assert group["name"] == "Vertrieb Süd" and group["members"] == sorted([p.leader, p.member, p.outsider])
    assert group["leaders"] == [] and not group["journal_visible_to_leader"] and not group["journal_visible_to_group"]
    assert out.startswith("# Org directory draft") and ldap_site.bind_password not in out + err
    Directory.model_validate({k: v for k, v in draft.items()})  # a valid directory once reviewed


@pytest.fixture(scope="module")
def tls_ldap(ldap_site: LdapSite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """A second slapd, with a certificate from a test CA, for StartTLS: (port, the CA's file)."""
    require_service(shutil.which("openssl") is not None, "openssl (apt-get install openssl)")
    root = tmp_path_factory.mktemp("ldap-tls")
    ca = make_certificates(root / "pki")
    port = free_port()
    slapd = start_slapd(root / "slapd", port, ldap_site.people, ldap_site.passwords, ldap_site.bind_password, ca.parent)
    try:
        deadline = time.monotonic() + 20
        while not (root / "slapd" / "slapd.pid").exists():
            assert slapd.poll() is None and time.monotonic() < deadline, (root / "slapd" / "slapd.log").read_text()
            time.sleep(0.1)
        yield port, ca
    finally:
        slapd.terminate()
        slapd.wait(timeout=20)


def test_starttls_logs_in_with_the_ca_file_and_refuses_a_server_it_cannot_verify(
    ldap_site: LdapSite, tls_ldap: tuple[int, Path]
) -> None:
    port, ca = tls_ldap
    p = ldap_site.people
    env = {k: v for k, v in ldap_site.ldap_env.items() if k != "CALLSIGHT_LDAP_ALLOW_PLAIN"}
    env |= {
        "CALLSIGHT_AUTH": "ldap",
        "CALLSIGHT_LDAP_URL": f"ldap://127.0.0.1:{port}",
        "CALLSIGHT_LDAP_STARTTLS": "1",
        "CALLSIGHT_LDAP_ALLOW_PLAIN": "0",
        "CALLSIGHT_AUTH_RATE_LIMIT": "1000 per second",
        "CALLSIGHT_AUTH_ACCOUNT_RATE_LIMIT": "1000 per second",
    }
    with ldap_site.server.sibling("superset-ldap-tls.log", **env, CALLSIGHT_LDAP_CA_FILE=str(ca)) as url:
        assert rest_login(url, p.member, ldap_site.passwords[p.member]).status_code == 200
        assert rest_login(url, p.member, ldap_site.passwords[p.member] + "x").status_code == 401
    # Without the CA the server's certificate is not trusted: nobody logs in (no fallback to plain text).
    with ldap_site.server.sibling("superset-ldap-untrusted.log", **env, CALLSIGHT_LDAP_CA_FILE="") as url:
        assert rest_login(url, p.member, ldap_site.passwords[p.member]).status_code == 401
