"""`callsight privacy-report`: the processing record, from the live configuration and warehouse."""

import html
import re
import sqlite3
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest

from callsight.cli.main import main
from callsight.privacy.messages_de import RECORD_DE
from callsight.privacy.record import write_report
from callsight.privacy.record_facts import visible_agents
from callsight.site.directory import load_directory
from callsight.site.policy import load_policy

from .conftest import Site


def published_counts(site: Site) -> dict[str, int]:
    con = duckdb.connect(str(site.settings.served_db), read_only=True)
    try:
        rows = con.execute("SELECT viewer_username, count(*) FROM security.viewer_agents GROUP BY 1").fetchall()
    finally:
        con.close()
    return dict(rows)


def viewer_rows(text: str) -> dict[str, list[str]]:
    """Rows of the Markdown viewer table: username -> cells."""
    section = text.split("## Who can see whose calls")[1].split("\n## ")[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| `"):
            rows[cells[0].strip("`")] = cells
    return rows


def call_data(site: Site) -> list[str]:
    """Values from the journal that must never appear in the report."""
    con = sqlite3.connect(site.settings.demo_journal_path)
    values = set()
    for col in ("PhoneNumber", "ContactName", "ContactCompany", "Subject"):
        values |= {r[0] for r in con.execute(f"SELECT DISTINCT {col} FROM journal WHERE {col} IS NOT NULL")}
    staff = {u.name for u in load_directory(site.settings.effective_directory_path).users}
    return sorted(v for v in values if v not in staff and len(v) > 4)


def test_the_report_matches_the_published_warehouse_and_holds_no_call_data(
    published_site: Site, tmp_path: Path
) -> None:
    settings = published_site.settings
    directory = load_directory(settings.effective_directory_path)
    policy = load_policy(settings.effective_policy_path)
    path = write_report(settings, "md", tmp_path / "record.md", lang="en")
    text = path.read_text(encoding="utf-8")

    # who sees whose calls: the published mapping, which the directory-side rule reproduces
    published = published_counts(published_site)
    computed = {viewer: len(agents) for viewer, agents in visible_agents(directory).items()}
    assert computed == published
    rows = viewer_rows(text)
    assert set(rows) == {u.username for u in directory.users}
    assert {u: int(cells[3]) for u, cells in rows.items()} == published
    assert "as published in the warehouse" in text
    for analyst in directory.analysts:
        assert rows[analyst][4] == "analyst: all masked calls"
    for admin in directory.admins:
        assert rows[admin][4] == "admin: all"

    # the policy in force, retention, look-back, recipients
    assert f"Mode in force: `{policy.private_calls.mode}`" in text
    assert f"private lines configured: {len(directory.private_lines)}" in text
    assert f"Retention: {policy.retention.journal_days} days" in text
    assert f"re-reads the last {settings.lookback_days} days" in text
    recipients = text.split("## Report recipients")[1].split("\n## ")[0]
    leaders = {u for g in directory.groups for u in g.leaders}
    assert leaders and all(f"(`{u}`)" in recipients for u in leaders)
    others = {u.username for u in directory.users} - leaders
    assert not any(f"(`{u}`)" in recipients for u in others)
    assert "Erasure requests (GDPR Art. 17, `callsight erase`): 0 (0 identifiers)" in text

    # data categories: every journal column, with what reaches the marts
    assert "| `PhoneNumber` | number of the other party | other party | yes | `phone_number` (fct_calls" in text
    assert "| `ContactName` | name of the other party | other party | yes | no |" in text
    # numbers masked for display are derived from them and named too
    rows = {line.split("`")[1]: line for line in text.splitlines() if line.startswith("| `")}
    assert "`phone_number_display` (fct_calls, fct_inbound_calls)" in rows["PhoneNumber"]
    assert "`redirecting_number_display` (fct_calls)" in rows["RedirectingNumber"]

    # no call data: no number, contact, company or note of the journal
    leaked = [v for v in call_data(published_site) if v in text]
    assert leaked == []

    # the same document as HTML, well-formed enough for a browser and escaped
    html_path = write_report(settings, "html", tmp_path / "record.html", lang="en")
    page = html_path.read_text(encoding="utf-8")

    class Tags(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.open: list[str] = []
            self.rows = 0

        def handle_starttag(self, tag: str, attrs: list) -> None:
            if tag not in ("meta",):
                self.open.append(tag)
            self.rows += tag == "tr"

        def handle_endtag(self, tag: str) -> None:
            assert self.open.pop() == tag

    parser = Tags()
    parser.feed(page)
    assert parser.open == [] and parser.rows >= 28 + len(directory.users)
    assert "<code>PhoneNumber</code>" in page and not [v for v in call_data(published_site) if v in page]


def test_without_a_warehouse_the_counts_come_from_the_directory(site: Site, tmp_path: Path) -> None:
    out = tmp_path / "record.md"
    assert main(["privacy-report", "--lang", "en", "--output", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert "computed from the org directory (no warehouse published yet)" in text
    assert "No warehouse has been published yet." in text
    directory = load_directory(site.settings.effective_directory_path)
    expected = {viewer: len(agents) for viewer, agents in visible_agents(directory).items()}
    assert {u: int(cells[3]) for u, cells in viewer_rows(text).items()} == expected
    # a leader of a group visible to its leader sees the whole group
    group = next(g for g in directory.groups if g.journal_visible_to_leader and g.leaders)
    assert expected[group.leaders[0]] >= len(set(group.members) | set(group.leaders) | set(group.deputies))


def test_the_record_states_the_works_council_mode_in_force(site: Site, tmp_path: Path) -> None:
    import yaml

    out = tmp_path / "record.md"
    assert main(["privacy-report", "--lang", "en", "--output", str(out)]) == 0
    text = out.read_text(encoding="utf-8").split("## Works-council mode")[1].split("\n## ")[0]
    assert "Minimum group size: off" in text and "Pseudonyms for analysts: off" in text

    directory = load_directory(site.settings.effective_directory_path)
    sizes = {g.name: len(set(g.members) | set(g.leaders) | set(g.deputies)) for g in directory.groups}
    k = max(sizes.values())
    path = site.settings.effective_policy_path
    policy = yaml.safe_load(path.read_text(encoding="utf-8"))
    policy["works_council"] = {"min_group_size": k, "pseudonymize_agents_for_analysts": True}
    path.write_text(yaml.safe_dump(policy), encoding="utf-8")
    assert main(["privacy-report", "--lang", "en", "--output", str(out)]) == 0
    text = out.read_text(encoding="utf-8").split("## Works-council mode")[1].split("\n## ")[0]
    merged = sorted(n for n, size in sizes.items() if size < k)
    assert f"Minimum group size: {k}." in text and f"groups merged: {', '.join(merged)}." in text
    shown = {
        u for g in directory.groups if sizes[g.name] >= k for u in set(g.members) | set(g.leaders) | set(g.deputies)
    }
    assert f"Now shown one by one: {len(shown)} of {len(directory.users)} people" in text
    assert "stable pseudonyms" in text and "CALLSIGHT_PSEUDONYM_KEY" in text


# ---- German and English: one document, the same facts ------------------------------------------
GERMAN_TERMS = (
    "Verzeichnis von Verarbeitungstätigkeiten (Art. 30 DSGVO)",
    "Verantwortlicher",
    "Zweck",
    "Kategorien betroffener Personen",
    "Kategorien personenbezogener Daten",
    "Empfänger",
    "Löschfrist",
    "Technische und organisatorische Maßnahmen (Art. 32 DSGVO)",
    "Gruppenleiter",
    "Stellvertreter",
    "Mitglied von",
    "Rückrufe",
    "private Gespräche",
    "Betriebsrat",
    "Leistungs- und Verhaltenskontrolle",
    "§ 87 Abs. 1 Nr. 6 BetrVG",
)


def numbers(text: str) -> Counter[str]:
    """Every number in a text (dates, counts, ids split at their separators), with how often it occurs."""
    return Counter(re.findall(r"\d+", text))


def page_text(page: str) -> str:
    """The visible text of an HTML page: its body without tags, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", " ", page.split("<body>")[1]))


def code_spans(text: str) -> list[str]:
    return re.findall(r"`([^`]+)`", text)


def test_the_record_in_german_states_the_same_facts_as_in_english(published_site: Site, tmp_path: Path) -> None:
    settings = published_site.settings
    english = write_report(settings, "md", tmp_path / "en.md", lang="en").read_text(encoding="utf-8")
    german = write_report(settings, "md", tmp_path / "de.md", lang="de").read_text(encoding="utf-8")
    assert german != english
    assert numbers(german) == numbers(english)  # same counts, dates, sizes, article numbers
    assert code_spans(german) == code_spans(english)  # same columns, tables, paths, fingerprint, usernames
    assert [line.count("|") for line in german.splitlines()] == [line.count("|") for line in english.splitlines()]
    for term in GERMAN_TERMS:
        assert term in german, term
    assert "Gruppenleiter von " in german and "Administrator: alles" in german
    # no call data; a note such as "Rückruf" is also a word of the fixed German text (RECORD_DE)
    fixed = " ".join(RECORD_DE.values())
    leaked = [v for v in call_data(published_site) if v in german and v not in fixed]
    assert leaked == []

    page_en = write_report(settings, "html", tmp_path / "en.html", lang="en").read_text(encoding="utf-8")
    page_de = write_report(settings, "html", tmp_path / "de.html", lang="de").read_text(encoding="utf-8")
    assert '<html lang="de">' in page_de and '<html lang="en">' in page_en
    assert numbers(page_text(page_de)) == numbers(page_text(page_en))
    assert page_de.count("<tr>") == page_en.count("<tr>")
    assert "<h1>callsight: Verzeichnis von Verarbeitungstätigkeiten (Art. 30 DSGVO)" in page_de
    assert "Leistungs- und Verhaltenskontrolle" in page_de


def test_the_record_is_in_the_sites_language_unless_asked(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "record.md"
    monkeypatch.delenv("CALLSIGHT_LOCALE", raising=False)
    assert main(["privacy-report", "--output", str(out)]) == 0  # a German site by default
    german = out.read_text(encoding="utf-8")
    assert german.startswith("# callsight: Verzeichnis von Verarbeitungstätigkeiten (Art. 30 DSGVO)")
    assert "## Betriebsratsmodus" in german and "Mindestgruppengröße: aus" in german
    assert "aus dem Organisationsverzeichnis berechnet" in german

    monkeypatch.setenv("CALLSIGHT_LOCALE", "en_US.UTF-8")
    assert main(["privacy-report", "--output", str(out)]) == 0
    english = out.read_text(encoding="utf-8")
    assert english.startswith("# callsight: record of processing activities (GDPR Art. 30)")
    assert numbers(english) == numbers(german)
    assert main(["privacy-report", "--lang", "de", "--output", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == german


def test_every_text_of_the_record_has_its_german_translation() -> None:
    """All branches, not only those a test site reaches: every template in the code is in the catalogue,
    with the same placeholders."""
    import ast
    import string

    from callsight.privacy import record_document

    tree = ast.parse(Path(record_document.__file__).read_text(encoding="utf-8"))
    used = {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", None) == "msg"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }
    used |= {what for what, _ in record_document.COLUMN_CATALOGUE.values()}
    assert used - set(RECORD_DE) == set()
    assert set(RECORD_DE) - used == set()

    def fields(template: str) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name}

    assert [k for k, v in RECORD_DE.items() if fields(k) != fields(v)] == []
