"""Listen addresses of the web servers: `HOST:PORT` settings and the warning when one leaves loopback."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from callsight.bi.runtime import WEB_THREADS, WEB_WORKERS

EXPOSED_WARNING = """
 ############################################################################
 #  WARNING: Superset listens on {host}, beyond loopback, without the TLS
 #  proxy (CALLSIGHT_BEHIND_PROXY=1 is not set): logins and call data cross
 #  the network in clear text. Bind to 127.0.0.1 and put nginx in front
 #  (deploy/nginx, docs/running.md).
 ############################################################################
"""


def parse_bind(value: str, variable: str) -> tuple[str, int]:
    """`127.0.0.1:8088` or `[::1]:8088` as (host, port); a bad value names its variable."""
    host, sep, port = value.strip().rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{variable} must be HOST:PORT (e.g. 127.0.0.1:8088), got {value!r}")
    return host, int(port)


def bind_setting(env: Mapping[str, str], variable: str, default: str) -> tuple[str, int]:
    return parse_bind(env.get(variable) or default, variable)


def count_setting(env: Mapping[str, str], variable: str, default: int) -> int:
    """A positive whole number (workers, threads, concurrency)."""
    value = env.get(variable) or str(default)
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{variable} must be a whole number >= 1, got {value!r}")
    return int(value)


def web_split(env: Mapping[str, str]) -> tuple[int, int]:
    """Superset's gunicorn: (worker processes, threads per worker) from CALLSIGHT_SUPERSET_WORKERS and
    CALLSIGHT_SUPERSET_THREADS, the same for `callsight serve` and the superset-web service."""
    return (
        count_setting(env, "CALLSIGHT_SUPERSET_WORKERS", WEB_WORKERS),
        count_setting(env, "CALLSIGHT_SUPERSET_THREADS", WEB_THREADS),
    )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve anywhere


def probe_host(host: str) -> str:
    """Where this machine reaches a server bound to `host` (the wildcard addresses answer on loopback)."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def exposure_warning(host: str, env: Mapping[str, str]) -> str | None:
    """The loud warning for a web server reachable from the network without the TLS proxy in front."""
    if is_loopback(host) or env.get("CALLSIGHT_BEHIND_PROXY") == "1":
        return None
    return EXPOSED_WARNING.format(host=host)
