"""B10 baselines: DuckDB, Polars and hand-written Numba agree, and how fast each is.

Run from the repository root: ``python -m benches.baselines.check_b10 --profiles 200000``
(or ``python benches/baselines/check_b10.py``; default 1,000,000 profiles; the reference
size is ``--profiles 10000000``). The B10 Parquet files are generated once into
``--data`` (default ``.bench-data/``, `bench_store.data_files`); the store built from them
is cached beside them as ``store/`` (as ``benches/bench_layout.py`` does).

1. **Edge cases.** The hand-made profiles of `benches.baselines.edge_b10` (window bounds,
   events after ``now``, equal timestamps, null categories, prices and attributes) through
   every engine and mode, against members derived by hand from docs/language.md.
2. **Agreement.** Every segment S1..S10 is evaluated by DuckDB (native tables and Arrow
   scans), Polars (in-memory DataFrames) and the Numba kernels over the store, and so is the
   fused "all 10" query of each. Every engine must return *exactly* the same member set per
   segment (not just the same count); the fused results must equal the separate ones, and
   the roaring BitMaps built from the Numba masks and flags must hold exactly those members.
3. **Timings.** Median (min–max) ms over interleaved rounds (every case once per round,
   rotating the order; the agreement pass is the warm-up), 2 threads everywhere, in the
   layout of performance-baselines.md §2.1, then next to that document's 10M numbers. The
   machine's parallel read bandwidth (before and after) and the CPU time other processes
   took during the timings are printed with them: on a shared VM they explain most of the
   difference from the document (which measured 23.4 GB/s on an otherwise idle machine).

At 10M profiles the process peaks at about 14 GB (the store, DuckDB's tables, the Arrow
tables and Polars' DataFrames side by side) and a run with 5 rounds takes 10-15 minutes.
Exit status 0 when everything agrees. Semantics are pqlite's, from docs/language.md (see
`benches.baselines.b10`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
for _path in (REPO, REPO / "benches"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
os.environ.setdefault("POLARS_MAX_THREADS", "2")  # before polars is imported
os.environ.setdefault("COLUMNS", "190")  # rich's width when piped: keep the tables whole

import argparse  # noqa: E402
import gc  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from benches.baselines import numba_b10 as nb  # noqa: E402
from benches.baselines.b10 import ALL, DAY_MS, NAMES, SEGMENTS  # noqa: E402
from benches.baselines.duckdb_b10 import DuckDBB10  # noqa: E402
from benches.baselines.polars_b10 import PolarsB10  # noqa: E402

from bench_store import data_files  # noqa: E402
from common import fmt, print_table, summary  # noqa: E402
from store import ProfileStore  # noqa: E402
from store.synth import B10_NOW_MS  # noqa: E402

SEPARATE = "ALL10_separate"
# performance-baselines.md §2.1/§2.2 at 10M profiles: members, DuckDB native, DuckDB on
# Arrow, Polars (DataFrame.lazy), Numba CSR per-profile (ALL: the fused kernel). ms medians.
REFERENCE: dict[str, tuple[int | None, float | None, float | None, float | None,
                           float | None]] = {
    "S1": (980_928, 94.1, 50.0, 11.1, 1.5),
    "S2": (1_771_390, 139.2, 94.9, 14.8, 4.1),
    "S3": (62_009, 404.5, 111.8, 47.7, 51.7),
    "S4": (1_742, 562.5, 363.1, 97.9, 78.3),
    "S5": (6_831, 466.3, 156.6, 60.3, 87.3),
    "S6": (24_492, 136.7, 107.9, 48.0, 43.2),
    "S7": (3_038, 616.9, 262.9, 76.3, 43.5),
    "S8": (142_941, 4000, 649.3, 195.0, 86.2),
    "S9": (273_362, 57.3, 81.3, 9.9, 3.8),
    "S10": (36_543, 2581, 1181, 376.5, 103.9),
    ALL: (None, 9367, 7296, 2791, 204.7),
    SEPARATE: (None, 9057, 3266, 937.3, 546.8),
    "S8_alt": (None, 949.9, 682.5, None, None),
}
ENGINES = ("duckdb", "duckdb_arrow", "polars", "numba")
HEADS = {"duckdb": "DuckDB (native tables)", "duckdb_arrow": "DuckDB on Arrow",
         "polars": "Polars (DataFrame.lazy)", "numba": "Numba (store)"}


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_snapshot() -> tuple[float, float, float]:
    """(busy CPU seconds of the whole machine, of this process, wall time)."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:9]]
    busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return busy, ru.ru_utime + ru.ru_stime, time.perf_counter()


def other_cpus(before: tuple[float, float, float], after: tuple[float, float, float]) -> float:
    """How many CPUs other processes kept busy, on average, between two snapshots."""
    wall = after[2] - before[2]
    return max(0.0, (after[0] - before[0]) - (after[1] - before[1])) / wall if wall else 0.0


def load_store(profiles_file: Path, events_file: Path) -> tuple[ProfileStore, str]:
    """The store of these files: the cached one beside them, else built (and cached)."""
    cached = profiles_file.parent / "store"
    if (cached / "manifest.json").exists():
        try:
            return ProfileStore.open(cached), f"opened {cached}"
        except Exception as e:  # a store written by an older format: rebuild
            print(f"cannot open cached store {cached} ({e}); rebuilding")
    st = ProfileStore.from_parquet(profiles_file, events_file, profile_id="profile_id")
    try:
        st.save(cached)
    except OSError as e:  # pragma: no cover - a read-only data directory
        print(f"could not cache the store in {cached}: {e}")
    return st, "built from Parquet"


def in_memory(st: ProfileStore) -> None:
    """Copy a memory-mapped store's arrays into anonymous memory (the layout doc §2 timed)."""
    from dataclasses import replace

    def copy(a: np.ndarray) -> np.ndarray:
        return a if a.flags.owndata and a.flags.writeable else np.array(a, copy=True)

    for name, col in list(st.profiles.items()):
        st.profiles[name] = replace(col, values=copy(col.values),
                                    valid=None if col.valid is None else copy(col.valid))
    parts = []
    for part in st.events.partitions:
        cols = {name: replace(c, values=copy(c.values),
                              valid=None if c.valid is None else copy(c.valid))
                for name, c in part.columns.items()}
        parts.append(replace(part, offsets=copy(part.offsets), time=copy(part.time),
                             columns=cols, seq=None if part.seq is None else copy(part.seq)))
    st.events.partitions[:] = parts
    st.events._views.clear()


def align(keys: np.ndarray, pids: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """``flags`` (one per ``pids``) reordered to the store's profile order ``keys``."""
    order = np.argsort(pids, kind="stable")
    korder = np.argsort(keys, kind="stable")
    if not np.array_equal(pids[order], keys[korder]):
        raise AssertionError("the fused query did not return every profile exactly once")
    out = np.empty(len(keys), flags.dtype)
    out[korder] = flags[order]
    return out


def check_edges(engines: list[str], threads: int) -> bool:
    """Every engine on the hand-made edge profiles of `edge_b10`, against the expected sets."""
    import tempfile

    from benches.baselines.edge_b10 import CASES, expected, tables

    want = expected()
    got: dict[str, dict[str, list[int]]] = {}
    profiles, events = tables()
    with tempfile.TemporaryDirectory(prefix="pqlite-b10-edges-") as tmp:
        pfile, efile = Path(tmp) / "profiles.parquet", Path(tmp) / "events.parquet"
        pq.write_table(profiles, pfile)
        pq.write_table(events, efile)
        st = ProfileStore.from_parquet(pfile, efile, profile_id="profile_id")
        kernels = nb.Kernels(nb.arrays_from_store(st))
        flags = kernels.run_all(np.zeros(len(st), np.uint16))
        got["Numba"] = {s: kernels.members(s).tolist() for s in SEGMENTS}
        got["Numba fused"] = {s: np.sort(kernels.a.keys[nb.mask_ids(flags, i)]).tolist()
                              for i, s in enumerate(SEGMENTS)}
        fused_maps = nb.flags_to_bitmaps(flags, len(SEGMENTS))
        got["Numba fused BitMaps"] = {
            s: sorted(int(kernels.a.keys[i]) for i in fused_maps[j])
            for j, s in enumerate(SEGMENTS)}
        got["Numba BitMap"] = {
            s: sorted(int(kernels.a.keys[i]) for i in nb.mask_to_bitmap(
                kernels.run(s, np.zeros(len(st), np.bool_))))
            for s in SEGMENTS}
        others: list[tuple[str, object]] = []
        if "duckdb" in engines:
            others.append(("DuckDB", DuckDBB10.native(pfile, efile, threads=threads)))
        if "duckdb_arrow" in engines:
            others.append(("DuckDB Arrow", DuckDBB10.arrow(pq.read_table(pfile),
                                                         pq.read_table(efile),
                                                         threads=threads)))
        if "polars" in engines:
            others.append(("Polars", PolarsB10.load(pfile, efile)))
        for name, eng in others:
            got[name] = {s: eng.members(s).tolist() for s in SEGMENTS}  # type: ignore[attr-defined]
            fused = eng.all_members()  # type: ignore[attr-defined]
            got[f"{name} fused"] = {s: fused[s].tolist() for s in SEGMENTS}
    ok = True
    rows = []
    for seg in SEGMENTS:
        wrong = [name for name, res in got.items() if res[seg] != want[seg]]
        ok &= not wrong
        rows.append([seg, " ".join(map(str, want[seg])) or "–",
                     "all agree" if not wrong else "WRONG: " + ", ".join(
                         f"{name} {got[name][seg]}" for name in wrong)])
    print_table(
        f"Edge cases: {len(CASES)} hand-made profiles (benches/baselines/edge_b10.py), "
        f"expected members from docs/language.md; {len(got)} evaluations",
        ["seg", "expected profile_ids", "engines"], rows)
    if not ok:
        for seg in SEGMENTS:
            for pid in sorted({p for res in got.values() for p in res[seg]} ^ set(want[seg])):
                print(f"  {seg} profile {pid}: {CASES[pid][0]}")
    print(f"edge cases: {'PASS' if ok else 'FAIL'}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data", type=Path, default=REPO / ".bench-data")
    parser.add_argument("--mmap", action="store_true",
                        help="time the Numba kernels on the memory-mapped store as opened "
                             "(default: copy its arrays into memory first)")
    parser.add_argument("--engines", default=",".join(ENGINES),
                        help=f"comma-separated subset of {','.join(ENGINES)}")
    args = parser.parse_args(argv)
    engines = [e for e in args.engines.split(",") if e]
    if "numba" not in engines:
        parser.error("numba is the reference every engine is compared with")
    nb.set_threads(args.threads)
    t_all = time.perf_counter()
    edges_ok = check_edges(engines, args.threads)
    bandwidth = [nb.read_bandwidth()]

    # ------------------------------------------------------------------ load
    profiles_file, events_file = data_files(args.data, args.profiles)
    loads: list[list[str]] = []
    started = time.perf_counter()
    st, how = load_store(profiles_file, events_file)
    if not args.mmap:
        in_memory(st)
    a = nb.arrays_from_store(st, B10_NOW_MS)
    kernels = nb.Kernels(a)
    loads.append(["store (numba)", f"{time.perf_counter() - started:.1f}",
                  f"{st.nbytes / 1e9:.2f}", f"{how}{'' if args.mmap else ', copied to RAM'}"])
    print(f"B10: {len(st):,} profiles, {len(st.events):,} events "
          f"({len(st.events) / len(st):.2f} per profile); partitions: "
          + ", ".join(f"{'/'.join(p.types or ('all',))} {len(p):,}" for p in st.events.partitions))

    engines_by_name: dict[str, object] = {"numba": kernels}
    if "duckdb" in engines:
        started = time.perf_counter()
        duck = DuckDBB10.native(profiles_file, events_file, threads=args.threads)
        loads.append(["DuckDB native tables", f"{time.perf_counter() - started:.1f}",
                      f"{duck.memory_bytes() / 1e9:.2f}", "CREATE TABLE AS read_parquet"])
        engines_by_name["duckdb"] = duck
    if "duckdb_arrow" in engines:
        started = time.perf_counter()
        p_arrow, e_arrow = pq.read_table(profiles_file), pq.read_table(events_file)
        duck_arrow = DuckDBB10.arrow(p_arrow, e_arrow, threads=args.threads)
        loads.append(["DuckDB on Arrow", f"{time.perf_counter() - started:.1f}",
                      f"{(p_arrow.nbytes + e_arrow.nbytes) / 1e9:.2f}", "pq.read_table"])
        engines_by_name["duckdb_arrow"] = duck_arrow
    if "polars" in engines:
        started = time.perf_counter()
        polars = PolarsB10.load(profiles_file, events_file)
        loads.append(["Polars DataFrames", f"{time.perf_counter() - started:.1f}",
                      f"{polars.memory_bytes() / 1e9:.2f}", "pl.read_parquet"])
        engines_by_name["polars"] = polars
    loads.append(["(process)", "", f"RSS {rss_mb() / 1e3:.2f}", f"peak {peak_mb() / 1e3:.2f}"])

    # ------------------------------------------------------------------ agreement
    first_call: dict[str, float] = {}
    members: dict[str, dict[str, np.ndarray]] = {e: {} for e in engines}
    masks: dict[str, np.ndarray] = {}
    for seg in SEGMENTS:
        started = time.perf_counter()
        masks[seg] = kernels.run(seg, np.zeros(a.n, np.bool_))
        first_call[seg] = time.perf_counter() - started
        members["numba"][seg] = np.sort(a.keys[nb.mask_ids(masks[seg])])
        for e in engines:
            if e != "numba":
                members[e][seg] = engines_by_name[e].members(seg)  # type: ignore[attr-defined]
    started = time.perf_counter()
    flags = kernels.run_all(np.zeros(a.n, np.uint16))
    first_call[ALL] = time.perf_counter() - started
    fused: dict[str, np.ndarray] = {"numba": flags}
    for e in engines:
        if e != "numba":
            pids, f = engines_by_name[e].run_all()  # type: ignore[attr-defined]
            fused[e] = align(a.keys, pids, f)
    for e in ("duckdb", "duckdb_arrow"):
        if e in engines:
            members[e]["S8_alt"] = engines_by_name[e].members("S8_alt")  # type: ignore[attr-defined]

    ok = True
    rows = []
    fused_bitmaps = nb.flags_to_bitmaps(flags, len(SEGMENTS))
    ref_counts = args.profiles == 10_000_000
    for i, seg in enumerate(SEGMENTS):
        mine = members["numba"][seg]
        same = {e: np.array_equal(members[e][seg], mine) for e in engines}
        fused_same = all(np.array_equal(np.sort(a.keys[nb.mask_ids(fused[e], i)]), mine)
                         for e in engines)
        bitmap = nb.mask_to_bitmap(masks[seg])
        bitmap_same = (len(bitmap) == len(mine)
                       and bitmap == nb.ids_to_bitmap(nb.mask_ids(masks[seg]))
                       and bitmap == nb.mask_to_bitmap(flags, i)
                       and bitmap == fused_bitmaps[i]
                       and np.array_equal(a.keys[np.asarray(bitmap.to_array(), np.int64)],
                                          members["numba"][seg]))
        alt = ""
        if "S8_alt" in members.get("duckdb", {}) and seg == "S8":
            alt = " (S8_alt too)" if np.array_equal(members["duckdb"]["S8_alt"], mine) else \
                " (S8_alt DIFFERS)"
            same["duckdb"] &= alt == " (S8_alt too)"
        row_ok = all(same.values()) and fused_same and bitmap_same
        ok &= row_ok
        ref = REFERENCE[seg][0]
        rows.append([seg, NAMES[seg], f"{len(mine):,}",
                     f"{len(mine) / a.n:.3%}",
                     f"{ref:,}" if ref_counts and ref is not None else "",
                     *(("same" if same[e] else "DIFFERENT") + (alt if e == "duckdb" else "")
                       for e in engines if e != "numba"),
                     "same" if fused_same else "DIFFERENT",
                     "same" if bitmap_same else "DIFFERENT",
                     "PASS" if row_ok else "FAIL"])
    flags_same = all(np.array_equal(fused[e], flags) for e in engines)
    ok &= flags_same
    print_table(
        f"Agreement at {a.n:,} profiles: members of every segment, per engine, vs Numba "
        "(exact sets, sorted profile_id)",
        ["seg", "name", "members", "share", "doc (10M)",
         *(HEADS[e] for e in engines if e != "numba"), "fused ALL, every engine",
         "Numba BitMaps", ""],
        rows,
    )
    print(f"fused ALL flags identical across engines ({', '.join(engines)}): {flags_same}")
    print(f"all engines agree on every segment: {'PASS' if ok else 'FAIL'}")
    ok &= edges_ok
    _s5_borderline(a)

    # ------------------------------------------------------------------ timings
    cases: list[tuple[str, str, Callable[[], object]]] = []
    for e in engines:
        eng = engines_by_name[e]
        if e == "numba":
            mask = np.zeros(a.n, np.bool_)
            fl = np.zeros(a.n, np.uint16)
            for seg in SEGMENTS:
                cases.append((e, seg, lambda s=seg, m=mask: kernels.run(s, m)))
            cases.append((e, ALL, lambda f=fl: kernels.run_all(f)))
            cases.append((e, SEPARATE, lambda m=mask: [kernels.run(s, m) for s in SEGMENTS]))
            for seg in SEGMENTS:
                m = masks[seg]
                cases.append(("bitmap", seg, lambda m=m: nb.mask_to_bitmap(m)))
                cases.append(("bitmap_flatnonzero", seg,
                              lambda m=m: nb.ids_to_bitmap(np.flatnonzero(m).astype(np.uint32))))
            cases.append(("bitmap", ALL, lambda: nb.flags_to_bitmaps(flags, len(SEGMENTS))))
        else:
            for seg in SEGMENTS:
                cases.append((e, seg, lambda s=seg, g=eng: g.run(s)))  # type: ignore[attr-defined]
            cases.append((e, ALL, lambda g=eng: g.run_all()))  # type: ignore[attr-defined]
            cases.append((e, SEPARATE,
                          lambda g=eng: [g.run(s) for s in SEGMENTS]))  # type: ignore[attr-defined]
            if e.startswith("duckdb"):
                cases.append((e, "S8_alt", lambda g=eng: g.run("S8_alt")))  # type: ignore[attr-defined]
    samples: dict[tuple[str, str], list[float]] = {(e, s): [] for e, s, _ in cases}
    print(f"\ntiming {len(cases)} cases x {args.rounds} rounds ...", flush=True)
    cpu_before = cpu_snapshot()
    for r in range(args.rounds):
        shift = (r * len(cases)) // max(args.rounds, 1)
        for e, seg, run in cases[shift:] + cases[:shift]:
            gc.collect()
            started = time.perf_counter()
            run()
            samples[(e, seg)].append((time.perf_counter() - started) * 1e3)

    others = other_cpus(cpu_before, cpu_snapshot())
    bandwidth.append(nb.read_bandwidth())

    def cell(e: str, seg: str, digits: int = 1) -> str:
        values = samples.get((e, seg))
        if not values:
            return "–"
        med = summary(values)[0]
        return fmt(values, 0 if med >= 1000 else digits)

    labels = [*SEGMENTS, ALL, SEPARATE, "S8_alt"]
    print_table(
        f"Batch evaluation at {a.n:,} profiles, in memory, {args.threads} threads: "
        f"ms, median (min–max) of {args.rounds} interleaved rounds",
        ["seg", "members", *(HEADS[e] for e in engines), "mask → BitMap"],
        [[seg, f"{len(members['numba'][seg]):,}" if seg in SEGMENTS else "",
          *(cell(e, seg) for e in engines), cell("bitmap", seg, 2)] for seg in labels],
    )
    print("Numba: per-segment kernels write a bool mask over all profiles; ALL writes uint16 "
          "flags in one pass (the 'mask → BitMap' cell of ALL: all ten BitMaps from the flags).")
    print("DuckDB / Polars: the members' profile_id as numpy int64 (ALL: profile_id and uint16 "
          "flags for every profile). ALL10_separate: the ten segments back to back.")

    print_table(
        "mask → pyroaring BitMap, ms median (min–max)",
        ["seg", "members", "Numba → portable serialisation → BitMap.deserialize",
         "flatnonzero → uint32 → array('I') → BitMap"],
        [[seg, f"{len(members['numba'][seg]):,}", cell("bitmap", seg, 2),
          cell("bitmap_flatnonzero", seg, 2)] for seg in SEGMENTS],
    )

    def vs(e: str, seg: str, ref: float | None) -> str:
        values = samples.get((e, seg))
        if not values or ref is None:
            return "–"
        med = summary(values)[0]
        return f"{med:,.1f} / {ref:,.1f}"

    print_table(
        f"Medians at {a.n:,} profiles next to performance-baselines.md §2.1/§2.2 (10M "
        "profiles, Numba on one CSR of all events): ours / doc, ms",
        ["seg", *(HEADS[e] for e in engines)],
        [[seg, *(vs(e, seg, REFERENCE[seg][1 + ENGINES.index(e)]) for e in engines)]
         for seg in labels],
    )
    print_table(
        "Numba first call (compile, or load from the cache) in this process, s",
        ["kernel", *SEGMENTS, ALL],
        [["first call", *(f"{first_call[s]:.2f}" for s in [*SEGMENTS, ALL])]],
    )
    loads.append(["(process, end)", "", f"RSS {rss_mb() / 1e3:.2f}",
                  f"peak {peak_mb() / 1e3:.2f}"])
    print_table("Load and memory", ["what", "load s", "GB", "how"], loads)
    print(f"Machine speed: parallel read {bandwidth[0][0]:.1f} GB/s before the timings and "
          f"{bandwidth[1][0]:.1f} GB/s after ({args.threads} threads; the doc's machine: 23.4 "
          f"GB/s, §4). Other processes used {others:.2f} of the {os.cpu_count()} CPUs on "
          "average during the timings (0 on a quiet machine).")
    print(f"total wall time {time.perf_counter() - t_all:.0f} s; agreement: "
          f"{'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


def _s5_borderline(a: nb.B10Arrays) -> None:
    """S5 compares a float sum with 500: engines summing in different orders could disagree
    only for a spend of exactly 500.00 (in cents). Count those, and whether their float sum
    in time order (the language's order) or in reverse order exceeds 500."""
    lo = a.now - 30 * DAY_MS
    idx = np.flatnonzero((a.pur_ts > lo) & (a.pur_ts <= a.now))
    cents = np.rint(a.pur_price[idx] * 100).astype(np.int64)
    owner = np.searchsorted(np.asarray(a.pur_off, np.int64), idx, side="right") - 1
    spend = np.bincount(owner, weights=cents, minlength=a.n)
    exact = np.flatnonzero(spend == 50_000)
    flips = 0
    for p in exact:
        prices = a.pur_price[idx[owner == p]]
        forward = backward = 0.0
        for x in prices:
            forward += float(x)
        for x in prices[::-1]:
            backward += float(x)
        flips += (forward > 500.0) != (backward > 500.0) or forward > 500.0
    print(f"S5: {len(exact)} profile(s) spent exactly 500.00 in 30 days (not members); "
          f"{flips} of them have a float sum above 500 in time or reverse order "
          "(0: summation order cannot split the engines)")


if __name__ == "__main__":
    raise SystemExit(main())
