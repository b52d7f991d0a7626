"""GDPR Art. 17 erasure: the register of requests and the SQL that suppresses erased identifiers.

A request names a phone number or a contact name. Only a keyed hash of the normalised identifier is
stored (the erasure register in the raw store): SHA-256 over `key|kind|value`, the key being the secret
CALLSIGHT_ERASURE_KEY from the environment. Without the key the register cannot be matched against a
list of numbers, so it is not itself a list of the people who asked to be forgotten.

The same hash is computed in SQL (DuckDB's sha256) over every journal row: the extract suppresses the
personal fields of matching rows before they land (a hash join of the row hashes against the register),
and `callsight erase` clears rows already stored. The call itself stays (times, durations, agent,
direction): it still counts, like a private call in drop mode.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

import duckdb

from callsight.journal.contract import JOURNAL_COLUMNS
from callsight.journal.raw_store import SCRUBBED_ROW_HASH
from callsight.privacy.masking import CONTACT_COLUMNS, NUMBER_COLUMNS, normalize_number
from callsight.site.settings import Settings

KEY_ENV = "CALLSIGHT_ERASURE_KEY"
PHONE, CONTACT = "phone", "contact"
MIN_KEY_LENGTH = 16
KEY_VARIABLE = "callsight_erasure_key"
HASH_TABLE = "erasure_hashes"
# Fields cleared on a matching call: the other party's numbers, name, company, contact IDs, note.
ERASED_COLUMNS: tuple[str, ...] = (*NUMBER_COLUMNS, *CONTACT_COLUMNS)
# Columns an identifier is matched against, and as what.
IDENTIFIER_COLUMNS: dict[str, str] = {**dict.fromkeys(NUMBER_COLUMNS, PHONE), "ContactName": CONTACT}
_SPACE = "[ \t\n\r\f\v]+"


class ErasureKeyError(RuntimeError):
    """The erasure key is missing, too short, or not the one the register was written with."""


# ---- identifiers and their hashes ------------------------------------------------------------------
def normalize_contact(name: str | None) -> str:
    """Contact names compare case-insensitively with runs of blanks collapsed: ' Karl  KUNDE' -> 'karl kunde'."""
    if name is None:
        return ""
    return re.sub(_SPACE, " ", str(name)).strip(" ").lower()


def normalize(kind: str, value: str | None) -> str:
    if kind == PHONE:
        return normalize_number(value)
    if kind == CONTACT:
        return normalize_contact(value)
    raise ValueError(f"unknown identifier kind {kind!r}")


def identifier_hash(key: str, kind: str, value: str) -> str:
    """Keyed hash of a normalised identifier; equal to the SQL in `hash_sql`."""
    return hashlib.sha256(f"{key}|{kind}|{normalize(kind, value)}".encode()).hexdigest()


def key_check(key: str) -> str:
    """A check value that tells whether a key is the one the register was written with (not the key)."""
    return hashlib.sha256(f"callsight erasure key check|{key}".encode()).hexdigest()[:16]


def erasure_key(settings: Settings, required: bool) -> str | None:
    key = settings.secret(KEY_ENV)
    if key is None:
        if required:
            raise ErasureKeyError(
                f"{KEY_ENV} is not set: erasure requests are stored as hashes keyed with this secret "
                "(see docs/privacy.md, 'Erasure'). Generate one, e.g. "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`, and keep it with your other secrets"
            )
        return None
    if len(key) < MIN_KEY_LENGTH:
        raise ErasureKeyError(f"{KEY_ENV} must be at least {MIN_KEY_LENGTH} characters long")
    return key


# ---- SQL --------------------------------------------------------------------------------------------
def _number_sql(col: str) -> str:
    """privacy.normalize_number in SQL."""
    return f"regexp_replace(regexp_replace(coalesce({col}, ''), '[^0-9]', '', 'g'), '^00', '')"


def _contact_sql(col: str) -> str:
    """normalize_contact in SQL."""
    return f"lower(trim(regexp_replace(coalesce({col}, ''), '{_SPACE}', ' ', 'g'), ' '))"


def hash_sql(kind: str, col: str) -> str:
    """Keyed hash of a column's normalised value, NULL where the value is empty (never matches)."""
    value = _number_sql(col) if kind == PHONE else _contact_sql(col)
    return f"sha256(getvariable('{KEY_VARIABLE}') || '|{kind}|' || nullif({value}, ''))"


def erased_sql(columns: Mapping[str, str] | None = None) -> str:
    """True where a row matches the register: one keyed hash per identifier column, joined (IN = hash
    semi-join) against the register's hashes in the temporary table erasure_hashes. `columns` maps a
    journal column to the SQL that reads it (default: the quoted column)."""
    cols = {c: f'"{c}"' for c in IDENTIFIER_COLUMNS} | dict(columns or {})

    def matches(kind: str, col: str) -> str:
        found = f"{hash_sql(kind, cols[col])} IN (SELECT identifier_hash FROM {HASH_TABLE} WHERE kind = '{kind}')"
        return f"coalesce({found}, false)"

    return "(" + " OR ".join(matches(kind, col) for col, kind in IDENTIFIER_COLUMNS.items()) + ")"


def suppressed_columns_sql(flag: str) -> dict[str, str]:
    """Expression per erased column: NULL where `flag` holds."""
    return {c: f'CASE WHEN {flag} THEN NULL ELSE "{c}" END' for c in ERASED_COLUMNS}


def scrubbed_json_sql(col: str) -> str:
    """A quarantine row's JSON with the erased fields set to null (other fields kept as text)."""
    parts = []
    for c in JOURNAL_COLUMNS:
        parts.append(f"'{c}', " + ("NULL" if c in ERASED_COLUMNS else f"json_extract_string({col}, '$.{c}')"))
    return "json_object(" + ", ".join(parts) + ")"


# ---- the register ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Identifier:
    kind: str
    value: str

    def __post_init__(self) -> None:
        if not normalize(self.kind, self.value):
            what = "digits" if self.kind == PHONE else "letters"
            raise ValueError(f"the {self.kind} identifier has no {what} to match")


def check_key(con: duckdb.DuckDBPyConnection, key: str | None, db: str = "") -> int:
    """Number of registered identifiers. Raises when there are some and the key is missing or wrong:
    matching with another key would silently let erased data land again."""
    prefix = f"{db}." if db else ""
    rows = con.execute(f"SELECT key_check, count(*) FROM {prefix}erasure_register GROUP BY 1").fetchall()
    total = sum(n for _, n in rows)
    if not total:
        return 0
    if key is None:
        raise ErasureKeyError(
            f"the erasure register holds {total} identifier(s) but {KEY_ENV} is not set: refusing to load "
            "journal rows that may contain erased data"
        )
    if any(check != key_check(key) for check, _ in rows):
        raise ErasureKeyError(
            f"{KEY_ENV} is not the key the erasure register was written with: refusing to go on "
            "(restore the original key)"
        )
    return total


def prepare_matching(con: duckdb.DuckDBPyConnection, key: str, db: str = "") -> None:
    """Make `erased_sql()` usable on this connection: the key as a variable (never in SQL text) and the
    register's distinct hashes as the temporary table erasure_hashes."""
    prefix = f"{db}." if db else ""
    con.execute(f"SET VARIABLE {KEY_VARIABLE} = ?", [key])
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {HASH_TABLE} AS "
        f"SELECT DISTINCT identifier_kind AS kind, identifier_hash FROM {prefix}erasure_register"
    )


def register_requests(
    con: duckdb.DuckDBPyConnection, key: str, identifiers: Iterable[Identifier], now: datetime, db: str = ""
) -> str:
    """Append one request (several identifiers) to the register; returns its id."""
    prefix = f"{db}." if db else ""
    request_id = str(uuid.uuid4())
    rows = [(request_id, now, i.kind, identifier_hash(key, i.kind, i.value), key_check(key)) for i in identifiers]
    con.executemany(f"INSERT INTO {prefix}erasure_register VALUES (?, ?, ?, ?, ?)", rows)
    return request_id


@dataclass(frozen=True)
class ScrubCounts:
    journal_rows: int
    quarantine_rows: int


def scrub_store(con: duckdb.DuckDBPyConnection, now: datetime, db: str = "") -> ScrubCounts:
    """Clear the personal fields of every stored row that matches the register (after prepare_matching).

    Scrubbed rows get a new extraction stamp so that the incremental marts rebuild them, and the row hash
    SCRUBBED_ROW_HASH so that the next extract reading them replaces them by its own (suppressed) version
    of the source row."""
    prefix = f"{db}." if db else ""
    sets = ", ".join(f'"{c}" = NULL' for c in ERASED_COLUMNS)
    journal = con.execute(
        f"UPDATE {prefix}journal SET {sets}, _row_hash = {SCRUBBED_ROW_HASH}, _extracted_at = ? WHERE {erased_sql()}",
        [now],
    ).fetchone()[0]
    quarantine_match = erased_sql({c: f"json_extract_string(row_json, '$.{c}')" for c in IDENTIFIER_COLUMNS})
    quarantine = con.execute(
        f"UPDATE {prefix}quarantine SET row_json = {scrubbed_json_sql('row_json')} WHERE {quarantine_match}"
    ).fetchone()[0]
    return ScrubCounts(int(journal), int(quarantine))


def register_size(con: duckdb.DuckDBPyConnection, db: str = "") -> tuple[int, int]:
    """(requests, identifiers) in the register."""
    prefix = f"{db}." if db else ""
    row = con.execute(f"SELECT count(DISTINCT request_id), count(*) FROM {prefix}erasure_register").fetchone()
    return int(row[0]), int(row[1])
