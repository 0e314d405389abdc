"""``pqlite demo``: the whole product in under a minute, on generated data.

1. A demo store: B10 (``pqlite generate``) with ``--profiles`` profiles, kept in ``--dir``
   (default: the user's cache directory) so that a second run starts at once.
2. Batch: the example definitions (``examples/segments.toml``) evaluated at B10's instant,
   2025-01-01T00:00:00Z, in one fused kernel.
3. Streaming: a minute of plausible live traffic (`store.synth.live_events`) through a
   streaming session, as a live system receives it: every `TICK_MS` the clock moves on
   (the changes time alone causes come at their exact instants) and the events that
   arrived meanwhile are ingested together. (Replaying each event at its own millisecond,
   as ``pqlite stream`` does, costs an evaluation per distinct instant: about 40 s for
   this minute's 27,000 events instead of 4.)
4. What happened: counts and times, the realized and exited profiles of every segment, a
   sample of the changes.

``pqlite repl`` without a store opens the same demo store (`demo_store`).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from engine.userdirs import user_path

__all__ = ["add_commands", "demo_dir", "demo_store", "example_segments"]

DEMO_PROFILES = 200_000
DEMO_ENV = "PQLITE_DEMO_DIR"
SAMPLE_CHANGES = 12
TICK_MS = 100  # the stream ingests what arrived in each tick of event time


def add_commands(sub: Any) -> None:
    demo = sub.add_parser(
        "demo",
        help="generate a demo store, run example segments, stream a minute of events",
        description="Generate a B10 demo store (cached for the next runs), evaluate the "
        "example segments in batch, replay a minute of live events through a streaming "
        "session, and show what entered and left each segment (see docs/cli.md).",
    )
    demo.add_argument("--profiles", type=int, default=DEMO_PROFILES, metavar="N",
                      help=f"profiles of the demo store (default {DEMO_PROFILES:,})")
    demo.add_argument("--dir", type=Path, metavar="DIR",
                      help=f"where the demo store is kept (default: ${DEMO_ENV}, else "
                           "~/.cache/pqlite/demo)")
    demo.add_argument("--seconds", type=int, default=60, metavar="S",
                      help="seconds of live events to stream (default 60)")
    demo.add_argument("--rate", type=float, default=500.0, metavar="EVENTS",
                      help="live events per second, about (default 500)")
    demo.add_argument("--threads", type=int, metavar="N", help="threads for the batch run")
    demo.add_argument("--json", action="store_true",
                      help="print one JSON object with the figures instead of tables")
    demo.set_defaults(run=_demo)


def demo_dir() -> Path:
    """Where demo stores are kept: ``$PQLITE_DEMO_DIR``, else the user's cache directory."""
    return user_path(DEMO_ENV, "cache", "demo")


def demo_store(directory: Path | None, profiles: int) -> tuple[Any, Path, float | None]:
    """The B10 store of ``profiles`` profiles under ``directory`` (default `demo_dir`),
    generated on first use: (store, its path, seconds spent generating or None if it was
    there already)."""
    from engine.cli_data import import_b10, write_b10
    from store import ProfileStore
    from store.errors import StoreError
    from store.synth import B10_SEED

    home = (directory or demo_dir()) / f"b10-{profiles}"
    path = home / "store"
    if (path / "manifest.json").is_file():
        try:
            st = ProfileStore.open(path)
        except StoreError:
            st = None  # damaged or from another version: generate it again
        if st is not None and len(st) == profiles:
            return st, path, None
    started = time.perf_counter()
    home.mkdir(parents=True, exist_ok=True)
    profiles_file, events_file = write_b10(home, profiles, B10_SEED)
    st, _, _ = import_b10(profiles_file, events_file, path)
    return ProfileStore.open(path), path, time.perf_counter() - started


def example_segments() -> Path:
    """``examples/segments.toml``: packaged in a wheel, else the checkout's."""
    packaged = resources.files("engine") / "examples" / "segments.toml"
    if packaged.is_file():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "examples" / "segments.toml"


# ---------------------------------------------------------------- the command


def _demo(args: argparse.Namespace) -> int:
    from engine.cli import UsageError

    if args.profiles < 1:
        raise UsageError(f"--profiles {args.profiles}: give a positive number of profiles")
    if args.seconds < 0 or args.rate <= 0:
        raise UsageError("--seconds must be 0 or more and --rate positive")
    started = time.perf_counter()
    out = Console(highlight=False, quiet=args.json)
    report: dict[str, Any] = {}

    st, path, generated = demo_store(args.dir, args.profiles)
    report["store"] = {"path": str(path), "profiles": len(st), "events": len(st.events),
                       "generated_s": None if generated is None else round(generated, 2)}
    how = (f"generated in {generated:.1f} s" if generated is not None
           else "already there")
    out.print(Text.assemble(("demo store ", "bold"), f"{path}: {len(st):,} profiles, "
                            f"{len(st.events):,} events ({how})"))

    eng, descriptions = _engine(st, args.threads)
    report["batch"] = _batch(eng, descriptions, out)
    if args.seconds:
        report["stream"] = _stream(eng, args.seconds, args.rate, out)
    elapsed = time.perf_counter() - started
    report["elapsed_s"] = round(elapsed, 2)
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    out.print(Text.assemble(("done in ", "bold"), (f"{elapsed:.1f} s", "bold"),
                            ". Explore the same store: ", ("pqlite repl", "bold cyan"),
                            f" (or pqlite repl {path})"))
    return 0


def _engine(st: Any, threads: int | None) -> tuple[Any, dict[str, str]]:
    from engine.segments import SegmentFile
    from engine.session import Engine

    segments = SegmentFile.load(example_segments())
    eng = Engine(st, threads=threads, tier="auto", background=False)
    for d in segments:
        eng.define(d.name, d.pql)
    return eng, {d.name: d.description or "" for d in segments}


def _progress() -> Progress:
    console = Console(stderr=True)
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                    TimeElapsedColumn(), console=console, transient=True,
                    disable=not console.is_terminal)


def _batch(eng: Any, descriptions: dict[str, str], out: Console) -> dict[str, Any]:
    from engine.kernels import is_ready
    from engine.repl import format_instant
    from store.synth import B10_NOW_MS

    missing = sum(not is_ready(eng.source(g).source) for g in eng.groups())
    started = time.perf_counter()
    label = "compiling kernels and evaluating" if missing else "evaluating"
    with _progress() as bar:
        task = bar.add_task(label, total=len(eng.names))
        result = eng.run(B10_NOW_MS, progress=lambda done, _: bar.update(task, completed=done))
    seconds = time.perf_counter() - started
    n = len(eng.store)
    table = Table(title=f"batch: {len(eng.names)} example segments at "
                  f"{format_instant(B10_NOW_MS)}", title_justify="left", expand=True)
    table.add_column("segment", no_wrap=True)
    table.add_column("members", justify="right", no_wrap=True)
    table.add_column("share", justify="right", no_wrap=True)
    table.add_column("what it selects", no_wrap=True, overflow="ellipsis", ratio=1)
    for name in eng.names:
        count = result.count(name)
        table.add_row(name, f"{count:,}", f"{count / n:.2%}", Text(descriptions[name]))
    out.print(table)
    how = (f"compiling {missing} kernel{'s' * (missing != 1)} (cached for the next runs)"
           if missing else "kernels from the cache")
    out.print(f"evaluated {len(eng.names)} segments over {n:,} profiles in {seconds:.2f} s, "
              f"{how}; a run with compiled kernels takes "
              f"{_rerun_ms(eng, B10_NOW_MS):.0f} ms")
    return {"seconds": round(seconds, 3), "compiled_kernels": missing,
            "segments": {name: result.count(name) for name in eng.names}}


def _rerun_ms(eng: Any, at: int) -> float:
    started = time.perf_counter()
    eng.run(at)
    return (time.perf_counter() - started) * 1e3


def _stream(eng: Any, seconds: int, rate: float, out: Console) -> dict[str, Any]:
    import numpy as np
    import pyarrow.compute as pc

    from engine.repl import format_instant
    from store.synth import B10_NOW_MS, live_events

    start = B10_NOW_MS
    events = live_events(len(eng.store), start, seconds * 1000, per_second=rate)
    times = pc.cast(events.column("timestamp"), "int64").to_numpy()
    began = time.perf_counter()
    session = eng.stream(at=start)
    before = {n: len(b) for n, b in session.memberships().items()}
    changes = []
    with _progress() as bar:
        task = bar.add_task(f"streaming {len(events):,} events", total=seconds * 1000)
        for lo_ms in range(start, start + seconds * 1000, TICK_MS):
            hi_ms = lo_ms + TICK_MS
            # As a live system sees them: the clock reaches the end of the tick (what time
            # alone changes comes at its exact instant), then the events that arrived
            # during the tick are ingested together, at that instant.
            changes += session.advance(hi_ms)
            lo, hi = np.searchsorted(times, [lo_ms, hi_ms])
            if hi > lo:
                changes += session.ingest(events.slice(int(lo), int(hi - lo)))
            bar.update(task, completed=hi_ms - start)
    replay = time.perf_counter() - began
    after = {n: len(b) for n, b in session.memberships().items()}
    tally = Counter((c.segment, c.status) for c in changes)

    table = Table(title=f"stream: {len(events):,} events from {format_instant(start)} to "
                  f"{format_instant(start + seconds * 1000)}", title_justify="left")
    for column in ("segment", "members at start", "realized", "exited", "at end"):
        table.add_column(column, justify="left" if column == "segment" else "right",
                         no_wrap=True)
    for name in eng.names:
        table.add_row(name, f"{before[name]:,}", Text(f"+{tally[name, 'realized']:,}", "green"),
                      Text(f"-{tally[name, 'exited']:,}", "red"), f"{after[name]:,}")
    out.print(table)
    out.print(f"{len(changes):,} membership changes in {replay:.2f} s "
              f"({len(events) / max(replay, 1e-9):,.0f} events/s, starting batch run "
              f"included): events ingested every {TICK_MS} ms as they arrive, windows "
              "closing at their exact millisecond")
    out.print(_sample(changes, start))
    return {"events": len(events), "seconds": round(replay, 3), "changes": len(changes),
            "segments": {n: {"before": before[n], "realized": tally[n, "realized"],
                             "exited": tally[n, "exited"], "after": after[n]}
                         for n in eng.names}}


def _sample(changes: list[Any], start: int) -> Table:
    """Some changes spread over the minute, both kinds, several segments."""
    table = Table(title="a sample of the changes", title_justify="left", box=None,
                  padding=(0, 2, 0, 0))
    for column in ("at", "profile", "segment", "change"):
        table.add_column(column, justify="right" if column == "profile" else "left")
    step = max(1, len(changes) // SAMPLE_CHANGES)
    picked = changes[::step][:SAMPLE_CHANGES]
    exits = [c for c in changes if c.status == "exited"]
    if exits and not any(c.status == "exited" for c in picked):
        picked[-1:] = exits[:1]  # show that profiles leave too
    for c in sorted(picked, key=lambda c: c.at):
        offset = (c.at.timestamp() * 1000 - start) / 1000
        style = "green" if c.status == "realized" else "red"
        table.add_row(f"+{offset:06.3f} s", str(c.profile_id), c.segment,
                      Text(c.status, style))
    return table
