"""Compaction: a DuckDB file rewritten without its deleted values, everything else as it was."""

import os
from pathlib import Path

import duckdb
import pytest

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


def test_compact_writes_the_named_tables_in_their_order_and_refuses_unknown_ones(tmp_path: Path) -> None:
    """The served warehouse keeps its legs newest first (publish.SERVED_ORDER): a call list's top rows
    are then in its first row groups. Storage order is what a scan without ORDER BY returns (rowid)."""
    path = tmp_path / "w.duckdb"
    con = calls_table(path)
    con.execute("INSERT INTO marts.calls SELECT range, 'n' || range FROM range(300000)")
    con.execute("CREATE TABLE marts.other AS SELECT range AS id FROM range(1000)")
    con.execute("CREATE VIEW marts.v AS SELECT count(*) AS n FROM marts.calls")
    con.close()
    before = catalogue(path)

    def stored(table: str) -> list[int]:
        c = duckdb.connect(str(path), read_only=True)
        try:
            return [r[0] for r in c.execute(f"SELECT id FROM marts.{table} ORDER BY rowid").fetchall()]
        finally:
            c.close()

    assert stored("calls") == list(range(300000))
    compact(path, {"marts.calls": "id DESC"})
    assert stored("calls") == list(range(299999, -1, -1))
    assert stored("other") == list(range(1000)), "other tables as they were"
    assert catalogue(path) == before, "rows, comments and constraints kept"
    c = duckdb.connect(str(path), read_only=True)
    assert c.execute("SELECT n FROM marts.v").fetchall() == [(300000,)], "views kept"
    c.close()

    with pytest.raises(ValueError, match=r"marts\.nope"):
        compact(path, {"marts.nope": "id"})
    assert stored("calls") == list(range(299999, -1, -1)), "a refused compaction leaves the file alone"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.duckdb"]


def test_a_table_larger_than_the_memory_limit_is_sorted_on_disk_and_the_spill_removed(tmp_path: Path) -> None:
    """DuckDB's memory is capped during compaction; the ordered copy of a table that does not fit spills
    into a private folder beside the file, which is gone afterwards."""
    path = tmp_path / "w.duckdb"
    con = calls_table(path)
    con.execute("INSERT INTO marts.calls SELECT range, 'number ' || hash(range) FROM range(3000000)")
    con.close()
    compact(path, {"marts.calls": "id DESC"}, memory_limit="64MB")
    c = duckdb.connect(str(path), read_only=True)
    try:
        ids = [r[0] for r in c.execute("SELECT id FROM marts.calls ORDER BY rowid").fetchall()]
    finally:
        c.close()
    assert ids == list(range(2999999, -1, -1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.duckdb"], "no spill or temporary file left behind"
