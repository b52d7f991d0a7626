"""`callsight export-assets`: dashboards, charts and datasets as Superset has them (its export API),
written back into the compact YAML of superset/assets - the way to keep an edit made in Superset's UI.

Each asset is compared with what the repository's file expands to; only a changed one is converted
(bi/compact.py) and written, under its file name and with its leading comments. Assets the import
generates from others (no file of their own) are never written; assets only Superset has are listed,
and written with `include_new`."""

from __future__ import annotations

import io
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from callsight.bi.api import SupersetAPIError, SupersetClient
from callsight.bi.asset_yaml import dump_compact, leading_comment
from callsight.bi.assets import ASSETS_DIR, AssetError, load_assets, read_assets
from callsight.bi.compact import (
    ExportRefused,
    clean,
    compact_chart,
    compact_dashboard,
    compact_dataset,
    differences,
    kind_of,
    view,
)

KINDS = ("datasets", "charts", "dashboards")
EXPORT_PATH = "/api/v1/assets/export/"


def fetch_export(client: SupersetClient) -> dict[str, dict]:
    """Superset's export of all its assets (as admin): {kind/file.yaml: config} of datasets, charts and
    dashboards (the export's own folder name dropped)."""
    r = client.session.get(f"{client.base_url}{EXPORT_PATH}", timeout=max(client.timeout, 300))
    if r.status_code != 200:
        raise SupersetAPIError("GET", EXPORT_PATH, r.status_code, r.text)
    out: dict[str, dict] = {}
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        for member in zf.namelist():
            name = member.split("/", 1)[-1]
            if member.endswith(".yaml") and kind_of(name) in KINDS:
                out[name] = yaml.safe_load(zf.read(member))
    return out


@dataclass
class ExportPlan:
    files: dict[str, str] = field(default_factory=dict)  # every asset file to keep: path -> text
    new: list[str] = field(default_factory=list)  # in Superset only: "charts/X.yaml (Title)"
    generated: list[str] = field(default_factory=list)  # made by the import, no file of their own
    missing: list[str] = field(default_factory=list)  # in the repository, not in Superset
    refused: list[str] = field(default_factory=list)  # one message each


def _title(config: dict) -> str:
    return str(config.get("dashboard_title") or config.get("slice_name") or config.get("table_name"))


def _new_path(exported_name: str, taken: set[str]) -> str:
    """A file name for an asset only Superset has: its export name without Superset's id suffix."""
    path = re.sub(r"_\d+\.yaml$", ".yaml", exported_name)
    if path in taken:
        path = path.removesuffix(".yaml") + "_new.yaml"
    return path


def _expanded(raw: dict[str, dict], texts: dict[str, str]) -> dict[str, dict]:
    """load_assets over these compact forms (written to a scratch directory, as the import reads them)."""
    with tempfile.TemporaryDirectory(prefix="callsight-assets-") as tmp:
        for name, config in raw.items():
            path = Path(tmp) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(texts.get(name) or dump_compact(config), encoding="utf-8")
        return {c["uuid"]: c for c in load_assets(Path(tmp)).values() if isinstance(c, dict) and "uuid" in c}


def _order(raw: dict[str, dict]) -> list[str]:
    """Datasets a dataset extends first, then the others, charts, dashboards."""

    def rank(name: str) -> tuple[int, str]:
        kind = kind_of(name)
        return (KINDS.index(kind) * 2 + (1 if raw[name].get("extends") else 0), name)

    return sorted((n for n in raw if kind_of(n) in KINDS), key=rank)


def plan_export(exported: dict[str, dict], source: Path, include_new: bool = False) -> ExportPlan:
    """Pure but for reading `source` (the asset files the export compares with and keeps the form of)."""
    plan = ExportPlan()
    raw = read_assets(source)
    texts = {n: (source / n).read_text(encoding="utf-8") for n in raw}
    expected = {c["uuid"]: c for c in load_assets(source).values() if isinstance(c, dict) and "uuid" in c}
    own = {c["uuid"]: n for n, c in raw.items() if kind_of(n) in KINDS}
    databases = sum(1 for n in raw if kind_of(n) == "databases")
    in_superset = {c["uuid"]: (n, c) for n, c in exported.items() if c.get("uuid")}
    new_raw = dict(raw)
    changed: dict[str, dict] = {}  # path -> the exported asset it now holds
    new = {u: v for u, v in in_superset.items() if u not in own and u not in expected}
    plan.generated = sorted(f"{n} ({_title(c)})" for u, (n, c) in in_superset.items() if u in expected and u not in own)
    plan.new = sorted(f"{_new_path(n, set(raw))} ({_title(c)})" for n, c in new.values())
    taken = set(raw)
    queue = list(_order(raw))
    if include_new:
        for n, c in sorted(new.values(), key=lambda nc: (KINDS.index(kind_of(nc[0])), nc[0])):
            path = _new_path(n, taken)
            taken.add(path)
            queue.append(path)
            in_superset[c["uuid"]] = (path, c)
            expected[c["uuid"]] = {}
    queue.sort(key=lambda n: KINDS.index(kind_of(n)))  # stable: bases before datasets extending them
    for name in queue:
        template = raw.get(name, {})
        uuid = template.get("uuid") or next(u for u, (n, _) in in_superset.items() if n == name)
        if uuid not in in_superset:
            plan.missing.append(f"{name} ({_title(template)})")
            continue
        config = in_superset[uuid][1]
        try:
            cleaned = clean(name, config)
            same = template and view(name, cleaned) == view(name, clean(name, expected[uuid]))
            if same and not _names_gone(template, new_raw):
                continue
            new_raw[name] = _compact(name, cleaned, template, new_raw, databases, raw)
            changed[name] = config
        except (ExportRefused, AssetError) as exc:
            plan.refused.append(str(exc))
    _verify(plan, raw, new_raw, texts, changed)
    for name in sorted(n for n in new_raw if kind_of(n) in KINDS):
        if new_raw[name] is raw.get(name):
            plan.files[name] = dump_compact(raw[name], leading_comment(texts[name]))
        else:
            plan.files[name] = dump_compact(new_raw[name], leading_comment(texts.get(name, "")))
    return plan


def _names_gone(template: dict, assets: dict[str, dict]) -> bool:
    """A dashboard's layout names a chart by a name it no longer has (renamed in the UI)."""
    known = {c.get(k) for n, c in assets.items() if kind_of(n) == "charts" for k in ("uuid", "slice_name")}
    return any(item["chart"] not in known for row in template.get("layout", []) for item in row)


def _compact(name: str, cleaned: dict, template: dict, assets: dict, databases: int, before: dict) -> dict:
    """The compact form of one exported asset; `assets` the converted ones so far, `before` the files'."""
    kind = kind_of(name)
    if kind == "datasets":
        return compact_dataset(name, cleaned, template, assets, databases)
    if kind == "charts":
        return compact_chart(cleaned, template)

    def names(of: dict) -> dict[str, str]:
        return {c["uuid"]: c["slice_name"] for n, c in of.items() if kind_of(n) == "charts"}

    return compact_dashboard(name, cleaned, template, names(assets), names(before))


def _verify(plan: ExportPlan, raw: dict, new_raw: dict, texts: dict[str, str], changed: dict[str, dict]) -> None:
    """Every converted asset must expand to what Superset has; one that does not is refused (and its
    file left as it was), until the rest agree."""
    while changed:
        try:
            again = _expanded(new_raw, {n: t for n, t in texts.items() if new_raw.get(n) is raw.get(n)})
        except AssetError as exc:
            plan.refused.append(f"the exported assets do not fit together ({exc}); nothing of them was written")
            for name in changed:
                _revert(new_raw, raw, name)
            changed.clear()
            return
        bad = {}
        for name, config in changed.items():
            got = clean(name, again[new_raw[name]["uuid"]])
            want = clean(name, config)
            try:
                if view(name, got) != view(name, want):
                    bad[name] = differences(view(name, want), view(name, got))
            except ExportRefused as exc:
                bad[name] = [str(exc)]
        if not bad:
            return
        for name, where in bad.items():
            plan.refused.append(
                f"{name}: the compact form cannot carry what was changed in Superset ({', '.join(where)}); "
                "edit the YAML by hand, or undo the change in Superset's UI"
            )
            _revert(new_raw, raw, name)
            del changed[name]


def _revert(new_raw: dict, raw: dict, name: str) -> None:
    if name in raw:
        new_raw[name] = raw[name]
    else:
        new_raw.pop(name, None)


@dataclass
class ExportResult:
    plan: ExportPlan
    written: list[str]


def export_assets(client: SupersetClient, to: Path = ASSETS_DIR, include_new: bool = False) -> ExportResult:
    """Export from Superset into `to` (a directory of asset files; an empty or new one gets a complete set,
    compared with the repository's). Writes only files whose content changed."""
    source = to if (to / "metadata.yaml").exists() else ASSETS_DIR
    plan = plan_export(fetch_export(client), source, include_new)
    written = []
    if source != to:
        databases = [p.relative_to(source).as_posix() for p in (source / "databases").glob("*.yaml")]
        for name in ("metadata.yaml", *databases):
            (to / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / name, to / name)
    for name, text in plan.files.items():
        path = to / name
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(name)
    return ExportResult(plan, written)
