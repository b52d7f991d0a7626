"""The package reads as the night: imports only flow down its path (issue 29).

Each room of orchestration/callsight/ has a place on the night's path; a module may import its own
room and the rooms before it, never one after it. The demo data is the demo's: only the CLI uses it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "orchestration" / "callsight"

# The night's path: settings -> journal -> privacy rules -> extract -> warehouse -> quality -> publish
# -> Superset -> Dagster -> operations (health, backup) -> command line.
RANKS = {
    "site": 0,
    "journal": 1,
    "privacy": 2,
    "extract": 3,
    "warehouse": 4,
    "quality": 5,
    "publish": 6,
    "bi": 7,
    "defs": 8,
    "definitions": 8,
    "operations": 9,
    "cli": 10,
    "demo": 10,
}
# Modules of a room that act over every stage, ranked with the commands that call them.
OVER_EVERY_STAGE = {
    "privacy.record": 9,  # the processing record reads settings, warehouse and builds
    "privacy.record_facts": 9,  # its facts come from the settings, the published warehouse and the raw store
    "privacy.record_document": 9,  # its text names the build in service and the kept builds
    "privacy.erase_everywhere": 9,  # an erasure scrubs the raw store, then republishes
}
ONLY_FOR = {"demo": {"cli", "demo"}}


def _module(path: Path, package: Path = PACKAGE) -> str:
    return ".".join(path.relative_to(package).with_suffix("").parts).removesuffix(".__init__")


def _rank(module: str) -> int:
    for name, rank in OVER_EVERY_STAGE.items():
        if module == name:
            return rank
    return RANKS[module.split(".")[0]]


def imports_of(path: Path) -> set[str]:
    """callsight modules imported anywhere in the file (top level or inside a function)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("callsight."):
            found.add(node.module.removeprefix("callsight."))
        elif isinstance(node, ast.ImportFrom) and node.level:
            found.add(f"<relative import {node.module}>")
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("callsight.") for a in node.names if a.name.startswith("callsight.")}
    return found


def layer_violations(package: Path = PACKAGE) -> list[str]:
    problems = []
    for path in sorted(package.rglob("*.py")):
        here = _module(path, package)
        if not here or here == "__init__":
            continue
        for target in sorted(imports_of(path)):
            if target.startswith("<"):
                problems.append(f"{here}: {target} (import callsight.<room>.<module> by its full name)")
                continue
            if target.split(".")[0] == "bench":
                problems.append(f"{here} imports the benchmark")
                continue
            allowed = ONLY_FOR.get(target.split(".")[0])
            if allowed is not None and here.split(".")[0] not in allowed:
                problems.append(f"{here} imports {target}, which is for {', '.join(sorted(allowed))} only")
            elif _rank(target) > _rank(here):
                problems.append(f"{here} (step {_rank(here)}) imports {target} (step {_rank(target)}), a later step")
    return problems


def test_every_module_has_a_room() -> None:
    rooms = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    loose = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "definitions"}
    assert rooms == set(RANKS) - {"definitions"}, "each room has a place on the night's path"
    assert not loose, f"modules outside a room: {sorted(loose)}"


def test_imports_flow_down_the_night() -> None:
    assert layer_violations() == []


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    fake = tmp_path / "callsight"
    for room, source in {
        "journal/sources.py": "def f():\n    from callsight.publish.builds import publish\n",
        "extract/run.py": "from callsight.demo.journal import generate\n",
        "bi/api.py": "import bench.runner\nfrom callsight.site.settings import Settings\n",
    }.items():
        (fake / room).parent.mkdir(parents=True, exist_ok=True)
        (fake / room).write_text(source)
    problems = layer_violations(fake)
    assert any("journal.sources" in p and "publish.builds" in p for p in problems)
    assert any("extract.run imports demo.journal" in p for p in problems)
    assert not any("site.settings" in p for p in problems)


@pytest.mark.parametrize("limit", [450])
def test_no_module_is_a_wing(limit: int) -> None:
    """A module over ~400 lines is several modules, unless its one reason is stated here."""
    reasons = {
        "demo.journal": "one generator of a realistic office's calls, read top to bottom",
    }
    long = {
        _module(p): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > limit and _module(p) not in reasons
    }
    assert long == {}
