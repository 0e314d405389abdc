"""Event histories: every profile's events in time order, partitioned by event type.

Each partition is a CSR table: ``offsets[p]:offsets[p + 1]`` is profile ``p``'s slice of the
partition's columns (its events of those types, sorted by time; ties keep input order).
When one profile has events of the same millisecond in different partitions, each partition
also keeps ``seq``, its events' positions in the whole store's (profile, time, input) order,
so that a view merging partitions restores their input order; otherwise it costs nothing.

Why partitions: the baselines (performance-baselines.md §5) measured a segment on a rare
type (purchases, 1.5% of events) at 1.5 ms on a purchase-only CSR against 52-100 ms on one
CSR of all events, because a scan reads only its type's bytes. Each partition costs one
offsets array per profile (4 bytes a profile while a partition holds < 2**31 events), so
the most frequent types get their own partitions and, when there are more types than that
overhead allows (offsets within a quarter of the event bytes), the rarest share one mixed
partition that keeps the type column. Stores without an event-type field have one partition.

The compiler asks `EventStore.view` for the events of the types a segment reads; which
partition holds them is this module's business.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from store.columns import Column, concat_columns, empty_column
from store.schema import DType

__all__ = [
    "EventStore",
    "Partition",
    "build_events",
    "choose_partitions",
    "merge_partitions",
    "profile_of_events",
    "sort_order",
]

OFFSET_BUDGET = 0.25  # offsets may cost at most this share of the event columns' bytes


@dataclass(frozen=True, eq=False)
class Partition:
    """The events of ``types`` (all events if ``types`` is None), CSR by profile."""

    types: tuple[str, ...] | None
    offsets: np.ndarray  # int32 or int64, length profiles + 1
    time: np.ndarray  # int64 ms, sorted within each profile's slice
    columns: Mapping[str, Column]  # the other event fields; the type field if mixed
    seq: np.ndarray | None = None  # positions in the store's event order, if ties need it

    def __len__(self) -> int:
        return len(self.time)

    @property
    def nbytes(self) -> int:
        return self.offsets.nbytes + self.time.nbytes + sum(
            c.nbytes for c in self.columns.values()
        ) + (0 if self.seq is None else self.seq.nbytes)

    def slice_of(self, profile: int) -> slice:
        return slice(int(self.offsets[profile]), int(self.offsets[profile + 1]))


@dataclass(eq=False)
class EventStore:
    """All partitions of a store, and the schema's event field names."""

    partitions: list[Partition]
    fields: Mapping[str, DType]  # every stored event field except profile key and time
    time_field: str
    type_field: str | None
    profiles: int
    _views: dict[tuple[str, ...] | None, Partition] = field(default_factory=dict, repr=False)

    @property
    def types(self) -> list[str]:
        return sorted(t for p in self.partitions for t in (p.types or ()))

    def __len__(self) -> int:
        return sum(len(p) for p in self.partitions)

    @property
    def nbytes(self) -> int:
        return sum(p.nbytes for p in self.partitions)

    def view(self, types: Iterable[str] | None = None) -> Partition:
        """One partition holding every event of ``types`` (None: of every type), CSR by profile.

        The partition may hold other types' events too (then it has the type column); the
        caller filters by type as its predicate says. Views spanning partitions are merged
        once and cached.
        """
        wanted = None if types is None else tuple(sorted(set(types)))
        if wanted is not None and self.type_field is not None:
            holders = [p for p in self.partitions if p.types is None or set(p.types) & set(wanted)]
        else:
            holders = list(self.partitions)
        if len(holders) == 1:
            return holders[0]
        if not holders:
            return self._empty()
        key = None if len(holders) == len(self.partitions) else wanted
        if key not in self._views:
            self._views[key] = merge_partitions(holders, self)
        return self._views[key]

    def _empty(self) -> Partition:
        return Partition(
            (), np.zeros(self.profiles + 1, np.int32), np.zeros(0, np.int64), {}
        )

    def field(self, part: Partition, name: str) -> Column:
        """Field ``name`` of ``part``: its column, a constant type, or nulls if absent."""
        return _field(part, name, self.fields[name], self)

    def to_arrow_columns(self) -> tuple[np.ndarray, np.ndarray, dict[str, pa.Array]]:
        """(profile index, time ms, other fields) of every event, in (profile, time) order."""
        merged = self.view(None)
        profile = profile_of_events(merged.offsets)
        arrays = {name: _field(merged, name, dtype, self).to_arrow()
                  for name, dtype in self.fields.items()}
        return profile, merged.time, arrays


def _field(part: Partition, name: str, dtype: DType, store: EventStore) -> Column:
    """A field of ``part``; a single-type partition's type field is a constant."""
    if name in part.columns:
        return part.columns[name]
    if name == store.type_field and part.types is not None and len(part.types) == 1:
        return Column(
            dtype, np.zeros(len(part), np.int32), None, None, pa.array(list(part.types))
        )
    return empty_column(dtype, len(part))


def merge_partitions(parts: list[Partition], store: EventStore) -> Partition:
    """One CSR partition with the events of ``parts`` in (profile, time) order."""
    counts = np.zeros(store.profiles, np.int64)
    for p in parts:
        counts += _counts(p.offsets)
    offsets = _offsets(counts)
    profile = np.concatenate([profile_of_events(p.offsets) for p in parts])
    time = np.concatenate([p.time for p in parts])
    seq = None
    if all(p.seq is not None for p in parts):  # ties across parts: restore their input order
        seq = np.concatenate([p.seq for p in parts if p.seq is not None])
        order = np.argsort(seq, kind="stable")
        seq = seq[order]
    else:  # ties only within a part, whose order the stable sort keeps
        order = sort_order(profile, time)
    names = list(store.fields)
    columns = {
        name: concat_columns([_field(p, name, store.fields[name], store) for p in parts]).take(
            order
        )
        for name in names
    }
    types: tuple[str, ...] | None = None
    if all(p.types is not None for p in parts):
        types = tuple(sorted(t for p in parts for t in p.types or ()))
    return Partition(types, offsets, time[order], columns, seq)


def _counts(offsets: np.ndarray) -> np.ndarray:
    """Events per profile of a CSR offsets array."""
    wide = np.asarray(offsets, dtype=np.int64)
    return wide[1:] - wide[:-1]


def profile_of_events(offsets: np.ndarray) -> np.ndarray:
    """Each event's profile index, from a CSR offsets array."""
    counts = _counts(offsets)
    return np.repeat(np.arange(len(counts), dtype=np.int64), counts)


def sort_order(profile: np.ndarray, time: np.ndarray) -> np.ndarray:
    """The stable order of events by (profile, time); input order breaks ties."""
    if len(profile) == 0:
        return np.zeros(0, np.int64)
    lo = int(time.min())
    span = int(time.max()) - lo
    bits = max(span.bit_length(), 1)
    if int(profile.max()).bit_length() + bits <= 63:
        key = (profile.astype(np.int64) << bits) | (time - lo)
        if np.all(key[1:] >= key[:-1]):
            return np.arange(len(key), dtype=np.int64)  # already sorted: the common case
        return np.argsort(key, kind="stable")
    return np.lexsort((time, profile))  # pragma: no cover - times spanning > 2**40 ms


def _offsets(counts: np.ndarray) -> np.ndarray:
    total = int(counts.sum())
    dtype = np.int32 if total < 2**31 else np.int64
    offsets = np.zeros(len(counts) + 1, dtype)
    np.cumsum(counts, out=offsets[1:])
    return offsets


def choose_partitions(
    type_counts: Mapping[str, int], profiles: int, bytes_per_event: int
) -> list[tuple[str, ...]]:
    """Which types share a partition: frequent types alone, the rarest together if needed."""
    ranked = sorted(type_counts, key=lambda t: (-type_counts[t], t))
    if not ranked:
        return []
    total_events = sum(type_counts.values())
    per_partition = 4 * (profiles + 1)
    budget = OFFSET_BUDGET * total_events * max(bytes_per_event, 1)
    most = max(1, int(budget // per_partition))
    if len(ranked) <= most:
        return [(t,) for t in ranked]
    own = ranked[: most - 1]
    return [(t,) for t in own] + [tuple(sorted(ranked[most - 1 :]))]


def build_events(
    profile: np.ndarray,
    time: np.ndarray,
    columns: Mapping[str, Column],
    *,
    fields: Mapping[str, DType],
    time_field: str,
    type_field: str | None,
    profiles: int,
) -> EventStore:
    """Sort events by (profile, time) and split them into type partitions."""
    order = sort_order(profile, time)
    profile, time = profile[order], time[order]
    columns = {name: col.take(order) for name, col in columns.items()}
    store = EventStore([], dict(fields), time_field, type_field, profiles)
    if type_field is None or len(time) == 0:
        counts = np.bincount(profile, minlength=profiles)
        store.partitions.append(Partition(None if type_field is None else (), _offsets(counts),
                                          time, columns))
        return store
    type_col = columns[type_field]
    assert type_col.dictionary is not None
    codes = type_col.values
    per_code = np.bincount(codes[codes >= 0], minlength=len(type_col.dictionary))
    names = type_col.dictionary.to_pylist()
    type_counts = {names[i]: int(n) for i, n in enumerate(per_code) if n}
    event_bytes = 8 + sum(c.nbytes for c in columns.values()) // max(len(time), 1)
    groups = choose_partitions(type_counts, profiles, event_bytes)
    group_of = np.zeros(len(time), np.int32)
    for g, group in enumerate(groups):
        group_of[np.isin(codes, [names.index(t) for t in group])] = g
    # Events of one profile and millisecond in different partitions: keep their order.
    tie = (profile[1:] == profile[:-1]) & (time[1:] == time[:-1])
    split_ties = bool(np.any(tie & (group_of[1:] != group_of[:-1])))
    for g, group in enumerate(groups):
        rows = np.flatnonzero(group_of == g)
        # Every partition shares each field's dictionary, so a literal has one code. A field
        # no event of the partition has is left out (readers see nulls): Complete Journey's
        # transactions would otherwise carry 34 MB of null campaign fields.
        kept = {
            name: taken
            for name, col in columns.items()
            if name != type_field or len(group) > 1
            if (taken := col.take(rows)).valid is None or taken.valid.any()
        }
        counts = np.bincount(profile[rows], minlength=profiles)
        seq = rows.astype(np.int32 if len(time) < 2**31 else np.int64) if split_ties else None
        store.partitions.append(Partition(group, _offsets(counts), time[rows], kept, seq))
    return store
