"""Site settings: the one contract every part of callsight reads (see docs/settings.md).

Nothing here reads the environment at import time. `Settings.from_env()` is called once at start
(CLI, Dagster code location) and the resulting object is passed down.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from callsight.site.home import parts_dir
from callsight.site.locale import DEFAULT_LOCALE, parse_locale
from callsight.site.secret_files import resolve_secret_files

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_JOURNAL_TABLE = "journal"
DEFAULT_LOOKBACK_DAYS = 35
# The dashboards (slugs) the night's cache warm-up can warm (bi/warm_cache.py; the asset files name them).
WARMABLE_DASHBOARDS = ("agenten", "kunden", "projekte", "management-summary")


@dataclass(frozen=True)
class Settings:
    """Resolved, absolute site settings."""

    home: Path
    journal_url: str
    journal_table: str = DEFAULT_JOURNAL_TABLE
    directory_path: Path | None = None
    policy_path: Path | None = None
    lookback_days: int = DEFAULT_LOOKBACK_DAYS
    superset_url: str = "http://127.0.0.1:8088"
    superset_venv: Path = REPO_ROOT / ".venv-superset"
    superset_admin_username: str = "admin"
    keep_builds: int = 3
    extract_retries: int = 3
    extract_retry_delay: float = 30.0
    stale_after_hours: int = 36
    nightly_schedule: bool = True  # CALLSIGHT_SCHEDULE: off where cron runs `callsight run` instead
    locale: str = DEFAULT_LOCALE  # CALLSIGHT_LOCALE: language of the processing record and the mails
    ui_edits: str = "overwrite"  # CALLSIGHT_UI_EDITS: an asset changed in Superset's UI: overwrite or keep
    # CALLSIGHT_CACHE_WARMUP: the dashboards whose charts the night warms in Superset's shared cache (none: off)
    cache_warmup: tuple[str, ...] = WARMABLE_DASHBOARDS
    env: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    # ---- derived paths ------------------------------------------------------------------------
    @property
    def warehouse_dir(self) -> Path:
        return self.home / "warehouse"

    @property
    def raw_db(self) -> Path:
        """Masked journal store written by the extract. Never served to Superset."""
        return self.warehouse_dir / "journal.duckdb"

    @property
    def validated_rows_db(self) -> Path:
        """The data-quality checks' record of the rows that passed (row hashes, no data; quality/)."""
        return self.warehouse_dir / "validated_rows.duckdb"

    @property
    def build_db(self) -> Path:
        """Where dbt builds the next warehouse. Must match dbt_project/profiles.yml."""
        return self.warehouse_dir / "build" / "callsight.duckdb"

    @property
    def served_db(self) -> Path:
        """The published warehouse, opened read-only by Superset."""
        return self.warehouse_dir / "callsight.duckdb"

    @property
    def parts_dir(self) -> Path:
        """The one folder of files Superset's connections may read: what the served warehouse's views read.
        Must match superset/served_warehouse.py (parts_path)."""
        return parts_dir(self.served_db)

    @property
    def demo_dir(self) -> Path:
        return self.home / "demo"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def superset_home(self) -> Path:
        return self.home / "superset"

    @property
    def dq_docs_dir(self) -> Path:
        """Great Expectations Data Docs written by `callsight dq-docs`."""
        return self.home / "data_quality" / "docs"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def effective_directory_path(self) -> Path:
        return self.directory_path or self.demo_dir / "directory.yaml"

    @property
    def effective_policy_path(self) -> Path:
        return self.policy_path or self.demo_dir / "policy.yaml"

    @property
    def demo_journal_path(self) -> Path:
        return self.demo_dir / "journal.sqlite"

    # ---- construction ---------------------------------------------------------------------------
    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> Settings:
        # Secrets given as <NAME>_FILE are read here, under their plain names (secret_files).
        resolved = resolve_secret_files(os.environ if environ is None else environ)
        for warning in resolved.warnings:
            logging.getLogger("callsight").warning("callsight: %s", warning)
        env = resolved.env
        base = cwd or Path.cwd()
        home = _abs(env.get("CALLSIGHT_HOME") or "var", base)
        demo_journal = home / "demo" / "journal.sqlite"
        journal_url = env.get("CALLSIGHT_JOURNAL_URL") or f"sqlite:///{demo_journal}"
        directory = env.get("CALLSIGHT_DIRECTORY")
        policy = env.get("CALLSIGHT_POLICY")
        lookback = env.get("CALLSIGHT_LOOKBACK_DAYS")
        if lookback is not None and (not lookback.isdigit() or int(lookback) < 1):
            raise ValueError(f"CALLSIGHT_LOOKBACK_DAYS must be a positive whole number, got {lookback!r}")
        return cls(
            home=home,
            journal_url=journal_url,
            journal_table=env.get("CALLSIGHT_JOURNAL_TABLE") or DEFAULT_JOURNAL_TABLE,
            directory_path=_abs(directory, base) if directory else None,
            policy_path=_abs(policy, base) if policy else None,
            lookback_days=int(lookback) if lookback else DEFAULT_LOOKBACK_DAYS,
            superset_url=(env.get("CALLSIGHT_SUPERSET_URL") or "http://127.0.0.1:8088").rstrip("/"),
            superset_venv=_abs(env["CALLSIGHT_SUPERSET_VENV"], base)
            if env.get("CALLSIGHT_SUPERSET_VENV")
            else REPO_ROOT / ".venv-superset",
            superset_admin_username=env.get("SUPERSET_ADMIN_USERNAME") or "admin",
            keep_builds=_int(env, "CALLSIGHT_KEEP_BUILDS", 3),
            extract_retries=_int(env, "CALLSIGHT_EXTRACT_RETRIES", 3),
            extract_retry_delay=float(_int(env, "CALLSIGHT_EXTRACT_RETRY_DELAY", 30)),
            stale_after_hours=_int(env, "CALLSIGHT_STALE_AFTER_HOURS", 36),
            nightly_schedule=_on_off(env, "CALLSIGHT_SCHEDULE"),
            locale=parse_locale(env.get("CALLSIGHT_LOCALE")),
            ui_edits=_choice(env, "CALLSIGHT_UI_EDITS", ("overwrite", "keep")),
            cache_warmup=_dashboards(env, "CALLSIGHT_CACHE_WARMUP"),
            env=env,
        )

    def export(self) -> dict[str, str]:
        """The variables child processes (dbt, Dagster, Superset) must see, all absolute."""
        out = {
            "CALLSIGHT_HOME": str(self.home),
            "CALLSIGHT_JOURNAL_URL": self.journal_url,
            "CALLSIGHT_JOURNAL_TABLE": self.journal_table,
            "CALLSIGHT_DIRECTORY": str(self.effective_directory_path),
            "CALLSIGHT_POLICY": str(self.effective_policy_path),
            "CALLSIGHT_LOOKBACK_DAYS": str(self.lookback_days),
            "CALLSIGHT_KEEP_BUILDS": str(self.keep_builds),
            "CALLSIGHT_EXTRACT_RETRIES": str(self.extract_retries),
            "CALLSIGHT_EXTRACT_RETRY_DELAY": str(int(self.extract_retry_delay)),
            "CALLSIGHT_STALE_AFTER_HOURS": str(self.stale_after_hours),
            "DAGSTER_HOME": str(self.dagster_home),
        }
        # The production profile (reports) and mail settings, when given: Superset's web server, worker
        # and beat must all see them.
        for name in PROFILE_VARIABLES:
            if self.env.get(name):
                out[name] = self.env[name]
        return out

    def secret(self, name: str) -> str | None:
        """A secret from the environment or its <NAME>_FILE (never from a file in the repository)."""
        value = self.env.get(name)
        return value or None

    @property
    def reports_profile(self) -> bool:
        """Superset's production profile for Alerts & Reports: Celery on Redis and a PostgreSQL metadata DB
        (SQLite metadata cannot run reports)."""
        uri = self.env.get("SUPERSET_DATABASE_URI", "")
        return bool(self.env.get("CALLSIGHT_REDIS_URL")) and uri.startswith("postgresql")

    def is_demo_journal(self) -> bool:
        return self.journal_url == f"sqlite:///{self.demo_journal_path}"


PROFILE_VARIABLES = (
    "SUPERSET_DATABASE_URI",
    "CALLSIGHT_REDIS_URL",
    "CALLSIGHT_CELERY_QUEUE",
    "CALLSIGHT_WEBDRIVER_BASEURL",
    "CALLSIGHT_PUBLIC_URL",
    "SMTP_HOST",
    "SMTP_PORT",
    "SMTP_STARTTLS",
    "SMTP_SSL",
    "SMTP_USER",
    "SMTP_MAIL_FROM",
)


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name)
    if value is None or value == "":
        return default
    if not value.isdigit():
        raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
    return int(value)


def _on_off(env: Mapping[str, str], name: str) -> bool:
    value = (env.get(name) or "on").strip().lower()
    if value not in ("on", "off"):
        raise ValueError(f"{name} must be on or off, got {value!r}")
    return value == "on"


def unknown_dashboards(slugs: tuple[str, ...] | list[str]) -> list[str]:
    """Pure: the slugs among `slugs` that the warm-up cannot warm (not in WARMABLE_DASHBOARDS), sorted."""
    return sorted(set(slugs) - set(WARMABLE_DASHBOARDS))


def _dashboards(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """on (all of WARMABLE_DASHBOARDS, the default), off (none) or some of them, comma-separated."""
    value = (env.get(name) or "on").strip().lower()
    if value in ("on", "off"):
        return WARMABLE_DASHBOARDS if value == "on" else ()
    chosen = tuple(dict.fromkeys(slug.strip() for slug in value.split(",") if slug.strip()))
    if unknown_dashboards(chosen) or not chosen:
        raise ValueError(
            f"{name} must be on, off or dashboards among {', '.join(WARMABLE_DASHBOARDS)} (comma-separated), "
            f"got {value!r}"
        )
    return chosen


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str:
    """One of `allowed` (the first by default); anything else is refused at start."""
    value = (env.get(name) or allowed[0]).strip().lower()
    if value not in allowed:
        raise ValueError(f"{name} must be {' or '.join(allowed)}, got {value!r}")
    return value


def _abs(value: str, base: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path).resolve()
