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
from collections.abc import Callable
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
    # One regex for every token (after optional white space), dispatched on the group that
    # matched; the literal terminals' patterns are Lark's own.
    master = re.compile(
        r"\s*(?:"
        + "|".join(
            [
                r"(?P<word>[A-Za-z_][A-Za-z0-9_]*)",
                *(f"(?P<{name}>{rx.pattern})" for name, rx in patterns.items()),
                r"(?P<symbol>==|<=|>=|!=|[=<>+\-*/%!()\[\],.:])",
            ]
        )
        + ")"
    )
    symbols = {"==": "DOUBLE_EQ", "+": "ADD_OP", "*": "MUL_OP", "/": "MUL_OP", "%": "MUL_OP"}
    symbols.update(dict.fromkeys(("=", "<", ">", "<=", ">=", "!="), "COMP_OP"))
    symbols.update({sym: kind for sym, kind in punctuation.items() if sym not in symbols})

    def classify(group: str, value: str, accept: dict[str, Any]) -> str:
        """The terminal of a lexeme, given the terminals the parser accepts next."""
        if group == "word":
            kind = exact_keywords.get(value) or keywords.get(value.lower(), "")
            if kind and kind in accept:
                return kind
            if "UNIT" in accept and unit_re.fullmatch(value):
                return "UNIT"
            if name_re.fullmatch(value):
                return "NAME"
            if not kind:
                raise Fallback
            return kind
        if group == "symbol":
            if value == "-":  # binary where an operator may stand, else unary
                return "ADD_OP" if "ADD_OP" in accept else "MINUS"
            return symbols[value]
        if value[0] == "." and "NUMBER" not in accept:
            raise Fallback  # Lark would read a "." here; let it decide
        return group

    def lex(text: str) -> list[tuple[str, str, int, int, int]]:
        """(group, text, offset, line, column) of each lexeme; words are classified later."""
        out = []
        pos, line, line_start = 0, 1, 0
        multiline = "\n" in text
        for m in master.finditer(text):
            if m.start() != pos:
                raise Fallback  # a character no token starts with
            group = m.lastgroup
            assert group is not None
            begin, pos = m.start(group), m.end()
            if multiline:
                newlines = text.count("\n", m.start(), begin)
                if newlines:
                    line += newlines
                    line_start = text.rfind("\n", m.start(), begin) + 1
            out.append((group, m.group(group), begin, line, begin - line_start + 1))
        if (pos < len(text) and not text[pos:].isspace()) or not out:
            raise Fallback
        return out

    # A word's or symbol's terminal depends only on it and the parser state, so it is
    # classified once per pair (the cache is cleared if odd input makes it large).
    kinds: dict[tuple[str, int], str] = {}

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
        lexemes = lex(text)
        state_stack = [start]
        value_stack: list[Any] = []
        push_state, push_value = state_stack.append, value_stack.append
        last = lexemes[-1]
        lexemes.append(("$END", "", last[2] + len(last[1]), last[3], last[4] + len(last[1])))
        for group, value, begin, line, column in lexemes:
            # Each word is classified in the state the previous token left the parser in.
            if group in ("word", "symbol"):
                key = (value, state_stack[-1])
                kind = kinds.get(key)
                if kind is None:
                    if len(kinds) > 100_000:
                        kinds.clear()
                    kind = kinds[key] = classify(group, value, states[key[1]])
            elif value[:1] == "." and "NUMBER" not in states[state_stack[-1]]:
                raise Fallback  # Lark would read a "." here; let it decide
            else:
                kind = group
            token = _Token(kind, value, begin, line, column)
            while True:
                step = states[state_stack[-1]].get(kind)
                if step is None:
                    raise Fallback
                if step[0]:  # shift
                    push_state(step[1])
                    push_value(token)
                    break
                size, callback, goto_symbol = step[1]
                if callback is None:  # a chain of ?rules passing one child through
                    key2 = (state_stack[-2], state_stack[-1], kind)
                    top = collapsed.get(key2)
                    if top is None:
                        top = collapsed[key2] = collapse(*key2)
                    state_stack[-1] = top
                else:
                    if size:
                        children = value_stack[-size:]
                        del state_stack[-size:]
                        del value_stack[-size:]
                    else:
                        children = []
                    push_value(callback(children))
                    push_state(states[state_stack[-1]][goto_symbol][1])
                if state_stack[-1] == end and kind == "$END":
                    return value_stack[-1], len(lexemes) - 1
        raise Fallback  # pragma: no cover - $END always reduces to the end state or fails

    return parse
