"""Where the kept builds of the served warehouse live (CALLSIGHT_HOME/warehouse/history)."""

from __future__ import annotations

from pathlib import Path


def history_dir(served: Path) -> Path:
    return served.parent / "history"


def parts_dir(served: Path) -> Path:
    """The week files the served warehouse's views read (publish/week_files.py); Superset's connections
    may read this folder and no other file (superset/served_warehouse.py, parts_path)."""
    return served.parent / "parts"


def kept_builds(served: Path) -> list[Path]:
    """Previously served warehouses, newest first."""
    history = history_dir(served)
    return sorted(history.glob(f"{served.stem}-*.duckdb"), reverse=True) if history.exists() else []
