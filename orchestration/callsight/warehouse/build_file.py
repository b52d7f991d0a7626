"""The build file dbt writes: a copy of the served warehouse, never the served file itself.

Superset holds the served file open read-only and a DuckDB writer cannot open a file a reader holds,
so each night's dbt build works on a copy; publish (publish/builds.py) swaps the checked copy in."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def prepare_build(served: Path, build: Path) -> None:
    """Fresh build file: a copy of the served warehouse (the facts continue from the week files it lists)
    or empty."""
    build.parent.mkdir(parents=True, exist_ok=True)
    for stale in (build, build.with_name(build.name + ".wal"), build.with_name(build.name + ".tmp")):
        stale.unlink(missing_ok=True)
    if served.exists():
        tmp = build.with_name(build.name + ".tmp")
        shutil.copyfile(served, tmp)
        os.replace(tmp, build)
