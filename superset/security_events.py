"""Security events of the Superset processes - a refused chart query, a burst of failed logins - as JSON
lines in CALLSIGHT_HOME/superset/security-events.jsonl (owner-only). The pipeline moves them into the
hash-chained audit log (callsight.bi.security_events) at every provisioning and nightly run.

An event holds no data and no SQL: its kind, the Superset user id or the client address, a reason code
and counts. Loaded by superset_config.py beside it; Superset never imports callsight."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
from datetime import UTC, datetime

log = logging.getLogger("callsight.security")
FILE_NAME = "security-events.jsonl"
_NAME = re.compile(r"^[a-z][a-z0-9_.]{0,63}$")


def events_path() -> str:
    home = os.path.abspath(os.environ.get("CALLSIGHT_HOME", "var"))
    return os.path.join(home, "superset", FILE_NAME)


def record(name: str, subject: str, **detail: str | int | bool | None) -> None:
    """Append one event (flat values only); never raises - a full disk must not turn a refusal into a
    server error. Logged too, as one line without data."""
    if not _NAME.match(name) or not all(_NAME.match(k) for k in detail):
        raise ValueError(f"security event {name!r}: lower-case names expected")
    line = {"at": datetime.now(UTC).isoformat(timespec="seconds"), "event": name, "subject": subject[:200]}
    line.update({k: (v[:200] if isinstance(v, str) else v) for k, v in detail.items()})
    log.warning("security event %s", json.dumps(line, sort_keys=True))
    path = events_path()
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # gunicorn workers append to one file
            os.write(fd, (json.dumps(line, sort_keys=True) + "\n").encode())
        finally:
            os.close(fd)
    except OSError:
        log.exception("could not record security event %s", name)
