"""A ProCall-shaped demo journal that looks like a real German office.

Weekdays and business hours with a morning and an afternoon peak, quiet public holidays, an
inbound/outbound/internal mix, realistic ring and talk times, missed calls, calls picked up by a deputy
in the same TrackerID chain, companies on most external calls, projects on some, private calls (flag
and private line), call notes and callbacks. Deterministic for a given seed and end date.
"""

from __future__ import annotations

import math
import random
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import holidays
import yaml

from callsight.journal.contract import JOURNAL_COLUMNS, JOURNAL_DDL

FIRST_NAMES = """
Anna Maria Tom Lukas Sophie Jonas Laura Felix Lea Paul Julia Leon Sarah Max Lena Finn Hannah Elias
Katharina Noah Johanna Ben Clara Moritz Marie Jan Emilia Tim Nina David Franziska Niklas Lisa Simon
Melanie Stefan Sabine Andreas Petra Michael Claudia Thomas Birgit Markus Kerstin Florian Jana
Sebastian Carina Tobias Eva Matthias Ines Philipp Svenja Christian Heike Daniel Ute Martin
""".split()
LAST_NAMES = """
Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Schäfer Koch Bauer
Richter Klein Wolf Schröder Neumann Schwarz Zimmermann Braun Krüger Hofmann Hartmann Lange Schmitt
Werner Schmitz Krause Meier Lehmann Schmid Schulze Maier Köhler Herrmann König Walter Mayer Huber
Kaiser Fuchs Peters Lang Scholz Möller Weiß Jung Hahn Schubert Vogel Friedrich Keller Günther Frank
Berger Winkler Roth Beck Lorenz
""".split()
COMPANY_STEMS = """
Alpen Bavaria Isar Donau Rhein Elbe Nord Süd Ost West Stern Adler Falken Linden Eichen Berg Tal
Sonnen Mond Blitz Kraft Licht Stahl Holz Glas Stein Wasser Feuer Luft Erd
""".split()
COMPANY_KINDS = """
Maschinenbau Logistik Elektrotechnik Immobilien Versicherung Bau Medizintechnik Software Druck
Handel Energie Consulting Spedition Lebensmittel Textil
""".split()
COMPANY_FORMS = ("GmbH", "GmbH & Co. KG", "AG", "KG", "e.K.", "GmbH")
PROJECTS = (
    ("P-1001", "Rollout ERP 2026"),
    ("P-1002", "Messe Hannover"),
    ("P-1003", "Kundenportal"),
    ("P-1004", "Wartungsvertrag Nord"),
    ("P-1005", "Ausschreibung Stadtwerke"),
    ("P-1006", "Relaunch Webshop"),
    ("P-1007", "Zertifizierung ISO 27001"),
    ("P-1008", "Umzug Lager"),
)
NOTES = (
    "Rückruf wegen Angebot",
    "Frage zur Rechnung",
    "Liefertermin besprochen",
    "Reklamation aufgenommen",
    "Termin vereinbart",
    "Angebot nachfassen",
    "Vertragsverlängerung",
    "Support-Ticket eröffnet",
    "Preisanfrage",
    "Ansprechpartner gewechselt",
)
PRIVATE_NOTES = ("Arzttermin", "Kita anrufen", "Handwerker Wohnung", "Bank privat")
GROUP_NAMES = ("Vertrieb", "Kundenservice", "Technik", "Buchhaltung", "Einkauf", "Marketing")
# Every combination of the two group options, the first two combinations twice.
GROUP_OPTIONS = ((False, True), (True, True), (True, False), (False, False), (False, True), (True, True))

SITE_PREFIX = "+49 8151 3680"
PRIVATE_LINE = f"{SITE_PREFIX}-199"


@dataclass(frozen=True)
class Agent:
    username: str
    name: str
    extension: str
    groups: tuple[str, ...]

    @property
    def line(self) -> str:
        return f"{SITE_PREFIX}-{self.extension}"


@dataclass(frozen=True)
class Contact:
    entry_id: str
    name: str
    company: str | None
    number: str


@dataclass
class DemoResult:
    journal_path: Path
    directory_path: Path
    policy_path: Path
    rows: int
    first_day: date
    last_day: date


def _username(first: str, last: str) -> str:
    table = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})
    return f"{first}.{last}".lower().translate(table)


def build_org(rng: random.Random, users: int) -> tuple[list[Agent], dict]:
    """People and groups. Covers every group option, a deputy, a user in two groups, a leader who is
    a plain member elsewhere, and users in no group (the analyst and the admin)."""
    if users < 8:
        raise ValueError("--users must be at least 8 (6 groups need members)")
    names: list[tuple[str, str]] = []
    taken: set[str] = set()
    while len(names) < users:
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        if _username(first, last) not in taken:
            taken.add(_username(first, last))
            names.append((first, last))
    agents_raw = [(_username(f, last), f"{f} {last}") for f, last in names]
    n_groups = min(len(GROUP_NAMES), max(2, users // 6))
    # Agents are split round-robin over the groups, except one (reception) who is in no group; the last
    # two users are staff (analyst, admin) without a group.
    staff = agents_raw[-2:]
    workers = agents_raw[:-2]
    members: dict[str, list[str]] = {g: [] for g in GROUP_NAMES[:n_groups]}
    for i, (uname, _) in enumerate(workers[:-1]):
        members[GROUP_NAMES[i % n_groups]].append(uname)
    groups = []
    for gi, gname in enumerate(GROUP_NAMES[:n_groups]):
        m = members[gname]
        to_group, to_leader = GROUP_OPTIONS[gi]
        groups.append(
            {
                "name": gname,
                "leaders": [m[0]],
                "deputies": [m[1]] if len(m) > 2 else [],
                "members": list(m),
                "journal_visible_to_group": to_group,
                "journal_visible_to_leader": to_leader,
            }
        )
    # A user in two groups: the third member of group 0 also works in group 1.
    if n_groups > 1 and len(members[GROUP_NAMES[0]]) > 2:
        groups[1]["members"].append(members[GROUP_NAMES[0]][2])
    # The leader of group 2 is a plain member of group 3.
    if n_groups > 3:
        groups[3]["members"].append(groups[2]["leaders"][0])
    group_of: dict[str, list[str]] = {}
    for g in groups:
        for u in g["members"]:
            group_of.setdefault(u, []).append(g["name"])
    agents = [
        Agent(uname, name, str(200 + i), tuple(group_of.get(uname, ()))) for i, (uname, name) in enumerate(workers)
    ]
    directory = {
        "users": [{"username": u, "name": n, "email": f"{u}@example.com"} for u, n in agents_raw],
        "groups": groups,
        "private_lines": [PRIVATE_LINE],
        "analysts": [staff[0][0]],
        "admins": [staff[1][0]],
    }
    return agents, directory


def build_contacts(rng: random.Random, n: int = 400) -> list[Contact]:
    companies = []
    for _ in range(140):
        companies.append(f"{rng.choice(COMPANY_STEMS)} {rng.choice(COMPANY_KINDS)} {rng.choice(COMPANY_FORMS)}")
    companies = sorted(set(companies))
    contacts = []
    for i in range(n):
        area = rng.choice(("89", "30", "40", "221", "69", "711", "8151", "911", "341", "351"))
        number = f"+49 {area} {rng.randint(100000, 9999999)}"
        if rng.random() < 0.12:
            number = f"+49 1{rng.choice(('51', '52', '60', '70', '76'))} {rng.randint(1000000, 99999999)}"
        company = rng.choice(companies) if rng.random() < 0.85 else None
        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        contacts.append(Contact(f"C{100000 + i}", name, company, number))
    return contacts


def build_private_contacts(rng: random.Random, n: int = 60) -> list[Contact]:
    """Family, doctors, tradesmen: the other parties of private calls. Never customers."""
    out = []
    for i in range(n):
        number = f"+49 1{rng.choice(('51', '57', '60', '72', '76'))} {rng.randint(10000000, 99999999)}"
        if rng.random() < 0.4:
            number = f"+49 8151 {rng.randint(100000, 999999)}"
        out.append(Contact(f"P{200000 + i}", f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}", None, number))
    return out


def _hour_weight(minute_of_day: float) -> float:
    """Business hours 07:30-18:00 with peaks around 10:00 and 14:30."""
    h = minute_of_day / 60
    if h < 7.5 or h > 18:
        return 0.02
    return 0.15 + math.exp(-((h - 10.0) ** 2) / 1.6) + 0.8 * math.exp(-((h - 14.5) ** 2) / 1.8)


def _sample_minute(rng: random.Random) -> float:
    while True:
        m = rng.uniform(6.5 * 60, 19.5 * 60)
        if rng.random() * 1.2 < _hour_weight(m):
            return m


class _Journal:
    """Accumulates legs; IDs are assigned in StartTime order at the end."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def leg(
        self,
        *,
        start: datetime,
        ring: int,
        talk: int,
        outbound: bool,
        internal: bool,
        agent: Agent,
        number: str,
        contact: Contact | None,
        tracker: str,
        redirecting: str | None = None,
        private: bool = False,
        line: str | None = None,
        subject: str | None = None,
        project: tuple[str, str] | None = None,
    ) -> datetime:
        connect = start + timedelta(seconds=ring) if talk > 0 else None
        disconnect = connect + timedelta(seconds=talk) if connect else None
        stop = disconnect or start + timedelta(seconds=ring)
        self.rows.append(
            {
                "StartTime": start,
                "StopTime": stop,
                "DurationTotal": int((stop - start).total_seconds()),
                "ConnectTime": connect,
                "DisconnectTime": disconnect,
                "DurationConnected": talk,
                "Outbound": int(outbound),
                "Internal": int(internal),
                "LineNumber": line or agent.line,
                "LineName": f"Leitung {agent.name}" if not line else "Privatleitung",
                "LineUserName": agent.username,
                "LocalNumber": agent.extension,
                "RedirectingNumber": redirecting,
                "PhoneNumber": number,
                "ContactName": contact.name if contact else None,
                "ContactCompany": contact.company if contact else None,
                "ContactEntryID": contact.entry_id if contact else None,
                "ContactEntryStoreID": "CRM" if contact else None,
                "ContactEntryDBID": "crm-main" if contact else None,
                "CTIServerUserName": agent.username,
                "SuccessState": int(talk > 0),
                "Subject": subject,
                "ReadFlag": 1,
                "ProjectName": project[1] if project else None,
                "ProjectID": project[0] if project else None,
                "PrivateCall": int(private),
                "TrackerID": tracker,
            }
        )
        return stop


def _ring(rng: random.Random) -> int:
    return max(1, int(rng.lognormvariate(math.log(9), 0.6)))


def _talk(rng: random.Random, median: float = 170) -> int:
    return max(3, min(3 * 3600, int(rng.lognormvariate(math.log(median), 0.9))))


def simulate_day(
    rng: random.Random,
    day: date,
    agents: list[Agent],
    contacts: list[Contact],
    private_contacts: list[Contact],
    journal: _Journal,
    is_holiday: bool,
) -> None:
    by_group: dict[str, list[Agent]] = {}
    for a in agents:
        for g in a.groups:
            by_group.setdefault(g, []).append(a)
    base = datetime(day.year, day.month, day.day)
    weekday_factor = {0: 1.15, 1: 1.0, 2: 1.0, 3: 0.95, 4: 0.75}.get(day.weekday(), 0.0)
    if is_holiday:
        weekday_factor = 0.03
    if weekday_factor == 0.0:
        weekday_factor = 0.02  # the odd weekend call
    tracker = lambda: str(uuid.UUID(int=rng.getrandbits(128)))  # noqa: E731
    for agent in agents:
        lam = 11 * weekday_factor
        n_in = _poisson(rng, lam)
        n_out = _poisson(rng, 7 * weekday_factor)
        n_int = _poisson(rng, 3 * weekday_factor)
        for _ in range(n_in):
            start = base + timedelta(minutes=_sample_minute(rng), seconds=rng.randint(0, 59))
            contact = rng.choice(contacts)
            project = rng.choice(PROJECTS) if contact.company and rng.random() < 0.25 else None
            note = rng.choice(NOTES) if rng.random() < 0.15 else None
            private = rng.random() < 0.02
            if private:
                contact = rng.choice(private_contacts)
                note, project = (rng.choice(PRIVATE_NOTES) if rng.random() < 0.5 else None), None
            ring = _ring(rng)
            answered = rng.random() < 0.82
            tid = tracker()
            journal.leg(
                start=start,
                ring=ring,
                talk=_talk(rng) if answered else 0,
                outbound=False,
                internal=False,
                agent=agent,
                number=contact.number,
                contact=contact,
                tracker=tid,
                private=private,
                subject=note,
                project=project,
            )
            if answered:
                continue
            # Not picked up: a deputy or colleague may take it in the same chain.
            colleagues = [a for g in agent.groups for a in by_group.get(g, []) if a != agent]
            if colleagues and rng.random() < 0.45:
                other = rng.choice(colleagues)
                start2 = start + timedelta(seconds=ring)
                ring2 = _ring(rng)
                answered2 = rng.random() < 0.85
                journal.leg(
                    start=start2,
                    ring=ring2,
                    talk=_talk(rng) if answered2 else 0,
                    outbound=False,
                    internal=False,
                    agent=other,
                    number=contact.number,
                    contact=contact,
                    tracker=tid,
                    redirecting=agent.line,
                    private=private,
                    project=project,
                )
                if answered2:
                    continue
                if rng.random() < 0.3 and len(colleagues) > 1:
                    third = rng.choice([c for c in colleagues if c != other])
                    start3 = start2 + timedelta(seconds=ring2)
                    journal.leg(
                        start=start3,
                        ring=_ring(rng),
                        talk=_talk(rng),
                        outbound=False,
                        internal=False,
                        agent=third,
                        number=contact.number,
                        contact=contact,
                        tracker=tid,
                        redirecting=other.line,
                        private=private,
                        project=project,
                    )
                    continue
            # Still missed: often called back later that day or the next.
            if rng.random() < 0.6:
                delay = timedelta(minutes=rng.choice((5, 20, 45, 90, 180, 60 * 20, 60 * 30)))
                cb = start + delay
                if 7 <= cb.hour < 19 and cb.weekday() < 5:
                    journal.leg(
                        start=cb,
                        ring=_ring(rng),
                        talk=_talk(rng, 120) if rng.random() < 0.8 else 0,
                        outbound=True,
                        internal=False,
                        agent=agent,
                        number=contact.number,
                        contact=contact,
                        tracker=tracker(),
                        subject="Rückruf",
                        private=private,
                    )
        for _ in range(n_out):
            start = base + timedelta(minutes=_sample_minute(rng), seconds=rng.randint(0, 59))
            private = rng.random() < 0.03
            contact = rng.choice(private_contacts if private else contacts)
            line = PRIVATE_LINE if private and rng.random() < 0.5 else None
            project = rng.choice(PROJECTS) if contact.company and not private and rng.random() < 0.2 else None
            note = (rng.choice(PRIVATE_NOTES) if private else rng.choice(NOTES)) if rng.random() < 0.2 else None
            journal.leg(
                start=start,
                ring=_ring(rng),
                talk=_talk(rng, 150) if rng.random() < 0.72 else 0,
                outbound=True,
                internal=False,
                agent=agent,
                number=contact.number,
                contact=contact,
                tracker=tracker(),
                private=private and line is None,
                line=line,
                subject=note,
                project=project,
            )
        for _ in range(n_int):
            other = rng.choice(agents)
            if other == agent:
                continue
            start = base + timedelta(minutes=_sample_minute(rng), seconds=rng.randint(0, 59))
            colleague = Contact(f"U-{other.username}", other.name, None, other.extension)
            journal.leg(
                start=start,
                ring=_ring(rng),
                talk=_talk(rng, 90) if rng.random() < 0.9 else 0,
                outbound=rng.random() < 0.5,
                internal=True,
                agent=agent,
                number=other.extension,
                contact=colleague,
                tracker=tracker(),
            )


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def default_policy() -> dict:
    return {
        "timezone": "Europe/Berlin",
        "calendar": {"country": "DE", "subdivision": "BY"},
        "private_calls": {"mode": "truncate", "truncate_digits": 3},
        "service_level": {"threshold_seconds": 20, "short_abandon_seconds": 0},
        "callback": {"window_hours": 24},
        "retention": {"journal_days": 180},
        "works_council": {"min_group_size": 0, "pseudonymize_agents_for_analysts": False},
    }


def iter_days(first: date, last: date) -> Iterator[date]:
    d = first
    while d <= last:
        yield d
        d += timedelta(days=1)


def generate(
    out_dir: Path,
    *,
    seed: int = 42,
    days: int = 90,
    users: int = 60,
    end: date,
    table: str = "journal",
    progress: Callable[[int, int], None] | None = None,
) -> DemoResult:
    """Write journal.sqlite, directory.yaml and policy.yaml into out_dir (replacing them)."""
    if days < 1:
        raise ValueError("--days must be at least 1")
    rng = random.Random(seed)
    agents, directory = build_org(rng, users)
    contacts = build_contacts(rng)
    private_contacts = build_private_contacts(rng)
    first = end - timedelta(days=days - 1)
    years = range(first.year, end.year + 1)
    feiertage = holidays.Germany(subdiv="BY", years=list(years))
    journal = _Journal()
    all_days = list(iter_days(first, end))
    for i, day in enumerate(all_days):
        simulate_day(rng, day, agents, contacts, private_contacts, journal, day in feiertage)
        if progress:
            progress(i + 1, len(all_days))
    rows = [r for r in journal.rows if first <= r["StartTime"].date() <= end]
    rows.sort(key=lambda r: (r["StartTime"], r["TrackerID"]))
    out_dir.mkdir(parents=True, exist_ok=True)
    journal_path = out_dir / "journal.sqlite"
    tmp = journal_path.with_suffix(".sqlite.tmp")
    tmp.unlink(missing_ok=True)
    fmt = "%Y-%m-%d %H:%M:%S"
    con = sqlite3.connect(tmp)
    try:
        con.execute(JOURNAL_DDL.format(table=table))
        con.execute(f"CREATE INDEX ix_{table}_start ON {table}(StartTime)")
        placeholders = ",".join("?" for _ in JOURNAL_COLUMNS)
        values = []
        for i, r in enumerate(rows, start=1):
            r = dict(r, ID=i)
            for k in ("StartTime", "StopTime", "ConnectTime", "DisconnectTime"):
                if r[k] is not None:
                    r[k] = r[k].strftime(fmt)
            values.append(tuple(r[c] for c in JOURNAL_COLUMNS))
        con.executemany(f"INSERT INTO {table} ({','.join(JOURNAL_COLUMNS)}) VALUES ({placeholders})", values)
        con.commit()
    finally:
        con.close()
    tmp.replace(journal_path)
    directory_path = out_dir / "directory.yaml"
    policy_path = out_dir / "policy.yaml"
    header = "# callsight DEMO org directory - generated by `callsight demo-data`, not real people.\n"
    directory_path.write_text(header + yaml.safe_dump(directory, sort_keys=False, allow_unicode=True), encoding="utf-8")
    policy_path.write_text(
        "# callsight DEMO policy - generated by `callsight demo-data`.\n"
        + yaml.safe_dump(default_policy(), sort_keys=False),
        encoding="utf-8",
    )
    return DemoResult(journal_path, directory_path, policy_path, len(rows), first, end)
