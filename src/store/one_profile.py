"""One profile's data as the base store's arrays: the data side of streaming's one-event path.

A streamed event usually touches one profile. `store.subset` answers any batch, at the cost
of building a store in general (numbering, dictionaries of its own, a layout check): about
two milliseconds. `OneProfile` answers the common case in tens of microseconds. It gives a
base profile's event views as the base store gives them to a kernel (`EventStore.view`: a
partition, or several merged; CSR offsets of one profile, times, field values, validity,
list offsets), **coded in the base store's dictionaries**, so the engine binds the base
store's own kernels to them with everything computed from dictionaries bound once
(`engine.binding.OneBinder`); its attributes are the base's row. Appended events are merged
into each view holding their type by a stable sort on time (after the events they tie with:
arrival order, as `subset`), and the views they change are kept for the next call.

`appended` declines (returns False, changing nothing) what the views cannot hold exactly, and
the caller then takes the general path: a profile that is not a base profile or whose
attributes the delta changed (`forget` with ``gone``), a string a column's dictionary lacks,
a null where a column has no validity array, a field a view does not carry, an event type
no partition holds. A profile the general path gave events (`forget`) is rebuilt from its
events in the delta (`store.subset.delta_history`) when next served.

Kept views hold every event the profile's general-path subset would (its base events
``since`` the instant asked when first built, and every appended event), and perhaps more:
events a later subset leaves out; keeping more never changes a value.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple, TypeAlias

import numpy as np
import pyarrow as pa

from store.columns import list_rows
from store.events import Partition
from store.profile_store import ProfileStore
from store.schema import DType, Kind
from store.subset import delta_history
from store.subset_events import NONE_KEPT, Since, earliest_kept

__all__ = ["OneProfile", "Part", "ViewKey"]

_CAPACITY = 1 << 16  # profiles kept; one dropped is rebuilt from the delta when next served


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

    def __init__(self, base: ProfileStore, keys: Iterable[ViewKey], *,
                 delta: ProfileStore | None = None, capacity: int = _CAPACITY) -> None:
        self.schema = base.schema  # (what it reads of ``base`` is taken now: a compaction of
        self.size = len(base)  # the store later changes nothing here)
        self.delta = delta  # the store whose delta holds what `appended` did not (a session's)
        self.capacity = capacity
        s = base.schema
        self.keys = list(dict.fromkeys(keys))
        self.usable = bool(base.events.partitions)
        self._views = [base.events.view(k) for k in self.keys] if self.usable else []
        self._kept: dict[int, dict[ViewKey, Part]] = {}  # profile -> appended-to views
        self._stale = np.zeros(len(base), bool)  # events in the delta, not in `_kept`
        self._gone = np.zeros(len(base), bool)  # not served: their attributes changed
        self._codes: dict[int, tuple[pa.Array, dict[str, int]]] = {}
        self._fields = [n for n in s.events if n not in (s.event_profile_key, s.event_time)]
        self._dtypes = {n: s.events[n].dtype for n in self._fields}

    def forget(self, profiles: np.ndarray, *, gone: bool = False) -> None:
        """Profiles the general path has given events (rebuilt from the delta when next
        served), or, ``gone``, attributes or a new identity (never served again)."""
        base = profiles[profiles < self.size]
        (self._gone if gone else self._stale)[base] = True
        for p in base.tolist():
            self._kept.pop(p, None)

    def parts(self, profile: int, since: Since) -> dict[ViewKey, Part]:
        """Every view of ``profile`` (a base profile `appended` has just served)."""
        kept = self._kept.get(profile, _NOTHING)
        return {key: kept.get(key) or self._base_part(profile, j, since)
                for j, key in enumerate(self.keys)}

    def appended(self, profile: int, events: pa.Table, since: Since) -> bool:
        """Insert ``events`` (normalized, all of base profile ``profile``, in arrival order)
        into its views; False, changing nothing, if they do not fit (see the module
        docstring): the caller applies them by the general path and `forget` s the profile.
        A profile with events in the delta (`forget`) is first rebuilt from them."""
        if not self.usable or profile >= self.size or self._gone[profile]:
            return False
        kept = self._kept.get(profile, _NOTHING)
        if self._stale[profile]:
            assert self.delta is not None
            earlier, upserted = delta_history(self.delta, profile)
            rebuilt = None if upserted else {} if earlier is None else self._grow(
                profile, {}, earlier, since)
            if rebuilt is None:
                self._gone[profile] = True
                return False
            kept = rebuilt
        changed = self._grow(profile, kept, events, since)
        if changed is None:
            return False
        self._stale[profile] = False
        self._kept[profile] = {**kept, **changed}
        if len(self._kept) > self.capacity:  # the oldest one is rebuilt when next served
            oldest = next(iter(self._kept))
            del self._kept[oldest]
            self._stale[oldest] = True
        return True

    def _grow(self, profile: int, kept: dict[ViewKey, Part], events: pa.Table, since: Since
              ) -> dict[ViewKey, Part] | None:
        """The views ``events`` change, from ``kept`` (or the base's); None if they do not
        fit. (Values go through Python lists: a call holds one event, a rebuild a few
        dozen, for which a list beats an Arrow kernel's set-up.)"""
        s = self.schema
        times = np.concatenate([c.to_numpy().view(np.int64) for c in
                                events.column(s.event_time).chunks])
        values = {n: _python_values(events.column(n), self._dtypes[n]) for n in self._fields}
        kinds = [None] * len(times) if s.event_type is None else values[s.event_type]
        changed: dict[ViewKey, Part] = {}
        for j, key in enumerate(self.keys):
            view = self._views[j]
            rows = list(range(len(times)))
            if view.types is not None:
                if any(k not in view.types and (key is None or k in key) for k in kinds):
                    return None  # a type new to the store: the general path widens
                rows = [i for i in rows if kinds[i] in view.types]
                if not rows:
                    continue  # a view of other types: the kernels reading it ignore these
            coded = self._coded(view, values, rows)
            if coded is None:
                return None
            part = kept.get(key) or self._base_part(profile, j, since)
            changed[key] = _merged(part, times[rows], coded)
        return changed

    def _coded(self, view: Partition, values: dict[str, list[Any]], rows: list[int]
               ) -> dict[str, tuple[np.ndarray, np.ndarray | None, np.ndarray | None]] | None:
        """Per column of ``view``: the values of events ``rows`` as it stores them (codes of
        its dictionary for strings, -1 for null; 0 for other nulls; list elements one
        after another), their validity (if the column has one) and, for a list, each
        event's elements' offsets; None if the column cannot hold them (a string it lacks,
        a null where it has no validity, a field it lacks)."""
        type_field = self.schema.event_type
        out: dict[str, tuple[np.ndarray, np.ndarray | None, np.ndarray | None]] = {}
        for name in self._fields:
            mine = [values[name][i] for i in rows]
            col = view.columns.get(name)
            if col is None:
                if any(v is not None for v in mine) and not (
                        name == type_field and view.types is not None):
                    return None
                continue
            nulls = [v is None for v in mine]
            if col.valid is None and any(nulls):
                return None
            valid = None if col.valid is None else ~np.array(nulls, bool)
            offsets = None
            if col.offsets is not None:  # (normalized lists hold no null elements)
                offsets = np.zeros(len(mine) + 1, np.int64)
                np.cumsum([len(v or ()) for v in mine], out=offsets[1:])
                mine = [x for v in mine for x in v or ()]
            if col.dictionary is not None:
                codes = [-1 if v is None else self._code(col.dictionary, v) for v in mine]
                if any(c < 0 and v is not None for c, v in zip(codes, mine, strict=True)):
                    return None  # a string the dictionary lacks
                mine = codes
            out[name] = (np.array([0 if v is None else v for v in mine], col.values.dtype),
                         valid, offsets)
        return out

    # ------------------------------------------------------------ building

    def _base_part(self, p: int, j: int, since: Since) -> Part:
        view = self._views[j]
        lo, hi = int(view.offsets[p]), int(view.offsets[p + 1])
        if since is not None:
            bound = min((earliest_kept(since, t) for t in view.types) if view.types
                        is not None else since.values(), default=NONE_KEPT)
            lo = hi if bound == NONE_KEPT else lo + int(view.time[lo:hi].searchsorted(bound))
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

    def _code(self, dictionary: pa.Array, text: str) -> int:
        hit = self._codes.get(id(dictionary))
        if hit is None or hit[0] is not dictionary:  # (kept, so its id stays its own)
            hit = self._codes[id(dictionary)] = (
                dictionary, {v: i for i, v in enumerate(dictionary.to_pylist())})
        return hit[1].get(text, -1)


_NOTHING: dict[Any, Part] = {}


def _merged(part: Part, times: np.ndarray,
            coded: dict[str, tuple[np.ndarray, np.ndarray | None, np.ndarray | None]]) -> Part:
    """``part`` with the events ``times`` (in arrival order; their columns ``coded``)
    placed in time order, each after those it ties with: a stable sort of the old then
    the new, as inserting them one by one would place them."""
    time = np.concatenate([part.time, times])
    order = np.argsort(time, kind="stable")
    values: dict[str, np.ndarray] = {}
    valid: dict[str, np.ndarray | None] = {}
    lists: dict[str, np.ndarray] = {}
    for name, old in part.values.items():
        new, new_valid, new_offsets = coded[name]
        before = part.valid[name]
        if before is not None:
            assert new_valid is not None
            valid[name] = _like(np.concatenate([before, new_valid])[order], before)
        else:
            valid[name] = None
        if new_offsets is None:
            values[name] = _like(np.concatenate([old, new])[order], old)
            continue
        ends = part.lists[name]  # a list: whole rows of elements move together
        elements, offsets = list_rows(np.concatenate([ends, new_offsets[1:] + len(old)]), order)
        values[name] = _like(np.concatenate([old, new])[elements], old)
        lists[name] = _like(offsets.astype(ends.dtype), ends)
    return Part(_like(np.array([0, len(time)], part.offsets.dtype), part.offsets),
                _like(time[order], part.time), values, valid, lists)


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
