"""Provision Superset from code: warehouse connection and assets, roles, users, row-level security.

Idempotent: running it again updates what exists and never duplicates. Built-in roles are left alone
(`superset init` resets them); callsight's roles are its own.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from callsight.bi.api import SupersetAPIError, SupersetClient
from callsight.bi.assets import admin_only, bundle, load_assets, render, uuids_of
from callsight.bi.reports import WEEKLY_CSV_CHART, ReportSync, ReportSyncResult, report_specs
from callsight.bi.security_events import import_security_events
from callsight.privacy.audit import record_audit_entries
from callsight.publish.builds import served_build_id
from callsight.site.directory import Directory, load_directory
from callsight.site.policy import Policy, load_policy
from callsight.site.settings import Settings

ROLE_VIEWER = "callsight_viewer"
ROLE_ANALYST = "callsight_analyst"
ROLE_ADMIN = "Admin"  # built-in; admins are exempt from RLS and see all masked calls
CALLSIGHT_ROLES = (ROLE_VIEWER, ROLE_ANALYST)
DATABASE_NAME = "callsight"
MARTS_SCHEMA = "marts"
ANALYST_SCHEMA = "analyst"  # views of the marts with agents under the analysts' labels (SQL Lab)

RLS_VIEWER_NAME = "callsight: calls the viewer may see"
RLS_DENY_NAME = "callsight: default deny"
RLS_VIEWER_CLAUSE = (
    "agent_username IN (SELECT agent_username FROM security.viewer_agents "
    "WHERE viewer_username = '{{ current_username() }}')"
)

# What a dashboard viewer may do, besides reading our datasets: a least-privilege cut of Gamma.
VIEWER_PERMISSIONS: tuple[tuple[str, str], ...] = (
    ("can_read", "Dashboard"),
    ("can_read", "Chart"),
    ("can_read", "Dataset"),
    ("can_read", "DashboardFilterStateRestApi"),
    ("can_write", "DashboardFilterStateRestApi"),
    ("can_read", "DashboardPermalinkRestApi"),
    ("can_write", "DashboardPermalinkRestApi"),
    ("can_read", "ExploreFormDataRestApi"),
    ("can_write", "ExploreFormDataRestApi"),
    ("can_read", "ExplorePermalinkRestApi"),
    ("can_write", "ExplorePermalinkRestApi"),
    ("can_read", "Explore"),
    ("can_explore", "Superset"),
    ("can_explore_json", "Superset"),
    ("can_dashboard", "Superset"),
    ("can_slice", "Superset"),
    ("can_csv", "Superset"),
    ("can_export_csv", "SQLLab"),
    ("can_read", "SecurityRestApi"),
    ("can_time_range", "Api"),
    ("can_query_form_data", "Api"),
    ("can_query", "Api"),
    ("can_get", "Datasource"),
    ("can_samples", "Datasource"),
    ("can_external_metadata", "Datasource"),
    ("can_read", "AvailableDomains"),
    ("can_read", "CssTemplate"),
    ("can_read", "EmbeddedDashboard"),
    ("can_userinfo", "UserDBModelView"),
    ("resetmypassword", "UserDBModelView"),
    ("can_this_form_get", "ResetMyPasswordView"),
    ("can_this_form_post", "ResetMyPasswordView"),
    ("can_recent_activity", "Log"),
    ("can_log", "Superset"),
    ("can_language_pack", "Superset"),
    ("can_view_chart_as_table", "Dashboard"),
    ("can_drill", "Dashboard"),
    ("can_read", "CurrentUserRestApi"),
    ("can_read", "Tag"),
    ("can_read", "Annotation"),
    ("menu_access", "Dashboards"),
    ("menu_access", "Charts"),
    ("can_export", "Chart"),
    ("can_export", "Dashboard"),
)
# SQL Lab for analysts (on top of the viewer set); database access is limited to the marts schema.
ANALYST_PERMISSIONS: tuple[tuple[str, str], ...] = (
    ("menu_access", "SQL Lab"),
    ("menu_access", "SQL Editor"),
    ("menu_access", "Query Search"),
    ("menu_access", "Saved Queries"),
    ("can_sqllab", "Superset"),
    ("can_sqllab_history", "Superset"),
    ("can_read", "SQLLab"),
    ("can_execute_sql_query", "SQLLab"),
    ("can_format_sql", "SQLLab"),
    ("can_get_results", "SQLLab"),
    ("can_estimate_query_cost", "SQLLab"),
    ("can_export_csv", "SQLLab"),
    ("can_read", "Query"),
    ("can_read", "SavedQuery"),
    ("can_write", "SavedQuery"),
    ("can_read", "Database"),
    ("can_activate", "TabStateView"),
    ("can_delete", "TabStateView"),
    ("can_delete_query", "TabStateView"),
    ("can_get", "TabStateView"),
    ("can_migrate_query", "TabStateView"),
    ("can_post", "TabStateView"),
    ("can_put", "TabStateView"),
    ("can_delete", "TableSchemaView"),
    ("can_expanded", "TableSchemaView"),
    ("can_post", "TableSchemaView"),
    ("can_list", "SavedQuery"),
    ("can_write", "Dataset"),
    ("can_write", "Chart"),
    ("can_write", "Dashboard"),
)


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


def role_for(directory: Directory, username: str) -> str:
    if username in directory.admins:
        return ROLE_ADMIN
    if username in directory.analysts:
        return ROLE_ANALYST
    return ROLE_VIEWER


def user_change(existing: dict, payload: dict, roles: dict[str, int]) -> dict[str, str | int]:
    """Pure: what provisioning would change on an existing Superset user (empty: nothing), for the audit
    log - the role by name, the rest as flags (no names or addresses)."""
    names = {v: k for k, v in roles.items()}
    have = sorted(
        names.get(r["id"], str(r["id"])) if isinstance(r, dict) else str(r) for r in existing.get("roles", [])
    )
    want = sorted(names.get(r, str(r)) for r in payload["roles"])
    change: dict[str, str | int] = {}
    if have != want:
        change["role"] = ", ".join(want)
        change["previous_role"] = ", ".join(have) or "-"
    if not existing.get("active", True):
        change["reactivated"] = 1
    if any(existing.get(k) != payload[k] for k in ("first_name", "last_name", "email")):
        change["profile_updated"] = 1
    if change:
        change["change"] = "updated"
    return change


def rls_differs(existing: dict, wanted: dict) -> bool:
    """Pure: does an RLS rule as listed by Superset differ from the wanted payload? (The list carries no
    description; a changed description alone is not a change of access.)"""

    def ids(items: list) -> list[int]:
        return sorted(i["id"] if isinstance(i, dict) else i for i in items)

    return (
        existing.get("clause") != wanted["clause"]
        or existing.get("filter_type") != wanted["filter_type"]
        or existing.get("group_key") != wanted["group_key"]
        or ids(existing.get("tables", [])) != sorted(wanted["tables"])
        or ids(existing.get("roles", [])) != sorted(wanted["roles"])
    )


def split_name(name: str) -> tuple[str, str]:
    first, _, last = name.strip().rpartition(" ")
    return (first or last, last if first else "-")


class Provisioner:
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
    ):
        self.c = client
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
        self.c.import_assets(bundle(render(assets, self.served_db, served_build_id(self.served_db))))
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
        self._verify_metrics(assets)
        self.scope_native_filters(assets)

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

    # ---- roles --------------------------------------------------------------------------------
    def _pvm_index(self) -> dict[tuple[str, str], int]:
        index: dict[tuple[str, str], int] = {}
        for p in self.c.list_all("security/permissions-resources", page_size=100):
            index[(p["permission"]["name"], p["view_menu"]["name"])] = p["id"]
        return index

    def _role_ids(self) -> dict[str, int]:
        return {r["name"]: r["id"] for r in self.c.list_all("security/roles")}

    def _role_permission_ids(self, role_id: int) -> set[int]:
        result = self.c.get(f"/api/v1/security/roles/{role_id}/permissions/")["result"]
        return {p["id"] for p in result}

    def ensure_roles(self) -> dict[str, int]:
        roles = self._role_ids()
        for name in CALLSIGHT_ROLES:
            if name not in roles:
                roles[name] = self.c.post("/api/v1/security/roles/", {"name": name})["id"]
        index = self._pvm_index()
        db_name = DATABASE_NAME
        # datasource_access views look like "[callsight].[fct_calls](id:3)"; admin-only datasets (the marts
        # with real usernames, quarantine, audit log) are left out: only the Admin role reads them. Viewers
        # get the dashboard datasets, analysts also the analyst schema.
        hidden = admin_only(load_assets(), "datasets")
        open_datasets = {k: v for k, v in self.report.datasets.items() if k.split(".", 1)[1] not in hidden}

        def access(schemas: set[str]) -> list[tuple[str, str]]:
            tables = {k.split(".", 1)[1] for k in open_datasets if k.split(".", 1)[0] in schemas}
            return [
                k
                for k in index
                if k[0] == "datasource_access" and any(k[1].startswith(f"[{db_name}].[{t}]") for t in tables)
            ]

        viewer_datasets = access({MARTS_SCHEMA})
        analyst_datasets = access({MARTS_SCHEMA, ANALYST_SCHEMA})
        datasource_perms = analyst_datasets
        schema_perm = ("schema_access", f"[{db_name}].[{ANALYST_SCHEMA}]")

        def ids(perms: Iterable[tuple[str, str]]) -> list[int]:
            out = []
            for p in perms:
                if p in index:
                    out.append(index[p])
                elif p not in datasource_perms and f"{p[0]} on {p[1]}" not in self.report.missing_permissions:
                    self.report.missing_permissions.append(f"{p[0]} on {p[1]}")
            return sorted(set(out))

        viewer = ids([*VIEWER_PERMISSIONS, *viewer_datasets])
        analyst = ids([*VIEWER_PERMISSIONS, *ANALYST_PERMISSIONS, *analyst_datasets, schema_perm])
        if schema_perm not in index:
            raise RuntimeError(f"permission {schema_perm} not found: was the warehouse imported?")
        # POST .../permissions REPLACES the role's permissions: exactly this set, nothing stale.
        for role, wanted in ((ROLE_VIEWER, viewer), (ROLE_ANALYST, analyst)):
            before = self._role_permission_ids(roles[role])
            if set(wanted) == before:
                continue
            self.c.post(f"/api/v1/security/roles/{roles[role]}/permissions", {"permission_view_menu_ids": wanted})
            self.report.changes.append(
                (
                    f"role:{role}",
                    {
                        "permissions_added": len(set(wanted) - before),
                        "permissions_removed": len(before - set(wanted)),
                        "permissions": len(wanted),
                    },
                )
            )
        self.report.roles = {k: roles[k] for k in (*CALLSIGHT_ROLES, ROLE_ADMIN) if k in roles}
        return roles

    # ---- users --------------------------------------------------------------------------------
    def sync_users(self, roles: dict[str, int]) -> None:
        existing = {u["username"]: u for u in self.c.list_all("security/users")}
        wanted = {u.username: u for u in self.directory.users}
        for username, user in wanted.items():
            first, last = split_name(user.name)
            role = role_for(self.directory, username)
            payload = {
                "first_name": first,
                "last_name": last,
                "username": username,
                "email": user.email or f"{username}@invalid.local",
                "active": True,
                "roles": [roles[role]],
            }
            if username in existing:
                change = user_change(existing[username], payload, roles)
                if change:
                    if change.get("role") == ROLE_ADMIN and self.admin_user_password:
                        payload["password"] = self.admin_user_password  # promoted: not the members' password
                    self.c.put(f"/api/v1/security/users/{existing[username]['id']}", payload)
                    self.report.users_updated.append(username)
                    self.report.changes.append((f"user:{username}", change))
            else:
                # Without a demo password, users get an unguessable one: production logins go through
                # the company's identity provider or a password reset by the admin.
                own = self.admin_user_password if role == ROLE_ADMIN else None
                payload["password"] = own or self.user_password or secrets.token_urlsafe(32)
                self.c.post("/api/v1/security/users/", payload)
                self.report.users_created.append(username)
                self.report.changes.append((f"user:{username}", {"change": "created", "role": role}))
        callsight_role_ids = {roles[r] for r in CALLSIGHT_ROLES} | {roles[ROLE_ADMIN]}
        for username, u in existing.items():
            if username in wanted or username == self.bootstrap_admin:
                continue
            detail = self.c.get(f"/api/v1/security/users/{u['id']}")["result"]
            role_ids = {r["id"] for r in detail.get("roles", [])}
            if role_ids & callsight_role_ids and detail.get("active", True):
                self.c.put(f"/api/v1/security/users/{u['id']}", {"active": False})
                self.report.users_deactivated.append(username)
                self.report.changes.append((f"user:{username}", {"change": "deactivated"}))

    # ---- row-level security -------------------------------------------------------------------
    def ensure_rls(self, roles: dict[str, int]) -> None:
        call_tables = sorted(self.report.datasets[k] for k in self.report.call_datasets)
        all_tables = sorted(self.report.datasets.values())
        rules = {
            RLS_VIEWER_NAME: {
                "tables": call_tables,
                "filter_type": "Regular",
                "roles": [roles[ROLE_VIEWER]],
                "group_key": "callsight_viewer",
                "clause": RLS_VIEWER_CLAUSE,
                "description": "Own calls; group calls where the org directory allows it.",
            },
            RLS_DENY_NAME: {
                "tables": all_tables,
                "filter_type": "Base",
                "roles": [roles[ROLE_VIEWER], roles[ROLE_ANALYST], roles[ROLE_ADMIN]],
                "group_key": "callsight_deny",
                "clause": "1 = 0",
                "description": "Anyone without a callsight role sees no call rows.",
            },
        }
        existing = {r["name"]: r for r in self.c.list_all("rowlevelsecurity")}
        for name, rule in rules.items():
            payload = {"name": name, **rule}
            if name in existing:
                if rls_differs(existing[name], payload):
                    self.c.put(f"/api/v1/rowlevelsecurity/{existing[name]['id']}", payload)
                    self.report.changes.append((f"rls:{name}", {"change": "updated", "tables": len(rule["tables"])}))
            else:
                self.c.post("/api/v1/rowlevelsecurity/", payload)
                self.report.changes.append((f"rls:{name}", {"change": "created", "tables": len(rule["tables"])}))
            self.report.rls_rules.append(name)

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
        if self.with_reports:
            self.sync_reports()
        return self.report


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
    ).run()
    record_audit_entries(settings, "provisioning", report.audit_entries())
    import_security_events(settings)  # refused queries and login bursts since the last run
    return report


__all__ = ["ROLE_ADMIN", "ROLE_ANALYST", "ROLE_VIEWER", "ProvisionReport", "Provisioner", "SupersetAPIError"]
