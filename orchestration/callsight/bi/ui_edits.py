"""Edits made in Superset's UI, found before the nightly import overwrites them.

After every import callsight keeps a fingerprint of each imported asset as Superset then exports it
(CALLSIGHT_HOME/superset/asset-fingerprints.json, owner-only; without ids and the night's build stamp).
Before the next import it exports again: an asset whose fingerprint changed - and which differs from
what the import would bring - was edited in the UI. That is logged and audited, then, per
CALLSIGHT_UI_EDITS, overwritten by the import (`overwrite`, the default) or left out of it (`keep`)
until `callsight export-assets` brings the edit into superset/assets."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import requests

from callsight.bi.api import SupersetAPIError, SupersetClient
from callsight.bi.asset_export import KINDS, fetch_export
from callsight.bi.compact import ExportRefused, clean, kind_of, view

log = logging.getLogger(__name__)
STORE_NAME = "asset-fingerprints.json"


def fingerprint(name: str, config: dict) -> str:
    """Pure: a hash of the asset as Superset has it, without ids and the night's build stamp."""
    text = json.dumps(clean(name, config), sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def same_asset(name: str, a: dict, b: dict) -> bool:
    """Pure: two forms of one asset (an export, the import's) say the same."""
    try:
        return view(name, clean(name, a)) == view(name, clean(name, b))
    except ExportRefused:
        return clean(name, a) == clean(name, b)


@dataclass(frozen=True)
class UiEdit:
    name: str  # the asset's file under superset/assets
    uuid: str


def find_ui_edits(exported: dict[str, dict], recorded: dict[str, str], imported: dict[str, dict]) -> list[UiEdit]:
    """Pure: the assets of the import whose export changed since the last import recorded them and
    which differ from what the import would bring (a change the repository made is no UI edit)."""
    by_uuid = {c["uuid"]: c for c in exported.values() if c.get("uuid")}
    edits = []
    for name, config in imported.items():
        uuid = config.get("uuid")
        if kind_of(name) not in KINDS or uuid not in by_uuid or uuid not in recorded:
            continue
        now = by_uuid[uuid]
        if fingerprint(name, now) != recorded[uuid] and not same_asset(name, now, config):
            edits.append(UiEdit(name, uuid))
    return edits


def read_fingerprints(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    return {u: a["fingerprint"] for u, a in json.loads(path.read_text(encoding="utf-8"))["assets"].items()}


def write_fingerprints(path: Path, assets: dict[str, tuple[str, str]]) -> None:
    """{uuid: (name, fingerprint)} into an owner-only file, replaced at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        body = {u: {"name": n, "fingerprint": fp} for u, (n, fp) in sorted(assets.items())}
        json.dump({"version": 1, "assets": body}, f, indent=1, sort_keys=True)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


@dataclass
class UiEditGuard:
    """One import's check: `before` picks what to import, `after` records what Superset then has."""

    store: Path
    mode: str = "overwrite"  # CALLSIGHT_UI_EDITS
    edits: list[UiEdit] = field(default_factory=list)
    kept: set[str] = field(default_factory=set)  # uuids left out of this import

    def before(self, client: SupersetClient, assets: dict[str, dict]) -> dict[str, dict]:
        """The assets to import: all of them, or (keep) all but those edited in Superset's UI."""
        recorded = read_fingerprints(self.store)
        if not recorded:
            return assets  # the first import here: nothing to compare with
        try:
            self.edits = find_ui_edits(fetch_export(client), recorded, assets)
        except (SupersetAPIError, requests.RequestException) as exc:
            log.warning("Superset's assets could not be exported, edits in its UI were not looked for: %s", exc)
            return assets
        for edit in self.edits:
            if self.mode == "keep":
                log.warning(
                    "%s was changed in Superset's UI since the last import: kept, not imported "
                    "(CALLSIGHT_UI_EDITS=keep); `callsight export-assets` brings the change into superset/assets",
                    edit.name,
                )
            else:
                log.warning(
                    "%s was changed in Superset's UI since the last import: the import overwrites it "
                    "(CALLSIGHT_UI_EDITS=keep would keep it; `callsight export-assets` brings such a change "
                    "into superset/assets first)",
                    edit.name,
                )
        self.kept = {e.uuid for e in self.edits} if self.mode == "keep" else set()
        return {n: c for n, c in assets.items() if c.get("uuid") not in self.kept}

    def audit_entries(self) -> list[tuple[str, dict[str, str | int]]]:
        """Pure: one (subject, detail) per UI edit found: the asset's file and what the import did."""
        action = "kept" if self.mode == "keep" else "overwritten"
        return [(f"ui_edit:{e.name}"[:200], {"uuid": e.uuid, "action": action}) for e in self.edits]

    def after(self, client: SupersetClient, assets: dict[str, dict]) -> None:
        """Record each imported asset's fingerprint; a kept one keeps its old one (still an edit)."""
        previous = read_fingerprints(self.store)
        try:
            exported = {c["uuid"]: (n, c) for n, c in fetch_export(client).items() if c.get("uuid")}
        except (SupersetAPIError, requests.RequestException) as exc:
            log.warning("Superset's assets could not be exported, their fingerprints were not recorded: %s", exc)
            return
        out: dict[str, tuple[str, str]] = {}
        for name, config in assets.items():
            uuid = config.get("uuid")
            if kind_of(name) not in KINDS or uuid not in exported:
                continue
            if uuid in self.kept and uuid in previous:
                out[uuid] = (name, previous[uuid])
            else:
                out[uuid] = (name, fingerprint(name, exported[uuid][1]))
        write_fingerprints(self.store, out)
