"""Working time in Asia/Shanghai: which days are working days and how working hours add up.

SPEC §3: working days are Monday–Friday plus the weekend days the State Council declares working
days (调休), less public holidays; working hours count only inside office hours; N working days
from T is the close of office hours on the Nth working day after T's date.

The package `holidays` supplies the official schedules it knows; an override file supplies a
year's schedule once the State Council publishes it, before a package release carries it. A year
that neither covers is refused rather than guessed: a deadline computed from an estimate
(no 调休, festivals only) would be wrong in a way nobody notices until it is missed.

This module is pure (no Temporal, no I/O except `load_calendar` reading the override file), so
deadline activities can call it and tests can exercise it without a server.
"""

from __future__ import annotations

import hashlib
import math
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import holidays

__all__ = [
    "SHANGHAI",
    "CalendarError",
    "CalendarOverride",
    "OfficeHours",
    "WorkingCalendar",
    "YearOverride",
    "load_calendar",
    "parse_override",
]

SHANGHAI = ZoneInfo("Asia/Shanghai")

_DAY = timedelta(days=1)
_MIDNIGHT = time(0, 0)
# Years an override may name: the package's own China range; anything else is a typo.
_MIN_YEAR = 1950
_MAX_YEAR = 2100


class CalendarError(ValueError):
    """Bad input or missing calendar data; the message names what is wrong."""


# --------------------------------------------------------------------------------------------
# Office hours


def _fmt_offset(offset: timedelta) -> str:
    minutes = int(offset.total_seconds()) // 60
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _offset(moment: time, *, is_end: bool) -> timedelta:
    # time cannot say 24:00, so an end of 00:00 means the midnight that closes the day.
    if is_end and moment == _MIDNIGHT:
        return _DAY
    return timedelta(
        hours=moment.hour,
        minutes=moment.minute,
        seconds=moment.second,
        microseconds=moment.microsecond,
    )


@dataclass(frozen=True)
class OfficeHours:
    """The day's office periods, each [start, end) in local time, sorted and not overlapping.

    An end of `time(0, 0)` stands for 24:00, since `datetime.time` has no 24:00. Periods given
    out of order are sorted (the text "15:00-18:00,08:00-12:00" means the same as the default);
    overlapping or empty periods are refused, because they would count an hour twice or never.
    """

    periods: tuple[tuple[time, time], ...] = (
        (time(8, 0), time(12, 0)),
        (time(15, 0), time(18, 0)),
    )

    def __post_init__(self) -> None:
        if not self.periods:
            raise CalendarError("office hours: at least one period is needed")
        for period in self.periods:
            if (
                not isinstance(period, tuple)
                or len(period) != 2
                or not all(type(t) is time for t in period)
            ):
                raise CalendarError(f"office hours: {period!r} is not a (start, end) pair of times")
            if any(t.tzinfo is not None for t in period):
                raise CalendarError(
                    "office hours: periods are local Asia/Shanghai times; drop the tzinfo"
                )
        ordered = tuple(sorted(self.periods, key=lambda p: _offset(p[0], is_end=False)))
        object.__setattr__(self, "periods", ordered)
        previous_end: timedelta | None = None
        previous_text = ""
        for start, end in ordered:
            start_off, end_off = _offset(start, is_end=False), _offset(end, is_end=True)
            text = f"{_fmt_offset(start_off)}-{_fmt_offset(end_off)}"
            if end_off <= start_off:
                raise CalendarError(f"office hours: period {text} ends before it starts")
            if previous_end is not None and start_off < previous_end:
                raise CalendarError(f"office hours: period {text} overlaps {previous_text}")
            previous_end, previous_text = end_off, text

    @classmethod
    def parse(cls, text: str) -> OfficeHours:
        """Parse "08:00-12:00,15:00-18:00"; 24:00 is allowed as an end."""
        if not isinstance(text, str) or not text.strip():
            raise CalendarError("office hours: empty; expected e.g. '08:00-12:00,15:00-18:00'")
        periods: list[tuple[time, time]] = []
        for part in text.split(","):
            match = _PERIOD.fullmatch(part.strip())
            if match is None:
                raise CalendarError(f"office hours: {part.strip()!r} is not HH:MM-HH:MM")
            start = _parse_clock(match["start"], part, allow_24=False)
            end = _parse_clock(match["end"], part, allow_24=True)
            periods.append((start, end))
        return cls(tuple(periods))

    def offsets(self) -> tuple[tuple[timedelta, timedelta], ...]:
        """Each period as (start, end) measured from local midnight; an end may be one day."""
        return tuple(
            (_offset(start, is_end=False), _offset(end, is_end=True)) for start, end in self.periods
        )

    def daily_total(self) -> timedelta:
        return sum((end - start for start, end in self.offsets()), timedelta())

    def __str__(self) -> str:
        return ",".join(f"{_fmt_offset(s)}-{_fmt_offset(e)}" for s, e in self.offsets())


_PERIOD = re.compile(r"(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})")


def _parse_clock(text: str, part: str, *, allow_24: bool) -> time:
    hours_text, minutes_text = text.split(":")
    hours, minutes = int(hours_text), int(minutes_text)
    if allow_24 and hours == 24 and minutes == 0:
        return _MIDNIGHT
    if not (0 <= hours <= 23 and 0 <= minutes <= 59):
        limit = "00:00–24:00" if allow_24 else "00:00–23:59"
        raise CalendarError(f"office hours: {text} in {part.strip()!r} is outside {limit}")
    return time(hours, minutes)


# --------------------------------------------------------------------------------------------
# Override file


@dataclass(frozen=True)
class YearOverride:
    """One `[[years]]` entry of the override file."""

    year: int
    complete: bool
    holidays: frozenset[date]
    working_days: frozenset[date]
    not_holidays: frozenset[date]
    source: str


@dataclass(frozen=True)
class CalendarOverride:
    """A parsed override file; `digest` (sha256 of its bytes) goes into the calendar version."""

    origin: str
    digest: str
    source: str
    years: Mapping[int, YearOverride] = field(default_factory=dict)


_TOP_KEYS = frozenset({"source", "years"})
_YEAR_KEYS = frozenset({"year", "complete", "holidays", "working_days", "not_holidays", "source"})
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_override(data: bytes, origin: str = "<override>") -> CalendarOverride:
    """Parse and check an override file's bytes; every problem names its entry."""
    where = f"override file {origin}"
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise CalendarError(f"{where}: not UTF-8 ({exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise CalendarError(f"{where}: not valid TOML ({exc})") from exc

    _refuse_unknown_keys(document, _TOP_KEYS, where)
    source = document.get("source")
    if not isinstance(source, str) or not source.strip():
        raise CalendarError(
            f"{where}: 'source' must name the notice the schedule comes from "
            "(e.g. 国务院办公厅关于2027年部分节假日安排的通知)"
        )
    entries = document.get("years", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise CalendarError(f"{where}: 'years' must be an array of tables ([[years]])")

    years: dict[int, YearOverride] = {}
    for index, entry in enumerate(entries):
        year = entry.get("year")
        if type(year) is not int or not _MIN_YEAR <= year <= _MAX_YEAR:
            raise CalendarError(
                f"{where}: years[{index}]: 'year' must be an integer {_MIN_YEAR}–{_MAX_YEAR}, "
                f"got {year!r}"
            )
        entry_where = f"{where}: years[{index}] (year {year})"
        _refuse_unknown_keys(entry, _YEAR_KEYS, entry_where)
        if year in years:
            raise CalendarError(f"{entry_where}: year {year} is given twice")
        complete = entry.get("complete")
        if type(complete) is not bool:
            # Required rather than defaulted: whether the package's estimate for the year is
            # replaced or amended changes every deadline in it, so the author must say which.
            raise CalendarError(f"{entry_where}: 'complete' must be given as true or false")
        year_source = entry.get("source", source)
        if not isinstance(year_source, str) or not year_source.strip():
            raise CalendarError(f"{entry_where}: 'source' must be a non-empty string")

        off = _date_list(entry, "holidays", year, entry_where)
        working = _date_list(entry, "working_days", year, entry_where)
        not_off = _date_list(entry, "not_holidays", year, entry_where)
        for day in sorted(working):
            if day.weekday() < 5:
                raise CalendarError(
                    f"{entry_where}: working_days {day.isoformat()} is a {day:%A}; list only "
                    "weekend days declared working days (use not_holidays to cancel a holiday)"
                )
        for day in sorted(off & working):
            raise CalendarError(
                f"{entry_where}: {day.isoformat()} is in both holidays and working_days"
            )
        for day in sorted(off & not_off):
            raise CalendarError(
                f"{entry_where}: {day.isoformat()} is in both holidays and not_holidays"
            )
        if complete and not_off:
            raise CalendarError(
                f"{entry_where}: not_holidays is meaningless when complete = true (the package's "
                "days for the year are not used); leave the day out of holidays instead"
            )
        years[year] = YearOverride(
            year=year,
            complete=complete,
            holidays=off,
            working_days=working,
            not_holidays=not_off,
            source=year_source.strip(),
        )
    return CalendarOverride(
        origin=origin,
        digest=hashlib.sha256(data).hexdigest(),
        source=source.strip(),
        years=years,
    )


def _refuse_unknown_keys(table: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise CalendarError(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )


def _date_list(entry: Mapping[str, Any], key: str, year: int, where: str) -> frozenset[date]:
    raw = entry.get(key, [])
    if not isinstance(raw, list):
        raise CalendarError(f"{where}: '{key}' must be a list of dates")
    days: set[date] = set()
    for index, item in enumerate(raw):
        item_where = f"{where} {key}[{index}] {item!r}"
        if type(item) is date:  # a bare TOML date; datetime (a date subclass) is refused
            day = item
        elif isinstance(item, str) and _ISO_DATE.fullmatch(item):
            try:
                day = date.fromisoformat(item)
            except ValueError as exc:
                raise CalendarError(f"{item_where}: not a real date ({exc})") from exc
        else:
            raise CalendarError(f"{item_where}: not a date (write YYYY-MM-DD)")
        if day.year != year:
            # A notice can declare a late-December weekend of the previous year a working day;
            # such a day goes under its own year's entry so each year's data stays in one place.
            raise CalendarError(f"{item_where}: not in {year}; put it under its own year")
        if day in days:
            raise CalendarError(f"{item_where}: listed twice")
        days.add(day)
    return frozenset(days)


# --------------------------------------------------------------------------------------------
# The calendar


@dataclass(frozen=True)
class _YearDays:
    off_weekdays: frozenset[date]  # Monday–Friday dates that are not working days
    working_weekends: frozenset[date]  # Saturday/Sunday dates that are working days
    source: str


def _package_years() -> frozenset[int]:
    # The package computes festivals for any year up to 2100 but has the State Council's 调休
    # (swapped days) only for the years whose notice it encodes, in special_public_holidays.
    # A year without that entry is an estimate, so only those years count as known.
    specials = getattr(holidays.China(years=[]), "special_public_holidays", None)
    if not isinstance(specials, Mapping) or not specials:
        raise CalendarError(
            f"holidays {holidays.__version__}: China has no special_public_holidays table; "
            "this module cannot tell which years carry official schedules"
        )
    return frozenset(year for year in specials if isinstance(year, int))


class WorkingCalendar:
    """Working days and office hours in Asia/Shanghai.

    All datetimes must be timezone-aware; results are in Asia/Shanghai. Local arithmetic is
    wall-clock arithmetic, which equals elapsed time because Shanghai has kept UTC+8 without
    daylight saving since 1991, before any year with data.
    """

    version: str
    sources: tuple[str, ...]
    office_hours: OfficeHours

    def __init__(
        self,
        office_hours: OfficeHours | None = None,
        override: CalendarOverride | None = None,
        *,
        provisional: bool = False,
    ) -> None:
        self.office_hours = office_hours if office_hours is not None else OfficeHours()
        # With `provisional`, a year with no official schedule counts Monday–Friday as working
        # days and no holidays. The official schedule can move a due time either way: a public
        # holiday later, a weekend declared a working day (调休) earlier, so a provisional due
        # time is only an estimate until the schedule is loaded and it is planned again
        # (yuqing.replan). The years so served are kept, so the caller can say it is provisional.
        self.provisional = provisional
        self.provisional_years: set[int] = set()
        self._offsets = self.office_hours.offsets()
        self._close = self._offsets[-1][1]
        self._override = override
        self._package_years = _package_years()
        self._package_source = f"holidays-{holidays.__version__}"
        years: dict[int, YearOverride] = {}
        if override is not None:
            years = dict(override.years)
            for entry in years.values():
                if not entry.complete and entry.year not in self._package_years:
                    raise CalendarError(
                        f"override file {override.origin}: year {entry.year} amends a year "
                        f"{self._package_source} has no official schedule for; give the whole "
                        "schedule and set complete = true"
                    )
        self._year_overrides = years
        self._known = self._package_years | {y for y, e in years.items() if e.complete}
        self._cache: dict[int, _YearDays] = {}

        override_tag = override.digest[:12] if override is not None else "none"
        self.version = f"{self._package_source};override={override_tag};hours={self.office_hours}"
        package_span = f"{min(self._package_years)}–{max(self._package_years)}"
        sources = [f"{self._package_source}: China, official schedules {package_span}"]
        if override is not None:
            sources.append(
                f"override {override.origin} sha256={override.digest[:12]}: {override.source}"
                f" (years {', '.join(str(y) for y in sorted(years)) or 'none'})"
            )
        self.sources = tuple(sources)

    # ---- which years and days

    @property
    def covered_years(self) -> frozenset[int]:
        """Years with official data, from the package or a complete override entry."""
        return self._known

    def source_for(self, year: int) -> str:
        """Where the year's working days come from, for recording beside a deadline."""
        return self._year(year).source

    def is_working_day(self, day: date) -> bool:
        if isinstance(day, datetime):
            # The caller means the local date of that moment, which depends on its zone.
            day = self._local(day, "day").date()
        elif not isinstance(day, date):
            raise CalendarError(f"day must be a date, got {type(day).__name__}")
        days = self._year(day.year)
        if day.weekday() >= 5:
            return day in days.working_weekends
        return day not in days.off_weekdays

    def is_working_time(self, moment: datetime) -> bool:
        local = self._local(moment, "moment")
        if not self.is_working_day(local.date()):
            return False
        midnight = _midnight(local.date())
        return any(midnight + s <= local < midnight + e for s, e in self._offsets)

    # ---- arithmetic

    def add_working_hours(self, start: datetime, hours: float) -> datetime:
        """The instant at which `hours` of working time have passed since `start`.

        Precisely: the earliest u ≥ start with working_hours_between(start, u) == hours. So
        hours == 0 returns `start` itself (in Asia/Shanghai), even outside office hours, and
        a count that ends exactly at a period's close returns that close (Monday 18:00), not the
        next opening. This keeps add(add(t, a), b) == add(t, a + b) true for all a, b ≥ 0.
        """
        if isinstance(hours, bool) or not isinstance(hours, int | float):
            raise CalendarError(f"hours must be a number, got {type(hours).__name__}")
        if not math.isfinite(hours):
            raise CalendarError(f"hours must be finite, got {hours}")
        if hours < 0:
            raise CalendarError(f"hours must not be negative, got {hours}")
        try:
            # Converted once, to whole microseconds; everything after is exact integer arithmetic.
            amount = timedelta(hours=hours)
        except OverflowError as exc:
            raise CalendarError(f"hours {hours} is too large") from exc
        return self.add_working_time(start, amount)

    def add_working_time(self, start: datetime, amount: timedelta) -> datetime:
        """`add_working_hours` for an exact timedelta."""
        if not isinstance(amount, timedelta):
            raise CalendarError(f"amount must be a timedelta, got {type(amount).__name__}")
        if amount < timedelta():
            raise CalendarError(f"working time must not be negative, got {amount}")
        cursor = self._local(start, "start")
        day = cursor.date()
        self._year(day.year)  # refuse an unknown year even when nothing needs counting
        if not amount:
            return cursor
        remaining = amount
        daily = self.office_hours.daily_total()
        while True:
            if self.is_working_day(day):
                midnight = _midnight(day)
                if cursor <= midnight and remaining > daily:
                    remaining -= daily  # a whole day passes; no need to look at its periods
                else:
                    for s, e in self._offsets:
                        period_end = midnight + e
                        if period_end <= cursor:
                            continue
                        period_start = max(midnight + s, cursor)
                        available = period_end - period_start
                        if remaining <= available:
                            return period_start + remaining
                        remaining -= available
            day += _DAY

    def working_days_after(self, start: datetime, days: int) -> datetime:
        """Close of office hours on the `days`-th working day after start's local date."""
        if isinstance(days, bool) or not isinstance(days, int):
            raise CalendarError(f"days must be an integer, got {type(days).__name__}")
        if days < 1:
            raise CalendarError(f"days must be at least 1, got {days}")
        day = self._local(start, "start").date()
        counted = 0
        while counted < days:
            day += _DAY
            if self.is_working_day(day):
                counted += 1
        return _midnight(day) + self._close

    def working_hours_between(self, start: datetime, end: datetime) -> timedelta:
        """Working time in [start, end); negative when end is before start (lateness < 0)."""
        a = self._local(start, "start")
        b = self._local(end, "end")
        if b < a:
            return -self.working_hours_between(end, start)
        self._year(a.year)
        total = timedelta()
        if a == b:
            return total
        day = a.date()
        # The last day with any part of [a, b): an end at midnight does not touch its own date.
        last = (b - timedelta(microseconds=1)).date()
        while day <= last:
            if self.is_working_day(day):
                midnight = _midnight(day)
                for s, e in self._offsets:
                    lo = max(midnight + s, a)
                    hi = min(midnight + e, b)
                    if hi > lo:
                        total += hi - lo
            day += _DAY
        return total

    # ---- internals

    @staticmethod
    def _local(moment: datetime, what: str) -> datetime:
        if not isinstance(moment, datetime):
            raise CalendarError(f"{what} must be a datetime, got {type(moment).__name__}")
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise CalendarError(f"{what} must carry a time zone: {moment.isoformat()}")
        return moment.astimezone(SHANGHAI)

    def _year(self, year: int) -> _YearDays:
        cached = self._cache.get(year)
        if cached is not None:
            return cached
        if year not in self._known and self.provisional:
            self.provisional_years.add(year)
            return _YearDays(
                off_weekdays=frozenset(),
                working_weekends=frozenset(),
                source=f"provisional for {year}: Monday–Friday, no official schedule loaded",
            )
        if year not in self._known:
            raise CalendarError(
                f"no working-day data for {year}: add it to the override file "
                f"(official schedules known for {_span(self._known)})"
            )
        entry = self._year_overrides.get(year)
        if entry is not None and entry.complete:
            days = _YearDays(
                off_weekdays=frozenset(d for d in entry.holidays if d.weekday() < 5),
                working_weekends=entry.working_days,
                source=f"override sha256={self._override_digest()}: {entry.source}",
            )
        else:
            package = holidays.China(years=year)
            off: set[date] = {d for d in package if d.year == year}
            working = {d for d in package.weekend_workdays if d.year == year}
            source = self._package_source
            if entry is not None:
                # Explicit override lists win over the package, each for its own days.
                off -= entry.not_holidays
                off |= entry.holidays
                working |= entry.working_days
                off -= entry.working_days
                source += f" + override sha256={self._override_digest()}: {entry.source}"
            days = _YearDays(
                off_weekdays=frozenset(d for d in off if d.weekday() < 5),
                working_weekends=frozenset(d for d in working if d.weekday() >= 5),
                source=source,
            )
        self._cache[year] = days
        return days

    def _override_digest(self) -> str:
        return self._override.digest[:12] if self._override is not None else "none"


def _midnight(day: date) -> datetime:
    return datetime.combine(day, _MIDNIGHT, tzinfo=SHANGHAI)


def _span(years: Iterable[int]) -> str:
    ordered = sorted(years)
    runs: list[str] = []
    start = prev = ordered[0]
    for year in [*ordered[1:], None]:
        if year is not None and year == prev + 1:
            prev = year
            continue
        runs.append(str(start) if start == prev else f"{start}–{prev}")
        if year is not None:
            start = prev = year
    return ", ".join(runs)


def load_calendar(
    override_path: Path | None = None,
    office_hours: OfficeHours | None = None,
    *,
    provisional: bool = False,
) -> WorkingCalendar:
    """The calendar from the package, the optional override file and the office hours."""
    override = None
    if override_path is not None:
        try:
            data = Path(override_path).read_bytes()
        except OSError as exc:
            raise CalendarError(f"cannot read override file {override_path}: {exc}") from exc
        override = parse_override(data, str(override_path))
    return WorkingCalendar(office_hours=office_hours, override=override, provisional=provisional)
