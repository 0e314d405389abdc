"""Bind names and check types: parsed IR + schema → typed IR, or every error at once.

Scopes: at the top, names are profile attributes. Inside ``xEvent[...]``, a chain step and the
argument of an event aggregate (``.sum(price)``) there is an *implicit* event: a bare name is
one of its fields if the events have such a field, otherwise a profile attribute. A select,
exists or forall clause binds a *named* event (``X``); ``X.price`` is its field and bare names
are profile attributes. Event queries cannot nest, except that a clause's source may filter
events using the variables to its left.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from engine import ir
from engine.errors import (
    SegmentError,
    SegmentNameError,
    SegmentTypeError,
    SegmentValueError,
    raise_all,
)
from engine.functions import FUNCTIONS, Function
from engine.parser import parse
from engine.types import (
    BOOL,
    DATE,
    FLOAT,
    INT,
    STRING,
    TIMESTAMP,
    Special,
    Type,
    describe,
    is_numeric,
    is_temporal,
    list_of,
)
from store.schema import DType, Kind, Schema

__all__ = ["check", "validate"]

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
ERROR = Special.ERROR


def check(
    definition: str | ir.Expr, schema: Schema, *, segments: Iterable[str] | None = None
) -> ir.Expr:
    """Bind every name in ``definition`` against ``schema`` and infer every node's type.

    Args:
        definition: segment text or the IR `parse` returned.
        schema: the profile and event fields the definition may read.
        segments: names ``inSegment`` may refer to; None skips that check.

    Returns:
        The typed IR: paths bound to `ir.Attr` / `ir.EventField`, ``dtype`` set on every node.

    Raises:
        SegmentError: the only error, or `SegmentErrorGroup` with all of them in text order.
    """
    checked, errors = _run(definition, schema, segments)
    raise_all(errors)
    return checked


def validate(
    definition: str | ir.Expr, schema: Schema, *, segments: Iterable[str] | None = None
) -> list[SegmentError]:
    """Every problem with ``definition`` (syntax, names, types), never raising for them."""
    try:
        return _run(definition, schema, segments)[1]
    except SegmentError as e:  # a syntax error stops before checking
        return e.errors


def _run(
    definition: str | ir.Expr, schema: Schema, segments: Iterable[str] | None
) -> tuple[ir.Expr, list[SegmentError]]:
    source = definition if isinstance(definition, str) else None
    tree = parse(definition) if isinstance(definition, str) else definition
    checker = _Checker(schema, source, None if segments is None else frozenset(segments))
    root = checker.cond(tree, _Env(events_allowed=True))
    errors = sorted(checker.errors, key=lambda e: e.span.start if e.span else -1)
    return root, errors


@dataclass(frozen=True)
class _Env:
    """What names mean at a point of the definition."""

    vars: tuple[str, ...] = ()  # named events bound by enclosing clauses, left to right
    implicit: bool = False  # inside a filter, step or aggregate argument
    events_allowed: bool = False  # may xEvent appear here?

    def inner(self, **changes: object) -> _Env:
        return _Env(**{**self.__dict__, **changes})


@dataclass
class _Checker:
    schema: Schema
    source: str | None
    segments: frozenset[str] | None
    errors: list[SegmentError] = field(default_factory=list)

    # ------------------------------------------------------------ reporting

    def fail(
        self,
        cls: type[SegmentError],
        message: str,
        node: ir.Node,
        hint: str | None = None,
    ) -> ir.Expr:
        self.errors.append(cls(message, node.span, self.source, hint=hint))
        if isinstance(node, ir.Expr):
            return node.with_(dtype=ERROR)
        return ir.Literal(None, ir.LitKind.NULL, span=node.span, dtype=ERROR)

    # ------------------------------------------------------------ positions

    def cond(self, node: ir.Expr, env: _Env) -> ir.Expr:
        """Check ``node`` where a condition is expected (its truth value is used)."""
        out = self.expr(node, env)
        t = out.dtype
        if t is Special.PERIOD:
            return self.fail(
                SegmentTypeError,
                "a calendar period is not a condition",
                node,
                hint="test a timestamp against it: timestamp occurs today",
            )
        if t is Special.NULL:
            return self.fail(SegmentTypeError, "null is never true", node)
        return out

    def expr(self, node: ir.Expr, env: _Env) -> ir.Expr:
        method = getattr(self, f"visit_{type(node).__name__}", None)
        if method is None:
            return self.fail(SegmentTypeError, f"{type(node).__name__} cannot be used here", node)
        result: ir.Expr = method(node, env)
        return result

    # ------------------------------------------------------------ leaves

    def visit_Literal(self, node: ir.Literal, env: _Env) -> ir.Expr:
        if (
            node.kind is ir.LitKind.INT
            and isinstance(node.value, int)
            and not INT64_MIN <= node.value <= INT64_MAX
        ):
            return self.fail(
                SegmentValueError, f"integer {node.value} does not fit in 64 bits", node
            )
        return node.with_(dtype=_LITERAL_TYPES[node.kind])

    def visit_ListLit(self, node: ir.ListLit, env: _Env) -> ir.Expr:
        items = [self.expr(x, env) for x in node.items]
        if any(x.dtype is ERROR for x in items):
            return node.with_(items=tuple(items), dtype=ERROR)
        target = _unify_all([x.dtype for x in items if x.dtype is not Special.NULL])
        if target is None:
            if items:
                return self.fail(SegmentTypeError, "a list of only nulls has no type", node)
            return node.with_(dtype=Special.NULL)  # [] takes its type from its context
        if not isinstance(target, DType) or target.is_list:
            return self.fail(
                SegmentTypeError,
                "list elements must be single values of one type",
                node,
                hint="mix numbers with numbers, strings with strings, ...",
            )
        coerced = []
        for x in items:
            y = self.coerce(x, target)
            if y.dtype not in (target, Special.NULL, ERROR) and not (
                is_numeric(y.dtype) and target.kind.is_numeric
            ):
                return self.fail(
                    SegmentTypeError,
                    f"list mixes {describe(target)} and {describe(y.dtype)} elements",
                    x,
                )
            coerced.append(y)
        kind = Kind.FLOAT if target.kind is Kind.FLOAT else target.kind
        return node.with_(items=tuple(coerced), dtype=list_of(DType(kind)))

    def visit_Path(self, node: ir.Path, env: _Env) -> ir.Expr:
        parts = node.parts
        name = ".".join(parts)
        if parts[0] in env.vars:
            if len(parts) == 1:
                return self.fail(
                    SegmentTypeError,
                    f"{parts[0]} is an event, not a value",
                    node,
                    hint=f"use one of its fields, e.g. {parts[0]}.{self.schema.event_time or 'timestamp'}",
                )
            return self.event_field(node, parts[0], ".".join(parts[1:]))
        if env.implicit and name in self.schema.events:
            return self.event_field(node, "", name)
        if name in self.schema.profile:
            return ir.Attr(name, span=node.span, dtype=self.schema.profile[name].dtype)
        leaves = [f for f in self.schema.profile if f.startswith(name + ".")]
        if leaves:  # a struct: present when any of its fields is
            present = tuple(
                ir.Call(
                    "isNotNull",
                    (ir.Attr(f, span=node.span, dtype=self.schema.profile[f].dtype),),
                    span=node.span,
                    dtype=BOOL,
                )
                for f in leaves
            )
            if len(present) == 1:
                return present[0]
            return ir.Or(present, span=node.span, dtype=BOOL)
        return self.unknown_name(node, name, env)

    def event_field(self, node: ir.Expr, var: str, name: str) -> ir.Expr:
        if name not in self.schema.events:
            who = f"event {var} has" if var else "the events have"
            return self.fail(
                SegmentNameError,
                f"{who} no field {name!r}",
                node,
                hint=did_you_mean(name, self.schema.events),
            )
        return ir.EventField(var, name, span=node.span, dtype=self.schema.events[name].dtype)

    def unknown_name(self, node: ir.Expr, name: str, env: _Env) -> ir.Expr:
        candidates = list(self.schema.profile) + list(env.vars)
        if env.implicit:
            candidates += list(self.schema.events)
        hint = did_you_mean(name, candidates)
        if not hint and not env.implicit and name in self.schema.events:
            hint = (
                f"{name!r} is an event field: use it inside xEvent[...], a chain step, or "
                "through a select variable (X.field)"
            )
        return self.fail(SegmentNameError, f"unknown field {name!r}", node, hint=hint)

    def visit_Attr(self, node: ir.Attr, env: _Env) -> ir.Expr:
        if node.name not in self.schema.profile:
            return self.unknown_name(node, node.name, env)
        return node.with_(dtype=self.schema.profile[node.name].dtype)

    def visit_EventField(self, node: ir.EventField, env: _Env) -> ir.Expr:
        return self.event_field(node, node.var, node.name)

    def visit_Events(self, node: ir.Events, env: _Env) -> ir.Expr:
        if not self.schema.has_events:
            return self.fail(SegmentNameError, "this schema has no events", node)
        if not env.events_allowed:
            return self.fail(
                SegmentTypeError,
                "xEvent cannot be used inside another event query",
                node,
                hint="combine the conditions in one filter, or write two conditions joined by and",
            )
        return node.with_(dtype=Special.EVENTS)

    def visit_Now(self, node: ir.Now, env: _Env) -> ir.Expr:
        return node.with_(dtype=TIMESTAMP)

    def visit_Period(self, node: ir.Period, env: _Env) -> ir.Expr:
        return node.with_(dtype=Special.PERIOD)

    def visit_SegmentRef(self, node: ir.SegmentRef, env: _Env) -> ir.Expr:
        if self.segments is not None and node.name not in self.segments:
            return self.fail(
                SegmentNameError,
                f"unknown segment {node.name!r}",
                node,
                hint=did_you_mean(node.name, self.segments),
            )
        return node.with_(dtype=BOOL)

    # ------------------------------------------------------------ logic

    def visit_Not(self, node: ir.Not, env: _Env) -> ir.Expr:
        return node.with_(arg=self.cond(node.arg, env), dtype=BOOL)

    def visit_And(self, node: ir.And, env: _Env) -> ir.Expr:
        return node.with_(args=tuple(self.cond(a, env) for a in node.args), dtype=BOOL)

    def visit_Or(self, node: ir.Or, env: _Env) -> ir.Expr:
        return node.with_(args=tuple(self.cond(a, env) for a in node.args), dtype=BOOL)

    # ------------------------------------------------------------ comparisons and arithmetic

    def visit_Compare(self, node: ir.Compare, env: _Env) -> ir.Expr:
        left, right = self.expr(node.left, env), self.expr(node.right, env)
        left, right = self.coerce_pair(left, right)
        out = node.with_(left=left, right=right, dtype=BOOL)
        if ERROR in (left.dtype, right.dtype):
            return out.with_(dtype=ERROR)
        problem = _compare_problem(node.op, left.dtype, right.dtype)
        if problem:
            message, hint = problem
            return self.fail(SegmentTypeError, message, node, hint=hint)
        return out

    def coerce_pair(self, left: ir.Expr, right: ir.Expr) -> tuple[ir.Expr, ir.Expr]:
        """Coerce a literal on one side to the type of the other side, as PQL does."""
        lt, rt = left.dtype, right.dtype
        if isinstance(right, (ir.Literal, ir.ListLit)) and isinstance(lt, DType):
            right = self.coerce(right, lt.element)
        elif isinstance(left, (ir.Literal, ir.ListLit)) and isinstance(rt, DType):
            left = self.coerce(left, rt.element)
        return left, right

    def coerce(self, node: ir.Expr, target: DType) -> ir.Expr:
        """``node`` as a ``target`` if it is a literal that reads as one; otherwise unchanged.

        A list literal coerces element by element; ``[]`` takes the list type of ``target``.
        """
        if isinstance(node, ir.ListLit) and node.dtype is not ERROR:
            items = tuple(self.coerce(x, target) for x in node.items)
            if all(_same_family(x.dtype, target) for x in items if isinstance(x.dtype, DType)):
                element = target
                if target.kind is Kind.INT and any(
                    isinstance(x.dtype, DType) and x.dtype.kind is Kind.FLOAT for x in items
                ):
                    element = DType(Kind.FLOAT)  # ints and floats mix into floats
                return node.with_(items=items, dtype=list_of(element))
            return node.with_(items=items)
        if not isinstance(node, ir.Literal) or node.dtype in (target, ERROR):
            return node  # an ERROR literal stands for a failed subtree: never re-read it
        value, kind = node.value, node.kind
        try:
            if kind is ir.LitKind.STRING and isinstance(value, str):
                return _coerce_string(node, value, target)
            if kind is ir.LitKind.INT and isinstance(value, int):
                if target.kind is Kind.STRING:
                    return ir.Literal(str(value), ir.LitKind.STRING, span=node.span, dtype=STRING)
                if target.kind is Kind.TIMESTAMP:  # epoch milliseconds, as PQL accepts
                    return ir.Literal(value, ir.LitKind.TIMESTAMP, span=node.span, dtype=TIMESTAMP)
        except ValueError as e:
            return self.fail(
                SegmentValueError, f"cannot read {_show(node)} as {target.kind}: {e}", node
            )
        return node

    def visit_Arith(self, node: ir.Arith, env: _Env) -> ir.Expr:
        left, right = self.expr(node.left, env), self.expr(node.right, env)
        out = node.with_(left=left, right=right)
        if ERROR in (left.dtype, right.dtype):
            return out.with_(dtype=ERROR)
        if not (is_numeric(left.dtype) or left.dtype is Special.NULL) or not (
            is_numeric(right.dtype) or right.dtype is Special.NULL
        ):
            hint = None
            if is_temporal(left.dtype) or is_temporal(right.dtype):
                hint = "for time offsets use occurs: t occurs < 3 days before now"
            return self.fail(
                SegmentTypeError,
                f"'{node.op}' needs numbers, not {describe(left.dtype)} and {describe(right.dtype)}",
                node,
                hint=hint,
            )
        both_int = left.dtype in (INT, Special.NULL) and right.dtype in (INT, Special.NULL)
        result = INT if both_int and node.op != "/" else FLOAT
        return out.with_(dtype=result)

    def visit_Neg(self, node: ir.Neg, env: _Env) -> ir.Expr:
        arg = self.expr(node.arg, env)
        if arg.dtype is not ERROR and not is_numeric(arg.dtype):
            return self.fail(
                SegmentTypeError, f"'-' needs a number, not {describe(arg.dtype)}", node
            )
        return node.with_(arg=arg, dtype=arg.dtype)

    # ------------------------------------------------------------ time

    def visit_Occurs(self, node: ir.Occurs, env: _Env) -> ir.Expr:
        subject = self.expr(node.subject, env)
        when = self.time_cond(node.when, env)
        out = node.with_(subject=subject, when=when, dtype=BOOL)
        t = subject.dtype
        if t is ERROR:
            return out.with_(dtype=ERROR)
        if not (isinstance(t, DType) and t.kind.is_temporal):
            return self.fail(
                SegmentTypeError,
                f"occurs needs a timestamp or a date, not {describe(t)}",
                node.subject,
            )
        return out

    def time_cond(self, node: ir.TimeCond, env: _Env) -> ir.TimeCond:
        anchors = {k: getattr(node, k) for k in ("anchor", "lo", "hi") if hasattr(node, k)}
        checked = {k: self.anchor(v, env) for k, v in anchors.items()}
        return node.with_(**checked)

    def anchor(self, node: ir.Expr, env: _Env) -> ir.Expr:
        out = self.expr(node, env)
        t = out.dtype
        if t in (ERROR, Special.PERIOD) or is_temporal(t):
            return out
        return self.fail(
            SegmentTypeError,
            f"a time reference must be a timestamp, a date or a period, not {describe(t)}",
            node,
            hint="e.g. now, today, last month, date(2024, 1, 31), @2024-01-31T12:00:00Z",
        )

    # ------------------------------------------------------------ events

    def visit_Filter(self, node: ir.Filter, env: _Env) -> ir.Expr:
        source = self.expr(node.source, env)
        cond = self.cond(node.cond, env.inner(implicit=True, events_allowed=False))
        out = node.with_(source=source, cond=cond, dtype=Special.EVENTS)
        if source.dtype not in (Special.EVENTS, ERROR):
            return self.fail(
                SegmentTypeError,
                f"only events can be filtered, not {describe(source.dtype)}",
                node.source,
            )
        return out

    def visit_Member(self, node: ir.Member, env: _Env) -> ir.Expr:
        # xEvent.device.model: the field of an event struct is one dotted name
        names, base = [node.name], node.obj
        while isinstance(base, ir.Member):
            names.insert(0, base.name)
            base = base.obj
        node = ir.Member(base, ".".join(names), span=node.span)
        obj = self.expr(base, env)
        if obj.dtype is ERROR:
            return node.with_(obj=obj, dtype=ERROR)
        if obj.dtype is not Special.EVENTS:
            return self.fail(
                SegmentTypeError, f"{describe(obj.dtype)} has no field {node.name!r}", node
            )
        f = self.schema.events.get(node.name)
        if f is None:
            return self.fail(
                SegmentNameError,
                f"the events have no field {node.name!r}",
                node,
                hint=did_you_mean(node.name, self.schema.events),
            )
        if f.dtype.is_list:
            return self.fail(
                SegmentTypeError, f"{node.name!r} is a list; lists of lists are not supported", node
            )
        return node.with_(obj=obj, dtype=list_of(f.dtype))

    def visit_Select(self, node: ir.Select, env: _Env) -> ir.Expr:
        clauses: list[ir.Clause] = []
        scope = env
        seen: set[str] = set()
        for clause in node.clauses:
            if clause.var in seen:
                self.fail(SegmentNameError, f"variable {clause.var!r} is bound twice", clause)
            seen.add(clause.var)
            source = self.expr(clause.source, scope.inner(events_allowed=True, implicit=False))
            if source.dtype not in (Special.EVENTS, ERROR):
                self.fail(
                    SegmentTypeError,
                    f"{node.quantifier} ranges over events, not {describe(source.dtype)}",
                    clause.source,
                )
            scope = scope.inner(vars=(*scope.vars, clause.var), events_allowed=False)
            cond = (
                None if clause.cond is None else self.cond(clause.cond, scope.inner(implicit=False))
            )
            clauses.append(clause.with_(source=source, cond=cond))
        dtype = Special.SELECTION if node.quantifier is ir.Quantifier.SELECT else BOOL
        return node.with_(clauses=tuple(clauses), dtype=dtype)

    def visit_Chain(self, node: ir.Chain, env: _Env) -> ir.Expr:
        source = self.expr(node.source, env)
        if source.dtype not in (Special.EVENTS, ERROR):
            self.fail(
                SegmentTypeError,
                f"chain runs over events, not {describe(source.dtype)}",
                node.source,
            )
        f = self.schema.events.get(node.time_field)
        if f is None or f.dtype != TIMESTAMP:
            self.fail(
                SegmentTypeError if f else SegmentNameError,
                f"chain orders events by a timestamp field; {node.time_field!r} is "
                + (f"a {f.dtype}" if f else "not an event field"),
                node,
                hint=did_you_mean(
                    node.time_field,
                    [n for n, g in self.schema.events.items() if g.dtype == TIMESTAMP],
                ),
            )
        inner = env.inner(implicit=True, events_allowed=False)
        steps, labels = [], set()
        for step in node.steps:
            if step.label in labels:
                self.fail(SegmentNameError, f"step label {step.label!r} is used twice", step)
            labels.add(step.label)
            steps.append(
                step.with_(
                    what=self.cond(step.what, inner),
                    where=None if step.where is None else self.cond(step.where, inner),
                    when=None if step.when is None else self.time_cond(step.when, inner),
                )
            )
        return node.with_(source=source, steps=tuple(steps), dtype=BOOL)

    # ------------------------------------------------------------ calls

    def visit_Call(self, node: ir.Call, env: _Env) -> ir.Expr:
        fn = FUNCTIONS.get(node.fn)
        if fn is None:
            if node.fn in ("inSegment", "inAudience"):
                return self.fail(
                    SegmentTypeError,
                    f"{node.fn} takes one string: the segment's name",
                    node,
                    hint=f'{node.fn}("high value")',
                )
            return self.fail(
                SegmentNameError,
                f"unknown function {node.fn!r}",
                node,
                hint=did_you_mean(node.fn, FUNCTIONS),
            )
        if not fn.min_args <= len(node.args) <= fn.max_args:
            return self.fail(SegmentTypeError, _arity_message(fn, len(node.args)), node)
        handler = getattr(self, f"call_{fn.family}")
        result: ir.Expr = handler(fn, node, env)
        return result

    def _args(self, node: ir.Call, env: _Env) -> list[ir.Expr]:
        return [self.expr(a, env) for a in node.args]

    def call_string(self, fn: Function, node: ir.Call, env: _Env) -> ir.Expr:
        args = self._args(node, env)
        if (
            len(args) == 3
            and args[2].dtype is not ERROR
            and not (isinstance(args[2], ir.Literal) and args[2].kind is ir.LitKind.BOOL)
        ):
            return self.fail(
                SegmentTypeError,
                f"{fn.name}'s case-sensitivity flag must be true or false",
                node.args[2],
            )
        args[1] = self.coerce(args[1], STRING)
        return self.typed_call(node, args, BOOL, [_STRINGY, _STRING_ONLY])

    def call_like(self, fn: Function, node: ir.Call, env: _Env) -> ir.Expr:
        args = self._args(node, env)
        if not _is_string_literal(args[1]) and args[1].dtype is not ERROR:
            return self.fail(
                SegmentTypeError,
                "a like pattern must be a string literal",
                node.args[1],
                hint='e.g. email like "%@example.com"',
            )
        return self.typed_call(node, args, BOOL, [_STRINGY, _STRING_ONLY])

    def call_regex(self, fn: Function, node: ir.Call, env: _Env) -> ir.Expr:
        args = self._args(node, env)
        pattern = args[1]
        if not _is_string_literal(pattern):
            if pattern.dtype is ERROR:
                return node.with_(args=tuple(args), dtype=ERROR)
            return self.fail(
                SegmentTypeError,
                f"{fn.name} needs its regular expression as a string literal",
                node.args[1],
            )
        assert isinstance(pattern, ir.Literal) and isinstance(pattern.value, str)
        problem = regex_problem(pattern.value)
        if problem:
            return self.fail(SegmentValueError, f"invalid regular expression: {problem}", pattern)
        if fn.name == "regexGroup":
            group = args[2]
            if not (isinstance(group, ir.Literal) and group.kind is ir.LitKind.INT):
                return self.fail(
                    SegmentTypeError, "the group number must be a whole number", node.args[2]
                )
            groups = re.compile(pattern.value).groups
            assert isinstance(group.value, int)
            if not 0 <= group.value <= groups:
                return self.fail(
                    SegmentValueError,
                    f"the expression has {groups} group(s); there is no group {group.value}",
                    group,
                )
            return self.typed_call(node, args, STRING, [_STRING_ONLY, _STRING_ONLY, _ANY])
        return self.typed_call(node, args, BOOL, [_STRINGY, _STRING_ONLY])

    def call_null(self, fn: Function, node: ir.Call, env: _Env) -> ir.Expr:
        (arg,) = self._args(node, env)
        if isinstance(arg, ir.Or) and isinstance(node.args[0], ir.Path):  # a struct
            return arg if fn.name == "isNotNull" else ir.Not(arg, span=node.span, dtype=BOOL)
        if arg.dtype in (Special.EVENTS, Special.SELECTION, Special.PERIOD):
            return self.fail(
                SegmentTypeError,
                f"{fn.name} tests a value; {describe(arg.dtype)} is never null",
                node,
                hint="use .count() = 0 to test for no events",
            )
        return node.with_(args=(arg,), dtype=BOOL)

    def call_membership(self, fn: Function, node: ir.Call, env: _Env) -> ir.Expr:
        item, coll = self._args(node, env)
        return self.membership(node, item, coll, item_first=True)

    def membership(
        self, node: ir.Call, item: ir.Expr, coll: ir.Expr, *, item_first: bool
    ) -> ir.Expr:
        if isinstance(coll, ir.ListLit) and isinstance(item.dtype, DType):
            coll = self.coerce(coll, item.dtype.element)
        elif isinstance(item, ir.Literal) and isinstance(coll.dtype, DType):
            item = self.coerce(item, coll.dtype.element)
        out = node.with_(args=(item, coll) if item_first else (coll, item), dtype=BOOL)
        if ERROR in (item.dtype, coll.dtype):
            return out.with_(dtype=ERROR)
        ct, it = coll.dtype, item.dtype
        if not (isinstance(ct, DType) and ct.is_list):
            return self.fail(
                SegmentTypeError,
                f"{node.fn} needs a list, not {describe(ct)}",
                node.args[1 if item_first else 0],
                hint='write a list literal such as ["US", "CA"] or use a list-valued field',
            )
        # a list on the left holds when some element is in the collection (as comparisons do)
        if not (isinstance(it, DType) and _same_family(it.element, ct.element)):
            return self.fail(
                SegmentTypeError, f"cannot look for {describe(it)} in a {describe(ct)}", node
            )
        return out

    def call_list(self, fn: Function, node: ir.Call, env: _Env) -> ir.Expr:
        args = self._args(node, env)
        if fn.name == "includes":
            return self.membership(node, args[1], args[0], item_first=False)
        if fn.name == "distinct":
            t = args[0].dtype
            if t is not ERROR and not (isinstance(t, DType) and t.is_list):
                return self.fail(
                    SegmentTypeError, f"distinct needs a list, not {describe(t)}", node
                )
            return node.with_(args=tuple(args), dtype=t)
        a, b = args
        if isinstance(b, ir.ListLit) and isinstance(a.dtype, DType):
            b = self.coerce(b, a.dtype.element)
        out = node.with_(args=(a, b), dtype=BOOL)
        if ERROR in (a.dtype, b.dtype):
            return out.with_(dtype=ERROR)
        ok = all(isinstance(t, DType) and t.is_list for t in (a.dtype, b.dtype))
        if not ok or not _same_family(a.dtype, b.dtype):  # type: ignore[arg-type]
            return self.fail(
                SegmentTypeError,
                f"{fn.name} needs two lists of one type, not {describe(a.dtype)} and {describe(b.dtype)}",
                node,
            )
        return out

    def call_aggregate(self, fn: Function, node: ir.Call, env: _Env) -> ir.Expr:
        receiver = self.expr(node.args[0], env)
        t = receiver.dtype
        if t is ERROR:
            return node.with_(args=(receiver, *node.args[1:]), dtype=ERROR)
        if fn.name == "count":
            if t in (Special.EVENTS, Special.SELECTION) or (isinstance(t, DType) and t.is_list):
                return node.with_(args=(receiver,), dtype=INT)
            return self.fail(
                SegmentTypeError,
                f"count() counts events, selections or lists, not {describe(t)}",
                node,
            )
        if t is Special.EVENTS:
            if len(node.args) != 2:
                return self.fail(
                    SegmentTypeError,
                    f"{fn.name} over events needs the value to aggregate",
                    node,
                    hint=f"e.g. xEvent[...].{fn.name}(price)",
                )
            value = self.expr(node.args[1], env.inner(implicit=True, events_allowed=False))
            return self.aggregate_result(fn, node, (receiver, value), value.dtype)
        if isinstance(t, DType) and t.is_list:
            if len(node.args) != 1:
                return self.fail(SegmentTypeError, f"{fn.name} over a list takes no argument", node)
            return self.aggregate_result(fn, node, (receiver,), t.element)
        return self.fail(
            SegmentTypeError,
            f"{fn.name} aggregates events or a list, not {describe(t)}",
            node,
            hint="over a select, only count() is available" if t is Special.SELECTION else None,
        )

    def aggregate_result(
        self, fn: Function, node: ir.Call, args: tuple[ir.Expr, ...], value: Type | None
    ) -> ir.Expr:
        out = node.with_(args=args)
        if value is ERROR:
            return out.with_(dtype=ERROR)
        if is_numeric(value):
            result = FLOAT if fn.name == "average" else value
            return out.with_(dtype=result)
        if fn.name in ("min", "max") and is_temporal(value):
            return out.with_(dtype=value)
        wanted = "numbers or times" if fn.name in ("min", "max") else "numbers"
        return self.fail(SegmentTypeError, f"{fn.name} needs {wanted}, not {describe(value)}", node)

    def call_date_part(self, fn: Function, node: ir.Call, env: _Env) -> ir.Expr:
        args = self._args(node, env)
        return self.typed_call(node, args, INT, [_TEMPORAL])

    def call_current(self, fn: Function, node: ir.Call, env: _Env) -> ir.Expr:
        return node.with_(dtype=INT)

    def call_date(self, fn: Function, node: ir.Call, env: _Env) -> ir.Expr:
        args = self._args(node, env)
        out = self.typed_call(node, args, DATE, [_INT_ONLY] * 3)
        if out.dtype is DATE and all(isinstance(a, ir.Literal) and a.value is not None
                                     for a in args):  # (a null argument: a null date)
            y, m, d = (a.value for a in args)  # type: ignore[attr-defined]
            try:
                dt.date(y, m, d)
            except ValueError as e:
                return self.fail(SegmentValueError, f"date({y}, {m}, {d}) is not a day: {e}", node)
        return out

    def call_if(self, fn: Function, node: ir.Call, env: _Env) -> ir.Expr:
        test = self.cond(node.args[0], env)
        a, b = self.expr(node.args[1], env), self.expr(node.args[2], env)
        a, b = self.coerce_pair(a, b)
        out = node.with_(args=(test, a, b))
        if ERROR in (test.dtype, a.dtype, b.dtype):
            return out.with_(dtype=ERROR)
        t = _unify_all([x.dtype for x in (a, b) if x.dtype is not Special.NULL])
        if t is None:
            return self.fail(SegmentTypeError, "both branches of if are null", node)
        if not isinstance(t, DType):
            return self.fail(
                SegmentTypeError,
                f"if's branches have different types: {describe(a.dtype)} and {describe(b.dtype)}",
                node,
            )
        return out.with_(dtype=t)

    def typed_call(
        self,
        node: ir.Call,
        args: Sequence[ir.Expr],
        result: Type,
        accepts: Sequence[tuple[str, frozenset[DType]] | None],
    ) -> ir.Expr:
        """Check each argument's type against ``accepts`` (None accepts anything)."""
        out = node.with_(args=tuple(args), dtype=result)
        if any(a.dtype is ERROR for a in args):
            return out.with_(dtype=ERROR)
        for i, (arg, rule) in enumerate(zip(args, accepts, strict=False)):
            if rule is None or arg.dtype in rule[1]:
                continue
            if arg.dtype is Special.NULL:
                continue  # a null argument makes the call null / false, like any other
            what = (
                "the receiver"
                if i == 0 and FUNCTIONS[node.fn].style.value == "method"
                else f"argument {i + 1}"
            )
            return self.fail(
                SegmentTypeError,
                f"{node.fn}: {what} must be {rule[0]}, not {describe(arg.dtype)}",
                node.args[i],
            )
        return out


# ---------------------------------------------------------------- helpers

_LITERAL_TYPES: dict[ir.LitKind, Type] = {
    ir.LitKind.NULL: Special.NULL,
    ir.LitKind.BOOL: BOOL,
    ir.LitKind.INT: INT,
    ir.LitKind.FLOAT: FLOAT,
    ir.LitKind.STRING: STRING,
    ir.LitKind.TIMESTAMP: TIMESTAMP,
}
_STRINGY = ("a string", frozenset({STRING, list_of(STRING)}))
_STRING_ONLY = ("a string", frozenset({STRING}))
_TEMPORAL = ("a timestamp or a date", frozenset({TIMESTAMP, DATE}))
_INT_ONLY = ("a whole number", frozenset({INT}))
_ANY = None


def _element(t: Type | None) -> DType | None:
    return t.element if isinstance(t, DType) else None


def _same_family(a: DType, b: DType) -> bool:
    return a.kind == b.kind or (a.kind.is_numeric and b.kind.is_numeric)


def _unify_all(types: Sequence[Type | None]) -> Type | None:
    if not types:
        return None
    first = types[0]
    if all(t == first for t in types):
        return first
    if all(is_numeric(t) for t in types):
        return FLOAT
    return Special.ERROR


def _is_string_literal(node: ir.Expr) -> bool:
    return isinstance(node, ir.Literal) and node.kind is ir.LitKind.STRING


def _show(node: ir.Literal) -> str:
    return repr(node.value) if node.kind is ir.LitKind.STRING else str(node.value)


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    pool = list(candidates)
    close = difflib.get_close_matches(name, pool, n=3, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in pool}
        close = [lowered[name.lower()]] if name.lower() in lowered else []
    if not close:
        return None
    return "did you mean " + " or ".join(repr(c) for c in close) + "?"


def _arity_message(fn: Function, given: int) -> str:
    method = fn.style.value == "method"
    if method and given == 0:
        return f"{fn.name} is a method: write {fn.signature()}"
    lo, hi, n = fn.min_args - method, fn.max_args - method, given - method
    want = str(lo) if lo == hi else f"{lo} to {hi}"
    noun = "argument" if (lo == hi == 1) else "arguments"
    return f"{fn.name} takes {want} {noun} ({fn.signature()}), not {max(n, 0)}"


def _compare_problem(op: str, lt: Type | None, rt: Type | None) -> tuple[str, str | None] | None:
    """Why ``lt op rt`` is not allowed, as (message, hint); None when it is."""
    for t in (lt, rt):
        if t is Special.NULL:
            return (
                "a comparison with null is never true",
                "test for missing values with x.isNull() or x.isNotNull()",
            )
        if t is Special.PERIOD:
            return ("a calendar period cannot be compared", "use occurs: timestamp occurs today")
        if t in (Special.EVENTS, Special.SELECTION):
            return (f"{describe(t)} cannot be compared", "compare their .count()")
    assert isinstance(lt, DType) and isinstance(rt, DType)
    if lt.is_list and rt.is_list:
        if op not in ("=", "!="):
            return ("lists can only be compared with = and !=", None)
        lt, rt = lt.element, rt.element
    elif rt.is_list:
        return (f"cannot compare {lt} with {rt}", "to test membership write x in list")
    elif lt.is_list:
        lt = lt.element  # some element of the list satisfies the comparison
    if lt.kind.is_numeric and rt.kind.is_numeric:
        return None
    if {lt.kind, rt.kind} == {Kind.TIMESTAMP, Kind.DATE}:
        if op in ("=", "!="):
            return (
                "a timestamp is never equal to a date",
                "to test the day of a timestamp use occurs on: t occurs on date(2024, 1, 31)",
            )
        return None
    if lt.kind != rt.kind:
        return (f"cannot compare {lt} with {rt}", None)
    if op not in ("=", "!=") and lt.kind in (Kind.BOOL, Kind.STRING):
        hint = (
            "strings support =, !=, like, matches and startsWith-style functions"
            if lt.kind is Kind.STRING
            else None
        )
        return (f"{lt.kind} values cannot be ordered with '{op}'", hint)
    return None


_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})$")


def _coerce_string(node: ir.Literal, value: str, target: DType) -> ir.Expr:
    kind = target.kind
    span = node.span
    if kind is Kind.INT:
        if not re.fullmatch(r"[+-]?\d+", value.strip()):
            raise ValueError("not a whole number")
        if not INT64_MIN <= int(value) <= INT64_MAX:
            raise ValueError("it does not fit in 64 bits")
        return ir.Literal(int(value), ir.LitKind.INT, span=span, dtype=INT)
    if kind is Kind.FLOAT:
        if not _DECIMAL.fullmatch(value.strip()):
            raise ValueError("not a decimal number")
        if not math.isfinite(float(value)):
            raise ValueError("not a finite number")
        return ir.Literal(float(value), ir.LitKind.FLOAT, span=span, dtype=FLOAT)
    if kind is Kind.BOOL:
        if value.lower() not in ("true", "false"):
            raise ValueError('only "true" and "false" are booleans')
        return ir.Literal(value.lower() == "true", ir.LitKind.BOOL, span=span, dtype=BOOL)
    if kind is Kind.DATE:
        m = _ISO_DATE.match(value.strip())
        if not m:
            raise ValueError("write dates as YYYY-MM-DD")
        y, mo, d = (int(g) for g in m.groups())
        dt.date(y, mo, d)
        lits = tuple(ir.Literal(v, ir.LitKind.INT, span=span, dtype=INT) for v in (y, mo, d))
        return ir.Call("date", lits, span=span, dtype=DATE)
    if kind is Kind.TIMESTAMP:
        return ir.Literal(parse_iso_ms(value), ir.LitKind.TIMESTAMP, span=span, dtype=TIMESTAMP)
    return node


def parse_iso_ms(value: str) -> int:
    """Milliseconds since the epoch of an ISO-8601 instant; no offset means UTC."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        stamp = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("write timestamps as ISO-8601, e.g. 2024-01-31T12:00:00Z") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return round(stamp.timestamp() * 1000)


_UNSAFE_GROUPS = {
    "(?=": "look-ahead",
    "(?!": "look-ahead",
    "(?<=": "look-behind",
    "(?<!": "look-behind",
    "(?P=": "a back-reference",
    "(?>": "an atomic group",
    "(?(": "a conditional group",
}


def _unsafe_regex_construct(pattern: str) -> str | None:
    """The first construct of ``pattern`` that a linear-time engine cannot run, if any."""
    i, in_class, n = 0, False, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            nxt = pattern[i + 1 : i + 2]
            if nxt.isdigit() and nxt != "0":
                return f"a back-reference ({pattern[i : i + 2]})"
            if nxt == "k" and pattern[i + 2 : i + 3] == "<":
                return f"a back-reference ({pattern[i : i + 3]})"
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
            i += 2 if pattern[i + 1 : i + 2] == "]" else 1  # a leading ] is a literal
            continue
        elif ch == "(":
            for opener, what in _UNSAFE_GROUPS.items():
                if pattern.startswith(opener, i):
                    return f"{what} ({opener})"
        elif ch in "*+?}" and pattern[i + 1 : i + 2] == "+" and (i == 0 or pattern[i - 1] != "\\"):
            return f"a possessive quantifier ({ch}+)"
        i += 1
    return None


def regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not an acceptable regular expression; None when it is.

    Back-references, look-around, atomic groups, conditionals and possessive quantifiers are
    refused: without them a pattern can be run by an engine with linear-time guarantees, so
    user input can never backtrack catastrophically.
    """
    construct = _unsafe_regex_construct(pattern)
    if construct:
        return f"{construct} is not supported, so that every pattern runs in linear time"
    try:
        re.compile(pattern)
    except re.error as e:
        return str(e)
    return None
