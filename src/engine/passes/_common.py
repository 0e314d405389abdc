"""What the passes need to know about conditions: which nodes are always true or false."""

from __future__ import annotations

from engine import ir
from engine.functions import PREDICATES
from store.schema import DType, Kind


def is_predicate(n: ir.Expr) -> bool:
    """True when ``n`` is always true or false, never null nor another type.

    Such a node means the same in a value position as in a condition, so a rewrite may
    unwrap a one-operand and/or or a double negation around it anywhere.
    """
    match n:
        case (
            ir.Compare()
            | ir.Not()
            | ir.And()
            | ir.Or()
            | ir.Occurs()
            | ir.SegmentRef()
            | ir.Chain()
        ):
            return True
        case ir.Select():
            return n.quantifier is not ir.Quantifier.SELECT
        case ir.Call():
            return n.fn in PREDICATES
        case ir.Literal():
            return n.kind is ir.LitKind.BOOL
    return False


def bool_literal(value: bool, like: ir.Expr) -> ir.Literal:
    """A true/false literal that keeps ``like``'s span; in checked IR it is a bool, also
    where it replaces a null of another type in condition position (``(5 % 0)`` is false)."""
    dtype = None if like.dtype is None else DType(Kind.BOOL)
    return ir.Literal(value, ir.LitKind.BOOL, span=like.span, dtype=dtype)


def is_bool_literal(n: ir.Expr, value: bool) -> bool:
    return isinstance(n, ir.Literal) and n.kind is ir.LitKind.BOOL and n.value is value


CONDITION_FIELDS: dict[type[ir.Node], tuple[str, ...]] = {
    ir.Filter: ("cond",),
    ir.Clause: ("cond",),
    ir.Step: ("what", "where"),
}
"""Fields (besides and/or/not operands and if's test) that are in condition position."""
