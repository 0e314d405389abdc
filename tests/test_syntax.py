"""Syntax: parsing, canonical formatting, error reports, and IR identity.

* ``fixtures/roundtrip.pql``: canonical definitions; each must survive parse → unparse
  text-exactly.
* `NON_CANONICAL`: accepted spellings and the canonical text they format to.
* ``fixtures/syntax_errors.txt``: malformed definitions with the position and message of the
  error each raises.
* Properties over random canonical IR (``strategies.exprs``) and random text.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import lark
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import ir
from engine.errors import SegmentSyntaxError, Span
from engine.functions import FUNCTIONS
from engine.grammar import grammar_text
from engine.parser import MAX_DEPTH, parse
from engine.unparse import timestamp_literal, unparse
from tests.strategies import exprs, segment_text, timestamps_ms, token_soup

FIXTURES = Path(__file__).parent / "fixtures"


# ---------------------------------------------------------------- fixture files


def _roundtrip_lines() -> list[str]:
    text = (FIXTURES / "roundtrip.pql").read_text(encoding="utf-8")
    return [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("--")]


ROUNDTRIP = _roundtrip_lines()


def _decode(text: str) -> str:
    """The fixture's escapes: \\n newline, \\t tab, \\\\ backslash; other backslashes stay."""
    return re.sub(r"\\([nt\\])", lambda m: {"n": "\n", "t": "\t", "\\": "\\"}[m.group(1)], text)


def _error_cases() -> list[tuple[str, int, int, str]]:
    blocks: list[dict[str, str]] = [{}]
    for ln in (FIXTURES / "syntax_errors.txt").read_text(encoding="utf-8").splitlines():
        if ln.startswith("#"):
            continue
        if not ln.strip():
            if blocks[-1]:
                blocks.append({})
            continue
        key, sep, value = ln.partition(":")
        assert sep and key in ("input", "at", "message"), f"bad fixture line: {ln!r}"
        assert key not in blocks[-1], f"repeated {key!r} in a block: {ln!r}"
        blocks[-1][key] = value.removeprefix(" ")
    cases = []
    for b in filter(None, blocks):
        assert set(b) == {"input", "at", "message"}, f"incomplete block: {b}"
        line, column = map(int, b["at"].split(":"))
        cases.append((_decode(b["input"]), line, column, b["message"]))
    return cases


ERRORS = _error_cases()


def test_fixture_sizes() -> None:
    assert len(ROUNDTRIP) == len(set(ROUNDTRIP)), "duplicate lines in roundtrip.pql"
    assert len(set(ROUNDTRIP)) >= 100
    assert len(ERRORS) >= 30
    assert len({src for src, *_ in ERRORS}) == len(ERRORS), "duplicate inputs in syntax_errors.txt"
    assert len(NON_CANONICAL) >= 25


@pytest.mark.parametrize("line", ROUNDTRIP)
def test_roundtrip_fixture(line: str) -> None:
    tree = parse(line)
    assert unparse(tree) == line
    assert parse(unparse(tree)) == tree
    assert parse(unparse(tree, pretty=True, width=40)) == tree


def test_roundtrip_fixture_covers_the_language() -> None:
    """Every node kind, function, time unit and occurs form appears in the fixture."""
    seen: set[object] = set()
    for line in ROUNDTRIP:
        for n in ir.walk(parse(line)):
            seen.add(type(n))
            match n:
                case ir.Call():
                    seen.add(n.fn)
                case ir.Literal():
                    seen.add(n.kind)
                case ir.Period():
                    seen.add(n.unit)
                case ir.Within():
                    seen.update([n.unit, ("within", n.direction)])
                case ir.Side():
                    seen.add(("side", n.direction))
                case ir.Select():
                    seen.add(n.quantifier)
                case ir.Compare() | ir.Arith():
                    seen.add(n.op)
                case ir.Step() if n.count > 1:
                    seen.add("COUNT")
    wanted: set[object] = {
        ir.Literal,
        ir.ListLit,
        ir.Path,
        ir.Events,
        ir.Now,
        ir.Period,
        ir.Member,
        ir.Filter,
        ir.Call,
        ir.Compare,
        ir.Arith,
        ir.Neg,
        ir.Not,
        ir.And,
        ir.Or,
        ir.Occurs,
        ir.SegmentRef,
        ir.Clause,
        ir.Select,
        ir.Step,
        ir.Chain,
        ir.Within,
        ir.Side,
        ir.On,
        ir.Between,
        *FUNCTIONS,
        *ir.LitKind,
        *ir.TimeUnit,
        *ir.Quantifier,
        *ir.COMPARE_OPS,
        *ir.ARITH_OPS,
        "COUNT",
        ("within", "before"),
        ("within", "after"),
        ("within", "from"),
        ("side", "before"),
        ("side", "after"),
    }
    assert wanted - seen == set()


# ---------------------------------------------------------------- non-canonical spellings

NON_CANONICAL = [
    ("NOT(a=1) AND b IN ['x','y']", 'not (a = 1) and b in ["x", "y"]'),
    ('x matches "re"', 'x.matches("re")'),
    ('person.firstName MATCHES "^J.*n$"', 'person.firstName.matches("^J.*n$")'),
    ("x occurs date(2017,10,1)", "x occurs on date(2017, 10, 1)"),
    ("X.timestamp occurs on last week", "X.timestamp occurs last week"),
    ("exists X from xEvent : X.a = 1", "exists X from xEvent where X.a = 1"),
    ("forall X from xEvent: X.a = 1", "forall X from xEvent where X.a = 1"),
    (
        "SELECT X FROM xEvent:X.a=1, Y FROM xEvent : Y.b = X.b",
        "select X from xEvent where X.a = 1, Y from xEvent where Y.b = X.b",
    ),
    ("not exists X from xEvent where X.a = 1", "not (exists X from xEvent where X.a = 1)"),
    ("!(a)", "not a"),
    ("! (a = 1)", "not (a = 1)"),
    ("!!a", "not (not a)"),
    (
        'CHAIN(xEvent, timestamp, [A: what(eventType = "x") when(< 7 days before now) count(2)])',
        'chain(xEvent, timestamp, [A: WHAT(eventType = "x") WHEN(< 7 days before now) COUNT(2)])',
    ),
    ("chain(xEvent,timestamp,[A:WHAT(a)COUNT(1)])", "chain(xEvent, timestamp, [A: WHAT(a)])"),
    ("chain(xEvent, t, [A: WHAT(a) WHEN(on today)])", "chain(xEvent, t, [A: WHAT(a) WHEN(today)])"),
    ("@2024-05-01T12:00:00+02:00 = x", "@2024-05-01T10:00:00Z = x"),
    ("@2024-05-01T12:00:00-0530 = x", "@2024-05-01T17:30:00Z = x"),
    ("@2024-05-01 = x", "@2024-05-01T00:00:00Z = x"),
    ("@2024-05-01T12:00 = x", "@2024-05-01T12:00:00Z = x"),
    ("@2024-05-01T12:00:00.5Z = x", "@2024-05-01T12:00:00.500Z = x"),
    ("@2024-05-01T12:00:00.120000Z = x", "@2024-05-01T12:00:00.120Z = x"),
    ("@0999-01-01 = x", "@0999-01-01T00:00:00Z = x"),
    ("name = 'single'", 'name = "single"'),
    (r"name = 'it\'s'", 'name = "it\'s"'),
    (r'name = "\/\u00e9"', 'name = "/é"'),
    ('name = "tab\there"', r'name = "tab\there"'),
    ("x = 1.5E3", "x = 1500.0"),
    ("x = .45", "x = 0.45"),
    ("x = 2.02E12", "x = 2020000000000.0"),
    ("x = 2.02E-12", "x = 2.02e-12"),
    ("x = 1e0", "x = 1.0"),
    ("x = 007", "x = 7"),
    ("x = - 2.5", "x = -2.5"),
    ("x = --5", "x = 5"),
    ("x=1+2*3", "x = 1 + 2 * 3"),
    ("x = ((1 + 2)) * (3)", "x = (1 + 2) * 3"),
    ("((a = 1))", "a = 1"),
    ("a=1 and(b=2 and c=3)", "a = 1 and b = 2 and c = 3"),
    ("(a or b) or (c or d)", "a or b or c or d"),
    ("(a and b) or (c and d)", "a and b or c and d"),
    ("x OCCURS <= 3 DAYS BEFORE NOW", "x occurs <= 3 days before now"),
    ("x occurs < 1 days before now", "x occurs < 1 day before now"),
    ("x occurs < 2 Day before now", "x occurs < 2 days before now"),
    ("x occurs this day", "x occurs today"),
    ("x occurs last day", "x occurs yesterday"),
    ("x occurs next DAY", "x occurs tomorrow"),
    ("x occurs on `day`", "x occurs on day"),
    ("TRUE AND False OR NULL", "true and false or null"),
    ("`a b`.`c` = 1", "`a b`.c = 1"),
    ("`person`.`name` = 'x'", 'person.name = "x"'),
    ('inAudience("men over 50")', 'inSegment("men over 50")'),
    ("inSegment('vip')", 'inSegment("vip")'),
    ("  a  =  1   and\n\tb = 2\n", "a = 1 and b = 2"),
    ("(xEvent[a = 1]).count() > 0", "xEvent[a = 1].count() > 0"),
    (
        "x.count()>1 and(select X from xEvent where X.a=1)",
        "x.count() > 1 and (select X from xEvent where X.a = 1)",
    ),
]


@pytest.mark.parametrize(("text", "canonical"), NON_CANONICAL)
def test_non_canonical_input(text: str, canonical: str) -> None:
    tree = parse(text)
    assert unparse(tree) == canonical
    assert parse(canonical) == tree
    assert unparse(parse(canonical)) == canonical


# ---------------------------------------------------------------- syntax errors


def _check_error(e: SegmentSyntaxError, text: str) -> None:
    """Position inside the text, and str(e) shows that line with a caret under the column."""
    assert isinstance(e, ValueError)
    assert e.line is not None and e.column is not None
    lines = text.split("\n")
    assert 1 <= e.line <= len(lines)
    assert 1 <= e.column <= len(lines[e.line - 1]) + 1
    # The message with its position, the source line, the carets, then maybe a hint.
    rendered = str(e).split("\n")
    assert rendered[0].startswith(e.message)
    assert rendered[1] == "  " + lines[e.line - 1], str(e)
    assert re.fullmatch(r" *\^+", rendered[2]), str(e)
    assert rendered[2].index("^") == 2 + e.column - 1, str(e)


@pytest.mark.parametrize(
    ("text", "line", "column", "message"), ERRORS, ids=[repr(c[0])[:50] for c in ERRORS]
)
def test_syntax_error_fixture(text: str, line: int, column: int, message: str) -> None:
    with pytest.raises(SegmentSyntaxError) as info:
        parse(text)
    e = info.value
    assert isinstance(e, SegmentSyntaxError)
    assert isinstance(e, ValueError)
    assert (e.line, e.column) == (line, column), str(e)
    assert message in e.message, str(e)
    _check_error(e, text)


@pytest.mark.parametrize(
    "text",
    [
        "x = " + "9" * 5000,
        "x occurs < " + "9" * 5000 + " days before now",
        "chain(xEvent, t, [A: WHAT(a) COUNT(" + "9" * 5000 + ")])",
    ],
)
def test_numbers_with_too_many_digits(text: str) -> None:
    """More digits than int() converts is a syntax error, not a bare ValueError."""
    with pytest.raises(SegmentSyntaxError, match="too many digits") as info:
        parse(text)
    _check_error(info.value, text)


def test_long_numbers_roundtrip() -> None:
    tree = parse("x = " + "9" * 4000)
    assert parse(unparse(tree)) == tree


@pytest.mark.parametrize(
    "tree",
    [
        ir.Path(("a", "xevent")),
        ir.Path(("a", "XEvent", "b")),
        ir.Member(ir.Events(), "XEVENT"),
        ir.Path(("xEvent",)),
        ir.Member(ir.Call("currentYear", ()), "xEvent"),
    ],
)
def test_respelled_xevent_names_are_quoted(tree: ir.Expr) -> None:
    """Only ``xEvent`` itself is a keyword; the lexer reads other spellings as nothing at all."""
    assert parse(unparse(tree)) == tree


def test_every_parsed_node_has_a_span() -> None:
    tree = parse("x in [] and f() = [[]]")
    assert all(n.span is not None for n in ir.walk(tree))
    empty = next(n for n in ir.walk(tree) if isinstance(n, ir.ListLit))
    assert empty.span is not None and (empty.span.start, empty.span.end) == (5, 7)


def test_parse_rejects_non_text() -> None:
    with pytest.raises(TypeError):
        parse(b"a = 1")  # type: ignore[arg-type]


def _nested(kind: str, n: int) -> str:
    return {
        "brackets": "(" * n + "x" + ")" * n,
        "lists": "[" * n + "1" + "]" * n,
        "calls": "f(" * n + "1" + ")" * n,
        "methods": "x" + ".f(1)" * n,
        "filters": "x[" * n + "a" + "]" * n,
        "members": "f()" + ".a" * n,
        "not": "not " * n + "x",
        "bang": "!" * n + "x",
        "neg": "-" * n + "x",
        "arith": "1" + " - x" * n,
        "occurs": "x" + " occurs before (x" * n + ")" * n,
        "select": "(select X from xEvent where " * n + "a" + ")" * n,
        "chain": "chain(xEvent, t, [A: WHAT(" * n + "a" + ")])" * n,
    }[kind]


KINDS = [
    "brackets",
    "lists",
    "calls",
    "methods",
    "filters",
    "members",
    "not",
    "bang",
    "neg",
    "arith",
    "occurs",
    "select",
    "chain",
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n", [MAX_DEPTH + 1, 3_000])
def test_deep_nesting_is_a_syntax_error(kind: str, n: int) -> None:
    text = _nested(kind, n)
    with pytest.raises(SegmentSyntaxError, match=r"more than \d+ levels deep") as info:
        parse(text)
    _check_error(info.value, text)


def _deepest_accepted(kind: str) -> ir.Expr:
    """The deepest tree of this shape that parse accepts."""
    lo, hi = 1, MAX_DEPTH + 1  # n = hi is refused (see above), n = lo accepted
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            parse(_nested(kind, mid))
        except SegmentSyntaxError:
            hi = mid
        else:
            lo = mid
    return parse(_nested(kind, lo))


@pytest.mark.parametrize("kind", KINDS)
def test_deepest_accepted_tree_is_usable(kind: str) -> None:
    """What parse accepts, unparse, ==, hash, repr and pickle handle without RecursionError."""
    tree = _deepest_accepted(kind)
    depth = max(_depth(tree), 1)
    assert depth >= MAX_DEPTH // 2 or kind == "brackets"
    text = unparse(tree)
    again = parse(text)
    assert again == tree and hash(again) == hash(tree)
    assert parse(unparse(tree, pretty=True, width=20)) == tree
    assert repr(tree)
    assert pickle.loads(pickle.dumps(tree)) == tree


def _depth(n: ir.Node) -> int:
    return 1 + max((_depth(c) for c in ir.children(n)), default=0)


# ---------------------------------------------------------------- grammar


def test_grammar_is_lalr_conflict_free_in_strict_mode() -> None:
    """strict=True also refuses terminal collisions (needs the interegular package)."""
    pytest.importorskip("interegular")
    lark.Lark(grammar_text(), parser="lalr", strict=True)


# ---------------------------------------------------------------- properties of random IR


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(exprs())
def test_unparse_then_parse_is_identity(x: ir.Expr) -> None:
    text = unparse(x)
    y = parse(text)
    assert y == x, text
    assert hash(y) == hash(x)
    assert unparse(y) == text


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(exprs(), st.sampled_from([0, 20, 40, 88]))
def test_pretty_unparse_reparses_equal(x: ir.Expr, width: int) -> None:
    text = unparse(x, pretty=True, width=width)
    assert parse(text) == x, text
    assert unparse(x, pretty=True) == unparse(x) or len(unparse(x)) > 88


@settings(max_examples=100)
@given(timestamps_ms())
def test_timestamp_literals_roundtrip(ms: int) -> None:
    text = timestamp_literal(ms)
    assert re.fullmatch(r"@\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z", text)
    assert parse(text) == ir.Literal(ms, ir.LitKind.TIMESTAMP)


@settings(max_examples=100)
@given(st.floats(allow_nan=False, allow_infinity=False) | st.integers())
def test_number_literals_roundtrip(v: float) -> None:
    kind = ir.LitKind.FLOAT if isinstance(v, float) else ir.LitKind.INT
    lit = ir.Literal(v, kind)
    back = parse(unparse(lit))
    assert back == lit
    assert type(back.value) is type(v)  # type: ignore[attr-defined]


# ---------------------------------------------------------------- IR identity


def _whitespace_variant(text: str, tree: ir.Node, data: st.DataObject) -> str:
    """``text`` with random whitespace inserted at token starts (the starts of node spans)."""
    starts = sorted({n.span.start for n in ir.walk(tree) if n.span is not None})
    chosen = data.draw(st.sets(st.sampled_from(starts), min_size=1)) if starts else set()
    out, last = [], 0
    for pos in sorted(chosen):
        out += [text[last:pos], data.draw(st.sampled_from([" ", "  ", "\n", "\t", "\n   "]))]
        last = pos
    return "".join([*out, text[last:]])


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(exprs(), st.data())
def test_spans_do_not_affect_equality(x: ir.Expr, data: st.DataObject) -> None:
    text = unparse(x)
    a = parse(text)
    variant = _whitespace_variant(text, a, data)
    b = parse(variant)
    assert a == b and hash(a) == hash(b)
    spans_a = [n.span for n in ir.walk(a)]
    spans_b = [n.span for n in ir.walk(b)]
    assert spans_a != spans_b, variant  # something moved: at least the root's end
    # Spans point at the node's own text.
    for n in ir.walk(b):
        assert n.span is not None
        assert variant[n.span.start : n.span.end].strip() == variant[n.span.start : n.span.end]


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("a=1 and b=2", "a = 1\n  and   b = 2"),
        ('xEvent[eventType="x"].count()>0', 'xEvent [ eventType = "x" ] . count ( ) > 0'),
        ("x occurs<3 days before now", "x\noccurs\n<\n3\ndays\nbefore\nnow"),
        ("not(a)", "not  (  a  )"),
    ],
)
def test_whitespace_changes_spans_not_identity(a: str, b: str) -> None:
    ta, tb = parse(a), parse(b)
    assert ta == tb and hash(ta) == hash(tb)
    assert ta.span != tb.span
    assert ta.with_(span=Span(0, 1, 1, 1)) == ta


@settings(max_examples=75, suppress_health_check=[HealthCheck.too_slow])
@given(exprs(), exprs())
def test_equality_agrees_with_canonical_text(x: ir.Expr, y: ir.Expr) -> None:
    same_text = unparse(x) == unparse(y)
    assert (x == y) is same_text
    assert (x != y) is not same_text
    if x == y:
        assert hash(x) == hash(y)


@settings(max_examples=75, suppress_health_check=[HealthCheck.too_slow])
@given(exprs())
def test_pickle_roundtrip(x: ir.Expr) -> None:
    parsed = parse(unparse(x))
    for tree in (x, parsed):
        back = pickle.loads(pickle.dumps(tree))
        assert back == tree and hash(back) == hash(tree)
        assert type(back) is type(tree)
        assert [n.span for n in ir.walk(back)] == [n.span for n in ir.walk(tree)]
    assert ir.transform(x, lambda n: n) == x


@settings(max_examples=50)
@given(exprs())
def test_equal_trees_hash_equal_when_rebuilt(x: ir.Expr) -> None:
    """A bottom-up rebuild makes new objects everywhere: equal, same hash, not identical."""
    rebuilt = ir.transform(x, lambda n: n.with_())
    assert rebuilt == x and hash(rebuilt) == hash(x)
    assert rebuilt is not x


# ---------------------------------------------------------------- fuzzing the parser


def _parse_or_syntax_error(text: str) -> None:
    try:
        tree = parse(text)
    except SegmentSyntaxError as e:
        _check_error(e, text)
        return
    canonical = unparse(tree)
    assert parse(canonical) == tree, canonical
    assert unparse(parse(canonical)) == canonical


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(segment_text())
def test_fuzz_text_only_raises_syntax_errors(text: str) -> None:
    _parse_or_syntax_error(text)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(token_soup())
def test_fuzz_tokens_only_raises_syntax_errors(text: str) -> None:
    _parse_or_syntax_error(text)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(ROUNDTRIP), st.data())
def test_fuzz_mutated_fixtures(line: str, data: st.DataObject) -> None:
    """Delete, duplicate or insert a character in a valid definition."""
    i = data.draw(st.integers(0, len(line)))
    op = data.draw(st.sampled_from(["delete", "duplicate", "insert"]))
    if op == "delete":
        text = line[:i] + line[i + 1 :]
    elif op == "duplicate":
        text = line[:i] + line[i : i + 1] + line[i:]
    else:
        text = line[:i] + data.draw(st.sampled_from("()[]\"'`.,:=<>!-+*@ \nax0")) + line[i:]
    _parse_or_syntax_error(text)
