import pandas as pd
import pytest

from callsight.config import PrivateCalls
from callsight.privacy import apply_privacy, normalize_number, private_mask, truncate_number


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "PhoneNumber": ["+49 89 1234567", "+49 30 7654321", "+49 40 1111111", None],
            "RedirectingNumber": [None, "+49 8151 3680-201", None, None],
            "ContactName": ["Eva Privat", "Max Kunde", "Lisa Leitung", None],
            "ContactCompany": [None, "Kunde GmbH", "Firma AG", None],
            "ContactEntryID": ["C1", "C2", "C3", None],
            "ContactEntryStoreID": ["CRM", "CRM", "CRM", None],
            "ContactEntryDBID": ["db", "db", "db", None],
            "Subject": ["Arzttermin", "Angebot", "Kita", None],
            "PrivateCall": [1, 0, 0, "x"],
            "LineNumber": [
                "+49 8151 3680-201",
                "+49 8151 3680-202",
                "+49 (8151) 3680 199",
                "+49 8151 3680-203",
            ],
        }
    )


def test_numbers() -> None:
    assert normalize_number("+49 (8151) 3680-199") == normalize_number("0049 8151 3680199")
    assert truncate_number("+49 89 1234567", 3) == "+49 89 1234XXX"
    assert truncate_number("+49 8151 3680-19", 3) == "+49 8151 368X-XX"
    assert truncate_number("12", 3) == "XX"
    assert truncate_number(None, 3) is None


def test_private_by_flag_line_and_fail_safe() -> None:
    mask = private_mask(frame(), ["+49 8151 3680-199"])
    # flagged, not private, on the private line (other formatting), unparseable flag -> private
    assert mask.tolist() == [True, False, True, True]


def test_truncate_mode() -> None:
    out = apply_privacy(frame(), PrivateCalls(mode="truncate", truncate_digits=3), ["+49 8151 3680-199"])
    assert out.loc[0, "PhoneNumber"] == "+49 89 1234XXX"
    assert out.loc[2, "PhoneNumber"] == "+49 40 1111XXX"
    for col in (
        "ContactName",
        "ContactCompany",
        "ContactEntryID",
        "ContactEntryStoreID",
        "ContactEntryDBID",
        "Subject",
    ):
        assert out.loc[0, col] is None and out.loc[2, col] is None
    assert out.loc[1, "ContactName"] == "Max Kunde" and out.loc[1, "PhoneNumber"] == "+49 30 7654321"
    assert out["_is_private"].tolist() == [True, False, True, True]


def test_drop_mode_keeps_the_call_but_no_identifiers() -> None:
    out = apply_privacy(frame(), PrivateCalls(mode="drop"), ["+49 8151 3680-199"])
    assert out.loc[0, "PhoneNumber"] is None and out.loc[2, "PhoneNumber"] is None
    assert out.loc[1, "RedirectingNumber"] == "+49 8151 3680-201"
    assert out.loc[1, "ContactCompany"] == "Kunde GmbH"


@pytest.mark.parametrize("mode", ["keep"])
def test_keep_mode_stores_like_any_other(mode: str) -> None:
    out = apply_privacy(frame(), PrivateCalls(mode=mode), [])
    assert out.loc[0, "ContactName"] == "Eva Privat" and out.loc[0, "PhoneNumber"] == "+49 89 1234567"
    assert bool(out.loc[0, "_is_private"])
