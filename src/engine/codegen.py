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

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from engine import ir
from engine.errors import EngineError
from engine.queries import (
    STRING_FUNCTIONS,
    conjoin,
    conjuncts,
    constant_when,
    element,
    mentions_event,
    partition_key,
)
from engine.runtime_lists import STRING_TESTS
from engine.timeops import FOREVER_HI, FOREVER_LO, UNITS, day_number
from engine.types import Special
from store.events import EventStore
from store.profile_store import ProfileStore
from store.schema import DType, Kind

__all__ = ["Arg", "CompileError", "KernelSource", "Shape", "assemble", "generate", "shape_of"]


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
    # A timeline kernel's per-row windows: argument name -> the segment of each instance
    # (a gated call binds a row's windows only for the instances its gate lets run).
    windows: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Val:
    code: str  # the value (for strings: the int32 code)
    valid: str  # "True" when never null
    dtype: DType
    column: tuple[Any, ...] | None = None  # strings: the column whose dictionary codes are


@dataclass
class _Scope:
    """Event variables in reach: name → (index variable, partition key); and the time
    conditions the loops already guarantee, as (id of the Occurs node, index variable):
    a loop sliced to a window holds only events inside it, so testing it again is waste."""

    events: dict[str, tuple[str, tuple[str, ...] | None]] = field(default_factory=dict)
    implied: frozenset[tuple[int, str]] = frozenset()


_ZERO = {Kind.BOOL: "False", Kind.INT: "0", Kind.FLOAT: "0.0", Kind.STRING: "-1",
         Kind.TIMESTAMP: "0", Kind.DATE: "0"}


# Arguments that differ between the instances of one shape (literals, and what the binder
# computes from them): the kernel takes them stacked, one entry or row per instance, and
# evaluates every instance of a shape with one copy of its body. Each maps to what two
# instances must agree on for their stacked values to line up (a dtype, a dictionary).
_PER_INSTANCE: dict[str, Callable[[tuple[Any, ...]], Any]] = {
    "param": lambda ref: ref[0],  # a scalar of this dtype
    "code": lambda ref: ref[0],  # a string's code in this dictionary
    "window": lambda ref: (),  # rows: millisecond bounds of a time condition
    "window_bounds": lambda ref: (),
    "period": lambda ref: (),
    "string_in": lambda ref: ref[0],  # rows: a bool per entry of this dictionary
    "string_test": lambda ref: ref[0],
    "segment": lambda ref: (),  # rows: a referenced segment's mask
}
_SCALAR = ("param", "code")  # the rest are rows (arrays indexed by the body)
_TIMED = ("window", "window_bounds", "period")  # bound from the instant: per row on a timeline


@dataclass(frozen=True)
class Shape:
    """One definition's kernel body, generated alone (`shape_of`). Definitions whose bodies
    differ only in the values of per-instance arguments are instances of one shape: ``key``
    is the same, and a kernel evaluates them all with one copy of the body."""

    lines: tuple[str, ...]  # statements inside the profile loop
    prologue: tuple[str, ...]  # statements before it (scratch buffers)
    result: str  # the boolean expression the statements leave
    args: tuple[Arg, ...]
    names: tuple[str, ...]  # the local variables the body creates

    @property
    def key(self) -> str:
        shared = [(a.kind, _PER_INSTANCE[a.kind](a.ref) if a.kind in _PER_INSTANCE else a.ref)
                  for a in self.args]
        return "\n".join((*self.prologue, *self.lines, self.result, repr(shared)))


def shape_of(expr: ir.Expr, store: ProfileStore) -> Shape:
    """The body evaluating one definition (checked IR); raises `CompileError` for what the
    compiler cannot evaluate."""
    gen = _Generator(store)
    gen.depth = 3  # inside the profile loop and the loop over a shape's instances
    result = gen.cond(expr, _Scope())
    return Shape(_unsigned_loops(gen.lines, result), tuple(gen.prologue), result, tuple(gen.args),
                 tuple(gen.created))


_LOOP = re.compile(r"^(\s*)for (\w+) in range\(([^,]+), ([^,]+)\):$")


def _unsigned_loops(lines: list[str], result: str) -> tuple[str, ...]:
    """``lines`` with the loops whose index is only ever a whole subscript (``x[i]``)
    counting in uint64: Numba emits no negative-index wraparound code for an unsigned index
    (B10's kernel: 4% faster). The bounds are event offsets, never negative; an index used
    any other way (arithmetic, a 2-d subscript, a call) keeps its loop as it is."""
    out = list(lines)
    for k, line in enumerate(lines):
        m = _LOOP.match(line)
        if m is None:
            continue
        indent, var, lo, hi = m.groups()
        word, whole = re.compile(rf"\b{var}\b"), re.compile(rf"\[{var}\]")
        rest = [text for j, text in enumerate(lines) if j != k] + [result]
        if sum(len(word.findall(t)) for t in rest) == sum(len(whole.findall(t)) for t in rest):
            out[k] = f"{indent}for {var} in range(np.uint64({lo}), np.uint64({hi})):"
    return tuple(out)


def generate(definitions: dict[str, ir.Expr], store: ProfileStore) -> KernelSource:
    """The kernel evaluating ``definitions`` (checked IR) over ``store``."""
    return assemble({name: shape_of(expr, store) for name, expr in definitions.items()})


def assemble(shapes: dict[str, Shape], *, timeline: bool = False) -> KernelSource:
    """One kernel for definitions given as shapes: for each profile, for each distinct
    shape, its body once per instance. Segment rows of ``out`` follow `KernelSource.segments`
    (the instances of a shape are consecutive). The source names no definition and holds no
    literal, so it depends only on the shapes and on which have more than one instance: a
    kernel compiled for some definitions serves any others of the same shapes.

    ``timeline``: rows, each a profile at an instant of its own. The kernel takes ``nows``,
    a row per output row (instant, profile), so one profile may be evaluated at several
    instants over one copy of its data; the bounds bound from the instant (`_TIMED`) and the
    referenced segments' masks have a value per row: a streaming session evaluates every
    instant at which the windows of some profiles move in one call.

    A timeline kernel is also gated: ``nows`` has a third column, the row's gate (a bit
    mask), and the kernel takes ``gmask``, a mask per output row; an instance whose mask
    shares no bit with the row's gate is not evaluated: its output is left as it is (the
    caller fills ``out`` with 2: "as on the row before"). Streaming sets the bits of the
    time conditions that move at each row, so that a definition is evaluated only where its
    own windows move (`engine.timers.candidates`)."""
    at = "row" if timeline else "p"  # the output row
    by_key: dict[str, list[str]] = {}
    for name, shape in shapes.items():
        by_key.setdefault(shape.key, []).append(name)
    args: list[Arg] = []
    shared: dict[str, str] = {}  # repr((kind, ref)) → kernel argument, for arrays of the store
    prologue: list[str] = []
    body: list[str] = []
    order: list[str] = []
    windows: dict[str, tuple[str, ...]] = {}  # (see KernelSource.windows)

    def new_arg(kind: str, ref: tuple[Any, ...]) -> str:
        args.append(Arg(f"a{len(args)}", kind, ref))
        return args[-1].name

    for j, names in enumerate(by_key.values()):
        first = shapes[names[0]]
        # One instance: the body as generated, literals in scalar arguments. More: the body
        # once, in a loop over the instances, literals in arrays. (The loop costs: B10's
        # ten one-instance shapes ran 1.4x slower inside loops of one.)
        looped = len(names) > 1
        inst = f"inst{j}"
        scalars: list[str] = []  # loads at the top of the instance loop
        swap: dict[str, str] = {v: f"{v}_{j}" for v in first.names}
        rows: dict[str, str] = {}  # arrays indexed first by: the instance, the profile, both
        lines = list(first.lines)
        result = first.result
        for k, a in enumerate(first.args):
            per_row = timeline and (a.kind in _TIMED or a.kind == "segment")
            if per_row and a.kind == "segment":  # mask[p] becomes the row's: mask used whole
                pick = re.compile(rf"(?<![\w.]){re.escape(a.name)}\[p\]")
                lines = [pick.sub(a.name, line) for line in lines]
                result = pick.sub(a.name, result)
            if looped and a.kind in _PER_INSTANCE:
                stacked = new_arg("stack", (a.kind, tuple(shapes[n].args[k].ref for n in names)))
                if per_row and a.kind in _TIMED:
                    windows[stacked] = tuple(names)
                if a.kind in _SCALAR:
                    swap[a.name] = f"{a.name}_{j}"
                    scalars.append(f"{a.name}_{j} = {stacked}[{inst}]")
                else:
                    swap[a.name] = stacked
                    rows[a.name] = f"{inst}, row" if per_row else inst
            elif a.kind in _PER_INSTANCE:
                swap[a.name] = new_arg(a.kind, a.ref)
                if per_row:
                    rows[a.name] = "row"
                    if a.kind in _TIMED:
                        windows[swap[a.name]] = (names[0],)
            else:
                key = repr((a.kind, a.ref))
                if key not in shared:
                    shared[key] = new_arg(a.kind, a.ref)
                swap[a.name] = shared[key]
        rename = _Renamer(swap, rows, f"_{j}")
        base = new_arg("param", ("int", len(order)))
        prologue.extend(rename(line) for line in first.prologue)
        lines = [rename(line) for line in lines]
        result = rename(result)
        scalars += [f"{a}_{j} = {swap[a]}[{rows[a]}]" for a in sorted(rename.whole)]
        body.append(f"        # shape {j}")
        if looped:
            count = new_arg("param", ("int", len(names)))
            body.append(f"        for {inst} in range({count}):")
            if timeline:
                body += [f"            if (gate & gmask[{base} + {inst}]) == 0:",
                         "                continue"]
            body.extend(f"            {line}" for line in scalars)
            body.extend(lines)
            body.append(f"            out[{base} + {inst}, {at}] = {result}")
        elif timeline:
            body.append(f"        if (gate & gmask[{base}]) != 0:")
            body.extend(lines)  # generated one level deeper: inside the if
            body.append(f"            out[{base}, row] = {result}")
        else:
            body.extend(line[4:] for line in lines)  # generated one level deeper
            body.append(f"        out[{base}, {at}] = {result}")
        order.extend(names)
    params = "".join(f", {a.name}" for a in args)
    source = "\n".join([
        f"def kernel(start, stop, {'nows, out, gmask' if timeline else 'now, out'}{params}):",
        *(f"    {line}" for line in prologue),
        *(["    for row in range(start, stop):",
           "        now, p, gate = nows[row, 0], np.uint64(nows[row, 1]), nows[row, 2]"]
          if timeline else ["    for p in range(np.uint64(start), np.uint64(stop)):"]),
        *body,
        "",
    ])
    return KernelSource(source, tuple(args), tuple(order), windows)


class _Renamer:
    """Rewrites a shape's body for its place in a kernel: the names in ``swap`` replaced; an
    array with leading indices (``rows``: the instance, the timeline row or both) indexed
    ``x[...]`` becomes ``stacked[lead, ...]``, and used whole, ``stacked[lead]``: inline
    for the row alone, else loaded once per instance (`whole`)."""

    def __init__(self, swap: dict[str, str], rows: dict[str, str], suffix: str) -> None:
        self.swap, self.rows, self.suffix = swap, rows, suffix
        self.whole: set[str] = set()
        names = sorted(swap, key=len, reverse=True) or ["(?!)"]
        self.pattern = re.compile(r"(?<![\w.])(" + "|".join(map(re.escape, names)) + r")\b(\[)?")

    def __call__(self, line: str) -> str:
        return self.pattern.sub(self._one, line)

    def _one(self, m: re.Match[str]) -> str:
        name, bracket = m.group(1), m.group(2)
        if name not in self.rows:
            return self.swap[name] + (bracket or "")
        lead = self.rows[name]
        if bracket:
            return f"{self.swap[name]}[{lead}, "
        if lead == "row":
            return f"{self.swap[name]}[row]"
        self.whole.add(name)
        return f"{name}{self.suffix}"


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
        self.created: list[str] = []  # local variable names, for `assemble` to rename
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
        self.created.append(f"{stem}{self._fresh}")
        return self.created[-1]

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
            return {"True": "False", "False": "True"}.get(inner, f"(not {inner})")
        if isinstance(node, ir.Compare):
            return self.compare(node, scope)
        if isinstance(node, ir.Occurs):
            if _implied(node, scope):
                return "True"
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
        the result still depends on them. Constant operands (a condition the loop bounds
        already guarantee, a type test on a one-type partition) fold away."""
        is_and = isinstance(node, ir.And)
        neutral, absorbing = ("True", "False") if is_and else ("False", "True")
        joiner = " & " if is_and else " | "
        result: str | None = None
        for arg in node.args:
            mark = len(self.lines)
            if result is None:
                expr = self.cond(arg, scope)
                if expr in (neutral, absorbing) and len(self.lines) == mark:
                    if expr == absorbing:
                        return absorbing
                    continue
                result = self.var("c")
                self.emit(f"{result} = {expr}")
                continue
            expr = self.cond(arg, scope)
            if len(self.lines) == mark:  # a plain expression: combine without branching
                if expr == neutral:
                    continue
                if expr == absorbing:
                    self.emit(f"{result} = {absorbing}")
                    return result
                self.lines[-1] = self.lines[-1] + f"{joiner}{expr}"
                continue
            body = self.lines[mark:]
            del self.lines[mark:]
            with self.block(f"if {result}:" if is_and else f"if not {result}:"):
                self.lines.extend("    " + line for line in body)
                self.emit(f"{result} = {expr}")
        return neutral if result is None else result

    # ------------------------------------------------------------ values

    def value(self, node: ir.Expr, scope: _Scope) -> _Val:
        t = node.dtype
        if isinstance(node, ir.Literal) and node.value is None:  # an operand or a branch
            kind = t.kind if isinstance(t, DType) and not t.is_list else Kind.INT
            return _Val(_ZERO[kind], "False", DType(kind))
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
        if "False" in (a.valid, b.valid):  # a null operand: null
            return _Val(_ZERO[t.kind], "False", t)
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
            elif floats:
                self.emit(f"{out} = {x} {node.op} {y}")
            else:  # wraps around: Numba's signed + - * are nsw, which LLVM may fold
                # (`x + c < x` into `c < 0`); unsigned ones are not
                self.emit(f"{out} = np.int64(np.uint64({x}) {node.op} np.uint64({y}))")
        return _Val(out, ok, t)

    # ------------------------------------------------------------ comparisons

    def compare(self, node: ir.Compare, scope: _Scope) -> str:
        lt, rt = node.left.dtype, node.right.dtype
        if (isinstance(lt, DType) and lt.is_list) or (isinstance(rt, DType) and rt.is_list):
            return self.some_compare(node, scope)
        bound = _count_bound(node)
        if bound is not None and isinstance(lt, DType):
            # "at least k events": a profile with fewer events of the partition in all
            # cannot qualify, so most profiles are decided by a subtraction of offsets.
            events, need = bound
            _, conds = self.source(events)
            key = partition_key([(conj, "") for c in conds for conj in conjuncts(c)],
                                self.type_field)
            offsets, n = self.arg("event_offsets", key), self.var("n")
            self.emit(f"{n} = 0")
            with self.block(f"if {offsets}[p + U1] - {offsets}[p] >= "
                            f"{self.arg('param', 'int', need)}:"):
                self.emit(f"{n} = {self.value(node.left, scope).code}")
            return self.compare_values(node.op, _Val(n, "True", lt),
                                       self.value(node.right, scope))
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
        """A comparison with a list on the left: some element satisfies it; or of two lists:
        as lists (same length, equal elements in order)."""
        left = node.left
        if isinstance(node.right.dtype, DType) and node.right.dtype.is_list:
            return self.list_equal(node, scope)
        other = self.value(node.right, scope)  # once, outside the loop
        if other.valid == "False":
            return "False"
        if isinstance(left, ir.Member) and left.obj.dtype is Special.EVENTS:
            member = left

            def test(inner: _Scope, ev: str) -> str:
                field = ir.EventField(ev, member.name, dtype=element(member.dtype))
                return self.compare_values(node.op, self.event_field(field, inner), other)

            # xEvent[...].f OP x: some event's f satisfies it.
            return self.events_some(member.obj, scope, test)
        return self.some(left, scope, lambda v: self.compare_values(node.op, v, other))

    def list_equal(self, node: ir.Compare, scope: _Scope) -> str:
        domain = self.list_domain(node.left, node.right)
        a, na, va = self.materialize(node.left, scope, domain)
        b, nb, vb = self.materialize(node.right, scope, domain)
        same = f"seq_equal({a}, {na}, {b}, {nb})"
        return _all_of(va, vb, same if node.op == "=" else _not(same))

    # ------------------------------------------------------------ predicates

    def predicate(self, node: ir.Call, scope: _Scope) -> str | None:
        fn, args = node.fn, node.args
        if fn in ("isNull", "isNotNull"):
            t = args[0].dtype
            if isinstance(t, DType) and t.is_list:
                valid = self.list_valid(args[0], scope)
            else:
                valid = self.value(args[0], scope).valid
            return f"(not {valid})" if fn == "isNull" else f"({valid})"
        if fn in ("in", "notIn", "includes"):
            return self.membership(node, scope)
        if fn in ("intersects", "subsetOf", "supersetOf"):
            return self.set_test(node, scope)
        if fn in STRING_FUNCTIONS:
            return self.string_predicate(node, scope)
        return None

    def string_predicate(self, node: ir.Call, scope: _Scope) -> str:
        """A string function, on a string or on some element of a list of strings."""
        fn, (receiver, *rest) = node.fn, node.args
        flag = rest[1] if len(rest) > 1 else None
        sensitive = not (isinstance(flag, ir.Literal) and flag.value is False)
        pattern = rest[0]
        if isinstance(pattern, ir.Literal) and pattern.value is not None:
            spec = tuple(a.value for a in rest if isinstance(a, ir.Literal))

            def test(v: _Val) -> str:
                return self.string_test(fn, v, spec)
        else:
            other = self.value(pattern, scope)  # once, outside any loop
            if other.valid == "False":
                return "False"

            def test(v: _Val) -> str:
                return self.string_pair_test(fn, v, other, sensitive)
        t = receiver.dtype
        if isinstance(t, DType) and t.is_list:
            return self.some(receiver, scope, test)
        return test(self.value(receiver, scope))

    def string_test(self, fn: str, v: _Val, spec: tuple[Any, ...]) -> str:
        """``fn`` with literal arguments ``spec`` on the string value ``v``."""
        from engine.binding import string_test

        if fn == "matches":  # the pattern as RE2 reads it, now rather than at a run
            try:
                _check_re2(str(spec[0]))
                string_test(pa.array([""], pa.string()), fn, spec)
            except (pa.ArrowInvalid, ValueError) as e:
                raise CompileError(f"matches: pattern {spec[0]!r}: {e}") from None
        if v.valid == "False":
            return "False"
        source = _source(v)
        if source[0] == "literal":  # known now: decide it now
            return str(bool(string_test(pa.array([source[1]], pa.string()), fn, spec)[0]))
        table = self.arg("string_test", source, fn, spec)
        test = f"{table}[{v.code}]"
        return test if v.valid == "True" else f"({v.valid} & {test})"

    def string_pair_test(self, fn: str, v: _Val, other: _Val, sensitive: bool) -> str:
        """``v.fn(other)`` for two string values, code point by code point (the pairs of two
        dictionaries are too many to tabulate)."""
        if "False" in (v.valid, other.valid):
            return "False"
        positive = {"notEqualTo": "equals", "doesNotStartWith": "startsWith",
                    "doesNotEndWith": "endsWith", "doesNotContain": "contains"}.get(fn, fn)
        parts = []
        for x in (v, other):
            source = _source(x)
            chars = self.arg("chars", source, not sensitive)
            starts = self.arg("char_offsets", source, not sensitive)
            parts.append(f"{chars}, {starts}, {'0' if source[0] == 'literal' else x.code}")
        test = f"str_pair_test({STRING_TESTS[positive]}, {parts[0]}, {parts[1]})"
        return _all_of(v.valid, other.valid, test if positive == fn else _not(test))

    def membership(self, node: ir.Call, scope: _Scope) -> str:
        """``x in L``, ``x notIn L``, ``L.includes(x)``; a list ``x``: some element."""
        coll, item_node = node.args if node.fn == "includes" else reversed(node.args)
        wanted = node.fn != "notIn"
        if isinstance(item_node.dtype, DType) and item_node.dtype.is_list:
            # Some element a of the left list has (a in coll) == wanted; coll present.
            def test(a: _Val) -> str:
                hit, present = self.contains(coll, scope, a)
                return _all_of(present, hit if wanted else _not(hit))

            return self.some(item_node, scope, test)
        item = self.value(item_node, scope)
        if item.valid == "False":  # null: both are false
            return "False"
        hit, present = self.contains(coll, scope, item)
        if wanted:
            return _all_of(item.valid, hit)
        return _all_of(item.valid, present, _not(hit))

    def contains(self, coll: ir.Expr, scope: _Scope, item: _Val) -> tuple[str, str]:
        """(whether the list ``coll`` has an element equal to the present value ``item``,
        whether ``coll`` is present)."""
        if isinstance(coll, ir.ListLit) and all(isinstance(x, ir.Literal) for x in coll.items):
            values = [x.value for x in coll.items
                      if isinstance(x, ir.Literal) and x.value is not None]
            if item.dtype.kind is Kind.STRING:
                source = _source(item)
                if source[0] == "literal":
                    return str(source[1] in values), "True"
                table = self.arg("string_in", source, tuple(values))
                return f"{table}[{item.code}]", "True"
            kind = "float" if any(isinstance(x, float) for x in values) or \
                item.dtype.kind is Kind.FLOAT else item.dtype.kind.value
            arr = self.arg("array", kind, tuple(values))
            return f"contains({arr}, {item.code})", "True"
        found = self.var("hit")
        self.emit(f"{found} = False")

        def body(v: _Val) -> None:
            with self.block(f"if {self.compare_values('=', v, item)}:"):
                self.emit(f"{found} = True")
                self.emit("break")

        present = self.each(coll, scope, body)
        return found, present

    def set_test(self, node: ir.Call, scope: _Scope) -> str:
        """``A.intersects(B)``, ``A.subsetOf(B)``, ``A.supersetOf(B)`` (``B.subsetOf(A)``)."""
        a, b = node.args if node.fn != "supersetOf" else reversed(node.args)
        if node.fn == "intersects":  # some element of A is in B (so both are present)
            return self.some(a, scope, lambda v: self.contains(b, scope, v)[0])
        # every element of A is in B, both present: no element of A is missing from B
        missing = self.some(a, scope, lambda v: _not(self.contains(b, scope, v)[0]))
        return _all_of(self.list_valid(a, scope), self.list_valid(b, scope), _not(missing))

    # ------------------------------------------------------------ lists

    def some(self, node: ir.Expr, scope: _Scope, test: Callable[[_Val], str]) -> str:
        """Whether some element of the list ``node`` passes ``test`` (a condition on it)."""
        found = self.var("some")
        self.emit(f"{found} = False")

        def body(v: _Val) -> None:
            t = test(v)
            if t == "False":
                self.emit("pass")  # a block must hold a statement
                return
            with self.block(f"if {t}:"):
                self.emit(f"{found} = True")
                self.emit("break")

        self.each(node, scope, body)
        return found

    def each(self, node: ir.Expr, scope: _Scope, body: Callable[[_Val], None]) -> str:
        """Emit a loop over the elements of the list ``node`` (never null) that runs the
        statements ``body`` emits for each (a ``break`` there leaves the loop); return
        whether the list is present, an expression valid after the loop."""
        t = node.dtype
        if isinstance(node, ir.Literal) and node.value is None:
            return "False"
        assert isinstance(t, DType) and t.is_list
        element = t.element

        def cast(v: _Val) -> None:  # ints in a list of floats are floats
            if element.kind is Kind.FLOAT and v.dtype.kind is not Kind.FLOAT:
                v = _Val(f"np.float64({v.code})", v.valid, element)
            body(v)

        if isinstance(node, ir.Attr):
            col = self.store.profiles[node.name]
            values = self.arg("profile_values", node.name)
            offsets = self.arg("profile_offsets", node.name)
            j = self.var("j")
            with self.block(f"for {j} in range({offsets}[p], {offsets}[p + U1]):"):
                self.emit("pass")  # the body may emit nothing
                body(_Val(f"{values}[{j}]", "True", element, ("profile", node.name)))
            return "True" if col.valid is None else f"{self.arg('profile_valid', node.name)}[p]"
        if isinstance(node, ir.EventField):  # a list-valued field of an event
            index, key = scope.events[node.var]
            part = self.events.view(key)
            if node.name not in part.columns:
                return "False"
            col = part.columns[node.name]
            values = self.arg("event_values", key, node.name)
            offsets = self.arg("event_list_offsets", key, node.name)
            j = self.var("j")
            with self.block(f"for {j} in range({offsets}[{index}], {offsets}[{index} + 1]):"):
                self.emit("pass")
                body(_Val(f"{values}[{j}]", "True", element, ("event", key, node.name)))
            return ("True" if col.valid is None
                    else f"{self.arg('event_valid', key, node.name)}[{index}]")
        if isinstance(node, ir.ListLit):
            # One pass of a loop, so that a break leaves the remaining items too.
            with self.block(f"for {self.var('once')} in range(1):"):
                self.emit("pass")
                for item in node.items:
                    v = self.value(item, scope)
                    if v.valid == "False":  # null elements are left out
                        continue
                    with self.block(f"if {v.valid}:") if v.valid != "True" else nullcontext():
                        cast(v)
            return "True"
        if isinstance(node, ir.Member) and node.obj.dtype is Special.EVENTS:
            ev = self.var("ev")
            with self.scan(node.obj, scope, ev) as inner:
                self.emit("pass")
                f = self.event_field(ir.EventField(ev, node.name, dtype=element), inner)
                if f.valid != "False":  # events without the field are left out
                    with self.block(f"if {f.valid}:") if f.valid != "True" else nullcontext():
                        body(f)
            return "True"
        if isinstance(node, ir.Call) and node.fn == "distinct":
            domain = self.list_domain(node.args[0])
            buf, n, valid = self.materialize(node.args[0], scope, domain)
            self.emit(f"{n} = keep_first({buf}, {n})")
            j = self.var("j")
            column = domain if isinstance(domain, tuple) else None
            with self.block(f"for {j} in range({n}):"):
                self.emit("pass")
                body(_Val(f"{buf}[{j}]", "True", element, column))
            return valid
        if isinstance(node, ir.Call) and node.fn == "if":
            return self.branches(node, scope, lambda branch: self.each(branch, scope, cast))
        raise CompileError(f"cannot compile this list ({type(node).__name__}) yet")

    def list_valid(self, node: ir.Expr, scope: _Scope) -> str:
        """Whether the list ``node`` is present (not null; it may be empty)."""
        if isinstance(node, ir.Literal) and node.value is None:
            return "False"
        if isinstance(node, ir.Attr):
            if self.store.profiles[node.name].valid is None:
                return "True"
            return f"{self.arg('profile_valid', node.name)}[p]"
        if isinstance(node, ir.EventField):
            index, key = scope.events[node.var]
            part = self.events.view(key)
            if node.name not in part.columns:
                return "False"
            if part.columns[node.name].valid is None:
                return "True"
            return f"{self.arg('event_valid', key, node.name)}[{index}]"
        if isinstance(node, ir.Call) and node.fn == "distinct":
            return self.list_valid(node.args[0], scope)
        if isinstance(node, ir.Call) and node.fn == "if":
            return self.branches(node, scope, lambda branch: self.list_valid(branch, scope))
        return "True"  # list literals and field lists are never null

    def branches(self, node: ir.Call, scope: _Scope, emit: Callable[[ir.Expr], str]) -> str:
        """A variable holding what ``emit`` returns for the branch of ``if(test, a, b)`` the
        test chooses (``emit`` generates its statements inside that branch)."""
        test, a, b = node.args
        out = self.var("present")
        self.emit(f"{out} = False")
        c = self.cond(test, scope)
        for header, branch in ((f"if {c}:", a), ("else:", b)):
            with self.block(header):
                self.emit(f"{out} = {emit(branch)}")
        return out

    def list_domain(self, *nodes: ir.Expr) -> Any:
        """What elements of these lists become in a buffer where equal values are equal
        entries: a fresh string domain (codes in the union of their sources' dictionaries),
        or "float", "bool", "int" (also timestamps and dates)."""
        kinds = {n.dtype.kind for n in nodes if isinstance(n.dtype, DType)}
        if Kind.STRING in kinds:
            return ("domain", _Domain())
        if Kind.FLOAT in kinds:
            return "float"
        return "bool" if kinds == {Kind.BOOL} else "int"

    def materialize(self, node: ir.Expr, scope: _Scope, domain: Any) -> tuple[str, str, str]:
        """(buffer, length, present) of the list ``node``'s elements as ``domain`` says
        (see `list_domain`), in a buffer the kernel call allocates once and grows."""
        buf, n = self.var("buf"), self.var("m")
        dtype = {"float": "np.float64", "bool": "np.bool_"}.get(domain, "np.int64") \
            if isinstance(domain, str) else "np.int64"
        self.prologue.append(f"{buf} = np.empty(16, {dtype})")
        self.emit(f"{n} = 0")

        def put(v: _Val) -> None:
            with self.block(f"if {n} == len({buf}):"):
                self.emit(f"{buf} = grow({buf})")
            if isinstance(domain, tuple):
                code = self.code_in(v, domain)
            elif domain == "float":
                code = f"np.float64({v.code})"
            elif domain == "bool":
                code = v.code
            else:
                code = f"np.int64({v.code})"
            self.emit(f"{buf}[{n}] = {code}")
            self.emit(f"{n} += 1")

        present = self.each(node, scope, put)
        return buf, n, present

    def code_in(self, v: _Val, domain: tuple[Any, ...]) -> str:
        """The code of the present string value ``v`` in ``domain``, which holds it."""
        source = _source(v)
        if domain[0] == "domain":
            domain[1].add(source)
        if source == domain:
            return "0" if source[0] == "literal" else v.code
        if source[0] == "literal":
            return self.arg("code", domain, source[1])
        return f"{self.arg('translate', source, domain)}[{v.code}]"

    def list_truth(self, node: ir.Expr, scope: _Scope) -> str:
        """A list in condition position: present and not empty."""
        if isinstance(node, ir.Attr):
            col = self.store.profiles[node.name]
            offsets = self.arg("profile_offsets", node.name)
            valid = "True" if col.valid is None else f"{self.arg('profile_valid', node.name)}[p]"
            return f"({valid} & ({offsets}[p + U1] > {offsets}[p]))"
        return self.some(node, scope, lambda v: "True")

    def list_count(self, node: ir.Expr, scope: _Scope) -> str:
        """The number of elements of a list (0 for a missing one)."""
        if isinstance(node, ir.Attr):
            offsets = self.arg("profile_offsets", node.name)
            return f"({offsets}[p + U1] - {offsets}[p])"
        n = self.var("n")
        self.emit(f"{n} = 0")
        self.each(node, scope, lambda v: self.emit(f"{n} += 1"))
        return n

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
            return _Val(self.list_count(src, scope), "True", t)
        if fn in ("sum", "average", "min", "max") and len(args) == 2 \
                and args[0].dtype is Special.EVENTS:
            return self.aggregate(fn, args[0], args[1], t, scope)
        if fn in ("sum", "average", "min", "max") and len(args) == 1:
            return self.list_aggregate(fn, args[0], t, scope)
        if fn == "if":
            return self.if_(node, scope)
        if fn == "date":
            return self.date_value(node)
        if fn == "regexGroup":
            return self.regex_group(node, scope)
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
        # Strings: the branches' codes in one dictionary, the union of their sources'.
        domain = ("domain", _Domain()) if t.kind is Kind.STRING else None
        for header, branch in ((f"if {c}:", a_node), ("else:", b_node)):
            with self.block(header):
                v = self.value(branch, scope)
                if v.valid == "False":  # null (or a field no event here has)
                    self.emit("pass")
                    continue
                if domain is not None:
                    code = f"{self.code_in(v, domain)} if {v.valid} else -1"
                else:
                    code = f"np.float64({v.code})" if t.kind is Kind.FLOAT else v.code
                self.emit(f"{out} = {code}")
                self.emit(f"{ok} = {v.valid}")
        return _Val(out, ok, t, domain)

    def date_value(self, node: ir.Call) -> _Val:
        """``date(y, m, d)`` with literal arguments: a constant day, or null."""
        t = node.dtype
        assert isinstance(t, DType)
        if not all(isinstance(a, ir.Literal) for a in node.args):
            raise CompileError(
                "date(y, m, d) is compiled with literal arguments only: a computed year can "
                "name a day beyond what the kernels' 64-bit days and milliseconds hold")
        y, m, d = (a.value for a in node.args if isinstance(a, ir.Literal))
        if isinstance(y, int) and not -(10**7) <= y <= 10**7:
            raise CompileError(f"date({y}, {m}, {d}): years are compiled within ±10,000,000")
        day = day_number(y, m, d)
        if day is None:  # a null argument, or no such day (February 30)
            return _Val("0", "False", t)
        return _Val(self.arg("param", "date", day), "True", t)

    def regex_group(self, node: ir.Call, scope: _Scope) -> _Val:
        """``s.regexGroup(re, n)``: a string whose dictionary is what the group gives for the
        entries of ``s``'s (computed once at bind time, on RE2 as ``matches``)."""
        t = node.dtype
        assert isinstance(t, DType)
        s_node, pattern, group = node.args
        assert isinstance(pattern, ir.Literal) and isinstance(group, ir.Literal)
        from engine.binding import regex_group

        try:  # the pattern as RE2 reads it, now rather than when a run binds it
            _check_re2(str(pattern.value))
            regex_group(pa.array([""], pa.string()), str(pattern.value), int(group.value or 0))
        except (pa.ArrowInvalid, ValueError) as e:
            raise CompileError(f"regexGroup: pattern {pattern.value!r}: {e}") from None
        v = self.value(s_node, scope)
        if v.valid == "False":
            return _Val("-1", "False", t)
        source = _source(v)
        if source[0] == "literal":  # known now
            found = regex_group(pa.array([source[1]], pa.string()), str(pattern.value),
                                int(group.value or 0))[0].as_py()
            if found is None:
                return _Val("-1", "False", t)
            return _Val("", "True", t, ("literal", found))
        table = self.arg("regex_map", source, pattern.value, group.value)
        code = self.var("rg")
        self.emit(f"{code} = {table}[{v.code}] if {v.valid} else -1")
        return _Val(code, f"({code} >= 0)", t, ("regex", source, pattern.value, group.value))

    def list_aggregate(self, fn: str, node: ir.Expr, t: DType, scope: _Scope) -> _Val:
        """``L.sum()``, ``average()``, ``min()``, ``max()`` over a list's elements, as
        `aggregate` does over events."""
        item = element(node.dtype)
        value_kind = item.kind if item is not None else t.kind
        acc, n = self.var("acc"), self.var("n")
        self.emit(f"{acc} = {_ZERO[value_kind] if fn == 'average' else _ZERO[t.kind]}")
        self.emit(f"{n} = 0")
        exact = fn == "average" and value_kind is Kind.INT
        accf, wrapped = self.var("accf"), self.var("wrapped")
        if exact:  # int64 while it does not overflow, else the float sum
            self.emit(f"{accf} = 0.0")
            self.emit(f"{wrapped} = False")

        self.each(node, scope,
                  lambda v: self.accumulate(fn, v, acc, n, (accf, wrapped) if exact else None))
        if fn == "sum":
            return _Val(acc, "True", t)
        if fn == "average":
            out = self.var("avg")
            total = f"({accf} if {wrapped} else np.float64({acc}))" if exact else \
                f"np.float64({acc})"
            self.emit(f"{out} = {total} / {n} if {n} > 0 else 0.0")
            return _Val(out, f"({n} > 0)", t)
        return _Val(acc, f"({n} > 0)", t)

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

    @contextmanager
    def scan(self, node: ir.Expr, scope: _Scope, var: str = "",
             hints: ir.Expr | None = None, after: str | None = None) -> Iterator[_Scope]:
        """Loop over the events of ``node`` (xEvent or filters of it) bound to ``var``;
        inside the block the filter conditions hold.

        ``hints`` is a condition every event the caller keeps must satisfy (a clause's
        ``where`` under exists or select): it is not tested here, but its event-type and time
        conjuncts narrow the loop, as the filters' own do. ``after``: an int64 expression;
        only the events of a time after it (a search, not a test per event).
        """
        lo, hi, i, inner, body, test = self.open_scan(node, scope, var, hints, after)
        with self.block(f"for {i} in range({lo}, {hi}):"):
            self.lines.extend(body)
            if test == "True":
                yield inner
            else:
                with self.block(f"if {test}:"):
                    yield inner

    def open_scan(self, node: ir.Expr, scope: _Scope, var: str, hints: ir.Expr | None,
                  after: str | None = None) -> tuple[str, str, str, _Scope, list[str], str]:
        """Emit a scan's bounds: (lo, hi, index, inner scope, statements of the filter
        test for the loop body, the test). The test leaves out what the bounds imply."""
        _, conds = self.source(node)
        facts = [(conj, "") for c in conds for conj in conjuncts(c)]
        if hints is not None and var:
            facts += [(conj, var) for conj in conjuncts(hints)]
        key = partition_key(facts, self.type_field)
        offsets = self.arg("event_offsets", key)
        time = self.arg("event_time", key)
        lo, hi, i = self.var("lo"), self.var("hi"), self.var("i")
        self.emit(f"{lo} = np.int64({offsets}[p])")
        self.emit(f"{hi} = np.int64({offsets}[p + U1])")
        exact = self.narrow_to_time(facts, scope, time, lo, hi)
        if after is not None:
            self.emit(f"{lo} = first_after({time}, {lo}, {hi}, {after})")
        # Inside, the implicit event of the filters is this one, and so is ``var``'s.
        inner = scope_with(scope_with(scope, "", i, key), var, i, key)
        inner.implied = inner.implied | {(id(conj), i) for conj in exact}
        self.depth += 1
        mark = len(self.lines)
        test = self.cond(conjoin(conds), inner) if conds else "True"
        body = self.lines[mark:]
        del self.lines[mark:]
        self.depth -= 1
        return lo, hi, i, inner, body, test

    def narrow_to_time(self, facts: list[tuple[ir.Expr, str]], scope: _Scope, time: str,
                       lo: str, hi: str) -> list[ir.Expr]:
        """Shrink [lo, hi) to the events inside each time window the facts impose; return
        the facts the slice makes true of every event in it (one-interval windows).

        Events are sorted by time within a profile's slice, so a window is a sub-slice.
        Windows anchored on ``now`` are bound per run; windows anchored on an outer event
        or an attribute are computed here, before the loop.
        """
        exact: list[ir.Expr] = []
        for conj, var in facts:
            if not (isinstance(conj, ir.Occurs) and isinstance(conj.subject, ir.EventField)
                    and conj.subject.var == var and conj.subject.name == self.time_field):
                continue
            if constant_when(conj.when):
                bounds = self.arg("window_bounds", conj.when)
                self.emit(f"{lo}, {hi} = time_slice({time}, {lo}, {hi}, {bounds}[0], "
                          f"{bounds}[1])")
                if _one_interval(conj.when):
                    exact.append(conj)
            elif not mentions_event(conj.when, var):
                ranges, valid = self.dynamic_ranges(conj.when, scope)
                if len(ranges) == 1:
                    (r_lo, r_hi), = ranges
                    with self.block(f"if {valid}:"):
                        self.emit(f"{lo}, {hi} = time_slice({time}, {lo}, {hi}, {r_lo}, {r_hi})")
                    with self.block("else:"):
                        self.emit(f"{hi} = {lo}")
                    exact.append(conj)
        return exact

    def count_events(self, node: ir.Expr, scope: _Scope) -> str:
        n = self.var("n")
        lo, hi, i, _, body, test = self.open_scan(node, scope, "", None)
        if not body and test == "True":  # the bounds say it all: no loop
            self.emit(f"{n} = {hi} - {lo}")
            return n
        self.emit(f"{n} = 0")
        with self.block(f"for {i} in range({lo}, {hi}):"):
            self.lines.extend(body)
            self.emit(f"{n} += {test}")
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
                self.accumulate(fn, v, acc, n, (accf, wrapped) if exact else None)
        if fn == "sum":
            return _Val(acc, "True", t)
        if fn == "average":
            out = self.var("avg")
            total = f"({accf} if {wrapped} else np.float64({acc}))" if exact else \
                f"np.float64({acc})"
            self.emit(f"{out} = {total} / {n} if {n} > 0 else 0.0")
            return _Val(out, f"({n} > 0)", t)
        return _Val(acc, f"({n} > 0)", t)

    def accumulate(self, fn: str, v: _Val, acc: str, n: str,
                   exact: tuple[str, str] | None) -> None:
        """One value into an aggregate's accumulator ``acc`` (``n`` values so far). ``exact``:
        (float sum, wrapped flag) of an int average, summed in int64 while it does not
        overflow."""
        if exact is not None:
            accf, wrapped = exact
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

    def distinct_count(self, node: ir.Expr, scope: _Scope) -> str:
        """``L.distinct().count()``: the list's elements in a buffer, sorted and counted."""
        if isinstance(node, ir.Member) and node.obj.dtype is Special.EVENTS \
                and isinstance(node.dtype, DType) and node.dtype.kind is Kind.STRING:
            return self.distinct_codes(node, scope)
        buf, m, _ = self.materialize(node, scope, self.list_domain(node))
        out = self.var("d")
        self.emit(f"{out} = count_distinct({buf}[:{m}])")
        return out

    def distinct_codes(self, node: ir.Member, scope: _Scope) -> str:
        """Distinct strings of an event field: codes are small, so mark each code with the
        evaluation that saw it last (one array per kernel call, no sorting, no allocation;
        an evaluation is numbered, not named by its profile, because one profile evaluates
        this several times: per instance of the shape, per event of an enclosing query)."""
        seen, stamp, d, ev = self.var("seen"), self.var("stamp"), self.var("d"), self.var("ev")
        self.prologue.append(f"{stamp} = 0")
        self.emit(f"{stamp} += 1")
        self.emit(f"{d} = 0")
        with self.scan(node.obj, scope, ev) as inner:
            f = self.event_field(ir.EventField(ev, node.name, dtype=element(node.dtype)), inner)
            if f.column is None or f.column[0] != "event":
                self.emit(f"{d} = max({d}, np.int64({f.valid}))")  # a constant: 0 or 1 value
                return d
            size = self.arg("dictionary_size", f.column)
            self.prologue.append(f"{seen} = np.full(max({size}, 1), -1, np.int64)")
            with self.block(f"if {f.valid} and {seen}[{f.code}] != {stamp}:"):
                self.emit(f"{seen}[{f.code}] = {stamp}")
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
        lo, hi, i, inner, body, test = self.open_scan(clause.source, scope, clause.var, hints)
        inside = 1 if test == "True" else 2  # the where clause's depth in the loop
        self.depth += inside
        mark = len(self.lines)
        holds = self.cond(clause.cond, inner) if clause.cond is not None else "True"
        holds_body = self.lines[mark:]
        del self.lines[mark:]
        self.depth -= inside
        if (mode != "forall" and len(clauses) == 1 and not body and not holds_body
                and test == holds == "True"):  # every event of the slice qualifies
            self.emit(f"{result} = {hi} > {lo}" if mode == "exists" else f"{result} += {hi} - {lo}")
            return
        with self.block(f"for {i} in range({lo}, {hi}):"):
            self.lines.extend(body)
            with self.block(f"if {test}:") if test != "True" else nullcontext():
                self.lines.extend(holds_body)
                self._clause_body(clauses, inner, result, mode, holds)

    def _clause_body(self, clauses: list[ir.Clause], inner: _Scope, result: str, mode: str,
                     holds: str) -> None:
        if mode == "forall":
            with self.block(f"if not {holds}:"):
                self.emit(f"{result} = False")
                self.emit("break")
            if len(clauses) > 1:
                self._clauses(clauses[1:], inner, result, mode)
                with self.block(f"if not {result}:"):
                    self.emit("break")
            return
        with self.block(f"if {holds}:") if holds != "True" else nullcontext():
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
        step_k, count, last, done = (self.var("step"), self.var("cnt"), self.var("after"),
                                     self.var("chain"))
        steps = list(node.steps)
        self.emit(f"{step_k} = 0")
        self.emit(f"{count} = 0")
        self.emit(f"{last} = np.int64({-(2**63)})")
        ev = self.var("ev")
        if node.time_field == self.time_field:  # the scan's order is TIME's
            # Greedy, earliest first (docs/language.md), one step after the other: each
            # scans only the events that can match it, as a filter would (the partition of
            # the event type its WHAT fixes, sliced to its WHEN window), not every event of
            # the profile once for all steps: 3-5x on chains of B10's workloads; and from
            # the first event after the step before's completing one.
            for k, step in enumerate(steps):
                with self.block(f"if {step_k} == {k}:"):  # the steps before it completed
                    source = ir.Filter(node.source, conjoin(self._step_conds(node, step)),
                                       dtype=Special.EVENTS)
                    with self.scan(source, scope, ev, after=last if k else None) as inner:
                        index, key = inner.events[ev]
                        t_i = f"{self.arg('event_time', key)}[{index}]"
                        self._count_step(step, t_i, (step_k, count, last), stop=True)
            self.emit(f"{done} = {step_k} == {len(steps)}")
            return done
        # Another TIME field: the source's events that have one, in (stable) TIME order.
        idx, times, m = self.var("idx"), self.var("times"), self.var("m")
        self.prologue.append(f"{idx} = np.empty(16, np.int64)")
        self.prologue.append(f"{times} = np.empty(16, np.int64)")
        self.emit(f"{m} = 0")
        keys: list[tuple[str, ...] | None] = []
        with self.scan(node.source, scope, ev) as inner:
            self.emit("pass")
            index, key = inner.events[ev]
            keys.append(key)
            f = self.event_field(ir.EventField(ev, node.time_field, dtype=DType(Kind.TIMESTAMP)),
                                 inner)
            if f.valid != "False":
                with self.block(f"if {f.valid}:") if f.valid != "True" else nullcontext():
                    with self.block(f"if {m} == len({idx}):"):
                        self.emit(f"{idx} = grow({idx})")
                        self.emit(f"{times} = grow({times})")
                    self.emit(f"{idx}[{m}] = {index}")
                    self.emit(f"{times}[{m}] = {f.code}")
                    self.emit(f"{m} += 1")
        order, j, i = self.var("order"), self.var("k"), self.var("i")
        self.emit(f"{order} = np.argsort({times}[:{m}], kind=\"mergesort\")")
        with self.block(f"for {j} in range({m}):"):
            self.emit(f"{i} = {idx}[{order}[{j}]]")
            self._chain_event(node, scope_with(scope, "", i, keys[0]), f"{times}[{order}[{j}]]",
                              (step_k, count, last))
            with self.block(f"if {step_k} == {len(steps)}:"):
                self.emit("break")
        self.emit(f"{done} = {step_k} == {len(steps)}")
        return done

    def _chain_event(self, node: ir.Chain, step_scope: _Scope, t_i: str,
                     state: tuple[str, str, str]) -> None:
        """One event of a chain's source, at TIME ``t_i``: the step it may count for.
        ``state``: the variables of the current step, its count and the TIME completing
        the previous step."""
        step_k, _, last = state
        with self.block(f"if {t_i} > {last}:"):
            for k, step in enumerate(node.steps):
                # elif: the event that completes a step cannot also count for the next
                with self.block(f"{'if' if k == 0 else 'elif'} {step_k} == {k}:"):
                    test = self.cond(conjoin(self._step_conds(node, step)), step_scope)
                    with self.block(f"if {test}:"):
                        self._count_step(step, t_i, state, stop=False)

    @staticmethod
    def _step_conds(node: ir.Chain, step: ir.Step) -> list[ir.Expr]:
        """What an event matching ``step`` satisfies: WHAT, WHERE, and WHEN on its TIME."""
        conds = [step.what] + ([step.where] if step.where else [])
        if step.when is not None:
            conds.append(ir.Occurs(ir.EventField("", node.time_field,
                                                 dtype=DType(Kind.TIMESTAMP)),
                                   step.when, dtype=DType(Kind.BOOL)))
        return conds

    def _count_step(self, step: ir.Step, t_i: str, state: tuple[str, str, str], *,
                    stop: bool) -> None:
        """Count a matching event at TIME ``t_i`` for ``step``; the one that completes it
        moves the chain on (``stop``: and leaves the step's own scan)."""
        step_k, count, last = state
        self.emit(f"{count} += 1")
        with self.block(f"if {count} >= {self.arg('param', 'int', step.count)}:"):
            self.emit(f"{step_k} += 1")
            self.emit(f"{count} = 0")
            self.emit(f"{last} = {t_i}")
            if stop:
                self.emit("break")

    # ------------------------------------------------------------ time

    def occurs(self, node: ir.Occurs, scope: _Scope) -> str:
        subject = node.subject
        if isinstance(subject.dtype, DType) and subject.dtype.is_list:
            if not (isinstance(subject, ir.Member) and subject.obj.dtype is Special.EVENTS):
                # some element of a list attribute (or literal, ...) satisfies it
                return self.some(subject, scope,
                                 lambda v: self.occurs_value(v, node.when, scope))

            def occurs_of(inner: _Scope, ev: str) -> str:
                field = ir.EventField(ev, subject.name, dtype=element(subject.dtype))
                return self.occurs(ir.Occurs(field, node.when, dtype=node.dtype), inner)

            return self.events_some(subject.obj, scope, occurs_of)
        return self.occurs_value(self.value(subject, scope), node.when, scope)

    def occurs_value(self, v: _Val, when: ir.TimeCond, scope: _Scope) -> str:
        """``occurs`` on the timestamp or date value ``v``."""
        if v.valid == "False":
            return "False"
        t = f"({v.code} * 86400000)" if v.dtype.kind is Kind.DATE else v.code
        if constant_when(when):
            w = self.arg("window", when)
            pieces = 5 if isinstance(when, ir.Within) and when.direction == "from" else 2
            test = f"in_window({t}, {w}, {pieces})"
            return test if v.valid == "True" else f"({v.valid} & {test})"
        # A reference that varies by profile or event: the bounds are generated for this
        # condition's operator and unit (docs/language.md "occurs"), the same table as
        # engine.timeops.window, which handles constant references.
        tv = self.var("t")
        self.emit(f"{tv} = np.int64({t})")
        ranges, valid = self.dynamic_ranges(when, scope)
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



def _count_bound(node: ir.Compare) -> tuple[ir.Expr, int] | None:
    """(event query, k) when ``node`` holds only for profiles with at least k >= 2 events of
    the query's partition: ``Q.count() >= k`` (``> k - 1``, ``= k``), also of distinct
    values of a field of Q (fewer events cannot hold k distinct values)."""
    left, right = node.left, node.right
    if node.op not in (">=", ">", "=") or not isinstance(right, ir.Literal) \
            or not isinstance(right.value, int) or isinstance(right.value, bool):
        return None
    if not (isinstance(left, ir.Call) and left.fn == "count"):
        return None
    src = left.args[0]
    if isinstance(src, ir.Call) and src.fn == "distinct" and isinstance(src.args[0], ir.Member):
        src = src.args[0].obj
    if src.dtype is not Special.EVENTS:
        return None
    need = right.value + 1 if node.op == ">" else right.value
    return (src, need) if need >= 2 else None


def scope_with(scope: _Scope, var: str, index: str | None = None,
               key: tuple[str, ...] | None = None) -> _Scope:
    events = dict(scope.events)
    if index is not None:
        events[var] = (index, key)
    return _Scope(events, scope.implied)


def _implied(node: ir.Occurs, scope: _Scope) -> bool:
    """Whether an enclosing loop's bounds already guarantee ``node`` for its event."""
    subject = node.subject
    if not scope.implied or not isinstance(subject, ir.EventField) \
            or subject.var not in scope.events:
        return False
    return (id(node), scope.events[subject.var][0]) in scope.implied


def _one_interval(when: ir.TimeCond) -> bool:
    """Whether a constant window is one interval, so that slicing to its hull is exact."""
    if isinstance(when, ir.Within):
        return when.direction != "from" and when.op != "!="
    return True


class _Domain:
    """The sources of strings coded in one dictionary, their union: the branches of a
    string ``if``, the elements of a list in a buffer. Collected while the code is generated
    and resolved when a run binds the arguments (``engine.binding.dictionary_of``), so it
    is compared by identity."""

    __slots__ = ("refs",)

    def __init__(self) -> None:
        self.refs: list[tuple[Any, ...]] = []

    def add(self, ref: tuple[Any, ...]) -> None:
        if ref not in self.refs:
            self.refs.append(ref)

    def __repr__(self) -> str:
        return f"domain{tuple(self.refs)!r}"


def _source(v: _Val) -> tuple[Any, ...]:
    """What a string value's code refers to; a known string is a literal."""
    if v.column is None:  # pragma: no cover - present strings always have a source
        raise CompileError("a string value without a dictionary")
    if v.column[0] == "constant":
        return ("literal", v.column[1])
    return v.column


def _check_re2(pattern: str) -> None:
    """Raise ValueError where RE2 (the kernels) would read ``pattern`` otherwise than
    Python's ``re`` (the checker and the language's examples) although both accept it."""
    i, in_class = 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
            i += 1 + (pattern[i + 1 : i + 2] == "^")
            i += pattern[i : i + 1] == "]"  # a leading ] is a literal
            continue
        elif pattern.startswith("{,", i):
            raise ValueError("{,n} is a repetition for Python but text for RE2: write {0,n}")
        i += 1


def _not(x: str) -> str:
    return {"True": "False", "False": "True"}.get(x, f"(not {x})")


def _all_of(*parts: str) -> str:
    """The conjunction of boolean expressions (constants folded)."""
    if "False" in parts:
        return "False"
    kept = [x for x in parts if x != "True"]
    if not kept:
        return "True"
    return kept[0] if len(kept) == 1 else f"({' & '.join(kept)})"
