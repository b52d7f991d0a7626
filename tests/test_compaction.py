"""Compaction: a DuckDB file rewritten without its deleted values, everything else as it was."""

import os
from pathlib import Path

import duckdb

from callsight.compaction import compact

from .privacy_scan import scan


def catalogue(path: Path) -> tuple:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return (
            con.execute("SELECT * FROM marts.calls ORDER BY id").fetchall(),
            con.execute("SELECT comment FROM duckdb_tables() WHERE table_name = 'calls'").fetchall(),
            con.execute(
                "SELECT column_name, comment FROM duckdb_columns() WHERE table_name = 'calls' ORDER BY 1"
            ).fetchall(),
            con.execute("SELECT constraint_type, constraint_text FROM duckdb_constraints() ORDER BY ALL").fetchall(),
        )
    finally:
        con.close()


def test_compact_drops_deleted_values_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE SCHEMA marts")
    con.execute("CREATE TABLE marts.calls (id INTEGER PRIMARY KEY, number VARCHAR NOT NULL)")
    con.execute("COMMENT ON TABLE marts.calls IS 'one row per call'")
    con.execute("COMMENT ON COLUMN marts.calls.number IS 'the number'")
    con.executemany("INSERT INTO marts.calls VALUES (?, ?)", [(i, f"+49 {7000000 + i * 7919}") for i in range(2000)])
    con.execute("CHECKPOINT")
    con.execute("DELETE FROM marts.calls WHERE id = 5")
    con.execute("UPDATE marts.calls SET number = 'withheld' WHERE id = 6")
    con.close()
    gone = [f"+49 {7000000 + 5 * 7919}", f"+49 {7000000 + 6 * 7919}"]
    os.chmod(path, 0o600)
    before = catalogue(path)
    assert scan(tmp_path, gone), "the deleted and overwritten values are still in the file"
    compact(path)
    assert scan(tmp_path, gone) == []
    assert catalogue(path) == before
    assert path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.duckdb"], "no temporary file left behind"
