"""Cron expressions in a time zone: which instants are ticks.

A tick is a wall-clock time of the zone that the 5-field expression matches. Daylight saving
time makes some wall-clock times happen twice and some never; each matching wall-clock time
still fires exactly once:

* a time that repeats (autumn: clocks go back) fires at its first occurrence, the earlier of
  the two instants, and not again when the wall clock passes it a second time;
* a time that does not exist (spring: clocks go forward) fires at the instant the gap ends
  (02:30 on the night the clocks jump from 02:00 to 03:00 fires at 03:00). Several matching
  times inside one gap are one instant, so they fire once together.

This is the ISC (Vixie) cron rule for fixed times, applied to every expression. A schedule
that must run every N minutes of elapsed time through the change should use the zone ``UTC``.

Expressions are the five standard fields (minute hour day-of-month month day-of-week, names
such as ``MON`` or ``JAN`` allowed, day-of-month and day-of-week matched with OR as cron
does) or one of ``@yearly @annually @monthly @weekly @daily @midnight @hourly``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MAX_EXPRESSION_LENGTH = 200
MAX_TIMEZONE_LENGTH = 100
#: Hashed (``H``) and random (``R``) fields of some cron dialects: not standard cron.
_NONSTANDARD = re.compile(r"(^|[^A-Z])[HR]($|[^A-Z])", re.IGNORECASE)
_ONE_SECOND = timedelta(seconds=1)
_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day-of-month", 1, 31),
    ("month", 1, 12),
    ("day-of-week", 0, 7),
)


class CronError(ValueError):
    """An expression or a time zone that cannot be used; the message says why."""


def parse_timezone(name: str) -> ZoneInfo:
    """The IANA zone called ``name`` (``Europe/Paris``, ``UTC``), or ``CronError``."""
    if not name or len(name) > MAX_TIMEZONE_LENGTH or name.startswith(("/", ".")) or ".." in name:
        raise CronError(f"{name!r} is not a known time zone")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise CronError(
            f"{name!r} is not a known time zone (use an IANA name such as 'Europe/Paris' or 'UTC')"
        ) from None


def normalize_expression(text: str) -> str:
    """The five fields of ``text`` separated by single spaces (macros expanded)."""
    stripped = " ".join(text.split())
    if not stripped:
        raise CronError("is empty; give five fields: minute hour day-of-month month day-of-week")
    if len(stripped) > MAX_EXPRESSION_LENGTH:
        raise CronError(f"is longer than {MAX_EXPRESSION_LENGTH} characters")
    if stripped.startswith("@"):
        expanded = MACROS.get(stripped.lower())
        if expanded is None:
            raise CronError(f"unknown macro {stripped!r}; one of {', '.join(MACROS)}")
        return expanded
    fields = stripped.split(" ")
    if len(fields) != 5:
        raise CronError(
            f"has {len(fields)} fields; give exactly five: "
            "minute hour day-of-month month day-of-week"
        )
    for (name, low, high), field in zip(_FIELDS, fields, strict=True):
        if _NONSTANDARD.search(field):
            raise CronError(f"the {name} field {field!r} uses H or R, which standard cron lacks")
        for part in field.split(","):
            base, _, step = part.partition("/")
            for number in re.findall(r"\d+", base):
                if not low <= int(number) <= high:
                    raise CronError(
                        f"the {name} field {field!r}: {number} is out of range {low}-{high}"
                    )
            if step and (not step.isdigit() or int(step) == 0):
                raise CronError(
                    f"the {name} field {field!r}: step {step!r} is not a positive number"
                )
    return stripped


class CronSchedule:
    """The ticks of one expression in one time zone."""

    def __init__(self, expression: str, timezone: str = "UTC") -> None:
        self.expression = normalize_expression(expression)
        self.timezone = timezone
        self.zone = parse_timezone(timezone)
        try:
            croniter(self.expression, datetime(2000, 1, 1))
        except CroniterError as exc:
            raise CronError(_croniter_problem(exc)) from None
        try:
            croniter(self.expression, datetime(2000, 1, 1)).get_next(datetime)
        except CroniterBadDateError:
            raise CronError("never matches a date (for example February 30)") from None

    def __repr__(self) -> str:
        return f"CronSchedule({self.expression!r}, {self.timezone!r})"

    # -- wall-clock time <-> instants ---------------------------------------------------------

    def _wall(self, instant: datetime) -> datetime:
        """The naive wall-clock time of ``instant`` in the zone, to the second."""
        return instant.astimezone(self.zone).replace(tzinfo=None, fold=0, microsecond=0)

    def resolve(self, wall: datetime) -> datetime:
        """The instant (UTC) at which the wall-clock time ``wall`` fires."""
        first = wall.replace(tzinfo=self.zone, fold=0)
        instant = first.astimezone(UTC)
        if instant.astimezone(self.zone).replace(tzinfo=None) == wall:
            return instant  # exists; for a repeated time, fold 0 is its first occurrence
        # In a gap: fold 0 reads it with the offset before the change (an instant after the
        # change), fold 1 with the offset after (an instant before it). The change lies
        # between; find it to the second.
        low = wall.replace(tzinfo=self.zone, fold=1).astimezone(UTC)
        high = instant
        after = high.astimezone(self.zone).utcoffset()
        while high - low > _ONE_SECOND:
            middle = low + (high - low) / 2
            if middle.astimezone(self.zone).utcoffset() == after:
                high = middle
            else:
                low = middle
        return high.replace(microsecond=0)

    # -- ticks --------------------------------------------------------------------------------

    def next_after(self, instant: datetime) -> datetime:
        """The first tick strictly after ``instant`` (an aware datetime)."""
        walls = croniter(self.expression, self._wall(instant))
        while True:
            tick = self.resolve(walls.get_next(datetime))
            if tick > instant:
                return tick

    def latest_at_or_before(self, instant: datetime) -> datetime:
        """The last tick at or before ``instant``."""
        local = instant.astimezone(self.zone)
        start = local.replace(tzinfo=None, fold=0, microsecond=0)
        if local.fold:
            # The second pass through a repeated hour: later wall-clock times of that hour
            # already fired (at their first occurrence), before ``instant``.
            first = local.replace(fold=0).utcoffset()
            second = local.utcoffset()
            if first is not None and second is not None and first > second:
                start += first - second
        walls = croniter(self.expression, start + _ONE_SECOND)
        while True:
            tick = self.resolve(walls.get_prev(datetime))
            if tick <= instant:
                return tick


def _croniter_problem(exc: CroniterError) -> str:
    text = str(exc)
    # croniter quotes the expression in brackets first; the caller names it already.
    text = re.sub(r"^\[[^\]]*\]\s*", "", text)
    return text or type(exc).__name__
