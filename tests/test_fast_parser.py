"""The fast LALR driver (engine.lalr) must parse exactly as Lark does: same trees, same spans.

Whenever the fast path returns a tree, Lark must return the identical tree; when it cannot,
it raises Fallback (or the transformer's own syntax error) and `parse` asks Lark.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import ir
from engine.errors import SegmentSyntaxError
from engine.lalr import Fallback
from engine.parser import _depth, _fast, _lark_parse, parse
from engine.unparse import unparse
from tests import strategies
from tests.fixtures import FIXTURES, load_pairs


def _spans(tree: ir.Node) -> list[object]:
    return [(type(n).__name__, n.span) for n in ir.walk(tree)]


def assert_same_as_lark(text: str) -> bool:
    """True when the fast path parsed ``text`` (and agreed with Lark)."""
    try:
        fast, tokens = _fast()(text)
    except (Fallback, SegmentSyntaxError):
        return False
    slow = _lark_parse(text)
    assert fast == slow, text
    assert _spans(fast) == _spans(slow), text
    # the depth bound parse() relies on to skip its depth walk for short texts
    assert _depth(fast) <= 2 * tokens + 2, text
    return True


def _fixture_texts() -> list[str]:
    texts = [
        line
        for line in (FIXTURES / "roundtrip.pql").read_text().splitlines()
        if line.strip() and not line.startswith("--")
    ]
    for path in (FIXTURES / "passes").glob("*.pql"):
        for _, a, b in load_pairs(path):
            texts += [a, b]
    return texts


FIXTURE_TEXTS = _fixture_texts()


def test_every_fixture_takes_the_fast_path_and_agrees():
    taken = [t for t in FIXTURE_TEXTS if assert_same_as_lark(t)]
    assert len(taken) == len(FIXTURE_TEXTS)


@pytest.mark.parametrize(
    "text",
    [
        "a = .45 and b.c = 1.5e3 - -2",
        "ts occurs < 3 days before now and x occurs `before`",
        "count = 1 and day = 2 and x.last = 3 and xEvent.count() > 0",
        "chain(xEvent, timestamp, [A: what(count = 1) where(day > 2) when(today) count(3)])",
        "a\n  and\tb\n\n and c = 'x'",
        "NOT a AND b OR TRUE",
        "x = @2024-01-01T10:00:00.123+02:00",
    ],
)
def test_tricky_lexing_agrees(text):
    assert assert_same_as_lark(text)


@pytest.mark.parametrize(
    "text",
    [
        "a == 1",
        "age >= and x",
        "a = ",
        "é = 1",
        "x = [1, 2] 3",
        "select X xEvent",
        "a && b",
        "a = 1 b",
    ],
)
def test_errors_fall_back_to_lark_messages(text):
    with pytest.raises(SegmentSyntaxError) as fast_path:
        parse(text)
    with pytest.raises(SegmentSyntaxError) as lark_path:
        _lark_parse(text)
    assert str(fast_path.value) == str(lark_path.value.with_source(text))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(strategies.exprs())
def test_random_ir_agrees(tree):
    assert assert_same_as_lark(unparse(tree))
    assert assert_same_as_lark(unparse(tree, pretty=True, width=30))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        strategies.token_soup(),
        st.sampled_from(FIXTURE_TEXTS).flatmap(
            lambda t: st.integers(0, len(t)).map(lambda i: t[:i] + t[i + 1 :])
        ),
    )
)
def test_random_and_mutated_text_agrees(text):
    assert_same_as_lark(text)  # fails only if both parse and differ
