"""Semantics-preserving rewrites of the IR, one function per module.

Every pass respects the null rules of docs/language.md: a comparison with a missing operand is
false and ``not`` negates a condition, so ``not (a < b)`` is never rewritten to ``a >= b``
unless both operands can never be null.
"""

from __future__ import annotations

from collections.abc import Callable

from engine import ir
from engine.passes.flatten import flatten as flatten
from engine.passes.fold_constants import fold_constants as fold_constants
from engine.passes.negation_normal_form import negation_normal_form as negation_normal_form

__all__ = ["PASSES", "flatten", "fold_constants", "negation_normal_form", "optimize"]

Pass = Callable[[ir.Expr], ir.Expr]

PASSES: tuple[Pass, ...] = (flatten, fold_constants, negation_normal_form, flatten, fold_constants)


def optimize(expr: ir.Expr) -> ir.Expr:
    """Run every pass in order.

    >>> from engine.parser import parse
    >>> from engine.unparse import unparse
    >>> unparse(optimize(parse("not (a = 1 and not (b > 2 or false))")))
    'not (a = 1) or b > 2'
    """
    for run in PASSES:
        expr = run(expr)
    return expr
