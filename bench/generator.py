"""A fast, vectorised ProCall journal for benchmarks: millions of call legs in seconds per million.

Same schema as the demo journal (`demo_data.JOURNAL_COLUMNS`), same kind of org directory
(`demo_data.build_org`), so the warehouse joins work: inbound chains of up to three legs under one
TrackerID (a colleague of the same group picks up), missed calls, callbacks (outbound to the same
number within hours), internal calls, private calls (flag and private line), companies, projects,
notes, and local wall-clock times across DST switches (no time in the skipped spring hour; the autumn
hour occurs twice).

Chains are drawn with numpy in blocks of days; DuckDB turns the numbers into journal rows and writes
them into SQLite through its sqlite extension, so the whole journal never sits in Python objects.
The history and the "night" (one extra day, for the incremental run) are separate blocks: IDs are
in StartTime order within each block and the night's IDs follow the history's.
"""

from __future__ import annotations

import itertools
import math
import random
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import holidays
import numpy as np
import pyarrow as pa
import yaml

from callsight.demo.journal import (
    COMPANY_FORMS,
    COMPANY_KINDS,
    COMPANY_STEMS,
    FIRST_NAMES,
    LAST_NAMES,
    NOTES,
    PRIVATE_LINE,
    PRIVATE_NOTES,
    PROJECTS,
    SITE_PREFIX,
    Agent,
    _hour_weight,
    build_org,
    default_policy,
)
from callsight.journal.contract import JOURNAL_COLUMNS, JOURNAL_DDL
from callsight.journal.sources import extension_directory
from callsight.journal.timezones import transitions

TIMEZONE = "Europe/Berlin"
CALLBACK_NOTE = "Rückruf"
# Kinds of generation units (a chain, plus the callback of a missed inbound chain).
INBOUND, OUTBOUND, INTERNAL = 0, 1, 2
KIND_SHARES = (0.60, 0.28, 0.12)
CALLBACK_DELAYS_MIN = np.array([5, 20, 45, 90, 180, 60 * 20, 60 * 30])
# Expected legs per unit, used to size a block before it is cut to the exact row count.
LEGS_PER_UNIT = 1.10
BLOCK_ROWS = 2_000_000  # rows drawn per block (bounds memory at 10M rows)
# Contact kinds of a leg: who is on the other end.
CONTACT_EXTERNAL, CONTACT_PRIVATE, CONTACT_COLLEAGUE = 0, 1, 2


@dataclass(frozen=True)
class BenchJournal:
    """A generated benchmark site: journal (SQLite), org directory, policy and the day split."""

    sqlite_path: Path
    directory_path: Path
    policy_path: Path
    history_rows: int
    night_rows: int
    first_day: date
    last_history_day: date
    night_day: date

    @property
    def rows(self) -> int:
        return self.history_rows + self.night_rows


@dataclass(frozen=True)
class Org:
    agents: list[Agent]
    directory: dict
    colleague_start: np.ndarray  # per agent: offset into colleague_flat of its first group's members
    colleague_count: np.ndarray  # per agent: members of its first group (0: no group)
    colleague_flat: np.ndarray


def bench_org(users: int, seed: int) -> Org:
    agents, directory = build_org(random.Random(seed), users)
    index = {a.username: i for i, a in enumerate(agents)}
    members = {g["name"]: [index[m] for m in g["members"] if m in index] for g in directory["groups"]}
    flat: list[int] = []
    start = np.zeros(len(agents), dtype=np.int64)
    count = np.zeros(len(agents), dtype=np.int64)
    for i, a in enumerate(agents):
        if a.groups:
            start[i] = len(flat)
            group = members[a.groups[0]]
            flat.extend(group)
            count[i] = len(group)
    return Org(agents, directory, start, count, np.array(flat or [0], dtype=np.int64))


def _day_weight(day: date, feiertage: holidays.HolidayBase) -> float:
    if day in feiertage:
        return 0.1
    return {5: 0.25, 6: 0.1}.get(day.weekday(), 1.0)


def history_days(rows: int, rows_per_day: int, last: date) -> list[date]:
    """Days ending on `last` whose weights (weekdays 1, Saturday 0.25, Sunday/holiday 0.1) hold `rows`."""
    feiertage = holidays.Germany(subdiv="BY", years=range(last.year - 3, last.year + 1))
    days: list[date] = []
    total, d = 0.0, last
    while total * rows_per_day < rows:
        days.append(d)
        total += _day_weight(d, feiertage)
        d -= timedelta(days=1)
    return sorted(days)


def _minute_weights() -> np.ndarray:
    w = np.array([_hour_weight(m + 0.5) for m in range(1440)])
    return w / w.sum()


def _dst_shift(day: date) -> tuple[int, int] | None:
    """(first, last) minute of the skipped local hour when `day` springs forward, else None."""
    tz = ZoneInfo(TIMEZONE)
    before = datetime(day.year, day.month, day.day, 0, 30, tzinfo=tz).utcoffset()
    after = datetime(day.year, day.month, day.day, 23, 30, tzinfo=tz).utcoffset()
    if before is None or after is None or after <= before:
        return None
    for m in range(0, 1440, 15):
        t = datetime(day.year, day.month, day.day, m // 60, m % 60, tzinfo=tz)
        back = t.astimezone(ZoneInfo("UTC")).astimezone(tz)
        if back.replace(tzinfo=None) != t.replace(tzinfo=None):
            return m, m + int((after - before).total_seconds() // 60)
    return None


class WallClock:
    """Local wall clock <-> UTC for epoch seconds, vectorised: the offsets of the site time zone and the
    UTC instants where they change (timezones.transitions) over the days of a block."""

    def __init__(self, first: date, last: date, tz: str = TIMEZONE) -> None:
        start = datetime.combine(first - timedelta(days=2), datetime.min.time(), tzinfo=UTC)
        offset = start.astimezone(ZoneInfo(tz)).utcoffset()
        changes, offsets = [int(start.timestamp())], [int(offset.total_seconds()) if offset else 0]
        for at, _before, after in transitions(tz, first - timedelta(days=1), last + timedelta(days=1)):
            changes.append(int(at.replace(tzinfo=UTC).timestamp()))
            offsets.append(after)
        self.changes = np.array(changes, dtype=np.int64)
        self.offsets = np.array(offsets, dtype=np.int64)
        self.max_offset = int(self.offsets.max())

    def offset(self, utc: np.ndarray) -> np.ndarray:
        return self.offsets[np.clip(np.searchsorted(self.changes, utc, side="right") - 1, 0, None)]

    def to_local(self, utc: np.ndarray) -> np.ndarray:
        return utc + self.offset(utc)

    def to_utc(self, local: np.ndarray) -> np.ndarray:
        """Of the two instants of a repeated autumn time, the first (summer time)."""
        guess = local - self.offset(local)
        refined = local - self.offset(guess)
        return np.where(self.to_local(refined) == local, refined, guess)


def _lognormal(rng: np.random.Generator, median: float, sigma: float, n: int, lo: int, hi: int) -> np.ndarray:
    return np.clip(rng.lognormal(math.log(median), sigma, n).astype(np.int64), lo, hi)


def draw_block(
    rng: np.random.Generator,
    days: list[date],
    weights: np.ndarray,
    rows: int,
    org: Org,
    n_contacts: int,
    n_private: int,
    unit_base: int,
) -> pa.Table:
    """Exactly `rows` legs on `days` (weights: relative volume per day), as numbers (no text)."""
    n_agents = len(org.agents)
    n_units = int(rows / LEGS_PER_UNIT * 1.05) + 16
    epoch = datetime(1970, 1, 1)
    day_start = np.array([int((datetime.combine(d, datetime.min.time()) - epoch).total_seconds()) for d in days])
    block_end = day_start[-1] + 86400
    day_idx = rng.choice(len(days), n_units, p=weights / weights.sum())
    minute = rng.choice(1440, n_units, p=_minute_weights())
    for i, d in enumerate(days):  # no call starts in the skipped spring hour: the clock jumps it
        shift = _dst_shift(d)
        if shift:
            hit = (day_idx == i) & (minute >= shift[0]) & (minute < shift[1])
            minute[hit] += shift[1] - shift[0]
    # Chains start on the local wall clock; legs follow in real (UTC) seconds, written back as local time.
    clock = WallClock(days[0], days[-1])
    start = clock.to_utc(day_start[day_idx] + minute * 60 + rng.integers(0, 60, n_units))
    kind = rng.choice(3, n_units, p=KIND_SHARES)
    agent = rng.integers(0, n_agents, n_units)
    inbound = kind == INBOUND
    private = np.where(inbound, rng.random(n_units) < 0.02, (kind == OUTBOUND) & (rng.random(n_units) < 0.03))
    private_line = private & (kind == OUTBOUND) & (rng.random(n_units) < 0.5)
    contact = np.where(private, rng.integers(0, n_private, n_units), rng.integers(0, n_contacts, n_units))
    contact_kind = np.where(private, CONTACT_PRIVATE, CONTACT_EXTERNAL)
    other = (agent + 1 + rng.integers(0, n_agents - 1, n_units)) % n_agents  # internal: another agent
    contact = np.where(kind == INTERNAL, other, contact)
    contact_kind = np.where(kind == INTERNAL, CONTACT_COLLEAGUE, contact_kind)
    # Legs of an inbound chain: the first agent; if missed, a colleague of its group; then a third.
    answered1 = rng.random(n_units) < np.select([inbound, kind == OUTBOUND], [0.80, 0.72], 0.9)
    count = org.colleague_count[agent]
    has_colleague = count > 1
    leg2 = inbound & ~answered1 & has_colleague & (rng.random(n_units) < 0.45)
    answered2 = leg2 & (rng.random(n_units) < 0.85)
    leg3 = leg2 & ~answered2 & (count > 2) & (rng.random(n_units) < 0.3)
    safe = np.maximum(count, 1)
    first_pos = rng.integers(0, 1 << 30, n_units) % safe
    agent2 = org.colleague_flat[org.colleague_start[agent] + first_pos]
    agent2 = np.where(agent2 == agent, org.colleague_flat[org.colleague_start[agent] + (first_pos + 1) % safe], agent2)
    second_pos = (first_pos + 1 + rng.integers(0, 1 << 30, n_units) % np.maximum(safe - 1, 1)) % safe
    agent3 = org.colleague_flat[org.colleague_start[agent] + second_pos]
    agent3 = np.where(agent3 == agent2, agent, agent3)
    missed = inbound & ~answered1 & ~answered2 & ~leg3
    delay = CALLBACK_DELAYS_MIN[rng.integers(0, len(CALLBACK_DELAYS_MIN), n_units)] * 60
    callback = missed & (rng.random(n_units) < 0.6) & (start + delay + 3600 * 3 + clock.max_offset < block_end)
    # Cut the units to exactly `rows` legs: a prefix of units, topped up with single-leg units.
    legs_per_unit = 1 + leg2 + leg3 + callback
    cum = np.cumsum(legs_per_unit)
    k = int(np.searchsorted(cum, rows, side="right"))
    deficit = rows - (int(cum[k - 1]) if k else 0)
    singles = np.flatnonzero(legs_per_unit[k:] == 1)[:deficit] + k
    if len(singles) < deficit:
        raise RuntimeError("block too small for the requested rows")
    keep = np.concatenate([np.arange(k), singles])
    ring = _lognormal(rng, 9, 0.6, n_units * 4, 1, 600).reshape(4, n_units)
    talk_med = np.select([inbound, kind == OUTBOUND], [170, 150], 90)
    talk = np.clip((rng.lognormal(0, 0.9, (4, n_units)) * talk_med).astype(np.int64), 3, 3 * 3600)
    project = np.where(rng.random(n_units) < np.where(inbound, 0.25, 0.2), rng.integers(0, len(PROJECTS), n_units), -1)
    note_roll = rng.random(n_units)
    note = np.where(note_roll < np.where(inbound, 0.15, np.where(kind == OUTBOUND, 0.2, 0.0)), 0, -1)
    note_pick = rng.integers(0, 1 << 30, n_units)
    outbound_internal = rng.random(n_units) < 0.5
    tracker = unit_base + np.arange(n_units, dtype=np.int64)

    cols: dict[str, list[np.ndarray]] = {}

    def add(sel: np.ndarray, **values: np.ndarray) -> None:
        for name, v in values.items():
            arr = np.broadcast_to(v, (n_units,))[sel] if np.ndim(v) else np.full(int(sel.sum()), v)
            cols.setdefault(name, []).append(np.asarray(arr))

    chosen = np.zeros(n_units, dtype=bool)
    chosen[keep] = True
    no_agent = np.full(n_units, -1)
    # leg 1 of every unit
    add(
        chosen,
        start=start,
        ring=ring[0],
        talk=np.where(answered1, talk[0], 0),
        outbound=np.where(kind == INTERNAL, outbound_internal, kind == OUTBOUND),
        internal=kind == INTERNAL,
        agent=agent,
        contact=contact,
        contact_kind=contact_kind,
        redirect_agent=no_agent,
        private_flag=private & ~private_line,
        private_line=private_line,
        note=np.where(kind == INTERNAL, -1, note),
        note_pick=note_pick,
        project=np.where((kind == INTERNAL) | private, -1, project),
        tracker=tracker,
        callback=np.zeros(n_units, dtype=bool),
    )
    start2 = start + ring[0]
    add(
        chosen & leg2,
        start=start2,
        ring=ring[1],
        talk=np.where(answered2, talk[1], 0),
        outbound=False,
        internal=False,
        agent=agent2,
        contact=contact,
        contact_kind=contact_kind,
        redirect_agent=agent,
        private_flag=private,
        private_line=False,
        note=no_agent,
        note_pick=note_pick,
        project=np.where(private, -1, project),
        tracker=tracker,
        callback=np.zeros(n_units, dtype=bool),
    )
    add(
        chosen & leg3,
        start=start2 + ring[1],
        ring=ring[2],
        talk=talk[2],
        outbound=False,
        internal=False,
        agent=agent3,
        contact=contact,
        contact_kind=contact_kind,
        redirect_agent=agent2,
        private_flag=private,
        private_line=False,
        note=no_agent,
        note_pick=note_pick,
        project=np.where(private, -1, project),
        tracker=tracker,
        callback=np.zeros(n_units, dtype=bool),
    )
    add(
        chosen & callback,
        start=start + delay,
        ring=ring[3],
        talk=np.where(rng.random(n_units) < 0.8, talk[3], 0),
        outbound=True,
        internal=False,
        agent=agent,
        contact=contact,
        contact_kind=contact_kind,
        redirect_agent=no_agent,
        private_flag=private,
        private_line=False,
        note=no_agent,
        note_pick=note_pick,
        project=no_agent,
        tracker=-1 - tracker,  # a callback is a chain of its own
        callback=np.ones(n_units, dtype=bool),
    )
    arrays = {name: np.concatenate(parts) for name, parts in cols.items()}
    utc = arrays.pop("start")
    arrays["start_l"] = clock.to_local(utc)
    arrays["connect_l"] = clock.to_local(utc + arrays["ring"])
    arrays["stop_l"] = clock.to_local(utc + arrays["ring"] + arrays["talk"])
    order = np.lexsort((arrays["agent"], arrays["tracker"], arrays["start_l"]))  # IDs in StartTime order
    table = pa.table({"seq": np.arange(1, len(order) + 1), **{name: a[order] for name, a in arrays.items()}})
    if table.num_rows != rows:
        raise RuntimeError(f"drew {table.num_rows} legs, wanted {rows}")
    return table


def _lookups(con: duckdb.DuckDBPyConnection, org: Org, seed: int, n_contacts: int, n_private: int) -> None:
    """Small tables the legs are joined to: agents, contacts, private contacts, notes, projects."""
    rng = random.Random(seed + 1)
    companies = sorted(
        {f"{rng.choice(COMPANY_STEMS)} {rng.choice(COMPANY_KINDS)} {rng.choice(COMPANY_FORMS)}" for _ in range(400)}
    )
    areas = ("89", "30", "40", "221", "69", "711", "8151", "911", "341", "351")
    contacts = []
    for i in range(n_contacts):
        number = f"+49 {rng.choice(areas)} {rng.randint(100000, 9999999)}"
        if rng.random() < 0.12:
            number = f"+49 1{rng.choice(('51', '52', '60', '70', '76'))} {rng.randint(1000000, 99999999)}"
        company = rng.choice(companies) if rng.random() < 0.85 else None
        contacts.append((i, f"C{100000 + i}", f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}", company, number))
    private = []
    for i in range(n_private):
        number = f"+49 1{rng.choice(('51', '57', '60', '72', '76'))} {rng.randint(10000000, 99999999)}"
        private.append((i, f"P{200000 + i}", f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}", None, number))
    contact_columns = ("idx", "entry_id", "name", "company", "num")
    _create_table(con, "contacts", contact_columns, contacts)
    _create_table(con, "private_contacts", contact_columns, private)
    agents = [(i, a.username, a.name, a.extension, a.line) for i, a in enumerate(org.agents)]
    _create_table(con, "agents", ("idx", "username", "name", "extension", "line"), agents)
    _create_table(con, "notes", ("idx", "note"), list(enumerate(NOTES)))
    _create_table(con, "private_notes", ("idx", "note"), list(enumerate(PRIVATE_NOTES)))
    projects = [(i, p, n) for i, (p, n) in enumerate(PROJECTS)]
    _create_table(con, "projects", ("idx", "project_id", "project_name"), projects)


def _create_table(con: duckdb.DuckDBPyConnection, name: str, columns: Sequence[str], rows: list[tuple]) -> None:
    """A table of Python rows (first column BIGINT, the others text), through Arrow: DuckDB's
    executemany costs about half a millisecond per row."""
    values = list(zip(*rows, strict=True)) if rows else [()] * len(columns)
    types = [pa.int64()] + [pa.string()] * (len(columns) - 1)
    arrays = [pa.array(v, type=t) for v, t in zip(values, types, strict=True)]
    con.from_arrow(pa.Table.from_arrays(arrays, names=list(columns))).create(name)


# Numbers to journal text. Times are local wall-clock text as the UCServer writes them into SQLite.
ROWS_SQL = """
SELECT
    {id_base} + l.seq AS "ID",
    strftime(make_timestamp(l.start_l * 1000000), '%Y-%m-%d %H:%M:%S') AS "StartTime",
    strftime(make_timestamp(l.stop_l * 1000000), '%Y-%m-%d %H:%M:%S') AS "StopTime",
    l.ring + l.talk AS "DurationTotal",
    CASE WHEN l.talk > 0 THEN strftime(make_timestamp(l.connect_l * 1000000), '%Y-%m-%d %H:%M:%S') END
        AS "ConnectTime",
    CASE WHEN l.talk > 0 THEN strftime(make_timestamp(l.stop_l * 1000000), '%Y-%m-%d %H:%M:%S')
        END AS "DisconnectTime",
    l.talk AS "DurationConnected",
    CAST(l.outbound AS INTEGER) AS "Outbound",
    CAST(l.internal AS INTEGER) AS "Internal",
    CASE WHEN l.private_line THEN '{private_line}' ELSE a.line END AS "LineNumber",
    CASE WHEN l.private_line THEN 'Privatleitung' ELSE 'Leitung ' || a.name END AS "LineName",
    a.username AS "LineUserName",
    a.extension AS "LocalNumber",
    r.line AS "RedirectingNumber",
    coalesce(c.num, p.num, o.extension) AS "PhoneNumber",
    coalesce(c.name, p.name, o.name) AS "ContactName",
    c.company AS "ContactCompany",
    coalesce(c.entry_id, p.entry_id, 'U-' || o.username) AS "ContactEntryID",
    CASE WHEN l.contact_kind < 2 THEN 'CRM' END AS "ContactEntryStoreID",
    CASE WHEN l.contact_kind < 2 THEN 'crm-main' END AS "ContactEntryDBID",
    a.username AS "CTIServerUserName",
    CAST(l.talk > 0 AS INTEGER) AS "SuccessState",
    CASE
        WHEN l.callback THEN '{callback_note}'
        WHEN l.note < 0 THEN NULL
        WHEN l.private_flag OR l.private_line THEN pn.note
        ELSE n.note
    END AS "Subject",
    1 AS "ReadFlag",
    CASE WHEN c.company IS NOT NULL THEN pr.project_name END AS "ProjectName",
    CASE WHEN c.company IS NOT NULL THEN pr.project_id END AS "ProjectID",
    CAST(l.private_flag AS INTEGER) AS "PrivateCall",
    substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-' || substr(h, 13, 4) || '-' || substr(h, 17, 4) || '-'
        || substr(h, 21, 12) AS "TrackerID"
FROM (
    SELECT
        *,
        md5('{seed}:' || CAST(tracker AS VARCHAR)) AS h,
        CASE WHEN contact_kind = 0 THEN contact END AS contact_ext,
        CASE WHEN contact_kind = 1 THEN contact END AS contact_priv,
        CASE WHEN contact_kind = 2 THEN contact END AS contact_agent,
        CASE WHEN note >= 0 THEN note_pick % {n_notes} END AS note_idx,
        CASE WHEN note >= 0 THEN note_pick % {n_private_notes} END AS private_note_idx
    FROM legs
) AS l
INNER JOIN agents AS a ON a.idx = l.agent
LEFT JOIN agents AS r ON r.idx = l.redirect_agent
LEFT JOIN contacts AS c ON c.idx = l.contact_ext
LEFT JOIN private_contacts AS p ON p.idx = l.contact_priv
LEFT JOIN agents AS o ON o.idx = l.contact_agent
LEFT JOIN notes AS n ON n.idx = l.note_idx
LEFT JOIN private_notes AS pn ON pn.idx = l.private_note_idx
LEFT JOIN projects AS pr ON pr.idx = l.project
"""


def _write_block(con: duckdb.DuckDBPyConnection, legs: pa.Table, id_base: int, seed: int) -> None:
    con.register("legs", legs)
    try:
        sql = ROWS_SQL.format(
            id_base=id_base,
            private_line=PRIVATE_LINE,
            callback_note=CALLBACK_NOTE,
            seed=seed,
            n_notes=len(NOTES),
            n_private_notes=len(PRIVATE_NOTES),
        )
        cols = ", ".join(f'"{c}"' for c in JOURNAL_COLUMNS)
        con.execute(f"INSERT INTO j.journal ({cols}) SELECT {cols} FROM ({sql})")
    finally:
        con.unregister("legs")


def _blocks(days: list[date], weights: np.ndarray, rows: int) -> list[tuple[list[date], np.ndarray, int]]:
    """Split days into consecutive blocks of about BLOCK_ROWS rows each (exact total)."""
    n_blocks = max(1, math.ceil(rows / BLOCK_ROWS))
    if n_blocks == 1 or len(days) < n_blocks:
        return [(days, weights, rows)]
    cum = np.cumsum(weights) / weights.sum()
    bounds = [0, *(int(np.searchsorted(cum, (i + 1) / n_blocks)) + 1 for i in range(n_blocks - 1)), len(days)]
    bounds = sorted(set(min(b, len(days)) for b in bounds))
    out = []
    done = 0
    for i, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        share = weights[lo:hi].sum() / weights.sum()
        n = rows - done if i == len(bounds) - 2 else round(rows * share)
        out.append((days[lo:hi], weights[lo:hi], n))
        done += n
    return out


def generate_journal(
    out_dir: Path,
    *,
    rows: int,
    night_rows: int = 150_000,
    rows_per_day: int = 150_000,
    night_day: date,
    users: int = 120,
    seed: int = 1,
    policy: dict | None = None,
    table: str = "journal",
    first_day: date | None = None,
) -> BenchJournal:
    """journal.sqlite (`rows` history legs on the days up to the day before `night_day`, then
    `night_rows` legs on `night_day`), directory.yaml and policy.yaml in out_dir (replaced).
    The history starts on `first_day`, or as many days back as `rows_per_day` asks for."""
    if rows < 1 or night_rows < 0:
        raise ValueError("rows must be positive")
    if first_day is not None and first_day >= night_day:
        raise ValueError("first_day must be before night_day")
    org = bench_org(users, seed)
    n_contacts, n_private = max(2000, rows_per_day // 2), max(200, users * 4)
    if first_day is None:
        days = history_days(rows, rows_per_day, night_day - timedelta(days=1))
    else:
        days = [first_day + timedelta(days=i) for i in range((night_day - first_day).days)]
    feiertage = holidays.Germany(subdiv="BY", years=range(days[0].year, night_day.year + 1))
    weights = np.array([_day_weight(d, feiertage) for d in days])
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "journal.sqlite"
    tmp = path.with_suffix(".sqlite.tmp")
    tmp.unlink(missing_ok=True)
    lite = sqlite3.connect(tmp)
    lite.execute(JOURNAL_DDL.format(table=table))
    lite.close()
    con = duckdb.connect(config={"extension_directory": extension_directory()})
    try:
        con.execute("LOAD sqlite")
        con.execute("SET enable_progress_bar = false")
        _lookups(con, org, seed, n_contacts, n_private)
        con.execute(f"ATTACH '{tmp}' AS j (TYPE sqlite)")
        rng = np.random.default_rng(seed)
        id_base, unit_base = 0, 0
        plan = [*_blocks(days, weights, rows)]
        if night_rows:
            plan.append(([night_day], np.array([1.0]), night_rows))
        for block_days, block_weights, n in plan:
            legs = draw_block(rng, block_days, block_weights, n, org, n_contacts, n_private, unit_base)
            _write_block(con, legs, id_base, seed)
            id_base += n
            unit_base += int(n / LEGS_PER_UNIT * 1.05) + 16
        con.execute("DETACH j")
    finally:
        con.close()
    lite = sqlite3.connect(tmp)
    try:
        lite.execute(f"CREATE INDEX ix_{table}_start ON {table}(StartTime)")
        lite.commit()
    finally:
        lite.close()
    tmp.replace(path)
    directory_path = out_dir / "directory.yaml"
    policy_path = out_dir / "policy.yaml"
    directory_path.write_text(
        "# callsight BENCHMARK org directory - generated, not real people.\n"
        + yaml.safe_dump(org.directory, sort_keys=False, allow_unicode=True),
        encoding="utf-8",
    )
    policy_path.write_text(
        "# callsight BENCHMARK policy - generated.\n" + yaml.safe_dump(policy or default_policy(), sort_keys=False),
        encoding="utf-8",
    )
    return BenchJournal(path, directory_path, policy_path, rows, night_rows, days[0], days[-1], night_day)


def write_postgres(sqlite_path: Path, conninfo: str, table: str = "journal") -> int:
    """Copy the SQLite journal into PostgreSQL (DuckDB's postgres extension loads it with COPY), with
    the column types a UCServer on PostgreSQL would use and an index on StartTime."""
    types = dict.fromkeys(("StartTime", "StopTime", "ConnectTime", "DisconnectTime"), "TIMESTAMP")
    ints = ("DurationTotal", "DurationConnected", "Outbound", "Internal", "SuccessState", "ReadFlag", "PrivateCall")
    types.update(dict.fromkeys(ints, "INTEGER"))
    types["ID"] = "BIGINT"
    con = duckdb.connect(config={"extension_directory": extension_directory()})
    try:
        con.execute("LOAD sqlite")
        con.execute("LOAD postgres")
        con.execute(f"ATTACH '{sqlite_path}' AS lite (TYPE sqlite, READ_ONLY)")
        con.execute(f"ATTACH '{conninfo}' AS pg (TYPE postgres)")
        ddl = ", ".join(f'"{c}" {types.get(c, "VARCHAR(1024)")}' for c in JOURNAL_COLUMNS)
        con.execute(f"CALL postgres_execute('pg', 'DROP TABLE IF EXISTS \"{table}\"')")
        con.execute(f"CALL postgres_execute('pg', 'CREATE TABLE \"{table}\" ({ddl})')")
        casts = ", ".join(
            f'CAST("{c}" AS {"BIGINT" if c == "ID" else types[c]})' if c in types else f'"{c}"' for c in JOURNAL_COLUMNS
        )
        con.execute(f'INSERT INTO pg.public."{table}" SELECT {casts} FROM lite.journal')
        con.execute(
            f'CALL postgres_execute(\'pg\', \'ALTER TABLE "{table}" ADD PRIMARY KEY ("ID"); '
            f'CREATE INDEX ON "{table}" ("StartTime"); ANALYZE "{table}"\')'
        )
        return con.execute(f'SELECT count(*) FROM pg.public."{table}"').fetchone()[0]
    finally:
        con.close()


__all__ = ["SITE_PREFIX", "BenchJournal", "bench_org", "generate_journal", "history_days", "write_postgres"]
