"""Private-call masking, applied in the extract before anything lands (docs/privacy.md, "Private calls").

The rules are built as DuckDB SQL expressions over the source columns (all text), so that every
source, fast scanner or SQLAlchemy stream, is masked by the same definition inside one INSERT ... SELECT:
cleartext never reaches a table, a temp file or a log.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from callsight.site.policy import PrivateCalls

NUMBER_COLUMNS = ("PhoneNumber", "RedirectingNumber")
CONTACT_COLUMNS = (
    "ContactName",
    "ContactCompany",
    "ContactEntryID",
    "ContactEntryStoreID",
    "ContactEntryDBID",
    "Subject",
)

_NON_DIGIT = re.compile(r"\D")


def normalize_number(number: str | None) -> str:
    """Digits only, a leading 00 or + country prefix unified: '+49 8151 3680-199' -> '4981513680199'."""
    if number is None:
        return ""
    digits = _NON_DIGIT.sub("", str(number))
    return digits[2:] if digits.startswith("00") else digits


def _normalized_sql(col: str) -> str:
    return f"regexp_replace(regexp_replace(coalesce(\"{col}\", ''), '[^0-9]', '', 'g'), '^00', '')"


_NOT_DIGITS = "[^0-9]*"


def private_line_pattern(lines: Iterable[str]) -> str | None:
    """One anchored regular expression for `normalize_number(x) in lines` (lines normalised): the
    digits of a line in order with anything but digits around and between them, optionally after a 00
    prefix (the one normalize_number strips): cheaper than rewriting every row's number and comparing.
    None where it cannot say the same: a normalised line that still starts with 00."""
    lines = sorted(lines)
    if any(n.startswith("00") for n in lines):
        return None
    alternatives = "|".join(_NOT_DIGITS.join(n) for n in lines)
    return f"^{_NOT_DIGITS}(?:0{_NOT_DIGITS}0{_NOT_DIGITS})?(?:{alternatives}){_NOT_DIGITS}$"


def private_sql(private_lines: Iterable[str], flag_is_text: bool = True) -> str:
    """True where a call is private: PrivateCall set (anything but a clean 0 counts: fail-safe) or the
    call ran on a private line (its LineNumber normalises to one of `private_lines`)."""
    flag = 'trim("PrivateCall")' if flag_is_text else '"PrivateCall"'
    flagged = f'("PrivateCall" IS NOT NULL AND TRY_CAST({flag} AS DOUBLE) IS DISTINCT FROM 0)'
    lines = {normalize_number(n) for n in private_lines} - {""}
    if not lines:
        return flagged
    pattern = private_line_pattern(lines)
    if pattern is None:
        listed = ", ".join(f"'{n}'" for n in sorted(lines))
        return f"({flagged} OR {_normalized_sql('LineNumber')} IN ({listed}))"
    return f"({flagged} OR regexp_full_match(coalesce(\"LineNumber\", ''), '{pattern}'))"


def truncate_sql(expr: str, digits: int) -> str:
    """Replace the last `digits` digits with X, keeping the formatting: '+49 89 1234567' -> '+49 89 1234XXX'."""
    out = f"reverse({expr})"
    for _ in range(digits):
        out = f"regexp_replace({out}, '[0-9]', 'X')"  # first digit from the end, once per pass
    return f"reverse({out})"


def masked_columns_sql(rules: PrivateCalls, is_private: str) -> dict[str, str]:
    """Expression per masked column; columns not listed pass through."""
    if rules.mode == "keep":
        return {}
    out = {c: f'CASE WHEN {is_private} THEN NULL ELSE "{c}" END' for c in CONTACT_COLUMNS}
    for c in NUMBER_COLUMNS:
        masked = "NULL" if rules.mode == "drop" else truncate_sql(f'"{c}"', rules.truncate_digits)
        out[c] = f'CASE WHEN {is_private} THEN {masked} ELSE "{c}" END'
    return out
