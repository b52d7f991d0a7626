"""Provisioning changes for the audit log: what counts as a change of a user or an RLS rule (pure), and
that a batch of entries lands in the hash-chained log in one go."""

from __future__ import annotations

import duckdb
import pytest

from callsight.bi.provision import ProvisionReport
from callsight.bi.reports import ReportSyncResult
from callsight.bi.users import rls_differs, user_change
from callsight.privacy.audit import AuditError, read_entries, record_audit_entries, verify_chain
from callsight.site.settings import Settings

ROLES = {"callsight_viewer": 5, "callsight_analyst": 6, "Admin": 1}
PAYLOAD = {"first_name": "Anna", "last_name": "A", "email": "anna@example.org", "roles": [5], "active": True}


def existing(**over: object) -> dict:
    base = {"first_name": "Anna", "last_name": "A", "email": "anna@example.org", "active": True,
            "roles": [{"id": 5, "name": "callsight_viewer"}]}  # fmt: skip
    return {**base, **over}


def test_an_unchanged_user_is_no_change() -> None:
    assert user_change(existing(), PAYLOAD, ROLES) == {}


def test_role_reactivation_and_profile_changes_are_named_without_personal_data() -> None:
    promoted = user_change(existing(), {**PAYLOAD, "roles": [6]}, ROLES)
    assert promoted == {"change": "updated", "role": "callsight_analyst", "previous_role": "callsight_viewer"}
    assert user_change(existing(active=False), PAYLOAD, ROLES) == {"change": "updated", "reactivated": 1}
    moved = user_change(existing(email="old@example.org"), PAYLOAD, ROLES)
    assert moved == {"change": "updated", "profile_updated": 1}
    assert "example.org" not in str(moved)


def test_rls_rule_changes() -> None:
    listed = {"clause": "1 = 0", "filter_type": "Base", "group_key": "g",
              "tables": [{"id": 3}, {"id": 1}], "roles": [{"id": 5}]}  # fmt: skip
    wanted = {"clause": "1 = 0", "filter_type": "Base", "group_key": "g", "tables": [1, 3], "roles": [5],
              "description": "text"}  # fmt: skip
    assert not rls_differs(listed, wanted)
    assert rls_differs(listed, {**wanted, "tables": [1, 3, 4]})
    assert rls_differs(listed, {**wanted, "roles": [5, 6]})
    assert rls_differs(listed, {**wanted, "clause": "1 = 1"})


def test_report_changes_become_entries() -> None:
    report = ProvisionReport(changes=[("user:anna", {"change": "created", "role": "callsight_viewer"})])
    report.reports = ReportSyncResult(created=["callsight: Agenten - anna"], deleted=["callsight: Agenten - bob"])
    assert report.audit_entries() == [
        ("user:anna", {"change": "created", "role": "callsight_viewer"}),
        ("report:callsight: Agenten - anna", {"change": "created"}),
        ("report:callsight: Agenten - bob", {"change": "deleted"}),
    ]


def test_a_batch_is_appended_to_the_chain_or_not_at_all(tmp_path) -> None:
    settings = Settings.from_env({"CALLSIGHT_HOME": str(tmp_path)})
    record_audit_entries(settings, "provisioning", [("user:a", {"change": "created"}), ("rls:x", {"tables": 3})])
    with pytest.raises(AuditError):
        record_audit_entries(settings, "provisioning", [("user:b", {"change": "created"}), ("user:c", {"m": "c@d"})])
    con = duckdb.connect(str(settings.raw_db), read_only=True)
    entries = read_entries(con)
    con.close()
    assert [e.subject for e in entries] == ["user:a", "rls:x"]
    assert verify_chain(entries) == []
