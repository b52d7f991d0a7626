"""Weekly e-mail reports from the org directory: Superset Alerts & Reports, provisioned from code.

Each group leader gets the policy's dashboards as PNG/PDF, owned by and therefore run as that leader
(`ALERT_REPORTS_EXECUTORS = ["owner"]`): the screenshot shows only what the leader may see. Analysts
(and optionally leaders) get the weekly KPI table per agent and day as CSV. Reports are keyed by name:
re-provisioning updates them, creates missing ones and deletes callsight reports nobody should get
any more (a leader who left). Reports made by hand in Superset are left alone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from callsight.bi.api import SupersetClient
from callsight.site.directory import Directory
from callsight.site.policy import Policy

REPORT_PREFIX = "callsight: "
WEEKLY_CSV_CHART = "bc64a469-9567-56a5-8ca2-a57c027d516d"  # charts/Wochenbericht_je_Agent_und_Tag.yaml
CSV_SUBJECT = "Wochenbericht: Kennzahlen je Agent und Tag (CSV)"


@dataclass(frozen=True)
class ReportSpec:
    name: str
    owner: str
    recipients: tuple[str, ...]
    report_format: str
    crontab: str
    timezone: str
    dashboard: str | None = None  # slug
    chart: str | None = None  # uuid
    description: str = ""
    subject: str = ""  # e-mail subject (after Superset's "[callsight] " prefix)


@dataclass
class ReportSyncResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # e.g. a leader without an e-mail address


def report_specs(
    directory: Directory, policy: Policy, titles: Mapping[str, str] | None = None
) -> tuple[list[ReportSpec], list[str]]:
    """The reports the directory and policy ask for, and who cannot get one (with the reason).
    `titles`: dashboard titles by slug, for the mail subjects."""
    titles = titles or {}
    cfg = policy.reports
    if not cfg.enabled:
        return [], []
    emails = {u.username: u.email for u in directory.users}
    leaders = sorted({lead for g in directory.groups for lead in g.leaders})
    specs: list[ReportSpec] = []
    skipped: list[str] = []
    common = {"crontab": cfg.schedule, "timezone": policy.timezone}

    def add(owner: str, **kw: Any) -> None:
        if not emails.get(owner):
            skipped.append(f"{owner}: no e-mail address in the directory")
            return
        specs.append(ReportSpec(owner=owner, recipients=(emails[owner],), **common, **kw))

    for leader in leaders:
        for slug in cfg.leader_dashboards:
            add(
                leader,
                name=f"{REPORT_PREFIX}{slug} für {leader}",
                report_format=cfg.format,
                dashboard=slug,
                subject=f"Wochenbericht: {titles.get(slug, slug)}",
                description=f"Wöchentlich: Dashboard {slug}, ausgeführt als {leader} (nur freigegebene Anrufe).",
            )
        if cfg.leader_csv:
            add(
                leader,
                name=f"{REPORT_PREFIX}Wochenbericht CSV für {leader}",
                report_format="CSV",
                chart=WEEKLY_CSV_CHART,
                subject=CSV_SUBJECT,
                description=f"Wöchentlich: Kennzahlen je Agent und Tag als CSV, ausgeführt als {leader}.",
            )
    if cfg.analyst_csv:
        for analyst in sorted(set(directory.analysts)):
            add(
                analyst,
                name=f"{REPORT_PREFIX}Wochenbericht CSV für {analyst}",
                report_format="CSV",
                chart=WEEKLY_CSV_CHART,
                subject=CSV_SUBJECT,
                description="Wöchentlich: Kennzahlen je Agent und Tag als CSV.",
            )
    skipped = sorted(set(skipped))
    return specs, skipped


def report_payload(spec: ReportSpec, owner_id: int, target_id: int) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "type": "Report",
        "name": spec.name,
        "description": spec.description,
        "active": True,
        "crontab": spec.crontab,
        "timezone": spec.timezone,
        "owners": [owner_id],
        "recipients": [{"type": "Email", "recipient_config_json": {"target": ", ".join(spec.recipients)}}],
        "report_format": spec.report_format,
        "email_subject": spec.subject or spec.name,
        "creation_method": "alerts_reports",
        "log_retention": 90,
        "working_timeout": 900,
        "force_screenshot": False,
    }
    if spec.dashboard:
        payload["dashboard"] = target_id
    else:
        payload["chart"] = target_id
    return payload


def csv_query_context(params: dict[str, Any], dataset_id: int) -> dict[str, Any]:
    """The saved query context a CSV report runs (Superset needs one; charts imported from YAML have none)."""
    time_range = params.get("time_range", "No filter")
    metrics = list(params["metrics"])
    form_data = {**params, "datasource": f"{dataset_id}__table", "viz_type": "table", "result_format": "csv"}
    return {
        "datasource": {"id": dataset_id, "type": "table"},
        "force": False,
        "queries": [
            {
                "filters": [{"col": "call_date", "op": "TEMPORAL_RANGE", "val": time_range}],
                "extras": {"having": "", "where": ""},
                "applied_time_extras": {},
                "columns": list(params["groupby"]),
                "metrics": metrics,
                "orderby": [[c, True] for c in params["groupby"]],
                "annotation_layers": [],
                "row_limit": params.get("row_limit", 10000),
                "series_limit": 0,
                "order_desc": bool(params.get("order_desc", False)),
                "url_params": {},
                "custom_params": {},
                "custom_form_data": {},
            }
        ],
        "form_data": form_data,
        "result_format": "csv",
        "result_type": "full",
    }


class ReportSync:
    """Thin adapter: makes Superset's callsight reports equal to the specs."""

    def __init__(self, client: SupersetClient):
        self.c = client

    def save_query_context(self, chart_uuid: str, params: dict[str, Any], dataset_id: int) -> int:
        chart_id = self.chart_id(chart_uuid)
        qc = csv_query_context(params, dataset_id)
        self.c.put(f"/api/v1/chart/{chart_id}", {"query_context": json.dumps(qc), "query_context_generation": True})
        return chart_id

    def chart_id(self, uuid: str) -> int:
        for chart in self.c.list_all("chart", columns=("id", "uuid")):
            if chart.get("uuid") == uuid:
                return chart["id"]
        raise RuntimeError(f"chart {uuid} not found in Superset: were the assets imported?")

    def sync(
        self, specs: list[ReportSpec], user_ids: dict[str, int], dashboard_ids: dict[str, int]
    ) -> ReportSyncResult:
        result = ReportSyncResult()
        existing = {
            r["name"]: r["id"]
            for r in self.c.list_all("report", columns=("id", "name"))
            if r["name"].startswith(REPORT_PREFIX)
        }
        chart_ids: dict[str, int] = {}
        for spec in specs:
            if spec.owner not in user_ids:
                result.skipped.append(f"{spec.owner}: no Superset user")
                continue
            if spec.dashboard:
                if spec.dashboard not in dashboard_ids:
                    raise RuntimeError(f"report {spec.name!r}: unknown dashboard {spec.dashboard!r}")
                target = dashboard_ids[spec.dashboard]
            else:
                target = chart_ids.setdefault(spec.chart, self.chart_id(spec.chart))
            payload = report_payload(spec, user_ids[spec.owner], target)
            if spec.name in existing:
                self.c.put(f"/api/v1/report/{existing[spec.name]}", payload)
                result.updated.append(spec.name)
            else:
                self.c.post("/api/v1/report/", payload)
                result.created.append(spec.name)
        wanted = {s.name for s in specs}
        for name, report_id in sorted(existing.items()):
            if name not in wanted:
                self.c.delete(f"/api/v1/report/{report_id}")
                result.deleted.append(name)
        return result
