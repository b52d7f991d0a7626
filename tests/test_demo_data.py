import sqlite3
from datetime import date
from pathlib import Path

import holidays
import pytest

from callsight.demo.journal import PRIVATE_LINE, generate
from callsight.journal.contract import JOURNAL_COLUMNS
from callsight.site.directory import load_directory
from callsight.site.policy import load_policy


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("demo")
    result = generate(out, seed=3, days=60, users=60, end=date(2026, 6, 12))
    con = sqlite3.connect(result.journal_path)
    con.row_factory = sqlite3.Row
    yield result, con
    con.close()


def test_schema_is_the_ucserver_journal(demo) -> None:
    _, con = demo
    cols = [r[1] for r in con.execute("PRAGMA table_info(journal)")]
    assert tuple(cols) == JOURNAL_COLUMNS


def test_deterministic_for_seed_and_end(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", seed=5, days=5, users=12, end=date(2026, 5, 8))
    b = generate(tmp_path / "b", seed=5, days=5, users=12, end=date(2026, 5, 8))
    c = generate(tmp_path / "c", seed=6, days=5, users=12, end=date(2026, 5, 8))
    dump = lambda p: list(sqlite3.connect(p).execute("SELECT * FROM journal ORDER BY ID"))  # noqa: E731
    assert dump(a.journal_path) == dump(b.journal_path)
    assert dump(a.journal_path) != dump(c.journal_path)
    assert a.directory_path.read_text() == b.directory_path.read_text()


def test_directory_and_policy_validate_and_cover_every_group_option(demo) -> None:
    result, _ = demo
    d = load_directory(result.directory_path)
    load_policy(result.policy_path)
    assert len(d.users) == 60 and len(d.groups) == 6
    combos = {(g.journal_visible_to_group, g.journal_visible_to_leader) for g in d.groups}
    assert combos == {(False, False), (False, True), (True, False), (True, True)}
    memberships: dict[str, list[str]] = {}
    for g in d.groups:
        for u in g.members:
            memberships.setdefault(u, []).append(g.name)
    assert any(len(v) > 1 for v in memberships.values()), "a user in two groups"
    assert all(g.deputies for g in d.groups)
    leaders_elsewhere = [
        g.leaders[0]
        for g in d.groups
        if any(g.leaders[0] in o.members and g.leaders[0] not in o.leaders for o in d.groups if o is not g)
    ]
    assert leaders_elsewhere, "a leader who is a plain member elsewhere"
    no_group = [u for u in d.usernames if u not in memberships]
    assert set(no_group) - set(d.analysts) - set(d.admins), "a plain agent in no group"
    assert d.private_lines == [PRIVATE_LINE]


def test_office_rhythm(demo) -> None:
    _, con = demo
    by_hour = dict(con.execute("SELECT CAST(strftime('%H', StartTime) AS INT), count(*) FROM journal GROUP BY 1"))
    assert by_hour.get(10, 0) > 3 * by_hour.get(12, 1) / 2 and by_hour.get(14, 0) > by_hour.get(12, 0)
    assert sum(v for h, v in by_hour.items() if h < 7 or h >= 19) < 0.01 * sum(by_hour.values())
    per_day = dict(con.execute("SELECT date(StartTime), count(*) FROM journal GROUP BY 1"))
    weekday = [
        n
        for d, n in per_day.items()
        if date.fromisoformat(d).weekday() < 5
        and date.fromisoformat(d) not in holidays.Germany(subdiv="BY", years=2026)
    ]
    weekend = [n for d, n in per_day.items() if date.fromisoformat(d).weekday() >= 5]
    assert min(weekday) > 10 * max(weekend or [0])
    # The window holds 1 May, Christi Himmelfahrt, Pfingstmontag and Fronleichnam (Bavaria): all quiet.
    hol = [
        d
        for d in per_day
        if date.fromisoformat(d) in holidays.Germany(subdiv="BY", years=2026) and date.fromisoformat(d).weekday() < 5
    ]
    assert len(hol) == 4
    for d in hol:
        assert per_day[d] < min(weekday) / 5


def test_call_features(demo) -> None:
    _, con = demo
    q = lambda sql: con.execute(sql).fetchone()[0]  # noqa: E731
    total = q("SELECT count(*) FROM journal")
    assert 0.3 < q("SELECT avg(Outbound) FROM journal") < 0.5
    assert 0.05 < q("SELECT avg(Internal) FROM journal") < 0.25
    missed = q("SELECT count(*) FROM journal WHERE Outbound = 0 AND DurationConnected = 0")
    assert 0.05 * total < missed < 0.3 * total
    # deputy/colleague pickups: chains with several legs, later legs carry the redirecting number
    chains = q("SELECT count(*) FROM (SELECT TrackerID FROM journal GROUP BY 1 HAVING count(*) > 1)")
    assert chains > 100
    assert q("SELECT count(*) FROM journal WHERE RedirectingNumber IS NOT NULL") >= chains
    assert q("SELECT count(*) FROM (SELECT TrackerID FROM journal GROUP BY 1 HAVING count(*) = 3)") > 0
    external = "Internal = 0"
    share_company = q(f"SELECT avg(ContactCompany IS NOT NULL) FROM journal WHERE {external}")
    assert 0.6 < share_company < 0.95
    assert q(f"SELECT avg(ProjectID IS NOT NULL) FROM journal WHERE {external}") > 0.05
    assert q("SELECT count(*) FROM journal WHERE PrivateCall = 1") > 0
    assert q(f"SELECT count(*) FROM journal WHERE LineNumber = '{PRIVATE_LINE}'") > 0
    assert q("SELECT count(*) FROM journal WHERE Subject IS NOT NULL") > 0
    ring = q(
        "SELECT avg((julianday(ConnectTime) - julianday(StartTime)) * 86400) FROM journal WHERE ConnectTime IS NOT NULL"
    )
    talk = q("SELECT avg(DurationConnected) FROM journal WHERE DurationConnected > 0")
    assert 3 < ring < 40 and 60 < talk < 900
    assert q("SELECT count(*) FROM journal WHERE StopTime < StartTime OR DurationTotal < 0") == 0
