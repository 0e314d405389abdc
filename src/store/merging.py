"""Merge policies: one person's attributes from the fragments of its identities.

A *fragment* is what one dataset says about one identity: some attributes, as of an instant
(the time the dataset last updated it). A person (an identity graph, `store.identities`) has
the fragments of all its identities; a `MergePolicy` picks, per attribute, the fragment whose
value wins:

* ``timestamp`` (the default): the most recently updated fragment holding a value for the
  attribute; ties go to the dataset listed first in ``order`` (if any), then to the
  fragment seen first.
* ``precedence``: the first dataset of ``order`` holding a value; datasets not listed are
  ignored, as in Adobe's dataset-precedence policies.

A fragment holds an attribute when its value is not null: a dataset that does not know a
customer's birthday does not erase the one another dataset has. ``stitching="none"`` makes
every identity its own person (no identity graph), as Adobe's "none" policies do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from store.errors import DataError

__all__ = ["Fragment", "MergePolicy", "Merged", "merge"]


@dataclass(frozen=True)
class Fragment:
    """What ``dataset`` says of ``identity`` as of ``updated`` (epoch ms)."""

    dataset: str
    identity: tuple[str, str]
    updated: int
    values: Mapping[str, Any]
    arrival: int = 0  # order of arrival, the last tie-break


@dataclass(frozen=True)
class MergePolicy:
    """How fragments merge (see the module docstring)."""

    name: str = "default"
    attributes: str = "timestamp"  # or "precedence"
    order: tuple[str, ...] = ()  # datasets, highest priority first
    stitching: str = "graph"  # or "none": each identity is its own person

    def __post_init__(self) -> None:
        if self.attributes not in ("timestamp", "precedence"):
            raise DataError(f"merge policy {self.name!r}: attributes must be 'timestamp' or "
                            f"'precedence', not {self.attributes!r}")
        if self.stitching not in ("graph", "none"):
            raise DataError(f"merge policy {self.name!r}: stitching must be 'graph' or "
                            f"'none', not {self.stitching!r}")
        if self.attributes == "precedence" and not self.order:
            raise DataError(f"merge policy {self.name!r}: a precedence policy needs the "
                            "datasets in order", hint='e.g. order = ["crm", "web"]')
        if len(set(self.order)) != len(self.order):
            raise DataError(f"merge policy {self.name!r} lists a dataset twice")

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> MergePolicy:
        """From a TOML table ``[merge_policies.NAME]``: ``attributes``, ``order``,
        ``stitching``."""
        extra = sorted(set(data) - {"attributes", "order", "stitching"})
        if extra:
            raise DataError(f"merge policy {name!r}: unknown key {extra[0]!r}",
                            hint="the keys are attributes, order and stitching")
        return cls(name, str(data.get("attributes", "timestamp")),
                   tuple(map(str, data.get("order", ()))), str(data.get("stitching", "graph")))


@dataclass
class Merged:
    """A person's attributes, and the fragment each came from."""

    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, Fragment] = field(default_factory=dict)


def merge(fragments: Iterable[Fragment], policy: MergePolicy) -> Merged:
    """The attributes ``policy`` gives the person whose fragments these are."""
    rank = {d: i for i, d in enumerate(policy.order)}
    if policy.attributes == "precedence":
        chosen = [f for f in fragments if f.dataset in rank]

        def key(f: Fragment) -> tuple[Any, ...]:
            return (rank[f.dataset], -f.updated, f.arrival)
    else:
        chosen = list(fragments)
        last = len(rank)

        def key(f: Fragment) -> tuple[Any, ...]:
            return (-f.updated, rank.get(f.dataset, last), f.arrival)
    out = Merged()
    for f in sorted(chosen, key=key):  # the winner first: later ones fill only the gaps
        for name, value in f.values.items():
            if value is not None and name not in out.values:
                out.values[name] = value
                out.sources[name] = f
    return out
