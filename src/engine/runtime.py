"""Helpers the generated kernels call (compiled with Numba, inlined into the kernels)."""

from __future__ import annotations

import numba
import numpy as np

from engine.timeops import add_units, civil_from_days, in_window

__all__ = [
    "add_units",
    "civil_from_days",
    "contains",
    "count_distinct",
    "first_after",
    "in_window",
    "int_rem",
    "time_slice",
]

_jit = numba.njit(cache=True, inline="always")


@_jit
def int_rem(a: int, b: int) -> int:
    """Truncated remainder, the sign of the dividend (SQL, Java): -7 % 3 is -1."""
    r = a % b
    if r != 0 and (r < 0) != (a < 0):
        r -= b
    return r


@_jit
def contains(values: np.ndarray, x: object) -> bool:
    for v in values:
        if v == x:
            return True
    return False


@_jit
def first_after(time: np.ndarray, lo: int, hi: int, x: int) -> int:
    """The first index k in [lo, hi] with ``time[k] > x`` (``time[lo:hi]`` sorted).

    Windows are usually recent, so the search gallops back from the end (steps 1, 2, 4, ...)
    and bisects only the last step: a few probes near the end of the history, in cache,
    where a bisection of a long history would start with misses far from the window.
    """
    if hi == lo or time[hi - 1] <= x:
        return hi
    b = hi - 1  # time[b] > x
    step = 1
    while True:
        a = b - step
        if a < lo:
            a = lo - 1  # (virtually) time[lo - 1] <= x
            break
        if time[a] <= x:
            break
        b = a
        step <<= 1
    while b - a > 1:  # time[a] <= x < time[b]
        m = (a + b) >> 1
        if time[m] > x:
            b = m
        else:
            a = m
    return b


@_jit
def time_slice(time: np.ndarray, lo: int, hi: int, t_lo: int, t_hi: int) -> tuple[int, int]:
    """The part of ``time[lo:hi]`` (sorted) within [t_lo, t_hi], as (start, stop)."""
    stop = first_after(time, lo, hi, t_hi)
    return first_after(time, lo, stop, t_lo - 1), stop


@_jit
def count_distinct(values: np.ndarray) -> int:
    if len(values) == 0:
        return 0
    ordered = np.sort(values)
    n = 1
    for k in range(1, len(ordered)):
        n += ordered[k] != ordered[k - 1]
    return n
