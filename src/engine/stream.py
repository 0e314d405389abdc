"""Streaming: memberships kept exact, event by event and millisecond by millisecond.

``s = eng.stream(at=...)`` starts from a batch run of every segment at ``at``. Then:

* ``s.ingest(events)`` appends events (and ``profiles=`` attribute upserts) and returns
  the `MembershipChange` s they cause. It normalizes the batch once, writes it to the
  write-ahead log (if the session has one) before anything else, builds a small store of
  the touched profiles laid out like the big one (`store.subset`), and runs the batch
  engine's own kernels over it, for the kernel groups holding a segment the batch can
  affect (by event type, plus referrers through ``inSegment``). New profiles get every
  segment.
* ``s.advance(to)`` moves the clock and returns what time alone changes, each change at
  its exact instant: every profile carries the next instant at which its values can change
  (`engine.timers`), and advance evaluates the due profiles at each such instant, in order.
* Events later than the clock are held and applied when the clock reaches their time (the
  change is stamped with their timestamp); events at or before it apply at once, placed in
  time order in the history (out of order is fine), stamped with the clock.

The invariant the tests check after every step: the session's memberships equal a batch run,
at the clock, over the store with every applied batch appended (`ProfileStore.compacted`).
"""

from __future__ import annotations

import datetime as dt
import functools
import gc
import heapq
import io
import itertools
import json
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyroaring import BitMap

from engine.codegen import CompileError
from engine.timers import (
    NEVER,
    Timers,
    candidates,
    gate_mask,
    holds_instants,
    next_change_one,
    next_changes,
    next_midnight,
)
from store.bitmaps import cttz
from store.columns import Column
from store.delta import Batch, normalize_batch
from store.one_profile import OneProfile
from store.profile_store import ProfileStore
from store.subset import Since, Subset, as_table, subset
from store.times import iso_ms
from store.wal import WriteAheadLog

if TYPE_CHECKING:
    from engine.session import Engine

__all__ = ["MembershipChange", "Step", "StreamSession"]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class MembershipChange:
    """A profile entered (``realized``) or left (``exited``) a segment at instant ``at``."""

    profile_id: Any  # the profile's key
    segment: str
    status: str  # "realized" or "exited"
    at: dt.datetime  # UTC, millisecond precision
    index: int = -1  # the profile's index in the store's numbering
    # Why a profile left every segment at once, when it did (`engine.StitchingSession`):
    # "merged" into ``survivor`` (another profile's key), or "expired".
    reason: str = ""
    survivor: Any = None

    @classmethod
    def _of(cls, profile_id: Any, segment: str, status: str, at: dt.datetime, index: int
            ) -> MembershipChange:
        """A change without the frozen dataclass's ``__init__`` (``object.__setattr__`` by
        field name): a 10,000-event call reports thousands, a day of `advance` tens of
        thousands. (Slots, not a ``__dict__``: half the objects for the collector to walk.)"""
        change = object.__new__(cls)
        put_key, put_segment, put_status, put_at, put_index, put_reason, put_survivor = _PUT
        put_key(change, profile_id)
        put_segment(change, segment)
        put_status(change, status)
        put_at(change, at)
        put_index(change, index)
        put_reason(change, "")
        put_survivor(change, None)
        return change

    def to_dict(self) -> dict[str, Any]:
        out = {"profile_id": self.profile_id, "segment": self.segment, "status": self.status,
               "at": iso_ms(self.at)}
        if self.reason:
            out["reason"] = self.reason
        if self.survivor is not None:
            out["survivor"] = self.survivor
        return out


# Each field's slot setter, in field order (`MembershipChange._of`).
_PUT = tuple(MembershipChange.__dict__[f.name].__set__ for f in fields(MembershipChange))


@dataclass(frozen=True)
class Step:
    """What one call did, as ``StreamSession(on_step=...)`` hears it: after every `ingest`
    and `advance`, and for each call the session re-applies from its log when it opens
    (``replayed``), whose changes the opening returns to no one else."""

    profiles: pa.Table | None  # the attribute upserts applied (normalized), if any
    changes: list[MembershipChange]
    clock: int  # the clock after the call
    replayed: bool


@functools.lru_cache(maxsize=4096)  # the changes of one call mostly share their instant
def instant(ms: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(milliseconds=ms)


class StreamSession:
    """See the module docstring. Not thread-safe: one caller at a time."""

    def __init__(self, engine: Engine, at: Any = None, *,
                 log: str | os.PathLike[str] | None = None, sync: str = "batch",
                 on_step: Callable[[Step], None] | None = None) -> None:
        from engine.session import to_epoch_ms

        self._engine = engine
        self._on_step = on_step
        self._replaying = False
        # Delta batches the checkpoint restored, before the log replay (None: no log).
        self.restored_batches: int | None = None
        base = engine.store
        # The session's own view of the store: the same base arrays, its own delta, so the
        # engine's store is never changed by streaming.
        self.store = ProfileStore(base.schema, base.keys, base.profiles, base.events)
        self.store.delta.batches.extend(base.delta.batches)
        self._names = engine.levels_flat()
        exprs = {n: engine.expr(n) for n in self._names}
        facts = {n: engine.analysis(n) for n in self._names}
        self._types = {n: f.event_types for n, f in facts.items()}
        self._reads_events = {n: f.reads_events for n, f in facts.items()}
        self._referrers = _referrers(facts)
        self._by_types: dict[frozenset[str], frozenset[str]] = {}  # `_affected`'s answers
        self._ordered: dict[frozenset[str], list[str]] = {}  # `_affected_list`'s
        self._segs: dict[tuple[str, ...], np.ndarray] = {}  # `_flips`' rows of segments
        self._since_all: tuple[int | None, Since] = (None, None)  # all names', at an instant
        timed = self._closure({n for n, f in facts.items() if f.time_dependent})
        self._timed = [n for n in self._names if n in timed]
        self._timers = Timers.of([exprs[n] for n in self._timed],
                                 [facts[n].event_types for n in self._timed],
                                 [facts[n].profile_fields for n in self._timed])
        self._daily = self._closure({n for n in self._timed if Timers.of([exprs[n]]).daily})
        # A timeline evaluates a definition only where its own windows move; one that reads
        # another's membership, or is read, wherever any does.
        involved = set(self._referrers).union(*self._referrers.values())
        self._gates = {n: -1 if n in involved else gate_mask(uses)
                       for n, uses in zip(self._timed, self._timers.uses, strict=True)}
        self._one_path()  # the one-event path's data (`_ingest_one`)
        self.served_alone = 0  # ingest calls the one-event path served
        self._pending: list[tuple[int, int, pa.Table]] = []  # (time, arrival, events)
        self._arrivals = 0
        self._dir = None if log is None else Path(log)
        self._log: WriteAheadLog | None = None
        self._checkpointed = 0  # the log's seq the last checkpoint covers
        state = None if self._dir is None else _read_checkpoint(self._dir)
        if state is not None:
            self._restore(state)
        elif at is None:
            raise ValueError("a new session needs its starting instant: stream(at=...)")
        else:
            self.clock = to_epoch_ms(at)
        self._start()
        if self._dir is not None:
            self._log = WriteAheadLog(self._dir / "wal", sync=sync)  # type: ignore[arg-type]
            self.restored_batches = len(self.store.delta.batches)
            try:
                self._replay()
            except BaseException:
                self.close()  # the log's lock and flusher thread must not outlive us
                raise

    def _start(self) -> None:
        """Memberships at the clock: a batch run, then the profiles the delta touches."""
        result = self._engine.run(self.clock)
        self._members = {n: BitMap(result[n]) for n in self._names}
        # The same memberships as a byte per (profile, segment): what the diff and the
        # referenced segments' rows read, a gather instead of a bitmap probe per profile;
        # a profile's bytes lie together, so gathering some profiles reads few cache lines.
        self._row = {n: i for i, n in enumerate(self._names)}
        self._dense = np.zeros((len(self._engine.store), len(self._names)), np.uint8)
        for n in self._names:
            members = np.fromiter(self._members[n], np.int64, len(self._members[n]))
            self._dense[members, self._row[n]] = 1
        self._next = next_changes(self._engine.store, self._timers, self.clock)
        self._retired = np.zeros(0, bool)  # profiles replaced by others (`replace`)
        # Changes a timeline computed past its end (`_Ahead`), valid while their profile's
        # stamp is theirs: evaluating a profile anew (new data) moves its stamp on.
        self._ahead = _Ahead()
        self._stamp = np.zeros(0, np.int64)
        self._ahead_ms = _AHEAD_MS  # (tests vary these two)
        self._chunk_rows = _CHUNK_ROWS
        self._grow(self.size)
        if self.store.delta:  # the engine's runs read the base only
            base = len(self.store.keys)
            touched = np.union1d(np.arange(base, self.size), _delta_profiles(self.store))
            self._forget(touched)
            self._evaluate(subset(self.store, touched), self._names, self.clock)

    # ------------------------------------------------------------ state

    @property
    def names(self) -> list[str]:
        return list(self._names)

    @property
    def size(self) -> int:
        """Profiles known to the session: the store's, then new keys in arrival order."""
        return int(_numbering(self.store).total)

    def memberships(self) -> dict[str, BitMap]:
        """Every segment's members now, as profile indices (copies)."""
        return {n: BitMap(b) for n, b in self._members.items()}

    def index_of(self, key: Any) -> int:
        """The index of profile ``key`` (-1 if the session does not know it)."""
        return int(_numbering(self.store).lookup(pa.array([key], self.store.keys.type))[0])

    def ids(self, name: str) -> pa.Array:
        """The keys of segment ``name``'s members, in index order."""
        members = np.fromiter(self._members[name], np.int64, len(self._members[name]))
        return _keys_of(self.store, members)

    # ------------------------------------------------------------ ingest

    def ingest(self, events: Any = None, *, profiles: Any = None,
               time_units: Mapping[str, str] | None = None, assume_tz: str = "UTC"
               ) -> list[MembershipChange]:
        """Append events (one dict, a list of dicts, or an Arrow table with the store's event
        fields) and attribute upserts; return the membership changes, stamped with the clock
        (events later than the clock wait for it: see the module docstring). Timestamps are
        read as `ProfileStore.append` reads them (``time_units`` for numbers, e.g.
        ``{"timestamp": "ms"}``); bad input raises `store.DataError` and changes nothing."""
        batch = normalize_batch(self.store.schema, as_table(events), as_table(profiles),
                                time_units=dict(time_units or {}), assume_tz=assume_tz)
        if self._log is not None:
            self._log.append(_encode({"op": "ingest", "clock": self.clock}, batch))
        return self._ingest(batch)

    def _ingest(self, batch: Batch) -> list[MembershipChange]:
        s = self.store.schema
        now_events, later = batch.events, None
        if batch.events is not None and batch.events.num_rows:
            times = batch.events.column(s.event_time)
            if times.num_chunks != 1 or times.chunk(0).to_numpy().view(np.int64).max() > (
                    self.clock):  # (the max of a numpy view: a tenth of Arrow's compare)
                future = pc.greater(pc.cast(times, pa.int64()), self.clock)
                if pc.any(future).as_py():
                    later = batch.events.filter(future)
                    now_events = batch.events.filter(pc.invert(future))
        if later is not None:
            self._hold(later)
        applied = Batch(now_events if now_events is not None and now_events.num_rows else None,
                        batch.profiles)
        changes = [] if applied.events is None and applied.profiles is None else self._apply(
            [applied], self.clock)
        return self._report(batch.profiles, changes)

    def _ingest_one(self, batch: Batch) -> list[MembershipChange] | None:
        """The one-event path: events of one base profile that `store.one_profile` can hold,
        evaluated by the same kernels bound once (`Engine.evaluate_one`); None if the batch
        is not such (the general path then applies it). The same memberships, timers and
        changes as the general path, at a tenth of its cost."""
        events = batch.events
        if events is None or batch.profiles is not None or self._one is None:
            return None
        keys = events.column(self.store.schema.event_profile_key).combine_chunks()
        if len(keys) > 1 and pc.count_distinct(keys).as_py() > 1:
            return None
        p = int(batch.base_index("events", keys, self.store.index_of, self.store.keys)[0])
        at = self.clock
        if self._since_all[0] != at:
            self._since_all = (at, self._since(self._names, at))
        if p < 0 or self._retired[p] or not self._one.appended(p, events, self._since_all[1]):
            return None
        self.store.delta.batches.append(batch)
        self.served_alone += 1
        self._stamp[p] += 1
        parts = self._one.parts(p, self._since_all[1])
        names = self._affected_list(batch)
        index = np.array([p], np.int64)
        masks = self._engine.evaluate_one(p, parts, names, at, self._outside(index, names),
                                          binders=self._binders)
        self._next[p] = next_change_one(
            self._timers, [(f, _row(c, p)) for f, c in self._timed_attributes],
            [(types, parts[types].offsets, parts[types].time, {
                f: Column(c.dtype, parts[types].values[f], parts[types].valid[f],
                          parts[types].lists.get(f)) for f, c in fields.items()})
             for types, fields in self._timed_views], at)
        return self._flips(p, keys[0].as_py(), names, masks, at)

    def _one_path(self) -> None:
        """Set up the one-event path (`_ingest_one`): the event views its kernels and
        timers read; `_one` None if some kernel cannot be bound on it."""
        base = self.store  # the session's own base arrays
        typed = base.events.type_field is not None
        timed = [p for p in base.events.partitions if len(self._timers.specs)
                 and self._timers.feeds(p.types if typed else None).any()]
        # (types, the timestamp and date fields) of each partition a timer reads, which is
        # the view of its types (partitions hold disjoint types)
        self._timed_views = [(p.types if typed else None,
                              {f: c for f, c in p.columns.items() if holds_instants(c)})
                             for p in timed]
        self._timed_attributes = [(f, c) for f, c in base.profiles.items() if holds_instants(c)
                                  and self._timers.feeds_attribute(f).any()]
        self._one: OneProfile | None = None
        views = [types for types, _ in self._timed_views]
        try:  # (kept: the engine's are remade if its store is compacted meanwhile)
            self._binders = {tuple(g): self._engine.one_binder(g) for g in self._engine.groups()}
        except CompileError:
            return
        for _, _, binder in self._binders.values():
            views += sorted(binder.views, key=repr)
        one = OneProfile(self.store, views, delta=self.store)  # the session's own base
        self._one = one if one.usable else None

    def _forget(self, profiles: np.ndarray, *, gone: bool = False) -> None:
        """Profiles the general path gave events (the one-event path rebuilds them from the
        delta), or attributes or a successor (``gone``: it no longer serves them)."""
        if self._one is not None:
            self._one.forget(profiles, gone=gone)

    def _flips(self, p: int, key: Any, names: list[str], masks: Mapping[str, int],
               at: int) -> list[MembershipChange]:
        """`_runs` for one profile evaluated once (the one-event path)."""
        segs = self._segs.get(tuple(names))
        if segs is None:
            segs = self._segs[tuple(names)] = np.array([self._row[n] for n in names], np.int64)
        state = np.array([masks[n] for n in names], np.uint8)
        row = self._dense[p]
        changed = np.flatnonzero(state != row[segs])
        if not len(changed):
            return []
        row[segs] = state
        out = []
        for g in changed.tolist():
            name, entered = names[g], bool(state[g])
            if entered:
                self._members[name].add(p)
            else:
                self._members[name].discard(p)
            out.append(MembershipChange._of(key, name, "realized" if entered else "exited",
                                            instant(at), p))
        return out

    def _report(self, profiles: pa.Table | None, changes: list[MembershipChange]
                ) -> list[MembershipChange]:
        if self._on_step is not None:
            self._on_step(Step(profiles, changes, self.clock, self._replaying))
        return changes

    def _hold(self, events: pa.Table) -> None:
        times = pc.cast(events.column(self.store.schema.event_time), pa.int64()).to_numpy()
        for t in np.unique(times):
            self._arrivals += 1
            rows = events.filter(pa.array(times == t))
            heapq.heappush(self._pending, (int(t), self._arrivals, rows))

    def _apply(self, batches: list[Batch], at: int, due: np.ndarray | None = None,
               inherit: Mapping[Any, int] | None = None) -> list[MembershipChange]:
        """Append ``batches`` at instant ``at`` and re-evaluate what they (and, for the
        profiles ``due``, the clock) can change. ``inherit``: new keys of the batches that
        take the memberships of (and retire) other profiles, by index (see `replace`)."""
        if len(batches) == 1 and due is None and not inherit and at == self.clock:
            one = self._ingest_one(batches[0])  # one profile's events: no subset needed
            if one is not None:
                return one
        numbering = _numbering(self.store).copy()  # to number the batches' keys, not keep them
        known = numbering.total
        touched = []
        names: set[str] = set()
        for batch in batches:
            upserted, evented = numbering.number(batch)
            for index, gone in ((upserted, True), (evented, False)):
                if index is not None:
                    touched.append(index[index < known])
                    self._forget(touched[-1], gone=gone)  # (the one-event path's copies)
            names |= self._affected(batch)
        if inherit:  # the heirs take over now: their predecessors retire before evaluating
            self._grow(numbering.total)
            heirs = numbering.lookup(pa.array(list(inherit), self.store.keys.type))
            self._move(np.fromiter(inherit.values(), np.int64, len(inherit)), heirs)
        if due is not None:
            due = due[~self._retired[due]]  # profiles retired now are not evaluated
            touched.append(due)
        if numbering.total > known:
            names = set(self._names)  # a new profile: every segment has a first value
        if due is not None and len(due):
            names |= set(self._timed)
        profiles = np.unique(np.concatenate(touched)) if touched else np.zeros(0, np.int64)
        if not len(profiles) and numbering.total == known:
            return []
        evaluated = [n for n in self._names if n in names]
        sub = subset(self.store, profiles, batches=batches, since=self._since(evaluated, at))
        self.store.delta.batches.extend(batches)
        self._grow(numbering.total)
        return self._evaluate(sub, evaluated, at)

    def _affected(self, batch: Batch) -> frozenset[str]:
        """The segments ``batch`` can change: those reading its event types or (for
        attribute upserts) every one, and their referrers."""
        s = self.store.schema
        if batch.profiles is not None and batch.profiles.num_rows:
            return frozenset(self._names)  # attributes: any segment may read them
        if batch.events is None or not batch.events.num_rows:
            return frozenset()
        types = frozenset() if s.event_type is None else frozenset(
            pc.unique(batch.events.column(s.event_type)).to_pylist())
        found = self._by_types.get(types)
        if found is None:
            names = {n for n in self._names if self._reads_events[n] and (
                s.event_type is None or (wanted := self._types[n]) is None or wanted & types)}
            found = self._by_types[types] = frozenset(self._closure(names))
        return found

    def _affected_list(self, batch: Batch) -> list[str]:
        """`_affected`, in evaluation order."""
        found = self._affected(batch)
        names = self._ordered.get(found)
        if names is None:
            names = self._ordered[found] = [n for n in self._names if n in found]
        return names

    def _closure(self, names: set[str]) -> set[str]:
        out, todo = set(names), list(names)
        while todo:
            for r in self._referrers.get(todo.pop(), ()):
                if r not in out:
                    out.add(r)
                    todo.append(r)
        return out

    # ------------------------------------------------------------ evaluation

    def _evaluate(self, sub: Subset, names: list[str], at: int) -> list[MembershipChange]:
        """Evaluate ``names`` for the profiles of ``sub`` at instant ``at``; update
        memberships and each profile's next timer."""
        self._stamp[sub.index] += 1  # their changes computed ahead no longer hold
        masks = self._engine.evaluate_subset(sub.store, names, at,
                                              self._outside(sub.index, names))
        when = np.full(len(sub.index), at, np.int64)
        changes = self._runs(sub.index, names, masks, when, keys=sub.store.keys,
                             rows=np.arange(len(sub.index)))
        nxt = next_changes(sub.store, self._timers, at)
        self._next[sub.index] = nxt
        return changes

    def _since(self, names: list[str], at: int) -> Since:
        """The events a subset needs to evaluate ``names`` at ``at`` and later and to set
        every timer of its profiles (`Engine.history`): the events older than every window
        that reads them are left out, so a heavy profile costs what its recent events cost."""
        return self._engine.history([*names, *self._timed], at)

    def _outside(self, index: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
        """The values of the referenced segments that are not evaluated now, for the
        profiles ``index`` (a row each)."""
        wanted = set(names)
        return {n: self._dense[index, self._row[n]] for n in self._referrers
                if n not in wanted}

    def _grow(self, total: int) -> None:
        """Room for ``total`` profiles (new keys are numbered after the known ones)."""
        if total > len(self._next):
            extra = np.full(total - len(self._next), NEVER, np.int64)
            self._next = np.concatenate([self._next, extra])
        if total > len(self._retired):
            self._retired = np.concatenate([self._retired, np.zeros(
                total - len(self._retired), bool)])
            self._stamp = np.concatenate([self._stamp, np.zeros(
                total - len(self._stamp), np.int64)])
        if total > len(self._dense):  # doubling, so growth costs O(1) a profile
            dense = np.zeros((max(total, 2 * len(self._dense)), len(self._names)), np.uint8)
            dense[:len(self._dense)] = self._dense
            self._dense = dense

    # ------------------------------------------------------------ replacing profiles

    def replace(self, batches: list[Batch], *, inherit: Mapping[Any, int],
                retire: Mapping[int, tuple[str, Any]], at: int | None = None
                ) -> list[MembershipChange]:
        """Profiles made anew, for identity stitching (`StitchingSession`), at instant
        ``at`` (default: the clock; a later one moves the clock there first, and what is
        due then is evaluated with the new data, once): ``retire`` maps profiles that are
        gone to why (``reason``, ``survivor``): each exits every segment it is in, with that
        reason; then ``batches`` are applied, and a new key in ``inherit`` takes over the
        memberships of the profile it names (so only what its new data changes is reported)
        and retires it. A retired profile is never evaluated again: nothing may be appended
        to its key."""
        if self._log is not None:
            raise ValueError("a session with a log cannot replace profiles (yet)")

        def apply(held: list[Batch], due: np.ndarray | None) -> list[MembershipChange]:
            changes = []
            for old, (reason, survivor) in retire.items():
                key = _keys_of(self.store, np.array([old])).to_pylist()[0]
                for k in np.flatnonzero(self._dense[old]).tolist():
                    changes.append(MembershipChange(key, self._names[k], "exited",
                                                    instant(self.clock), old, reason, survivor))
                    self._members[self._names[k]].discard(old)
                self._move(np.array([old], np.int64), None)
            return changes + self._apply([*held, *batches], self.clock, due=due,
                                         inherit=inherit)

        if at is None or at <= self.clock:
            return apply([], None)
        return self._advance(at, then=apply)

    def _move(self, old: np.ndarray, new: np.ndarray | None) -> None:
        """Retire profiles ``old``; their memberships go to ``new`` (None: nowhere)."""
        rows = self._dense[old]
        self._dense[old] = 0
        if new is not None:
            self._dense[new] = rows
            # Both ends of every membership that moved follow the dense state.
            who, cols = np.nonzero(rows)
            self._follow(np.concatenate([old[who], new[who]]), np.concatenate([cols, cols]))
        self._next[old] = NEVER
        self._retired[old] = True
        self._stamp[old] += 1
        self._forget(old, gone=True)

    # ------------------------------------------------------------ time

    def advance(self, to: Any) -> list[MembershipChange]:
        """Move the clock to ``to``; return the changes time alone causes on the way (held
        events included), each at its exact instant, in order."""
        from engine.session import to_epoch_ms

        target = to_epoch_ms(to)
        if target < self.clock:
            raise ValueError(f"the clock is at {instant(self.clock).isoformat()}; it cannot go "
                             f"back to {instant(target).isoformat()}")
        if self._log is not None:
            self._log.append(_encode({"op": "advance", "to": target}, None))
        return self._advance(target)

    def next_change(self) -> int | None:
        """The next instant (epoch ms) at which time alone, or a held event, may change a
        membership; None if nothing will without new data."""
        x = min(int(self._next.min(initial=NEVER)), self._ahead.first(self._stamp),
                self._pending[0][0] if self._pending else NEVER,
                next_midnight(self.clock) if self._daily else NEVER)
        return None if x == NEVER else x

    def _advance(self, target: int, then: Callable[[list[Batch], np.ndarray],
                                                    list[MembershipChange]] | None = None
                 ) -> list[MembershipChange]:
        """Move the clock to ``target`` (see `advance`). ``then``: applies the caller's own
        data at ``target``, given the held batches released then and the profiles due then,
        in place of applying those alone (one evaluation at that instant, not two)."""
        changes: list[MembershipChange] = []
        while True:
            x = self.next_change()
            if then is not None:
                x = target if x is None else min(x, target)
            if x is None or x > target:
                break
            # Up to the next held event or midnight, profiles only move with their own
            # windows, independently: evaluate them in rounds, each at its own instant.
            barrier = min(self._pending[0][0] if self._pending else NEVER,
                          next_midnight(self.clock) if self._daily else NEVER,
                          target if then is not None else NEVER)
            if x < barrier:
                limit = min(target, barrier - 1)
                changes += self._timeline(limit, min(barrier - 1, limit + self._ahead_ms))
                continue
            self.clock = x
            batches = []
            while self._pending and self._pending[0][0] <= x:
                batches.append(Batch(heapq.heappop(self._pending)[2], None))
            due = self._due(x)[0]
            ahead = self._ahead.pop(x, self._stamp)  # (at x: those before were released)
            if len(ahead):  # evaluated at x with the rest, as if they were due
                due = np.union1d(due, ahead[:, 1])
            if self._daily and x == next_midnight(x - 1):
                changes += self._evaluate_all(self._daily, x)
            if then is not None and x == target:
                changes += then(batches, due)
                then = None
            else:
                changes += self._apply(batches, x, due=due)
        self.clock = target
        return self._report(None, changes)

    def _due(self, limit: int) -> tuple[np.ndarray, np.ndarray]:
        """The profiles whose next possible change is at or before ``limit``, and those
        instants; their timers are cleared (evaluating them sets them again). A scan of
        one int64 per profile (about a millisecond at 1M): no heap of Python tuples, whose
        size would slow every garbage collection of the process."""
        due = np.flatnonzero(self._next <= limit)
        first = self._next[due]
        self._next[due] = NEVER
        return due, first

    def _timeline(self, limit: int, horizon: int) -> list[MembershipChange]:
        """Fire every timer up to ``limit``, with no held event or midnight before
        ``horizon`` (``>= limit``).

        No data changes meanwhile, so every instant at which a due profile may change is
        known now (`engine.timers.candidates`): a row per (profile, instant), all evaluated
        by a timeline kernel over one copy of the profiles' data, a call per chunk of rows,
        each row at its own instant, and only for the definitions whose own windows move
        there (the rows' gates); a change is where a row differs from the one before it (the
        profile's state at the clock for its first). The rows go on to ``horizon``: the
        changes after ``limit`` wait in `_Ahead` for the clock, so that a profile is not
        evaluated again at every call of a clock moved in small steps. Changes come out in
        time order."""
        changes = self._release(limit)
        due, first = self._due(limit)
        if not len(due):
            self.clock = max(self.clock, limit)
            return changes
        sub = subset(self.store, due, since=self._since(self._timed, self.clock))
        rows, at, gates, nxt = candidates(sub.store, self._timers, first - 1, horizon,
                                          self._engine.thread_count())
        names = list(self._timed)
        # Chunks end where a profile's rows do: its state after rows ahead of the clock is
        # not kept anywhere but along its rows.
        firsts = np.flatnonzero(np.diff(rows)) + 1
        bounds = [0]
        while bounds[-1] < len(rows):
            k = int(np.searchsorted(firsts, bounds[-1] + self._chunk_rows))
            bounds.append(int(firsts[k]) if k < len(firsts) else len(rows))
        for lo, hi in itertools.pairwise(bounds):
            part = slice(lo, hi)
            index = sub.index[rows[part]]
            masks = self._engine.evaluate_subset(sub.store, names, at[part],
                                                  self._outside(index, names),
                                                  profiles=rows[part], gates=gates[part],
                                                  gate_masks=self._gates)
            changes += self._runs(index, names, masks, at[part], keys=sub.store.keys,
                                  rows=rows[part], upto=limit, gates=gates[part])
        self._next[sub.index] = nxt
        self.clock = max(self.clock, limit)
        changes.sort(key=lambda c: c.at)
        return changes

    def _runs(self, index: np.ndarray, names: list[str], masks: Mapping[str, np.ndarray],
              at: np.ndarray, *, keys: pa.Array, rows: np.ndarray, upto: int | None = None,
              gates: np.ndarray | None = None) -> list[MembershipChange]:
        """The changes along evaluated rows: row r is profile ``index[r]`` (``keys[rows[r]]``)
        evaluated at ``at[r]``; a profile's rows are consecutive, at successive instants (one
        row each, for an ingest); a change is a row that differs from the one before (the
        profile's state, for its first). Each profile's state becomes its last row's. A 2
        (a gated timeline's "not evaluated") is the value of the row before. ``upto``:
        rows after this instant are ahead of the clock: their changes wait in `_ahead`, and
        a profile's state becomes its last row's up to it. ``gates``: a gated timeline's,
        with the masks `_gates` gives its kernels."""
        m = len(index)
        if not m or not names:
            return []
        starts = np.ones(m, bool)
        starts[1:] = index[1:] != index[:-1]
        segs = np.array([self._row[n] for n in names], np.int64)
        state = np.stack([np.asarray(masks[n][:m], np.uint8) for n in names])
        firsts = index[starts]
        # Whole rows of the dense state, gathered once: a few cache lines per profile.
        block = self._dense[firsts]
        known = np.ascontiguousarray(block[:, segs].T)
        later = np.zeros(0, bool) if upto is None else at[:m] > upto
        if gates is None:
            seg, row, flips = _diff(state, known, starts, later)
        else:
            masks_of = np.array([self._gates[n] for n in names], np.int64)
            seg, row, flips = _diff_gated(state, known, starts, later, gates, masks_of)
            order = np.argsort(seg * m + row)  # segment by segment, as `_diff` gives them
            seg, row, flips = seg[order], row[order], flips[order]
        block[:, segs] = known.T
        self._dense[firsts] = block
        if len(later) and len(row):
            ahead = later[row]
            if ahead.any():
                p = index[row[ahead]]
                self._ahead.add(np.stack([at[row[ahead]], p, segs[seg[ahead]],
                                          flips[ahead], self._stamp[p]], axis=1))
                seg, row, flips = seg[~ahead], row[~ahead], flips[~ahead]
        if not len(row):
            return []
        cols = segs[seg]
        self._follow(index[row], cols)
        return self._made(keys.take(pa.array(rows[row])).to_pylist(), cols, flips, at[row],
                          index[row])

    def _follow(self, index: np.ndarray, cols: np.ndarray) -> None:
        """The bitmaps brought to the dense state, for the (profile, segment column) pairs
        ``index``, ``cols`` that changed."""
        if len(cols) <= _FEW_PAIRS:  # one profile's changes (a login's): no arrays to build
            dense, members, names = self._dense, self._members, self._names
            for p, c in zip(index.tolist(), cols.tolist(), strict=True):
                if dense[p, c]:
                    members[names[c]].add(p)
                else:
                    members[names[c]].discard(p)
            return
        order = np.argsort(cols, kind="stable")
        cols, index = cols[order], index[order]
        cuts = np.flatnonzero(np.diff(cols)) + 1
        for lo, hi in itertools.pairwise([0, *cuts.tolist(), len(cols)]):
            changed = np.unique(index[lo:hi])
            c = int(cols[lo])
            now_in = self._dense[changed, c].astype(bool)
            bm = self._members[self._names[c]]
            bm |= BitMap(changed[now_in].astype(np.uint32))
            bm -= BitMap(changed[~now_in].astype(np.uint32))

    def _made(self, keys: list[Any], cols: np.ndarray, flips: np.ndarray, at: np.ndarray,
              index: np.ndarray) -> list[MembershipChange]:
        """The changes as objects: profile ``keys`` (``index``) entered (flip 1) or left
        segment column ``cols`` at ``at``."""
        make, names = MembershipChange._of, self._names
        # Without the collector meanwhile: the objects hold no cycles, and a day of
        # `advance` makes tens of thousands, each collection of the young ones walking them
        # all again, and now and then a full one every object of the process (B10's day:
        # 0.13-0.33 s here, now 0.12 s).
        collecting = gc.isenabled()
        gc.disable()
        try:
            return [make(k, names[c], "realized" if f else "exited", instant(t), i)
                    for k, c, f, t, i in zip(keys, cols.tolist(), flips.tolist(), at.tolist(),
                                             index.tolist(), strict=True)]
        finally:
            if collecting:
                gc.enable()

    def _release(self, limit: int) -> list[MembershipChange]:
        """The changes computed ahead (`_runs`) up to ``limit``, applied, in time order."""
        ahead = self._ahead.pop(limit, self._stamp)
        if not len(ahead):
            return []
        at, p, col, flip = ahead[:, 0], ahead[:, 1], ahead[:, 2], ahead[:, 3]
        key = p * len(self._names) + col
        last = len(key) - 1 - np.unique(key[::-1], return_index=True)[1]  # each one's last
        self._dense[p[last], col[last]] = flip[last]
        self._follow(p, col)
        return self._made(_keys_of(self.store, p).to_pylist(), col, flip, at, p)

    def _evaluate_all(self, names: set[str], at: int) -> list[MembershipChange]:
        """Every profile, for the definitions that change at midnight."""
        everyone = np.flatnonzero(~self._retired[:self.size])
        evaluated = [n for n in self._names if n in names]
        sub = subset(self.store, everyone, since=self._since(evaluated, at))
        return self._evaluate(sub, evaluated, at)

    # ------------------------------------------------------------ durability

    def checkpoint(self) -> Path:
        """Persist the session (clock, applied and held events, memberships as portable
        roaring bitmaps) atomically in ``log``'s ``checkpoint/`` and trim the log up to it.
        A session opened on the directory later resumes from there (see `_replay`)."""
        if self._dir is None or self._log is None:
            raise ValueError("this session has no log directory: stream(at, log=DIR)")
        seq = self._log.sync()
        own = self.store.delta.batches[len(self._engine.store.delta.batches):]
        state = {"clock": self.clock, "seq": seq, "arrivals": self._arrivals,
                 "segments": self._names, "members": {n: len(b) for n, b in self._members.items()}}
        files = {
            "batches.bin": _pack([_encode({}, b) for b in own]),
            "pending.bin": _pack([_encode({"time": t, "arrival": a}, Batch(e, None))
                                  for t, a, e in sorted(self._pending)]),
        }
        files |= {f"members/{i}.roaring": self._members[n].serialize()
                  for i, n in enumerate(self._names)}
        files["state.json"] = json.dumps(state, indent=1).encode()
        _write_dir(self._dir / "checkpoint", files)
        self._checkpointed = seq
        self._log.trim(seq)
        return self._dir / "checkpoint"

    def _restore(self, state: dict[str, Any]) -> None:
        if state["segments"] != self._names:
            raise ValueError(
                f"the checkpoint in {self._dir} is of segments {state['segments']}, not "
                f"{self._names}: define the same segments to resume it, or use another "
                "log directory")
        self.clock = int(state["clock"])
        self._arrivals = int(state["arrivals"])
        self._checkpointed = int(state["seq"])
        self.store.delta.batches.extend(b for _, b in state["batches"])
        for header, batch in state["pending"]:
            assert batch.events is not None
            heapq.heappush(self._pending, (header["time"], header["arrival"], batch.events))

    def _replay(self) -> None:
        """Apply the log's records after the checkpoint, as they were first applied: the
        same batches at the same clock give the same state."""
        assert self._log is not None
        self._replaying = True
        try:
            self._replay_log()
        finally:
            self._replaying = False

    def _replay_log(self) -> None:
        assert self._log is not None
        for _, payload in self._log.replay(self._checkpointed):
            header, batch = _decode(payload)
            if header["op"] == "advance":
                self._advance(int(header["to"]))
            else:
                if header["clock"] != self.clock:
                    raise ValueError(f"the log in {self._dir} does not follow its checkpoint: "
                                     f"an ingest at {header['clock']} with the clock at "
                                     f"{self.clock}")
                self._ingest(batch)

    @property
    def recovered_tail(self) -> Any:
        """What opening the log cut off its end (`store.wal.TornTail`: an unfinished
        write, never acknowledged), or None."""
        return None if self._log is None else self._log.recovered_tail

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> StreamSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_FEW_PAIRS = 64  # `_follow`: up to this many changes, a bitmap call each beats building arrays
_CHUNK_ROWS = 1 << 14  # timeline rows per kernel call: their bound windows take ~5 KB a row
# How far past the end of an `advance` call a due profile's timeline is evaluated (never
# past a held event or a midnight that re-evaluates every profile): a clock moved in small
# steps then evaluates a profile once per day of its windows, not once per step.
_AHEAD_MS = 86_400_000


class _Ahead:
    """Changes a timeline computed past the end of its call (`StreamSession._runs`), waiting
    for the clock: rows of (instant, profile, segment column, value, the profile's stamp
    then), in time order (arrival order within an instant). A row whose profile's stamp
    has moved on since (the profile was evaluated anew: new data, a retirement) is void."""

    def __init__(self) -> None:
        self.rows = np.zeros((0, 5), np.int64)

    def add(self, rows: np.ndarray) -> None:
        both = np.concatenate([self.rows, rows.astype(np.int64)])
        self.rows = both[np.argsort(both[:, 0], kind="stable")]

    def pop(self, limit: int, stamps: np.ndarray) -> np.ndarray:
        """The valid rows up to ``limit``, taken out."""
        k = int(np.searchsorted(self.rows[:, 0], limit, side="right"))
        out, self.rows = self.rows[:k], self.rows[k:]
        valid: np.ndarray = out[out[:, 4] == stamps[out[:, 1]]]
        return valid

    def first(self, stamps: np.ndarray) -> int:
        """The instant of the first valid row (`NEVER` if none)."""
        rows = self.rows
        if len(rows) and rows[0, 4] != stamps[rows[0, 1]]:  # void rows first: drop them all
            self.rows = rows = rows[rows[:, 4] == stamps[rows[:, 1]]]
        return int(rows[0, 0]) if len(rows) else NEVER


@numba.njit(cache=True, nogil=True)
def _diff(state, known, starts, later):  # type: ignore[no-untyped-def]
    """The changes along rows (`StreamSession._runs`): ``state[s, r]`` is segment s of row
    r's profile, whose rows are consecutive from where ``starts`` is set; 2 is "as on the
    row before" (a gated timeline's row not evaluated). A change is a value other than the
    one before it (``known[s, i]`` for the first row of the i-th profile); returns
    (segments, rows, new values), segment by segment, rows in order, and leaves in
    ``known`` each profile's value on its last row not ``later`` (a bool per row, or none
    at all). Two passes (count, then fill: arrays grown in the loop made it 30x slower),
    where whole-matrix numpy took five."""
    n_seg, m = state.shape
    seg = np.empty(0, np.int64)
    row = np.empty(0, np.int64)
    flips = np.empty(0, np.uint8)
    for fill in (False, True):
        k = 0
        for s in range(n_seg):
            i = -1
            prev = known[s, 0] if m else np.uint8(0)
            kept = prev  # the value on the profile's last row not later
            for r in range(m):
                if starts[r]:
                    if i >= 0 and fill:
                        known[s, i] = kept
                    i += 1
                    prev = kept = known[s, i]
                v = state[s, r]
                if v != 2 and v != prev:  # noqa: PLR1714 (numba: no tuple of mixed types)
                    if fill:
                        seg[k], row[k], flips[k] = s, r, v
                    k += 1
                    prev = v
                if not len(later) or not later[r]:
                    kept = prev
            if i >= 0 and fill:
                known[s, i] = kept
        if not fill:
            seg = np.empty(k, np.int64)
            row = np.empty(k, np.int64)
            flips = np.empty(k, np.uint8)
    return seg, row, flips


@numba.njit(cache=True, nogil=True)
def _diff_gated(state, known, starts, later, gates, masks):  # type: ignore[no-untyped-def]  # noqa: PLR0917 (numba)
    """`_diff` on a gated timeline: row r is read only for the segments whose gate mask
    (``masks``, -1 for every row) shares a bit with the row's gate (``gates``); elsewhere
    they are 2. A timeline evaluates a few of its definitions per row, so this reads a few
    cells of a row, not every segment of every row (B10's day of `advance`: 117 → 57 ms).
    The changes come out in row order."""
    n_seg, m = state.shape
    # The segments of each gate bit, as offsets into one array, and those of every row.
    always = np.empty(n_seg, np.int64)
    n_always = 0
    ptr = np.zeros(65, np.int64)
    for s in range(n_seg):
        if masks[s] == -1:
            always[n_always] = s
            n_always += 1
        else:
            for b in range(64):
                if (masks[s] >> b) & 1:
                    ptr[b + 1] += 1
    for b in range(64):
        ptr[b + 1] += ptr[b]
    of_bit = np.empty(ptr[64], np.int64)
    fill = ptr[:64].copy()
    for s in range(n_seg):
        if masks[s] != -1:
            for b in range(64):
                if (masks[s] >> b) & 1:
                    of_bit[fill[b]] = s
                    fill[b] += 1
    seen = np.full(n_seg, -1, np.int64)  # the last row that visited a segment
    owner = np.full(n_seg, -1, np.int64)  # the profile whose values prev and kept hold
    prev = np.zeros(n_seg, np.uint8)
    kept = np.zeros(n_seg, np.uint8)  # the value on the profile's last row not later
    touched = np.empty(n_seg, np.int64)  # the segments the profile's rows visited
    todo = np.empty(n_seg, np.int64)
    seg = np.empty(256, np.int64)
    row = np.empty(256, np.int64)
    flips = np.empty(256, np.uint8)
    k = n_touched = 0
    i = -1
    for r in range(m):
        if starts[r]:
            for j in range(n_touched):
                known[touched[j], i] = kept[touched[j]]
            n_touched = 0
            i += 1
        n_todo = n_always
        todo[:n_always] = always[:n_always]
        g = np.uint64(gates[r])
        while g:
            bit = np.int64(cttz(g))  # the lowest set
            g &= g - np.uint64(1)
            for j in range(ptr[bit], ptr[bit + 1]):
                s = of_bit[j]
                if seen[s] != r:
                    seen[s] = r
                    todo[n_todo] = s
                    n_todo += 1
        for j in range(n_todo):
            s = todo[j]
            v = state[s, r]
            if v == 2:
                continue
            if owner[s] != i:
                owner[s] = i
                prev[s] = kept[s] = known[s, i]
                touched[n_touched] = s
                n_touched += 1
            if v != prev[s]:
                if k == len(seg):
                    seg = np.concatenate((seg, np.empty(k, np.int64)))
                    row = np.concatenate((row, np.empty(k, np.int64)))
                    flips = np.concatenate((flips, np.empty(k, np.uint8)))
                seg[k], row[k], flips[k] = s, r, v
                k += 1
                prev[s] = v
            if not len(later) or not later[r]:
                kept[s] = prev[s]
    for j in range(n_touched):
        known[touched[j], i] = kept[touched[j]]
    return seg[:k], row[:k], flips[:k]


def _row(col: Column, p: int) -> Column:
    if col.offsets is not None:  # a list: its elements
        return col.take(np.array([p]))
    return Column(col.dtype, col.values[p:p + 1], None if col.valid is None else
                  col.valid[p:p + 1])


def _referrers(facts: Mapping[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, f in facts.items():
        for ref in f.segment_refs:
            out.setdefault(ref, []).append(name)
    return out


def _numbering(store: ProfileStore) -> Any:
    """The store's numbering of profiles: base, then the delta's new keys (`store.subset`)."""
    from store.subset import _LOCK, _state

    with _LOCK:
        return _state(store).numbering


def _keys_of(store: ProfileStore, index: np.ndarray) -> pa.Array:
    from store.subset import _LOCK, _state

    with _LOCK:
        return _state(store).numbering.keys_of(index)


def _delta_profiles(store: ProfileStore) -> np.ndarray:
    from store.subset import _LOCK, _state

    with _LOCK:
        state = _state(store)
        out = [np.zeros(0, np.int64)]
        for side in (state.upserts, state.events):
            for p, _ in side.runs.runs:
                out.append(p)
    return np.unique(np.concatenate(out))


def _encode(header: dict[str, Any], batch: Batch | None) -> bytes:
    """A log record: a JSON header line, then the batch's tables as Arrow IPC streams."""
    parts = []
    for table in (None if batch is None else batch.events,
                  None if batch is None else batch.profiles):
        parts.append(b"" if table is None else _ipc_stream(table))
    head = json.dumps({**header, "sizes": [len(p) for p in parts]}).encode() + b"\n"
    return head + b"".join(parts)


_EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"  # the Arrow IPC stream's end marker
_SCHEMAS: dict[pa.Schema, bytes] = {}  # schema messages, serialized once


def _ipc_stream(table: pa.Table) -> bytes:
    """``table`` as an Arrow IPC stream: its schema message (serialized once per schema),
    its record batches, the end marker; byte for byte what a stream writer writes, at a
    third of the cost of opening one per call."""
    schema = table.schema
    if any(pa.types.is_dictionary(f.type) for f in schema):  # (dictionary batches first)
        sink = io.BytesIO()
        with pa.ipc.new_stream(sink, schema) as writer:
            writer.write_table(table)
        return sink.getvalue()
    head = _SCHEMAS.get(schema)
    if head is None:
        if len(_SCHEMAS) > 64:
            _SCHEMAS.clear()
        head = _SCHEMAS[schema] = schema.serialize().to_pybytes()
    return b"".join([head, *(b.serialize().to_pybytes() for b in table.to_batches()), _EOS])


def _pack(records: list[bytes]) -> bytes:
    return b"".join(len(r).to_bytes(8, "little") + r for r in records)


def _unpack(data: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        size = int.from_bytes(data[pos:pos + 8], "little")
        out.append(data[pos + 8:pos + 8 + size])
        pos += 8 + size
    return out


def _write_dir(target: Path, files: Mapping[str, bytes]) -> None:
    """Replace directory ``target`` by one holding ``files``, atomically: written and
    fsynced under a temporary name, then renamed over the old one."""
    tmp = target.with_name(target.name + ".tmp")
    old = target.with_name(target.name + ".old")
    for leftover in (tmp, old):
        if leftover.exists():
            shutil.rmtree(leftover)
    for name, data in files.items():
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    if target.exists():
        target.rename(old)  # a crash now leaves .tmp and .old: _read_checkpoint takes .tmp
    tmp.rename(target)
    fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    if old.exists():
        shutil.rmtree(old)


def _read_checkpoint(directory: Path) -> dict[str, Any] | None:
    target = directory / "checkpoint"
    if not target.exists():
        # A crash between the two renames of `_write_dir`: the new one is complete.
        tmp = target.with_name("checkpoint.tmp")
        if tmp.exists() and target.with_name("checkpoint.old").exists():
            tmp.rename(target)
        else:
            return None
    state: dict[str, Any] = json.loads((target / "state.json").read_text())
    state["batches"] = [_decode(r) for r in _unpack((target / "batches.bin").read_bytes())]
    state["pending"] = [_decode(r) for r in _unpack((target / "pending.bin").read_bytes())]
    return state


def _decode(payload: bytes) -> tuple[dict[str, Any], Batch]:
    end = payload.index(b"\n")
    header = json.loads(payload[:end])
    tables: list[pa.Table | None] = []
    pos = end + 1
    for size in header["sizes"]:
        if size:
            tables.append(pa.ipc.open_stream(io.BytesIO(payload[pos:pos + size])).read_all())
        else:
            tables.append(None)
        pos += size
    return header, Batch(tables[0], tables[1])


