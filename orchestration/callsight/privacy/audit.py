"""The audit log: an append-only, hash-chained table in the raw store (warehouse/journal.duckdb).

Every nightly run (started / finished with status and row counts), every erasure request and, through
`record_audit`, every provisioning change is one row. Rows carry no personal data: kinds, ids, counts,
hashes. Each row's `entry_hash` covers its content and the previous row's hash, so an edited or deleted
row breaks the chain (`verify_chain`). dbt publishes the table as `marts.audit_log`.

For other modules (e.g. Superset provisioning):

    from callsight.privacy.audit import record_audit
    record_audit(settings, "provisioning", "rls", {"rules_created": 3, "rules_deleted": 1})
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb

from callsight.journal.raw_store import connect_raw_store, ensure_audit_log
from callsight.site.settings import Settings

GENESIS = "0" * 64
_NAME = re.compile(r"^[a-z][a-z0-9_.]{0,63}$")
MAX_TEXT = 200

Scalar = str | int | float | bool | None


class AuditError(ValueError):
    """An audit entry was refused (not flat, too long, or looks like personal data)."""


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    event_id: str
    recorded_at: datetime
    kind: str
    subject: str
    detail: str
    previous_hash: str
    entry_hash: str


def _check_text(where: str, value: str) -> None:
    if len(value) > MAX_TEXT:
        raise AuditError(f"audit {where}: longer than {MAX_TEXT} characters")
    if "@" in value:
        raise AuditError(f"audit {where}: looks like an e-mail address; the audit log holds no personal data")


def validate(kind: str, subject: str, detail: Mapping[str, Scalar]) -> str:
    """The detail as canonical JSON; refuses nested values, long texts and e-mail addresses."""
    if not _NAME.match(kind):
        raise AuditError(f"audit kind {kind!r}: lower-case name expected")
    _check_text("subject", subject)
    for k, v in detail.items():
        if not isinstance(k, str) or not _NAME.match(k):
            raise AuditError(f"audit detail key {k!r}: lower-case name expected")
        if not isinstance(v, str | int | float | bool) and v is not None:
            raise AuditError(f"audit detail {k}: {type(v).__name__} is not a flat value (text, number, flag)")
        if isinstance(v, str):
            _check_text(f"detail {k}", v)
    return json.dumps(dict(detail), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(
    previous: str, seq: int, event_id: str, recorded_at: datetime, kind: str, subject: str, detail: str
) -> str:
    body = json.dumps([previous, seq, event_id, recorded_at.isoformat(), kind, subject, detail], ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()


def append(
    con: duckdb.DuckDBPyConnection,
    kind: str,
    subject: str,
    detail: Mapping[str, Scalar],
    db: str = "",
    now: datetime | None = None,
) -> AuditEntry:
    """Append one entry on an open raw-store connection (inside the caller's transaction, if any)."""
    text = validate(kind, subject, detail)
    p = f"{db}." if db else ""
    ensure_audit_log(con, db)
    last = con.execute(f"SELECT seq, entry_hash FROM {p}audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    seq, previous = (last[0] + 1, last[1]) if last else (1, GENESIS)
    recorded = (now or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None, microsecond=0)
    event_id = str(uuid.uuid4())
    digest = entry_hash(previous, seq, event_id, recorded, kind, subject, text)
    con.execute(
        f"INSERT INTO {p}audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [seq, event_id, recorded, kind, subject, text, previous, digest],
    )
    return AuditEntry(seq, event_id, recorded, kind, subject, text, previous, digest)


def record_audit(settings: Settings, kind: str, subject: str, detail: Mapping[str, Scalar]) -> AuditEntry:
    """Append one entry to the audit log of the site.

    kind: what happened, e.g. "provisioning"; subject: to what, e.g. "rls" or a run id; detail: flat
    values (counts, names of roles or objects, hashes, ISO dates). No call data: no phone numbers, callers
    or e-mail addresses (e-mail addresses are refused); staff logins only where access rights changed
    (provisioning). Waits up to a minute while a nightly run holds the raw store."""
    validate(kind, subject, detail)
    con = connect_raw_store(settings)
    try:
        return append(con, kind, subject, detail)
    finally:
        con.close()


def record_audit_entries(
    settings: Settings, kind: str, entries: Sequence[tuple[str, Mapping[str, Scalar]]]
) -> list[AuditEntry]:
    """Append several (subject, detail) entries of one kind in one transaction (all or none)."""
    for subject, detail in entries:
        validate(kind, subject, detail)
    if not entries:
        return []
    con = connect_raw_store(settings)
    try:
        con.execute("BEGIN TRANSACTION")
        out = [append(con, kind, subject, detail) for subject, detail in entries]
        con.execute("COMMIT")
        return out
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.close()


def read_entries(con: duckdb.DuckDBPyConnection, db: str = "") -> list[AuditEntry]:
    p = f"{db}." if db else ""
    rows = con.execute(f"SELECT * FROM {p}audit_log ORDER BY seq").fetchall()
    return [AuditEntry(*r) for r in rows]


def verify_chain(entries: list[AuditEntry]) -> list[str]:
    """Problems found in the chain (empty when intact): edited, deleted or reordered entries."""
    problems = []
    previous = GENESIS
    for expected_seq, e in enumerate(entries, start=1):
        if e.seq != expected_seq:
            problems.append(f"entry {e.seq}: expected sequence number {expected_seq} (an entry is missing)")
        if e.previous_hash != previous:
            problems.append(f"entry {e.seq}: does not follow the previous entry")
        if entry_hash(e.previous_hash, e.seq, e.event_id, e.recorded_at, e.kind, e.subject, e.detail) != e.entry_hash:
            problems.append(f"entry {e.seq}: content does not match its hash (edited)")
        previous = e.entry_hash
    return problems
