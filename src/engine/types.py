"""The types the checker infers: the store's data types plus a few the language adds."""

from __future__ import annotations

import enum

from store.schema import DType, Kind

__all__ = [
    "BOOL",
    "DATE",
    "FLOAT",
    "INT",
    "STRING",
    "TIMESTAMP",
    "Special",
    "Type",
    "describe",
    "list_of",
]


class Special(enum.Enum):
    """Types of values that are not data: they exist only inside a definition."""

    NULL = "null"  # the literal null
    EVENTS = "events"  # xEvent and filters of it
    SELECTION = "selection"  # the tuples of a select
    PERIOD = "period"  # today, last month, ...: a calendar interval
    ERROR = "error"  # a subtree that already failed to check; suppresses follow-on errors


Type = DType | Special

BOOL = DType(Kind.BOOL)
INT = DType(Kind.INT)
FLOAT = DType(Kind.FLOAT)
STRING = DType(Kind.STRING)
TIMESTAMP = DType(Kind.TIMESTAMP)
DATE = DType(Kind.DATE)


def list_of(t: DType) -> DType:
    return DType(t.kind, is_list=True)


_WORDS = {
    Special.NULL: "null",
    Special.EVENTS: "events",
    Special.SELECTION: "a selection",
    Special.PERIOD: "a calendar period",
    Special.ERROR: "an invalid value",
}


def describe(t: Type | None) -> str:
    """How a type reads in an error message."""
    if t is None:
        return "an unchecked value"
    if isinstance(t, Special):
        return _WORDS[t]
    return str(t)


def is_numeric(t: Type | None) -> bool:
    return isinstance(t, DType) and not t.is_list and t.kind.is_numeric


def is_temporal(t: Type | None) -> bool:
    return isinstance(t, DType) and not t.is_list and t.kind.is_temporal
