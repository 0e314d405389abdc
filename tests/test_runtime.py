"""The kernels' helpers (`engine.runtime`) against plain Python."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from engine.runtime import first_after, time_slice

sorted_times = st.lists(st.integers(-5, 25), max_size=60).map(lambda xs: np.array(sorted(xs),
                                                                                    np.int64))


@given(sorted_times, st.data())
def test_first_after_is_the_first_later_index(times: np.ndarray, data: st.DataObject) -> None:
    lo = data.draw(st.integers(0, len(times)))
    hi = data.draw(st.integers(lo, len(times)))
    x = data.draw(st.integers(-7, 27))
    expected = next((k for k in range(lo, hi) if times[k] > x), hi)
    assert first_after(times, lo, hi, x) == expected


@given(sorted_times, st.data())
def test_time_slice_holds_exactly_the_window(times: np.ndarray, data: st.DataObject) -> None:
    lo = data.draw(st.integers(0, len(times)))
    hi = data.draw(st.integers(lo, len(times)))
    t_lo, t_hi = data.draw(st.integers(-7, 27)), data.draw(st.integers(-7, 27))
    start, stop = time_slice(times, lo, hi, t_lo, t_hi)
    assert lo <= start <= stop <= hi
    inside = [k for k in range(lo, hi) if t_lo <= times[k] <= t_hi]
    assert list(range(start, stop)) == inside or (not inside and start == stop)


def test_time_slice_of_a_long_history_with_extreme_bounds() -> None:
    times = np.arange(0, 10_000, 3, dtype=np.int64)
    assert time_slice(times, 0, len(times), -(2**62), 2**62) == (0, len(times))
    assert time_slice(times, 0, len(times), 9_000, 2**62) == (3000, len(times))
    assert time_slice(times, 10, 20, 0, 29) == (10, 10)
