"""Calendar arithmetic and ``occurs`` windows, one implementation for Python and kernels.

Every function here is compiled with Numba and callable from Python as well: the binder calls
them once per run for windows anchored on ``now``, a period or a literal, and generated
kernels call them per event for windows anchored on another event or an attribute. So the
exact semantics of docs/language.md ("Time") exist once.

An ``occurs`` condition becomes a union of at most three closed intervals of milliseconds
``[lo0, hi0] ∪ [lo1, hi1] ∪ [lo2, hi2]`` (empty intervals have lo > hi): time is integral
milliseconds, so a strict bound ``t < b`` is ``t <= b - 1``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numba

__all__ = [
    "DAY_MS",
    "EMPTY",
    "FOREVER_HI",
    "FOREVER_LO",
    "OPS",
    "UNITS",
    "add_units",
    "between_window",
    "civil_from_days",
    "days_from_civil",
    "in_window",
    "on_window",
    "period_bounds",
    "side_window",
    "window",
]

DAY_MS = 86_400_000
FOREVER_LO = -(2**62)  # "no lower bound", far from overflow when offsets are added
FOREVER_HI = 2**62
EMPTY = (1, 0)

# Small integer codes, so generated code passes constants the compiler folds.
OPS = {"<": 0, "<=": 1, ">": 2, ">=": 3, "=": 4, "!=": 5}
UNITS = {
    "millisecond": 1,
    "second": 1_000,
    "minute": 60_000,
    "hour": 3_600_000,
    "day": DAY_MS,
    "week": 7 * DAY_MS,
    "month": -1,  # calendar units are negative: months to add per unit
    "year": -12,
}
BEFORE, AFTER, FROM = 0, 1, 2
DIRECTIONS = {"before": BEFORE, "after": AFTER, "from": FROM}

# Called from Python at bind time, and from kernels for references that vary per event.
# Not inlined into kernels: that made a kernel with one calendar window take 25 s to compile.
_jit = numba.njit(cache=True)


@_jit
def days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = y // 400  # floor division (Hinnant's C adjusts truncation; // floors already)
    yoe = y - era * 400
    mp = (m + 9) % 12
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


@_jit
def civil_from_days(z: int) -> tuple[int, int, int]:
    """(year, month, day) of a day number (days since 1970-01-01)."""
    z += 719_468
    era = z // 146_097  # floor division, as above
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146_096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return y + (m <= 2), m, d


@_jit
def _days_in_month(y: int, m: int) -> int:
    if m == 2:
        leap = (y % 4 == 0 and y % 100 != 0) or y % 400 == 0
        return 29 if leap else 28
    return 30 if m in (4, 6, 9, 11) else 31


@_jit
def add_units(ms: int, k: int, unit: int) -> int:
    """``ms`` plus ``k`` units in one step; months and years keep the time of day and clamp
    the day to the month's last (March 31 - 1 month = February 29 in 2024)."""
    if unit > 0:
        return ms + k * unit
    days = ms // DAY_MS
    time_of_day = ms - days * DAY_MS
    y, m, d = civil_from_days(days)
    months = y * 12 + (m - 1) + k * (-unit)
    y2 = months // 12
    m2 = months - y2 * 12 + 1
    d2 = min(d, _days_in_month(y2, m2))
    return days_from_civil(y2, m2, d2) * DAY_MS + time_of_day


@_jit
def _row(op: int, n: int, unit: int, a: int, before: bool) -> tuple[int, int, int, int]:
    """One direction's rows of the doc's table: up to two intervals (lo, hi, lo2, hi2)."""
    if before:  # t <= a, distance a - t
        near = add_units(a, -n, unit)
        far = add_units(a, -(n + 1), unit)
        if op == 0:  # < N: a - N u < t <= a
            return near + 1, a, 1, 0
        if op == 1:
            return near, a, 1, 0
        if op == 2:  # > N: t < a - N u
            return FOREVER_LO, near - 1, 1, 0
        if op == 3:
            return FOREVER_LO, near, 1, 0
        if op == 4:  # = N: a - (N+1) u < t <= a - N u
            return far + 1, near, 1, 0
        return FOREVER_LO, far, near + 1, a  # != N: on the side, outside the bucket
    near = add_units(a, n, unit)  # t >= a, distance t - a
    far = add_units(a, n + 1, unit)
    if op == 0:
        return a, near - 1, 1, 0
    if op == 1:
        return a, near, 1, 0
    if op == 2:
        return near + 1, FOREVER_HI, 1, 0
    if op == 3:
        return near, FOREVER_HI, 1, 0
    if op == 4:
        return near, far - 1, 1, 0
    return a, near - 1, far, FOREVER_HI


@_jit
def _zero_satisfies(op: int, n: int) -> bool:
    if op == 0:
        return n > 0
    if op == 1:
        return True
    if op == 2:
        return False
    if op == 3:
        return n == 0
    if op == 4:
        return n == 0
    return n != 0


@_jit
def window(
    op: int, n: int, unit: int, direction: int, s: int, e: int, instant: bool
) -> tuple[int, int, int, int, int, int, int, int, int, int]:
    """Form 1, ``occurs OP N UNIT DIR R``, as five intervals of t (lo, hi pairs; unused ones
    empty). The reference ``R`` is an instant ``s`` (``instant``) or a day or period
    ``[s, e)``. ``before`` and ``after`` use the first two; ``from`` all five: the before row
    at ``s``, the after row at ``e``, and the inside ``(s, e)`` when a distance of 0
    satisfies ``OP N``."""
    end = s if instant else e
    if direction == BEFORE:
        lo0, hi0, lo1, hi1 = _row(op, n, unit, s, True)
        return lo0, hi0, lo1, hi1, 1, 0, 1, 0, 1, 0
    if direction == AFTER:
        lo0, hi0, lo1, hi1 = _row(op, n, unit, end, False)
        return lo0, hi0, lo1, hi1, 1, 0, 1, 0, 1, 0
    blo, bhi, blo2, bhi2 = _row(op, n, unit, s, True)
    alo, ahi, alo2, ahi2 = _row(op, n, unit, end, False)
    ilo, ihi = 1, 0
    if not instant and _zero_satisfies(op, n):
        ilo, ihi = s + 1, e - 1
    return blo, bhi, blo2, bhi2, alo, ahi, alo2, ahi2, ilo, ihi


@_jit
def side_window(
    after: bool, s: int, e: int, instant: bool
) -> tuple[int, int, int, int, int, int, int, int, int, int]:
    """Form 2: ``before R`` is t < r (t < s); ``after R`` is t > r (t >= e)."""
    if not after:
        return FOREVER_LO, s - 1, 1, 0, 1, 0, 1, 0, 1, 0
    return (s + 1 if instant else e), FOREVER_HI, 1, 0, 1, 0, 1, 0, 1, 0


@_jit
def on_window(s: int, e: int, instant: bool) -> tuple[int, int, int, int, int, int, int, int,
                                                         int, int]:
    """Form 3: the same millisecond as an instant, or inside a day or period."""
    return s, (s if instant else e - 1), 1, 0, 1, 0, 1, 0, 1, 0


@_jit
def between_window(
    s1: int, e1: int, instant1: bool, s2: int, e2: int, instant2: bool
) -> tuple[int, int, int, int, int, int, int, int, int, int]:
    """Form 4, inclusive: t >= r1 (or s1) and t <= r2 (or t < e2)."""
    return s1, (s2 if instant2 else e2 - 1), 1, 0, 1, 0, 1, 0, 1, 0


@_jit
def in_window(t: int, w: Any, pieces: int) -> bool:
    """Whether ``t`` lies in one of the first ``pieces`` intervals of ``w``."""
    for k in range(pieces):
        if w[2 * k] <= t <= w[2 * k + 1]:
            return True
    return False


def period_bounds(offset: int, unit: str, now_ms: int) -> tuple[int, int]:
    """``[s, e)`` in ms of ``this``/``last``/``next`` UNIT (offset 0/-1/+1) around ``now``."""
    if unit == "week":
        days = now_ms // DAY_MS
        monday = days - (days + 3) % 7  # 1970-01-01 was a Thursday
        start = (monday + 7 * offset) * DAY_MS
        return start, start + 7 * DAY_MS
    if unit in ("month", "year"):
        y, m, _ = civil_from_days(now_ms // DAY_MS)
        if unit == "year":
            first = days_from_civil(y + offset, 1, 1)
            return first * DAY_MS, days_from_civil(y + offset + 1, 1, 1) * DAY_MS
        months = y * 12 + (m - 1) + offset
        y2, m2 = months // 12, months % 12 + 1
        start = days_from_civil(y2, m2, 1) * DAY_MS
        return start, add_units(start, 1, UNITS["month"])
    size = UNITS[unit]
    start = (now_ms // size + offset) * size
    return start, start + size


def day_number(y: Any, m: Any, d: Any) -> int | None:
    """Days since the epoch of ``date(y, m, d)`` with int arguments, if such a day exists
    (and its year is within ±10,000,000, where days and milliseconds cannot overflow)."""
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in (y, m, d)):
        return None
    if not (1 <= m <= 12 and 1 <= d <= 31 and -(10**7) <= y <= 10**7):
        return None
    day = int(days_from_civil(y, m, d))
    return day if civil_from_days(day) == (y, m, d) else None


def to_datetime(ms: int) -> dt.datetime:
    """For messages and tests: an instant as an aware UTC datetime."""
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=ms)

