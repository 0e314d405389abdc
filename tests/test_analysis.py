"""What analyze() says a definition reads, how far back it looks and how it can be evaluated."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from engine import Schema, SegmentFile, analyze, check
from engine.analysis import history

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = Schema.from_dict(tomllib.loads((ROOT / "examples" / "b10.schema.toml").read_text()))
HOUR, DAY = 3_600_000, 86_400_000


def facts(text: str, **kw):
    return analyze(check(text, SCHEMA), SCHEMA, **kw)


def eligible(a) -> set[str]:
    return {k for k, v in a.methods.items() if v.eligible}


def test_profile_only():
    a = facts('country = "US" and age >= 25')
    assert a.profile_fields == {"country", "age"} and not a.event_fields
    assert a.event_types == frozenset() and not a.reads_events and a.profile_only
    assert not a.time_dependent
    assert eligible(a) == {"batch", "streaming", "edge"}


@pytest.mark.parametrize(
    ("text", "types"),
    [
        ('xEvent[eventType = "purchase"].count() > 0', {"purchase"}),
        ('xEvent[eventType in ["a", "b"] and price > 1].count() > 0', {"a", "b"}),
        ('xEvent[eventType = "a" or eventType = "b"].count() > 0', {"a", "b"}),
        ('xEvent[eventType = "a"][eventType in ["a", "b"]].count() > 0', {"a"}),
        ('xEvent[eventType.equals("a")].count() > 0', {"a"}),
        ("xEvent[price > 1].count() > 0", None),
        ('xEvent[eventType = "a" or price > 1].count() > 0', None),
        ("xEvent.count() > 3", None),
        (
            'exists X from xEvent where X.eventType = "p", Y from xEvent[eventType = "v"]',
            {"p", "v"},
        ),
        (
            'chain(xEvent, timestamp, [A: WHAT(eventType = "a"), B: WHAT(eventType = "b")])',
            {"a", "b"},
        ),
        ('xEvent[eventType = "a"].count() > 0 and xEvent.count() > 9', None),
        # forall's where is what every event must meet: events of any type decide it
        ('forall X from xEvent where X.eventType = "p"', None),
        ('forall X from xEvent[eventType = "v"] where X.eventType = "p"', {"v"}),
    ],
)
def test_event_types(text, types):
    assert facts(text).event_types == (None if types is None else frozenset(types))


@pytest.mark.parametrize(
    ("text", "lookback"),
    [
        ("xEvent[timestamp occurs < 7 days before now].count() > 0", 7 * DAY),
        ("xEvent[timestamp occurs <= 24 hours before now].count() > 0", DAY),
        ("xEvent[timestamp occurs = 2 hours before now].count() > 0", 3 * HOUR),
        ("xEvent[timestamp occurs today].count() > 0", DAY),
        ("xEvent[timestamp occurs yesterday].count() > 0", 2 * DAY),
        ("xEvent[timestamp occurs > 7 days before now].count() > 0", None),
        ("xEvent[timestamp occurs before now].count() > 0", None),
        ("xEvent[timestamp occurs on date(2024, 1, 1)].count() > 0", None),
        (
            "xEvent[timestamp occurs < 1 day before now and timestamp occurs < 3 days before now].count() > 0",
            DAY,
        ),
        (
            "xEvent[timestamp occurs < 3 days before now].count() > 0 and xEvent[timestamp occurs today]",
            3 * DAY,
        ),
        (
            'chain(xEvent, timestamp, [A: WHAT(eventType = "a") WHEN(< 2 hours before now)])',
            2 * HOUR,
        ),
        # a window anchored on an outer event's time is bounded by that event's own window
        (
            "exists A from xEvent where A.timestamp occurs < 1 day before now, "
            "B from xEvent where B.timestamp occurs after A.timestamp",
            DAY,
        ),
        (
            "exists A from xEvent where A.timestamp occurs < 1 day before now and "
            "not (exists P from xEvent where P.timestamp occurs after A.timestamp)",
            DAY,
        ),
        # an old event makes this false, whatever the window in the where
        ("forall X from xEvent where X.timestamp occurs < 1 day before now", None),
        (
            "forall X from xEvent[timestamp occurs < 2 days before now] where "
            "X.timestamp occurs < 1 day before now",
            2 * DAY,
        ),
    ],
)
def test_lookback(text, lookback):
    assert facts(text).lookback_ms == lookback


@pytest.mark.parametrize(
    ("text", "dependent"),
    [
        ("age > 3", False),
        ("signup_ts occurs before date(2020, 1, 1)", False),
        ("signup_ts occurs this month", True),
        ("signup_ts.getYear() = currentYear()", True),
        ("xEvent[timestamp occurs < 1 day before now].count() > 0", True),
        ("exists A from xEvent, B from xEvent where B.timestamp occurs after A.timestamp", False),
    ],
)
def test_time_dependent(text, dependent):
    assert facts(text).time_dependent is dependent


def test_fields_and_references():
    a = facts('inSegment("gold") and chain(xEvent, timestamp, [A: WHAT(category = "x")])')
    assert a.segment_refs == {"gold"} and a.event_fields == {"category", "timestamp"}


@pytest.mark.parametrize(
    ("text", "methods", "reason"),
    [
        (
            'xEvent[eventType = "a" and timestamp occurs < 24 hours before now].count() >= 5',
            {"batch", "streaming", "edge"},
            "single event",
        ),
        (
            'xEvent[eventType = "a" and timestamp occurs < 3 days before now].count() > 0',
            {"batch"},
            "72 hours",
        ),
        ('xEvent[eventType = "a"].count() > 0', {"batch"}, "no time window"),
        (
            'not chain(xEvent, timestamp, [A: WHAT(eventType = "a") WHEN(today)])',
            {"batch"},
            "negated",
        ),
        ('inSegment("x") and age > 3', {"batch", "streaming", "edge"}, "segment of segments"),
        (
            'chain(xEvent, timestamp, [A: WHAT(eventType = "a") WHEN(today), B: WHAT(eventType = "b") WHEN(today)])',
            {"batch", "streaming", "edge"},
            "single event",
        ),
        (
            'xEvent[eventType = "a" and timestamp occurs today].count() > 0 and '
            'xEvent[eventType = "b" and timestamp occurs today].count() > 0',
            {"batch", "streaming", "edge"},
            "several events",
        ),
    ],
)
def test_methods(text, methods, reason):
    a = facts(text)
    assert eligible(a) == methods
    assert reason in a.methods["streaming"].reason


def test_edge_needs_profile_only_references():
    text = 'inSegment("ref") and xEvent[eventType = "a" and timestamp occurs today].count() > 0'
    profile_only = facts("age > 3")
    with_events = facts('xEvent[eventType = "b"].count() > 0')
    assert eligible(facts(text)) == {"batch", "streaming"}  # unknown reference
    assert eligible(facts(text, references={"ref": profile_only}.get)) == {
        "batch",
        "streaming",
        "edge",
    }
    assert eligible(facts(text, references={"ref": with_events}.get)) == {"batch", "streaming"}


def test_b10_examples():
    found = {
        d.name: eligible(facts(d.pql))
        for d in SegmentFile.load(ROOT / "examples" / "segments.toml")
    }
    assert found["us_25_40"] == found["eu_unknown_age"] == {"batch", "streaming", "edge"}
    assert found["recent_buyers"] == found["big_spenders_30d"] == {"batch"}
    assert found["cart_abandoners"] == {"batch", "streaming", "edge"}


def test_to_dict_is_json_ready():
    import json

    json.dumps(facts('xEvent[eventType = "a"].count() > 0').to_dict())


def test_history_per_event_type():
    """How far back each event type is read, over several definitions: the widest window
    that reads it; no bound when one condition has none; a condition of any type widens
    every type and stands for the types not named (key None)."""
    week = facts('xEvent[eventType = "purchase" and timestamp occurs < 7 days before now]'
                 ".count() > 0")
    day = facts('xEvent[eventType in ["purchase", "page_view"] and '
                "timestamp occurs < 1 day before now].count() > 0")
    ever = facts('xEvent[eventType = "add_to_cart"].count() > 0')
    anything = facts("xEvent[timestamp occurs < 2 hours before now].count() > 0")
    profile = facts('country = "US"')
    assert history([week, day]) == {"purchase": 7 * DAY, "page_view": DAY}
    assert history([week, ever, profile]) == {"purchase": 7 * DAY, "add_to_cart": None}
    assert history([day, anything]) == {"purchase": DAY, "page_view": DAY, None: 2 * HOUR}
    assert history([week, facts("xEvent.count() > 0")]) == {"purchase": None, None: None}
    assert history([profile]) == {}
