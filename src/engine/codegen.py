"""From checked IR to the Python source of one Numba kernel over a store's layout.

A kernel evaluates several segments in one pass over a range of profiles, a flat body per
segment writing ``out[k, p]``; the caller runs ranges on threads (kernels release the GIL),
which compiles several times faster than Numba's ``prange`` for large bodies. The source depends on the definitions' shapes
and on the store's layout (which columns exist and may be null, which event partition a scan
reads), never on literal values: literals become kernel arguments (`Arg`), bound per run by
`engine.binding`, so definitions that differ only in constants share one compiled kernel.

Values are emitted as a pair of expressions, the value and its validity ("True" when it
cannot be null), following docs/language.md's null rules; conditions are plain booleans in
which null has already become false. Event queries become loops over one profile's slice of
a partition, pruned to the time window when the filter has a constant one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from engine import ir
from engine.errors import EngineError
from engine.timeops import FOREVER_HI, FOREVER_LO, UNITS
from engine.types import Special
from store.events import EventStore
from store.profile_store import ProfileStore
from store.schema import DType, Kind

__all__ = ["Arg", "CompileError", "KernelSource", "generate"]


class CompileError(EngineError):
    """A definition uses something the compiler cannot evaluate (yet): said at define time."""


@dataclass(frozen=True)
class Arg:
    """One kernel argument and how to bind it: ``kind`` and what it refers to."""

    name: str
    kind: str  # see engine.binding for the kinds
    ref: tuple[Any, ...]


@dataclass(frozen=True)
class KernelSource:
    source: str
    args: tuple[Arg, ...]
    segments: tuple[str, ...]


@dataclass(frozen=True)
class _Val:
    code: str  # the value (for strings: the int32 code)
    valid: str  # "True" when never null
    dtype: DType
    column: tuple[Any, ...] | None = None  # strings: the column whose dictionary codes are


@dataclass
class _Scope:
    """Event variables in reach: name → (index variable, partition key)."""

    events: dict[str, tuple[str, tuple[str, ...] | None]] = field(default_factory=dict)


_ZERO = {Kind.BOOL: "False", Kind.INT: "0", Kind.FLOAT: "0.0", Kind.STRING: "-1",
         Kind.TIMESTAMP: "0", Kind.DATE: "0"}


def generate(definitions: dict[str, ir.Expr], store: ProfileStore,
             inputs: tuple[str, ...] = ()) -> KernelSource:
    """The kernel evaluating ``definitions`` (checked IR) over ``store``."""
    gen = _Generator(store)
    body: list[str] = []
    for k, (name, expr) in enumerate(definitions.items()):
        gen.lines = []
        gen.depth = 2
        result = gen.cond(expr, _Scope())
        gen.emit(f"out[{k}, p] = {result}")
        body.append(f"        # segment {name}")
        body.extend(gen.lines)
    params = ", ".join(a.name for a in gen.args)
    source = "\n".join([
        f"def kernel(start, stop, now, out{', ' if params else ''}{params}):",
        *(f"    {line}" for line in gen.prologue),
        "    for p in range(start, stop):",
        *body,
        "",
    ])
    return KernelSource(source, tuple(gen.args), tuple(definitions))


class _Generator:
    def __init__(self, store: ProfileStore) -> None:
        self.store = store
        self.events: EventStore = store.events
        self.lines: list[str] = []
        self.prologue: list[str] = []  # statements before the profile loop
        self.depth = 2
        self.args: list[Arg] = []
        self._arg_names: dict[tuple[str, tuple[Any, ...]], str] = {}
        self._fresh = 0
        s = store.schema
        self.time_field = s.event_time
        self.type_field = s.event_type

    # ------------------------------------------------------------ plumbing

    def emit(self, line: str) -> None:
        self.lines.append("    " * self.depth + line)

    @contextmanager
    def block(self, header: str) -> Iterator[None]:
        self.emit(header)
        self.depth += 1
        yield
        self.depth -= 1

    def var(self, stem: str = "v") -> str:
        self._fresh += 1
        return f"{stem}{self._fresh}"

    def arg(self, kind: str, *ref: Any) -> str:
        """A kernel argument, shared by every use of the same thing (arrays, not literals)."""
        key = (kind, ref)
        if kind not in ("param",) and key in self._arg_names:
            return self._arg_names[key]
        name = f"a{len(self.args)}"
        self.args.append(Arg(name, kind, ref))
        self._arg_names[key] = name
        return name

    # ------------------------------------------------------------ conditions

    def cond(self, node: ir.Expr, scope: _Scope) -> str:
        """Emit statements; return a boolean expression (null is false)."""
        if isinstance(node, ir.And | ir.Or):
            return self.logic(node, scope)
        if isinstance(node, ir.Not):
            inner = self.cond(node.arg, scope)
            return f"(not {inner})"
        if isinstance(node, ir.Compare):
            return self.compare(node, scope)
        if isinstance(node, ir.Occurs):
            return self.occurs(node, scope)
        if isinstance(node, ir.SegmentRef):
            mask = self.arg("segment", node.name)
            return f"({mask}[p] != 0)"
        if isinstance(node, ir.Select):
            return self.select(node, scope, want="exists")
        if isinstance(node, ir.Chain):
            return self.chain(node, scope)
        if isinstance(node, ir.Call):
            handled = self.predicate(node, scope)
            if handled is not None:
                return handled
        t = node.dtype
        if t is Special.EVENTS:
            return f"({self.count_events(node, scope)} > 0)"
        if isinstance(t, DType) and t.is_list:
            return self.list_truth(node, scope)
        v = self.value(node, scope)
        if v.dtype.kind is Kind.BOOL:
            return f"({v.valid} & {v.code})" if v.valid != "True" else f"({v.code})"
        return f"({v.valid})"

    def logic(self, node: ir.And | ir.Or, scope: _Scope) -> str:
        """``and``/``or``. Operands that are plain expressions combine with ``&``/``|``:
        no branch to mispredict (a profile loop full of ``if``s ran 16x slower than the
        hand-written kernels). Operands that need statements (event scans) run only when
        the result still depends on them."""
        result = self.var("c")
        joiner = " & " if isinstance(node, ir.And) else " | "
        test = f"if {result}:" if isinstance(node, ir.And) else f"if not {result}:"
        first = True
        for arg in node.args:
            mark = len(self.lines)
            if first:
                self.emit(f"{result} = {self.cond(arg, scope)}")
                first = False
                continue
            expr = self.cond(arg, scope)
            if len(self.lines) == mark:  # a plain expression: combine without branching
                self.lines[-1] = self.lines[-1] + f"{joiner}{expr}"
                continue
            body = self.lines[mark:]
            del self.lines[mark:]
            with self.block(test):
                self.lines.extend("    " + line for line in body)
                self.emit(f"{result} = {expr}")
        return result

    # ------------------------------------------------------------ values

    def value(self, node: ir.Expr, scope: _Scope) -> _Val:
        t = node.dtype
        if not isinstance(t, DType):
            raise CompileError(f"cannot evaluate {type(node).__name__} as a value here")
        if t.is_list:
            raise CompileError("list values are only supported in membership tests and count()")
        if isinstance(node, ir.Literal):
            return self.literal(node)
        if isinstance(node, ir.Attr):
            col = self.store.profiles[node.name]
            values = self.arg("profile_values", node.name)
            valid = "True" if col.valid is None else f"{self.arg('profile_valid', node.name)}[p]"
            return _Val(f"{values}[p]", valid, t, ("profile", node.name))
        if isinstance(node, ir.EventField):
            return self.event_field(node, scope)
        if isinstance(node, ir.Now):
            return _Val("now", "True", t)
        if isinstance(node, ir.Arith):
            return self.arith(node, scope)
        if isinstance(node, ir.Neg):
            a = self.value(node.arg, scope)
            return _Val(f"(-{a.code})", a.valid, t)
        if isinstance(node, ir.Call):
            return self.call_value(node, scope)
        if t.kind is Kind.BOOL:
            return _Val(self.cond(node, scope), "True", t)
        raise CompileError(f"cannot compile {type(node).__name__} yet")

    def literal(self, node: ir.Literal) -> _Val:
        t = node.dtype
        assert isinstance(t, DType)
        if node.value is None:
            return _Val(_ZERO[t.kind], "False", t)
        if t.kind is Kind.STRING:
            # A string literal is a code in the dictionary of what it meets; compare() binds it.
            return _Val("", "True", t, ("literal", node.value))
        return _Val(self.arg("param", t.kind.value, node.value), "True", t)

    def event_field(self, node: ir.EventField, scope: _Scope) -> _Val:
        if node.var not in scope.events:
            raise CompileError(f"event variable {node.var or '(implicit)'} is not in scope")
        index, key = scope.events[node.var]
        t = node.dtype
        assert isinstance(t, DType)
        if node.name == self.time_field:
            return _Val(f"{self.arg('event_time', key)}[{index}]", "True", t)
        part = self.events.view(key)
        if node.name not in part.columns:
            if node.name == self.type_field and part.types and len(part.types) == 1:
                return _Val("0", "True", t, ("constant", part.types[0]))
            return _Val(_ZERO[t.kind], "False", t)  # no event of this partition has it
        col = part.columns[node.name]
        values = self.arg("event_values", key, node.name)
        valid = ("True" if col.valid is None
                 else f"{self.arg('event_valid', key, node.name)}[{index}]")
        return _Val(f"{values}[{index}]", valid, t, ("event", key, node.name))

    def arith(self, node: ir.Arith, scope: _Scope) -> _Val:
        a, b = self.value(node.left, scope), self.value(node.right, scope)
        t = node.dtype
        assert isinstance(t, DType)
        out, ok = self.var("x"), self.var("ok")
        self.emit(f"{ok} = {a.valid} & {b.valid}")
        self.emit(f"{out} = {_ZERO[t.kind]}")
        floats = t.kind is Kind.FLOAT
        x, y = (f"np.float64({a.code})", f"np.float64({b.code})") if floats else (a.code, b.code)
        with self.block(f"if {ok}:"):
            if node.op in ("/", "%"):
                with self.block(f"if {b.code} == 0:"):
                    self.emit(f"{ok} = False")
                with self.block("else:"):
                    if node.op == "/":
                        self.emit(f"{out} = np.float64({a.code}) / np.float64({b.code})")
                    elif floats:
                        self.emit(f"{out} = np.fmod({x}, {y})")
                    else:
                        self.emit(f"{out} = int_rem({a.code}, {b.code})")
            else:
                self.emit(f"{out} = {x} {node.op} {y}")
        return _Val(out, ok, t)

    # ------------------------------------------------------------ comparisons

    def compare(self, node: ir.Compare, scope: _Scope) -> str:
        lt, rt = node.left.dtype, node.right.dtype
        if (isinstance(lt, DType) and lt.is_list) or (isinstance(rt, DType) and rt.is_list):
            return self.some_compare(node, scope)
        a, b = self.value(node.left, scope), self.value(node.right, scope)
        return self.compare_values(node.op, a, b)

    def compare_values(self, op: str, a: _Val, b: _Val) -> str:
        pyop = "==" if op == "=" else op
        ka, kb = a.dtype.kind, b.dtype.kind
        if ka is Kind.STRING or kb is Kind.STRING:
            return self.compare_strings(op, a, b)
        x, y = a.code, b.code
        if {ka, kb} == {Kind.DATE, Kind.TIMESTAMP}:  # a date stands for its midnight
            x = f"({x} * {86_400_000})" if ka is Kind.DATE else x
            y = f"({y} * {86_400_000})" if kb is Kind.DATE else y
        valid = " & ".join(v for v in (a.valid, b.valid) if v != "True")
        test = f"({x} {pyop} {y})"
        return f"({valid} & {test})" if valid else test

    def compare_strings(self, op: str, a: _Val, b: _Val) -> str:
        if op not in ("=", "!="):  # pragma: no cover - the checker refuses string ordering
            raise CompileError("strings are compared with = and != only")
        if a.valid == "False" or b.valid == "False":  # a field no event here has: null
            return "False"
        # The type of a single-type partition is a known string: treat it as a literal.
        a, b = (_Val("", "True", x.dtype, ("literal", x.column[1]))
                if x.column and x.column[0] == "constant" else x for x in (a, b))
        if a.column and b.column and a.column[0] == b.column[0] == "literal":
            same = a.column[1] == b.column[1]
            return str(same if op == "=" else not same)
        if a.column and a.column[0] == "literal":
            a, b = b, a
        if b.column and b.column[0] == "literal":
            text = b.column[1]
            code = self.arg("code", a.column, text)
            test = f"({a.code} == {code})" if op == "=" else f"({a.code} != {code})"
            return test if a.valid == "True" else f"({a.valid} & {test})"
        if a.column == b.column or (a.column and b.column and a.column[:1] == ("event",)
                                    and b.column[:1] == ("event",) and a.column[2] == b.column[2]
                                    and self._same_dictionary(a.column, b.column)):
            pyop = "==" if op == "=" else "!="
            valid = " & ".join(v for v in (a.valid, b.valid) if v != "True")
            test = f"({a.code} {pyop} {b.code})"
            return f"({valid} & {test})" if valid else test
        if a.column is None or b.column is None:
            raise CompileError("string values other than fields and literals are not compiled yet")
        # Two dictionaries: translate a's codes into b's.
        table = self.arg("translate", a.column, b.column)
        pyop = "==" if op == "=" else "!="
        valid = " & ".join(v for v in (a.valid, b.valid) if v != "True")
        test = f"({table}[{a.code}] {pyop} {b.code})"
        return f"({valid} & {test})" if valid else test

    def _same_dictionary(self, x: tuple[Any, ...], y: tuple[Any, ...]) -> bool:
        cx = self.events.view(x[1]).columns.get(x[2])
        cy = self.events.view(y[1]).columns.get(y[2])
        return cx is not None and cy is not None and cx.dictionary is cy.dictionary

    def some_compare(self, node: ir.Compare, scope: _Scope) -> str:
        member = node.left
        if not (isinstance(member, ir.Member) and member.obj.dtype is Special.EVENTS):
            raise CompileError("comparisons of list attributes are not compiled yet")
        if isinstance(node.right.dtype, DType) and node.right.dtype.is_list:
            raise CompileError("comparing two lists is not compiled yet")
        other = self.value(node.right, scope)  # once, outside the loop

        def test(inner: _Scope, ev: str) -> str:
            field = ir.EventField(ev, member.name, dtype=_element(member.dtype))
            return self.compare_values(node.op, self.event_field(field, inner), other)

        # xEvent[...].f OP x: some event's f satisfies it.
        return self.events_some(member.obj, scope, test)

    # ------------------------------------------------------------ predicates

    def predicate(self, node: ir.Call, scope: _Scope) -> str | None:
        fn, args = node.fn, node.args
        if fn in ("isNull", "isNotNull"):
            v = self.value(args[0], scope)
            return f"(not {v.valid})" if fn == "isNull" else f"({v.valid})"
        if fn in ("in", "notIn"):
            return self.membership(node, scope)
        if fn in _STRING_TESTS:
            v = self.value(args[0], scope)
            spec = tuple(a.value if isinstance(a, ir.Literal) else None for a in args[1:])
            if any(x is None for x in spec):
                raise CompileError(f"{fn} needs literal arguments to be compiled")
            if v.valid == "False":
                return "False"
            if v.column and v.column[0] == "constant":  # known now: decide it now
                from engine.binding import string_test

                return str(bool(string_test(pa.array([v.column[1]]), fn, spec)[0]))
            if v.column is None or v.column[0] not in ("profile", "event"):
                raise CompileError(f"{fn} is compiled on string fields only")
            table = self.arg("string_test", v.column, fn, spec)
            return f"({v.valid} & {table}[{v.code}])"
        return None

    def membership(self, node: ir.Call, scope: _Scope) -> str:
        item_node, coll = node.args
        negate = node.fn == "notIn"
        if not isinstance(coll, ir.ListLit):
            raise CompileError(f"{node.fn} is compiled with a list literal on the right only")
        if isinstance(item_node.dtype, DType) and item_node.dtype.is_list:
            raise CompileError(f"{node.fn} with a list on the left is not compiled yet")
        item = self.value(item_node, scope)
        if item.valid == "False":  # a field no event here has: null, so both are false
            return "False"
        if not all(isinstance(x, ir.Literal) for x in coll.items):
            raise CompileError(f"{node.fn} is compiled with a list of literals on the right only")
        values = [x.value for x in coll.items if isinstance(x, ir.Literal) and x.value is not None]
        if item.dtype.kind is Kind.STRING:
            if item.column and item.column[0] == "constant":
                hit = item.column[1] in values
                return str(hit != negate)
            table = self.arg("string_in", item.column, tuple(values))
            test = f"{table}[{item.code}]"
        else:
            kind = "float" if any(isinstance(x, float) for x in values) or \
                item.dtype.kind is Kind.FLOAT else item.dtype.kind.value
            arr = self.arg("array", kind, tuple(values))
            test = f"contains({arr}, {item.code})"
        test = f"(not {test})" if negate else test
        return f"({item.valid} & {test})" if item.valid != "True" else test

    def list_truth(self, node: ir.Expr, scope: _Scope) -> str:
        if isinstance(node, ir.Attr):
            col = self.store.profiles[node.name]
            offsets = self.arg("profile_offsets", node.name)
            valid = "True" if col.valid is None else f"{self.arg('profile_valid', node.name)}[p]"
            return f"({valid} & ({offsets}[p + 1] > {offsets}[p]))"
        raise CompileError("this list is not compiled in condition position yet")

    # ------------------------------------------------------------ calls with values

    def call_value(self, node: ir.Call, scope: _Scope) -> _Val:
        fn, args = node.fn, node.args
        t = node.dtype
        assert isinstance(t, DType)
        if fn == "count":
            src = args[0]
            if src.dtype is Special.EVENTS:
                return _Val(self.count_events(src, scope), "True", t)
            if src.dtype is Special.SELECTION:
                assert isinstance(src, ir.Select)
                return _Val(self.select(src, scope, want="count"), "True", t)
            if isinstance(src, ir.Call) and src.fn == "distinct":
                return _Val(self.distinct_count(src.args[0], scope), "True", t)
            if isinstance(src, ir.Attr):
                offsets = self.arg("profile_offsets", src.name)
                return _Val(f"({offsets}[p + 1] - {offsets}[p])", "True", t)
            raise CompileError("count() of this list is not compiled yet")
        if fn in ("sum", "average", "min", "max") and len(args) == 2 \
                and args[0].dtype is Special.EVENTS:
            return self.aggregate(fn, args[0], args[1], t, scope)
        if fn == "if":
            return self.if_(node, scope)
        if fn in ("getYear", "getMonth", "getDayOfMonth"):
            v = self.value(args[0], scope)
            days = f"({v.code} // 86400000)" if v.dtype.kind is Kind.TIMESTAMP else v.code
            part = {"getYear": 0, "getMonth": 1, "getDayOfMonth": 2}[fn]
            return _Val(f"civil_from_days({days})[{part}]", v.valid, t)
        if fn in ("currentYear", "currentMonth", "currentDayOfMonth"):
            part = {"currentYear": 0, "currentMonth": 1, "currentDayOfMonth": 2}[fn]
            return _Val(f"civil_from_days(now // 86400000)[{part}]", "True", t)
        handled = self.predicate(node, scope) if t.kind is Kind.BOOL else None
        if handled is not None:
            return _Val(handled, "True", t)
        raise CompileError(f"{fn}() is not compiled yet")

    def if_(self, node: ir.Call, scope: _Scope) -> _Val:
        test, a_node, b_node = node.args
        t = node.dtype
        assert isinstance(t, DType)
        out, ok = self.var("x"), self.var("ok")
        self.emit(f"{out} = {_ZERO[t.kind]}")
        self.emit(f"{ok} = False")
        c = self.cond(test, scope)
        for header, branch in ((f"if {c}:", a_node), ("else:", b_node)):
            with self.block(header):
                v = self.value(branch, scope)
                if v.dtype.kind is Kind.STRING:
                    raise CompileError("if() with string branches is not compiled yet")
                cast = f"np.float64({v.code})" if t.kind is Kind.FLOAT else v.code
                self.emit(f"{out} = {cast}")
                self.emit(f"{ok} = {v.valid}")
        return _Val(out, ok, t)

    # ------------------------------------------------------------ event scans

    def source(self, node: ir.Expr) -> tuple[ir.Expr, list[ir.Expr]]:
        """(the Events node, filter conditions from outermost to innermost)."""
        conds: list[ir.Expr] = []
        while isinstance(node, ir.Filter):
            conds.insert(0, node.cond)
            node = node.source
        if not isinstance(node, ir.Events):
            raise CompileError("an event query must start from xEvent")
        return node, conds

    def partition_key(self, facts: list[tuple[ir.Expr, str]]) -> tuple[str, ...] | None:
        """The event types the facts restrict a scan to (``eventType = "x"`` or ``in``)."""
        if self.type_field is None:
            return None
        types: set[str] | None = None
        for conj, var in facts:
            found = _types_of(conj, self.type_field, var)
            if found is not None:
                types = found if types is None else types & found
        return None if types is None else tuple(sorted(types))

    @contextmanager
    def scan(self, node: ir.Expr, scope: _Scope, var: str = "",
             hints: ir.Expr | None = None) -> Iterator[_Scope]:
        """Loop over the events of ``node`` (xEvent or filters of it) bound to ``var``;
        inside the block the filter conditions hold.

        ``hints`` is a condition every event the caller keeps must satisfy (a clause's
        ``where`` under exists or select): it is not tested here, but its event-type and time
        conjuncts narrow the loop, as the filters' own do.
        """
        _, conds = self.source(node)
        facts = [(conj, "") for c in conds for conj in _conjuncts(c)]
        if hints is not None and var:
            facts += [(conj, var) for conj in _conjuncts(hints)]
        key = self.partition_key(facts)
        offsets = self.arg("event_offsets", key)
        time = self.arg("event_time", key)
        lo, hi, i = self.var("lo"), self.var("hi"), self.var("i")
        self.emit(f"{lo} = np.int64({offsets}[p])")
        self.emit(f"{hi} = np.int64({offsets}[p + 1])")
        self.narrow_to_time(facts, scope, time, lo, hi)
        # Inside, the implicit event of the filters is this one, and so is ``var``'s.
        inner = scope_with(scope_with(scope, "", i, key), var, i, key)
        with self.block(f"for {i} in range({lo}, {hi}):"):
            if conds:
                test = self.cond(_conjoin(conds), inner)
                with self.block(f"if {test}:"):
                    yield inner
            else:
                yield inner

    def narrow_to_time(self, facts: list[tuple[ir.Expr, str]], scope: _Scope, time: str,
                       lo: str, hi: str) -> None:
        """Shrink [lo, hi) to the events inside each time window the facts impose.

        Events are sorted by time within a profile's slice, so a window is a sub-slice.
        Windows anchored on ``now`` are bound per run; windows anchored on an outer event
        or an attribute are computed here, before the loop.
        """
        for conj, var in facts:
            if not (isinstance(conj, ir.Occurs) and isinstance(conj.subject, ir.EventField)
                    and conj.subject.var == var and conj.subject.name == self.time_field):
                continue
            if _constant_when(conj.when):
                bounds = self.arg("window_bounds", conj.when)
                self.emit(f"{lo}, {hi} = time_slice({time}, {lo}, {hi}, {bounds}[0], "
                          f"{bounds}[1])")
            elif not _mentions_event(conj.when, var):
                ranges, valid = self.dynamic_ranges(conj.when, scope)
                if len(ranges) == 1:
                    (r_lo, r_hi), = ranges
                    with self.block(f"if {valid}:"):
                        self.emit(f"{lo}, {hi} = time_slice({time}, {lo}, {hi}, {r_lo}, {r_hi})")
                    with self.block("else:"):
                        self.emit(f"{hi} = {lo}")

    def count_events(self, node: ir.Expr, scope: _Scope) -> str:
        n = self.var("n")
        self.emit(f"{n} = 0")
        with self.scan(node, scope):
            self.emit(f"{n} += 1")
        return n

    def events_some(
        self, node: ir.Expr, scope: _Scope, test: Callable[[_Scope, str], str]
    ) -> str:
        """Whether some event of ``node`` passes ``test(scope inside the loop, variable)``."""
        found = self.var("some")
        self.emit(f"{found} = False")
        var = self.var("ev")
        with self.scan(node, scope, var) as inner:
            t = test(inner, var)
            with self.block(f"if {t}:"):
                self.emit(f"{found} = True")
                self.emit("break")
        return found

    def aggregate(self, fn: str, src: ir.Expr, expr: ir.Expr, t: DType, scope: _Scope) -> _Val:
        acc, n = self.var("acc"), self.var("n")
        kind = t.kind
        # Sums of ints stay ints (exact, wrapping) also for average, divided once at the end.
        value_kind = expr.dtype.kind if isinstance(expr.dtype, DType) else kind
        start = _ZERO[value_kind] if fn == "average" else _ZERO[kind]
        self.emit(f"{acc} = {start}")
        self.emit(f"{n} = 0")
        exact = fn == "average" and value_kind is Kind.INT
        if exact:  # int64 while it does not overflow, else the float sum
            accf, wrapped = self.var("accf"), self.var("wrapped")
            self.emit(f"{accf} = 0.0")
            self.emit(f"{wrapped} = False")
        with self.scan(src, scope) as inner:
            v = self.value(expr, inner)
            with self.block(f"if {v.valid}:" if v.valid != "True" else "if True:"):
                if exact:
                    nxt = self.var("nxt")
                    self.emit(f"{nxt} = {acc} + {v.code}")
                    self.emit(f"{wrapped} = {wrapped} or ((({acc} ^ {v.code}) >= 0) and "
                              f"(({acc} ^ {nxt}) < 0))")
                    self.emit(f"{acc} = {nxt}")
                    self.emit(f"{accf} += np.float64({v.code})")
                elif fn in ("sum", "average"):
                    self.emit(f"{acc} += {v.code}")
                else:
                    better = "<" if fn == "min" else ">"
                    with self.block(f"if {n} == 0 or {v.code} {better} {acc}:"):
                        self.emit(f"{acc} = {v.code}")
                self.emit(f"{n} += 1")
        if fn == "sum":
            return _Val(acc, "True", t)
        if fn == "average":
            out = self.var("avg")
            total = f"({accf} if {wrapped} else np.float64({acc}))" if exact else \
                f"np.float64({acc})"
            self.emit(f"{out} = {total} / {n} if {n} > 0 else 0.0")
            return _Val(out, f"({n} > 0)", t)
        return _Val(acc, f"({n} > 0)", t)

    def distinct_count(self, node: ir.Expr, scope: _Scope) -> str:
        if not (isinstance(node, ir.Member) and node.obj.dtype is Special.EVENTS):
            raise CompileError("distinct() is compiled over event fields only")
        if isinstance(node.dtype, DType) and node.dtype.kind is Kind.STRING:
            return self.distinct_codes(node, scope)
        buf, m = self.var("buf"), self.var("m")
        ev = self.var("ev")
        _, conds = self.source(node.obj)
        key = self.partition_key([(conj, "") for c in conds for conj in _conjuncts(c)])
        offsets = self.arg("event_offsets", key)
        self.emit(f"{buf} = np.empty({offsets}[p + 1] - {offsets}[p], np.int64)")
        self.emit(f"{m} = 0")
        with self.scan(node.obj, scope, ev) as inner:
            f = self.event_field(ir.EventField(ev, node.name, dtype=_element(node.dtype)), inner)
            if f.dtype.kind is Kind.FLOAT:
                raise CompileError("distinct() of a float field is not compiled yet")
            with self.block(f"if {f.valid}:" if f.valid != "True" else "if True:"):
                self.emit(f"{buf}[{m}] = {f.code}")
                self.emit(f"{m} += 1")
        out = self.var("d")
        self.emit(f"{out} = count_distinct({buf}[:{m}])")
        return out

    def distinct_codes(self, node: ir.Member, scope: _Scope) -> str:
        """Distinct strings of an event field: codes are small, so mark each code with the
        profile that saw it last (one array per kernel call, no sorting, no allocation)."""
        seen, d, ev = self.var("seen"), self.var("d"), self.var("ev")
        self.emit(f"{d} = 0")
        with self.scan(node.obj, scope, ev) as inner:
            f = self.event_field(ir.EventField(ev, node.name, dtype=_element(node.dtype)), inner)
            if f.column is None or f.column[0] != "event":
                self.emit(f"{d} = max({d}, np.int64({f.valid}))")  # a constant: 0 or 1 value
                return d
            size = self.arg("dictionary_size", f.column)
            self.prologue.append(f"{seen} = np.full(max({size}, 1), -1, np.int64)")
            with self.block(f"if {f.valid} and {seen}[{f.code}] != p:"):
                self.emit(f"{seen}[{f.code}] = p")
                self.emit(f"{d} += 1")
        return d

    def select(self, node: ir.Select, scope: _Scope, want: str) -> str:
        """exists → a boolean; forall → a boolean; count → the number of tuples."""
        q = node.quantifier
        if want == "count" and q is not ir.Quantifier.SELECT:
            raise CompileError("count() is defined for select only")
        result = self.var("q")
        mode = "count" if want == "count" else ("forall" if q is ir.Quantifier.FORALL
                                                 else "exists")
        self.emit(f"{result} = {'0' if mode == 'count' else ('True' if mode == 'forall' else 'False')}")
        self._clauses(list(node.clauses), scope, result, mode)
        return result

    def _clauses(self, clauses: list[ir.Clause], scope: _Scope, result: str, mode: str) -> None:
        clause = clauses[0]
        # Under exists and select, only events satisfying the where clause count, so its
        # type and time conjuncts may narrow the scan; under forall they may not.
        hints = clause.cond if mode != "forall" else None
        with self.scan(clause.source, scope, clause.var, hints) as inner:
            holds = self.cond(clause.cond, inner) if clause.cond is not None else "True"
            if mode == "forall":
                with self.block(f"if not {holds}:"):
                    self.emit(f"{result} = False")
                    self.emit("break")
                if len(clauses) > 1:
                    self._clauses(clauses[1:], inner, result, mode)
                    with self.block(f"if not {result}:"):
                        self.emit("break")
                return
            with self.block(f"if {holds}:"):
                if len(clauses) > 1:
                    self._clauses(clauses[1:], inner, result, mode)
                elif mode == "count":
                    self.emit(f"{result} += 1")
                else:
                    self.emit(f"{result} = True")
            if mode == "exists":
                with self.block(f"if {result}:"):
                    self.emit("break")

    def chain(self, node: ir.Chain, scope: _Scope) -> str:
        if node.time_field != self.time_field:
            raise CompileError("chain() is compiled with the event time field as TIME only")
        step_k, count, last, done = (self.var("step"), self.var("cnt"), self.var("after"),
                                     self.var("chain"))
        steps = list(node.steps)
        self.emit(f"{step_k} = 0")
        self.emit(f"{count} = 0")
        self.emit(f"{last} = np.int64({-(2**63)})")
        ev = self.var("ev")
        with self.scan(node.source, scope, ev) as inner:
            time = self.arg("event_time", inner.events[ev][1])
            t_i = f"{time}[{inner.events[ev][0]}]"
            with self.block(f"if {t_i} > {last}:"):
                for k, step in enumerate(steps):
                    # elif: the event that completes a step cannot also count for the next
                    with self.block(f"{'if' if k == 0 else 'elif'} {step_k} == {k}:"):
                        step_scope = scope_with(inner, "", inner.events[ev][0],
                                                inner.events[ev][1])
                        conds = [step.what] + ([step.where] if step.where else [])
                        if step.when is not None:
                            conds.append(ir.Occurs(ir.EventField("", node.time_field,
                                                                 dtype=DType(Kind.TIMESTAMP)),
                                                   step.when, dtype=DType(Kind.BOOL)))
                        test = self.cond(_conjoin(conds), step_scope)
                        with self.block(f"if {test}:"):
                            self.emit(f"{count} += 1")
                            with self.block(f"if {count} >= {self.arg('param', 'int', step.count)}:"):
                                self.emit(f"{step_k} += 1")
                                self.emit(f"{count} = 0")
                                self.emit(f"{last} = {t_i}")
            with self.block(f"if {step_k} == {len(steps)}:"):
                self.emit("break")
        self.emit(f"{done} = {step_k} == {len(steps)}")
        return done

    # ------------------------------------------------------------ time

    def occurs(self, node: ir.Occurs, scope: _Scope) -> str:
        subject = node.subject
        if isinstance(subject.dtype, DType) and subject.dtype.is_list:
            if not (isinstance(subject, ir.Member) and subject.obj.dtype is Special.EVENTS):
                raise CompileError("occurs on a list attribute is not compiled yet")

            def element(inner: _Scope, ev: str) -> str:
                field = ir.EventField(ev, subject.name, dtype=_element(subject.dtype))
                return self.occurs(ir.Occurs(field, node.when, dtype=node.dtype), inner)

            return self.events_some(subject.obj, scope, element)
        v = self.value(subject, scope)
        t = f"({v.code} * 86400000)" if v.dtype.kind is Kind.DATE else v.code
        if _constant_when(node.when):
            w = self.arg("window", node.when)
            pieces = 5 if isinstance(node.when, ir.Within) and node.when.direction == "from" else 2
            test = f"in_window({t}, {w}, {pieces})"
            return test if v.valid == "True" else f"({v.valid} & {test})"
        # A reference that varies by profile or event: the bounds are generated for this
        # condition's operator and unit (docs/language.md "occurs"), the same table as
        # engine.timeops.window, which handles constant references.
        tv = self.var("t")
        self.emit(f"{tv} = np.int64({t})")
        ranges, valid = self.dynamic_ranges(node.when, scope)
        test = " or ".join(f"({lo} <= {tv} <= {hi})" for lo, hi in ranges)
        parts = [x for x in (v.valid, valid) if x != "True"]
        return f"({' and '.join([*parts, f'({test})'])})"

    def dynamic_ranges(self, when: ir.TimeCond, scope: _Scope) -> tuple[list[tuple[str, str]], str]:
        """Closed ms intervals, as expressions, of a condition with a per-profile reference."""
        if isinstance(when, ir.Between):
            s1, _, _, v1 = self.reference(when.lo, scope)
            s2, e2, instant2, v2 = self.reference(when.hi, scope)
            valid = " & ".join(x for x in (v1, v2) if x != "True") or "True"
            return [(s1, s2 if instant2 else f"({e2} - 1)")], valid
        s, e, instant, valid = self.reference(when.anchor, scope)  # type: ignore[attr-defined]
        if isinstance(when, ir.On):
            return [(s, s if instant else f"({e} - 1)")], valid
        if isinstance(when, ir.Side):
            if when.direction == "before":
                return [(str(FOREVER_LO), f"({s} - 1)")], valid
            return [(f"({s} + 1)" if instant else e, str(FOREVER_HI))], valid
        assert isinstance(when, ir.Within)
        n = self.arg("param", "int", when.amount)
        unit = UNITS[when.unit.value]
        end = s if instant else e
        if when.direction == "before":
            return _row_ranges(when.op, n, unit, s, before=True), valid
        if when.direction == "after":
            return _row_ranges(when.op, n, unit, end, before=False), valid
        ranges = (_row_ranges(when.op, n, unit, s, before=True)
                  + _row_ranges(when.op, n, unit, end, before=False))
        if not instant:
            zero = {"<": f"{n} > 0", "<=": "True", ">": "False", ">=": f"{n} == 0",
                    "=": f"{n} == 0", "!=": f"{n} != 0"}[when.op]
            ranges.append((f"({s} + 1)", f"(({e} - 1) if {zero} else {s})"))
        return ranges, valid

    def reference(self, node: ir.Expr, scope: _Scope) -> tuple[str, str, bool, str]:
        """(s, e, instant, valid) of a time reference evaluated per profile or event."""
        if node.dtype is Special.PERIOD:
            bounds = self.arg("period", node)
            return f"{bounds}[0]", f"{bounds}[1]", False, "True"
        v = self.value(node, scope)
        s = self.var("s")
        if v.dtype.kind is Kind.DATE:
            self.emit(f"{s} = np.int64({v.code}) * 86400000")
            return s, f"({s} + 86400000)", False, v.valid
        self.emit(f"{s} = np.int64({v.code})")
        return s, s, True, v.valid


def _shift(a: str, k: str, unit: int) -> str:
    """``a`` moved by ``k`` units: arithmetic for fixed units, calendar for months/years."""
    if unit > 0:
        return f"({a} + ({k}) * {unit})"
    return f"add_units({a}, {k}, {unit})"


def _row_ranges(op: str, n: str, unit: int, a: str, *, before: bool) -> list[tuple[str, str]]:
    """The doc's table row for one direction, as closed intervals of t."""
    lo, hi = str(FOREVER_LO), str(FOREVER_HI)
    if before:  # t <= a, distance a - t
        near, far = _shift(a, f"-{n}", unit), _shift(a, f"-({n} + 1)", unit)
        return {
            "<": [(f"({near} + 1)", a)],
            "<=": [(near, a)],
            ">": [(lo, f"({near} - 1)")],
            ">=": [(lo, near)],
            "=": [(f"({far} + 1)", near)],
            "!=": [(lo, far), (f"({near} + 1)", a)],
        }[op]
    near, far = _shift(a, n, unit), _shift(a, f"({n} + 1)", unit)
    return {
        "<": [(a, f"({near} - 1)")],
        "<=": [(a, near)],
        ">": [(f"({near} + 1)", hi)],
        ">=": [(near, hi)],
        "=": [(near, f"({far} - 1)")],
        "!=": [(a, f"({near} - 1)"), (far, hi)],
    }[op]


_STRING_TESTS = {"equals", "notEqualTo", "startsWith", "doesNotStartWith", "endsWith",
                 "doesNotEndWith", "contains", "doesNotContain", "like", "matches"}


def scope_with(scope: _Scope, var: str, index: str | None = None,
               key: tuple[str, ...] | None = None) -> _Scope:
    events = dict(scope.events)
    if index is not None:
        events[var] = (index, key)
    return _Scope(events)


def _conjoin(conds: list[ir.Expr]) -> ir.Expr:
    if len(conds) == 1:
        return conds[0]
    return ir.And(tuple(conds), dtype=DType(Kind.BOOL))


def _element(t: Any) -> DType | None:
    return t.element if isinstance(t, DType) else None


def _conjuncts(c: ir.Expr) -> tuple[ir.Expr, ...]:
    return c.args if isinstance(c, ir.And) else (c,)


def _mentions_event(node: ir.Node, var: str) -> bool:
    """Whether ``node`` reads a field of the event bound to ``var`` (or the implicit one)."""
    return any(isinstance(n, ir.EventField) and n.var in (var, "") for n in ir.walk(node))


def _types_of(conj: ir.Expr, type_field: str, var: str) -> set[str] | None:
    """The event types a conjunct allows, if it is ``V.eventType = "x"`` or ``in [...]``."""
    def is_type(n: ir.Expr) -> bool:
        return isinstance(n, ir.EventField) and n.var == var and n.name == type_field

    if isinstance(conj, ir.Compare) and conj.op == "=":
        for a, b in ((conj.left, conj.right), (conj.right, conj.left)):
            if is_type(a) and isinstance(b, ir.Literal) and isinstance(b.value, str):
                return {b.value}
    if isinstance(conj, ir.Call) and conj.fn == "in" and is_type(conj.args[0]) \
            and isinstance(conj.args[1], ir.ListLit):
        items = conj.args[1].items
        if all(isinstance(x, ir.Literal) and isinstance(x.value, str) for x in items):
            return {str(x.value) for x in items if isinstance(x, ir.Literal)}
    return None


def _constant_when(when: ir.TimeCond) -> bool:
    """Whether a time condition's references are the same for every profile and event."""
    return all(_constant_reference(r) for r in ir.children(when))


def _constant_reference(node: ir.Node) -> bool:
    if isinstance(node, ir.Now | ir.Period):
        return True
    if isinstance(node, ir.Literal):
        return True
    if isinstance(node, ir.Call) and node.fn == "date":
        return all(isinstance(a, ir.Literal) for a in node.args)
    return False

