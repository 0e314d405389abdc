"""Hypothesis strategies for random *well-typed* segment definitions over random stores.

Used by tests/test_compiled.py to test the compiler (`engine.session.Engine`) against the
reference evaluator (tests/reference.py), exactly.

`datasets()` draws a `Dataset`: a small random schema and its data as Arrow tables, with the
awkward cases the kernels must get right mixed in:

* profile attributes of kinds int, float, bool, string, timestamp, date, list<string>,
  list<int>, list<float> and list<timestamp>, each column with its own null rate (none, some,
  all); lists are sometimes empty and may repeat elements;
* values from small vocabularies, so that equality, membership and string predicates hit;
  int64 extremes (arithmetic wraps), infinities and signed zeros; strings that differ only in
  case or fold to the same text ("Straße" / "STRASSE"), and LIKE wildcards as characters;
* events with ``timestamp`` within ~100 days of `NOW` (a Sunday at the end of a month), on
  calendar boundaries (midnights, month ends, leap day) and with deliberate ties;
* an ``eventType`` from a small vocabulary (type partitions), sometimes more types than the
  store gives partitions to, so that the rarest share a mixed partition; sometimes no type
  field at all;
* numeric, string and timestamp event fields with nulls, sometimes a list<string> one;
  profiles without events; one or two heavy profiles (50-300 events); events whose key has
  no profile row.

`definitions(world, segments)` draws the text of a definition over such a schema, built
recursively with a depth budget. Every draw is meant to pass `engine.check`
(test_compiled.py::test_generated_definitions_pass_the_checker holds it to that; the
differential test filters out a slip rather than failing on it).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from hypothesis import strategies as st

__all__ = [
    "DAY",
    "HOUR",
    "NOW",
    "Ctx",
    "Dataset",
    "World",
    "at_instants",
    "datasets",
    "definitions",
    "instant_text",
    "ms",
]

MS_TYPE = pa.timestamp("ms", tz="UTC")
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
SECOND, MINUTE, HOUR = 1_000, 60_000, 3_600_000
DAY = 86_400_000
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def ms(text: str) -> int:
    """Epoch milliseconds of an ISO date-time (UTC when it has no offset)."""
    stamp = dt.datetime.fromisoformat(text)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return (stamp - EPOCH) // dt.timedelta(milliseconds=1)


NOW = ms("2024-03-31T15:00:00")
"""The instant the data is drawn around: a Sunday, the last day of a month after a leap day."""
NOW_DAY = NOW // DAY

# Instants where the semantics of occurs change: the evaluation instant and its neighbours,
# midnights, week, month and year starts, and calendar months and years away (with clamping).
BOUNDARIES = sorted({
    NOW, NOW - 1, NOW + 1, NOW - DAY, NOW + DAY, NOW - 7 * DAY, NOW - 30 * DAY, NOW - HOUR,
    NOW - 24 * HOUR + 1, NOW - 3 * DAY,
    ms("2024-03-31"), ms("2024-03-30"), ms("2024-04-01"), ms("2024-04-02"),
    ms("2024-03-25"), ms("2024-03-18"), ms("2024-04-08"),  # Mondays: week starts
    ms("2024-03-01"), ms("2024-02-01"), ms("2024-05-01"), ms("2024-01-01"),
    ms("2024-02-29T15:00"), ms("2024-02-29"), ms("2024-01-31T15:00"), ms("2024-04-30T15:00"),
    ms("2023-03-31T15:00"), ms("2023-12-31T23:59:59.999"), ms("2024-02-28T15:00"),
    ms("2024-03-31T14:59:59.999"), ms("2024-03-28T00:00"), ms("2024-04-01T15:00"),
})
BOUNDARY_DAYS = sorted({b // DAY for b in BOUNDARIES} | {NOW_DAY - 366, NOW_DAY + 30})


# ================================================================ the schema the text is for


@dataclass(frozen=True)
class World:
    """What a definition may name: field name → kind, per side, and the vocabularies."""

    profile: dict[str, str]
    events: dict[str, str]  # without the key; includes "timestamp" and maybe "eventType"
    types: tuple[str, ...]  # event types present in the data (and a few that are not)

    def kinds(self, side: str) -> dict[str, str]:
        return self.profile if side == "profile" else self.events


@dataclass(frozen=True)
class Dataset:
    profiles: pa.Table | None
    events: pa.Table
    world: World
    note: str = ""

    def load(self) -> Any:
        from store.profile_store import ProfileStore

        return ProfileStore.from_arrow(
            self.profiles,
            self.events,
            profile_id="id",
            event_time="timestamp",
            event_type="eventType" if "eventType" in self.world.events else None,
        )

    def describe(self) -> str:
        lines = [f"profiles: {None if self.profiles is None else self.profiles.to_pylist()}",
                 f"events: {self.events.to_pylist()}"]
        return "\n".join(lines)


# ================================================================ data

STRINGS = ("a", "b", "ab", "A", "", "Straße", "STRASSE", "x%y", "a_b", "ü", "abc", "view", "c1")
CATEGORIES = ("c1", "c2", "c3", "C1", "")
TYPE_NAMES = ("view", "cart", "buy", "ret", "t4", "t5", "t6", "t7", "t8", "t9", "t10", "t11")
INTS = (0, 1, 2, 3, -1, 5, 7, 10, 25, 42, -7)
INT_EDGES = (INT64_MAX, INT64_MIN, 2**62, 2**53 + 1)
FLOATS = (0.0, 1.0, 2.5, -0.0, 3.0, -7.25, 10.0, 0.1, 100.5)
FLOAT_EDGES = (float("inf"), float("-inf"), 1e300, -1e300, 5e-324)

PROFILE_KINDS = {
    "i1": "int", "i2": "int", "f1": "float", "b1": "bool", "b2": "bool", "s1": "string",
    "s2": "string", "t1": "timestamp", "t2": "timestamp", "d1": "date", "ls": "list<string>",
    "li": "list<int>",
    "lf": "list<float>",
    "lt": "list<timestamp>",
    "qty": "int",  # also an event field: a bare `qty` in a filter is the event's
}


@st.composite
def _instant(draw: st.DrawFn, pool: Sequence[int] = ()) -> int:
    how = draw(st.integers(0, 9))
    if how < 3 and pool:
        return draw(st.sampled_from(pool))  # ties
    if how < 6:
        return draw(st.sampled_from(BOUNDARIES))
    return NOW + draw(st.integers(-100 * DAY, 100 * DAY))


def _nullable(values: st.SearchStrategy[Any], rate: int) -> st.SearchStrategy[Any]:
    """``values`` or null, null with probability ``rate``/4 (0: never, 4: always)."""
    if rate == 0:
        return values
    if rate >= 4:
        return st.none()
    return st.integers(0, 3).flatmap(lambda k: st.none() if k < rate else values)


def _ints() -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from(INTS), st.sampled_from(INT_EDGES), st.integers(-100, 100))


def _floats() -> st.SearchStrategy[float]:
    return st.one_of(
        st.sampled_from(FLOATS), st.sampled_from(FLOAT_EDGES),
        st.integers(-20, 20).map(float),
    )


def _attribute_values(kind: str, pool: Sequence[int]) -> st.SearchStrategy[Any]:
    if kind == "int":
        return _ints()
    if kind == "float":
        return _floats()
    if kind == "bool":
        return st.booleans()
    if kind == "string":
        return st.sampled_from(STRINGS)
    if kind == "timestamp":
        return _instant(pool)
    if kind == "date":
        return st.one_of(st.sampled_from(BOUNDARY_DAYS),
                         st.integers(NOW_DAY - 100, NOW_DAY + 100))
    if kind == "list<string>":
        return st.lists(st.one_of(st.sampled_from(STRINGS), st.none()), max_size=3)
    if kind == "list<float>":
        return st.lists(st.one_of(st.sampled_from(FLOATS), st.sampled_from(FLOAT_EDGES),
                                  st.none()), max_size=3)
    if kind == "list<timestamp>":
        return st.lists(st.one_of(_instant(pool), st.none()), max_size=3)
    assert kind == "list<int>"
    return st.lists(st.one_of(st.sampled_from(INTS), st.none()), max_size=3)


def _arrow_column(kind: str, values: list[Any]) -> pa.Array:
    if kind == "timestamp":
        return pa.array(values, pa.int64()).cast(MS_TYPE)
    if kind == "date":
        return pa.array(
            [None if v is None else dt.date(1970, 1, 1) + dt.timedelta(days=v) for v in values],
            pa.date32(),
        )
    arrow = {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(),
             "string": pa.string(), "list<string>": pa.list_(pa.string()),
             "list<int>": pa.list_(pa.int64()), "list<float>": pa.list_(pa.float64()),
             "list<timestamp>": pa.list_(MS_TYPE)}[kind]
    return pa.array(values, arrow)


@st.composite
def datasets(draw: st.DrawFn, *, max_profiles: int = 12, heavy: bool = True) -> Dataset:
    """A random schema and data (see the module docstring)."""
    int_keys = draw(st.booleans())
    crowded = draw(st.integers(0, 5)) == 0  # many profiles and types: a mixed partition
    n_profiles = draw(st.integers(40, 60) if crowded else st.integers(1, max_profiles))
    n_orphans = draw(st.integers(0, 2))
    keys: list[Any] = (
        list(range(100, 100 + n_profiles + n_orphans))
        if int_keys
        else [f"p{k}" for k in range(n_profiles + n_orphans)]
    )
    pool = draw(st.lists(_instant(), min_size=1, max_size=4))  # shared instants: ties

    # ---- profiles
    names = draw(st.lists(st.sampled_from(sorted(PROFILE_KINDS)), min_size=2, max_size=8,
                          unique=True))
    profile_kinds = {n: PROFILE_KINDS[n] for n in sorted(names)}
    has_profile_table = draw(st.integers(0, 9)) > 0
    profiles = None
    if has_profile_table:
        columns: dict[str, pa.Array] = {
            "id": pa.array(keys[:n_profiles], pa.int64() if int_keys else pa.string())
        }
        for name, kind in profile_kinds.items():
            rate = draw(st.sampled_from((0, 1, 1, 2, 4)))
            values = draw(st.lists(_nullable(_attribute_values(kind, pool), rate),
                                   min_size=n_profiles, max_size=n_profiles))
            columns[name] = _arrow_column(kind, values)
        profiles = pa.table(columns)
    else:
        profile_kinds = {}

    # ---- events
    has_types = draw(st.integers(0, 9)) > 0
    n_types = draw(st.integers(9, 12) if crowded else st.integers(1, 5))
    types = list(TYPE_NAMES[:n_types])
    event_kinds = {"timestamp": "timestamp", "price": "float", "qty": "int", "cat": "string"}
    if has_types:
        event_kinds["eventType"] = "string"
    if draw(st.booleans()):
        event_kinds["sent"] = "timestamp"
    if draw(st.integers(0, 3)) == 0:
        event_kinds["etags"] = "list<string>"  # a list per event
    # per-profile event counts: mostly few, some none, one or two heavy
    per_profile = []
    with_events = keys if draw(st.booleans()) else keys[: max(1, len(keys) // 2)] + keys[
        n_profiles:]
    for k in with_events:
        per_profile.append((k, draw(st.integers(0, 3 if crowded else 6))))
    if heavy and draw(st.integers(0, 3)) == 0:
        for _ in range(draw(st.integers(1, 2))):
            k = draw(st.sampled_from(keys))
            per_profile.append((k, draw(st.sampled_from((50, 80, 120, 300)))))
    if draw(st.integers(0, 9)) == 0:
        per_profile = []  # no events at all
    # skewed type frequencies, so that the rarest types share a partition when crowded
    weights = [max(1, 12 - 2 * i) for i in range(len(types))]
    type_choices = [t for t, w in zip(types, weights, strict=True) for _ in range(w)]
    rows: dict[str, list[Any]] = {"id": [], **{n: [] for n in event_kinds}}
    price_rate = draw(st.sampled_from((0, 1, 2)))
    qty_rate = draw(st.sampled_from((0, 1, 2)))
    cat_rate = draw(st.sampled_from((0, 1, 2, 4)))
    sent_rate = draw(st.sampled_from((1, 2)))
    for key, count in per_profile:
        if count >= 50:  # heavy: cheap per-event draws
            base = draw(_instant(pool))
            step = draw(st.sampled_from((MINUTE, HOUR, 7 * HOUR, DAY)))
            times = [base - (count // 2 - j // 3) * step for j in range(count)]  # 3-way ties
            kinds = [types[j % len(types)] for j in range(count)]
            for j in range(count):
                rows["id"].append(key)
                rows["timestamp"].append(times[j])
                if "eventType" in rows:
                    rows["eventType"].append(kinds[(j * 7) % count])
                rows["price"].append(None if j % 5 == 0 else float(j % 13) - 2.5)
                rows["qty"].append(None if j % 7 == 0 else j % 4)
                rows["cat"].append(None if j % 6 == 0 else CATEGORIES[j % 3])
                if "sent" in rows:
                    rows["sent"].append(None if j % 2 else times[j] + HOUR)
                if "etags" in rows:
                    rows["etags"].append(None if j % 4 == 0 else
                                         [CATEGORIES[j % 5], STRINGS[j % 3]][: j % 3])
            continue
        for _ in range(count):
            rows["id"].append(key)
            rows["timestamp"].append(draw(_instant(pool)))
            if "eventType" in rows:
                rows["eventType"].append(draw(st.sampled_from(type_choices)))
            rows["price"].append(draw(_nullable(_floats(), price_rate)))
            rows["qty"].append(draw(_nullable(_ints(), qty_rate)))
            rows["cat"].append(draw(_nullable(st.sampled_from(CATEGORIES), cat_rate)))
            if "sent" in rows:
                rows["sent"].append(draw(_nullable(_instant(pool), sent_rate)))
            if "etags" in rows:
                tags = st.lists(st.one_of(st.sampled_from(CATEGORIES + STRINGS[:4]), st.none()),
                                max_size=3)
                rows["etags"].append(draw(_nullable(tags, 1)))
    ev_columns = {"id": pa.array(rows["id"], pa.int64() if int_keys else pa.string())}
    for name, kind in event_kinds.items():
        ev_columns[name] = _arrow_column(kind, rows[name])
    events = pa.table(ev_columns)
    present_types = sorted(set(rows.get("eventType", [])))
    absent = ("nope",) if draw(st.integers(0, 2)) == 0 else ()  # a type without events
    world = World(
        profile=dict(profile_kinds),
        events=dict(event_kinds),
        types=(*present_types, *absent) if has_types else (),
    )
    return Dataset(profiles, events, world, note="crowded" if crowded else "")


def at_instants() -> st.SearchStrategy[int]:
    """Evaluation instants near the data."""
    return st.one_of(
        st.just(NOW),
        st.sampled_from((NOW - 1, NOW + 1, NOW + DAY, NOW - 3 * DAY, NOW + 40 * DAY,
                         ms("2024-03-01"), ms("2024-02-29T23:59:59.999"), ms("2024-04-01"),
                         NOW - 15 * HOUR)),
        st.integers(NOW - 100 * DAY, NOW + 100 * DAY),
    )


# ================================================================ definition text


@dataclass(frozen=True)
class Ctx:
    """Where a sub-expression stands (docs/language.md, "Names and scopes").

    ``implicit``: there is a current event (a filter body, a chain step, an aggregate's
    argument): bare names are its fields first. ``vars``: named events in reach.
    ``events_ok``: ``xEvent`` may start an event query here (profile scope only).
    """

    implicit: bool = False
    vars: tuple[str, ...] = ()
    events_ok: bool = True


PROFILE = Ctx()
LIST_KINDS = ("list<string>", "list<int>", "list<float>", "list<timestamp>")
UNITS = ("millisecond", "second", "minute", "hour", "day", "week", "month", "year")
COMPARE_OPS = ("=", "!=", "<", "<=", ">", ">=")
LIKE_PATTERNS = ("a%", "%b", "%", "_", "__", "a_", "%a%", "x%y", "", "Stra%", "%ß%", "A%")
BOOL_LITERALS = ("true", "false", '"true"', '"FALSE"')
REGEXES = ("^a", "b$", "a|b", "^$", "[A-Z]", "ab+", "^.$", "(?i)^a", "%", "c[12]", r"\d")
# regexGroup patterns and their number of groups (no \w: Unicode in Python, ASCII in RE2)
REGEX_GROUPS = (("(a)(b)?", 2), ("^(.)", 1), ("(a)|(b)", 2), ("c([12])", 1), ("(?i)(s+)", 1),
                ("^$", 0), ("(x)%(y)", 2), ("(.)$", 1), ("(?P<n>[A-Z])(.*)", 2), ("b+", 0))


def instant_text(t: int, style: int = 0) -> str:
    """A timestamp literal for ``t``: ``@...Z``, with an offset, or a bare date at midnight."""
    stamp = EPOCH + dt.timedelta(milliseconds=t)
    if style == 1 and t % DAY == 0:
        return "@" + stamp.date().isoformat()
    if style == 2:
        shifted = stamp + dt.timedelta(hours=2)
        base = shifted.strftime("%Y-%m-%dT%H:%M:%S")
        return f"@{base}.{t % 1000:03d}+02:00" if t % 1000 else f"@{base}+02:00"
    base = stamp.strftime("%Y-%m-%dT%H:%M:%S")
    return f"@{base}.{t % 1000:03d}Z" if t % 1000 else f"@{base}Z"


def _date_args(day: int) -> str:
    d = dt.date(1970, 1, 1) + dt.timedelta(days=day)
    return f"date({d.year}, {d.month}, {d.day})"


def _receiver(text: str) -> str:
    """``text`` as the receiver of a method call: parenthesized unless a plain name or path."""
    return text if text.replace(".", "").replace("_", "").isalnum() and not text[0].isdigit() \
        else f"({text})"


def _family(kind: str) -> str:
    """Kinds that compare with each other (docs/language.md "Comparisons")."""
    return "number" if kind in ("int", "float") else kind


def _string_literal(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class _Gen:
    draw: st.DrawFn
    world: World
    segments: tuple[str, ...]
    max_vars: int = 2
    counter: list[int] = field(default_factory=lambda: [0])

    # ------------------------------------------------------------ helpers

    def pick(self, options: Sequence[Any]) -> Any:
        return self.draw(st.sampled_from(options))

    def below(self, n: int) -> int:
        return self.draw(st.integers(0, n - 1))

    def chance(self, k: int, n: int) -> bool:
        """True with probability k/n (shrinks to False)."""
        return self.draw(st.integers(0, n - 1)) >= n - k

    def fresh_var(self) -> str:
        self.counter[0] += 1
        return "ABCDEFGHPQRVWXYZ"[self.counter[0] % 16] + (
            str(self.counter[0] // 16) if self.counter[0] >= 16 else "")

    def fields(self, ctx: Ctx, kind: str) -> list[str]:
        """Texts naming a field of ``kind`` readable in ``ctx``."""
        out = []
        for name, k in self.world.profile.items():
            if k == kind and not (ctx.implicit and name in self.world.events):
                out.append(name)
        for name, k in self.world.events.items():
            if k != kind:
                continue
            if ctx.implicit:
                out.append(name)
            out.extend(f"{v}.{name}" for v in ctx.vars)
        return out

    @property
    def types(self) -> tuple[str, ...]:
        return self.world.types or ("view",)

    def has_events(self) -> bool:
        return bool(self.world.events)

    # ------------------------------------------------------------ conditions

    def cond(self, ctx: Ctx, depth: int) -> str:
        options = ["number", "string", "bool", "time", "null", "member", "strfn", "occurs",
                   "datepart", "present", "list"]
        if any(self.fields(ctx, k) for k in LIST_KINDS):  # many forms: draw them more often
            options += ["list", "list", "list"]
        if self.fields(ctx, "string"):
            options += ["derived", "derived"]
        if depth > 0:
            options += ["and", "or", "not", "and", "or", "and"]
        if ctx.events_ok and self.has_events():
            options += ["events", "events", "aggregate", "aggregate", "aggregate",
                        "quantifier", "quantifier", "quantifier", "chain", "chain",
                        "fieldlist", "fieldlist"]
        elif depth > 0 and self.has_events() and len(ctx.vars) < self.max_vars:
            options += ["quantifier"]
        if ctx.implicit or ctx.vars:
            options += ["event_atom"] * 6
        if self.segments:
            options += ["segment", "segment"]
        choice = self.pick(options)
        return getattr(self, f"c_{choice}")(ctx, depth)

    def predicate(self, ctx: Ctx, depth: int) -> str:
        """A condition whose type is bool (not a value or events in condition position)."""
        return getattr(self, f"c_{self.pick(('number', 'string', 'strfn', 'null'))}")(
            ctx, depth)

    def c_and(self, ctx: Ctx, depth: int) -> str:
        n = self.draw(st.integers(2, 3))
        return " and ".join(f"({self.cond(ctx, depth - 1)})" for _ in range(n))

    def c_or(self, ctx: Ctx, depth: int) -> str:
        n = self.draw(st.integers(2, 3))
        return " or ".join(f"({self.cond(ctx, depth - 1)})" for _ in range(n))

    def c_not(self, ctx: Ctx, depth: int) -> str:
        return f"not ({self.cond(ctx, depth - 1)})"

    def c_number(self, ctx: Ctx, depth: int) -> str:
        a, _ = self.num(ctx, depth)
        b, _ = self.num(ctx, max(depth - 1, 0))
        op = self.pick(COMPARE_OPS)
        if a in self.fields(ctx, "int") + self.fields(ctx, "float") and self.chance(1, 4):
            return f"{self.num_literal_as_string(a in self.fields(ctx, 'float'))} {op} {a}"
        return f"{a} {op} {b}"

    def num_literal_as_string(self, floats: bool) -> str:
        """A number in a string literal, read as the field's type."""
        return self.pick(('"3"', '"-1"', '" 7 "', '"0"') + (('"2.5"', '"1e3"') if floats else ()))

    def c_string(self, ctx: Ctx, depth: int) -> str:
        a = self.string_value(ctx, depth)
        b = self.string_value(ctx, depth, literal_ok=True)
        return f"{a} {self.pick(('=', '!='))} {b}"

    def c_bool(self, ctx: Ctx, depth: int) -> str:
        fs = self.fields(ctx, "bool")
        if not fs:
            return self.pick(("true", "false"))
        f = self.pick(fs)
        how = self.below(5)
        if how == 0:
            return f
        if how == 1:
            return f"{f} = {self.pick(BOOL_LITERALS)}"
        if how == 2:
            return f"{f} != {self.pick(fs)}"
        if how == 3:
            return f"{f} = ({self.predicate(ctx, max(depth - 1, 0))})"
        return f"not {f}"

    def c_time(self, ctx: Ctx, depth: int) -> str:
        op = self.pick(COMPARE_OPS)
        a, ak = self.temporal(ctx, depth)
        b, bk = self.temporal(ctx, depth)
        if a in self.fields(ctx, ak) and self.chance(1, 4):  # a string literal read as a time
            b, bk = ak, ak
            day = self.pick(BOUNDARY_DAYS)
            b = _string_literal((dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat())
            if ak == "timestamp" and self.chance(1, 2):
                b = _string_literal(instant_text(self.pick(BOUNDARIES))[1:])
            elif ak == "timestamp" and self.chance(1, 2):
                b = str(self.pick(BOUNDARIES))  # an int literal read as epoch milliseconds
        if ak != bk and op in ("=", "!="):
            op = self.pick(("<", "<=", ">", ">="))
        return f"{a} {op} {b}"

    def c_null(self, ctx: Ctx, depth: int) -> str:
        kind = self.pick(("int", "float", "bool", "string", "timestamp", "date", "number"))
        if kind == "number":
            v, _ = self.num(ctx, depth)
        else:
            fs = self.fields(ctx, kind)
            v = self.pick(fs) if fs else self.num(ctx, depth)[0]
        return f"{_receiver(v)}.{self.pick(('isNull', 'isNotNull'))}()"

    def c_member(self, ctx: Ctx, depth: int) -> str:
        fn = self.pick(("in", "notIn"))
        how = self.below(4)
        if how == 0:
            fs = self.fields(ctx, "string")
            item = self.pick(fs) if fs else _string_literal(self.pick(STRINGS))
            pool = STRINGS + CATEGORIES + self.types
            items = self.draw(st.lists(st.sampled_from(pool), max_size=3))
            texts = [_string_literal(s) for s in items]
            if self.chance(1, 5):  # an element that is not a literal
                texts.append(self.string_value(ctx, depth))
            if texts and self.chance(1, 6):
                texts.append("null")
            return f"{item} {fn} [{', '.join(texts)}]"
        if how == 3:
            fs = self.fields(ctx, "timestamp")
            item = self.pick(fs) if fs else "now"
            items = self.draw(st.lists(st.sampled_from(BOUNDARIES), max_size=3))
            texts = [instant_text(t) for t in items]
            if self.chance(1, 5):  # an element that is not a literal
                texts.append(self.pick([*fs, "now"]))
            return f"{item} {fn} [{', '.join(texts)}]"
        item, _ = self.num(ctx, depth)
        literals = self.draw(st.lists(st.one_of(st.sampled_from(INTS), st.sampled_from(FLOATS)),
                                      max_size=4))
        texts = [self.number_text(x) for x in literals]
        if self.chance(1, 6):  # an element that is not a literal
            texts.append(self.num(ctx, 0)[0])
        if texts and self.chance(1, 8):
            texts.append("null")
        return f"{item} {fn} [{', '.join(texts)}]"

    def c_strfn(self, ctx: Ctx, depth: int, receiver: str = "") -> str:
        """A string function on a string field (or ``receiver``: a list of strings, some
        element), its argument a literal or, sometimes, another string value."""
        fs = self.fields(ctx, "string")
        if not fs and not receiver:
            return self.c_number(ctx, depth)
        s = receiver or self.pick(fs)
        if not receiver and depth > 0 and self.chance(1, 5):
            s = _receiver(self.string_value(ctx, depth))  # if(...), regexGroup(...)
        how = self.below(6)
        if how == 0:
            return f"{s} like {_string_literal(self.pick(LIKE_PATTERNS))}"
        if how == 1:
            if self.chance(1, 2):
                return f"{s} matches {_string_literal(self.pick(REGEXES))}"
            return f"{s}.matches({_string_literal(self.pick(REGEXES))})"
        fn = self.pick(("equals", "notEqualTo", "startsWith", "doesNotStartWith", "endsWith",
                        "doesNotEndWith", "contains", "doesNotContain"))
        arg = _string_literal(self.pick(STRINGS + CATEGORIES + ("ss", "SS", "c", "1")))
        if self.chance(1, 8):
            arg = "1"  # an int literal read as a string
        elif self.chance(1, 3):  # another string value: compared code point by code point
            arg = self.string_value(ctx, depth)
        flag = self.pick(("", ", false", ", true", ", false"))
        if self.chance(1, 5):
            return f"{fn}({s}, {arg}{flag})"
        return f"{s}.{fn}({arg}{flag})"

    def c_occurs(self, ctx: Ctx, depth: int) -> str:
        subject, _ = self.temporal(ctx, depth, for_occurs=True)
        return f"{subject} occurs {self.time_cond(ctx, depth)}"

    def c_datepart(self, ctx: Ctx, depth: int) -> str:
        part = self.pick(("getYear", "getMonth", "getDayOfMonth"))
        t, _ = self.temporal(ctx, depth)
        current = {"getYear": "currentYear()", "getMonth": "currentMonth()",
                   "getDayOfMonth": "currentDayOfMonth()"}[part]
        other = self.pick((current, "2024", "3", "31", "29", "12", "1"))
        return f"{_receiver(t)}.{part}() {self.pick(COMPARE_OPS)} {other}"

    def c_present(self, ctx: Ctx, depth: int) -> str:
        kind = self.pick(("int", "float", "string", "timestamp", "date", "number"))
        if kind == "number":
            return self.num(ctx, depth)[0]
        fs = self.fields(ctx, kind)
        return self.pick(fs) if fs else "true"

    def c_segment(self, ctx: Ctx, depth: int) -> str:
        name = self.pick(self.segments)
        fn = self.pick(("inSegment", "inSegment", "inAudience"))
        return f"{fn}({_string_literal(name)})"

    def c_list(self, ctx: Ctx, depth: int) -> str:
        """A condition on a list attribute: truth, counts, membership both ways, some-element
        comparisons and string tests, set functions, list equality, aggregates, occurs."""
        lists = [f for k in LIST_KINDS for f in self.fields(ctx, k)]
        if not lists:
            return self.c_null(ctx, depth)
        lst = self.pick(lists)
        kind = self.list_kind(ctx, lst)[5:-1]  # the element kind
        same = [f for f in lists if _family(self.list_kind(ctx, f)[5:-1]) == _family(kind)]
        lit = self.element_literal(kind)
        how = self.below(18)
        if how == 0:
            return lst
        if how == 1:
            return f"{lst}.count() {self.pick(COMPARE_OPS)} {self.pick((0, 1, 2))}"
        if how == 2:
            return f"{self.element_value(ctx, kind)} {self.pick(('in', 'notIn'))} {lst}"
        if how == 3:
            ops = ("=", "!=") if kind == "string" else COMPARE_OPS
            return f"{lst} {self.pick(ops)} {self.element_value(ctx, kind)}"
        if how == 4:
            return f"{lst}.includes({self.element_value(ctx, kind)})"
        if how == 5:
            return f"{lst}.{self.pick(('isNull', 'isNotNull'))}()"
        if how == 6:
            return f"{lst}.distinct().count() {self.pick(COMPARE_OPS)} {self.pick((0, 1, 2))}"
        if how <= 9:
            fn = ("intersects", "subsetOf", "supersetOf")[how - 7]
            other = self.pick(same) if self.chance(1, 3) else self.list_literal(kind)
            if self.chance(1, 4):  # the literal as the receiver
                return f"{self.list_literal(kind, empty=False)}.{fn}({lst})"
            return f"{lst}.{fn}({other})"
        if how == 10:  # as lists
            other = self.pick((self.list_literal(kind), self.pick(same), f"{lst}.distinct()"))
            return f"{lst} {self.pick(('=', '!='))} {other}"
        if how == 11:  # a list on the left of in / notIn: some element
            other = self.pick(same) if self.chance(1, 2) else self.list_literal(kind)
            return f"{lst} {self.pick(('in', 'notIn'))} {other}"
        if how == 12 and kind in ("int", "float"):
            fn = self.pick(("sum", "average", "min", "max"))
            src = f"{lst}.distinct()" if self.chance(1, 4) else lst
            if self.chance(1, 5):
                return f"{src}.{fn}().isNull()"
            return f"{src}.{fn}() {self.pick(COMPARE_OPS)} {self.num(ctx, 0)[0]}"
        if how == 12 and kind == "timestamp":
            fn = self.pick(("min", "max"))
            return f"{lst}.{fn}() occurs {self.time_cond(ctx, 0)}"
        if how == 13 and kind == "timestamp":
            return f"{lst} occurs {self.time_cond(ctx, depth)}"
        if how == 13 and kind == "string":
            return self.c_strfn(ctx, depth, receiver=lst)
        if how == 14:  # a list from if()
            # the branches have one list type: list<int> and list<float> do not mix here
            same_kind = [f for f in same
                         if self.list_kind(ctx, f) == self.list_kind(ctx, lst)]
            other = self.pick(same_kind) if self.chance(1, 2) else \
                self.list_literal(kind, exact=True)
            if self.chance(1, 6):
                other = "null"
            chosen = f"if({self.cond(ctx, 0)}, {lst}, {other})"
            if self.chance(1, 2):
                return f"{chosen}.includes({self.element_value(ctx, kind)})"
            return f"{chosen}.count() {self.pick(COMPARE_OPS)} {self.pick((0, 1, 2))}"
        if how == 15:  # a list literal with values that are not literals
            items = [self.element_value(ctx, kind) for _ in range(self.draw(st.integers(1, 3)))]
            return f"{lst} {self.pick(('=', '!='))} [{', '.join(items)}]" if self.chance(1, 3) \
                else f"[{', '.join(items)}].intersects({lst})"
        return f"{lst}.intersects([{lit}])"

    def list_kind(self, ctx: Ctx, name: str) -> str:
        """The kind of a field named as `fields` names it."""
        if "." in name:  # V.field: an event's
            return self.world.events[name.split(".", 1)[1]]
        if ctx.implicit and name in self.world.events:
            return self.world.events[name]
        return self.world.profile[name]

    def element_literal(self, kind: str, exact: bool = False) -> str:
        """A literal of ``kind``; for numbers, of the other numeric kind too unless
        ``exact``."""
        if exact and kind == "int":
            return self.number_text(self.pick(INTS))
        if kind == "string":
            return _string_literal(self.pick(STRINGS))
        if kind == "timestamp":
            return instant_text(self.pick(BOUNDARIES), self.below(3))
        if kind == "float":
            return self.number_text(self.pick((*FLOATS, 0, 3, 10)))
        return self.number_text(self.pick((*INTS, 2.5, 3.0)))

    def element_value(self, ctx: Ctx, kind: str) -> str:
        """A value to look for in a list of ``kind``: a literal, a field, or for numbers an
        expression."""
        if kind in ("int", "float"):
            return self.num(ctx, 0)[0] if self.chance(1, 2) else self.element_literal(kind)
        fs = self.fields(ctx, kind)
        if fs and self.chance(1, 2):
            return self.pick(fs)
        if kind == "timestamp" and self.chance(1, 3):
            return "now"
        return self.element_literal(kind)

    def list_literal(self, kind: str, empty: bool = True, exact: bool = False) -> str:
        n = self.draw(st.integers(0 if empty else 1, 3))
        items = [self.element_literal(kind, exact) for _ in range(n)]
        if items and self.chance(1, 8):
            items.append("null")
        return f"[{', '.join(items)}]"

    # ---- event-related conditions

    def c_event_atom(self, ctx: Ctx, depth: int, correlated: bool = False) -> str:
        """A condition on the current event or a named one: type, numbers, time, category."""
        prefixes = ([""] if ctx.implicit else []) + [f"{v}." for v in ctx.vars]
        pre = self.pick(prefixes)
        how = 5 if correlated else self.below(9)
        if how <= 1 and "eventType" in self.world.events:
            if self.chance(1, 3):
                types = self.draw(st.lists(st.sampled_from(self.types), min_size=1,
                                           max_size=3))
                return f"{pre}eventType in [{', '.join(map(_string_literal, types))}]"
            return f"{pre}eventType {self.pick(('=', '=', '!='))} " + _string_literal(
                self.pick(self.types))
        if how == 2:
            return f"{pre}price {self.pick(COMPARE_OPS)} {self.number_text(self.pick(FLOATS))}"
        if how == 3:
            return f"{pre}qty {self.pick(COMPARE_OPS)} {self.pick(('0', '1', '2', 'i1'))}" \
                if "i1" in self.world.profile else f"{pre}qty >= {self.pick(('0', '1', '3'))}"
        if how == 4:
            return f"{pre}cat {self.pick(('=', '!='))} {_string_literal(self.pick(CATEGORIES))}"
        if how == 5 and len(ctx.vars) >= 2:  # correlated: two named events
            a, b = ctx.vars[-2], ctx.vars[-1]
            kind = self.below(5)
            if kind == 0:
                return f"{b}.cat {self.pick(('=', '!='))} {a}.cat"
            if kind == 1:
                return f"{b}.timestamp {self.pick(('>', '>=', '<', '='))} {a}.timestamp"
            if kind == 2 and "eventType" in self.world.events:
                return f"{b}.eventType {self.pick(('=', '!='))} {a}.eventType"
            if kind == 3:
                return f"{b}.price {self.pick(COMPARE_OPS)} {a}.{self.pick(('price', 'qty'))}"
            return (f"{b}.timestamp occurs {self.pick(COMPARE_OPS)} {self.below(3)} "
                    f"{self.unit()} {self.pick(('before', 'after', 'from'))} {a}.timestamp")
        return f"{pre}timestamp occurs {self.time_cond(ctx, depth)}"

    def event_source(self, ctx: Ctx, depth: int) -> str:
        """``xEvent`` or ``xEvent[filter]`` (its body sees ``ctx``'s named events)."""
        if self.chance(1, 4):
            return "xEvent"
        inner = Ctx(implicit=True, vars=ctx.vars, events_ok=False)
        body = self.filter_cond(inner, depth)
        if self.chance(1, 8):
            return f"xEvent[{body}][{self.filter_cond(inner, 0)}]"
        return f"xEvent[{body}]"

    def filter_cond(self, ctx: Ctx, depth: int) -> str:
        if depth > 0 and self.chance(1, 3):
            n = self.draw(st.integers(2, 3))
            parts = [self.filter_cond(ctx, depth - 1) for _ in range(n)]
            return " and ".join(f"({p})" for p in parts)
        if self.chance(1, 4):
            return self.cond(ctx, max(depth - 1, 0))
        return self.c_event_atom(ctx, depth)

    def c_events(self, ctx: Ctx, depth: int) -> str:
        src = self.event_source(ctx, depth)
        how = self.below(4)
        if how == 0:
            return src
        if how == 1:
            return f"not {src}" if src != "xEvent" else "not xEvent"
        return f"{src}.count() {self.pick(COMPARE_OPS)} {self.below(4)}"

    def c_aggregate(self, ctx: Ctx, depth: int) -> str:
        src = self.event_source(ctx, depth)
        inner = Ctx(implicit=True, vars=ctx.vars, events_ok=False)
        how = self.below(6)
        if how == 0:  # distinct count of a field
            f = self.pick(("cat", "qty", "timestamp", "eventType", "price", "cat"))
            if f not in self.world.events:
                f = "cat"
            return f"{src}.{f}.distinct().count() {self.pick(COMPARE_OPS)} {self.below(4)}"
        if how == 1:  # min/max of a time
            fn = self.pick(("min", "max"))
            arg = self.pick([f for f in ("timestamp", "sent") if f in self.world.events])
            agg = f"{src}.{fn}({arg})"
            if self.chance(1, 2):
                return f"{agg} occurs {self.time_cond(ctx, depth)}"
            other, kind = self.temporal(ctx, 0)
            ops = COMPARE_OPS if kind == "timestamp" else ("<", "<=", ">", ">=")
            return f"{agg} {self.pick(ops)} {other}"
        fn = self.pick(("sum", "average", "min", "max", "sum"))
        arg, _ = self.num(inner, min(depth, 1))
        agg = f"{src}.{fn}({arg})"
        other, _ = self.num(ctx, 0)
        if self.chance(1, 5):
            return f"{agg}.isNull()"
        return f"{agg} {self.pick(COMPARE_OPS)} {other}"

    def c_fieldlist(self, ctx: Ctx, depth: int) -> str:
        src = self.event_source(ctx, depth)
        how = self.below(11)
        if how == 6:  # set functions and list membership with other lists
            fn = self.pick(("intersects", "subsetOf", "supersetOf", "in", "notIn"))
            other = self.list_literal("string")
            if self.fields(ctx, "list<string>") and self.chance(1, 2):
                other = self.pick(self.fields(ctx, "list<string>"))
            if fn in ("in", "notIn"):
                return f"{src}.cat {fn} {other}"
            return f"{src}.cat.{fn}({other})"
        if how == 7:  # as lists
            f, kind, lists = self.pick((("cat", "string", "list<string>"),
                                        ("qty", "int", "list<int>"),
                                        ("price", "float", "list<float>")))
            other = self.list_literal(kind)
            if self.fields(ctx, lists) and self.chance(1, 2):
                other = self.pick(self.fields(ctx, lists))
            return f"{src}.{f}{'.distinct()' if self.chance(1, 4) else ''} " \
                   f"{self.pick(('=', '!='))} {other}"
        if how == 8:  # a string function on some element
            return self.c_strfn(ctx, depth, receiver=f"{src}.cat")
        if how == 9:  # a value, not a literal, in the field list
            if self.chance(1, 2):
                return f"{self.string_value(ctx, depth)} {self.pick(('in', 'notIn'))} {src}.cat"
            return f"{self.num(ctx, 0)[0]} {self.pick(('in', 'notIn'))} {src}.qty"
        if how == 10:
            if "sent" in self.world.events:
                return f"{src}.sent occurs {self.time_cond(ctx, depth)}"
            return f"{src}.price.{self.pick(('min', 'max'))}() > {self.num(ctx, 0)[0]}"
        if how == 0:
            return f"{src}.price {self.pick(COMPARE_OPS)} {self.number_text(self.pick(FLOATS))}"
        if how == 1:
            return f"{src}.cat {self.pick(('=', '!='))} {_string_literal(self.pick(CATEGORIES))}"
        if how == 2:
            return f"{src}.timestamp occurs {self.time_cond(ctx, depth)}"
        if how == 3:
            return f"{src}.qty {self.pick(COMPARE_OPS)} {self.num(ctx, 0)[0]}"
        if how == 4:
            items = self.draw(st.lists(st.sampled_from(CATEGORIES), min_size=1, max_size=2))
            return f"{src}.cat in [{', '.join(map(_string_literal, items))}]"
        return f"{_string_literal(self.pick(CATEGORIES))} in {src}.cat"

    def c_quantifier(self, ctx: Ctx, depth: int) -> str:
        room = self.max_vars - len(ctx.vars)
        if room <= 0 or not self.has_events():
            return self.c_number(ctx, depth)
        q = self.pick(("exists", "exists", "forall", "select"))
        n = self.draw(st.integers(1, min(2, room)))
        clauses, bound = [], ctx.vars
        for _ in range(n):
            v = self.fresh_var()
            src = self.event_source(Ctx(implicit=False, vars=bound, events_ok=False),
                                    max(depth - 1, 0))
            bound = (*bound, v)
            where = Ctx(implicit=False, vars=bound, events_ok=False)
            text = f"{v} from {src}"
            if self.chance(4, 5):
                text += f" {self.pick(('where', 'where', ':'))} " + self.where_cond(
                    where, max(depth - 1, 0))
            clauses.append(text)
        body = f"{q} " + ", ".join(clauses)
        if q == "select":
            if self.chance(1, 3):
                return f"({body})"
            return f"({body}).count() {self.pick(COMPARE_OPS)} {self.below(4)}"
        negate = "not " if self.chance(1, 4) else ""
        return f"{negate}({body})"

    def where_cond(self, ctx: Ctx, depth: int) -> str:
        v = ctx.vars[-1]
        parts = []
        if "eventType" in self.world.events and self.chance(1, 2):  # a type restriction
            parts.append(f"{v}.eventType = {_string_literal(self.pick(self.types))}")
        if len(ctx.vars) >= 2 and self.chance(1, 2):
            parts.append(self.c_event_atom(ctx, depth, correlated=True))
        for _ in range(self.draw(st.integers(0 if parts else 1, 2))):
            if depth > 0 and len(ctx.vars) < self.max_vars and self.chance(1, 5):
                # S6: not (exists P from xEvent where ... P.timestamp occurs after V.timestamp)
                p = self.fresh_var()
                inner = Ctx(implicit=False, vars=(*ctx.vars, p), events_ok=False)
                conds = [f"{p}.timestamp occurs {self.pick(('after', 'before'))} {v}.timestamp"]
                if "eventType" in self.world.events and self.chance(1, 2):
                    conds.append(f"{p}.eventType = {_string_literal(self.pick(self.types))}")
                if self.chance(1, 3):
                    conds.append(self.c_event_atom(inner, 0))
                parts.append(f"not (exists {p} from xEvent where {' and '.join(conds)})")
            elif self.chance(2, 3):
                parts.append(self.c_event_atom(ctx, depth))
            else:
                parts.append(f"({self.cond(ctx, max(depth - 1, 0))})")
        return " and ".join(parts)

    def c_chain(self, ctx: Ctx, depth: int) -> str:
        src = self.event_source(ctx, max(depth - 1, 0))
        inner = Ctx(implicit=True, vars=ctx.vars, events_ok=False)
        steps = []
        for k in range(self.draw(st.integers(1, 3))):
            step = f"S{k}: WHAT({self.filter_cond(inner, min(depth, 1))})"
            if self.chance(1, 4):
                step += f" WHERE({self.c_event_atom(inner, 0)})"
            if self.chance(1, 3):
                step += f" WHEN({self.time_cond(inner, 0)})"
            if self.chance(1, 3):
                step += f" COUNT({self.draw(st.integers(1, 3))})"
            steps.append(step)
        time = "timestamp"
        if "sent" in self.world.events and self.chance(1, 4):
            time = "sent"
        negate = "not " if self.chance(1, 4) else ""
        return f"{negate}chain({src}, {time}, [{', '.join(steps)}])"

    # ------------------------------------------------------------ values

    def number_text(self, x: float) -> str:
        if isinstance(x, float):
            if not math.isfinite(x):
                return "1e300"
            text = repr(x)
            if "e" in text:
                mantissa, exp = text.split("e")
                text = f"{mantissa}e{int(exp)}"
            return text if not text.startswith("-") else f"-{text[1:]}"
        return str(x)

    def num(self, ctx: Ctx, depth: int) -> tuple[str, str]:
        """(text, "int" | "float") of a numeric expression."""
        options = ["literal", "field", "field", "field"]
        if depth > 0:
            options += ["arith", "arith", "arith", "neg", "if"]
        options += ["datepart", "current"]
        if ctx.events_ok and self.has_events():
            options += ["count", "agg"]
        if any(self.fields(ctx, k) for k in LIST_KINDS):
            options += ["listcount"]
        if self.fields(ctx, "list<int>") or self.fields(ctx, "list<float>"):
            options += ["listagg"]
        choice = self.pick(options)
        if choice == "literal":
            x = self.draw(st.one_of(st.sampled_from(INTS), st.sampled_from(FLOATS),
                                    st.sampled_from(INT_EDGES)))
            return self.number_text(x), "float" if isinstance(x, float) else "int"
        if choice == "field":
            fs = [(f, "int") for f in self.fields(ctx, "int")] + [
                (f, "float") for f in self.fields(ctx, "float")]
            if not fs:
                return str(self.pick(INTS)), "int"
            return self.pick(fs)
        if choice == "arith":
            a, ak = self.num(ctx, depth - 1)
            b, bk = self.num(ctx, depth - 1)
            op = self.pick(("+", "-", "*", "/", "%", "/", "%"))
            if self.chance(1, 12):  # null as an operand: null result
                b = "null"
            elif op in "/%" and self.chance(1, 4):
                b, bk = self.pick((("0", "int"), ("0.0", "float"), ("(i1 - i1)", "int")))
                if b == "(i1 - i1)" and "i1" not in self.fields(ctx, "int"):
                    b, bk = "0", "int"
            kind = "float" if "float" in (ak, bk) or op == "/" else "int"
            return f"({a} {op} {b})", kind
        if choice == "neg":
            a, ak = self.num(ctx, depth - 1)
            if a.startswith("-") and a[1:].replace(".", "").replace("e", "").isdigit():
                return a, ak  # -(-9223372036854775808) would not fit in 64 bits
            return f"-({a})", ak
        if choice == "if":
            c = self.cond(ctx, depth - 1)
            a, ak = self.num(ctx, depth - 1)
            b, bk = self.num(ctx, depth - 1)
            if self.chance(1, 5):
                b, bk = "null", ak
            kind = "float" if "float" in (ak, bk) else "int"
            return f"if({c}, {a}, {b})", kind
        if choice == "datepart":
            t, _ = self.temporal(ctx, 0)
            part = self.pick(("getYear", "getMonth", "getDayOfMonth"))
            return f"{_receiver(t)}.{part}()", "int"
        if choice == "current":
            return self.pick(("currentYear()", "currentMonth()", "currentDayOfMonth()")), "int"
        if choice == "count":
            if self.chance(1, 4):
                return f"({self.c_quantifier_select(ctx, depth)}).count()", "int"
            return f"{self.event_source(ctx, max(depth - 1, 0))}.count()", "int"
        if choice == "agg":
            fn = self.pick(("sum", "average", "min", "max"))
            inner = Ctx(implicit=True, vars=ctx.vars, events_ok=False)
            arg, ak = self.num(inner, 0)
            kind = "float" if fn == "average" else ak
            if self.chance(1, 4):  # over the field list: xEvent[...].qty.sum()
                f = self.pick(("price", "qty"))
                kind = "float" if fn == "average" or f == "price" else "int"
                return f"{self.event_source(ctx, 0)}.{f}.{fn}()", kind
            return f"{self.event_source(ctx, 0)}.{fn}({arg})", kind
        if choice == "listagg":
            fn = self.pick(("sum", "average", "min", "max"))
            lst = self.pick(self.fields(ctx, "list<int>") + self.fields(ctx, "list<float>"))
            if self.chance(1, 5):
                lst = f"{lst}.distinct()"
            kind = "float" if fn == "average" or lst.startswith("lf") else "int"
            return f"{lst}.{fn}()", kind
        lists = [f for k in LIST_KINDS for f in self.fields(ctx, k)]
        src = self.pick(lists)
        if ctx.events_ok and self.has_events() and self.chance(1, 4):
            src = f"{self.event_source(ctx, 0)}.{self.pick(('cat', 'price', 'qty'))}"
        return f"{src}{'.distinct()' if self.chance(1, 4) else ''}.count()", "int"

    def c_quantifier_select(self, ctx: Ctx, depth: int) -> str:
        v = self.fresh_var()
        src = self.event_source(Ctx(vars=ctx.vars, events_ok=False), 0)
        where = Ctx(vars=(*ctx.vars, v), events_ok=False)
        return f"select {v} from {src} where {self.where_cond(where, 0)}"

    def string_value(self, ctx: Ctx, depth: int, literal_ok: bool = False) -> str:
        fs = self.fields(ctx, "string")
        if literal_ok and (not fs or self.chance(1, 2)):
            return _string_literal(self.pick(STRINGS + CATEGORIES + self.types))
        if not fs:
            return _string_literal(self.pick(STRINGS))
        if depth > 0 and self.chance(1, 4):
            return self.derived_string(ctx, depth)
        return self.pick(fs)

    def derived_string(self, ctx: Ctx, depth: int) -> str:
        """A string that is not a field: if() (branches from two dictionaries, a literal or
        null) or regexGroup()."""
        fs = self.fields(ctx, "string")
        how = self.below(4)
        if how == 0:
            return f"if({self.cond(ctx, 0)}, {self.pick(fs)}, {self.pick(fs)})"
        if how == 1:
            other = self.pick(("null", _string_literal(self.pick(STRINGS + CATEGORIES))))
            a, b = (self.pick(fs), other) if self.chance(1, 2) else (other, self.pick(fs))
            return f"if({self.cond(ctx, 0)}, {a}, {b})"
        pattern, groups = self.pick(REGEX_GROUPS)
        receiver = self.pick(fs) if how == 2 or depth <= 0 else self.string_value(ctx, depth - 1)
        return (f"{_receiver(receiver)}.regexGroup({_string_literal(pattern)}, "
                f"{self.below(groups + 1)})")

    def c_derived(self, ctx: Ctx, depth: int) -> str:
        """A condition on a string that is not a field."""
        if not self.fields(ctx, "string"):
            return self.c_string(ctx, depth)
        v = self.derived_string(ctx, depth)
        how = self.below(4)
        if how == 0:
            other = self.string_value(ctx, depth - 1, literal_ok=True)
            return f"{v} {self.pick(('=', '!='))} {other}"
        if how == 1:
            return f"{_receiver(v)}.{self.pick(('isNull', 'isNotNull'))}()"
        if how == 2:
            items = [_string_literal(self.pick(STRINGS + CATEGORIES))
                     for _ in range(self.draw(st.integers(0, 2)))]
            if self.chance(1, 3):
                items.append(self.string_value(ctx, 0))
            return f"{v} {self.pick(('in', 'notIn'))} [{', '.join(items)}]"
        fn = self.pick(("equals", "startsWith", "doesNotEndWith", "contains", "like"))
        if fn == "like":
            return f"{_receiver(v)} like {_string_literal(self.pick(LIKE_PATTERNS))}"
        arg = self.string_value(ctx, depth - 1, literal_ok=True)
        return f"{_receiver(v)}.{fn}({arg}{self.pick(('', ', false'))})"

    def temporal(self, ctx: Ctx, depth: int, for_occurs: bool = False) -> tuple[str, str]:
        """(text, "timestamp" | "date") of a time value."""
        options = ["ts_field", "ts_field", "ts_field", "date_field", "date_field", "now",
                   "literal", "literal", "date"]
        if ctx.events_ok and self.has_events():
            options += ["max"]
        choice = self.pick(options)
        if choice == "ts_field":
            fs = self.fields(ctx, "timestamp")
            if fs:
                return self.pick(fs), "timestamp"
            choice = "now"
        if choice == "date_field":
            fs = self.fields(ctx, "date")
            if fs:
                return self.pick(fs), "date"
            choice = "now"
        if choice == "date":
            return _date_args(self.pick(BOUNDARY_DAYS)), "date"
        if choice == "literal":
            return instant_text(self.pick(BOUNDARIES), self.below(3)), "timestamp"
        if choice == "max":
            fn = self.pick(("min", "max"))
            return f"{self.event_source(ctx, 0)}.{fn}(timestamp)", "timestamp"
        return "now", "timestamp"

    # ------------------------------------------------------------ time conditions

    def unit(self) -> str:
        return self.pick(UNITS)

    def amount_unit(self) -> str:
        n = self.pick((0, 1, 1, 2, 3, 7, 30))
        unit = self.unit()
        return f"{n} {unit}" if n == 1 and self.chance(3, 4) else f"{n} {unit}s"

    def reference(self, ctx: Ctx) -> str:
        how = self.below(9)
        if how == 0:
            return "now"
        if how == 1:
            return self.pick(("today", "yesterday", "tomorrow"))
        if how <= 3:
            return f"{self.pick(('this', 'last', 'next'))} {self.unit()}"
        if how == 4:
            return instant_text(self.pick(BOUNDARIES), self.below(3))
        if how == 5:
            return _date_args(self.pick(BOUNDARY_DAYS))
        t, _ = self.temporal(Ctx(implicit=ctx.implicit, vars=ctx.vars,
                                 events_ok=ctx.events_ok), 0)
        return t

    def time_cond(self, ctx: Ctx, depth: int) -> str:
        form = self.below(6)
        if form <= 2:
            op = self.pick(COMPARE_OPS)
            direction = self.pick(("before", "after", "from"))
            return f"{op} {self.amount_unit()} {direction} {self.reference(ctx)}"
        if form == 3:
            return f"{self.pick(('before', 'after'))} {self.reference(ctx)}"
        if form == 4:
            on = self.pick(("", "on "))
            return f"{on}{self.reference(ctx)}"
        return f"between {self.reference(ctx)} and {self.reference(ctx)}"


@st.composite
def definitions(
    draw: st.DrawFn, world: World, segments: Sequence[str] = (), depth: int = 2
) -> str:
    """The text of a random well-typed definition over ``world`` (may name ``segments``)."""
    gen = _Gen(draw, world, tuple(segments))
    return gen.cond(PROFILE, draw(st.sampled_from((depth, depth, 1, 0))))
