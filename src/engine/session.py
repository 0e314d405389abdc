"""`Engine`: define segments over a store, evaluate them at an instant, get bitmaps.

``eng.define(name, pql)`` checks the definition against the store's schema and compiles it
(errors, with positions, at once). ``eng.run(at=...)`` evaluates every segment at ``at`` in
dependency order (segments referring to others run after them, reading their bitmaps), one
fused kernel per level, and returns a `Result`: a `pyroaring.BitMap` of profile indices per
segment, the profile keys, counts, and what changed since the previous run.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
from pyroaring import BitMap

from engine import ir, vector
from engine.binding import bind
from engine.checker import check
from engine.codegen import CompileError, KernelSource, generate
from engine.errors import EngineError
from engine.kernels import Warmer, compile_kernel, is_ready, signature
from engine.passes import optimize
from store.bitmaps import masks_to_bitmaps
from store.profile_store import ProfileStore

__all__ = ["Engine", "Result"]

_CHUNK = 1 << 16  # profiles per work item
GROUP = 16  # segments per kernel at most
COMPILE_NOW = 2  # "auto" compiles at most this many kernels before answering


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
    tiers: dict[str, str] = field(default_factory=dict)  # "kernel" or "vector", per segment

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

    def __init__(self, store: ProfileStore, *, threads: int | None = None,
                 tier: str = "auto", background: bool | None = None) -> None:
        """``tier``: how segments whose kernels are not compiled yet are evaluated:

        * ``"auto"``: when at most `COMPILE_NOW` kernels are missing, compile them; when more
          are (hundreds of new shapes), evaluate with the vector tier (`engine.vector`, nothing
          to compile) and compile the kernels in the background for later runs;
        * ``"kernel"``: always compile first;
        * ``"vector"``: the vector tier for every segment it supports.

        ``background``: compile missing kernels in a worker process (``"auto"``/``"vector"``);
        by default unless the environment sets ``PQLITE_BACKGROUND=0``.
        """
        if tier not in ("auto", "kernel", "vector"):
            raise ValueError(f"tier must be 'auto', 'kernel' or 'vector', not {tier!r}")
        self.store = store
        self.threads = threads
        self.tier = tier
        if background is None:
            background = os.environ.get("PQLITE_BACKGROUND", "1") not in ("0", "")
        self.background = background
        self._segments: dict[str, _Segment] = {}
        self._bound: dict[Any, Any] = {}
        self._sources: dict[tuple[str, ...], KernelSource] = {}  # per group; reset by define
        self._last: Result | None = None
        self._warmer = Warmer()
        self._evaluator: tuple[int, vector.Evaluator] | None = None  # the run's

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

    def _threads(self) -> int:
        return self.threads or min(os.cpu_count() or 1, 8)

    def _execute(self, kernel: Any, n: int, now: np.int64, out: np.ndarray,
                 values: list[Any]) -> None:
        """Run ``kernel`` over all profiles in chunks on ``threads`` threads (no GIL held)."""
        threads = self._threads()
        if threads == 1 or n < 4 * _CHUNK:
            kernel(0, n, now, out, *values)
            return
        # Many more chunks than threads, so a chunk of heavy profiles does not leave the
        # other threads idle.
        bounds = [*range(0, n, _CHUNK), n]
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda k: kernel(bounds[k], bounds[k + 1], now, out, *values),
                          range(len(bounds) - 1)))

    def groups(self) -> list[list[str]]:
        """Segment names in the groups that share a kernel: by dependency level, in
        definition order, at most `GROUP` to a kernel (a kernel's compile time grows with
        its size; a group's source, and so its cache entry, stays the same as long as its
        own definitions do)."""
        return [names[k:k + GROUP] for names in self.levels()
                for k in range(0, len(names), GROUP)]

    def compile(self) -> None:
        """Compile every group's kernel now (into the cache directory), e.g. at deployment,
        so that runs never wait for the compiler nor use the vector tier."""
        now = np.int64(0)
        n = len(self.store)
        masks = {name: np.zeros(n, np.uint8) for name in self._segments}
        for names in self.groups():
            ks = self.source(names)
            kernel = compile_kernel(ks.source)
            values = bind(ks.args, self.store, 0, masks, self._bound)
            kernel(0, 0, now, np.zeros((len(names), 64), np.uint8), *values)

    @property
    def compiling(self) -> bool:
        """Whether a background worker is compiling kernels for later runs."""
        return self._warmer.busy

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the background compilation started by a run to finish; False if it is
        still going after ``timeout`` seconds."""
        return self._warmer.wait(timeout)

    def run(self, at: Any, progress: Callable[[int, int], None] | None = None) -> Result:
        """Evaluate every segment at instant ``at``; see `Result`. ``progress(done, total)``
        is called as segments are evaluated."""
        now_ms = to_epoch_ms(at)
        n = len(self.store)
        padded = -(-n // 64) * 64  # rows start 64-byte aligned, for the bitmap writer
        masks: dict[str, np.ndarray] = {}
        timings: dict[str, float] = {}
        tiers: dict[str, str] = {}
        groups = self.groups()
        missing = [g for g in groups if not is_ready(self.source(g).source)]
        vector_ok = self.tier == "vector" or (self.tier == "auto" and len(missing) > COMPILE_NOW)
        later: list[tuple[str, tuple[Any, ...]]] = []  # kernels to compile in the background
        total = len(self._segments)
        for names in groups:
            if progress is not None:
                progress(len(masks), total)
            ks = self.source(names)
            to_compile = names
            if self.tier == "vector" or (vector_ok and names in missing):
                to_compile = self._vector(names, now_ms, masks, timings, tiers)
                if len(to_compile) < len(names):
                    later.append((ks.source, ()))
                if not to_compile:
                    continue
                if len(to_compile) < len(names):
                    ks = self.source(to_compile)
            started = time.perf_counter()
            kernel = compile_kernel(ks.source)
            values = bind(ks.args, self.store, now_ms, masks, self._bound)
            out = np.zeros((len(to_compile), padded), np.uint8)
            self._execute(kernel, n, np.int64(now_ms), out, values)
            elapsed = (time.perf_counter() - started) * 1e3
            for k, name in enumerate(to_compile):
                masks[name] = out[k, :n]
                timings[name] = elapsed / len(to_compile)
                tiers[name] = "kernel"
        if progress is not None:
            progress(total, total)
        self._evaluator = None  # its shared event queries are for this run only
        if later and self.background:
            self._warm_later([src for src, _ in later], masks, now_ms)
        started = time.perf_counter()
        names = list(self._segments)
        maps = masks_to_bitmaps([masks[name] for name in names], self._threads())
        bitmaps = dict(zip(names, maps, strict=True))
        share = (time.perf_counter() - started) * 1e3 / max(len(names), 1)
        for name in names:
            timings[name] += share
        if self._last is not None:
            self._last.previous = None  # keep one run back, not the whole history
        result = Result(now_ms, bitmaps, self.store.keys, timings, self._last, tiers)
        self._last = result
        return result

    def _vector(self, names: list[str], now_ms: int, masks: dict[str, np.ndarray],
                timings: dict[str, float], tiers: dict[str, str]) -> list[str]:
        """Evaluate what the vector tier supports of ``names`` (on ``threads`` threads:
        numpy and the tier's loops release the GIL); return the rest."""
        n = len(self.store)
        if self._evaluator is None or self._evaluator[0] != now_ms:
            self._evaluator = (now_ms, vector.Evaluator(self.store, now_ms, masks))
        evaluate = self._evaluator[1]

        def one(name: str) -> tuple[str, np.ndarray | None, float]:
            started = time.perf_counter()
            try:
                mask = evaluate(self._segments[name].expr)
            except vector.Unsupported:
                return name, None, 0.0
            row = np.zeros(-(-n // 64) * 64, np.uint8)[:n]  # aligned, for the bitmap writer
            row[:] = mask
            return name, row, (time.perf_counter() - started) * 1e3

        todo = [name for name in names if vector.supports(self._segments[name].expr, self.store)]
        threads = self._threads()
        if threads > 1 and len(todo) > 1:
            with ThreadPoolExecutor(threads) as pool:
                done = list(pool.map(one, todo))
        else:
            done = [one(name) for name in todo]
        for name, row, elapsed in done:
            if row is not None:
                masks[name] = row
                timings[name] = elapsed
                tiers[name] = "vector"
        return [name for name in names if name not in tiers]

    def _warm_later(self, sources: list[str], masks: dict[str, np.ndarray], now_ms: int) -> None:
        """Start compiling ``sources`` in the background (one worker at a time)."""
        jobs = []
        n = len(self.store)
        for src in sources:
            ks = next(k for k in self._sources.values() if k.source == src)
            values = bind(ks.args, self.store, now_ms, masks, self._bound)
            out = np.zeros((len(ks.segments), 64), np.uint8)
            jobs.append((src, signature([0, n, np.int64(now_ms), out, *values])))
        self._warmer.start(jobs)


def define_all(engine: Engine, definitions: Mapping[str, str]) -> None:
    for name, text in definitions.items():
        engine.define(name, text)


_ = CompileError
