"""The vector tier: checked IR evaluated over whole columns, with nothing to compile.

Compiling a kernel costs about a second per shape of definition (Numba's typing and LLVM),
so a sandbox of hundreds of shapes would wait minutes for its first results. This tier
answers at once: it walks the IR and evaluates every node for all rows at a time with numpy
and a handful of precompiled loops (`engine.vector_ops`, compiled once per install), while
the specialised kernels compile in the background (`engine.session`). It computes exactly
what the kernels compute (docs/language.md); tests/test_vector.py holds it to the reference
evaluator as tests/test_compiled.py holds the kernels.

A *frame* is a set of rows: the profiles, or the events an event query reaches from each row
of an enclosing frame (its *parent* row). Values are arrays over a frame's rows plus a
validity mask (null is invalid); conditions are boolean arrays in which null is false. An
event query over a frame expands each row into its profile's events of one partition,
narrowed to the time windows its filters impose, and reduces back with per-parent loops.

What it does not evaluate (list attributes beyond emptiness and counts, strings computed by
if() or regexGroup, and anything else new) raises `Unsupported`, before any work when
`supports` says so, or during evaluation: the engine then compiles the definition instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine import ir
from engine import vector_ops as ops
from engine.binding import string_test
from engine.errors import EngineError
from engine.queries import (
    STRING_FUNCTIONS,
    conjoin,
    conjuncts,
    constant_when,
    constant_window,
    element,
    mentions_event,
    partition_key,
    types_of,
)
from engine.timeops import (
    DAY_MS,
    FOREVER_HI,
    FOREVER_LO,
    UNITS,
    day_number,
    period_bounds,
)
from engine.types import Special
from store.events import Partition
from store.profile_store import ProfileStore
from store.schema import DType, Kind

__all__ = ["Evaluator", "Unsupported", "evaluate", "supports"]

# The most rows an event query may expand to at once (pairs of events of two variables can
# be many); beyond it the definition goes to the compiled tier.
MAX_ROWS = 50_000_000
MEMO_BYTES = 1 << 30  # the arrays of shared event queries an evaluator keeps, at most
GATHERED_MIN = 4096  # the fewest events whose gathered field is kept for other definitions

_PREDICATES = {"isNull", "isNotNull", "in", "notIn", *STRING_FUNCTIONS}
_VALUE_CALLS = {"count", "sum", "average", "min", "max", "if", "getYear", "getMonth",
                "getDayOfMonth", "currentYear", "currentMonth", "currentDayOfMonth", "date"}
_NODES = (ir.Literal, ir.ListLit, ir.Attr, ir.EventField, ir.Events, ir.Now, ir.Period,
          ir.Member, ir.Filter, ir.Call, ir.Compare, ir.Arith, ir.Neg, ir.Not, ir.And, ir.Or,
          ir.Occurs, ir.SegmentRef, ir.Clause, ir.Select, ir.Step, ir.Chain, ir.Within,
          ir.Side, ir.On, ir.Between)


class Unsupported(EngineError):
    """A construct this tier does not evaluate: the engine compiles the definition instead."""


def supports(expr: ir.Expr, store: ProfileStore) -> bool:
    """Whether `evaluate` handles every construct of ``expr`` (it may still refuse a query
    that would expand to more than `MAX_ROWS` rows)."""
    time_field = store.schema.event_time
    stack: list[tuple[ir.Node, ir.Node | None]] = [(expr, None)]
    while stack:
        node, parent = stack.pop()
        if not isinstance(node, _NODES) or not _supported(node, parent, time_field):
            return False
        stack.extend((child, node) for child in ir.children(node))
    return True


def _supported(node: ir.Node, parent: ir.Node | None, time_field: str | None) -> bool:
    t = node.dtype
    if isinstance(t, DType) and t.is_list and not _list_supported(node, parent):
        return False
    if isinstance(node, ir.Chain):
        return node.time_field == time_field
    if not isinstance(node, ir.Call):
        return True
    fn, args = node.fn, node.args
    if fn not in _PREDICATES | _VALUE_CALLS | {"distinct"}:
        return False
    if fn in STRING_FUNCTIONS:
        return all(isinstance(a, ir.Literal) and a.value is not None for a in args[1:])
    if fn in ("in", "notIn"):
        item, coll = args
        return isinstance(coll, ir.ListLit) and not _is_list(item) \
            and all(_literal_value(x) is not _NOT_LITERAL for x in coll.items)
    if fn in ("sum", "average", "min", "max"):
        return len(args) == 2 and args[0].dtype is Special.EVENTS and isinstance(t, DType) \
            and t.kind not in (Kind.STRING, Kind.BOOL)
    if fn == "count":
        src = args[0]
        return src.dtype in (Special.EVENTS, Special.SELECTION) or isinstance(src, ir.Attr) \
            or (isinstance(src, ir.Call) and src.fn == "distinct")
    if fn == "distinct":
        src = args[0]
        return isinstance(parent, ir.Call) and parent.fn == "count" \
            and isinstance(src, ir.Member) and src.obj.dtype is Special.EVENTS \
            and isinstance(src.dtype, DType) and src.dtype.element is not None \
            and src.dtype.element.kind is not Kind.FLOAT
    if fn == "if":
        return isinstance(t, DType) and t.kind is not Kind.STRING and not t.is_list
    if fn == "date":
        return all(isinstance(a, ir.Literal) and a.value is not None for a in args)
    return True


_NOT_LITERAL = object()


def _literal_value(node: ir.Node) -> Any:
    """The value of a literal or of date() of literals (days), else `_NOT_LITERAL`."""
    if isinstance(node, ir.Literal):
        return node.value
    if isinstance(node, ir.Call) and node.fn == "date" and all(
            isinstance(a, ir.Literal) and isinstance(a.value, int) for a in node.args):
        return day_number(*(a.value for a in node.args if isinstance(a, ir.Literal)))
    return _NOT_LITERAL


def _is_list(node: ir.Node) -> bool:
    return isinstance(node.dtype, DType) and node.dtype.is_list


def _list_supported(node: ir.Node, parent: ir.Node | None) -> bool:
    """Lists this tier handles: event fields of an event query (``xEvent[...].f``) compared
    or tested with occurs, or counted distinct; list literals of ``in``; list attributes
    tested for emptiness or null, or counted."""
    if isinstance(node, ir.Member):
        return node.obj.dtype is Special.EVENTS and (
            (isinstance(parent, ir.Compare) and parent.left is node
             and not _is_list(parent.right))
            or (isinstance(parent, ir.Occurs) and parent.subject is node)
            or (isinstance(parent, ir.Call) and parent.fn == "distinct"))
    if isinstance(node, ir.ListLit):
        return isinstance(parent, ir.Call) and parent.fn in ("in", "notIn")
    if isinstance(node, ir.Attr):
        return parent is None or isinstance(parent, ir.And | ir.Or | ir.Not) or (
            isinstance(parent, ir.Call) and parent.fn in ("count", "isNull", "isNotNull"))
    return isinstance(node, ir.Call) and node.fn == "distinct"


class Evaluator:
    """Evaluates definitions at one instant; event queries that several definitions share
    (same partition, same windows) are reached once."""

    def __init__(self, store: ProfileStore, now_ms: int,
                 segments: Mapping[str, np.ndarray]) -> None:
        self._ev = _Evaluator(store, now_ms, segments)
        self._top = _Frame(len(store), None, None, {})

    def __call__(self, expr: ir.Expr) -> np.ndarray:
        """The membership of one definition (a bool per profile), or `Unsupported`."""
        return np.ascontiguousarray(_full(self._ev.cond(expr, self._top), self._top.rows))

    def values(self, expr: ir.Expr) -> list[Any]:
        """The value of a scalar expression per profile as Python values (None for null):
        strings as text, timestamps as epoch milliseconds, dates as epoch days. For showing
        what decided a condition (the REPL's ``:why``); raises `Unsupported` like a call."""
        v = self._ev.value(expr, self._top)
        rows = self._top.rows
        valid = _full(v.valid, rows)
        if v.text is not None:
            return [v.text] * rows
        data = np.broadcast_to(np.asarray(v.data), (rows,))
        if v.dictionary is not None:
            words = v.dictionary.to_pylist()
            return [words[int(c)] if ok else None for c, ok in zip(data, valid, strict=True)]
        return [x.item() if ok else None for x, ok in zip(data, valid, strict=True)]


def evaluate(definitions: Mapping[str, ir.Expr], store: ProfileStore, now_ms: int,
             segments: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each definition's membership (a bool per profile) at ``now_ms``; ``segments`` holds
    the masks of the segments they refer to."""
    ev = Evaluator(store, now_ms, segments)
    return {name: ev(expr) for name, expr in definitions.items()}


# ================================================================ frames and values


@dataclass(eq=False)
class _Frame:
    """Rows: profiles (``up`` None) or events reached from the rows of ``up``."""

    rows: int
    up: _Frame | None
    parent: np.ndarray | None  # per row, its row in ``up``
    events: dict[str, tuple[np.ndarray, Partition]]  # variables bound here: index, partition

    def owner(self) -> np.ndarray | None:
        """Each row's profile index (None: the rows are the profiles)."""
        if self.up is None:
            return None
        above = self.up.owner()
        assert self.parent is not None
        return self.parent if above is None else above[self.parent]

    def event(self, var: str) -> tuple[np.ndarray, Partition]:
        """The event bound to ``var`` for each row (searching enclosing frames)."""
        if var in self.events:
            return self.events[var]
        if self.up is None:
            raise Unsupported(f"event variable {var or '(implicit)'} is not in scope")
        index, part = self.up.event(var)
        assert self.parent is not None
        return index[self.parent], part

    def lift(self, values: Any) -> Any:
        """Per-row values of the enclosing frame ``up`` as values of this frame's rows."""
        return values if np.ndim(values) == 0 else values[self.parent]


@dataclass
class _V:
    data: Any  # array over the frame's rows, or a scalar
    valid: Any  # bool array, or True / False
    dtype: DType
    dictionary: pa.Array | None = None  # strings: data are codes into it
    text: str | None = None  # a string literal (data unused)

    def lift(self, frame: _Frame) -> _V:
        return _V(frame.lift(self.data), frame.lift(self.valid), self.dtype, self.dictionary,
                  self.text)


def _full(x: Any, rows: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(x, np.bool_), (rows,))


def _and(*masks: Any) -> Any:
    out: Any = True
    for m in masks:
        if m is False or (np.ndim(m) == 0 and not m):
            return False
        if m is not True and not (np.ndim(m) == 0 and m):
            out = m if out is True else out & m
    return out


_INT_RANGE = {Kind.INT, Kind.TIMESTAMP, Kind.DATE}


class _Evaluator:
    def __init__(self, store: ProfileStore, now_ms: int,
                 segments: Mapping[str, np.ndarray]) -> None:
        self.store = store
        self.now = now_ms
        self.segments = segments
        schema = store.schema
        self.time_field = schema.event_time
        self.type_field = schema.event_type
        self.memo: dict[tuple[str, Any], tuple[np.ndarray, np.ndarray]] = {}
        self.gathered: dict[tuple[int, int, str], tuple[np.ndarray, Any, Any, Any]] = {}
        self._offsets: dict[int, tuple[Partition, np.ndarray]] = {}
        self._held = 0  # bytes of the arrays ``memo`` and ``gathered`` hold

    def _keep(self, table: dict[Any, Any], key: Any, value: tuple[Any, ...]) -> None:
        """Remember a shared query's arrays, forgetting every one before when they would
        pass `MEMO_BYTES` (a run of 1,000 definitions at 1M profiles held 7 GB of them;
        definitions of one shape, evaluated together, share most of their queries)."""
        size = sum(x.nbytes for x in value if isinstance(x, np.ndarray))
        if self._held + size > MEMO_BYTES:
            self.memo.clear()
            self.gathered.clear()
            self._held = 0
        table[key] = value
        self._held += size

    # ------------------------------------------------------------ conditions

    def cond(self, node: ir.Expr, f: _Frame) -> Any:
        """A boolean per row (or a scalar bool), null being false."""
        if isinstance(node, ir.And):
            return _and(*(self.cond(a, f) for a in node.args))
        if isinstance(node, ir.Or):
            out: Any = False
            for a in node.args:
                c = self.cond(a, f)
                out = c if out is False else out | c
            return out
        if isinstance(node, ir.Not):
            return np.logical_not(self.cond(node.arg, f))
        if isinstance(node, ir.Compare):
            return self.compare(node, f)
        if isinstance(node, ir.Occurs):
            return self.occurs(node, f)
        if isinstance(node, ir.SegmentRef):
            mask = np.asarray(self.segments[node.name], np.bool_)
            owner = f.owner()
            return mask if owner is None else mask[owner]
        if isinstance(node, ir.Select):
            return self.select(node, f, "exists")
        if isinstance(node, ir.Chain):
            return self.chain(node, f)
        if isinstance(node, ir.Call) and node.fn in _PREDICATES:
            return self.predicate(node, f)
        t = node.dtype
        if t is Special.EVENTS:
            return self.count_events(node, f) > 0
        if isinstance(t, DType) and t.is_list:
            if isinstance(node, ir.Attr):
                col = self.store.profiles[node.name]
                return self.lengths(col, f) > 0
            raise Unsupported("this list in condition position")
        v = self.value(node, f)
        if v.dtype.kind is Kind.BOOL:
            return _and(v.valid, v.data)
        return v.valid

    def lengths(self, col: Any, f: _Frame) -> np.ndarray:
        """Lengths of a list attribute per row (0 where null)."""
        offsets = np.asarray(col.offsets, np.int64)
        n = np.diff(offsets)
        if col.valid is not None:
            n = np.where(col.valid, n, 0)
        owner = f.owner()
        return n if owner is None else n[owner]

    def compare(self, node: ir.Compare, f: _Frame) -> Any:
        lt, rt = node.left.dtype, node.right.dtype
        if isinstance(rt, DType) and rt.is_list:
            raise Unsupported("comparison with a list on the right")
        if isinstance(lt, DType) and lt.is_list:
            member = node.left
            if not (isinstance(member, ir.Member) and member.obj.dtype is Special.EVENTS):
                raise Unsupported("comparison of a list attribute")
            other = self.value(node.right, f)

            def test(g: _Frame, var: str) -> Any:
                field = ir.EventField(var, member.name, dtype=element(member.dtype))
                return self.compare_values(node.op, self.value(field, g), other.lift(g))

            return self.events_some(member.obj, f, test)
        return self.compare_values(node.op, self.value(node.left, f), self.value(node.right, f))

    def compare_values(self, op: str, a: _V, b: _V) -> Any:
        if a.dtype.kind is Kind.STRING or b.dtype.kind is Kind.STRING:
            return self.compare_strings(op, a, b)
        x, y = a.data, b.data
        ka, kb = a.dtype.kind, b.dtype.kind
        if {ka, kb} == {Kind.DATE, Kind.TIMESTAMP}:  # a date stands for its midnight
            x = np.int64(x) * DAY_MS if ka is Kind.DATE else x
            y = np.int64(y) * DAY_MS if kb is Kind.DATE else y
        if ka is Kind.DATE and kb is Kind.DATE:
            x, y = np.int64(x), np.int64(y)
        test = _COMPARE[op](x, y)
        return _and(a.valid, b.valid, test)

    def compare_strings(self, op: str, a: _V, b: _V) -> Any:
        if a.valid is False or b.valid is False:
            return False
        if a.text is not None and b.text is not None:
            same = a.text == b.text
            return same if op == "=" else not same
        if a.text is not None:
            a, b = b, a
        if b.text is not None:
            assert a.dictionary is not None
            code = _code_of(a.dictionary, b.text)
            test = (a.data == code) if op == "=" else (a.data != code)
            return _and(a.valid, test)
        assert a.dictionary is not None and b.dictionary is not None
        if a.dictionary is b.dictionary or a.dictionary.equals(b.dictionary):
            x = a.data
        else:  # a's codes in b's dictionary (-2: absent; a null's -1 reads the pad)
            table = pc.index_in(a.dictionary, value_set=b.dictionary).fill_null(-2)
            table = np.append(np.asarray(table.to_numpy(zero_copy_only=False), np.int64), -2)
            x = table[a.data]
        test = (x == b.data) if op == "=" else (x != b.data)
        return _and(a.valid, b.valid, test)

    # ------------------------------------------------------------ predicates

    def predicate(self, node: ir.Call, f: _Frame) -> Any:
        fn, args = node.fn, node.args
        if fn in ("isNull", "isNotNull"):
            t = args[0].dtype
            if isinstance(t, DType) and t.is_list:
                if not isinstance(args[0], ir.Attr):
                    raise Unsupported("isNull of a computed list")
                col = self.store.profiles[args[0].name]
                valid: Any = True if col.valid is None else col.valid
                owner = f.owner()
                if owner is not None and valid is not True:
                    valid = valid[owner]
            else:
                valid = self.value(args[0], f).valid
            return np.logical_not(valid) if fn == "isNull" else valid
        if fn in ("in", "notIn"):
            return self.membership(node, f)
        v = self.value(args[0], f)
        spec = tuple(a.value for a in args[1:] if isinstance(a, ir.Literal))
        if len(spec) != len(args) - 1 or any(x is None for x in spec):
            raise Unsupported(f"{fn} with arguments that are not literals")
        if v.valid is False:
            return False
        if v.text is not None:
            return bool(string_test(pa.array([v.text], pa.string()), fn, spec)[0])
        assert v.dictionary is not None
        table = np.append(string_test(v.dictionary, fn, spec), False)
        return _and(v.valid, table[v.data])

    def membership(self, node: ir.Call, f: _Frame) -> Any:
        item_node, coll = node.args
        negate = node.fn == "notIn"
        if not isinstance(coll, ir.ListLit):
            raise Unsupported(f"{node.fn} with a list that is not a literal")
        values = [_literal_value(x) for x in coll.items]
        if any(v is _NOT_LITERAL for v in values):
            raise Unsupported(f"{node.fn} with a list that is not of literals")
        values = [v for v in values if v is not None]
        item = self.value(item_node, f)
        if item.valid is False:
            return False
        if item.dtype.kind is Kind.STRING:
            if item.text is not None:
                return (item.text in values) != negate
            assert item.dictionary is not None
            found = pc.is_in(item.dictionary, value_set=pa.array(values, pa.string()))
            table = np.append(np.asarray(found.to_numpy(zero_copy_only=False), np.bool_), False)
            test = table[item.data]
        else:
            floats = any(isinstance(x, float) for x in values) or item.dtype.kind is Kind.FLOAT
            wanted = np.array(values, np.float64 if floats else
                              (np.bool_ if item.dtype.kind is Kind.BOOL else np.int64))
            data = item.data
            if item.dtype.kind is Kind.DATE:
                data = np.int64(data) if np.ndim(data) == 0 else data.astype(np.int64)
            test = np.isin(data, wanted)
        test = np.logical_not(test) if negate else test
        return _and(item.valid, test)

    # ------------------------------------------------------------ values

    def value(self, node: ir.Expr, f: _Frame) -> _V:
        t = node.dtype
        if isinstance(node, ir.Literal) and node.value is None:  # null, of whatever type
            kind = t.kind if isinstance(t, DType) and not t.is_list else Kind.INT
            return _V(np.int64(0), False, DType(kind))
        if not isinstance(t, DType):
            raise Unsupported(f"{type(node).__name__} as a value")
        if isinstance(node, ir.Literal):
            return self.literal(node, t)
        if t.is_list:
            raise Unsupported("list values")
        if isinstance(node, ir.Attr):
            col = self.store.profiles[node.name]
            owner = f.owner()
            data = np.asarray(col.values)
            valid: Any = True if col.valid is None else np.asarray(col.valid)
            if owner is not None:
                data = data[owner]
                valid = valid if valid is True else valid[owner]
            return _V(data, valid, t, col.dictionary)
        if isinstance(node, ir.EventField):
            return self.event_field(node, f)
        if isinstance(node, ir.Now):
            return _V(np.int64(self.now), True, t)
        if isinstance(node, ir.Arith):
            return self.arith(node, f)
        if isinstance(node, ir.Neg):
            a = self.value(node.arg, f)
            return _V(-a.data, a.valid, t)
        if isinstance(node, ir.Call):
            return self.call_value(node, f)
        if t.kind is Kind.BOOL:
            return _V(self.cond(node, f), True, t)
        raise Unsupported(f"{type(node).__name__} as a value")

    def literal(self, node: ir.Literal, t: DType) -> _V:
        if node.value is None:
            return _V(np.int64(0), False, t)
        if t.kind is Kind.STRING:
            return _V(np.int32(-1), True, t, text=str(node.value))
        if t.kind is Kind.FLOAT:
            return _V(np.float64(node.value), True, t)
        if t.kind is Kind.BOOL:
            return _V(np.bool_(node.value), True, t)
        return _V(np.int64(node.value), True, t)

    def event_field(self, node: ir.EventField, f: _Frame) -> _V:
        index, part = f.event(node.var)
        t = node.dtype
        assert isinstance(t, DType)
        # The same events' field is often read by several definitions of a run (a shared
        # event query): gather it once. The entry keeps ``index`` alive, so its id is unique.
        key = (id(index), id(part), node.name)
        if key in self.gathered:
            data, valid, dictionary = self.gathered[key][1:]
            return _V(data, valid, t, dictionary)
        if node.name == self.time_field:
            data, valid, dictionary = np.asarray(part.time)[index], True, None
        else:
            col = self.store.events.field(part, node.name)
            data = np.asarray(col.values)[index]
            valid = True if col.valid is None else np.asarray(col.valid)[index]
            dictionary = col.dictionary
        if len(index) >= GATHERED_MIN:
            self._keep(self.gathered, key, (index, data, valid, dictionary))
        return _V(data, valid, t, dictionary)

    def arith(self, node: ir.Arith, f: _Frame) -> _V:
        a, b = self.value(node.left, f), self.value(node.right, f)
        t = node.dtype
        assert isinstance(t, DType)
        valid = _and(a.valid, b.valid)
        floats = t.kind is Kind.FLOAT
        x = np.float64(a.data) if floats and np.ndim(a.data) == 0 else a.data
        y = np.float64(b.data) if floats and np.ndim(b.data) == 0 else b.data
        if floats:
            x = np.asarray(x, np.float64) if np.ndim(x) else x
            y = np.asarray(y, np.float64) if np.ndim(y) else y
        with np.errstate(all="ignore"):
            if node.op in ("/", "%"):
                nonzero = np.asarray(b.data) != 0
                valid = _and(valid, nonzero)
                if node.op == "/":
                    out = np.true_divide(np.asarray(a.data, np.float64),
                                         np.where(nonzero, np.asarray(b.data, np.float64), 1.0))
                else:
                    out = np.fmod(x, np.where(nonzero, y, 1))
            elif node.op == "+":
                out = np.add(x, y)
            elif node.op == "-":
                out = np.subtract(x, y)
            else:
                out = np.multiply(x, y)
        return _V(out, valid, t)

    def call_value(self, node: ir.Call, f: _Frame) -> _V:
        fn, args = node.fn, node.args
        t = node.dtype
        assert isinstance(t, DType)
        if fn == "count":
            src = args[0]
            if src.dtype is Special.EVENTS:
                return _V(self.count_events(src, f), True, t)
            if src.dtype is Special.SELECTION:
                assert isinstance(src, ir.Select)
                return _V(self.select(src, f, "count"), True, t)
            if isinstance(src, ir.Call) and src.fn == "distinct":
                return _V(self.distinct(src.args[0], f), True, t)
            if isinstance(src, ir.Attr):
                return _V(self.lengths(self.store.profiles[src.name], f), True, t)
            raise Unsupported("count() of this list")
        if fn in ("sum", "average", "min", "max") and len(args) == 2 \
                and args[0].dtype is Special.EVENTS:
            return self.aggregate(fn, args[0], args[1], t, f)
        if fn == "if":
            return self.if_(node, f)
        if fn in ("getYear", "getMonth", "getDayOfMonth"):
            v = self.value(args[0], f)
            days = np.asarray(v.data, np.int64)
            if v.dtype.kind is Kind.TIMESTAMP:
                days = np.floor_divide(days, DAY_MS)
            return _V(_civil(days, fn), v.valid, t)
        if fn in ("currentYear", "currentMonth", "currentDayOfMonth"):
            part = {"currentYear": "getYear", "currentMonth": "getMonth",
                    "currentDayOfMonth": "getDayOfMonth"}[fn]
            return _V(np.int64(_civil(np.int64(self.now // DAY_MS), part)), True, t)
        if fn == "date" and all(isinstance(a, ir.Literal) for a in args):
            day = day_number(*(a.value for a in args if isinstance(a, ir.Literal)))
            return _V(np.int64(day or 0), day is not None, t)  # no such day: null
        if fn in _PREDICATES:
            return _V(self.predicate(node, f), True, t)
        raise Unsupported(f"{fn}()")

    def if_(self, node: ir.Call, f: _Frame) -> _V:
        test, a_node, b_node = node.args
        t = node.dtype
        assert isinstance(t, DType)
        if t.kind is Kind.STRING:
            raise Unsupported("if() with string branches")
        c = self.cond(test, f)
        a, b = self.value(a_node, f), self.value(b_node, f)
        cast = np.float64 if t.kind is Kind.FLOAT else None
        x = np.asarray(a.data, cast) if cast else a.data
        y = np.asarray(b.data, cast) if cast else b.data
        return _V(np.where(c, x, y), np.where(c, a.valid, b.valid), t)

    # ------------------------------------------------------------ event queries

    def scan(self, node: ir.Expr, f: _Frame, var: str = "",
             hints: ir.Expr | None = None, only: tuple[str, ...] | None = None) -> _Frame:
        """The events of ``node`` (xEvent or filters of it) reached from each row of ``f``,
        bound to ``var`` (and to the implicit variable); only those passing the filters
        (and of the types ``only``, if given)."""
        starts, stops, part, rest, memo = self.slices(node, f, var, hints, only)
        if memo is not None and ("expand", memo) in self.memo:
            parent, index = self.memo["expand", memo]
        else:
            if int(np.sum(stops - starts)) > MAX_ROWS:
                raise Unsupported("an event query reaching too many events at once")
            parent, index = ops.expand(starts, stops)
            if memo is not None:
                self._keep(self.memo, ("expand", memo), (parent, index))
        g = _Frame(len(parent), f, parent, {"": (index, part), var: (index, part)})
        if not rest:
            return g
        keep = _full(self.cond(conjoin(rest), g), g.rows)
        return _take(g, keep)

    def slices(self, node: ir.Expr, f: _Frame, var: str, hints: ir.Expr | None,
               only: tuple[str, ...] | None = None
               ) -> tuple[np.ndarray, np.ndarray, Partition, list[ir.Expr], Any]:
        """Each row's slice [starts, stops) of the partition the query reads, narrowed to the
        windows its conditions impose; the filter conditions the slices do not already
        guarantee; and a key under which the slices may be shared (None: per frame)."""
        conds: list[ir.Expr] = []
        while isinstance(node, ir.Filter):
            conds.insert(0, node.cond)
            node = node.source
        if not isinstance(node, ir.Events):
            raise Unsupported("an event query that does not start from xEvent")
        facts = [(conj, "") for c in conds for conj in conjuncts(c)]
        if hints is not None and var:
            facts += [(conj, var) for conj in conjuncts(hints)]
        key = partition_key(facts, self.type_field)
        if only is not None:  # the caller ignores events of other types
            key = only if key is None else tuple(sorted(set(key) & set(only)))
        part = self.store.events.view(key)
        windows = []
        implied: set[int] = set()
        for conj, v in facts:
            if isinstance(conj, ir.Occurs) and isinstance(conj.subject, ir.EventField) \
                    and conj.subject.var == v and conj.subject.name == self.time_field \
                    and not mentions_event(conj.when, v):
                ranges, valid = self.ranges(conj.when, f)
                if len(ranges) != 1:
                    continue
                lo, hi = ranges[0]
                if valid is not True:  # a null reference: no event is in the window
                    lo = np.where(valid, lo, 1)
                    hi = np.where(valid, hi, 0)
                windows.append((lo, hi))
                implied.add(id(conj))  # one interval: the slice holds exactly its events
            elif self.type_field is not None and part.types is not None:
                found = types_of(conj, self.type_field, v)
                if found is not None and set(part.types) <= found:
                    implied.add(id(conj))
        rest = [conj for c in conds for conj in conjuncts(c) if id(conj) not in implied]
        # Queries from the profiles with windows fixed for the run are shared by definitions.
        memo = None
        if f.up is None and all(np.ndim(lo) == np.ndim(hi) == 0 for lo, hi in windows):
            memo = (key, tuple((int(lo), int(hi)) for lo, hi in windows))
            if ("slices", memo) in self.memo:
                starts, stops = self.memo["slices", memo]
                return starts, stops, part, rest, memo
        offsets = self.offsets(part)
        owner = f.owner()
        starts = offsets[:-1] if owner is None else offsets[:-1][owner]
        stops = offsets[1:] if owner is None else offsets[1:][owner]
        time = np.asarray(part.time)
        for lo, hi in windows:
            starts, stops = ops.slice_rows(time, starts, stops,
                                           _rows(lo, f.rows), _rows(hi, f.rows))
        if memo is not None:
            self._keep(self.memo, ("slices", memo), (starts, stops))
        return starts, stops, part, rest, memo

    def offsets(self, part: Partition) -> np.ndarray:
        """The partition's offsets as int64 (converted once per run)."""
        key = id(part)
        if key not in self._offsets:
            self._offsets[key] = (part, np.asarray(part.offsets, np.int64))
        return self._offsets[key][1]

    def count_events(self, node: ir.Expr, f: _Frame) -> np.ndarray:
        starts, stops, _, rest, _ = self.slices(node, f, "", None)
        if not rest:  # the slices say it all
            return np.asarray(stops - starts)
        return _counts(self.scan(node, f), f)

    def events_some(self, node: ir.Expr, f: _Frame,
                    test: Callable[[_Frame, str], Any]) -> np.ndarray:
        var = "\x00some"  # a name no definition can use
        g = self.scan(node, f, var)
        hit = _full(test(g, var), g.rows)
        return _counts(_take(g, hit), f) > 0

    def aggregate(self, fn: str, src: ir.Expr, expr: ir.Expr, t: DType, f: _Frame) -> _V:
        g = self.scan(src, f)
        v = self.value(expr, g)
        keep = _full(v.valid, g.rows)
        data = np.broadcast_to(np.asarray(v.data), (g.rows,))[keep]
        parent = g.parent[keep] if g.parent is not None else np.zeros(0, np.int64)
        n = np.bincount(parent, minlength=f.rows)
        value_kind = v.dtype.kind
        if fn == "sum":
            dtype = np.float64 if t.kind is Kind.FLOAT else np.int64
            return _V(ops.group_sum(parent, np.ascontiguousarray(data, dtype), f.rows), True, t)
        if fn == "average":
            if value_kind is Kind.INT:
                avg = ops.group_average_int(parent, np.ascontiguousarray(data, np.int64), f.rows)
            else:
                total = ops.group_sum(parent, np.ascontiguousarray(data, np.float64), f.rows)
                with np.errstate(all="ignore"):
                    avg = np.where(n > 0, total / np.maximum(n, 1), 0.0)
            return _V(avg, n > 0, t)
        dtype = np.float64 if t.kind is Kind.FLOAT else np.int64
        out, _ = ops.group_extreme(parent, np.ascontiguousarray(data, dtype), f.rows, fn == "max")
        return _V(out, n > 0, t)

    def distinct(self, node: ir.Expr, f: _Frame) -> np.ndarray:
        if not (isinstance(node, ir.Member) and node.obj.dtype is Special.EVENTS):
            raise Unsupported("distinct() of something other than an event field")
        var = "\x00distinct"
        g = self.scan(node.obj, f, var)
        v = self.value(ir.EventField(var, node.name, dtype=element(node.dtype)), g)
        if v.dtype.kind is Kind.FLOAT:
            raise Unsupported("distinct() of a float field")
        keep = _full(v.valid, g.rows)
        data = np.broadcast_to(np.asarray(v.data, np.int64), (g.rows,))[keep]
        assert g.parent is not None
        return np.asarray(ops.group_distinct(g.parent[keep], np.ascontiguousarray(data), f.rows))

    def select(self, node: ir.Select, f: _Frame, want: str) -> np.ndarray:
        """exists → a bool per row; forall → a bool per row; count → the number of tuples."""
        forall = node.quantifier is ir.Quantifier.FORALL
        frame, root = f, None  # root: each row's row in f
        failed = np.zeros(f.rows, np.bool_)
        for clause in node.clauses:
            hints = None if forall else clause.cond
            g = self.scan(clause.source, frame, clause.var, hints)
            assert g.parent is not None
            root = g.parent if root is None else root[g.parent]
            holds = _full(self.cond(clause.cond, g) if clause.cond is not None else True, g.rows)
            if forall:
                failed |= np.bincount(root[~holds], minlength=f.rows) > 0
            frame = _take(g, holds)
            root = root[holds]
        assert root is not None
        counts = np.bincount(root, minlength=f.rows)
        if want == "count":
            return counts
        if forall:
            return ~failed
        return counts > 0

    def chain(self, node: ir.Chain, f: _Frame) -> np.ndarray:
        if node.time_field != self.time_field:
            raise Unsupported("chain() whose TIME is not the event time")
        # An event no step accepts changes nothing: read only the types the steps name.
        types: set[str] | None = set()
        for step in node.steps:
            found = None
            if self.type_field is not None:
                for conj in conjuncts(step.what):
                    t = types_of(conj, self.type_field, "")
                    if t is not None:
                        found = t if found is None else found & t
            types = None if found is None or types is None else types | found
        g = self.scan(node.source, f, only=None if types is None else tuple(sorted(types)))
        masks = np.zeros((len(node.steps), g.rows), np.bool_)
        for k, step in enumerate(node.steps):
            conds = [step.what] + ([step.where] if step.where is not None else [])
            if step.when is not None:
                conds.append(ir.Occurs(ir.EventField("", node.time_field,
                                                     dtype=DType(Kind.TIMESTAMP)),
                                       step.when, dtype=DType(Kind.BOOL)))
            masks[k] = _full(self.cond(conjoin(conds), g), g.rows)
        counts = np.array([s.count for s in node.steps], np.int64)
        time = self.value(ir.EventField("", self.time_field, dtype=DType(Kind.TIMESTAMP)), g)
        assert g.parent is not None
        return np.asarray(ops.chain_scan(g.parent, np.ascontiguousarray(time.data, np.int64), masks,
                              counts, f.rows))

    # ------------------------------------------------------------ time

    def occurs(self, node: ir.Occurs, f: _Frame) -> Any:
        subject = node.subject
        if isinstance(subject.dtype, DType) and subject.dtype.is_list:
            if not (isinstance(subject, ir.Member) and subject.obj.dtype is Special.EVENTS):
                raise Unsupported("occurs on a list attribute")

            def occurs_of(g: _Frame, var: str) -> Any:
                field = ir.EventField(var, subject.name, dtype=element(subject.dtype))
                return self.occurs(ir.Occurs(field, node.when, dtype=node.dtype), g)

            return self.events_some(subject.obj, f, occurs_of)
        v = self.value(subject, f)
        t = np.asarray(v.data, np.int64)
        if v.dtype.kind is Kind.DATE:
            t = t * DAY_MS
        ranges, valid = self.ranges(node.when, f)
        hit: Any = False
        for lo, hi in ranges:
            inside = (lo <= t) & (t <= hi)
            hit = inside if hit is False else hit | inside
        return _and(v.valid, valid, hit)

    def ranges(self, when: ir.TimeCond, f: _Frame) -> tuple[list[tuple[Any, Any]], Any]:
        """The closed ms intervals of a time condition (per row, or scalars), and where its
        references are valid."""
        if constant_when(when):
            w = constant_window(when, self.now)
            pieces = [(w[2 * k], w[2 * k + 1]) for k in range(5) if w[2 * k] <= w[2 * k + 1]]
            return (pieces or [(np.int64(1), np.int64(0))]), True
        if isinstance(when, ir.Between):
            s1, _, _, v1 = self.reference(when.lo, f)
            s2, e2, instant2, v2 = self.reference(when.hi, f)
            return [(s1, s2 if instant2 else e2 - 1)], _and(v1, v2)
        s, e, instant, valid = self.reference(when.anchor, f)  # type: ignore[attr-defined]
        if isinstance(when, ir.On):
            return [(s, s if instant else e - 1)], valid
        if isinstance(when, ir.Side):
            if when.direction == "before":
                return [(np.int64(FOREVER_LO), s - 1)], valid
            return [(s + 1 if instant else e, np.int64(FOREVER_HI))], valid
        assert isinstance(when, ir.Within)
        n, unit = when.amount, UNITS[when.unit.value]
        end = s if instant else e
        if when.direction == "before":
            return _row_ranges(when.op, n, unit, s, before=True), valid
        if when.direction == "after":
            return _row_ranges(when.op, n, unit, end, before=False), valid
        ranges = (_row_ranges(when.op, n, unit, s, before=True)
                  + _row_ranges(when.op, n, unit, end, before=False))
        if not instant:
            zero = {"<": n > 0, "<=": True, ">": False, ">=": n == 0, "=": n == 0,
                    "!=": n != 0}[when.op]
            ranges.append((s + 1, e - 1 if zero else s))
        return ranges, valid

    def reference(self, node: ir.Expr, f: _Frame) -> tuple[Any, Any, bool, Any]:
        """(s, e, instant, valid) of a time reference evaluated per row."""
        if node.dtype is Special.PERIOD:
            assert isinstance(node, ir.Period)
            start, end = period_bounds(node.offset, node.unit.value, self.now)
            return np.int64(start), np.int64(end), False, True
        v = self.value(node, f)
        s = np.asarray(v.data, np.int64)
        if v.dtype.kind is Kind.DATE:
            s = s * DAY_MS
            return s, s + DAY_MS, False, v.valid
        return s, s, True, v.valid


# ================================================================ helpers

_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "=": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal,
    ">": np.greater, ">=": np.greater_equal,
}


def _take(g: _Frame, keep: np.ndarray) -> _Frame:
    """The rows of ``g`` where ``keep``."""
    if keep.all():
        return g
    assert g.parent is not None
    events = {v: (index[keep], part) for v, (index, part) in g.events.items()}
    return _Frame(int(keep.sum()), g.up, g.parent[keep], events)


def _counts(g: _Frame, f: _Frame) -> np.ndarray:
    assert g.parent is not None
    return np.bincount(g.parent, minlength=f.rows)


def _rows(x: Any, rows: int) -> np.ndarray:
    return np.ascontiguousarray(np.broadcast_to(np.asarray(x, np.int64), (rows,)))


def _code_of(dictionary: pa.Array, text: str) -> int:
    found = pc.index(dictionary, pa.scalar(text, pa.string())).as_py()
    return -2 if found is None else int(found)  # -2: no code, not even a null's


def _civil(days: Any, part: str) -> Any:
    """getYear / getMonth / getDayOfMonth of day numbers (engine.timeops' calendar)."""
    k = {"getYear": 0, "getMonth": 1, "getDayOfMonth": 2}[part]
    if np.ndim(days) == 0:
        return np.int64(ops.civil_rows(np.array([days], np.int64), k)[0])
    return ops.civil_rows(np.ascontiguousarray(days, np.int64), k)


def _shift(a: Any, k: int, unit: int) -> Any:
    """``a`` moved by ``k`` units: arithmetic for fixed units, calendar for months/years."""
    if unit > 0:
        return a + k * unit
    if np.ndim(a) == 0:
        return np.int64(ops.add_units_rows(np.array([a], np.int64), k, unit)[0])
    return ops.add_units_rows(np.ascontiguousarray(a, np.int64), k, unit)


def _row_ranges(op: str, n: int, unit: int, a: Any, *, before: bool) -> list[tuple[Any, Any]]:
    """The doc's table row for one direction, as closed intervals (engine.codegen's too)."""
    lo, hi = np.int64(FOREVER_LO), np.int64(FOREVER_HI)
    if before:
        near, far = _shift(a, -n, unit), _shift(a, -(n + 1), unit)
        return {
            "<": [(near + 1, a)],
            "<=": [(near, a)],
            ">": [(lo, near - 1)],
            ">=": [(lo, near)],
            "=": [(far + 1, near)],
            "!=": [(lo, far), (near + 1, a)],
        }[op]
    near, far = _shift(a, n, unit), _shift(a, n + 1, unit)
    return {
        "<": [(a, near - 1)],
        "<=": [(a, near)],
        ">": [(near + 1, hi)],
        ">=": [(near, hi)],
        "=": [(near, far - 1)],
        "!=": [(a, near - 1), (far, hi)],
    }[op]
