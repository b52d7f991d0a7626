"""The one DbtProject object shared by the dbt assets and the dbt resource."""

from __future__ import annotations

import os
import sys
from functools import cache
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject

DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"


@cache
def dbt_project() -> DbtProject:
    return DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def dbt_executable() -> str:
    """dbt of this (pipeline) environment, whether or not its bin directory is on PATH."""
    return str(Path(sys.executable).with_name("dbt"))


def put_env_bin_on_path() -> None:
    """dagster-dbt's manifest preparer looks dbt up on PATH."""
    bin_dir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if bin_dir not in path.split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + path


def dbt_resource() -> DbtCliResource:
    return DbtCliResource(project_dir=dbt_project(), dbt_executable=dbt_executable())


def ensure_manifest() -> Path:
    """Parse the dbt project (partial parsing keeps it to a few seconds), so the Dagster assets always
    match the models in the checkout: a stale manifest would describe models that no longer exist."""
    put_env_bin_on_path()
    project = dbt_project()
    project.preparer.prepare(project)
    return project.manifest_path
