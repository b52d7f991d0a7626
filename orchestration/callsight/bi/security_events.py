"""Security events of the Superset processes moved into the hash-chained audit log.

Superset's side (superset/security_events.py) appends one JSON line per event - a refused chart query, a
burst of failed logins - to CALLSIGHT_HOME/superset/security-events.jsonl. Every provisioning and every
nightly run moves them into the audit log (kind "security"), like events counted together: one entry per
event, subject, layer and reason, with the count and the first and last time.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from callsight.privacy.audit import Scalar, record_audit_entries
from callsight.site.settings import Settings

log = logging.getLogger(__name__)
FILE_NAME = "security-events.jsonl"
CLAIMED_SUFFIX = ".importing"
# Fields of a line that name the entry; the rest are counted over.
KEY_FIELDS = ("event", "subject", "layer", "reason", "dataset_id", "window_seconds")


def events_path(settings: Settings) -> Path:
    return settings.home / "superset" / FILE_NAME


def _flat(value: object) -> Scalar:
    if isinstance(value, bool | int | float) or value is None:
        return value
    text = str(value)[:200]
    return None if "@" in text else text  # the audit log refuses anything that looks like an address


def summarise(lines: Iterable[str]) -> list[tuple[str, dict[str, Scalar]]]:
    """Pure: (subject, detail) audit entries from event lines, like events counted together; lines that
    do not parse are counted as such, never dropped silently."""
    groups: dict[tuple, dict[str, Scalar]] = {}
    unreadable = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            event = json.loads(line)
            if not isinstance(event, dict) or not isinstance(event.get("event"), str):
                raise ValueError
        except ValueError:
            unreadable += 1
            continue
        key = tuple(_flat(event.get(k)) for k in KEY_FIELDS)
        at = _flat(event.get("at"))
        entry = groups.setdefault(
            key, {k: v for k, v in zip(KEY_FIELDS, key, strict=True) if v is not None and k != "subject"}
        )
        entry["count"] = int(entry.get("count") or 0) + 1
        entry.setdefault("first_at", at)
        entry["last_at"] = at
        for k, v in event.items():
            if k not in (*KEY_FIELDS, "at") and isinstance(v, int) and not isinstance(v, bool):
                entry[k] = max(int(entry.get(k) or 0), v)  # e.g. the most failures of one burst
    out = [(str(key[1] or "-"), detail) for key, detail in groups.items()]
    if unreadable:
        out.append(("-", {"event": "unreadable_security_events", "count": unreadable}))
    return out


def import_security_events(settings: Settings) -> int:
    """Move the pending events into the audit log; returns the number of entries written. The file is
    renamed first, so Superset's next events start a new one, and read under its lock, so an event being
    written is complete. Kept for the next attempt if the audit log cannot be written."""
    path = events_path(settings)
    claimed = path.with_name(FILE_NAME + CLAIMED_SUFFIX)
    if not claimed.exists():
        if not path.exists():
            return 0
        os.replace(path, claimed)
    with claimed.open("r", encoding="utf-8", errors="replace") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        entries = summarise(f.read().splitlines())
    record_audit_entries(settings, "security", entries)
    claimed.unlink()
    if entries:
        log.warning("%d security event group(s) from Superset recorded in the audit log", len(entries))
    return len(entries)
