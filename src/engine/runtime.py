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
    "in_window",
    "int_rem",
    "mask_to_ids",
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
def time_slice(time: np.ndarray, lo: int, hi: int, t_lo: int, t_hi: int) -> tuple[int, int]:
    """The part of ``time[lo:hi]`` (sorted) within [t_lo, t_hi], as (start, stop).

    Recent windows are the common case, so the search walks back from the end for short
    histories and bisects long ones.
    """
    a, b = lo, hi
    if b - a <= 16:
        while b > a and time[b - 1] > t_hi:
            b -= 1
        start = b
        while start > a and time[start - 1] >= t_lo:
            start -= 1
        return start, b
    x, y = a, b  # first index with time > t_hi
    while x < y:
        m = (x + y) >> 1
        if time[m] > t_hi:
            y = m
        else:
            x = m + 1
    b = x
    x, y = a, b  # first index with time >= t_lo
    while x < y:
        m = (x + y) >> 1
        if time[m] >= t_lo:
            y = m
        else:
            x = m + 1
    return x, b


@_jit
def count_distinct(values: np.ndarray) -> int:
    if len(values) == 0:
        return 0
    ordered = np.sort(values)
    n = 1
    for k in range(1, len(ordered)):
        n += ordered[k] != ordered[k - 1]
    return n


@numba.njit(cache=True, nogil=True)
def mask_to_ids(mask: np.ndarray) -> np.ndarray:
    """Indices of the set bytes of ``mask`` as uint32 (pyroaring's bulk-load input)."""
    n = 0
    for x in mask:
        n += x != 0
    ids = np.empty(n, np.uint32)
    k = 0
    for i in range(len(mask)):
        if mask[i] != 0:
            ids[k] = i
            k += 1
    return ids
