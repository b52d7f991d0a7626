"""Org directory and policy: loaded from YAML, validated, refused with errors that name file and entry."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class ConfigError(ValueError):
    """A configuration file is unusable. The message names the file and the offending entry."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- org directory -------------------------------------------------------------------------------
class User(_Strict):
    username: str
    name: str
    email: str | None = None

    @field_validator("username")
    @classmethod
    def _username(cls, v: str) -> str:
        if not USERNAME_RE.match(v):
            raise ValueError(f"username {v!r} must be lower case letters, digits, '.', '_' or '-' (max 64 characters)")
        return v


class Group(_Strict):
    name: str = Field(min_length=1, max_length=100)
    leaders: list[str] = Field(default_factory=list)
    deputies: list[str] = Field(default_factory=list)
    members: list[str] = Field(default_factory=list)
    journal_visible_to_group: bool = False
    journal_visible_to_leader: bool = True


class Directory(_Strict):
    users: list[User]
    groups: list[Group] = Field(default_factory=list)
    private_lines: list[str] = Field(default_factory=list)
    analysts: list[str] = Field(default_factory=list)
    admins: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> Directory:
        seen: set[str] = set()
        for i, user in enumerate(self.users):
            if user.username in seen:
                raise ValueError(f"users[{i}]: duplicate username {user.username!r}")
            seen.add(user.username)
        names: set[str] = set()
        for g in self.groups:
            if g.name in names:
                raise ValueError(f"groups: duplicate group name {g.name!r}")
            names.add(g.name)
            for role in ("leaders", "deputies", "members"):
                for u in getattr(g, role):
                    if u not in seen:
                        raise ValueError(f"group {g.name!r} {role}: unknown user {u!r}")
        for role in ("analysts", "admins"):
            for u in getattr(self, role):
                if u not in seen:
                    raise ValueError(f"{role}: unknown user {u!r}")
        return self

    @property
    def usernames(self) -> list[str]:
        return [u.username for u in self.users]


# ---- policy --------------------------------------------------------------------------------------
class PrivateCalls(_Strict):
    mode: Literal["keep", "truncate", "drop"] = "truncate"
    truncate_digits: int = Field(default=3, ge=1, le=12)


class ServiceLevel(_Strict):
    threshold_seconds: int = Field(default=20, ge=0, le=3600)
    short_abandon_seconds: int = Field(default=0, ge=0, le=3600)


class Callback(_Strict):
    window_hours: int = Field(default=24, ge=1, le=24 * 31)


class Retention(_Strict):
    journal_days: int = Field(default=180, ge=1, le=3660)


class WorksCouncil(_Strict):
    min_group_size: int = Field(default=0, ge=0, le=1000)
    pseudonymize_agents_for_analysts: bool = False


class Calendar(_Strict):
    """Public holidays for dim_date: country and optional state (Bundesland), ISO 3166 codes."""

    country: str = Field(default="DE", min_length=2, max_length=3)
    subdivision: str | None = Field(default=None, max_length=6)

    @model_validator(mode="after")
    def _known(self) -> Calendar:
        import holidays

        try:
            holidays.country_holidays(self.country, subdiv=self.subdivision, years=2026)
        except NotImplementedError as exc:
            raise ValueError(f"unknown holiday calendar {self.country}/{self.subdivision}") from exc
        return self


class Reports(_Strict):
    """Weekly e-mail reports (Superset Alerts & Reports; needs the production profile)."""

    enabled: bool = True
    # Cron in the policy's time zone: Monday 07:00.
    schedule: str = "0 7 * * 1"
    # Dashboards each group leader (and deputy) receives, run as that person: only what they may see.
    leader_dashboards: list[str] = Field(default_factory=lambda: ["management-summary", "agenten"])
    format: Literal["PNG", "PDF"] = "PNG"
    # The weekly KPI table per agent and day as CSV: for analysts, optionally for leaders too.
    analyst_csv: bool = True
    leader_csv: bool = False

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str) -> str:
        fields = v.split()
        if len(fields) != 5 or not all(re.fullmatch(r"[0-9*,/-]+", f) for f in fields):
            raise ValueError(f"schedule must be a 5-field cron expression like '0 7 * * 1', got {v!r}")
        return v

    @field_validator("leader_dashboards")
    @classmethod
    def _slugs(cls, v: list[str]) -> list[str]:
        for slug in v:
            if not re.fullmatch(r"[a-z0-9-]+", slug):
                raise ValueError(f"leader_dashboards: {slug!r} is not a dashboard slug")
        return v


class Policy(_Strict):
    timezone: str = "Europe/Berlin"
    calendar: Calendar = Calendar()
    private_calls: PrivateCalls = PrivateCalls()
    service_level: ServiceLevel = ServiceLevel()
    callback: Callback = Callback()
    retention: Retention = Retention()
    works_council: WorksCouncil = WorksCouncil()
    reports: Reports = Reports()

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def dbt_vars(self) -> dict[str, object]:
        """Policy values handed to dbt as vars: changing a threshold needs no code change."""
        return {
            "timezone": self.timezone,
            "service_level_threshold_seconds": self.service_level.threshold_seconds,
            "short_abandon_seconds": self.service_level.short_abandon_seconds,
            "callback_window_hours": self.callback.window_hours,
            "retention_days": self.retention.journal_days,
            "min_group_size": self.works_council.min_group_size,
            "pseudonymize_agents_for_analysts": self.works_council.pseudonymize_agents_for_analysts,
        }


# ---- loading -------------------------------------------------------------------------------------
def _read_yaml(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc


def _format(path: Path, exc: ValidationError) -> str:
    lines = [f"{path}: invalid configuration"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"  - {loc}: {msg}")
    return "\n".join(lines)


def load_directory(path: Path) -> Directory:
    data = _read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with 'users' and 'groups'")
    try:
        return Directory.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format(path, exc)) from None


def load_policy(path: Path) -> Policy:
    data = _read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping")
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format(path, exc)) from None
