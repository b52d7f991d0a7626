"""The run's resources: the site (settings, org directory, policy) and dbt."""

from datetime import UTC, date, datetime

import dagster as dg
from pydantic import PrivateAttr

from callsight.privacy.retention import RUN_DATE_TAG, resolve_run_date
from callsight.site.directory import Directory, load_directory
from callsight.site.file_modes import restrict_umask
from callsight.site.policy import Policy, load_policy
from callsight.site.settings import Settings
from callsight.warehouse.dbt_project import dbt_resource


class SiteResource(dg.ConfigurableResource):
    """Site settings, org directory and policy, each read on first use in a run and kept for the rest of
    it (never at import). A bad file fails the asset that first needs it."""

    _settings: Settings | None = PrivateAttr(default=None)
    _directory: Directory | None = PrivateAttr(default=None)
    _policy: Policy | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._settings = self._directory = self._policy = None  # each run reads the site anew

    def settings(self) -> Settings:
        # What a run writes is owner-only, whichever process runs it (file_modes).
        restrict_umask()
        if self._settings is None:
            self._settings = Settings.from_env()
        return self._settings

    def directory(self) -> Directory:
        if self._directory is None:
            self._directory = load_directory(self.settings().effective_directory_path)
        return self._directory

    def policy(self) -> Policy:
        if self._policy is None:
            self._policy = load_policy(self.settings().effective_policy_path)
        return self._policy

    def run_date(self, context: dg.AssetExecutionContext) -> date:
        """The run's date in the site time zone (when it was created; a later date may come as a run tag)."""
        record = context.instance.get_run_record_by_id(context.run.run_id)
        created = record.create_timestamp if record else datetime.now(UTC)
        return resolve_run_date(created.astimezone(self.policy().tz).date(), context.run.tags.get(RUN_DATE_TAG))


def resources() -> dict[str, dg.ConfigurableResource]:
    """Built when the definitions load: the dbt project reads DBT_TARGET_PATH then."""
    return {"dbt": dbt_resource(), "site": SiteResource()}
