"""Streaming sessions (`engine.stream`) against batch recomputes at the same instant.

The invariant: after any interleaving of ``ingest`` and ``advance``, the session's
memberships equal a batch evaluation at the session clock over the store with every applied
batch appended. `StreamMachine` (hypothesis, stateful) checks it after every step, with
random schemas, data and definitions (tests/typed_strategies.py: windows, sequences,
negations, segment references) and random events: existing and new profiles, out of order,
tied, and later than the clock. The oracle is the reference evaluator (tests/reference.py)
over ``store.compacted()``; deterministic tests below use the batch engine itself.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import engine
from engine import stream as stream_module
from engine import timers as timers_module
from engine.analysis import history
from engine.codegen import CompileError
from engine.session import Engine
from engine.stream import MembershipChange, StreamSession
from engine.timers import Timers, candidates, next_changes
from store.profile_store import ProfileStore
from tests import reference
from tests import typed_strategies as typed
from tests.conftest import fresh_kernel_cache

NOW, DAY, HOUR = typed.NOW, typed.DAY, typed.HOUR
ROOT = Path(__file__).resolve().parents[1]
TS = pa.timestamp("ms", tz="UTC")


@pytest.fixture(scope="module", autouse=True)
def kernel_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with fresh_kernel_cache(tmp_path_factory):
        yield


def expected(session: StreamSession, definitions: dict[str, str], at: int) -> dict[str, set]:
    return reference.run(session.store.compacted(), definitions, at_ms=at)


def members(session: StreamSession) -> dict[str, set[Any]]:
    return {n: set(session.ids(n).to_pylist()) for n in session.names}


def ms_ago(t: int) -> str:
    return typed.instant_text(t)


# ================================================================ the stateful test

_WINDOWS = ("< {n} {u} before now", "<= {n} {u} before now", "> {n} {u} before now",
            "= {n} {u} before now", "!= {n} {u} before now", "< {n} {u} after now",
            "< {n} {u} from now", "today", "yesterday", "this {u1}", "last {u1}",
            "< {n} days before today", "<= 1 week after last week", "before now",
            "after now", "between last month and now", "between now and next week")


@st.composite
def timed_definitions(draw: st.DrawFn, world: typed.World) -> str:
    """A definition that changes with time: random definitions seldom do so near the data
    (and the timers are what streaming adds), so every example gets one or two."""
    window = draw(st.sampled_from(_WINDOWS)).format(
        n=draw(st.integers(0, 8)),
        u=draw(st.sampled_from(("millisecond", "hour", "day", "week", "month", "year"))),
        u1=draw(st.sampled_from(("hour", "day", "week", "month", "year"))))
    subjects = [f"xEvent[{{f}}timestamp occurs {window}].count() >= {draw(st.integers(1, 2))}",
                f"xEvent[{{f}}timestamp occurs {window}].count() = 0",
                f"xEvent[{{f}}true].max(timestamp) occurs {window}",
                "currentDayOfMonth() <= 15 and xEvent.count() > 0",
                f"now >= {typed.instant_text(draw(typed.at_instants()))}"]
    subjects += [f"{name} occurs {window}" for name, kind in world.profile.items()
                 if kind in ("timestamp", "date")]
    if world.types:
        a, b = draw(st.sampled_from(world.types)), draw(st.sampled_from(world.types))
        subjects.append(f'chain(xEvent, timestamp, [A: WHAT(eventType = "{a}"), '
                        f'B: WHAT(eventType = "{b}") WHEN(< 2 days before now)])')
    text = draw(st.sampled_from(subjects))
    if world.types and draw(st.booleans()):
        kind = draw(st.sampled_from(world.types))
        return text.replace("{f}", f'eventType = "{kind}" and ')
    return text.replace("{f}", "")


def engine_of(data: st.DataObject, ds: Any, store: ProfileStore, *, timed: int
              ) -> tuple[Engine, dict[str, str]]:
    """An engine over ``store`` with 1-4 random definitions (name -> text) that check, the
    first ``timed`` of them changing with time (`timed_definitions`)."""
    definitions: dict[str, str] = {}
    for k in range(data.draw(st.integers(1, 4), label="n")):
        text = data.draw(timed_definitions(ds.world) if k < timed else typed.definitions(
            ds.world, list(definitions), depth=2), label=f"s{k}")
        try:
            engine.check(text, store.schema, segments=list(definitions))
        except engine.SegmentError:
            continue
        definitions[f"s{k}"] = text
    eng = Engine(store, threads=1, tier="kernel", background=False)
    for name, text in definitions.items():
        eng.define(name, text)
    return eng, definitions


class StreamMachine(RuleBasedStateMachine):
    """Random definitions over a random store; random ingests and advances."""

    session: StreamSession
    definitions: dict[str, str]

    @initialize(data=st.data())
    def start(self, data: st.DataObject) -> None:
        ds = data.draw(typed.datasets(max_profiles=6), label="dataset")
        self.ds = ds
        self.store = ds.load()
        names: list[str] = []
        definitions: dict[str, str] = {}
        for k in range(data.draw(st.integers(2, 5), label="n")):
            if k < 2:
                text = data.draw(timed_definitions(ds.world), label=f"s{k}")
            else:
                text = data.draw(typed.definitions(ds.world, names, depth=2), label=f"s{k}")
            try:
                engine.check(text, self.store.schema, segments=names)
            except engine.SegmentError as e:
                note(f"not checked: {text!r}: {e}")
                continue
            names.append(f"s{k}")
            definitions[f"s{k}"] = text
        eng = Engine(self.store, threads=1, tier="kernel", background=False)
        for name, text in definitions.items():
            try:
                eng.define(name, text)
            except CompileError as e:
                raise AssertionError(f"{text!r} refused: {e}") from e
        self.definitions = definitions
        at = data.draw(typed.at_instants(), label="at")
        note(f"definitions {definitions!r} at {at}")
        self.session = eng.stream(at)
        # How far ahead of an advance timelines go, and kernel calls of a few rows, so that
        # a profile's rows span several (the defaults: a day, 16,384 rows).
        self.session._ahead_ms = data.draw(st.sampled_from((0, HOUR, DAY)), label="ahead")
        self.session._chunk_rows = data.draw(st.sampled_from((1, 2, 16384)), label="chunk")
        self.fresh = 0
        self.held: list[int] = []
        self.state = members(self.session)

    def _events(self, data: st.DataObject) -> pa.Table | None:
        source = self.ds.events
        if not source.num_rows:
            return None
        n = data.draw(st.integers(1, 4), label="events")
        rows = source.take(pa.array(data.draw(
            st.lists(st.integers(0, source.num_rows - 1), min_size=n, max_size=n))))
        keys = list(self.store.keys.to_pylist())
        int_keys = pa.types.is_integer(source.schema.field("id").type)
        ids = []
        for _ in range(n):
            if data.draw(st.integers(0, 4)) == 0:  # a new profile (or a new one again)
                k = data.draw(st.integers(0, self.fresh))
                self.fresh = max(self.fresh, k + 1)
                ids.append(9000 + k if int_keys else f"new{k}")
            else:
                ids.append(data.draw(st.sampled_from(keys)) if keys else
                           (9000 if int_keys else "new0"))
        clock = self.session.clock
        times = [data.draw(st.one_of(
            st.sampled_from((clock, clock - 1, clock + 1, clock - DAY, clock + HOUR)),
            st.integers(clock - 40 * DAY, clock + 3 * DAY),  # out of order, or later
        )) for _ in range(n)]
        rows = rows.set_column(rows.schema.get_field_index("id"), "id",
                               pa.array(ids, source.schema.field("id").type))
        return rows.set_column(rows.schema.get_field_index("timestamp"), "timestamp",
                               pa.array(times, pa.int64()).cast(TS))

    @rule(data=st.data())
    def ingest(self, data: st.DataObject) -> None:
        events = self._events(data)
        if events is None:
            return
        note(f"ingest at {self.session.clock}: {events.to_pylist()}")
        before = self.session.clock
        times = pc.cast(events.column("timestamp"), pa.int64()).to_pylist()
        self.held += [t for t in times if t > before]  # they apply at their own instants
        changes = self.session.ingest(events)
        self._replay(changes, before, before)

    @rule(data=st.data())
    def advance(self, data: st.DataObject) -> None:
        clock = self.session.clock
        scheduled = self.session.next_change()
        choices = [clock, clock + 1, clock + HOUR, clock + DAY, clock + 7 * DAY + 1,
                   clock + 40 * DAY]
        if scheduled is not None:
            choices += [scheduled - 1, scheduled, scheduled + 1]
        to = data.draw(st.one_of(st.sampled_from(choices),
                                 st.integers(clock, clock + 60 * DAY)), label="to")
        note(f"advance {clock} → {to}")
        changes = self.session.advance(to)
        self._replay(changes, clock + 1, to)
        # Exact instants: each change holds at its instant and not one millisecond before
        # (a batch evaluation at each; the first few changes of the step). The batch sees
        # all the data, so only instants after the last held event this step released.
        released = [t for t in self.held if clock < t <= to]
        self.held = [t for t in self.held if t > to]
        for change in changes[:3]:
            x = round(change.at.timestamp() * 1000)
            if released and x - 1 < max(released):
                continue
            after = expected(self.session, self.definitions, x)[change.segment]
            before = expected(self.session, self.definitions, x - 1)[change.segment]
            entered = change.status == "realized"
            assert (change.profile_id in after, change.profile_id in before) == (
                entered, not entered), change

    def _replay(self, changes: list[MembershipChange], lo: int, hi: int) -> None:
        """The changes, applied in order to the previous state, give the new state; each is
        stamped inside the step's interval."""
        for c in changes:
            at = round(c.at.timestamp() * 1000)
            assert lo <= at <= hi, (c, lo, hi)
            group = self.state[c.segment]
            if c.status == "realized":
                assert c.profile_id not in group, c
                group.add(c.profile_id)
            else:
                assert c.status == "exited" and c.profile_id in group, c
                group.discard(c.profile_id)
        assert self.state == members(self.session)

    @invariant()
    def equals_batch(self) -> None:
        if not hasattr(self, "session"):
            return
        want = expected(self.session, self.definitions, self.session.clock)
        got = members(self.session)
        for name, text in self.definitions.items():
            assert got[name] == want[name], (
                f"{name} = {text!r} at {self.session.clock}: session has "
                f"{sorted(got[name] - want[name], key=str)} too many, "
                f"{sorted(want[name] - got[name], key=str)} too few")

    @precondition(lambda self: hasattr(self, "session"))
    @rule()
    def exact_next_change(self) -> None:
        """Nothing changes before a profile's scheduled instant: evaluating one millisecond
        before the earliest one gives the present state."""
        x = self.session.next_change()
        if x is None or x - 1 <= self.session.clock or x - self.session.clock > 400 * DAY:
            return
        want = expected(self.session, self.definitions, x - 1)
        assert want == members(self.session)


TestStreamMachine = StreamMachine.TestCase
TestStreamMachine.settings = settings(
    max_examples=20, stateful_step_count=8, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ================================================================ the one-event path


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_one_event_path_equals_general_path(data: st.DataObject) -> None:
    """The one-event path (`store.one_profile`: calls whose events are all one base
    profile's) gives the changes, in order, and the memberships the general path gives:
    two sessions fed the same calls, the second with the path off; the path must take
    every call it can (events at or before the clock with values the store's own, of a
    profile whose events in the delta are too: it rebuilds a profile the general path
    had from them), and both must equal the reference evaluator at the end."""
    ds = data.draw(typed.datasets(max_profiles=8), label="dataset")
    store = ds.load()
    source = ds.events
    if "eventType" in source.column_names:
        source = source.filter(pc.is_valid(source.column("eventType")))
    if not source.num_rows or not len(store):
        return
    eng, definitions = engine_of(data, ds, store, timed=1)
    at = data.draw(typed.at_instants(), label="at")
    fast, slow = eng.stream(at), eng.stream(at)
    slow._one = None  # the general path only
    served = fast._one
    taken = 0
    gone: set[Any] = set()  # keys with a string the store lacks in the delta: not served
    keys = store.keys.to_pylist()
    for _ in range(data.draw(st.integers(2, 10), label="steps")):
        clock = fast.clock
        if data.draw(st.integers(0, 4)) == 0:
            to = data.draw(st.sampled_from((clock + 1, clock + HOUR, clock + 8 * DAY)))
            got, want = fast.advance(to), slow.advance(to)
        else:
            key = data.draw(st.sampled_from(keys), label="key")
            n = data.draw(st.integers(1, 3), label="events")
            rows = source.take(pa.array(data.draw(st.lists(
                st.integers(0, source.num_rows - 1), min_size=n, max_size=n))))
            times = [data.draw(st.sampled_from((clock, clock - 1, clock - HOUR, clock - 9 * DAY,
                                                clock + HOUR))) for _ in range(n)]
            rows = rows.set_column(rows.schema.get_field_index("id"), "id",
                                   pa.array([key] * n, source.schema.field("id").type))
            rows = rows.set_column(rows.schema.get_field_index("timestamp"), "timestamp",
                                   pa.array(times, pa.int64()).cast(TS))
            fresh = "cat" in rows.column_names and data.draw(st.integers(0, 5)) == 0
            if fresh:  # a string the store has never seen: its dictionaries lack it
                rows = rows.set_column(rows.schema.get_field_index("cat"), "cat",
                                       pa.array(["never seen"] * n, pa.string()))
            note(f"ingest at {clock}: {rows.to_pylist()}")
            calls = []
            original = fast._ingest_one

            def spy(batch: Any, original: Any = original, calls: list[Any] = calls) -> Any:
                out = original(batch)
                calls.append(out is not None)
                return out

            fast._ingest_one = spy  # type: ignore[method-assign]
            got, want = fast.ingest(rows), slow.ingest(rows)
            fast._ingest_one = original  # type: ignore[method-assign]
            taken += sum(calls)
            if served is not None and key not in gone and max(times) <= clock and not fresh:
                assert calls == [True], "the one-event path declined a call it can take"
            if fresh:
                gone.add(key)
        assert [c.to_dict() for c in got] == [c.to_dict() for c in want]
        assert fast.memberships() == slow.memberships()
    assert members(fast) == expected(fast, definitions, fast.clock)
    event(f"one-event path: {'off' if served is None else 'took calls' if taken else 'idle'}")


# ================================================================ advancing in steps


def _sorted(changes: list[MembershipChange]) -> list[tuple[Any, ...]]:
    return sorted((c.at, str(c.profile_id), c.segment, c.status) for c in changes)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_advance_in_small_steps_equals_one_advance(data: st.DataObject) -> None:
    """A clock moved in small steps gives the changes (each once) and memberships one
    move gives: timelines evaluated ahead of a call (their changes waiting for the clock),
    kernel calls of a row or two, profiles whose rows span calls, ingests between that make
    changes computed ahead void."""
    ds = data.draw(typed.datasets(max_profiles=8), label="dataset")
    store = ds.load()
    source = ds.events
    eng, definitions = engine_of(data, ds, store, timed=2)
    at = data.draw(typed.at_instants(), label="at")
    once, steps = eng.stream(at), eng.stream(at)
    once._ahead_ms = 0
    steps._ahead_ms = data.draw(st.sampled_from((HOUR, DAY, 30 * DAY)), label="ahead")
    steps._chunk_rows = data.draw(st.sampled_from((1, 2)), label="chunk")
    if data.draw(st.booleans(), label="general path only"):
        steps._one = once._one = None
    keys = store.keys.to_pylist()
    for _ in range(data.draw(st.integers(1, 4), label="phases")):
        target = once.clock + data.draw(st.sampled_from((HOUR, DAY, 3 * DAY, 20 * DAY)))
        want = once.advance(target)
        got: list[MembershipChange] = []
        for _ in range(data.draw(st.integers(0, 8), label="steps")):
            got += steps.advance(min(target, steps.clock + data.draw(st.sampled_from(
                (DAY, 5 * HOUR, HOUR, 1)), label="step")))
        got += steps.advance(target)
        assert _sorted(got) == _sorted(want)
        assert steps.memberships() == once.memberships()
        if source.num_rows and keys and data.draw(st.booleans(), label="ingest"):
            # Events of profiles with changes computed ahead, most often: those must go.
            waiting = sorted({keys[i] for i in steps._ahead.rows[:, 1].tolist() if i < len(keys)},
                             key=str)
            n = data.draw(st.integers(1, 2), label="events")  # two: the general path
            who = [data.draw(st.sampled_from(waiting or keys) if k == 0 else st.sampled_from(keys))
                   for k in range(n)]
            # Most often a copy of one of the profile's own events: one its windows read.
            own = np.flatnonzero(np.asarray(source.column("id").to_pylist(), object) == who[0])
            picks = [int(own[data.draw(st.integers(0, len(own) - 1))]) if k == 0 and len(own)
                     else data.draw(st.integers(0, source.num_rows - 1)) for k in range(n)]
            rows = source.take(pa.array(picks))
            rows = rows.set_column(rows.schema.get_field_index("id"), "id", pa.array(
                who, source.schema.field("id").type))
            times = [target - data.draw(st.sampled_from((0, HOUR, DAY))) for _ in range(n)]
            rows = rows.set_column(rows.schema.get_field_index("timestamp"), "timestamp",
                                   pa.array(times, pa.int64()).cast(TS))
            note(f"ingest at {target}: {rows.to_pylist()}")
            event(f"waiting {bool(waiting)}, one path {steps._one is not None}")
            assert _sorted(steps.ingest(rows)) == _sorted(once.ingest(rows))
    assert members(steps) == expected(steps, definitions, steps.clock)


# ================================================================ bounded histories


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_history_leaves_out_only_events_no_window_reads(data: st.DataObject) -> None:
    """A subset keeping only the events `Engine.history` names (those within the windows
    that read their type, from an instant on) gives every definition the value the whole
    history gives, at that instant and later, and the same next timer instants: what lets
    a session skip the old part of a heavy profile's history."""
    ds = data.draw(typed.datasets(max_profiles=8), label="dataset")
    store = ds.load()
    eng = Engine(store, threads=1, tier="kernel", background=False)
    names: list[str] = []
    for k in range(data.draw(st.integers(1, 4), label="n")):
        text = data.draw(timed_definitions(ds.world) if k % 2 == 0 else
                         typed.definitions(ds.world, names, depth=2), label=f"s{k}")
        try:
            eng.define(f"s{k}", text)
        except (engine.SegmentError, CompileError):
            continue
        names.append(f"s{k}")
    if not names:
        return
    exprs = [eng.expr(n) for n in names]
    facts = [engine.analyze(e, store.schema) for e in exprs]
    reach = sorted({ms for ms in history(facts).values() if ms is not None})
    times = pc.cast(ds.events.column("timestamp"), pa.int64()).to_pylist()
    instants = typed.at_instants()
    if reach and times:  # also just past the look-back of some event: where a cut shows
        instants = st.one_of(instants, st.builds(
            lambda t, ms, d: t + ms + d, st.sampled_from(times), st.sampled_from(reach),
            st.sampled_from((-1, 0, 1, 2, HOUR // 2))))
    at = data.draw(instants, label="at")
    later = at + data.draw(st.sampled_from((0, 0, 1, HOUR, DAY)), label="later")
    since = eng.history(names, at)
    note(f"since {since}")
    sub = store.subset(np.arange(len(store)), since=since)
    kept = sum(len(p) for p in sub.store.events.partitions)
    note(f"{kept} of {sum(len(p) for p in store.events.partitions)} events kept")
    got = eng.evaluate_subset(sub.store, names, later)
    want = eng.evaluate_subset(store, names, later)
    for name in names:
        assert got[name].tolist() == want[name].tolist(), (name, eng.expr(name))
    # Timers from the kept events: nothing changes before a profile's next one.
    timers = Timers.of(exprs, [f.event_types for f in facts])  # as a session's
    if timers.daily:
        return  # calendar functions change at midnights, which timers leave out
    nxt = next_changes(sub.store, timers, later)
    # The pass that lists the instants up to ``later`` finds the next one past it as well;
    # the same on threads, a range of the profiles each (over a year: rows to compare).
    x0 = np.full(len(sub.store), at, np.int64)
    assert candidates(sub.store, timers, x0, later)[3].tolist() == nxt.tolist()
    alone = candidates(sub.store, timers, x0, later + 400 * DAY)
    with mock.patch.object(timers_module, "_PER_THREAD", 1):
        shared = candidates(sub.store, timers, x0, later + 400 * DAY, threads=3)
    assert [x.tolist() for x in shared] == [x.tolist() for x in alone]
    for x in sorted(set(nxt.tolist())):
        if x - 1 <= later or x - later > 400 * DAY:
            continue
        before = eng.evaluate_subset(store, names, x - 1)
        rows = np.flatnonzero(nxt == x)
        for name in names:
            assert before[name][rows].tolist() == want[name][rows].tolist(), (
                name, eng.expr(name), x)


# ================================================================ deterministic cases


def b10_like(events: list[tuple[int, int, str, float]]) -> ProfileStore:
    profiles = pa.table({"id": pa.array([1, 2, 3], pa.int64()),
                         "country": ["US", "FR", "US"]})
    ids, times, types, prices = zip(*events, strict=True) if events else ((), (), (), ())
    ev = pa.table({"id": pa.array(ids, pa.int64()), "timestamp": pa.array(times, TS),
                   "eventType": pa.array(types, pa.string()),
                   "price": pa.array(prices, pa.float64())})
    return ProfileStore.from_arrow(profiles, ev, profile_id="id", event_time="timestamp",
                                   event_type="eventType")


RECENT = 'xEvent[eventType = "purchase" and timestamp occurs < 7 days before now].count() >= 1'
LAPSED = ('xEvent[eventType = "purchase"].count() >= 1 and '
          'xEvent[eventType = "purchase" and timestamp occurs < 30 days before now].count() = 0')


def session_of(store: ProfileStore, definitions: dict[str, str], at: int,
               **options: Any) -> StreamSession:
    eng = Engine(store, threads=1, tier="kernel", background=False)
    for name, text in definitions.items():
        eng.define(name, text)
    return eng.stream(at, **options)


def stamp(ms: int) -> str:
    return typed.instant_text(ms)


def test_purchase_enters_then_exits_exactly_seven_days_later() -> None:
    store = b10_like([(1, NOW - 40 * DAY, "view", 0.0)])
    s = session_of(store, {"recent": RECENT, "lapsed": LAPSED}, NOW)
    bought = NOW - 5 * HOUR
    changes = s.ingest({"id": 1, "timestamp": bought, "eventType": "purchase", "price": 3.0},
                       time_units={"timestamp": "ms"})
    assert [(c.profile_id, c.segment, c.status) for c in changes] == [(1, "recent", "realized")]
    assert changes[0].at.timestamp() * 1000 == NOW  # an ingest takes effect at the clock
    changes = s.advance(NOW + 60 * DAY)
    got = [(c.segment, c.status, round(c.at.timestamp() * 1000)) for c in changes]
    # "< 7 days before now": bought > now - 7 days, so out at bought + 7 days exactly;
    # lapsed: no purchase in the 30 days before now, from bought + 30 days.
    assert got == [("recent", "exited", bought + 7 * DAY), ("lapsed", "realized", bought + 30 * DAY)]
    assert s.advance(NOW + 61 * DAY) == []


WHENS = [  # time conditions of every form, on `now`, the calendar and fixed instants
    "< 7 days before now", "<= 30 days before now", "= 3 hours before now", "= 0 days before now",
    "> 1 month before now", "= 1 month before now", "< 2 days after now", "< 1 day from now",
    "< 3 days before today", "<= 1 week after last week", "today", "yesterday", "last month",
    "this month", "before today", "after @2024-01-01T00:00:00Z", "on date(2024, 2, 29)",
    "between last month and today", "between @2024-01-01T00:00:00Z and now",
    ">= 2 years before now", "!= 5 minutes before now",
]


@settings(max_examples=60, deadline=None)
@given(at=typed.at_instants(), later=st.integers(0, 400 * DAY))
def test_one_binder_binds_windows_as_one_by_one(at: int, later: int) -> None:
    """`OneBinder` binds all windows of a kernel in one `bind_rows` call per instant; each
    must equal what binding it alone gives (`bind`), alone and stacked (a shape's
    instances), at each of two instants (its values are per instant)."""
    from engine import ir
    from engine.binding import OneBinder, bind
    from engine.codegen import Arg
    from engine.types import Special

    store = b10_like([])
    conds, periods = [], []
    for when in WHENS:
        tree = engine.check(f"xEvent[timestamp occurs {when}].count() > 0", store.schema)
        conds += [n for n in ir.walk(tree) if isinstance(n, ir.TimeCond)]
        periods += [n for n in ir.walk(tree) if n.dtype is Special.PERIOD]
    assert len(conds) == len(WHENS) and len(periods) >= 5
    args = [Arg(f"w{k}", kind, (c,)) for k, c in enumerate(conds)
            for kind in ("window", "window_bounds")]
    args += [Arg(f"p{k}", "period", (p,)) for k, p in enumerate(periods)]
    args += [Arg("stack", "stack", ("window", tuple((c,) for c in conds)))]
    binder = OneBinder(tuple(args), store)
    for now in (at, at + later):
        got = binder(0, {}, now, {})
        want = bind(tuple(args), store, now, {}, {})
        for a, x, y in zip(args, got, want, strict=True):
            assert np.array_equal(x, y), (a.kind, a.ref[0] if a.kind != "stack" else "", now)


@pytest.mark.parametrize("path", ["one-event", "general"])
def test_new_events_void_the_changes_computed_ahead(path: str) -> None:
    """An advance evaluates a due profile's timeline a day past its end (`_AHEAD_MS`); the
    changes found there wait for the clock. A purchase ingested meanwhile makes them void:
    the exit it postpones must not be reported, nor any change twice."""
    bought = NOW - 7 * DAY + HOUR  # "recent" until NOW + 1 hour, "longer" 12 hours more
    store = b10_like([(1, bought, "purchase", 3.0), (2, NOW - DAY, "view", 0.0)])
    longer = RECENT.replace("7 days", "180 hours")
    s = session_of(store, {"recent": RECENT, "longer": longer}, NOW)
    if path == "general":
        s._one = None
    assert s.advance(NOW + HOUR - 1) == []  # due at NOW + 1 hour: not yet
    assert len(s._ahead.rows) == 0
    # Due now: its exit from "recent" is reported, the one from "longer" (at NOW + 13
    # hours) waits.
    changes = s.advance(NOW + HOUR)
    assert [(c.segment, c.status) for c in changes] == [("recent", "exited")]
    assert s._ahead.rows[:, 0].tolist() == [bought + 180 * HOUR]
    again = NOW + 2 * HOUR
    assert s.advance(again) == []
    changes = s.ingest({"id": 1, "timestamp": again, "eventType": "purchase", "price": 1.0},
                       time_units={"timestamp": "ms"})
    assert [(c.segment, c.status) for c in changes] == [("recent", "realized")]
    changes = s.advance(NOW + 60 * DAY)
    got = [(c.segment, c.status, round(c.at.timestamp() * 1000)) for c in changes]
    assert got == [("recent", "exited", again + 7 * DAY), ("longer", "exited", again + 180 * HOUR)]


def test_one_event_path_takes_what_it_can_and_declines_the_rest() -> None:
    """The one-event path serves a known profile's events coded in the store's own
    dictionaries, and hands the general path what they cannot hold (a string never seen, a
    null where the column has none, a type new to the store, several profiles in one call);
    a profile the general path had is rebuilt from its events in the delta, unless they are
    such. Memberships stay exact throughout."""
    profiles = pa.table({"id": pa.array([1, 2, 3, 4, 5], pa.int64())})
    ev = pa.table({"id": pa.array([1, 1, 2, 3], pa.int64()),
                   "timestamp": pa.array([NOW - 3 * DAY, NOW - DAY, NOW - DAY, NOW - HOUR], TS),
                   "eventType": ["purchase", "view", "purchase", "purchase"],
                   "cat": ["a", "b", "b", "a"],
                   "price": pa.array([1.0, None, 2.0, 3.0], pa.float64())})
    store = ProfileStore.from_arrow(profiles, ev, profile_id="id", event_time="timestamp",
                                    event_type="eventType")
    definitions = {"a_buyer": 'xEvent[eventType = "purchase" and cat = "a"].count() >= 2',
                   "busy": "xEvent.count() >= 3",
                   "recent": RECENT}
    s = session_of(store, definitions, NOW)
    assert s._one is not None
    taken: list[bool] = []
    original = s._ingest_one

    def spy(batch: Any) -> Any:
        out = original(batch)
        taken.append(out is not None)
        return out

    s._ingest_one = spy  # type: ignore[method-assign]

    def ingest(rows: list[dict[str, Any]]) -> bool:
        taken.clear()
        s.ingest(pa.Table.from_pylist(rows, schema=pa.schema([
            ("id", pa.int64()), ("timestamp", TS), ("eventType", pa.string()),
            ("cat", pa.string()), ("price", pa.float64())])))
        assert members(s) == expected(s, definitions, s.clock)
        return taken == [True]

    def event(key: int, kind: str = "purchase", cat: str | None = "a",
              price: float | None = 5.0) -> dict[str, Any]:
        return {"id": key, "timestamp": NOW - 1, "eventType": kind, "cat": cat, "price": price}

    assert ingest([event(1)])  # served: a_buyer and busy enter
    assert ingest([event(1, cat="b"), event(1)])  # several events of one profile
    assert ingest([event(1, "view", price=None)])  # a null where the column holds nulls
    assert not ingest([event(4), event(5)])  # two profiles: the general path
    assert ingest([event(4)])  # rebuilt from its events in the delta, then served
    assert ingest([event(4, "view", price=None)])
    assert not ingest([event(2, cat="never seen")])  # not in the dictionary
    assert not ingest([event(2)])  # nor can its rebuild hold it: not served again
    assert not ingest([event(3, cat=None)])  # no event's cat was ever null
    assert not ingest([event(3)])
    assert not ingest([event(1, "refund")])  # a type new to the store
    assert not ingest([event(1)])


def test_one_event_path_and_edge_survive_compacting_the_engine_store() -> None:
    """Compacting the engine's store in memory replaces its arrays: a running session keeps
    its own (its one-event path binds to those it started with); the engine starts over
    from its definitions, so its runs and edge evaluation read the new ones."""
    store = b10_like([(1, NOW - 2 * DAY, "purchase", 5.0), (2, NOW - 9 * DAY, "view", 1.0)])
    definitions = {"recent": RECENT, "busy": "xEvent.count() >= 2"}
    eng = Engine(store, threads=1, tier="kernel", background=False)
    for name, text in definitions.items():
        eng.define(name, text)
    s = eng.stream(NOW)
    assert eng.evaluate_profile(2, NOW) == []  # the edge's views of the first arrays
    store.append(pa.table({"id": pa.array([2, 4], pa.int64()),
                           "timestamp": pa.array([NOW - DAY, NOW - DAY], TS),
                           "eventType": ["purchase", "purchase"], "price": [1.0, 2.0]}))
    store.compact()  # in memory: the store adopts new arrays, profile 4 among them
    for key in (1, 3):
        s.ingest({"id": key, "timestamp": NOW - HOUR, "eventType": "purchase", "price": 1.0},
                 time_units={"timestamp": "ms"})
    assert s.served_alone == 2
    assert members(s) == expected(s, definitions, s.clock)
    want = reference.run(store, definitions, at_ms=NOW)
    result = eng.run(NOW)  # (its kernels too were made for the old arrays)
    for index, key in enumerate(store.keys.to_pylist()):
        assert [n for n in eng.names if index in result[n]] == [n for n in eng.names
                                                                if key in want[n]]
        assert eng.evaluate_profile(key, NOW) == [n for n in eng.names if key in want[n]]
    assert eng.evaluate_profile(2, NOW) == ["recent", "busy"]


def test_future_events_wait_for_the_clock() -> None:
    store = b10_like([])
    s = session_of(store, {"recent": RECENT}, NOW)
    later = NOW + 3 * HOUR
    assert s.ingest({"id": 2, "timestamp": later, "eventType": "purchase", "price": 1.0},
                    time_units={"timestamp": "ms"}) == []
    assert not s.memberships()["recent"]
    changes = s.advance(NOW + DAY)
    assert [(c.profile_id, c.status, round(c.at.timestamp() * 1000)) for c in changes] == [
        (2, "realized", later)]


def test_new_profile_and_segment_reference() -> None:
    store = b10_like([(1, NOW - DAY, "purchase", 5.0)])
    definitions = {"recent": RECENT, "us_recent": 'country = "US" and inSegment("recent")',
                   "not_recent": 'not inSegment("recent")'}
    s = session_of(store, definitions, NOW)
    assert set(s.ids("not_recent").to_pylist()) == {2, 3}
    changes = s.ingest({"id": 77, "timestamp": NOW - 1, "eventType": "purchase", "price": 1.0},
                       time_units={"timestamp": "ms"})
    assert {(c.profile_id, c.segment, c.status) for c in changes} == {(77, "recent", "realized")}
    changes = s.advance(NOW + 8 * DAY)
    assert {(c.profile_id, c.segment, c.status) for c in changes} == {
        (1, "recent", "exited"), (1, "us_recent", "exited"), (1, "not_recent", "realized"),
        (77, "recent", "exited"), (77, "not_recent", "realized")}


@pytest.mark.parametrize("few", [0, 64])
def test_session_equals_batch_engine_on_b10(tmp_path: Any, few: int) -> None:
    """The literal invariant with the batch engine (not the reference) on B10 data; the
    session's bitmaps following changes one by one (up to ``few``), or as arrays."""
    with mock.patch.object(stream_module, "_FEW_PAIRS", few):
        _session_equals_batch_engine_on_b10()


def _session_equals_batch_engine_on_b10() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benches"))
    from store.synth import B10_NOW_MS, generate_b10
    from workloads import b10_segments

    parts = list(generate_b10(600, seed=5))
    profiles = pa.Table.from_batches([p for p, _ in parts])
    events = pa.Table.from_batches([e for _, e in parts])
    store = ProfileStore.from_arrow(profiles, events, profile_id="profile_id",
                                    event_profile_id="profile_id", event_time="timestamp",
                                    event_type="eventType")
    definitions = b10_segments()
    s = session_of(store, definitions, B10_NOW_MS)
    rng = np.random.default_rng(1)
    sample = events.take(pa.array(rng.integers(0, events.num_rows, 300)))
    shift = pa.array(rng.integers(-2 * DAY, DAY, 300), pa.int64())
    times = pa.array(np.asarray(sample.column("timestamp").cast(pa.int64()).to_numpy())
                     + 2 * DAY + np.asarray(shift), pa.int64()).cast(sample.schema.field(
                         "timestamp").type)
    sample = sample.set_column(1, "timestamp", times)
    for k in range(0, 300, 100):
        s.ingest(sample.slice(k, 100))
        s.advance(s.clock + DAY // 2)
        eng = Engine(s.store.compacted(), threads=1, tier="kernel", background=False)
        for name, text in definitions.items():
            eng.define(name, text)
        batch = eng.run(s.clock)
        for name in definitions:
            assert s.memberships()[name] == batch[name], name


def test_bad_events_change_nothing() -> None:
    store = b10_like([(1, NOW - DAY, "purchase", 5.0)])
    s = session_of(store, {"recent": RECENT}, NOW)
    before = s.memberships()
    with pytest.raises(Exception, match="price"):
        s.ingest({"id": 1, "timestamp": NOW, "eventType": "purchase", "price": "lots"},
                 time_units={"timestamp": "ms"})
    assert s.memberships() == before
    assert len(s.store.delta.batches) == 0


def test_clock_cannot_go_back() -> None:
    s = session_of(b10_like([]), {"recent": RECENT}, NOW)
    with pytest.raises(ValueError, match="cannot go back"):
        s.advance(NOW - 1)


def test_evaluate_profile_matches_batch() -> None:
    store = b10_like([(1, NOW - DAY, "purchase", 5.0), (3, NOW - 9 * DAY, "purchase", 1.0)])
    eng = Engine(store, threads=1, tier="kernel", background=False)
    eng.define("recent", RECENT)
    eng.define("us", 'country = "US"')
    eng.define("us_recent", 'inSegment("us") and inSegment("recent")')
    result = eng.run(NOW)
    for key in (1, 2, 3):
        index = int(store.index_of([key])[0])
        want = [n for n in eng.names if index in result[n]]
        assert eng.evaluate_profile(key, NOW) == want
    assert eng.evaluate_profile(12345, NOW) == []  # unknown: a profile with no data


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_evaluate_profile_equals_batch_run(data: st.DataObject) -> None:
    """Edge evaluation of every profile (the one-profile views when the store has no
    delta, a subset otherwise) equals the batch run at the same instant, with random
    schemas, data and definitions (segment references included)."""
    ds = data.draw(typed.datasets(max_profiles=8), label="dataset")
    store = ds.load()
    eng = Engine(store, threads=1, tier="kernel", background=False)
    names: list[str] = []
    for k in range(data.draw(st.integers(1, 4), label="n")):
        text = data.draw(timed_definitions(ds.world) if k == 0 else typed.definitions(
            ds.world, names, depth=2), label=f"s{k}")
        try:
            engine.check(text, store.schema, segments=names)
        except engine.SegmentError:
            continue
        eng.define(f"s{k}", text)
        names.append(f"s{k}")
    at = data.draw(typed.at_instants(), label="at")
    result = eng.run(at)
    for index, key in enumerate(store.keys.to_pylist()):
        want = [n for n in eng.names if index in result[n]]
        assert eng.evaluate_profile(key, at) == want, key
    event(f"one-profile views: {eng._one_profile() is not None}")


# ================================================================ durability


def _worker(store: Path, log: Path, total: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.stream_worker", str(store), str(log), str(total)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def test_sigkill_loses_no_acknowledged_event_and_applies_none_twice(tmp_path: Path) -> None:
    """Kill the streaming process at random points, restart it on its log: every
    acknowledged batch is there exactly once, and memberships equal a batch recompute."""
    from tests.stream_worker import NOW as W_NOW

    events = pa.table({"id": pa.array([0, 1], pa.int64()),
                       "timestamp": pa.array([W_NOW - HOUR, W_NOW - 3 * HOUR], TS),
                       "eventType": ["purchase", "view"], "price": [-1.0, -2.0]})
    ProfileStore.from_arrow(None, events, profile_id="id", event_time="timestamp",
                            event_type="eventType").save(tmp_path / "store")
    log, total = tmp_path / "log", 40
    rng = np.random.default_rng(7)
    acked: set[int] = set()
    for _ in range(3):
        proc = _worker(tmp_path / "store", log, total)
        assert proc.stdout is not None
        first = proc.stdout.readline().split()
        assert first[0] == "recovered", [*first, proc.stderr.read() if proc.stderr else ""]
        assert acked <= {int(k) for k in first[1:]}  # nothing acknowledged is lost
        stop_after = int(rng.integers(3, 9))
        seen = 0
        for line in proc.stdout:
            if line.startswith("ack"):
                acked.add(int(line.split()[1]))
                seen += 1
                if seen >= stop_after:
                    break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    proc = _worker(tmp_path / "store", log, total)
    out, err = proc.communicate(timeout=300)
    lines = out.splitlines()
    recovered = {int(k) for k in lines[0].split()[1:]}
    assert acked <= recovered
    prices = [int(p) for p in lines[1].split()[1:]]
    assert len(prices) == len(set(prices)), "an event was applied twice"
    assert lines[-1] == "equal", out + err
    # Every batch is in the final session once.
    final = sorted({p // 1000 for p in prices})
    assert final == sorted(recovered), (final, recovered)


def test_torn_log_tail_is_reported_not_applied(tmp_path: Path) -> None:
    store = b10_like([(1, NOW - DAY, "purchase", 5.0)])
    s = session_of(store, {"recent": RECENT}, NOW, log=tmp_path / "log")
    s.ingest({"id": 2, "timestamp": NOW - 1, "eventType": "purchase", "price": 1.0},
             time_units={"timestamp": "ms"})
    s.close()
    segment = sorted((tmp_path / "log" / "wal").glob("*.wal"))[-1]
    data = segment.read_bytes()
    segment.write_bytes(data[:-5])  # the last record cut short: never acknowledged
    with session_of(store, {"recent": RECENT}, NOW, log=tmp_path / "log") as again:
        assert again.recovered_tail is not None
        assert set(again.ids("recent").to_pylist()) == {1}  # the torn ingest is not applied


def test_checkpoint_then_resume(tmp_path: Path) -> None:
    store = b10_like([(1, NOW - DAY, "purchase", 5.0)])
    s = session_of(store, {"recent": RECENT}, NOW, log=tmp_path / "log")
    s.ingest({"id": 2, "timestamp": NOW + HOUR, "eventType": "purchase", "price": 1.0},
             time_units={"timestamp": "ms"})  # held: later than the clock
    s.advance(NOW + 30 * 60_000)
    s.checkpoint()
    s.ingest({"id": 3, "timestamp": NOW, "eventType": "purchase", "price": 1.0},
             time_units={"timestamp": "ms"})
    want = s.memberships()
    s.close()
    with session_of(store, {"recent": RECENT}, None, log=tmp_path / "log") as again:
        assert again.clock == NOW + 30 * 60_000
        assert again.memberships() == want
        changes = again.advance(NOW + 2 * HOUR)  # a held event still takes effect at its time
        assert [(c.profile_id, c.status, round(c.at.timestamp() * 1000))
                for c in changes] == [(2, "realized", NOW + HOUR)]
    with pytest.raises(ValueError, match="define the same segments"):
        session_of(store, {"other": RECENT}, None, log=tmp_path / "log")


def test_membership_change_shortcut_builds_the_same_change() -> None:
    """`MembershipChange._of` (used for the thousands of changes of a large call) sets every
    field, as the constructor does: a field added later cannot be left out."""
    import dataclasses

    from engine.stream import instant

    fast = MembershipChange._of(7, "s", "exited", instant(NOW), 3)
    slow = MembershipChange(7, "s", "exited", instant(NOW), 3)
    assert fast == slow and hash(fast) == hash(slow)
    # (A slot left unset raises AttributeError when read.)
    assert [getattr(fast, f.name) for f in dataclasses.fields(MembershipChange)] == [
        getattr(slow, f.name) for f in dataclasses.fields(MembershipChange)]


@pytest.mark.parametrize("table", [
    pa.table({"a": [1, 2], "b": ["x", None]}),
    pa.table({"a": pa.array([], pa.int64())}),
    pa.concat_tables([pa.table({"a": [1]}), pa.table({"a": [2]})]),  # two record batches
    pa.table({"l": pa.array([[1, 2], None], pa.list_(pa.int64())), "t": pa.array([1, 2], TS)}),
    pa.table({"d": pa.array(["x", "y"]).dictionary_encode()}),  # dictionaries: the writer's
], ids=["nulls", "empty", "chunked", "list-timestamp", "dictionary"])
def test_log_records_are_the_stream_writers_bytes(table: pa.Table) -> None:
    """A log record's tables (`_ipc_stream`: the schema message serialized once) are byte
    for byte what an Arrow stream writer writes, so logs stay readable either way."""
    import io

    from engine.stream import _ipc_stream

    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    assert _ipc_stream(table) == _ipc_stream(table) == sink.getvalue()
