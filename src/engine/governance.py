"""Data governance for activation: data-usage labels, policies, and the lineage of a refusal.

Labels (``C1``..``C12`` contract labels, ``I1``/``I2`` identity, ``S1``/``S2`` sensitive, and
custom ones) are attached to fields and to datasets. A segment carries the labels of what its
definition reads (its fields, the datasets those fields and its event types come from, the
segments it refers to with ``inSegment``); sending it to a destination adds the labels of
the identities and attributes the destination maps for export. A policy denies marketing
actions for a label expression (``C4``, ``C1 and C3``, ``C1 or (C3 and C7)``), judged per
segment and destination: an ``and`` applies only when both labels reach the same activation.

`Governance.check` refuses an activation before anything is sent, with a `PolicyViolation`
whose message shows the lineage: which label came from which field or dataset, through which
segment, under which policy, to which destination.

>>> rule = parse_labels("C1 and (C3 or C7)")
>>> rule.holds({"C1", "C7"}), rule.holds({"C3"})
(True, False)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from engine.errors import EngineError

if TYPE_CHECKING:
    from engine.analysis import Analysis
    from engine.destinations import Destination

__all__ = [
    "CORE_LABELS",
    "Dataset",
    "Governance",
    "LabelError",
    "LabelExpr",
    "Policy",
    "PolicyViolation",
    "Source",
    "Violation",
    "parse_labels",
]

# Adobe's core data-usage labels: contract, identity and sensitive (pql-notes.md §6.3).
CORE_LABELS = frozenset(
    [f"C{i}" for i in range(1, 13)] + ["I1", "I2", "S1", "S2", "PSPD", "RHD"])


class LabelError(EngineError, ValueError):
    """A label expression that cannot be read; ``column`` is 1-based in the expression."""

    def __init__(self, message: str, text: str, column: int) -> None:
        self.message, self.text, self.column = message, text, column
        super().__init__(f"{message} (column {column} of {text!r})")


# ---------------------------------------------------------------- label expressions


@dataclass(frozen=True)
class LabelExpr:
    """A boolean expression over labels: a label, or an ``and``/``or`` of expressions."""

    op: str  # "label", "and" or "or"
    label: str = ""
    parts: tuple[LabelExpr, ...] = ()

    def holds(self, labels: Iterable[str]) -> bool:
        return self.witness(frozenset(labels)) is not None

    def witness(self, labels: frozenset[str]) -> frozenset[str] | None:
        """Labels of ``labels`` that make the expression true (every label an ``and`` needs,
        the first true branch of an ``or``), or None when it is false: what a refusal shows."""
        if self.op == "label":
            return frozenset([self.label]) if self.label in labels else None
        found: frozenset[str] = frozenset()
        for part in self.parts:
            w = part.witness(labels)
            if self.op == "or" and w is not None:
                return w
            if self.op == "and":
                if w is None:
                    return None
                found |= w
        return found if self.op == "and" else None

    def labels(self) -> frozenset[str]:
        if self.op == "label":
            return frozenset([self.label])
        return frozenset().union(*(p.labels() for p in self.parts))

    def __str__(self) -> str:
        if self.op == "label":
            return self.label
        inner = [f"({p})" if p.op not in ("label", self.op) else str(p) for p in self.parts]
        return f" {self.op} ".join(inner)


_TOKEN = re.compile(r"\s*(?:(?P<paren>[()])|(?P<word>[A-Za-z0-9_][A-Za-z0-9_.:-]*)|(?P<bad>\S))")


def parse_labels(text: str) -> LabelExpr:
    """Read a label expression: labels joined by ``and`` / ``or`` (any case; ``and`` binds
    tighter), with parentheses. Raises `LabelError` with the column of the problem."""
    tokens: list[tuple[str, str, int]] = []  # (kind, text, column)
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup or "bad"
        value = m.group(kind)
        column = m.start(kind) + 1
        if kind == "bad":
            raise LabelError(f"unexpected {value!r}: write labels joined by 'and' and 'or'",
                             text, column)
        if kind == "word" and value.lower() in ("and", "or"):
            kind = value.lower()
        tokens.append((kind, value, column))
    pos = 0

    def peek() -> tuple[str, str, int]:
        return tokens[pos] if pos < len(tokens) else ("end", "", len(text) + 1)

    def take() -> tuple[str, str, int]:
        nonlocal pos
        token = peek()
        pos += 1
        return token

    def either() -> LabelExpr:
        parts = [both()]
        while peek()[0] == "or":
            take()
            parts.append(both())
        return parts[0] if len(parts) == 1 else LabelExpr("or", parts=tuple(parts))

    def both() -> LabelExpr:
        parts = [one()]
        while peek()[0] == "and":
            take()
            parts.append(one())
        return parts[0] if len(parts) == 1 else LabelExpr("and", parts=tuple(parts))

    def one() -> LabelExpr:
        kind, value, column = take()
        if kind == "word":
            return LabelExpr("label", value)
        if kind == "(":
            inner = either()
            if peek()[0] != ")":
                raise LabelError("missing ')'", text, peek()[2])
            take()
            return inner
        what = "the end" if kind == "end" else repr(value)
        raise LabelError(f"expected a label, found {what}", text, column)

    if not tokens:
        raise LabelError("empty label expression: write e.g. C4 or C1 and C3", text, 1)
    # Parentheses are tokens of their own kind, so the grammar above can name them.
    tokens = [(value if kind == "paren" else kind, value, column) for kind, value, column in tokens]
    expr = either()
    if pos < len(tokens):
        kind, value, column = peek()
        raise LabelError(f"expected 'and', 'or' or the end, found {value!r}", text, column)
    return expr


# ---------------------------------------------------------------- the model


@dataclass(frozen=True)
class Policy:
    """Deny ``actions`` (marketing actions) when the labels of an activation satisfy ``when``."""

    name: str
    actions: frozenset[str]
    when: LabelExpr
    description: str = ""


@dataclass(frozen=True)
class Dataset:
    """A source of data with labels: some profile attributes and/or events of some types.

    ``attributes``/``event_types`` None means all of them; empty means none."""

    name: str
    labels: frozenset[str]
    attributes: frozenset[str] | None = frozenset()
    event_types: frozenset[str] | None = frozenset()

    def provides_attribute(self, name: str) -> bool:
        return self.attributes is None or name in self.attributes

    def provides_events(self, types: frozenset[str] | None) -> frozenset[str] | None:
        """The event types of ``types`` (None: any) this dataset provides; None when all of
        its events are concerned, empty when none are."""
        if self.event_types is not None and not self.event_types:
            return frozenset()
        if types is None:
            return None if self.event_types is None else self.event_types
        if self.event_types is None:
            return types
        return types & self.event_types


@dataclass(frozen=True)
class Source:
    """Where a label reaches an activation from, as a sentence: ``field 'income' (read by
    segment 'x')``."""

    label: str
    via: str


@dataclass(frozen=True)
class Violation:
    destination: str
    action: str
    segment: str
    policy: Policy
    sources: tuple[Source, ...]  # the lineage of the labels that satisfy the policy

    def describe(self) -> str:
        lines = [f"segment {self.segment!r} to destination {self.destination!r} "
                 f"(marketing action {self.action}): policy {self.policy.name!r} denies "
                 f"{self.action} when {self.policy.when}"]
        lines += [f"    {s.label} ← {s.via}" for s in self.sources]
        return "\n".join(lines)


class PolicyViolation(EngineError):
    """Activations that policies deny; nothing was sent. ``violations`` lists each one with
    the lineage of its labels."""

    def __init__(self, violations: Sequence[Violation]) -> None:
        self.violations = list(violations)
        count = len(self.violations)
        head = ("activation refused by data-usage policy"
                + (f" ({count} violations)" if count > 1 else "") + "; nothing was sent:")
        body = "\n".join("  " + v.describe() for v in self.violations)
        hint = ("  hint: map the segment to a destination whose marketing action the policy "
                "allows, stop mapping the labelled attribute, or change the definition so it "
                "no longer reads the labelled data")
        super().__init__(f"{head}\n{body}\n{hint}")


@dataclass(frozen=True)
class Governance:
    """Labels on fields and datasets, and the policies that restrict marketing actions."""

    field_labels: Mapping[str, frozenset[str]] = field(default_factory=dict)
    datasets: tuple[Dataset, ...] = ()
    policies: tuple[Policy, ...] = ()

    def lineage(self, segment: str, analyses: Mapping[str, Analysis],
                mapped: Iterable[str] = (), destination: str = "") -> list[Source]:
        """Every label that reaches the activation of ``segment`` (whose definition's facts,
        and those of the segments it refers to, are in ``analyses``) with the profile
        fields ``mapped`` for export, and where each comes from."""
        out: list[Source] = []
        self._read_by(segment, analyses, (), out)
        for name in mapped:
            where = f"mapped for export to {destination!r}" if destination else "mapped for export"
            out += [Source(label, f"attribute {name!r} ({where})")
                    for label in sorted(self.field_labels.get(name, ()))]
            out += [Source(label, f"dataset {d.name!r} (its attribute {name!r}, {where})")
                    for d in self.datasets if d.provides_attribute(name)
                    for label in sorted(d.labels)]
        return _unique(out)

    def _read_by(self, segment: str, analyses: Mapping[str, Analysis],
                 path: tuple[str, ...], out: list[Source]) -> None:
        facts = analyses[segment]
        chain = " → ".join((*path, segment))
        reader = (f"read by segment {segment!r}" if not path
                  else f"read by segment {segment!r}, which {path[0]!r} refers to"
                  + (f" through {chain}" if len(path) > 1 else ""))
        for name in sorted(facts.profile_fields):
            out += [Source(label, f"attribute {name!r} ({reader})")
                    for label in sorted(self.field_labels.get(name, ()))]
            out += [Source(label, f"dataset {d.name!r} (its attribute {name!r}, {reader})")
                    for d in self.datasets if d.provides_attribute(name) for label in sorted(d.labels)]
        for name in sorted(facts.event_fields):
            out += [Source(label, f"event field {name!r} ({reader})")
                    for label in sorted(self.field_labels.get(name, ()))]
        if facts.reads_events:
            for d in self.datasets:
                types = d.provides_events(facts.event_types)
                if types is not None and not types:
                    continue
                what = ("its events" if types is None
                        else "its events of type " + ", ".join(repr(t) for t in sorted(types)))
                out += [Source(label, f"dataset {d.name!r} ({what}, {reader})")
                        for label in sorted(d.labels)]
        for ref in sorted(facts.segment_refs):
            if ref in analyses and ref not in path and ref != segment:
                self._read_by(ref, analyses, (*path, segment), out)

    def violations(self, destination: Destination,
                   analyses: Mapping[str, Analysis]) -> list[Violation]:
        """What the policies deny of sending ``destination``'s segments to it."""
        found = []
        policies = [p for p in self.policies if destination.marketing_action in p.actions]
        if not policies:
            return []
        mapped = [*destination.identities, *destination.attributes]
        for segment in destination.segments:
            sources = self.lineage(segment, analyses, mapped, destination.name)
            labels = frozenset(s.label for s in sources)
            for policy in policies:
                witness = policy.when.witness(labels)
                if witness is not None:
                    shown = tuple(s for s in sources if s.label in witness)
                    found.append(Violation(destination.name, destination.marketing_action,
                                           segment, policy, shown))
        return found

    def check(self, destinations: Iterable[Destination],
              analyses: Mapping[str, Analysis]) -> None:
        """Raise `PolicyViolation` listing every denied activation of ``destinations``."""
        found = [v for d in destinations for v in self.violations(d, analyses)]
        if found:
            raise PolicyViolation(found)


def _unique(sources: list[Source]) -> list[Source]:
    seen: set[Source] = set()
    return [s for s in sources if not (s in seen or seen.add(s))]  # type: ignore[func-returns-value]
