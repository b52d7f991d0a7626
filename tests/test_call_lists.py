"""The call lists (charts named *Anrufliste*) speak German: answered as Ja/Nein, a leg without project as
"kein Projekt" - in the chart data a viewer gets over HTTP and in its CSV export."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from callsight.bi.api import SupersetClient
from callsight.bi.assets import load_assets

from .conftest import SupersetServer
from .test_dashboards import dataset_id, group_leader

NO_PROJECT = "kein Projekt"


def call_lists() -> list[dict]:
    return [c for n, c in sorted(load_assets().items()) if n.startswith("charts/") and "Anrufliste" in c["slice_name"]]


def list_query(chart: dict, ds_id: int, result_format: str = "json") -> dict[str, Any]:
    """Pure: the query a call list sends (raw columns, its own filters, newest first), over all days."""
    p = chart["params"]
    filters = [{"col": "call_date", "op": "TEMPORAL_RANGE", "val": "No filter"}] + [
        {"col": f["subject"], "op": f["operator"]}
        for f in p["adhoc_filters"]
        if f.get("expressionType") == "SIMPLE" and f["operator"] == "IS NOT NULL"
    ]
    return {
        "datasource": {"id": ds_id, "type": "table"},
        "force": True,
        "queries": [
            {
                "columns": list(p["all_columns"]),
                "orderby": [["start_time_local", False]],
                "row_limit": 100000,
                "filters": filters,
                "extras": {"having": "", "where": ""},
            }
        ],
        "result_format": result_format,
        "result_type": "full",
    }


def test_every_call_list_shows_the_german_labels_not_the_raw_columns() -> None:
    charts = call_lists()
    assert len(charts) == 3
    for chart in charts:
        columns = chart["params"]["all_columns"]
        assert "answered_label" in columns and "is_answered" not in columns, chart["slice_name"]
        assert "project_label" in columns and "project_name" not in columns, chart["slice_name"]


@pytest.mark.superset
def test_a_viewers_call_lists_say_ja_nein_and_never_leave_the_project_empty(superset_server: SupersetServer) -> None:
    leader, _ = group_leader(superset_server)
    client = SupersetClient(superset_server.url).login(leader, superset_server.user_password)
    ds = dataset_id(client, "dashboard_calls")
    for chart in call_lists():
        rows = client.chart_data(list_query(chart, ds))["result"][0]["data"]
        assert rows, chart["slice_name"]
        assert {r["answered_label"] for r in rows} == {"Ja", "Nein"}, chart["slice_name"]
        projects = [r["project_label"] for r in rows]
        assert all(p and p.strip() for p in projects), chart["slice_name"]
        if chart["slice_name"] == "Anrufliste":
            assert NO_PROJECT in projects, "legs without a project are listed as such"
        if chart["slice_name"] == "Projekte: Anrufliste":
            assert NO_PROJECT not in projects, "the project list keeps to legs with a project"


@pytest.mark.superset
def test_the_call_lists_csv_export_says_ja_nein_and_kein_projekt(superset_server: SupersetServer) -> None:
    leader, _ = group_leader(superset_server)
    client = SupersetClient(superset_server.url).login(leader, superset_server.user_password)
    chart = next(c for c in call_lists() if c["slice_name"] == "Anrufliste")
    query = list_query(chart, dataset_id(client, "dashboard_calls"), result_format="csv")
    r = client.session.post(f"{superset_server.url}/api/v1/chart/data", json=query, timeout=120)
    assert r.status_code == 200, r.text[:300]
    body = r.content.decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(body), delimiter=sniff_delimiter(body)))
    assert rows
    answered = next(k for k in rows[0] if k in ("answered_label", "Angenommen"))
    project = next(k for k in rows[0] if k in ("project_label", "Projekt"))
    assert {r[answered] for r in rows} == {"Ja", "Nein"}
    assert all(r[project].strip() for r in rows) and any(r[project] == NO_PROJECT for r in rows)
    assert not {"true", "false", "True", "False"} & {r[answered] for r in rows}


def sniff_delimiter(body: str) -> str:
    """Superset writes CSV with its CSV_EXPORT separator (comma unless configured)."""
    header = body.splitlines()[0]
    return ";" if header.count(";") > header.count(",") else ","
