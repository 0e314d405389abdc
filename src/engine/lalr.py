"""A fast driver for the grammar's LALR(1) table.

Lark builds the parse table and the tree-building callbacks from ``segment.lark``; its own
lexer and parser loop are general and cost about 16 µs a token here. This module runs the
same table with the same callbacks in a tight loop, fed by a tokenizer that reproduces Lark's
contextual lexing for this grammar: a word is a keyword where the parser accepts that keyword,
otherwise a name (or a time unit where one is accepted). The terminals' patterns are taken
from Lark, so the grammar file stays the only source.

Anything unusual (a syntax error, a character no terminal starts with) raises `Fallback`;
the caller then parses with Lark itself, which reports the error. A differential test holds
the two paths to identical trees, spans included.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from itertools import chain
from typing import Any

from lark import Lark, Token
from lark.parsers.lalr_analysis import Shift

__all__ = ["Fallback", "fast_parser"]


class Fallback(Exception):
    """This text is not for the fast path: let Lark parse it (and report its errors)."""


class _Token(Token):
    """A Lark token built without Lark's general constructor (a third of the lexing time)."""

    __slots__ = ()

    def __new__(cls, kind: str, value: str, start: int, line: int, column: int) -> _Token:
        self = str.__new__(cls, value)
        self.type, self.value, self.start_pos, self.end_pos = kind, value, start, start + len(value)
        self.line, self.column, self.end_line, self.end_column = (
            line,
            column,
            line,
            column + len(value),
        )
        return self


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def fast_parser(lark: Lark) -> Callable[[str], tuple[Any, int]]:
    """A function parsing text exactly as ``lark.parse`` does, or raising `Fallback`.

    It returns the tree and the number of tokens read.
    """
    frontend = lark.parser
    core = frontend.parser.parser  # lark.parsers.lalr_parser._Parser
    table = core.parse_table
    start, end = table.start_states["start"], table.end_states["start"]
    # The table with plain-str keys (Lark's are Tokens, slow to hash and compare) and each
    # reduction as (length, callback or None, goto symbol). A `?rule` with one symbol and no
    # alias hands its child through unchanged, so its callback is skipped.
    reductions: dict[Any, tuple[int, Any, str]] = {}
    for rule in core.callbacks:
        if not hasattr(rule, "expansion"):
            continue
        passthrough = rule.options.expand1 and len(rule.expansion) == 1 and rule.alias is None
        reductions[rule] = (
            len(rule.expansion),
            None if passthrough else core.callbacks[rule],
            str(rule.origin.name),
        )
    states: dict[int, dict[str, tuple[bool, Any]]] = {
        state: {
            str(symbol): (action is Shift, arg if action is Shift else reductions[arg])
            for symbol, (action, arg) in actions.items()
        }
        for state, actions in table.states.items()
    }
    terminals = {t.name: t for t in lark.terminals}

    keywords: dict[str, str] = {}  # lowercased word -> terminal, for case-insensitive keywords
    exact_keywords: dict[str, str] = {}  # case-sensitive ones (xEvent)
    punctuation: dict[str, str] = {}
    for t in lark.terminals:
        value = t.pattern.value
        if t.pattern.type != "str":
            continue
        if _WORD.fullmatch(value):
            if "i" in t.pattern.flags:
                keywords[value.lower()] = t.name
            else:
                exact_keywords[value] = t.name
        else:
            punctuation[value] = t.name
    name_re = re.compile(terminals["NAME"].pattern.to_regexp())
    unit_re = re.compile(terminals["UNIT"].pattern.to_regexp(), re.IGNORECASE)
    patterns = {
        name: re.compile(terminals[name].pattern.to_regexp())
        for name in ("NUMBER", "STRING", "TIMESTAMP", "QUOTED_NAME")
    }
    # Operators, longest first, so that "<=" wins over "<" and "==" over "=".

    # One regex for every token, dispatched on the group that matched; the literal terminals'
    # patterns are Lark's own.
    master = re.compile(
        "|".join(
            [
                r"(?P<space>\s+)",
                r"(?P<word>[A-Za-z_][A-Za-z0-9_]*)",
                *(f"(?P<{name}>{rx.pattern})" for name, rx in patterns.items()),
                r"(?P<symbol>==|<=|>=|!=|[=<>+\-*/%!()\[\],.:])",
            ]
        )
    )
    symbols = {"==": "DOUBLE_EQ", "+": "ADD_OP", "*": "MUL_OP", "/": "MUL_OP", "%": "MUL_OP"}
    symbols.update(dict.fromkeys(("=", "<", ">", "<=", ">=", "!="), "COMP_OP"))
    symbols.update({sym: kind for sym, kind in punctuation.items() if sym not in symbols})

    def tokens(text: str, acceptable: Callable[[], dict[str, tuple[bool, Any]]]) -> Iterator[Token]:
        pos, line, line_start, n = 0, 1, 0, len(text)
        match = master.match
        while pos < n:
            m = match(text, pos)
            if m is None:
                raise Fallback
            group, end = m.lastgroup, m.end()
            if group == "space":
                newlines = text.count("\n", pos, end)
                if newlines:
                    line += newlines
                    line_start = text.rfind("\n", pos, end) + 1
                pos = end
                continue
            value = m.group()
            if group == "word":
                accept = acceptable()
                kind = exact_keywords.get(value) or keywords.get(value.lower(), "")
                if not kind or kind not in accept:
                    if "UNIT" in accept and unit_re.fullmatch(value):
                        kind = "UNIT"
                    elif name_re.fullmatch(value):
                        kind = "NAME"
                    elif not kind:
                        raise Fallback
            elif group == "symbol":
                kind = symbols[value]
                if value == "-":  # binary where an operator may stand, else unary
                    kind = "ADD_OP" if "ADD_OP" in acceptable() else "MINUS"
            else:
                assert group is not None
                kind = group
                if value[0] == "." and "NUMBER" not in acceptable():
                    raise Fallback  # Lark would read a "." here; let it decide
            yield _Token(kind, value, pos, line, pos - line_start + 1)
            pos = end

    # A pass-through reduction only replaces the top state (the state below stays), so a whole
    # chain of them, e.g. atom → postfix → ... → or_expr, is one step, remembered per
    # (state below, top state, lookahead).
    collapsed: dict[tuple[int, int, str], int] = {}

    def collapse(below: int, top: int, kind: str) -> int:
        while True:
            shift, arg = states[top].get(kind, (True, None))
            if shift or arg[1] is not None:
                return top
            top = states[below][arg[2]][1]

    def parse(text: str) -> tuple[Any, int]:
        state_stack = [start]
        count = 0
        value_stack: list[Any] = []
        last: Token | None = None

        def acceptable() -> dict[str, tuple[bool, Any]]:
            return states[state_stack[-1]]

        # Lazily: each word is classified in the parser state reached after the previous token.
        for lexed in chain(tokens(text, acceptable), (None,)):
            if lexed is None:
                if last is None:
                    raise Fallback
                token: Token = Token.new_borrow_pos("$END", "", last)
            else:
                token = lexed
                count += 1
            last = token
            kind = token.type
            while True:
                step = states[state_stack[-1]].get(kind)
                if step is None:
                    raise Fallback
                shift, arg = step
                if shift:
                    state_stack.append(arg)
                    value_stack.append(token)
                    break
                size, callback, goto_symbol = arg
                if callback is None:  # a chain of ?rules passing one child through
                    below, top = state_stack[-2], state_stack[-1]
                    key = (below, top, kind)
                    new_top = collapsed.get(key)
                    if new_top is None:
                        new_top = collapsed[key] = collapse(below, top, kind)
                    state_stack[-1] = new_top
                    if kind == "$END" and new_top == end:
                        return value_stack[-1], count
                    continue
                if size:
                    children = value_stack[-size:]
                    del state_stack[-size:]
                    del value_stack[-size:]
                else:
                    children = []
                value_stack.append(callback(children))
                state_stack.append(states[state_stack[-1]][goto_symbol][1])
                if kind == "$END" and state_stack[-1] == end:
                    return value_stack[-1], count
        raise Fallback  # pragma: no cover - $END always reduces to the end state or fails

    return parse
