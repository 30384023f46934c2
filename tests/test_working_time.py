"""The working-time calendar (SPEC §3): official schedules, deadline arithmetic, refusals."""

from __future__ import annotations

import time as clock
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from yuqing.working_time import (
    SHANGHAI,
    CalendarError,
    OfficeHours,
    WorkingCalendar,
    load_calendar,
)

EXAMPLE_OVERRIDE = (
    Path(__file__).resolve().parent.parent / "config" / "calendar-override.example.toml"
)


def sh(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


def d(text: str) -> date:
    return date.fromisoformat(text)


@pytest.fixture(scope="module")
def cal() -> WorkingCalendar:
    return load_calendar()


# --------------------------------------------------------------------------------------------
# The official schedules, typed from the State Council notices (国办发明电〔2024〕12号 for 2025,
# 国办发明电〔2025〕7号 for 2026), not from the package, so the package is checked against them.

OFFICIAL: dict[int, tuple[set[str], set[str]]] = {
    # year: (weekdays off, weekend days that are working days)
    2025: (
        {
            "2025-01-01",
            *("2025-01-28", "2025-01-29", "2025-01-30", "2025-01-31", "2025-02-03", "2025-02-04"),
            "2025-04-04",
            *("2025-05-01", "2025-05-02", "2025-05-05"),
            "2025-06-02",
            *("2025-10-01", "2025-10-02", "2025-10-03", "2025-10-06", "2025-10-07", "2025-10-08"),
        },
        {"2025-01-26", "2025-02-08", "2025-04-27", "2025-09-28", "2025-10-11"},
    ),
    2026: (
        {
            "2026-01-01",
            "2026-01-02",
            *("2026-02-16", "2026-02-17", "2026-02-18", "2026-02-19", "2026-02-20", "2026-02-23"),
            "2026-04-06",
            *("2026-05-01", "2026-05-04", "2026-05-05"),
            "2026-06-19",
            "2026-09-25",
            *("2026-10-01", "2026-10-02", "2026-10-05", "2026-10-06", "2026-10-07"),
        },
        {"2026-01-04", "2026-02-14", "2026-02-28", "2026-05-09", "2026-09-20", "2026-10-10"},
    ),
}


@pytest.mark.parametrize("year", sorted(OFFICIAL))
def test_every_day_of_the_year_matches_the_official_notice(cal: WorkingCalendar, year: int) -> None:
    off, working = OFFICIAL[year]
    wrong = []
    day = date(year, 1, 1)
    while day.year == year:
        iso = day.isoformat()
        expected = iso in working or (day.weekday() < 5 and iso not in off)
        if cal.is_working_day(day) != expected:
            wrong.append(iso)
        day += timedelta(days=1)
    assert wrong == []


@pytest.mark.parametrize(
    ("first_off", "last_off", "working_weekends"),
    [
        # Spring Festival 2025: 01-28 (除夕) to 02-04; Sun 01-26 and Sat 02-08 worked.
        ("2025-01-28", "2025-02-04", ["2025-01-26", "2025-02-08"]),
        # National Day and Mid-Autumn 2025: 10-01 to 10-08; Sun 09-28 and Sat 10-11 worked.
        ("2025-10-01", "2025-10-08", ["2025-09-28", "2025-10-11"]),
        # Spring Festival 2026: Sun 02-15 to Mon 02-23; Sat 02-14 and Sat 02-28 worked.
        ("2026-02-15", "2026-02-23", ["2026-02-14", "2026-02-28"]),
        # National Day 2026: 10-01 to 10-07; Sun 09-20 and Sat 10-10 worked.
        ("2026-10-01", "2026-10-07", ["2026-09-20", "2026-10-10"]),
    ],
)
def test_golden_weeks_and_their_swapped_weekends(
    cal: WorkingCalendar, first_off: str, last_off: str, working_weekends: list[str]
) -> None:
    day = d(first_off)
    while day <= d(last_off):
        assert not cal.is_working_day(day), day
        day += timedelta(days=1)
    # The days either side of the break are back at work.
    assert cal.is_working_day(d(last_off) + timedelta(days=1))
    for iso in working_weekends:
        assert d(iso).weekday() >= 5
        assert cal.is_working_day(d(iso)), iso
        assert cal.is_working_time(datetime.combine(d(iso), time(9), tzinfo=SHANGHAI))


def test_package_years_and_version(cal: WorkingCalendar) -> None:
    assert {2001, 2025, 2026} <= cal.covered_years
    assert 2027 not in cal.covered_years
    assert cal.version == "holidays-0.109;override=none;hours=08:00-12:00,15:00-18:00"
    assert cal.source_for(2026) == "holidays-0.109"
    assert len(cal.sources) == 1


# --------------------------------------------------------------------------------------------
# Deadline arithmetic: SPEC §3's examples and the edges around them


def test_friday_1700_initial_response_due_next_working_day_1000(cal: WorkingCalendar) -> None:
    assert cal.add_working_hours(sh(2026, 3, 6, 17), 3) == sh(2026, 3, 9, 10)


def test_friday_before_a_swapped_sunday_runs_into_the_sunday(cal: WorkingCalendar) -> None:
    # Fri 2025-09-26 17:00: the next working day is Sun 09-28 (调休), not Mon 09-29.
    assert cal.add_working_hours(sh(2025, 9, 26, 17), 3) == sh(2025, 9, 28, 10)


def test_post_during_lunch_break(cal: WorkingCalendar) -> None:
    # Monday 12:30: nothing counts until 15:00, then 15:00–18:00 is exactly 3 h.
    assert cal.add_working_hours(sh(2026, 3, 9, 12, 30), 3) == sh(2026, 3, 9, 18)
    assert cal.add_working_hours(sh(2026, 3, 9, 11, 30), 3) == sh(2026, 3, 9, 17, 30)


def test_post_on_a_holiday_counts_from_the_first_working_day(cal: WorkingCalendar) -> None:
    # Sat 2026-10-03 is inside National Day; the first working day is Thu 10-08.
    assert cal.add_working_hours(sh(2026, 10, 3, 10), 3) == sh(2026, 10, 8, 11)
    # Spring Festival eve 2026, and a post at night before a working day.
    assert cal.add_working_hours(sh(2026, 2, 16, 9), 1.5) == sh(2026, 2, 24, 9, 30)
    assert cal.add_working_hours(sh(2026, 3, 9, 6), 4) == sh(2026, 3, 9, 12)


def test_five_working_days_without_a_holiday(cal: WorkingCalendar) -> None:
    assert cal.working_days_after(sh(2026, 3, 9, 9), 5) == sh(2026, 3, 16, 18)
    # The time of day of the start does not matter: its own date is never counted.
    assert cal.working_days_after(sh(2026, 3, 9, 23, 59), 5) == sh(2026, 3, 16, 18)


def test_five_working_days_across_national_day(cal: WorkingCalendar) -> None:
    # Mon 09-28: Tue 09-29 (1), Wed 09-30 (2), 10-01..07 off, Thu 10-08 (3), Fri 10-09 (4),
    # Sat 10-10 worked (5).
    assert cal.working_days_after(sh(2026, 9, 28, 9), 5) == sh(2026, 10, 10, 18)
    # Ten working days in all (the extended reply): then Mon 10-12 to Fri 10-16.
    assert cal.working_days_after(sh(2026, 9, 28, 9), 10) == sh(2026, 10, 16, 18)


def test_input_in_another_zone_is_converted_and_answered_in_shanghai(
    cal: WorkingCalendar,
) -> None:
    friday_17_local = datetime(2026, 3, 6, 9, tzinfo=UTC)
    due = cal.add_working_hours(friday_17_local, 3)
    assert due == sh(2026, 3, 9, 10)
    assert due.tzinfo is SHANGHAI
    # 23:30 UTC on Sunday is already Monday 07:30 in Shanghai.
    assert cal.is_working_day(datetime(2026, 3, 8, 23, 30, tzinfo=UTC))
    assert cal.working_days_after(datetime(2026, 3, 8, 23, 30, tzinfo=UTC), 1) == sh(
        2026, 3, 10, 18
    )


def test_working_time_boundaries_are_half_open(cal: WorkingCalendar) -> None:
    assert not cal.is_working_time(sh(2026, 3, 9, 7, 59))
    assert cal.is_working_time(sh(2026, 3, 9, 8))
    assert not cal.is_working_time(sh(2026, 3, 9, 12))
    assert cal.is_working_time(sh(2026, 3, 9, 15))
    assert not cal.is_working_time(sh(2026, 3, 9, 18))
    assert not cal.is_working_time(sh(2026, 3, 7, 9))  # Saturday


def test_zero_hours_returns_the_start_itself(cal: WorkingCalendar) -> None:
    assert cal.add_working_hours(sh(2026, 3, 9, 9), 0) == sh(2026, 3, 9, 9)
    assert cal.add_working_hours(sh(2026, 10, 3, 9), 0) == sh(2026, 10, 3, 9)
    # A count ending exactly at a close returns the close, not the next opening.
    assert cal.add_working_hours(sh(2026, 3, 6, 17), 1) == sh(2026, 3, 6, 18)
    assert cal.add_working_hours(sh(2026, 3, 9, 0), 7) == sh(2026, 3, 9, 18)
    assert cal.add_working_hours(sh(2026, 3, 7, 9), 14) == sh(2026, 3, 10, 18)


def test_working_hours_between(cal: WorkingCalendar) -> None:
    assert cal.working_hours_between(sh(2026, 3, 6, 17), sh(2026, 3, 9, 10)) == timedelta(hours=3)
    assert cal.working_hours_between(sh(2026, 3, 9, 0), sh(2026, 3, 10, 0)) == timedelta(hours=7)
    # Reported lateness is signed: a reply two working hours early is -2 h.
    assert cal.working_hours_between(sh(2026, 3, 9, 10), sh(2026, 3, 9, 8)) == -timedelta(hours=2)
    assert cal.working_hours_between(sh(2026, 10, 1), sh(2026, 10, 8)) == timedelta()


def test_fractional_hours_are_exact(cal: WorkingCalendar) -> None:
    start = sh(2026, 3, 9, 8)
    assert cal.add_working_hours(start, 0.1) == sh(2026, 3, 9, 8, 6)
    assert cal.add_working_hours(start, 1 / 3) == sh(2026, 3, 9, 8, 20)
    exact = cal.add_working_time(start, timedelta(microseconds=1))
    assert exact == start + timedelta(microseconds=1)


def test_office_hours_to_midnight() -> None:
    cal = load_calendar(office_hours=OfficeHours.parse("00:00-24:00"))
    assert cal.version.endswith("hours=00:00-24:00")
    # Fri 20:00 + 6 h: 4 h to midnight, Saturday and Sunday off, 2 h on Monday.
    assert cal.add_working_hours(sh(2026, 3, 6, 20), 6) == sh(2026, 3, 9, 2)
    assert cal.add_working_hours(sh(2026, 3, 6, 20), 4) == sh(2026, 3, 7, 0)
    assert cal.working_days_after(sh(2026, 3, 6, 9), 1) == sh(2026, 3, 10, 0)
    assert cal.working_hours_between(sh(2026, 3, 6, 20), sh(2026, 3, 7)) == timedelta(hours=4)


def test_ten_working_day_deadline_is_fast(cal: WorkingCalendar) -> None:
    start = sh(2026, 9, 28, 9)
    cal.working_days_after(start, 10)  # warm the year's cache
    runs = 2000
    began = clock.perf_counter()
    for _ in range(runs):
        cal.working_days_after(start, 10)
        cal.add_working_hours(start, 80)
    per_call = (clock.perf_counter() - began) / (2 * runs)
    # Measured around 10–30 µs; the bound is loose so a busy machine does not fail the test.
    assert per_call < 0.001


# --------------------------------------------------------------------------------------------
# Refusals


def test_naive_datetimes_are_refused(cal: WorkingCalendar) -> None:
    naive = datetime(2026, 3, 9, 9)
    calls = [
        lambda: cal.add_working_hours(naive, 3),
        lambda: cal.working_days_after(naive, 5),
        lambda: cal.is_working_time(naive),
        lambda: cal.is_working_day(naive),
        lambda: cal.working_hours_between(naive, sh(2026, 3, 9, 10)),
        lambda: cal.working_hours_between(sh(2026, 3, 9, 10), naive),
    ]
    for call in calls:
        with pytest.raises(CalendarError, match="must carry a time zone"):
            call()


@pytest.mark.parametrize("hours", [-1, -0.000001, float("nan"), float("inf"), 1e20, True])
def test_bad_hours_are_refused(cal: WorkingCalendar, hours: float) -> None:
    with pytest.raises(CalendarError, match="hours"):
        cal.add_working_hours(sh(2026, 3, 9, 9), hours)


@pytest.mark.parametrize("days", [0, -1, 1.0, True])
def test_bad_day_counts_are_refused(cal: WorkingCalendar, days: int) -> None:
    with pytest.raises(CalendarError, match="days"):
        cal.working_days_after(sh(2026, 3, 9, 9), days)


def test_unknown_years_are_refused_not_guessed(cal: WorkingCalendar) -> None:
    with pytest.raises(CalendarError, match="no working-day data for 2031: add it to the override"):
        cal.is_working_day(date(2031, 3, 3))
    with pytest.raises(CalendarError, match="no working-day data for 2031"):
        cal.add_working_hours(sh(2031, 3, 3, 9), 0)
    with pytest.raises(CalendarError, match="no working-day data for 2000"):
        cal.is_working_day(date(2000, 6, 1))
    # Crossing from a known year into an unknown one refuses too.
    with pytest.raises(CalendarError, match="no working-day data for 2027"):
        cal.add_working_hours(sh(2026, 12, 31, 17), 3)
    with pytest.raises(CalendarError, match="no working-day data for 2027"):
        cal.working_days_after(sh(2026, 12, 28, 9), 5)
    with pytest.raises(CalendarError, match="no working-day data for 2027"):
        cal.working_hours_between(sh(2026, 12, 31, 9), sh(2027, 1, 4, 9))
    # Up to the last day of the known year is fine.
    assert cal.add_working_hours(sh(2026, 12, 31, 17), 1) == sh(2026, 12, 31, 18)
    assert cal.working_days_after(sh(2026, 12, 30, 9), 1) == sh(2026, 12, 31, 18)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("08:00", "not HH:MM-HH:MM"),
        ("8-12", "not HH:MM-HH:MM"),
        ("12:00-08:00", "ends before it starts"),
        ("08:00-08:00", "ends before it starts"),
        ("08:00-12:00,11:00-13:00", "overlaps"),
        ("15:00-18:00,08:00-12:00,17:00-19:00", "overlaps"),
        ("25:00-26:00", "outside"),
        ("08:00-24:30", "outside"),
        ("24:00-24:00", "outside"),
        ("08:60-09:00", "outside"),
        ("08:00-12:00,", "not HH:MM-HH:MM"),
    ],
)
def test_bad_office_hours_are_refused(text: str, message: str) -> None:
    with pytest.raises(CalendarError, match=message):
        OfficeHours.parse(text)


def test_office_hours_parse_sorts_and_formats() -> None:
    assert OfficeHours.parse("15:00-18:00, 08:00-12:00") == OfficeHours()
    assert str(OfficeHours()) == "08:00-12:00,15:00-18:00"
    assert OfficeHours.parse("08:30-12:00,12:00-17:30").daily_total() == timedelta(hours=9)
    with pytest.raises(CalendarError, match="at least one period"):
        OfficeHours(())
    with pytest.raises(CalendarError, match="ends before it starts"):
        OfficeHours(((time(9), time(8)),))


# --------------------------------------------------------------------------------------------
# The override file

OVERRIDE_2031 = """
source = "国务院办公厅关于2031年部分节假日安排的通知 (made up for the test)"

[[years]]
year = 2031
complete = true
holidays = [
    "2031-01-01",
    "2031-01-22", "2031-01-23", "2031-01-24", "2031-01-27", "2031-01-28", "2031-01-29",
    "2031-04-07",
    "2031-05-01", "2031-05-02", "2031-05-05",
    2031-06-24,
    "2031-10-01", "2031-10-02", "2031-10-03", "2031-10-06", "2031-10-07", "2031-10-08",
]
working_days = ["2031-01-19", "2031-02-08", "2031-04-27", "2031-09-28", "2031-10-11"]
not_holidays = []
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "override.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_override_adds_a_year(tmp_path: Path) -> None:
    cal = load_calendar(write(tmp_path, OVERRIDE_2031))
    assert 2031 in cal.covered_years
    assert not cal.is_working_day(date(2031, 1, 22))
    assert cal.is_working_day(date(2031, 1, 19))  # Sunday declared a working day
    assert not cal.is_working_day(date(2031, 6, 24))  # a bare TOML date works too
    # Fri 01-17 17:00 + 3 h: 1 h on Friday, then the swapped Sunday 01-19 08:00–10:00.
    assert cal.add_working_hours(sh(2031, 1, 17, 17), 3) == sh(2031, 1, 19, 10)
    # Mon 01-20: Tue 01-21 (1), 01-22..29 off, 01-30 (2), 01-31 (3), 02-03 (4), 02-04 (5).
    assert cal.working_days_after(sh(2031, 1, 20, 9), 5) == sh(2031, 2, 4, 18)
    assert "made up for the test" in cal.source_for(2031)
    assert cal.source_for(2026) == "holidays-0.109"
    assert len(cal.sources) == 2 and "2031" in cal.sources[1]
    assert ";override=" in cal.version and ";override=none" not in cal.version
    # Years between the package's last and the override's stay unknown.
    with pytest.raises(CalendarError, match="no working-day data for 2028"):
        cal.is_working_day(date(2028, 3, 1))


def test_override_version_follows_the_file(tmp_path: Path) -> None:
    first = load_calendar(write(tmp_path, OVERRIDE_2031))
    second = load_calendar(write(tmp_path, OVERRIDE_2031 + "\n# edited\n"))
    assert first.version != second.version


def test_override_amends_a_package_year(tmp_path: Path) -> None:
    text = """
source = "an amendment"
[[years]]
year = 2026
complete = false
holidays = ["2026-12-31"]
working_days = ["2026-12-27"]
not_holidays = ["2026-06-19"]
"""
    cal = load_calendar(write(tmp_path, text))
    assert not cal.is_working_day(date(2026, 12, 31))
    assert cal.is_working_day(date(2026, 12, 27))
    assert cal.is_working_day(date(2026, 6, 19))
    # The rest of the year is still the package's.
    assert not cal.is_working_day(date(2026, 10, 2))
    assert cal.is_working_day(date(2026, 10, 10))
    assert cal.source_for(2026).startswith("holidays-0.109 + override")


def test_example_override_file_loads() -> None:
    cal = load_calendar(EXAMPLE_OVERRIDE)
    assert 2027 in cal.covered_years
    assert cal.is_working_day(date(2027, 2, 20))
    assert not cal.is_working_day(date(2027, 2, 10))
    assert cal.add_working_hours(sh(2026, 12, 31, 17), 3) == sh(2027, 1, 4, 10)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "source = 'x'\n[[years]]\nyear = 2031\ncomplete = true\nholidays = ['2031-02-30']",
            r"holidays\[0\] '2031-02-30': not a real date",
        ),
        (
            "source = 'x'\n[[years]]\nyear = 2031\ncomplete = true\nholidays = ['31/01/2031']",
            r"holidays\[0\] '31/01/2031': not a date",
        ),
        (
            "source = 'x'\n[[years]]\nyear = 2031\ncomplete = true\nholidays = ['2030-12-31']",
            r"years\[0\] \(year 2031\) holidays\[0\] '2030-12-31': not in 2031",
        ),
        (
            "source = 'x'\n[[years]]\nyear = 2031\ncomplete = true\n"
            "holidays = ['2031-01-19']\nworking_days = ['2031-01-19']",
            "2031-01-19 is in both holidays and working_days",
        ),
        (
            "source = 'x'\n[[years]]\nyear = 2026\ncomplete = false\n"
            "holidays = ['2026-06-19']\nnot_holidays = ['2026-06-19']",
            "2026-06-19 is in both holidays and not_holidays",
        ),
        (
            "source = 'x'\n[[years]]\nyear = 2031\ncomplete = true\nworking_days = ['2031-01-20']",
            r"working_days 2031-01-20 is a Monday",
        ),
        (
            "source = 'x'\n[[years]]\nyear = 2031\ncomplete = true\nholiday = ['2031-01-20']",
            r"years\[0\] \(year 2031\): unknown key\(s\) holiday",
        ),
        ("source = 'x'\nyear = 2031", "unknown key"),
        ("[[years]]\nyear = 2031\ncomplete = true", "'source' must name the notice"),
        ("source = 'x'\n[[years]]\nyear = 2031\nholidays = []", "'complete' must be given"),
        ("source = 'x'\n[[years]]\nyear = '2031'\ncomplete = true", "'year' must be an integer"),
        (
            "source = 'x'\n[[years]]\nyear = 2031\ncomplete = true\n"
            "[[years]]\nyear = 2031\ncomplete = true",
            "year 2031 is given twice",
        ),
        (
            "source = 'x'\n[[years]]\nyear = 2031\ncomplete = true\n"
            "holidays = ['2031-01-01', '2031-01-01']",
            "listed twice",
        ),
        (
            "source = 'x'\n[[years]]\nyear = 2031\ncomplete = true\nholidays = '2031-01-01'",
            "must be a list of dates",
        ),
        (
            "source = 'x'\n[[years]]\nyear = 2031\ncomplete = true\n"
            "holidays = [2031-01-01T08:00:00]",
            "not a date",
        ),
        (
            "source = 'x'\n[[years]]\nyear = 2026\ncomplete = true\nnot_holidays = ['2026-06-19']",
            "not_holidays is meaningless when complete = true",
        ),
        (
            "source = 'x'\n[[years]]\nyear = 2031\ncomplete = false\nholidays = ['2031-01-01']",
            "year 2031 amends a year holidays-0.109 has no official schedule for",
        ),
        ("source = 'x'\n[[years]\n", "not valid TOML"),
    ],
)
def test_malformed_override_is_refused(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(CalendarError, match=message):
        load_calendar(write(tmp_path, body))


def test_missing_override_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CalendarError, match="cannot read override file"):
        load_calendar(tmp_path / "absent.toml")


# --------------------------------------------------------------------------------------------
# Properties, over 2025-01-01 .. 2026-10-31 so that every result stays inside known years

_FIRST, _LAST = date(2025, 1, 1), date(2026, 10, 31)
_EDGES = [
    time(0),
    time(7, 59),
    time(8),
    time(11, 59),
    time(12),
    time(12, 30),
    time(15),
    time(17),
    time(18),
    time(23, 59),
]
_ZONES = [SHANGHAI, UTC, ZoneInfo("America/New_York")]

_anywhere = st.datetimes(
    min_value=datetime.combine(_FIRST, time()),
    max_value=datetime.combine(_LAST, time()),
    timezones=st.just(SHANGHAI),
)
_on_an_edge = st.builds(
    lambda day, at: datetime.combine(day, at, tzinfo=SHANGHAI),
    st.dates(_FIRST, _LAST),
    st.sampled_from(_EDGES),
)
# The same instants, sometimes expressed in another zone, which must make no difference.
moments = st.tuples(st.one_of(_anywhere, _on_an_edge), st.sampled_from(_ZONES)).map(
    lambda pair: pair[0].astimezone(pair[1])
)
# Whole days of office time (7 h) are mixed in: they end exactly at a close, an edge worth hitting.
minutes = st.one_of(
    st.integers(min_value=0, max_value=100 * 60),
    st.integers(min_value=0, max_value=14).map(lambda days: days * 7 * 60),
)
spans = st.timedeltas(min_value=timedelta(), max_value=timedelta(hours=100))

_CAL = load_calendar()
_PROPERTY = settings(max_examples=200, deadline=None)


@_PROPERTY
@given(t=moments, m=minutes)
def test_deadline_is_never_before_its_start(t: datetime, m: int) -> None:
    due = _CAL.add_working_hours(t, m / 60)
    assert due >= t
    assert due.tzinfo is SHANGHAI
    if m:
        # A positive count ends inside office time or exactly at a close.
        assert _CAL.is_working_time(due - timedelta(microseconds=1))


@_PROPERTY
@given(t=moments, m1=minutes, m2=minutes)
def test_more_hours_never_make_an_earlier_deadline(t: datetime, m1: int, m2: int) -> None:
    m1, m2 = sorted((m1, m2))
    assert _CAL.add_working_hours(t, m1 / 60) <= _CAL.add_working_hours(t, m2 / 60)


@_PROPERTY
@given(t1=moments, t2=moments, m=minutes)
def test_a_later_start_never_makes_an_earlier_deadline(t1: datetime, t2: datetime, m: int) -> None:
    t1, t2 = sorted((t1, t2))
    assert _CAL.add_working_hours(t1, m / 60) <= _CAL.add_working_hours(t2, m / 60)


@_PROPERTY
@given(t=moments, a=minutes, b=minutes)
def test_splitting_adds_up_in_minutes(t: datetime, a: int, b: int) -> None:
    step = _CAL.add_working_hours(_CAL.add_working_hours(t, a / 60), b / 60)
    assert step == _CAL.add_working_hours(t, (a + b) / 60)


@_PROPERTY
@given(t=moments, a=spans, b=spans)
def test_splitting_adds_up_to_the_microsecond(t: datetime, a: timedelta, b: timedelta) -> None:
    step = _CAL.add_working_time(_CAL.add_working_time(t, a), b)
    assert step == _CAL.add_working_time(t, a + b)


@_PROPERTY
@given(t=moments, h=spans)
def test_hours_between_undoes_adding(t: datetime, h: timedelta) -> None:
    assert _CAL.working_hours_between(t, _CAL.add_working_time(t, h)) == h


@_PROPERTY
@given(t=moments, m=minutes)
def test_hours_between_undoes_adding_hours(t: datetime, m: int) -> None:
    assert _CAL.working_hours_between(t, _CAL.add_working_hours(t, m / 60)) == timedelta(minutes=m)


@_PROPERTY
@given(t=moments, n=st.integers(min_value=1, max_value=10))
def test_working_days_after_lands_on_the_nth_working_day(t: datetime, n: int) -> None:
    due = _CAL.working_days_after(t, n)
    assert due.time() == time(18) and due > t
    assert _CAL.is_working_day(due.date())
    start_day = t.astimezone(SHANGHAI).date()
    between = [start_day + timedelta(days=k) for k in range(1, (due.date() - start_day).days + 1)]
    assert sum(_CAL.is_working_day(day) for day in between) == n


@settings(max_examples=30, deadline=None)
@given(
    day=st.dates(_FIRST, _LAST),
    minute_of_day=st.integers(min_value=0, max_value=24 * 60 - 1),
    m=st.integers(min_value=1, max_value=10 * 60),
)
def test_adding_agrees_with_counting_minute_by_minute(
    day: date, minute_of_day: int, m: int
) -> None:
    t = datetime.combine(day, time(), tzinfo=SHANGHAI) + timedelta(minutes=minute_of_day)
    u, counted = t, 0
    while counted < m:
        counted += _CAL.is_working_time(u)
        u += timedelta(minutes=1)
    assert _CAL.add_working_hours(t, m / 60) == u
