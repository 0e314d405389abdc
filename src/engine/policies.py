"""Segments under several merge policies: each evaluates over the people its policy makes.

A merge policy (`store.merging.MergePolicy`) decides who a person is (identity stitching on
or off) and which attribute value wins (the latest, or by dataset precedence). Several
coexist: a segment for email may trust the CRM first while one for the web trusts the
latest click. pqlite builds the people once per policy (`store.stitching.stitch_policies`,
a store each), and `Policies` keeps an `Engine` per store: a segment is defined under the
policy it names (``merge_policy`` in a segments file) or else the default, and `run`
evaluates every engine at one instant. Results name people by their person keys
(``crm_id:42``), the same under every policy that stitches alike.

A segment may refer (``inSegment``) only to segments under its own policy: under another,
the same records may make other people.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from engine import ir
from engine.errors import EngineError
from engine.parser import parse
from engine.session import Engine, Result, to_epoch_ms
from store.profile_store import ProfileStore
from store.stitching import Stitched

__all__ = ["Policies", "PolicyError", "PolicyResult"]


class PolicyError(EngineError, ValueError):
    """A segment under a policy that does not exist, or referring across policies."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message, self.hint = message, hint
        super().__init__(message + (f"\nhint: {hint}" if hint else ""))


@dataclass
class PolicyResult:
    """Every segment's members at one instant, each under its policy."""

    at_ms: int
    results: dict[str, Result]  # by policy
    policy_of: dict[str, str]  # segment -> its policy

    def __iter__(self) -> Iterator[str]:
        return iter(self.policy_of)

    def result(self, name: str) -> Result:
        """The run of segment ``name``'s policy (bitmaps index that policy's store)."""
        return self.results[self.policy_of[name]]

    def ids(self, name: str) -> pa.Array:
        """The person keys of segment ``name``'s members."""
        return self.result(name).ids(name)

    def count(self, name: str) -> int:
        return self.result(name).count(name)


class Policies:
    """One engine per merge policy's store (see the module docstring)."""

    def __init__(self, stores: Mapping[str, ProfileStore], default: str | None = None,
                 **engine_options: Any) -> None:
        if not stores:
            raise PolicyError("no merge policies: give a store per policy")
        self.default = default if default is not None else next(iter(stores))
        if self.default not in stores:
            raise PolicyError(f"the default policy {self.default!r} has no store",
                              hint=f"policies: {', '.join(stores)}")
        self.engines = {name: Engine(store, **engine_options) for name, store in stores.items()}
        self._policy_of: dict[str, str] = {}

    @classmethod
    def of(cls, people: Mapping[str, Stitched], default: str | None = None,
           **engine_options: Any) -> Policies:
        """From `store.stitching.stitch_policies`' result (default: its first policy)."""
        return cls({name: p.store for name, p in people.items()}, default, **engine_options)

    @property
    def names(self) -> list[str]:
        return list(self._policy_of)

    def policy_of(self, name: str) -> str:
        return self._policy_of[name]

    def define(self, name: str, pql: str, merge_policy: str | None = None) -> None:
        """Define segment ``name`` under ``merge_policy`` (default: the default policy)."""
        policy = self.default if merge_policy is None else merge_policy
        if policy not in self.engines:
            raise PolicyError(f"segment {name!r}: no merge policy {policy!r}",
                              hint=f"the policies: {', '.join(self.engines)}")
        if self._policy_of.get(name, policy) != policy:
            raise PolicyError(f"segment {name!r} is already defined under merge policy "
                              f"{self._policy_of[name]!r}", hint="segment names are global")
        for node in ir.walk(parse(pql)):
            ref = node.name if isinstance(node, ir.SegmentRef) else None
            if ref is not None and self._policy_of.get(ref, policy) != policy:
                raise PolicyError(
                    f"segment {name!r} (merge policy {policy!r}) refers to {ref!r}, which is "
                    f"under merge policy {self._policy_of[ref]!r}",
                    hint="a segment may refer only to segments under its own policy")
        self.engines[policy].define(name, pql)
        self._policy_of[name] = policy

    def run(self, at: Any) -> PolicyResult:
        """Every engine that has segments, at instant ``at``."""
        at_ms = to_epoch_ms(at)
        used = dict.fromkeys(self._policy_of.values())
        return PolicyResult(at_ms, {p: self.engines[p].run(at_ms) for p in used},
                            dict(self._policy_of))
