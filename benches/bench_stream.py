"""Streaming on B10 (issue 5): ingest throughput and latency, `advance`, edge evaluation.

Run: ``python benches/bench_stream.py`` (1M profiles, a minute or two), ``--quick`` (100k
profiles, fewer calls and shorter budgets: about 10 seconds), ``--profiles N``, ``--json PATH``.
B10 data is read from ``--data`` (default ``.bench-data/b10-N``, as `bench_batch`;
``--build`` generates a missing size). Not collected by pytest.

Reference stream: the B10 store with the 100 streaming definitions of
`workloads.stream_definitions` (the ten B10 segments and 90 variants of them) on
``engine.Engine(store, tier="kernel", threads=...)``. Sessions start at `AT` (B10's now plus
one hour); the events are activity-weighted (a profile is drawn with probability
proportional to its stored events plus one, so active profiles produce most events) with
B10's event types, categories and prices, and timestamps rising from B10's now to `AT`, so
each applies when ingested (none is held for the clock). Ingest calls take Arrow tables of
`store.synth.EVENTS_SCHEMA` (slices of one pre-generated table).

Sections:

* **start**: the engine's first batch run (kernel compile or kernel-cache load: see
  ``--empty-cache``), the warm batch run, starting a session (`Engine.stream`: a batch run
  and every profile's timers), and each session's first ingest call of each micro-batch
  size (the first session's are cold).
* **ingest**: events/s for micro-batches of ``--sizes`` events per `ingest` call, with no
  log and with a write-ahead log under each fsync policy (``sync="none"``: never;
  ``"batch"``: group fsync in the background; ``"always"``: an fsync per ingest call), one
  session each, every session fed the same events in interleaved rounds. In each round the
  batch recompute of the same definitions (``Engine.run(AT)``) is timed too: the ratio is
  batch run time / per-event ingest cost, i.e. how many events one batch run's time ingests.
  The one-event calls give the per-event latency (p50, p99, max) per log mode, and the
  share of them the one-event path served (the rest: profiles a batch call touched).
* **heavy**: one-event calls alternating between the activity-weighted stream and events of
  the heaviest profiles (the 0.1% with the most events, at least 100 profiles), and batches
  of 1,000 of each: whether an event's cost grows with its profile's history.
* **advance**: a fresh session's clock moved by one hour, then on to one day, then through
  the day after, in steps (each `advance` call at most about a second; the step doubles
  while calls are fast), stopping after ``--advance-budget`` seconds: how much of each span
  was covered, the changes, and the time for the whole span extrapolated at the measured
  rate. The first day also evaluates ahead (a profile due in it is evaluated through the
  next day, `engine.stream`'s ``_AHEAD_MS``); the day after shows the steady state.
* **edge**: `Engine.evaluate_profile` with 150 definitions (``stream_definitions(150)``):
  the first call (compile or cache load), then calls alternating between random profiles
  and the heaviest ones.

Targets (issue 5): at least 100,000 events/s in one process including the log; per-event
p99 latency under 200 µs; heavy-profile events under 50 µs each (judged on their cost per
event in batches of 1,000, and shown for one-event calls); `advance` over a day at 1M
profiles under a second; edge p99 under 1 ms with 150 definitions.

Times are median (min–max) over interleaved rounds (the machine's speed drifts by 1.2-2x);
the CPU other processes used during each section is printed with it (0 on a quiet machine).
A section that runs past its budget stops starting new rounds (at least one round runs).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO, REPO / "benches"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
os.environ.setdefault("COLUMNS", "160")  # rich's width when piped: keep the tables whole

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
from benches.baselines.check_b10 import cpu_snapshot, other_cpus  # noqa: E402

from bench_batch import cell, ensure_data, median, memory_note, open_store  # noqa: E402
from common import fmt, print_table  # noqa: E402
from store import ProfileStore  # noqa: E402
from store.synth import B10_NOW_MS, EVENT_TYPE_SHARES, EVENT_TYPES, EVENTS_SCHEMA  # noqa: E402
from workloads import stream_definitions  # noqa: E402

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
AT = B10_NOW_MS + HOUR_MS  # sessions start here; the stream's events fall in [B10 now, AT)
DEFINITIONS, EDGE_DEFINITIONS = 100, 150
TARGET_EVENTS_PER_S = 100_000
TARGET_P99_US = 200.0
TARGET_HEAVY_US = 50.0
TARGET_ADVANCE_DAY_S = 1.0
TARGET_EDGE_P99_MS = 1.0
LOG_MODES: dict[str, str | None] = {  # label -> WriteAheadLog sync policy (None: no log)
    "no log": None,
    "log, no fsync (sync=none)": "none",
    "log, group fsync (sync=batch)": "batch",
    "log, fsync per call (sync=always)": "always",
}
COMMERCE = [EVENT_TYPES.index(t) for t in ("product_view", "add_to_cart", "purchase")]
CATEGORIES = 1000


# ----------------------------------------------------------------------------- events


def event_counts(st: ProfileStore) -> np.ndarray:
    """Stored events per profile (summed over the event partitions)."""
    counts = np.zeros(len(st), np.int64)
    for part in st.events.partitions:
        counts += np.diff(part.offsets.astype(np.int64))
    return counts


def stream_events(st: ProfileStore, profiles: np.ndarray, weights: np.ndarray, n: int,
                  seed: int) -> pa.Table:
    """``n`` B10-like events of ``profiles`` (indices, drawn with probability proportional to
    ``weights``): B10's type shares, Zipf(1) categories and lognormal(4, 1) prices on commerce
    events, timestamps rising evenly from B10's now to `AT`."""
    rng = np.random.default_rng(seed)
    who = profiles[rng.choice(len(profiles), n, p=weights / weights.sum())]
    types = rng.choice(len(EVENT_TYPES), n, p=EVENT_TYPE_SHARES).astype(np.int8)
    plain = ~np.isin(types, COMMERCE)
    zipf = 1.0 / np.arange(1, CATEGORIES + 1)
    category = rng.choice(CATEGORIES, n, p=zipf / zipf.sum()).astype(np.int16)
    price = np.round(rng.lognormal(4.0, 1.0, n), 2)
    times = B10_NOW_MS + np.arange(n, dtype=np.int64) * (AT - B10_NOW_MS) // n
    names = pa.array(EVENT_TYPES, pa.string())
    categories = pa.array([f"c{i:04d}" for i in range(CATEGORIES)], pa.string())
    return pa.table([
        st.keys.take(pa.array(who)),
        pa.array(times, EVENTS_SCHEMA.field("timestamp").type),
        pa.DictionaryArray.from_arrays(pa.array(types), names),
        pa.DictionaryArray.from_arrays(pa.array(category, mask=plain), categories),
        pa.array(price, mask=plain),
    ], schema=EVENTS_SCHEMA)


class Feed:
    """Consecutive slices of one table of events."""

    def __init__(self, table: pa.Table) -> None:
        self.table, self.pos = table, 0

    def take(self, n: int) -> pa.Table:
        if self.pos + n > self.table.num_rows:
            raise RuntimeError("the generated stream is too short for these settings")
        self.pos += n
        return self.table.slice(self.pos - n, n)


def ingest_calls(session: Any, events: pa.Table, size: int) -> list[float]:
    """Seconds of each `ingest` call, feeding ``events`` in calls of ``size`` rows."""
    took = []
    for start in range(0, events.num_rows, size):
        chunk = events.slice(start, size)
        started = time.perf_counter()
        session.ingest(chunk)
        took.append(time.perf_counter() - started)
    return took


def report_others(before: tuple[float, float, float]) -> float:
    """Print (and return) the CPUs other processes kept busy since ``before``."""
    others = other_cpus(before, cpu_snapshot())
    print(f"Other processes used {others:.2f} of the {os.cpu_count()} CPUs on average "
          f"(0 on a quiet machine); {memory_note()}.")
    return others


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


def pct(values: list[float], q: float, scale: float = 1e6) -> float:
    return float(np.percentile(values, q)) * scale if values else float("nan")


def passes(ok: bool, target: str) -> str:
    return f"{target} {'PASS' if ok else 'FAIL'}"


def rotated(items: list[Any], r: int) -> list[Any]:
    return items[r % len(items):] + items[:r % len(items)]


# ----------------------------------------------------------------------------- bench


class Bench:
    def __init__(self, args: argparse.Namespace, st: ProfileStore, log_root: Path) -> None:
        import engine

        self.args, self.st, self.log_root = args, st, log_root
        self.results: dict[str, Any] = {"args": {k: (str(v) if isinstance(v, Path) else v)
                                                 for k, v in vars(args).items()}}
        self.summary: list[list[str]] = []
        self.definitions = stream_definitions(DEFINITIONS, args.seed)
        self.eng = engine.Engine(st, tier="kernel", threads=args.threads)
        for name, text in self.definitions.items():
            self.eng.define(name, text)
        counts = event_counts(st)
        everyone = np.arange(len(st))
        self.heavy = np.argsort(counts, kind="stable")[-max(100, len(st) // 1000):]
        need = (len(LOG_MODES) * sum(args.sizes)  # start
                + args.rounds * sum(args.calls[s] * s for s in args.sizes)  # ingest
                + args.heavy_calls + 1000 * args.rounds)  # heavy
        self.feed = Feed(stream_events(st, everyone, counts + 1.0, need, args.seed))
        self.heavy_feed = Feed(stream_events(st, self.heavy, counts[self.heavy] + 1.0,
                                             args.heavy_calls + 1000 * args.rounds,
                                             args.seed + 1))
        self.results["stream"] = {
            "events_generated": need, "profiles_with_events": int((counts > 0).sum()),
            "heavy_profiles": len(self.heavy),
            "heavy_events_min_median_max": [int(x) for x in np.percentile(
                counts[self.heavy], [0, 50, 100])]}

    def note(self, section: str, what: str, value: str, target: str = "") -> None:
        self.summary.append([section, what, value, target])

    def session(self, sync: str | None) -> Any:
        log = None if sync is None else tempfile.mkdtemp(prefix=f"wal-{sync}-",
                                                         dir=self.log_root)
        return self.eng.stream(AT, log=log, sync=sync or "batch")

    # ------------------------------------------------------------------ start

    def start(self) -> dict[str, Any]:
        """Cold and warm: returns the sessions of the ingest section, one per log mode."""
        print(f"\n[start] {len(self.definitions)} definitions, {len(self.st):,} profiles ...",
              flush=True)
        first_run, _ = timed(lambda: self.eng.run(AT))
        warm_runs = [timed(lambda: self.eng.run(AT))[0] for _ in range(3)]
        sessions, starts = {}, []
        for label, sync in LOG_MODES.items():
            took, sessions[label] = timed(lambda sync=sync: self.session(sync))
            starts.append(took)
        # Each session's first call of each micro-batch size: the first session's are cold.
        first_calls = {size: [ingest_calls(s, self.feed.take(size), size)[0]
                              for s in sessions.values()] for size in self.args.sizes}
        rows = [
            ["engine's first batch run (compile or kernel-cache load), s", f"{first_run:.2f}"],
            ["warm batch run, ms", cell([t * 1e3 for t in warm_runs])],
            ["start a session (Engine.stream: batch run + timers), s", fmt(starts, 2)],
        ]
        rows += [[f"first ingest call of {size:,} event(s): first session (cold) / the others, "
                  "ms", f"{took[0] * 1e3:,.1f} / {cell([t * 1e3 for t in took[1:]])}"]
                 for size, took in first_calls.items()]
        print_table(f"Start at {len(self.st):,} profiles, {len(self.definitions)} definitions "
                    f"({len(self.eng.groups())} kernel group(s)); median (min–max)",
                    ["", "value"], rows)
        self.results["start"] = {"first_run_s": first_run, "warm_run_s": warm_runs,
                                 "session_start_s": starts, "first_ingest_s": first_calls}
        self.note("start", "engine's first batch run, s", f"{first_run:.2f}")
        self.note("start", "session start, s", fmt(starts, 2))
        size = self.args.sizes[0]
        self.note("start", f"first ingest call ({size:,} event(s), cold), ms",
                  f"{first_calls[size][0] * 1e3:.1f}")
        return sessions

    # ------------------------------------------------------------------ ingest

    def ingest(self, sessions: dict[str, Any]) -> None:
        args = self.args
        print(f"\n[ingest] sizes {args.sizes}, {len(sessions)} sessions, up to {args.rounds} "
              "rounds ...", flush=True)
        rate: dict[str, dict[int, list[float]]] = {m: {s: [] for s in args.sizes}
                                                   for m in sessions}
        single: dict[str, list[list[float]]] = {m: [] for m in sessions}  # per round
        served = dict.fromkeys(sessions, 0)  # one-event calls the one-event path took
        batch_s: list[float] = []
        before, started = cpu_snapshot(), time.perf_counter()
        for r in range(args.rounds):
            if r and time.perf_counter() - started > args.budget:
                print(f"  budget of {args.budget:g} s spent: stopped after {r} round(s)")
                break
            for size in rotated(args.sizes, r):
                events = self.feed.take(args.calls[size] * size)
                for mode in rotated(list(sessions), r):
                    gc.collect()
                    alone = sessions[mode].served_alone
                    took = ingest_calls(sessions[mode], events, size)
                    rate[mode][size].append(events.num_rows / sum(took))
                    if size == 1:
                        single[mode].append(took)
                        served[mode] += sessions[mode].served_alone - alone
            gc.collect()
            batch_s.append(timed(lambda: self.eng.run(AT))[0])
        self.ingest_tables(rate, single, batch_s, served)
        others = report_others(before)
        self.results["ingest"] = {"events_per_s": rate, "single_call_s": single,
                                  "batch_run_s": batch_s, "other_cpus": others,
                                  "served_alone": served}

    def ingest_tables(self, rate: dict[str, dict[int, list[float]]],
                      single: dict[str, list[list[float]]], batch_s: list[float],
                      served: dict[str, int]) -> None:
        sizes = self.args.sizes
        rows = []
        for mode, by_size in rate.items():
            size = max(sizes, key=lambda s: median(by_size[s]))
            best = median(by_size[size])
            target = (passes(best >= TARGET_EVENTS_PER_S, f">= {TARGET_EVENTS_PER_S:,}/s")
                      if LOG_MODES[mode] else "")
            rows.append([mode, *(fmt(by_size[s], 0) for s in sizes), target])
            self.note("ingest", f"{mode}: events/s, best micro-batch ({size:,} per call)",
                      fmt(by_size[size], 0), target)
        print_table(f"Ingest throughput at {len(self.st):,} profiles, events/s per micro-batch "
                    f"size (events per ingest call); median (min–max) of {len(batch_s)} "
                    "interleaved rounds",
                    ["", *(f"{s:,} per call" for s in sizes), "target (with a log)"], rows)

        run_ms = [t * 1e3 for t in batch_s]
        rows = []
        for s in sizes:
            per_event_ms = [1e3 / x for x in rate["no log"][s]]
            ratio = [b / e for b, e in zip(run_ms, per_event_ms, strict=True)]
            rows.append([f"{s:,} per call", cell([x * 1e3 for x in per_event_ms]), cell(run_ms),
                         fmt(ratio, 0)])
        print_table("Incremental against batch, no log, same rounds: µs per ingested event, the "
                    f"batch run of the same {len(self.definitions)} definitions (Engine.run), "
                    "and their ratio (events ingested in one batch run's time)",
                    ["micro-batch", "µs per event", "batch run, ms", "batch run / event"], rows)
        self.note("ingest", "batch run of the same definitions, ms", cell(run_ms))

        rows = []
        for mode, rounds in single.items():
            if not rounds:
                continue
            p99 = [pct(r, 99) for r in rounds]
            calls = sum(len(r) for r in rounds)
            rows.append([mode, fmt([pct(r, 50) for r in rounds], 0), fmt(p99, 0),
                         f"{max(max(r) for r in rounds) * 1e6:,.0f}", f"{calls:,}",
                         f"{served[mode] / calls:.1%}",
                         passes(median(p99) < TARGET_P99_US, f"< {TARGET_P99_US:g} µs")])
            self.note("latency", f"{mode}: one-event ingest p99, µs", fmt(p99, 0),
                      rows[-1][-1])
        if rows:
            print_table("Per-event latency: one-event ingest calls, µs; p50 and p99 per round, "
                        "median (min–max)",
                        ["", "p50", "p99", "max", "calls", "one-event path", "target (p99)"],
                        rows)

    # ------------------------------------------------------------------ heavy

    def heavy_profiles(self, session: Any) -> None:
        args = self.args
        info = self.results["stream"]
        print(f"\n[heavy] {len(self.heavy):,} heaviest profiles (stored events: min, median, "
              f"max {info['heavy_events_min_median_max']}) ...", flush=True)
        feeds = {"activity-weighted": self.feed, "heaviest profiles": self.heavy_feed}
        calls: dict[str, list[float]] = {k: [] for k in feeds}
        per_event: dict[str, list[float]] = {k: [] for k in feeds}
        before = cpu_snapshot()
        for _ in range(args.heavy_calls):  # alternate: both see the same session state
            for kind, feed in feeds.items():
                calls[kind] += ingest_calls(session, feed.take(1), 1)
        for r in range(args.rounds):
            for kind in rotated(list(feeds), r):
                took = ingest_calls(session, feeds[kind].take(1000), 1000)
                per_event[kind].append(sum(took) / 1000)
        rows = []
        for kind in feeds:
            us = [x * 1e6 for x in per_event[kind]]
            target = (passes(median(us) < TARGET_HEAVY_US, f"< {TARGET_HEAVY_US:g} µs")
                      if kind == "heaviest profiles" else "")
            rows.append([kind, f"{pct(calls[kind], 50):,.0f}", f"{pct(calls[kind], 99):,.0f}",
                         fmt(us, 1), target])
        print_table("Events of the heaviest profiles against the activity-weighted stream (no "
                    f"log): one-event calls ({args.heavy_calls} each, alternating), µs; batches "
                    "of 1,000, µs per event, median (min–max)",
                    ["events", "one-event p50", "one-event p99", "in batches of 1,000",
                     "target"], rows)
        self.results["heavy"] = {"single_call_s": calls, "per_event_in_1000_s": per_event,
                                 "other_cpus": report_others(before)}
        self.note("heavy", "heaviest profiles: µs per event in batches of 1,000", rows[1][3],
                  rows[1][4])
        self.note("heavy", "heaviest profiles: one-event ingest p99, µs", rows[1][2])

    # ------------------------------------------------------------------ advance

    def advance(self) -> None:
        budget = self.args.advance_budget
        print(f"\n[advance] a fresh session, one hour, one day, the day after (budget "
              f"{budget:g} s) ...",
              flush=True)
        session = self.session(None)
        before = cpu_snapshot()
        hour = advance_for(session, HOUR_MS, budget)
        rest = advance_for(session, DAY_MS - HOUR_MS, budget - hour["wall_s"])
        day = {k: hour[k] + rest[k] for k in hour}
        after = advance_for(session, DAY_MS, max(1.0, budget - day["wall_s"]))
        rows = []
        for label, span, r in (("one hour", HOUR_MS, hour), ("one day", DAY_MS, day),
                               ("the day after", DAY_MS, after)):
            whole = r["covered_ms"] >= span
            estimate = r["wall_s"] * span / r["covered_ms"] if r["covered_ms"] else float("inf")
            rows.append([label, f"{r['covered_ms'] / 1e3:,.1f} of {span / 1e3:,.0f}",
                         f"{r['wall_s']:,.2f}", f"{r['changes']:,}", str(r["calls"]),
                         f"{estimate:,.1f}" + ("" if whole else " (extrapolated)")])
            r["estimate_s"] = estimate
        ok = day["estimate_s"] < TARGET_ADVANCE_DAY_S
        print_table(f"advance at {len(self.st):,} profiles from {AT} (B10 now + 1 h): clock "
                    "seconds covered within the budget, wall seconds, changes, advance calls, "
                    "and seconds for the whole span", ["span", "clock s covered", "wall s",
                                                       "changes", "calls", "whole span, s"],
                    rows)
        self.results["advance"] = {"hour": hour, "day": day, "day_after": after,
                                   "other_cpus": report_others(before)}
        self.note("advance", "one hour, s", rows[0][5])
        self.note("advance", "one day, s", rows[1][5], passes(ok, f"< {TARGET_ADVANCE_DAY_S:g} s"))
        self.note("advance", "the day after, s", rows[2][5])
        session.close()

    # ------------------------------------------------------------------ edge

    def edge(self) -> None:
        import engine

        args = self.args
        print(f"\n[edge] evaluate_profile with {EDGE_DEFINITIONS} definitions ...", flush=True)
        eng = engine.Engine(self.st, tier="kernel", threads=args.threads)
        for name, text in stream_definitions(EDGE_DEFINITIONS, args.seed).items():
            eng.define(name, text)
        keys = self.st.keys
        rng = np.random.default_rng(args.seed + 2)
        kinds = {"random profiles": rng.integers(0, len(self.st), args.edge_calls),
                 "heaviest profiles": rng.choice(self.heavy, args.edge_calls)}
        first, _ = timed(lambda: eng.evaluate_profile(keys[0].as_py(), AT))
        took: dict[str, list[float]] = {k: [] for k in kinds}
        before = cpu_snapshot()
        for i in range(args.edge_calls):
            for kind, picks in kinds.items():
                key = keys[int(picks[i])].as_py()
                took[kind].append(timed(lambda key=key: eng.evaluate_profile(key, AT))[0])
        rows = [[kind, f"{pct(v, 50, 1e3):.3f}", f"{pct(v, 99, 1e3):.3f}",
                 f"{max(v) * 1e3:.3f}",
                 passes(pct(v, 99, 1e3) < TARGET_EDGE_P99_MS, f"p99 < {TARGET_EDGE_P99_MS:g} ms")]
                for kind, v in took.items()]
        print_table(f"Edge evaluation at {len(self.st):,} profiles, {EDGE_DEFINITIONS} "
                    f"definitions: Engine.evaluate_profile(key, AT), ms; first call "
                    f"{first:.2f} s (compile or cache load); {args.edge_calls} calls of each "
                    "kind, alternating", ["profiles", "p50", "p99", "max", "target"], rows)
        self.results["edge"] = {"first_s": first, "calls_s": took,
                                "other_cpus": report_others(before)}
        self.note("edge", "evaluate_profile first call, s", f"{first:.2f}")
        for row in rows:
            self.note("edge", f"evaluate_profile p99, {row[0]}, ms", row[2], row[4])


def advance_for(session: Any, span_ms: int, budget_s: float) -> dict[str, Any]:
    """Advance ``session`` by ``span_ms`` in steps that double while calls take under 0.2 s
    (and halve over 1 s), stopping once ``budget_s`` of wall time is spent."""
    start, step = session.clock, 1_000
    out = {"covered_ms": 0, "wall_s": 0.0, "changes": 0, "calls": 0}
    while session.clock < start + span_ms and out["wall_s"] < budget_s:
        to = min(start + span_ms, session.clock + step)
        took, changes = timed(lambda to=to: session.advance(to))
        out["wall_s"] += took
        out["changes"] += len(changes)
        out["calls"] += 1
        step = step * 2 if took < 0.2 else max(1, step // 2) if took > 1.0 else step
    out["covered_ms"] = session.clock - start
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", type=int, help="B10 size (default 1,000,000; --quick: "
                        "100,000)")
    parser.add_argument("--quick", action="store_true",
                        help="100k profiles, fewer calls and rounds, shorter budgets")
    parser.add_argument("--sizes", default="1,100,1000,10000",
                        help="events per ingest call (default 1,100,1000,10000)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 5; quick 2)")
    parser.add_argument("--budget", type=float, help="seconds after which the ingest section "
                        "starts no new round (default 600; quick 60)")
    parser.add_argument("--advance-budget", type=float,
                        help="wall seconds for the advance section (default 120; quick 20)")
    parser.add_argument("--edge-calls", type=int, help="evaluate_profile calls per kind "
                        "(default 1000; quick 200)")
    parser.add_argument("--heavy-calls", type=int, help="one-event calls per kind in the heavy "
                        "section (default 300; quick 100)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=REPO / ".bench-data")
    parser.add_argument("--build", action="store_true", help="generate missing B10 data")
    parser.add_argument("--mmap", action="store_true", help="keep the store memory-mapped "
                        "(default: arrays copied into memory, as bench_batch)")
    parser.add_argument("--empty-cache", action="store_true",
                        help="compile into a new, empty kernel cache (PQLITE_CACHE_DIR), so "
                             "first calls include compiling")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write every measurement")
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {"profiles": 100_000 if quick else 1_000_000, "rounds": 2 if quick else 5,
                "budget": 60.0 if quick else 600.0, "advance_budget": 20.0 if quick else 120.0,
                "edge_calls": 200 if quick else 1000, "heavy_calls": 100 if quick else 300}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.sizes = [int(x) for x in args.sizes.split(",") if x]
    # Ingest calls per round and micro-batch size: fewer calls for larger micro-batches.
    base = {1: 100, 100: 20, 1000: 5, 10000: 1} if quick else {1: 300, 100: 40, 1000: 10,
                                                                10000: 2}
    args.calls = {s: base.get(s, max(1, 10_000 // s)) for s in args.sizes}

    store = ensure_data(args.data, args.profiles, args.build)
    if store is None:
        print(f"no B10 data for {args.profiles:,} profiles in {args.data} (--build)")
        return 2
    cache = Path(tempfile.mkdtemp(prefix="pqlite-kernels-")) if args.empty_cache else None
    if cache is not None:
        os.environ["PQLITE_CACHE_DIR"] = str(cache)
    from engine.kernels import cache_dir

    print(f"kernel cache: {cache_dir()}" + (" (new, empty)" if cache else " (as found)"))
    log_root = Path(tempfile.mkdtemp(prefix="stream-logs-", dir=args.data))
    started = time.perf_counter()
    try:
        bench = Bench(args, open_store(store, not args.mmap), log_root)
        info = bench.results["stream"]
        print(f"stream: {info['events_generated']:,} activity-weighted events over "
              f"{args.profiles:,} profiles ({info['profiles_with_events']:,} with stored "
              f"events); heaviest {info['heavy_profiles']:,} profiles: "
              f"{info['heavy_events_min_median_max']} stored events (min, median, max)")
        sessions = bench.start()
        bench.ingest(sessions)
        bench.heavy_profiles(sessions["no log"])
        for s in sessions.values():
            s.close()
        del sessions
        gc.collect()
        bench.advance()
        bench.edge()
    finally:
        shutil.rmtree(log_root, ignore_errors=True)
        if cache is not None:
            shutil.rmtree(cache, ignore_errors=True)
    print_table("Summary", ["", "measurement", "value: median (min–max)", "target"],
                bench.summary)
    total = time.perf_counter() - started
    print(f"total {total:.0f} s")
    if args.json:
        bench.results["summary"] = bench.summary
        bench.results["seconds"] = total
        args.json.write_text(json.dumps(bench.results, indent=1, default=str))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
