"""`Engine`: define segments over a store, evaluate them at an instant, get bitmaps.

``eng.define(name, pql)`` checks the definition against the store's schema and compiles it
(errors, with positions, at once). ``eng.run(at=...)`` evaluates every segment at ``at`` in
dependency order (segments referring to others run after them, reading their bitmaps), one
fused kernel per level, and returns a `Result`: a `pyroaring.BitMap` of profile indices per
segment, the profile keys, counts, and what changed since the previous run.
"""

from __future__ import annotations

import array
import datetime as dt
import os
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
from pyroaring import BitMap

from engine import ir
from engine.binding import bind
from engine.checker import check
from engine.codegen import CompileError, KernelSource, generate
from engine.errors import EngineError
from engine.kernels import compile_kernel
from engine.passes import optimize
from engine.runtime import mask_to_ids
from store.profile_store import ProfileStore

__all__ = ["Engine", "Result"]

_CHUNK = 1 << 16  # profiles per work item


def to_epoch_ms(at: Any) -> int:
    """An instant as int milliseconds UTC: datetime (naive = UTC), ISO text, datetime64, int."""
    if isinstance(at, bool):
        raise TypeError("an instant cannot be a bool")
    if isinstance(at, int | np.integer):
        return int(at)
    if isinstance(at, np.datetime64):
        return int(at.astype("datetime64[ms]").astype(np.int64))
    if isinstance(at, str):
        text = at.strip().replace("Z", "+00:00").replace("z", "+00:00")
        try:
            at = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{at!r} is not an ISO 8601 instant "
                             "(e.g. 2025-01-01T00:00:00Z)") from None
    if isinstance(at, dt.datetime):
        if at.tzinfo is None:
            at = at.replace(tzinfo=dt.UTC)
        delta = at - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        return int(delta // dt.timedelta(milliseconds=1))
    if isinstance(at, dt.date):
        return (at - dt.date(1970, 1, 1)).days * 86_400_000
    raise TypeError(f"cannot read {type(at).__name__} as an instant")


def mask_to_bitmap(mask: np.ndarray) -> BitMap:
    """Profile indices where ``mask`` is set, via pyroaring's bulk path (uint32 array)."""
    ids = mask_to_ids(mask)
    return BitMap(array.array("I", ids.tobytes()))


@dataclass
class _Segment:
    name: str
    text: str
    expr: ir.Expr
    refs: frozenset[str]


@dataclass
class Result:
    """Memberships of every segment at one instant (profile indices of the store)."""

    at_ms: int
    bitmaps: dict[str, BitMap]
    keys: pa.Array
    timings_ms: dict[str, float] = field(default_factory=dict)
    previous: Result | None = None

    def __getitem__(self, name: str) -> BitMap:
        return self.bitmaps[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.bitmaps)

    def __len__(self) -> int:
        return len(self.bitmaps)

    def count(self, name: str) -> int:
        return len(self.bitmaps[name])

    def ids(self, name: str) -> pa.Array:
        """The profile keys of the members, in index order."""
        members = np.fromiter(self.bitmaps[name], np.int64, len(self.bitmaps[name]))
        return self.keys.take(pa.array(members))

    def _before(self, name: str) -> BitMap:
        if self.previous is None or name not in self.previous.bitmaps:
            return BitMap()
        return self.previous.bitmaps[name]

    def realized(self, name: str) -> BitMap:
        """Members now that were not members at the previous run (entered)."""
        return self.bitmaps[name] - self._before(name)

    def existing(self, name: str) -> BitMap:
        """Members at both runs."""
        return self.bitmaps[name] & self._before(name)

    def exited(self, name: str) -> BitMap:
        """Members at the previous run that are members no longer."""
        return self._before(name) - self.bitmaps[name]


class Engine:
    """Segments defined over one `ProfileStore`, evaluated together."""

    def __init__(self, store: ProfileStore, *, threads: int | None = None) -> None:
        self.store = store
        self.threads = threads
        self._segments: dict[str, _Segment] = {}
        self._bound: dict[Any, Any] = {}
        self._sources: dict[tuple[str, ...], KernelSource] = {}  # per level; reset by define
        self._last: Result | None = None

    @property
    def names(self) -> list[str]:
        return list(self._segments)

    def define(self, name: str, pql: str) -> None:
        """Check and compile ``pql`` as segment ``name`` (replacing an earlier definition).

        Raises the checker's `engine.SegmentError` (with positions) or a `CompileError`.
        """
        expr = optimize(check(pql, self.store.schema))
        refs = frozenset(n.name for n in ir.walk(expr) if isinstance(n, ir.SegmentRef))
        generate({name: expr}, self.store)  # raises CompileError for what cannot run yet
        self._segments[name] = _Segment(name, pql, expr, refs)
        self._sources.clear()

    def levels(self) -> list[list[str]]:
        """Segment names by dependency level (level 0 refers to no segment)."""
        level: dict[str, int] = {}

        def visit(name: str, path: tuple[str, ...]) -> int:
            if name in path:
                cycle = " → ".join((*path[path.index(name):], name))
                raise EngineError(f"segments refer to each other in a cycle: {cycle}")
            if name not in self._segments:
                via = " → ".join((*path, name))
                raise EngineError(f"segment {name!r} is not defined (referred to by {via})")
            if name not in level:
                refs = self._segments[name].refs
                level[name] = 1 + max((visit(r, (*path, name)) for r in refs), default=-1)
            return level[name]

        for name in self._segments:
            visit(name, ())
        out: list[list[str]] = [[] for _ in range(1 + max(level.values(), default=-1))]
        for name in self._segments:
            out[level[name]].append(name)
        return out

    def source(self, names: list[str]) -> KernelSource:
        """The kernel source of a group of segments (generated once per definitions)."""
        key = tuple(names)
        if key not in self._sources:
            self._sources[key] = generate({n: self._segments[n].expr for n in names}, self.store)
        return self._sources[key]

    def _execute(self, kernel: Any, n: int, now: np.int64, out: np.ndarray,
                 values: list[Any]) -> None:
        """Run ``kernel`` over all profiles in chunks on ``threads`` threads (no GIL held)."""
        threads = self.threads or min(os.cpu_count() or 1, 8)
        if threads == 1 or n < 4 * _CHUNK:
            kernel(0, n, now, out, *values)
            return
        # Many more chunks than threads, so a chunk of heavy profiles does not leave the
        # other threads idle.
        bounds = [*range(0, n, _CHUNK), n]
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda k: kernel(bounds[k], bounds[k + 1], now, out, *values),
                          range(len(bounds) - 1)))

    def run(self, at: Any) -> Result:
        """Evaluate every segment at instant ``at``; see `Result`."""
        now_ms = to_epoch_ms(at)
        n = len(self.store)
        masks: dict[str, np.ndarray] = {}
        bitmaps: dict[str, BitMap] = {}
        timings: dict[str, float] = {}
        for names in self.levels():
            started = time.perf_counter()
            ks = self.source(names)
            kernel = compile_kernel(ks.source)
            values = bind(ks.args, self.store, now_ms, masks, self._bound)
            out = np.zeros((len(names), n), np.uint8)
            self._execute(kernel, n, np.int64(now_ms), out, values)
            for k, name in enumerate(names):
                masks[name] = out[k]
                bitmaps[name] = mask_to_bitmap(out[k])
            elapsed = (time.perf_counter() - started) * 1e3
            for name in names:
                timings[name] = elapsed / len(names)
        if self._last is not None:
            self._last.previous = None  # keep one run back, not the whole history
        result = Result(now_ms, {name: bitmaps[name] for name in self._segments},
                        self.store.keys, timings, self._last)
        self._last = result
        return result


def define_all(engine: Engine, definitions: Mapping[str, str]) -> None:
    for name, text in definitions.items():
        engine.define(name, text)


_ = CompileError
