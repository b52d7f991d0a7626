"""The policy (policy.yml): time zone, calendar, private calls, service level, callbacks, retention,
the access log's retention, works-council mode and reports. Loaded, validated, refused with errors that
name file and entry."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator, model_validator

from callsight.site.yaml_config import ConfigError, _format, _read_yaml, _Strict


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


class AccessLog(_Strict):
    """Who looked at what (Superset's access events): kept this many days in callsight's copy and in
    Superset's own `logs` table."""

    retention_days: int = Field(default=90, ge=1, le=3660)


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
    access_log: AccessLog = AccessLog()
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
