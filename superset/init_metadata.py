"""Superset's metadata DB, built-in roles and bootstrap admin, set up in one process (run by callsight's
SupersetEnv.init_metadata with the Superset environment's python, SUPERSET_CONFIG_PATH set).

What `superset db upgrade`, `superset init`, `superset fab create-admin` and `fab reset-password` do, without
importing Superset four times (half the time of every service start) and without the admin password on a
command line, where every local user can read it (/proc/<pid>/cmdline): it comes in the environment as
CALLSIGHT_INIT_ADMIN_PASSWORD. Idempotent: an existing admin gets the password given.

A SQLite metadata DB (the default profile) is switched to write-ahead logging, once, for good: requests
write action-log rows, and in SQLite's default mode each of those commits made the gunicorn threads'
reads wait (docs/performance.md, "What a cache hit costs").

The security token's triggers (security_state.py) are installed after the migrations, at every start."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


def write_ahead_log(engine: Engine) -> str:
    """Put a SQLite database into WAL mode (kept in the file); the mode it is in afterwards. Outside any
    transaction, as SQLite requires; another process holding the file leaves the mode as it was."""
    con = engine.raw_connection()
    try:
        return str(con.cursor().execute("PRAGMA journal_mode=WAL").fetchone()[0])
    finally:
        con.close()


def main() -> int:
    username = os.environ["CALLSIGHT_INIT_ADMIN_USERNAME"]
    password = os.environ.pop("CALLSIGHT_INIT_ADMIN_PASSWORD")
    from flask_migrate import upgrade
    from superset.app import create_app

    app = create_app()
    with app.app_context():
        from superset import appbuilder, db, security_manager

        upgrade()  # Superset's own migrations (the directory its Migrate was set up with)
        print("metadata DB upgraded", flush=True)
        if db.engine.dialect.name == "sqlite":
            print(f"metadata DB journal mode: {write_ahead_log(db.engine)}", flush=True)
        appbuilder.add_permissions(update_perms=True)
        security_manager.sync_role_definitions()
        db.session.commit()
        print("permissions and built-in roles synced", flush=True)
        # After the migrations, which may rebuild a table without its triggers (superset_config loaded it).
        installed = sys.modules["callsight_security_state"].install(db.engine)
        print(f"security token triggers: {'installed' if installed else 'not for this database'}", flush=True)
        user = security_manager.find_user(username=username)
        if user is None:
            role = security_manager.find_role(security_manager.auth_role_admin)
            user = security_manager.add_user(
                username, "callsight", "Admin", f"{username}@localhost", role, password=password
            )
            if not user:
                print(f"could not create the admin {username} (see the log above)", file=sys.stderr)
                return 1
            print(f"admin {username} created", flush=True)
        else:
            security_manager.reset_password(user.id, password)
            print(f"admin {username}: password set", flush=True)
        db.session.commit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
