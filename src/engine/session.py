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
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
from pyroaring import BitMap

from engine import ir, vector
from engine.analysis import Analysis, analyze, history
from engine.binding import OneBinder, bind
from engine.checker import check
from engine.codegen import CompileError, KernelSource, Shape, assemble, shape_of
from engine.errors import EngineError
from engine.kernels import Warmer, compile_kernel, is_ready, signature
from engine.passes import optimize
from store.bitmaps import masks_to_bitmaps
from store.layout import Layout, layout
from store.one_profile import OneProfile
from store.profile_store import ProfileStore
from store.subset import Since

if TYPE_CHECKING:
    from engine.stitch_stream import StitchingSession
    from engine.stream import StreamSession
    from store.stitching import Stitched

__all__ = ["Engine", "Result"]

_CHUNK = 1 << 16  # profiles per work item, at least
_KEEP = 256 << 20  # bytes of a run's kernel output buffer kept for the next run, at most
_ITEMS = 8  # work items per thread, at most
GROUP = 16  # distinct shapes per kernel at most (each with any number of instances)
COMPILE_NOW = 2  # "auto" compiles at most this many kernels before answering
_EARLIEST = int(np.iinfo(np.int64).min)  # a time limit every event meets


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
    shape: Shape  # its kernel body; definitions differing only in literals share one
    facts: Analysis


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
        self._store_layout: Layout | None = None
        self._other_sources: dict[Any, KernelSource] = {}
        self._binders: dict[tuple[str, ...], tuple[KernelSource, Any, OneBinder]] = {}
        self._one: tuple[OneProfile | None] | None = None  # by `_one_profile`; reset by define
        self._bound_to: Any = None  # the store's arrays everything bound was made for
        self._groups: list[list[str]] | None = None  # by `groups`; reset by define
        self._levels: list[list[str]] | None = None  # by `levels`; reset by define
        self._shared_bound: dict[Any, Any] = {}  # bound values no store changes (binding)
        self._reach: dict[frozenset[str], dict[str | None, int | None]] = {}  # by `history`
        self._spare: np.ndarray | None = None  # the last run's kernel output buffer

    @property
    def names(self) -> list[str]:
        return list(self._segments)

    def define(self, name: str, pql: str) -> None:
        """Check and compile ``pql`` as segment ``name`` (replacing an earlier definition).

        Raises the checker's `engine.SegmentError` (with positions) or a `CompileError`.
        """
        expr = optimize(check(pql, self.store.schema))
        refs = frozenset(n.name for n in ir.walk(expr) if isinstance(n, ir.SegmentRef))
        shape = shape_of(expr, self.store)  # raises CompileError for what cannot run yet
        facts = analyze(expr, self.store.schema)
        self._segments[name] = _Segment(name, pql, expr, refs, shape, facts)
        self._sources.clear()
        self._other_sources.clear()
        self._binders.clear()
        self._one = None
        self._groups = None
        self._levels = None
        self._reach.clear()

    def levels(self) -> list[list[str]]:
        """Segment names by dependency level (level 0 refers to no segment)."""
        if self._levels is None:
            self._levels = self._leveled()
        return [list(names) for names in self._levels]

    def _leveled(self) -> list[list[str]]:
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
        """The kernel source of a group of segments (assembled once per definitions); its
        ``segments`` say which row of the kernel's output each segment is."""
        key = tuple(names)
        if key not in self._sources:
            self._sources[key] = assemble({n: self._segments[n].shape for n in names})
        return self._sources[key]

    def thread_count(self) -> int:
        """The threads runs use: ``threads``, or the CPUs (at most 8)."""
        return self.threads or min(os.cpu_count() or 1, 8)

    def _execute(self, kernel: Any, n: int, now: np.int64, out: np.ndarray,
                 values: list[Any]) -> None:
        """Run ``kernel`` over all profiles in chunks on ``threads`` threads (no GIL held)."""
        threads = self.thread_count()
        if threads == 1 or n < 4 * _CHUNK:
            kernel(0, n, now, out, *values)
            return
        # More chunks than threads, so a chunk of heavy profiles does not leave the other
        # threads idle; but few: each call takes the GIL to start, and threads waiting for
        # it cost more than the calls (B10's S1 at 10M profiles: 26 ms in chunks of 16Ki
        # profiles, 11 ms in chunks of 64Ki, 8 ms in 16 chunks).
        size = max(_CHUNK, -(-n // (threads * _ITEMS * 64)) * 64)
        bounds = [*range(0, n, size), n]
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda k: kernel(bounds[k], bounds[k + 1], now, out, *values),
                          range(len(bounds) - 1)))

    def groups(self) -> list[list[str]]:
        """Segment names in the groups that share a kernel: by dependency level, the
        instances of a shape together, at most `GROUP` shapes to a kernel in order of first
        definition (a kernel's compile time grows with its shapes, not its instances; its
        source, and so its cache entry, stays the same as long as its shapes do)."""
        if self._groups is not None:
            return self._groups
        out: list[list[str]] = []
        for names in self.levels():
            by_shape: dict[str, list[str]] = {}
            for name in names:
                by_shape.setdefault(self._segments[name].shape.key, []).append(name)
            shapes = list(by_shape.values())
            out.extend([n for same in shapes[k:k + GROUP] for n in same]
                       for k in range(0, len(shapes), GROUP))
        self._groups = out
        return out

    def compile(self) -> None:
        """Compile every group's kernel now (into the cache directory), e.g. at deployment,
        so that runs never wait for the compiler nor use the vector tier."""
        self._unbind_if_compacted()
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
        self._unbind_if_compacted()
        n = len(self.store)
        padded = -(-n // 64) * 64  # rows start 64-byte aligned, for the bitmap writer
        masks: dict[str, np.ndarray] = {}
        timings: dict[str, float] = {}
        tiers: dict[str, str] = {}
        groups = self.groups()
        missing = [g for g in groups if not is_ready(self.source(g).source)]
        vector_ok = self.tier == "vector" or (self.tier == "auto" and len(missing) > COMPILE_NOW)
        later: list[tuple[str, tuple[Any, ...]]] = []  # kernels to compile in the background
        maps: dict[str, BitMap] = {}
        read = self._referenced()  # masks kept for the kernels that read them
        # One output buffer for every kernel, each group's rows made bitmaps at once: the
        # run holds one group's masks, not every segment's (1,000 definitions at 10M
        # profiles would be 10 GB), and the last run's buffer is reused when it is small
        # enough to keep (pages not faulted in afresh: 8% of B10's run).
        buffer, self._spare = self._spare, None
        total = len(self._segments)
        for names in groups:
            if progress is not None:
                progress(len(timings), total)
            ks = self.source(names)
            to_compile = names
            if self.tier == "vector" or (vector_ok and names in missing):
                to_compile = self._vector(names, now_ms, masks, timings, tiers)
                if len(to_compile) < len(names):
                    later.append((ks.source, ()))
                    self._bitmaps([x for x in names if x not in to_compile], masks, maps,
                                  timings, keep=read)
                if not to_compile:
                    continue
                if len(to_compile) < len(names):
                    ks = self.source(to_compile)
            started = time.perf_counter()
            kernel = compile_kernel(ks.source)
            values = bind(ks.args, self.store, now_ms, masks, self._bound)
            rows = len(ks.segments)
            if buffer is None or buffer.shape[0] < rows or buffer.shape[1] != padded:
                buffer = np.empty((rows, padded), np.uint8)  # the kernel writes every row
            out = buffer[:rows]
            self._execute(kernel, n, np.int64(now_ms), out, values)
            maps.update(zip(ks.segments, masks_to_bitmaps(out, self.thread_count(), n),
                            strict=True))
            elapsed = (time.perf_counter() - started) * 1e3
            for k, name in enumerate(ks.segments):
                if name in read:
                    masks[name] = out[k, :n].copy()
                timings[name] = elapsed / rows
                tiers[name] = "kernel"
        if progress is not None:
            progress(total, total)
        self._evaluator = None  # its shared event queries are for this run only
        if later and self.background:
            self._warm_later([src for src, _ in later], masks, now_ms)
        bitmaps = {name: maps[name] for name in self._segments}
        if buffer is not None and buffer.nbytes <= _KEEP:
            self._spare = buffer
        if self._last is not None:
            self._last.previous = None  # keep one run back, not the whole history
        result = Result(now_ms, bitmaps, self.store.keys, timings, self._last, tiers)
        self._last = result
        return result

    # ------------------------------------------------------------ small stores

    def expr(self, name: str) -> ir.Expr:
        """The optimized IR of segment ``name``."""
        return self._segments[name].expr

    def analysis(self, name: str) -> Analysis:
        """What segment ``name`` reads and how far back (`engine.analyze`, made at define)."""
        return self._segments[name].facts

    def levels_flat(self) -> list[str]:
        """Segment names, referenced segments before their referrers."""
        return [name for level in self.levels() for name in level]

    def evaluate_subset(self, store: ProfileStore, names: list[str], at: Any,
                        masks: dict[str, np.ndarray] | None = None,
                        profiles: np.ndarray | None = None, *,
                        gates: np.ndarray | None = None,
                        gate_masks: Mapping[str, int] | None = None) -> dict[str, np.ndarray]:
        """Evaluate ``names`` (and the rest of their kernel groups) over a small store of the
        same schema, e.g. `store.subset`'s, with the batch kernels: the same machine code
        when its layout is the engine store's, else kernels for its layout.

        ``at``: one instant for every profile; or, for a timeline (`engine.codegen.assemble`),
        an int64 array of instants, a row each, with ``profiles`` the profile of each row
        (default: each profile once, in order), so one profile can be evaluated at many
        instants in one call. ``masks`` holds the values of referenced segments that are not
        evaluated (a byte per profile, or per row on a timeline); the result adds a row per
        evaluated segment.

        On a timeline, ``gates`` (a bit mask per row) and ``gate_masks`` (per segment; -1,
        every bit, for those left out) gate the evaluation (`engine.codegen.assemble`): a
        segment whose mask shares no bit with a row's gate is not evaluated there, and is 2
        ("as on the profile's row before"). Default: everything evaluated."""
        self._unbind_if_compacted()
        timeline = isinstance(at, np.ndarray)
        if timeline:
            who = np.arange(len(store)) if profiles is None else profiles
            rows = np.empty((len(at), 3), np.int64)  # (instant, profile, gate): the kernel's nows
            rows[:, 0], rows[:, 1] = at, who
            rows[:, 2] = -1 if gates is None else gates
            now: Any = rows
            n = len(rows)
        else:
            now = np.int64(to_epoch_ms(at))
            n = len(store)
        out = dict(masks or {})
        wanted = set(names)
        referenced = self._referenced() if gate_masks is not None else set()
        row_gates = None if gates is None else np.ascontiguousarray(gates, np.int64)
        same = store is self.store or layout(store) == self._layout()
        cache: dict[Any, Any] = {}
        for group in self.groups():
            if wanted.isdisjoint(group):
                continue
            if same and not timeline:
                ks = self.source(group)
            else:
                ks = self._source_for(None if same else store, group, timeline)
            kernel = compile_kernel(ks.source)
            if len(self._shared_bound) > 50_000:
                self._shared_bound.clear()
            gating = None
            if timeline:  # (segments others read are never gated: they read whole rows)
                mask_of = {name: -1 if gate_masks is None or name in referenced
                           else gate_masks.get(name, -1) for name in ks.segments}
                gmask = np.array([mask_of[name] for name in ks.segments], np.int64)
                if row_gates is not None:
                    gating = (row_gates, {arg: np.array([mask_of[s] for s in owners], np.int64)
                                          for arg, owners in ks.windows.items()})
            values = bind(ks.args, store, now[:, 0].copy() if timeline else int(now), out, cache,
                          shared=self._shared_bound, gating=gating)
            result = np.full((len(group), max(n, 1)), 2 if timeline else 0, np.uint8)
            if timeline:  # (not threaded: on two threads B10's day of rows took 0.24 s, not 0.25)
                kernel(0, n, now, result, gmask, *values)
            else:  # (a midnight's re-evaluation of every profile: as a batch run)
                self._execute(kernel, n, now, result, values)
            for k, name in enumerate(ks.segments):
                out[name] = result[k, :n]
        return out

    def evaluate_one(self, profile: int, parts: Mapping[Any, Any], names: list[str], at: int,
                     masks: Mapping[str, np.ndarray], *,
                     binders: Mapping[tuple[str, ...], tuple[KernelSource, Any, OneBinder]]
                     | None = None) -> dict[str, int]:
        """`evaluate_subset` at one instant for one base profile whose event views are
        ``parts`` (`store.one_profile`: coded in this store's dictionaries): the same
        kernels, bound by a `OneBinder` made once per group, so a call costs the kernels and
        little more. ``masks`` must hold every referenced segment that is not evaluated;
        ``binders``: those the views were taken with (by group, as `one_binder` gives
        them; default the engine's now). Returns the value (0 or 1) of ``names`` and the rest of their groups."""
        segments = dict(masks)
        values: dict[str, int] = {}
        wanted = set(names)
        now = np.int64(at)
        for group in self.groups():
            if wanted.isdisjoint(group):
                continue
            ks, kernel, binder = (self.one_binder(group) if binders is None
                                  else binders[tuple(group)])
            result = np.zeros((len(group), 1), np.uint8)
            kernel(0, 1, now, result, *binder(profile, parts, at, segments))
            values.update(zip(ks.segments, result[:, 0].tolist(), strict=True))
            for k in binder.referenced:  # what later groups read
                segments[ks.segments[k]] = result[k]
        return values

    def one_binder(self, group: list[str]) -> tuple[KernelSource, Any, OneBinder]:
        """The kernel of ``group`` and its `OneBinder` (raises `CompileError` if the
        one-profile path cannot bind it)."""
        self._unbind_if_compacted()
        key = tuple(group)
        hit = self._binders.get(key)
        if hit is None:
            ks = self.source(group)
            binder = OneBinder(ks.args, self.store)
            referenced = self._referenced()
            binder.referenced = [k for k, n in enumerate(ks.segments) if n in referenced]
            hit = self._binders[key] = (ks, compile_kernel(ks.source), binder)
        return hit

    def history(self, names: Iterable[str], at: int) -> Since:
        """The events a small store must keep so that ``names`` and the rest of their kernel
        groups (`evaluate_subset` runs whole groups) evaluate as on the whole history at
        ``at`` and later: per event type, those within the definitions' look-back before
        ``at`` (`engine.analysis.history`); types none of them reads are left out."""
        wanted = frozenset(names)
        reach = self._reach.get(wanted)
        if reach is None:
            members = [n for g in self.groups() if not wanted.isdisjoint(g) for n in g]
            reach = self._reach[wanted] = history(self._segments[n].facts for n in members)
        # 1 ms to spare: a bound is exact, but nothing is lost by keeping one more instant.
        return {t: _EARLIEST if ms is None else at - ms - 1 for t, ms in reach.items()}

    def _layout(self) -> Layout:
        if self._store_layout is None:
            self._store_layout = layout(self.store)
        return self._store_layout

    def _source_for(self, other: ProfileStore | None, group: list[str], timeline: bool
                    ) -> KernelSource:
        """The kernel of ``group`` for a store of another layout (a subset widened by new
        data; None: the engine's layout), or on a timeline."""
        key = (None if other is None else layout(other), tuple(group), timeline)
        if key not in self._other_sources:
            if other is None:
                shapes = {n: self._segments[n].shape for n in group}
            else:
                shapes = {n: shape_of(self._segments[n].expr, other) for n in group}
            self._other_sources[key] = assemble(shapes, timeline=timeline)
        return self._other_sources[key]

    def evaluate_profile(self, key: Any, at: Any) -> list[str]:
        """The segments profile ``key`` is in at ``at`` (edge evaluation: one profile, the
        batch kernels, no session). An unknown key is a profile with no data."""
        index = self.store.index_of([key])
        names = self.levels_flat()
        at_ms = to_epoch_ms(at)
        one = self._one_profile() if index[0] >= 0 and not self.store.delta else None
        if one is not None:  # a base profile's views, the kernels bound once: no subset
            p = int(index[0])
            values = self.evaluate_one(p, one.parts(p, self.history(names, at_ms)), names,
                                       at_ms, {})
            return [name for name in self._segments if values[name]]
        if index[0] >= 0:
            sub = self.store.subset(index, since=self.history(names, at_ms))
        else:
            keys = pa.array([key], self.store.keys.type)
            sub = self.store.subset([], attributes=pa.table({self._key_name(): keys}))
        masks = self.evaluate_subset(sub.store, names, at)
        return [name for name in self._segments if masks[name][0]]

    def _referenced(self) -> set[str]:
        """The segments some definition reads through ``inSegment``."""
        return {r for seg in self._segments.values() for r in seg.refs}

    def _unbind_if_compacted(self) -> None:
        """Start over from the definitions if the store's arrays changed (`ProfileStore.
        compact` in memory adopts new ones): every kernel shape, bound array and view was
        made for the old ones, and a kernel reading them with the new sizes would read past
        their ends."""
        arrays = (self.store.keys, self.store.profiles, self.store.events)
        if self._bound_to is None or any(a is not b for a, b in zip(
                arrays, self._bound_to, strict=True)):
            if self._bound_to is not None:
                for name, segment in list(self._segments.items()):
                    self.define(name, segment.text)
                self._bound.clear()
                self._store_layout = None
                self._evaluator = None
            self._binders.clear()
            self._one = None
            self._bound_to = arrays

    def _one_profile(self) -> OneProfile | None:
        """The base profiles' event views every kernel reads (`store.one_profile`), for
        edge evaluation; None if some kernel cannot be bound on them."""
        self._unbind_if_compacted()
        if self._one is None:
            try:
                views = {key for group in self.groups()
                         for key in self.one_binder(group)[2].views}
                one: OneProfile | None = OneProfile(self.store, sorted(views, key=repr))
            except CompileError:
                one = None
            self._one = (one if one is not None and one.usable else None,)
        return self._one[0]

    def _key_name(self) -> str:
        name = self.store.schema.profile_key
        assert name is not None
        return name

    def stream(self, at: Any, **options: Any) -> StreamSession:
        """A streaming session starting at ``at`` (`engine.stream.StreamSession`)."""
        from engine.stream import StreamSession

        return StreamSession(self, at, **options)

    def stitching(self, people: Stitched, at: Any, **options: Any) -> StitchingSession:
        """A streaming session over ``people`` (the batch stitch this engine's store came
        from), taking records that carry identities (`engine.stitch_stream`)."""
        from engine.stitch_stream import StitchingSession

        return StitchingSession(self, people, at, **options)

    def _bitmaps(self, names: list[str], masks: dict[str, np.ndarray], maps: dict[str, BitMap],
                 timings: dict[str, float], *, keep: set[str]) -> None:
        """The vector tier's ``masks`` of ``names`` made bitmaps in ``maps`` at once (their
        share of the time added to ``timings``), and dropped unless a later group reads them
        (``keep``): 1,000 definitions at 1M profiles held a gigabyte of masks."""
        started = time.perf_counter()
        maps.update(zip(names, masks_to_bitmaps([masks[x] for x in names], self.thread_count()),
                        strict=True))
        share = (time.perf_counter() - started) * 1e3 / max(len(names), 1)
        for name in names:
            timings[name] += share
            if name not in keep:
                del masks[name]

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
        threads = self.thread_count()
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
