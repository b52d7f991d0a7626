"""docs/operations.md, "Installing at a company", walked on this machine (issue 27): the guide's own command
blocks, read from the guide and run in order by a root shell, get a newcomer to an LDAP user's dashboard
behind nginx. What the walk types in between is what the guide tells the admin to do by hand (edit the
environment file, replace the names in nginx's sites, type a password), and only that.

The host is not changed for good: the guide's paths live in a sandbox root (tests/guide_machine.py maps
them, in command lines as in the installed files), and the commands that need systemd as PID 1 or would
install packages act there (systemctl, systemd-run, apt-get checks instead of installing). Everything else
is real: the `callsight` system user, `make venvs` with Debian's python3.11, PostgreSQL's role and
database, Redis, every unit started as its unit file says, slapd with LDAPS, nginx with TLS, chromium."""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import secrets
import shutil
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pytest
import requests
import yaml
from requests.adapters import HTTPAdapter

from callsight.bi.api import SupersetClient
from callsight.bi.assets import load_assets
from callsight.site.settings import REPO_ROOT, Settings

from . import guide_machine
from .browser import chromium, login, open_dashboard, screenshot, wait_for
from .conftest import free_port, reachable, require_service
from .test_dashboards import charts_of, dashboards
from .test_ldap import SLAPD, People, make_certificates, rows_per_agent, start_slapd
from .units import parse_env_file

pytestmark = [pytest.mark.slow, pytest.mark.superset]

GUIDE = REPO_ROOT / "docs" / "operations.md"
LOGS = Path("/tmp/callsight-guide-logs")  # the last walk's transcript and logs
PUBLIC_NAME = "callsight.example.com"
DAGSTER_NAME = "dagster.example.com"
LDAP_SUFFIX = "dc=callsight,dc=test"
LDAP_PEOPLE = f"ou=people,{LDAP_SUFFIX}"
LDAP_READER = f"cn=reader,{LDAP_SUFFIX}"
LDAP_GROUP = f"cn=vertrieb-sued,ou=groups,{LDAP_SUFFIX}"


@dataclass
class Step:
    number: int
    title: str
    blocks: list[tuple[str, str]]  # (language, text) of each fenced block, in order

    def bash(self) -> list[str]:
        return [text for lang, text in self.blocks if lang == "bash"]

    def of(self, lang: str) -> list[str]:
        return [text for l_, text in self.blocks if l_ == lang]


def guide_steps(text: str) -> list[Step]:
    """The numbered steps of "Installing at a company" with their fenced blocks (indented ones too)."""
    section = text.split("## Installing at a company", 1)[1].split("### Upgrading", 1)[0]
    parts = re.split(r"^### (\d+)\. (.*)$", section, flags=re.M)
    steps = []
    for number, title, body in zip(parts[1::3], parts[2::3], parts[3::3], strict=True):
        blocks = [
            (m.group(2), textwrap.dedent(m.group(3)))
            for m in re.finditer(r"^( *)```(\w*)\n(.*?)^\1```", body, flags=re.M | re.S)
        ]
        steps.append(Step(int(number), title.strip(), blocks))
    return steps


def settings_lines(block: str) -> dict[str, str]:
    lines = [line.split("#", 1)[0].strip() for line in block.splitlines()]
    return dict(line.split("=", 1) for line in lines if line)


@dataclass
class Walk:
    root: Path
    env: dict[str, str] = field(repr=False)
    transcript: list[str] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict, repr=False)
    people: People | None = None
    ca: Path | None = None
    slapd: subprocess.Popen | None = None
    night: str = ""  # what the first night printed

    def path(self, guide_path: str) -> Path:
        return Path(guide_machine.mapped(guide_path, self.root))

    def run(self, step: int, block: str, *, cwd: str = "/opt/callsight", stdin: str | None = None) -> str:
        """One of the guide's bash blocks as the root shell runs it; stops the walk on the first failure."""
        script = guide_machine.mapped(block, self.root)
        r = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=self.path(cwd),
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=900,
        )
        self.transcript.append(f"## step {step}\n$ {block}\n{r.stdout}{r.stderr}")
        (self.root / "guide-walk.log").write_text("\n".join(self.transcript))
        assert r.returncode == 0, (
            f"step {step} failed ({r.returncode}):\n$ {block}\n{r.stdout[-3000:]}{r.stderr[-3000:]}"
        )
        return r.stdout

    def edit_env(self, values: dict[str, str]) -> None:
        """The admin edits /etc/callsight/callsight.env: existing lines changed in place, new ones added."""
        path = self.path("/etc/callsight/callsight.env")
        lines = path.read_text().splitlines()
        left = dict(values)
        for i, line in enumerate(lines):
            key = line.split("=", 1)[0].strip()
            if "=" in line and not line.lstrip().startswith("#") and key in left:
                lines[i] = f"{key}={left.pop(key)}"
        lines += [f"{k}={v}" for k, v in left.items()]
        path.write_text("\n".join(lines) + "\n")

    def env_file(self) -> dict[str, str]:
        return parse_env_file(self.path("/etc/callsight/callsight.env").read_text())


def shims(root: Path) -> Path:
    """The commands guide_machine stands in for, first on the root shell's PATH."""
    directory = root / "shims"
    directory.mkdir()
    script = Path(guide_machine.__file__)
    for name in guide_machine.COMMANDS:
        shim = directory / name
        shim.write_text(f'#!/bin/sh\nexec {os.sys.executable} {script} {name} "$@"\n')
        shim.chmod(0o755)
    return directory


def postgres(*sql: str) -> None:
    for statement in sql:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", "psql", "-q", "-c", statement], check=True, capture_output=True
        )


def nginx_tree(root: Path) -> None:
    """Debian's nginx package as installed (its /etc/nginx), without the default site on port 80."""
    shutil.copytree("/etc/nginx", root / "etc" / "nginx", symlinks=True)
    (root / "etc" / "nginx" / "sites-enabled" / "default").unlink(missing_ok=True)
    conf = root / "etc" / "nginx" / "nginx.conf"
    text = guide_machine.mapped(conf.read_text(), root)
    text = text.replace("/run/nginx.pid", str(root / "run" / "nginx.pid")).replace(
        "/var/log/nginx", str(root / "var" / "log" / "nginx")
    )
    conf.write_text(text)
    (root / "var" / "log" / "nginx").mkdir(parents=True)


def site_certificate(root: Path) -> None:
    """The company's certificate for both names (self-signed here), where the sites look for it."""
    directory = root / "etc" / "ssl" / "callsight"
    directory.mkdir(parents=True)
    san = f"subjectAltName=DNS:{PUBLIC_NAME},DNS:{DAGSTER_NAME}"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN={PUBLIC_NAME}",
            "-addext",
            san,
            "-keyout",
            str(directory / "privkey.pem"),
            "-out",
            str(directory / "fullchain.pem"),
        ],
        check=True,
        capture_output=True,
    )


def ldap_people(directory: dict) -> People:
    groups = directory["groups"]
    group = next(g for g in groups if g.get("leaders") and [m for m in g["members"] if m not in g["leaders"]])
    leader = group["leaders"][0]
    member = next(m for m in group["members"] if m not in group["leaders"] + group.get("deputies", []))
    others = [u["username"] for u in directory["users"] if u["username"] not in {leader, member}]
    return People(leader, member, others[0], "outsider", "leaver")


def wait_http(url: str, timeout: float = 300) -> None:
    def up() -> bool:
        try:
            return requests.get(url, timeout=5).status_code == 200
        except requests.RequestException:
            return False

    wait_for(up, timeout, url, interval=2)


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Walk]:
    require_service(os.geteuid() == 0, "root (the guide's commands run as root)")
    for tool in ("/usr/sbin/nginx", "/usr/bin/htpasswd", "/usr/bin/chromium", str(SLAPD), "/usr/bin/psql"):
        require_service(Path(tool).exists(), f"{tool} (.ci/run installs the guide's packages)")
    require_service(reachable(("127.0.0.1", 6379)), "Redis on 127.0.0.1:6379")
    require_service(not reachable(("127.0.0.1", 443)) and not reachable(("127.0.0.1", 80)), "ports 443 and 80 free")
    # A root shell's umask, whatever an earlier test in this process set (callsight's code sets 0077).
    umask = os.umask(0o022)
    # Outside pytest's 0700 temporary directories: the service user must reach its paths.
    root = Path(tempfile.mkdtemp(prefix="callsight-guide-", dir="/tmp"))
    root.chmod(0o755)
    for sub in ("opt", "var/lib", "etc/systemd/system", "run", "root", "srv"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": f"{shims(root)}:{guide_machine.SYSTEMD_PATH}",
        "HOME": str(root / "root"),
        "LANG": "C.UTF-8",
        "GUIDE_ROOT": str(root),
        "GUIDE_HTPASSWD": secrets.token_urlsafe(12),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    walk = Walk(root, env)
    walk.passwords["alice"] = env["GUIDE_HTPASSWD"]
    # The user `callsight` is this test's: a process left by an earlier walk would keep useradd from moving it.
    subprocess.run(["pkill", "-KILL", "-u", "callsight"], capture_output=True)
    postgres("DROP DATABASE IF EXISTS superset", "DROP ROLE IF EXISTS callsight")
    try:
        walk_the_guide(walk, tmp_path_factory)
        yield walk
    finally:
        keep_logs(root, LOGS)
        if os.environ.get("CALLSIGHT_GUIDE_KEEP") != "1":  # "1": a failed walk stays up for debugging
            guide_machine.stop_everything(root)
            if walk.slapd is not None:
                walk.slapd.terminate()
                walk.slapd.wait(timeout=20)
            time.sleep(2)
            postgres("DROP DATABASE IF EXISTS superset WITH (FORCE)", "DROP ROLE IF EXISTS callsight")
            shutil.rmtree(root, ignore_errors=True)
        os.umask(umask)


def keep_logs(root: Path, into: Path) -> None:
    """The walk's transcript and every log, kept when the sandbox goes (the last walk's only)."""
    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    for source in (root / "guide-walk.log", root / "var" / "log", root / "var" / "lib" / "callsight" / "logs"):
        if source.is_dir():
            shutil.copytree(source, into / source.name, dirs_exist_ok=True)
        elif source.exists():
            shutil.copy(source, into)


def walk_the_guide(walk: Walk, tmp_path_factory: pytest.TempPathFactory) -> None:
    steps = guide_steps(GUIDE.read_text())
    assert [s.number for s in steps] == list(range(1, 14)), [s.title for s in steps]
    s = {step.number: step for step in steps}
    # 1. packages, 2. the user, 3. the code and the virtual environments (Debian's python3.11).
    walk.run(1, s[1].bash()[0], cwd="/root")
    walk.run(2, s[2].bash()[0], cwd="/root")
    walk.run(3, s[3].bash()[0].replace("<your callsight repository>", str(REPO_ROOT)), cwd="/root")
    # 4. PostgreSQL, 5. Redis.
    walk.run(4, s[4].bash()[0])
    walk.run(5, s[5].bash()[0])
    # 6. the environment file, edited as the guide lists.
    walk.run(6, s[6].bash()[0])
    for number in (4, 5):  # the settings the guide shows are the example file's
        for key, value in settings_lines(s[number].of("text")[0]).items():
            assert walk.env_file()[key] == value, (number, key)
    walk.ports.update(web=free_port(), dagster=free_port(), smtp=free_port())
    walk.edit_env(
        {
            # This machine is shared with the rest of the suite: other ports and another queue.
            "CALLSIGHT_SUPERSET_BIND": f"127.0.0.1:{walk.ports['web']}",
            "CALLSIGHT_SUPERSET_URL": f"http://127.0.0.1:{walk.ports['web']}",
            "CALLSIGHT_WEBDRIVER_BASEURL": f"http://127.0.0.1:{walk.ports['web']}/",
            "CALLSIGHT_DAGSTER_BIND": f"127.0.0.1:{walk.ports['dagster']}",
            "CALLSIGHT_SUPERSET_WORKERS": "2",
            "CALLSIGHT_REDIS_URL": "redis://127.0.0.1:6379/13",
            "CALLSIGHT_CELERY_QUEUE": f"callsight-guide-{secrets.token_hex(4)}",
            # One dashboard warmed (each costs minutes a night at the demo's size), as docs/operations.md shows.
            "CALLSIGHT_CACHE_WARMUP": "management-summary",
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(walk.ports["smtp"]),
            "SMTP_STARTTLS": "false",
        }
    )
    # 7. the credentials.
    walk.run(7, s[7].bash()[0])
    # 8. the journal: the admin copies ProCall's SQLite journal (here: callsight's demo journal) with
    # copy-journal as the service user, then checks it.
    demo = walk.root / "srv" / "procall"
    subprocess.run(
        [str(REPO_ROOT / ".venv" / "bin" / "callsight"), "demo-data"],
        env={**os.environ, "CALLSIGHT_HOME": str(demo)},
        check=True,
        capture_output=True,
    )
    (demo / "demo" / "journal.sqlite").chmod(0o644)
    for d in (demo, demo / "demo"):
        d.chmod(0o755)
    walk.run(
        8,
        "install -d -o callsight -g callsight -m 0700 /var/lib/callsight/journal\n"
        "systemd-run --pty --wait --uid=callsight --gid=callsight -p WorkingDirectory=/var/lib/callsight "
        "-p EnvironmentFile=/etc/callsight/callsight.env -p UMask=0077 /opt/callsight/.venv/bin/callsight "
        f"copy-journal {demo / 'demo' / 'journal.sqlite'} /var/lib/callsight/journal/journal.sqlite",
    )
    # 9. the org directory and the policy (the demo's, as the guide makes them), before the check of step 8
    # which reads the policy's retention and the directory's private lines.
    walk.run(9, s[9].bash()[0])
    walk.run(8, s[8].bash()[0])
    # 10. LDAP logins: a slapd over LDAPS with the directory's people; the settings the guide names.
    directory = yaml.safe_load(walk.path("/etc/callsight/directory.yaml").read_text())
    walk.people = ldap_people(directory)
    walk.passwords.update({uid: secrets.token_urlsafe(12) for uid in vars(walk.people).values()})
    certificates = tmp_path_factory.mktemp("ldap-ca") / "certs"
    walk.ca = make_certificates(certificates)
    shutil.copy(walk.ca, walk.path("/root/ad-ca.pem"))
    ldap_port = free_port()
    bind_password = secrets.token_urlsafe(12)
    slapd_root = tmp_path_factory.mktemp("slapd") / "slapd"
    people_passwords = {uid: walk.passwords[uid] for uid in vars(walk.people).values()}
    walk.slapd = start_slapd(slapd_root, ldap_port, walk.people, people_passwords, bind_password, certificates, "ldaps")
    wait_for(lambda: (slapd_root / "slapd.pid").exists(), 20, "slapd")
    shown = settings_lines(s[10].of("text")[0])
    ours = {
        "CALLSIGHT_AUTH": "ldap",
        "CALLSIGHT_LDAP_URL": f"ldaps://127.0.0.1:{ldap_port}",
        "CALLSIGHT_LDAP_CA_FILE": shown["CALLSIGHT_LDAP_CA_FILE"],
        "CALLSIGHT_LDAP_BIND_DN": LDAP_READER,
        "CALLSIGHT_LDAP_SEARCH_BASE": LDAP_PEOPLE,
        "CALLSIGHT_LDAP_USERNAME_ATTRIBUTE": "uid",
        "CALLSIGHT_LDAP_FILTER": "(employeeType=callsight)",
    }
    assert set(shown) == set(ours)
    walk.edit_env(ours)
    walk.run(10, s[10].bash()[0], stdin=bind_password + "\n")
    (dropin,) = s[10].of("ini")
    override = walk.path("/etc/systemd/system/callsight-superset-web.service.d")
    override.mkdir(parents=True)
    (override / "override.conf").write_text(dropin)  # what `systemctl edit` saves
    draft_block = re.sub(r'(--group "[^"]*" ?)+', f'--group "{LDAP_GROUP}" ', s[10].bash()[1])
    walk.run(10, draft_block)
    draft = yaml.safe_load(walk.path("/root/directory-draft.yaml").read_text())
    assert {walk.people.leader, walk.people.member} <= {u["username"] for u in draft["users"]}
    # 11. the units.
    walk.run(11, s[11].bash()[0])
    wait_http(f"http://127.0.0.1:{walk.ports['web']}/health")
    # 12. nginx on 443 and 80 as in the guide; the admin puts the certificate in place, the units' ports of
    # this machine into the sites.
    nginx_tree(walk.root)
    site_certificate(walk.root)
    walk.run(12, s[12].bash()[0])
    for conf in ("callsight-superset.conf", "callsight-dagster.conf"):
        path = walk.path(f"/etc/nginx/sites-available/{conf}")
        text = guide_machine.mapped(path.read_text(), walk.root)
        text = text.replace("127.0.0.1:8088", f"127.0.0.1:{walk.ports['web']}")
        text = text.replace("127.0.0.1:3000", f"127.0.0.1:{walk.ports['dagster']}")
        path.write_text(text)
    walk.run(12, s[12].bash()[1])
    # 13. the first night, then the health check.
    walk.run(13, s[13].bash()[0])
    walk.night = walk.transcript[-1]
    walk.transcript.append(walk.run(13, s[13].bash()[1]))


# ---- what the newcomer has now ----------------------------------------------------------------------------


def test_the_walk_ran_every_step_and_the_health_check_says_ok(walk: Walk) -> None:
    steps = [int(m) for m in re.findall(r"^## step (\d+)$", "\n".join(walk.transcript), flags=re.M)]
    assert sorted(set(steps)) == list(range(1, 14))
    assert walk.transcript[-1].startswith("CALLSIGHT OK"), walk.transcript[-1]


def test_the_first_night_warmed_the_dashboards_for_every_visibility_set(walk: Walk) -> None:
    """With LDAP logins too: the capture logs the bootstrap admin in through the form by its own password.
    The dashboard warmed is the one CALLSIGHT_CACHE_WARMUP names."""
    warmed = re.search(
        r"cache warmed for (\d+) viewer\(s\) in [\d.]+ s: (\d+) results computed, \d+ already "
        r"cached, (\d+) failed; dashboards: ([\w, -]+)",
        walk.night,
    )
    assert warmed, walk.night[-3000:]
    viewers, computed, failed = map(int, warmed.groups()[:3])
    assert viewers > 1 and computed > 0 and failed == 0, warmed.group(0)
    assert warmed.group(4).strip() == "management-summary", warmed.group(0)
    captured = json.loads(walk.path("/var/lib/callsight/superset/warm-requests.json").read_text())["requests"]
    board = dashboards(load_assets())["management-summary"]
    assert len({r["slice_id"] for r in captured} - {None}) == len(charts_of(board)), "only its charts were captured"


def test_every_service_runs_as_the_callsight_user_and_the_home_is_its_own(walk: Walk) -> None:
    user = pwd.getpwnam("callsight")
    units = guide_machine.state(walk.root)
    assert set(units) == {p.name for p in (REPO_ROOT / "deploy" / "systemd").glob("*.service")}
    for name, pid in units.items():
        status = Path(f"/proc/{pid}/status").read_text()
        uids = re.search(r"^Uid:\s+(.*)$", status, flags=re.M).group(1).split()
        assert set(map(int, uids)) == {user.pw_uid}, name
    home = walk.path("/var/lib/callsight")
    assert home.stat().st_uid == user.pw_uid and home.stat().st_mode & 0o777 == 0o700
    foreign = [p for p in home.rglob("*") if p.stat().st_uid != user.pw_uid]
    assert foreign == []
    assert walk.path("/etc/callsight/callsight.env").stat().st_gid == grp.getgrnam("callsight").gr_gid


def visible_agents(walk: Walk, viewer: str) -> set[str]:
    served = Settings.from_env({"CALLSIGHT_HOME": str(walk.path("/var/lib/callsight"))}).served_db
    with duckdb.connect(str(served), read_only=True) as con:
        rows = con.execute(
            "SELECT agent_username FROM security.viewer_agents WHERE viewer_username = ?", [viewer]
        ).fetchall()
    return {r[0] for r in rows}


def test_an_ldap_group_leader_opens_the_dashboard_through_nginx(walk: Walk) -> None:
    leader = walk.people.leader
    url = f"https://{PUBLIC_NAME}"
    resolve = f"--host-resolver-rules=MAP {PUBLIC_NAME} 127.0.0.1, MAP {DAGSTER_NAME} 127.0.0.1"
    with chromium((resolve, "--ignore-certificate-errors")) as driver:
        try:
            login(driver, url, leader, walk.passwords[leader])
            charts = open_dashboard(driver, url, "agenten", n_charts=6)
        finally:  # kept with the logs (keep_logs)
            screenshot(driver, walk.root / "var" / "log" / "browser" / "dashboard.png")
            (walk.root / "var" / "log" / "browser" / "dashboard.html").write_text(driver.page_source)
    assert {c.name for c in charts} >= {"Telefonate je Agent", "Anrufliste"}


class CompanyName(HTTPAdapter):
    """Connects to 127.0.0.1 but speaks TLS to one of the company's names: SNI and the certificate's name."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__()

    def init_poolmanager(self, *args: object, **kwargs: object) -> None:
        super().init_poolmanager(*args, **kwargs, server_hostname=self.name, assert_hostname=self.name)


def through_nginx(walk: Walk, name: str) -> requests.Session:
    """requests to nginx on 443 for one of the company's names, checking its certificate."""
    session = requests.Session()
    session.trust_env = False  # no proxies, and this site's certificate rather than REQUESTS_CA_BUNDLE
    session.verify = str(walk.path("/etc/ssl/callsight/fullchain.pem"))
    session.mount("https://", CompanyName(name))
    session.headers.update({"Host": name, "Referer": f"https://{name}/"})
    return session


def api_client(walk: Walk, username: str, password: str, provider: str) -> SupersetClient:
    client = SupersetClient("https://127.0.0.1")
    client.session = through_nginx(walk, PUBLIC_NAME)
    r = client.session.post(
        "https://127.0.0.1/api/v1/security/login",
        json={"username": username, "password": password, "provider": provider, "refresh": False},
        timeout=60,
    )
    assert r.status_code == 200, (username, r.status_code, r.text[:300])
    client.session.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
    client.session.headers["X-CSRFToken"] = client.get("/api/v1/security/csrf_token/")["result"]
    client.username = username
    return client


def calls_per_agent(client: SupersetClient) -> dict[str, int]:
    return rows_per_agent(client, "dashboard_calls")


def test_ldap_users_see_through_nginx_exactly_the_calls_the_org_directory_allows(walk: Walk) -> None:
    password = walk.path("/etc/callsight/credentials/superset-admin-password").read_text().strip()
    admin = api_client(walk, walk.env_file()["SUPERSET_ADMIN_USERNAME"], password, "db")
    everyone = calls_per_agent(admin)
    for viewer in (walk.people.leader, walk.people.member):
        mine = visible_agents(walk, viewer)
        assert viewer in mine
        seen = calls_per_agent(api_client(walk, viewer, walk.passwords[viewer], "ldap"))
        assert seen == {a: n for a, n in everyone.items() if a in mine}, viewer
    assert len(calls_per_agent(api_client(walk, walk.people.leader, walk.passwords[walk.people.leader], "ldap"))) > 1
    # The LDAP filter leaves out a disabled account; a wrong password is refused.
    for who, password in ((walk.people.excluded, walk.passwords[walk.people.excluded]), (walk.people.member, "wrong")):
        r = through_nginx(walk, PUBLIC_NAME).post(
            "https://127.0.0.1/api/v1/security/login",
            json={"username": who, "password": password, "provider": "ldap", "refresh": False},
            timeout=60,
        )
        assert r.status_code == 401, (who, r.status_code)


def test_a_refused_anonymous_request_leaves_the_session_alone(walk: Walk) -> None:
    """The login page's parting log request must not answer with the anonymous session: arriving after the
    login's answer it logged the user out again (superset_config.keep_the_session_of_refused_requests)."""
    session = through_nginx(walk, PUBLIC_NAME)
    assert "session=" in session.get("https://127.0.0.1/login/", timeout=60).headers.get("Set-Cookie", "")
    refused = session.post(
        "https://127.0.0.1/superset/log/?explode=events", data={"events": "[]"}, timeout=60, allow_redirects=False
    )
    assert refused.status_code == 302 and "/login/" in refused.headers["Location"]
    assert "Set-Cookie" not in refused.headers


def test_the_dagster_ui_behind_nginx_asks_the_admins_login(walk: Walk) -> None:
    session = through_nginx(walk, DAGSTER_NAME)
    assert session.get("https://127.0.0.1/server_info", timeout=60).status_code == 401
    ok = session.get("https://127.0.0.1/server_info", auth=("alice", walk.passwords["alice"]), timeout=60)
    assert ok.status_code == 200, ok.text[:200]
    plain = requests.get("http://127.0.0.1/", headers={"Host": PUBLIC_NAME}, allow_redirects=False, timeout=30)
    assert plain.status_code == 301 and plain.headers["Location"] == f"https://{PUBLIC_NAME}/"
