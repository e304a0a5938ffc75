"""Days past due in the borrower's IANA zone, DPD start instants, buckets, months, the case clock."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.dates import (
    DAY,
    CaseClock,
    add_months,
    bucket,
    days_past_due,
    dpd_start,
    end_of_day_plus,
    local_date,
    local_midnight,
    zone,
)
from domain.errors import InvalidInput

UTC = UTC
US = timedelta(microseconds=1)
NY = "America/New_York"
SH = "Asia/Shanghai"
# Zones with DST, with transitions at midnight (Havana, Santiago, historic Sao Paulo), half-hour
# offsets (Tehran, Kolkata, Adelaide), southern hemisphere and none at all.
ZONES = [
    SH,
    NY,
    "Europe/London",
    "Europe/Berlin",
    "Australia/Sydney",
    "Australia/Adelaide",
    "America/Santiago",
    "America/Havana",
    "America/Sao_Paulo",
    "Asia/Tehran",
    "Asia/Kolkata",
    "Pacific/Auckland",
    "UTC",
    "America/Los_Angeles",
    "Asia/Tokyo",
    "Africa/Cairo",
    "Asia/Kathmandu",
]


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


# ---------------------------------------------------------------- zone


def test_zone_known_and_unknown():
    assert zone(SH) == ZoneInfo(SH)
    with pytest.raises(InvalidInput) as exc:
        zone("Mars/Olympus_Mons")
    assert exc.value.field == "timezone"
    assert "unknown IANA time zone" in exc.value.reason
    with pytest.raises(InvalidInput) as exc2:
        zone("", "borrower.timezone")
    assert exc2.value.field == "borrower.timezone"


# ---------------------------------------------------------------- days past due


def test_dpd_turns_at_local_midnight_in_shanghai():
    due = date(2026, 3, 1)
    # 2 March 00:00 in Shanghai is 1 March 16:00 UTC.
    assert days_past_due(due, SH, utc(2026, 3, 1, 15, 59, 59)) == 0
    assert days_past_due(due, SH, utc(2026, 3, 1, 16, 0)) == 1
    assert days_past_due(due, SH, utc(2026, 2, 28, 16, 0)) == 0  # on the due date
    assert days_past_due(due, SH, utc(2026, 2, 28, 15, 59)) == -1  # before it
    assert days_past_due(due, SH, utc(2026, 5, 30, 16, 0)) == 91


def test_dpd_depends_on_the_borrowers_zone():
    due, now = date(2026, 3, 1), utc(2026, 3, 2, 2, 0)  # 10:00 in Shanghai, 21:00 on 1 March in New York
    assert days_past_due(due, SH, now) == 1
    assert days_past_due(due, NY, now) == 0
    assert local_date(now, SH) == date(2026, 3, 2)
    assert local_date(now, NY) == date(2026, 3, 1)


def test_dpd_start_instants():
    assert dpd_start(date(2026, 3, 1), SH, 1) == utc(2026, 3, 1, 16, 0)
    assert dpd_start(date(2026, 3, 1), SH, 0) == utc(2026, 2, 28, 16, 0)
    assert dpd_start(date(2026, 3, 1), SH, 30) == utc(2026, 3, 30, 16, 0)
    assert local_midnight(date(2026, 3, 2), SH) == utc(2026, 3, 1, 16, 0)
    assert local_midnight(date(2026, 3, 2), SH).tzinfo == UTC


def test_dpd_start_across_spring_forward_in_new_york():
    # DST starts in New York on Sunday 8 March 2026 at 02:00 (EST -5 -> EDT -4).
    due = date(2026, 3, 7)
    d1, d2 = dpd_start(due, NY, 1), dpd_start(due, NY, 2)
    assert d1 == utc(2026, 3, 8, 5, 0)  # midnight EST
    assert d2 == utc(2026, 3, 9, 4, 0)  # midnight EDT
    assert d2 - d1 == timedelta(hours=23)
    assert days_past_due(due, NY, d2 - US) == 1
    assert days_past_due(due, NY, d2) == 2


def test_dpd_start_across_fall_back_in_new_york():
    # DST ends in New York on Sunday 1 November 2026 at 02:00 (EDT -4 -> EST -5).
    due = date(2026, 10, 31)
    d1, d2 = dpd_start(due, NY, 1), dpd_start(due, NY, 2)
    assert d1 == utc(2026, 11, 1, 4, 0)
    assert d2 == utc(2026, 11, 2, 5, 0)
    assert d2 - d1 == timedelta(hours=25)
    assert days_past_due(due, NY, utc(2026, 11, 1, 6, 30)) == 1  # 01:30 EDT, first pass
    assert days_past_due(due, NY, utc(2026, 11, 2, 4, 59)) == 1  # 23:59 EST on 1 November


def test_dpd_start_where_midnight_does_not_exist():
    # Havana springs forward at midnight: 8 March 2026 begins at 01:00 CDT (= 05:00 UTC).
    due = date(2026, 3, 7)
    start = dpd_start(due, "America/Havana", 1)
    assert start == utc(2026, 3, 8, 5, 0)
    assert start.astimezone(ZoneInfo("America/Havana")).hour == 1
    assert days_past_due(due, "America/Havana", start) == 1
    assert days_past_due(due, "America/Havana", start - US) == 0


@settings(max_examples=400, deadline=None)
@given(
    tz=st.sampled_from(ZONES),
    due=st.dates(min_value=date(2000, 1, 1), max_value=date(2037, 12, 31)),
    dpd=st.integers(min_value=-30, max_value=800),
)
def test_dpd_start_is_the_first_instant_of_that_dpd(tz, due, dpd):
    start = dpd_start(due, tz, dpd)
    assert start.tzinfo is not None
    assert days_past_due(due, tz, start) == dpd
    assert days_past_due(due, tz, start - US) == dpd - 1
    # A day lasts between 22 and 26 hours anywhere DST moves clocks.
    nxt = dpd_start(due, tz, dpd + 1)
    assert timedelta(hours=22) <= nxt - start <= timedelta(hours=26)


@settings(max_examples=300, deadline=None)
@given(
    tz=st.sampled_from(ZONES),
    due=st.dates(min_value=date(2000, 1, 1), max_value=date(2037, 12, 31)),
    now=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2038, 1, 1), timezones=st.just(UTC)),
)
def test_dpd_is_the_calendar_distance_in_the_borrowers_zone(tz, due, now):
    assert days_past_due(due, tz, now) == (now.astimezone(ZoneInfo(tz)).date() - due).days


# ---------------------------------------------------------------- buckets


@pytest.mark.parametrize(
    ("dpd", "name"),
    [
        (-5, "current"),
        (0, "current"),
        (1, "M1"),
        (15, "M1"),
        (30, "M1"),
        (31, "M2"),
        (60, "M2"),
        (61, "M3"),
        (90, "M3"),
        (91, "M3+"),
        (365, "M3+"),
        (5000, "M3+"),
    ],
)
def test_bucket_edges(dpd, name):
    assert bucket(dpd) == name


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=-100, max_value=5000))
def test_bucket_is_monotone(dpd):
    order = ["current", "M1", "M2", "M3", "M3+"]
    assert order.index(bucket(dpd)) <= order.index(bucket(dpd + 1))


# ---------------------------------------------------------------- months


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2026, 1, 31), 1, date(2026, 2, 28)),
        (date(2028, 1, 31), 1, date(2028, 2, 29)),  # leap year
        (date(2026, 3, 31), 1, date(2026, 4, 30)),
        (date(2026, 1, 31), 2, date(2026, 3, 31)),  # from the original day: no drift
        (date(2026, 12, 15), 1, date(2027, 1, 15)),
        (date(2026, 11, 30), 3, date(2027, 2, 28)),
        (date(2026, 5, 10), 12, date(2027, 5, 10)),
        (date(2026, 5, 10), 60, date(2031, 5, 10)),
        (date(2026, 5, 10), 0, date(2026, 5, 10)),
        (date(2028, 3, 31), -1, date(2028, 2, 29)),
        (date(2026, 1, 15), -1, date(2025, 12, 15)),
        (date(2024, 2, 29), 12, date(2025, 2, 28)),
    ],
)
def test_add_months_clamps_to_month_end(day, months, expected):
    assert add_months(day, months) == expected


@settings(max_examples=300, deadline=None)
@given(day=st.dates(min_value=date(1990, 1, 1), max_value=date(2090, 12, 31)), months=st.integers(min_value=-120, max_value=120))
def test_add_months_properties(day, months):
    out = add_months(day, months)
    assert (out.year * 12 + out.month) - (day.year * 12 + day.month) == months
    assert out.day <= day.day
    if day.day <= 28:
        assert out.day == day.day
    else:  # clamped only when the month is shorter
        assert out.day == day.day or (out + timedelta(days=1)).month != out.month


def test_end_of_day_plus():
    assert end_of_day_plus(date(2026, 3, 10), SH, 0) == utc(2026, 3, 10, 16, 0)
    assert end_of_day_plus(date(2026, 3, 10), SH, 3) == utc(2026, 3, 13, 16, 0)
    # New York, DST begins within the grace: still local midnight.
    assert end_of_day_plus(date(2026, 3, 6), NY, 3) == utc(2026, 3, 10, 4, 0)


# ---------------------------------------------------------------- the case clock


def test_calendar_clock_follows_the_borrowers_calendar():
    opened = utc(2026, 3, 20, 3, 0)
    clock = CaseClock(date(2026, 3, 1), SH, DAY, opened, 19)
    assert clock.real_calendar
    assert clock.dpd(opened) == days_past_due(date(2026, 3, 1), SH, opened) == 19
    for dpd in (0, 1, 30, 90, 720):
        assert clock.dpd_instant(dpd) == dpd_start(date(2026, 3, 1), SH, dpd)
        assert clock.dpd(clock.dpd_instant(dpd)) == dpd
    assert clock.days(2) == timedelta(days=2)
    assert clock.today(utc(2026, 3, 20, 16, 30)) == date(2026, 3, 21)


def test_calendar_clock_in_new_york_across_dst():
    clock = CaseClock(date(2026, 3, 1), NY, DAY, utc(2026, 3, 2, 12), 1)
    assert clock.dpd_instant(7) == utc(2026, 3, 8, 5, 0)
    assert clock.dpd_instant(8) == utc(2026, 3, 9, 4, 0)
    assert clock.dpd(utc(2026, 3, 9, 3, 59)) == 7
    assert clock.dpd(utc(2026, 3, 9, 4, 0)) == 8


def test_date_deadline_is_local_midnight_after_the_grace():
    clock = CaseClock(date(2026, 3, 1), SH, DAY, utc(2026, 3, 2, 12), 1)
    # Promise for 10 March with 3 days of grace: paid any time on 13 March (Shanghai) is in time.
    assert clock.date_deadline(date(2026, 3, 10), 3) == utc(2026, 3, 13, 16, 0)
    assert clock.date_deadline(date(2026, 3, 10), 0) == utc(2026, 3, 10, 16, 0)


@pytest.mark.parametrize(
    ("day", "grace", "deadline"),
    [
        (date(2026, 3, 6), 3, utc(2026, 3, 10, 4, 0)),  # spring forward inside the grace: midnight EDT
        (date(2026, 10, 30), 3, utc(2026, 11, 3, 5, 0)),  # fall back inside the grace: midnight EST
        (date(2026, 3, 7), 0, utc(2026, 3, 8, 5, 0)),
    ],
)
def test_date_deadline_across_dst_is_still_local_midnight(day, grace, deadline):
    clock = CaseClock(date(2026, 2, 1), NY, DAY, utc(2026, 2, 3, 12), 1)
    got = clock.date_deadline(day, grace)
    assert got == deadline
    local = got.astimezone(ZoneInfo(NY))
    assert (local.hour, local.minute) == (0, 0)
    assert local.date() == day + timedelta(days=1 + grace)


@settings(max_examples=300, deadline=None)
@given(
    tz=st.sampled_from(ZONES),
    day=st.dates(min_value=date(2000, 1, 1), max_value=date(2037, 12, 31)),
    grace=st.integers(min_value=0, max_value=60),
)
def test_date_deadline_on_the_calendar_is_the_start_of_the_day_after_the_grace(tz, day, grace):
    clock = CaseClock(day, tz, DAY, utc(2030, 1, 1), 0)
    deadline = clock.date_deadline(day, grace)
    assert deadline == dpd_start(day, tz, 1 + grace)
    assert local_date(deadline, tz) == day + timedelta(days=1 + grace)
    assert local_date(deadline - US, tz) == day + timedelta(days=grace)


def test_compressed_clock_counts_days_from_opening():
    opened = utc(2026, 6, 1, 8, 0)
    clock = CaseClock(date(2026, 5, 29), SH, 6, opened, 3)
    assert not clock.real_calendar
    assert clock.dpd(opened) == 3
    assert clock.dpd(opened + timedelta(seconds=5.999)) == 3
    assert clock.dpd(opened + timedelta(seconds=6)) == 4
    assert clock.dpd(opened + timedelta(minutes=12)) == 3 + 120
    assert clock.dpd(opened - timedelta(seconds=1)) == 2
    assert clock.dpd_instant(10) == opened + timedelta(seconds=42)
    assert clock.dpd_instant(3) == opened
    assert clock.dpd_instant(1) == opened - timedelta(seconds=12)
    assert clock.days(2.5) == timedelta(seconds=15)
    # Dates typed by people stay calendar dates; the grace is compressed days.
    assert clock.date_deadline(date(2026, 6, 1), 3) == utc(2026, 6, 1, 16, 0) + timedelta(seconds=18)


@settings(max_examples=300, deadline=None)
@given(
    day_seconds=st.integers(min_value=1, max_value=DAY - 1),
    opened_dpd=st.integers(min_value=-10, max_value=400),
    dpd=st.integers(min_value=-10, max_value=800),
    opened=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)),
)
def test_compressed_clock_round_trips(day_seconds, opened_dpd, dpd, opened):
    clock = CaseClock(date(2020, 1, 1), SH, day_seconds, opened, opened_dpd)
    at = clock.dpd_instant(dpd)
    assert clock.dpd(at) == dpd
    assert clock.dpd(at - US) == dpd - 1
    assert clock.dpd_instant(dpd + 1) - at == timedelta(seconds=day_seconds)


@pytest.mark.parametrize(
    "name",
    [
        "Asia",
        "America/",
        "localtime",
        "Factory",
        "posixrules",
        "asia/shanghai",
        " Asia/Shanghai",
        "Asia/Shanghai\n",
        "../../etc/passwd",
        "Asia/Shanghai" * 10000,
    ],
)
def test_zone_refuses_folders_non_places_and_near_misses(name):
    # `Asia` is a folder of tzdata: ZoneInfo raised IsADirectoryError, which the API answered with a 500
    with pytest.raises(InvalidInput) as exc:
        zone(name, "borrower.timezone")
    assert exc.value.field == "borrower.timezone"
    assert "unknown IANA time zone" in exc.value.reason
    assert len(exc.value.reason) < 200  # a long input is not echoed whole
