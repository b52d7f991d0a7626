"""Look for cleartext values in every file under a directory, the way an attacker with file access
would: raw bytes of every file, and for DuckDB and Parquet files (which compress strings) every text
column."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import duckdb


def is_duckdb(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except OSError:
        return False
    return head[8:12] == b"DUCK"


def duckdb_hits(path: Path, needles: list[str]) -> list[str]:
    hits: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "scan.duckdb"
        shutil.copyfile(path, copy)  # a copy: the original may be held by a writer
        con = duckdb.connect(str(copy), read_only=True)
        try:
            cols = con.execute(
                "SELECT table_schema, table_name, column_name FROM information_schema.columns "
                "WHERE data_type = 'VARCHAR' AND table_catalog = current_database()"
            ).fetchall()
            for schema, table, col in cols:
                for needle in needles:
                    n = con.execute(
                        f'SELECT count(*) FROM "{schema}"."{table}" WHERE contains("{col}", ?)', [needle]
                    ).fetchone()[0]
                    if n:
                        hits.append(f"{path}:{schema}.{table}.{col} contains {needle!r} ({n} rows)")
        finally:
            con.close()
    return hits


def is_parquet(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(4)
            f.seek(-4, 2)
            return head == f.read(4) == b"PAR1"
    except OSError:
        return False


def parquet_hits(path: Path, needles: list[str]) -> list[str]:
    hits: list[str] = []
    con = duckdb.connect()
    try:
        relation = f"read_parquet('{path}')"
        cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall() if r[1] == "VARCHAR"]
        for col in cols:
            for needle in needles:
                n = con.execute(f'SELECT count(*) FROM {relation} WHERE contains("{col}", ?)', [needle]).fetchone()[0]
                if n:
                    hits.append(f"{path}:{col} contains {needle!r} ({n} rows)")
    finally:
        con.close()
    return hits


def scan(root: Path, needles: list[str]) -> list[str]:
    """Every place under root where one of the needles appears in cleartext."""
    hits: list[str] = []
    encoded = [(n, n.encode("utf-8")) for n in needles]
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        hits += [f"{path}: bytes contain {n!r}" for n, b in encoded if b in data]
        if is_duckdb(path):
            hits += duckdb_hits(path, needles)
        elif is_parquet(path):
            hits += parquet_hits(path, needles)
    return hits
