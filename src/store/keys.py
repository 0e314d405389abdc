"""Profile keys: the user's identifiers, normalized, validated and mapped to dense indices.

A profile's index (0..n-1) is its position in the store and the id its bitmaps hold. Keys are
int64 or strings; floats that are whole numbers (CSV readers write ids as ``17850.0``) are
read as integers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from store.errors import DataError

__all__ = ["KeyIndex", "normalize_keys"]


def normalize_keys(array: pa.Array | pa.ChunkedArray, column: str) -> pa.Array:
    """``array`` as int64 or string keys without nulls, or a `DataError` naming the row."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if array.null_count:
        row = int(np.flatnonzero(array.is_null().to_numpy(zero_copy_only=False))[0])
        raise DataError(
            "the key is missing (null)",
            column=column,
            row=row,
            hint="every profile and every event needs its profile key; drop or fill such rows",
        )
    t = array.type
    if t == pa.int64() or t == pa.string():
        return array
    if pa.types.is_integer(t):
        if pa.types.is_uint64(t) and len(array) and pc.max(array).as_py() > 2**63 - 1:
            raise DataError("keys above 2**63-1 do not fit int64", column=column,
                            hint="cast the key column to string")
        return array.cast(pa.int64())
    if pa.types.is_floating(t):
        values = array.to_numpy(zero_copy_only=False)
        whole = np.isfinite(values) & (values == np.round(values)) & (np.abs(values) < 2**53)
        if not whole.all():
            row = int(np.flatnonzero(~whole)[0])
            raise DataError(
                f"key {values[row]} is not a whole number",
                column=column,
                row=row,
                hint="profile keys must be integers or strings",
            )
        return pa.array(values.astype(np.int64))
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return array.cast(pa.string())
    raise DataError(
        f"keys of type {t} are not supported",
        column=column,
        hint="profile keys must be integers or strings: cast the column",
    )


def first_duplicate(keys: pa.Array) -> tuple[int, int] | None:
    """Rows (first, second) of the first repeated key, or None if all are distinct."""
    if len(pc.unique(keys)) == len(keys):
        return None
    order = np.asarray(pc.sort_indices(keys).to_numpy(), dtype=np.int64)
    ranked = keys.take(pa.array(order)).to_numpy(zero_copy_only=False)
    same = np.flatnonzero(ranked[1:] == ranked[:-1])
    a, b = sorted((int(order[same[0]]), int(order[same[0] + 1])))
    return a, b


@dataclass(eq=False)
class KeyIndex:
    """Key → profile index lookups over an immutable key array (built on first use)."""

    keys: pa.Array
    _sorted: np.ndarray | None = field(default=None, repr=False)
    _order: np.ndarray | None = field(default=None, repr=False)
    _first: int | None = field(default=None, repr=False)  # keys first, first + 1, ...: this

    def lookup(self, wanted: pa.Array) -> np.ndarray:
        """The index of each of ``wanted`` (-1 where the store has no such key)."""
        if self._sorted is None:
            values = self.keys.to_numpy(zero_copy_only=False)
            if (pa.types.is_integer(self.keys.type) and len(values)
                    and int(values[-1]) - int(values[0]) == len(values) - 1
                    and bool((np.diff(values) == 1).all())):
                self._first = int(values[0])  # consecutive integers: an index is arithmetic
            self._order = np.argsort(values, kind="stable")
            self._sorted = values[self._order]
        assert self._order is not None
        probe = wanted.to_numpy(zero_copy_only=False)
        if len(self._sorted) == 0:
            return np.full(len(probe), -1, np.int64)
        if self._first is not None:  # (a random probe into millions of keys misses caches)
            index = np.asarray(probe, np.int64) - self._first
            return np.where((index >= 0) & (index < len(self._sorted)), index, -1)
        pos = np.searchsorted(self._sorted, probe)
        pos_clipped = np.minimum(pos, len(self._sorted) - 1)
        found = self._sorted[pos_clipped] == probe
        return np.where(found, self._order[pos_clipped], -1).astype(np.int64)
