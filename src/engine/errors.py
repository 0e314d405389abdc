"""Errors raised by the engine, with source positions and a caret under the offending text.

Every error is an `EngineError`; errors about a segment definition are `SegmentError`s and
also subclass the matching builtin (`ValueError` for syntax, `TypeError` for types and
arity, `NameError` for unknown names), so callers can catch either family.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

__all__ = [
    "EngineError",
    "SegmentError",
    "SegmentErrorGroup",
    "SegmentNameError",
    "SegmentSyntaxError",
    "SegmentTypeError",
    "SegmentValueError",
    "Span",
]


class Span(NamedTuple):
    """Where a piece of segment text is: character offsets and 1-based line and column.

    A named tuple rather than a dataclass because the parser makes one per node, and a tuple
    is the cheapest immutable record to build.
    """

    start: int
    end: int
    line: int
    column: int

    @classmethod
    def at(cls, text: str, start: int, end: int | None = None) -> Span:
        """The span of ``text[start:end]`` with its line and column computed."""
        start = max(0, min(start, len(text)))
        end = start if end is None else max(start, min(end, len(text)))
        line = text.count("\n", 0, start) + 1
        column = start - (text.rfind("\n", 0, start) + 1) + 1
        return cls(start, end, line, column)


class EngineError(Exception):
    """Root of every error pqlite's engine raises on purpose."""


class SegmentError(EngineError):
    """Something wrong with a segment definition, located in its text.

    ``str(error)`` is the full report: the message, the position, the source line and a caret
    under the offending text, then the hint if there is one.
    """

    kind = "error"

    def __init__(
        self,
        message: str,
        span: Span | None = None,
        source: str | None = None,
        *,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.span = span
        self.source = source
        self.hint = hint
        super().__init__(self.render())

    @property
    def line(self) -> int | None:
        return self.span.line if self.span else None

    @property
    def column(self) -> int | None:
        return self.span.column if self.span else None

    @property
    def errors(self) -> list[SegmentError]:
        return [self]

    def with_source(self, source: str) -> SegmentError:
        """A copy that knows the definition's text, so it can show the offending line."""
        return type(self)(self.message, self.span, source, hint=self.hint)

    def render(self) -> str:
        parts = [self.message]
        if self.span is not None:
            parts[0] += f" (line {self.span.line}, column {self.span.column})"
            if self.source is not None:
                parts.append(caret_block(self.source, self.span))
        if self.hint:
            parts.append(f"hint: {self.hint}")
        return "\n".join(parts)

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "message": self.message,
            "line": self.line,
            "column": self.column,
            "hint": self.hint,
        }


class SegmentSyntaxError(SegmentError, ValueError):
    """The text is not a well-formed segment expression."""

    kind = "syntax"


class SegmentTypeError(SegmentError, TypeError):
    """Operands or arguments of the wrong type, or the wrong number of arguments."""

    kind = "type"


class SegmentNameError(SegmentError, NameError):
    """A field, variable, function or segment name that does not exist."""

    kind = "name"


class SegmentValueError(SegmentError, ValueError):
    """A literal that cannot be used where it stands (out of range, not coercible, bad regex)."""

    kind = "value"


class SegmentErrorGroup(SegmentError, ExceptionGroup):
    """Several errors found in one definition, reported together (use ``.errors``)."""

    kind = "group"

    def __new__(cls, errors: Sequence[SegmentError]) -> SegmentErrorGroup:
        return super().__new__(cls, f"{len(errors)} errors", list(errors))

    def __init__(self, errors: Sequence[SegmentError]) -> None:
        self._errors = list(errors)
        Exception.__init__(self, f"{len(errors)} errors", list(errors))
        # .message is ExceptionGroup's own (read-only) attribute: "N errors".
        self.span = None
        self.source = None
        self.hint = None

    @property
    def errors(self) -> list[SegmentError]:
        return list(self._errors)

    def render(self) -> str:
        return "\n\n".join(e.render() for e in self._errors)

    def __str__(self) -> str:
        return self.render()

    def derive(self, excs: Sequence[Exception]) -> ExceptionGroup[Exception]:  # type: ignore[override]
        return ExceptionGroup(self.message, list(excs))


def caret_block(source: str, span: Span) -> str:
    """The source line of ``span`` with carets under the span (clipped to that line)."""
    line_start = source.rfind("\n", 0, span.start) + 1
    line_end = source.find("\n", span.start)
    if line_end == -1:
        line_end = len(source)
    text = source[line_start:line_end]
    width = max(1, min(span.end, line_end) - span.start)
    pad = " " * (span.start - line_start)
    return f"  {text}\n  {pad}{'^' * width}"


def raise_all(errors: Sequence[SegmentError]) -> None:
    """Raise nothing, the one error, or a `SegmentErrorGroup` of all of them."""
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise SegmentErrorGroup(errors)
