"""The erasure register outside the raw store: exports, and the union a restore re-applies.

An export is a small JSON file of the register's rows (request ids, times, identifier kinds, keyed hashes,
key checks): no phone number or name, and without CALLSIGHT_ERASURE_KEY nobody can test a number against
it. Admins keep it apart from the backups (`callsight export-erasures` after every erasure), so that a
restore of an archive taken before an erasure learns of it even when the server itself was lost.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from callsight.privacy.erasure import KEY_ENV, ErasureKeyError, key_check
from callsight.site.settings import Settings

EXPORT_FORMAT = "callsight-erasure-register"
READ_WAIT_SECONDS = 600.0


@dataclass(frozen=True, order=True)
class RegisterRow:
    requested_at: datetime
    request_id: str
    identifier_kind: str
    identifier_hash: str
    key_check: str

    @property
    def identity(self) -> tuple[str, str, str]:
        return (self.request_id, self.identifier_kind, self.identifier_hash)

    def values(self) -> tuple[str, datetime, str, str, str]:
        """In the column order of the raw store's erasure_register."""
        return (self.request_id, self.requested_at, self.identifier_kind, self.identifier_hash, self.key_check)


def read_register(con: duckdb.DuckDBPyConnection, db: str = "") -> list[RegisterRow]:
    """The register of an open raw store; empty when the store has none yet."""
    prefix = f"{db}." if db else ""
    try:
        rows = con.execute(
            "SELECT requested_at, request_id, identifier_kind, identifier_hash, key_check "
            f"FROM {prefix}erasure_register ORDER BY requested_at, request_id"
        ).fetchall()
    except duckdb.CatalogException:
        return []
    return [RegisterRow(*r) for r in rows]


def read_store_register(raw_db: Path, wait_seconds: float = READ_WAIT_SECONDS) -> list[RegisterRow]:
    """The register of a raw store file, read-only; waits while a night holds the store."""
    if not raw_db.exists():
        return []
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            con = duckdb.connect(str(raw_db), read_only=True)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(0.5)
            continue
        try:
            return read_register(con)
        finally:
            con.close()


def merge(*registers: Iterable[RegisterRow]) -> list[RegisterRow]:
    """Pure: the union of registers, each identifier of each request once, oldest first."""
    seen: dict[tuple[str, str, str], RegisterRow] = {}
    for register in registers:
        for row in register:
            seen.setdefault(row.identity, row)
    return sorted(seen.values())


def added(base: Sequence[RegisterRow], merged: Sequence[RegisterRow]) -> list[RegisterRow]:
    """Pure: rows of `merged` that `base` lacks."""
    have = {r.identity for r in base}
    return [r for r in merged if r.identity not in have]


def check_keys(rows: Sequence[RegisterRow], key: str | None) -> None:
    """Refuse a register that cannot be applied: rows but no key, or rows written with another key."""
    if not rows:
        return
    if key is None:
        raise ErasureKeyError(
            f"the erasure registers to re-apply hold {len(rows)} identifier(s) but {KEY_ENV} is not set: "
            "set the site's key (kept apart from the backups) and restore again"
        )
    foreign = sum(r.key_check != key_check(key) for r in rows)
    if foreign:
        raise ErasureKeyError(
            f"{foreign} registered identifier(s) were written with another {KEY_ENV}: refusing to restore "
            "(set the key the register was written with)"
        )


def to_json(rows: Sequence[RegisterRow], exported_at: datetime) -> str:
    """Pure: an export file's text."""
    body = {
        "format": EXPORT_FORMAT,
        "exported_at": exported_at.isoformat(),
        "rows": [
            {
                "request_id": r.request_id,
                "requested_at": r.requested_at.isoformat(),
                "identifier_kind": r.identifier_kind,
                "identifier_hash": r.identifier_hash,
                "key_check": r.key_check,
            }
            for r in rows
        ],
    }
    return json.dumps(body, indent=2)


def from_json(text: str, where: str = "export") -> list[RegisterRow]:
    """Pure: the rows of an export file's text."""
    try:
        body = json.loads(text)
        if body.get("format") != EXPORT_FORMAT:
            raise ValueError("not an erasure register export")
        return [
            RegisterRow(
                datetime.fromisoformat(r["requested_at"]),
                str(r["request_id"]),
                str(r["identifier_kind"]),
                str(r["identifier_hash"]),
                str(r["key_check"]),
            )
            for r in body["rows"]
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{where}: unreadable erasure register export ({exc})") from exc


def write_export(settings: Settings, output: Path) -> int:
    """Write the live register to `output` (owner-only, temp name then rename); returns its rows."""
    rows = read_store_register(settings.raw_db)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.partial-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(to_json(rows, datetime.now(UTC).replace(microsecond=0)))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, output)
    return len(rows)


def load_exports(paths: Sequence[Path]) -> list[RegisterRow]:
    return merge(*(from_json(p.read_text(encoding="utf-8"), str(p)) for p in paths))
