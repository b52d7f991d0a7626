"""Secrets from files: every secret setting NAME may instead be given as NAME_FILE, the path of a file
holding it (systemd's `LoadCredential=` puts such files under $CREDENTIALS_DIRECTORY).

Resolved once where a process starts (the `callsight` command, a nightly run, `Settings.from_env`), so
the process and the processes it starts see the secret under its plain name. Messages name variables
and paths, never a secret. superset/secret_files.py applies the same rules inside Superset.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass

FILE_SUFFIX = "_FILE"
CREDENTIALS_DIRECTORY = "CREDENTIALS_DIRECTORY"  # systemd's, private to the service
# The settings that are secrets (docs/settings.md): keys, passwords, and URLs that may carry a password.
SECRET_SETTINGS = (
    "SUPERSET_SECRET_KEY",
    "SUPERSET_ADMIN_PASSWORD",
    "SUPERSET_DATABASE_URI",
    "CALLSIGHT_ERASURE_KEY",
    "CALLSIGHT_PSEUDONYM_KEY",
    "CALLSIGHT_JOURNAL_URL",
    "CALLSIGHT_REDIS_URL",
    "CALLSIGHT_DEMO_PASSWORD",
    "CALLSIGHT_DEMO_ADMIN_PASSWORD",
    "SMTP_PASSWORD",
    "CALLSIGHT_LDAP_BIND_PASSWORD",
)


class SecretFileError(ValueError):
    """A secret given the wrong way: both forms, or a file that cannot serve (never holds the secret)."""


@dataclass(frozen=True)
class ResolvedEnv:
    env: dict[str, str]  # the secrets under their plain names, no NAME_FILE left for them
    warnings: tuple[str, ...] = ()


def resolve_secret_files(environ: Mapping[str, str], names: tuple[str, ...] = SECRET_SETTINGS) -> ResolvedEnv:
    """A copy of `environ` with each given NAME_FILE read into NAME. Every problem is reported at once.
    An empty value counts as not given, in both forms (as everywhere in callsight's settings)."""
    env = dict(environ)
    problems: list[str] = []
    warnings: list[str] = []
    for name in names:
        path = env.pop(name + FILE_SUFFIX, "")
        if not path:
            continue
        if env.get(name):
            problems.append(f"{name} and {name}{FILE_SUFFIX} are both set: give the secret one way only")
            continue
        try:
            value, warning = read_secret_file(name + FILE_SUFFIX, path, env.get(CREDENTIALS_DIRECTORY))
        except SecretFileError as exc:
            problems.append(str(exc))
            continue
        env[name] = value
        if warning:
            warnings.append(warning)
    if problems:
        raise SecretFileError("secrets refused, nothing was done:\n  " + "\n  ".join(problems))
    return ResolvedEnv(env, tuple(warnings))


def read_secret_file(variable: str, path: str, credentials_dir: str | None = None) -> tuple[str, str | None]:
    """The secret in `path` without its trailing newline, and a warning when the file's group may read it.
    Refused: unreadable, empty, not UTF-8, or readable by every user of the machine. No group warning in
    systemd's credentials directory: its files grant the service user by an ACL, shown as group bits."""
    try:
        with open(path, "rb") as f:
            mode = stat.S_IMODE(os.fstat(f.fileno()).st_mode)
            data = f.read()
    except OSError as exc:
        raise SecretFileError(f"{variable}: cannot read {path} ({exc.strerror or type(exc).__name__})") from None
    if mode & stat.S_IROTH:
        raise SecretFileError(
            f"{variable}: {path} is readable by every user of this machine (mode {mode:04o}); "
            "make it 0600 or 0400, owned by the service user"
        )
    try:
        value = data.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise SecretFileError(f"{variable}: {path} is not UTF-8 text") from None  # the error quotes bytes
    if not value:
        raise SecretFileError(f"{variable}: {path} is empty")
    warning = None
    if mode & stat.S_IRGRP and not _inside(path, credentials_dir):
        warning = f"{variable}: {path} is readable by its group (mode {mode:04o}); 0600 or 0400 keeps it to the owner"
    return value, warning


def _inside(path: str, directory: str | None) -> bool:
    return bool(directory) and os.path.realpath(path).startswith(os.path.realpath(directory) + os.sep)


def export_secret_files(environ: MutableMapping[str, str]) -> tuple[str, ...]:
    """Resolve the secret files into `environ` itself (the process environment at start): NAME set,
    NAME_FILE removed, so children never see both. Nothing changes when a secret is refused."""
    resolved = resolve_secret_files(environ)
    for name in SECRET_SETTINGS:
        if environ.get(name + FILE_SUFFIX):
            environ[name] = resolved.env[name]
        environ.pop(name + FILE_SUFFIX, None)
    return resolved.warnings
