"""The check-source report in English or German (ProCall's terms), and as JSON: counts and rules only.

Pure: facts and findings (extract/source_check.py) in, text out."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta

from callsight.extract.source_check import (
    CANNOT_WORK,
    READY,
    WARNINGS,
    Finding,
    SourceFacts,
    exit_code,
)

LANGUAGES = ("en", "de")

TEXT = {
    "en": {
        "title": "callsight check-source: journal table {table!r} at {url} (reader: {reader})",
        "verdict": "Verdict: {verdict}",
        "verdicts": {READY: "ready", WARNINGS: "ready, with warnings", CANNOT_WORK: "cannot work"},
        "columns": "Columns: {ok} of {of} as the contract expects",
        "col_missing": "  missing: {name}",
        "col_retyped": "  retyped: {name} is {declared}, expected a type of the family {expected}",
        "col_extra": "  extra (ignored): {names}",
        "months": "Journal rows per month (StartTime):",
        "months_total": (
            "  total {total} rows; first day {first}, last day {last}; {undated} without a usable StartTime"
        ),
        "placement": "Where the rows belong for a night run today (retention keeps calls from {cutoff}):",
        "placed": "  read by the night (StartTime from {cutoff} to {last})",
        "expired": "  before the retention cutoff: would expire, never read",
        "later": "  from {until} to {horizon_last}: read by a coming night",
        "unplaced": "  unplaced (no usable StartTime or ID, or far ahead): quarantined every night",
        "quarantine": "Quarantine: {rows} of the {read} rows a night reads ({share} %), by reason:",
        "quarantine_none": "Quarantine: none of the {read} rows a night reads",
        "private": (
            "Private calls: {total} of the rows a night reads ({line} on a private line of the org "
            "directory, {flag} by the PrivateCall flag alone; {lines} private line(s) configured)"
        ),
        "rule": {
            "keep": "  Policy private_calls: keep - private calls are stored like any other call.",
            "truncate": (
                "  Policy private_calls: truncate - the last {digits} digits of PhoneNumber and "
                "RedirectingNumber become X; contact name, company, contact IDs and the call note (Subject) "
                "are not stored."
            ),
            "drop": (
                "  Policy private_calls: drop - phone numbers, contact name, company, contact IDs and the "
                "call note (Subject) are not stored."
            ),
        },
        "rule_kept": "  Durations, times, agent and direction are kept: the call still counts.",
        "rate": "Read rate: {rows} rows in {seconds} s = {rate} rows/s (sample through the {reader} reader)",
        "findings": "Findings:",
        "levels": {"error": "ERROR", "warning": "WARNING", "note": "note"},
        "messages": {
            "unreachable": "the journal database cannot be reached: {detail}",
            "unreadable": "the journal database cannot be read: {detail}",
            "table_missing": "journal table {table!r} not found in {url}",
            "column_missing": "the journal table lacks column {column}",
            "column_retyped": "column {column} has type {type}, expected one of the families {expected}",
            "empty": "the journal table holds no rows",
            "not_recent": "no calls in the last {days} days (last day {last_day}): does ProCall still write here?",
            "quarantine_share": "{rows} rows ({share} %) would be quarantined, more than {limit} %",
            "quarantine_some": "{rows} rows ({share} %) would be quarantined",
            "expired": "{rows} rows start before the retention cutoff {cutoff}: no night reads them",
            "unplaced": "{rows} rows fit no window (no usable StartTime or ID, or far ahead): quarantined",
            "later": "{rows} rows start on or after {until}: a coming night reads them",
            "no_directory": "no org directory found: private lines unknown, only the PrivateCall flag counted",
            "private_kept": "{rows} private calls would be stored unmasked (policy private_calls: keep)",
            "extra_columns": "extra columns are ignored: {columns}",
        },
    },
    "de": {
        "title": "callsight check-source: Journal-Tabelle {table!r} in {url} (Leser: {reader})",
        "verdict": "Ergebnis: {verdict}",
        "verdicts": {READY: "bereit", WARNINGS: "bereit, mit Warnungen", CANNOT_WORK: "nicht lauffähig"},
        "columns": "Spalten: {ok} von {of} wie im Vertrag des Journals",
        "col_missing": "  fehlt: {name}",
        "col_retyped": "  anderer Typ: {name} ist {declared}, erwartet ein Typ der Familie {expected}",
        "col_extra": "  zusätzlich (ignoriert): {names}",
        "months": "Journaleinträge je Monat (StartTime):",
        "months_total": (
            "  gesamt {total} Journaleinträge; erster Tag {first}, letzter Tag {last}; {undated} ohne "
            "verwertbare StartTime"
        ),
        "placement": "Wohin die Journaleinträge bei einem Nachtlauf heute gehören (Aufbewahrung ab {cutoff}):",
        "placed": "  vom Nachtlauf gelesen (StartTime von {cutoff} bis {last})",
        "expired": "  vor der Aufbewahrungsgrenze: verfallen, nie gelesen",
        "later": "  von {until} bis {horizon_last}: liest ein kommender Nachtlauf",
        "unplaced": "  ohne Platz (keine verwertbare StartTime oder ID, oder weit voraus): jede Nacht in Quarantäne",
        "quarantine": "Quarantäne: {rows} der {read} gelesenen Journaleinträge ({share} %), nach Grund:",
        "quarantine_none": "Quarantäne: keiner der {read} gelesenen Journaleinträge",
        "private": (
            "Private Gespräche: {total} der gelesenen Journaleinträge ({line} auf einer als privat "
            "gekennzeichneten Leitung des Organisationsverzeichnisses, {flag} nur als privat markiert "
            "(PrivateCall); {lines} private Leitung(en) eingetragen)"
        ),
        "rule": {
            "keep": (
                "  Richtlinie private_calls: keep - Private Gespräche nicht gesondert behandeln: sie werden "
                "wie jedes andere Gespräch gespeichert."
            ),
            "truncate": (
                "  Richtlinie private_calls: truncate - Private Gespräche mit verkürzter Rufnummer speichern: "
                "die letzten {digits} Ziffern von PhoneNumber und RedirectingNumber werden zu X; Kontaktname, "
                "Firma, Kontakt-IDs und Notiz (Subject) werden nicht gespeichert."
            ),
            "drop": (
                "  Richtlinie private_calls: drop - Private Gespräche ohne Rufnummer speichern: Rufnummern, "
                "Kontaktname, Firma, Kontakt-IDs und Notiz (Subject) werden nicht gespeichert."
            ),
        },
        "rule_kept": "  Dauer, Zeiten, Agent und Richtung bleiben: der Anruf zählt weiter.",
        "rate": (
            "Lesegeschwindigkeit: {rows} Journaleinträge in {seconds} s = {rate} je Sekunde "
            "(Stichprobe, Leser {reader})"
        ),
        "findings": "Befunde:",
        "levels": {"error": "FEHLER", "warning": "WARNUNG", "note": "Hinweis"},
        "messages": {
            "unreachable": "die Journal-Datenbank ist nicht erreichbar: {detail}",
            "unreadable": "die Journal-Datenbank ist nicht lesbar: {detail}",
            "table_missing": "Journal-Tabelle {table!r} nicht gefunden in {url}",
            "column_missing": "der Journal-Tabelle fehlt die Spalte {column}",
            "column_retyped": "die Spalte {column} hat den Typ {type}, erwartet eine der Familien {expected}",
            "empty": "die Journal-Tabelle ist leer",
            "not_recent": (
                "keine Anrufe in den letzten {days} Tagen (letzter Tag {last_day}): schreibt ProCall noch hierher?"
            ),
            "quarantine_share": "{rows} Journaleinträge ({share} %) kämen in Quarantäne, mehr als {limit} %",
            "quarantine_some": "{rows} Journaleinträge ({share} %) kämen in Quarantäne",
            "expired": "{rows} Journaleinträge beginnen vor der Aufbewahrungsgrenze {cutoff}: kein Nachtlauf liest sie",
            "unplaced": (
                "{rows} Journaleinträge passen in kein Fenster (keine verwertbare StartTime oder ID, oder weit "
                "voraus): Quarantäne"
            ),
            "later": "{rows} Journaleinträge beginnen am {until} oder später: ein kommender Nachtlauf liest sie",
            "no_directory": (
                "kein Organisationsverzeichnis gefunden: private Leitungen unbekannt, nur das Merkmal "
                "PrivateCall gezählt"
            ),
            "private_kept": "{rows} private Gespräche würden unverkürzt gespeichert (Richtlinie private_calls: keep)",
            "extra_columns": "zusätzliche Spalten werden ignoriert: {columns}",
        },
    },
}


def number(n: float, lang: str, digits: int = 0) -> str:
    """Thousands separated as the language writes them: 12,345.6 (en), 12.345,6 (de)."""
    text = f"{n:,.{digits}f}"
    return text.translate(str.maketrans(",.", ".,")) if lang == "de" else text


def finding_text(f: Finding, lang: str) -> str:
    t = TEXT[lang]
    params = {
        k: number(v, lang, 0 if isinstance(v, int) else 2) if isinstance(v, int | float) else v
        for k, v in f.params.items()
    }
    return f"{t['levels'][f.level]:8} {t['messages'][f.code].format(**params)}"


def report_text(facts: SourceFacts, findings: list[Finding], lang: str = "en") -> str:
    """The report as lines of text in `lang` (en or de)."""
    t = TEXT[lang]

    def n(v: float, digits: int = 0) -> str:
        return number(v, lang, digits)

    lines = [t["title"].format(table=facts.table, url=facts.url, reader=facts.reader)]
    lines.append(t["verdict"].format(verdict=t["verdicts"][exit_code(findings)]))
    if facts.columns:
        contract = [c for c in facts.columns if c.status != "extra"]
        lines += ["", t["columns"].format(ok=sum(c.status == "ok" for c in contract), of=len(contract))]
        for c in facts.columns:
            if c.status == "missing":
                lines.append(t["col_missing"].format(name=c.name))
            elif c.status == "retyped":
                lines.append(t["col_retyped"].format(name=c.name, declared=c.declared, expected="/".join(c.expected)))
        extra = [c.name for c in facts.columns if c.status == "extra"]
        if extra:
            lines.append(t["col_extra"].format(names=", ".join(extra)))
    if facts.kinds:
        lines += ["", t["months"]]
        width = max((len(n(v)) for v in facts.months.values()), default=1)
        lines += [f"  {month}  {n(rows):>{width}}" for month, rows in facts.months.items()]
        lines.append(
            t["months_total"].format(
                total=n(facts.total_rows),
                first=facts.first_day or "-",
                last=facts.last_day or "-",
                undated=n(facts.undated_rows),
            )
        )
        # Inclusive days: a night reads up to the day before `until`; a coming night up to the horizon's eve.
        days = {
            "cutoff": _day(facts.cutoff),
            "last": _day(facts.until - timedelta(days=1) if facts.until else None),
            "until": _day(facts.until),
            "horizon_last": _day(facts.horizon - timedelta(days=1) if facts.horizon else None),
        }
        lines += ["", t["placement"].format(**days)]
        width = max(len(n(v)) for v in facts.kinds.values())
        for kind in ("placed", "expired", "later", "unplaced"):
            lines.append(f"  {n(facts.kinds.get(kind, 0)):>{width}}{t[kind].format(**days)}")
        lines.append("")
        if facts.quarantine:
            share = n(100 * facts.quarantined_rows / facts.read_rows, 2) if facts.read_rows else "0"
            lines.append(t["quarantine"].format(rows=n(facts.quarantined_rows), read=n(facts.read_rows), share=share))
            width = max(len(n(v)) for v in facts.quarantine.values())
            lines += [f"  {n(rows):>{width}}  {reason}" for reason, rows in facts.quarantine.items()]
        else:
            lines.append(t["quarantine_none"].format(read=n(facts.read_rows)))
        p = facts.private
        lines += [
            "",
            t["private"].format(
                total=n(p.total),
                line=n(p.on_private_line),
                flag=n(p.total - p.on_private_line),
                lines=facts.private_lines,
            ),
            t["rule"][facts.private_mode].format(digits=facts.truncate_digits),
        ]
        if facts.private_mode != "keep":
            lines.append(t["rule_kept"])
        if facts.sample_rows:
            lines += [
                "",
                t["rate"].format(
                    rows=n(facts.sample_rows),
                    seconds=n(facts.sample_seconds, 2),
                    rate=n(facts.rows_per_second),
                    reader=facts.reader,
                ),
            ]
    if findings:
        lines += ["", t["findings"], *(f"  {finding_text(f, lang)}" for f in findings)]
    return "\n".join(lines) + "\n"


def report_json(facts: SourceFacts, findings: list[Finding], lang: str = "en") -> dict[str, object]:
    """The same facts as a JSON-ready mapping (messages in `lang`)."""
    out = asdict(facts)
    for key in ("today", "cutoff", "until", "horizon"):
        value = out[key]
        out[key] = value.isoformat() if value is not None else None
    out["columns"] = [
        {"name": c.name, "declared": c.declared, "status": c.status}
        | ({"expected": list(c.expected)} if c.status in ("missing", "retyped") else {})
        for c in facts.columns
    ]
    out["private"] = {
        "total": facts.private.total,
        "on_private_line": facts.private.on_private_line,
        "by_flag_only": facts.private.total - facts.private.on_private_line,
        "rule": TEXT[lang]["rule"][facts.private_mode].strip().format(digits=facts.truncate_digits),
    }
    out |= {
        "total_rows": facts.total_rows,
        "quarantined_rows": facts.quarantined_rows,
        "rows_per_second": round(facts.rows_per_second, 1),
        "exit_code": exit_code(findings),
        "findings": [
            {
                "level": f.level,
                "code": f.code,
                "params": f.params,
                "message": TEXT[lang]["messages"][f.code].format(**f.params),
            }
            for f in findings
        ],
    }
    return out


def _day(value: object) -> str:
    return value.strftime("%Y-%m-%d") if hasattr(value, "strftime") else "-"
