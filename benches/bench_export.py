"""Activation on B10: file export throughput, and the cost of streaming delivery per change.

Run: ``python benches/bench_export.py`` (10M profiles: about three minutes once the store
is there) or ``--profiles 1000000``; ``--rounds N`` (default 3), ``--json PATH``. B10 data is
read from ``--data`` (default ``.bench-data/b10-N/store``, as `bench_batch`; ``--build``
generates a missing size). Files are written under ``--out`` (default a temporary directory
beside the data, removed at the end). Not collected by pytest.

Sections:

* **snapshot**: the ten B10 segments (``examples/segments.toml``) evaluated once at B10's
  now (``Engine.run``, not timed), then a *full* Parquet snapshot of all ten to one
  destination, each round into a new directory and state (so every round is a first
  export, not an idempotent re-run): ``Exporter.export`` from the `Result` to files,
  manifest and baseline on disk. Three mappings: the profile key only; the key plus two
  attributes (``country``, ``loyalty_tier``) with consent (``email_opt_in``); and CSV with
  the key only. Target (issue 7): a 10M-profile full snapshot of 10 segments in under 10 s.
* **incremental**: a baseline export at B10's now, then an incremental export one day later
  (the changes only); and the idempotent re-run of that export (files already there).
* **dense**: the same full snapshot of ten segments that each hold ``--dense`` (default
  0.5) of the profiles, to see the cost per row without the B10 segments' sizes (at 10M
  profiles and 0.5: 50M rows).
* **delivery**: an `Activation` on the store (its session's start is not timed) with one
  streaming destination of two segments, fed synthetic membership changes (realized and
  exited of random profiles, 1,000 per call, ``--changes`` in all) through its routing, as
  the session's changes are: the time per change in the caller (idempotency key, record,
  JSON, outbox append with an fsync per call) and until delivered (micro-batches of 500 on
  the sender thread), for a Python callable that keeps nothing and for a JSON-lines file
  (written and fsynced per batch); the outbox fsync per call (``sync="batch"``) and none
  (``sync="none"``).

Times are median (min–max) over rounds; the CPU other processes used is printed (0 on a
quiet machine).
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
import datetime as dt  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from benches.baselines.check_b10 import cpu_snapshot, other_cpus  # noqa: E402
from pyroaring import BitMap  # noqa: E402

from bench_batch import ensure_data, memory_note, open_store  # noqa: E402
from common import fmt, print_table  # noqa: E402
from store.synth import B10_NOW_MS  # noqa: E402
from workloads import b10_segments  # noqa: E402

DAY_MS = 86_400_000
TARGET_S = 10.0


def timed_export(exporter_of: Any, destination: Any, result: Any, root: Path,
                 rounds: int) -> tuple[list[float], Any]:
    """Seconds of ``rounds`` first exports, each to a new directory and state."""
    took, report = [], None
    for r in range(rounds):
        out = root / f"round-{r}"
        d = _with_path(destination, out / "files")
        exporter = exporter_of(out / "state")
        started = time.perf_counter()
        report = exporter.export(d, result, force=True, checked=True)
        took.append(time.perf_counter() - started)
        shutil.rmtree(out)
    return took, report


def _with_path(d: Any, path: Path) -> Any:
    from dataclasses import replace

    return replace(d, path=path)


def snapshot(args: argparse.Namespace, eng: Any, result: Any, root: Path,
             rows: list[list[str]], out: dict[str, Any]) -> None:
    from engine.destinations import Consent, Destination
    from engine.exports import Exporter

    names = tuple(eng.names)
    exporter_of = lambda state: Exporter(eng, state, threads=args.threads)  # noqa: E731
    members = sum(len(result[n]) for n in names)
    print(f"snapshot: {len(names)} segments, {members:,} memberships over "
          f"{len(eng.store):,} profiles", flush=True)
    cases = {
        "Parquet, profile key only": Destination("bench", "parquet", names, "email_targeting",
                                                 path=root),
        "Parquet, key + 2 attributes, consent": Destination(
            "bench", "parquet", names, "email_targeting", path=root,
            attributes=("country", "loyalty_tier"), consent=Consent("email", "email_opt_in")),
        "CSV, profile key only": Destination("bench", "csv", names, "email_targeting", path=root),
    }
    for label, d in cases.items():
        before = cpu_snapshot()
        took, report = timed_export(exporter_of, d, result, root, args.rounds)
        others = other_cpus(before, cpu_snapshot())
        target = ""
        if label.startswith("Parquet, profile key only") and args.profiles >= 10_000_000:
            target = f"< {TARGET_S:.0f} s: {'met' if np.median(took) < TARGET_S else 'MISSED'}"
        rows.append([f"snapshot: {label}", f"{report.rows:,}", f"{report.bytes / 1e6:,.1f}",
                     fmt(took, 2), f"{report.rows / np.median(took) / 1e6:,.1f}",
                     f"{others:.2f}", target])
        out[label] = {"seconds": took, "rows": report.rows, "bytes": report.bytes,
                      "files": len(report.files)}
        print(f"  {label}: {fmt(took, 2)} s, {report.rows:,} rows", flush=True)


def incremental(args: argparse.Namespace, eng: Any, result: Any, root: Path,
                rows: list[list[str]], out: dict[str, Any]) -> None:
    from engine.destinations import Destination
    from engine.exports import Exporter

    names = tuple(eng.names)
    later = eng.run(B10_NOW_MS + DAY_MS)
    changed = sum(len(result[n] ^ later[n]) for n in names)
    took, rerun = [], []
    report: Any = None
    for r in range(args.rounds):
        base = root / f"inc-{r}"
        d = Destination("bench", "parquet", names, "email_targeting", path=base / "files",
                        mode="incremental")
        ex = Exporter(eng, base / "state", threads=args.threads)
        ex.export(d, result, force=True, checked=True)
        started = time.perf_counter()
        report = ex.export(d, later, force=True, checked=True)
        took.append(time.perf_counter() - started)
        started = time.perf_counter()
        again = ex.export(d, later, force=True, checked=True)
        rerun.append(time.perf_counter() - started)
        assert again.status == "unchanged"
        shutil.rmtree(base)
    rows.append(["incremental, one day later (changes only)", f"{report.rows:,}",
                 f"{report.bytes / 1e6:,.1f}", fmt(took, 2), "", "", f"{changed:,} changes"])
    rows.append(["incremental: idempotent re-run (files intact)", "0", "0", fmt(rerun, 2),
                 "", "", ""])
    out["incremental"] = {"seconds": took, "rerun_seconds": rerun, "rows": report.rows}


def dense(args: argparse.Namespace, eng: Any, root: Path, rows: list[list[str]],
          out: dict[str, Any]) -> None:
    from engine.destinations import Destination
    from engine.exports import Exporter
    from engine.session import Result

    n = len(eng.store)
    rng = np.random.default_rng(1)
    bitmaps = {}
    for k in range(10):
        mask = rng.random(n) < args.dense
        bitmaps[f"dense_{k}"] = BitMap(np.flatnonzero(mask).astype(np.uint32))
    result = Result(B10_NOW_MS, bitmaps, eng.store.keys)
    d = Destination("bench", "parquet", tuple(bitmaps), "email_targeting", path=root)
    exporter_of = lambda state: Exporter(eng, state, threads=args.threads)  # noqa: E731
    before = cpu_snapshot()
    took, report = timed_export(exporter_of, d, result, root, args.rounds)
    others = other_cpus(before, cpu_snapshot())
    rows.append([f"dense: 10 segments of {args.dense:.0%} of the profiles, key only",
                 f"{report.rows:,}", f"{report.bytes / 1e6:,.1f}", fmt(took, 2),
                 f"{report.rows / np.median(took) / 1e6:,.1f}", f"{others:.2f}", ""])
    out["dense"] = {"seconds": took, "rows": report.rows, "bytes": report.bytes}
    print(f"  dense: {fmt(took, 2)} s, {report.rows:,} rows", flush=True)


def delivery(args: argparse.Namespace, eng: Any, root: Path, rows: list[list[str]],
             out: dict[str, Any]) -> None:
    from engine.delivery import Activation
    from engine.destinations import Destination
    from engine.stream import MembershipChange

    n = len(eng.store)
    rng = np.random.default_rng(2)
    at = dt.datetime(2025, 1, 1, 1, tzinfo=dt.UTC)
    keys = eng.store.keys
    who = rng.integers(0, n, args.changes)
    ids = keys.take(who).to_pylist()
    changes = [MembershipChange(ids[i], "recent_buyers" if i % 2 else "high_value",
                                "realized" if (i // 2) % 2 == 0 else "exited",
                                at + dt.timedelta(milliseconds=i // 100), int(who[i]))
               for i in range(args.changes)]
    per_call = 1000
    for sink_kind in ("callable", "jsonl"):
        for sync in ("batch", "none"):
            caller, total = [], []
            for r in range(args.rounds):
                base = root / f"deliver-{sink_kind}-{sync}-{r}"
                d = Destination("bench", sink_kind, ("recent_buyers", "high_value"),
                                "onsite_personalization", attributes=("country",),
                                sink=(lambda records: None) if sink_kind == "callable" else None,
                                path=base / "out.jsonl" if sink_kind == "jsonl" else None,
                                batch_size=500, batch_seconds=0.05, backfill=False)
                act = Activation(eng, [d], base / "state", at=B10_NOW_MS + 3_600_000,
                                 sync=sync)
                clock = act.clock
                spent = 0.0
                started = time.perf_counter()
                for lo in range(0, len(changes), per_call):
                    t0 = time.perf_counter()
                    act._route(changes[lo:lo + per_call], None, clock)
                    spent += time.perf_counter() - t0
                assert act.flush(timeout=600)
                total.append(time.perf_counter() - started)
                caller.append(spent)
                stats = act.stats()["bench"]
                assert stats.delivered == stats.enqueued == len(changes), stats
                act.close()
                shutil.rmtree(base)
            us = [t / len(changes) * 1e6 for t in caller]
            us_total = [t / len(changes) * 1e6 for t in total]
            label = f"delivery, {sink_kind} sink, outbox sync={sync}"
            rows.append([label, f"{len(changes):,}", "", f"caller {fmt(us, 1)} µs/change",
                         "", "", f"delivered: {fmt(us_total, 1)} µs/change"])
            out[label] = {"caller_us": us, "delivered_us": us_total}
            print(f"  {label}: caller {fmt(us, 1)} µs, delivered {fmt(us_total, 1)} µs per "
                  "change", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dense", type=float, default=0.5,
                        help="share of profiles in each dense segment (0 to skip)")
    parser.add_argument("--changes", type=int, default=100_000,
                        help="membership changes per delivery round")
    parser.add_argument("--only", default="snapshot,incremental,dense,delivery")
    parser.add_argument("--data", type=Path, default=REPO / ".bench-data")
    parser.add_argument("--build", action="store_true", help="generate missing B10 data")
    parser.add_argument("--out", type=Path, help="where files are written (default: a temporary "
                        "directory in --data)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write every measurement")
    args = parser.parse_args(argv)
    sections = set(args.only.split(","))
    store_dir = ensure_data(args.data, args.profiles, args.build)
    if store_dir is None:
        print(f"no B10 data for {args.profiles:,} profiles in {args.data} (--build)")
        return 2
    import engine

    root = args.out or Path(tempfile.mkdtemp(prefix="export-bench-", dir=args.data))
    root.mkdir(parents=True, exist_ok=True)
    st = open_store(store_dir, True)
    eng = engine.Engine(st, tier="kernel", threads=args.threads, background=False)
    for name, text in b10_segments().items():
        eng.define(name, text)
    started = time.perf_counter()
    result = eng.run(B10_NOW_MS)
    print(f"{len(st):,} profiles; segments evaluated in {time.perf_counter() - started:.2f} s "
          "(not part of the export timings)", flush=True)
    rows: list[list[str]] = []
    out: dict[str, Any] = {"profiles": args.profiles, "rounds": args.rounds}
    try:
        if "snapshot" in sections:
            snapshot(args, eng, result, root, rows, out)
        if "incremental" in sections:
            incremental(args, eng, result, root, rows, out)
        if "dense" in sections and args.dense > 0:
            dense(args, eng, root, rows, out)
        if "delivery" in sections:
            delivery(args, eng, root, rows, out)
    finally:
        if args.out is None:
            shutil.rmtree(root, ignore_errors=True)
    print_table(f"Activation, B10 {args.profiles:,} profiles, {args.threads} threads, "
                f"{args.rounds} rounds",
                ["what", "rows", "MB", "seconds, median (min–max)", "M rows/s",
                 "other CPUs", "note"], rows)
    print(memory_note())
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
