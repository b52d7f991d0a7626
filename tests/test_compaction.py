"""Compaction: a DuckDB file rewritten without its deleted values, everything else as it was."""

import os
from pathlib import Path

import duckdb

from callsight.site.compaction import compact

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


def calls_table(path: Path) -> duckdb.DuckDBPyConnection:
    """A new file with an empty marts.calls carrying a key, a NOT NULL and comments; its connection."""
    con = duckdb.connect(str(path))
    con.execute("CREATE SCHEMA marts")
    con.execute("CREATE TABLE marts.calls (id INTEGER PRIMARY KEY, number VARCHAR NOT NULL)")
    con.execute("COMMENT ON TABLE marts.calls IS 'one row per call'")
    con.execute("COMMENT ON COLUMN marts.calls.number IS 'the number'")
    return con


def test_compact_drops_deleted_values_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    con = calls_table(path)
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


def test_compact_keeps_every_table_and_view(tmp_path: Path) -> None:
    """The served warehouse's small rest - dimensions, the security mapping, the views over the week files
    and the analysts' views - comes out of a compaction as it went in."""
    path = tmp_path / "w.duckdb"
    con = calls_table(path)
    con.execute("INSERT INTO marts.calls SELECT range, 'n' || range FROM range(300000)")
    con.execute("CREATE TABLE marts.other AS SELECT range AS id FROM range(1000)")
    con.execute("CREATE VIEW marts.v AS SELECT count(*) AS n FROM marts.calls")
    con.close()
    before = catalogue(path)
    compact(path)
    assert catalogue(path) == before, "rows, comments and constraints kept"
    c = duckdb.connect(str(path), read_only=True)
    try:
        assert c.execute("SELECT n FROM marts.v").fetchall() == [(300000,)], "views kept"
        assert c.execute("SELECT count(*), sum(id) FROM marts.other").fetchone() == (1000, 499500)
    finally:
        c.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.duckdb"]


def test_a_table_larger_than_the_memory_limit_is_copied_and_the_spill_removed(tmp_path: Path) -> None:
    """DuckDB's memory is capped during compaction; a table that does not fit is copied all the same,
    and the private spill folder beside the file is gone afterwards."""
    path = tmp_path / "w.duckdb"
    con = calls_table(path)
    con.execute("INSERT INTO marts.calls SELECT range, 'number ' || hash(range) FROM range(3000000)")
    con.close()
    compact(path, memory_limit="64MB")
    c = duckdb.connect(str(path), read_only=True)
    try:
        assert c.execute("SELECT count(*), sum(id) FROM marts.calls").fetchone() == (3000000, 4499998500000)
    finally:
        c.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.duckdb"], "no spill or temporary file left behind"
