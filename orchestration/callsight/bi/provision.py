"""Provision Superset from code: warehouse connection and assets, roles, users, row-level security.

Idempotent: running it again updates what exists and never duplicates. Built-in roles are left alone
(`superset init` resets them); callsight's roles are its own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import requests

from callsight.bi.api import SupersetAPIError, SupersetClient
from callsight.bi.assets import admin_only, bundle, load_assets, render, uuids_of
from callsight.bi.reports import WEEKLY_CSV_CHART, ReportSync, ReportSyncResult, report_specs
from callsight.bi.roles import DATABASE_NAME, ROLE_ADMIN, ROLE_ANALYST, ROLE_VIEWER, RoleGrants
from callsight.bi.security_events import import_security_events
from callsight.bi.ui_edits import STORE_NAME, UiEditGuard
from callsight.bi.users import UserAccess
from callsight.privacy.audit import record_audit_entries
from callsight.publish.builds import served_build_id
from callsight.site.directory import Directory, load_directory
from callsight.site.policy import Policy, load_policy
from callsight.site.settings import Settings

# The SQL Lab tab every analyst finds first: the warehouse, schema analyst, a query that runs as it is.
SQLLAB_TAB_LABEL = "Start: Anrufe pro Tag"
SQLLAB_STARTER_SQL = """-- Anrufe pro Tag der letzten 30 Tage (analyst.calls: ein Anrufbein je Zeile)
SELECT call_date,
       count(*) FILTER (WHERE is_inbound) AS eingehend,
       count(*) FILTER (WHERE is_inbound AND is_answered) AS angenommen,
       count(*) FILTER (WHERE NOT is_inbound) AS ausgehend
FROM analyst.calls
WHERE call_date >= current_date - INTERVAL 30 DAY
GROUP BY call_date
ORDER BY call_date"""


def form_login(url: str, username: str, password: str) -> requests.Session | None:
    """A browser-like session (login form, cookie, CSRF header): SQL Lab's tab endpoint takes no token."""
    web = requests.Session()
    page = web.get(f"{url}/login/", timeout=60).text
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', page
    )
    if not token:
        return None
    r = web.post(f"{url}/login/", data={"username": username, "password": password, "csrf_token": token[1]}, timeout=60)
    if not r.ok or "/login" in r.url:
        return None
    csrf = web.get(f"{url}/api/v1/security/csrf_token/", timeout=60)
    csrf.raise_for_status()
    web.headers.update({"X-CSRFToken": csrf.json()["result"], "Referer": url})
    return web


def starter_tab(database_id: int) -> dict[str, object]:
    """Pure: the query editor SQL Lab's tab endpoint takes for the analysts' starter tab."""
    return {"name": SQLLAB_TAB_LABEL, "dbId": database_id, "schema": "analyst", "sql": SQLLAB_STARTER_SQL}


@dataclass
class ProvisionReport:
    roles: dict[str, int] = field(default_factory=dict)
    users_created: list[str] = field(default_factory=list)
    users_updated: list[str] = field(default_factory=list)
    users_deactivated: list[str] = field(default_factory=list)
    datasets: dict[str, int] = field(default_factory=dict)
    dashboards: dict[str, int] = field(default_factory=dict)
    call_datasets: list[str] = field(default_factory=list)
    rls_rules: list[str] = field(default_factory=list)
    missing_permissions: list[str] = field(default_factory=list)
    reports: ReportSyncResult | None = None  # None: not provisioned (no production profile)
    # What this run changed, for the audit log: (subject, detail) - users, roles, RLS rules, reports.
    changes: list[tuple[str, dict[str, str | int]]] = field(default_factory=list)

    def audit_entries(self) -> list[tuple[str, dict[str, str | int]]]:
        """Pure: the changes plus those of the report sync, one audit entry each."""
        out = list(self.changes)
        if self.reports is not None:
            for kind in ("created", "updated", "deleted"):
                out += [(f"report:{name}"[:200], {"change": kind}) for name in getattr(self.reports, kind)]
        return out


class Provisioner(RoleGrants, UserAccess):
    """One provisioning run: assets and reports here; roles (RoleGrants), users and row-level security
    (UserAccess) beside this module."""

    def __init__(
        self,
        client: SupersetClient,
        directory: Directory,
        served_db: Path,
        user_password: str | None,
        bootstrap_admin: str,
        policy: Policy | None = None,
        with_reports: bool = False,
        admin_user_password: str | None = None,
        ldap_logins: bool = False,
        ui_edits: UiEditGuard | None = None,
    ):
        self.c = client
        self.ui_edits = ui_edits  # edits made in Superset's UI: found, audited, overwritten or kept
        self.ldap_logins = ldap_logins  # no demo passwords: logins go to the company's LDAP / AD
        # The demo's password of the directory's admins: an Admin-role login never gets the members' one.
        self.admin_user_password = admin_user_password
        self.policy = policy or Policy()
        self.with_reports = with_reports
        self.directory = directory
        self.served_db = served_db
        self.user_password = user_password
        self.bootstrap_admin = bootstrap_admin
        self.report = ProvisionReport()

    # ---- assets -------------------------------------------------------------------------------
    def import_assets(self) -> None:
        assets = load_assets()
        rendered = render(assets, self.served_db, served_build_id(self.served_db))
        guard = self.ui_edits
        imported = guard.before(self.c, rendered) if guard else rendered
        # An asset kept as edited in the UI is left out: the bundle's others find it in Superset (sparse).
        self.c.import_assets(bundle(imported), sparse=len(imported) < len(rendered))
        wanted = uuids_of(assets, "datasets")
        # Marts over call data carry the viewer's row filter: the physical datasets with an agent_username
        # column. Superset applies it inside every virtual dataset reading them; the dashboard datasets'
        # agent_username holds labels in works-council mode and filters the viewer's agents itself.
        self.report.call_datasets = sorted(
            f"{c['schema']}.{c['table_name']}"
            for n, c in assets.items()
            if n.startswith("datasets/")
            and not c.get("sql")
            and any(col["column_name"] == "agent_username" for col in c["columns"])
        )
        for ds in self.c.list_all("dataset"):
            detail = self.c.get(f"/api/v1/dataset/{ds['id']}")["result"]
            if detail.get("uuid") in wanted:
                self.report.datasets[f"{detail['schema']}.{detail['table_name']}"] = ds["id"]
        missing = set(wanted.values()) - {k.split(".", 1)[1] for k in self.report.datasets}
        if missing:
            raise RuntimeError(f"datasets missing after import: {sorted(missing)}")
        self._verify_metrics({n: c for n, c in assets.items() if n in imported})
        self.scope_native_filters(assets)
        if guard:
            guard.after(self.c, rendered)
            self.report.changes += guard.audit_entries()

    def scope_native_filters(self, assets: dict[str, dict]) -> None:
        """Point every native filter at the imported charts it covers. Superset 6.0/6.1 remaps chart ids
        in the layout and in `scope.excluded` on import but not `chartsInScope` (apache/superset#26338),
        which would leave filters applying to the wrong charts or none."""
        for name, config in assets.items():
            if not name.startswith("dashboards/"):
                continue
            dash = self.c.get(f"/api/v1/dashboard/{config['slug']}")["result"]
            self.report.dashboards[config["slug"]] = dash["id"]
            position = json.loads(dash["position_json"] or "{}")
            chart_ids = [
                c["meta"]["chartId"] for c in position.values() if isinstance(c, dict) and c.get("type") == "CHART"
            ]
            metadata = json.loads(dash["json_metadata"] or "{}")
            changed = False
            for f in metadata.get("native_filter_configuration", []):
                excluded = set(f.get("scope", {}).get("excluded", []))
                in_scope = sorted(i for i in chart_ids if i not in excluded)
                if f.get("chartsInScope") != in_scope:
                    f["chartsInScope"] = in_scope
                    changed = True
            if changed:
                self.c.put(f"/api/v1/dashboard/{dash['id']}", {"json_metadata": json.dumps(metadata)})

    def _verify_metrics(self, assets: dict[str, dict]) -> None:
        """Every dataset carries the metrics of its YAML (the charts and reports depend on them)."""
        for name, config in assets.items():
            if not name.startswith("datasets/"):
                continue
            ds_id = self.report.datasets[f"{config['schema']}.{config['table_name']}"]
            have = {m["metric_name"] for m in self.c.get(f"/api/v1/dataset/{ds_id}")["result"]["metrics"]}
            want = {m["metric_name"] for m in config["metrics"]}
            if not want <= have:
                raise RuntimeError(
                    f"dataset {config['table_name']}: metrics {sorted(want - have)} missing after import"
                )

    def database_id(self) -> int:
        for db in self.c.list_all("database", [("database_name", "eq", DATABASE_NAME)]):
            return db["id"]
        raise RuntimeError(f"database {DATABASE_NAME!r} not found after import")

    # ---- SQL Lab ------------------------------------------------------------------------------
    def ensure_sqllab_tabs(self) -> None:
        """Give each analyst the starter tab once (kept when they edit or close others). SQL Lab tabs
        belong to their user, so this logs in as the analyst: only where callsight knows the password."""
        # With LDAP logins nobody's password is known here: trying would only count as failed logins.
        if not self.user_password or self.ldap_logins:
            return
        database_id = self.database_id()
        for analyst in self.directory.analysts:
            web = form_login(self.c.base_url, analyst, self.user_password)
            if web is None:
                continue  # a password of their own (e.g. a directory login): SQL Lab opens as Superset's
            r = web.get(f"{self.c.base_url}/api/v1/sqllab/", timeout=60)
            r.raise_for_status()
            if any(t["label"] == SQLLAB_TAB_LABEL for t in r.json()["result"].get("tab_state_ids") or []):
                continue
            r = web.post(
                f"{self.c.base_url}/tabstateview/",
                data={"queryEditor": json.dumps(starter_tab(database_id))},
                timeout=60,
            )
            r.raise_for_status()
            self.report.changes.append((f"sqllab_tab:{analyst}", {"change": "created"}))

    # ---- e-mail reports -----------------------------------------------------------------------
    def sync_reports(self) -> ReportSyncResult:
        titles = {c["slug"]: c["dashboard_title"] for n, c in load_assets().items() if n.startswith("dashboards/")}
        specs, skipped = report_specs(self.directory, self.policy, titles)
        sync = ReportSync(self.c)
        if any(s.chart == WEEKLY_CSV_CHART for s in specs):
            chart = next(
                c for n, c in load_assets().items() if n.startswith("charts/") and c["uuid"] == WEEKLY_CSV_CHART
            )
            dataset = next(
                c for n, c in load_assets().items() if n.startswith("datasets/") and c["uuid"] == chart["dataset_uuid"]
            )
            sync.save_query_context(
                WEEKLY_CSV_CHART, chart["params"], self.report.datasets[f"{dataset['schema']}.{dataset['table_name']}"]
            )
        users = {u["username"]: u["id"] for u in self.c.list_all("security/users")}
        result = sync.sync(specs, users, self.report.dashboards)
        result.skipped = sorted(set(result.skipped) | set(skipped))
        self.report.reports = result
        return result

    def restrict_admin_dashboards(self, roles: dict[str, int]) -> None:
        """Dashboards marked admin_only are visible to the Admin role only (DASHBOARD_RBAC)."""
        for slug in sorted(admin_only(load_assets(), "dashboards")):
            self.c.put(f"/api/v1/dashboard/{self.report.dashboards[slug]}", {"roles": [roles[ROLE_ADMIN]]})

    def run(self) -> ProvisionReport:
        self.import_assets()
        roles = self.ensure_roles()
        self.restrict_admin_dashboards(roles)
        self.sync_users(roles)
        self.ensure_rls(roles)
        self.ensure_sqllab_tabs()
        if self.with_reports:
            self.sync_reports()
        return self.report


def ldap_logins(env: Mapping[str, str]) -> bool:
    """CALLSIGHT_AUTH: db (Superset's own passwords, the default) or ldap (superset/ldap_auth.py)."""
    auth = (env.get("CALLSIGHT_AUTH") or "db").strip().lower()
    if auth not in ("db", "ldap"):
        raise ValueError(f"CALLSIGHT_AUTH must be db or ldap, got {auth!r}")
    return auth == "ldap"


def provision_superset(settings: Settings, url: str, admin_password: str, user_password: str | None) -> ProvisionReport:
    """Log in as the bootstrap admin and provision everything from the directory (idempotent); every
    change to users, roles, RLS and reports goes into the site's audit log."""
    directory = load_directory(settings.effective_directory_path)
    policy = load_policy(settings.effective_policy_path)
    client = SupersetClient(url).login(settings.superset_admin_username, admin_password)
    report = Provisioner(
        client,
        directory,
        settings.served_db,
        user_password,
        settings.superset_admin_username,
        policy=policy,
        with_reports=settings.reports_profile,
        admin_user_password=settings.secret("CALLSIGHT_DEMO_ADMIN_PASSWORD"),
        ldap_logins=ldap_logins(settings.env),
        ui_edits=UiEditGuard(settings.superset_home / STORE_NAME, settings.ui_edits),
    ).run()
    record_audit_entries(settings, "provisioning", report.audit_entries())
    import_security_events(settings)  # refused queries and login bursts since the last run
    return report


__all__ = ["ROLE_ADMIN", "ROLE_ANALYST", "ROLE_VIEWER", "ProvisionReport", "Provisioner", "SupersetAPIError"]
