"""The Dagster UI (dagster-webserver) behind a Host check: `python -m callsight.cli.dagster_ui --port 3000`.

The UI has no login and can launch runs and switch schedules. It listens on loopback only, but that
does not stop DNS rebinding: a web page whose name is made to resolve to 127.0.0.1 lets the browser of
someone on this machine talk to the UI under that page's name. So a request whose Host is not the
loopback address, `localhost` or a name the admin allowed (CALLSIGHT_DAGSTER_ALLOWED_HOSTS: the reverse
proxy's public name) is answered 400 before Dagster sees it. `callsight serve` starts this beside
`dagster-daemon run`, which alone runs the schedules (the UI is optional).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Iterable, Sequence

from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp

from callsight.site.file_modes import restrict_umask
from callsight.site.settings import Settings

CODE_LOCATION = "callsight.definitions"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
ALLOWED_HOSTS_VARIABLE = "CALLSIGHT_DAGSTER_ALLOWED_HOSTS"
# dagster-webserver's own defaults for its database pool
DB_STATEMENT_TIMEOUT_MS, DB_POOL_RECYCLE_S, DB_POOL_MAX_OVERFLOW = 15000, 3600, 20


def allowed_hosts(settings: Settings, extra: Iterable[str] = ()) -> list[str]:
    """Loopback plus the configured names (comma-separated; `*.example.com` allowed, a bare `*` or a
    name with a port or path is refused: the check compares names, whatever the port)."""
    configured = [h.strip().lower() for h in settings.env.get(ALLOWED_HOSTS_VARIABLE, "").split(",")]
    names = [h for h in (*configured, *(e.strip().lower() for e in extra)) if h]
    for name in names:
        if name == "*" or "*" in name[1:] or any(c in name for c in ":/ ") or (name[0] == "*" and name[1] != "."):
            raise ValueError(
                f"{ALLOWED_HOSTS_VARIABLE}: {name!r} is not a host name (names like dagster.example.com or "
                "*.example.com, without port; '*' would switch the check off)"
            )
    return list(dict.fromkeys((*LOOPBACK_HOSTS, *names)))


def guarded(app: ASGIApp, hosts: Sequence[str]) -> ASGIApp:
    """`app` answering only requests (HTTP and websocket) whose Host is one of `hosts`."""
    return TrustedHostMiddleware(app, allowed_hosts=list(hosts), www_redirect=False)


@contextlib.asynccontextmanager
async def _lifespan(_app: object) -> AsyncIterator[None]:
    # As dagster-webserver does: Ctrl-C cancels the lifespan task; that is a normal stop.
    with contextlib.suppress(asyncio.CancelledError):
        yield


def serve_ui(settings: Settings, host: str, port: int, hosts: Sequence[str], read_only: bool = False) -> None:
    """Build dagster-webserver's app for the callsight code location on the site's instance and serve it
    guarded (what `dagster-webserver -m callsight.definitions` does, plus the Host check)."""
    import uvicorn
    from dagster import DagsterInstance
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import ModuleTarget
    from dagster_webserver.app import create_app_from_workspace_process_context
    from dagster_webserver.version import __version__

    from callsight.defs.nightly import prepare_instance

    prepare_instance(settings)  # DAGSTER_HOME in CALLSIGHT_HOME, owner-only files
    target = ModuleTarget(module_name=CODE_LOCATION, attribute=None, working_directory=None, location_name=None)
    with DagsterInstance.get() as instance:
        instance.optimize_for_webserver(DB_STATEMENT_TIMEOUT_MS, DB_POOL_RECYCLE_S, DB_POOL_MAX_OVERFLOW)
        with WorkspaceProcessContext(
            instance, workspace_load_target=target, version=__version__, read_only=read_only
        ) as context:
            app = create_app_from_workspace_process_context(context, "", lifespan=_lifespan)
            uvicorn.run(guarded(app, hosts), host=host, port=port, log_level="warning")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m callsight.cli.dagster_ui", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback)")
    p.add_argument("--port", type=int, default=3000)
    p.add_argument("--allowed-host", action="append", default=[], metavar="NAME", help=f"like {ALLOWED_HOSTS_VARIABLE}")
    p.add_argument("--read-only", action="store_true", help="no launching runs or switching schedules")
    args = p.parse_args(argv)
    restrict_umask()
    try:
        settings = Settings.from_env()
        hosts = allowed_hosts(settings, args.allowed_host)
    except ValueError as exc:
        print(f"callsight: {exc}", file=sys.stderr)
        return 2
    print(f"Dagster UI on http://{args.host}:{args.port}/ for Host {', '.join(hosts)}", flush=True)
    serve_ui(settings, args.host, args.port, hosts, args.read_only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
