"""Superset provisioned from the org directory after every publish."""

import dagster as dg
import requests

from callsight.bi.admin_passwords import SharedPasswordError, set_admin_passwords
from callsight.bi.api import SupersetAPIError
from callsight.bi.provision import provision_superset
from callsight.defs.resources import SiteResource


@dg.asset(group_name="publish", deps=[dg.AssetKey("published_warehouse")], kinds={"superset"})
def superset_access(context: dg.AssetExecutionContext, site: SiteResource) -> dg.MaterializeResult:
    """Superset users, roles, RLS and assets synced from the org directory after every publish: a user
    removed from the directory can no longer log in after the next run."""
    s = site.settings()
    admin_password = s.secret("SUPERSET_ADMIN_PASSWORD")
    if not admin_password:
        context.log.warning("Superset sync skipped: SUPERSET_ADMIN_PASSWORD is not set for the nightly job")
        return dg.MaterializeResult(metadata={"skipped": True})
    try:
        requests.get(f"{s.superset_url}/health", timeout=10).raise_for_status()
    except requests.RequestException as exc:
        context.log.warning(
            f"Superset sync skipped: {s.superset_url} not reachable ({type(exc).__name__}); "
            "`callsight serve` provisions when it starts"
        )
        return dg.MaterializeResult(metadata={"skipped": True})
    try:
        report = provision_superset(s, s.superset_url, admin_password, s.secret("CALLSIGHT_DEMO_PASSWORD"))
        set_admin_passwords(s, s.superset_url, admin_password)  # demo: admins' own password
    except (requests.RequestException, SupersetAPIError, SharedPasswordError) as exc:
        raise dg.Failure(description=f"Superset at {s.superset_url} could not be synced: {exc}") from exc
    return dg.MaterializeResult(
        metadata={
            "skipped": False,
            "users_created": len(report.users_created),
            "users_updated": len(report.users_updated),
            "users_deactivated": dg.MetadataValue.text(", ".join(report.users_deactivated) or "-"),
        }
    )
