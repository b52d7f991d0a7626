"""`callsight erase`: carry out an erasure request (GDPR Art. 17) now, everywhere callsight keeps data.

1. The identifiers are registered (keyed hashes only) and every stored call matching the register loses
   its personal fields, in the raw journal and the quarantine, in one transaction with the audit entry.
2. The raw store is compacted: the cleared values do not stay in free blocks of the file. The data
   quality checks' record of validated rows (hashes of rows as they were) is deleted: the next run
   validates every row again.
3. The warehouse is rebuilt from the raw store and published (job `republish`); the kept builds are
   deleted, since they predate the erasure (`callsight rollback` has nothing to go back to afterwards).
4. From then on, every extract suppresses the same fields for matching source rows before they land.
The identifiers themselves are never printed, logged or stored.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import duckdb

from callsight.journal.raw_store import connect_raw_store, ensure_raw_store
from callsight.privacy.audit import append, record_audit
from callsight.privacy.erasure import (
    CONTACT,
    PHONE,
    Identifier,
    check_key,
    erasure_key,
    prepare_matching,
    register_requests,
    scrub_store,
)
from callsight.publish.builds import stored_fingerprint
from callsight.quality.validated_rows import delete_record
from callsight.site.compaction import compact
from callsight.site.home import kept_builds
from callsight.site.settings import Settings


@dataclass(frozen=True)
class ErasureResult:
    request_id: str
    identifiers: int
    journal_rows: int
    quarantine_rows: int
    published: bool | None  # None: there is no published warehouse yet
    kept_builds_removed: int
    failure: str | None = None


def record_and_scrub(settings: Settings, identifiers: Sequence[Identifier]) -> tuple[str, int, int]:
    """Steps 1 and 2: (request id, journal rows cleared, quarantined rows cleared)."""
    key = erasure_key(settings, required=True) or ""
    now = datetime.now()
    con = connect_raw_store(settings)
    try:
        ensure_raw_store(con)
        con.execute("BEGIN TRANSACTION")
        check_key(con, key)
        request_id = register_requests(con, key, identifiers, now)
        prepare_matching(con, key)
        counts = scrub_store(con, now)
        append(
            con,
            "erasure",
            request_id,
            {
                "event": "recorded",
                "phone_identifiers": sum(i.kind == PHONE for i in identifiers),
                "contact_identifiers": sum(i.kind == CONTACT for i in identifiers),
                "journal_rows_erased": counts.journal_rows,
                "quarantine_rows_erased": counts.quarantine_rows,
            },
        )
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise
    finally:
        con.close()
    compact(settings.raw_db)
    delete_record(settings.validated_rows_db)
    return request_id, counts.journal_rows, counts.quarantine_rows


def erase(settings: Settings, identifiers: Sequence[Identifier]) -> ErasureResult:
    """Carry out one erasure request (several identifiers of one person) now."""
    from callsight.defs.nightly import republish

    if not identifiers:
        raise ValueError("name at least one phone number or contact")
    request_id, journal_rows, quarantine_rows = record_and_scrub(settings, identifiers)
    if not settings.served_db.exists():
        return ErasureResult(request_id, len(identifiers), journal_rows, quarantine_rows, None, 0)
    kept = len(kept_builds(settings.served_db))
    run = republish(settings, discard_kept_builds=True)
    removed = kept - len(kept_builds(settings.served_db)) if run.success else 0
    record_audit(
        settings,
        "erasure",
        request_id,
        {
            "event": "published",
            "status": "success" if run.success else "failure",
            "run_id": run.run_id,
            "kept_builds_removed": removed,
            "build_fingerprint": stored_fingerprint(settings.served_db) or "",
        },
    )
    return ErasureResult(request_id, len(identifiers), journal_rows, quarantine_rows, run.success, removed, run.failure)
