"""Which e-mail reports the directory and policy ask for (pure; the live run is tests/test_reports.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from callsight.bi.assets import load_assets
from callsight.bi.reports import REPORT_PREFIX, WEEKLY_CSV_CHART, csv_query_context, report_specs
from callsight.site.directory import Directory
from callsight.site.policy import Policy, Reports

DIRECTORY = Directory.model_validate(
    {
        "users": [
            {"username": "lea", "name": "Lea Leiter", "email": "lea@example.com"},
            {"username": "tom", "name": "Tom Vertreter", "email": "tom@example.com"},
            {"username": "max", "name": "Max Mitglied", "email": "max@example.com"},
            {"username": "noemail", "name": "Nora Ohnemail"},
            {"username": "ana", "name": "Ana Lyst", "email": "ana@example.com"},
        ],
        "groups": [
            {"name": "Vertrieb", "leaders": ["lea"], "deputies": ["tom"], "members": ["lea", "tom", "max"]},
            {"name": "Technik", "leaders": ["noemail", "lea"], "members": ["noemail", "lea"]},
        ],
        "analysts": ["ana"],
    }
)


def test_each_leader_gets_the_dashboards_as_themselves_and_analysts_the_csv() -> None:
    specs, skipped = report_specs(DIRECTORY, Policy(), {"agenten": "Agenten"})
    by_owner: dict[str, list] = {}
    for s in specs:
        by_owner.setdefault(s.owner, []).append(s)
    assert set(by_owner) == {"lea", "ana"}, "leaders (once, whatever their number of groups) and analysts"
    assert sorted(s.dashboard for s in by_owner["lea"]) == ["agenten", "management-summary"]
    assert all(s.recipients == ("lea@example.com",) and s.report_format == "PNG" for s in by_owner["lea"])
    (csv,) = by_owner["ana"]
    assert csv.chart == WEEKLY_CSV_CHART and csv.report_format == "CSV" and csv.dashboard is None
    assert all(s.crontab == "0 7 * * 1" and s.timezone == "Europe/Berlin" for s in specs)
    assert all(s.name.startswith(REPORT_PREFIX) for s in specs)
    assert len({s.name for s in specs}) == len(specs), "names are the key: unique"
    assert skipped == ["noemail: no e-mail address in the directory"]
    assert {s.subject for s in by_owner["lea"]} == {"Wochenbericht: Agenten", "Wochenbericht: management-summary"}


def test_policy_switches_and_bad_schedules() -> None:
    policy = Policy(reports=Reports(format="PDF", leader_csv=True, analyst_csv=False, leader_dashboards=["kunden"]))
    specs, _ = report_specs(DIRECTORY, policy)
    assert sorted((s.owner, s.dashboard or s.report_format) for s in specs) == [("lea", "CSV"), ("lea", "kunden")]
    assert {s.report_format for s in specs if s.dashboard} == {"PDF"}
    assert report_specs(DIRECTORY, Policy(reports=Reports(enabled=False))) == ([], [])
    for bad in ("every monday", "0 7 * *", "0 7 * * 1; rm -rf /"):
        with pytest.raises(ValidationError, match="cron"):
            Reports(schedule=bad)
    with pytest.raises(ValidationError, match="slug"):
        Reports(leader_dashboards=["Management Summary"])


def test_the_weekly_csv_chart_exists_and_its_query_context_matches_its_params() -> None:
    assets = load_assets()
    (chart,) = [c for n, c in assets.items() if n.startswith("charts/") and c["uuid"] == WEEKLY_CSV_CHART]
    qc = csv_query_context(chart["params"], dataset_id=7)
    (q,) = qc["queries"]
    assert qc["datasource"] == {"id": 7, "type": "table"} and qc["result_format"] == "csv"
    assert q["columns"] == chart["params"]["groupby"] and q["metrics"] == chart["params"]["metrics"]
    assert q["filters"] == [{"col": "call_date", "op": "TEMPORAL_RANGE", "val": "Last week"}]
    assert "agent_username" in q["columns"], "the CSV names the agent so a reader can check whose rows it holds"
    dataset = next(c for n, c in assets.items() if n.startswith("datasets/") and c["uuid"] == chart["dataset_uuid"])
    assert "phone_number" not in q["columns"] and dataset["table_name"] == "dashboard_inbound_calls"
