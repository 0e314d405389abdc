"""When time alone can next change a profile's memberships: exact timers for streaming.

A definition reads the clock in three ways only: windows and periods anchored on ``now``
(``occurs < 7 days before now``, ``today``), ``now`` itself compared with a value, and the
calendar functions (``currentMonth()``, ``now.getYear()``). Every bound of a window or
period is a non-decreasing function e(x) of the instant x (``x - 7 days``, the start of the
day containing x). Between two events a profile's data are fixed, so its value can change
only when some predicate ``t <= e(x)`` or ``t < e(x)`` over one of its data instants t flips,
and each flips once, at the first x where e(x) reaches t (resp. t + 1). So after instant x0
the next possible change is

    min over bounds e, of min{x > x0 : e(x) >= v}, v the least t or t + 1 above e(x0),

over the profile's data instants t: event times, timestamp and date fields, and the
definition's timestamp literals. That is a superset of the instants where a membership
changes (an event may lie outside every filter), so evaluating there is exact: nothing is
approximated to a day or an hour. A bound ``x + c`` (fixed units) gives x = v - c directly;
calendar units and periods are solved by a search over x. The calendar functions change at
midnight UTC for every profile at once: a `Timers.daily` definition is re-evaluated for all
profiles at each midnight.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeAlias

import numba
import numpy as np

from engine import ir
from engine.analysis import _CLOCK_CALLS
from engine.timeops import (
    DAY_MS,
    DIRECTIONS,
    FOREVER_HI,
    OPS,
    UNITS,
    add_units,
    between_window,
    civil_from_days,
    days_from_civil,
    on_window,
    side_window,
    window,
)
from store.columns import Column
from store.profile_store import ProfileStore
from store.schema import Kind

__all__ = ["NEVER", "Timers", "candidates", "gate_mask", "holds_instants", "next_change_one",
           "next_changes"]

NEVER = np.iinfo(np.int64).max  # no change with time alone
_LAST = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z: instants stop here
_PER_THREAD = 4096  # profiles per thread of `candidates`, at least
_WEEK = -7  # a period unit code: weeks start on Monday, not on the epoch's Thursday

# A spec (int64[17]) is a constant time condition or reference as numbers, so that numba
# computes its bounds at any instant: form, op, amount, unit, direction, then two anchors
# (the second only for ``between``) of six: kind, period offset, period unit, s, e, instant.
_WITHIN, _BEFORE, _AFTER, _ON, _BETWEEN, _REFERENCE = range(6)
_NOW, _PERIOD, _FIXED = 0, 1, 2  # anchor kinds: the clock, a period around it, a constant
SPEC = 17


@dataclass(frozen=True, eq=False)
class Timers:
    """What makes a set of definitions change with time: their clock-anchored bounds (rows
    of `bounds_at` specs), their timestamp literals, and whether a calendar function makes
    them change at every midnight."""

    specs: np.ndarray  # int64 (n, SPEC)
    constants: np.ndarray  # int64 instants from literals
    daily: bool
    spec_types: tuple[frozenset[str] | None, ...] = ()  # per spec, the types it reads
    # Per spec, the attributes its definitions read (None: any), whose instants alone of
    # the profile's attributes can move it; and per expression, the specs it uses.
    spec_fields: tuple[frozenset[str] | None, ...] = ()
    uses: tuple[tuple[int, ...], ...] = ()

    @property
    def empty(self) -> bool:
        return not len(self.specs) and not self.daily

    @functools.cached_property
    def bits(self) -> np.ndarray:
        """Each spec's gate bit (`gate_mask`), as `candidates` marks its rows."""
        return np.array([gate_mask([s]) for s in range(len(self.specs))], np.int64)

    @functools.cached_property
    def how(self) -> np.ndarray:
        """How each bound of each spec moves (`how_of`)."""
        return how_of(self.specs)

    @classmethod
    def of(cls, exprs: Iterable[ir.Expr],
           types: Iterable[frozenset[str] | None] | None = None,
           fields: Iterable[frozenset[str]] | None = None) -> Timers:
        """The timers of ``exprs``; ``types``: the event types each reads (`engine.analyze`;
        None: any), whose event times are the only ones that can change it; ``fields``: the
        attributes each reads (default: any), likewise."""
        specs: dict[tuple[int, ...], frozenset[str] | None] = {}  # spec -> types it reads
        attrs: dict[tuple[int, ...], frozenset[str] | None] = {}  # spec -> attributes
        constants: set[int] = set()
        daily = False
        exprs = list(exprs)
        read = list(types) if types is not None else [None] * len(exprs)
        attributes: list[frozenset[str] | None] = (
            list(fields) if fields is not None else [None] * len(exprs))
        per_expr: list[set[tuple[int, ...]]] = []
        for expr, reads, attr in zip(exprs, read, attributes, strict=True):
            parents = {id(c): n for n in ir.walk(expr) for c in ir.children(n)}
            mine: set[tuple[int, ...]] = set()
            for n in ir.walk(expr):
                if isinstance(n, ir.TimeCond):
                    mine.update(_clock_specs(n))
                elif isinstance(n, ir.Now):
                    parent = parents.get(id(n))
                    if isinstance(parent, ir.TimeCond):
                        continue  # its spec covers it
                    if isinstance(parent, ir.Compare | ir.Occurs):
                        mine.add(spec_of(n))
                    else:  # now.getYear() and the like: a calendar value
                        daily = True
                elif isinstance(n, ir.Call) and n.fn in _CLOCK_CALLS:
                    daily = True
                elif isinstance(n, ir.Literal) and n.kind.value == "timestamp":
                    assert isinstance(n.value, int)
                    constants.add(n.value)
                elif isinstance(n, ir.Call) and n.fn == "date":
                    day = _constant_day(n)
                    if day is not None:
                        constants.update((day * DAY_MS, day * DAY_MS + DAY_MS - 1))
            for spec in mine:
                had = specs.get(spec, frozenset())
                specs[spec] = None if had is None or reads is None else had | reads
                had = attrs.get(spec, frozenset())
                attrs[spec] = None if had is None or attr is None else had | attr
            per_expr.append(mine)
        order = sorted(specs)
        rows = np.array(order, np.int64).reshape(-1, SPEC)
        place = {k: i for i, k in enumerate(order)}
        return cls(rows, np.array(sorted(constants), np.int64), daily,
                   tuple(specs[k] for k in order), tuple(attrs[k] for k in order),
                   tuple(tuple(sorted(place[k] for k in mine)) for mine in per_expr))

    def feeds(self, types: tuple[str, ...] | None) -> np.ndarray:
        """Which specs the times of events of ``types`` (None: any) can move: those of
        definitions that read one of them (computed once per ``types``; do not change it)."""
        found = self._feeds.get(types)
        if found is None:
            found = self._feeds[types] = np.ones(len(self.specs), np.bool_) if (
                not self.spec_types) else np.array(
                [types is None or t is None or not t.isdisjoint(types) for t in self.spec_types],
                np.bool_)
        return found

    def feeds_attribute(self, name: str) -> np.ndarray:
        """Which specs the instants of attribute ``name`` can move: those of definitions
        that read it (all, for timers made without ``fields``)."""
        key = ("attribute", name)
        found = self._feeds.get(key)
        if found is None:
            found = self._feeds[key] = np.ones(len(self.specs), np.bool_) if (
                not self.spec_fields) else np.array(
                [f is None or name in f for f in self.spec_fields], np.bool_)
        return found

    @functools.cached_property
    def _feeds(self) -> dict[Any, np.ndarray]:
        return {}


def _constant_day(node: ir.Call) -> int | None:
    from engine.timeops import day_number

    args = [a.value if isinstance(a, ir.Literal) else None for a in node.args]
    return day_number(*args) if len(args) == 3 else None


def _anchor(node: ir.Node) -> tuple[int, ...] | None:
    """An anchor's six numbers; None if it varies per profile or event."""
    if isinstance(node, ir.Now):
        return _NOW, 0, 0, 0, 0, 1
    if isinstance(node, ir.Period):
        unit = node.unit.value
        return _PERIOD, node.offset, _WEEK if unit == "week" else UNITS[unit], 0, 0, 0
    if isinstance(node, ir.Literal) and isinstance(node.value, int):
        return _FIXED, 0, 0, node.value, node.value, 1
    if isinstance(node, ir.Call) and node.fn == "date":
        day = _constant_day(node)
        if day is not None:
            return _FIXED, 0, 0, day * DAY_MS, (day + 1) * DAY_MS, 0
    return None


_UNANCHORED = (_FIXED, 0, 0, 0, 0, 1)  # the data side of a condition: does not move


def spec_of(node: ir.Node, *, strict: bool = False) -> tuple[int, ...]:
    """The spec of a constant time condition (`engine.queries.constant_when`) or of a
    constant reference (``now``, a period, a literal): what `bounds_at` computes.
    An anchor that is data (an attribute, an event) is a fixed 0, or with ``strict`` an
    error."""
    if isinstance(node, ir.Within):
        head: tuple[int, ...] = (_WITHIN, OPS[node.op], node.amount, UNITS[node.unit.value],
                                 DIRECTIONS[node.direction])
        anchors: list[ir.Node] = [node.anchor]
    elif isinstance(node, ir.Side):
        head = (_AFTER if node.direction == "after" else _BEFORE, 0, 0, 0, 0)
        anchors = [node.anchor]
    elif isinstance(node, ir.On):
        head, anchors = (_ON, 0, 0, 0, 0), [node.anchor]
    elif isinstance(node, ir.Between):
        head, anchors = (_BETWEEN, 0, 0, 0, 0), [node.lo, node.hi]
    else:
        head, anchors = (_REFERENCE, 0, 0, 0, 0), [node]
    found = [_anchor(a) for a in anchors]
    if strict and None in found:
        raise ValueError(f"not a constant time condition: {node!r}")
    parts = [f or _UNANCHORED for f in found]
    return (*head, *parts[0], *(parts[1] if len(parts) > 1 else _UNANCHORED))


def _clock_specs(when: ir.TimeCond) -> list[tuple[int, ...]]:
    """The spec of a time condition whose bounds move with the clock, if they do (an
    anchor that is data (an attribute, an event) stands still: its side never moves)."""
    anchors = [when.lo, when.hi] if isinstance(when, ir.Between) else [when.anchor]  # type: ignore[attr-defined]
    if not any(isinstance(a, ir.Now | ir.Period) for a in anchors):
        return []
    return [spec_of(when)]


# ------------------------------------------------------------------ bounds as functions of x

_jit = numba.njit(cache=True)


@_jit
def _period(offset: int, unit: int, x: int) -> tuple[int, int]:
    """`engine.timeops.period_bounds` with a unit code (numba has no strings here)."""
    if unit == _WEEK:
        days = x // DAY_MS
        monday = days - (days + 3) % 7
        start = (monday + 7 * offset) * DAY_MS
        return start, start + 7 * DAY_MS
    if unit < 0:
        y, m, _ = civil_from_days(x // DAY_MS)
        if unit == -12:
            return (days_from_civil(y + offset, 1, 1) * DAY_MS,
                    days_from_civil(y + offset + 1, 1, 1) * DAY_MS)
        months = y * 12 + (m - 1) + offset
        y2 = months // 12
        m2 = months - y2 * 12 + 1
        start = days_from_civil(y2, m2, 1) * DAY_MS
        return start, add_units(start, 1, -1)
    start = (x // unit + offset) * unit
    return start, start + unit


@_jit
def _reference(spec: np.ndarray, at: int, x: int) -> tuple[int, int, bool]:
    """(s, e, instant) of the anchor at ``spec[at:at + 6]`` with the clock at ``x``."""
    kind = spec[at]
    if kind == _NOW:
        return x, x, True
    if kind == _PERIOD:
        s, e = _period(spec[at + 1], spec[at + 2], x)
        return s, e, False
    return spec[at + 3], spec[at + 4], spec[at + 5] != 0


@_jit
def bounds_at(spec: np.ndarray, x: int) -> tuple[int, int, int, int, int, int, int, int,
                                                   int, int]:
    """The ten window ends (five lo, hi pairs) of a spec with the clock at ``x`` (for
    `_REFERENCE`: s and e of the reference, then empty pairs)."""
    s, e, inst = _reference(spec, 5, x)
    form = spec[0]
    if form == _WITHIN:
        return window(spec[1], spec[2], spec[3], spec[4], s, e, inst)
    if form == _BEFORE:
        return side_window(False, s, e, inst)
    if form == _AFTER:
        return side_window(True, s, e, inst)
    if form == _ON:
        return on_window(s, e, inst)
    if form == _BETWEEN:
        s2, e2, inst2 = _reference(spec, 11, x)
        return between_window(s, e, inst, s2, e2, inst2)
    return s, e, 1, 0, 1, 0, 1, 0, 1, 0


@numba.njit(cache=True, parallel=False)
def bind_rows(specs: np.ndarray, hows: np.ndarray, nows: np.ndarray, kind: int,  # noqa: PLR0917 (numba)
              gates: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per spec of ``specs`` and instant of ``nows``, what `engine.binding` binds for an
    argument of that spec at that instant (``out[spec, row]``): kind 0 the five windows (10
    values), 1 their hull (lo, hi), 2 the reference's (s, e). ``hows``: how each bound
    moves (`how_of`); when none is searched, a bound is its value at the first instant,
    shifted (3x faster than `bounds_at` a row). One call for every instance of a shape.
    With ``gates`` (a gated timeline's, a mask per row; empty: none), spec j's rows whose
    gate shares no bit with ``masks[j]`` are left unset: the kernel does not read them."""
    width = 10 if kind == 0 else 2
    out = np.empty((len(specs), len(nows), width), np.int64)
    gated = len(gates) > 0
    base = np.empty(10, np.int64)
    w = np.empty(10, np.int64)
    x0 = nows[0] if len(nows) else 0
    for j in range(len(specs)):
        spec, how = specs[j], hows[j]
        searched = False
        for k in range(10):
            searched |= how[k] == 2
        first = bounds_at(spec, x0)
        for k in range(10):
            base[k] = first[k] - x0 if how[k] == 1 else first[k]
        for r in range(len(nows)):
            if gated and (gates[r] & masks[j]) == 0:
                continue
            if searched:
                ends = bounds_at(spec, nows[r])
                for k in range(10):
                    w[k] = ends[k]
            else:
                for k in range(10):
                    w[k] = nows[r] + base[k] if how[k] == 1 else base[k]
            if kind == 0:
                for k in range(10):
                    out[j, r, k] = w[k]
            elif kind == 2:
                out[j, r, 0] = w[0]
                out[j, r, 1] = w[1]
            else:
                lo, hi = FOREVER_HI, -FOREVER_HI
                for k in range(5):
                    if w[2 * k] <= w[2 * k + 1]:
                        lo = min(lo, w[2 * k])
                        hi = max(hi, w[2 * k + 1])
                if lo > hi:
                    lo, hi = 1, 0
                out[j, r, 0] = lo
                out[j, r, 1] = hi
    return out


@_jit
def _first_reaching(spec: np.ndarray, k: int, x0: int, v: int) -> int:
    """min{x > x0 : bound k at x >= v}, by doubling then bisection (bounds never decrease)."""
    lo = x0  # bound(lo) < v
    step = 1000
    hi = x0 + step
    while bounds_at(spec, hi)[k] < v:
        lo = hi
        if hi >= _LAST:
            return NEVER
        step *= 2
        hi = min(x0 + step, _LAST)
    while hi - lo > 1:
        mid = lo + (hi - lo) // 2
        if bounds_at(spec, mid)[k] >= v:
            hi = mid
        else:
            lo = mid
    return hi


@_jit
def _scan(offsets: np.ndarray, values: np.ndarray, valid: np.ndarray,  # noqa: PLR0917 (numba)
          is_sorted: bool, scale: int, shift: int, feeds: np.ndarray, x0s: np.ndarray,
          specs: np.ndarray, how: np.ndarray, out: np.ndarray) -> None:
    """Lower ``out[p]`` to profile p's next change instant after ``x0s[p]`` from the data
    instants ``values[offsets[p]:offsets[p + 1]] * scale + shift`` (where ``valid``).

    ``how[s, k]`` says how bound k of spec s moves: 0 never, 1 as x + c, 2 otherwise
    (searched)."""
    whole = len(valid) == 0
    plain = is_sorted and whole and scale == 1 and shift == 0
    at = np.empty((len(specs), 10), np.int64)  # every bound at x0, for the run of one x0
    known, x0 = False, 0
    for p in range(len(offsets) - 1):
        lo, hi = offsets[p], offsets[p + 1]
        if lo == hi:
            continue
        if not known or x0s[p] != x0:
            x0 = x0s[p]
            for s in range(len(specs)):
                ends = bounds_at(specs[s], x0)
                for k in range(10):
                    at[s, k] = ends[k]
            known = True
        best = out[p]
        for s in range(len(specs)):
            if not feeds[s]:
                continue
            spec_form = specs[s][0]
            for k in range(10):
                if how[s, k] == 0:
                    continue
                e = at[s, k]
                # The least threshold above e: t for a window's upper end (odd k), t + 1
                # for its lower end, either for a reference (see `_collect`).
                low = spec_form != _REFERENCE and k % 2 == 0
                high = spec_form != _REFERENCE and k % 2 == 1
                v = NEVER
                if plain:
                    i = lo + np.searchsorted(values[lo:hi], e)  # the first t >= e
                    if i < hi:
                        t = values[i]
                        if low or (not high and t == e):
                            v = t + 1
                        elif t > e:
                            v = t
                        elif i + 1 < hi:  # an upper end at t == e: the next t above
                            j = lo + np.searchsorted(values[lo:hi], e, side="right")
                            if j < hi:
                                v = values[j]
                else:
                    for i in range(lo, hi):
                        if not whole and not valid[i]:
                            continue
                        t = values[i] * scale + shift
                        if t > e and not low:
                            v = min(v, t)
                        if t + 1 > e and not high:
                            v = min(v, t + 1)
                if v == NEVER:
                    continue
                x = v - (e - x0) if how[s, k] == 1 else _first_reaching(specs[s], k, x0, v)
                if x0 < x < best:
                    best = x
        out[p] = best


def how_of(specs: np.ndarray) -> np.ndarray:
    """How each bound moves: 0 never (unused pieces, FOREVER ends, a fixed side of a
    ``between``), 1 as x + c (anchored on ``now``, fixed units), 2 otherwise (periods step
    at calendar boundaries; months and years clamp days)."""
    how = np.zeros((len(specs), 10), np.int8)
    x0 = 1_700_000_000_000
    far = 400 * DAY_MS  # longer than any period: a bound that moves has moved by then
    for s, spec in enumerate(specs):
        now = np.array(bounds_at(spec, x0), np.int64)
        later = np.array(bounds_at(spec, x0 + far), np.int64)
        linear = (spec[5] != _PERIOD and spec[11] != _PERIOD
                  and (spec[0] != _WITHIN or spec[3] > 0))
        how[s] = np.where(later == now, 0, 1 if linear else 2)
    return how


def next_changes(store: ProfileStore, timers: Timers, x0: int | np.ndarray) -> np.ndarray:
    """Per profile of ``store``, the next instant after ``x0`` (one instant, or one per
    profile) at which time alone can change a value of the definitions ``timers``
    describes (`NEVER` if none; the daily changes of calendar functions aside)."""
    n = len(store)
    out = np.full(n, NEVER, np.int64)
    specs = timers.specs
    if not len(specs):
        return out
    how = timers.how
    x0s = np.broadcast_to(np.asarray(x0, np.int64), (n,)).copy()
    for source in _sources(store, timers):
        _scan(*source, x0s, specs, how, out)
    return out


@numba.njit(cache=True, nogil=True)
def _collect(offsets: np.ndarray, values: np.ndarray, valid: np.ndarray,  # noqa: PLR0917 (numba)
             is_sorted: bool, scale: int, shift: int, feeds: np.ndarray, x0s: np.ndarray,
             limit: int, specs: np.ndarray, how: np.ndarray, bits: np.ndarray,
             found: np.ndarray, n: int, after: np.ndarray) -> tuple[np.ndarray, int]:
    """Every instant in (x0s[p], limit] at which a bound of profile p reaches one of its
    data instants, appended to ``found`` from row ``n`` on as (profile, instant, gate) rows
    (``gate``: the spec's bit, ``bits[s]``), which grows as needed; returns it and the new
    row count. ``after[p]`` is lowered to the first such instant past ``limit`` (what
    `next_changes` at ``limit`` gives), found on the way.

    A window's lower end k (even) flips ``lo <= t`` when it reaches t + 1, its upper end
    (odd) ``t <= hi`` when it reaches t; a reference (a period's [s, e), ``now`` compared
    with a value) may be compared either way: both."""
    whole = len(valid) == 0
    plain = is_sorted and whole and scale == 1 and shift == 0
    # Every bound at ``limit``, once; a bound that moves as x + c is then at x0 + (its value
    # at limit - limit): only searched bounds need `bounds_at` per profile.
    stop = np.empty((len(specs), 10), np.int64)
    searched = np.zeros(len(specs), np.bool_)
    start = np.empty(10, np.int64)
    for s in range(len(specs)):
        ends = bounds_at(specs[s], limit)
        for k in range(10):
            stop[s, k] = ends[k]
            searched[s] |= how[s, k] == 2
    for p in range(len(offsets) - 1):
        lo, hi = offsets[p], offsets[p + 1]
        if lo == hi:
            continue
        x0 = x0s[p]
        for s in range(len(specs)):
            if not feeds[s]:
                continue
            spec = specs[s]
            if searched[s]:
                ends = bounds_at(spec, x0)
                for k in range(10):
                    start[k] = ends[k]
            for k in range(10):
                if how[s, k] == 0:
                    continue
                e1 = stop[s, k]
                e0 = start[k] if how[s, k] == 2 else x0 + (e1 - limit)
                e0 = min(e0, e1)  # (a bound that did not move still has a next threshold)
                if plain and values[hi - 1] + 1 <= e0:
                    continue  # every threshold passed already (e.g. "now" past old events)
                nearest = NEVER  # the least threshold above e1: the next change past limit
                first = lo + np.searchsorted(values[lo:hi], e0) if plain else lo
                for i in range(first, hi):
                    if not whole and not valid[i]:
                        continue
                    t = values[i] * scale + shift
                    for v in (t, t + 1):
                        if spec[0] != _REFERENCE and (v == t) == (k % 2 == 0):
                            continue  # the other side of a window's end
                        if v > e1:
                            nearest = min(nearest, v)
                            continue
                        if v <= e0:
                            continue
                        x = v - (e0 - x0) if how[s, k] == 1 else _first_reaching(spec, k, x0, v)
                        if x <= x0 or x > limit:
                            continue
                        if n == len(found):
                            grown = np.empty((2 * n + 1024, 3), np.int64)
                            grown[:n] = found[:n]
                            found = grown
                        found[n, 0] = p
                        found[n, 1] = x
                        found[n, 2] = bits[s]
                        n += 1
                    if plain and t > e1:
                        break  # sorted: its thresholds are the least above e1
                if nearest != NEVER:
                    x = (nearest - (e1 - limit) if how[s, k] == 1
                         else _first_reaching(spec, k, limit, nearest))
                    if limit < x < after[p]:
                        after[p] = x
    return found, n


def gate_mask(specs: Iterable[int]) -> int:
    """The gate mask of a definition using specs ``specs`` (rows of `Timers.specs`): bit
    ``s % 64`` for each, as `candidates` sets them (specs 64 apart share a bit: a gate
    then lets more through, never less), as a signed 64-bit value."""
    bits = 0
    for s in specs:
        bits |= 1 << (s % 64)
    return bits - (1 << 64) if bits >= 1 << 63 else bits


def candidates(store: ProfileStore, timers: Timers, x0: np.ndarray, limit: int,
               threads: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every instant in (x0[p], limit] at which time alone may change profile p of
    ``store`` (its data fixed): (profile rows, instants, gates), sorted by profile and
    instant, without repeats. The instants where `next_changes` would land, one after
    another, all at once. ``gates[r]`` has the bit (`gate_mask`) of each spec that moves there
    (as an int64): a definition using none of them keeps its value from the row before.
    Fourth, per profile, the next such instant past ``limit``: `next_changes` at ``limit``,
    from the same pass. On ``threads`` threads, a range of the profiles each."""
    n = len(store)
    specs = timers.specs
    none_rows = np.zeros(0, np.int64)
    after = np.full(n, NEVER, np.int64)
    if not len(specs) or not n:
        return none_rows, none_rows, none_rows, after
    how = timers.how
    x0s = np.asarray(x0, np.int64)
    sources = _sources(store, timers)

    def collect(lo: int, hi: int) -> np.ndarray:
        found, m = np.empty((4 * (hi - lo), 3), np.int64), 0
        for offsets, values, valid, is_sorted, scale, shift, feeds in sources:
            found, m = _collect(offsets[lo:hi + 1], values, valid, is_sorted, scale, shift,
                                feeds, x0s[lo:hi], limit, specs, how, timers.bits, found, m,
                                after[lo:hi])
        found[:m, 0] += lo
        return found[:m]

    bounds = np.linspace(0, n, max(1, min(threads, n // _PER_THREAD)) + 1).astype(int).tolist()
    if len(bounds) == 2:
        found = collect(0, n)
    else:
        with ThreadPoolExecutor(len(bounds) - 1) as pool:
            found = np.concatenate(list(pool.map(collect, bounds[:-1], bounds[1:])))
    m = len(found)
    rows, out, bits = found[:, 0], found[:, 1], found[:, 2]
    lo = int(out.min(initial=0))
    span = int(out.max(initial=0)) - lo + 1
    if n * span < 2**62:  # one int64 key: a radix sort, several times a lexsort's speed
        order = np.argsort(rows * span + (out - lo), kind="stable")
    else:
        order = np.lexsort((out, rows))
    rows, out, bits = rows[order], out[order], bits[order]
    starts = np.ones(m, bool)
    starts[1:] = (rows[1:] != rows[:-1]) | (out[1:] != out[:-1])
    first = np.flatnonzero(starts)
    gates = np.bitwise_or.reduceat(bits, first) if m else bits
    return rows[first], out[first], gates, after


_Source = tuple[np.ndarray, np.ndarray, np.ndarray, bool, int, int, np.ndarray]


def _sources(store: ProfileStore, timers: Timers) -> list[_Source]:
    """The data instants of each profile: (offsets, values, valid, sorted, scale, shift,
    feeds) per event time, timestamp or date column (a day: its first and last
    millisecond), and the definitions' literals as every profile's; ``feeds``: the specs
    they can move (an event's times only those of definitions reading its type)."""
    typed = store.events.type_field is not None
    return _sources_of(len(store), store.profiles.items(), [
        (p.types if typed else None, p.offsets, p.time, p.columns)
        for p in store.events.partitions], timers)


Partitions: TypeAlias = (
    "Iterable[tuple[tuple[str, ...] | None, np.ndarray, np.ndarray, Mapping[str, Column]]]")


def _sources_of(n: int, attributes: Iterable[tuple[str, Column]], partitions: Partitions,
                timers: Timers) -> list[_Source]:
    """`_sources` of ``n`` profiles with these attribute columns (by name) and event
    partitions ((types, offsets, time, columns) each; the columns may leave out all but the
    timestamp and date ones)."""
    none = np.zeros(0, np.bool_)
    out: list[_Source] = []
    every = timers.feeds(None)

    def adder(feeds: np.ndarray) -> Callable[..., None]:
        def add(offsets: np.ndarray, values: np.ndarray, valid: np.ndarray | None,
                is_sorted: bool, *, scale: int = 1, shift: int = 0) -> None:
            out.append((np.asarray(offsets, np.int64), np.asarray(values, np.int64),
                        none if valid is None else np.asarray(valid, np.bool_), is_sorted,
                        scale, shift, feeds))
        return add

    rows = np.arange(n + 1, dtype=np.int64)
    for name, col in attributes:
        feeds = timers.feeds_attribute(name)
        if holds_instants(col) and feeds.any():  # attributes no timed definition reads: none
            _scan_column(adder(feeds), rows, col)
    if len(timers.constants):
        adder(every)(rows * len(timers.constants), np.tile(timers.constants, n), None, False)
    for types, offsets, time, columns in partitions:
        feeds = timers.feeds(types)
        if not feeds.any():
            continue  # events no timed definition reads
        add = adder(feeds)
        add(offsets, time, None, True)
        for col in columns.values():
            _scan_column(add, offsets, col)
    return out


def next_change_one(timers: Timers, attributes: Iterable[tuple[str, Column]],
                    partitions: Partitions, x0: int) -> int:
    """`next_changes` of one profile given as its attribute columns (by name) and event partitions
    (see `_sources_of`): streaming's one-event path, without a store."""
    out = np.full(1, NEVER, np.int64)
    if len(timers.specs):
        x0s = np.full(1, x0, np.int64)
        for source in _sources_of(1, attributes, partitions, timers):
            _scan(*source, x0s, timers.specs, timers.how, out)
    return int(out[0])


def holds_instants(col: Column) -> bool:
    """Whether timers read a column's values: timestamps and dates, and lists of them."""
    return col.dtype.kind in (Kind.TIMESTAMP, Kind.DATE)


def _scan_column(scan: Callable[..., None], offsets: np.ndarray, col: Column) -> None:
    """Scan a timestamp or date column (the rest hold no instants); a list column's
    elements (a list keeps no nulls: a null list has none)."""
    if not holds_instants(col):
        return
    values, valid = col.values, col.valid
    if col.offsets is not None:  # row r's elements: offsets[r] .. offsets[r + 1] of values
        offsets, valid = np.asarray(col.offsets, np.int64)[offsets], None
    if col.dtype.kind is Kind.TIMESTAMP:
        scan(offsets, values, valid, False)
    else:  # a day stands for its first and last millisecond
        scan(offsets, values, valid, False, scale=DAY_MS)
        scan(offsets, values, valid, False, scale=DAY_MS, shift=DAY_MS - 1)


def next_midnight(x: int) -> int:
    return (x // DAY_MS + 1) * DAY_MS

