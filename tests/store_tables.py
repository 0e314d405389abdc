"""Random profile and event tables for the store tests, and what a store must read back.

`tables()` draws a profiles table, an events table or both, in the store's canonical Arrow
types, with the awkward cases mixed in: nulls everywhere they are allowed, empty and
non-ASCII strings, NaN floats, lists with empty, null and null-holding entries, profiles
without events, events whose key has no profile row, several events of one profile at the
same millisecond, and enough event types for the rarest to share a mixed partition.

`expected()` is the documented reading of such input, computed independently of the store:
profiles in key order of arrival (profile rows, then keys only events mention, sorted),
NaN read as null, null list elements dropped, events in (profile index, time, arrival)
order. `rows()` turns a table into plain Python values that compare exactly.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from hypothesis import strategies as st

__all__ = [
    "MS",
    "Input",
    "expected",
    "rows",
    "tables",
    "ts",
]

MS = pa.timestamp("ms", tz="UTC")
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def ts(values: Sequence[int | None]) -> pa.Array:
    """Milliseconds since the epoch as timestamp[ms, UTC]."""
    return pa.array(values, pa.int64()).cast(MS)


@dataclass(frozen=True)
class Input:
    """What was loaded: the tables and the loading keywords."""

    profiles: pa.Table | None
    events: pa.Table | None
    key: str = "id"

    def load(self) -> Any:
        from store import ProfileStore

        return ProfileStore.from_arrow(self.profiles, self.events, profile_id=self.key)


# ---------------------------------------------------------------- plain values


def _plain(value: Any) -> Any:
    """A value as the store reads it back, in plain Python that compares exactly."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dt.datetime):
        return (value - EPOCH) // dt.timedelta(milliseconds=1)
    if isinstance(value, list):
        return [_plain(v) for v in value if v is not None and _plain(v) is not None]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def rows(table: pa.Table) -> list[dict[str, Any]]:
    """``table``'s rows as dicts of plain values (timestamps as ms, NaN as None)."""
    return [_plain(r) for r in table.to_pylist()]


def _flat_rows(table: pa.Table) -> list[dict[str, Any]]:
    while any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()
    return rows(table)


def expected(data: Input) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(profile rows, event rows) a store built from ``data`` must read back."""
    key = data.key
    profile_rows = _flat_rows(data.profiles) if data.profiles is not None else []
    event_rows = _flat_rows(data.events) if data.events is not None else []
    keys = [r[key] for r in profile_rows]
    known = set(keys)
    keys += sorted({r[key] for r in event_rows} - known)
    names = (
        list(profile_rows[0])
        if profile_rows
        else ([f.name for f in _flat_schema(data.profiles)] if data.profiles is not None else [key])
    )
    by_key = {r[key]: r for r in profile_rows}
    profiles = [by_key.get(k, {n: (k if n == key else None) for n in names}) for k in keys]
    index = {k: i for i, k in enumerate(keys)}
    order = sorted(
        range(len(event_rows)),
        key=lambda i: (index[event_rows[i][key]], event_rows[i]["timestamp"], i),
    )
    return profiles, [event_rows[i] for i in order]


def _flat_schema(table: pa.Table) -> pa.Schema:
    while any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()
    return table.schema


# ---------------------------------------------------------------- strategies

TEXT = st.one_of(
    st.sampled_from(["", "a", "b", "Zürich", "東京", "ñ", " ", "a b", "🙂", "A"]),
    st.text(max_size=4),
)
TIMES = st.integers(-(2**40), 2**41)  # 1935..2039, in ms
DAYS = st.integers(-30_000, 30_000)

ATTRIBUTES: dict[str, tuple[pa.DataType, st.SearchStrategy[Any]]] = {
    "age": (pa.int64(), st.integers(-(2**63), 2**63 - 1)),
    "score": (pa.float64(), st.floats(allow_infinity=True, allow_nan=True, width=64)),
    "name": (pa.string(), TEXT),
    "vip": (pa.bool_(), st.booleans()),
    "seen": (MS, TIMES),
    "born": (pa.date32(), DAYS),
    "nums": (pa.list_(pa.int64()), st.lists(st.one_of(st.none(), st.integers(-5, 5)), max_size=3)),
    "tags": (pa.list_(pa.string()), st.lists(st.one_of(st.none(), TEXT), max_size=3)),
    "when": (pa.list_(MS), st.lists(st.one_of(st.none(), TIMES), max_size=2)),
}


def _column(values: list[Any], arrow_type: pa.DataType) -> pa.Array:
    if arrow_type == MS:
        return ts(values)
    if pa.types.is_list(arrow_type) and arrow_type.value_type == MS:
        return pa.array(
            [
                None
                if v is None
                else [None if x is None else EPOCH + dt.timedelta(milliseconds=x) for x in v]
                for v in values
            ],
            arrow_type,
        )
    if arrow_type == pa.date32():
        return pa.array(
            [None if v is None else dt.date(1970, 1, 1) + dt.timedelta(days=v) for v in values],
            arrow_type,
        )
    return pa.array(values, arrow_type)


@st.composite
def _keys(draw: st.DrawFn, kind: str, n: int) -> list[Any]:
    if kind == "int":
        return draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=n, max_size=n, unique=True))
    return draw(st.lists(TEXT, min_size=n, max_size=n, unique=True))


@st.composite
def tables(draw: st.DrawFn, *, max_profiles: int = 8, max_events: int = 30) -> Input:
    """Random input: profiles and/or events (see the module docstring)."""
    kind = draw(st.sampled_from(["int", "str"]))
    has_profiles = draw(st.booleans())
    has_events = draw(st.booleans()) if has_profiles else True
    n_profiles = draw(st.integers(0 if has_events else 1, max_profiles))
    # Sometimes many profiles and types: offsets cost more, so the rarest types share a
    # mixed partition.
    crowded = has_events and draw(st.integers(0, 3)) == 0
    if crowded:
        n_profiles = draw(st.integers(20, 40))
    n_extra = draw(st.integers(0, 3)) if has_events else 0
    all_keys = draw(_keys(kind, n_profiles + n_extra))
    profile_keys = all_keys[:n_profiles]
    profiles = None
    if has_profiles:
        chosen = draw(st.lists(st.sampled_from(sorted(ATTRIBUTES)), unique=True, max_size=5))
        columns: dict[str, pa.Array] = {"id": pa.array(profile_keys, _key_type(kind))}
        for name in chosen:
            arrow_type, values = ATTRIBUTES[name]
            col = draw(
                st.lists(st.one_of(st.none(), values), min_size=n_profiles, max_size=n_profiles)
            )
            columns[name] = _column(col, arrow_type)
        if draw(st.booleans()):  # a struct column, flattened to address.city / address.zip
            cities = draw(
                st.lists(st.one_of(st.none(), TEXT), min_size=n_profiles, max_size=n_profiles)
            )
            zips = draw(
                st.lists(
                    st.one_of(st.none(), st.integers(0, 99999)),
                    min_size=n_profiles,
                    max_size=n_profiles,
                )
            )
            null = draw(st.lists(st.booleans(), min_size=n_profiles, max_size=n_profiles))
            columns["address"] = pa.StructArray.from_arrays(
                [pa.array(cities, pa.string()), pa.array(zips, pa.int64())],
                names=["city", "zip"],
                mask=pa.array(null, pa.bool_()),
            )
        profiles = pa.table(columns)
    events = None
    if has_events and all_keys:
        n_events = draw(st.integers(max_events // 2 if crowded else 0, max_events))
        type_names = draw(
            st.lists(
                st.sampled_from([f"t{i}" for i in range(12)] + ["", "ü"]),
                min_size=5 if crowded else 1,
                max_size=8,
                unique=True,
            )
        )
        times = draw(st.lists(st.integers(0, 5), min_size=1, max_size=4))  # few: many ties
        ev = {
            "id": pa.array(
                draw(st.lists(st.sampled_from(all_keys), min_size=n_events, max_size=n_events)),
                _key_type(kind),
            ),
            "timestamp": ts(
                draw(st.lists(st.sampled_from(times), min_size=n_events, max_size=n_events))
            ),
            "eventType": pa.array(
                draw(st.lists(st.sampled_from(type_names), min_size=n_events, max_size=n_events)),
                pa.string(),
            ),
            "n": pa.array(range(n_events), pa.int64()),  # arrival, to see the order
            "price": pa.array(
                draw(
                    st.lists(
                        st.one_of(st.none(), st.floats(width=64)),
                        min_size=n_events,
                        max_size=n_events,
                    )
                ),
                pa.float64(),
            ),
            "sku": pa.array(
                draw(st.lists(st.one_of(st.none(), TEXT), min_size=n_events, max_size=n_events)),
                pa.string(),
            ),
            "items": pa.array(
                draw(
                    st.lists(
                        st.one_of(st.none(), st.lists(st.one_of(st.none(), TEXT), max_size=2)),
                        min_size=n_events,
                        max_size=n_events,
                    )
                ),
                pa.list_(pa.string()),
            ),
        }
        if not crowded and not draw(st.booleans()):
            del ev["eventType"]
        events = pa.table(ev)
    if profiles is None and events is None:  # pragma: no cover - excluded above
        events = pa.table({"id": pa.array([], _key_type(kind)), "timestamp": ts([])})
    return Input(profiles, events)


def _key_type(kind: str) -> pa.DataType:
    return pa.int64() if kind == "int" else pa.string()
