"""The checker: name binding, inferred types, coercions, and errors (all of them at once).

Error cases live in ``fixtures/check_errors.txt``; this file holds the accepted definitions,
the types the checker infers, the error classes and their rendering, and property tests.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
import string
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from engine import ir
from engine.checker import check, validate
from engine.errors import (
    SegmentError,
    SegmentErrorGroup,
    SegmentNameError,
    SegmentSyntaxError,
    SegmentTypeError,
    SegmentValueError,
)
from engine.parser import parse
from engine.types import BOOL, DATE, FLOAT, INT, STRING, TIMESTAMP, Special, list_of
from engine.unparse import quote_name, string_literal, unparse
from store.schema import DType, Kind, Schema

REPO = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "check_errors.txt"

B10 = Schema.from_dict(tomllib.loads((REPO / "examples" / "b10.schema.toml").read_text("utf-8")))

RICH = Schema.of(
    {
        "personId": "string",
        "age": "int",
        "name": "string",
        "email": "string",
        "homeAddress.countryCode": "string",
        "homeAddress.city": "string",
        "loyalty.tier": "string",  # a struct with a single leaf
        "favoriteColors": "list<string>",
        "scores": "list<int>",
        "birthDate": "date",
        "vip": "bool",
        "balance": "float",
        "signup": "timestamp",
        "category": "string",  # also an event field: inside event scopes the event's wins
    },
    {
        "timestamp": "timestamp",
        "eventType": "string",
        "price": "float",
        "quantity": "int",
        "category": "string",
        "tags": "list<string>",
        "commerce.order.priceTotal": "float",
        "commerce.order.currency": "string",
        "eventDate": "date",
    },
    profile_key="personId",
)
SCHEMAS = {"rich": RICH, "b10": B10}

BOOLS = (DType(Kind.BOOL),)


def nodes(tree: ir.Node, cls: type[ir.Node], **attrs: object) -> list[ir.Node]:
    """Nodes of ``tree`` of class ``cls`` whose attributes equal ``attrs``, parents first."""
    return [
        n
        for n in ir.walk(tree)
        if isinstance(n, cls) and all(getattr(n, k) == v for k, v in attrs.items())
    ]


def first(tree: ir.Node, cls: type[ir.Node], **attrs: object) -> ir.Node:
    found = nodes(tree, cls, **attrs)
    assert found, f"no {cls.__name__} {attrs} in {tree!r}"
    return found[0]


def dtypes_of(tree: ir.Node) -> list[tuple[str, object]]:
    return [(type(n).__name__, n.dtype) for n in ir.walk(tree) if isinstance(n, ir.Expr)]


# ---------------------------------------------------------------- binding


def test_profile_attribute_at_top_level() -> None:
    out = check("age > 30", RICH)
    assert first(out, ir.Attr) == ir.Attr("age")
    assert first(out, ir.Attr).dtype == INT
    assert not nodes(out, ir.Path)  # every name is bound


def test_implicit_event_field_wins_over_profile_attribute() -> None:
    out = check('xEvent[category = "shoes"].count() > 0 and category = "vip"', RICH)
    inside, outside = nodes(out, ir.Compare, op="=")
    assert inside.left == ir.EventField("", "category")
    assert outside.left == ir.Attr("category")


def test_implicit_scope_falls_back_to_profile() -> None:
    out = check('xEvent[name = "Ann" and price > 1].count() > 0', RICH)
    assert first(out, ir.Attr) == ir.Attr("name")
    assert first(out, ir.EventField) == ir.EventField("", "price")


def test_named_event_fields_and_profile_attributes_in_a_clause() -> None:
    # inside a clause there is no implicit event: a bare name is a profile attribute
    out = check("exists X from xEvent where X.category = category", RICH)
    cmp = first(out, ir.Compare)
    assert cmp.left == ir.EventField("X", "category")
    assert cmp.right == ir.Attr("category")
    assert cmp.left.dtype == cmp.right.dtype == STRING


def test_clause_source_filter_sees_left_variables() -> None:
    text = (
        'select X from xEvent where X.eventType = "purchase", '
        "Y from xEvent[category = X.category and timestamp occurs > 1 day after X.timestamp] "
        "where Y.price > X.price"
    )
    out = check(text, RICH)
    fields = {(f.var, f.name) for f in nodes(out, ir.EventField)}
    assert fields == {
        ("X", "eventType"),
        ("", "category"),
        ("X", "category"),
        ("", "timestamp"),
        ("X", "timestamp"),
        ("Y", "price"),
        ("X", "price"),
    }


def test_aggregate_argument_is_an_implicit_event_scope() -> None:
    out = check("xEvent.sum(price) > balance and xEvent.average(balance) > 0", RICH)
    first_sum, avg = nodes(out, ir.Call, fn="sum")[0], nodes(out, ir.Call, fn="average")[0]
    assert first_sum.args[1] == ir.EventField("", "price")
    assert avg.args[1] == ir.Attr("balance")  # not an event field: falls back to the profile


def test_chain_steps_are_implicit_event_scopes() -> None:
    text = 'chain(xEvent, timestamp, [A: WHAT(category = "x") WHERE(vip and price > 1)])'
    out = check(text, RICH)
    step = first(out, ir.Step)
    assert step.what.left == ir.EventField("", "category")
    assert ir.Attr("vip") in list(ir.walk(step.where))
    assert ir.EventField("", "price") in list(ir.walk(step.where))


def test_nested_dotted_event_fields() -> None:
    out = check(
        "xEvent[commerce.order.priceTotal > 100].count() > 0 or (exists X from xEvent where "
        'X.commerce.order.currency = "EUR")',
        RICH,
    )
    assert {(f.var, f.name) for f in nodes(out, ir.EventField)} == {
        ("", "commerce.order.priceTotal"),
        ("X", "commerce.order.currency"),
    }


def test_struct_leaf_is_an_attribute() -> None:
    out = check('homeAddress.countryCode = "US"', RICH)
    assert first(out, ir.Attr) == ir.Attr("homeAddress.countryCode")


@pytest.mark.parametrize("text", ["homeAddress", "homeAddress.isNotNull()"])
def test_bare_struct_is_presence_of_any_leaf(text: str) -> None:
    out = check(text, RICH)
    assert out == ir.Or(
        (
            ir.Call("isNotNull", (ir.Attr("homeAddress.countryCode"),)),
            ir.Call("isNotNull", (ir.Attr("homeAddress.city"),)),
        )
    )
    assert out.dtype == BOOL
    assert all(n.dtype is not None for n in ir.walk(out) if isinstance(n, ir.Expr))


def test_struct_is_null_is_absence_of_every_leaf() -> None:
    out = check("homeAddress.isNull() and not loyalty", RICH)
    absent, no_loyalty = out.args
    assert isinstance(absent, ir.Not) and isinstance(absent.arg, ir.Or)
    # a one-leaf struct is a single presence test
    assert no_loyalty == ir.Not(ir.Call("isNotNull", (ir.Attr("loyalty.tier"),)))


# ---------------------------------------------------------------- inferred types


TYPES: list[tuple[str, Callable[[ir.Node], ir.Node], object]] = [
    # leaves
    ("age > 1", lambda t: first(t, ir.Literal), INT),
    ("balance > 1.5", lambda t: first(t, ir.Literal), FLOAT),
    ('name = "x"', lambda t: first(t, ir.Literal), STRING),
    ("vip = true", lambda t: first(t, ir.Literal), BOOL),
    ("signup > @2024-01-01T00:00:00Z", lambda t: first(t, ir.Literal), TIMESTAMP),
    ("if(vip, null, 1) = 1", lambda t: first(t, ir.Literal, kind=ir.LitKind.NULL), Special.NULL),
    ("age in [1, 2]", lambda t: first(t, ir.ListLit), list_of(INT)),
    ("balance in [1, 2.5]", lambda t: first(t, ir.ListLit), list_of(FLOAT)),
    ("age in []", lambda t: first(t, ir.ListLit), list_of(INT)),
    ("name notIn []", lambda t: first(t, ir.ListLit), list_of(STRING)),
    ("favoriteColors.count() > 0", lambda t: first(t, ir.Attr), list_of(STRING)),
    ("birthDate = date(2000, 1, 1)", lambda t: first(t, ir.Attr), DATE),
    ("signup occurs before now", lambda t: first(t, ir.Now), TIMESTAMP),
    ("signup occurs last month", lambda t: first(t, ir.Period), Special.PERIOD),
    ('inSegment("x")', lambda t: t, BOOL),
    ("xEvent.count() > 0", lambda t: first(t, ir.Events), Special.EVENTS),
    ("xEvent[price > 1].count() > 0", lambda t: first(t, ir.Filter), Special.EVENTS),
    ("xEvent[price > 1].count() > 0", lambda t: first(t, ir.EventField), FLOAT),
    ("xEvent.price.max() > 1", lambda t: first(t, ir.Member), list_of(FLOAT)),
    ("xEvent.eventDate.count() > 1", lambda t: first(t, ir.Member), list_of(DATE)),
    # operators
    ("age + 1 > 2", lambda t: first(t, ir.Arith), INT),
    ("age % 2 = 0", lambda t: first(t, ir.Arith), INT),
    ("age / 2 > 1", lambda t: first(t, ir.Arith), FLOAT),
    ("age * balance > 1", lambda t: first(t, ir.Arith), FLOAT),
    ("-age < 0", lambda t: first(t, ir.Neg), INT),
    ("-balance < 0", lambda t: first(t, ir.Neg), FLOAT),
    ("age > 1", lambda t: t, BOOL),
    ("not vip", lambda t: t, BOOL),
    ("vip and age > 1", lambda t: t, BOOL),
    ("vip or age > 1", lambda t: t, BOOL),
    ("signup occurs today", lambda t: t, BOOL),
    # event queries
    ("select X from xEvent", lambda t: t, Special.SELECTION),
    ("exists X from xEvent", lambda t: t, BOOL),
    ("forall X from xEvent where X.price > 0", lambda t: t, BOOL),
    ("(select X from xEvent).count() > 1", lambda t: first(t, ir.Call), INT),
    ('chain(xEvent, timestamp, [A: WHAT(eventType = "a")])', lambda t: t, BOOL),
    # functions
    ("xEvent.count() > 0", lambda t: first(t, ir.Call, fn="count"), INT),
    ("xEvent.sum(price) > 0", lambda t: first(t, ir.Call, fn="sum"), FLOAT),
    ("xEvent.sum(quantity) > 0", lambda t: first(t, ir.Call, fn="sum"), INT),
    ("xEvent.average(quantity) > 0", lambda t: first(t, ir.Call, fn="average"), FLOAT),
    ("xEvent.min(timestamp) < now", lambda t: first(t, ir.Call, fn="min"), TIMESTAMP),
    ("xEvent.max(eventDate) > birthDate", lambda t: first(t, ir.Call, fn="max"), DATE),
    ("scores.sum() > 0", lambda t: first(t, ir.Call, fn="sum"), INT),
    ("scores.average() > 0", lambda t: first(t, ir.Call, fn="average"), FLOAT),
    ("scores.min() > 0", lambda t: first(t, ir.Call, fn="min"), INT),
    (
        "favoriteColors.distinct().count() > 1",
        lambda t: first(t, ir.Call, fn="distinct"),
        list_of(STRING),
    ),
    ("signup.getYear() = 2024", lambda t: first(t, ir.Call, fn="getYear"), INT),
    ("birthDate.getMonth() = 2", lambda t: first(t, ir.Call, fn="getMonth"), INT),
    ("birthDate.getDayOfMonth() = 29", lambda t: first(t, ir.Call, fn="getDayOfMonth"), INT),
    ("currentYear() > 2000", lambda t: first(t, ir.Call, fn="currentYear"), INT),
    ("birthDate = date(2000, 1, 1)", lambda t: first(t, ir.Call, fn="date"), DATE),
    ("if(vip, 1, 2.5) > 1", lambda t: first(t, ir.Call, fn="if"), FLOAT),
    ('if(vip, name, "x") = "y"', lambda t: first(t, ir.Call, fn="if"), STRING),
    ("if(vip, null, 2) = 1", lambda t: first(t, ir.Call, fn="if"), INT),
    ('name.regexGroup("(a)", 1) = "a"', lambda t: first(t, ir.Call, fn="regexGroup"), STRING),
    ('name.matches("a")', lambda t: t, BOOL),
    ('name like "a%"', lambda t: t, BOOL),
    ("age in [1]", lambda t: t, BOOL),
    ('favoriteColors.includes("red")', lambda t: t, BOOL),
    ("age.isNull()", lambda t: t, BOOL),
]


@pytest.mark.parametrize(("text", "select", "expected"), TYPES, ids=[t[0] for t in TYPES])
def test_inferred_type(text: str, select: Callable[[ir.Node], ir.Node], expected: object) -> None:
    assert select(check(text, RICH)).dtype == expected


# ---------------------------------------------------------------- accepted definitions

ACCEPTED = [
    # string predicates, positive and negative, with the case flag, on strings and string lists
    'name.startsWith("A")',
    'name.endsWith("son", false)',
    'email.contains("@example", true)',
    'name.equals("ann", false)',
    'name.notEqualTo("Bob")',
    'name.doesNotStartWith("X")',
    'name.doesNotEndWith("z", false)',
    'email.doesNotContain("spam")',
    'favoriteColors.startsWith("r")',
    'favoriteColors.contains("ee", false)',
    'homeAddress.city.startsWith("Ber")',
    "name.startsWith(email)",
    "name.startsWith(1)",  # the int argument reads as "1"
    # like and regular expressions
    'name like "A%"',
    'favoriteColors like "_ed"',
    'email.matches("^[a-z]+@")',
    'favoriteColors.matches("^r")',
    r'email.regexGroup("@(\w+)\.", 1) = "example"',
    'email.regexGroup("(a)(b)?", 0) = "a"',
    # null tests
    "age.isNull()",
    "age.isNotNull()",
    "favoriteColors.isNull()",
    "homeAddress.isNull()",
    "homeAddress.isNotNull()",
    "homeAddress.city.isNotNull()",
    "xEvent[price.isNull()].count() > 0",
    # membership
    'name in ["Ann", "Bob"]',
    'name notIn ["Ann"]',
    "age in []",
    "age notIn []",
    "age in [1, 2, 3]",
    'age in ["1", "2"]',
    "balance in [1, 2.5]",
    'birthDate in ["2000-01-01", "2001-01-01"]',
    "vip in [true]",
    "xEvent[category in []].count() = 0",
    # lists and sets
    'favoriteColors.includes("red")',
    'scores.includes("3")',
    'favoriteColors.intersects(["red", "blue"])',
    "favoriteColors.intersects([])",
    'favoriteColors.subsetOf(["red", "blue", "green"])',
    'favoriteColors.supersetOf(["red"])',
    "scores.supersetOf([1, 2])",
    "favoriteColors.distinct().count() > 2",
    'favoriteColors = ["red", "blue"]',
    'favoriteColors = "red"',
    "scores > 10",
    # aggregates over events and lists
    "xEvent.count() > 0",
    "xEvent[price > 10].count() >= 2",
    'xEvent[eventType = "purchase"].sum(price) > 100',
    "xEvent.sum(price * quantity) > 100",
    "xEvent.average(quantity) > 1.5",
    "xEvent.min(price) < 1",
    "xEvent.max(timestamp) occurs < 3 days before now",
    "xEvent.min(eventDate) < birthDate",
    "xEvent.price.max() > 100",
    'xEvent[eventType = "view"].category.distinct().count() >= 3',
    "scores.count() > 1",
    "scores.sum() > 10",
    "scores.average() > 2",
    "scores.min() < 0 or scores.max() > 100",
    "(select X from xEvent where X.price > 10).count() > 2",
    # dates
    "signup.getYear() = 2024",
    "signup.getMonth() = 2 and signup.getDayOfMonth() = 29",
    "birthDate.getMonth() = currentMonth() and birthDate.getDayOfMonth() = currentDayOfMonth()",
    "currentYear() - birthDate.getYear() >= 18",
    "birthDate = date(2000, 2, 29)",
    "birthDate < date(currentYear() - 18, 1, 1)",
    "signup < birthDate",
    'signup > "2024-01-01T12:00:00+02:00"',
    # if
    "if(vip, 1, 2) = 1",
    'if(age > 30, "old", "young") = "old"',
    "if(vip, balance, 0) > 100",
    # arithmetic
    "age + 1 > 30",
    "-age < -30",
    "(balance - 10) * 2 / 3 >= 1",
    "age % 7 = 0",
    "age = -9223372036854775808",
    "age = 9223372036854775807",
    # truthiness of references (PQL: defined → true)
    "vip",
    "age",
    "favoriteColors",
    "homeAddress",
    "not vip",
    "!vip",
    # time
    "signup occurs today",
    "signup occurs yesterday",
    "signup occurs on tomorrow",
    "signup occurs this year",
    "signup occurs last month",
    "signup occurs next week",
    "signup occurs on date(2024, 1, 31)",
    "signup occurs @2024-01-31",
    "birthDate occurs last year",
    "signup occurs < 3 days before now",
    "signup occurs <= 24 hours before now",
    "signup occurs = 3 days before today",
    "signup occurs > 2 weeks after date(2017, 10, 1)",
    "signup occurs >= 1 month from @2024-01-01T00:00:00Z",
    "signup occurs != 1 year before now",
    "signup occurs before now",
    "signup occurs after birthDate",
    "signup occurs before last month",
    "signup occurs between @2024-01-01 and now",
    "signup occurs between last month and last week",
    "birthDate occurs between date(2000, 1, 1) and date(2000, 12, 31)",
    "xEvent[timestamp occurs < 7 days before now].count() > 0",
    # select / exists / forall
    'select X from xEvent where X.eventType = "purchase"',
    "exists X from xEvent where X.price > 10",
    "forall X from xEvent where X.price > 0",
    "exists X from xEvent[price > 10]",
    "exists X from xEvent where X.price > 10 and age > 30",
    "exists X from xEvent where X.tags.includes(name)",
    "exists X from xEvent where X.timestamp occurs < 2 days before now",
    'exists X from xEvent : X.eventType = "purchase"',
    'exists P from xEvent where P.eventType = "purchase", '
    "V from xEvent[timestamp occurs <= 2 days after P.timestamp] "
    "where V.category = P.category",
    "select A from xEvent, B from xEvent where B.timestamp occurs < 2 days after A.timestamp, "
    "C from xEvent where C.price > A.price + B.price",
    "not exists X from xEvent where X.price > 1000",
    "vip and (exists X from xEvent where X.price > 10)",
    # chain
    'chain(xEvent, timestamp, [A: WHAT(eventType = "purchase")])',
    'CHAIN(xEvent, timestamp, [A: WHAT(eventType = "purchase") WHEN(< 7 days before now)])',
    'chain(xEvent, timestamp, [A: WHAT(eventType = "cart") WHERE(price > 10) COUNT(2), '
    'B: WHAT(eventType = "purchase") WHEN(today)])',
    'chain(xEvent[price > 0], timestamp, [A: WHAT(eventType = "view" and vip)])',
    'not chain(xEvent, timestamp, [A: WHAT(eventType = "purchase")])',
    # segments
    'inSegment("vip_customers")',
    'inAudience("churn_risk") and not inSegment("vip_customers")',
    # everything at once
    'vip and homeAddress.countryCode in ["US", "CA"] and xEvent[eventType = "purchase" and '
    "timestamp occurs < 30 days before now].sum(price) > 500 or age.isNull()",
]


@pytest.mark.parametrize("text", ACCEPTED)
def test_accepted(text: str) -> None:
    out = check(text, RICH, segments={"vip_customers", "churn_risk"})
    assert validate(text, RICH, segments={"vip_customers", "churn_risk"}) == []
    assert not nodes(out, ir.Path), "every path is bound"
    for n in ir.walk(out):
        if isinstance(n, ir.Expr):
            assert n.dtype is not None and n.dtype is not Special.ERROR, n


@pytest.mark.parametrize("text", ACCEPTED)
def test_check_accepts_parsed_ir_and_checked_ir(text: str) -> None:
    from_text = check(text, RICH)
    from_ir = check(parse(text), RICH)
    assert from_ir == from_text
    assert dtypes_of(from_ir) == dtypes_of(from_text)
    again = check(from_text, RICH)  # checking a checked tree changes nothing
    assert again == from_text
    assert dtypes_of(again) == dtypes_of(from_text)


@pytest.mark.parametrize("text", ACCEPTED)
def test_check_unparse_check(text: str) -> None:
    once = check(text, RICH)
    twice = check(unparse(once), RICH)
    assert twice == once
    assert dtypes_of(twice) == dtypes_of(once)


# ---------------------------------------------------------------- literal coercions


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('age = "30"', ir.Literal(30, ir.LitKind.INT)),
        ('age = " -7 "', ir.Literal(-7, ir.LitKind.INT)),
        ('balance > "1.5"', ir.Literal(1.5, ir.LitKind.FLOAT)),
        ('vip = "true"', ir.Literal(True, ir.LitKind.BOOL)),
        ('vip = "FALSE"', ir.Literal(False, ir.LitKind.BOOL)),
        ("name = 5", ir.Literal("5", ir.LitKind.STRING)),
        ("signup > 1700000000000", ir.Literal(1_700_000_000_000, ir.LitKind.TIMESTAMP)),
        ('signup > "2024-01-31T12:00:00Z"', ir.Literal(1_706_702_400_000, ir.LitKind.TIMESTAMP)),
        ('signup > "2024-01-31T12:00:00"', ir.Literal(1_706_702_400_000, ir.LitKind.TIMESTAMP)),
        (
            'signup > "2024-01-31T14:00:00+02:00"',
            ir.Literal(1_706_702_400_000, ir.LitKind.TIMESTAMP),
        ),
        ('signup > "2024-01-31"', ir.Literal(1_706_659_200_000, ir.LitKind.TIMESTAMP)),
        (
            'birthDate = "2000-02-29"',
            ir.Call("date", tuple(ir.Literal(v, ir.LitKind.INT) for v in (2000, 2, 29))),
        ),
        ('"30" = age', ir.Literal(30, ir.LitKind.INT)),  # a literal on the left coerces too
    ],
)
def test_literal_coercion(text: str, expected: ir.Expr) -> None:
    out = check(text, RICH)
    cmp = first(out, ir.Compare)
    literal = cmp.left if isinstance(cmp.right, ir.Attr) else cmp.right
    assert literal == expected
    assert literal.dtype == {
        ir.LitKind.INT: INT,
        ir.LitKind.FLOAT: FLOAT,
        ir.LitKind.BOOL: BOOL,
        ir.LitKind.STRING: STRING,
        ir.LitKind.TIMESTAMP: TIMESTAMP,
    }.get(getattr(expected, "kind", None), DATE)


def test_iso_coercion_matches_the_timestamp_literal() -> None:
    a = first(check('signup > "2024-03-01T10:20:30.456Z"', RICH), ir.Literal)
    b = first(check("signup > @2024-03-01T10:20:30.456Z", RICH), ir.Literal)
    assert a == b
    expected = dt.datetime(2024, 3, 1, 10, 20, 30, 456_000, tzinfo=dt.UTC)
    assert a.value == int(expected.timestamp() * 1000)


def test_list_literal_coercion() -> None:
    out = check('age in ["1", "2"] and scores.includes("3") and name in [1, 2]', RICH)
    lists = nodes(out, ir.ListLit)
    assert lists[0].items == (ir.Literal(1, ir.LitKind.INT), ir.Literal(2, ir.LitKind.INT))
    assert lists[0].dtype == list_of(INT)
    assert first(out, ir.Call, fn="includes").args[1] == ir.Literal(3, ir.LitKind.INT)
    assert lists[1].items == (
        ir.Literal("1", ir.LitKind.STRING),
        ir.Literal("2", ir.LitKind.STRING),
    )
    assert lists[1].dtype == list_of(STRING)


def test_date_strings_in_a_list() -> None:
    out = check('birthDate in ["2000-01-01", "2001-12-31"]', RICH)
    lst = first(out, ir.ListLit)
    assert lst.dtype == list_of(DATE)
    assert all(isinstance(x, ir.Call) and x.fn == "date" for x in lst.items)


# ---------------------------------------------------------------- time conditions


@pytest.mark.parametrize(
    ("text", "cond", "anchor"),
    [
        ("signup occurs < 3 days before now", ir.Within, TIMESTAMP),
        ("signup occurs > 1 week after @2024-01-01", ir.Within, TIMESTAMP),
        ("signup occurs <= 2 months from date(2024, 1, 1)", ir.Within, DATE),
        ("signup occurs = 3 days before today", ir.Within, Special.PERIOD),
        ("signup occurs before now", ir.Side, TIMESTAMP),
        ("signup occurs after date(2024, 1, 1)", ir.Side, DATE),
        ("signup occurs before last week", ir.Side, Special.PERIOD),
        ("signup occurs after @2024-01-01T00:00:00Z", ir.Side, TIMESTAMP),
        ("signup occurs today", ir.On, Special.PERIOD),
        ("signup occurs on date(2024, 1, 1)", ir.On, DATE),
        ("signup occurs @2024-01-01", ir.On, TIMESTAMP),
        ("birthDate occurs on now", ir.On, TIMESTAMP),
        ("signup occurs between date(2024, 1, 1) and now", ir.Between, (DATE, TIMESTAMP)),
        ("signup occurs between last month and this month", ir.Between, Special.PERIOD),
        ("birthDate occurs between @2000-01-01 and @2001-01-01", ir.Between, TIMESTAMP),
    ],
)
def test_occurs_forms(text: str, cond: type[ir.TimeCond], anchor: object) -> None:
    out = check(text, RICH)
    assert isinstance(out, ir.Occurs) and out.dtype == BOOL
    assert isinstance(out.when, cond)
    if isinstance(out.when, ir.Between):
        lo, hi = anchor if isinstance(anchor, tuple) else (anchor, anchor)
        assert (out.when.lo.dtype, out.when.hi.dtype) == (lo, hi)
    else:
        assert out.when.anchor.dtype == anchor


def test_occurs_in_a_select_relative_to_another_variable() -> None:
    out = check(
        "exists A from xEvent, B from xEvent where B.timestamp occurs < 2 days after A.timestamp",
        RICH,
    )
    occurs = first(out, ir.Occurs)
    assert occurs.subject == ir.EventField("B", "timestamp")
    assert occurs.when.anchor == ir.EventField("A", "timestamp")
    assert occurs.when.anchor.dtype == TIMESTAMP


# ---------------------------------------------------------------- select, chain, segments


def test_select_clauses_are_typed() -> None:
    out = check(
        'select X from xEvent where X.eventType = "a", '
        "Y from xEvent[price > 1] where Y.quantity > 2",
        RICH,
    )
    assert out.quantifier is ir.Quantifier.SELECT and out.dtype is Special.SELECTION
    x, y = out.clauses
    assert (x.var, y.var) == ("X", "Y")
    assert x.source.dtype is Special.EVENTS and y.source.dtype is Special.EVENTS
    assert x.cond.dtype == BOOL and y.cond.dtype == BOOL


def test_chain_is_typed() -> None:
    text = (
        'chain(xEvent, timestamp, [A: WHAT(eventType = "cart") WHERE(price > 10) '
        'WHEN(< 7 days before now) COUNT(2), B: WHAT(eventType = "purchase")])'
    )
    out = check(text, RICH)
    assert out.dtype == BOOL and out.source.dtype is Special.EVENTS
    a, b = out.steps
    assert (a.label, a.count, b.label, b.count) == ("A", 2, "B", 1)
    assert a.what.dtype == BOOL and a.where.dtype == BOOL
    assert isinstance(a.when, ir.Within) and a.when.anchor.dtype == TIMESTAMP


def test_in_segment_without_known_segments_accepts_any_name() -> None:
    out = check('inSegment("anything at all")', RICH)
    assert out == ir.SegmentRef("anything at all") and out.dtype == BOOL


def test_in_segment_with_known_segments() -> None:
    known = ["vip_customers", "churn_risk"]
    assert check('inSegment("churn_risk")', RICH, segments=known).dtype == BOOL
    with pytest.raises(SegmentNameError, match="unknown segment 'churn'") as info:
        check('inSegment("churn")', RICH, segments=iter(known))  # any iterable
    assert info.value.hint == "did you mean 'churn_risk'?"
    with pytest.raises(SegmentNameError):
        check('inSegment("x")', RICH, segments=[])


# ---------------------------------------------------------------- the B10 workload

B10_DEFINITIONS = {
    "S1": 'country = "US" and age >= 25 and age <= 40',
    "S2": 'loyalty_tier in ["gold", "platinum"] or lifetime_value > 1000',
    "S3": 'xEvent[eventType = "purchase" and timestamp occurs < 7 days before now].count() >= 1',
    "S4": 'xEvent[eventType = "product_view" and category = "c0003" and timestamp occurs '
    '< 30 days before now].count() >= 3 and xEvent[eventType = "purchase" and timestamp '
    "occurs < 30 days before now].count() = 0",
    "S5": 'xEvent[eventType = "purchase" and timestamp occurs < 30 days before now]'
    ".sum(price) > 500",
    # the last add_to_cart of the last 24 hours came after the last purchase (or there is none)
    "S6": 'xEvent[eventType = "add_to_cart" and timestamp occurs < 24 hours before now]'
    '.max(timestamp) > xEvent[eventType = "purchase"].max(timestamp) or '
    '(xEvent[eventType = "add_to_cart" and timestamp occurs < 24 hours before now].count() > 0 '
    'and xEvent[eventType = "purchase"].count() = 0)',
    "S7": 'email_opt_in and xEvent[eventType = "page_view" and timestamp occurs < 24 hours '
    "before now].count() >= 5",
    "S8": 'xEvent[eventType = "product_view" and timestamp occurs < 30 days before now]'
    ".category.distinct().count() >= 3",
    "S9": 'age.isNull() and country in ["AT", "BE", "DE", "DK", "ES", "FI", "FR", "IE", "IT", '
    '"NL"]',
    "S10": 'exists P from xEvent where P.eventType = "purchase", V from xEvent[timestamp occurs '
    '<= 2 days after P.timestamp] where V.eventType = "product_view" and V.category = P.category',
}


@pytest.mark.parametrize("name", list(B10_DEFINITIONS))
def test_b10_definitions(name: str) -> None:
    text = B10_DEFINITIONS[name]
    out = check(text, B10)
    assert out.dtype == BOOL
    assert check(unparse(out), B10) == out


# ---------------------------------------------------------------- the error fixture


@dataclass(frozen=True)
class Expected:
    line: int
    column: int
    kind: str
    message: str
    hint: str | None  # a substring of the hint; "" means "no hint"; None means "not checked"


@dataclass(frozen=True)
class Case:
    title: str
    schema: str
    segments: tuple[str, ...] | None
    text: str
    errors: tuple[Expected, ...]


_ERROR_LINE = re.compile(r"(\d+):(\d+) (name|type|value|syntax) (.+)")


def load_cases(path: Path = FIXTURE) -> list[Case]:
    cases = []
    for block in re.split(r"\n\s*\n", path.read_text(encoding="utf-8")):
        lines = block.strip("\n").splitlines()
        if not any(line.startswith("input:") for line in lines):
            continue  # the header and section comments
        title, schema, segments, inputs, errors = "", "rich", None, [], []
        in_errors = False
        for line in lines:
            if line.startswith("#"):
                title = title or line.lstrip("# ").strip()
            elif line.startswith("schema:"):
                schema = line.split(":", 1)[1].strip()
            elif line.startswith("segments:"):
                segments = tuple(s.strip() for s in line.split(":", 1)[1].split(","))
            elif line.startswith("input:"):
                inputs.append(line[len("input: ") :])
            elif line.strip() == "errors:":
                in_errors = True
            elif in_errors and line.strip():
                m = _ERROR_LINE.fullmatch(line.strip())
                assert m, f"bad error line in {title!r}: {line!r}"
                message, _, extra = m.group(4).partition(" | ")
                hint: str | None = None
                if extra == "no hint":
                    hint = ""
                elif extra.startswith("hint: "):
                    hint = extra[len("hint: ") :]
                elif extra:
                    raise AssertionError(f"bad error line in {title!r}: {line!r}")
                errors.append(Expected(int(m.group(1)), int(m.group(2)), m.group(3), message, hint))
            else:
                raise AssertionError(f"unexpected line in {title!r}: {line!r}")
        assert title and inputs and errors, f"incomplete fixture block: {block!r}"
        cases.append(Case(title, schema, segments, "\n".join(inputs), tuple(errors)))
    return cases


CASES = load_cases()
KINDS = {
    "name": (SegmentNameError, NameError),
    "type": (SegmentTypeError, TypeError),
    "value": (SegmentValueError, ValueError),
    "syntax": (SegmentSyntaxError, ValueError),
}


def test_fixture_is_well_formed() -> None:
    assert len(CASES) >= 100
    titles = [c.title for c in CASES]
    assert len(set(titles)) == len(titles), "fixture titles must be unique"
    assert {e.kind for c in CASES for e in c.errors} == {"name", "type", "value"}
    assert sum(len(c.errors) >= 3 for c in CASES) >= 3


@pytest.mark.parametrize("case", CASES, ids=[c.title for c in CASES])
def test_error_fixture(case: Case) -> None:
    schema = SCHEMAS[case.schema]
    errors = validate(case.text, schema, segments=case.segments)
    got = [f"{e.line}:{e.column} {e.kind} {e.message} | hint: {e.hint}" for e in errors]
    assert len(errors) == len(case.errors), got
    for error, want in zip(errors, case.errors, strict=True):
        where = f"{error.line}:{error.column} {error.kind} {error.message!r} hint={error.hint!r}"
        assert (error.line, error.column, error.kind) == (want.line, want.column, want.kind), where
        assert want.message in error.message, where
        if want.hint == "":
            assert error.hint is None, where
        elif want.hint is not None:
            assert error.hint is not None and want.hint in error.hint, where
        cls, builtin = KINDS[want.kind]
        assert type(error) is cls
        assert isinstance(error, SegmentError) and isinstance(error, builtin)
        assert error.span is not None and error.source == case.text

    # check() raises the same errors: the only one itself, or all of them in a group
    with pytest.raises(SegmentError) as info:
        check(case.text, schema, segments=case.segments)
    raised = info.value
    if len(errors) == 1:
        assert type(raised) is type(errors[0]) and not isinstance(raised, SegmentErrorGroup)
        assert raised.message == errors[0].message
    else:
        assert isinstance(raised, SegmentErrorGroup)
        assert [e.message for e in raised.errors] == [e.message for e in errors]

    # the same errors, at the same places, when check() is given the parsed IR
    from_ir = validate(parse(case.text), schema, segments=case.segments)
    assert [(e.line, e.column, e.message) for e in from_ir] == [
        (e.line, e.column, e.message) for e in errors
    ]


# ---------------------------------------------------------------- error classes and groups

MANY = 'agee > 1 and name + 1 > 2 and vip < true and age = "x" and signup = today'


def test_all_errors_are_reported_at_once() -> None:
    with pytest.raises(SegmentErrorGroup) as info:
        check(MANY, RICH)
    group = info.value
    assert isinstance(group, ExceptionGroup) and isinstance(group, SegmentError)
    errors = group.errors
    assert [type(e) for e in errors] == [
        SegmentNameError,
        SegmentTypeError,
        SegmentTypeError,
        SegmentValueError,
        SegmentTypeError,
    ]
    positions = [(e.line, e.column) for e in errors]
    assert positions == sorted(positions) == [(1, 1), (1, 14), (1, 31), (1, 52), (1, 60)]
    assert list(group.exceptions) == errors
    assert group.message == "5 errors"
    # each error knows the text, so the group's report shows every offending line
    report = str(group)
    assert report.count(MANY) == 5 and report.count("^") >= 5
    assert group.to_dict()["kind"] == "group"


def test_except_star_splits_the_group_by_builtin() -> None:
    caught: dict[str, list[BaseException]] = {}
    try:
        check(MANY, RICH)
    except* TypeError as eg:
        caught["type"] = list(eg.exceptions)
    except* NameError as eg:
        caught["name"] = list(eg.exceptions)
    except* ValueError as eg:
        caught["value"] = list(eg.exceptions)
    assert [type(e) for e in caught["type"]] == [SegmentTypeError] * 3
    assert [type(e) for e in caught["name"]] == [SegmentNameError]
    assert [type(e) for e in caught["value"]] == [SegmentValueError]
    assert all(e.line == 1 for errors in caught.values() for e in errors)


def test_except_star_type_error_only() -> None:
    with pytest.raises(ExceptionGroup) as info:  # what except* TypeError leaves unhandled
        try:
            check(MANY, RICH)
        except* TypeError as eg:
            assert len(eg.exceptions) == 3
    rest = info.value
    assert sorted(type(e).__name__ for e in rest.exceptions) == [
        "SegmentNameError",
        "SegmentValueError",
    ]


@pytest.mark.parametrize(
    ("text", "cls", "builtin"),
    [
        ("agee > 1", SegmentNameError, NameError),
        ("name + 1 > 2", SegmentTypeError, TypeError),
        ('age = "x"', SegmentValueError, ValueError),
        ("age > > 1", SegmentSyntaxError, ValueError),
    ],
)
def test_single_error_is_raised_as_its_own_class(text: str, cls: type, builtin: type) -> None:
    with pytest.raises(builtin) as info:
        check(text, RICH)
    error = info.value
    assert type(error) is cls
    assert isinstance(error, SegmentError)
    assert not isinstance(error, SegmentErrorGroup)
    assert error.errors == [error]
    assert error.line == 1 and error.column is not None


def test_error_class_hierarchy() -> None:
    for cls, builtin in KINDS.values():
        assert issubclass(cls, SegmentError) and issubclass(cls, builtin)
    assert not issubclass(SegmentNameError, (TypeError, ValueError))
    assert not issubclass(SegmentTypeError, (NameError, ValueError))
    assert not issubclass(SegmentValueError, (NameError, TypeError))


def test_error_renders_caret_line() -> None:
    text = 'age > 1 and\n  nme = "x"'
    [error] = validate(text, RICH)
    assert (error.line, error.column) == (2, 3)
    assert str(error) == (
        "unknown field 'nme' (line 2, column 3)\n"
        '    nme = "x"\n'
        "    ^^^\n"
        "hint: did you mean 'name'?"
    )
    assert error.to_dict() == {
        "kind": "name",
        "message": "unknown field 'nme'",
        "line": 2,
        "column": 3,
        "hint": "did you mean 'name'?",
    }


def test_caret_covers_the_whole_offending_expression() -> None:
    text = "vip and name < email"
    [error] = validate(text, RICH)
    lines = str(error).splitlines()
    assert lines[1] == "  " + text
    assert lines[2] == "  " + " " * 8 + "^" * len("name < email")


def test_error_from_ir_has_a_position_but_no_caret() -> None:
    [error] = validate(parse("vip and agee > 1"), RICH)
    assert (error.line, error.column) == (1, 9)
    assert error.source is None
    assert "^" not in str(error)
    assert str(error).startswith("unknown field 'agee' (line 1, column 9)")
    assert "^" in str(error.with_source("vip and agee > 1"))


def test_syntax_errors_stop_before_checking() -> None:
    errors = validate("agee > > 1", RICH)
    assert len(errors) == 1 and isinstance(errors[0], SegmentSyntaxError)
    with pytest.raises(SegmentSyntaxError):
        check("agee > > 1", RICH)


def test_validate_returns_nothing_for_a_good_definition() -> None:
    assert validate("age > 1", RICH) == []
    assert validate(parse("age > 1"), RICH) == []


def test_schema_without_events() -> None:
    profile_only = Schema.of({"age": "int"})
    with pytest.raises(SegmentNameError, match="this schema has no events"):
        check("xEvent.count() > 0", profile_only)


# ---------------------------------------------------------------- properties

_TYPES = ["int", "float", "string", "bool", "timestamp", "date", "list<string>", "list<int>"]
_NAME = st.from_regex(r"[a-z][a-zA-Z0-9_]{3,11}", fullmatch=True)
_TEXT = st.text(alphabet=string.ascii_letters + string.digits + " -_%'\"\\é€", max_size=8)
_COMPARE = st.sampled_from(["=", "!=", "<", "<=", ">", ">="])


@dataclass(frozen=True)
class Atom:
    """One condition that mentions exactly one field, written as ``template.format(name)``."""

    template: str
    name: str
    scope: str  # "profile" or "event"

    def render(self, name: str | None = None) -> str:
        return self.template.format(quote_name(name or self.name))


@st.composite
def _condition(draw: st.DrawFn, dtype: str) -> str:
    """A well-typed condition on a field of type ``dtype``, with ``{}`` for the field."""
    n = draw(st.integers(-1000, 1000))
    m = draw(st.integers(-1000, 1000))
    s = string_literal(draw(_TEXT)).replace("{", "{{").replace("}", "}}")
    t = string_literal(draw(_TEXT)).replace("{", "{{").replace("}", "}}")
    op = draw(_COMPARE)
    options = {
        "int": [
            f"{{}} {op} {n}",
            f"{{}} in [{n}, {m}]",
            f"{{}} + {n} > {m}",
            f'{{}} != "{n}"',
            "{} notIn []",
            f"-{{}} {op} {m}",
        ],
        "float": [
            f"{{}} {op} {n}",
            f"{{}} {op} {n}.5",
            f"{{}} * 2 <= {m}",
            f'{{}} > "{n}.25"',
            f"{{}} in [{n}, {m}.5]",
        ],
        "string": [
            f"{{}} = {s}",
            f"{{}}.startsWith({s})",
            f"{{}} in [{s}, {t}]",
            f"{{}}.contains({s}, false)",
            f"{{}} notIn [{s}]",
            '{} like "a%"',
            f"not ({{}} != {t})",
            "{}.isNull()",
        ],
        "bool": ["{}", "{} = true", "not {}", '{} = "false"', "{}.isNotNull()"],
        "timestamp": [
            "{} occurs < 3 days before now",
            "{} > @2024-01-01",
            '{} <= "2024-02-29T10:00:00Z"',
            "{} occurs last month",
            "{} occurs between @2020-01-01 and now",
            f"{{}}.getYear() {op} 2020",
        ],
        "date": [
            '{} = "2024-01-31"',
            "{} occurs this year",
            f"{{}}.getMonth() {op} {abs(n) % 12}",
            "{} < date(2024, 2, 29)",
        ],
        "list<string>": [
            f"{{}}.includes({s})",
            f"{{}}.count() {op} {abs(n)}",
            f"{{}}.intersects([{s}, {t}])",
            f"{{}} = {s}",
        ],
        "list<int>": [
            f"{{}}.sum() > {n}",
            f"{{}}.includes({n})",
            f"{{}}.max() {op} {m}",
            f"{{}}.supersetOf([{n}])",
        ],
    }[dtype]
    return draw(st.sampled_from(options))


@st.composite
def schemas_and_atoms(draw: st.DrawFn) -> tuple[Schema, list[Atom]]:
    names = draw(st.lists(_NAME, min_size=3, max_size=12, unique_by=str.lower))
    split = draw(st.integers(1, len(names) - 1))
    profile = {n: draw(st.sampled_from(_TYPES)) for n in names[:split]}
    events = {n: draw(st.sampled_from(_TYPES)) for n in names[split:]}
    events["timestamp"] = "timestamp"
    schema = Schema.of(profile, events)
    atoms = []
    for _ in range(draw(st.integers(1, 6))):
        if draw(st.booleans()):
            name = draw(st.sampled_from(sorted(profile)))
            atoms.append(Atom(draw(_condition(profile[name])), name, "profile"))
        else:
            name = draw(st.sampled_from(sorted(n for n in events if n != "timestamp")))
            dtype = events[name]
            count_op, count = draw(_COMPARE), draw(st.integers(0, 5))
            if dtype in ("int", "float") and draw(st.booleans()):
                template = f"xEvent.sum({{}}) {count_op} {count}"
            else:
                inner = draw(_condition(dtype))
                extra = draw(st.sampled_from(["", " and timestamp occurs < 7 days before now"]))
                template = f"xEvent[{inner}{extra}].count() {count_op} {count}"
            atoms.append(Atom(template, name, "event"))
    return schema, atoms


@st.composite
def definitions(draw: st.DrawFn) -> tuple[Schema, list[Atom], Callable[[int | None, str], str]]:
    """A schema, the atoms, and ``render(i, name)`` giving the text with atom i renamed."""
    schema, atoms = draw(schemas_and_atoms())
    joins = [draw(st.sampled_from([" and ", " or ", " AND ", "\n  or "])) for _ in atoms[1:]]
    negate = [draw(st.booleans()) for _ in atoms]

    def render(renamed: int | None = None, name: str = "") -> str:
        parts = []
        for i, atom in enumerate(atoms):
            text = atom.render(name if i == renamed else None)
            parts.append(f"not ({text})" if negate[i] else f"({text})")
        out = parts[0]
        for join, part in zip(joins, parts[1:], strict=True):
            out += join + part
        return out

    return schema, atoms, render


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(definitions())
def test_random_well_typed_definitions_check(
    generated: tuple[Schema, list[Atom], Callable[..., str]],
) -> None:
    schema, atoms, render = generated
    text = render()
    out = check(text, schema)
    assert out.dtype == BOOL
    for n in ir.walk(out):
        if isinstance(n, ir.Attr):
            assert n.dtype == schema.profile[n.name].dtype
        elif isinstance(n, ir.EventField):
            assert n.var == "" and n.dtype == schema.events[n.name].dtype
        if isinstance(n, ir.Expr):
            assert n.dtype is not None and n.dtype is not Special.ERROR
    bound = {n.name for n in ir.walk(out) if isinstance(n, (ir.Attr, ir.EventField))}
    assert {a.name for a in atoms} <= bound
    # the canonical text checks to the same tree
    assert check(unparse(out), schema) == out


def _typo(name: str, position: int, letter: str) -> str:
    i = position % len(name)
    return name[:i] + letter + name[i + 1 :]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(definitions(), st.data())
def test_one_typo_gives_one_name_error_with_a_suggestion(
    generated: tuple[Schema, list[Atom], Callable[..., str]], data: st.DataObject
) -> None:
    schema, atoms, render = generated
    index = data.draw(st.integers(0, len(atoms) - 1))
    atom = atoms[index]
    position = data.draw(st.integers(0, 100))
    letter = data.draw(st.sampled_from("qxzjkvw"))
    typo = _typo(atom.name, position, letter)
    known = {n.lower() for n in (*schema.profile, *schema.events)}
    assume(typo.lower() not in known)
    # the names the checker suggests from: profile attributes, plus event fields in event scopes
    pool = list(schema.profile) + (list(schema.events) if atom.scope == "event" else [])
    assume(atom.name in difflib.get_close_matches(typo, pool, n=3, cutoff=0.6))

    text = render(index, typo)
    errors = validate(text, schema)
    assert len(errors) == 1, [str(e) for e in errors]
    [error] = errors
    assert type(error) is SegmentNameError
    assert error.message == f"unknown field {typo!r}"
    assert error.hint is not None and repr(atom.name) in error.hint
    # the position points at the typo
    lines = text.split("\n")
    start = sum(len(line) + 1 for line in lines[: error.line - 1]) + error.column - 1
    assert text[start:].startswith(quote_name(typo))
    with pytest.raises(SegmentNameError):
        check(text, schema)
