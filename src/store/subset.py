"""Subsets for streaming: a few profiles of a store, with new data, laid out like the store.

A streaming session evaluates segments for the handful of profiles an incoming batch touches
(or whose time windows expire) with the kernels compiled for the whole store. `subset` builds
a small `ProfileStore` of just those profiles: each one's attributes (base, the store's
delta upserts, then the new upserts; the last write wins) and its complete event history
(base, delta, then the new events, in time order; equal times keep arrival order), exactly
what ``store.append(...)`` followed by ``store.compacted()`` holds for them; or, with
``since``, the part of it a caller asks for (per event type, from an instant on).

Its layout (`store.layout`) is the store's whenever the data allows: the same partitions
with the same ``types`` in the same order, even if empty here; the same fields per
partition; validity arrays (all true if need be) where the store has them; read-only arrays
and offset dtypes as the store's. So ``layout(sub.store) == layout(store)`` and the engine
reuses the store's kernels, machine code included. Data the store's layout cannot hold
widens it minimally, and the caller compiles for the new layout:

* a null where the store's column has no validity array: that column gets one;
* a field a partition does not carry (all its events lack it) now has a value: the
  partition gets the column;
* an event type no partition holds: a new single-type partition per such type, after the
  store's ones, in type order.

Ties need no widening: ``Partition.seq`` is not part of a layout (no kernel reads it), and a
subset keeps it, as a loaded store does, when one profile has events of one millisecond in
different partitions.

Strings: each column gets its own small sorted dictionary of the strings it holds (kernels
bind literals to codes per store, so small dictionaries keep binding cheap); the partitions
of a field share one dictionary object where the store's do (see `store.layout`).

Cost: gathers by CSR offsets (numpy), never a scan of the store. The delta's batches are
indexed by profile once per store (`_State`, cached), so a call costs little more with a
long delta.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import pyarrow as pa

from store.columns import Column, column_from_arrow, empty_column
from store.delta import Batch, Delta, normalize_batch
from store.layout import Layout, layout
from store.schema import Kind
from store.subset_events import (
    Piece,
    Plan,
    Since,
    Strings,
    SubsetEvents,
    appended_piece,
    arrow_column,
    base_pieces,
    build_events,
    concat,
    finish,
    ranges,
    shrink,
)

if TYPE_CHECKING:
    from store.profile_store import ProfileStore

__all__ = ["Layout", "Since", "Subset", "SubsetEvents", "as_table", "delta_history", "layout",
           "subset"]

Rows: TypeAlias = "pa.Table | Sequence[Mapping[str, Any]]"  # a table, or rows as dicts


@dataclass(frozen=True, eq=False)
class Subset:
    """A subset: the small store, and where each of its profiles is in the big one.

    ``store.keys[i]`` is row ``i``'s key. Rows ``0 .. selected - 1`` are the requested
    profiles in the order asked; the rest are keys the new batches introduce, in the order
    ``store.append`` numbers them. ``index[i]`` is row ``i``'s index in the big store's
    numbering: its base profiles, then the delta's new keys, then these batches' new keys,
    which is the index the profile has once the batches are appended and the store compacted.
    """

    store: ProfileStore
    index: np.ndarray  # int64
    selected: int


def subset(
    store: ProfileStore,
    profiles: Sequence[int] | np.ndarray | None = None,
    *,
    events: Rows | None = None,
    attributes: Rows | None = None,
    batches: Sequence[Batch] = (),
    like: Layout | None = None,
    time_units: Mapping[str, str] | None = None,
    assume_tz: str = "UTC",
    since: Since = None,
) -> Subset:
    """The profiles ``profiles`` of ``store`` (base and delta) with new data appended.

    ``profiles``: indices in ``store``'s numbering (base profiles, then the delta's new keys
    in arrival order, as ``store.compacted()`` numbers them); None: every profile the new
    data touches. Keys the new data introduces always come after them (`Subset`).

    New data: ``events`` and ``attributes`` (upserts), as Arrow tables or lists of dicts in
    the store's column names, checked and normalized exactly as `ProfileStore.append` does
    (``time_units`` and ``assume_tz`` as there; bad input raises the same `DataError`); or
    ``batches`` already normalized by `store.delta.normalize_batch`, so that a session
    normalizes each ingested batch once and hands the same `Batch` to its write-ahead log,
    to every subset and to the store. ``batches`` apply first, then ``events`` and
    ``attributes`` as one more batch.

    ``like``: the layout to produce (default: ``layout(store)``), e.g. a widened layout
    the caller already has kernels for; it must describe a store of the same schema.

    ``since``: which events to keep, per event type the earliest time (the key None: every
    other type); a type not covered is left out (None: keep all). A streaming session keeps
    what its definitions can read from its clock on (`engine.analysis.history`), so a profile
    with years of history costs what its last days cost.
    """
    extra = list(batches)
    if events is not None or attributes is not None:
        extra.append(normalize_batch(store.schema, as_table(events), as_table(attributes),
                                     time_units=dict(time_units or {}), assume_tz=assume_tz))
    with _LOCK:  # the store's cached state grows as its delta does: read it whole
        state = _state(store)
        plan = state.plan(like)
        numbering = state.numbering.copy()
        known = numbering.total
        numbered = [numbering.number(b) for b in extra]
        if profiles is None:
            touched = [i for pair in numbered for i in pair if i is not None]
            index = np.unique(np.concatenate(touched)) if touched else np.zeros(0, np.int64)
            selected = int(np.count_nonzero(index < known))
        else:
            chosen = _chosen(profiles, known)
            index = np.concatenate([chosen, np.arange(known, numbering.total, dtype=np.int64)])
            selected = len(chosen)
        row_of = _RowOf(index)
        upserts, appended = _delta_rows(state, index[index < known], row_of)
    for batch, (up, ev) in zip(extra, numbered, strict=True):
        for table, idx, out in ((batch.profiles, up, upserts), (batch.events, ev, appended)):
            if table is not None and idx is not None:
                rows = row_of(idx)
                hit = np.flatnonzero(rows >= 0)
                if len(hit):
                    out.append((table, hit, rows[hit]))
    keys = numbering.keys_of(index)
    columns = _attributes(store, index, keys, upserts, plan=plan, strings=state.strings)
    pieces = base_pieces(store.events, index, len(store), state.strings, since)
    piece = appended_piece(store.events, appended, state.base_events, since) if appended else None
    if piece is not None:
        pieces.append(piece)
    history = build_events(store.events, plan, pieces, len(index), state.strings)
    from store.profile_store import ProfileStore

    return Subset(ProfileStore(store.schema, keys, columns, history), index, selected)


def as_table(rows: Rows | Mapping[str, Any] | None) -> pa.Table | None:
    """Rows as an Arrow table: a table as it is, a record batch, a list of dicts, one dict
    (a row); None or no rows: None."""
    if isinstance(rows, Mapping):
        rows = [rows]
    if isinstance(rows, list | tuple):
        return pa.Table.from_pylist(list(rows)) if rows else None
    if isinstance(rows, pa.RecordBatch):
        return pa.Table.from_batches([rows])
    return rows


def delta_history(store: ProfileStore, profile: int) -> tuple[pa.Table | None, bool]:
    """Profile ``profile``'s events in ``store``'s delta, in arrival order (None: none), and
    whether the delta upserts its attributes (`store.one_profile` rebuilds from these)."""
    wanted = np.array([profile], np.int64)
    with _LOCK:
        state = _state(store)
        upserted = bool(len(state.upserts.runs.find(wanted)[0]))
        pieces = state.events.rows(wanted, _RowOf(wanted))
    tables = [t.slice(int(run[0]), len(run)) for t, rows, _ in pieces  # runs: no copies
              for run in np.split(rows, np.flatnonzero(np.diff(rows) != 1) + 1)]
    return (pa.concat_tables(tables) if tables else None), upserted


def _chosen(profiles: Sequence[int] | np.ndarray, known: int) -> np.ndarray:
    chosen = np.asarray(profiles)
    if chosen.ndim != 1 or not (chosen.size == 0 or np.issubdtype(chosen.dtype, np.integer)):
        raise ValueError("profiles must be a 1-D array of profile indices")
    chosen = chosen.astype(np.int64)
    bad = np.flatnonzero((chosen < 0) | (chosen >= known))
    if len(bad):
        raise IndexError(f"profile index {chosen[bad[0]]} is out of range: the store has {known} "
                         "profiles (base and delta); give new profiles as keys in the new data")
    if len(np.unique(chosen)) != len(chosen):
        raise ValueError("profiles holds an index twice")
    return chosen


class _RowOf:
    """Maps store indices to rows of the subset (-1 for profiles not in it)."""

    def __init__(self, index: np.ndarray) -> None:
        self.order = np.argsort(index, kind="stable")
        self.sorted = index[self.order]

    def __call__(self, idx: np.ndarray) -> np.ndarray:
        if not len(self.sorted):
            return np.full(len(idx), -1, np.int64)
        pos = np.minimum(np.searchsorted(self.sorted, idx), len(self.sorted) - 1)
        return np.where(self.sorted[pos] == idx, self.order[pos], -1).astype(np.int64)


# ------------------------------------------------------------------ numbering and the delta


class _Numbering:
    """Profile indices of keys, as `store.delta.apply_upserts` gives them: the base's, then
    new keys in arrival order (per batch: its upserts' new keys, then its events').

    New keys live in a dict (key -> index) and a list, so a lookup costs the same after a
    million new keys as after one (a session that makes a profile per stitch makes many).
    A `copy` numbers batches for a moment (`subset`, a session's ingest) without changing
    this numbering: it reads the shared dict and list up to their length when copied, and
    keeps its own keys apart."""

    def __init__(self, store: ProfileStore) -> None:
        self.store = store
        self.base = len(store)
        self._index: dict[Any, int] = {}  # new key -> its index; appended to by the owner
        self._keys: list[Any] = []  # new keys in order; appended to by the owner
        self._shared = -1  # a copy: how many of them it sees (-1: the owner sees all)
        self._own_index: dict[Any, int] = {}  # a copy's own new keys
        self._own_keys: list[Any] = []

    @property
    def count(self) -> int:
        """New keys numbered."""
        return (len(self._keys) if self._shared < 0 else self._shared) + len(self._own_keys)

    @property
    def total(self) -> int:
        return self.base + self.count

    def copy(self) -> _Numbering:
        other = _Numbering.__new__(_Numbering)
        other.store, other.base = self.store, self.base
        other._index, other._keys = self._index, self._keys
        other._shared = len(self._keys) if self._shared < 0 else self._shared
        # A copy of a copy: its keys are few (one call's), so they are copied over.
        other._own_index, other._own_keys = dict(self._own_index), list(self._own_keys)
        return other

    def lookup(self, keys: pa.Array) -> np.ndarray:
        """Indices of ``keys`` (-1 where unknown)."""
        index = (self.store.index_of(keys) if self.base
                 else np.full(len(keys), -1, np.int64))
        missing = np.flatnonzero(index < 0)
        if len(missing) and self.count:
            index[missing] = self._new_index(keys.take(pa.array(missing)).to_pylist())
        return index

    def number(self, batch: Batch) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(upserts', events') profile indices, numbering new keys."""
        s = self.store.schema
        ups = batch.profiles
        evs = batch.events
        assert s.profile_key is not None
        up = None if ups is None else self.resolve(ups.column(s.profile_key).combine_chunks(),
                                                   batch, "profiles")
        ev = None
        if evs is not None and s.event_profile_key is not None:
            ev = self.resolve(evs.column(s.event_profile_key).combine_chunks(), batch, "events")
        return up, ev

    def resolve(self, keys: pa.Array, batch: Batch, table: str) -> np.ndarray:
        if self.base:
            index = batch.base_index(table, keys, self.store.index_of, self.store.keys)
        else:
            index = np.full(len(keys), -1, np.int64)
        missing = np.flatnonzero(index < 0)
        if not len(missing):
            return index
        rest = keys.take(pa.array(missing)).to_pylist()
        found = self._new_index(rest) if self.count else np.full(len(rest), -1, np.int64)
        if (found < 0).any():
            add = self._add if self._shared < 0 else self._add_own
            for i in np.flatnonzero(found < 0).tolist():  # in order of first appearance
                found[i] = add(rest[i])
        index[missing] = found
        return index

    def keys_of(self, index: np.ndarray) -> pa.Array:
        base = index < self.base
        if base.all():
            return self.store.keys.take(pa.array(index))
        seen = len(self._keys) if self._shared < 0 else self._shared
        new = [self._keys[i] if i < seen else self._own_keys[i - seen]
               for i in (index[~base] - self.base).tolist()]
        both = pa.concat_arrays([self.store.keys.take(pa.array(index[base])),
                                 pa.array(new, self.store.keys.type)])
        return both.take(pa.array(_interleave(base)))

    def _new_index(self, keys: list[Any]) -> np.ndarray:
        limit = self.base + (len(self._keys) if self._shared < 0 else self._shared)
        shared, own = self._index, self._own_index
        out = np.empty(len(keys), np.int64)
        for j, k in enumerate(keys):
            i = shared.get(k, -1)
            out[j] = i if 0 <= i < limit else own.get(k, -1)
        return out

    def _add(self, key: Any) -> int:
        i = self._index.get(key)
        if i is None:
            i = self._index[key] = self.base + len(self._keys)
            self._keys.append(key)
        return i

    def _add_own(self, key: Any) -> int:
        i = self._own_index.get(key)
        if i is None:
            i = self._own_index[key] = self.total
            self._own_keys.append(key)
        return i


def _interleave(first: np.ndarray) -> np.ndarray:
    """Where each row is in [rows with ``first``, rows without], in row order."""
    pos = np.empty(len(first), np.int64)
    n = int(np.count_nonzero(first))
    pos[first] = np.arange(n)
    pos[~first] = n + np.arange(len(first) - n)
    return pos


class _Runs:
    """The rows of a sequence of batches by profile: sorted runs that merge like a binary
    counter (a run at most half the size of the one before it), so adding a batch costs
    amortized O(log rows) per row and finding a few profiles' rows O(runs · log rows)."""

    def __init__(self) -> None:
        self.runs: list[tuple[np.ndarray, np.ndarray]] = []  # (profiles sorted, row ids)
        self.total = 0

    def add(self, profile: np.ndarray) -> None:
        ids = np.arange(self.total, self.total + len(profile), dtype=np.int64)
        self.total += len(profile)
        if not len(profile):
            return
        order = np.argsort(profile, kind="stable")
        self.runs.append((profile[order], ids[order]))
        while len(self.runs) > 1 and len(self.runs[-2][0]) <= 2 * len(self.runs[-1][0]):
            (p1, i1), (p2, i2) = self.runs[-2], self.runs[-1]
            p, i = np.concatenate([p1, p2]), np.concatenate([i1, i2])
            order = np.argsort(p, kind="stable")  # ids stay ascending within a profile
            self.runs[-2:] = [(p[order], i[order])]

    def find(self, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row ids ascending, their profiles) of the profiles ``wanted``."""
        ids, profiles = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        for p, i in self.runs:
            hit = ranges(np.searchsorted(p, wanted, "left"), np.searchsorted(p, wanted, "right"))
            ids.append(i[hit])
            profiles.append(p[hit])
        all_ids, all_profiles = np.concatenate(ids), np.concatenate(profiles)
        order = np.argsort(all_ids)
        return all_ids[order], all_profiles[order]


@dataclass(eq=False)
class _Side:
    """One side (upserts or events) of the delta's batches, indexed by profile."""

    runs: _Runs = field(default_factory=_Runs)
    # The batches' rows as a few tables: (first row id, the rows of consecutive batches of
    # one schema, a chunk per column). A session adds a batch per call (one event each, on
    # the one-event path): read batch by batch, a profile's rows would cost a take per
    # batch that holds one, growing with the session.
    blocks: list[tuple[int, pa.Table]] = field(default_factory=list)
    pending: list[tuple[int, pa.Table]] = field(default_factory=list)  # not in a block yet

    def add(self, batches: list[tuple[pa.Table | None, np.ndarray | None]]) -> None:
        """Index batches' rows: (table, each row's profile) each, in arrival order. One
        run for all of them: a session's one-event calls add a batch each."""
        total = self.runs.total
        profiles = []
        for table, profile in batches:
            if profile is not None:
                if len(profile):
                    assert table is not None
                    self.pending.append((total, table))
                profiles.append(profile)
                total += len(profile)
        self.runs.add(np.concatenate(profiles) if profiles else np.zeros(0, np.int64))

    def rows(self, wanted: np.ndarray, row_of: _RowOf) -> list[Piece]:
        """(table, rows, subset rows) per block, in arrival order, for profiles ``wanted``."""
        ids, profiles = self.runs.find(wanted)
        if not len(ids):
            return []
        self._block()
        block = np.searchsorted(np.asarray([b[0] for b in self.blocks]), ids, "right") - 1
        cuts = np.flatnonzero(np.diff(block)) + 1
        out = []
        for part in np.split(np.arange(len(ids)), cuts):
            start, table = self.blocks[int(block[part[0]])]
            out.append((table, ids[part] - start, row_of(profiles[part])))
        return out

    def _block(self) -> None:
        """The batches not in a block yet, made blocks (one per run of one schema); a block
        merges with the one before while that one is at most twice its size, like a binary
        counter: O(log) copies of a row over a session, a few blocks to read."""
        for k, (start, table) in enumerate(self.pending):
            if k and self.blocks[-1][1].schema == table.schema:
                first, last = self.blocks[-1]  # this call's batches: one block (no copy yet)
                self.blocks[-1] = (first, pa.concat_tables([last, table]))
            else:
                self.blocks.append((start, table))
        self.pending.clear()
        while len(self.blocks) > 1 and self.blocks[-2][1].schema == self.blocks[-1][1].schema \
                and self.blocks[-2][1].num_rows <= 2 * self.blocks[-1][1].num_rows:
            (first, a), (_, b) = self.blocks[-2], self.blocks[-1]
            self.blocks[-2:] = [(first, pa.concat_tables([a, b]))]
        if self.blocks:  # one chunk per column: a take reads one array, not one per batch
            first, last = self.blocks[-1]
            if any(c.num_chunks > 1 for c in last.columns):
                self.blocks[-1] = (first, last.combine_chunks())


@dataclass(eq=False)
class _State:
    """What `subset` keeps per store: its layout, and its delta indexed by profile."""

    keys: pa.Array
    delta: Delta
    layout: Layout
    numbering: _Numbering
    base_events: int
    batches: list[Batch] = field(default_factory=list)
    upserts: _Side = field(default_factory=_Side)
    events: _Side = field(default_factory=_Side)
    strings: Strings = field(default_factory=Strings)
    plans: dict[int, Plan] = field(default_factory=dict)  # by id of the layout

    def plan(self, like: Layout | None) -> Plan:
        """The prepared target: ``like``, or the store's own layout."""
        target = self.layout if like is None else like
        found = self.plans.get(id(target))
        if found is None or found.layout is not target:
            if not target.same_schema(self.layout):
                raise ValueError("`like` is the layout of a store with another schema")
            if len(self.plans) >= 16:
                self.plans.clear()
            found = self.plans[id(target)] = Plan.of(target, self.numbering.store.events.fields)
        return found


_STATES: weakref.WeakKeyDictionary[ProfileStore, _State] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def _state(store: ProfileStore) -> _State:
    """The store's cached state, rebuilt after a compaction and extended by new batches
    (call with `_LOCK` held)."""
    state = _STATES.get(store)
    batches = store.delta.batches
    if (state is None or state.keys is not store.keys or state.delta is not store.delta
            or len(batches) < len(state.batches)
            or (state.batches and batches[len(state.batches) - 1] is not state.batches[-1])):
        # Batches are only ever appended (a session appends one per ingest): the last one
        # seen still in place means the rest are too, without a walk over all of them.
        state = _State(store.keys, store.delta, layout(store), _Numbering(store),
                       len(store.events))
        _STATES[store] = state
    fresh = batches[len(state.batches):]
    if fresh:
        numbered = [state.numbering.number(batch) for batch in fresh]
        state.upserts.add([(b.profiles, up) for b, (up, _) in zip(fresh, numbered, strict=True)])
        state.events.add([(b.events, ev) for b, (_, ev) in zip(fresh, numbered, strict=True)])
        state.batches.extend(fresh)
    return state


def _delta_rows(state: _State, wanted: np.ndarray, row_of: _RowOf
                ) -> tuple[list[Piece], list[Piece]]:
    """The delta's upsert and event rows of the profiles ``wanted``, in arrival order."""
    if not state.batches or not len(wanted):
        return [], []
    wanted = np.sort(wanted)
    return state.upserts.rows(wanted, row_of), state.events.rows(wanted, row_of)


# ------------------------------------------------------------------ attributes


def _attributes(store: ProfileStore, index: np.ndarray, keys: pa.Array, upserts: list[Piece],
                *, plan: Plan, strings: Strings) -> dict[str, Column]:
    """Each profile column for the subset's rows: base values, then upserts in order."""
    s = store.schema
    base = index < len(store)
    out: dict[str, Column] = {}
    for name, col in store.profiles.items():
        if name == s.profile_key:  # built from the keys, as a load does
            out[name] = _key_column(keys, col, name)
        elif base.all():
            out[name] = shrink(col.take(index), strings)
        else:  # new profiles: null
            out[name] = _spread(shrink(col.take(index[base]), strings), base)
    m = len(index)
    for table, all_rows, all_subset_rows in upserts:
        rows, subset_rows = _last_per_row(all_rows, all_subset_rows)
        source = np.arange(m)
        source[subset_rows] = m + np.arange(len(rows))
        taken = table.take(pa.array(rows))
        for name in taken.column_names:
            if name != s.profile_key:
                update = arrow_column(taken.column(name), out[name].dtype, name)
                out[name] = shrink(concat([out[name], update]).take(source))
    return {name: finish(col, plan.profile.get(name), plan.mapped) for name, col in out.items()}


def _spread(col: Column, rows: np.ndarray) -> Column:
    """``col``'s values at the rows where ``rows`` is true, nulls elsewhere."""
    if col.offsets is not None:
        nulls = empty_column(col.dtype, len(rows) - len(col))
        return concat([col, nulls]).take(_interleave(rows))
    values = np.full(len(rows), -1 if col.dtype.kind is Kind.STRING else 0, col.values.dtype)
    values[rows] = col.values
    valid = np.zeros(len(rows), bool)
    valid[rows] = True if col.valid is None else col.valid
    return Column(col.dtype, values, valid, None, col.dictionary)


def _key_column(keys: pa.Array, col: Column, name: str) -> Column:
    if col.dtype.kind is Kind.INT:  # the common case, without a conversion's checks
        return Column(col.dtype, np.array(keys.to_numpy(zero_copy_only=False), np.int64))
    return column_from_arrow(keys, col.dtype, name)


def _last_per_row(rows: np.ndarray, subset_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One upsert row per profile: the last (a batch may upsert a key twice)."""
    flipped = subset_rows[::-1]
    _, first = np.unique(flipped, return_index=True)
    keep = len(rows) - 1 - first
    return rows[keep], subset_rows[keep]


