"""What the REPL's line editor needs to know about segment text, without any terminal.

* `needs_more`: whether a line is unfinished (open brackets or quotes, a trailing ``\\``), so
  Enter continues the definition on a new line instead of evaluating it;
* `tokens`: the text cut into kinds (keyword, function, string, ...) for highlighting;
* `complete`: what may follow the cursor: field paths of the schema, functions, keywords,
  segment names and REPL commands.

The keywords are read from the grammar (``grammar/segment.lark``, the one source of the
syntax) and the functions from `engine.functions`, so neither list can drift from the
language. `engine.cli_repl` wraps these in prompt_toolkit's lexer and completer.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

from engine.functions import FUNCTIONS, Style
from engine.grammar import grammar_text
from store.schema import Schema

__all__ = ["COMMANDS", "Completion", "complete", "keywords", "needs_more", "open_brackets",
           "tokens"]

# The REPL's commands and what each takes, for :help and completion.
COMMANDS: dict[str, str] = {
    ":define": "NAME EXPR   define (or redefine) a segment",
    ":segments": "            the defined segments and their counts",
    ":why": "KEY [NAME]  why a profile is in a segment or not (default: the last expression)",
    ":profile": "KEY         a profile's attributes and latest events",
    ":at": "[TIME]      show or set the evaluation instant (ISO 8601)",
    ":explain": "NAME        a segment's optimized definition, what it reads, its kernel",
    ":save": "FILE        write the definitions as a segments file (TOML)",
    ":help": "            this list",
    ":quit": "            leave (also Ctrl-D)",
}
_SEGMENT_FUNCTIONS = ("inSegment", "inAudience")
# Keywords of a chain's steps only (WHAT(...) COUNT(2)): offered everywhere, they would
# mostly get in the way (`cou` is far more often `country` or `.count()`).
_STEP_WORDS = frozenset({"what", "when", "count"})


@functools.cache
def keywords() -> frozenset[str]:
    """The grammar's keywords as written in canonical form (``and``, ``notIn``, ``xEvent``),
    with the time units."""
    words = set()
    for m in re.finditer(r'^[A-Z_]+(?:\.\d+)?:\s*"([A-Za-z]+)"i?\s*$', grammar_text(),
                         re.MULTILINE):
        words.add(m.group(1))
    unit = re.search(r"^UNIT(?:\.\d+)?: /\(([a-z|]+)\)", grammar_text(), re.MULTILINE)
    if unit is not None:
        for word in unit.group(1).split("|"):
            words.update((word, word + "s"))
    return frozenset(words)


# ---------------------------------------------------------------- continuation


def needs_more(text: str) -> bool:
    """Whether ``text`` is unfinished: a bracket or a quote still open, or a last line that
    ends with a backslash (a continuation the REPL removes before evaluating)."""
    if text.rstrip(" \t").endswith("\\"):
        return True
    depth, quote = open_brackets(text)
    return bool(quote) or depth > 0


def open_brackets(text: str) -> tuple[int, str]:
    """How many ``(`` and ``[`` ``text`` leaves open, and the quote it leaves open ("" if
    none); brackets inside strings and quoted names do not count."""
    depth = 0
    quote = ""
    escaped = False
    for ch in text:
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\" and quote != "`":
                escaped = True
            elif ch == quote or (ch == "\n" and quote == "`"):
                quote = ""
            continue
        if ch in "\"'`":
            quote = ch
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
    return depth, quote


def join_continued(text: str) -> str:
    """``text`` with the line-ending backslashes of continued lines removed."""
    return re.sub(r"\\[ \t]*\n", "\n", text).rstrip().removesuffix("\\").rstrip()


# ---------------------------------------------------------------- highlighting

_TOKEN = re.compile(
    r"""(?P<space>\s+)
      | (?P<command>(?<![^\s]):[A-Za-z]+)
      | (?P<string>"(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?)
      | (?P<timestamp>@\d{4}-\d{2}-\d{2}(?:T[0-9:.]+)?(?:Z|[+-]\d{2}:?\d{2})?)
      | (?P<number>(?:\d+\.\d+|\.\d+|\d+)(?:[eE][+-]?\d+)?)
      | (?P<quoted>`[^`\n]*`?)
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<operator><=|>=|!=|==|[=<>!+\-*/%])
      | (?P<punct>.)""",
    re.VERBOSE | re.DOTALL,
)


def tokens(text: str) -> list[tuple[str, str]]:
    """``text`` as (kind, piece) pairs whose pieces join back to ``text``. Kinds: space,
    command, string, timestamp, number, keyword, function, name, operator, punct."""
    out: list[tuple[str, str]] = []
    lowered = {w.lower() for w in keywords()}
    functions = set(FUNCTIONS) | set(_SEGMENT_FUNCTIONS)
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        assert m is not None and m.lastgroup is not None  # punct matches any character
        kind, piece = m.lastgroup, m.group(0)
        if kind == "quoted":
            kind = "name"
        elif kind == "word":
            after = text[m.end():].lstrip(" \t")
            if piece in functions and after.startswith("("):
                kind = "function"
            elif piece.lower() in lowered and not text[:pos].rstrip().endswith("."):
                kind = "keyword"
            else:
                kind = "name"
        out.append((kind, piece))
        pos = m.end()
    return out


# ---------------------------------------------------------------- completion


@dataclass(frozen=True)
class Completion:
    """Replace the ``start`` characters before the cursor (a negative count) by ``text``."""

    text: str
    start: int
    meta: str = ""


_WORD_BEFORE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*$|$")
_SEGMENT_ARG = re.compile(r"\b(?:inSegment|inAudience)\(\s*[\"']([^\"']*)$")


def complete(before: str, schema: Schema | None, segments: Iterable[str]) -> list[Completion]:
    """What may replace the word before the cursor (``before``: the text up to it)."""
    names = sorted(segments)
    line = before.rsplit("\n", 1)[-1]
    if line.startswith(":"):
        head, _, rest = line.partition(" ")
        if not _:
            return [Completion(c, -len(head), COMMANDS[c].split("  ")[0].strip())
                    for c in COMMANDS if c.startswith(head)]
        if head in (":explain", ":why") and (head == ":explain" or " " in rest.strip()):
            word = rest.rsplit(" ", 1)[-1]
            return [Completion(n, -len(word), "segment") for n in names if n.startswith(word)]
        if head != ":define" or " " not in rest:
            return []
        line = rest.split(" ", 1)[1]  # the definition of `:define NAME EXPR`
    quoted = _SEGMENT_ARG.search(line)
    if quoted:
        word = quoted.group(1)
        return [Completion(n, -len(word), "segment") for n in names if n.startswith(word)]
    found = _WORD_BEFORE.search(line)
    assert found is not None  # the pattern matches the empty string at the end
    typed = found.group(0)
    if not typed:
        return []
    out: list[Completion] = []
    head, dot, tail = typed.rpartition(".")
    if dot:
        out += _member(head, tail, schema)
    else:
        out += _fields(typed, schema)
        out += [Completion(f, -len(typed), "function") for f in _functions(Style.FUNCTION)
                if f.startswith(typed)]
        out += [Completion(k, -len(typed), "keyword") for k in sorted(keywords() - _STEP_WORDS)
                if k.lower().startswith(typed.lower()) and k != typed]
    seen: set[str] = set()
    return [c for c in out if not (c.text in seen or seen.add(c.text))]  # type: ignore[func-returns-value]


def _functions(style: Style) -> list[str]:
    found = [f.name for f in FUNCTIONS.values() if f.style is style]
    if style is Style.FUNCTION:
        found += _SEGMENT_FUNCTIONS
    return sorted(found)


def _field_names(schema: Schema | None) -> list[tuple[str, str]]:
    if schema is None:
        return []
    out = [(name, f"profile {f.dtype}") for name, f in schema.profile.items()]
    out += [(name, f"event {f.dtype}") for name, f in schema.events.items()
            if name not in schema.profile]
    return out


def _fields(typed: str, schema: Schema | None) -> list[Completion]:
    """Field paths starting with ``typed`` (a path completes up to its next dot)."""
    return [Completion(name, -len(typed), meta) for name, meta in _field_names(schema)
            if name.startswith(typed)]


def _member(head: str, tail: str, schema: Schema | None) -> list[Completion]:
    """After ``head.``: the rest of a dotted field path, the fields of an event variable
    (``P.`` in ``exists P from xEvent``), or a method."""
    out: list[Completion] = []
    paths = _field_names(schema)
    nested = [(name[len(head) + 1:], meta) for name, meta in paths
              if name.startswith(head + ".")]
    out += [Completion(rest, -len(tail), meta) for rest, meta in nested if rest.startswith(tail)]
    is_variable = re.fullmatch(r"[A-Z][A-Za-z0-9_]*", head) is not None and not nested
    if is_variable and schema is not None:
        out += [Completion(name, -len(tail), f"event {f.dtype}")
                for name, f in schema.events.items() if name.startswith(tail)]
    out += [Completion(f, -len(tail), "method") for f in _functions(Style.METHOD)
            if f.startswith(tail)]
    return out
