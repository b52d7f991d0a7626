"""Write the validated org directory into the raw store, where dbt builds the viewer mapping from it."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from callsight.privacy.pseudonyms import pseudonyms
from callsight.site.directory import Directory
from callsight.site.policy import Calendar

DIRECTORY_TABLES = ("directory_users", "directory_groups", "directory_memberships", "directory_staff")
SITE_TABLES = (*DIRECTORY_TABLES, "public_holidays")
DDL = """
CREATE OR REPLACE TABLE directory_users (username VARCHAR PRIMARY KEY, display_name VARCHAR NOT NULL,
    pseudonym VARCHAR UNIQUE);
CREATE OR REPLACE TABLE directory_groups (group_name VARCHAR PRIMARY KEY,
    journal_visible_to_group BOOLEAN NOT NULL, journal_visible_to_leader BOOLEAN NOT NULL);
CREATE OR REPLACE TABLE directory_memberships (group_name VARCHAR NOT NULL, username VARCHAR NOT NULL,
    membership_role VARCHAR NOT NULL);
CREATE OR REPLACE TABLE directory_staff (username VARCHAR NOT NULL, staff_role VARCHAR NOT NULL);
CREATE OR REPLACE TABLE public_holidays (holiday_date DATE PRIMARY KEY, holiday_name VARCHAR NOT NULL);
"""


def directory_frames(directory: Directory, pseudonym_key: str | None = None) -> dict[str, pd.DataFrame]:
    """Pure: the directory as four relations. Leaders and deputies count as members of their group.
    With a pseudonym key every user gets a stable pseudonym (works-council mode), otherwise none."""
    names = [u.username for u in directory.users]
    aliases = pseudonyms(pseudonym_key, names) if pseudonym_key else {}
    users = pd.DataFrame(
        {
            "username": names,
            "display_name": [u.name for u in directory.users],
            "pseudonym": pd.Series([aliases.get(n) for n in names], dtype="object"),
        }
    )
    groups = pd.DataFrame(
        {
            "group_name": [g.name for g in directory.groups],
            "journal_visible_to_group": [g.journal_visible_to_group for g in directory.groups],
            "journal_visible_to_leader": [g.journal_visible_to_leader for g in directory.groups],
        }
    )
    rows: list[tuple[str, str, str]] = []
    for g in directory.groups:
        roles: dict[str, str] = {}
        for u in g.members:
            roles.setdefault(u, "member")
        for u in g.deputies:
            roles[u] = "deputy"
        for u in g.leaders:
            roles[u] = "leader"
        rows.extend((g.name, u, r) for u, r in roles.items())
    memberships = pd.DataFrame(rows, columns=["group_name", "username", "membership_role"])
    staff = pd.DataFrame(
        [(u, "analyst") for u in directory.analysts] + [(u, "admin") for u in directory.admins],
        columns=["username", "staff_role"],
    )
    return {
        "directory_users": users,
        "directory_groups": groups,
        "directory_memberships": memberships,
        "directory_staff": staff,
    }


def holiday_frame(calendar: Calendar, years: range) -> pd.DataFrame:
    """Pure: public holidays of the site's calendar, e.g. DE/BY incl. Fronleichnam."""
    import holidays

    days = holidays.country_holidays(calendar.country, subdiv=calendar.subdivision, years=list(years), language="de")
    rows = sorted(days.items())
    return pd.DataFrame({"holiday_date": [d for d, _ in rows], "holiday_name": [n for _, n in rows]})


def store_site(
    raw_db: Path, directory: Directory, calendar: Calendar, years: range, pseudonym_key: str | None = None
) -> dict[str, int]:
    """Directory relations and the holiday calendar, replaced in one transaction."""
    raw_db.parent.mkdir(parents=True, exist_ok=True)
    frames = {**directory_frames(directory, pseudonym_key), "public_holidays": holiday_frame(calendar, years)}
    con = duckdb.connect(str(raw_db))
    try:
        con.execute("BEGIN TRANSACTION")
        con.execute(DDL)
        for name, frame in frames.items():
            con.register("frame_df", frame)
            con.execute(f"INSERT INTO {name} BY NAME SELECT * FROM frame_df")
            con.unregister("frame_df")
        con.execute("COMMIT")
    finally:
        con.close()
    return {name: len(frame) for name, frame in frames.items()}
