"""Superset assets kept as readable YAML under superset/assets, bundled for import with the
environment-specific parts (warehouse path) injected. Nothing machine-specific is committed."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import yaml

from .settings import REPO_ROOT

ASSETS_DIR = REPO_ROOT / "superset" / "assets"
WAREHOUSE_PLACEHOLDER = "__CALLSIGHT_SERVED_WAREHOUSE__"


def load_assets(assets_dir: Path = ASSETS_DIR) -> dict[str, dict]:
    """All asset files by relative path (databases/..., datasets/..., charts/..., dashboards/...)."""
    out: dict[str, dict] = {}
    for path in sorted(assets_dir.rglob("*.yaml")):
        out[path.relative_to(assets_dir).as_posix()] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return out


def render(assets: dict[str, dict], served_db: Path) -> dict[str, dict]:
    """Inject the served warehouse path; refuse a database definition that could write or read files."""
    rendered: dict[str, dict] = {}
    for name, config in assets.items():
        if name.startswith("databases/"):
            config = dict(config)
            if WAREHOUSE_PLACEHOLDER not in config["sqlalchemy_uri"]:
                raise ValueError(f"{name}: sqlalchemy_uri must contain {WAREHOUSE_PLACEHOLDER}")
            config["sqlalchemy_uri"] = f"duckdb:///{served_db.resolve().as_posix()}"
            args = config.get("extra", {}).get("engine_params", {}).get("connect_args", {})
            if args.get("read_only") is not True or args.get("config", {}).get("enable_external_access") is not False:
                raise ValueError(f"{name}: the warehouse connection must be read_only with external access off")
            if config.get("allow_dml") or config.get("allow_file_upload"):
                raise ValueError(f"{name}: DML and file upload must stay off")
        rendered[name] = config
    return rendered


def bundle(rendered: dict[str, dict]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, config in rendered.items():
            zf.writestr(f"callsight_assets/{name}", yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return buf.getvalue()


def uuids_of(assets: dict[str, dict], kind: str) -> dict[str, str]:
    """{uuid: name} of one asset kind ('datasets', 'charts', 'dashboards')."""
    key = {
        "datasets": "table_name",
        "charts": "slice_name",
        "dashboards": "dashboard_title",
        "databases": "database_name",
    }[kind]
    return {c["uuid"]: c[key] for n, c in assets.items() if n.startswith(f"{kind}/")}
