"""Private-call masking, applied in the extract before anything lands (DESIGN.md, "Private calls").

Pure functions over pandas frames with the journal's ProCall column names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import pandas as pd

from .config import PrivateCalls

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
    """Digits only, with a leading 00 or + country prefix unified: '+49 8151 3680-199' -> '4981513680199'."""
    if number is None:
        return ""
    digits = _NON_DIGIT.sub("", str(number))
    return digits[2:] if digits.startswith("00") else digits


def truncate_number(number: str | None, digits: int) -> str | None:
    """Replace the last `digits` digits with 'X' (formatting kept): '+49 89 1234567' -> '+49 89 1234XXX'."""
    if number is None or (isinstance(number, float) and pd.isna(number)):
        return None
    chars = list(str(number))
    left = digits
    for i in range(len(chars) - 1, -1, -1):
        if left == 0:
            break
        if chars[i].isdigit():
            chars[i] = "X"
            left -= 1
    return "".join(chars)


def private_mask(frame: pd.DataFrame, private_lines: Iterable[str]) -> pd.Series:
    """True where a call is private: PrivateCall set (anything but a clean 0 counts, fail-safe) or the
    call ran on a private line."""
    flag = pd.to_numeric(frame["PrivateCall"], errors="coerce")
    flagged = ~flag.fillna(0).isin([0]) | (frame["PrivateCall"].notna() & flag.isna())
    lines = {normalize_number(n) for n in private_lines}
    on_line = frame["LineNumber"].map(normalize_number).isin(lines) if lines else False
    return (flagged | on_line).astype(bool)


def apply_privacy(frame: pd.DataFrame, rules: PrivateCalls, private_lines: Iterable[str]) -> pd.DataFrame:
    """Return a copy with private calls masked per policy and an `_is_private` flag column."""
    out = frame.copy()
    private = private_mask(out, private_lines)
    out["_is_private"] = private
    if rules.mode == "keep" or not private.any():
        return out
    for col in CONTACT_COLUMNS:
        out[col] = out[col].astype("object")
        out.loc[private, col] = None
    for col in NUMBER_COLUMNS:
        out[col] = out[col].astype("object")
        if rules.mode == "drop":
            out.loc[private, col] = None
        else:
            out.loc[private, col] = out.loc[private, col].map(
                lambda n: truncate_number(n, rules.truncate_digits)
            )
    return out
