"""Helpers the generated kernels call for lists and strings (compiled with Numba).

Lists are arrays of elements (numbers, times, or string codes in one dictionary), filled in
buffers that a kernel call allocates once and grows as needed (`grow`). Strings compared with
another string value (not a literal) are compared code point by code point: each dictionary
is bound as its code points one after another and each entry's start (`str_pair_test`).
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["STRING_TESTS", "grow", "keep_first", "seq_equal", "str_pair_test"]

_jit = numba.njit(cache=True, nogil=True)

STRING_TESTS = {"equals": 0, "startsWith": 1, "endsWith": 2, "contains": 3}
"""`str_pair_test`'s codes; the negative forms (``notEqualTo``...) negate the positive ones."""


@_jit
def grow(buf: np.ndarray) -> np.ndarray:
    """A buffer twice as large holding ``buf``'s elements first."""
    out = np.empty(2 * len(buf) + 16, buf.dtype)
    out[: len(buf)] = buf
    return out


@_jit
def keep_first(values: np.ndarray, n: int) -> int:
    """Keep the first occurrence of each of ``values[:n]``, in order, in place; return how
    many are left. Equality is ``==``: NaN repeats nothing, 0.0 and -0.0 are one value."""
    if n <= 1:
        return n
    order = np.argsort(values[:n], kind="mergesort")  # stable: earlier occurrences first
    keep = np.ones(n, np.bool_)
    for k in range(1, n):
        if values[order[k]] == values[order[k - 1]]:
            keep[order[k]] = False
    m = 0
    for k in range(n):
        if keep[k]:
            values[m] = values[k]
            m += 1
    return m


@_jit
def seq_equal(a: np.ndarray, na: int, b: np.ndarray, nb: int) -> bool:
    """Whether ``a[:na]`` and ``b[:nb]`` have the same length and equal elements in order."""
    if na != nb:
        return False
    for k in range(na):  # noqa: SIM110 - compiled: an explicit loop
        if a[k] != b[k]:  # NaN equals nothing
            return False
    return True


@_jit
def str_pair_test(fn: int, ca: np.ndarray, oa: np.ndarray, i: int,  # noqa: PLR0917
                  cb: np.ndarray, ob: np.ndarray, j: int) -> bool:
    """String test ``fn`` (`STRING_TESTS`) of entry ``i`` of one dictionary against entry
    ``j`` of another, each given as code points ``c`` and entry starts ``o``."""
    a0, b0 = oa[i], ob[j]
    la, lb = oa[i + 1] - a0, ob[j + 1] - b0
    if fn == 0:
        if la != lb:
            return False
        start = a0
    elif fn == 1:
        if lb > la:
            return False
        start = a0
    elif fn == 2:
        if lb > la:
            return False
        start = a0 + la - lb
    else:
        for s in range(a0, a0 + la - lb + 1):
            k = 0
            while k < lb and ca[s + k] == cb[b0 + k]:
                k += 1
            if k == lb:
                return True
        return False
    for k in range(lb):  # noqa: SIM110 - compiled: an explicit loop
        if ca[start + k] != cb[b0 + k]:
            return False
    return True
