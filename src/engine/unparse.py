"""IR → canonical segment text (as `ast.unparse` is for Python).

``parse(unparse(x)) == x`` for every IR that `parse` can produce. The canonical form uses
lowercase keywords (``CHAIN`` steps keep Adobe's ``WHAT/WHERE/WHEN/COUNT``), double-quoted
strings, the method form of functions, and only the parentheses precedence requires.
"""

from __future__ import annotations

import datetime as dt
import re

from engine import ir
from engine.functions import FUNCTIONS, Style
from engine.grammar import grammar_text

__all__ = ["unparse"]

# Binding strength, loosest first; a child printed where a higher level is required gets
# parentheses.
QUANTIFIED, OR, AND, NOT, PREDICATE, SUM, PRODUCT, UNARY, POSTFIX, ATOM = range(10)

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _grammar_reserved() -> frozenset[str]:
    """The words the grammar's NAME terminal refuses: read from segment.lark, the one source."""
    m = re.search(r"^NAME: /\(\?!\(\?i:([A-Za-z|]+)\)", grammar_text(), re.MULTILINE)
    if m is None:  # pragma: no cover - guarded by the round-trip tests
        raise RuntimeError("segment.lark: cannot find the reserved words of NAME")
    return frozenset(word.lower() for word in m.group(1).split("|"))


# Words the lexer reads as keywords where an expression may start: the reserved ones, and the
# period words, which are keywords there because `last month` may start an expression.
_RESERVED = _grammar_reserved() | {"this", "last", "next"}
# ... and, right after `occurs`, the words that begin its other forms.
_RESERVED_AFTER_OCCURS = _RESERVED | {"on", "before", "after", "between"}


def unparse(node: ir.Node, *, pretty: bool = False, width: int = 88) -> str:
    """Canonical text of ``node``.

    With ``pretty=True``, a definition longer than ``width`` puts each operand of a long
    ``and`` / ``or`` on its own line.

    >>> from engine.parser import parse
    >>> unparse(parse("NOT(a=1) AND b IN ['x','y']"))
    'not (a = 1) and b in ["x", "y"]'
    """
    if pretty:
        return _Pretty(width).show(node, 0)
    return _Unparser().show(node)[0]


def quote_name(name: str, reserved: frozenset[str] = _RESERVED) -> str:
    """A name as written in segment text: backticks when it is not a plain identifier."""
    if _IDENT.match(name) and name.lower() not in reserved:
        return name
    if "`" in name or "\n" in name:
        raise ValueError(f"the name {name!r} cannot be written in segment text")
    return f"`{name}`"


def _member_name(name: str) -> str:
    # After a dot every word is a name, except a respelling of xEvent: the lexer reads none.
    if _IDENT.match(name) and (name.lower() != "xevent" or name == "xEvent"):
        return name
    return quote_name(name)


def _path(parts: tuple[str, ...] | list[str], reserved: frozenset[str] = _RESERVED) -> str:
    return ".".join([quote_name(parts[0], reserved), *(_member_name(p) for p in parts[1:])])


def string_literal(value: str) -> str:
    out = []
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ch == "\x7f":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def timestamp_literal(ms: int) -> str:
    stamp = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=ms)
    text = f"{stamp.year:04d}-" + stamp.strftime("%m-%dT%H:%M:%S")  # %Y does not pad year 999
    if ms % 1000:
        text += f".{ms % 1000:03d}"
    return f"@{text}Z"


def _unit(unit: ir.TimeUnit, amount: int) -> str:
    return unit.value if amount == 1 else unit.value + "s"


def _reads_as_segment_ref(n: ir.Call) -> bool:
    return (
        n.fn in ("inSegment", "inAudience")
        and len(n.args) == 1
        and isinstance(n.args[0], ir.Literal)
        and n.args[0].kind is ir.LitKind.STRING
    )


class _Unparser:
    """``show(node) -> (text, level)``: the text and how tightly it binds."""

    def show(self, node: ir.Node) -> tuple[str, int]:
        result: tuple[str, int] = getattr(self, f"show_{type(node).__name__}")(node)
        return result

    def at(self, node: ir.Node, level: int) -> str:
        """Text of ``node`` where at least ``level`` is required (parenthesized if looser)."""
        text, own = self.show(node)
        return f"({text})" if own < level else text

    # ---- leaves
    def show_Literal(self, n: ir.Literal) -> tuple[str, int]:
        v = n.value
        match n.kind:
            case ir.LitKind.NULL:
                return "null", ATOM
            case ir.LitKind.BOOL:
                return ("true" if v else "false"), ATOM
            case ir.LitKind.STRING:
                assert isinstance(v, str)
                return string_literal(v), ATOM
            case ir.LitKind.TIMESTAMP:
                assert isinstance(v, int)
                return timestamp_literal(v), ATOM
            case _:
                assert isinstance(v, (int, float))
                text = repr(float(v)) if n.kind is ir.LitKind.FLOAT else str(int(v))
                return text, (UNARY if text.startswith("-") else ATOM)

    def show_ListLit(self, n: ir.ListLit) -> tuple[str, int]:
        return "[" + ", ".join(self.at(x, OR) for x in n.items) + "]", ATOM

    def show_Path(self, n: ir.Path) -> tuple[str, int]:
        return _path(n.parts), ATOM

    def show_Attr(self, n: ir.Attr) -> tuple[str, int]:
        return _path(n.name.split(".")), ATOM

    def show_EventField(self, n: ir.EventField) -> tuple[str, int]:
        parts = n.name.split(".")
        return _path([n.var, *parts] if n.var else parts), ATOM

    def show_Events(self, n: ir.Events) -> tuple[str, int]:
        return "xEvent", ATOM

    def show_Now(self, n: ir.Now) -> tuple[str, int]:
        return "now", ATOM

    def show_Period(self, n: ir.Period) -> tuple[str, int]:
        if n.unit is ir.TimeUnit.DAY:
            return {0: "today", -1: "yesterday", 1: "tomorrow"}[n.offset], ATOM
        return f"{ {0: 'this', -1: 'last', 1: 'next'}[n.offset] } {n.unit.value}", ATOM

    def show_SegmentRef(self, n: ir.SegmentRef) -> tuple[str, int]:
        return f"inSegment({string_literal(n.name)})", ATOM

    # ---- logic
    def show_Or(self, n: ir.Or) -> tuple[str, int]:
        return " or ".join(self.at(a, AND) for a in n.args), OR

    def show_And(self, n: ir.And) -> tuple[str, int]:
        return " and ".join(self.at(a, NOT) for a in n.args), AND

    def show_Not(self, n: ir.Not) -> tuple[str, int]:
        text, level = self.show(n.arg)
        return (f"not {text}" if level >= POSTFIX else f"not ({text})"), NOT

    # ---- predicates and arithmetic
    def show_Compare(self, n: ir.Compare) -> tuple[str, int]:
        return f"{self.at(n.left, SUM)} {n.op} {self.at(n.right, SUM)}", PREDICATE

    def show_Arith(self, n: ir.Arith) -> tuple[str, int]:
        own = SUM if n.op in "+-" else PRODUCT
        return f"{self.at(n.left, own)} {n.op} {self.at(n.right, own + 1)}", own

    def show_Neg(self, n: ir.Neg) -> tuple[str, int]:
        return "-" + self.at(n.arg, UNARY), UNARY

    def show_Occurs(self, n: ir.Occurs) -> tuple[str, int]:
        return (
            f"{self.at(n.subject, SUM)} occurs {self.time_cond(n.when, after_occurs=True)}",
            PREDICATE,
        )

    def time_cond(self, n: ir.TimeCond, *, after_occurs: bool = False) -> str:
        reserved = _RESERVED_AFTER_OCCURS if after_occurs else _RESERVED
        match n:
            case ir.Within():
                anchor = self.at(n.anchor, SUM)
                return f"{n.op} {n.amount} {_unit(n.unit, n.amount)} {n.direction} {anchor}"
            case ir.Side():
                return f"{n.direction} {self.at(n.anchor, SUM)}"
            case ir.On():
                if isinstance(n.anchor, ir.Period):
                    return self.at(n.anchor, SUM)
                if isinstance(n.anchor, ir.Path):  # a bare name right after occurs
                    return "on " + _path(n.anchor.parts, reserved)
                return f"on {self.at(n.anchor, SUM)}"
            case ir.Between():
                return f"between {self.at(n.lo, SUM)} and {self.at(n.hi, SUM)}"
        raise TypeError(f"not a time condition: {n!r}")  # pragma: no cover

    # ---- postfix
    def show_Member(self, n: ir.Member) -> tuple[str, int]:
        # One member name, quoted when it is not an identifier: a checked tree's joined
        # xEvent.device.model prints as xEvent.`device.model`, which checks the same.
        return f"{self.at(n.obj, POSTFIX)}.{_member_name(n.name)}", POSTFIX

    def show_Filter(self, n: ir.Filter) -> tuple[str, int]:
        return f"{self.at(n.source, POSTFIX)}[{self.at(n.cond, QUANTIFIED)}]", POSTFIX

    def show_Call(self, n: ir.Call) -> tuple[str, int]:
        fn = FUNCTIONS.get(n.fn)
        style = fn.style if fn else Style.FUNCTION
        if _reads_as_segment_ref(n):
            style = Style.METHOD  # "x".inSegment() is a call; inSegment("x") would be a reference
        if style is Style.INFIX and len(n.args) == 2:
            left, right = (self.at(a, SUM) for a in n.args)
            return f"{left} {n.fn} {right}", PREDICATE
        if style is Style.METHOD and n.args:
            receiver = self.at(n.args[0], POSTFIX)
            args = ", ".join(self.at(a, OR) for a in n.args[1:])
            return f"{receiver}.{_member_name(n.fn)}({args})", POSTFIX
        args = ", ".join(self.at(a, OR) for a in n.args)
        return f"{quote_name(n.fn)}({args})", ATOM

    # ---- event queries
    def show_Select(self, n: ir.Select) -> tuple[str, int]:
        clauses = []
        for c in n.clauses:
            text = f"{quote_name(c.var)} from {self.at(c.source, OR)}"
            if c.cond is not None:
                text += f" where {self.at(c.cond, OR)}"
            clauses.append(text)
        return f"{n.quantifier.value} " + ", ".join(clauses), QUANTIFIED

    def show_Chain(self, n: ir.Chain) -> tuple[str, int]:
        steps = []
        for s in n.steps:
            text = f"{quote_name(s.label)}: WHAT({self.at(s.what, QUANTIFIED)})"
            if s.where is not None:
                text += f" WHERE({self.at(s.where, QUANTIFIED)})"
            if s.when is not None:
                text += f" WHEN({self.time_cond(s.when)})"
            if s.count != 1:
                text += f" COUNT({s.count})"
            steps.append(text)
        source = self.at(n.source, OR)
        return f"chain({source}, {quote_name(n.time_field)}, [{', '.join(steps)}])", ATOM


class _Pretty:
    """Line-breaking printer for `pqlite fmt`: what fits in the width stays on one line;
    otherwise and/or chains get one operand per line, quantifiers one clause per line, and
    long filters and negations open an indented block."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.flat = _Unparser()

    def show(self, node: ir.Node, indent: int) -> str:
        text, _ = self.flat.show(node)
        if indent + len(text) <= self.width:
            return text
        pad = " " * indent
        match node:
            case ir.And() | ir.Or():
                word, level = ("and", NOT) if isinstance(node, ir.And) else ("or", AND)
                parts = [self.at(a, level, indent) for a in node.args]
                return f"\n{pad}{word} ".join(parts)
            case ir.Select():
                ci = indent + len(node.quantifier.value) + 1  # clauses line up after the keyword
                clauses = []
                for c in node.clauses:
                    clause, _ = self.flat.show(ir.Select(node.quantifier, (c,)))
                    clause = clause[len(node.quantifier.value) + 1 :]
                    if ci + len(clause) + 1 > self.width:
                        clause = f"{quote_name(c.var)} from {self.at(c.source, OR, ci)}"
                        if c.cond is not None:
                            clause += f"\n{' ' * (ci + 4)}where {self.at(c.cond, OR, ci + 10)}"
                    clauses.append(clause)
                return f"{node.quantifier.value} " + f",\n{' ' * ci}".join(clauses)
            case ir.Not():
                return f"not {self.block(node.arg, indent)}"
            case ir.Compare():
                return f"{self.at(node.left, SUM, indent)} {node.op} {self.at(node.right, SUM, indent)}"
            case ir.Filter():
                inner = self.show(node.cond, indent + 4)
                return f"{self.at(node.source, POSTFIX, indent)}[\n{pad}    {inner}\n{pad}]"
            case ir.Call() if (
                node.args and FUNCTIONS.get(node.fn) and FUNCTIONS[node.fn].style is Style.METHOD
            ):
                args = ", ".join(self.flat.at(a, OR) for a in node.args[1:])
                return f"{self.at(node.args[0], POSTFIX, indent)}.{_member_name(node.fn)}({args})"
            case ir.Member():
                return f"{self.at(node.obj, POSTFIX, indent)}.{_member_name(node.name)}"
        return text

    def at(self, node: ir.Node, level: int, indent: int) -> str:
        """Like `_Unparser.at`: parenthesized (as a block) when ``node`` binds looser than ``level``."""
        _, own = self.flat.show(node)
        return self.show(node, indent) if own >= level else self.block(node, indent)

    def block(self, node: ir.Node, indent: int) -> str:
        inner = self.show(node, indent + 4)
        if "\n" not in inner:
            return f"({inner})"
        return f"(\n{' ' * (indent + 4)}{inner}\n{' ' * indent})"
