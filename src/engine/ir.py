"""The typed intermediate representation of segment definitions.

Nodes are immutable, slotted dataclasses whose hash is computed once (when first needed) from
their identity fields. ``span`` (where the node came from) and ``dtype`` (filled in by the
checker) never take part in identity, so ``parse(unparse(x)) == x`` holds and identical
subtrees compare and hash equal wherever they come from. `Node.with_` is the only way to
"change" a node.

The parser produces `Path` nodes for names; the checker binds them to `Attr` (a profile
attribute) or `EventField` (a field of the event bound to a variable) and sets ``dtype`` on
every node.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from dataclasses import MISSING, dataclass, field, fields, replace
from operator import attrgetter
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, dataclass_transform

from engine.errors import Span

if TYPE_CHECKING:
    from engine.types import Type

__all__ = [
    "And",
    "Arith",
    "Attr",
    "Between",
    "Call",
    "Chain",
    "Clause",
    "Compare",
    "EventField",
    "Events",
    "Expr",
    "Filter",
    "ListLit",
    "LitKind",
    "Literal",
    "Member",
    "Neg",
    "Node",
    "Not",
    "Now",
    "Occurs",
    "On",
    "Or",
    "Path",
    "Period",
    "Quantifier",
    "SegmentRef",
    "Select",
    "Side",
    "Step",
    "TimeCond",
    "TimeUnit",
    "Within",
    "children",
    "transform",
    "walk",
]

N = TypeVar("N", bound="Node")


@dataclass_transform(frozen_default=True, kw_only_default=False)
def node(cls: type[N]) -> type[N]:
    """Make ``cls`` a frozen, slotted dataclass whose hash is computed once, when first asked.

    Equality and hashing use only fields declared with ``compare=True`` (the default); the
    shared ``span`` and ``dtype`` fields are declared with ``compare=False``.
    """
    cls = dataclass(frozen=True, slots=True, eq=False, repr=False)(cls)
    cls.__init__, cls.with_ = _fast_methods(cls)  # type: ignore[method-assign]
    keys = tuple(f.name for f in fields(cls) if f.compare)
    cls._keys = keys
    # Getters stored on the class are called as self._getter(self): neither binds.
    if len(keys) == 1:  # attrgetter returns a bare value for one name: wrap it
        one = attrgetter(keys[0])
        cls._getter = staticmethod(lambda obj: (one(obj),))
    elif keys:
        cls._getter = attrgetter(*keys)
    return cls


_KEEP = object()  # "no change" for a field in `Node.with_`


def _fast_methods(cls: type) -> tuple[Callable[..., None], Callable[..., Any]]:
    """``__init__`` and ``with_`` for ``cls``, generated as a dataclass generates its methods.

    A frozen dataclass's ``__init__`` calls ``object.__setattr__`` per field, which made node
    construction the largest cost of parsing; the slot descriptors' ``__set__`` is the same
    store without the generic lookup (the instance stays frozen). ``with_`` names each field
    as a keyword instead of building a dict, as `dataclasses.replace` does per call.
    """
    namespace: dict[str, Any] = {"_cls": cls, "_KEEP": _KEEP}
    stores: list[str] = []  # __init__'s body
    params: dict[bool, list[str]] = {False: [], True: []}  # by kw_only
    copies: dict[bool, list[str]] = {False: [], True: []}  # with_'s arguments to _cls
    for f in fields(cls):
        namespace[f"_set_{f.name}"] = getattr(cls, f.name).__set__
        if f.default is not MISSING:
            namespace[f"_default_{f.name}"] = f.default
        stores.append(f"    _set_{f.name}(self, {f.name if f.init else f'_default_{f.name}'})")
        if f.init:
            kw_only = f.kw_only is True
            default = "" if f.default is MISSING else f"=_default_{f.name}"
            params[kw_only].append(f"{f.name}{default}")
            copy = f"self.{f.name} if {f.name} is _KEEP else {f.name}"
            copies[kw_only].append(f"{f.name}={copy}" if kw_only else copy)
    names = [p.split("=")[0] for p in (*params[False], *params[True])]
    keyword_only = ["*", *params[True]] if params[True] else []
    exec(
        f"def __init__({', '.join(['self', *params[False], *keyword_only])}):\n"
        + "\n".join(stores)
        + f"\ndef with_(self, *, {', '.join(f'{n}=_KEEP' for n in names)}):\n"
        + f"    return _cls({', '.join([*copies[False], *copies[True]])})\n",
        namespace,
    )
    init, with_ = namespace["__init__"], namespace["with_"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    with_.__qualname__ = f"{cls.__qualname__}.with_"
    with_.__doc__ = Node.with_.__doc__
    return init, with_


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Node:
    """Base of every IR node."""

    span: Span | None = field(default=None, compare=False, kw_only=True)
    dtype: Type | None = field(default=None, compare=False, kw_only=True)
    _hash: int = field(default=0, init=False, compare=False, kw_only=True)
    _keys: ClassVar[tuple[str, ...]] = ()

    _getter: ClassVar[Callable[[Any], tuple[Any, ...]]] = staticmethod(lambda obj: ())

    def key(self) -> tuple[Any, ...]:
        """The identity fields' values, in declaration order."""
        return type(self)._getter(self)

    def __hash__(self) -> int:
        # Computed on first use, then kept: most nodes (a parse's, a checker's copies) are
        # never hashed, and a hashed tree hashes each subtree once.
        h = self._hash
        if not h:
            h = hash((type(self).__name__, self.key())) or 1
            object.__setattr__(self, "_hash", h)
        return h

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if type(self) is not type(other):
            return NotImplemented if not isinstance(other, Node) else False
        assert isinstance(other, Node)
        return hash(self) == hash(other) and self.key() == other.key()

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._keys)
        return f"{type(self).__name__}({args})"

    def __reduce__(self) -> tuple[Any, ...]:
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
        return (_rebuild, (type(self), values))

    def with_(self: N, **changes: Any) -> N:
        """A copy with ``changes`` applied (the only way to modify a node).

        The same as `dataclasses.replace`; each node class gets a generated version that is
        several times faster (see `_fast_methods`).
        """
        return replace(self, **changes)


def _rebuild(cls: type[N], values: dict[str, Any]) -> N:
    return cls(**values)


class Expr(Node):
    """A node that has a value (as opposed to a clause, step or time condition)."""

    __slots__ = ()


class TimeCond(Node):
    """The right-hand side of ``occurs`` (and the body of a chain step's ``WHEN``)."""

    __slots__ = ()


# ---------------------------------------------------------------- enums


class LitKind(enum.StrEnum):
    NULL = "null"
    BOOL = "bool"
    INT = "int"
    FLOAT = "float"
    STRING = "string"
    TIMESTAMP = "timestamp"  # value: int milliseconds since the epoch, UTC


class TimeUnit(enum.StrEnum):
    """Units of ``occurs`` offsets and calendar periods; ``ms`` is the fixed length, if any."""

    MILLISECOND = "millisecond"
    SECOND = "second"
    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    YEAR = "year"

    @property
    def ms(self) -> int | None:
        """Fixed length in milliseconds; None for months and years (calendar arithmetic)."""
        return _UNIT_MS.get(self)

    @classmethod
    def parse(cls, word: str) -> TimeUnit:
        word = word.lower()
        return cls(word[:-1] if word.endswith("s") else word)


_UNIT_MS = {
    TimeUnit.MILLISECOND: 1,
    TimeUnit.SECOND: 1_000,
    TimeUnit.MINUTE: 60_000,
    TimeUnit.HOUR: 3_600_000,
    TimeUnit.DAY: 86_400_000,
    TimeUnit.WEEK: 7 * 86_400_000,
}


class Quantifier(enum.StrEnum):
    SELECT = "select"
    EXISTS = "exists"
    FORALL = "forall"


COMPARE_OPS = ("=", "!=", "<", "<=", ">", ">=")
ARITH_OPS = ("+", "-", "*", "/", "%")
NEGATED_COMPARE = {"=": "!=", "!=": "=", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}


# ---------------------------------------------------------------- values


@node
class Literal(Expr):
    """A constant: null, bool, int, float, string, or a timestamp (ms since the epoch)."""

    value: bool | int | float | str | None
    kind: LitKind


@node
class ListLit(Expr):
    """A list ``[a, b, ...]``."""

    items: tuple[Expr, ...]


@node
class Path(Expr):
    """A dotted name as written (``person.birthYear``, ``X.timestamp``), before binding."""

    parts: tuple[str, ...]


@node
class Attr(Expr):
    """A profile attribute, bound by the checker (``name`` is the dotted field name)."""

    name: str


@node
class EventField(Expr):
    """A field of the event bound to ``var`` ("" is the implicit event of a filter or step)."""

    var: str
    name: str


@node
class Events(Expr):
    """``xEvent``: the profile's events, in time order."""


@node
class Now(Expr):
    """``now``: the evaluation instant."""


@node
class Period(Expr):
    """A calendar period relative to now: ``today`` is (0, day), ``last month`` is (-1, month)."""

    offset: int
    unit: TimeUnit


@node
class Member(Expr):
    """``obj.name`` where ``obj`` is not a plain path: a field of every event in a collection."""

    obj: Expr
    name: str


@node
class Filter(Expr):
    """``source[cond]``: the events of ``source`` for which ``cond`` holds."""

    source: Expr
    cond: Expr


@node
class Call(Expr):
    """A function or method call; a method's receiver is ``args[0]``."""

    fn: str
    args: tuple[Expr, ...]


@node
class Compare(Expr):
    """``left op right`` with op one of = != < <= > >=."""

    op: str
    left: Expr
    right: Expr


@node
class Arith(Expr):
    """``left op right`` with op one of + - * / %."""

    op: str
    left: Expr
    right: Expr


@node
class Neg(Expr):
    """Unary minus of a non-literal."""

    arg: Expr


@node
class Not(Expr):
    """Boolean negation of an operand taken in boolean position."""

    arg: Expr


@node
class And(Expr):
    """Conjunction of two or more operands (n-ary, never nested in a flattened tree)."""

    args: tuple[Expr, ...]


@node
class Or(Expr):
    """Disjunction of two or more operands."""

    args: tuple[Expr, ...]


@node
class Occurs(Expr):
    """``subject occurs <when>``: a time condition on a timestamp or date."""

    subject: Expr
    when: TimeCond


@node
class SegmentRef(Expr):
    """``inSegment("name")``: membership in another segment."""

    name: str


@node
class Clause(Node):
    """``var from source [where cond]`` inside select / exists / forall."""

    var: str
    source: Expr
    cond: Expr | None


@node
class Select(Expr):
    """``select|exists|forall`` over one or more clauses (each sees the variables to its left)."""

    quantifier: Quantifier
    clauses: tuple[Clause, ...]


@node
class Step(Node):
    """One step of a chain: ``label: WHAT(c) [WHERE(c)] [WHEN(t)] [COUNT(n)]``."""

    label: str
    what: Expr
    where: Expr | None
    when: TimeCond | None
    count: int


@node
class Chain(Expr):
    """``chain(source, time_field, [steps])``: the steps occur in this order in time."""

    source: Expr
    time_field: str
    steps: tuple[Step, ...]


# ---------------------------------------------------------------- time conditions


@node
class Within(TimeCond):
    """``op amount unit before|after|from anchor`` (form 1 of occurs)."""

    op: str
    amount: int
    unit: TimeUnit
    direction: str  # "before", "after" or "from"
    anchor: Expr


@node
class Side(TimeCond):
    """``before|after anchor`` (form 2 of occurs)."""

    direction: str
    anchor: Expr


@node
class On(TimeCond):
    """``[on] anchor`` (form 3 of occurs)."""

    anchor: Expr


@node
class Between(TimeCond):
    """``between lo and hi`` (form 4 of occurs), inclusive of both ends."""

    lo: Expr
    hi: Expr


# ---------------------------------------------------------------- traversal


def children(n: Node) -> Iterator[Node]:
    """The direct child nodes of ``n``, in field order."""
    for k in n._keys:
        v = getattr(n, k)
        if isinstance(v, Node):
            yield v
        elif isinstance(v, tuple):
            yield from (x for x in v if isinstance(x, Node))


def walk(n: Node) -> Iterator[Node]:
    """``n`` and all its descendants, parents before children."""
    stack = [n]
    while stack:
        cur = stack.pop()
        yield cur
        stack.extend(reversed(list(children(cur))))


def transform(n: N, fn: Callable[[Node], Node]) -> N:
    """Rebuild ``n`` bottom-up, replacing each node by ``fn(node with transformed children)``."""
    changes: dict[str, Any] = {}
    for k in n._keys:
        v = getattr(n, k)
        if isinstance(v, Node):
            new = transform(v, fn)
            if new is not v:
                changes[k] = new
        elif isinstance(v, tuple) and any(isinstance(x, Node) for x in v):
            items = tuple(transform(x, fn) if isinstance(x, Node) else x for x in v)
            if any(a is not b for a, b in zip(items, v, strict=True)):
                changes[k] = items
    rebuilt = n.with_(**changes) if changes else n
    return fn(rebuilt)  # type: ignore[return-value]
