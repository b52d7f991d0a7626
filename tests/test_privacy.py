"""The masking rules, evaluated by DuckDB exactly as the extract runs them."""

import random

import duckdb
import pandas as pd
import pytest

from callsight.privacy.masking import masked_columns_sql, normalize_number, private_sql, truncate_sql
from callsight.site.policy import PrivateCalls

ROWS = pd.DataFrame(
    {
        "PhoneNumber": ["+49 89 1234567", "+49 30 7654321", "+49 40 1111111", None],
        "RedirectingNumber": [None, "+49 8151 3680-201", None, None],
        "ContactName": ["Eva Privat", "Max Kunde", "Lisa Leitung", None],
        "ContactCompany": [None, "Kunde GmbH", "Firma AG", None],
        "ContactEntryID": ["C1", "C2", "C3", None],
        "ContactEntryStoreID": ["CRM", "CRM", "CRM", None],
        "ContactEntryDBID": ["db", "db", "db", None],
        "Subject": ["Arzttermin", "Angebot", "Kita", None],
        "PrivateCall": ["1", "0", " 0 ", "x"],
        "LineNumber": ["+49 8151 3680-201", "+49 8151 3680-202", "+49 (8151) 3680 199", "+49 8151 3680-203"],
    }
).astype("object")
LINES = ["0049 8151 3680199"]


def run(mode: str, digits: int = 3) -> pd.DataFrame:
    con = duckdb.connect()
    con.register("src", ROWS)
    masked = masked_columns_sql(PrivateCalls(mode=mode, truncate_digits=digits), "_p")
    replace = ", ".join(f'{e} AS "{c}"' for c, e in masked.items())
    sql = f"SELECT *, {private_sql(LINES)} AS _p FROM src"
    sql = f"SELECT * {'REPLACE (' + replace + ')' if replace else ''} FROM ({sql})"
    return con.execute(sql).df()


def test_numbers() -> None:
    assert normalize_number("+49 (8151) 3680-199") == normalize_number("0049 8151 3680199")
    con = duckdb.connect()
    cases = {"+49 89 1234567": "+49 89 1234XXX", "+49 8151 3680-19": "+49 8151 368X-XX", "12": "XX"}
    for raw, want in cases.items():
        assert con.execute(f"SELECT {truncate_sql('?', 3)}", [raw]).fetchone()[0] == want
    assert con.execute(f"SELECT {truncate_sql('?', 5)}", ["+49 89 1234567"]).fetchone()[0] == "+49 89 12XXXXX"


def test_private_by_flag_line_and_fail_safe() -> None:
    # flagged; not private; on the private line (other formatting, ' 0 ' flag); unparseable flag
    assert run("truncate")["_p"].tolist() == [True, False, True, True]


def test_truncate_mode() -> None:
    out = run("truncate")
    assert out.loc[0, "PhoneNumber"] == "+49 89 1234XXX" and out.loc[2, "PhoneNumber"] == "+49 40 1111XXX"
    for col in (
        "ContactName",
        "ContactCompany",
        "ContactEntryID",
        "ContactEntryStoreID",
        "ContactEntryDBID",
        "Subject",
    ):
        assert pd.isna(out.loc[0, col]) and pd.isna(out.loc[2, col])
    assert out.loc[1, "ContactName"] == "Max Kunde" and out.loc[1, "PhoneNumber"] == "+49 30 7654321"


def test_drop_mode_keeps_the_call_but_no_identifiers() -> None:
    out = run("drop")
    assert pd.isna(out.loc[0, "PhoneNumber"]) and pd.isna(out.loc[2, "PhoneNumber"])
    assert out.loc[1, "RedirectingNumber"] == "+49 8151 3680-201" and out.loc[1, "ContactCompany"] == "Kunde GmbH"


@pytest.mark.parametrize("mode", ["keep"])
def test_keep_mode_stores_like_any_other(mode: str) -> None:
    out = run(mode)
    assert out.loc[0, "ContactName"] == "Eva Privat" and out.loc[0, "PhoneNumber"] == "+49 89 1234567"
    assert bool(out.loc[0, "_p"])


@pytest.mark.parametrize(
    "lines",
    [
        ["+49 8151 3680-199", "089 1234"],
        ["7", "0 7", "49", "0"],
        ["0000 5", "+49 7"],  # a line that still starts with 00 after normalising: the plain comparison
    ],
)
def test_private_line_match_says_what_normalize_number_says(lines: list[str]) -> None:
    """The extract matches private lines with one regular expression; it must agree with
    normalize_number on every way of writing a number (and on what is no number)."""
    rng = random.Random(7)
    candidates: list[str | None] = [None, "", "x", "+", "00", "000", "0000"]
    for line in lines:
        digits = normalize_number(line)
        candidates += [line, digits, "+" + digits, "00" + digits, "000" + digits, "0" + digits, digits + "0"]
        candidates += [" ".join(digits), f"({digits[:2]}) {digits[2:]}-", digits[:-1], "1" + digits, "tel:" + digits]
    candidates += ["".join(rng.choice("0079 +-()x") for _ in range(rng.randint(0, 9))) for _ in range(3000)]
    frame = pd.DataFrame({"LineNumber": candidates, "PrivateCall": ["0"] * len(candidates)}).astype("object")
    con = duckdb.connect()
    con.register("src", frame)
    got = [r[0] for r in con.execute(f"SELECT {private_sql(lines)} FROM src").fetchall()]
    wanted = {normalize_number(n) for n in lines} - {""}
    assert got == [normalize_number(c) in wanted for c in candidates]
    assert any(got) and not all(got)
