"""ruff and sqlfluff clean: the code style is part of the suite, not a separate habit."""

import subprocess
import sys
from pathlib import Path

import duckdb

from callsight.site.settings import REPO_ROOT

from .conftest import dbt_target_env

BIN = Path(sys.executable).parent


def test_ruff_check_and_format() -> None:
    paths = ["orchestration", "tests", "superset", "bench"]  # superset/: the config and the modules beside it
    check = subprocess.run([str(BIN / "ruff"), "check", *paths], cwd=REPO_ROOT, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
    fmt = subprocess.run(
        [str(BIN / "ruff"), "format", "--check", *paths],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert fmt.returncode == 0, fmt.stdout


def test_sqlfluff_on_the_dbt_models(tmp_path: Path) -> None:
    # the dbt templater connects: give it an empty build dir and raw store of its own
    (tmp_path / "warehouse" / "build").mkdir(parents=True)
    duckdb.connect(str(tmp_path / "warehouse" / "journal.duckdb")).close()
    r = subprocess.run(
        [str(BIN / "sqlfluff"), "lint", "models"],
        cwd=REPO_ROOT / "dbt_project",
        capture_output=True,
        text=True,
        env={
            "CALLSIGHT_HOME": str(tmp_path),
            "PATH": f"{BIN}:/usr/bin:/bin",
            # the profile loads callsight.warehouse.dbt_guard: the checkout's, not whichever callsight is installed
            "PYTHONPATH": str(REPO_ROOT / "orchestration"),
            **dbt_target_env(),
        },
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-3000:]
