"""callsight's Superset roles: what a viewer and an analyst may do, and granting exactly that.

Built-in roles are left alone (`superset init` resets them); the Admin role is only named here.
"""

from __future__ import annotations

from collections.abc import Iterable

from callsight.bi.api import SupersetClient
from callsight.bi.assets import admin_only, load_assets
from callsight.site.directory import Directory

ROLE_VIEWER = "callsight_viewer"
ROLE_ANALYST = "callsight_analyst"
ROLE_ADMIN = "Admin"  # built-in; admins are exempt from RLS and see all masked calls
CALLSIGHT_ROLES = (ROLE_VIEWER, ROLE_ANALYST)
DATABASE_NAME = "callsight"
MARTS_SCHEMA = "marts"
ANALYST_SCHEMA = "analyst"  # views of the marts with agents under the analysts' labels (SQL Lab)

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


def role_for(directory: Directory, username: str) -> str:
    if username in directory.admins:
        return ROLE_ADMIN
    if username in directory.analysts:
        return ROLE_ANALYST
    return ROLE_VIEWER


class RoleGrants:
    """The role steps of the Provisioner, which holds the client (`self.c`) and the run's report
    (`self.report`)."""

    c: SupersetClient

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
