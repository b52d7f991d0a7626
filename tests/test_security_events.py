"""Security events of the Superset processes reach the hash-chained audit log, grouped, without data."""

from __future__ import annotations

import json
from pathlib import Path

from callsight.bi.security_events import events_path, import_security_events, summarise
from callsight.journal.raw_store import connect_raw_store
from callsight.privacy.audit import read_entries, verify_chain
from callsight.site.settings import Settings


def line(**fields: object) -> str:
    return json.dumps({"at": "2026-12-05T01:00:00+00:00", **fields})


def test_like_events_are_counted_together_and_nothing_is_dropped_silently() -> None:
    refused = {"event": "query_refused", "subject": "user:7", "layer": "shape", "reason": "final_relation"}
    burst = {"event": "login_burst", "subject": "127.0.0.1", "window_seconds": 60}
    lines = [
        line(**refused),
        line(**refused, dataset_id=3),
        line(**refused),
        line(**burst, failures=6),
        line(**burst, failures=9),
        "not json",
        line(**burst, failures=4, note="x@example.org"),
    ]
    entries = dict((json.dumps(d, sort_keys=True), s) for s, d in summarise(lines))
    details = [json.loads(k) for k in entries]
    counts = sorted((d["event"], d.get("dataset_id", 0), d["count"]) for d in details)
    assert counts == [
        ("login_burst", 0, 3),
        ("query_refused", 0, 2),
        ("query_refused", 3, 1),
        ("unreadable_security_events", 0, 1),
    ]
    (burst_detail,) = [d for d in details if d["event"] == "login_burst"]
    assert burst_detail["failures"] == 9, "the largest burst is kept"
    assert "x@example.org" not in json.dumps(details), "nothing that looks like an address"


def test_import_moves_the_events_into_the_audit_log_once(tmp_path: Path) -> None:
    settings = Settings.from_env({"CALLSIGHT_HOME": str(tmp_path / "home")})
    path = events_path(settings)
    path.parent.mkdir(parents=True)
    event = {"event": "query_refused", "subject": "user:5", "layer": "fragments", "reason": "fragment_relation"}
    path.write_text("\n".join(line(**event) for _ in range(4)) + "\n")
    assert import_security_events(settings) == 1
    assert not path.exists() and not list(path.parent.glob("*.importing")), "moved, not copied"
    assert import_security_events(settings) == 0, "a second import finds nothing"
    con = connect_raw_store(settings)
    try:
        entries = read_entries(con)
    finally:
        con.close()
    assert verify_chain(entries) == []
    (entry,) = [e for e in entries if e.kind == "security"]
    assert entry.subject == "user:5" and json.loads(entry.detail)["count"] == 4
