"""Why events are partitioned by type: one scan on the type's partition vs on all events.

Run: ``python benches/bench_layout.py`` (10M profiles; ``--profiles 1000000`` is quicker).
Uses the B10 Parquet files of ``benches/bench_store.py`` (generated into ``.bench-data/`` on
first use) and builds the store once (cached as ``.bench-data/b10-N/store``).

For each event type, a Numba kernel counts each profile's events of that type in the last 7
days (B10's S3 shape, the inner loop of a compiled segment) on two layouts of the same store:

* **partition**: the type's own CSR partition (what the store keeps);
* **one CSR**: every event in one CSR by profile (`EventStore.view()` of all types), testing
  each event's type, as a store without partitions would have to.

Both must give the same counts. Interleaved rounds, median (min–max) ms, 2 threads.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numba
import numpy as np

from bench_store import data_files
from common import fmt, print_table
from store import ProfileStore
from store.synth import B10_NOW_MS

REPO = Path(__file__).resolve().parents[1]
WEEK_MS = 7 * 86_400_000


@numba.njit(parallel=True, cache=True)
def count_partition(offsets, time, lo, out):  # type: ignore[no-untyped-def]
    for p in numba.prange(len(offsets) - 1):
        n = 0
        for i in range(offsets[p], offsets[p + 1]):
            n += time[i] >= lo
        out[p] = n


@numba.njit(parallel=True, cache=True)
def count_mixed(offsets, time, types, code, lo, out):  # type: ignore[no-untyped-def]
    for p in numba.prange(len(offsets) - 1):
        n = 0
        for i in range(offsets[p], offsets[p + 1]):
            n += (types[i] == code) & (time[i] >= lo)
        out[p] = n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--data", type=Path, default=REPO / ".bench-data")
    args = parser.parse_args(argv)
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))

    profiles_file, events_file = data_files(args.data, args.profiles)
    cached = profiles_file.parent / "store"
    if not (cached / "manifest.json").exists():
        ProfileStore.from_parquet(profiles_file, events_file, profile_id="profile_id").save(cached)
    st = ProfileStore.open(cached)
    started = time.perf_counter()
    everything = st.events.view(None)  # one CSR of all events (merged once)
    merge_s = time.perf_counter() - started
    type_col = everything.columns[st.schema.event_type or "eventType"]
    assert type_col.dictionary is not None
    names = type_col.dictionary.to_pylist()
    types = np.ascontiguousarray(type_col.values)
    lo = B10_NOW_MS - WEEK_MS
    n = len(st)
    a, b = np.zeros(n, np.int64), np.zeros(n, np.int64)

    samples: dict[str, dict[str, list[float]]] = {}
    for part in st.events.partitions:
        assert part.types is not None and len(part.types) == 1
        name = part.types[0]
        offsets, ts = np.asarray(part.offsets), np.asarray(part.time)
        code = names.index(name)
        # Warm up (compile or load from cache) and check both layouts agree.
        count_partition(offsets, ts, lo, a)
        count_mixed(everything.offsets, everything.time, types, code, lo, b)
        assert np.array_equal(a, b), name
        samples[name] = {"partition": [], "one CSR": []}
        for r in range(args.rounds):
            cases = [("partition", lambda o=offsets, t=ts: count_partition(o, t, lo, a)),
                     ("one CSR", lambda c=code: count_mixed(
                         everything.offsets, everything.time, types, c, lo, b))]
            for label, run in cases[r % 2 :] + cases[: r % 2]:
                started = time.perf_counter()
                run()
                samples[name][label].append((time.perf_counter() - started) * 1e3)

    print(f"B10: {n:,} profiles, {len(st.events):,} events; merging all partitions into one "
          f"CSR took {merge_s:.1f} s (done once, cached by the store)")
    rows = []
    for part in st.events.partitions:
        name = (part.types or ("?",))[0]
        s = samples[name]
        ratio = sorted(x / y for x, y in zip(s["one CSR"], s["partition"], strict=True))
        rows.append([name, f"{len(part) / len(st.events):.1%}", fmt(s["partition"], 1),
                     fmt(s["one CSR"], 1), f"{ratio[len(ratio) // 2]:.1f}x"])
    print_table(
        f"Count of a type's events in the last 7 days per profile, ms: median (min–max), "
        f"{args.rounds} rounds",
        ["event type", "share", "partition", "one CSR", "one CSR / partition"],
        rows,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
