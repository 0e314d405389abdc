"""Columns as the kernels read them: contiguous numpy arrays plus a validity mask.

Physical forms, by kind:

=========  ==========================================================================
bool       ``bool`` array
int        ``int64`` array
float      ``float64`` array (NaN is loaded as null: "not a number" means missing here)
string     ``int32`` codes into a sorted dictionary of distinct strings (null rows: -1),
           so a literal becomes one code at bind time and ``<`` on strings is ``<`` on codes
timestamp  ``int64`` milliseconds since the epoch, UTC
date       ``int32`` days since the epoch
list<T>    ``offsets`` (int64, one more than rows) over an element column of T; a list
           keeps no null elements (a null inside a list is dropped at load)
=========  ==========================================================================

``valid`` is a ``bool`` array, or None when every row has a value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from store.errors import DataError
from store.schema import DType, Kind
from store.times import to_epoch_ms

__all__ = ["Column", "column_from_arrow", "concat_columns", "unify_dictionaries"]

_NUMPY = {
    Kind.BOOL: np.dtype(np.bool_),
    Kind.INT: np.dtype(np.int64),
    Kind.FLOAT: np.dtype(np.float64),
    Kind.STRING: np.dtype(np.int32),
    Kind.TIMESTAMP: np.dtype(np.int64),
    Kind.DATE: np.dtype(np.int32),
}
_ARROW = {
    Kind.BOOL: pa.bool_(),
    Kind.INT: pa.int64(),
    Kind.FLOAT: pa.float64(),
    Kind.STRING: pa.string(),
    Kind.TIMESTAMP: pa.timestamp("ms", tz="UTC"),
    Kind.DATE: pa.date32(),
}
_EMPTY_DICTIONARY = pa.array([], pa.string())


@dataclass(frozen=True, eq=False)
class Column:
    """One field's values for every row (a profile attribute, or an event field)."""

    dtype: DType
    values: np.ndarray  # per row; for lists, per element
    valid: np.ndarray | None = None  # per row
    offsets: np.ndarray | None = None  # lists only
    dictionary: pa.Array | None = None  # strings only: sorted, distinct

    def __len__(self) -> int:
        return len(self.offsets) - 1 if self.offsets is not None else len(self.values)

    @property
    def nbytes(self) -> int:
        arrays = (self.values, self.valid, self.offsets)
        size = sum(a.nbytes for a in arrays if a is not None)
        return size + (self.dictionary.nbytes if self.dictionary is not None else 0)

    def code_of(self, text: str) -> int:
        """The code of ``text`` in this string column's dictionary, or -1 if absent."""
        assert self.dictionary is not None
        i = int(np.searchsorted(self.dictionary.to_numpy(zero_copy_only=False), text))
        return i if i < len(self.dictionary) and self.dictionary[i].as_py() == text else -1

    def to_arrow(self) -> pa.Array:
        """The column as an Arrow array of the field's canonical type (nulls restored)."""
        mask = None if self.valid is None else ~self.valid
        kind = self.dtype.kind
        values = self.values
        if kind is Kind.STRING:
            assert self.dictionary is not None
            codes = np.where(values < 0, 0, values) if len(values) else values
            if len(self.dictionary):
                elements: pa.Array = self.dictionary.take(pa.array(codes, pa.int32()))
            else:
                elements = pa.nulls(len(values), pa.string())
        elif kind is Kind.TIMESTAMP:
            elements = pa.array(values, pa.int64()).cast(_ARROW[kind])
        elif kind is Kind.DATE:
            elements = pa.array(values, pa.int32()).cast(pa.date32())
        else:
            elements = pa.array(values, _ARROW[kind])
        if self.offsets is None:
            return _with_mask(elements, mask)
        return pa.ListArray.from_arrays(pa.array(self.offsets, pa.int64()), elements, mask=(
            None if mask is None else pa.array(mask)
        )).cast(pa.list_(_ARROW[kind]))

    def take(self, rows: np.ndarray) -> Column:
        """The rows ``rows`` of this column, in that order."""
        valid = None if self.valid is None else self.valid[rows]
        if self.offsets is None:
            return Column(self.dtype, self.values[rows], _compact_valid(valid), None,
                          self.dictionary)
        elements, offsets = list_rows(self.offsets, rows)
        return Column(self.dtype, self.values[elements], _compact_valid(valid), offsets,
                      self.dictionary)


def list_rows(offsets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For list rows ``rows`` (of lists laid out by ``offsets``), in that order: the
    positions of their elements, and the int64 offsets of the taken lists."""
    starts = np.asarray(offsets[:-1], np.int64)[rows]
    counts = np.asarray(offsets[1:], np.int64)[rows] - starts
    taken = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=taken[1:])
    # Element j of taken row r sits at starts[r] + (j - taken[r]).
    return np.repeat(starts - taken[:-1], counts) + np.arange(taken[-1]), taken


def canonical_type(kind: Kind) -> pa.DataType:
    """The Arrow type `Column.to_arrow` gives a scalar column of ``kind``."""
    return _ARROW[kind]


def _with_mask(array: pa.Array, mask: np.ndarray | None) -> pa.Array:
    if mask is None or not mask.any():
        return array
    return pc.if_else(pa.array(mask), pa.nulls(len(array), array.type), array)


def _compact_valid(valid: np.ndarray | None) -> np.ndarray | None:
    return None if valid is None or valid.all() else valid


def column_from_arrow(
    array: pa.Array | pa.ChunkedArray,
    dtype: DType,
    name: str,
    *,
    time_unit: str | None = None,
    assume_tz: str = "UTC",
) -> Column:
    """Convert an Arrow column to its physical form, or raise `DataError` naming the row."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
    if pa.types.is_dictionary(array.type) and dtype.kind is not Kind.STRING:
        array = array.dictionary_decode()
    if dtype.is_list:
        return _list_column(array, dtype, name, time_unit=time_unit, assume_tz=assume_tz)
    valid = _valid(array)
    values, dictionary, valid = _scalars(
        array, dtype.kind, name, valid, time_unit=time_unit, assume_tz=assume_tz
    )
    return Column(dtype, values, _compact_valid(valid), None, dictionary)


def _valid(array: pa.Array) -> np.ndarray:
    if array.null_count == 0:
        return np.ones(len(array), bool)
    return np.asarray(array.is_valid().to_numpy(zero_copy_only=False), dtype=bool)


def _scalars(
    array: pa.Array,
    kind: Kind,
    name: str,
    valid: np.ndarray,
    *,
    time_unit: str | None,
    assume_tz: str,
) -> tuple[np.ndarray, pa.Array | None, np.ndarray]:
    """(values, dictionary, valid) of a flat Arrow array holding ``kind``."""
    if kind is Kind.STRING:
        codes, dictionary = _encode_strings(array, name)
        return codes, dictionary, valid
    if kind is Kind.TIMESTAMP:
        ms = to_epoch_ms(array, name, unit=time_unit, assume_tz=assume_tz)
        return _filled(ms.cast(pa.int64()), np.int64), None, _valid(ms)
    if kind is Kind.DATE:
        if not pa.types.is_date(array.type):
            raise _type_error(array, kind, name)
        return _filled(array.cast(pa.date32()).cast(pa.int32()), np.int32), None, valid
    if kind is Kind.BOOL:
        if not pa.types.is_boolean(array.type):
            raise _type_error(array, kind, name)
        return _filled(array, np.bool_), None, valid
    if kind is Kind.INT:
        if not pa.types.is_integer(array.type):
            raise _type_error(array, kind, name)
        if pa.types.is_uint64(array.type):
            too_big = pc.fill_null(pc.greater(array, pa.scalar(2**63 - 1, pa.uint64())), False)
            if pc.any(too_big).as_py():
                row = int(np.flatnonzero(too_big.to_numpy(zero_copy_only=False))[0])
                raise DataError(
                    f"{array[row]} does not fit a signed 64-bit integer",
                    column=name,
                    row=row,
                    hint="pqlite's integers are int64: store such ids as strings",
                )
        return _filled(array.cast(pa.int64()), np.int64), None, valid
    if kind is Kind.FLOAT:
        if not (pa.types.is_floating(array.type) or pa.types.is_integer(array.type)
                or pa.types.is_decimal(array.type)):
            raise _type_error(array, kind, name)
        values = _filled(array.cast(pa.float64(), safe=False), np.float64)
        nan = np.isnan(values)
        if nan.any():  # NaN is how pandas and friends write "missing"
            valid = valid & ~nan
            values = np.where(nan, 0.0, values)
        return values, None, valid
    raise _type_error(array, kind, name)  # pragma: no cover - every kind is handled


def _filled(array: pa.Array, dtype: Any) -> np.ndarray:
    """The values as a writable numpy array, nulls as zero."""
    if array.null_count:
        array = array.fill_null(False if pa.types.is_boolean(array.type) else 0)
    return np.array(array.to_numpy(zero_copy_only=False), dtype=dtype)


_FEW = 32  # strings encoded in Python rather than by Arrow


def _encode_strings(array: pa.Array, name: str) -> tuple[np.ndarray, pa.Array]:
    """int32 codes (-1 for null) into the sorted distinct values of a string array."""
    t = array.type
    if pa.types.is_dictionary(t):
        if not _is_string(t.value_type):
            raise _type_error(array, Kind.STRING, name)
        encoded = array
    else:
        if not _is_string(t):
            raise _type_error(array, Kind.STRING, name)
        if len(array) <= _FEW:  # a streamed event or two: Python beats Arrow's set-up
            values = array.to_pylist()
            distinct = sorted({v for v in values if v is not None})
            position = {v: i for i, v in enumerate(distinct)}
            few = np.array([-1 if v is None else position[v] for v in values], np.int32)
            return few, pa.array(distinct, pa.string())
        encoded = array.cast(pa.string()).dictionary_encode()
    dictionary = encoded.dictionary.cast(pa.string())
    indices = np.asarray(encoded.indices.fill_null(0).to_numpy(zero_copy_only=False))
    order = np.asarray(pc.sort_indices(dictionary).to_numpy(), dtype=np.int64)
    sorted_dict = dictionary.take(pa.array(order))
    # Merge duplicates (a dictionary array may hold a value twice) while ranking.
    sorted_np = sorted_dict.to_numpy(zero_copy_only=False)
    first = np.ones(len(sorted_np), bool)
    if len(sorted_np) > 1:
        first[1:] = sorted_np[1:] != sorted_np[:-1]
    rank_sorted = np.cumsum(first) - 1
    rank = np.empty(len(order), np.int64)
    rank[order] = rank_sorted
    codes = rank[indices].astype(np.int32) if len(order) else np.zeros(len(array), np.int32)
    codes[~_valid(array)] = -1
    return codes, sorted_dict.filter(pa.array(first)) if len(first) else _EMPTY_DICTIONARY


def _is_string(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t)
                or pa.types.is_string_view(t))


def _list_column(
    array: pa.Array, dtype: DType, name: str, *, time_unit: str | None, assume_tz: str
) -> Column:
    if not (pa.types.is_list(array.type) or pa.types.is_large_list(array.type)):
        raise _type_error(array, dtype.kind, name, is_list=True)
    valid = _valid(array)
    # Drop null lists' contents and null elements; count what is left per row.
    flat = pc.list_flatten(array)  # skips null lists, even ones whose offsets span values
    lengths = pc.fill_null(pc.list_value_length(array), 0).to_numpy(zero_copy_only=False)
    parents = np.repeat(np.arange(len(array), dtype=np.int64), lengths)
    keep = _valid(flat)
    flat = flat.filter(pa.array(keep))
    parents = parents[keep]
    try:
        element = column_from_arrow(flat, dtype.element, name, time_unit=time_unit,
                                    assume_tz=assume_tz)
    except DataError as e:  # name the list's row, not the element's
        if e.row is None:
            raise
        raise DataError(e.message, column=name, row=int(parents[e.row]), hint=e.hint) from None
    values = element.values
    if element.valid is not None:  # elements that load as null (NaN) are dropped too
        values, parents = values[element.valid], parents[element.valid]
    counts = np.bincount(parents, minlength=len(array)).astype(np.int64)
    offsets = np.zeros(len(array) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    return Column(dtype, values, _compact_valid(valid), offsets, element.dictionary)


def _type_error(array: pa.Array, kind: Kind, name: str, *, is_list: bool = False) -> DataError:
    want = f"list<{kind}>" if is_list else str(kind)
    return DataError(
        f"holds {array.type} values, but the schema says {want}",
        column=name,
        hint="cast the column to the schema's type, or fix the schema",
    )


def unify_dictionaries(dictionaries: list[pa.Array]) -> tuple[pa.Array, list[np.ndarray]]:
    """One sorted dictionary covering ``dictionaries``, and each one's code remapping."""
    merged = pc.unique(pa.concat_arrays([d.cast(pa.string()) for d in dictionaries])
                       ) if dictionaries else _EMPTY_DICTIONARY
    merged = merged.take(pc.sort_indices(merged))
    merged_np = merged.to_numpy(zero_copy_only=False)
    remaps = [
        np.searchsorted(merged_np, d.to_numpy(zero_copy_only=False)).astype(np.int32)
        if len(d) else np.zeros(0, np.int32)
        for d in dictionaries
    ]
    return merged, remaps


def concat_columns(columns: list[Column]) -> Column:
    """Rows of ``columns`` one after another (string dictionaries are merged)."""
    first = columns[0]
    dictionary = first.dictionary
    values = [c.values for c in columns]
    if first.dtype.kind is Kind.STRING:
        dictionary, remaps = unify_dictionaries(
            [c.dictionary for c in columns if c.dictionary is not None]
        )
        values = [
            np.where(v < 0, -1, remap[np.maximum(v, 0)] if len(remap) else 0).astype(np.int32)
            for v, remap in zip(values, remaps, strict=True)
        ]
    valid = None
    if any(c.valid is not None for c in columns):
        valid = np.concatenate([
            c.valid if c.valid is not None else np.ones(len(c), bool) for c in columns
        ])
    offsets = None
    if first.offsets is not None:
        parts, base = [np.zeros(1, np.int64)], 0
        for c in columns:
            assert c.offsets is not None
            parts.append(c.offsets[1:] + base)
            base += int(c.offsets[-1])
        offsets = np.concatenate(parts)
    joined = np.concatenate(values) if values else np.zeros(0, _NUMPY[first.dtype.kind])
    return Column(first.dtype, joined, _compact_valid(valid), offsets, dictionary)


def empty_column(dtype: DType, rows: int) -> Column:
    """A column of ``rows`` nulls."""
    values = np.zeros(0 if dtype.is_list else rows, _NUMPY[dtype.kind])
    if dtype.kind is Kind.STRING and not dtype.is_list:
        values = np.full(rows, -1, np.int32)
    offsets = np.zeros(rows + 1, np.int64) if dtype.is_list else None
    dictionary = _EMPTY_DICTIONARY if dtype.kind is Kind.STRING else None
    return Column(dtype, values, np.zeros(rows, bool) if rows else None, offsets, dictionary)


def numpy_dtype(kind: Kind) -> np.dtype[Any]:
    return _NUMPY[kind]
