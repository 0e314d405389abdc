"""`store.subset`: a few profiles with new data, laid out like the whole store.

The oracle is the store itself: `subset(store, rows, events=E, attributes=A)` must hold, for
those rows, exactly what `store.append(E, A)` followed by `store.compacted()` holds (values,
validity, every event history in every view), and its layout must be the store's whenever
the data fits it, else the store's widened exactly where the data needs it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from store import DataError, ProfileStore
from store.delta import normalize_batch
from store.events import Partition
from store.layout import ColumnLayout, Layout, PartitionLayout, layout
from store.subset import Subset, subset
from tests.store_tables import MS, rows
from tests.test_store_delta import BAD_APPENDS, base_store

# ---------------------------------------------------------------- random stores

TYPES = ["view", "buy", "refund", "ü", ""]
TIMES = [0, 1, 2, 5, 2**40]  # few: ties within and across partitions
WORDS = ["", "a", "b", "Zürich", "🙂"]
PROFILE_TYPES = {"age": pa.int64(), "name": pa.string(), "tags": pa.list_(pa.string()),
                 "vip": pa.bool_(), "seen": MS}
EVENT_TYPES = {"eventType": pa.string(), "price": pa.float64(), "cat": pa.string(),
               "items": pa.list_(pa.string()), "n": pa.int64()}


def _value(draw: st.DrawFn, name: str, nulls: bool, fresh: bool = False) -> Any:
    """A value of column ``name``; None sometimes when ``nulls``; new strings if ``fresh``."""
    if nulls and draw(st.integers(0, 3)) == 0:
        return None
    words = [*WORDS, "new", "Ωmega"] if fresh else WORDS
    return {
        "age": lambda: draw(st.integers(-3, 3)),
        "name": lambda: draw(st.sampled_from(words)),
        "tags": lambda: draw(st.lists(st.sampled_from(words), max_size=2)),
        "vip": lambda: draw(st.booleans()),
        "seen": lambda: draw(st.sampled_from(TIMES)),
        "price": lambda: draw(st.sampled_from([0.5, -1.0, 3.25])),
        "cat": lambda: draw(st.sampled_from(words)),
        "items": lambda: draw(st.lists(st.sampled_from(words), max_size=2)),
    }[name]()


def _table(records: list[dict[str, Any]], types: dict[str, pa.DataType], key: pa.DataType
           ) -> pa.Table:
    schema = pa.schema([("id", key), *((n, t) for n, t in types.items())])
    fixed = [{k: (pa.scalar(v, pa.int64()).cast(MS).as_py() if k in ("seen", "timestamp")
                  and v is not None else v) for k, v in r.items()} for r in records]
    return pa.Table.from_pylist(fixed, schema=schema)


class World:
    """A base store's input and how its batches are drawn."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.strings = draw(st.booleans())
        self.key = pa.string() if self.strings else pa.int64()
        self.profile_columns = draw(st.lists(st.sampled_from(sorted(PROFILE_TYPES)),
                                             unique=True, max_size=4))
        self.nullable = {c: draw(st.booleans()) for c in [*PROFILE_TYPES, *EVENT_TYPES]}
        self.typed = draw(st.integers(0, 5)) > 0
        self.event_columns = ["timestamp", *(["eventType"] if self.typed else []),
                              *draw(st.lists(st.sampled_from(["price", "cat", "items", "n"]),
                                             unique=True))]
        if "n" not in self.event_columns:
            self.event_columns.append("n")  # numbers the events, so histories are unambiguous
        self.kinds = TYPES[: draw(st.integers(1, len(TYPES)))]
        crowded = draw(st.integers(0, 3)) == 0  # many profiles, few events: a mixed partition
        n = draw(st.integers(25, 40)) if crowded else draw(st.integers(0, 6))
        self.pool = list(range(n + 3))
        self.counter = 0
        self.profiles = [self.profile_row(draw, k, self.profile_columns, fresh=False)
                         for k in self.pool[:n]] if draw(st.integers(0, 4)) else None
        if self.profiles is None:
            self.profile_columns = []  # only the key, which events make
            self.pool = self.pool or [0, 1, 2]
        events = draw(st.integers(1 if self.profiles is None else 0, 3 if crowded else 12))
        self.events = [self.event_row(draw, fresh=False) for _ in range(events)]

    def k(self, key: int) -> Any:
        return f"k{key}" if self.strings else key

    def profile_row(self, draw: st.DrawFn, key: int, columns: list[str], fresh: bool
                    ) -> dict[str, Any]:
        return {"id": self.k(key), **{c: _value(draw, c, fresh or self.nullable[c], fresh)
                                      for c in columns}}

    def event_row(self, draw: st.DrawFn, fresh: bool) -> dict[str, Any]:
        keys = self.pool + ([len(self.pool), len(self.pool) + 1] if fresh else [])
        kinds = [*self.kinds, "brand-new"] if fresh else self.kinds
        self.counter += 1
        row: dict[str, Any] = {"id": self.k(draw(st.sampled_from(keys))),
                               "timestamp": draw(st.sampled_from(TIMES)), "n": self.counter}
        for c in self.event_columns:
            if c == "eventType":
                row[c] = draw(st.sampled_from(kinds))
            elif c not in row:
                row[c] = _value(draw, c, fresh or self.nullable[c], fresh)
        return row

    def profile_table(self, records: list[dict[str, Any]], columns: list[str]) -> pa.Table:
        return _table(records, {c: PROFILE_TYPES[c] for c in columns}, self.key)

    def event_table(self, records: list[dict[str, Any]]) -> pa.Table:
        types = {"timestamp": MS, **{c: EVENT_TYPES[c] for c in self.event_columns
                                    if c != "timestamp"}}
        return _table(records, types, self.key)

    def store(self) -> ProfileStore:
        profiles = (None if self.profiles is None
                    else self.profile_table(self.profiles, self.profile_columns))
        return ProfileStore.from_arrow(
            profiles, self.event_table(self.events), profile_id="id", event_time="timestamp",
            event_type="eventType" if self.typed else None)

    def batch(self, draw: st.DrawFn) -> tuple[pa.Table | None, pa.Table | None]:
        """New events (new keys, types and strings, nulls, ties) and upserts, or neither."""
        events = [self.event_row(draw, fresh=True) for _ in range(draw(st.integers(0, 5)))]
        upserts = None
        if self.profile_columns and draw(st.booleans()):
            columns = draw(st.lists(st.sampled_from(self.profile_columns), unique=True))
            keys = draw(st.lists(st.sampled_from([*self.pool, len(self.pool) + 2]),
                                 min_size=1, max_size=3))
            upserts = self.profile_table(
                [self.profile_row(draw, k, columns, fresh=True) for k in keys], columns)
        return (self.event_table(events) if events else None), upserts


# ---------------------------------------------------------------- what must hold


def history(store: ProfileStore, row: int, types: tuple[str, ...] | None) -> list[Any]:
    """Row ``row``'s events as the kernels see them: ``events.view(types)``'s slice, the
    events of other types filtered out, every field read through `EventStore.field`."""
    ev = store.events
    part = ev.view(types)
    rows_ = slice(int(part.offsets[row]), int(part.offsets[row + 1]))
    columns = {name: ev.field(part, name).to_arrow()[rows_].to_pylist() for name in ev.fields}
    out = []
    for k, t in enumerate(part.time[rows_].tolist()):
        event = {name: values[k] for name, values in columns.items()}
        if types is None or ev.type_field is None or event[ev.type_field] in types:
            out.append((t, event))
    return out


def check(sub: Subset, oracle: ProfileStore, store: ProfileStore, big: Layout) -> None:
    """``sub`` holds what ``oracle`` holds for its rows, in the layout it should have:
    ``big``, the layout of ``store``, or that widened where the data needs it."""
    s = sub.store
    assert sub.index.tolist() == oracle.index_of(s.keys).tolist()
    take = pa.array(sub.index)
    for name, col in s.profiles.items():
        assert col.to_arrow().to_pylist() == oracle.profiles[name].to_arrow().take(
            take).to_pylist(), name
        _check_dictionary([col])
    kinds = sorted(set(oracle.events.types) | set(s.events.types))
    for i, j in enumerate(sub.index.tolist()):
        key = s.keys[i].as_py()
        assert s.profile(key) == oracle.profile(key)
        for types in [None, *((t,) for t in kinds), tuple(kinds[:2])]:
            assert history(s, i, types) == history(oracle, j, types), (key, types)
    fields = s.events.fields
    for name in fields:
        by_dictionary: dict[int, list[Any]] = {}
        for p in s.events.partitions:
            if name in p.columns and p.columns[name].dictionary is not None:
                by_dictionary.setdefault(id(p.columns[name].dictionary), []).append(
                    p.columns[name])
        for columns in by_dictionary.values():
            _check_dictionary(columns)
    want = expected_layout(sub, oracle, big)
    assert layout(s) == want
    if want == big:
        assert_same_views(s, store, big)


def _check_dictionary(columns: list[Any]) -> None:
    """Columns sharing a dictionary: sorted, distinct, and every entry used."""
    first = columns[0]
    if first.dictionary is None:
        return
    entries = first.dictionary.to_pylist()
    assert entries == sorted(set(entries))
    used = {v for c in columns for v in (c.values[c.values >= 0].tolist())}
    assert used == set(range(len(entries)))


def expected_layout(sub: Subset, oracle: ProfileStore, big: Layout) -> Layout:
    """The store's layout widened exactly where the subset's data needs it (from the
    oracle's plain values, not from the subset's columns)."""
    s = sub.store
    mapped = big.mapped
    take = pa.array(sub.index)
    profile = tuple(
        ColumnLayout(c.name, c.dtype,
                     c.valid or oracle.profiles[c.name].to_arrow().take(take).null_count > 0,
                     c.readonly)
        for c in big.profile
    )
    events = [e for key in s.keys.to_pylist() for e in (oracle.profile(key) or {})["events"]]
    type_field = big.event_type
    fields = [f for f, _ in s.events.fields.items()]
    dtypes = dict(s.events.fields)
    held = {t for p in big.partitions for t in p.types or ()}
    new_types = sorted({e[type_field] for e in events} - held) if type_field else []
    shared = all(len({c.dictionary for p in big.partitions for c in p.columns
                      if c.name == f and c.dictionary is not None}) <= 1 for f in fields)
    parts = []
    for i, p in enumerate([*big.partitions, *(None for _ in new_types)]):
        types = p.types if p is not None else (new_types[i - len(big.partitions)],)
        mine = [e for e in events if types is None or e[type_field] in types]
        carried = {c.name: c for c in p.columns} if p is not None else {}
        columns = []
        for f in sorted(fields):
            nulls = any(e[f] is None for e in mine)
            values = any(e[f] is not None for e in mine)
            if f in carried:
                c = carried[f]
                columns.append(ColumnLayout(f, c.dtype, c.valid or nulls, c.readonly,
                                            c.dictionary))
            elif values and not (f == type_field and types is not None and len(types) == 1):
                group: Any = None
                if dtypes[f].kind == "string":  # joins the field's group if shared, else own
                    owners = [c.dictionary for q in big.partitions for c in q.columns
                              if c.name == f]
                    group = (owners[0] if owners else "new") if shared else ("own", i)
                columns.append(ColumnLayout(f, dtypes[f], nulls, mapped, group))
        parts.append(PartitionLayout(types, tuple(columns), p.offsets if p else "int32",
                                     p.readonly if p else mapped))
    # A layout names a dictionary by the first partition holding it.
    first: dict[tuple[str, Any], int] = {}
    for i, q in enumerate(parts):
        for c in q.columns:
            if c.dictionary is not None:
                first.setdefault((c.name, c.dictionary), i)
    parts = [PartitionLayout(q.types, tuple(
        ColumnLayout(c.name, c.dtype, c.valid, c.readonly,
                     None if c.dictionary is None else first[(c.name, c.dictionary)])
        for c in q.columns), q.offsets, q.readonly) for q in parts]
    return Layout(big.profile_key, big.event_profile_key, big.event_time, big.event_type,
                  big.event_fields, profile, tuple(parts))


def view_facts(store: ProfileStore, keys: list[tuple[str, ...] | None]) -> list[Any]:
    """What `engine.codegen` reads of each view: types, fields, validity, and which views
    share a field's dictionary object."""
    ev = store.events
    views = [ev.view(k) for k in keys]
    facts: list[Any] = [
        (v.types, sorted((n, c.valid is not None) for n, c in v.columns.items()),
         np.dtype(v.offsets.dtype).name)
        for v in views
    ]
    for name in ev.fields:
        facts.append([[a.columns.get(name) is not None and b.columns.get(name) is not None
                       and a.columns[name].dictionary is b.columns[name].dictionary
                       for b in views] for a in views])
    return facts


def assert_same_views(s: ProfileStore, store: ProfileStore, big: Layout) -> None:
    """Equal layouts: every view the engine may ask for has the facts the store's has."""
    kinds = sorted({t for p in big.partitions for t in p.types or ()})
    keys: list[tuple[str, ...] | None] = [None, *((t,) for t in kinds)]
    keys += [(a, b) for a in kinds for b in kinds if a < b]
    assert view_facts(s, keys) == view_facts(store, keys)


# ---------------------------------------------------------------- the property


def _compare(store: ProfileStore, draw: st.DrawFn, world: World) -> None:
    """Batches, each given to `subset` and then appended; the subset against the compaction."""
    for _ in range(draw(st.integers(1, 3))):
        events, upserts = world.batch(draw)
        total = len(store.compacted()) if store.delta else len(store)
        mode = draw(st.sampled_from(["rows", "touched", "batches"]))
        chosen = draw(st.lists(st.integers(0, max(total - 1, 0)), unique=True,
                               max_size=min(total, 6))) if total else []
        big = layout(store)
        if mode == "batches":  # normalized once, as the streaming session does
            batch = normalize_batch(store.schema, events, upserts)
            sub = subset(store, np.array(chosen, np.int64), batches=[batch])
        elif mode == "touched":
            sub = subset(store, None, events=events, attributes=upserts)
        else:  # rows as dicts, where they type every column
            typed = events is not None and not any(
                "null" in str(f.type) for f in pa.Table.from_pylist(events.to_pylist()).schema)
            sub = subset(store, chosen, events=events.to_pylist() if typed else events,
                         attributes=upserts)
        if mode != "touched":
            assert sub.selected == len(chosen)
            assert sub.index[: len(chosen)].tolist() == chosen
        if events is not None or upserts is not None:
            store.append(events, upserts)
        oracle = store.compacted() if store.delta else store
        check(sub, oracle, store, big)
        if draw(st.integers(0, 4)) == 0:
            store.compact()  # the subset's per-store state must follow


@settings(max_examples=60)
@given(st.data())
def test_subset_equals_append_and_compact(data: st.DataObject) -> None:
    world = World(data.draw)
    _compare(world.store(), data.draw, world)


@settings(max_examples=15)
@given(st.data())
def test_subset_of_an_opened_store(data: st.DataObject) -> None:
    """A memory-mapped store: read-only arrays, one dictionary per partition."""
    world = World(data.draw)
    with tempfile.TemporaryDirectory() as tmp:
        world.store().save(Path(tmp) / "s")
        store = ProfileStore.open(Path(tmp) / "s")
        if data.draw(st.booleans()):  # a delta on disk, read back
            events, upserts = world.batch(data.draw)
            if events is not None or upserts is not None:
                store.append(events, upserts)
                store = ProfileStore.open(Path(tmp) / "s")
        _compare(store, data.draw, world)


@settings(max_examples=60)
@given(st.data())
def test_since_keeps_the_events_it_names(data: st.DataObject) -> None:
    """``since``: each profile keeps exactly its events that the mapping keeps (per type
    the earliest time; None for the types not named; a type not covered: none), in
    order, with a delta and new data as well as base events."""
    world = World(data.draw)
    store = world.store()
    if data.draw(st.booleans()):
        events, upserts = world.batch(data.draw)
        if events is not None or upserts is not None:
            store.append(events, upserts)
    events, upserts = world.batch(data.draw)
    moments = st.sampled_from([*(t + d for t in TIMES for d in (-1, 0, 1)), -(2**63), 2**63 - 1])
    kinds = [*world.kinds, "brand-new", None] if world.typed else [None]
    since = data.draw(st.dictionaries(st.sampled_from(kinds), moments, max_size=4))
    sub = subset(store, None if data.draw(st.booleans()) else np.arange(
        len(store.compacted()) if store.delta else len(store)),
        events=events, attributes=upserts, since=since)
    if events is not None or upserts is not None:
        store.append(events, upserts)
    oracle = store.compacted() if store.delta else store

    assert_keeps(sub, oracle, since, "eventType" if world.typed else None)


def assert_keeps(sub: Subset, oracle: ProfileStore, since: dict[Any, int],
                 type_field: str | None) -> None:
    """Each profile of ``sub`` has exactly its events in ``oracle`` that ``since`` keeps."""

    def kept(e: dict[str, Any]) -> bool:
        t = e.get(type_field) if type_field else None
        limit = since.get(t) if t is not None else None
        limit = since.get(None) if limit is None else limit
        stamp = e["timestamp"].timestamp() * 1000 if e["timestamp"] is not None else None
        return limit is not None and stamp is not None and stamp >= limit

    for key in sub.store.keys.to_pylist():
        want = [e for e in (oracle.profile(key) or {"events": []})["events"] if kept(e)]
        assert (sub.store.profile(key) or {"events": []})["events"] == want, key


def test_since_cuts_single_type_partitions() -> None:
    """Partitions of one type each (many events, few profiles): each profile's range is
    cut at the limit by a binary search; ties at the limit are kept."""
    rng = np.random.default_rng(7)
    n = 3000
    events = pa.table({
        "id": rng.integers(0, 5, n),
        "timestamp": pa.array(rng.integers(0, 50, n), pa.int64()).cast(MS),
        "eventType": rng.choice(["view", "buy", "ship"], n, p=[0.6, 0.3, 0.1]),
        "n": np.arange(n),
    })
    store = ProfileStore.from_arrow(None, events, profile_id="id")
    assert all(p.types is not None and len(p.types) == 1 for p in store.events.partitions)
    for since in ({"view": 20, "buy": 0}, {None: 49}, {"ship": 25, None: 10}, {"buy": 50},
                  {"view": -(2**63)}, {}):
        assert_keeps(store.subset(np.arange(5), since=since), store, since, "eventType")


# ---------------------------------------------------------------- examples

KERNEL_PROFILES = pa.table({"id": [1, 2, 3, 4], "age": [30, None, 41, 25],
                            "country": ["US", "FR", "US", "DE"]})
KERNEL_EVENTS = pa.table({
    "id": [1, 1, 2, 3, 3, 4, 9],
    "timestamp": pa.array([1, 2, 3, 4, 5, 6, 7], pa.int64()).cast(MS),
    "eventType": ["view", "buy", "view", "buy", "ship", "view", "view"],
    "price": [None, 3.0, 1.0, 5.0, None, None, 2.0],
    "cat": ["a", "b", None, "b", "c", "a", "a"],
})  # few events for 5 profiles: "view" alone, "buy" and "ship" share a mixed partition


def kernel_store(tmp: Path) -> ProfileStore:
    ProfileStore.from_arrow(KERNEL_PROFILES, KERNEL_EVENTS, profile_id="id").save(tmp / "s")
    return ProfileStore.open(tmp / "s")


def test_widening_examples() -> None:
    store = ProfileStore.from_arrow(KERNEL_PROFILES, KERNEL_EVENTS, profile_id="id")
    big = layout(store)
    assert [p.types for p in big.partitions] == [("view",), ("buy", "ship")]
    ts = pa.array([8], pa.int64()).cast(MS)
    fits = subset(store, [0, 2], events=pa.table({
        "id": [3], "timestamp": ts, "eventType": ["ship"], "price": pa.array([None], pa.float64()),
        "cat": ["new"]}))
    assert layout(fits.store) == big  # price has nulls in that partition already
    sub = subset(store, [0], events=pa.table({
        "id": [1], "timestamp": ts, "eventType": ["return"], "price": [1.0],
        "cat": pa.array([None], pa.string())}),
        attributes=pa.table({"id": [1], "country": pa.array([None], pa.string())}))
    got = layout(sub.store)
    assert [p.types for p in got.partitions] == [("view",), ("buy", "ship"), ("return",)]
    assert [c.name for c in got.partitions[2].columns] == ["price"]  # cat: none, left out
    assert got.partitions[:2] == big.partitions
    assert {c.name: c.valid for c in got.profile} == {"age": True, "country": True, "id": False}
    new = subset(store, [], events=pa.table({"id": [77], "timestamp": ts, "eventType": ["view"],
                                            "price": [1.0], "cat": ["a"]}))
    assert new.selected == 0 and new.index.tolist() == [5] and new.store.keys.to_pylist() == [77]
    assert new.store.profile(77)["attributes"] == {"id": 77, "age": None, "country": None}


def test_like_reuses_a_widened_layout() -> None:
    """After compiling for a widened layout, later subsets can be asked for it (`like`)."""
    store = ProfileStore.from_arrow(KERNEL_PROFILES, KERNEL_EVENTS, profile_id="id")
    ts = pa.array([8], pa.int64()).cast(MS)
    first = subset(store, [0], events=pa.table({
        "id": [1], "timestamp": ts, "eventType": ["return"], "price": [1.0], "cat": ["x"]}))
    widened = layout(first.store)
    assert widened != layout(store)
    later = subset(store, [1, 3], like=widened)  # no "return" events: an empty partition
    assert layout(later.store) == widened
    assert len(later.store.events.partitions[2]) == 0
    other = ProfileStore.from_arrow(pa.table({"id": [1], "x": [1]}), profile_id="id")
    with pytest.raises(ValueError, match="another schema"):
        subset(store, [0], like=layout(other))


def test_kernels_of_the_store_run_on_its_subsets(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Equal layouts: the same kernel source, the same Numba types (no new compilation),
    and the memberships the store with the batch appended has."""
    from engine import Engine
    from engine.kernels import compile_kernel
    from tests import reference

    monkeypatch.setenv("PQLITE_CACHE_DIR", str(tmp_path / "kernels"))
    definitions = {
        "adults": "age > 28",
        "us": 'country = "US"',
        "buyers": 'xEvent[eventType = "buy" and price > 2].count() >= 1',
        "busy": 'xEvent[eventType = "view" or eventType = "buy"].count() >= 2',
        "same_cat": 'exists A from xEvent where A.eventType = "view" and '
                    '(exists B from xEvent where B.eventType = "buy" and B.cat = A.cat)',
    }
    store = kernel_store(tmp_path)
    engines = []
    batch = pa.table({"id": [2, 4, 4], "timestamp": pa.array([7, 6, 9], pa.int64()).cast(MS),
                      "eventType": ["buy", "buy", "ship"], "price": [4.0, None, 1.0],
                      "cat": ["z", "a", "c"]})  # no null cat: that partition has none
    sub = subset(store, [1, 3, 4], events=batch)
    assert layout(sub.store) == layout(store)
    for s in (store, sub.store):
        eng = Engine(s, threads=1, tier="kernel")
        for name, text in definitions.items():
            eng.define(name, text)
        engines.append(eng)
    big, small = engines
    big.run(10)
    [group] = big.groups()
    kernel = compile_kernel(big.source(group).source)
    compiled = len(kernel.signatures)
    assert small.source(group).source == big.source(group).source
    result = small.run(10)
    assert len(kernel.signatures) == compiled  # the store's machine code, as it is
    store.append(batch)
    expected = reference.run(store.compacted(), definitions, at_ms=10)
    keys = set(sub.store.keys.to_pylist())
    for name in definitions:
        assert set(result.ids(name).to_pylist()) == expected[name] & keys, name


@pytest.mark.parametrize(("name", "make", "where"), BAD_APPENDS, ids=[b[0] for b in BAD_APPENDS])
def test_bad_data_raises_as_append_does(name: str, make: Any,
                                        where: tuple[str | None, int | None, str]) -> None:
    store = base_store()
    events, profiles = make()
    with pytest.raises(DataError) as info:
        subset(store, [0], events=events, attributes=profiles)
    assert (info.value.column, info.value.row, info.value.source) == where
    with pytest.raises(DataError) as again:
        store.append(events, profiles)
    assert str(again.value) == str(info.value)


def test_bad_profiles() -> None:
    store = base_store()  # 4 profiles
    store.append(profiles=pa.table({"id": [50]}))  # a fifth, in the delta
    assert subset(store, [4]).store.keys.to_pylist() == [50]
    with pytest.raises(IndexError, match="out of range"):
        subset(store, [5])
    with pytest.raises(IndexError, match="out of range"):
        subset(store, [-1])
    with pytest.raises(ValueError, match="twice"):
        subset(store, [1, 1])
    with pytest.raises(ValueError, match="1-D"):
        subset(store, np.zeros((1, 1), np.int64))
    with pytest.raises(ValueError, match="1-D"):
        subset(store, [0.5])  # type: ignore[list-item]


def test_store_method_and_state_after_compaction() -> None:
    store = base_store()
    store.append(events=pa.table({"id": [1], "timestamp": pa.array([3], pa.int64()).cast(MS),
                                  "eventType": ["view"]}))
    before = store.subset([0])
    store.compact()
    after = store.subset([0])
    assert rows(before.store.to_arrow()[1]) == rows(after.store.to_arrow()[1])
    assert layout(after.store) == layout(store)


def test_partition_arrays_are_read_only_for_an_opened_store(tmp_path: Path) -> None:
    store = kernel_store(tmp_path)
    sub = subset(store, [0, 2])
    parts: list[Partition] = sub.store.events.partitions
    assert all(not p.offsets.flags.writeable and not p.time.flags.writeable for p in parts)
    assert all(not c.values.flags.writeable for c in sub.store.profiles.values())
