"""Push ``not`` down to the predicates it negates."""

from __future__ import annotations

from typing import Any

from engine import ir
from engine.passes._common import CONDITION_FIELDS, bool_literal, is_predicate
from engine.types import BOOL
from store.schema import DType, Kind

_OPPOSITE_NULL_TEST = {"isNull": "isNotNull", "isNotNull": "isNull"}


def negation_normal_form(expr: ir.Expr) -> ir.Expr:
    """Rewrite so that ``not`` applies only to predicates (comparisons, calls, event queries).

    De Morgan's laws move ``not`` through and/or; ``not not x`` is ``x`` in a condition;
    ``not x.isNull()`` is ``x.isNotNull()``. A comparison under ``not`` is flipped only when
    neither side can be null: ``not (age > 30)`` must stay, because it holds for a profile
    without age while ``age <= 30`` does not; ``not (xEvent.count() > 3)`` becomes
    ``xEvent.count() <= 3``.

    >>> from engine.parser import parse
    >>> from engine.unparse import unparse
    >>> unparse(negation_normal_form(parse("not (age > 30 or not email.isNull())")))
    'not (age > 30) and email.isNull()'
    """
    normalized: ir.Expr = _nnf(expr, negate=False, condition=True)
    return normalized


def _nnf(n: Any, *, negate: bool, condition: bool) -> Any:
    match n:
        case ir.Not():
            inner = _nnf(n.arg, negate=not negate, condition=True)
            if negate or is_predicate(inner) or condition:
                return inner
            return ir.Not(ir.Not(inner, span=n.span, dtype=n.dtype), span=n.span, dtype=n.dtype)
        case ir.And() | ir.Or():
            args = tuple(_nnf(a, negate=negate, condition=True) for a in n.args)
            cls = (ir.Or if isinstance(n, ir.And) else ir.And) if negate else type(n)
            return cls(args, span=n.span, dtype=n.dtype)
    out = _recurse(n)
    return _negate(out) if negate else out


def _recurse(n: Any) -> Any:
    """Normalize the conditions nested inside ``n`` (filters, clauses, steps, if tests)."""
    changes: dict[str, Any] = {}
    for key in n._keys:
        value = getattr(n, key)
        cond = key in CONDITION_FIELDS.get(type(n), ())
        if isinstance(value, ir.Node):
            changes[key] = _nnf(value, negate=False, condition=cond)
        elif isinstance(value, tuple) and any(isinstance(x, ir.Node) for x in value):
            changes[key] = tuple(
                _nnf(
                    x,
                    negate=False,
                    condition=cond or (isinstance(n, ir.Call) and n.fn == "if" and i == 0),
                )
                for i, x in enumerate(value)
            )
    changed = {k: v for k, v in changes.items() if v is not getattr(n, k)}
    return n.with_(**changed) if changed else n


def _negate(n: ir.Expr) -> ir.Expr:
    match n:
        case ir.Literal(kind=ir.LitKind.BOOL | ir.LitKind.NULL):
            return bool_literal(n.value is not True, n)
        case ir.Call(fn="isNull" | "isNotNull"):
            return n.with_(fn=_OPPOSITE_NULL_TEST[n.fn])
        case ir.Compare() if _complementable(n.left) and _complementable(n.right):
            return n.with_(op=ir.NEGATED_COMPARE[n.op])
    return ir.Not(n, span=n.span, dtype=None if n.dtype is None else BOOL)


def _complementable(n: ir.Expr) -> bool:
    """Whether ``not (a op b)`` is ``a (negated op) b``: both never null, and not float (a
    float can be NaN, from inf - inf in a sum, which compares false both ways)."""
    if isinstance(n.dtype, DType) and n.dtype.kind is Kind.FLOAT:
        return False
    return _never_null(n)


def _never_null(n: ir.Expr) -> bool:
    """Values that always exist: non-null literals, counts, sums and the clock."""
    match n:
        case ir.Literal():
            return n.kind is not ir.LitKind.NULL
        case ir.Call(fn="count" | "sum" | "currentYear" | "currentMonth" | "currentDayOfMonth"):
            return True
        case ir.Now():
            return True
    return is_predicate(n)
