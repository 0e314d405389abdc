"""A store's layout: every fact about its columns that a compiled kernel depends on.

The engine generates each kernel's source from the checked definitions and from the store's
*layout*, never from its data (literals are bound per run); Numba then compiles that source
for the types of the arrays it is called with. A streaming session evaluates segments over
small subsets of the profiles (`store.subset`) with the kernels compiled for the whole store,
so it needs to know when two stores are alike in every way that matters: `layout(a) ==
layout(b)` means a kernel's source generated for one is the source for the other, and the
arrays it binds have the same Numba types, so the compiled machine code is reused as is.

What `engine.codegen` reads, and so what a `Layout` holds:

* the schema's field names, types and roles (the checker types the IR from them, and the
  generator names the time and type fields): `profile`'s names and dtypes, `event_fields`,
  `profile_key`, `event_profile_key`, `event_time`, `event_type`;
* per profile column, whether it has a validity array (``Column.valid is not None``: the
  kernel reads ``valid[p]`` or writes ``True``); whether it is a list follows from its dtype;
* per event partition, in order: its ``types`` (which partitions `EventStore.view` merges
  for a segment's types, and the constant type of a single-type partition, which the
  generator folds into comparisons), which fields it carries as columns (a field it lacks
  is a constant null), and whether each has a validity array;
* per event string column, which other partitions' columns share its dictionary *object*:
  comparing one field of two event variables reads codes directly when the dictionaries are
  the same object and through a translation table otherwise (``codegen._same_dictionary``).
  A store built in memory shares each field's dictionary across partitions; a store opened
  from disk reads one copy per partition;
* what Numba's argument types add: whether the arrays are read-only (a memory-mapped store's
  are, and Numba compiles ``readonly array(int64, 1d, C)`` apart from ``array(int64, 1d,
  C)``), and the dtype of each partition's offsets (int32 below 2**31 events).

A view merging several partitions is built on demand. Its facts follow from the partitions':
its types are the union, it carries every field, and a field has a validity array when some
merged partition's column has one or lacks the field (those events read null). A store
loaded from data keeps to that rule because its validity arrays exist only where a value is
missing; `store.subset.SubsetEvents` keeps to it for subsets, whose arrays may be all true.

Not part of a layout: ``Partition.seq`` (only `merge_partitions` reads it, to order ties;
no kernel does), the number of profiles or events, dictionary contents, the values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from store.columns import Column
from store.events import EventStore, Partition
from store.schema import DType, Kind

if TYPE_CHECKING:
    from store.profile_store import ProfileStore

__all__ = ["ColumnLayout", "Layout", "PartitionLayout", "layout", "needs_valid"]


@dataclass(frozen=True)
class ColumnLayout:
    """One column's facts: name, type, validity array, read-only arrays, dictionary sharing."""

    name: str
    dtype: DType
    valid: bool  # has a validity array
    readonly: bool  # its arrays are read-only (memory-mapped)
    dictionary: int | None = None  # event strings: the first partition sharing its dictionary


@dataclass(frozen=True)
class PartitionLayout:
    """One event partition's facts."""

    types: tuple[str, ...] | None
    columns: tuple[ColumnLayout, ...]  # by name
    offsets: str  # the offsets' numpy dtype: "int32" or "int64"
    readonly: bool  # offsets and time are read-only

    def column(self, name: str) -> ColumnLayout | None:
        return next((c for c in self.columns if c.name == name), None)


@dataclass(frozen=True)
class Layout:
    """Everything a kernel's source and its arguments' Numba types depend on (see module)."""

    profile_key: str | None
    event_profile_key: str | None
    event_time: str | None
    event_type: str | None
    event_fields: tuple[tuple[str, DType], ...]  # the schema's, by name
    profile: tuple[ColumnLayout, ...]  # by name
    partitions: tuple[PartitionLayout, ...]  # in the store's order

    @property
    def mapped(self) -> bool:
        """Whether the store's arrays are read-only (as when memory-mapped from disk)."""
        return any(c.readonly for c in self.profile) or any(p.readonly for p in self.partitions)

    def same_schema(self, other: Layout) -> bool:
        """Whether ``other`` describes a store of the same schema (any partitioning)."""
        return (
            self.profile_key, self.event_profile_key, self.event_time, self.event_type,
            self.event_fields, [(c.name, c.dtype) for c in self.profile],
        ) == (
            other.profile_key, other.event_profile_key, other.event_time, other.event_type,
            other.event_fields, [(c.name, c.dtype) for c in other.profile],
        )


def layout(store: ProfileStore) -> Layout:
    """The layout of ``store``'s base (the columns the kernels scan; the delta is not)."""
    s = store.schema
    profile = tuple(
        column_layout(name, store.profiles[name]) for name in sorted(store.profiles)
    )
    return Layout(
        s.profile_key, s.event_profile_key, s.event_time, s.event_type,
        tuple(sorted((name, f.dtype) for name, f in s.events.items())),
        profile, partition_layouts(store.events.partitions),
    )


def partition_layouts(partitions: list[Partition]) -> tuple[PartitionLayout, ...]:
    first: dict[tuple[str, int], int] = {}  # (field, id of a dictionary) → first partition
    out = []
    for i, part in enumerate(partitions):
        columns = []
        for name in sorted(part.columns):
            col = part.columns[name]
            owner = None
            if col.dictionary is not None:
                owner = first.setdefault((name, id(col.dictionary)), i)
            columns.append(column_layout(name, col, owner))
        out.append(PartitionLayout(part.types, tuple(columns), np.dtype(part.offsets.dtype).name,
                                   not part.time.flags.writeable))
    return tuple(out)


def column_layout(name: str, col: Column, dictionary: int | None = None) -> ColumnLayout:
    return ColumnLayout(name, col.dtype, col.valid is not None, not col.values.flags.writeable,
                        dictionary if col.dtype.kind is Kind.STRING else None)


def needs_valid(name: str, parts: list[Partition], events: EventStore) -> bool:
    """Whether a view merging ``parts`` has a validity array for field ``name`` in a store
    loaded from data: some part's column has one, or some part lacks the field."""
    for part in parts:
        col: Column | None = part.columns.get(name)
        if col is not None:
            if col.valid is not None:
                return True
        elif not (name == events.type_field and part.types is not None
                  and len(part.types) == 1):
            return True
    return False

