"""The repeated local intervals of a time zone, checked against zoneinfo's own reading of each time."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from callsight.journal.timezones import Fold, folds


def test_berlin_repeats_two_to_three_on_the_last_sunday_of_october() -> None:
    assert folds("Europe/Berlin", date(2026, 1, 1), date(2026, 12, 31)) == [
        Fold(datetime(2026, 10, 25, 2), datetime(2026, 10, 25, 3), 7200, 3600)
    ]
    assert folds("Europe/Berlin", date(2026, 1, 1), date(2026, 10, 23)) == []
    assert folds("UTC", date(2000, 1, 1), date(2030, 12, 31)) == []


def _ambiguous(zone: ZoneInfo, t: datetime) -> bool:
    """Both readings of the wall-clock time `t` are real instants that show `t` (in a skipped spring
    hour the two readings differ too, but neither shows `t`)."""
    readings = {t.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1)}
    return len(readings) == 2 and all(u.astimezone(zone).replace(tzinfo=None) == t for u in readings)


@pytest.mark.parametrize(
    "tz,year",
    [
        ("Europe/Berlin", 2026),
        ("America/New_York", 2026),
        ("Australia/Lord_Howe", 2026),  # clocks go back by 30 minutes
        ("America/St_Johns", 2026),  # a zone offset by half an hour from UTC
        ("Europe/Moscow", 2014),  # clocks went back for good, not for winter
        ("Australia/Sydney", 2026),  # the southern hemisphere: back in April
    ],
)
def test_a_local_time_is_in_a_fold_exactly_when_it_names_two_instants(tz: str, year: int) -> None:
    zone = ZoneInfo(tz)
    found = folds(tz, date(year, 1, 1), date(year, 12, 31))
    assert found, f"{tz} repeats no hour in {year}?"
    for f in found:
        assert f.seconds > 0
        assert f.start.replace(tzinfo=zone, fold=0).utcoffset() == timedelta(seconds=f.offset_before)
        assert f.start.replace(tzinfo=zone, fold=1).utcoffset() == timedelta(seconds=f.offset_after)
    t, end = datetime(year, 1, 1), datetime(year + 1, 1, 1)
    while t < end:
        inside = any(f.start <= t < f.end for f in found)
        assert inside == _ambiguous(zone, t), t
        t += timedelta(minutes=5)
