"""The optimization passes: fixture pairs, and meaning preserved on random formulas."""

from __future__ import annotations

from itertools import product

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import ir
from engine.parser import parse
from engine.passes import PASSES, flatten, fold_constants, negation_normal_form, optimize
from engine.unparse import unparse
from tests.fixtures import FIXTURES, load_pairs

PASS_FUNCTIONS = {
    "flatten": flatten,
    "fold_constants": fold_constants,
    "negation_normal_form": negation_normal_form,
    "optimize": optimize,
}
CASES = [
    pytest.param(fn, text, expected, id=f"{name}:{line}")
    for name, fn in PASS_FUNCTIONS.items()
    for line, text, expected in load_pairs(FIXTURES / "passes" / f"{name}.pql")
]


@pytest.mark.parametrize(("run", "text", "expected"), CASES)
def test_fixture(run, text, expected):
    result = run(parse(text))
    assert unparse(result) == expected
    assert result == parse(expected)


@pytest.mark.parametrize(("run", "text", "expected"), CASES)
def test_passes_are_idempotent(run, text, expected):
    once = run(parse(text))
    assert run(once) == once


def test_pipeline_order():
    assert PASSES[0] is flatten and negation_normal_form in PASSES


def test_passes_keep_types_of_checked_ir():
    from engine import Schema, check

    schema = Schema.of(
        {"age": "int", "name": "string"}, {"timestamp": "timestamp", "price": "float"}
    )
    checked = check(
        "not (age > 3 * 10 or not name.isNull()) and xEvent[price > 1 + 1].count() > 0", schema
    )
    out = optimize(checked)
    assert unparse(out) == "not (age > 30) and name.isNull() and xEvent[price > 2].count() > 0"
    assert all(n.dtype is not None for n in ir.walk(out) if isinstance(n, ir.Expr))


# ---------------------------------------------------------------- meaning is preserved
#
# Random formulas over atoms `vN = 1` (true, false or, for a missing vN, false under `=` but
# possibly true under `not`) plus literal arithmetic and comparisons. A small evaluator that
# follows docs/language.md decides each formula under every assignment; the passes must not
# change a single answer.

ATOMS = ["v0", "v1", "v2"]
NULL = object()


def evaluate(n: ir.Expr, env: dict[str, object]) -> object:
    """Three-valued on values, two-valued on conditions, as the language defines."""
    match n:
        case ir.Literal():
            return NULL if n.kind is ir.LitKind.NULL else n.value
        case ir.Path():
            return env[n.parts[0]]
        case ir.And():
            return all(truth(a, env) for a in n.args)
        case ir.Or():
            return any(truth(a, env) for a in n.args)
        case ir.Not():
            return not truth(n.arg, env)
        case ir.Compare():
            a, b = evaluate(n.left, env), evaluate(n.right, env)
            if a is NULL or b is NULL:
                return False
            return {"=": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[
                n.op
            ]
        case ir.Arith():
            a, b = evaluate(n.left, env), evaluate(n.right, env)
            if a is NULL or b is NULL or (n.op in "/%" and b == 0):
                return NULL
            if n.op == "/":
                return a / b
            if n.op == "%":
                return (abs(a) % abs(b)) * (1 if a >= 0 else -1)
            return {"+": a + b, "-": a - b, "*": a * b}[n.op]
    raise AssertionError(f"no rule for {n!r}")


def truth(n: ir.Expr, env: dict[str, object]) -> bool:
    value = evaluate(n, env)
    return value is True


atoms = st.sampled_from(ATOMS).map(
    lambda v: ir.Compare("=", ir.Path((v,)), ir.Literal(1, ir.LitKind.INT))
)
small_ints = st.integers(-4, 4).map(lambda i: ir.Literal(i, ir.LitKind.INT))
numbers = st.recursive(
    small_ints | st.just(ir.Literal(None, ir.LitKind.NULL)),
    lambda inner: st.builds(ir.Arith, st.sampled_from(list("+-*/%")), inner, inner),
    max_leaves=4,
)
constants = st.builds(ir.Compare, st.sampled_from(list(ir.COMPARE_OPS)), numbers, numbers)
bools = st.sampled_from([True, False]).map(lambda b: ir.Literal(b, ir.LitKind.BOOL))


def _junction(cls, args):
    flat = []
    for a in args:
        flat.extend(a.args if isinstance(a, cls) else (a,))
    return cls(tuple(flat))


formulas = st.recursive(
    atoms | constants | bools | st.just(ir.Literal(None, ir.LitKind.NULL)),
    lambda inner: st.one_of(
        st.builds(ir.Not, inner),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: _junction(ir.And, xs)),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: _junction(ir.Or, xs)),
    ),
    max_leaves=10,
)
ASSIGNMENTS = [dict(zip(ATOMS, values, strict=True)) for values in product([1, 0, NULL], repeat=3)]


@settings(max_examples=400, deadline=None)
@given(formulas)
def test_optimize_preserves_meaning(formula):
    optimized = optimize(formula)
    for env in ASSIGNMENTS:
        assert truth(optimized, env) == truth(formula, env), unparse(formula)
    assert parse(unparse(optimized)) == optimized


@settings(max_examples=200, deadline=None)
@given(formulas)
def test_nnf_leaves_not_only_on_predicates(formula):
    for n in ir.walk(negation_normal_form(formula)):
        if isinstance(n, ir.Not):
            assert not isinstance(n.arg, (ir.And, ir.Or, ir.Not, ir.Literal))
