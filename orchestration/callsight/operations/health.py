"""`callsight health` for monitoring: every probe's state, the worst one decides (Nagios exit codes).

States are Nagios's: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (a probe that could not look). Output
is one line `CALLSIGHT <STATE> - <what> | <perfdata>` or, with --json, every probe. Thresholds are
settings read from the site's environment (docs/settings.md), never at import.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum


class State(IntEnum):
    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


# How bad each state is when choosing the worst: UNKNOWN ranks between WARNING and CRITICAL, as in Nagios.
SEVERITY = {State.OK: 0, State.WARNING: 1, State.UNKNOWN: 2, State.CRITICAL: 3}


@dataclass(frozen=True)
class Perf:
    """One Nagios performance value: label=value[uom];warn;crit."""

    label: str
    value: float
    uom: str = ""
    warn: float | None = None
    crit: float | None = None

    def render(self) -> str:
        limits = ";".join("" if x is None else f"{x:g}" for x in (self.warn, self.crit)).rstrip(";")
        return f"{self.label}={self.value:g}{self.uom}" + (f";{limits}" if limits else "")


@dataclass(frozen=True)
class ProbeResult:
    name: str
    state: State
    message: str  # short, no personal data: ages, counts, URLs of services
    value: float | str | None = None
    perf: tuple[Perf, ...] = field(default=())


@dataclass(frozen=True)
class Thresholds:
    """Limits of the probes; the warehouse turns CRITICAL at CALLSIGHT_STALE_AFTER_HOURS."""

    warehouse_warning_hours: float = 26.0
    night_warning_hours: float = 26.0
    disk_warning_percent: float = 15.0
    disk_critical_percent: float = 5.0
    failed_reports_warning: int = 1
    failed_reports_critical: int = 5
    timeout_seconds: float = 5.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Thresholds:
        def number(name: str, default: float) -> float:
            value = env.get(name)
            if not value:
                return default
            try:
                parsed = float(value)
            except ValueError:
                raise ValueError(f"{name} must be a number, got {value!r}") from None
            if parsed < 0:
                raise ValueError(f"{name} must not be negative, got {value!r}")
            return parsed

        d = cls()
        return cls(
            warehouse_warning_hours=number("CALLSIGHT_HEALTH_WAREHOUSE_WARNING_HOURS", d.warehouse_warning_hours),
            night_warning_hours=number("CALLSIGHT_HEALTH_NIGHT_WARNING_HOURS", d.night_warning_hours),
            disk_warning_percent=number("CALLSIGHT_HEALTH_DISK_WARNING_PERCENT", d.disk_warning_percent),
            disk_critical_percent=number("CALLSIGHT_HEALTH_DISK_CRITICAL_PERCENT", d.disk_critical_percent),
            failed_reports_warning=int(number("CALLSIGHT_HEALTH_FAILED_REPORTS_WARNING", d.failed_reports_warning)),
            failed_reports_critical=int(number("CALLSIGHT_HEALTH_FAILED_REPORTS_CRITICAL", d.failed_reports_critical)),
            timeout_seconds=number("CALLSIGHT_HEALTH_TIMEOUT", d.timeout_seconds),
        )


def run_probe(name: str, probe: Callable[[], ProbeResult]) -> ProbeResult:
    """A probe that raises is UNKNOWN, named by its error class only (messages can carry hosts or data)."""
    try:
        return probe()
    except Exception as exc:  # a probe must never crash the check
        return ProbeResult(name, State.UNKNOWN, f"{name}: could not check ({type(exc).__name__})")


def worst(results: Sequence[ProbeResult]) -> State:
    return max((r.state for r in results), key=SEVERITY.__getitem__, default=State.UNKNOWN)


def summary_line(results: Sequence[ProbeResult]) -> str:
    """Pure: `CALLSIGHT <STATE> - <problems first, worst first> | <perfdata>`."""
    state = worst(results)
    ordered = sorted(results, key=lambda r: -SEVERITY[r.state])
    shown = [r for r in ordered if r.state != State.OK] or list(results)
    text = "; ".join(r.message for r in shown)
    perf = " ".join(p.render() for r in results for p in r.perf)
    return f"CALLSIGHT {state.name} - {text}" + (f" | {perf}" if perf else "")


def report_json(results: Sequence[ProbeResult]) -> str:
    state = worst(results)
    return json.dumps(
        {
            "state": state.name,
            "exit_code": int(state),
            "summary": summary_line(results).partition(" | ")[0],
            "probes": [
                {"name": r.name, "state": r.state.name, "value": r.value, "message": r.message} for r in results
            ],
        },
        indent=2,
    )
