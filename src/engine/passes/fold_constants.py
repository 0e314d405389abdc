"""Evaluate what does not depend on the profile or the clock."""

from __future__ import annotations

import math
from typing import Any

from engine import ir
from engine.passes._common import CONDITION_FIELDS, bool_literal, is_bool_literal, is_predicate

_NUMERIC = (ir.LitKind.INT, ir.LitKind.FLOAT)


def fold_constants(expr: ir.Expr) -> ir.Expr:
    """Fold literal arithmetic, comparisons, and/or/not with true/false, and ``if`` on a literal.

    Nulls follow the language: arithmetic with null or a division by zero is null, a
    comparison with null is false, and null in a condition is false. and/or drop neutral
    operands and repeated ones; a single remaining operand replaces the and/or where that
    keeps its meaning (in a condition, or when the operand is itself a predicate).

    >>> from engine.parser import parse
    >>> from engine.unparse import unparse
    >>> unparse(fold_constants(parse("age > 10 * 3 and (1 / 0 = 2 or true)")))
    'age > 30'
    """
    folded: ir.Expr = _fold(expr, condition=True)
    return folded


def _fold(n: Any, condition: bool) -> Any:
    changes: dict[str, Any] = {}
    for key in n._keys:
        value = getattr(n, key)
        cond = _is_condition(n, key)
        if isinstance(value, ir.Node):
            new = _fold(value, cond)
        elif isinstance(value, tuple) and any(isinstance(x, ir.Node) for x in value):
            new = tuple(
                _fold(x, cond or (isinstance(n, ir.Call) and n.fn == "if" and i == 0))
                for i, x in enumerate(value)
            )
        else:
            continue
        if new != value or any(
            a is not b for a, b in zip(_as_tuple(new), _as_tuple(value), strict=False)
        ):
            changes[key] = new
    if changes:
        n = n.with_(**changes)
    return _simplify(n, condition) if isinstance(n, ir.Expr) else n


def _as_tuple(v: Any) -> tuple[Any, ...]:
    return v if isinstance(v, tuple) else (v,)


def _is_condition(n: ir.Node, key: str) -> bool:
    if isinstance(n, (ir.And, ir.Or, ir.Not)):
        return True
    return key in CONDITION_FIELDS.get(type(n), ())


def _simplify(n: ir.Expr, condition: bool) -> ir.Expr:
    match n:
        case ir.Literal(kind=ir.LitKind.NULL) if condition:
            return bool_literal(False, n)
        case ir.Arith(left=ir.Literal() as a, right=ir.Literal() as b):
            return _arith(n, a, b)
        case ir.Neg(arg=ir.Literal(kind=kind) as a) if kind in _NUMERIC:
            return a.with_(value=_wrap(-a.value, kind), span=n.span)  # type: ignore[operator]
        case ir.Compare(left=left, right=right) if _is_null(left) or _is_null(right):
            return bool_literal(False, n)
        case ir.Compare(left=ir.Literal() as a, right=ir.Literal() as b):
            result = _compare(n.op, a, b)
            return n if result is None else bool_literal(result, n)
        case ir.Not(arg=ir.Literal() as a) if a.kind in (ir.LitKind.BOOL, ir.LitKind.NULL):
            return bool_literal(a.value is not True, n)
        case ir.And() | ir.Or():
            return _junction(n, condition)
        case ir.Call(fn="if", args=(ir.Literal() as test, a, b)) if test.kind in (
            ir.LitKind.BOOL,
            ir.LitKind.NULL,
        ):
            return a if test.value is True else b
        case ir.Call(fn="in" | "notIn", args=(ir.Literal() as item, ir.ListLit() as items)) if all(
            isinstance(x, ir.Literal) for x in items.items
        ):
            if item.kind is ir.LitKind.NULL:
                return bool_literal(False, n)
            found = any(_compare("=", item, x) for x in items.items)  # type: ignore[arg-type]
            return bool_literal(found if n.fn == "in" else not found, n)
    return n


def _is_null(n: ir.Expr) -> bool:
    return isinstance(n, ir.Literal) and n.kind is ir.LitKind.NULL


def _junction(n: ir.And | ir.Or, condition: bool) -> ir.Expr:
    absorbing = isinstance(n, ir.Or)  # true absorbs an or, false absorbs an and
    args: list[ir.Expr] = []
    for arg in n.args:
        a = bool_literal(False, arg) if _is_null(arg) else arg
        if is_bool_literal(a, absorbing):
            return bool_literal(absorbing, n)
        if is_bool_literal(a, not absorbing) or a in args:
            continue
        args.append(a)
    if not args:
        return bool_literal(not absorbing, n)
    if len(args) == 1 and (condition or is_predicate(args[0])):
        return args[0]
    if len(args) == 1:
        args.append(
            bool_literal(not absorbing, n)
        )  # keep the and/or: it turns a value into a condition
    return n.with_(args=tuple(args)) if len(args) != len(n.args) else n


_INT_MIN, _INT_RANGE = -(2**63), 2**64


def _wrap(v: int | float, kind: ir.LitKind) -> int | float:
    """int64 arithmetic wraps around, as the compiled kernels do."""
    if kind is ir.LitKind.INT:
        return (int(v) - _INT_MIN) % _INT_RANGE + _INT_MIN
    return v


def _arith(n: ir.Arith, a: ir.Literal, b: ir.Literal) -> ir.Expr:
    if ir.LitKind.NULL in (a.kind, b.kind):
        return ir.Literal(None, ir.LitKind.NULL, span=n.span, dtype=n.dtype)
    if a.kind not in _NUMERIC or b.kind not in _NUMERIC:
        return n
    x, y = a.value, b.value
    assert isinstance(x, (int, float)) and isinstance(y, (int, float))
    both_int = a.kind is b.kind is ir.LitKind.INT
    if n.op in "/%" and y == 0:
        return ir.Literal(None, ir.LitKind.NULL, span=n.span, dtype=n.dtype)
    value: int | float
    if n.op == "+":
        value = x + y
    elif n.op == "-":
        value = x - y
    elif n.op == "*":
        value = x * y
    elif n.op == "/":
        value = x / y
        both_int = False
    else:  # truncated remainder: the sign follows the dividend, as in SQL and Java
        value = (
            math.copysign(abs(x) % abs(y), x)
            if not both_int
            else (abs(x) % abs(y)) * (1 if x >= 0 else -1)
        )
    kind = ir.LitKind.INT if both_int else ir.LitKind.FLOAT
    value = _wrap(value, kind) if both_int else float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return n  # leave overflow to the evaluator, which has the same float rules
    return ir.Literal(value, kind, span=n.span, dtype=n.dtype)


def _compare(op: str, a: ir.Literal, b: ir.Literal) -> bool | None:
    """``a op b`` for two literals; None when the kinds do not compare (the checker reports it)."""
    if ir.LitKind.NULL in (a.kind, b.kind):
        return False
    numeric = a.kind in _NUMERIC and b.kind in _NUMERIC
    if not numeric and a.kind != b.kind:
        return None
    x, y = a.value, b.value
    if op == "=":
        return x == y
    if op == "!=":
        return x != y
    if a.kind in (ir.LitKind.BOOL, ir.LitKind.STRING):
        return None  # not ordered
    assert isinstance(x, (int, float)) and isinstance(y, (int, float))
    return {"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]
