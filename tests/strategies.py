"""Hypothesis strategies for segment IR and segment text.

`exprs()` draws *canonical* IR: trees `engine.parser.parse` can produce, so that
``parse(unparse(x)) == x`` must hold for every draw. The shape rules the parser imposes:

* `And` / `Or` have two or more operands and never directly contain the same class (the
  parser flattens ``a and (b and c)``);
* no `Neg` of a number literal (``-5`` is folded into ``Literal(-5)``);
* no `Member` whose object is a `Path` (dotted names become one `Path`);
* `Call` uses the built-in functions with their own style (infix ones take exactly two
  operands, methods have a receiver), ``inSegment("...")`` is a `SegmentRef`;
* select / chain / filter sources are ``xEvent`` or ``xEvent[cond]``;
* period offsets are -1, 0 or 1; ``occurs`` amounts are >= 0; step counts are >= 1.

`token_soup()` and `segment_text()` draw arbitrary text for fuzzing the parser.
"""

from __future__ import annotations

import datetime as dt

from hypothesis import strategies as st

from engine import ir
from engine.functions import FUNCTIONS, Style

__all__ = [
    "KEYWORDS",
    "exprs",
    "literals",
    "names",
    "segment_text",
    "time_conds",
    "timestamps_ms",
    "token_soup",
]

# Words the lexer treats specially somewhere, in several spellings: as names they must be quoted
# (or not) exactly where the formatter thinks.
KEYWORDS = (
    "and",
    "or",
    "not",
    "in",
    "notIn",
    "notin",
    "like",
    "matches",
    "occurs",
    "true",
    "false",
    "null",
    "select",
    "exists",
    "forall",
    "chain",
    "now",
    "today",
    "yesterday",
    "tomorrow",
    "xEvent",
    "xevent",
    "XEVENT",
    "this",
    "last",
    "next",
    "on",
    "before",
    "after",
    "from",
    "between",
    "where",
    "what",
    "when",
    "count",
    "WHAT",
    "WHERE",
    "COUNT",
    "AND",
    "Or",
    "NOT",
    "day",
    "days",
    "Month",
    "hour",
    "millisecond",
    "years",
    "if",
    "date",
    "inSegment",
)

_identifiers = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,7}", fullmatch=True)
# Anything a backtick-quoted name can hold: no backtick, no newline, no lone surrogate.
_odd_names = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="`\n"),
    min_size=1,
    max_size=6,
)


def names() -> st.SearchStrategy[str]:
    """Field, variable, label and member names: identifiers, keywords, odd text."""
    return st.one_of(_identifiers, st.sampled_from(KEYWORDS), _odd_names)


_TS_MIN = dt.datetime(1, 1, 1, tzinfo=dt.UTC)
_TS_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_TS_MAX = dt.datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=dt.UTC)


def timestamps_ms() -> st.SearchStrategy[int]:
    """Milliseconds since the epoch that a timestamp literal can spell (years 1 to 9999)."""
    lo = (_TS_MIN - _TS_EPOCH) // dt.timedelta(milliseconds=1)
    hi = (_TS_MAX - _TS_EPOCH) // dt.timedelta(milliseconds=1)
    return st.one_of(
        st.integers(lo, hi),
        st.integers(0, 4_102_444_800_000),  # 1970-2100, where real data lives
        st.integers(0, 4_102_444_800).map(lambda s: s * 1000),  # whole seconds
    )


_strings = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


def literals() -> st.SearchStrategy[ir.Literal]:
    K = ir.LitKind
    return st.one_of(
        st.just(ir.Literal(None, K.NULL)),
        st.booleans().map(lambda b: ir.Literal(b, K.BOOL)),
        st.integers().map(lambda i: ir.Literal(i, K.INT)),
        st.integers(-1000, 1000).map(lambda i: ir.Literal(i, K.INT)),
        st.floats(allow_nan=False, allow_infinity=False).map(lambda f: ir.Literal(f, K.FLOAT)),
        _strings.map(lambda s: ir.Literal(s, K.STRING)),
        timestamps_ms().map(lambda ms: ir.Literal(ms, K.TIMESTAMP)),
    )


_paths = st.lists(names(), min_size=1, max_size=3).map(lambda ps: ir.Path(tuple(ps)))
_units = st.sampled_from(list(ir.TimeUnit))
_periods = st.builds(ir.Period, st.sampled_from([-1, 0, 1]), _units)

_ZERO_ARG_FUNCTIONS = sorted(
    n for n, f in FUNCTIONS.items() if f.style is Style.FUNCTION and f.max_args == 0
)
_OTHER_FUNCTIONS = sorted(
    n for n, f in FUNCTIONS.items() if not (f.style is Style.FUNCTION and f.max_args == 0)
)


def _leaves() -> st.SearchStrategy[ir.Expr]:
    return st.one_of(
        literals(),
        _paths,
        st.just(ir.Events()),
        st.just(ir.Now()),
        _periods,
        st.sampled_from(_ZERO_ARG_FUNCTIONS).map(lambda fn: ir.Call(fn, ())),
        _strings.map(ir.SegmentRef),
    )


# ---------------------------------------------------------------- canonicalizing builders


def _member(obj: ir.Expr, name: str) -> ir.Expr:
    if isinstance(obj, ir.Path):
        return ir.Path((*obj.parts, name))
    return ir.Member(obj, name)


def _neg(arg: ir.Expr) -> ir.Expr:
    if isinstance(arg, ir.Literal) and arg.kind in (ir.LitKind.INT, ir.LitKind.FLOAT):
        assert isinstance(arg.value, (int, float))
        return ir.Literal(-arg.value, arg.kind)
    return ir.Neg(arg)


def _nary(cls: type[ir.And] | type[ir.Or], args: list[ir.Expr]) -> ir.Expr:
    flat: list[ir.Expr] = []
    for a in args:
        flat.extend(a.args if isinstance(a, cls) else (a,))
    return cls(tuple(flat))


@st.composite
def _calls(draw: st.DrawFn, children: st.SearchStrategy[ir.Expr]) -> ir.Expr:
    fn = FUNCTIONS[draw(st.sampled_from(_OTHER_FUNCTIONS))]
    if fn.style is Style.INFIX:
        n = 2
    else:
        n = draw(st.integers(max(fn.min_args, 1 if fn.style is Style.METHOD else 0), fn.max_args))
    return ir.Call(fn.name, tuple(draw(children) for _ in range(n)))


def _event_sources(children: st.SearchStrategy[ir.Expr]) -> st.SearchStrategy[ir.Expr]:
    return st.one_of(st.just(ir.Events()), children.map(lambda c: ir.Filter(ir.Events(), c)))


def time_conds(children: st.SearchStrategy[ir.Expr]) -> st.SearchStrategy[ir.TimeCond]:
    """The four forms of ``occurs`` with anchors drawn from ``children``."""
    anchors = st.one_of(_periods, st.just(ir.Now()), children)
    return st.one_of(
        st.builds(
            ir.Within,
            st.sampled_from(ir.COMPARE_OPS),
            st.one_of(st.integers(0, 400), st.integers(min_value=0)),
            _units,
            st.sampled_from(["before", "after", "from"]),
            anchors,
        ),
        st.builds(ir.Side, st.sampled_from(["before", "after"]), anchors),
        st.builds(ir.On, anchors),
        st.builds(ir.Between, anchors, anchors),
    )


def _extend(children: st.SearchStrategy[ir.Expr]) -> st.SearchStrategy[ir.Expr]:
    some = st.lists(children, min_size=2, max_size=4)
    clause = st.builds(ir.Clause, names(), _event_sources(children), st.none() | children)
    step = st.builds(
        ir.Step,
        names(),
        children,
        st.none() | children,
        st.none() | time_conds(children),
        st.one_of(st.just(1), st.integers(1, 10), st.integers(min_value=1)),
    )
    return st.one_of(
        st.lists(children, max_size=3).map(lambda xs: ir.ListLit(tuple(xs))),
        st.builds(_member, children, names()),
        st.builds(ir.Filter, _event_sources(children), children),
        _calls(children),
        st.builds(ir.Compare, st.sampled_from(ir.COMPARE_OPS), children, children),
        st.builds(ir.Arith, st.sampled_from(ir.ARITH_OPS), children, children),
        children.map(_neg),
        children.map(ir.Not),
        some.map(lambda xs: _nary(ir.And, xs)),
        some.map(lambda xs: _nary(ir.Or, xs)),
        st.builds(ir.Occurs, children, time_conds(children)),
        st.builds(
            ir.Select,
            st.sampled_from(list(ir.Quantifier)),
            st.lists(clause, min_size=1, max_size=3).map(tuple),
        ),
        st.builds(
            ir.Chain,
            _event_sources(children),
            names(),
            st.lists(step, min_size=1, max_size=3).map(tuple),
        ),
    )


def exprs(max_leaves: int = 10) -> st.SearchStrategy[ir.Expr]:
    """Random canonical IR (see the module docstring)."""
    return st.recursive(_leaves(), _extend, max_leaves=max_leaves)


# ---------------------------------------------------------------- text for fuzzing

# Characters the language uses, plus a few it does not.
ALPHABET = "abcxyzXAEIOSTW_019 \t\n.,:;()[]{}\"'`\\@-+*/%=!<>&|^#$?~eTZé"

TOKENS = (
    # keywords, in several spellings
    *KEYWORDS,
    "AND",
    "OR",
    "Not",
    "IN",
    "NOTIN",
    "LIKE",
    "MATCHES",
    "OCCURS",
    "SELECT",
    "EXISTS",
    "FORALL",
    "CHAIN",
    "BETWEEN",
    "days",
    "weeks",
    "month",
    "year",
    "hours",
    "minutes",
    "seconds",
    "milliseconds",
    "WHEN",
    "WHAT",
    "COUNT",
    "WHERE",
    # names and calls
    "x",
    "X",
    "A",
    "age",
    "person.birthYear",
    "eventType",
    "`odd name`",
    "`",
    "timestamp",
    "startsWith",
    "count",
    "sum",
    "distinct",
    "currentYear",
    "getMonth",
    "isNull",
    # literals
    "0",
    "1",
    "42",
    "-1",
    "3.14",
    ".45",
    "2.02E12",
    "1e",
    "1.",
    "1e999",
    '"US"',
    '"a\\"b"',
    "'x'",
    '"',
    "'",
    "@2024-05-01",
    "@2024-05-01T12:00:00Z",
    "@2024-02-30",
    "@2024-1-1",
    "@2024-05-01T12:00:00.1234Z",
    "@",
    # punctuation and operators
    "(",
    ")",
    "[",
    "]",
    ",",
    ":",
    ".",
    "=",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "+",
    "-",
    "*",
    "/",
    "%",
    "!",
    "&&",
    "||",
    "^",
    "{",
    "}",
    "\n",
    "#",
    ";",
)


def token_soup() -> st.SearchStrategy[str]:
    """Random sequences of the language's tokens (and near-misses), joined by spaces or not."""
    return st.builds(
        lambda toks, sep: sep.join(toks),
        st.lists(st.sampled_from(TOKENS), max_size=14),
        st.sampled_from([" ", "", "\n", "  "]),
    )


def segment_text() -> st.SearchStrategy[str]:
    """Arbitrary text, weighted towards characters the language uses."""
    return st.one_of(
        st.text(st.sampled_from(ALPHABET), max_size=40),
        st.text(max_size=20),
        token_soup(),
    )
