"""The server that the install guide's commands meet in tests/test_install_guide.py.

Run as `guide_machine.py <command> <args>` by the shims on the guide shell's PATH. Commands that would change
this host for good or need systemd as PID 1 act on a sandbox root ($GUIDE_ROOT) instead; the guide's paths
(/opt/callsight, /etc/callsight, ...) are mapped into it, in command lines as in the files the guide installs:

- apt-get: `install` checks that every package named is installed (CI installs them: .ci/run), never installs;
- useradd: the real one (an existing `callsight` gets its home moved to this walk's);
- systemctl: `enable --now redis-server` checks Redis answers; `enable --now callsight.target` starts the units
  the target wants as systemd would (User=, EnvironmentFile=, Environment= with %d, LoadCredential= into a
  private credentials directory, WorkingDirectory=, UMask=, ExecStartPre= then ExecStart=, drop-ins from
  `<unit>.d/`); `status` says whether they run; `reload nginx` starts the sandbox's nginx;
- systemd-run: runs the command as --uid/--gid with the -p properties above, and returns its exit code;
- htpasswd: the real one, typing the password ($GUIDE_HTPASSWD) at its prompt;
- nginx: the real one, on the sandbox's nginx.conf.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

if __package__:  # imported by the test
    from .units import parse_env_file, parse_unit
else:  # run by a shim as a script
    from units import parse_env_file, parse_unit

SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The guide's absolute paths that live in the sandbox.
MAPPED = (
    "/opt/callsight",
    "/var/lib/callsight",
    "/etc/callsight",
    "/etc/systemd/system",
    "/etc/nginx",
    "/etc/ssl/callsight",
    "/tmp/callsight-example",
    "/root",
)


def root() -> Path:
    return Path(os.environ["GUIDE_ROOT"])


def mapped(text: str, sandbox: Path | None = None) -> str:
    """The guide's paths in `text` moved into the sandbox (only whole path prefixes)."""
    base = str(sandbox or root())
    for prefix in MAPPED:
        text = text.replace(f"sqlite:///{prefix}", f"sqlite:///{base}{prefix}")  # a URL's absolute path
        text = re.sub(rf"(?<![\w./-]){re.escape(prefix)}(?=[/\s'\":;,)]|$)", base + prefix, text)
    return text


def state(sandbox: Path | None = None) -> dict:
    """The units started, by name: their main process ids."""
    path = (sandbox or root()) / "run" / "units.json"
    return json.loads(path.read_text()) if path.exists() else {}


def save_state(data: dict) -> None:
    (root() / "run" / "units.json").write_text(json.dumps(data, indent=1))


# ---- a service's process, as systemd starts it -------------------------------------------------------------


def credentials_dir(name: str, loads: list[str], uid: int, gid: int) -> Path:
    """LoadCredential=NAME:PATH copied into a directory only the service user may read (systemd: %d)."""
    directory = root() / "run" / "credentials" / name
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, mode=0o700)
    for load in loads:
        cred, _, source = load.partition(":")
        target = directory / cred
        shutil.copyfile(mapped(source), target)
        os.chown(target, uid, gid)
        target.chmod(0o400)
    os.chown(directory, uid, gid)
    directory.chmod(0o500)
    return directory


def service_env(props: dict[str, list[str]], user: pwd.struct_passwd, credentials: Path) -> dict[str, str]:
    env = {"PATH": SYSTEMD_PATH, "LANG": "C.UTF-8", "HOME": user.pw_dir, "USER": user.pw_name}
    env["LOGNAME"] = user.pw_name
    env["CREDENTIALS_DIRECTORY"] = str(credentials)
    for path in props.get("EnvironmentFile", []):
        env.update({k: mapped(v) for k, v in parse_env_file(Path(mapped(path)).read_text()).items()})
    for line in props.get("Environment", []):
        key, _, value = line.partition("=")
        env[key] = mapped(value.replace("%d", str(credentials)))
    return env


def as_user(uid: int, gid: int, umask: int):
    def switch() -> None:
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
        os.umask(umask)

    return switch


def lookup(props: dict[str, list[str]], user_key: str, group_key: str) -> tuple[pwd.struct_passwd, int]:
    import grp

    user = pwd.getpwnam(props.get(user_key, ["root"])[-1])
    group = props.get(group_key, [None])[-1]
    return user, grp.getgrnam(group).gr_gid if group else user.pw_gid


# ---- commands ----------------------------------------------------------------------------------------------


def apt_get(args: list[str]) -> int:
    if args[:1] == ["update"]:
        return 0
    packages = [a for a in args[1:] if not a.startswith("-")]
    missing = [p for p in packages if subprocess.run(["dpkg", "-s", p], capture_output=True).returncode != 0]
    (root() / "run" / "apt-packages.json").write_text(json.dumps(packages))
    if missing:
        print(f"guide machine: not installed here (add them to .ci/run): {' '.join(missing)}", file=sys.stderr)
        return 100
    return 0


def useradd(args: list[str]) -> int:
    name = args[-1]
    try:
        pwd.getpwnam(name)
    except KeyError:
        return subprocess.run(["/usr/sbin/useradd", *args]).returncode
    home = args[args.index("--home-dir") + 1] if "--home-dir" in args else None
    return subprocess.run(["/usr/sbin/usermod", "--home", home, name]).returncode if home else 0


def unit_props(name: str) -> dict[str, dict[str, list[str]]]:
    directory = root() / "etc" / "systemd" / "system"
    sections = parse_unit((directory / name).read_text())
    for dropin in sorted((directory / f"{name}.d").glob("*.conf")):
        for section, props in parse_unit(dropin.read_text()).items():
            for key, values in props.items():
                sections.setdefault(section, {}).setdefault(key, []).extend(values)
    return sections


def start_unit(name: str) -> int:
    service = unit_props(name)["Service"]
    user, gid = lookup(service, "User", "Group")
    credentials = credentials_dir(name, service.get("LoadCredential", []), user.pw_uid, gid)
    env = service_env(service, user, credentials)
    cwd = mapped(service.get("WorkingDirectory", [user.pw_dir])[-1])
    switch = as_user(user.pw_uid, gid, int(service.get("UMask", ["0022"])[-1], 8))
    log_dir = root() / "var" / "log" / "units"
    log_dir.mkdir(parents=True, exist_ok=True)
    log = (log_dir / f"{name}.log").open("ab")
    timeout = float(service.get("TimeoutStartSec", ["90"])[-1])
    for line in service.get("ExecStartPre", []):
        pre = subprocess.run(
            [mapped(w) for w in shlex.split(line)],
            env=env,
            cwd=cwd,
            preexec_fn=switch,
            stdout=log,
            stderr=log,
            timeout=timeout,
        )
        if pre.returncode != 0:
            print(f"guide machine: {name}: ExecStartPre failed ({pre.returncode}), see {log.name}", file=sys.stderr)
            return 1
    argv = [mapped(w) for w in shlex.split(service["ExecStart"][-1])]
    proc = subprocess.Popen(
        argv,
        env=env,
        cwd=cwd,
        preexec_fn=switch,
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    data = state()
    data[name] = proc.pid
    save_state(data)
    return 0


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return status != "Z"  # a zombie has ended"


def systemctl(args: list[str]) -> int:
    verb, rest = args[0], args[1:]
    if verb == "daemon-reload":
        return 0
    if verb == "enable" and rest[:1] == ["--now"]:
        target = rest[1]
        if target == "redis-server":
            return subprocess.run(["redis-cli", "-h", "127.0.0.1", "ping"], capture_output=True).returncode
        units = unit_props(target)["Unit"]
        for wanted in (w for line in units.get("Wants", []) for w in line.split()):
            if wanted in state() and alive(state()[wanted]):
                continue
            if start_unit(wanted) != 0:
                return 1
        return 0
    if verb == "status":
        running = state()
        units = {n: p for n, p in running.items() if n.startswith("callsight-")}
        for name, pid in sorted(units.items()):
            print(f"{name}: {'active (running)' if alive(pid) else 'failed'} pid {pid}")
        return 0 if units and all(alive(p) for p in units.values()) else 3
    if verb == "reload" and rest == ["nginx"]:
        pidfile = root() / "run" / "nginx.pid"
        running = pidfile.read_text().strip() if pidfile.exists() else ""  # `nginx -t` leaves it empty
        if running.isdigit() and alive(int(running)):
            return nginx(["-s", "reload"])
        return nginx([])
    print(f"guide machine: systemctl {shlex.join(args)} is not part of the walk", file=sys.stderr)
    return 1


def systemd_run(args: list[str]) -> int:
    props: dict[str, list[str]] = {}
    i = 0
    while i < len(args) and args[i].startswith("-"):
        arg = args[i]
        if arg == "-p":
            key, _, value = args[i + 1].partition("=")
            props.setdefault(key, []).append(value)
            i += 1
        elif arg.startswith(("--uid=", "--gid=")):
            props["User" if arg.startswith("--uid") else "Group"] = [arg.split("=", 1)[1]]
        elif arg not in ("--pty", "--pipe", "--wait", "--quiet"):
            print(f"guide machine: systemd-run {arg} is not part of the walk", file=sys.stderr)
            return 1
        i += 1
    user, gid = lookup(props, "User", "Group")
    name = f"run-{os.getpid()}"
    credentials = credentials_dir(name, props.get("LoadCredential", []), user.pw_uid, gid)
    try:
        env = service_env(props, user, credentials)
        cwd = mapped(props.get("WorkingDirectory", ["/"])[-1])
        argv = [mapped(w) for w in args[i:]]
        switch = as_user(user.pw_uid, gid, int(props.get("UMask", ["0022"])[-1], 8))
        return subprocess.run(argv, env=env, cwd=cwd, preexec_fn=switch).returncode
    finally:
        shutil.rmtree(credentials, ignore_errors=True)


def htpasswd(args: list[str]) -> int:
    return subprocess.run(["/usr/bin/htpasswd", "-i", *args], input=os.environ["GUIDE_HTPASSWD"].encode()).returncode


def nginx(args: list[str]) -> int:
    conf = root() / "etc" / "nginx" / "nginx.conf"
    error_log = root() / "var" / "log" / "nginx" / "error.log"
    return subprocess.run(["/usr/sbin/nginx", "-e", str(error_log), "-c", str(conf), *args]).returncode


def stop_everything(sandbox: Path, grace: float = 30) -> None:
    """The test's teardown, as systemd stops a unit with KillMode=mixed: SIGTERM to the main process, then
    SIGKILL to whatever of the unit is left (Dagster's code server outlives its daemon); then nginx."""
    units = state(sandbox).values()
    for pid in units:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(alive(pid) for pid in units) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in units:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    pidfile = sandbox / "run" / "nginx.pid"
    if pidfile.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pidfile.read_text()), signal.SIGQUIT)


COMMANDS = {
    "apt-get": apt_get,
    "useradd": useradd,
    "systemctl": systemctl,
    "systemd-run": systemd_run,
    "htpasswd": htpasswd,
    "nginx": nginx,
}

if __name__ == "__main__":
    sys.exit(COMMANDS[sys.argv[1]](sys.argv[2:]))
