"""The audit log: append-only, hash-chained, no personal data; the helper other modules call."""

import json
from pathlib import Path

import duckdb
import pytest

from callsight.defs.run_audit import run_partitions, summary_from_metadata
from callsight.journal.raw_store import ensure_audit_log
from callsight.privacy.audit import (
    AuditError,
    append,
    read_entries,
    record_audit,
    verify_chain,
)
from callsight.site.settings import Settings


def test_record_audit_appends_a_verifiable_chain(tmp_path: Path) -> None:
    settings = Settings.from_env({"CALLSIGHT_HOME": str(tmp_path)})
    first = record_audit(settings, "provisioning", "rls", {"rules_created": 3, "role": "callsight_viewer"})
    second = record_audit(settings, "provisioning", "users", {"users_deactivated": 1, "dry_run": False})
    assert (first.seq, second.seq) == (1, 2) and second.previous_hash == first.entry_hash
    con = duckdb.connect(str(settings.raw_db))
    entries = read_entries(con)
    assert verify_chain(entries) == []
    assert json.loads(entries[0].detail) == {"role": "callsight_viewer", "rules_created": 3}

    # an edited entry, then a removed one, break the chain
    con.execute("UPDATE audit_log SET detail = '{\"rules_created\":0}' WHERE seq = 1")
    assert verify_chain(read_entries(con)) == ["entry 1: content does not match its hash (edited)"]
    con.execute("DELETE FROM audit_log WHERE seq = 1")
    problems = verify_chain(read_entries(con))
    assert any("missing" in p for p in problems) and any("does not follow" in p for p in problems)
    con.close()


def test_entries_refuse_nested_values_long_texts_and_email_addresses() -> None:
    con = duckdb.connect()
    ensure_audit_log(con)
    with pytest.raises(AuditError, match="not a flat value"):
        append(con, "provisioning", "users", {"created": ["anna.schmidt"]})
    with pytest.raises(AuditError, match="e-mail"):
        append(con, "provisioning", "users", {"recipient": "anna.schmidt@example.com"})
    with pytest.raises(AuditError, match="longer than"):
        append(con, "run", "x" * 201, {})
    with pytest.raises(AuditError, match="lower-case name"):
        append(con, "Provisioning Change", "users", {})
    assert read_entries(con) == [], "nothing refused was written"


def test_run_summary_picks_the_counts_of_the_runs_materializations() -> None:
    metadata = {
        "raw/journal": {"source_rows": 120, "quarantined_rows": 2, "erased_rows": 5, "expired_rows": 40, "x": 1},
        "published_warehouse": {"build_fingerprint": "abc123", "kept_builds_expired": 2, "path": "/srv/w.duckdb"},
        "superset_access": {"skipped": True},
    }
    assert summary_from_metadata(metadata) == {
        "rows_extracted": 120,
        "rows_quarantined": 2,
        "rows_erased": 5,
        "rows_expired": 40,
        "build_fingerprint": "abc123",
        "kept_builds_expired": 2,
        "superset_sync_skipped": True,
    }
    assert run_partitions({"dagster/partition": "2026-03-01"}) == ("2026-03-01", "2026-03-01")
    assert run_partitions(
        {"dagster/asset_partition_range_start": "2026-03-01", "dagster/asset_partition_range_end": "2026-03-09"}
    ) == ("2026-03-01", "2026-03-09")
