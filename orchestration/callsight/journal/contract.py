"""The journal contract: the columns of ProCall's journal table, their types in the raw store, and
the DDL of a journal as the UCServer writes it (used by the demo, the benchmark and the tests).

Defined once here; the sources check a journal against it, the extract types and stores by it."""

from __future__ import annotations

JOURNAL_COLUMNS: tuple[str, ...] = (
    "ID",
    "StartTime",
    "StopTime",
    "DurationTotal",
    "ConnectTime",
    "DisconnectTime",
    "DurationConnected",
    "Outbound",
    "Internal",
    "LineNumber",
    "LineName",
    "LineUserName",
    "LocalNumber",
    "RedirectingNumber",
    "PhoneNumber",
    "ContactName",
    "ContactCompany",
    "ContactEntryID",
    "ContactEntryStoreID",
    "ContactEntryDBID",
    "CTIServerUserName",
    "SuccessState",
    "Subject",
    "ReadFlag",
    "ProjectName",
    "ProjectID",
    "PrivateCall",
    "TrackerID",
)


# The UCServer's journal table (SQLite flavour); MSSQL uses the same names with its own types.
JOURNAL_DDL = """
CREATE TABLE IF NOT EXISTS {table} (
    ID INTEGER PRIMARY KEY,
    StartTime DATETIME NOT NULL,
    StopTime DATETIME,
    DurationTotal INTEGER,
    ConnectTime DATETIME,
    DisconnectTime DATETIME,
    DurationConnected INTEGER,
    Outbound INTEGER,
    Internal INTEGER,
    LineNumber VARCHAR(64),
    LineName VARCHAR(128),
    LineUserName VARCHAR(128),
    LocalNumber VARCHAR(64),
    RedirectingNumber VARCHAR(64),
    PhoneNumber VARCHAR(64),
    ContactName VARCHAR(255),
    ContactCompany VARCHAR(255),
    ContactEntryID VARCHAR(255),
    ContactEntryStoreID VARCHAR(255),
    ContactEntryDBID VARCHAR(255),
    CTIServerUserName VARCHAR(128),
    SuccessState INTEGER,
    Subject VARCHAR(1024),
    ReadFlag INTEGER,
    ProjectName VARCHAR(255),
    ProjectID VARCHAR(64),
    PrivateCall INTEGER,
    TrackerID VARCHAR(64)
)
"""


TIME_COLUMNS = ("StartTime", "StopTime", "ConnectTime", "DisconnectTime")


INT_COLUMNS = ("DurationTotal", "DurationConnected")


FLAG_COLUMNS = ("Outbound", "Internal", "SuccessState", "ReadFlag", "PrivateCall")


TEXT_COLUMNS = tuple(c for c in JOURNAL_COLUMNS if c not in (*TIME_COLUMNS, *INT_COLUMNS, *FLAG_COLUMNS, "ID"))


# Accepted source type families per column: a column of another family is schema drift.
TYPE_FAMILIES = {
    **dict.fromkeys(TIME_COLUMNS, ("date", "time", "char", "text", "clob")),
    **dict.fromkeys(
        (*INT_COLUMNS, *FLAG_COLUMNS, "ID"), ("int", "num", "dec", "bit", "bool", "real", "float", "double")
    ),
    **dict.fromkeys(TEXT_COLUMNS, ("char", "text", "clob", "string", "uniqueidentifier", "int")),
}


JOURNAL_TYPES = {
    "ID": "BIGINT",
    **dict.fromkeys(TIME_COLUMNS, "TIMESTAMP"),
    **dict.fromkeys(INT_COLUMNS, "INTEGER"),
    **dict.fromkeys(FLAG_COLUMNS, "SMALLINT"),
    **dict.fromkeys(TEXT_COLUMNS, "VARCHAR"),
}
