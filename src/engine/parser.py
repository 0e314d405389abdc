"""Segment text → IR, syntax only (no schema needed).

One LALR parser, built on first use, runs the `_ToIR` callbacks as it reduces (no parse tree
is built: about twice as fast). Spans come from the tokens. Lark's exceptions never leave this
module: they become `SegmentSyntaxError`s that say what was expected, in words.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from lark import Lark, Token, Transformer
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from engine import ir
from engine.errors import SegmentSyntaxError, Span
from engine.grammar import grammar_text
from engine.lalr import Fallback, fast_parser

__all__ = ["MAX_DEPTH", "parse"]

MAX_DEPTH = 100
"""Deepest nesting accepted; deeper text is refused rather than overflowing Python's stack.

The IR's ``==``, ``repr`` and pickling and `unparse` all recurse, several frames per level: at
200 levels they overflow the default recursion limit, so leave room for them and later passes.
"""


def parse(text: str) -> ir.Expr:
    """Parse one segment definition into IR.

    >>> parse('homeAddress.countryCode = "US"')
    Compare(op='=', left=Path(parts=('homeAddress', 'countryCode')), right=Literal(value='US', kind=<LitKind.STRING: 'string'>))

    Raises:
        SegmentSyntaxError: with ``line``, ``column`` and a message saying what was expected.
    """
    if not isinstance(text, str):
        raise TypeError(f"parse() takes segment text (str), not {type(text).__name__}")
    return _parse(text)


@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> ir.Expr:
    """`parse` with a cache: the IR is immutable, so one tree can serve every caller."""
    if not text.strip():
        raise SegmentSyntaxError(
            "empty definition: write a condition such as age > 30", Span.at(text, 0), text
        )
    _check_nesting(text)
    try:
        tree, tokens = _fast()(text)
    except (Fallback, SegmentSyntaxError):
        tree, tokens = _lark_parse(text), None  # Lark parses it again and reports any error
    assert isinstance(tree, ir.Expr)
    # Every node but an implicit `on` has a token of its own, so depth <= 2 * tokens + 2: short
    # texts cannot be too deep and skip the walk.
    deep_enough = tokens is None or 2 * tokens + 2 > MAX_DEPTH
    if deep_enough and _depth(tree) > MAX_DEPTH:
        raise SegmentSyntaxError(
            f"expression nests more than {MAX_DEPTH} levels deep", Span.at(text, 0), text
        )
    return tree


def _lark_parse(text: str) -> ir.Expr:
    try:
        tree = _parser().parse(text)
    except SegmentSyntaxError as e:
        raise e.with_source(text) from None
    except UnexpectedInput as e:
        raise _friendly(e, text) from None
    except LarkError as e:  # pragma: no cover - lark reports everything above as UnexpectedInput
        raise SegmentSyntaxError(f"cannot parse: {e}", None, text) from None
    assert isinstance(tree, ir.Expr)
    return tree


@functools.cache
def _fast() -> Callable[[str], tuple[Any, int]]:
    return fast_parser(_parser())


@functools.cache
def _parser() -> Lark:
    return Lark(
        grammar_text(),
        parser="lalr",
        lexer="contextual",
        transformer=_ToIR(),
        maybe_placeholders=True,
        propagate_positions=False,
    )


# ---------------------------------------------------------------- spans


def _first(items: Iterable[Any]) -> Token | Span | None:
    """The leftmost token, or span of a node, in ``items`` (tokens, nodes, nested lists)."""
    for x in items:
        if isinstance(x, str):  # a Token
            return x  # type: ignore[return-value]
        if isinstance(x, ir.Node):
            if x.span is not None:
                return x.span
        elif x is not None:
            found = _first(x)
            if found is not None:
                return found
    return None


def _last(items: Sequence[Any]) -> Token | Span | None:
    """The rightmost token, or span of a node, in ``items``."""
    for x in reversed(items):
        if isinstance(x, str):
            return x  # type: ignore[return-value]
        if isinstance(x, ir.Node):
            if x.span is not None:
                return x.span
        elif x is not None:
            found = _last(x)
            if found is not None:
                return found
    return None


def _span(*items: Any) -> Span | None:
    """The span from the first to the last token or node of ``items`` (called per node)."""
    seq: Sequence[Any] = items
    if len(items) == 1 and isinstance(items[0], (list, tuple)):
        seq = items[0]  # the usual call, with a rule's children
    first, last = _first(seq), _last(seq)
    if first is None or last is None:
        return None
    if isinstance(first, Span):
        start, line, column = first.start, first.line, first.column
    else:
        start, line, column = first.start_pos or 0, first.line or 1, first.column or 1
    if isinstance(last, Span):
        end = last.end
    else:
        end = last.end_pos if last.end_pos is not None else last.start_pos or 0
    return Span(start, end, line, column)


def _error(message: str, *items: Any, hint: str | None = None) -> SegmentSyntaxError:
    return SegmentSyntaxError(message, _span(*items), hint=hint)


# ---------------------------------------------------------------- literals

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "0": "\0"}
_ESCAPE_RE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)", re.DOTALL)


def _unescape(body: str) -> str:
    def one(m: re.Match[str]) -> str:
        esc = m.group(1)
        if esc[0] == "u" and len(esc) == 5:
            return chr(int(esc[1:], 16))
        if esc in _ESCAPES:
            return _ESCAPES[esc]
        if esc in "\"'\\/":
            return esc
        # PQL regexes are often written with single backslashes ("@(\w+)"): keep them.
        return "\\" + esc

    return _ESCAPE_RE.sub(one, body)


_TS_RE = re.compile(
    r"@(\d{4})-(\d{2})-(\d{2})"
    r"(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?"
    r"(Z|[+-]\d{2}:?\d{2})?$"
)


def _timestamp_ms(tok: Token) -> int:
    m = _TS_RE.match(tok)
    if not m:  # pragma: no cover - the terminal's regex is the same
        raise _error(f"malformed timestamp {tok}", tok)
    y, mo, d, h, mi, s, frac, tz = m.groups()
    if frac and int(frac[3:] or "0"):
        raise _error(
            f"timestamp {tok} is more precise than a millisecond",
            tok,
            hint="pqlite keeps timestamps in whole milliseconds: use at most 3 fractional digits",
        )
    offset = dt.timedelta(0)
    if tz and tz != "Z":
        sign = -1 if tz[0] == "-" else 1
        digits = tz[1:].replace(":", "")
        offset = sign * dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    try:
        value = dt.datetime(
            int(y),
            int(mo),
            int(d),
            int(h or 0),
            int(mi or 0),
            int(s or 0),
            int((frac or "0").ljust(3, "0")[:3]) * 1000,
            tzinfo=dt.timezone(offset),
        )
    except ValueError as e:
        raise _error(f"invalid timestamp {tok}: {e}", tok) from None
    try:
        value.astimezone(dt.UTC)  # years 1-9999 in UTC too, so the formatter can write it
    except OverflowError:
        raise _error(f"timestamp {tok} is out of range", tok) from None
    return round(value.timestamp() * 1000)


def _int(tok: Token) -> int:
    try:
        return int(tok)
    except ValueError:  # more digits than int() converts (sys.get_int_max_str_digits())
        raise _error(f"number {tok[:10]}... has too many digits", tok) from None


def _number(tok: Token) -> ir.Literal:
    text = str(tok)
    if re.fullmatch(r"\d+", text):
        return ir.Literal(_int(tok), ir.LitKind.INT, span=_span(tok))
    value = float(text)
    if not math.isfinite(value):
        raise _error(f"number {text} is out of range", tok)
    return ir.Literal(value, ir.LitKind.FLOAT, span=_span(tok))


def _whole_number(tok: Token, what: str) -> int:
    if not re.fullmatch(r"\d+", str(tok)):
        raise _error(f"{what} must be a whole number, not {tok}", tok)
    return _int(tok)


# ---------------------------------------------------------------- tree → IR


def _nodes(children: Iterable[Any]) -> list[Any]:
    return [c for c in children if c is not None and not isinstance(c, Token)]


class _ToIR(Transformer[Token, ir.Expr]):
    """Callbacks named after the grammar's rules and aliases; each returns an IR node."""

    # --- logic
    def or_(self, c: list[Any]) -> ir.Expr:
        return ir.Or(_flat(ir.Or, c[0], c[2]), span=_span(c))

    def and_(self, c: list[Any]) -> ir.Expr:
        return ir.And(_flat(ir.And, c[0], c[2]), span=_span(c))

    def not_(self, c: list[Any]) -> ir.Expr:
        return ir.Not(c[1], span=_span(c))

    def quantified(self, c: list[Any]) -> ir.Expr:
        q = ir.Quantifier(c[0].lower())
        return ir.Select(q, tuple(c[1:]), span=_span(c))

    def clause(self, c: list[Any]) -> ir.Clause:
        name, rest = c[0], _nodes(c[1:])
        cond = rest[1] if len(rest) > 1 else None
        return ir.Clause(str(name), rest[0], cond, span=_span(c))

    # --- predicates
    def compare(self, c: list[Any]) -> ir.Expr:
        return ir.Compare(str(c[1]), c[0], c[2], span=_span(c))

    def double_equals(self, c: list[Any]) -> ir.Expr:
        raise _error("'==' is not an operator", c[1], hint="write a single '=' to test equality")

    def in_(self, c: list[Any]) -> ir.Expr:
        return ir.Call("in", (c[0], c[2]), span=_span(c))

    def not_in(self, c: list[Any]) -> ir.Expr:
        return ir.Call("notIn", (c[0], c[2]), span=_span(c))

    def like(self, c: list[Any]) -> ir.Expr:
        return ir.Call("like", (c[0], c[2]), span=_span(c))

    def matches(self, c: list[Any]) -> ir.Expr:
        return ir.Call("matches", (c[0], c[2]), span=_span(c))

    def occurs(self, c: list[Any]) -> ir.Expr:
        return ir.Occurs(c[0], c[2], span=_span(c))

    # --- arithmetic
    def arith(self, c: list[Any]) -> ir.Expr:
        return ir.Arith(str(c[1]), c[0], c[2], span=_span(c))

    def neg(self, c: list[Any]) -> ir.Expr:
        arg = c[0]
        if isinstance(arg, ir.Literal) and arg.kind in (ir.LitKind.INT, ir.LitKind.FLOAT):
            assert isinstance(arg.value, (int, float))
            return ir.Literal(-arg.value, arg.kind, span=_span(arg))
        return ir.Neg(arg, span=_span(arg))

    # --- postfix
    def member(self, c: list[Any]) -> ir.Expr:
        obj, name = c[0], str(c[1])
        if isinstance(obj, ir.Path):
            return ir.Path((*obj.parts, name), span=_span(c))
        return ir.Member(obj, name, span=_span(c))

    def method(self, c: list[Any]) -> ir.Expr:
        receiver, name, args = c[0], c[1], c[2] or ()
        return ir.Call(str(name), (receiver, *args), span=_span(receiver, name, args))

    def filter(self, c: list[Any]) -> ir.Expr:
        return ir.Filter(c[0], c[1], span=_span(c))

    # --- atoms
    def number(self, c: list[Any]) -> ir.Expr:
        return _number(c[0])

    def string(self, c: list[Any]) -> ir.Expr:
        return ir.Literal(_unescape(c[0][1:-1]), ir.LitKind.STRING, span=_span(c))

    def timestamp(self, c: list[Any]) -> ir.Expr:
        return ir.Literal(_timestamp_ms(c[0]), ir.LitKind.TIMESTAMP, span=_span(c))

    def true(self, c: list[Any]) -> ir.Expr:
        return ir.Literal(True, ir.LitKind.BOOL, span=_span(c))

    def false(self, c: list[Any]) -> ir.Expr:
        return ir.Literal(False, ir.LitKind.BOOL, span=_span(c))

    def null(self, c: list[Any]) -> ir.Expr:
        return ir.Literal(None, ir.LitKind.NULL, span=_span(c))

    def list_(self, c: list[Any]) -> ir.Expr:
        # A list's span is its elements (checker errors point at the first one); only an
        # empty list takes the brackets', so that every node has a span.
        items = tuple(c[1] or ())
        return ir.ListLit(items, span=_span(items) if items else _span(c))

    def args(self, c: list[Any]) -> tuple[ir.Expr, ...]:
        return tuple(c)

    def path(self, c: list[Any]) -> ir.Expr:
        return ir.Path((str(c[0]),), span=_span(c))

    def call(self, c: list[Any]) -> ir.Expr:
        name, args = str(c[0]), tuple(c[1] or ())
        span = _span(c)
        if (
            name in ("inSegment", "inAudience")
            and len(args) == 1
            and isinstance(args[0], ir.Literal)
            and args[0].kind is ir.LitKind.STRING
        ):
            return ir.SegmentRef(str(args[0].value), span=span)
        return ir.Call(name, tuple(args), span=span)

    def events(self, c: list[Any]) -> ir.Expr:
        return ir.Events(span=_span(c))

    def now(self, c: list[Any]) -> ir.Expr:
        return ir.Now(span=_span(c))

    def today(self, c: list[Any]) -> ir.Expr:
        return ir.Period(0, ir.TimeUnit.DAY, span=_span(c))

    def yesterday(self, c: list[Any]) -> ir.Expr:
        return ir.Period(-1, ir.TimeUnit.DAY, span=_span(c))

    def tomorrow(self, c: list[Any]) -> ir.Expr:
        return ir.Period(1, ir.TimeUnit.DAY, span=_span(c))

    def relative_period(self, c: list[Any]) -> ir.Expr:
        offset = {"this": 0, "last": -1, "next": 1}[c[0].lower()]
        return ir.Period(offset, ir.TimeUnit.parse(c[1]), span=_span(c))

    def name(self, c: list[Any]) -> Token:
        tok: Token = c[0]
        if tok.type == "NAME":
            return tok
        if tok.type == "QUOTED_NAME":
            return Token.new_borrow_pos("NAME", tok[1:-1], tok)
        return Token.new_borrow_pos("NAME", str(tok), tok)

    attr = name

    # --- time conditions
    def within(self, c: list[Any]) -> ir.TimeCond:
        op, amount, unit, direction, anchor = c
        return ir.Within(
            str(op),
            _whole_number(amount, "the amount of an occurs condition"),
            ir.TimeUnit.parse(unit),
            direction.lower(),
            anchor,
            span=_span(c),
        )

    def side(self, c: list[Any]) -> ir.TimeCond:
        return ir.Side(c[0].lower(), c[1], span=_span(c))

    def on(self, c: list[Any]) -> ir.TimeCond:
        return ir.On(c[1], span=_span(c))

    def between(self, c: list[Any]) -> ir.TimeCond:
        return ir.Between(c[1], c[3], span=_span(c))

    # --- chain
    def chain(self, c: list[Any]) -> ir.Expr:
        source, time_field, steps = c[1], str(c[2]), tuple(c[3:])
        return ir.Chain(source, time_field, steps, span=_span(c))

    def step(self, c: list[Any]) -> ir.Step:
        label = str(c[0])
        parts: dict[str, Any] = {}
        keyword = ""
        for item in c[1:]:
            if isinstance(item, Token) and item.type in ("WHAT", "WHERE", "WHEN", "COUNT"):
                keyword = item.type
            elif item is not None:
                parts[keyword] = item
        count = 1
        if "COUNT" in parts:
            count = _whole_number(parts["COUNT"], "COUNT")
            if count < 1:
                raise _error("COUNT must be at least 1", parts["COUNT"])
        return ir.Step(
            label, parts["WHAT"], parts.get("WHERE"), parts.get("WHEN"), count, span=_span(c)
        )


def _flat(cls: type[ir.And] | type[ir.Or], left: ir.Expr, right: ir.Expr) -> tuple[ir.Expr, ...]:
    """Operands of an n-ary and/or, absorbing operands that are the same operator."""
    out: list[ir.Expr] = []
    for x in (left, right):
        out.extend(x.args if isinstance(x, cls) else (x,))
    return tuple(out)


def _depth(root: ir.Node) -> int:
    deepest, stack = 0, [(root, 1)]
    while stack:
        n, d = stack.pop()
        deepest = max(deepest, d)
        stack.extend((child, d + 1) for child in ir.children(n))
    return deepest


# ---------------------------------------------------------------- friendly errors

_OPENERS = {"(": ")", "[": "]"}
_CLOSERS = {")": "(", "]": "["}


_NESTING_CHARS = re.compile(r"[()\[\]\"'`]")


def _check_nesting(text: str) -> None:
    """Catch unbalanced brackets and absurd nesting before the parser sees the text."""
    stack: list[int] = []
    i, n = 0, len(text)
    while i < n:
        m = _NESTING_CHARS.search(text, i)  # jump to the next bracket or quote
        if m is None:
            break
        i = m.start()
        ch = text[i]
        if ch in "\"'`":
            end = _string_end(text, i)
            if end is None:
                return  # an unclosed string: the lexer reports it precisely
            i = end
        elif ch in _OPENERS:
            stack.append(i)
            if len(stack) > MAX_DEPTH:
                raise SegmentSyntaxError(
                    f"brackets nest more than {MAX_DEPTH} levels deep",
                    Span.at(text, i, i + 1),
                    text,
                )
        elif ch in _CLOSERS:
            if not stack or text[stack[-1]] != _CLOSERS[ch]:
                expected = f"; expected '{_OPENERS[text[stack[-1]]]}'" if stack else ""
                raise SegmentSyntaxError(
                    f"unmatched '{ch}'{expected}", Span.at(text, i, i + 1), text
                )
            stack.pop()
        i += 1
    if stack:
        i = stack[-1]
        raise SegmentSyntaxError(
            f"'{text[i]}' is never closed; add '{_OPENERS[text[i]]}'", Span.at(text, i, i + 1), text
        )


def _string_end(text: str, start: int) -> int | None:
    quote, i = text[start], start + 1
    while i < len(text):
        if text[i] == "\\" and quote != "`":
            i += 2
            continue
        if text[i] == quote:
            return i
        if text[i] == "\n":
            return None
        i += 1
    return None


# Human words for the terminals the parser may expect.
_WORDS = {
    "COMP_OP": "a comparison (= != < <= > >=)",
    "NUMBER": "a number",
    "STRING": "a string",
    "NAME": "a name",
    "QUOTED_NAME": "a name",
    "TIMESTAMP": "a timestamp",
    "UNIT": "a time unit (day, hour, ...)",
    "RPAR": "')'",
    "LPAR": "'('",
    "RSQB": "']'",
    "LSQB": "'['",
    "COMMA": "','",
    "COLON": "':'",
    "DOT": "'.'",
    "MINUS": "'-'",
    "ADD_OP": "'+' or '-'",
    "MUL_OP": "'*', '/' or '%'",
    "BANG": "'!'",
    "$END": "the end of the text",
}
# Terminals that only exist to give a better message; never suggest them.
_UNSUGGESTED = {"DOUBLE_EQ"}
_VALUE_STARTS = {
    "NUMBER",
    "STRING",
    "NAME",
    "QUOTED_NAME",
    "TIMESTAMP",
    "TRUE",
    "FALSE",
    "NULL",
    "NOW",
    "TODAY",
    "XEVENT",
    "LPAR",
    "LSQB",
    "MINUS",
}
_OPERATOR_TOKEN = re.compile(
    r"(?:(?<![\w.])(?:and|or|not|in|notin|like|matches|occurs)|<=|>=|!=|[=<>+\-*/%!])\s*$",
    re.IGNORECASE,
)


def _describe(expected: Iterable[str]) -> str:
    names = set(expected) - _UNSUGGESTED
    if "NAME" in names and "NUMBER" not in names:
        return "a name"  # after a dot, where every word is a name
    words: list[str] = []
    if names & _VALUE_STARTS and len(names & _VALUE_STARTS) >= 3:
        words.append("a value (a name, number, string, ...)")
        names -= _VALUE_STARTS
    for t in sorted(names):
        word = _WORDS.get(t, f"'{t.lower()}'" if t.isalpha() else t)
        if word not in words:
            words.append(word)
    if len(words) > 6:
        words = [*words[:6], "..."]
    return ", ".join(words) if words else "something else"


def _token_text(tok: Token) -> str:
    return "the end of the text" if tok.type == "$END" else f"'{tok}'"


def _accepted(e: UnexpectedInput, fallback: Iterable[str]) -> set[str]:
    """The terminals that can really come next.

    The parse table's row (``e.expected``) also lists what a *merged* LALR state would accept
    elsewhere (after a bare name: ':', ',', 'from', 'where'), so ask the parser instead.
    """
    interactive = getattr(e, "interactive_parser", None)
    if interactive is not None:
        try:
            return set(interactive.accepts())
        except LarkError:  # pragma: no cover - accepts() runs without callbacks
            pass
    return set(fallback)


def _friendly(e: UnexpectedInput, text: str) -> SegmentSyntaxError:
    pos = e.pos_in_stream if e.pos_in_stream is not None else len(text)
    at_end = isinstance(e, UnexpectedToken) and e.token.type == "$END"
    before = text if at_end else text[:pos]
    dangling = _OPERATOR_TOKEN.search(before)

    if isinstance(e, UnexpectedCharacters):
        ch = text[pos] if pos < len(text) else ""
        span = Span.at(text, pos, pos + 1)
        ident = re.match(r"[A-Za-z_][A-Za-z0-9_]*", text[pos:])
        if ident and ident.group(0).lower() == "xevent":
            return SegmentSyntaxError(
                f"'{ident.group(0)}' is reserved: the events are written xEvent",
                Span.at(text, pos, ident.end() + pos),
                text,
                hint=f"write xEvent, or `{ident.group(0)}` for a field of that name",
            )
        if ch in "\"'":
            return SegmentSyntaxError(
                "string is never closed", span, text, hint=f"add a closing {ch} on the same line"
            )
        if ch == "`":
            return SegmentSyntaxError(
                "quoted name is never closed", span, text, hint="add a closing `"
            )
        if ch == "@":
            return SegmentSyntaxError(
                "malformed timestamp", span, text, hint="write @YYYY-MM-DD or @YYYY-MM-DDTHH:MM:SSZ"
            )
        if text[pos : pos + 2] in ("&&", "||"):
            word = "and" if ch == "&" else "or"
            return SegmentSyntaxError(
                f"'{text[pos : pos + 2]}' is not an operator",
                Span.at(text, pos, pos + 2),
                text,
                hint=f"write '{word}'",
            )
        return SegmentSyntaxError(
            f"unexpected character {ch!r}; expected {_describe(_accepted(e, e.allowed or ()))}",
            span,
            text,
        )

    assert isinstance(e, UnexpectedToken)
    tok = e.token
    expected = _accepted(e, e.expected)
    if tok.type == "$END":  # lark places it on the last token; point just past the text
        start = end = len(text.rstrip())
    else:
        start = tok.start_pos if tok.start_pos is not None else len(text)
        end = tok.end_pos if tok.end_pos is not None else start
    span = Span.at(text, start, max(end, start + 1))
    if tok.type == "$END":
        if dangling:
            op = dangling.group(0).strip()
            return SegmentSyntaxError(
                f"dangling operator '{op}': it needs a value after it",
                Span.at(text, dangling.start(), dangling.start() + len(op)),
                text,
            )
        return SegmentSyntaxError(
            f"unexpected end of text; expected {_describe(expected)}", span, text
        )
    if tok.type == "COMP_OP" and tok == ">" and before.rstrip().endswith("<"):
        lt = len(before.rstrip()) - 1
        return SegmentSyntaxError(
            "'<>' is not an operator", Span.at(text, lt, end), text, hint="write != for not equal"
        )
    if tok.type in ("SELECT", "EXISTS", "FORALL") and dangling:
        return SegmentSyntaxError(
            f"'{tok}' cannot follow an operator without parentheses",
            span,
            text,
            hint=f"write ( {tok} ... ) so it is clear where the {str(tok).lower()} ends",
        )
    if expected & _VALUE_STARTS and dangling:
        op = dangling.group(0).strip()
        return SegmentSyntaxError(
            f"missing value between '{op}' and {_token_text(tok)}", span, text
        )
    if tok.type == "COMP_OP" and "COMP_OP" not in expected and re.search(r"[=<>]", before):
        return SegmentSyntaxError(
            "comparisons cannot be chained",
            span,
            text,
            hint="combine them with and: a < b and b < c",
        )
    if tok.type in ("NAME", "NUMBER", "STRING") and "AND" in expected:
        return SegmentSyntaxError(
            f"unexpected {_token_text(tok)} after a complete expression",
            span,
            text,
            hint="join conditions with and / or, or check for a missing operator or comma",
        )
    return SegmentSyntaxError(
        f"unexpected {_token_text(tok)}; expected {_describe(expected)}", span, text
    )
