# Secrets from files for Superset's own processes (web, Celery worker and beat): NAME may instead be
# given as NAME_FILE, the path of a file holding it (systemd LoadCredential=). superset_config.py loads
# this beside itself and resolves before it reads anything; it cannot import callsight, so this repeats
# the rules of callsight/site/secret_files.py (tests/test_secret_files.py holds the two to the same answers).
import os
import stat
import sys

FILE_SUFFIX = "_FILE"
CREDENTIALS_DIRECTORY = "CREDENTIALS_DIRECTORY"  # systemd's, private to the service
# The secrets superset_config.py reads itself.
SUPERSET_SECRETS = (
    "SUPERSET_SECRET_KEY",
    "SUPERSET_DATABASE_URI",
    "CALLSIGHT_REDIS_URL",
    "SMTP_PASSWORD",
    "CALLSIGHT_LDAP_BIND_PASSWORD",
)


class SecretFileError(RuntimeError):
    """A secret given the wrong way; the message never holds the secret."""


def read_secret_file(variable, path, credentials_dir=None):
    """The secret in `path` without its trailing newline, and a warning when its group may read it (not in
    systemd's credentials directory, whose files grant the service user by an ACL shown as group bits)."""
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
        raise SecretFileError(f"{variable}: {path} is not UTF-8 text") from None
    if not value:
        raise SecretFileError(f"{variable}: {path} is empty")
    warning = None
    if mode & stat.S_IRGRP and not _inside(path, credentials_dir):
        warning = f"{variable}: {path} is readable by its group (mode {mode:04o}); 0600 or 0400 keeps it to the owner"
    return value, warning


def _inside(path, directory):
    return bool(directory) and os.path.realpath(path).startswith(os.path.realpath(directory) + os.sep)


def export_secret_files(environ, names=SUPERSET_SECRETS):
    """Read each given NAME_FILE into environ[NAME] and drop NAME_FILE; refuse (changing nothing) when a
    secret is given both ways or its file cannot serve. Returns the warnings, also printed to stderr."""
    problems, warnings, values = [], [], {}
    for name in names:
        path = environ.get(name + FILE_SUFFIX, "")
        if not path:
            continue
        if environ.get(name):
            problems.append(f"{name} and {name}{FILE_SUFFIX} are both set: give the secret one way only")
            continue
        try:
            values[name], warning = read_secret_file(name + FILE_SUFFIX, path, environ.get(CREDENTIALS_DIRECTORY))
        except SecretFileError as exc:
            problems.append(str(exc))
            continue
        if warning:
            warnings.append(warning)
    if problems:
        raise SecretFileError("secrets refused, nothing was done:\n  " + "\n  ".join(problems))
    for name in names:
        environ.pop(name + FILE_SUFFIX, None)
    environ.update(values)
    for warning in warnings:
        print(f"callsight: warning: {warning}", file=sys.stderr)
    return warnings
