"""The vector tier's precompiled primitives: loops numpy has no single call for.

They are generic over the layout (any partition, any field, any window), so they compile
once per install (``cache=True``) and never per definition; `engine.vector` composes them
with numpy operations. Rows of a frame are grouped by their parent row, in order (``parent``
ascending), which every function here relies on.
"""

from __future__ import annotations

import numba
import numpy as np

from engine.runtime import time_slice
from engine.timeops import add_units, civil_from_days

__all__ = [
    "add_units_rows",
    "chain_scan",
    "civil_rows",
    "expand",
    "group_average_int",
    "group_distinct",
    "group_extreme",
    "group_sum",
    "slice_rows",
]

_jit = numba.njit(cache=True, nogil=True)


@_jit
def slice_rows(time, starts, stops, t_lo, t_hi):  # type: ignore[no-untyped-def]
    """Each row's slice ``[starts, stops)`` of ``time`` (sorted within a slice) narrowed to
    ``[t_lo, t_hi]`` (arrays, one bound per row); rows with ``t_lo > t_hi`` become empty."""
    n = len(starts)
    out_lo = np.empty(n, np.int64)
    out_hi = np.empty(n, np.int64)
    for r in range(n):
        a, b = time_slice(time, starts[r], stops[r], t_lo[r], t_hi[r])
        out_lo[r] = a
        out_hi[r] = b
    return out_lo, out_hi


@_jit
def expand(starts, stops):  # type: ignore[no-untyped-def]
    """One output row per element of each row's slice: (parent row, element index)."""
    total = 0
    for r in range(len(starts)):
        total += max(stops[r] - starts[r], 0)
    parent = np.empty(total, np.int64)
    index = np.empty(total, np.int64)
    k = 0
    for r in range(len(starts)):
        for i in range(starts[r], stops[r]):
            parent[k] = r
            index[k] = i
            k += 1
    return parent, index


@_jit
def group_sum(parent, values, rows):  # type: ignore[no-untyped-def]
    """Per parent row, the sum of its values in order (ints wrap, like the kernels)."""
    out = np.zeros(rows, values.dtype)
    for k in range(len(parent)):
        out[parent[k]] += values[k]
    return out


@_jit
def group_average_int(parent, values, rows):  # type: ignore[no-untyped-def]
    """Per parent row, the average of int values: the exact int64 sum while it does not
    overflow, else the float sum (as the kernels compute it); NaN where there are none."""
    acc = np.zeros(rows, np.int64)
    accf = np.zeros(rows, np.float64)
    wrapped = np.zeros(rows, np.bool_)
    n = np.zeros(rows, np.int64)
    for k in range(len(parent)):
        r = parent[k]
        v = values[k]
        nxt = acc[r] + v
        if ((acc[r] ^ v) >= 0) and ((acc[r] ^ nxt) < 0):
            wrapped[r] = True
        acc[r] = nxt
        accf[r] += np.float64(v)
        n[r] += 1
    out = np.zeros(rows, np.float64)
    for r in range(rows):
        if n[r] > 0:
            total = accf[r] if wrapped[r] else np.float64(acc[r])
            out[r] = total / n[r]
    return out


@_jit
def group_extreme(parent, values, rows, largest):  # type: ignore[no-untyped-def]
    """Per parent row, the min (or max) of its values and how many there were."""
    out = np.zeros(rows, values.dtype)
    n = np.zeros(rows, np.int64)
    for k in range(len(parent)):
        r = parent[k]
        v = values[k]
        if n[r] == 0 or (v > out[r] if largest else v < out[r]):
            out[r] = v
        n[r] += 1
    return out, n


@_jit
def group_distinct(parent, values, rows):  # type: ignore[no-untyped-def]
    """Per parent row, the number of distinct values."""
    out = np.zeros(rows, np.int64)
    k = 0
    m = len(parent)
    while k < m:
        r = parent[k]
        j = k
        while j < m and parent[j] == r:
            j += 1
        ordered = np.sort(values[k:j])
        d = 1
        for q in range(1, len(ordered)):
            d += ordered[q] != ordered[q - 1]
        out[r] = d
        k = j
    return out


@_jit
def chain_scan(parent, time, masks, counts, rows):  # type: ignore[no-untyped-def]
    """Per parent row, whether its events (in time order) complete the chain's steps.

    ``masks[s, k]``: event k satisfies step s. As the kernels do: an event counts only if it
    is strictly later than the event that completed the previous step, and the event that
    completes a step cannot also count for the next.
    """
    out = np.zeros(rows, np.bool_)
    steps = masks.shape[0]
    k = 0
    m = len(parent)
    while k < m:
        r = parent[k]
        step = 0
        count = 0
        last = np.int64(-(2**63))
        while k < m and parent[k] == r:
            if step < steps and time[k] > last and masks[step, k]:
                count += 1
                if count >= counts[step]:
                    step += 1
                    count = 0
                    last = time[k]
            k += 1
        out[r] = step == steps
    return out


@_jit
def add_units_rows(a, k, unit):  # type: ignore[no-untyped-def]
    """`engine.timeops.add_units` of each instant of ``a`` (calendar units: months, years)."""
    out = np.empty(len(a), np.int64)
    for r in range(len(a)):
        out[r] = add_units(a[r], k, unit)
    return out


@_jit
def civil_rows(days, part):  # type: ignore[no-untyped-def]
    """Year (part 0), month (1) or day of month (2) of each day number."""
    out = np.empty(len(days), np.int64)
    for r in range(len(days)):
        out[r] = civil_from_days(days[r])[part]
    return out
