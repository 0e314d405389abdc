"""The reference evaluator: docs/language.md, followed literally, in plain Python.

This is the oracle the compiled evaluator is property-tested against, so it is written to be
obviously right rather than fast: it walks the *checked* IR (`engine.check`) of one definition
for one profile, one small function per construct, each citing the section of
docs/language.md ("the doc") it implements.

Values (the doc's "Types"):

* null is ``None``; bool, int, float and string are the Python values;
* a timestamp is an int: milliseconds since 1970-01-01T00:00Z (UTC);
* a date is an int: days since 1970-01-01;
* a list is a Python list that never holds ``None`` ("Lists and nulls");
* events are a list of event dicts (field name → value), in time order;
* a selection is a `_Selection` (counted or tested lazily, never materialized);
* a period, a day and an instant used as a time reference are a `_Ref` interval.

The store hands out ``datetime`` / ``date`` objects; `evaluate` converts them (it also
accepts values already converted). `run` evaluates a set of definitions over a whole store.

Where the doc left a choice open, the choice is marked "AMBIGUITY" in a comment.
"""

from __future__ import annotations

import datetime as dt
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import engine
from engine import ir
from engine.types import Special
from store.schema import DType, Kind, Schema

__all__ = ["evaluate", "run"]

DAY_MS = 86_400_000
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_CYCLE_DAYS = 146_097  # the Gregorian calendar repeats every 400 years = 146,097 days
_MS = dt.timedelta(milliseconds=1)

Event = dict[str, Any]


# ================================================================ public API


def evaluate(
    expr: ir.Expr,
    attributes: Mapping[str, Any],
    events: Iterable[Mapping[str, Any]],
    *,
    now_ms: int,
    schema: Schema,
    segments: Mapping[str, bool] | None = None,
) -> bool:
    """Whether one profile is in the segment ``expr`` (checked IR) at the instant ``now_ms``.

    ``attributes`` and ``events`` are as `ProfileStore.profile` returns them (datetimes and
    dates are converted; ints are taken as already converted). Missing attributes and event
    fields are null. ``segments`` gives the membership of this profile in the segments that
    ``inSegment`` refers to.
    """
    attrs = _normalize_attributes(attributes, schema)
    history = _normalize_events(events, schema)
    return _evaluate(expr, attrs, history, now_ms, segments)


def run(store: Any, definitions: Mapping[str, str], *, at_ms: int) -> dict[str, set[Any]]:
    """Evaluate every definition for every profile of ``store`` at ``at_ms``.

    Each definition is checked against ``store.schema`` (with the definitions' names as the
    segments ``inSegment`` may name); referenced segments are evaluated first ("Segment
    references"). Returns, per segment name, the set of member profile keys.
    """
    checked = {
        name: engine.check(text, store.schema, segments=definitions)
        for name, text in definitions.items()
    }
    order = _dependency_order(checked)
    members: dict[str, set[Any]] = {name: set() for name in definitions}
    for key in store.keys.to_pylist():
        profile = store.profile(key)
        attrs = _normalize_attributes(profile["attributes"], store.schema)
        history = _normalize_events(profile["events"], store.schema)
        verdicts: dict[str, bool] = {}
        for name in order:
            verdicts[name] = _evaluate(checked[name], attrs, history, at_ms, verdicts)
            if verdicts[name]:
                members[name].add(key)
    return members


def _dependency_order(checked: Mapping[str, ir.Expr]) -> list[str]:
    """Names with every referenced segment before its referrers; a cycle is an error."""
    order: list[str] = []
    state: dict[str, str] = {}  # "visiting" or "done"

    def visit(name: str, path: tuple[str, ...]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise ValueError("segment reference cycle: " + " → ".join((*path, name)))
        state[name] = "visiting"
        for node in ir.walk(checked[name]):
            if isinstance(node, ir.SegmentRef):
                visit(node.name, (*path, name))
        state[name] = "done"
        order.append(name)

    for name in checked:
        visit(name, ())
    return order


# ================================================================ values from the store


def _to_ms(v: Any) -> int:
    """A timestamp as epoch milliseconds (a zone-less datetime is taken as UTC)."""
    if isinstance(v, dt.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=dt.UTC)
        ms: int = (v - _EPOCH) // _MS
        return ms
    return int(v)


def _to_days(v: Any) -> int:
    """A date as days since the epoch."""
    if isinstance(v, dt.datetime):
        raise TypeError(f"a date field holds a datetime: {v!r}")
    if isinstance(v, dt.date):
        return v.toordinal() - _EPOCH_ORDINAL
    return int(v)


def _scalar(v: Any, kind: Kind) -> Any:
    if kind is Kind.TIMESTAMP:
        return _to_ms(v)
    if kind is Kind.DATE:
        return _to_days(v)
    if kind is Kind.FLOAT:
        return float(v)
    return v


def _normalize(v: Any, dtype: DType) -> Any:
    if v is None:
        return None
    if dtype.is_list:  # "Lists and nulls": a list never holds null
        return [_scalar(x, dtype.kind) for x in v if x is not None]
    return _scalar(v, dtype.kind)


def _normalize_attributes(attributes: Mapping[str, Any], schema: Schema) -> dict[str, Any]:
    return {n: _normalize(attributes.get(n), f.dtype) for n, f in schema.profile.items()}


def _normalize_events(events: Iterable[Mapping[str, Any]], schema: Schema) -> list[Event]:
    out = [{n: _normalize(e.get(n), f.dtype) for n, f in schema.events.items()} for e in events]
    # "Overview": events in time order, ties in their given (stored) order; sorted is stable.
    # (An event without a time sorts first; the store never produces one.)
    time = schema.event_time
    if time is not None:
        out.sort(key=lambda e: (e[time] is not None, e[time] or 0))
    return out


# ================================================================ calendar (UTC, proleptic)


def _civil(days: int) -> tuple[int, int, int]:
    """(year, month, day) of a day number, for any year (shifted by 400-year cycles)."""
    cycles, rest = divmod(days + _EPOCH_ORDINAL - 1, _CYCLE_DAYS)
    d = dt.date.fromordinal(rest + 1)  # years 1..400
    return d.year + 400 * cycles, d.month, d.day


def _day_number(year: int, month: int, day: int) -> int | None:
    """Days since the epoch of a calendar day; None when there is no such day."""
    cycles, year_in_cycle = divmod(year - 1, 400)
    try:
        d = dt.date(year_in_cycle + 1, month, day)
    except ValueError:
        return None
    return d.toordinal() + cycles * _CYCLE_DAYS - _EPOCH_ORDINAL


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _add(ms: int, k: int, unit: ir.TimeUnit) -> int:
    """``ms + k units`` ("occurs", form 1): fixed lengths, or calendar months and years.

    ``a - N months`` is the same day of the month and time of day N months earlier, clamped
    to the end of a shorter month; years likewise; computed in one step.
    """
    if unit.ms is not None:
        return ms + k * unit.ms
    days, time_of_day = divmod(ms, DAY_MS)
    year, month, day = _civil(days)
    months = k * (12 if unit is ir.TimeUnit.YEAR else 1)
    new_year, month0 = divmod(year * 12 + (month - 1) + months, 12)
    new_month = month0 + 1
    new_day = min(day, _days_in_month(new_year, new_month))
    number = _day_number(new_year, new_month, new_day)
    assert number is not None
    return number * DAY_MS + time_of_day


# ================================================================ evaluation context


class _Ctx:
    """What an expression sees: the profile, ``now``, and the events bound to variables.

    ``bound[""]`` is the implicit event of a filter, chain step or aggregate argument
    ("Names and scopes"); ``bound["X"]`` the event a clause binds to ``X``.
    """

    __slots__ = ("attributes", "bound", "events", "now_ms", "segments")

    def __init__(
        self,
        attributes: Mapping[str, Any],
        events: list[Event],
        now_ms: int,
        segments: Mapping[str, bool] | None,
        bound: Mapping[str, Event],
    ) -> None:
        self.attributes = attributes
        self.events = events
        self.now_ms = now_ms
        self.segments = segments
        self.bound = bound

    def bind(self, var: str, event: Event) -> _Ctx:
        return _Ctx(
            self.attributes, self.events, self.now_ms, self.segments, {**self.bound, var: event}
        )


def _evaluate(
    expr: ir.Expr,
    attributes: Mapping[str, Any],
    events: list[Event],
    now_ms: int,
    segments: Mapping[str, bool] | None,
) -> bool:
    # "Overview": the value of the whole definition is taken as a condition.
    return _cond(expr, _Ctx(attributes, events, now_ms, segments, {}))


def _value(node: ir.Expr, ctx: _Ctx) -> Any:
    return _EVAL[type(node)](node, ctx)


# ================================================================ condition position


def _cond(node: ir.Expr, ctx: _Ctx) -> bool:
    """The truth of ``node`` in condition position ("Condition position")."""
    return _truth(_value(node, ctx), node.dtype)


def _truth(v: Any, dtype: Any) -> bool:
    if dtype is Special.EVENTS:  # at least one event
        return len(v) > 0
    if dtype is Special.SELECTION:  # at least one tuple
        return bool(v.nonempty())
    if v is None:  # null is false, whatever the type
        return False
    assert isinstance(dtype, DType), dtype
    if dtype.is_list:  # present and not empty
        return len(v) > 0
    if dtype.kind is Kind.BOOL:
        return v is True
    return True  # int, float, string, timestamp, date: present, whatever the value


# ================================================================ leaves


def _literal(node: ir.Literal, ctx: _Ctx) -> Any:
    # Literal coercion happened at check time; a timestamp literal's value is already ms.
    return node.value


def _list_literal(node: ir.ListLit, ctx: _Ctx) -> list[Any]:
    # "Literals": null elements are dropped; ints and floats mix into a list<float>.
    items = [v for v in (_value(x, ctx) for x in node.items) if v is not None]
    if isinstance(node.dtype, DType) and node.dtype.kind is Kind.FLOAT:
        items = [float(v) for v in items]
    return items


def _attr(node: ir.Attr, ctx: _Ctx) -> Any:
    return ctx.attributes.get(node.name)  # a missing attribute is null


def _event_field(node: ir.EventField, ctx: _Ctx) -> Any:
    return ctx.bound[node.var].get(node.name)  # a field the event lacks is null


def _events(node: ir.Events, ctx: _Ctx) -> list[Event]:
    return ctx.events  # "xEvent": all the profile's events, in time order


def _now(node: ir.Now, ctx: _Ctx) -> int:
    return ctx.now_ms


def _period_value(node: ir.Period, ctx: _Ctx) -> _Ref:
    return _period(node.offset, node.unit, ctx.now_ms)


def _segment_ref(node: ir.SegmentRef, ctx: _Ctx) -> bool:
    # "Segment references": membership at the same instant, evaluated before (run() orders).
    if ctx.segments is None or node.name not in ctx.segments:
        raise KeyError(f"inSegment({node.name!r}): no verdict given for that segment")
    return bool(ctx.segments[node.name])


# ================================================================ logic ("Logical operators")


def _not(node: ir.Not, ctx: _Ctx) -> bool:
    return not _cond(node.arg, ctx)  # null became false first, then the negation


def _and(node: ir.And, ctx: _Ctx) -> bool:
    return all(_cond(a, ctx) for a in node.args)


def _or(node: ir.Or, ctx: _Ctx) -> bool:
    return any(_cond(a, ctx) for a in node.args)


# ================================================================ comparisons ("Comparisons")

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _compare_scalars(op: str, x: Any, y: Any, xkind: Kind, ykind: Kind) -> bool:
    """``x op y`` for two present single values of the kinds the checker inferred."""
    # A date against a timestamp stands for its first instant, midnight UTC.
    if xkind is Kind.DATE and ykind is Kind.TIMESTAMP:
        x = x * DAY_MS
    elif xkind is Kind.TIMESTAMP and ykind is Kind.DATE:
        y = y * DAY_MS
    # An int compared with a float is converted to float (IEEE 754: NaN equals nothing).
    elif isinstance(x, float) or isinstance(y, float):
        x, y = float(x), float(y)
    return _COMPARE[op](x, y)


def _compare(node: ir.Compare, ctx: _Ctx) -> bool:
    x, y = _value(node.left, ctx), _value(node.right, ctx)
    if x is None or y is None:  # "Values and nulls": a null operand makes it false
        return False
    lt, rt = node.left.dtype, node.right.dtype
    assert isinstance(lt, DType) and isinstance(rt, DType)
    if lt.is_list and rt.is_list:  # as lists: same length, equal elements in the same order
        same = len(x) == len(y) and all(
            _compare_scalars("=", a, b, lt.kind, rt.kind) for a, b in zip(x, y, strict=True)
        )
        return same if node.op == "=" else not same
    if lt.is_list:  # a list on the left: some element satisfies the comparison
        return any(_compare_scalars(node.op, a, y, lt.kind, rt.kind) for a in x)
    return _compare_scalars(node.op, x, y, lt.kind, rt.kind)


# ================================================================ arithmetic ("Arithmetic")


def _wrap(n: int) -> int:
    """An int64 result: overflow wraps around (two's complement)."""
    return (n - INT64_MIN) % 2**64 + INT64_MIN


def _int_remainder(a: int, b: int) -> int:
    """Truncated remainder, with the sign of the dividend (-7 % 3 = -1, 7 % -3 = 1)."""
    r = abs(a) % abs(b)
    return -r if a < 0 else r


def _float_remainder(a: float, b: float) -> float:
    """C ``fmod``: the sign of the dividend. (Python raises where C gives NaN: inf % x.)"""
    try:
        return math.fmod(a, b)
    except ValueError:
        return math.nan


_INT_OPS: dict[str, Callable[[int, int], int]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
}
_FLOAT_OPS: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
}


def _arith(node: ir.Arith, ctx: _Ctx) -> int | float | None:
    a, b = _value(node.left, ctx), _value(node.right, ctx)
    if a is None or b is None:  # a null operand gives null
        return None
    if node.op in ("/", "%") and b == 0:  # division or modulo by 0 or 0.0: null
        return None
    if node.dtype == DType(Kind.INT):  # int op int (never "/": it always gives a float)
        if node.op == "%":
            return _wrap(_int_remainder(a, b))
        return _wrap(_INT_OPS[node.op](a, b))
    # A float involved, or "/": IEEE 754 on the operands converted to float.
    # AMBIGUITY: for int / int the doc says only "float"; here both ints are converted to
    # float first and divided (what a compiled float division does), not rounded exactly.
    x, y = float(a), float(b)
    if node.op == "%":
        return _float_remainder(x, y)
    return _FLOAT_OPS[node.op](x, y)


def _neg(node: ir.Neg, ctx: _Ctx) -> int | float | None:
    a = _value(node.arg, ctx)
    if a is None:
        return None
    return -a if isinstance(a, float) else _wrap(-a)  # wraps for the smallest int64


# ================================================================ lists ("Lists", "Membership")


class _Lookup:
    """``x in L`` with the equality of ``=``, in O(1) per lookup.

    Equality of numbers: two ints exactly; an int and a float after converting to float;
    NaN equals nothing. Strings and bools: themselves.
    """

    def __init__(self, values: list[Any]) -> None:
        self.exact = {v for v in values if not isinstance(v, float)}  # ints, strings, bools
        self.floats = {v for v in values if isinstance(v, float) and not math.isnan(v)}
        self.ints_as_floats = {float(v) for v in values if type(v) is int}

    def __contains__(self, x: Any) -> bool:
        if isinstance(x, float):
            return not math.isnan(x) and (x in self.floats or x in self.ints_as_floats)
        if type(x) is int:
            return x in self.exact or float(x) in self.floats
        return x in self.exact


def _membership(node: ir.Call, ctx: _Ctx) -> bool:
    """``x in L``, ``x notIn L``, ``L.includes(x)`` (the checker stores (L, x) for includes)."""
    item, coll = node.args if node.fn != "includes" else reversed(node.args)
    x, values = _value(item, ctx), _value(coll, ctx)
    if x is None or values is None:  # both forms need both operands present
        return False
    lookup = _Lookup(values)
    wanted = node.fn != "notIn"  # in / includes: is an element; notIn: is not
    assert isinstance(item.dtype, DType)
    if item.dtype.is_list:  # a list on the left: "some element"
        return any((v in lookup) == wanted for v in x)
    return (x in lookup) == wanted


def _set_function(node: ir.Call, ctx: _Ctx) -> bool:
    """``A.intersects(B)``, ``A.subsetOf(B)``, ``A.supersetOf(B)``; a null operand: false."""
    a, b = (_value(x, ctx) for x in node.args)
    if a is None or b is None:
        return False
    if node.fn == "intersects":  # some element of A is in B
        in_b = _Lookup(b)
        return any(v in in_b for v in a)
    if node.fn == "subsetOf":  # every element of A is in B (true for an empty A)
        in_b = _Lookup(b)
        return all(v in in_b for v in a)
    in_a = _Lookup(a)  # supersetOf: every element of B is in A
    return all(v in in_a for v in b)


def _distinct(node: ir.Call, ctx: _Ctx) -> list[Any] | None:
    """``L.distinct()``: without repeats, first occurrences in order; null for a null list."""
    values = _value(node.args[0], ctx)
    if values is None:
        return None
    out: list[Any] = []
    seen: set[Any] = set()
    for v in values:
        if isinstance(v, float) and math.isnan(v):
            out.append(v)  # NaN equals nothing, so no NaN repeats another one
        elif v not in seen:
            seen.add(v)
            out.append(v)
    return out


# ================================================================ aggregates ("Aggregates")


def _count(node: ir.Call, ctx: _Ctx) -> int:
    receiver = node.args[0]
    v = _value(receiver, ctx)
    if receiver.dtype is Special.SELECTION:
        return int(v.count())
    return 0 if v is None else len(v)  # events, or a list (0 for a missing list)


def _aggregated_values(node: ir.Call, ctx: _Ctx) -> list[Any]:
    """The values an aggregate takes, nulls skipped ("Aggregates over events")."""
    receiver = node.args[0]
    if receiver.dtype is Special.EVENTS:  # the argument, for each event as the implicit one
        values = [_value(node.args[1], ctx.bind("", e)) for e in _value(receiver, ctx)]
    else:
        values = _value(receiver, ctx) or []  # a list; a missing list aggregates nothing
    return [v for v in values if v is not None]


def _sum(node: ir.Call, ctx: _Ctx) -> int | float:
    values = _aggregated_values(node, ctx)
    if node.dtype == DType(Kind.INT):
        return _wrap(sum(values))  # 0 over nothing; int sums wrap
    total = 0.0
    for v in values:  # left to right, as a loop adds
        total += float(v)
    return total


def _average(node: ir.Call, ctx: _Ctx) -> float | None:
    values = _aggregated_values(node, ctx)
    if not values:
        return None  # null over nothing
    if all(type(v) is int for v in values):
        mean: float = sum(values) / len(values)  # the exact sum, divided once: correctly rounded
        return mean
    total = 0.0
    for v in values:
        total += float(v)
    return total / len(values)


def _min_max(node: ir.Call, ctx: _Ctx) -> Any:
    values = _aggregated_values(node, ctx)
    if not values:
        return None  # null over nothing
    # Numbers, timestamps (ms) or dates (days): all plain Python numbers here.
    return min(values) if node.fn == "min" else max(values)


# ================================================================ strings ("Strings")

_STRING_TESTS: dict[str, Callable[[str, str], bool]] = {
    "equals": lambda s, t: s == t,
    "notEqualTo": lambda s, t: s != t,
    "startsWith": lambda s, t: s.startswith(t),
    "doesNotStartWith": lambda s, t: not s.startswith(t),
    "endsWith": lambda s, t: s.endswith(t),
    "doesNotEndWith": lambda s, t: not s.endswith(t),
    "contains": lambda s, t: t in s,
    "doesNotContain": lambda s, t: t not in s,
}


def _some(receiver: ir.Expr, s: Any, test: Callable[[str], bool]) -> bool:
    """A string predicate on a string, or on "some element" of a list of strings."""
    assert isinstance(receiver.dtype, DType)
    if receiver.dtype.is_list:
        return any(test(x) for x in s)
    return test(s)


def _string_function(node: ir.Call, ctx: _Ctx) -> bool:
    """equals, startsWith, ..., and the negative ones: false when either operand is null."""
    s, t = _value(node.args[0], ctx), _value(node.args[1], ctx)
    if s is None or t is None:
        return False
    case_sensitive = True
    if len(node.args) == 3:
        flag = node.args[2]
        assert isinstance(flag, ir.Literal)
        case_sensitive = bool(flag.value)
    test = _STRING_TESTS[node.fn]
    if case_sensitive:
        return _some(node.args[0], s, lambda x: test(x, t))
    # false: compare after full Unicode case folding of both strings
    folded = t.casefold()
    return _some(node.args[0], s, lambda x: test(x.casefold(), folded))


def _like_matches(s: str, pattern: str) -> bool:
    """The whole of ``s`` matches: ``%`` any run, ``_`` one character, else itself; no escape.

    Dynamic programming over the set of positions of ``s`` reachable after each pattern
    character: O(len(s) * len(pattern)), never backtracking.
    """
    reachable = {0}
    for ch in pattern:
        if not reachable:
            return False
        if ch == "%":
            reachable = set(range(min(reachable), len(s) + 1))
        elif ch == "_":
            reachable = {i + 1 for i in reachable if i < len(s)}
        else:
            reachable = {i + 1 for i in reachable if i < len(s) and s[i] == ch}
    return len(s) in reachable


def _pattern(node: ir.Call) -> str:
    lit = node.args[1]
    assert isinstance(lit, ir.Literal) and isinstance(lit.value, str)
    return lit.value


def _like(node: ir.Call, ctx: _Ctx) -> bool:
    s = _value(node.args[0], ctx)
    if s is None:
        return False
    pattern = _pattern(node)
    return _some(node.args[0], s, lambda x: _like_matches(x, pattern))


# AMBIGUITY: the doc gives the regex syntax as "the common one of Perl, Python and RE2" and
# find semantics; it does not say which engine's details apply where they differ (`$` before a
# trailing newline, Unicode `\d`/`\w`/`\s`/`\b`). Python's `re` is used here: `re.search`.


def _matches(node: ir.Call, ctx: _Ctx) -> bool:
    s = _value(node.args[0], ctx)
    if s is None:
        return False
    regex = re.compile(_pattern(node))
    return _some(node.args[0], s, lambda x: regex.search(x) is not None)  # "somewhere"


def _regex_group(node: ir.Call, ctx: _Ctx) -> str | None:
    s = _value(node.args[0], ctx)
    if s is None:
        return None
    group = node.args[2]
    assert isinstance(group, ir.Literal) and isinstance(group.value, int)
    match = re.search(_pattern(node), s)  # the first match
    if match is None:
        return None  # no match
    result: str | None = match.group(group.value)  # None: the group did not take part
    return result


# ================================================================ other functions


def _null_test(node: ir.Call, ctx: _Ctx) -> bool:
    # "Null tests": an empty list is present; struct paths were rewritten by the checker.
    is_null = _value(node.args[0], ctx) is None
    return is_null if node.fn == "isNull" else not is_null


def _civil_of(v: int, dtype: Any) -> tuple[int, int, int]:
    assert isinstance(dtype, DType)
    return _civil(v if dtype.kind is Kind.DATE else v // DAY_MS)  # UTC day of a timestamp


def _date_part(node: ir.Call, ctx: _Ctx) -> int | None:
    v = _value(node.args[0], ctx)
    if v is None:
        return None
    year, month, day = _civil_of(v, node.args[0].dtype)
    return {"getYear": year, "getMonth": month, "getDayOfMonth": day}[node.fn]


def _current(node: ir.Call, ctx: _Ctx) -> int:
    year, month, day = _civil(ctx.now_ms // DAY_MS)  # of `now`, in UTC
    return {"currentYear": year, "currentMonth": month, "currentDayOfMonth": day}[node.fn]


def _date(node: ir.Call, ctx: _Ctx) -> int | None:
    """``date(y, m, d)``: the day; null if an argument is null or the day does not exist.

    AMBIGUITY: the doc does not bound the year; this uses the proleptic Gregorian calendar
    for every year (year 0 and negative years included, astronomical numbering).
    """
    y, m, d = (_value(a, ctx) for a in node.args)
    if y is None or m is None or d is None:
        return None
    return _day_number(y, m, d)


def _if(node: ir.Call, ctx: _Ctx) -> Any:
    """``if(test, a, b)``: a when the test is true, else b (a null test gives b)."""
    test, a, b = node.args
    v = _value(a, ctx) if _cond(test, ctx) else _value(b, ctx)
    if v is not None and node.dtype == DType(Kind.FLOAT):
        v = float(v)  # ints and floats mix to float
    return v


_CALLS: dict[str, Callable[[ir.Call, _Ctx], Any]] = {
    **dict.fromkeys(_STRING_TESTS, _string_function),
    "like": _like,
    "matches": _matches,
    "regexGroup": _regex_group,
    "isNull": _null_test,
    "isNotNull": _null_test,
    "in": _membership,
    "notIn": _membership,
    "includes": _membership,
    "intersects": _set_function,
    "subsetOf": _set_function,
    "supersetOf": _set_function,
    "distinct": _distinct,
    "count": _count,
    "sum": _sum,
    "average": _average,
    "min": _min_max,
    "max": _min_max,
    "getYear": _date_part,
    "getMonth": _date_part,
    "getDayOfMonth": _date_part,
    "currentYear": _current,
    "currentMonth": _current,
    "currentDayOfMonth": _current,
    "date": _date,
    "if": _if,
}


def _call(node: ir.Call, ctx: _Ctx) -> Any:
    return _CALLS[node.fn](node, ctx)


# ================================================================ time ("Time")


@dataclass(frozen=True)
class _Ref:
    """A time reference: an instant (``s == e == r``) or an interval ``[s, e)``."""

    instant: bool
    s: int
    e: int


def _period(offset: int, unit: ir.TimeUnit, now_ms: int) -> _Ref:
    """The calendar UNIT containing ``now``, moved by ``offset`` units ("Periods"), in UTC."""
    if unit is ir.TimeUnit.WEEK:  # weeks start on Monday (ISO 8601)
        day = now_ms // DAY_MS
        monday = day - (day + 3) % 7  # day 0, 1970-01-01, was a Thursday (weekday 3)
        start = (monday + 7 * offset) * DAY_MS
        return _Ref(False, start, start + 7 * DAY_MS)
    if unit.ms is not None:  # millisecond ... day: fixed lengths aligned on the epoch
        start = (now_ms // unit.ms + offset) * unit.ms
        return _Ref(False, start, start + unit.ms)
    year, month, _ = _civil(now_ms // DAY_MS)
    first = _day_number(year, month, 1) if unit is ir.TimeUnit.MONTH else _day_number(year, 1, 1)
    assert first is not None
    start = _add(first * DAY_MS, offset, unit)  # the first day of a month / year stays first
    return _Ref(False, start, _add(start, 1, unit))


def _reference(node: ir.Expr, ctx: _Ctx) -> _Ref | None:
    """A time reference ("Instants, days and periods"); None when it is null."""
    v = _value(node, ctx)
    if v is None:
        return None
    if node.dtype is Special.PERIOD:
        assert isinstance(v, _Ref)
        return v
    assert isinstance(node.dtype, DType)
    if node.dtype.kind is Kind.DATE:  # a day: [midnight UTC, next midnight)
        return _Ref(False, v * DAY_MS, (v + 1) * DAY_MS)
    return _Ref(True, v, v)  # a timestamp: the instant


def _before_row(t: int, a: int, op: str, n: int, unit: ir.TimeUnit) -> bool:
    """Form 1, direction ``before``: ``t <= a`` and the bound of the doc's table."""
    if not t <= a:
        return False
    lo = _add(a, -n, unit)  # a - N u
    if op == "<":
        return lo < t
    if op == "<=":
        return lo <= t
    if op == ">":
        return t < lo
    if op == ">=":
        return t <= lo
    in_bucket = _add(a, -(n + 1), unit) < t <= lo  # a - (N+1) u < t <= a - N u
    return in_bucket if op == "=" else not in_bucket


def _after_row(t: int, a: int, op: str, n: int, unit: ir.TimeUnit) -> bool:
    """Form 1, direction ``after``: ``t >= a`` and the bound of the doc's table."""
    if not t >= a:
        return False
    hi = _add(a, n, unit)  # a + N u
    if op == "<":
        return t < hi
    if op == "<=":
        return t <= hi
    if op == ">":
        return t > hi
    if op == ">=":
        return t >= hi
    in_bucket = hi <= t < _add(a, n + 1, unit)  # a + N u <= t < a + (N+1) u
    return in_bucket if op == "=" else not in_bucket


def _zero_distance_satisfies(op: str, n: int) -> bool:
    """Whether a distance of 0 satisfies ``OP N u``.

    AMBIGUITY: the doc's parenthesis says "true for <, <=, and for = with N = 0", which
    disagrees with the literal rule for ``< 0`` (0 < 0 is false), ``>= 0`` (true) and
    ``!= N`` with N > 0 (true). The rule itself ("a distance of 0 satisfies OP N u") is
    followed here: the bucket of ``=`` is [N u, (N+1) u) and ``!=`` is outside it.
    """
    return {
        "<": n > 0,  # 0 < N u
        "<=": True,
        ">": False,
        ">=": n == 0,
        "=": n == 0,
        "!=": n != 0,
    }[op]


def _within(t: int, cond: ir.Within, ref: _Ref) -> bool:
    """Form 1, ``occurs OP N UNIT before|after|from R``."""
    op, n, unit = cond.op, cond.amount, cond.unit
    if cond.direction == "before":  # anchor r, or the start s of a day or period
        return _before_row(t, ref.s, op, n, unit)
    if cond.direction == "after":  # anchor r, or the end e of a day or period
        return _after_row(t, ref.e, op, n, unit)
    # from: the before row at s (or r), the after row at e (or r), or inside [s, e)
    if _before_row(t, ref.s, op, n, unit) or _after_row(t, ref.e, op, n, unit):
        return True
    return not ref.instant and ref.s < t < ref.e and _zero_distance_satisfies(op, n)


def _references(cond: ir.TimeCond, ctx: _Ctx) -> list[_Ref] | None:
    """The references of a time condition, evaluated once; None when one of them is null."""
    anchors = [cond.lo, cond.hi] if isinstance(cond, ir.Between) else [cond.anchor]  # type: ignore[attr-defined]
    refs = [_reference(a, ctx) for a in anchors]
    present = [r for r in refs if r is not None]
    return present if len(present) == len(refs) else None


def _time_holds(t: int, cond: ir.TimeCond, refs: list[_Ref]) -> bool:
    """Whether the instant ``t`` satisfies the time condition with these references."""
    if isinstance(cond, ir.Within):  # form 1
        return _within(t, cond, refs[0])
    if isinstance(cond, ir.Side):  # form 2
        ref = refs[0]
        if cond.direction == "before":
            return t < ref.s  # t < r, or t < s
        return t > ref.s if ref.instant else t >= ref.e  # t > r, or t >= e
    if isinstance(cond, ir.On):  # form 3
        ref = refs[0]
        return t == ref.s if ref.instant else ref.s <= t < ref.e  # the same ms, or inside
    assert isinstance(cond, ir.Between)  # form 4, inclusive of both references
    lo, hi = refs
    if not lo.s <= t:  # t >= r1, or t >= s1
        return False
    return t <= hi.s if hi.instant else t < hi.e  # t <= r2, or t < e2


def _instants(subject: ir.Expr, v: Any) -> list[int]:
    """The instants of an occurs subject: a timestamp, a date's midnight, or each element."""
    assert isinstance(subject.dtype, DType)
    values = v if subject.dtype.is_list else [v]
    if subject.dtype.kind is Kind.DATE:
        return [d * DAY_MS for d in values]
    return list(values)


def _occurs(node: ir.Occurs, ctx: _Ctx) -> bool:
    v = _value(node.subject, ctx)
    if v is None:
        return False  # a null subject
    refs = _references(node.when, ctx)
    if refs is None:
        return False  # a null reference
    return any(_time_holds(t, node.when, refs) for t in _instants(node.subject, v))  # some element


# ================================================================ event queries


def _filter(node: ir.Filter, ctx: _Ctx) -> list[Event]:
    """``E[c]``: the events of E for which c holds, in order ("Filters")."""
    return [e for e in _value(node.source, ctx) if _cond(node.cond, ctx.bind("", e))]


def _member(node: ir.Member, ctx: _Ctx) -> list[Any]:
    """``E.f``: f over the events, in order, leaving out those that lack it ("Field lists")."""
    values = (e.get(node.name) for e in _value(node.obj, ctx))
    return [v for v in values if v is not None]


class _Selection:
    """``select V1 from S1 [where C1], ...``: a filtered cross product ("select, exists, forall").

    Never materialized: counted, or tested for a first tuple, by walking the clauses.
    """

    def __init__(self, clauses: tuple[ir.Clause, ...], ctx: _Ctx) -> None:
        self.clauses = clauses
        self.ctx = ctx

    def count(self) -> int:
        return _count_tuples(self.clauses, self.ctx)

    def nonempty(self) -> bool:
        return _exists(self.clauses, self.ctx)


def _bindings(clause: ir.Clause, ctx: _Ctx) -> Iterable[_Ctx]:
    """The contexts binding ``clause.var`` to each event of its source (the source sees the
    variables bound to its left)."""
    for event in _value(clause.source, ctx):
        yield ctx.bind(clause.var, event)


def _holds(clause: ir.Clause, ctx: _Ctx) -> bool:
    return clause.cond is None or _cond(clause.cond, ctx)  # a missing where is true


def _exists(clauses: tuple[ir.Clause, ...], ctx: _Ctx) -> bool:
    """∃v1 ∈ S1 (C1 ∧ ∃v2 ∈ S2 (C2 ∧ ...))."""
    if not clauses:
        return True
    first, rest = clauses[0], clauses[1:]
    return any(_holds(first, inner) and _exists(rest, inner) for inner in _bindings(first, ctx))


def _forall(clauses: tuple[ir.Clause, ...], ctx: _Ctx) -> bool:
    """∀v1 ∈ S1 (C1 ∧ ∀v2 ∈ S2 (C2 ∧ ...)): true when there are no events."""
    if not clauses:
        return True
    first, rest = clauses[0], clauses[1:]
    return all(_holds(first, inner) and _forall(rest, inner) for inner in _bindings(first, ctx))


def _count_tuples(clauses: tuple[ir.Clause, ...], ctx: _Ctx) -> int:
    """The number of tuples (v1, v2, ...) with every Ci true."""
    if not clauses:
        return 1
    first, rest = clauses[0], clauses[1:]
    return sum(
        _count_tuples(rest, inner) for inner in _bindings(first, ctx) if _holds(first, inner)
    )


def _select(node: ir.Select, ctx: _Ctx) -> Any:
    if node.quantifier is ir.Quantifier.EXISTS:
        return _exists(node.clauses, ctx)
    if node.quantifier is ir.Quantifier.FORALL:
        return _forall(node.clauses, ctx)
    return _Selection(node.clauses, ctx)


def _step_matches(step: ir.Step, event: Event, time: int, ctx: _Ctx) -> bool:
    """WHAT, WHERE and WHEN all true for the event (the step's implicit event)."""
    inner = ctx.bind("", event)
    if not _cond(step.what, inner):
        return False
    if step.where is not None and not _cond(step.where, inner):
        return False
    if step.when is not None:  # the right-hand side of occurs, on the event's TIME
        refs = _references(step.when, inner)
        if refs is None or not _time_holds(time, step.when, refs):
            return False
    return True


def _chain(node: ir.Chain, ctx: _Ctx) -> bool:
    """``chain(SOURCE, TIME, [steps])`` evaluated as the doc says: greedily, earliest first.

    Step 1 is completed by the n1-th matching event in TIME order; step i+1 then considers
    only events with a TIME strictly greater than that completing event's, and so on. Events
    without a TIME never match.
    """
    field = node.time_field
    timed = [e for e in _value(node.source, ctx) if e.get(field) is not None]
    timed.sort(key=lambda e: e[field])  # stable: ties keep the events' order
    after: int | None = None  # the TIME that completed the previous step
    for step in node.steps:
        matched, completed = 0, None
        for event in timed:
            time = event[field]
            if after is not None and time <= after:
                continue
            if _step_matches(step, event, time, ctx):
                matched += 1
                if matched == step.count:
                    completed = time
                    break
        if completed is None:
            return False
        after = completed
    return True


# ================================================================ dispatch

_EVAL: dict[type, Callable[[Any, _Ctx], Any]] = {
    ir.Literal: _literal,
    ir.ListLit: _list_literal,
    ir.Attr: _attr,
    ir.EventField: _event_field,
    ir.Events: _events,
    ir.Now: _now,
    ir.Period: _period_value,
    ir.SegmentRef: _segment_ref,
    ir.Not: _not,
    ir.And: _and,
    ir.Or: _or,
    ir.Compare: _compare,
    ir.Arith: _arith,
    ir.Neg: _neg,
    ir.Call: _call,
    ir.Occurs: _occurs,
    ir.Filter: _filter,
    ir.Member: _member,
    ir.Select: _select,
    ir.Chain: _chain,
}
