"""The REPL's evaluations: counts of an expression and of its clauses, and why one profile is
in a segment or not.

Everything is exact: an expression is evaluated over every profile of the store at the
session instant, never on a sample. The vector tier (`engine.vector`) answers without
compiling anything, which is what an interactive session wants; what it does not support is
evaluated by the compiled kernels of a scratch `Engine` holding the session's definitions.

**Clauses.** The top-level ``and`` (or ``or``) of a checked definition is cut into its
operands. In condition position ``a and b`` is true exactly when both are true (a null is
false), so the running combination of the clauses' member sets is the set of the clauses
so far, and the last running count is the definition's count: the clause where it drops to
zero is the one that empties the audience.

**Why.** For one profile, each clause is evaluated on a store of that profile alone
(`store.subset`), with the values of its operands (``age = 31``, ``xEvent[...].count() =
0``). For definitions that change with time, `engine.timers.candidates` lists the instants
at which time alone can change the profile's values (a superset of the real changes); the
clauses and the definition are evaluated at each in turn, and the first instant where one
differs from now is when it will next flip.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from engine import ir, vector
from engine.passes import optimize
from engine.repl_text import open_brackets
from engine.segments import dependency_cycle
from engine.session import Engine
from engine.timeops import DAY_MS
from engine.timers import Timers, candidates
from engine.unparse import unparse
from store.profile_store import ProfileStore

__all__ = ["ClauseCount", "Count", "Evaluations", "Why", "WhyClause", "clauses", "refs_of"]

HORIZON_MS = 10 * 366 * DAY_MS  # how far ahead `why` looks for the next change
MAX_INSTANTS = 20_000  # instants `why` evaluates at most (a profile with a huge history)
_CALENDAR_DAYS = 3 * 366  # midnights `why` tries for definitions using calendar functions
_PREDICATES = {"isNull", "isNotNull", "in", "notIn", "like", "matches", "includes",
               "intersects", "subsetOf", "supersetOf", "startsWith", "endsWith", "contains",
               "equals", "notEqualTo", "doesNotStartWith", "doesNotEndWith", "doesNotContain"}


@dataclass(frozen=True)
class ClauseCount:
    """One top-level clause: its text, its members, and the members of it and the clauses
    before it combined (``running``)."""

    text: str
    count: int
    running: int


@dataclass(frozen=True)
class Count:
    """An expression's members over the whole store at one instant."""

    mask: np.ndarray  # bool per profile
    total: int  # profiles in the store
    seconds: float
    op: str | None  # "and" / "or" when the clauses are counted
    clauses: tuple[ClauseCount, ...] = ()

    @property
    def count(self) -> int:
        return int(self.mask.sum())


@dataclass(frozen=True)
class WhyClause:
    """A clause for one profile: its value, the values of its operands, and the next
    instant time alone flips it (None: not with time alone)."""

    text: str
    value: bool
    values: tuple[tuple[str, Any, Any], ...]  # (operand text, value, dtype)
    next_flip: int | None = None


@dataclass(frozen=True)
class Why:
    key: Any
    at_ms: int
    member: bool
    op: str | None
    clauses: tuple[WhyClause, ...]
    next_flip: int | None  # when the profile next enters (not a member) or exits (a member)
    searched: int = 0  # candidate instants evaluated
    capped: bool = False  # stopped at MAX_INSTANTS before finding every flip


def refs_of(expr: ir.Node) -> frozenset[str]:
    return frozenset(n.name for n in ir.walk(expr) if isinstance(n, ir.SegmentRef))


def clauses(expr: ir.Expr) -> tuple[str | None, list[ir.Expr]]:
    """The top-level operator (``"and"``, ``"or"`` or None) and its operands, nested
    operands of the same operator flattened (``(a and b) and c`` has three)."""
    if not isinstance(expr, ir.And | ir.Or):
        return None, [expr]
    kind = type(expr)
    out: list[ir.Expr] = []
    todo = list(expr.args)
    while todo:
        node = todo.pop(0)
        if type(node) is kind:
            todo[:0] = node.args
        else:
            out.append(node)
    return ("and" if kind is ir.And else "or"), out


def source_of(node: ir.Node, text: str) -> str:
    """What the user wrote for ``node`` (its span in ``text``) on one line; the canonical
    text when it has no span."""
    if node.span is None or node.span.end <= node.span.start:
        return unparse(node)
    end = node.span.end
    # A call's span ends at its last argument: take in the brackets it leaves open.
    depth, _ = open_brackets(text[node.span.start:end])
    while depth > 0 and end < len(text) and text[end] in ")] \t\n":
        depth -= text[end] in ")]"
        end += 1
    piece = text[node.span.start:end]
    return " ".join(piece.split()) if "\n" in piece else piece


@dataclass
class Evaluations:
    """Evaluates over a store with the session's definitions (``definitions``: name → text,
    already checked; ``exprs``: name → optimized IR)."""

    store: ProfileStore
    definitions: dict[str, str] = field(default_factory=dict)
    exprs: dict[str, ir.Expr] = field(default_factory=dict)
    _cache: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)

    def changed(self) -> None:
        """The definitions changed: forget the segments' memberships."""
        self._cache.clear()

    def order(self, names: Any = None) -> list[str]:
        """``names`` (default: all) and the segments they refer to, referenced first."""
        wanted = list(self.exprs) if names is None else list(names)
        out: list[str] = []

        def visit(name: str) -> None:
            if name in out or name not in self.exprs:
                return
            for r in sorted(refs_of(self.exprs[name])):
                visit(r)
            out.append(name)

        for name in wanted:
            visit(name)
        return out

    def cycle(self, name: str, expr: ir.Expr) -> list[str] | None:
        refs = {n: refs_of(e) for n, e in self.exprs.items()}
        refs[name] = refs_of(expr)
        return dependency_cycle(refs)

    # ------------------------------------------------------------ whole store

    def segments(self, at_ms: int) -> dict[str, np.ndarray]:
        """Every defined segment's membership over the store at ``at_ms`` (kept per instant
        until the definitions change)."""
        if at_ms not in self._cache:
            if len(self._cache) > 4:
                self._cache.clear()
            self._cache[at_ms] = self.evaluate(self.store, {}, at_ms, names=self.order())
        return self._cache[at_ms]

    def count(self, expr: ir.Expr, text: str, at_ms: int) -> Count:
        """Members of checked ``expr`` (written as ``text``) at ``at_ms``, with the counts
        of its clauses."""
        started = time.perf_counter()
        segments = self.segments(at_ms) if refs_of(expr) else {}
        op, parts = clauses(expr)
        exprs = {"": optimize(expr)}
        if op is not None:
            exprs.update({str(k): optimize(c) for k, c in enumerate(parts)})
        masks = self.evaluate(self.store, exprs, at_ms, segments=segments)
        seconds = time.perf_counter() - started
        counted: list[ClauseCount] = []
        if op is not None:
            running: np.ndarray | None = None
            for k, c in enumerate(parts):
                mask = masks[str(k)]
                if running is None:
                    running = mask.copy()
                elif op == "and":
                    running &= mask
                else:
                    running |= mask
                counted.append(ClauseCount(source_of(c, text), int(mask.sum()),
                                           int(running.sum())))
        return Count(masks[""], len(self.store), seconds, op, tuple(counted))

    # ------------------------------------------------------------ evaluation

    def evaluate(self, store: ProfileStore, exprs: Mapping[str, ir.Expr], at_ms: int, *,
                 segments: Mapping[str, np.ndarray] | None = None,
                 names: Sequence[str] = ()) -> dict[str, np.ndarray]:
        """Bool masks over ``store`` at ``at_ms``: of the defined segments ``names`` (in
        dependency order), then of the optimized ``exprs`` (which may refer to segments of
        ``segments`` or ``names``). The vector tier answers what it supports; the rest goes
        to kernels compiled by a scratch engine."""
        masks = dict(segments or {})
        # One evaluator for all: it reads ``masks`` as they fill, and the event queries
        # that clauses and their definition share are reached once.
        ev = vector.Evaluator(store, at_ms, masks)
        out: dict[str, np.ndarray] = {}
        for name in names:
            masks[name] = out[name] = self._one(ev, store, self.exprs[name], at_ms, masks)
        for key, expr in exprs.items():
            out[key] = self._one(ev, store, expr, at_ms, masks)
        return out

    def _one(self, ev: vector.Evaluator, store: ProfileStore, expr: ir.Expr, at_ms: int,
             masks: Mapping[str, np.ndarray]) -> np.ndarray:
        if vector.supports(expr, store):
            try:
                return np.asarray(ev(expr), np.bool_)
            except vector.Unsupported:
                pass
        return self._compiled(store, expr, at_ms, masks)

    def _compiled(self, store: ProfileStore, expr: ir.Expr, at_ms: int,
                  masks: Mapping[str, np.ndarray]) -> np.ndarray:
        scratch = Engine(self.store, tier="kernel", background=False)
        needed = self.order(refs_of(expr))
        for name in needed:
            scratch.define(name, self.definitions[name])
        scratch.define(_SCRATCH, unparse(expr))
        given = {n: np.asarray(masks[n], np.uint8) for n in needed if n in masks}
        found = scratch.evaluate_subset(store, [_SCRATCH, *needed], at_ms, masks=given)
        return np.asarray(found[_SCRATCH], np.bool_)

    # ------------------------------------------------------------ one profile

    def why(self, key: Any, expr: ir.Expr, text: str, at_ms: int) -> Why:
        """Why profile ``key`` is (or is not) in checked ``expr`` (written as ``text``) at
        ``at_ms``; raises `LookupError` for an unknown key."""
        index = int(self.store.index_of([key])[0])
        if index < 0:
            raise LookupError(key)
        one = self.store.subset([index]).store
        op, parts = clauses(expr)
        items = {"": optimize(expr)}
        if op is not None:
            items.update({str(k): optimize(c) for k, c in enumerate(parts)})
        needed = self.order(refs_of(expr))
        now = self.evaluate(one, items, at_ms, names=needed)
        values = {k: bool(m[0]) for k, m in now.items() if k in items}
        flips, searched, capped = self._flips(one, items, needed, values, at_ms)
        whys = tuple(
            WhyClause(source_of(c, text), values[str(k)], self._values(one, c, at_ms, now),
                      flips.get(str(k)))
            for k, c in enumerate(parts)
        ) if op is not None else (
            WhyClause(source_of(expr, text), values[""], self._values(one, expr, at_ms, now),
                      flips.get("")),
        )
        return Why(key, at_ms, values[""], op, whys, flips.get(""), searched, capped)

    def _values(self, one: ProfileStore, clause: ir.Expr, at_ms: int,
                masks: Mapping[str, np.ndarray]) -> tuple[tuple[str, Any, Any], ...]:
        out = []
        ev = vector.Evaluator(one, at_ms, masks)
        for operand in operands(clause):
            try:
                value = ev.values(optimize(operand))[0]
            except (vector.Unsupported, KeyError, TypeError, ValueError, IndexError):
                continue  # shown without its value: what the vector tier cannot compute
            out.append((elide_filters(unparse(operand)), value, operand.dtype))
        return tuple(out)

    def _flips(self, one: ProfileStore, items: Mapping[str, ir.Expr], needed: list[str],
               values: Mapping[str, bool], at_ms: int) -> tuple[dict[str, int], int, bool]:
        """The first instant after ``at_ms`` at which each item's value differs from
        ``values`` with no new data; items that never flip are left out."""
        closure = [*items.values(), *(self.exprs[n] for n in needed)]
        timers = Timers.of(closure)
        if timers.empty:
            return {}, 0, False
        _, instants, _, _ = candidates(one, timers, np.array([at_ms], np.int64), at_ms + HORIZON_MS)
        if timers.daily:
            first = (at_ms // DAY_MS + 1) * DAY_MS
            midnights = first + DAY_MS * np.arange(_CALENDAR_DAYS, dtype=np.int64)
            instants = np.union1d(instants, midnights)
        found: dict[str, int] = {}
        capped = len(instants) > MAX_INSTANTS
        searched = 0
        for x in instants[:MAX_INSTANTS]:
            searched += 1
            later = self.evaluate(one, items, int(x), names=needed)
            for k, v in values.items():
                if k not in found and bool(later[k][0]) != v:
                    found[k] = int(x)
            if len(found) == len(values):
                break
        return found, searched, capped and len(found) < len(values)

    def sample(self, mask: np.ndarray, n: int = 8) -> list[Any]:
        """The keys of the first ``n`` members."""
        members = np.flatnonzero(mask)[:n]
        keys: list[Any] = self.store.keys.take(pa.array(members, pa.int64())).to_pylist()
        return keys


_SCRATCH = "__repl_expression"


def operands(clause: ir.Expr) -> list[ir.Expr]:
    """The values that decide a clause, as written: the non-constant sides of a comparison,
    the subject of a predicate or of ``occurs``, a boolean attribute itself."""
    if isinstance(clause, ir.Not):
        return operands(clause.arg)
    if isinstance(clause, ir.And | ir.Or):
        return [o for a in clause.args for o in operands(a)]
    if isinstance(clause, ir.Compare):
        return [s for s in (clause.left, clause.right) if not _constant(s)]
    if isinstance(clause, ir.Call) and clause.fn in _PREDICATES:
        return [a for a in clause.args if not _constant(a)]
    if isinstance(clause, ir.Occurs):
        return [] if _constant(clause.subject) else [clause.subject]
    if isinstance(clause, ir.Attr):
        return [clause]
    return []


def elide_filters(text: str, keep: int = 12) -> str:
    """``text`` with every outermost ``[...]`` longer than ``keep`` shortened to ``[…]``: the
    clause beside it already shows the filter (``xEvent[…].count() = 2``)."""
    out: list[str] = []
    depth, start = 0, 0
    quote = ""
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote and text[i - 1] != "\\" else quote
        elif ch in "\"'`":
            quote = ch
        elif ch == "[":
            if depth == 0:
                out.append(text[start:i + 1])
                start = i + 1
            depth += 1
        elif ch == "]" and depth:
            depth -= 1
            if depth == 0:
                inner = text[start:i]
                out.append("…" if len(inner) > keep else inner)
                start = i
    out.append(text[start:])
    return "".join(out)


def _constant(node: ir.Expr) -> bool:
    return all(isinstance(n, ir.Literal | ir.ListLit | ir.Now | ir.Period)
               for n in ir.walk(node))

