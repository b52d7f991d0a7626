"""Everything under CALLSIGHT_HOME is owner-only: files 0600, directories 0700 (issue 25).

Two parts: a process-wide umask of 077, set at every entry point (the `callsight` command, a nightly run,
the Dagster UI launcher, each asset's settings) and inherited by every child process (dbt, Superset's
gunicorn and Celery, the Dagster daemon); and `secure_home`, which also tightens a home made before (or
by hand) with looser permissions. Symbolic links are neither followed nor changed.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from callsight.site.settings import Settings

OWNER_ONLY_UMASK = 0o077
GROUP_OTHER_BITS = 0o077
log = logging.getLogger("callsight")


def restrict_umask() -> None:
    """Files and directories this process (and its children) creates get no group or other bits. A
    stricter umask already set (say 0o277) is kept."""
    os.umask(os.umask(OWNER_ONLY_UMASK) | OWNER_ONLY_UMASK)


def loose_paths(root: Path) -> list[Path]:
    """`root` and everything below it that has a group or other permission bit (links not followed)."""
    found = []
    for path in _walk(root):
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:  # removed while walking (a run in progress)
            continue
        if not stat.S_ISLNK(mode) and mode & GROUP_OTHER_BITS:
            found.append(path)
    return found


def tighten(root: Path) -> list[Path]:
    """Clear the group and other bits of `root` and everything below it; returns what could not be
    changed (owned by another user)."""
    refused = []
    for path in loose_paths(root):
        try:
            os.chmod(path, stat.S_IMODE(path.lstat().st_mode) & ~GROUP_OTHER_BITS)
        except FileNotFoundError:
            continue
        except PermissionError:
            refused.append(path)
    return refused


def secure_home(settings: Settings) -> None:
    """The umask for this process and its children, and an existing home made owner-only."""
    restrict_umask()
    if not settings.home.is_dir():
        return
    refused = tighten(settings.home)
    if refused:
        log.warning(
            "callsight: %d path(s) in %s keep group/other permissions (owned by another user), e.g. %s",
            len(refused),
            settings.home,
            refused[0],
        )


def _walk(root: Path):
    yield root
    for dirpath, dirnames, filenames in os.walk(root, onerror=lambda _exc: None):
        for name in (*dirnames, *filenames):
            yield Path(dirpath, name)
