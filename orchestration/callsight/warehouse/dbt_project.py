"""The one DbtProject object shared by the dbt assets and the dbt resource."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Mapping, Sequence
from functools import cache, cached_property
from pathlib import Path

from dagster_dbt import DagsterDbtProjectPreparer, DbtCliResource, DbtProject
from packaging import version

DBT_PROJECT_DIR = Path(__file__).resolve().parents[3] / "dbt_project"


@cache
def dbt_project() -> DbtProject:
    """dbt's DBT_TARGET_PATH (relative to the project, default `target`) is honoured here as by dbt and
    dagster-dbt: processes that build side by side (the test workers) keep their artefacts apart."""
    target = os.environ.get("DBT_TARGET_PATH") or "target"
    return DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR, target_path=Path(target))


def dbt_executable() -> str:
    """dbt of this (pipeline) environment, whether or not its bin directory is on PATH."""
    return str(Path(sys.executable).with_name("dbt"))


def put_env_bin_on_path() -> None:
    """dagster-dbt's manifest preparer looks dbt up on PATH."""
    bin_dir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if bin_dir not in path.split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + path


class CallsightDbtCliResource(DbtCliResource):
    """dagster-dbt's resource, minus two costs per invocation that buy us nothing (docs/performance.md):
    a `dbt --version` subprocess (the dbt executable is this environment's, so its version is the
    installed dbt-core's) and dbt's adapter loaded into the Dagster process, which dagster-dbt uses only
    to fetch row counts and column metadata after a build (we ask for neither)."""

    @cached_property
    def _cli_version(self) -> version.Version:
        if Path(self.dbt_executable) == Path(dbt_executable()):
            from dbt.version import __version__

            return version.parse(__version__)
        return super()._cli_version

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> None:  # type: ignore[override]
        return None


class CallsightDbtProjectPreparer(DagsterDbtProjectPreparer):
    """dagster-dbt's manifest preparer, parsing with CallsightDbtCliResource."""

    def _prepare_manifest(self, project: DbtProject) -> None:
        dbt_resource().cli(self._prepare_project_cli_args, target_path=project.target_path).wait()
        self._invalidate_seeds_in_partial_parse(project)


def dbt_resource() -> DbtCliResource:
    return CallsightDbtCliResource(project_dir=dbt_project(), dbt_executable=dbt_executable())


def build_vars(policy_vars: Mapping[str, object]) -> dict[str, object]:
    """The vars of the nightly `dbt build`: the policy's values and the build fingerprint."""
    return {**policy_vars, "build_fingerprint": model_fingerprint(dict(policy_vars), DBT_PROJECT_DIR)}


def vars_arg(dbt_vars: Mapping[str, object]) -> str:
    return json.dumps(dict(dbt_vars), sort_keys=True)


def ensure_manifest(dbt_vars: Mapping[str, object] | None = None) -> Path:
    """Parse the dbt project (partial parsing keeps it to a few seconds), so the Dagster assets always
    match the models in the checkout: a stale manifest would describe models that no longer exist.

    Parse with the vars the build will get (`build_vars`): dbt keeps one partial-parse state per target
    directory and re-parses the whole project when a command's vars differ from those it was saved
    with, so a parse with the default vars made every nightly build parse everything again."""
    put_env_bin_on_path()
    project = dbt_project()
    stamp = project.project_dir / project.target_path / "callsight-parse.sha256"
    key = parse_key(dbt_vars)

    def stamped() -> str:  # the key and the manifest it produced (any other dbt command rewrites it)
        return f"{key} {project.manifest_path.stat().st_mtime_ns}"

    if project.manifest_path.exists() and stamp.exists() and stamp.read_text(encoding="ascii") == stamped():
        return project.manifest_path  # parsed from these very files, vars and profile: no dbt process
    args = ["parse", "--quiet"] + (["--vars", vars_arg(dbt_vars)] if dbt_vars else [])
    CallsightDbtProjectPreparer(prepare_project_cli_args=args).prepare(project)
    stamp.write_text(stamped(), encoding="ascii")
    return project.manifest_path


def parse_key(dbt_vars: Mapping[str, object] | None) -> str:
    """What a parse depends on: every file of the dbt project (not target/ and logs/), the vars, the
    profile's environment (CALLSIGHT_HOME) and the dbt version."""
    from dbt.version import __version__

    digest = hashlib.sha256(
        json.dumps(
            [dict(dbt_vars or {}), os.environ.get("CALLSIGHT_HOME"), __version__], sort_keys=True, default=str
        ).encode()
    )
    skip = {"target", "logs", "dbt_packages"}
    for f in sorted(DBT_PROJECT_DIR.rglob("*")):
        rel = f.relative_to(DBT_PROJECT_DIR)
        if f.is_file() and rel.parts[0] not in skip:
            digest.update(rel.as_posix().encode() + b"\0" + f.read_bytes())
    return digest.hexdigest()


def model_fingerprint(dbt_vars: dict, project_dir: Path) -> str:
    """Hash of the policy vars and of the dbt code (models with their contracts and tests, macros,
    singular tests, project file). When it changes, the incremental models are rebuilt from scratch:
    their rows were computed, or tested (the facts' tests read the changed weeks), by other rules."""
    digest = hashlib.sha256(json.dumps(dbt_vars, sort_keys=True).encode())
    files = [
        project_dir / "dbt_project.yml",
        *sorted((project_dir / "models").rglob("*.sql")),
        *sorted(f for f in (project_dir / "models").rglob("*.yml") if f.name != "exposures.yml"),  # not lineage
        *sorted((project_dir / "macros").rglob("*.sql")),
        *sorted((project_dir / "tests").rglob("*.sql")),
    ]
    for f in files:
        digest.update(f.relative_to(project_dir).as_posix().encode())
        digest.update(f.read_bytes())
    return digest.hexdigest()[:16]
