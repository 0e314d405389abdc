"""engine.timeops (the compiled time semantics) against the reference evaluator's reading of
docs/language.md "Time": windows of every form, periods, calendar arithmetic."""

from __future__ import annotations

import datetime as dt

from hypothesis import example, given
from hypothesis import strategies as st

from engine import ir
from engine.timeops import (
    DAY_MS,
    DIRECTIONS,
    OPS,
    UNITS,
    add_units,
    between_window,
    civil_from_days,
    days_from_civil,
    on_window,
    period_bounds,
    side_window,
    window,
)
from tests import reference as R

NOW = 1_711_897_200_000  # 2024-03-31T15:00:00Z, the doc's worked examples


def inside(w: tuple[int, ...], t: int) -> bool:
    return any(w[2 * k] <= t <= w[2 * k + 1] for k in range(5))


references = st.one_of(
    st.integers(NOW - 10**11, NOW + 10**11).map(lambda r: R._Ref(True, r, r)),
    st.tuples(st.integers(-400, 400), st.sampled_from([1, 7, 28, 29, 30, 31, 365])).map(
        lambda d: R._Ref(False, (NOW // DAY_MS + d[0]) * DAY_MS, (NOW // DAY_MS + d[0] + d[1]) * DAY_MS)
    ),
)


def probes(ref: R._Ref, n: int, unit: ir.TimeUnit) -> list[int]:
    """Instants at and around every bound the window can have."""
    bases = [ref.s, ref.e]
    for k in (n, n + 1):
        bases += [R._add(ref.s, -k, unit), R._add(ref.e, k, unit)]
    return [b + d for b in bases for d in (-DAY_MS, -1, 0, 1, DAY_MS)]


@given(
    op=st.sampled_from(list(OPS)),
    n=st.integers(0, 14),
    unit=st.sampled_from(list(ir.TimeUnit)),
    direction=st.sampled_from(list(DIRECTIONS)),
    ref=references,
)
def test_form_1_windows_match_the_reference(
    op: str, n: int, unit: ir.TimeUnit, direction: str, ref: R._Ref
) -> None:
    cond = ir.Within(op, n, unit, direction, ir.Now())
    w = window(OPS[op], n, UNITS[unit.value], DIRECTIONS[direction], ref.s, ref.e, ref.instant)
    for t in probes(ref, n, unit):
        assert inside(w, t) == R._within(t, cond, ref), (op, n, unit, direction, ref, t)


@given(ref=references, other=references, x=st.integers(NOW - 2 * 10**11, NOW + 2 * 10**11))
def test_forms_2_to_4_match_the_reference(ref: R._Ref, other: R._Ref, x: int) -> None:
    for t in (x, ref.s, ref.s - 1, ref.s + 1, ref.e, ref.e - 1, other.s, other.e - 1):
        for after in (False, True):
            cond = ir.Side("after" if after else "before", ir.Now())
            got = inside(side_window(after, ref.s, ref.e, ref.instant), t)
            assert got == R._time_holds(t, cond, [ref])
        assert inside(on_window(ref.s, ref.e, ref.instant), t) == R._time_holds(
            t, ir.On(ir.Now()), [ref]
        )
        w = between_window(ref.s, ref.e, ref.instant, other.s, other.e, other.instant)
        assert inside(w, t) == R._time_holds(t, ir.Between(ir.Now(), ir.Now()), [ref, other])


@given(st.integers(-1_000_000, 1_000_000))
# Era boundaries before year 0 (-400-02-29, -400-03-01): the C algorithm's adjustment for
# truncating division, applied to Python's floor division, moved them by an era.
@example(-865_567)
@example(-865_566)
@example(-146_097 - 719_468)
def test_civil_calendar_round_trips_and_matches_datetime(days: int) -> None:
    y, m, d = civil_from_days(days)
    assert days_from_civil(y, m, d) == days
    assert (days_from_civil(y, m, d + 1) if d < 28 else days + 1) == days + 1
    if 1 <= y <= 9999:
        assert dt.date(1970, 1, 1) + dt.timedelta(days=days) == dt.date(y, m, d)


@given(ms=st.integers(-(10**13), 10**13), k=st.integers(-500, 500),
       unit=st.sampled_from(list(ir.TimeUnit)))
def test_add_units_is_the_reference_calendar_arithmetic(ms: int, k: int, unit: ir.TimeUnit) -> None:
    assert add_units(ms, k, UNITS[unit.value]) == R._add(ms, k, unit)


def test_month_arithmetic_clamps_to_the_month_end() -> None:
    mar31 = days_from_civil(2024, 3, 31) * DAY_MS
    assert civil_from_days(add_units(mar31, -1, UNITS["month"]) // DAY_MS) == (2024, 2, 29)
    feb29 = days_from_civil(2024, 2, 29) * DAY_MS
    assert civil_from_days(add_units(feb29, -1, UNITS["year"]) // DAY_MS) == (2023, 2, 28)


@given(now=st.integers(-(10**12), 4 * 10**12), offset=st.sampled_from([-1, 0, 1]),
       unit=st.sampled_from(list(ir.TimeUnit)))
def test_periods_match_the_reference(now: int, offset: int, unit: ir.TimeUnit) -> None:
    ref = R._period(offset, unit, now)
    assert period_bounds(offset, unit.value, now) == (ref.s, ref.e)
