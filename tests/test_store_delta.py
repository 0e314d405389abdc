"""Appends on top of a store: new events, attribute upserts, persistence and compaction.

A store with appended batches must read (`to_arrow`, `profile`) exactly like a store built
from scratch from the combined input. New keys take indices in arrival order there, and in
key order in a fresh build, so the two are compared keyed. `compact` folds the batches in
without moving any profile; a bad append raises `DataError` and leaves no trace.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from store import DataError, ProfileStore, StoreFormatError
from store import delta as store_delta
from store.disk import MANIFEST
from tests.store_tables import MS, TEXT, TIMES, rows, ts

PROFILE_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("age", pa.int64()),
        ("name", pa.string()),
        ("tags", pa.list_(pa.string())),
        ("seen", MS),
    ]
)
EVENT_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("timestamp", MS),
        ("eventType", pa.string()),
        ("price", pa.float64()),
        ("items", pa.list_(pa.string())),
        ("n", pa.int64()),
    ]
)


def profiles_table(data: list[dict[str, Any]], columns: list[str] | None = None) -> pa.Table:
    schema = (
        PROFILE_SCHEMA if columns is None else pa.schema([PROFILE_SCHEMA.field(c) for c in columns])
    )
    return pa.Table.from_pylist(
        [
            {k: (ts([v])[0].as_py() if k == "seen" and v is not None else v) for k, v in r.items()}
            for r in data
        ],
        schema=schema,
    )


def events_table(data: list[dict[str, Any]], columns: list[str] | None = None) -> pa.Table:
    schema = (
        EVENT_SCHEMA if columns is None else pa.schema([EVENT_SCHEMA.field(c) for c in columns])
    )
    return pa.Table.from_pylist(
        [{k: (ts([v])[0].as_py() if k == "timestamp" else v) for k, v in r.items()} for r in data],
        schema=schema,
    )


BASE_PROFILES = [
    {"id": 1, "age": 30, "name": "Ann", "tags": ["a"], "seen": 0},
    {"id": 2, "age": None, "name": "Bo", "tags": [], "seen": None},
    {"id": 3, "age": 50, "name": None, "tags": None, "seen": 1000},
]
BASE_EVENTS = [
    {"id": 1, "timestamp": 10, "eventType": "view", "price": None, "items": ["x"], "n": 0},
    {"id": 3, "timestamp": 5, "eventType": "buy", "price": 2.5, "items": [], "n": 1},
    {"id": 1, "timestamp": 10, "eventType": "buy", "price": 1.0, "items": None, "n": 2},
    {"id": 9, "timestamp": 7, "eventType": "view", "price": None, "items": None, "n": 3},
]


def base_store() -> ProfileStore:
    return ProfileStore.from_arrow(
        profiles_table(BASE_PROFILES), events_table(BASE_EVENTS), profile_id="id"
    )


# ---------------------------------------------------------------- the reference


class Reference:
    """The combined input of a base and its appends, kept as plain rows."""

    def __init__(self, profiles: list[dict[str, Any]], events: list[dict[str, Any]]) -> None:
        self.profiles = {r["id"]: dict(r) for r in profiles}
        self.events = list(events)

    def append(
        self,
        events: list[dict[str, Any]] | None,
        upserts: list[dict[str, Any]] | None,
        columns: list[str] | None = None,
    ) -> None:
        """Apply a batch; an upsert sets every column of its table (absent values: null)."""
        blank = dict.fromkeys(PROFILE_SCHEMA.names)
        names = columns or sorted({c for r in upserts or [] for c in r})
        for row in upserts or []:
            self.profiles.setdefault(row["id"], {**blank, "id": row["id"]}).update(
                {c: row.get(c) for c in names}
            )
        for row in events or []:
            self.profiles.setdefault(row["id"], {**blank, "id": row["id"]})
            self.events.append({**dict.fromkeys(EVENT_SCHEMA.names), **row})

    def build(self) -> ProfileStore:
        return ProfileStore.from_arrow(
            profiles_table(list(self.profiles.values())), events_table(self.events), profile_id="id"
        )


def keyed(store: ProfileStore) -> tuple[dict[Any, dict[str, Any]], dict[Any, list[Any]]]:
    """(profile rows by key, event rows by key in order) as `store.to_arrow` reads them."""
    out_profiles, out_events = store.to_arrow()
    by_key = {r["id"]: r for r in rows(out_profiles)}
    assert len(by_key) == out_profiles.num_rows
    histories: dict[Any, list[Any]] = {k: [] for k in by_key}
    for r in rows(out_events):
        histories[r["id"]].append(r)
    return by_key, histories


def assert_reads_like(
    store: ProfileStore, reference: ProfileStore, profiles: int | None = None
) -> None:
    """``store`` reads like ``reference``: tables keyed, and `profile` for some keys."""
    store_profiles, store_events = store.to_arrow()
    ref_profiles, ref_events = reference.to_arrow()
    assert keyed(store) == keyed(reference)
    assert store_profiles.schema == ref_profiles.schema
    assert store_events.schema == ref_events.schema
    for key in ref_profiles.column("id").to_pylist()[:profiles]:
        assert store.profile(key) == reference.profile(key), key
    assert store.profile(123456789) is None


def assert_index_order(store: ProfileStore, keys: list[Any]) -> None:
    assert store.to_arrow()[0].column("id").to_pylist() == keys


# ---------------------------------------------------------------- appends


def test_append_events_and_upserts_reads_like_a_rebuild() -> None:
    store = base_store()
    ref = Reference(BASE_PROFILES, BASE_EVENTS)
    batches: list[tuple[list[dict[str, Any]] | None, list[dict[str, Any]] | None]] = [
        # new events for an existing key, a ghost key (9) and a brand-new key (20)
        (
            [
                {"id": 1, "timestamp": 10, "eventType": "view", "n": 10},
                {"id": 20, "timestamp": 1, "eventType": "refund", "price": 3.0, "n": 11},
                {"id": 9, "timestamp": 2, "eventType": "view", "items": ["q"], "n": 12},
            ],
            None,
        ),
        # upserts: set a value, set null, a new key; no events
        (
            None,
            [
                {"id": 2, "age": 41},
                {"id": 1, "name": None, "tags": ["b", "c"]},
                {"id": 30, "name": "New", "seen": 5},
            ],
        ),
        # the same key twice in one batch: the last row wins; events and upserts together
        (
            [{"id": 30, "timestamp": 0, "eventType": "buy", "n": 13}],
            [
                {"id": 3, "age": 51, "name": "first"},
                {"id": 3, "age": None, "name": "last"},
                {"id": 9, "age": 9},
            ],
        ),
    ]
    for events, upserts in batches:
        store.append(
            events_table(
                events,
                [
                    "id",
                    "timestamp",
                    "eventType",
                    *sorted({k for r in events for k in r} - {"id", "timestamp", "eventType"}),
                ],
            )
            if events
            else None,
            profiles_table(upserts, ["id", *sorted({k for r in upserts for k in r} - {"id"})])
            if upserts
            else None,
        )
        ref.append(events, upserts)
        assert_reads_like(store, ref.build())
    assert len(store) == 4  # the base's profiles; new keys count after compact
    assert_index_order(store, [1, 2, 3, 9, 20, 30])  # new keys in arrival order
    got = store.profile(3)
    assert got is not None and got["attributes"] == {
        "id": 3,
        "age": None,
        "name": "last",
        "tags": None,
        "seen": ts([1000])[0].as_py(),
    }
    new = store.profile(30)
    assert new is not None and new["attributes"]["name"] == "New"
    assert [e["n"] for e in new["events"]] == [13]
    one = store.profile(1)
    assert one is not None and [e["n"] for e in one["events"]] == [0, 2, 10]  # ties: arrival


def test_compact_keeps_indices() -> None:
    store = base_store()
    store.append(
        events_table(
            [
                {"id": 77, "timestamp": 3, "eventType": "view", "n": 5},
                {"id": 2, "timestamp": 3, "eventType": "buy", "n": 6},
            ]
        ),
        profiles_table([{"id": 55, "age": 1}], ["id", "age"]),
    )
    before = store.to_arrow()
    keys = [1, 2, 3, 9, 55, 77]
    assert_index_order(store, keys)
    index_before = list(store.index_of([1, 2, 3, 9]))
    compacted = store.compacted()
    assert not compacted.delta and store.delta  # compacted() leaves the store as it is
    store.compact()
    assert not store.delta and len(store) == 6
    assert list(store.index_of(keys)) == list(range(6))
    assert list(store.index_of([1, 2, 3, 9])) == index_before
    after = store.to_arrow()
    assert after[0].equals(before[0]) and after[1].equals(before[1])
    assert compacted.to_arrow()[0].equals(after[0])
    store.compact()  # nothing to do
    assert store.to_arrow()[0].equals(after[0])


def test_upsert_types_are_normalized() -> None:
    store = base_store()
    store.append(
        profiles=pa.table(
            {
                "id": pa.array([3.0, 4.0]),  # whole float keys are integer keys
                "age": pa.array([7, None], pa.int8()),
                "seen": pa.array(["2024-01-01T00:00:00Z", None]),
                "tags": pa.array([["z", None], None], pa.large_list(pa.string())),
            }
        )
    )
    store.append(
        pa.table(
            {
                "id": pa.array([4], pa.int32()),
                "timestamp": pa.array([1_000_000], pa.timestamp("us")),
                "eventType": pa.array(["view"]).dictionary_encode(),
            }
        )
    )
    ref = Reference(BASE_PROFILES, BASE_EVENTS)
    ref.append(
        [{"id": 4, "timestamp": 1000, "eventType": "view"}],
        [
            {"id": 3, "age": 7, "seen": 1_704_067_200_000, "tags": ["z"]},
            {"id": 4, "age": None, "seen": None, "tags": None},
        ],
    )
    assert_reads_like(store, ref.build())


def test_appends_with_epoch_units_and_zones() -> None:
    store = base_store()
    store.append(
        pa.table({"id": [1], "timestamp": [2], "eventType": ["view"]}),
        time_units={"timestamp": "s"},
    )
    store.append(
        pa.table({"id": [1], "timestamp": ["1970-01-01 01:00:03"], "eventType": ["view"]}),
        assume_tz="Europe/London",
    )
    times = [e["timestamp"] for e in rows(store.to_arrow()[1]) if e["id"] == 1]
    assert times == [10, 10, 2000, 3000]  # 1970 London was on UTC+1 all year


def test_events_only_store_and_separate_key_names() -> None:
    events = pa.table({"uid": ["a", "b"], "at": ts([2, 1])})
    store = ProfileStore.from_arrow(
        None, events, profile_id="user", event_profile_id="uid", event_time="at"
    )
    store.append(pa.table({"uid": ["c", "a"], "at": ts([0, 1])}), pa.table({"user": ["d"]}))
    out_profiles, out_events = store.to_arrow()
    assert out_profiles.column("user").to_pylist() == ["a", "b", "d", "c"]
    assert rows(out_events) == [
        {"uid": "a", "at": 1},
        {"uid": "a", "at": 2},
        {"uid": "b", "at": 1},
        {"uid": "c", "at": 0},
    ]
    store.compact()
    assert store.to_arrow()[0].column("user").to_pylist() == ["a", "b", "d", "c"]


# ---------------------------------------------------------------- bad appends

BAD_APPENDS: list[
    tuple[
        str,
        Callable[[], tuple[pa.Table | None, pa.Table | None]],
        tuple[str | None, int | None, str],
    ]
] = [
    (
        "unknown event column",
        lambda: (
            events_table(
                [{"id": 1, "timestamp": 0, "eventType": "x"}], ["id", "timestamp", "eventType"]
            ).append_column("colour", pa.array(["red"])),
            None,
        ),
        ("colour", None, "appended events"),
    ),
    (
        "unknown profile column",
        lambda: (None, pa.table({"id": [1], "height": [2.0]})),
        ("height", None, "appended profiles"),
    ),
    (
        "missing time",
        lambda: (pa.table({"id": [1], "eventType": ["x"]}), None),
        ("timestamp", None, "appended events"),
    ),
    (
        "missing type",
        lambda: (pa.table({"id": [1], "timestamp": ts([0])}), None),
        ("eventType", None, "appended events"),
    ),
    (
        "missing event key",
        lambda: (pa.table({"timestamp": ts([0]), "eventType": ["x"]}), None),
        ("id", None, "appended events"),
    ),
    (
        "missing profile key",
        lambda: (None, pa.table({"age": [1]})),
        ("id", None, "appended profiles"),
    ),
    (
        "bad timestamp",
        lambda: (
            pa.table(
                {
                    "id": [1, 2, 3],
                    "timestamp": ["2024-01-01", "2024-01-02", "someday"],
                    "eventType": ["x", "y", "z"],
                }
            ),
            None,
        ),
        ("timestamp", 2, "appended events"),
    ),
    (
        "null time",
        lambda: (
            pa.table({"id": [1, 2], "timestamp": ts([0, None]), "eventType": ["x", "y"]}),
            None,
        ),
        ("timestamp", 1, "appended events"),
    ),
    (
        "null type",
        lambda: (pa.table({"id": [1, 2], "timestamp": ts([0, 1]), "eventType": [None, "y"]}), None),
        ("eventType", 0, "appended events"),
    ),
    ("null key", lambda: (None, pa.table({"id": [1, None]})), ("id", 1, "appended profiles")),
    ("string keys", lambda: (None, pa.table({"id": ["1"]})), ("id", None, "appended profiles")),
    (
        "string event keys",
        lambda: (pa.table({"id": ["1"], "timestamp": ts([0]), "eventType": ["x"]}), None),
        ("id", None, "appended events"),
    ),
    (
        "wrong attribute type",
        lambda: (None, pa.table({"id": [1], "age": ["old"]})),
        ("age", None, "appended profiles"),
    ),
    (
        "epoch without unit",
        lambda: (pa.table({"id": [1], "timestamp": [5], "eventType": ["x"]}), None),
        ("timestamp", None, "appended events"),
    ),
    (
        "duplicate columns",
        lambda: (
            None,
            pa.table([pa.array([1]), pa.array([1]), pa.array([2])], names=["id", "age", "age"]),
        ),
        ("age", None, "appended profiles"),
    ),
    # good events, bad upserts: the batch is all or nothing
    (
        "good events, bad upserts",
        lambda: (
            events_table(
                [{"id": 1, "timestamp": 0, "eventType": "x"}], ["id", "timestamp", "eventType"]
            ),
            pa.table({"id": [1], "age": [1.5]}),
        ),
        ("age", None, "appended profiles"),
    ),
]


@pytest.mark.parametrize(("name", "make", "where"), BAD_APPENDS, ids=[b[0] for b in BAD_APPENDS])
def test_bad_append_changes_nothing(
    tmp_path: Path, name: str, make: Any, where: tuple[str | None, int | None, str]
) -> None:
    store = base_store()
    store.append(profiles=profiles_table([{"id": 2, "age": 5}], ["id", "age"]))  # one good batch
    path = tmp_path / "s"
    store.save(path)
    store.append(profiles=profiles_table([{"id": 3, "age": 6}], ["id", "age"]))
    before = store.to_arrow()
    on_disk = sorted(str(p.relative_to(path)) for p in path.rglob("*"))
    events, profiles = make()
    with pytest.raises(DataError) as info:
        store.append(events, profiles)
    e = info.value
    assert isinstance(e, ValueError)
    assert (e.column, e.row, e.source) == where, str(e)
    assert e.hint and "hint: " in str(e)
    assert len(store.delta.batches) == 1
    after = store.to_arrow()
    assert after[0].equals(before[0]) and after[1].equals(before[1])
    assert sorted(str(p.relative_to(path)) for p in path.rglob("*")) == on_disk
    reopened = ProfileStore.open(path)
    assert reopened.to_arrow()[0].equals(before[0])


def test_append_events_to_a_store_without_events() -> None:
    store = ProfileStore.from_arrow(pa.table({"id": [1]}), profile_id="id")
    with pytest.raises(DataError) as info:
        store.append(pa.table({"id": [1], "timestamp": ts([0])}))
    assert "no events" in str(info.value) and info.value.hint
    store.append(profiles=pa.table({"id": [2]}))
    assert store.to_arrow()[0].column("id").to_pylist() == [1, 2]


# ---------------------------------------------------------------- on disk


def batch_dirs(path: Path, generation: str) -> list[str]:
    delta = path / f"{generation}.delta"
    return sorted(p.name for p in delta.iterdir()) if delta.exists() else []


def test_persisted_batches_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s"
    store = base_store()
    store.save(path)
    ref = Reference(BASE_PROFILES, BASE_EVENTS)
    first = [{"id": 5, "timestamp": 4, "eventType": "view", "n": 20}]
    store.append(events_table(first, ["id", "timestamp", "eventType", "n"]))
    ref.append(first, None)
    upsert = [{"id": 1, "age": None}, {"id": 6, "age": 60}]
    store.append(profiles=profiles_table(upsert, ["id", "age"]))
    ref.append(None, upsert)
    assert batch_dirs(path, "gen-000001") == ["000001", "000002"]
    reopened = ProfileStore.open(path)
    assert len(reopened.delta.batches) == 2
    assert_reads_like(reopened, ref.build())
    assert reopened.to_arrow()[0].equals(store.to_arrow()[0])
    assert reopened.to_arrow()[1].equals(store.to_arrow()[1])
    # Appending to the reopened store continues the numbering.
    third = [{"id": 6, "timestamp": 1, "eventType": "buy", "n": 21}]
    reopened.append(events_table(third, ["id", "timestamp", "eventType", "n"]))
    ref.append(third, None)
    assert batch_dirs(path, "gen-000001") == ["000001", "000002", "000003"]
    assert_reads_like(ProfileStore.open(path), ref.build())


def test_compact_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "s"
    store = base_store()
    store.save(path)
    store.append(
        events_table(
            [{"id": 8, "timestamp": 1, "eventType": "view", "n": 9}],
            ["id", "timestamp", "eventType", "n"],
        ),
        profiles_table([{"id": 7, "name": "seven"}], ["id", "name"]),
    )
    before = store.to_arrow()
    keys = before[0].column("id").to_pylist()
    assert keys == [1, 2, 3, 9, 7, 8]
    store.compact()
    assert store.generation == "gen-000002" and not store.delta
    assert sorted(p.name for p in path.iterdir()) == ["gen-000002", MANIFEST]
    reopened = ProfileStore.open(path)
    assert not reopened.delta
    assert list(reopened.index_of(keys)) == list(range(6))
    assert reopened.to_arrow()[0].equals(before[0])
    assert reopened.to_arrow()[1].equals(before[1])
    # Appends after compaction go to the new generation's delta.
    reopened.append(profiles=profiles_table([{"id": 7, "age": 70}], ["id", "age"]))
    assert batch_dirs(path, "gen-000002") == ["000001"]
    assert ProfileStore.open(path).profile(7)["attributes"]["age"] == 70  # type: ignore[index]


def test_save_with_a_delta_compacts(tmp_path: Path) -> None:
    store = base_store()
    store.append(profiles=profiles_table([{"id": 100, "age": 1}], ["id", "age"]))
    want = store.to_arrow()
    store.save(tmp_path / "s")
    assert not store.delta
    reopened = ProfileStore.open(tmp_path / "s")
    assert not reopened.delta
    assert reopened.to_arrow()[0].equals(want[0]) and reopened.to_arrow()[1].equals(want[1])


def test_crash_while_writing_a_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s"
    store = base_store()
    store.save(path)
    store.append(profiles=profiles_table([{"id": 1, "age": 1}], ["id", "age"]))

    def crash(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    with monkeypatch.context() as m:
        m.setattr(store_delta.os, "replace", crash)
        with pytest.raises(OSError):
            store.append(profiles=profiles_table([{"id": 1, "age": 2}], ["id", "age"]))
    assert len(store.delta.batches) == 1
    reopened = ProfileStore.open(path)  # the unfinished batch is not read
    assert len(reopened.delta.batches) == 1
    assert reopened.profile(1)["attributes"]["age"] == 1  # type: ignore[index]
    reopened.append(profiles=profiles_table([{"id": 1, "age": 3}], ["id", "age"]))
    assert batch_dirs(path, "gen-000001") == ["000001", "000002"]
    assert ProfileStore.open(path).profile(1)["attributes"]["age"] == 3  # type: ignore[index]


# ---------------------------------------------------------------- property

KEYS = st.integers(0, 12)  # few keys: appends hit existing, ghost and new ones alike


@st.composite
def event_rows(draw: st.DrawFn, n: int, first: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        out.append(
            {
                "id": draw(KEYS),
                "timestamp": draw(st.sampled_from([0, 1, 2, draw(TIMES)])),
                "eventType": draw(st.sampled_from(["view", "buy", "refund", "ü", ""])),
                "price": draw(st.one_of(st.none(), st.floats(-10, 10))),
                "items": draw(st.one_of(st.none(), st.lists(TEXT, max_size=2))),
                "n": first + i,
            }
        )
    return out


@st.composite
def upsert_rows(draw: st.DrawFn) -> tuple[list[str], list[dict[str, Any]]]:
    columns = ["id", *draw(st.lists(st.sampled_from(["age", "name", "tags", "seen"]), unique=True))]
    values = {
        "age": st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
        "name": st.one_of(st.none(), TEXT),
        "tags": st.one_of(st.none(), st.lists(TEXT, max_size=2)),
        "seen": st.one_of(st.none(), TIMES),
    }
    n = draw(st.integers(1, 4))
    return columns, [
        {"id": draw(KEYS), **{c: draw(values[c]) for c in columns[1:]}} for _ in range(n)
    ]


@st.composite
def histories(
    draw: st.DrawFn,
) -> tuple[
    list[dict[str, Any]],
    list[dict[str, Any]],
    list[tuple[list[dict[str, Any]] | None, tuple[list[str], list[dict[str, Any]]] | None]],
]:
    keys = draw(st.lists(KEYS, unique=True, max_size=6))
    profiles = [
        {
            "id": k,
            "age": draw(st.one_of(st.none(), st.integers(-5, 5))),
            "name": draw(st.one_of(st.none(), TEXT)),
            "tags": None,
            "seen": None,
        }
        for k in keys
    ]
    events = draw(event_rows(draw(st.integers(0, 8)), 0))
    batches = []
    count = len(events)
    for _ in range(draw(st.integers(1, 4))):
        new_events = draw(st.one_of(st.none(), event_rows(draw(st.integers(0, 5)), count)))
        count += len(new_events or [])
        upserts = draw(st.one_of(st.none(), upsert_rows()))
        batches.append((new_events, upserts))
    return profiles, events, batches


@settings(max_examples=40)
@given(histories(), st.booleans())
def test_random_appends_then_compact_equal_a_rebuild(history: Any, on_disk: bool) -> None:
    profiles, events, batches = history
    with tempfile.TemporaryDirectory() as tmp:
        store = ProfileStore.from_arrow(
            profiles_table(profiles), events_table(events), profile_id="id"
        )
        if on_disk:
            store.save(Path(tmp) / "s")
        ref = Reference(profiles, events)
        for new_events, upserts in batches:
            store.append(
                None if new_events is None else events_table(new_events),
                None if upserts is None else profiles_table(upserts[1], upserts[0]),
            )
            ref.append(new_events, *(upserts[::-1] if upserts is not None else (None,)))
        rebuilt = ref.build()
        assert_reads_like(store, rebuilt, 3)
        if on_disk:
            assert_reads_like(ProfileStore.open(Path(tmp) / "s"), rebuilt, 3)
        order = store.to_arrow()[0].column("id").to_pylist()
        store.compact()
        assert not store.delta
        assert list(store.index_of(order)) == list(range(len(order)))
        assert_reads_like(store, rebuilt, 3)
        if on_disk:
            reopened = ProfileStore.open(Path(tmp) / "s")
            assert not reopened.delta
            assert_index_order(reopened, order)
            assert_reads_like(reopened, rebuilt, 3)


def test_damaged_batch_file(tmp_path: Path) -> None:
    path = tmp_path / "s"
    store = base_store()
    store.save(path)
    store.append(profiles=profiles_table([{"id": 1, "age": 2}], ["id", "age"]))
    target = path / "gen-000001.delta" / "000001" / "profiles.arrow"
    target.write_bytes(target.read_bytes()[:20])
    with pytest.raises(StoreFormatError) as info:
        ProfileStore.open(path)
    assert str(target) in str(info.value)
