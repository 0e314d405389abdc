"""``pqlite bench``: how fast pqlite is here, on your store or the demo's, in a minute.

Three measurements, each repeated and reported as median (min–max), cold apart from warm:

* **batch**: the segments evaluated over every profile (`Engine.run`): the first run of the
  process (compiling kernels or loading them from the cache) and then warm runs, in
  profiles per second;
* **stream**: live events (`store.synth.live_events`, on a B10 store; else the store's own
  latest events replayed) ingested by a streaming session in calls of ``--batch`` events,
  in events per second;
* **edge**: `Engine.evaluate_profile` for random profiles, p50 and p99 in milliseconds.

The benchmark harness proper, with DuckDB, Polars and hand-written Numba baselines measured
in the same run, is ``benches/`` in a source checkout (docs/engine.md); this command is the
quick check of a machine or a store.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["add_commands"]


def add_commands(sub: Any) -> None:
    bench = sub.add_parser(
        "bench",
        help="measure batch, streaming and edge speed on a store (default: the demo's)",
        description="Evaluate segments over a store in batch (cold, then warm runs), stream "
        "live events through a session, and evaluate single profiles; print medians with "
        "min-max (see docs/cli.md). The baselines harness is benches/ in a source checkout.",
    )
    bench.add_argument("store", type=Path, nargs="?",
                       help="profile store directory (default: the demo store)")
    bench.add_argument("--segments", type=Path, metavar="FILE",
                       help="segments file (default: examples/segments.toml, for B10 stores)")
    bench.add_argument("--at", help="evaluation instant, ISO 8601 (default: B10's, "
                                    "2025-01-01T00:00:00Z)")
    bench.add_argument("--profiles", type=int, default=None, metavar="N",
                       help="without STORE: profiles of the demo store (default 200,000)")
    bench.add_argument("--rounds", type=int, default=5, help="warm rounds (default 5)")
    bench.add_argument("--events", type=int, default=20_000,
                       help="events to stream (default 20,000)")
    bench.add_argument("--batch", type=int, default=1000,
                       help="events per ingest call (default 1,000)")
    bench.add_argument("--threads", type=int, help="threads for batch runs")
    bench.add_argument("--json", action="store_true", help="print the figures as JSON")
    bench.set_defaults(run=_bench)


def _bench(args: argparse.Namespace) -> int:
    from engine.cli import UsageError
    from engine.cli_demo import DEMO_PROFILES, demo_store, example_segments
    from engine.cli_run import _engine
    from engine.cli_stream import _instant
    from store import ProfileStore
    from store.synth import B10_NOW_MS

    if args.rounds < 1 or args.events < 0 or args.batch < 1:
        raise UsageError("--rounds and --batch must be positive, --events 0 or more")
    at = B10_NOW_MS if args.at is None else _instant(args.at, "--at")
    if args.store is None:
        st, path, _ = demo_store(None, args.profiles or DEMO_PROFILES)
    else:
        st, path = ProfileStore.open(args.store), args.store
    eng, _, code = _engine(argparse.Namespace(
        file=args.segments or example_segments(), threads=args.threads, tier="kernel"), st)
    if code:
        return code
    report: dict[str, Any] = {"store": str(path), "profiles": len(st),
                              "events": len(st.events), "segments": len(eng.names)}
    report["batch"] = _batch(eng, at, args.rounds)
    if args.events:
        report["stream"] = _stream(eng, at, args.events, args.batch)
    report["edge"] = _edge(eng, at)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        _show(report)
    return 0


def _batch(eng: Any, at: int, rounds: int) -> dict[str, Any]:
    started = time.perf_counter()
    eng.run(at)
    first = time.perf_counter() - started
    warm = []
    for _ in range(rounds):
        started = time.perf_counter()
        eng.run(at)
        warm.append(time.perf_counter() - started)
    return {"first_s": first, "warm_s": warm,
            "profiles_per_s": len(eng.store) / statistics.median(warm)}


def _stream(eng: Any, at: int, n: int, size: int) -> dict[str, Any]:
    """Events per second through a session: B10 live traffic, or the store's events again."""
    from store.synth import EVENTS_SCHEMA, live_events

    st = eng.store
    if set(EVENTS_SCHEMA.names) <= set(st.schema.events):
        events = live_events(len(st), at, 60_000, per_second=max(n / 60, 1.0)).slice(0, n)
    else:  # not B10: its own latest events, as if they came again
        events = _latest(st, n)
        if events is None:
            return {"skipped": "the store has no events"}
    session = eng.stream(at=at + 60_000)
    calls = []
    changes = 0
    for lo in range(0, events.num_rows, size):
        part = events.slice(lo, size)
        started = time.perf_counter()
        changes += len(session.ingest(part))
        calls.append((time.perf_counter() - started, part.num_rows))
    session.close()
    rates = [rows / took for took, rows in calls if took > 0]
    return {"events": int(sum(r for _, r in calls)), "per_call": size, "changes": changes,
            "events_per_s": rates, "seconds": sum(t for t, _ in calls)}


def _latest(st: Any, n: int) -> Any:
    """The store's ``n`` latest events, in time order (None: it has none)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    table = st.to_arrow()[1]
    if table is None or not table.num_rows or st.schema.event_time is None:
        return None
    times = pc.cast(table.column(st.schema.event_time), pa.int64()).to_numpy()
    order = np.argsort(times, kind="stable")[-n:]
    return table.take(pa.array(order))


def _edge(eng: Any, at: int, calls: int = 200) -> dict[str, Any]:
    import numpy as np

    keys = eng.store.keys
    picks = np.random.default_rng(0).integers(0, len(keys), calls + 1)
    eng.evaluate_profile(keys[int(picks[0])].as_py(), at)  # the first call loads kernels
    took = []
    for p in picks[1:].tolist():
        key = keys[p].as_py()
        started = time.perf_counter()
        eng.evaluate_profile(key, at)
        took.append(time.perf_counter() - started)
    return {"calls": calls, "p50_ms": float(np.percentile(took, 50) * 1e3),
            "p99_ms": float(np.percentile(took, 99) * 1e3)}


def _spread(values: list[float], scale: float = 1.0, digits: int = 0) -> str:
    med = statistics.median(values) * scale
    lo, hi = min(values) * scale, max(values) * scale
    return f"{med:,.{digits}f} ({lo:,.{digits}f}–{hi:,.{digits}f})"


def _show(report: dict[str, Any]) -> None:
    out = Console(highlight=False)
    table = Table(title=f"pqlite bench: {report['segments']} segments over "
                  f"{report['profiles']:,} profiles, {report['events']:,} events "
                  f"({report['store']}); median (min–max)", title_justify="left")
    table.add_column("what")
    table.add_column("figure", justify="right")
    b = report["batch"]
    table.add_row("batch, first run in this process (compile or cache load)",
                  f"{b['first_s']:.2f} s")
    table.add_row(f"batch, warm run ({len(b['warm_s'])} rounds)",
                  _spread(b["warm_s"], 1e3, 1) + " ms")
    table.add_row("batch, profiles per second (warm)", f"{b['profiles_per_s']:,.0f}")
    s = report.get("stream")
    if s and "skipped" not in s:
        table.add_row(f"stream, events per second ({s['per_call']:,} per ingest call)",
                      _spread(s["events_per_s"]))
        table.add_row("stream, membership changes", f"{s['changes']:,}")
    e = report["edge"]
    table.add_row(f"edge, evaluate_profile p50 / p99 ({e['calls']} profiles)",
                  f"{e['p50_ms']:.2f} / {e['p99_ms']:.2f} ms")
    out.print(table)
