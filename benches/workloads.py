"""Segment workloads over B10 for scaling measurements: many definitions, few shapes.

* `b10_segments()`: the ten segments of ``examples/segments.toml`` (name -> PQL).
* `stream_definitions(count, seed)`: the streaming workload of issue 5: the ten B10 segments
  plus ``count - 10`` distinct variants of them (`b10_workload` over the ten B10 shapes: the
  same definitions with other countries, ages, tiers, categories, windows and thresholds).
* `b10_workload(count, shapes, seed)`: ``count`` definitions (name -> PQL) made of exactly
  ``shapes`` distinct *shapes*, instantiated round-robin (definition ``i`` is an instance of
  shape ``i % shapes``). A shape is a definition with its literal constants abstracted away;
  the instances of one shape differ only in literals (numbers, strings, timestamps, the
  amounts of durations, the items of lists of one length), which the compiler hoists into
  kernel arguments, so every instance of a shape generates the same kernel source.

Shapes combine templates like those of ``examples/segments.toml`` (the first ten shapes are
those ten definitions themselves, with their literals as slots): attribute conditions on
age, country, loyalty_tier, lifetime_value, email_opt_in and signup_ts; counts, sums,
averages, min and max over windows of one event type (with category, price and time
filters); ``exists`` and ``forall`` with one and two event variables; distinct category
counts; ``chain`` sequences; ``not``/``and``/``or`` combinations; ``isNull``; ``in`` lists;
``startsWith``-style string functions. Literals come from the data's domains
(`store.synth`: event types, categories, countries, tiers, the 90 days of events before
B10's ``now``), with thresholds chosen so that most segments are non-empty.

Shape identity is decided with the language front end, not the store: the checked and
optimized definition in canonical form (`engine.unparse`) with its literals replaced by
placeholders and with the names the kernel source cannot tell apart merged (fields of the
same layout, event variables, event types, the operator and unit of a window anchored on
``now``, the kind of test of a string field against literals). Merging too much only
rejects a candidate shape; every instance is checked to
have its shape's key. The kernel sources are the real test: `kernel_shapes` groups
definitions by the source ``engine.session.Engine(store).source([name])`` generates (all
literals hoisted into arguments) and ``python benches/workloads.py --verify`` checks that a
workload has exactly ``shapes`` of them.

Everything is deterministic in ``(count, shapes, seed)``; the shapes of a smaller workload
with the same seed are the first shapes of a larger one, with the same instances.
"""

from __future__ import annotations

import random
import re
import sys
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SEGMENTS_TOML = REPO / "examples" / "segments.toml"
SCHEMA_TOML = REPO / "examples" / "b10.schema.toml"

__all__ = ["b10_segments", "b10_workload", "kernel_shapes", "shape_key", "stream_definitions"]


def b10_segments() -> dict[str, str]:
    """The ten B10 segments of ``examples/segments.toml``: name -> PQL text."""
    data = tomllib.loads(SEGMENTS_TOML.read_text(encoding="utf-8"))
    return {name: table["pql"].strip() for name, table in data["segment"].items()}


# ----------------------------------------------------------------------------- domains
# From store.synth (B10): shares of the event types, countries by share, tiers, 1000
# categories with Zipf(1) popularity (c0000 the most popular), events uniform over the 90
# days before now = 2025-01-01T00:00Z, signup between 7 years and 90 days before now.

PAGE, PRODUCT, SEARCH, CART, OPEN, BUY, CLICK = (
    "page_view", "product_view", "search", "add_to_cart", "email_open", "purchase",
    "email_click")
EVENT_TYPES = (PAGE, PRODUCT, SEARCH, CART, OPEN, BUY, CLICK)
COMMERCE = (PRODUCT, CART, BUY)  # the only events with a category and a price
COUNTRIES = ("US", "GB", "IN", "BR", "DE", "CA", "FR", "JP", "IT", "ES", "MX", "AU", "KR",
             "ID", "NL", "PL")  # the 16 most common, 86% of profiles
TIERS = ("bronze", "silver", "gold", "platinum")
CATEGORIES = tuple(f"c{i:04d}" for i in range(40))  # the most viewed ones
COUNTRY_PREFIXES = ("A", "B", "C", "D", "F", "I", "M", "N", "P", "S")
COUNTRY_SUFFIXES = ("E", "R", "S", "N", "L", "T")
CATEGORY_PREFIXES = ("c000", "c001", "c002", "c003", "c004", "c005")
# Count thresholds per event type: page views are 70% of events, email clicks 0.5%.
COUNT_RANGE = {PAGE: (2, 12), PRODUCT: (1, 5), SEARCH: (1, 4), CART: (1, 3), OPEN: (1, 3),
               BUY: (1, 3), CLICK: (1, 2)}
HOURS = (6, 12, 24, 36, 48, 72)
RARE_HOURS = (24, 30, 36, 42, 48, 60, 72, 96)  # windows for events that are not frequent


def _q(text: str) -> str:
    return f'"{text}"'


def _plural(n: int, unit: str) -> str:
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


class _Draw:
    """The literals of one definition. Slots of one domain get distinct values (so the
    compiler, which shares an argument between equal literals of one column or window,
    sees the same pattern in every instance); a template that wants two equal literals
    draws once and writes the value twice."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: dict[str, set[Any]] = {}

    def _fresh(self, domain: str, pool: Iterable[Any], k: int = 1) -> list[Any]:
        used = self.used.setdefault(domain, set())
        free = [x for x in pool if x not in used]
        if len(free) < k:
            raise ValueError(f"a shape uses more than {len(used)} values of {domain}")
        picked = self.rng.sample(free, k)
        used.update(picked)
        return picked

    def country(self) -> str:
        return _q(self._fresh("country", COUNTRIES)[0])

    def countries(self, k: int) -> str:
        return "[" + ", ".join(_q(c) for c in self._fresh("country", COUNTRIES, k)) + "]"

    def tier(self) -> str:
        return _q(self._fresh("tier", TIERS)[0])

    def tiers(self, k: int) -> str:
        return "[" + ", ".join(_q(t) for t in self._fresh("tier", TIERS, k)) + "]"

    def category(self) -> str:
        return _q(self._fresh("category", CATEGORIES)[0])

    def categories(self, k: int) -> str:
        return "[" + ", ".join(_q(c) for c in self._fresh("category", CATEGORIES, k)) + "]"

    def prefix(self, domain: str, pool: tuple[str, ...]) -> str:
        return _q(self._fresh(domain, pool)[0])

    def span(self, unit: str, lo: int, hi: int, choices: tuple[int, ...] = ()) -> str:
        """``N unit(s)`` of a window: distinct amounts per unit within a definition."""
        n = self._fresh(f"span:{unit}", choices or range(lo, hi + 1))[0]
        return _plural(n, unit)

    def int(self, lo: int, hi: int, domain: str = "") -> int:
        """A whole number; distinct from the others of ``domain`` in this definition (the
        optimizer merges equal conditions, so equal literals could change the shape)."""
        if not domain:
            return self.rng.randint(lo, hi)
        return int(self._fresh(domain, range(lo, hi + 1))[0])

    def pick(self, pool: tuple[Any, ...], domain: str = "") -> Any:
        return self._fresh(domain, pool)[0] if domain else self.rng.choice(pool)

    def count(self, event_type: str, selective: bool = False) -> int:
        """A count threshold for events of a type (lower when a filter or a short window
        already makes them rare)."""
        lo, hi = COUNT_RANGE[event_type]
        return self.rng.randint(lo, lo + (hi - lo) // 3 if selective else hi)

    def date(self) -> str:
        """A day of B10's signups (between 7 years and 90 days before now)."""
        year = self.rng.randint(2018, 2024)
        return f"@{year}-{self.rng.randint(1, 9 if year == 2024 else 12):02d}-01"


Render = Callable[[_Draw], str]


@dataclass(frozen=True)
class _Atom:
    render: Render
    events: int  # event queries in it (a shape takes at most two)
    compound: bool  # needs parentheses as an operand of and/or/not
    # The attributes and event types it tests: a shape tests each in one template only
    # (country = "IN" and country in ["GB", "US"] would be empty whatever the literals).
    fields: frozenset[str] = frozenset()


# ----------------------------------------------------------------------------- templates
# Each maker takes the shape's random generator (structural choices: event types, units,
# operators, functions) and returns an atom whose render draws the literals.


FREQUENT = (PAGE, PRODUCT, SEARCH)  # 91% of events


def _window(d: _Draw, unit: str, event_type: str = PAGE) -> str:
    if unit == "hour":
        return d.span("hour", 0, 0, HOURS if event_type in FREQUENT else RARE_HOURS)
    return d.span("day", 2, 60)


def _attr_country(r: random.Random) -> _Atom:
    op = r.choice(("=", "=", "!="))
    return _Atom(lambda d: f"country {op} {d.country()}", 0, False, frozenset({"country"}))


def _attr_country_in(r: random.Random) -> _Atom:
    k, fn = r.choice((2, 3, 5)), r.choice(("in", "in", "notIn"))
    return _Atom(lambda d: f"country {fn} {d.countries(k)}", 0, False, frozenset({"country"}))


def _attr_tier(r: random.Random) -> _Atom:
    if r.random() < 0.5:
        op = r.choice(("=", "!="))
        return _Atom(lambda d: f"loyalty_tier {op} {d.tier()}", 0, False, frozenset({"tier"}))
    fn = r.choice(("in", "notIn"))
    return _Atom(lambda d: f"loyalty_tier {fn} {d.tiers(2)}", 0, False, frozenset({"tier"}))


def _attr_age(r: random.Random) -> _Atom:
    form = r.choice(("range", "range", "above", "below"))
    if form == "range":
        def render(d: _Draw) -> str:
            lo = d.int(18, 55, "age")
            return f"age >= {lo} and age <= {d.int(lo + 5, lo + 25, 'age')}"
        return _Atom(render, 0, True, frozenset({"age"}))
    op = r.choice((">", ">=")) if form == "above" else r.choice(("<", "<="))
    lo, hi = (21, 65) if form == "above" else (25, 70)
    return _Atom(lambda d: f"age {op} {d.int(lo, hi, 'age')}", 0, False, frozenset({"age"}))


def _attr_age_null(r: random.Random) -> _Atom:
    fn = r.choice(("isNull", "isNotNull"))
    fill = r.choice((_attr_country, _attr_tier, _attr_ltv))(r)
    return _Atom(lambda d: f"age.{fn}() and {fill.render(d)}", 0, True,
                 fill.fields | {"age"})


def _attr_ltv(r: random.Random) -> _Atom:
    if r.random() < 0.75:
        op = r.choice((">", ">="))
        pool = (100, 150, 200, 300, 400, 500, 750, 1000, 1500, 2000)
    else:
        op = r.choice(("<", "<="))
        pool = (10, 20, 30, 50, 75)
    return _Atom(lambda d: f"lifetime_value {op} {d.pick(pool, 'ltv')}", 0, False,
                 frozenset({"ltv"}))


def _attr_opt_in(r: random.Random) -> _Atom:
    text = r.choice(("email_opt_in", "email_opt_in", "not email_opt_in"))
    # No literal of its own: always paired with a condition that has one.
    other = r.choice((_attr_country, _attr_tier, _attr_ltv, _attr_age))(r)
    return _Atom(lambda d: f"{text} and {other.render(d)}", 0, True,
                 other.fields | {"opt_in"})


def _attr_signup(r: random.Random) -> _Atom:
    form = r.choice(("recent", "tenure", "year", "between", "since"))
    signup = frozenset({"signup"})
    if form == "recent":
        unit = r.choice(("day", "month"))
        lo, hi = (100, 1500) if unit == "day" else (4, 48)
        return _Atom(lambda d: f"signup_ts occurs < {d.span(unit, lo, hi)} before now", 0,
                     False, signup)
    if form == "tenure":
        return _Atom(lambda d: f"signup_ts occurs > {d.span('year', 1, 6)} before now", 0,
                     False, signup)
    if form == "year":
        op = r.choice(("=", ">=", "<="))
        return _Atom(lambda d: f"signup_ts.getYear() {op} {d.int(2018, 2024, 'year')}", 0,
                     False, signup)
    if form == "between":
        def render(d: _Draw) -> str:
            y = d.int(2018, 2022)
            return (f"signup_ts occurs between @{y}-{d.int(1, 12):02d}-01 and "
                    f"@{y + d.int(1, 2)}-{d.int(1, 12):02d}-01")
        return _Atom(render, 0, False, signup)
    op = r.choice(("<", ">"))
    return _Atom(lambda d: f"signup_ts {op} {d.date()}", 0, False, signup)


def _attr_string_fn(r: random.Random) -> _Atom:
    if r.random() < 0.7:
        fn = r.choice(("startsWith", "startsWith", "endsWith", "doesNotStartWith"))
        pool = COUNTRY_SUFFIXES if fn == "endsWith" else COUNTRY_PREFIXES
        return _Atom(lambda d: f"country.{fn}({d.prefix('country_' + fn, pool)})", 0, False,
                     frozenset({"country"}))
    fn = r.choice(("startsWith", "contains"))
    pool = ("b", "s", "g", "p") if fn == "startsWith" else ("ol", "ld", "il", "at")
    return _Atom(lambda d: f"loyalty_tier.{fn}({d.prefix('tier_' + fn, pool)})", 0, False,
                 frozenset({"tier"}))


def _attr_ratio(r: random.Random) -> _Atom:
    op = r.choice((">", ">="))
    return _Atom(lambda d: f"lifetime_value / age {op} "
                           f"{d.pick((2, 3, 5, 8, 10, 15, 20), 'ratio')}", 0, False,
                 frozenset({"ltv", "age"}))


def _types(*names: str) -> frozenset[str]:
    return frozenset(f"event:{n}" for n in names)


def _ev_count(r: random.Random) -> _Atom:
    e = r.choice(EVENT_TYPES)
    unit = r.choice(("hour", "day", "day")) if e in FREQUENT else "day"
    op = r.choice((">=", ">=", ">", "<=", "="))

    def render(d: _Draw) -> str:
        return (f'xEvent[eventType = "{e}" and timestamp occurs < {_window(d, unit, e)} before '
                f"now].count() {op} {d.count(e, selective=unit == 'hour' or op == '=')}")
    return _Atom(render, 1, False, _types(e))


def _ev_count_category(r: random.Random) -> _Atom:
    e = r.choice(COMMERCE)
    form = r.choice(("eq", "in", "prefix"))
    op = r.choice((">=", ">="))

    def render(d: _Draw) -> str:
        if form == "eq":
            cat = f"category = {d.category()}"
        elif form == "in":
            cat = f"category in {d.categories(3)}"
        else:
            cat = f"category.startsWith({d.prefix('category_prefix', CATEGORY_PREFIXES)})"
        return (f'xEvent[eventType = "{e}" and {cat} and timestamp occurs < '
                f"{_window(d, 'day')} before now].count() {op} {d.count(e, selective=True)}")
    return _Atom(render, 1, False, _types(e))


def _ev_count_price(r: random.Random) -> _Atom:
    e = r.choice(COMMERCE)
    cmp = r.choice((">", ">=", "<"))

    def render(d: _Draw) -> str:
        price = d.pick((20, 50, 80, 100, 150, 200)) if cmp != "<" else d.pick((10, 20, 30, 50))
        return (f'xEvent[eventType = "{e}" and price {cmp} {price} and timestamp occurs < '
                f"{_window(d, 'day')} before now].count() >= {d.count(e, selective=True)}")
    return _Atom(render, 1, False, _types(e))


def _ev_aggregate(r: random.Random) -> _Atom:
    e = r.choice((BUY, BUY, CART, PRODUCT))
    fn = r.choice(("sum", "sum", "average", "max", "min"))
    op = "<" if fn == "min" else r.choice((">", ">="))
    pools = {"sum": (100, 200, 300, 500, 750, 1000), "average": (30, 50, 80, 120, 200),
             "max": (100, 150, 200, 300, 500), "min": (10, 20, 30, 40)}

    def render(d: _Draw) -> str:
        return (f'xEvent[eventType = "{e}" and timestamp occurs < {_window(d, "day")} before '
                f"now].{fn}(price) {op} {d.pick(pools[fn])}")
    return _Atom(render, 1, False, _types(e))


def _ev_distinct(r: random.Random) -> _Atom:
    e = r.choice((PRODUCT, PRODUCT, CART, BUY))
    hi = 5 if e == PRODUCT else 2

    def render(d: _Draw) -> str:
        return (f'xEvent[eventType = "{e}" and timestamp occurs < {_window(d, "day")} before '
                f"now].category.distinct().count() >= {d.int(2, hi)}")
    return _Atom(render, 1, False, _types(e))


def _ev_exists(r: random.Random) -> _Atom:
    e = r.choice(COMMERCE)
    form = r.choice(("category", "price", "both"))

    def render(d: _Draw) -> str:
        conds = [f'A.eventType = "{e}"']
        if form in ("category", "both"):
            conds.append(f"A.category = {d.category()}")
        if form in ("price", "both"):
            conds.append(f"A.price > {d.pick((50, 100, 150, 200, 300))}")
        conds.append(f"A.timestamp occurs < {_window(d, 'day')} before now")
        return "exists A from xEvent where " + " and ".join(conds)
    return _Atom(render, 1, True, _types(e))


def _ev_followed_by(r: random.Random) -> _Atom:
    """Two event variables: B after A within a dynamic window (S10's form)."""
    first, second = r.choice(((PRODUCT, CART), (CART, BUY), (PRODUCT, BUY), (BUY, PRODUCT),
                              (SEARCH, PRODUCT), (OPEN, PAGE), (CLICK, PAGE)))
    unit = r.choice(("hour", "day"))
    same_cat = first in COMMERCE and second in COMMERCE and r.random() < 0.6
    windowed = r.random() < 0.7

    def render(d: _Draw) -> str:
        a = f'A.eventType = "{first}"'
        if windowed:
            a += f" and A.timestamp occurs < {_window(d, 'day')} before now"
        b = f'B.eventType = "{second}"'
        if same_cat:
            b += " and B.category = A.category"
        within = d.int(1, 48) if unit == "hour" else d.int(1, 7)
        b += f" and B.timestamp occurs <= {_plural(within, unit)} after A.timestamp"
        return f"exists A from xEvent where {a}, B from xEvent where {b}"
    return _Atom(render, 2, True, _types(first, second))


def _ev_abandoned(r: random.Random) -> _Atom:
    """S6's form: an event in a window with no later event of another type."""
    first, then = r.choice(((CART, BUY), (PRODUCT, CART), (PRODUCT, BUY), (SEARCH, PRODUCT)))
    unit = r.choice(("hour", "day"))

    def render(d: _Draw) -> str:
        return (f'exists A from xEvent where A.eventType = "{first}" and A.timestamp occurs < '
                f"{_window(d, unit, first)} before now and not (exists P from xEvent where "
                f'P.eventType = "{then}" and P.timestamp occurs after A.timestamp)')
    return _Atom(render, 2, True, _types(first, then))


def _ev_forall(r: random.Random) -> _Atom:
    e = r.choice((BUY, CART))
    op = r.choice((">", ">="))

    def render(d: _Draw) -> str:
        w = _window(d, "day")
        src = f'xEvent[eventType = "{e}" and timestamp occurs < {w} before now]'
        return (f"{src} and (forall X from {src} where X.price {op} "
                f"{d.pick((20, 30, 50, 80))})")
    return _Atom(render, 1, True, _types(e))


def _ev_chain(r: random.Random) -> _Atom:
    steps = r.choice(((PRODUCT, BUY), (PRODUCT, CART), (CART, BUY), (SEARCH, PRODUCT),
                      (PAGE, BUY), (PRODUCT, CART, BUY), (OPEN, CLICK)))
    counted = steps[0] in FREQUENT and r.random() < 0.4
    category = steps[-1] in COMMERCE and r.random() < 0.4
    unit = "hour" if steps[0] in FREQUENT and not counted and r.random() < 0.3 else "day"

    def render(d: _Draw) -> str:
        parts = []
        for k, e in enumerate(steps):
            what = f'eventType = "{e}"'
            if category and k == len(steps) - 1:
                what += f" and category = {d.category()}"
            step = f"{'ABC'[k]}: WHAT({what})"
            if k == 0:
                step += f" WHEN(< {_window(d, unit, e)} before now)"
                if counted:
                    step += f" COUNT({d.int(2, 3)})"
            parts.append(step)
        return f"chain(xEvent, timestamp, [{', '.join(parts)}])"
    return _Atom(render, 1, False, _types(*steps))


def _ev_presence(r: random.Random) -> _Atom:
    """An event query as a condition (has some), or its negation (has none)."""
    e = r.choice(EVENT_TYPES)
    neg = r.random() < 0.5
    unit = r.choice(("hour", "day"))

    def render(d: _Draw) -> str:
        q = (f'xEvent[eventType = "{e}" and timestamp occurs < {_window(d, unit, e)} before '
             "now]")
        if not neg:
            return q
        # Lapsed: had such events, none recently.
        return f'xEvent[eventType = "{e}"].count() >= {d.count(e, selective=True)} and not {q}'
    return _Atom(render, 1, neg, _types(e))


def _ev_last_seen(r: random.Random) -> _Atom:
    e = r.choice((BUY, PRODUCT, CART, PAGE))
    op = r.choice((">", "<"))
    fn = r.choice(("max", "max", "min"))
    return _Atom(lambda d: f'xEvent[eventType = "{e}"].{fn}(timestamp) occurs {op} '
                           f"{d.span('day', 3, 60)} before now", 1, False, _types(e))


def _ev_some_field(r: random.Random) -> _Atom:
    e = r.choice(COMMERCE)
    field = r.choice(("category", "price"))

    def render(d: _Draw) -> str:
        test = (f"category = {d.category()}" if field == "category"
                else f"price > {d.pick((100, 150, 200, 300))}")
        return (f'xEvent[eventType = "{e}" and timestamp occurs < {_window(d, "day")} before '
                f"now].{test}")
    return _Atom(render, 1, False, _types(e))


def _ev_period(r: random.Random) -> _Atom:
    e = r.choice(EVENT_TYPES)
    period = r.choice(("yesterday", "last week", "last month"))
    return _Atom(lambda d: f'xEvent[eventType = "{e}" and timestamp occurs {period}].count() '
                           f">= {d.count(e, selective=period != 'last month')}", 1, False,
                 _types(e))


def _ev_month(r: random.Random) -> _Atom:
    e = r.choice((BUY, PRODUCT, CART))
    return _Atom(lambda d: f'xEvent[eventType = "{e}" and timestamp.getMonth() = '
                           f"{d.int(10, 12)}].count() >= {d.count(e)}", 1, False, _types(e))


def _ev_versus(r: random.Random) -> _Atom:
    """Two counts compared (one window, written twice): more carts than purchases."""
    a, b = r.choice(((CART, BUY), (PRODUCT, CART), (SEARCH, PRODUCT), (OPEN, CLICK)))

    def render(d: _Draw) -> str:
        w = _window(d, "day")
        return (f'xEvent[eventType = "{a}" and timestamp occurs < {w} before now].count() > '
                f'{d.int(1, 3)} * xEvent[eventType = "{b}" and timestamp occurs < {w} before '
                "now].count()")
    return _Atom(render, 2, False, _types(a, b))


ATTRIBUTE_ATOMS: tuple[tuple[Callable[[random.Random], _Atom], int], ...] = (
    (_attr_country, 3), (_attr_country_in, 2), (_attr_tier, 2), (_attr_age, 3),
    (_attr_age_null, 1), (_attr_ltv, 2), (_attr_opt_in, 2), (_attr_signup, 2),
    (_attr_string_fn, 1), (_attr_ratio, 1),
)
EVENT_ATOMS: tuple[tuple[Callable[[random.Random], _Atom], int], ...] = (
    (_ev_count, 4), (_ev_count_category, 3), (_ev_count_price, 1), (_ev_aggregate, 2),
    (_ev_distinct, 1), (_ev_exists, 2), (_ev_followed_by, 2), (_ev_abandoned, 1),
    (_ev_forall, 1), (_ev_chain, 2), (_ev_presence, 2), (_ev_last_seen, 1),
    (_ev_some_field, 1), (_ev_period, 1), (_ev_month, 1), (_ev_versus, 1),
)


def _weighted(r: random.Random, table: tuple[tuple[Callable[[random.Random], _Atom], int], ...]
              ) -> Callable[[random.Random], _Atom]:
    makers, weights = zip(*table, strict=True)
    return r.choices(makers, weights)[0]


def _operand(atom: _Atom, text: str) -> str:
    return f"({text})" if atom.compound else text


def _random_shape(r: random.Random) -> Render:
    """A combination of 1-4 templates (at most two event queries), with and/or/not."""
    n = r.choices((1, 2, 3, 4), (2, 5, 4, 2))[0]
    atoms: list[_Atom] = []
    makers: set[Callable[[random.Random], _Atom]] = set()  # each template once per shape
    fields: frozenset[str] = frozenset()
    for _ in range(500):  # (enough: a shape of four templates always exists)
        if len(atoms) == n:
            break
        events = sum(a.events for a in atoms)
        table = EVENT_ATOMS if events < 2 and r.random() < 0.55 else ATTRIBUTE_ATOMS
        maker = _weighted(r, table)
        atom = maker(r)
        if maker in makers or events + atom.events > 2 or atom.fields & fields:
            continue
        makers.add(maker)
        fields |= atom.fields
        atoms.append(atom)
    n = len(atoms)
    negated = r.randrange(n) if n > 1 and r.random() < 0.25 else -1
    grouped = r.randrange(n - 1) if n > 2 and r.random() < 0.3 else -1  # (x or y) and ...
    top_or = n == 2 and r.random() < 0.25

    def render(d: _Draw) -> str:
        parts = []
        for k, atom in enumerate(atoms):
            text = atom.render(d)
            if k == negated:
                parts.append(f"not ({text})")
            else:
                parts.append(_operand(atom, text) if n > 1 else text)
        if top_or:
            return " or ".join(parts)
        if grouped >= 0:
            parts[grouped: grouped + 2] = [f"({parts[grouped]} or {parts[grouped + 1]})"]
        return " and ".join(parts)
    return render


def _b10_shapes() -> list[Render]:
    """The ten B10 segments (examples/segments.toml) with their literals as slots."""

    def s1(d: _Draw) -> str:
        lo = d.int(18, 50, "age")
        return f"country = {d.country()} and age >= {lo} and age <= {d.int(lo + 5, lo + 20, 'age')}"

    def s2(d: _Draw) -> str:
        return (f"loyalty_tier in {d.tiers(2)} or lifetime_value > "
                f"{d.pick((500, 750, 1000, 1500))}")

    def s3(d: _Draw) -> str:
        return (f'xEvent[eventType = "purchase" and timestamp occurs < {d.span("day", 3, 30)} '
                f"before now].count() >= {d.int(1, 2)}")

    def s4(d: _Draw) -> str:
        w = d.span("day", 7, 60)
        return (f'xEvent[eventType = "product_view" and category = {d.category()} and '
                f"timestamp occurs < {w} before now].count() >= {d.int(1, 4)} and "
                f'xEvent[eventType = "purchase" and timestamp occurs < {w} before now].count() '
                "= 0")

    def s5(d: _Draw) -> str:
        return (f'xEvent[eventType = "purchase" and timestamp occurs < {d.span("day", 14, 60)} '
                f"before now].sum(price) > {d.pick((100, 200, 300, 500, 750))}")

    def s6(d: _Draw) -> str:
        return ('exists A from xEvent where A.eventType = "add_to_cart" and A.timestamp occurs '
                f"< {d.span('hour', 0, 0, HOURS)} before now and not (exists P from xEvent "
                'where P.eventType = "purchase" and P.timestamp occurs after A.timestamp)')

    def s7(d: _Draw) -> str:
        return (f'email_opt_in and xEvent[eventType = "page_view" and timestamp occurs < '
                f"{d.span('hour', 0, 0, HOURS)} before now].count() >= {d.int(2, 8)}")

    def s8(d: _Draw) -> str:
        return (f'xEvent[eventType = "product_view" and timestamp occurs < '
                f"{d.span('day', 7, 60)} before now].category.distinct().count() >= "
                f"{d.int(2, 5)}")

    def s9(d: _Draw) -> str:
        return f"age.isNull() and country in {d.countries(10)}"

    def s10(d: _Draw) -> str:
        return ('exists P from xEvent where P.eventType = "purchase", V from xEvent where '
                'V.eventType = "product_view" and V.category = P.category and V.timestamp '
                f"occurs <= {_plural(d.int(1, 7), 'day')} after P.timestamp")

    return [s1, s2, s3, s4, s5, s6, s7, s8, s9, s10]


# ----------------------------------------------------------------------------- shape keys

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_TIMESTAMP = re.compile(r"@[0-9][0-9TZ:.+\-]*")
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e[+-]?\d+)?(?![\w])")
_LIST = re.compile(r"\[(?:\$[snt](?:, )?)*\]")
_VARIABLE = re.compile(r"\b[A-Z]\b")
_UNIT = re.compile(r"\$n (millisecond|second|minute|hour|day|week|month|year)s?\b")
# A window anchored on now, a period or a literal is bound per run: its operator, amount
# and unit are arguments, not code.
_REF = r"(?:now|today|yesterday|tomorrow|(?:this|last|next) \w+|\$t)"
_CONST_WINDOW = re.compile(
    rf"(occurs |WHEN\()(?:(?:<=|>=|!=|<|>|=) \$n \w+ (?:before|after|from) {_REF}"
    rf"|between {_REF} and {_REF}|(?:on |before |after )?{_REF}(?!\w))")
_STRING_TEST = re.compile(r"\.(?:equals|notEqualTo|startsWith|doesNotStartWith|endsWith"
                          r"|doesNotEndWith|contains|doesNotContain|matches)\(")
_FIELD_CLASS = {  # fields the kernel source cannot tell apart (same storage, same nulls)
    "country": "PS", "loyalty_tier": "PS", "lifetime_value": "PN", "signup_ts": "PN",
    "email_opt_in": "PB", "age": "PA", "category": "EF", "price": "EF",
}
_FIELD = re.compile(r"\b(" + "|".join(_FIELD_CLASS) + r")\b")
_STRING_PREDICATE = re.compile(r"\b(PS|EF)(?: (?:=|!=) \$s| (?:in|notIn) \$l|\.\$f\(\$s\))")


@lru_cache(maxsize=1)
def _schema() -> Any:
    from store.schema import Schema

    return Schema.from_dict(tomllib.loads(SCHEMA_TOML.read_text(encoding="utf-8")))


def shape_key(text: str) -> str:
    """The shape of a definition: its checked, optimized canonical form with literals,
    variable names and layout-equivalent fields abstracted (see the module docstring)."""
    import engine

    canonical = engine.unparse(engine.optimize(engine.check(text, _schema())))
    key = _STRING.sub("$s", canonical)
    key = _TIMESTAMP.sub("$t", key)
    key = _NUMBER.sub("$n", key)
    key = re.sub(r"\b(?:true|false)\b", "$b", key)
    key = _LIST.sub("$l", key)
    key = _VARIABLE.sub("V", key)
    key = _UNIT.sub(lambda m: f"$n {m.group(1)}", key)
    key = _CONST_WINDOW.sub(lambda m: f"{m.group(1)}$w", key)
    key = key.replace(" COUNT($n)", "")  # COUNT(1) is left out of the canonical form
    key = key.replace("$t", "$n")  # a timestamp literal is an int64 argument like a number
    key = _STRING_TEST.sub(".$f(", key)  # one table of booleans per dictionary entry
    key = _FIELD.sub(lambda m: _FIELD_CLASS[m.group(1)], key)
    # A string field tested against literals (=, !=, in, notIn, startsWith...) may become
    # one lookup in a table of booleans per dictionary entry, made at bind time.
    key = _STRING_PREDICATE.sub(r"\1 $p", key)
    key = re.sub(r"not \((PS|EF) \$p\)", r"\1 $p", key)
    return re.sub(r"\bnot (PS|EF) \$p", r"\1 $p", key)


# ----------------------------------------------------------------------------- workloads


def _instance(render: Render, seed: int, shape: int, k: int) -> str:
    return render(_Draw(random.Random(f"pqlite-b10-workload:{seed}:{shape}:{k}")))


@lru_cache(maxsize=8)
def _shapes(count: int, seed: int) -> tuple[tuple[Render, str], ...]:
    """The first ``count`` shapes of ``seed``: (render, key), distinct keys."""
    r = random.Random(f"pqlite-b10-shapes:{seed}")
    out: list[tuple[Render, str]] = []
    seen: set[str] = set()
    candidates = iter(_b10_shapes())
    attempts = 0
    while len(out) < count:
        attempts += 1
        if attempts > 50 * count + 1000:
            raise RuntimeError(f"found only {len(out)} distinct shapes")
        render = next(candidates, None) or _random_shape(r)
        first = _instance(render, seed, len(out), 0)
        key = shape_key(first)
        if key in seen:
            continue
        # Every shape must have literals to vary, with room for distinct instances.
        if len({_instance(render, seed, len(out), k) for k in range(12)}) < 5:
            continue
        seen.add(key)
        out.append((render, key))
    return tuple(out)


def b10_workload(count: int, shapes: int, seed: int = 0) -> dict[str, str]:
    """``count`` definitions (name -> PQL) over B10 made of exactly ``shapes`` shapes.

    Definition ``i`` is named ``w{i:04d}_s{i % shapes:03d}`` and is instance ``i // shapes``
    of shape ``i % shapes`` (round-robin: each shape gets ``count / shapes`` definitions,
    or one more). Instances of a shape differ in literals only, and each instance is checked
    to have its shape's key. Deterministic in the arguments.
    """
    if shapes < 1 or count < shapes:
        raise ValueError(f"need 1 <= shapes <= count, not count={count}, shapes={shapes}")
    table = _shapes(shapes, seed)
    width = max(4, len(str(count - 1)))
    out: dict[str, str] = {}
    texts: set[str] = set()
    for i in range(count):
        s, k = i % shapes, i // shapes
        render, key = table[s]
        for attempt in range(20):  # prefer an instance not generated already
            text = _instance(render, seed, s, k + attempt * 1_000_003)
            if text not in texts:
                break
        got = shape_key(text)
        if got != key:  # pragma: no cover - a template whose literals change the code
            raise AssertionError(f"instance {k} of shape {s} has another shape:\n  {text}\n"
                                 f"  {got}\n  vs {key}")
        texts.add(text)
        out[f"w{i:0{width}d}_s{s:03d}"] = text
    return out


def stream_definitions(count: int = 100, seed: int = 0) -> dict[str, str]:
    """The ten B10 segments, then ``count - 10`` variants of them (name -> PQL): instances of
    the ten B10 shapes with other literals (`b10_workload`, round-robin over the shapes),
    every text distinct. Shapes with few literals to vary (S6: six windows, S10: seven
    day counts) drop out of the rotation once their distinct instances are used up."""
    segments = b10_segments()
    if count <= len(segments):
        raise ValueError(f"need more than {len(segments)} definitions, not {count}")
    out = dict(segments)
    seen = {" ".join(text.split()) for text in segments.values()}  # (the TOML's line breaks)
    for name, text in b10_workload(4 * count, len(segments), seed).items():
        if len(out) == count:
            break
        if text not in seen:
            seen.add(text)
            out[name] = text
    if len(out) < count:  # pragma: no cover - the B10 shapes have hundreds of instances
        raise ValueError(f"only {len(out)} distinct definitions of the B10 shapes")
    return out


def kernel_shapes(store: Any, definitions: Mapping[str, str]) -> dict[str, list[str]]:
    """Definitions grouped by the kernel source each generates alone (its literals hoisted
    into arguments): source -> names. Defines every definition on an `engine.Engine` over
    ``store`` (checks and generates, compiles nothing). The ``# segment NAME`` comment of a
    source is left out, since names differ."""
    from engine.session import Engine

    eng = Engine(store)
    groups: dict[str, list[str]] = {}
    for name, text in definitions.items():
        eng.define(name, text)
    for name in definitions:
        source = eng.source([name]).source
        source = "\n".join(line for line in source.splitlines()
                           if not line.lstrip().startswith("# segment "))
        groups.setdefault(source, []).append(name)
    return groups


def main(argv: list[str] | None = None) -> int:
    import argparse
    import time

    parser = argparse.ArgumentParser(description="Generate a B10 workload; optionally check "
                                     "that it defines and has the expected kernel shapes.")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--shapes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", type=int, default=0, metavar="N",
                        help="print the first N definitions")
    parser.add_argument("--verify", action="store_true",
                        help="define every definition on the B10 store and count distinct "
                             "kernel sources")
    parser.add_argument("--store", type=Path,
                        default=REPO / ".bench-data" / "b10-200000" / "store")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    work = b10_workload(args.count, args.shapes, args.seed)
    keys = {shape_key(t) for t in work.values()}
    print(f"{len(work)} definitions, {len(keys)} shape keys, "
          f"{len(set(work.values()))} distinct texts, generated in "
          f"{time.perf_counter() - started:.1f} s")
    for name, text in list(work.items())[: args.show]:
        print(f"{name}: {text}")
    if not args.verify:
        return 0
    from store import ProfileStore

    st = ProfileStore.open(args.store)
    started = time.perf_counter()
    groups = kernel_shapes(st, work)
    by_shape: dict[str, set[str]] = {}
    for source, names in groups.items():
        for name in names:
            by_shape.setdefault(name.rsplit("_s", 1)[1], set()).add(source)
    split = {s: len(v) for s, v in by_shape.items() if len(v) > 1}
    merged = [names for names in groups.values()
              if len({n.rsplit("_s", 1)[1] for n in names}) > 1]
    print(f"all {len(work)} definitions define on {args.store} ({len(st):,} profiles); "
          f"{len(groups)} distinct kernel sources (expected {args.shapes}) in "
          f"{time.perf_counter() - started:.1f} s")
    for s, n in split.items():
        print(f"  shape {s} has {n} different sources")
    for names in merged:
        print(f"  shapes {sorted({n.rsplit('_s', 1)[1] for n in names})} share one source")
    ok = len(groups) == args.shapes and not split and not merged
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "src"))
    raise SystemExit(main())
