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

from engine.codegen import Arg, CompileError
from engine.queries import constant_reference, constant_window
from engine.timers import bind_rows, how_of, spec_of
from store.columns import Column, unify_dictionaries
from store.profile_store import ProfileStore

__all__ = ["OneBinder", "bind", "dictionary_of", "regex_group", "resolve", "string_test"]

_TIMED_ROWS = {"window": 0, "window_bounds": 1, "period": 2}  # `engine.timers.bind_rows`
_NUMPY = {"int": np.int64, "float": np.float64, "bool": np.bool_, "timestamp": np.int64,
          "date": np.int64, "string": np.int64}


def bind(args: tuple[Arg, ...], store: ProfileStore, now_ms: int | np.ndarray,
         segments: Mapping[str, np.ndarray], cache: dict[Any, Any], *,
         shared: dict[Any, Any] | None = None,
         gating: tuple[np.ndarray, Mapping[str, np.ndarray]] | None = None) -> list[Any]:
    """The values of ``args`` for a run at ``now_ms`` (an instant per profile for a
    timeline kernel, `engine.codegen.assemble`); store-only values are cached in
    ``cache``, and values that do not depend on the store (parameters, constant arrays,
    windows at one instant) in ``shared``, which may outlive the store: a streaming session
    binds the same kernel to a new small store on every call. ``gating``: a gated
    timeline's gates (per row) and, per windows argument, its instances' masks: windows
    are bound only where the kernel reads them (`engine.timers.bind_rows`)."""
    if shared is None:
        return [_value(a, store, now_ms, segments, cache) for a in args]
    out = []
    for a in args:
        if gating is not None and a.name in gating[1]:
            kind, refs = a.ref if a.kind == "stack" else (a.kind, (a.ref,))
            rows = _timed_rows([r[0] for r in refs], kind, now_ms, cache,  # type: ignore[arg-type]
                               gates=gating[0], masks=gating[1][a.name])
            out.append(rows if a.kind == "stack" else rows[0])
            continue
        key = _shared_key(a, now_ms)
        if key is not None:
            found = shared.get(key)
            if found is None:
                found = shared[key] = _value(a, store, now_ms, segments, cache)
            out.append(found)
            continue
        sources = _dictionaries(a, store, cache)
        if sources is None:
            out.append(_value(a, store, now_ms, segments, cache))
            continue
        # A value computed from string dictionaries only: reused while the store's
        # columns hold the same dictionary objects (a subset picks one object per set of
        # strings; the entry keeps them alive, so their ids are not reused meanwhile).
        key = (a.kind, a.ref, *map(id, sources))
        hit = shared.get(key)
        if hit is None or any(x is not y for x, y in zip(hit[0], sources, strict=True)):
            hit = shared[key] = (sources, _value(a, store, now_ms, segments, cache))
        out.append(hit[1])
    return out


class OneBinder:
    """`bind` for one base profile's data as `store.one_profile` gives it (its event
    partitions coded in the base store's dictionaries, its attributes the base's row): what
    depends on neither the data nor the instant (parameters, constant arrays, everything
    computed from dictionaries) is bound once, against the base store ``like``; windows
    once per instant; the profile's own arrays per call. Streaming's one-event path binds a
    kernel of 72 arguments in a few microseconds.

    Raises `CompileError` for a kernel the path cannot serve: one that reads a field a
    view does not carry."""

    _FIXED, _TIMED, _SEGMENT, _ATTRIBUTE, _LIST, _EVENTS, _STACK = range(7)

    def __init__(self, args: tuple[Arg, ...], like: ProfileStore) -> None:
        self.views: set[Any] = set()  # the event views it reads (`EventStore.view` keys)
        self.referenced: list[int] = []  # its segments others read (rows; set by the engine)
        self._timed: dict[int, Any] = {}
        self._now: int | None = None
        # Windows: the time conditions of each kind (`_TIMED_ROWS`), all bound in one
        # `bind_rows` call per instant (a hundred definitions' windows one by one cost
        # more than their kernels); a condition `spec_of` cannot describe is bound alone.
        self._specs: dict[str, list[tuple[int, ...]]] = {k: [] for k in _TIMED_ROWS}
        self._rows: dict[str, np.ndarray] = {}
        cache: dict[Any, Any] = {}
        self._slots = [self._slot(a, k, like, cache) for k, a in enumerate(args)]
        self._bounds: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # (specs, how_of) per kind
        for kind, listed in self._specs.items():
            if listed:
                specs = np.array(listed, np.int64)
                self._bounds[kind] = specs, how_of(specs)

    def _slot(self, a: Arg, position: int, like: ProfileStore, cache: dict[Any, Any]
              ) -> tuple[int, Any]:
        kind = a.ref[0] if a.kind == "stack" else a.kind
        if kind in _TIMED_ROWS:  # (by position: hashing an Arg hashes its IR)
            conditions = [r[0] for r in a.ref[1]] if a.kind == "stack" else [a.ref[0]]
            try:
                specs = [spec_of(c, strict=True) for c in conditions]
            except ValueError:
                return self._TIMED, (position, a, None)
            first = len(self._specs[kind])
            self._specs[kind] += specs
            rows = (np.arange(first, first + len(specs)) if a.kind == "stack" else first)
            return self._TIMED, (position, a, rows)
        if kind in ("param", "array") or kind in _FROM_DICTIONARY:
            return self._FIXED, _value(a, like, 0, {}, cache)
        if a.kind == "stack":  # one value per instance of a shape, stacked per call
            return self._STACK, [self._slot(Arg(a.name, kind, ref), position, like, cache)
                                 for ref in a.ref[1]]
        if a.kind == "segment":
            return self._SEGMENT, a.ref[0]
        if a.kind == "profile_valid" or (a.kind == "profile_values" and (
                like.profiles[a.ref[0]].offsets is None)):
            col = like.profiles[a.ref[0]]
            return self._ATTRIBUTE, col.values if a.kind == "profile_values" else col.valid
        if a.kind in ("profile_values", "profile_offsets"):  # a list per profile
            col = like.profiles[a.ref[0]]
            return self._LIST, (a.kind == "profile_values", col.values, col.offsets)
        if a.kind in ("event_offsets", "event_time", "event_values", "event_valid",
                      "event_list_offsets") and (
                len(a.ref) == 1 or a.ref[1] in like.events.view(a.ref[0]).columns):
            self.views.add(a.ref[0])
            return self._EVENTS, (a.kind, a.ref[0], a.ref[1] if len(a.ref) > 1 else None)
        raise CompileError(f"the one-profile path cannot bind {a.kind} {a.ref}")

    def __call__(self, profile: int, parts: Mapping[Any, Any], now_ms: int,
                 segments: Mapping[str, np.ndarray]) -> list[Any]:
        """The arguments for ``profile`` whose event views are ``parts`` (`store.
        one_profile.Part` s by view key, at least those `views` names) at ``now_ms``."""
        if now_ms != self._now:
            self._now, self._timed, self._rows = now_ms, {}, {}
        out = []
        for slot in self._slots:  # (the common kinds inline: a call per argument costs)
            mode, x = slot
            if mode == self._FIXED:
                out.append(x)
            elif mode == self._EVENTS and x[0] == "event_values":
                out.append(parts[x[1]].values[x[2]])
            elif mode == self._ATTRIBUTE:
                out.append(x[profile:profile + 1])
            else:
                out.append(self._bound(slot, profile, parts, segments))
        return out

    def _bound(self, slot: tuple[int, Any], profile: int, parts: Mapping[Any, Any],
               segments: Mapping[str, np.ndarray]) -> Any:
        mode, x = slot
        if mode == self._FIXED:
            return x
        if mode == self._EVENTS:
            kind, key, name = x
            part = parts[key]
            return (part.offsets if kind == "event_offsets" else part.time
                    if kind == "event_time" else part.values[name]
                    if kind == "event_values" else part.valid[name]
                    if kind == "event_valid" else part.lists[name])
        if mode == self._ATTRIBUTE:
            return x[profile:profile + 1]
        if mode == self._SEGMENT:
            return segments[x]
        if mode == self._LIST:
            elements, values, offsets = x
            lo, hi = offsets[profile], offsets[profile + 1]
            if elements:
                return values[lo:hi]
            rebased = np.array([0, hi - lo], offsets.dtype)
            rebased.flags.writeable = offsets.flags.writeable  # the kernel's type
            return rebased
        if mode == self._STACK:
            return np.stack([self._bound(y, profile, parts, segments) for y in x])
        position, a, rows = x
        value = self._timed.get(position)
        if value is None:
            if rows is None:
                value = _value(a, None, self._now, segments, {})  # type: ignore[arg-type]
            else:
                kind = a.ref[0] if a.kind == "stack" else a.kind
                bound = self._rows.get(kind)
                if bound is None:
                    specs, hows = self._bounds[kind]
                    bound = self._rows[kind] = bind_rows(
                        specs, hows, np.array([self._now], np.int64), _TIMED_ROWS[kind],
                        _NO_GATES, _NO_GATES)[:, 0]
                value = bound[rows]
            self._timed[position] = value
        return value


_STORELESS = ("param", "array", "window", "window_bounds", "period")
_NO_GATES = np.zeros(0, np.int64)
# Kinds computed from the dictionaries of their first reference (translate: two).
_FROM_DICTIONARY = ("code", "string_in", "string_test", "dictionary_size", "regex_map",
                    "chars", "char_offsets", "translate")


def _dictionaries(a: Arg, store: ProfileStore, cache: dict[Any, Any]
                  ) -> tuple[pa.Array, ...] | None:
    """The dictionaries a value of ``a`` is computed from, if that is all it reads."""
    kind, ref = (a.ref[0], a.ref[1][0]) if a.kind == "stack" else (a.kind, a.ref)
    if kind not in _FROM_DICTIONARY:
        return None
    sources = ref[:2] if kind == "translate" else ref[:1]
    return tuple(dictionary_of(store, r, cache) for r in sources)


def _shared_key(a: Arg, now_ms: Any) -> tuple[Any, ...] | None:
    """The key of a value that depends on the instant at most, else None."""
    kind = a.ref[0] if a.kind == "stack" else a.kind
    if kind not in _STORELESS:
        return None
    if kind not in _TIMED_ROWS:
        return (a.kind, a.ref, None)
    # Windows at one instant; on a timeline (an instant per row) they are per call.
    return None if isinstance(now_ms, np.ndarray) else (a.kind, a.ref, now_ms)


def _value(a: Arg, store: ProfileStore, now_ms: Any, segments: Mapping[str, np.ndarray],
           cache: dict[Any, Any]) -> Any:
    if a.kind == "stack":  # one value per instance of a shape, as an array's entries or rows
        kind, refs = a.ref
        if kind in _TIMED_ROWS and isinstance(now_ms, np.ndarray):  # all in one call
            return _timed_rows([r[0] for r in refs], kind, now_ms, cache)
        return np.stack([_value(Arg(a.name, kind, ref), store, now_ms, segments, cache)
                         for ref in refs])
    if a.kind in ("window", "window_bounds", "period"):
        if isinstance(now_ms, np.ndarray):  # a timeline kernel: a value per row
            return _timed_rows([a.ref[0]], a.kind, now_ms, cache)[0]
        return _timed(a, now_ms)
    if a.kind == "segment":
        return segments[a.ref[0]]
    if a.kind == "param":
        return _NUMPY[a.ref[0]](a.ref[1])
    key = (a.kind, a.ref)
    if key not in cache:
        cache[key] = _stored(a, store, cache)
    return cache[key]


def _timed_rows(conditions: list[Any], kind: str, nows: np.ndarray, cache: dict[Any, Any], *,
                gates: np.ndarray = _NO_GATES, masks: np.ndarray = _NO_GATES) -> np.ndarray:
    """A timeline's windows (`engine.timers.bind_rows`) of these time conditions, one per
    instance of a shape: an array (condition, row, bounds), shared by the arguments that
    bind the same conditions (with the same masks) in one call."""
    specs = tuple(spec_of(c, strict=True) for c in conditions)
    key = ("rows", specs, kind, masks.tobytes())
    found = cache.get(key)
    if found is None:
        hows = _HOWS.get(specs)
        if hows is None:
            if len(_HOWS) > 4096:
                _HOWS.clear()
            hows = _HOWS[specs] = how_of(np.array(specs, np.int64))
        found = cache[key] = bind_rows(np.array(specs, np.int64), hows, nows, _TIMED_ROWS[kind],
                                       gates, masks)
    return found


_HOWS: dict[tuple[tuple[int, ...], ...], np.ndarray] = {}  # `how_of`, per tuple of specs


def _column(store: ProfileStore, ref: tuple[Any, ...]) -> Column:
    if ref[0] == "profile":
        return store.profiles[ref[1]]
    part = store.events.view(ref[1])
    return store.events.field(part, ref[2])


def _stored(a: Arg, store: ProfileStore, cache: dict[Any, Any]) -> Any:
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
    if kind == "event_list_offsets":
        return np.asarray(events.view(ref[0]).columns[ref[1]].offsets)
    # Strings: codes into the dictionary of what ``ref`` names (see `dictionary_of`). Tables
    # indexed by a code get one more entry at the end, what a null's code (-1) reads.
    if kind == "code":
        return np.int32(_code_of(dictionary_of(store, ref[0], cache), ref[1]))
    if kind == "translate":
        a_dict = dictionary_of(store, ref[0], cache)
        b_dict = dictionary_of(store, ref[1], cache)
        index = pc.index_in(a_dict, value_set=b_dict).fill_null(-2)
        return _padded(np.asarray(index.to_numpy(zero_copy_only=False), np.int32), -2)
    if kind == "string_in":
        values = pa.array(list(ref[1]), pa.string())
        found = pc.is_in(dictionary_of(store, ref[0], cache), value_set=values)
        return _padded(np.asarray(found.to_numpy(zero_copy_only=False), np.bool_), False)
    if kind == "string_test":
        return _padded(string_test(dictionary_of(store, ref[0], cache), ref[1], ref[2]), False)
    if kind == "dictionary_size":
        return np.int64(len(dictionary_of(store, ref[0], cache)))
    if kind == "regex_map":  # (source, pattern, group): source code → result code, or -1
        source = dictionary_of(store, ref[0], cache)
        results = dictionary_of(store, ("regex", *ref), cache)
        found = regex_group(source, ref[1], ref[2])
        codes = pc.index_in(found, value_set=results).fill_null(-1)
        return _padded(np.asarray(codes.to_numpy(zero_copy_only=False), np.int32), -1)
    if kind in ("chars", "char_offsets"):  # (ref, fold): the code points of each entry
        chars, offsets = _code_points(dictionary_of(store, ref[0], cache), fold=ref[1])
        return chars if kind == "chars" else offsets
    if kind == "array":
        return np.array(ref[1], dtype=_NUMPY[ref[0]])
    raise CompileError(f"unknown kernel argument kind {kind!r}")  # pragma: no cover


def _padded(table: np.ndarray, pad: Any) -> np.ndarray:
    """``table`` and one more entry, ``pad``: what ``table[-1]`` (a null's code) reads."""
    return np.concatenate([table, np.array([pad], table.dtype)])


def _code_of(dictionary: pa.Array, text: str) -> int:
    """The code of ``text`` in a sorted dictionary, or -1."""
    found = pc.index(dictionary, pa.scalar(text, pa.string())).as_py()
    return -1 if found is None else int(found)


def resolve(ref: tuple[Any, ...]) -> tuple[Any, ...]:
    """A string source as a value: a domain becomes the union of its (resolved) parts."""
    tag = ref[0]
    if tag == "constant":
        return ("literal", ref[1])
    if tag == "regex":
        return ("regex", resolve(ref[1]), *ref[2:])
    if tag != "domain":
        return ref
    parts: set[tuple[Any, ...]] = set()
    for part in ref[1].refs:
        r = resolve(part)
        parts |= set(r[1]) if r[0] == "union" else {r}
    if len(parts) == 1:
        return parts.pop()
    return ("union", tuple(sorted(parts, key=repr)))


def dictionary_of(store: ProfileStore, ref: tuple[Any, ...],
                  cache: dict[Any, Any] | None = None) -> pa.Array:
    """The sorted, distinct strings whose codes the kernel values from ``ref`` are.

    ``("profile", name)`` and ``("event", key, name)``: the column's dictionary;
    ``("literal", text)`` and ``("constant", text)``: just ``text``; ``("domain", d)``: the
    union of the sources ``d`` collected while generating (the branches of a string ``if``,
    the elements of a list); ``("regex", source, pattern, group)``: what ``regexGroup`` gives
    for the strings of ``source``.
    """
    ref = resolve(ref)
    key = ("dictionary", ref)
    if cache is not None and key in cache:
        return cache[key]
    tag = ref[0]
    if tag == "literal":
        out = pa.array([ref[1]], pa.string())
    elif tag == "union":
        out = unify_dictionaries([dictionary_of(store, r, cache) for r in ref[1]])[0]
    elif tag == "regex":
        found = regex_group(dictionary_of(store, ref[1], cache), ref[2], ref[3])
        out = pc.unique(found.drop_null())
        out = out.take(pc.sort_indices(out))
    else:
        out = _dictionary(_column(store, ref))
    if cache is not None:
        cache[key] = out
    return out


def _code_points(dictionary: pa.Array, *, fold: bool) -> tuple[np.ndarray, np.ndarray]:
    """(code points of every entry one after another, each entry's start; one more)."""
    texts = [s.casefold() if fold else s for s in dictionary.to_pylist()]
    offsets = np.zeros(len(texts) + 1, np.int64)
    np.cumsum([len(s) for s in texts], out=offsets[1:])
    chars = np.frombuffer("".join(texts).encode("utf-32-le"), np.uint32).astype(np.int32)
    return chars, offsets


def _named_groups(pattern: str, wanted: int) -> tuple[str, str]:
    """``pattern`` with every capturing group named (Arrow extracts named groups only), and
    the name of group ``wanted`` (0: the whole match)."""
    out: list[str] = []
    i, n, count, in_class, name = 0, len(pattern), 0, False, ""
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
            j = i + 1 + (pattern[i + 1 : i + 2] == "^")
            j += pattern[j : j + 1] == "]"  # a leading ] is a literal
            out.append(pattern[i:j])
            i = j
            continue
        elif ch == "(" and pattern.startswith("(?P<", i):
            count += 1
            end = pattern.index(">", i)
            if count == wanted:
                name = pattern[i + 4 : end]
            out.append(pattern[i : end + 1])
            i = end + 1
            continue
        elif ch == "(" and not pattern.startswith("(?", i):
            count += 1
            group = f"pqlite_g{count}"
            if count == wanted:
                name = group
            out.append(f"(?P<{group}>")
            i += 1
            continue
        out.append(ch)
        i += 1
    if wanted == 0:
        return f"(?P<pqlite_g0>{''.join(out)})", "pqlite_g0"
    return "".join(out), name


def regex_group(strings: pa.Array, pattern: str, group: int) -> pa.Array:
    """``s.regexGroup(pattern, group)`` of each string: group ``group`` of the first match,
    null when nothing matches or the group did not take part (RE2, linear time)."""
    named, name = _named_groups(pattern, group)
    spans = pc.extract_regex_span(strings, pattern=named)
    out: list[str | None] = []
    for s, span in zip(strings.to_pylist(), spans.to_pylist(), strict=True):
        where = None if span is None else span[name]
        if s is None or where is None:
            out.append(None)
        else:
            start, length = where
            out.append(s.encode()[start : start + length].decode())
    return pa.array(out, pa.string())


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
        s, e = constant_reference(when, now_ms)[:2]
        return np.array([s, e], np.int64)
    w = np.array(constant_window(when, now_ms), np.int64)
    if a.kind == "window":
        return w
    pieces = [(w[2 * k], w[2 * k + 1]) for k in range(5) if w[2 * k] <= w[2 * k + 1]]
    if not pieces:
        return np.array([1, 0], np.int64)
    return np.array([min(p[0] for p in pieces), max(p[1] for p in pieces)], np.int64)
