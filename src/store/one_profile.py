"""One profile's data as the base store's arrays: the data side of streaming's one-event path.

A streamed event usually touches one profile. `store.subset` answers any batch, at the cost
of building a store in general (numbering, dictionaries of its own, a layout check): about
a millisecond. `OneProfile` answers the common case in tens of microseconds. It gives a
base profile's event partitions as the base store gives them to a kernel (CSR offsets of
one profile, times, field values and validity), **coded in the base store's dictionaries**,
so the engine binds the base store's own kernels to them with everything computed from
dictionaries bound once (`engine.binding.OneBinder`); its attributes are the base's row.
Each appended event is inserted in time order (after equal times: arrival order, as
`subset`), and the profile's partitions that hold appended events are kept for the next.

It declines (returns None) whatever its shortcut cannot hold exactly, and the caller then
takes the general path: a profile that is not a base profile or that has other delta data
(`forget`), a string its column's dictionary lacks, a null where the column has no
validity array, a field its partition does not carry, an event type no partition holds.

Kept partitions hold every event the profile's general-path subset would (its base events
``since`` the instant asked when first kept, and every event appended here), and perhaps
more: events a later subset leaves out; keeping more never changes a value. Ties across
partitions need no ``seq`` here: the engine reads one partition per argument on this path.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple, TypeAlias

import numpy as np
import pyarrow as pa

from store.events import Partition
from store.profile_store import ProfileStore
from store.schema import DType, Kind
from store.subset_events import Since, earliest_kept

__all__ = ["OneProfile", "Part", "ViewKey"]

_NONE_KEPT = int(np.iinfo(np.int64).max)  # `earliest_kept` of a type no one reads
_CAPACITY = 1 << 16  # profiles kept; one dropped takes the general path from then on


class Part(NamedTuple):
    """One partition's events of one profile, as a kernel reads a partition."""

    offsets: np.ndarray  # [0, number of events], the base partition's dtype
    time: np.ndarray  # int64 ms, rising
    values: dict[str, np.ndarray]  # per field the partition carries (lists: elements)
    valid: dict[str, np.ndarray | None]  # None where the base column has no validity
    lists: dict[str, np.ndarray]  # list fields: each event's elements' offsets, from 0


ViewKey: TypeAlias = "tuple[str, ...] | None"  # what `EventStore.view` takes


class OneProfile:
    """One-profile views of ``base``'s profiles (see the module docstring): of each event
    view ``keys`` names (`EventStore.view`: a partition, or several merged, as the base's
    kernels read them)."""

    def __init__(self, base: ProfileStore, keys: Iterable[ViewKey],
                 capacity: int = _CAPACITY) -> None:
        self.base = base
        self.capacity = capacity
        s = base.schema
        self.keys = list(dict.fromkeys(keys))
        self.usable = bool(base.events.partitions)
        self._views = [base.events.view(k) for k in self.keys] if self.usable else []
        self._kept: dict[int, dict[ViewKey, Part]] = {}  # profile -> appended-to views
        self._gone = np.zeros(len(base), bool)  # profiles with data only the delta holds
        self._codes: dict[int, tuple[pa.Array, dict[str, int]]] = {}
        self._fields = [n for n in s.events if n not in (s.event_profile_key, s.event_time)]
        self._dtypes = {n: s.events[n].dtype for n in self._fields}

    def forget(self, profiles: np.ndarray) -> None:
        """Profiles the general path has given data: never served again."""
        base = profiles[profiles < len(self.base)]
        self._gone[base] = True
        for p in base.tolist():
            self._kept.pop(p, None)

    def parts(self, profile: int, since: Since) -> dict[ViewKey, Part]:
        """Every view of ``profile`` (a base profile `appended` has served, or may)."""
        kept = self._kept.get(profile, _NOTHING)
        return {key: kept.get(key) or self._base_part(profile, j, since)
                for j, key in enumerate(self.keys)}

    def appended(self, profile: int, events: pa.Table, since: Since) -> bool:
        """Insert ``events`` (normalized, all of base profile ``profile``, in arrival order)
        into its views; False, changing nothing, if they do not fit (see the module
        docstring): the caller applies them by the general path and `forget` s the profile."""
        if not self.usable or profile >= len(self.base) or self._gone[profile]:
            return False
        s = self.base.schema
        times = np.concatenate([c.to_numpy().view(np.int64) for c in
                                events.column(s.event_time).chunks]).tolist()
        columns = {n: _python_values(events.column(n), self._dtypes[n]) for n in self._fields}
        kept = self._kept.get(profile, _NOTHING)
        changed: dict[ViewKey, Part] = {}
        for row, t in enumerate(times):
            kind = None if s.event_type is None else columns[s.event_type][row]
            values = {n: c[row] for n, c in columns.items()}
            for j, key in enumerate(self.keys):
                view = self._views[j]
                if view.types is not None and kind not in view.types:
                    if key is None or kind in key:
                        return False  # a type new to the store: the general path widens
                    continue  # a view of other types: the kernels reading it ignore this
                part = changed.get(key) or kept.get(key) or self._base_part(profile, j, since)
                grown = self._insert(view, part, t, values)
                if grown is None:
                    return False
                changed[key] = grown
        if changed:
            self._kept.setdefault(profile, {}).update(changed)
        if len(self._kept) > self.capacity:  # the oldest one's events now live in the delta only
            oldest = next(iter(self._kept))
            del self._kept[oldest]
            self._gone[oldest] = True
        return True

    # ------------------------------------------------------------ building

    def _base_part(self, p: int, j: int, since: Since) -> Part:
        view = self._views[j]
        lo, hi = int(view.offsets[p]), int(view.offsets[p + 1])
        if since is not None:
            bound = min((earliest_kept(since, t) for t in view.types) if view.types
                        is not None else since.values(), default=_NONE_KEPT)
            lo = hi if bound == _NONE_KEPT else lo + int(view.time[lo:hi].searchsorted(bound))
        values, lists = {}, {}
        for n, c in view.columns.items():
            if c.offsets is None:
                values[n] = c.values[lo:hi]
            else:
                first, last = int(c.offsets[lo]), int(c.offsets[hi])
                values[n] = c.values[first:last]
                lists[n] = _like(np.asarray(c.offsets[lo:hi + 1] - first, c.offsets.dtype),
                                 c.offsets)
        return Part(_like(np.array([0, hi - lo], view.offsets.dtype), view.offsets),
                    view.time[lo:hi], values, {n: None if c.valid is None else c.valid[lo:hi]
                                               for n, c in view.columns.items()}, lists)

    def _insert(self, view: Partition, part: Part, t: int, row: dict[str, Any]
                ) -> Part | None:
        """``part`` (of ``view``) with one more event, after those at or before ``t``; None
        if the view's columns cannot hold it."""
        type_field = self.base.schema.event_type
        for name, value in row.items():  # a field the view lacks must be null
            if name not in view.columns and value is not None and not (
                    name == type_field and view.types is not None):
                return None
        at = int(part.time.searchsorted(t, side="right"))
        values, valid, lists = {}, {}, {}
        for name, col in view.columns.items():
            value = row[name]
            if value is None and col.valid is None:
                return None
            if col.offsets is not None:  # a list: its elements go in at the row's first
                items = self._codes_of(col.dictionary, value or [])
                if items is None:
                    return None
                ends = part.lists[name]
                first = int(ends[at])
                values[name] = _like(np.concatenate([part.values[name][:first], np.array(
                    items, col.values.dtype), part.values[name][first:]]), col.values)
                grown = np.empty(len(ends) + 1, ends.dtype)
                grown[:at + 1] = ends[:at + 1]
                grown[at + 1:] = ends[at:] + len(items)
                lists[name] = _like(grown, ends)
            else:
                code = self._codes_of(col.dictionary, [value])
                if code is None:
                    return None
                values[name] = _inserted(part.values[name], at, code[0])
            old = part.valid[name]
            valid[name] = None if old is None else _inserted(old, at, value is not None)
        offsets = _like(np.array([0, len(part.time) + 1], part.offsets.dtype), part.offsets)
        return Part(offsets, _inserted(part.time, at, t), values, valid, lists)

    def _codes_of(self, dictionary: pa.Array | None, items: list[Any]) -> list[Any] | None:
        """Values as a column stores them: strings as codes of ``dictionary`` (None if
        one is not there), a null as 0 (-1 for a string)."""
        if dictionary is None:
            return [0 if v is None else v for v in items]
        codes = [-1 if v is None else self._code(dictionary, v) for v in items]
        return None if any(c < 0 for c, v in zip(codes, items, strict=True) if v is not None) \
            else codes

    def _code(self, dictionary: pa.Array, text: str) -> int:
        hit = self._codes.get(id(dictionary))
        if hit is None or hit[0] is not dictionary:  # (kept, so its id stays its own)
            hit = self._codes[id(dictionary)] = (
                dictionary, {v: i for i, v in enumerate(dictionary.to_pylist())})
        return hit[1].get(text, -1)


_NOTHING: dict[Any, Part] = {}


def _inserted(a: np.ndarray, at: int, value: Any) -> np.ndarray:
    """``a`` with ``value`` inserted at ``at`` (np.insert costs ten times more)."""
    out = np.empty(len(a) + 1, a.dtype)
    out[:at] = a[:at]
    out[at] = value
    out[at + 1:] = a[at:]
    return _like(out, a)


def _like(a: np.ndarray, base: np.ndarray) -> np.ndarray:
    """A new array, read-only if the base's is: Numba compiles a kernel for read-only
    arrays apart from one for writable ones, and the base's kernel must take it as is."""
    a.flags.writeable = bool(base.flags.writeable)
    return a


def _python_values(column: pa.ChunkedArray, dtype: DType) -> list[Any]:
    """A normalized column's values as the store holds them: epoch ms, days, text (a list
    of them per event for a list field)."""
    number = {Kind.TIMESTAMP: pa.int64(), Kind.DATE: pa.int32()}.get(dtype.kind)
    if number is not None:
        column = column.cast(pa.list_(number) if dtype.is_list else number)
    out: list[Any] = column.to_pylist()
    return out
