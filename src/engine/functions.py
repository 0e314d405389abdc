"""The built-in functions: how each is written and how many arguments it takes.

The checker gives each family its typing rule; this table is what the formatter and the error
messages need to know. A method's receiver counts as its first argument.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["FUNCTIONS", "Function", "Style"]


class Style(enum.Enum):
    METHOD = "method"  # receiver.fn(args)
    FUNCTION = "function"  # fn(args)
    INFIX = "infix"  # left fn right


@dataclass(frozen=True, slots=True)
class Function:
    name: str
    style: Style
    min_args: int
    max_args: int
    family: str
    summary: str

    def signature(self) -> str:
        return _SIGNATURES.get(self.name, self.name)


def _table(*rows: tuple[str, Style, int, int, str, str]) -> dict[str, Function]:
    return {r[0]: Function(*r) for r in rows}


M, F, INFIX = Style.METHOD, Style.FUNCTION, Style.INFIX

FUNCTIONS = _table(
    # string predicates: s.fn(t[, caseSensitive])
    ("startsWith", M, 2, 3, "string", "s starts with t"),
    ("endsWith", M, 2, 3, "string", "s ends with t"),
    ("contains", M, 2, 3, "string", "s contains t"),
    ("equals", M, 2, 3, "string", "s equals t"),
    ("notEqualTo", M, 2, 3, "string", "s is not equal to t (both present)"),
    ("doesNotStartWith", M, 2, 3, "string", "s does not start with t (both present)"),
    ("doesNotEndWith", M, 2, 3, "string", "s does not end with t (both present)"),
    ("doesNotContain", M, 2, 3, "string", "s does not contain t (both present)"),
    ("like", INFIX, 2, 2, "like", "SQL LIKE: % any run, _ one character"),
    ("matches", M, 2, 2, "regex", "a regular expression matches somewhere in s"),
    ("regexGroup", M, 3, 3, "regex", "capture group n of the first match, or null"),
    # null tests
    ("isNull", M, 1, 1, "null", "the value is missing"),
    ("isNotNull", M, 1, 1, "null", "the value is present"),
    # lists and sets
    ("in", INFIX, 2, 2, "membership", "x is one of the list's elements"),
    ("notIn", INFIX, 2, 2, "membership", "x is present and not one of the elements"),
    ("includes", M, 2, 2, "list", "the list has the element"),
    ("intersects", M, 2, 2, "list", "the lists share an element"),
    ("subsetOf", M, 2, 2, "list", "every element of a is in b"),
    ("supersetOf", M, 2, 2, "list", "every element of b is in a"),
    ("distinct", M, 1, 1, "list", "the list without repeats"),
    # aggregates over lists, events and selections
    ("count", M, 1, 1, "aggregate", "number of elements, events or tuples"),
    ("sum", M, 1, 2, "aggregate", "sum (0 over nothing)"),
    ("average", M, 1, 2, "aggregate", "mean (null over nothing)"),
    ("min", M, 1, 2, "aggregate", "smallest (null over nothing)"),
    ("max", M, 1, 2, "aggregate", "largest (null over nothing)"),
    # dates and times
    ("getYear", M, 1, 1, "date_part", "calendar year (UTC)"),
    ("getMonth", M, 1, 1, "date_part", "month 1-12 (UTC)"),
    ("getDayOfMonth", M, 1, 1, "date_part", "day of month 1-31 (UTC)"),
    ("currentYear", F, 0, 0, "current", "year of the evaluation instant"),
    ("currentMonth", F, 0, 0, "current", "month of the evaluation instant"),
    ("currentDayOfMonth", F, 0, 0, "current", "day of month of the evaluation instant"),
    ("date", F, 3, 3, "date", "the calendar day date(year, month, day)"),
    # control
    ("if", F, 3, 3, "if", "if(test, a, b): a when test holds, else b"),
)

_SIGNATURES = {
    **{
        n: f"s.{n}(t[, caseSensitive])"
        for n in (
            "startsWith",
            "endsWith",
            "contains",
            "equals",
            "notEqualTo",
            "doesNotStartWith",
            "doesNotEndWith",
            "doesNotContain",
        )
    },
    "like": 's like "pattern"',
    "matches": 's.matches("regex")',
    "regexGroup": 's.regexGroup("regex", n)',
    "isNull": "x.isNull()",
    "isNotNull": "x.isNotNull()",
    "in": "x in list",
    "notIn": "x notIn list",
    "includes": "list.includes(x)",
    "intersects": "a.intersects(b)",
    "subsetOf": "a.subsetOf(b)",
    "supersetOf": "a.supersetOf(b)",
    "distinct": "list.distinct()",
    "count": "xs.count()",
    "sum": "events.sum(expr) or numbers.sum()",
    "average": "events.average(expr) or numbers.average()",
    "min": "events.min(expr) or values.min()",
    "max": "events.max(expr) or values.max()",
    "getYear": "t.getYear()",
    "getMonth": "t.getMonth()",
    "getDayOfMonth": "t.getDayOfMonth()",
    "currentYear": "currentYear()",
    "currentMonth": "currentMonth()",
    "currentDayOfMonth": "currentDayOfMonth()",
    "date": "date(year, month, day)",
    "if": "if(test, a, b)",
}

PREDICATES = frozenset(
    n
    for n, f in FUNCTIONS.items()
    if f.family in ("string", "like", "null", "membership")
    or n in ("matches", "includes", "intersects", "subsetOf", "supersetOf")
)
"""Functions whose value is always true or false, never null."""
