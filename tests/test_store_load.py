"""Loading a store from Arrow tables and files: round trips, normalization, and bad input.

What goes in must come back out of `ProfileStore.to_arrow` in the store's canonical types
(int64, float64, string, bool, timestamp[ms, UTC], date32, list<...>; structs flattened to
dotted names), with profiles in index order and events in (profile, time, arrival) order.
Input pqlite cannot load is a `DataError` (a `ValueError`) that names the column, the row
and the table or file, and says how to fix it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from store import DataError, DType, Kind, ProfileStore
from store.events import OFFSET_BUDGET, choose_partitions
from store.times import to_epoch_ms
from tests.store_tables import MS, Input, expected, rows, tables, ts

UTC = dt.UTC


def load(
    profiles: pa.Table | None = None, events: pa.Table | None = None, **options: Any
) -> ProfileStore:
    options.setdefault("profile_id", "id")
    return ProfileStore.from_arrow(profiles, events, **options)


def ms(*args: int) -> int:
    """Milliseconds since the epoch of a UTC wall-clock time."""
    return int(dt.datetime(*args, tzinfo=UTC).timestamp() * 1000)  # type: ignore[misc]


def column(store: ProfileStore, name: str) -> list[Any]:
    return [r[name] for r in rows(store.to_arrow()[0])]


def event_column(store: ProfileStore, name: str) -> list[Any]:
    return [r[name] for r in rows(store.to_arrow()[1])]


def data_error(fn: Any, *args: Any, **kwargs: Any) -> DataError:
    with pytest.raises(DataError) as info:
        fn(*args, **kwargs)
    error = info.value
    assert isinstance(error, ValueError)
    assert error.hint, f"no hint in {error}"
    assert "hint: " in str(error)
    return error


# ---------------------------------------------------------------- round trips


def canonical_tables() -> tuple[pa.Table, pa.Table]:
    profiles = pa.table(
        {
            "id": pa.array([10, 20, 30], pa.int64()),
            "age": pa.array([41, None, -3], pa.int64()),
            "score": pa.array([1.5, None, -0.0], pa.float64()),
            "name": pa.array(["Ann", "", None], pa.string()),
            "vip": pa.array([True, None, False], pa.bool_()),
            "seen": ts([ms(2024, 5, 1, 12), None, -1]),
            "born": pa.array([dt.date(1990, 1, 2), None, dt.date(1969, 12, 31)], pa.date32()),
            "tags": pa.array([["a", "b"], [], None], pa.list_(pa.string())),
            "nums": pa.array([[1, 2, 3], None, []], pa.list_(pa.int64())),
            "flags": pa.array([[True], [False, True], None], pa.list_(pa.bool_())),
            "when": pa.array([[dt.datetime(2024, 1, 1, tzinfo=UTC)], None, []], pa.list_(MS)),
            "days": pa.array([[dt.date(2024, 1, 1)], None, []], pa.list_(pa.date32())),
            "ratios": pa.array([[0.5], [], None], pa.list_(pa.float64())),
            "address": pa.array(
                [
                    {"city": "Köln", "geo": {"lat": 50.9, "zip": 50667}},
                    None,
                    {"city": None, "geo": {"lat": None, "zip": 1}},
                ],
                pa.struct(
                    [
                        ("city", pa.string()),
                        ("geo", pa.struct([("lat", pa.float64()), ("zip", pa.int64())])),
                    ]
                ),
            ),
        }
    )
    events = pa.table(
        {
            "id": pa.array([20, 10, 10, 99], pa.int64()),
            "timestamp": ts([5, 7, 3, 1]),
            "eventType": pa.array(["view", "buy", "view", "view"]),
            "price": pa.array([None, 9.5, None, 1.0]),
            "items": pa.array([["x"], [], None, ["y", "z"]], pa.list_(pa.string())),
            "meta": pa.array([{"src": "web"}, {"src": None}, None, {"src": "app"}]),
        }
    )
    return profiles, events


def test_canonical_types_round_trip() -> None:
    profiles, events = canonical_tables()
    store = load(profiles, events)
    out_profiles, out_events = store.to_arrow()
    assert out_profiles.schema.names == [
        "id",
        "age",
        "score",
        "name",
        "vip",
        "seen",
        "born",
        "tags",
        "nums",
        "flags",
        "when",
        "days",
        "ratios",
        "address.city",
        "address.geo.lat",
        "address.geo.zip",
    ]
    assert [f.type for f in out_profiles.schema] == [
        pa.int64(),
        pa.int64(),
        pa.float64(),
        pa.string(),
        pa.bool_(),
        MS,
        pa.date32(),
        pa.list_(pa.string()),
        pa.list_(pa.int64()),
        pa.list_(pa.bool_()),
        pa.list_(MS),
        pa.list_(pa.date32()),
        pa.list_(pa.float64()),
        pa.string(),
        pa.float64(),
        pa.int64(),
    ]
    # 99 has events but no profile row: a profile without attributes, after the others.
    assert out_profiles.to_pylist()[:3] == profiles.flatten().flatten().to_pylist()
    assert out_profiles.to_pylist()[3] == {
        name: (99 if name == "id" else None) for name in out_profiles.schema.names
    }
    assert out_events.schema.names == ["id", "timestamp", "eventType", "price", "items", "meta.src"]
    assert out_events.schema.field("timestamp").type == MS
    # (profile index, time) order: 10 (index 0) at 3 then 7, 20 at 5, 99 at 1.
    assert rows(out_events) == [
        {
            "id": 10,
            "timestamp": 3,
            "eventType": "view",
            "price": None,
            "items": None,
            "meta.src": None,
        },
        {"id": 10, "timestamp": 7, "eventType": "buy", "price": 9.5, "items": [], "meta.src": None},
        {
            "id": 20,
            "timestamp": 5,
            "eventType": "view",
            "price": None,
            "items": ["x"],
            "meta.src": "web",
        },
        {
            "id": 99,
            "timestamp": 1,
            "eventType": "view",
            "price": 1.0,
            "items": ["y", "z"],
            "meta.src": "app",
        },
    ]
    schema = store.schema
    assert schema.profile_key == "id" and schema.event_profile_key == "id"
    assert schema.event_time == "timestamp" and schema.event_type == "eventType"
    assert schema.profile["address.geo.zip"].dtype == DType(Kind.INT)
    assert schema.profile["when"].dtype == DType(Kind.TIMESTAMP, is_list=True)
    assert list(store.index_of([30, 10, 99, 12345])) == [2, 0, 3, -1]
    assert len(store) == 4


def test_profile_reads_one_profile() -> None:
    profiles, events = canonical_tables()
    store = load(profiles, events)
    one = store.profile(10)
    assert one is not None
    assert one["attributes"]["tags"] == ["a", "b"]
    assert one["attributes"]["address.geo.zip"] == 50667
    assert [(e["timestamp"], e["eventType"]) for e in one["events"]] == [
        (dt.datetime(1970, 1, 1, 0, 0, 0, 3000, tzinfo=UTC), "view"),
        (dt.datetime(1970, 1, 1, 0, 0, 0, 7000, tzinfo=UTC), "buy"),
    ]
    ghost = store.profile(99)
    assert ghost is not None and ghost["attributes"]["age"] is None
    assert [e["price"] for e in ghost["events"]] == [1.0]
    assert store.profile(12345) is None


def test_null_list_elements_are_dropped_and_nan_is_null() -> None:
    profiles = pa.table(
        {
            "id": ["a", "b", "c"],
            "tags": pa.array([["x", None, "y"], [None], None], pa.list_(pa.string())),
            "f": pa.array([float("nan"), 2.0, None]),
            "fl": pa.array([[float("nan"), 1.0], [], None], pa.list_(pa.float64())),
        }
    )
    out = load(profiles).to_arrow()[0].to_pylist()
    assert [r["tags"] for r in out] == [["x", "y"], [], None]
    assert [r["f"] for r in out] == [None, 2.0, None]
    assert [r["fl"] for r in out] == [[1.0], [], None]  # a NaN element is a null: dropped


def test_bad_list_element_names_the_row() -> None:
    when = pa.array(
        [["2024-01-01"], [], None, ["2024-01-02", "2024-01-03"], ["2024-01-04", "soon"]]
    )
    e = data_error(load, pa.table({"id": [1, 2, 3, 4, 5], "when": when}), time_units={"when": "ms"})
    assert (e.column, e.row, e.source) == ("when", 4, "profiles")
    e = data_error(
        load, pa.table({"id": [1, 2], "n": pa.array([[1], [2, 2**63]], pa.list_(pa.uint64()))})
    )
    assert (e.column, e.row) == ("n", 1)


def test_null_list_with_hidden_child_values() -> None:
    # A null list whose offsets still span child values (Arrow allows it): nothing leaks.
    hidden = pa.ListArray.from_arrays(
        pa.array([0, 2, 4, 5]),
        pa.array(["a", "b", "c", "d", "e"]),
        mask=pa.array([False, True, False]),
    )
    assert hidden.to_pylist() == [["a", "b"], None, ["e"]]
    store = load(pa.table({"id": [1, 2, 3], "tags": hidden}))
    assert column(store, "tags") == [["a", "b"], None, ["e"]]


def test_sliced_and_chunked_input() -> None:
    table = pa.table(
        {
            "id": pa.array([0, 1, 2, 3]),
            "tags": pa.array([["w"], ["x"], ["y", "z"], None]),
            "s": pa.array(["q", "r", None, "t"]),
        }
    ).slice(1)
    chunked = pa.concat_tables([table.slice(0, 1), table.slice(1)])
    assert chunked.column("id").num_chunks == 2
    store = load(chunked)
    assert rows(store.to_arrow()[0]) == [
        {"id": 1, "tags": ["x"], "s": "r"},
        {"id": 2, "tags": ["y", "z"], "s": None},
        {"id": 3, "tags": None, "s": "t"},
    ]


def test_string_keys_and_separate_event_key_name() -> None:
    profiles = pa.table({"user": ["b", "a", ""], "n": [1, 2, 3]})
    events = pa.table({"uid": ["a", "zz", "b", "a", "ñ"], "at": ts([2, 1, 1, 1, 0])})
    store = load(profiles, events, profile_id="user", event_profile_id="uid", event_time="at")
    out_profiles, out_events = store.to_arrow()
    # Event-only keys follow the profile rows, in key order.
    assert out_profiles.column("user").to_pylist() == ["b", "a", "", "zz", "ñ"]
    assert rows(out_events) == [
        {"uid": "b", "at": 1},
        {"uid": "a", "at": 1},
        {"uid": "a", "at": 2},
        {"uid": "zz", "at": 1},
        {"uid": "ñ", "at": 0},
    ]
    assert store.schema.event_profile_key == "uid" and store.schema.event_time == "at"
    assert store.schema.event_type is None
    assert list(store.index_of(["", "ñ", "nope"])) == [2, 4, -1]


def test_profiles_only_and_events_only() -> None:
    only_profiles = load(pa.table({"id": [3, 1]}))
    assert only_profiles.to_arrow()[0].column("id").to_pylist() == [3, 1]
    assert only_profiles.to_arrow()[1].num_columns == 0
    assert not only_profiles.schema.has_events
    only_events = load(None, pa.table({"id": [5, 2, 5], "timestamp": ts([1, 2, 0])}))
    out_profiles, out_events = only_events.to_arrow()
    assert out_profiles.to_pylist() == [{"id": 2}, {"id": 5}]
    assert rows(out_events) == [
        {"id": 2, "timestamp": 2},
        {"id": 5, "timestamp": 0},
        {"id": 5, "timestamp": 1},
    ]


def test_zero_rows() -> None:
    store = load(
        pa.table({"id": pa.array([], pa.int64()), "x": pa.array([], pa.string())}),
        pa.table(
            {
                "id": pa.array([], pa.int64()),
                "timestamp": ts([]),
                "eventType": pa.array([], pa.string()),
            }
        ),
    )
    out_profiles, out_events = store.to_arrow()
    assert out_profiles.num_rows == 0 and out_events.num_rows == 0
    assert out_profiles.schema.names == ["id", "x"]
    assert len(store) == 0 and len(store.events) == 0


def test_ties_keep_arrival_order_across_partitions() -> None:
    # Many types and few events: the rarest share a mixed partition; same-millisecond events
    # of one profile sit in different partitions and must still come back in arrival order.
    types = ["a"] * 40 + ["b"] * 30 + ["c"] * 3 + ["d"] * 2 + ["e"]
    order = np.random.default_rng(7).permutation(len(types))
    events = pa.table(
        {
            "id": pa.array([i % 3 for i in range(len(types))]),
            "timestamp": ts([(i // 9) * 1000 for i in range(len(types))]),
            "eventType": pa.array([types[i] for i in order]),
            "n": pa.array(range(len(types))),
        }
    )
    profiles = pa.table({"id": range(25)})  # offsets for 25 profiles: room for 3 partitions
    store = load(profiles, events)
    groups = [p.types for p in store.events.partitions]
    assert groups == [("a",), ("b",), ("c", "d", "e")]
    data = Input(profiles, events)
    assert rows(store.to_arrow()[1]) == expected(data)[1]
    for key in range(3):
        one = store.profile(key)
        assert one is not None
        assert [e["n"] for e in one["events"]] == [
            r["n"] for r in expected(data)[1] if r["id"] == key
        ]


@pytest.mark.parametrize(
    ("profiles", "layout"),
    [
        (4, [("a",), ("b",), ("c",), ("d",), ("e",)]),
        (25, [("a",), ("b",), ("c", "d", "e")]),
        (1000, [("a", "b", "c", "d", "e")]),
    ],
)
def test_views_hold_their_types_in_order(profiles: int, layout: list[tuple[str, ...]]) -> None:
    types = ["a"] * 40 + ["b"] * 30 + ["c"] * 3 + ["d"] * 2 + ["e"]
    events = pa.table(
        {
            "id": pa.array([i % 4 for i in range(len(types))]),
            "timestamp": ts([(i * 7919) % 5 for i in range(len(types))]),
            "eventType": pa.array(types),
            "n": pa.array(range(len(types))),
        }
    )
    table = pa.table({"id": range(profiles)})
    store = load(table, events)
    assert [p.types for p in store.events.partitions] == layout
    everything = expected(Input(table, events))[1]
    for wanted in (["a"], ["e"], ["c", "d"], ["a", "e"], ["b", "c", "zzz"], ["zzz"]):
        part = store.events.view(wanted)
        got = []
        for p in range(store.events.profiles):
            for i in range(part.slice_of(p).start, part.slice_of(p).stop):
                got.append((p, int(part.time[i]), _event_type(store, part, i)))
        got = [g for g in got if g[2] in wanted]
        assert got == [
            (r["id"], r["timestamp"], r["eventType"])
            for r in everything
            if r["eventType"] in wanted
        ], wanted


def _event_type(store: ProfileStore, part: Any, i: int) -> str:
    if part.types is not None and len(part.types) == 1:
        return str(part.types[0])
    col = part.columns["eventType"]
    return str(col.dictionary[int(col.values[i])].as_py())


# ---------------------------------------------------------------- choose_partitions


def test_choose_partitions() -> None:
    assert choose_partitions({}, 10, 16) == []
    # Plenty of budget: every type alone, most frequent first, ties by name.
    counts = {"view": 500, "buy": 20, "add": 20, "refund": 1}
    assert choose_partitions(counts, 10, 16) == [("view",), ("add",), ("buy",), ("refund",)]
    # Budget for two partitions: the most frequent alone, the rest mixed (sorted by name).
    total = sum(counts.values())
    profiles = int(OFFSET_BUDGET * total * 16 / 2 / 4) - 1
    assert choose_partitions(counts, profiles, 16) == [("view",), ("add", "buy", "refund")]
    # Budget for one partition (or less): everything in one mixed partition.
    assert choose_partitions(counts, 10**9, 16) == [("add", "buy", "refund", "view")]
    assert choose_partitions({"only": 1}, 10**9, 16) == [("only",)]


@given(
    st.dictionaries(st.text(max_size=3), st.integers(1, 10**6), max_size=30),
    st.integers(0, 10**7),
    st.integers(0, 200),
)
def test_choose_partitions_properties(counts: dict[str, int], profiles: int, width: int) -> None:
    groups = choose_partitions(counts, profiles, width)
    flat = [t for g in groups for t in g]
    assert sorted(flat) == sorted(counts)  # every type exactly once
    assert all(groups) and all(list(g) == sorted(g) for g in groups)
    mixed = [g for g in groups if len(g) > 1]
    assert len(mixed) <= 1 and (not mixed or groups[-1] == mixed[0])
    alone = [g[0] for g in groups if len(g) == 1 and (len(groups) > 1 or not mixed)]
    if mixed:  # the types alone are the most frequent ones; the mixed the rarest
        assert min((counts[t] for t in alone), default=10**9) >= max(counts[t] for t in mixed[0])
        budget = OFFSET_BUDGET * sum(counts.values()) * max(width, 1)
        assert len(groups) == max(1, int(budget // (4 * (profiles + 1))))


# ---------------------------------------------------------------- property: round trip


@settings(max_examples=120)
@given(tables())
def test_random_tables_round_trip(data: Input) -> None:
    store = data.load()
    out_profiles, out_events = store.to_arrow()
    want_profiles, want_events = expected(data)
    assert rows(out_profiles) == want_profiles
    if data.events is not None:
        assert rows(out_events) == want_events
        assert len(store.events) == len(want_events)
    key = "id"
    for i, k in enumerate(r[key] for r in want_profiles[:3]):
        assert int(store.index_of(pa.array([k], store.keys.type))[0]) == i
        one = store.profile(k)
        assert one is not None and rows(pa.Table.from_pylist([one["attributes"]])) == [
            want_profiles[i]
        ]
        assert [e["n"] for e in one["events"]] == [e["n"] for e in want_events if e[key] == k]


# ---------------------------------------------------------------- normalization


def test_timestamp_units_and_zones() -> None:
    base = dt.datetime(2024, 5, 1, 12, 30, 15, 123000)
    table = pa.table(
        {
            "id": [1],
            "s": pa.array([base.replace(microsecond=0)], pa.timestamp("s", tz="UTC")),
            "ms": pa.array([base], pa.timestamp("ms", tz="UTC")),
            "us": pa.array([base], pa.timestamp("us", tz="UTC")),
            "ns": pa.array([base], pa.timestamp("ns", tz="UTC")),
            "berlin": pa.array([base.replace(tzinfo=UTC)], pa.timestamp("us", tz="Europe/Berlin")),
            "naive": pa.array([base], pa.timestamp("ns")),
            "d32": pa.array([dt.date(2024, 5, 1)], pa.date32()),
            "d64": pa.array([dt.date(2024, 5, 1)], pa.date64()),
        }
    )
    store = load(table)
    out = store.to_arrow()[0]
    want = ms(2024, 5, 1, 12, 30, 15) + 123
    assert rows(out) == [
        {
            "id": 1,
            "s": want - 123,
            "ms": want,
            "us": want,
            "ns": want,
            "berlin": want,
            "naive": want,
            "d32": dt.date(2024, 5, 1),
            "d64": dt.date(2024, 5, 1),
        }
    ]
    for name in ("s", "ms", "us", "ns", "berlin", "naive"):
        assert out.schema.field(name).type == MS
    assert out.schema.field("d32").type == pa.date32()
    assert out.schema.field("d64").type == pa.date32()  # a date stays a date


def test_iso_text_with_z_offset_and_no_zone() -> None:
    # Text is a timestamp where one belongs: the event time, or a column time_units names.
    table = pa.table(
        {
            "id": [1, 2, 3, 4, 5, 6, 7],
            "t": pa.array(
                [
                    "2024-05-01T12:00:00Z",
                    "2024-05-01T12:00:00+02:00",
                    "2024-05-01 12:00:00-0130",
                    "2024-05-01T12:00:00",
                    "2024-05-01",
                    None,
                    " 2024-05-01T12:00:00.250Z ",
                ]
            ),
        }
    )
    out = load(table, time_units={"t": "ms"}).to_arrow()[0]
    assert out.schema.field("t").type == MS
    noon = ms(2024, 5, 1, 12)
    want = [noon, noon - 2 * 3600_000, noon + 90 * 60_000, noon, ms(2024, 5, 1), None, noon + 250]
    assert column_of(out, "t") == want
    assert load(table).to_arrow()[0].schema.field("t").type == pa.string()  # text stays text
    events = table.filter(pc.is_valid(table.column("t"))).rename_columns(["id", "timestamp"])
    assert event_column(load(None, events), "timestamp") == [w for w in want if w is not None]


def column_of(table: pa.Table, name: str) -> list[Any]:
    return [r[name] for r in rows(table)]


def test_assume_tz_reads_local_times_in_a_dst_zone() -> None:
    table = pa.table(
        {
            "id": [1, 2, 3, 4],
            "text": ["2024-01-15 12:00:00", "2024-07-15 12:00:00", "2024-07-15T12:00:00Z", None],
            "naive": pa.array(
                [
                    dt.datetime(2024, 1, 15, 12),
                    dt.datetime(2024, 7, 15, 12),
                    None,
                    dt.datetime(2024, 7, 15, 12),
                ],
                pa.timestamp("ms"),
            ),
            "aware": pa.array([dt.datetime(2024, 7, 15, 12, tzinfo=UTC)] * 4, MS),
        }
    )
    out = load(table, assume_tz="Europe/London", time_units={"text": "ms"}).to_arrow()[0]
    winter, summer = ms(2024, 1, 15, 12), ms(2024, 7, 15, 11)  # BST is UTC+1
    assert column_of(out, "text") == [winter, summer, summer + 3600_000, None]
    assert column_of(out, "naive") == [winter, summer, None, summer]
    assert column_of(out, "aware") == [summer + 3600_000] * 4  # a zone is never reinterpreted


@pytest.mark.parametrize(
    ("unit", "values", "want"),
    [
        ("s", [1_700_000_000, None, -1], [1_700_000_000_000, None, -1000]),
        ("ms", [1_700_000_000_123, None, 0], [1_700_000_000_123, None, 0]),
        ("us", [1_700_000_000_123_000, None, -5000], [1_700_000_000_123, None, -5]),
        ("ns", [1_700_000_000_123_000_000, None, 2_000_000], [1_700_000_000_123, None, 2]),
        (
            "ns",
            [1_700_000_000_123_000_000, 1_700_000_000_124_000_000, 0],
            [1_700_000_000_123, 1_700_000_000_124, 0],
        ),
    ],
)
def test_epoch_numbers_with_time_units(
    unit: str, values: list[int | None], want: list[int | None]
) -> None:
    table = pa.table(
        {
            "id": [1, 2, 3],
            "t": pa.array(values, pa.int64()),
            "f": pa.array(values, pa.float64())
            if unit in ("s", "ms")
            else pa.array(values, pa.int64()),
        }
    )
    out = load(table, time_units={"t": unit, "f": unit}).to_arrow()[0]
    assert out.schema.field("t").type == MS
    assert column_of(out, "t") == want
    assert column_of(out, "f") == want
    given = [v for v in values if v is not None]
    events = pa.table({"id": [1] * len(given), "t": pa.array(given, pa.int64())})
    store = load(None, events, event_time="t", time_units={"t": unit})
    assert event_column(store, "t") == sorted(w for w in want if w is not None)


def test_epoch_seconds_as_floats_and_narrow_ints() -> None:
    table = pa.table(
        {
            "id": [1, 2],
            "t": pa.array([1.5, 2.0]),
            "u": pa.array([1, 2], pa.uint32()),
            "i": pa.array([-1, 2], pa.int8()),
        }
    )
    out = load(table, time_units={"t": "s", "u": "s", "i": "ms"}).to_arrow()[0]
    assert column_of(out, "t") == [1500, 2000]
    assert column_of(out, "u") == [1000, 2000]
    assert column_of(out, "i") == [-1, 2]
    lists = pa.table({"id": [1, 2], "t": pa.array([[1, None, 2], None])})
    out = load(lists, time_units={"t": "s"}).to_arrow()[0]
    assert out.schema.field("t").type == pa.list_(MS)
    assert column_of(out, "t") == [[1000, 2000], None]


def test_narrow_and_dictionary_types_widen() -> None:
    table = pa.table(
        {
            "id": pa.array([1, 2, 3], pa.int32()),
            "i8": pa.array([1, None, -128], pa.int8()),
            "u64": pa.array([2**63 - 1, 0, None], pa.uint64()),
            "f32": pa.array([0.5, None, float("nan")], pa.float32()),
            "dec": pa.array([1, 2, None], pa.decimal128(5, 2)),
            "cat": pa.array(["x", None, "x"]).dictionary_encode(),
            "big": pa.array(["u", "v", None], pa.large_string()),
            "ltags": pa.array([["a"], None, []], pa.large_list(pa.string())),
            "dtags": pa.array(
                [["p", "q"], ["p"], None], pa.list_(pa.dictionary(pa.int8(), pa.string()))
            ),
        }
    )
    out = load(table).to_arrow()[0]
    assert [f.type for f in out.schema] == [
        pa.int64(),
        pa.int64(),
        pa.int64(),
        pa.float64(),
        pa.float64(),
        pa.string(),
        pa.string(),
        pa.list_(pa.string()),
        pa.list_(pa.string()),
    ]
    assert rows(out) == [
        {
            "id": 1,
            "i8": 1,
            "u64": 2**63 - 1,
            "f32": 0.5,
            "dec": 1.0,
            "cat": "x",
            "big": "u",
            "ltags": ["a"],
            "dtags": ["p", "q"],
        },
        {
            "id": 2,
            "i8": None,
            "u64": 0,
            "f32": None,
            "dec": 2.0,
            "cat": None,
            "big": "v",
            "ltags": None,
            "dtags": ["p"],
        },
        {
            "id": 3,
            "i8": -128,
            "u64": None,
            "f32": None,
            "dec": None,
            "cat": "x",
            "big": None,
            "ltags": [],
            "dtags": None,
        },
    ]


def test_whole_float_keys_are_integers() -> None:
    profiles = pa.table({"CustomerID": pa.array([17850.0, 13047.0, -2.0])})
    events = pa.table({"CustomerID": pa.array([17850, 12345], pa.int32()), "timestamp": ts([1, 2])})
    store = load(profiles, events, profile_id="CustomerID")
    out_profiles, out_events = store.to_arrow()
    assert out_profiles.schema.field("CustomerID").type == pa.int64()
    assert out_profiles.column("CustomerID").to_pylist() == [17850, 13047, -2, 12345]
    assert out_events.column("CustomerID").to_pylist() == [17850, 12345]
    assert store.index_of([17850])[0] == 0
    float_events = pa.table({"CustomerID": pa.array([17850.0]), "timestamp": ts([1])})
    assert (
        load(profiles, float_events, profile_id="CustomerID")
        .to_arrow()[1]
        .column("CustomerID")
        .type
        == pa.int64()
    )


def test_key_column_types() -> None:
    for keys, want in (
        (pa.array(["b", "a"], pa.large_string()), ["b", "a"]),
        (pa.array(["b", "a"]).dictionary_encode(), ["b", "a"]),
        (pa.array([5, 2**63 - 1], pa.uint64()), [5, 2**63 - 1]),
        (pa.array([-1, 7], pa.int16()), [-1, 7]),
    ):
        out = load(pa.table({"id": keys})).to_arrow()[0]
        assert out.column("id").to_pylist() == want
        assert out.schema.field("id").type in (pa.int64(), pa.string())


# ---------------------------------------------------------------- bad input


def test_missing_key_column() -> None:
    e = data_error(load, pa.table({"user": [1]}))
    assert (e.column, e.row, e.source) == ("id", None, "profiles")
    assert "no profile key column 'id'" in str(e) and "user" in str(e)
    e = data_error(load, pa.table({"id": [1]}), pa.table({"uid": [1], "timestamp": ts([0])}))
    assert (e.column, e.source) == ("id", "events")
    e = data_error(load, None, pa.table({"id": [1], "timestamp": ts([0])}), event_profile_id="uid")
    assert (e.column, e.source) == ("uid", "events")


@pytest.mark.parametrize(
    "keys",
    [
        pa.array([1, None, 3]),
        pa.array(["a", None, "c"]),
        pa.array([1.0, None, 3.0]),
        pa.array(["a", None, "c"]).dictionary_encode(),
    ],
)
def test_null_keys(keys: pa.Array) -> None:
    e = data_error(load, pa.table({"id": keys}))
    assert (e.column, e.row, e.source) == ("id", 1, "profiles")
    assert "missing (null)" in str(e)
    events = pa.table({"id": keys, "timestamp": ts([0, 1, 2])})
    e = data_error(load, None, events)
    assert (e.column, e.row, e.source) == ("id", 1, "events")


def test_duplicate_profile_keys_name_both_rows() -> None:
    e = data_error(load, pa.table({"id": ["x", "y", "z", "w", "y"]}))
    assert (e.column, e.row, e.source) == ("id", 4, "profiles")
    assert "'y'" in str(e) and "rows 1 and 4" in str(e)
    e = data_error(load, pa.table({"id": [3.0, 1.0, 3]}))  # 3.0 and 3 are one key
    assert e.row == 2 and "rows 0 and 2" in str(e)


def test_event_key_type_must_match_profile_key_type() -> None:
    e = data_error(load, pa.table({"id": [1, 2]}), pa.table({"id": ["1"], "timestamp": ts([0])}))
    assert (e.column, e.source) == ("id", "events")
    assert "string" in str(e) and "int64" in str(e)
    e = data_error(load, pa.table({"id": ["a"]}), pa.table({"id": [1], "timestamp": ts([0])}))
    assert e.column == "id"


def test_non_whole_float_and_unsupported_keys() -> None:
    e = data_error(load, pa.table({"id": [1.0, 2.5]}))
    assert (e.column, e.row) == ("id", 1)
    e = data_error(load, pa.table({"id": pa.array([True, False])}))
    assert e.column == "id" and "bool" in str(e)
    e = data_error(load, pa.table({"id": pa.array([1, 2**64 - 1], pa.uint64())}))
    assert e.column == "id" and "string" in e.hint  # type: ignore[operator]


def test_event_time_column_missing() -> None:
    events = pa.table({"id": [1], "when": ts([0])})
    e = data_error(load, None, events)
    assert e.source == "events" and "event_time" in str(e)
    e = data_error(load, None, events, event_time="ts")
    assert (e.column, e.source) == ("ts", "events") and "when" in str(e)


def test_event_type_column_missing_or_not_text() -> None:
    events = pa.table({"id": [1], "timestamp": ts([0]), "kind": [3]})
    e = data_error(load, None, events, event_type="type")
    assert (e.column, e.source) == ("type", "events")
    e = data_error(load, None, events, event_type="kind")
    assert (e.column, e.source) == ("kind", "events") and "string" in str(e)


@pytest.mark.parametrize(
    "times",
    [
        ts([0, None, 2]),
        pa.array(["2024-01-01", None, "2024-01-02"]),
        pa.array([0, None, 2]),
    ],
)
def test_null_event_time(times: pa.Array) -> None:
    events = pa.table({"id": [1, 2, 3], "timestamp": times})
    e = data_error(load, None, events, time_units={"timestamp": "ms"})
    assert (e.column, e.row, e.source) == ("timestamp", 1, "events")


def test_null_event_type() -> None:
    events = pa.table({"id": [1, 2, 3], "timestamp": ts([0, 1, 2]), "eventType": ["a", "b", None]})
    e = data_error(load, None, events)
    assert (e.column, e.row, e.source) == ("eventType", 2, "events")


@pytest.mark.parametrize(
    ("text", "row"),
    [
        (["2024-01-01", "yesterday"], 1),
        (["01/02/2024", "2024-01-01"], 0),
        (["2024-01-01T00:00:00Z", "2024-02-30T00:00:00Z"], 1),
        (["2024-01-01", "2024-13-01"], 1),
        (["2024-01-01", "2024-01-01T25:00:00"], 1),
        ([None, "2024-01-01", "12:00"], 2),
    ],
)
def test_unparsable_text_timestamps(text: list[str | None], row: int) -> None:
    events = pa.table({"id": list(range(len(text))), "t": text})
    e = data_error(load, None, events, event_time="t")
    assert (e.column, e.row, e.source) == ("t", row, "events")
    assert repr(text[row]) in str(e) and "ISO 8601" in str(e)


def test_unparsable_text_deep_in_the_array() -> None:
    good = ["2024-01-01T00:00:00Z", "2024-01-02 03:04:05", None, "2024-01-03"] * 2500
    for bad_at, bad in (
        (7777, "2024-01-01T00:00:00Q"),
        (9998, "2024-01-01T00:00:00+25:00"),
        (5001, "not a date"),
    ):
        text = [*good]
        text[bad_at] = bad
        events = pa.table({"id": [i % 7 for i in range(len(text))], "ts": text})
        e = data_error(to_epoch_ms, events.column("ts").combine_chunks(), "ts")
        assert (e.column, e.row) == ("ts", bad_at), bad


@pytest.mark.parametrize(
    ("values", "row"),
    [
        (pa.array([0, 1_000_000, 1_000_001], pa.timestamp("ns", tz="UTC")), 2),
        (pa.array([0, 5_000, 1_001], pa.timestamp("us")), 2),
        (pa.array([1_001, 0], pa.timestamp("us", tz="Europe/Berlin")), 0),
        (pa.array(["2024-01-01T00:00:00Z", "2024-01-01T00:00:00.000001Z"]), 1),
        (pa.array(["2024-01-01 00:00:00.1234"]), 0),
    ],
)
def test_sub_millisecond_timestamps(values: pa.Array, row: int) -> None:
    table = pa.table({"id": list(range(len(values))), "t": values})
    e = data_error(load, table, time_units={"t": "ms"})
    assert (e.column, e.row, e.source) == ("t", row, "profiles")
    assert "millisecond" in str(e)


@pytest.mark.parametrize(
    ("unit", "values", "row"),
    [
        ("us", [1000, None, 1001], 2),
        ("ns", [None, 1_500_000], 1),
        ("s", [1.0, 0.0005], 1),
        ("ms", [1.0, 2.5], 1),
        ("ms", [float("nan")], 0),
        ("ms", [float("inf")], 0),
    ],
)
def test_epoch_numbers_finer_than_a_millisecond(unit: str, values: list[Any], row: int) -> None:
    table = pa.table({"id": list(range(len(values))), "t": values})
    e = data_error(load, table, time_units={"t": unit})
    assert (e.column, e.row) == ("t", row)


def test_epoch_numbers_without_a_unit() -> None:
    events = pa.table({"id": [1], "timestamp": [1_700_000_000]})
    e = data_error(load, None, events)
    assert (e.column, e.source) == ("timestamp", "events")
    assert "time_units" in str(e)
    e = data_error(load, events, time_units={"timestamp": "minutes"})
    assert e.column == "timestamp"


@pytest.mark.parametrize(
    ("text", "row", "problem"),
    [
        (["2024-03-30 01:30:00", "2024-03-31 01:30:00"], 1, "does not exist"),
        (["2024-10-27 01:30:00"], 0, "ambiguous"),
        (["2024-03-31 01:30:00", "2024-10-27 01:30:00"], 0, "does not exist"),
        (["2024-10-27 01:30:00", "2024-03-31 01:30:00"], 0, "ambiguous"),
        (
            [None, "2024-10-27T01:30:00Z", "2024-10-27 01:59:59", "2024-03-31 01:30:00"],
            2,
            "ambiguous",
        ),
    ],
)
def test_ambiguous_and_nonexistent_local_times(
    text: list[str | None], row: int, problem: str
) -> None:
    events = pa.table({"id": list(range(len(text))), "t": text})
    e = data_error(load, None, events, event_time="t", assume_tz="Europe/London")
    assert (e.column, e.row, e.source) == ("t", row, "events")
    assert problem in str(e) and "Europe/London" in str(e)
    if not any(t is None or "Z" in t for t in text):  # the same as zone-less timestamps
        naive = pa.array(text).cast(pa.timestamp("ns"))
        e = data_error(
            load, pa.table({"id": list(range(len(text))), "t": naive}), assume_tz="Europe/London"
        )
        assert (e.column, e.row) == ("t", row) and problem in str(e)


def test_nonexistent_local_time_at_nanosecond_precision() -> None:
    naive = pa.array([0, 1_711_848_600_000_000_001], pa.timestamp("ns"))  # 2024-03-31 01:30 +1ns
    e = data_error(to_epoch_ms, naive, "t", assume_tz="Europe/London")
    assert (e.column, e.row) == ("t", 1)


def test_uint64_values_that_do_not_fit() -> None:
    table = pa.table({"id": [1, 2, 3], "n": pa.array([1, None, 2**63], pa.uint64())})
    e = data_error(load, table)
    assert (e.column, e.row, e.source) == ("n", 2, "profiles")
    assert str(2**63) in str(e)


@pytest.mark.parametrize(
    ("arrow_type", "advice"),
    [
        (pa.binary(), "string"),
        (pa.large_binary(), "string"),
        (pa.map_(pa.string(), pa.int64()), "flatten the map"),
        (pa.duration("ms"), "integers"),
        (pa.list_(pa.list_(pa.int64())), "flatten the inner lists"),
        (pa.list_(pa.struct([("a", pa.int64())])), "list column"),
        (pa.time32("s"), "integers"),
        (pa.null(), "give it a type"),
    ],
)
def test_unsupported_column_types(arrow_type: pa.DataType, advice: str) -> None:
    bad = pa.array([None, None], arrow_type)
    e = data_error(load, pa.table({"id": [1, 2], "bad": bad}))
    assert (e.column, e.source) == ("bad", "profiles")
    assert "'bad'" in str(e) and advice in str(e)
    e = data_error(load, None, pa.table({"id": [1, 2], "timestamp": ts([0, 1]), "bad": bad}))
    assert (e.column, e.source) == ("bad", "events")


def test_duplicate_column_names() -> None:
    table = pa.table([pa.array([1]), pa.array([2]), pa.array(["x"])], names=["id", "a", "a"])
    e = data_error(load, table)
    assert (e.column, e.source) == ("a", "profiles")
    clash = pa.table({"id": [1], "a.b": [1], "a": pa.array([{"b": 2}])})
    e = data_error(load, clash)
    assert (e.column, e.source) == ("a.b", "profiles")
    events = pa.table([pa.array([1]), ts([0]), ts([0])], names=["id", "timestamp", "timestamp"])
    e = data_error(load, None, events)
    assert (e.column, e.source) == ("timestamp", "events")


def test_nothing_to_load() -> None:
    e = data_error(load, None, None)
    assert "nothing to load" in str(e)


def test_data_error_text() -> None:
    e = DataError("bad value", column="c", row=3, source="f.csv", hint="fix it")
    assert str(e) == "f.csv, row 3, column 'c': bad value\n  hint: fix it"
    assert str(DataError("plain")) == "plain"
    assert e.located("other") is e
    moved = DataError("x", row=0).located("t.parquet")
    assert (moved.source, moved.row) == ("t.parquet", 0)


# ---------------------------------------------------------------- files


def test_from_parquet_and_csv(tmp_path: Path) -> None:
    profiles, events = canonical_tables()
    pq.write_table(profiles, tmp_path / "profiles.parquet")
    parts = tmp_path / "events"
    parts.mkdir()
    pq.write_table(events.slice(0, 2), parts / "a.parquet")
    pq.write_table(events.slice(2), parts / "b.parquet")
    (parts / "_SUCCESS").write_text("")
    from_files = ProfileStore.from_parquet(tmp_path / "profiles.parquet", parts, profile_id="id")
    from_memory = load(profiles, events)
    assert from_files.to_arrow()[0].equals(from_memory.to_arrow()[0])
    assert from_files.to_arrow()[1].equals(from_memory.to_arrow()[1])

    (tmp_path / "p.csv").write_text("id,age,since\n1,30,2024-01-01T00:00:00Z\n2,,2024-01-02\n")
    (tmp_path / "e.csv").write_text(
        "id,timestamp,eventType\n2,2024-05-01 10:00:00,view\n1,2024-05-01T09:00:00+01:00,buy\n"
    )
    store = ProfileStore.from_csv(tmp_path / "p.csv", tmp_path / "e.csv", profile_id="id")
    out_profiles, out_events = store.to_arrow()
    assert rows(out_profiles) == [
        {"id": 1, "age": 30, "since": "2024-01-01T00:00:00Z"},
        {"id": 2, "age": None, "since": "2024-01-02"},
    ]
    as_time = ProfileStore.from_csv(tmp_path / "p.csv", profile_id="id", time_units={"since": "ms"})
    assert column(as_time, "since") == [ms(2024, 1, 1), ms(2024, 1, 2)]
    assert rows(out_events) == [
        {"id": 1, "timestamp": ms(2024, 5, 1, 8), "eventType": "buy"},
        {"id": 2, "timestamp": ms(2024, 5, 1, 10), "eventType": "view"},
    ]


def test_csv_errors_name_the_file_and_data_row(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text("id,timestamp\n1,2024-05-01\n2,2024-05-02\n3,someday\n")
    e = data_error(ProfileStore.from_csv, None, path, profile_id="id")
    assert (e.column, e.row, e.source) == ("timestamp", 2, str(path))
    assert str(path) in str(e)
    dup = tmp_path / "p.csv"
    dup.write_text("id\n7\n8\n7\n")
    e = data_error(ProfileStore.from_csv, dup, profile_id="id")
    assert (e.column, e.row, e.source) == ("id", 2, str(dup))


def test_files_that_are_not_what_they_claim(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"this is not parquet at all" * 10)
    e = data_error(ProfileStore.from_parquet, garbage, profile_id="id")
    assert e.source == str(garbage) and str(garbage) in str(e)

    good = tmp_path / "good.parquet"
    pq.write_table(pa.table({"id": list(range(1000)), "x": [1.5] * 1000}), good)
    truncated = tmp_path / "truncated.parquet"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    e = data_error(ProfileStore.from_parquet, truncated, profile_id="id")
    assert e.source == str(truncated)
    cut_tail = tmp_path / "cut.parquet"
    cut_tail.write_bytes(good.read_bytes()[:-3])
    e = data_error(ProfileStore.from_parquet, cut_tail, profile_id="id")
    assert e.source == str(cut_tail)

    missing = tmp_path / "nope.parquet"
    e = data_error(ProfileStore.from_parquet, missing, profile_id="id")
    assert e.source == str(missing) and "no such file" in str(e)
    e = data_error(ProfileStore.from_csv, tmp_path / "nope.csv", profile_id="id")
    assert e.source == str(tmp_path / "nope.csv")

    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    e = data_error(ProfileStore.from_parquet, empty_dir, profile_id="id")
    assert str(empty_dir) in str(e)

    not_csv = tmp_path / "binary.csv"
    not_csv.write_bytes(good.read_bytes())
    with pytest.raises(DataError) as info:
        ProfileStore.from_csv(not_csv, profile_id="id")
    assert info.value.source == str(not_csv)


def test_unknown_time_zone() -> None:
    events = pa.table({"id": [1], "timestamp": ["2024-01-01 00:00:00"]})
    e = data_error(load, None, events, assume_tz="Mars/Olympus_Mons")
    assert (e.column, e.source) == ("timestamp", "events")
    assert "Mars/Olympus_Mons" in str(e)


@pytest.mark.parametrize(
    ("values", "unit", "row"),
    [
        (pa.array([0, None, 2**62], pa.timestamp("s")), None, 2),
        (pa.array([0, -(2**62)], pa.int64()), "s", 1),
        (pa.array([1, 2**64 - 1], pa.uint64()), "ms", 1),
        (pa.array([2**63], pa.uint64()), "ns", 0),
    ],
)
def test_timestamps_out_of_range(values: pa.Array, unit: str | None, row: int) -> None:
    events = pa.table({"id": list(range(len(values))), "timestamp": values})
    e = data_error(load, None, events, time_units={"timestamp": unit} if unit else None)
    assert (e.column, e.row, e.source) == ("timestamp", row, "events")
    assert "out of range" in str(e)


@given(st.lists(st.one_of(st.none(), st.text(max_size=3)), max_size=40))
def test_few_strings_encode_as_many_do(values: list[str | None]) -> None:
    """Short arrays (a streamed event) are encoded in Python, long ones by Arrow: the same
    codes into the same sorted dictionary."""
    from store import columns

    array = pa.array(values, pa.string())
    fast, fast_dict = columns._encode_strings(array, "x")
    few = columns._FEW
    try:
        columns._FEW = -1
        slow, slow_dict = columns._encode_strings(array, "x")
    finally:
        columns._FEW = few
    assert fast.tolist() == slow.tolist() and fast_dict.to_pylist() == slow_dict.to_pylist()


@settings(max_examples=100)
@given(first=st.integers(-5, 5), n=st.integers(0, 30), gap=st.integers(0, 30),
       probes=st.lists(st.integers(-10, 70), max_size=20))
def test_key_lookup_equals_a_dict(first: int, n: int, gap: int, probes: list[int]) -> None:
    """Key lookups (consecutive integer keys take an arithmetic shortcut) equal a dict's,
    for consecutive keys and for keys with a gap or out of order (ends in place included)."""
    from store.keys import KeyIndex

    for keys in (list(range(first, first + n)),
                 [k + (gap if i >= n // 2 else 0) for i, k in enumerate(range(first, first + n))],
                 list(range(first, first + n))[::-1],
                 [first, *range(first + n - 2, first, -1), first + n - 1] if n > 3 else []):
        want = {k: i for i, k in enumerate(keys)}
        got = KeyIndex(pa.array(keys, pa.int64())).lookup(pa.array(probes, pa.int64()))
        assert got.tolist() == [want.get(p, -1) for p in probes]
