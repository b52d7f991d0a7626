"""`callsight privacy-report`: the processing record for the data-protection officer and the works council.

Generated from the live configuration (org directory, policy, site settings) and the published warehouse:
what is stored per journal column and how private calls are masked, retention and look-back, who can see
whose calls (per viewer), analysts and admins, report recipients, erasure requests, the build in service,
Superset's access log (counts per group and dashboard).
It holds no call data: only counts, dates, configuration and the names of the people with access.
"""

from __future__ import annotations

import html
import re
from datetime import date
from pathlib import Path

from callsight.privacy.messages_de import ACCESS_RECORD_DE, RECORD_DE
from callsight.privacy.record_document import Block, document
from callsight.privacy.record_facts import gather
from callsight.site.locale import render
from callsight.site.settings import Settings


# ---- rendering --------------------------------------------------------------------------------------
def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


CATALOGUE = {**RECORD_DE, **ACCESS_RECORD_DE}


def _t(text: object, lang: str) -> str:
    return render(text, lang, CATALOGUE)


def localize(blocks: list[Block], lang: str) -> list[Block]:
    """Pure: the blocks with every text in `lang` (de or en); the facts are the same in both."""
    out: list[Block] = []
    for block in blocks:
        if block[0] == "ul":
            out.append(("ul", [_t(i, lang) for i in block[1]]))
        elif block[0] == "table":
            out.append(("table", [_t(h, lang) for h in block[1]], [[_t(c, lang) for c in r] for r in block[2]]))
        else:
            out.append((block[0], _t(block[1], lang)))
    return out


def to_markdown(blocks: list[Block], lang: str = "en") -> str:
    out: list[str] = []
    for block in localize(blocks, lang):
        kind = block[0]
        if kind == "h1":
            out += [f"# {block[1]}", ""]
        elif kind == "h2":
            out += [f"## {block[1]}", ""]
        elif kind == "p":
            out += [block[1], ""]
        elif kind == "ul":
            out += [f"- {item}" for item in block[1]] + [""]
        elif kind == "table":
            headers, rows = block[1], block[2]
            out.append("| " + " | ".join(headers) + " |")
            out.append("| " + " | ".join("---" for _ in headers) + " |")
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
            out.append("")
    return "\n".join(out)


def _inline_html(text: str) -> str:
    """Escape, then render `code` spans."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(str(text)))


def to_html(blocks: list[Block], lang: str = "en") -> str:
    blocks = localize(blocks, lang)
    title = next((b[1] for b in blocks if b[0] == "h1"), "callsight")
    body: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "p"):
            body.append(f"<{kind}>{_inline_html(block[1])}</{kind}>")
        elif kind == "ul":
            body.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in block[1]) + "</ul>")
        elif kind == "table":
            head = "".join(f"<th>{_inline_html(h)}</th>" for h in block[1])
            rows = "".join("<tr>" + "".join(f"<td>{_inline_html(c)}</td>" for c in r) + "</tr>" for r in block[2])
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
    style = (
        "body{font-family:sans-serif;max-width:70em;margin:2em auto;line-height:1.4}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #999;padding:.2em .5em;"
        "text-align:left;vertical-align:top}th{background:#eee}"
    )
    return (
        f'<!DOCTYPE html>\n<html lang="{lang}">\n<head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{style}</style></head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )


def write_report(
    settings: Settings,
    fmt: str = "md",
    output: Path | None = None,
    today: date | None = None,
    lang: str | None = None,
) -> Path:
    """Write the record in `lang` (default: the site's CALLSIGHT_LOCALE)."""
    lang = lang or settings.locale
    facts = gather(settings, today)
    blocks = document(facts)
    text = to_html(blocks, lang) if fmt == "html" else to_markdown(blocks, lang)
    path = output or settings.home / "reports" / f"processing-record-{facts.today.isoformat()}.{fmt}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
