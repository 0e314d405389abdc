"""Binding a kernel's arguments to a store, an instant and earlier segments' results.

`engine.codegen` names what each argument is (`Arg`: a kind and a reference); this module
turns that into arrays and scalars. Literal strings become codes in the dictionary of the
column they meet, string predicates become a boolean per dictionary entry (computed once by
Arrow; regular expressions run on RE2, linear time), and windows anchored on ``now`` become
millisecond bounds for this run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine import ir
from engine.codegen import Arg, CompileError
from engine.timeops import (
    DAY_MS,
    DIRECTIONS,
    OPS,
    UNITS,
    between_window,
    days_from_civil,
    on_window,
    period_bounds,
    side_window,
    window,
)
from store.columns import Column
from store.profile_store import ProfileStore

__all__ = ["bind", "string_test"]

_NUMPY = {"int": np.int64, "float": np.float64, "bool": np.bool_, "timestamp": np.int64,
          "date": np.int64, "string": np.int64}


def bind(args: tuple[Arg, ...], store: ProfileStore, now_ms: int,
         segments: Mapping[str, np.ndarray], cache: dict[Any, Any]) -> list[Any]:
    """The values of ``args`` for a run at ``now_ms``; store-only values are cached."""
    out = []
    for a in args:
        if a.kind in ("window", "window_bounds", "period"):
            out.append(_timed(a, now_ms))
        elif a.kind == "segment":
            out.append(segments[a.ref[0]])
        elif a.kind == "param":
            out.append(_NUMPY[a.ref[0]](a.ref[1]))
        else:
            key = (a.kind, a.ref)
            if key not in cache:
                cache[key] = _stored(a, store)
            out.append(cache[key])
    return out


def _column(store: ProfileStore, ref: tuple[Any, ...]) -> Column:
    if ref[0] == "profile":
        return store.profiles[ref[1]]
    part = store.events.view(ref[1])
    return store.events.field(part, ref[2])


def _stored(a: Arg, store: ProfileStore) -> Any:
    kind, ref = a.kind, a.ref
    events = store.events
    if kind == "profile_values":
        return np.asarray(store.profiles[ref[0]].values)
    if kind == "profile_valid":
        return np.asarray(store.profiles[ref[0]].valid)
    if kind == "profile_offsets":
        return np.asarray(store.profiles[ref[0]].offsets)
    if kind == "event_offsets":
        return np.asarray(events.view(ref[0]).offsets)
    if kind == "event_time":
        return np.asarray(events.view(ref[0]).time)
    if kind == "event_values":
        return np.asarray(events.view(ref[0]).columns[ref[1]].values)
    if kind == "event_valid":
        return np.asarray(events.view(ref[0]).columns[ref[1]].valid)
    if kind == "code":
        return np.int32(_column(store, ref[0]).code_of(ref[1]))
    if kind == "translate":
        a_dict = _dictionary(_column(store, ref[0]))
        b_dict = _dictionary(_column(store, ref[1]))
        index = pc.index_in(a_dict, value_set=b_dict).fill_null(-2)
        return np.asarray(index.to_numpy(zero_copy_only=False), np.int32)
    if kind == "string_in":
        values = pa.array(list(ref[1]), pa.string())
        return np.asarray(pc.is_in(_dictionary(_column(store, ref[0])), value_set=values)
                          .to_numpy(zero_copy_only=False), np.bool_)
    if kind == "string_test":
        return string_test(_dictionary(_column(store, ref[0])), ref[1], ref[2])
    if kind == "dictionary_size":
        return np.int64(len(_dictionary(_column(store, ref[0]))))
    if kind == "array":
        return np.array(ref[1], dtype=_NUMPY[ref[0]])
    raise CompileError(f"unknown kernel argument kind {kind!r}")  # pragma: no cover


def _dictionary(col: Column) -> pa.Array:
    assert col.dictionary is not None
    return col.dictionary


def string_test(dictionary: pa.Array, fn: str, spec: tuple[Any, ...]) -> np.ndarray:
    """Whether each dictionary entry passes ``fn`` with literal arguments ``spec``."""
    text = str(spec[0])
    sensitive = bool(spec[1]) if len(spec) > 1 else True
    values = dictionary
    if not sensitive:
        values = pa.array([s.casefold() for s in dictionary.to_pylist()], pa.string())
        text = text.casefold()
    negate = fn in ("notEqualTo", "doesNotStartWith", "doesNotEndWith", "doesNotContain")
    if fn in ("equals", "notEqualTo"):
        result = pc.equal(values, pa.scalar(text))
    elif fn in ("startsWith", "doesNotStartWith"):
        result = pc.starts_with(values, pattern=text)
    elif fn in ("endsWith", "doesNotEndWith"):
        result = pc.ends_with(values, pattern=text)
    elif fn in ("contains", "doesNotContain"):
        result = pc.match_substring(values, pattern=text)
    elif fn == "like":
        result = pc.match_like(values, pattern=_like_pattern(text))
    elif fn == "matches":
        result = pc.match_substring_regex(values, pattern=text)  # RE2: linear time
    else:  # pragma: no cover - codegen sends only these
        raise CompileError(f"unknown string test {fn}")
    arr = np.asarray(result.to_numpy(zero_copy_only=False), np.bool_)
    return ~arr if negate else arr


def _like_pattern(pattern: str) -> str:
    """Our ``like`` has no escape character; Arrow's uses backslash: escape it."""
    return pattern.replace("\\", "\\\\")


def _timed(a: Arg, now_ms: int) -> np.ndarray:
    when = a.ref[0]
    if a.kind == "period":
        s, e = _reference(when, now_ms)[:2]
        return np.array([s, e], np.int64)
    w = np.array(_window(when, now_ms), np.int64)
    if a.kind == "window":
        return w
    pieces = [(w[2 * k], w[2 * k + 1]) for k in range(5) if w[2 * k] <= w[2 * k + 1]]
    if not pieces:
        return np.array([1, 0], np.int64)
    return np.array([min(p[0] for p in pieces), max(p[1] for p in pieces)], np.int64)


def _window(when: ir.TimeCond, now_ms: int) -> tuple[int, ...]:
    if isinstance(when, ir.Within):
        s, e, inst = _reference(when.anchor, now_ms)
        return tuple(window(OPS[when.op], when.amount, UNITS[when.unit.value],
                            DIRECTIONS[when.direction], s, e, inst))
    if isinstance(when, ir.Side):
        s, e, inst = _reference(when.anchor, now_ms)
        return tuple(side_window(when.direction == "after", s, e, inst))
    if isinstance(when, ir.On):
        s, e, inst = _reference(when.anchor, now_ms)
        return tuple(on_window(s, e, inst))
    assert isinstance(when, ir.Between)
    s1, e1, i1 = _reference(when.lo, now_ms)
    s2, e2, i2 = _reference(when.hi, now_ms)
    return tuple(between_window(s1, e1, i1, s2, e2, i2))


def _reference(node: ir.Expr, now_ms: int) -> tuple[int, int, bool]:
    """(s, e, instant) of a constant time reference."""
    if isinstance(node, ir.Now):
        return now_ms, now_ms, True
    if isinstance(node, ir.Period):
        s, e = period_bounds(node.offset, node.unit.value, now_ms)
        return s, e, False
    if isinstance(node, ir.Literal) and isinstance(node.value, int):
        return node.value, node.value, True
    if isinstance(node, ir.Call) and node.fn == "date":
        y, m, d = (int(a.value) for a in node.args if isinstance(a, ir.Literal)
                   and a.value is not None)
        day = days_from_civil(y, m, d)
        return day * DAY_MS, (day + 1) * DAY_MS, False
    raise CompileError(f"not a constant time reference: {type(node).__name__}")

