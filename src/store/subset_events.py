"""Building a subset's columns and event partitions in a target layout (`store.subset`).

Events reach a subset as *pieces*: one base partition's events of the subset's profiles (in
(profile, time, arrival) order already), or the appended events (the delta's and the new
batches', in arrival order). Pieces go to the target partition holding their type, are put in
(row, time, arrival) order, and become columns with exactly the target's fields, validity
arrays, dictionary sharing and read-only flags, unless the data needs more (`store.subset`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeAlias

import numba
import numpy as np
import pyarrow as pa

from store.columns import (
    Column,
    column_from_arrow,
    concat_columns,
    empty_column,
    numpy_dtype,
    unify_dictionaries,
)
from store.events import EventStore, Partition
from store.layout import ColumnLayout, Layout, needs_valid
from store.schema import DType, Kind

__all__ = [
    "NONE_KEPT",
    "Piece",
    "Plan",
    "Since",
    "Strings",
    "SubsetEvents",
    "appended_piece",
    "arrow_column",
    "base_pieces",
    "build_events",
    "concat",
    "earliest_kept",
    "finish",
    "keeps",
    "ranges",
    "shrink",
]

_SMALL = 1 << 16  # dictionaries up to this size are kept as numpy strings for fast picks
_FEW = 256  # strings up to this many are merged in plain Python
_ALL, NONE_KEPT = np.iinfo(np.int64).min, np.iinfo(np.int64).max  # limits all / no events meet

# Which events a subset keeps: event type -> the earliest time kept; the key None stands for
# every type not named (and events without a type); None keeps every event.
Since: TypeAlias = "Mapping[str | None, int] | None"


class Strings:
    """Picks entries of a store's dictionaries; small ones are cached as numpy strings
    (a pick is then one `pa.array`, three times cheaper than Arrow's ``take``)."""

    def __init__(self) -> None:
        self._cache: dict[int, tuple[pa.Array, np.ndarray]] = {}
        self._picks: dict[tuple[int, bytes], pa.Array] = {}  # a few strings: the same array

    def take(self, dictionary: pa.Array, used: np.ndarray) -> pa.Array:
        if len(dictionary) > _SMALL:
            return dictionary.take(pa.array(used, pa.int64()))
        hit = self._cache.get(id(dictionary))
        if hit is None or hit[0] is not dictionary:
            hit = (dictionary, dictionary.to_numpy(zero_copy_only=False))
            self._cache[id(dictionary)] = hit
            self._picks.clear()  # keyed by ids, of which this one is new
        if len(used) > 2:
            return pa.array(hit[1][used], pa.string())
        key = (id(dictionary), used.tobytes())
        pick = self._picks.get(key)
        if pick is None:
            if len(self._picks) > 4096:
                self._picks.clear()
            pick = self._picks[key] = pa.array(hit[1][used], pa.string())
        return pick


def shrink(col: Column, strings: Strings | None = None) -> Column:
    """``col`` with a dictionary of just the strings it holds (sorted, as it was); pass
    ``strings`` for a dictionary of the store (not for one made on the way)."""
    if col.dictionary is None:
        return col
    codes = col.values
    size = len(col.dictionary)
    if len(codes) > 32 and size <= len(codes):  # a count per entry: linear, no sort or search
        seen = np.bincount(codes + 1, minlength=size + 1)[1:] > 0  # (+1: nulls are -1)
        if seen.all():
            return col
        used = np.flatnonzero(seen)
        recoded = (np.cumsum(seen, dtype=np.int32) - 1)[codes]
    else:
        used = unique(codes[codes >= 0] if col.offsets is None else codes)
        if len(used) == size:
            return col
        recoded = np.searchsorted(used, codes).astype(np.int32)
    if col.offsets is None:
        recoded[codes < 0] = -1
    dictionary = (strings.take(col.dictionary, used) if strings is not None
                  else col.dictionary.take(pa.array(used, pa.int64())))
    return Column(col.dtype, recoded, col.valid, col.offsets, dictionary)


def unique(values: np.ndarray) -> np.ndarray:
    """``np.unique(values)``, faster for the few values of a subset's column."""
    if len(values) > 32:
        return np.unique(values)
    return np.array(sorted(set(values.tolist())), values.dtype)


def unify(dictionaries: list[pa.Array]) -> tuple[pa.Array, list[np.ndarray]]:
    """`store.columns.unify_dictionaries`, in plain Python for a subset's few strings."""
    if sum(len(d) for d in dictionaries) > _FEW:
        return unify_dictionaries(dictionaries)
    lists = [d.to_pylist() for d in dictionaries]
    merged = sorted({x for values in lists for x in values})  # code point order = UTF-8's
    where = {x: i for i, x in enumerate(merged)}
    return pa.array(merged, pa.string()), [
        np.array([where[x] for x in values], np.int32) for values in lists
    ]


def recode(col: Column, dictionary: pa.Array, remap: np.ndarray | None) -> Column:
    """``col`` over ``dictionary``, its codes mapped by ``remap`` (None: unchanged)."""
    values = col.values
    if remap is not None and len(remap) and len(values):
        values = remap[values] if col.offsets is not None else np.where(
            values < 0, -1, remap[np.maximum(values, 0)]).astype(np.int32)
    return Column(col.dtype, values, col.valid, col.offsets, dictionary)


def concat(columns: list[Column]) -> Column:
    """`store.columns.concat_columns`, with `unify` for string dictionaries."""
    first = columns[0]
    if len(columns) == 1 or first.dtype.kind is not Kind.STRING:
        return columns[0] if len(columns) == 1 else concat_columns(columns)
    dictionaries = [c.dictionary for c in columns if c.dictionary is not None]
    merged = dictionaries[0]
    if any(d is not merged for d in dictionaries):
        merged, remaps = unify(dictionaries)
        columns = [recode(c, merged, r) for c, r in zip(columns, remaps, strict=True)]
    valid = None
    if any(c.valid is not None for c in columns):
        valid = np.concatenate([c.valid if c.valid is not None else np.ones(len(c), bool)
                                for c in columns])
        valid = None if valid.all() else valid
    offsets = None
    if first.offsets is not None:
        sizes = [c.offsets[1:] - c.offsets[0] for c in columns if c.offsets is not None]
        bases = np.cumsum([0, *(int(z[-1]) if len(z) else 0 for z in sizes)])
        offsets = np.concatenate([np.zeros(1, np.int64), *(z + b for z, b in zip(
            sizes, bases, strict=False))])
    values = np.concatenate([c.values for c in columns])
    return Column(first.dtype, values, valid, offsets, merged)


def arrow_column(array: pa.Array | pa.ChunkedArray, dtype: DType, name: str) -> Column:
    """`store.columns.column_from_arrow` of a normalized batch's column (canonical types,
    no NaN), cheaper for the few rows of a subset: numbers straight from Arrow's buffers,
    a few strings encoded in plain Python (Arrow's conversions cost ~0.05 ms a column)."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if dtype.is_list or len(array) > _FEW:
        return column_from_arrow(array, dtype, name)
    if dtype.kind is not Kind.STRING:
        values, valid = _primitive(array, numpy_dtype(dtype.kind))
        return Column(dtype, values, valid)
    values = array.to_pylist()
    merged = sorted({v for v in values if v is not None})  # code point order = UTF-8's
    where = {v: i for i, v in enumerate(merged)}
    codes = np.array([-1 if v is None else where[v] for v in values], np.int32)
    valid = codes >= 0 if array.null_count else None
    return Column(dtype, codes, valid, None, pa.array(merged, pa.string()))


def _primitive(array: pa.Array, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray | None]:
    """(values with nulls as 0, validity or None) of a fixed-width Arrow array."""
    n, offset = len(array), array.offset
    bitmap, data = array.buffers()[:2]
    if pa.types.is_boolean(array.type):
        bits = np.unpackbits(np.frombuffer(data, np.uint8), bitorder="little")
        values = bits[offset : offset + n].astype(bool)
    else:
        values = np.frombuffer(data, dtype, count=n, offset=offset * dtype.itemsize).copy()
    if not array.null_count:
        return values, None
    bits = np.unpackbits(np.frombuffer(bitmap, np.uint8), bitorder="little")
    valid = bits[offset : offset + n].astype(bool)
    values[~valid] = 0
    return values, valid


def finish(col: Column, want: ColumnLayout | None, mapped: bool) -> Column:
    """``col`` with the validity array and read-only arrays that ``want`` has (a column the
    target lacks is read-only when the target's arrays are: ``mapped``)."""
    if col.valid is None and want is not None and want.valid:
        col = Column(col.dtype, col.values, np.ones(len(col), bool), col.offsets, col.dictionary)
    if want.readonly if want is not None else mapped:
        freeze(col.values, col.valid, col.offsets)
    return col


def freeze(*arrays: np.ndarray | None) -> None:
    for a in arrays:
        if a is not None and a.flags.writeable:
            a.flags.writeable = False


def ranges(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``lo[0]..hi[0]-1, lo[1]..hi[1]-1, ...`` as one int64 array."""
    if len(lo) == 1:
        return np.arange(lo[0], hi[0], dtype=np.int64)
    counts = hi - lo
    ends = np.cumsum(counts)
    return np.repeat(lo - (ends - counts), counts) + np.arange(int(ends[-1]) if len(ends) else 0)


@dataclass(eq=False)
class Plan:
    """A target layout prepared for building (made once per layout, see `store.subset`)."""

    layout: Layout
    profile: dict[str, ColumnLayout]
    parts: list[dict[str, ColumnLayout]]  # each partition's columns by name
    where: dict[str, int]  # type → partition
    shared: bool  # each field's partitions share one dictionary (a store built in memory)
    groups: dict[str, int]  # when shared: the group (first partition) of each field
    empty: list[dict[str, Column]]  # each partition's columns when it has no events
    mapped: bool  # the target's arrays are read-only
    _empty_parts: dict[tuple[int, int], Partition] = field(default_factory=dict)

    def empty_partition(self, i: int, m: int) -> Partition:
        """Partition ``i`` without events for ``m`` profiles (cached: it is read-only data
        unless the target's arrays are writable, and nothing writes to a store's arrays)."""
        found = self._empty_parts.get((i, m))
        if found is None:
            p = self.layout.partitions[i]
            found = Partition(p.types, np.zeros(m + 1, p.offsets), np.zeros(0, np.int64),
                              self.empty[i])
            if p.readonly:
                freeze(found.offsets, found.time)
            if m <= 1024:
                if len(self._empty_parts) > 256:
                    self._empty_parts.clear()
                self._empty_parts[(i, m)] = found
        return found

    @classmethod
    def of(cls, target: Layout, fields: Mapping[str, DType]) -> Plan:
        parts = [{c.name: c for c in p.columns} for p in target.partitions]
        owners: dict[str, set[int]] = {}
        for cols in parts:
            for c in cols.values():
                if c.dictionary is not None:
                    owners.setdefault(c.name, set()).add(c.dictionary)
        dictionaries: dict[tuple[str, int], pa.Array] = {}
        empty = []
        for cols in parts:
            columns = {}
            for name, want in cols.items():
                col = empty_column(fields[name], 0)
                if want.dictionary is not None:  # one object per group, as the target has
                    d = dictionaries.setdefault((name, want.dictionary), pa.array([], pa.string()))
                    col = Column(col.dtype, col.values, col.valid, col.offsets, d)
                columns[name] = finish(col, want, target.mapped)
            empty.append(columns)
        return cls(
            target, {c.name: c for c in target.profile}, parts,
            {t: i for i, p in enumerate(target.partitions) for t in p.types or ()},
            all(len(o) == 1 for o in owners.values()),
            {name: min(o) for name, o in owners.items()}, empty, target.mapped,
        )


# ------------------------------------------------------------------ event pieces


Piece = tuple[pa.Table, np.ndarray, np.ndarray]  # a batch's table, rows of it, subset rows


@dataclass(eq=False)
class _Piece:
    """Events bound for one partition: rows of a base partition or of the appended events."""

    source: Partition | Mapping[str, Column]
    pos: np.ndarray  # positions in the source
    rows: np.ndarray  # the subset row of each event
    time: np.ndarray
    rank: np.ndarray  # arrival order: base events first, then appended ones in order
    codes: np.ndarray  # the events' types, as codes
    names: dict[int, str] | None  # the type of each code used; None: no type field

    @property
    def ordered(self) -> bool:
        """Whether the events are in (row, time, arrival) order (a base partition's are)."""
        return isinstance(self.source, Partition)

    def part(self, mask: np.ndarray) -> _Piece:
        return _Piece(self.source, self.pos[mask], self.rows[mask], self.time[mask],
                      self.rank[mask], self.codes[mask], self.names)


def base_pieces(events: EventStore, index: np.ndarray, base: int, strings: Strings,
                since: Since = None) -> list[_Piece]:
    """The base events of the subset's profiles (``index``, those below ``base``), those
    ``since`` keeps (`keeps`)."""
    rows = np.flatnonzero(index < base)
    profile = index[rows]
    out = []
    for part in events.partitions:
        if not len(part) or not len(profile):
            continue
        lo = np.asarray(part.offsets[profile], np.int64)
        hi = np.asarray(part.offsets[profile + 1], np.int64)
        per_event = False
        if since is not None and part.types is None and events.type_field is not None:
            per_event = True  # a partition of any types: each event's own decides
        elif since is not None:
            typed = part.types if events.type_field is not None else None
            limits = {earliest_kept(since, t) for t in (typed or [None])}
            if limits == {NONE_KEPT}:
                continue
            if len(limits) == 1:  # a profile's times rise: cut each range at the limit
                limit = limits.pop()
                if limit > _ALL:
                    lo = _trim(np.asarray(part.time), lo, hi, limit)
            else:
                per_event = True
        pos = ranges(lo, hi)
        if not len(pos):
            continue
        owner = np.repeat(rows, hi - lo)
        if per_event:
            col = part.columns[events.type_field]  # type: ignore[index]
            assert col.dictionary is not None
            keep = keeps(since, np.asarray(col.values[pos]), np.asarray(part.time[pos]),
                         dict(enumerate(col.dictionary.to_pylist())))
            pos, owner = pos[keep], owner[keep]
        # Without seq no profile has ties across partitions: positions order the rest.
        rank = np.asarray(part.seq[pos], np.int64) if part.seq is not None else pos
        names: dict[int, str] | None = None
        codes = np.zeros(len(pos), np.int32)
        if events.type_field is not None and part.types is not None:
            if len(part.types) == 1:
                names = {0: part.types[0]}
            else:
                col = part.columns[events.type_field]
                assert col.dictionary is not None
                codes = np.asarray(col.values[pos])
                used = unique(codes)
                names = dict(zip(used.tolist(), strings.take(col.dictionary, used).to_pylist(),
                                 strict=True))
        out.append(_Piece(part, pos, owner, np.asarray(part.time[pos]), rank, codes, names))
    return out


def earliest_kept(since: Mapping[str | None, int], event_type: str | None) -> int:
    """The earliest time kept of events of ``event_type`` (None: untyped or no type)."""
    found = since.get(event_type) if event_type is not None else None
    if found is None:
        found = since.get(None)
    return NONE_KEPT if found is None else int(found)


def keeps(since: Since, codes: np.ndarray, time: np.ndarray,
          names: dict[int, str] | None) -> np.ndarray:
    """Which events ``since`` keeps: it maps event types to the earliest time kept (the key
    None: every type not named, and events with no type); an event of a type it does not
    cover is left out. ``codes`` are the events' types as codes of ``names`` (None: the
    events carry no type)."""
    if since is None:
        return np.ones(len(time), bool)
    if names is None:
        return time >= earliest_kept(since, None)
    table = np.full(max(names, default=-1) + 2, earliest_kept(since, None), np.int64)  # [0]: code -1
    for code, name in names.items():
        table[code + 1] = earliest_kept(since, name)
    return time >= table[np.asarray(codes, np.int64) + 1]


@numba.njit(cache=True, nogil=True)
def _trim(time, lo, hi, limit):  # type: ignore[no-untyped-def]
    """Each range's first position with a time at or after ``limit`` (a binary search in
    each profile's rising times), so only the kept events are gathered."""
    out = lo.copy()
    for i in range(len(lo)):
        a, b = lo[i], hi[i]
        while a < b:
            mid = (a + b) >> 1
            if time[mid] < limit:
                a = mid + 1
            else:
                b = mid
        out[i] = a
    return out


def appended_piece(events: EventStore, appended: list[Piece], first_rank: int,
                   since: Since = None) -> _Piece | None:
    """The appended events of the subset's profiles that ``since`` keeps, in arrival order
    (None: none kept)."""
    tables = [t if len(rows) == t.num_rows else t.take(pa.array(rows))  # rows: ascending
              for t, rows, _ in appended]
    table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
    rows = np.concatenate([r for _, _, r in appended])
    time, _ = _primitive(table.column(events.time_field).combine_chunks(), np.dtype(np.int64))
    columns = {name: arrow_column(table.column(name), dtype, name)
               for name, dtype in events.fields.items()}
    n = len(rows)
    names: dict[int, str] | None = None
    codes = np.zeros(n, np.int32)
    if events.type_field is not None:
        typ = columns[events.type_field]
        assert typ.dictionary is not None
        codes, names = typ.values, dict(enumerate(typ.dictionary.to_pylist()))
    piece = _Piece(columns, np.arange(n), rows, time, first_rank + np.arange(n), codes, names)
    if since is None:
        return piece
    keep = keeps(since, codes, time, names)
    return piece if keep.all() else piece.part(keep) if keep.any() else None


# ------------------------------------------------------------------ partitions


@dataclass(eq=False)
class _Built:
    """A partition being built: its events in order, and its columns."""

    types: tuple[str, ...] | None
    want: dict[str, ColumnLayout] | None  # the target partition's columns; None: a new one
    rows: np.ndarray
    time: np.ndarray
    rank: np.ndarray
    columns: dict[str, Column]
    finished: set[str] = field(default_factory=set)  # columns already in their final form


def build_events(events: EventStore, plan: Plan, pieces: list[_Piece], m: int,
                 strings: Strings) -> SubsetEvents:
    """The subset's partitions (``m`` profiles) from ``pieces``, in ``plan``'s layout."""
    target = plan.layout
    types = [p.types for p in target.partitions]
    wants: list[dict[str, ColumnLayout] | None] = list(plan.parts)
    where = dict(plan.where)
    if events.type_field is None:
        if None not in types:  # pragma: no cover - `like` a layout with a type field
            types.append(None)
            wants.append(None)
    else:  # types no partition holds: a partition each, in type order
        present = {t for p in pieces if p.names is not None for t in p.names.values()}
        for t in sorted(present - where.keys()):
            where[t] = len(types)
            types.append((t,))
            wants.append(None)
    routed: list[list[_Piece]] = [[] for _ in types]
    split = False
    for piece in pieces:
        if piece.names is None:
            routed[types.index(None)].append(piece)
            continue
        targets = {where[t] for t in piece.names.values()}
        if len(targets) == 1:
            routed[targets.pop()].append(piece)
            continue
        split = split or piece.ordered
        used = np.fromiter(piece.names, np.int64)
        dest = np.asarray([where[t] for t in piece.names.values()])[np.argsort(used)]
        per_event = dest[np.searchsorted(np.sort(used), piece.codes)]
        for d in np.unique(per_event):
            routed[int(d)].append(piece.part(per_event == d))
    built = [
        _partition(events, t, want, ps, empty=plan.empty[i] if i < len(plan.empty) else {},
                   strings=strings)
        for i, (t, want, ps) in enumerate(zip(types, wants, routed, strict=True))
    ]
    _share_dictionaries(built, events, plan)
    ties = split or any(p.seq is not None for p in events.partitions) or any(
        not p.ordered for p in pieces)
    seqs = _seq(built) if ties else [None] * len(built)
    parts = []
    for i, (b, seq) in enumerate(zip(built, seqs, strict=True)):
        if seq is None and not len(b.rows) and i < len(plan.empty) and len(b.columns) == len(
                plan.empty[i]) and all(b.columns[n] is c for n, c in plan.empty[i].items()):
            parts.append(plan.empty_partition(i, m))
            continue
        columns = {
            name: col if name in b.finished else finish(
                col, b.want.get(name) if b.want is not None else None, plan.mapped)
            for name, col in b.columns.items()
        }
        offsets_dtype = np.dtype(target.partitions[i].offsets if b.want is not None else np.int32)
        offsets = np.zeros(m + 1, offsets_dtype)
        if len(b.rows):
            np.cumsum(np.bincount(b.rows, minlength=m), out=offsets[1:])
        time = np.ascontiguousarray(b.time, np.int64)
        if target.partitions[i].readonly if b.want is not None else plan.mapped:
            freeze(offsets, time, seq)
        parts.append(Partition(b.types, offsets, time, columns, seq))
    return SubsetEvents(parts, dict(events.fields), events.time_field, events.type_field, m)


def _partition(events: EventStore, types: tuple[str, ...] | None,
               want: dict[str, ColumnLayout] | None, pieces: list[_Piece], *,
               empty: dict[str, Column], strings: Strings) -> _Built:
    """A partition's events in (row, time, arrival) order, with the target's fields."""
    if not pieces:
        none = np.zeros(0, np.int64)
        return _Built(types, want, none, none, none, dict(empty), set(empty))
    order = None
    if len(pieces) == 1 and pieces[0].ordered:
        rows, time, rank = pieces[0].rows, pieces[0].time, pieces[0].rank
    else:
        # Each piece in order (a base piece is already), then one merge of the runs.
        runs = [np.arange(len(p.rows)) if p.ordered else np.lexsort((p.rank, p.time, p.rows))
                for p in pieces]
        starts = np.cumsum([0, *(len(p.rows) for p in pieces)])
        pre = np.concatenate([r + s for r, s in zip(runs, starts, strict=False)])
        rows = np.concatenate([p.rows for p in pieces])[pre]
        time = np.concatenate([p.time for p in pieces])[pre]
        rank = np.concatenate([p.rank for p in pieces])[pre]
        merged = np.empty(len(pre), np.int64)
        merged[_merge_runs(rows, time, rank, starts)[0]] = np.arange(len(pre))
        order = pre[merged]
        rows, time, rank = rows[merged], time[merged], rank[merged]
    columns: dict[str, Column] = {}
    single = types is not None and len(types) == 1
    for name, dtype in events.fields.items():
        has = want is not None and name in want
        if name == events.type_field and single and not has:
            continue  # a single-type partition's type is a constant
        found = [_field(p, name, events, strings) for p in pieces]
        if all(c is None for c in found):
            if has:
                columns[name] = empty_column(dtype, len(rows))
            continue  # no event here has the field, and the layout has no column
        col = concat([c if c is not None else empty_column(dtype, len(p.rows))
                      for c, p in zip(found, pieces, strict=True)])
        if order is not None:
            col = col.take(order)
        if not has and col.valid is not None and not col.valid.any():
            continue
        columns[name] = col
    return _Built(types, want, rows, time, rank, columns)


def _field(piece: _Piece, name: str, events: EventStore, strings: Strings) -> Column | None:
    """Field ``name`` of ``piece``'s events, or None when they all lack it."""
    source = piece.source
    if isinstance(source, Partition):
        col = source.columns.get(name)
        if col is None:
            if name == events.type_field and source.types is not None and len(source.types) == 1:
                return Column(events.fields[name], np.zeros(len(piece.pos), np.int32), None,
                              None, pa.array(list(source.types), pa.string()))
            return None
        return shrink(col.take(piece.pos), strings)
    col = source[name]
    return col if len(piece.pos) == len(col) else shrink(col.take(piece.pos))


def _share_dictionaries(built: list[_Built], events: EventStore, plan: Plan) -> None:
    """One dictionary per group of partitions that share a field's in the target. A column
    the target lacks joins its field's group when the target shares dictionaries, else it
    is a group of its own."""
    for name, dtype in events.fields.items():
        if dtype.kind is not Kind.STRING:
            continue
        groups: dict[int, list[int]] = {}
        for i, b in enumerate(built):
            if name not in b.columns:
                continue
            want = b.want.get(name) if b.want is not None else None
            if want is not None and want.dictionary is not None:
                group = want.dictionary
            elif plan.shared:
                group = plan.groups.get(name, next(iter(groups), i))
            else:
                group = i
            groups.setdefault(group, []).append(i)
        seen: set[int] = set()
        for members in groups.values():
            cols = [built[i].columns[name] for i in members]
            dictionaries = [c.dictionary for c in cols]
            first = dictionaries[0]
            assert first is not None
            remaps: list[np.ndarray | None] = [None] * len(cols)
            dictionary = first
            if any(d is not first for d in dictionaries):
                dictionary, found = unify([d for d in dictionaries if d is not None])
                remaps = list(found)
            if id(dictionary) in seen:  # another group has this object: make it another
                dictionary = dictionary.slice(0)
            seen.add(id(dictionary))
            for i, col, remap in zip(members, cols, remaps, strict=True):
                if col.dictionary is dictionary:
                    continue
                recoded = recode(col, dictionary, remap)
                if name in built[i].finished:
                    wanted = built[i].want
                    recoded = finish(recoded, wanted.get(name) if wanted is not None else None,
                                     plan.mapped)
                built[i].columns[name] = recoded


def _seq(built: list[_Built]) -> list[np.ndarray | None]:
    """Each partition's ``seq`` when one profile has events of one millisecond in two of
    them, as `store.events.build_events` keeps it (merged views order such ties by it):
    each event's place in the (row, time, arrival) order of all of them."""
    none: list[np.ndarray | None] = [None] * len(built)
    if sum(1 for b in built if len(b.rows)) < 2:
        return none
    starts = np.cumsum([0, *(len(b.rows) for b in built)])
    place, ties = _merge_runs(np.concatenate([b.rows for b in built]),
                              np.concatenate([b.time for b in built]),
                              np.concatenate([b.rank for b in built]), starts)
    if not ties:
        return none
    seq = place.astype(np.int32 if len(place) < 2**31 else np.int64)
    return [seq[starts[i] : starts[i + 1]] for i in range(len(built))]


@numba.njit(cache=True, nogil=True)
def _merge_runs(rows, time, rank, starts):  # type: ignore[no-untyped-def]
    """Merge runs ``starts[i]:starts[i + 1]``, each in (row, time, rank) order: each
    element's place in the merged order, and whether two runs have an event of one row
    at one time (a tie across them). Linear in the elements for the few runs here, where a
    sort of the whole would be n log n."""
    runs = len(starts) - 1
    heads = starts[:-1].copy()
    place = np.empty(len(rows), np.int64)
    ties = False
    last_run, last_row, last_time = -1, -1, 0
    for j in range(len(rows)):
        best, b = -1, -1
        for k in range(runs):
            h = heads[k]
            if h == starts[k + 1]:
                continue
            if best < 0 or rows[h] < rows[b] or (rows[h] == rows[b] and (
                    time[h] < time[b] or (time[h] == time[b] and rank[h] < rank[b]))):
                best, b = k, h
        place[b] = j
        heads[best] += 1
        if best != last_run and rows[b] == last_row and time[b] == last_time:
            ties = True
        last_run, last_row, last_time = best, rows[b], time[b]
    return place, ties


@dataclass(eq=False)
class SubsetEvents(EventStore):
    """A subset's event partitions. Its merged views get the validity arrays the layout's
    rule gives (`store.layout`): a subset's partitions may hold all-true validity arrays,
    which merging would drop where the whole store's merged view keeps its own."""

    _padded: set[Partition] = field(default_factory=set, repr=False)

    def view(self, types: Iterable[str] | None = None) -> Partition:
        wanted = None if types is None else set(types)
        part = super().view(wanted)
        if part in self._padded or any(part is p for p in self.partitions) or not part.columns:
            return part
        holders = [p for p in self.partitions if wanted is None or self.type_field is None
                   or p.types is None or set(p.types) & wanted]
        columns = dict(part.columns)
        for name, col in columns.items():
            if col.valid is None and needs_valid(name, holders, self):
                columns[name] = Column(col.dtype, col.values, np.ones(len(col), bool),
                                       col.offsets, col.dictionary)
        padded = Partition(part.types, part.offsets, part.time, columns, part.seq)
        for key, cached in list(self._views.items()):
            if cached is part:
                self._views[key] = padded
        self._padded.add(padded)
        return padded
