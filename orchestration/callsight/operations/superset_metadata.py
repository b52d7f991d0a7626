"""Superset's metadata database (dashboards, charts, users, roles, RLS rules, reports): where it is,
and how it is dumped and restored.

superset/superset_config.py takes it from SUPERSET_DATABASE_URI, else a SQLite file
CALLSIGHT_HOME/superset/superset.db. SQLite is copied with SQLite's backup API; PostgreSQL is dumped
with pg_dump (custom format) and restored with pg_restore into the database the URI names, which must
exist (an empty one on a new server). The password, if the URI has one, goes to pg_dump through
PGPASSWORD, never on its command line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from callsight.site.settings import Settings

SQLITE, POSTGRESQL = "sqlite", "postgresql"
URI_VARIABLE = "SUPERSET_DATABASE_URI"


class MetadataError(RuntimeError):
    pass


@dataclass(frozen=True)
class MetadataDb:
    kind: str  # SQLITE or POSTGRESQL
    path: Path | None = None  # the SQLite file
    url: str = ""  # libpq URL without password (POSTGRESQL)
    password: str | None = None

    def describe(self) -> str:
        return str(self.path) if self.kind == SQLITE else self.url


def locate(settings: Settings) -> MetadataDb:
    """Where this site's Superset keeps its metadata (the rule of superset_config.py)."""
    uri = settings.env.get(URI_VARIABLE) or ""
    if not uri:
        return MetadataDb(SQLITE, path=settings.superset_home / "superset.db")
    return parse_uri(uri)


def parse_uri(uri: str) -> MetadataDb:
    """Pure: a SQLAlchemy URI as a MetadataDb (sqlite:///path or postgresql[+driver]://...)."""
    parts = urlsplit(uri)
    scheme = parts.scheme.split("+")[0]
    if scheme == SQLITE:
        path = unquote(parts.path)
        if not path or path == "/" or ":memory:" in path:
            raise MetadataError(f"{URI_VARIABLE}: no SQLite file to back up")
        # sqlite:////abs/path -> path "//abs/path"; sqlite:///rel -> "/rel" (relative to Superset's cwd)
        return MetadataDb(SQLITE, path=Path(path[1:]) if path.startswith("//") else Path(path.lstrip("/")))
    if scheme in ("postgresql", "postgres"):
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        if parts.username:
            netloc = f"{parts.username}@{netloc}"
        password = unquote(parts.password) if parts.password else None
        return MetadataDb(
            POSTGRESQL, url=urlunsplit(("postgresql", netloc, parts.path, parts.query, "")), password=password
        )
    raise MetadataError(f"{URI_VARIABLE}: {scheme} metadata databases are not backed up (SQLite and PostgreSQL are)")


def _pg_env(db: MetadataDb) -> dict[str, str]:
    env = dict(os.environ)
    if db.password:
        env["PGPASSWORD"] = db.password
    return env


def _tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        raise MetadataError(f"{name} is not installed (Debian: postgresql-client)")
    return found


def pg_dump(db: MetadataDb, dst: Path) -> None:
    """Dump the PostgreSQL metadata database (custom format: one consistent snapshot, restorable with
    pg_restore)."""
    cmd = [_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges", f"--file={dst}", f"--dbname={db.url}"]
    proc = subprocess.run(cmd, env=_pg_env(db), capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise MetadataError(f"pg_dump failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    os.chmod(dst, 0o600)


def pg_restore(db: MetadataDb, src: Path) -> None:
    """Restore a dump into the database the URI names, replacing the objects it holds."""
    cmd = [
        _tool("pg_restore"),
        "--clean",
        "--if-exists",
        "--no-owner",
        "--no-privileges",
        "--single-transaction",
        "--exit-on-error",
        f"--dbname={db.url}",
        str(src),
    ]
    proc = subprocess.run(cmd, env=_pg_env(db), capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise MetadataError(f"pg_restore failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
