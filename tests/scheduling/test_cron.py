"""Which instants are ticks, across daylight saving time changes (no servers needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from taskflow.scheduling.cron import CronError, CronSchedule
from tests.scheduling.conftest import at

NY = "America/New_York"


def ticks(schedule: CronSchedule, start: datetime, end: datetime) -> list[str]:
    """Every tick in (start, end], as local wall-clock text with the UTC offset."""
    found, t = [], start
    while (t := schedule.next_after(t)) <= end:
        found.append(t.astimezone(schedule.zone).strftime("%m-%d %H:%M%z"))
    return found


def test_a_fixed_time_in_the_spring_gap_fires_once_when_the_gap_ends() -> None:
    # 2024-03-10: New York clocks jump from 02:00 EST to 03:00 EDT; 02:30 never happens.
    daily = CronSchedule("30 2 * * *", NY)
    assert ticks(daily, at("2024-03-09 00:00", NY), at("2024-03-11 23:59", NY)) == [
        "03-09 02:30-0500",
        "03-10 03:00-0400",
        "03-11 02:30-0400",
    ]


def test_a_fixed_time_in_the_autumn_repeat_fires_at_its_first_occurrence_only() -> None:
    # 2024-11-03: clocks go back from 02:00 EDT to 01:00 EST; 01:30 happens twice.
    daily = CronSchedule("30 1 * * *", NY)
    assert ticks(daily, at("2024-11-02 00:00", NY), at("2024-11-04 23:59", NY)) == [
        "11-02 01:30-0400",
        "11-03 01:30-0400",
        "11-04 01:30-0500",
    ]


def test_every_quarter_hour_through_both_changes() -> None:
    quarter = CronSchedule("*/15 * * * *", NY)
    spring = ticks(quarter, at("2024-03-10 01:20", NY), at("2024-03-10 03:20", NY))
    # 02:00, 02:15, 02:30, 02:45 and 03:00 are one instant: the end of the gap.
    assert spring == [
        "03-10 01:30-0500",
        "03-10 01:45-0500",
        "03-10 03:00-0400",
        "03-10 03:15-0400",
    ]
    start = at("2024-11-03 00:50", NY)
    autumn = ticks(quarter, start, start + timedelta(hours=2, minutes=45))
    # Each wall-clock quarter of the repeated hour fires once, in its first pass.
    assert autumn == [
        "11-03 01:00-0400",
        "11-03 01:15-0400",
        "11-03 01:30-0400",
        "11-03 01:45-0400",
        "11-03 02:00-0500",
        "11-03 02:15-0500",
        "11-03 02:30-0500",
    ]


def test_the_latest_tick_during_the_second_pass_of_a_repeated_hour() -> None:
    quarter = CronSchedule("*/15 * * * *", NY)
    second_pass = datetime(2024, 11, 3, 6, 40, tzinfo=UTC)  # 01:40 EST
    latest = quarter.latest_at_or_before(second_pass)
    assert latest == datetime(2024, 11, 3, 5, 45, tzinfo=UTC)  # 01:45 EDT, an hour earlier
    assert quarter.next_after(second_pass) == datetime(2024, 11, 3, 7, 0, tzinfo=UTC)
    gap_end = datetime(2024, 3, 10, 7, 0, tzinfo=UTC)  # 03:00 EDT
    assert quarter.latest_at_or_before(gap_end) == gap_end
    assert quarter.latest_at_or_before(gap_end - timedelta(seconds=1)) == datetime(
        2024, 3, 10, 6, 45, tzinfo=UTC
    )


def test_utc_schedules_ignore_daylight_saving() -> None:
    hourly = CronSchedule("0 * * * *")
    start = datetime(2024, 3, 10, 5, 30, tzinfo=UTC)
    assert [hourly.next_after(start + timedelta(hours=h)).hour for h in range(4)] == [6, 7, 8, 9]


def test_a_zone_whose_gap_skips_a_whole_day() -> None:
    # Samoa skipped 2011-12-30 entirely when it crossed the date line.
    noon = CronSchedule("0 12 * * *", "Pacific/Apia")
    got = ticks(
        noon, at("2011-12-29 13:00", "Pacific/Apia"), at("2011-12-31 13:00", "Pacific/Apia")
    )
    assert got == ["12-31 00:00+1400", "12-31 12:00+1400"]


@pytest.mark.parametrize(
    ("expression", "normalized"),
    [
        ("@hourly", "0 * * * *"),
        ("@DAILY", "0 0 * * *"),
        ("  0   3 * *   MON-FRI ", "0 3 * * MON-FRI"),
        ("0 0 L * *", "0 0 L * *"),
    ],
)
def test_accepted_expressions(expression: str, normalized: str) -> None:
    assert CronSchedule(expression).expression == normalized


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("", "is empty"),
        ("61 * * * *", "the minute field '61': 61 is out of range 0-59"),
        ("0 24 * * *", "the hour field '24': 24 is out of range 0-23"),
        ("0 0 0 * *", "the day-of-month field '0': 0 is out of range 1-31"),
        ("0 0 * 13 *", "the month field '13': 13 is out of range 1-12"),
        ("0 0 * * 8", "the day-of-week field '8': 8 is out of range 0-7"),
        ("*/0 * * * *", "step '0' is not a positive number"),
        ("* * * * * *", "has 6 fields; give exactly five"),
        ("* * *", "has 3 fields"),
        ("H * * * *", "uses H or R"),
        ("@every 5m", "unknown macro"),
        ("0 0 30 2 *", "never matches a date"),
        ("x y z w v", "not acceptable"),
    ],
)
def test_rejected_expressions(expression: str, problem: str) -> None:
    with pytest.raises(CronError, match=problem.replace("*", r"\*")):
        CronSchedule(expression)


@pytest.mark.parametrize("zone", ["Mars/Base", "", "../../etc/passwd", "/etc/localtime", "a\x00b"])
def test_rejected_time_zones(zone: str) -> None:
    with pytest.raises(CronError, match="is not a known time zone"):
        CronSchedule("* * * * *", zone)
