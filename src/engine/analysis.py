"""What a checked definition reads, how far back in time it looks, and how it may be evaluated.

The streaming evaluator uses this to route events to the segments they can affect and to know
which segments change with time alone; `pqlite check` shows it; the eligibility rules follow
Adobe's documented ones (batch: everything; streaming and edge: profile-only definitions,
segment-of-segments, and events within the last 24 hours).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine import ir
from engine.functions import FUNCTIONS
from store.schema import Schema

__all__ = ["DAY_MS", "Analysis", "Eligibility", "analyze"]

DAY_MS = 86_400_000
_UNIT_MAX_MS = {  # the longest a unit can be, for upper bounds on windows
    ir.TimeUnit.MONTH: 31 * DAY_MS,
    ir.TimeUnit.YEAR: 366 * DAY_MS,
}
_CLOCK_CALLS = frozenset(n for n, f in FUNCTIONS.items() if f.family == "current")


@dataclass(frozen=True)
class Eligibility:
    eligible: bool
    reason: str


@dataclass(frozen=True)
class Analysis:
    """Facts about one checked definition.

    Attributes:
        profile_fields: profile attributes it reads.
        event_fields: event fields it reads.
        event_types: the event types whose events can change its value; None when any event
            can (some event condition does not pin the type); empty when it reads no events.
        event_queries: how many event conditions (filters, selects, chains) it contains.
        lookback_ms: how far before now its event conditions look, at most; None when some
            event condition has no window relative to now (its whole history counts).
        time_dependent: its value can change as time passes, with no new data (it uses now,
            today, a relative period or the current date).
        segment_refs: the segments it references with inSegment.
        negated_events: every event condition sits under a not.
        windows: per event condition, the event types it admits (None: any) and how far
            before now it looks (None: no bound); `history` combines them.
        methods: batch, streaming and edge eligibility with the reason.
    """

    profile_fields: frozenset[str]
    event_fields: frozenset[str]
    event_types: frozenset[str] | None
    event_queries: int
    lookback_ms: int | None
    time_dependent: bool
    segment_refs: frozenset[str]
    negated_events: bool
    windows: tuple[tuple[frozenset[str] | None, int | None], ...] = ()
    methods: Mapping[str, Eligibility] = field(default_factory=dict)

    @property
    def reads_events(self) -> bool:
        return self.event_queries > 0

    @property
    def profile_only(self) -> bool:
        return not self.reads_events and not self.segment_refs

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile_fields": sorted(self.profile_fields),
            "event_fields": sorted(self.event_fields),
            "event_types": None if self.event_types is None else sorted(self.event_types),
            "event_queries": self.event_queries,
            "lookback_ms": self.lookback_ms,
            "time_dependent": self.time_dependent,
            "segment_refs": sorted(self.segment_refs),
            "negated_events": self.negated_events,
            "methods": {
                k: {"eligible": v.eligible, "reason": v.reason} for k, v in self.methods.items()
            },
        }


def analyze(
    checked: ir.Expr,
    schema: Schema,
    *,
    references: Callable[[str], Analysis | None] | None = None,
) -> Analysis:
    """Analyze a definition that `check` has bound.

    Args:
        checked: the typed IR `engine.check` returned.
        schema: the schema it was checked against (for the event type and time fields).
        references: looks up the analysis of a referenced segment; edge eligibility of a
            definition that mixes events with inSegment depends on it.
    """
    nodes = list(ir.walk(checked))
    scopes = list(_event_scopes(checked, schema, negated=False))
    event_types: frozenset[str] | None = frozenset()
    for scope in scopes:
        if scope.types is None or event_types is None:
            event_types = None
        else:
            event_types |= scope.types
    lookbacks = [s.lookback for s in scopes]
    facts = Analysis(
        profile_fields=frozenset(n.name for n in nodes if isinstance(n, ir.Attr)),
        event_fields=frozenset(n.name for n in nodes if isinstance(n, ir.EventField))
        | frozenset(n.time_field for n in nodes if isinstance(n, ir.Chain)),
        event_types=event_types,
        event_queries=len(scopes),
        lookback_ms=None if None in lookbacks else max(lookbacks, default=0),  # type: ignore[type-var]
        time_dependent=any(
            isinstance(n, (ir.Now, ir.Period)) or (isinstance(n, ir.Call) and n.fn in _CLOCK_CALLS)
            for n in nodes
        ),
        segment_refs=frozenset(n.name for n in nodes if isinstance(n, ir.SegmentRef)),
        negated_events=bool(scopes) and all(s.negated for s in scopes),
        windows=tuple((s.types, s.lookback) for s in scopes),
    )
    return _with_methods(facts, references)


def history(facts: Iterable[Analysis]) -> dict[str | None, int | None]:
    """How far before now the definitions of ``facts`` read each event type: type -> ms
    (None: its whole history). The key None stands for the types not named, present when
    some condition admits any type; a type absent is read by none of them, at no instant.
    A store may leave out the events older than that (`store.subset`'s ``since``): every
    value of these definitions at ``now`` and later stays the same."""
    reach: dict[str | None, int | None] = {}
    for f in facts:
        for types, lookback in f.windows:
            for t in (None,) if types is None else types:
                reach[t] = _widest(reach[t], lookback) if t in reach else lookback
    if None in reach:
        anything = reach[None]
        return {t: _widest(ms, anything) for t, ms in reach.items()}
    return reach


def _widest(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else max(a, b)


# ---------------------------------------------------------------- event scopes


@dataclass(frozen=True)
class _Scope:
    """One event condition: which event types it admits and how far back it looks."""

    types: frozenset[str] | None
    lookback: int | None
    negated: bool


def _event_scopes(
    n: ir.Node, schema: Schema, *, negated: bool, bounds: Mapping[str, int | None] | None = None
) -> Iterable[_Scope]:
    """The event conditions inside ``n``, outermost first.

    ``bounds`` holds the lookback of the named events of enclosing clauses: a window anchored
    on such an event's timestamp (``P.timestamp occurs after A.timestamp``) is bounded by it.
    """
    bounds = bounds or {}
    match n:
        case ir.Not():
            yield from _event_scopes(n.arg, schema, negated=not negated, bounds=bounds)
            return
        case ir.Filter() | ir.Events() | ir.Member():
            source: ir.Expr = n
            while isinstance(source, ir.Member):
                source = source.obj
            conds = _filter_conditions(source)
            yield _Scope(_types(conds, "", schema), _lookback(conds, "", schema, bounds), negated)
            return
        case ir.Chain():
            base = _filter_conditions(n.source)
            steps = [
                _Scope(
                    _types([*base, s.what, *([s.where] if s.where else [])], "", schema),
                    _narrowest(
                        [
                            _lookback([*base, s.what], "", schema, bounds),
                            _window(s.when, bounds) if s.when is not None else None,
                        ]
                    ),
                    negated,
                )
                for s in n.steps
            ]
            yield _merge(steps, negated)
            return
        case ir.Select():
            clauses: list[_Scope] = []
            nested: list[_Scope] = []
            inner = dict(bounds)
            for c in n.clauses:
                local = _filter_conditions(c.source)
                # forall's where is what every event must meet, not which events count: an
                # event outside its window decides the value too.
                forall = n.quantifier is ir.Quantifier.FORALL
                named = [c.cond] if c.cond is not None and not forall else []
                lookback = _narrowest(
                    [_lookback(local, "", schema, inner), _lookback(named, c.var, schema, inner)]
                )
                inner[c.var] = lookback
                clauses.append(
                    _Scope(
                        _both(_types(local, "", schema), _types(named, c.var, schema)),
                        lookback,
                        negated,
                    )
                )
                if c.cond is not None:  # quantifiers nested in a where see this clause's event
                    nested.extend(_event_scopes(c.cond, schema, negated=negated, bounds=inner))
            yield _merge(clauses, negated)
            yield from nested
            return
    for child in ir.children(n):
        yield from _event_scopes(child, schema, negated=negated, bounds=bounds)


def _merge(scopes: list[_Scope], negated: bool) -> _Scope:
    types: frozenset[str] | None = frozenset()
    for s in scopes:
        types = None if s.types is None or types is None else types | s.types
    lookbacks = [s.lookback for s in scopes]
    lookback = None if None in lookbacks else max(lookbacks)  # type: ignore[type-var]
    return _Scope(types, lookback, negated)


def _both(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    """Types admitted by two conditions that must both hold."""
    if a is None or b is None:
        return a if b is None else b
    return a & b


def _filter_conditions(source: ir.Expr) -> list[ir.Expr]:
    """The conditions of ``xEvent[a][b]`` (innermost first); none for plain xEvent."""
    conds: list[ir.Expr] = []
    while isinstance(source, ir.Filter):
        conds.insert(0, source.cond)
        source = source.source
    return conds


def _conjuncts(conds: Iterable[ir.Expr]) -> list[ir.Expr]:
    out: list[ir.Expr] = []
    for c in conds:
        out.extend(c.args if isinstance(c, ir.And) else (c,))
    return out


def _types(conds: list[ir.Expr], var: str, schema: Schema) -> frozenset[str] | None:
    """Event types admitted by the conjunction of ``conds``; None when unconstrained."""
    if schema.event_type is None:
        return None
    best: frozenset[str] | None = None
    for c in _conjuncts(conds):
        found = _type_test(c, var, schema.event_type)
        if found is not None:
            best = found if best is None else best & found
    return best


def _type_test(c: ir.Expr, var: str, type_field: str) -> frozenset[str] | None:
    def is_type(x: ir.Expr) -> bool:
        return isinstance(x, ir.EventField) and x.var == var and x.name == type_field

    def strings(items: Iterable[ir.Expr]) -> frozenset[str] | None:
        values = [x.value for x in items if isinstance(x, ir.Literal) and isinstance(x.value, str)]
        return frozenset(values) if len(values) == len(list(items)) else None

    match c:
        case ir.Compare(op="=", left=left, right=ir.Literal() as lit) if is_type(left):
            return strings([lit])
        case ir.Compare(op="=", left=ir.Literal() as lit, right=right) if is_type(right):
            return strings([lit])
        case ir.Call(fn="in", args=(item, ir.ListLit() as items)) if is_type(item):
            return strings(items.items)
        case ir.Call(fn="equals", args=(item, ir.Literal() as lit)) if is_type(item):
            return strings([lit])  # case-sensitive form; with a false flag it can match more
        case ir.Or():
            parts = [_type_test(a, var, type_field) for a in c.args]
            if all(p is not None for p in parts):
                return frozenset().union(*parts)  # type: ignore[arg-type]
    return None


# ---------------------------------------------------------------- windows


def _lookback(
    conds: list[ir.Expr], var: str, schema: Schema, bounds: Mapping[str, int | None]
) -> int | None:
    """Upper bound of now - t over the events ``conds`` admit (None: unbounded)."""
    windows: list[int | None] = [None]
    for c in _conjuncts(conds):
        if (
            isinstance(c, ir.Occurs)
            and isinstance(c.subject, ir.EventField)
            and c.subject.var == var
            and c.subject.name == schema.event_time
        ):
            windows.append(_window(c.when, bounds))
    return _narrowest(windows)


def _narrowest(windows: list[int | None]) -> int | None:
    bounded = [w for w in windows if w is not None]
    return min(bounded) if bounded else None


def _unit_ms(unit: ir.TimeUnit) -> int:
    return unit.ms or _UNIT_MAX_MS[unit]


def _reach(anchor: ir.Expr, bounds: Mapping[str, int | None]) -> int | None:
    """How far before now the start of ``anchor`` can be (None: not relative to now)."""
    match anchor:
        case ir.EventField(var=var) if var in bounds:
            return bounds[var]
        case ir.Now():
            return 0
        case ir.Period():
            return max(0, (1 - anchor.offset) * _unit_ms(anchor.unit))
    return None


def _window(when: ir.TimeCond, bounds: Mapping[str, int | None]) -> int | None:
    """Upper bound of now - t for timestamps satisfying ``when`` (None: unbounded)."""
    match when:
        case ir.Within(direction="before", op=op, amount=amount, unit=unit, anchor=anchor):
            reach = _reach(anchor, bounds)
            if reach is None or op not in ("<", "<=", "="):
                return None
            return reach + (amount + (op == "=")) * _unit_ms(unit)
        case ir.Within(direction="after" | "from", op=op, amount=amount, unit=unit, anchor=anchor):
            reach = _reach(anchor, bounds)
            if reach is None:
                return None
            if when.direction == "after":
                return reach
            return reach + amount * _unit_ms(unit) if op in ("<", "<=", "=") else None
        case ir.Side(direction="after", anchor=anchor) | ir.On(anchor=anchor):
            return _reach(anchor, bounds)
        case ir.Between(lo=lo):
            return _reach(lo, bounds)
    return None


# ---------------------------------------------------------------- eligibility


def _with_methods(facts: Analysis, references: Callable[[str], Analysis | None] | None) -> Analysis:
    batch = Eligibility(True, "every definition can be evaluated in batch")
    streaming = edge = _streaming(facts)
    if streaming.eligible and facts.reads_events and facts.segment_refs:
        profile_only_refs = references is not None and all(
            (a := references(name)) is not None and a.profile_only for name in facts.segment_refs
        )
        if not profile_only_refs:
            edge = Eligibility(
                False,
                "events combined with inSegment are edge-eligible only when every "
                "referenced segment reads profile attributes alone",
            )
    methods = {"batch": batch, "streaming": streaming, "edge": edge}
    return Analysis(**{**facts.__dict__, "methods": methods})


def _streaming(facts: Analysis) -> Eligibility:
    if facts.profile_only:
        return Eligibility(True, "reads profile attributes only")
    if not facts.reads_events:
        return Eligibility(True, "segment of segments with profile attributes")
    if facts.negated_events:
        return Eligibility(False, "its event condition is entirely negated")
    if facts.lookback_ms is None:
        return Eligibility(False, "an event condition has no time window relative to now")
    if facts.lookback_ms > DAY_MS:
        hours = facts.lookback_ms / 3_600_000
        return Eligibility(False, f"events are looked at up to {hours:g} hours back (more than 24)")
    what = "a single event" if facts.event_queries == 1 else "several events"
    return Eligibility(True, f"{what} within the last 24 hours")
