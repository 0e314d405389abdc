"""Facts about event queries and time conditions that both evaluators need.

The kernel generator (`engine.codegen`) and the vector tier (`engine.vector`) read a query
the same way: its filter conditions as conjuncts, the event types they allow (so that only
those partitions are read), and the time windows whose references are the same for every
profile (bound once per run, by `constant_window`).
"""

from __future__ import annotations

from typing import Any

from engine import ir
from engine.errors import EngineError
from engine.timeops import (
    DAY_MS,
    DIRECTIONS,
    OPS,
    UNITS,
    between_window,
    day_number,
    on_window,
    period_bounds,
    side_window,
    window,
)
from store.schema import DType, Kind

__all__ = [
    "STRING_FUNCTIONS",
    "conjoin",
    "conjuncts",
    "constant_reference",
    "constant_when",
    "constant_window",
    "element",
    "mentions_event",
    "partition_key",
    "types_of",
]


# The string functions with literal arguments, evaluated once per dictionary entry.
STRING_FUNCTIONS = frozenset({
    "equals", "notEqualTo", "startsWith", "doesNotStartWith", "endsWith", "doesNotEndWith",
    "contains", "doesNotContain", "like", "matches",
})


def conjoin(conds: list[ir.Expr]) -> ir.Expr:
    return conds[0] if len(conds) == 1 else ir.And(tuple(conds), dtype=DType(Kind.BOOL))


def conjuncts(c: ir.Expr) -> tuple[ir.Expr, ...]:
    return c.args if isinstance(c, ir.And) else (c,)


def element(t: Any) -> DType | None:
    """The element type of a list type (None for anything else)."""
    return t.element if isinstance(t, DType) else None


def mentions_event(node: ir.Node, var: str) -> bool:
    """Whether ``node`` reads a field of the event bound to ``var`` (or the implicit one)."""
    return any(isinstance(n, ir.EventField) and n.var in (var, "") for n in ir.walk(node))


def types_of(conj: ir.Expr, type_field: str, var: str) -> set[str] | None:
    """The event types a conjunct allows, if it is ``V.eventType = "x"`` or ``in [...]``."""
    def is_type(n: ir.Expr) -> bool:
        return isinstance(n, ir.EventField) and n.var == var and n.name == type_field

    if isinstance(conj, ir.Compare) and conj.op == "=":
        for a, b in ((conj.left, conj.right), (conj.right, conj.left)):
            if is_type(a) and isinstance(b, ir.Literal) and isinstance(b.value, str):
                return {b.value}
    if isinstance(conj, ir.Call) and conj.fn == "in" and is_type(conj.args[0]) \
            and isinstance(conj.args[1], ir.ListLit):
        items = conj.args[1].items
        if all(isinstance(x, ir.Literal) and isinstance(x.value, str) for x in items):
            return {str(x.value) for x in items if isinstance(x, ir.Literal)}
    return None


def partition_key(facts: list[tuple[ir.Expr, str]],
                  type_field: str | None) -> tuple[str, ...] | None:
    """The event types that (conjunct, event variable) facts restrict a query to, as the
    key of the partition to read (None: all types)."""
    if type_field is None:
        return None
    types: set[str] | None = None
    for conj, var in facts:
        found = types_of(conj, type_field, var)
        if found is not None:
            types = found if types is None else types & found
    return None if types is None else tuple(sorted(types))


def constant_when(when: ir.TimeCond) -> bool:
    """Whether a time condition's references are the same for every profile and event."""
    return all(_is_constant(r) for r in ir.children(when))


def _is_constant(node: ir.Node) -> bool:
    if isinstance(node, ir.Now | ir.Period | ir.Literal):
        return True
    if isinstance(node, ir.Call) and node.fn == "date":  # a day that exists: else per value
        return day_number(*(a.value if isinstance(a, ir.Literal) else None
                            for a in node.args)) is not None
    return False


def constant_window(when: ir.TimeCond, now_ms: int) -> tuple[int, ...]:
    """A `constant_when` condition at ``now_ms`` as five closed intervals of ms (lo, hi pairs,
    empty ones with lo > hi), `engine.timeops`' table."""
    if isinstance(when, ir.Within):
        s, e, inst = constant_reference(when.anchor, now_ms)
        return tuple(window(OPS[when.op], when.amount, UNITS[when.unit.value],
                            DIRECTIONS[when.direction], s, e, inst))
    if isinstance(when, ir.Side):
        s, e, inst = constant_reference(when.anchor, now_ms)
        return tuple(side_window(when.direction == "after", s, e, inst))
    if isinstance(when, ir.On):
        s, e, inst = constant_reference(when.anchor, now_ms)
        return tuple(on_window(s, e, inst))
    assert isinstance(when, ir.Between)
    s1, e1, i1 = constant_reference(when.lo, now_ms)
    s2, e2, i2 = constant_reference(when.hi, now_ms)
    return tuple(between_window(s1, e1, i1, s2, e2, i2))


def constant_reference(node: ir.Expr, now_ms: int) -> tuple[int, int, bool]:
    """(s, e, instant) of a constant time reference: an instant, or a day or period [s, e)."""
    if isinstance(node, ir.Now):
        return now_ms, now_ms, True
    if isinstance(node, ir.Period):
        s, e = period_bounds(node.offset, node.unit.value, now_ms)
        return s, e, False
    if isinstance(node, ir.Literal) and isinstance(node.value, int):
        return node.value, node.value, True
    if isinstance(node, ir.Call) and node.fn == "date":
        day = day_number(*(a.value if isinstance(a, ir.Literal) else None for a in node.args))
        if day is not None:
            return day * DAY_MS, (day + 1) * DAY_MS, False
    raise EngineError(f"not a constant time reference: {type(node).__name__}")
