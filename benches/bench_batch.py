"""Batch evaluation on B10: the engine against DuckDB, Polars and hand-written Numba, and how
it scales with profiles and with the number of segment definitions.

Run: ``python benches/bench_batch.py`` (10M profiles, every section; half an hour to over an
hour, mostly section f's compile times), ``python benches/bench_batch.py --quick`` (200k
profiles, a smoke check of every section in about five minutes), or pick sections:
``--only compare --profiles 10000000`` (about seven minutes, 14 GB of memory). B10 data is
read from ``--data`` (default ``.bench-data/``; ``b10-N/profiles.parquet``,
``events.parquet`` and the store ``b10-N/store``); sizes whose data is missing are skipped
unless ``--build`` is given (then generated with `store.synth.write_b10_parquet`, seed
``B10_SEED``, and imported as the other sizes were). Not collected by pytest.

Sections (``--only``, comma-separated; default all):

* **compare** (a): the ten segments of ``examples/segments.toml`` evaluated together by
  ``engine.Engine(store, threads=2).run(at=B10 now)``, warm, BitMaps included, against, in
  the same process and interleaved rounds: DuckDB SQL (`benches.baselines.duckdb_b10`),
  Polars (`benches.baselines.polars_b10`), each in its best mode (every mode is checked and
  probed first; the fastest is timed), and the hand-written Numba kernels
  (`benches.baselines.numba_b10`: the fused ``run_all`` plus its conversion of the flags to
  ten BitMaps). Every engine and mode must return exactly the same members per segment
  (exit status 1 and no timings otherwise). Ratios are taken per round (both sides timed in
  the same round), then summarised. Targets: within 1.5x of the hand-written fused kernel,
  at least 30x faster than DuckDB and 4x faster than Polars.
* **threads** (b): the engine with ``threads=1`` against the hand-written fused kernel on
  one Numba thread (BitMaps included on both sides).
* **cold** (c): a fresh process with an empty kernel cache (``PQLITE_CACHE_DIR`` a new
  directory) that defines the ten segments and runs them once, the same again reusing that
  cache (a warm-cache process), and the warm run inside a process.
* **memory** (d): the peak resident memory (``getrusage`` high-water mark) of a process that
  opens the store, defines the ten segments and runs them (kernel cache warm), and of one
  that runs the hand-written kernels, for scale.
* **profiles** (e): the engine's warm time for the ten segments at each ``--sizes`` (1M,
  3M, 10M by default), with the hand-written fused kernel beside it.
* **segments** (f): 10, 100 and 1,000 definitions of `workloads.b10_workload` (10, 50 and
  200 shapes) at ``--segments-profiles`` (1M by default): time to first results of a process
  with an empty kernel cache, of a process with a warm one, and the warm run in a process.
  An engine with evaluation tiers (``engine.Engine(tier=...)``) may answer first without
  compiling and compile in the background: the process then waits for that compiler
  (``Engine.wait``) before its warm runs, and the tables say which tier evaluated how many
  segments. A process that does not finish within ``--timeout`` seconds is killed (with
  its compilers) and reported as a timeout, with what it printed before.

Times are median (min–max) over interleaved rounds (the machine's speed drifts by 1.2-2x;
see performance-baselines.md); the CPU time other processes took during the timings is
printed with them. ``--json PATH`` writes every measurement.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO, REPO / "benches"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
os.environ.setdefault("POLARS_MAX_THREADS", "2")  # before polars is imported
os.environ.setdefault("COLUMNS", "160")  # rich's width when piped: keep the tables whole

import argparse  # noqa: E402
import contextlib  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from common import fmt, print_table, summary  # noqa: E402
from store import ProfileStore  # noqa: E402
from store.synth import B10_NOW_MS, B10_SEED  # noqa: E402
from workloads import b10_segments, b10_workload  # noqa: E402

SECTIONS = ("compare", "threads", "cold", "memory", "profiles", "segments")
TARGET_VS_NUMBA = 1.5  # engine / hand-written fused, at most
TARGET_VS_DUCKDB = 30.0  # DuckDB / engine, at least
TARGET_VS_POLARS = 4.0  # Polars / engine, at least
SHAPES_FOR = {10: 10, 100: 50, 1000: 200}
# performance-baselines.md, 10M profiles: the "all 10" times (ms) and peak memory (GB).
DOC_MS = {"numba fused": 204.7, "DuckDB best (Arrow, separate)": 3266.0,
          "Polars best (separate)": 937.3}
DOC_PEAK_GB = {"hand-written Numba bench": 2.0, "DuckDB (native tables)": 4.5,
               "Polars": 3.2}

# A child process: open the store, define, run; print timings, counts and peak memory as
# JSON. With "fork", the work runs in a child forked at start-up, so its getrusage
# high-water mark starts from a small interpreter (after exec, Linux carries the spawning
# process's high-water mark over into ru_maxrss).
CHILD = r"""
import json, os, sys, time
spec = json.load(open(sys.argv[1]))
if spec.get("fork"):
    pid = os.fork()
    if pid:
        _, status = os.waitpid(pid, 0)
        os._exit(os.waitstatus_to_exitcode(status))
t0 = time.perf_counter()
import resource
from store import ProfileStore
out = {}
if spec["what"] == "engine":
    import engine
    from collections import Counter
    t1 = time.perf_counter()
    st = ProfileStore.open(spec["store"])
    t2 = time.perf_counter()
    options = {"tier": spec["tier"]} if spec.get("tier") else {}
    eng = engine.Engine(st, threads=spec["threads"], **options)
    for name, text in spec["definitions"].items():
        eng.define(name, text)
    t3 = time.perf_counter()
    res = eng.run(at=spec["at"])
    t4 = time.perf_counter()
    first_wall = time.time() - spec["spawned"]
    out = {"import": t1 - t0, "open": t2 - t1, "define": t3 - t2, "first_run": t4 - t3,
           "first_wall": first_wall,
           "first_tiers": dict(Counter(getattr(res, "tiers", {}).values())),
           "counts": {n: res.count(n) for n in res}}
    print(json.dumps(out), flush=True)  # partial results, in case the parent times out
    # Kernels the run left to a background compiler (engines with tiers): wait for them,
    # so that the warm runs below run compiled kernels and the cache is complete.
    rounds = spec["rounds"]
    if hasattr(eng, "wait"):
        s = time.perf_counter()
        reserve = 10.0 + rounds * (t4 - t3)
        try:
            eng.wait(max(1.0, spec["deadline"] - time.time() - reserve))
            out["background"] = time.perf_counter() - s
        except Exception as e:  # the engine's wait gives up with its own timeout error
            out["background_error"] = f"{type(e).__name__} after {time.perf_counter() - s:.0f} s"
            rounds = 1
        print(json.dumps(out), flush=True)
    warm = []
    last = res
    for _ in range(rounds):
        s = time.perf_counter()
        last = eng.run(at=spec["at"])
        warm.append(time.perf_counter() - s)
    out["warm"] = warm
    out["warm_tiers"] = dict(Counter(getattr(last, "tiers", {}).values()))
else:
    sys.path.insert(0, spec["repo"])
    import numpy as np
    from benches.baselines import numba_b10 as nb
    t1 = time.perf_counter()
    st = ProfileStore.open(spec["store"])
    t2 = time.perf_counter()
    nb.set_threads(spec["threads"])
    kernels = nb.Kernels(nb.arrays_from_store(st, spec["at"]))
    maps = nb.flags_to_bitmaps(kernels.run_all(), 10)
    t4 = time.perf_counter()
    first_wall = time.time() - spec["spawned"]
    warm = []
    for _ in range(spec["rounds"]):
        s = time.perf_counter()
        nb.flags_to_bitmaps(kernels.run_all(), 10)
        warm.append(time.perf_counter() - s)
    out = {"import": t1 - t0, "open": t2 - t1, "define": 0.0, "first_run": t4 - t2,
           "first_wall": first_wall, "warm": warm,
           "counts": {str(i): len(m) for i, m in enumerate(maps)}}
with open("/proc/self/status") as f:
    status = {line.split(":")[0]: int(line.split()[1]) for line in f
              if line.startswith(("VmHWM", "VmRSS"))}
out["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
out["hwm_mb"] = status["VmHWM"] / 1024
out["rss_mb"] = status["VmRSS"] / 1024
out["store_mb"] = st.nbytes / 1e6
print(json.dumps(out))
"""


# ----------------------------------------------------------------------------- helpers


def ms(values: list[float]) -> list[float]:
    return [v * 1e3 for v in values]


def cell(values: list[float], digits: int = 1) -> str:
    """Median (min–max), with fewer digits for large values."""
    if not values:
        return "–"
    return fmt(values, 0 if summary(values)[0] >= 1000 else digits)


def ratio_cell(values: list[float]) -> str:
    return fmt(values, 2) + "x" if values else "–"


def tiers_note(tiers: dict[str, int] | None) -> str:
    """How many segments each evaluation tier ran, e.g. "; vector 90, kernel 10"."""
    if not tiers:
        return ""
    return "; " + ", ".join(f"{k} {v}" for k, v in sorted(tiers.items()))


def verdict(value: float, target: float, at_least: bool) -> str:
    ok = value >= target if at_least else value <= target
    return f"{'>=' if at_least else '<='} {target:g}x {'PASS' if ok else 'FAIL'}"


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def data_paths(data: Path, profiles: int) -> tuple[Path, Path, Path]:
    target = data / f"b10-{profiles}"
    return target / "profiles.parquet", target / "events.parquet", target / "store"


def ensure_data(data: Path, profiles: int, build: bool) -> Path | None:
    """The store directory of B10 at ``profiles``: built from the Parquet files when missing
    (generated first when those are missing too) if ``build``, else None when missing."""
    pfile, efile, store = data_paths(data, profiles)
    if (store / "manifest.json").exists():
        return store
    if not build and not (pfile.exists() and efile.exists()):
        return None
    if not (pfile.exists() and efile.exists()):
        from store.synth import write_b10_parquet

        started = time.perf_counter()
        write_b10_parquet(pfile.parent, n_profiles=profiles, seed=B10_SEED)
        print(f"generated {pfile.parent} in {time.perf_counter() - started:.0f} s", flush=True)
    started = time.perf_counter()
    ProfileStore.from_parquet(pfile, efile, profile_id="profile_id").save(store)
    print(f"built {store} in {time.perf_counter() - started:.0f} s", flush=True)
    return store


def open_store(store: Path, in_memory: bool) -> ProfileStore:
    st = ProfileStore.open(store)
    if in_memory:  # what performance-baselines.md timed: arrays in anonymous memory
        from benches.baselines.check_b10 import in_memory as copy_to_memory

        copy_to_memory(st)
    return st


def member_keys(st: ProfileStore, bitmap: Any) -> np.ndarray:
    """Sorted profile_id values of a BitMap of profile indices."""
    keys = np.asarray(st.keys.to_numpy(zero_copy_only=False), dtype=np.int64)
    return np.sort(keys[np.asarray(bitmap.to_array(), dtype=np.int64)])


def interleave(cases: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Seconds of every case in every round; the order rotates from round to round."""
    names = list(cases)
    samples: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()
            started = time.perf_counter()
            cases[name]()
            samples[name].append(time.perf_counter() - started)
    return samples


def run_child(spec: dict[str, Any], cache: Path | None, timeout: float) -> dict[str, Any]:
    """Run CHILD with ``spec``; its JSON plus ``wall`` (s), or ``{"error": ...}``."""
    env = dict(os.environ)
    if cache is not None:
        env["PQLITE_CACHE_DIR"] = str(cache)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({**spec, "spawned": time.time(), "deadline": time.time() + timeout}, f)
        spec_file = f.name
    started = time.perf_counter()
    timed_out = False
    try:
        proc = subprocess.Popen([sys.executable, "-c", CHILD, spec_file], cwd=REPO, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the forked worker and compilers too
            out, err = proc.communicate()
            timed_out = True
        # A background compiler the engine started may outlive the child: it belongs to the
        # child's session only, and would compete with the next measurement.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    finally:
        os.unlink(spec_file)
    wall = time.perf_counter() - started
    lines = [line for line in out.splitlines() if line.startswith("{")]
    result: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    result["wall"] = wall
    if timed_out:
        result["error"] = "timeout"
    elif proc.returncode != 0 or not lines:
        tail = " | ".join(err.strip().splitlines()[-2:])
        result["error"] = f"exit {proc.returncode}: {tail[-160:]}"
    return result


def memory_note() -> str:
    """This process's resident memory and what the machine has available, GB."""
    with open("/proc/self/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    with open("/proc/meminfo") as f:
        avail = next(int(line.split()[1]) for line in f if line.startswith("MemAvailable:"))
    return f"process RSS {rss / 2**20:.1f} GB, machine MemAvailable {avail / 2**20:.1f} GB"


def dir_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.results: dict[str, Any] = {"args": {k: (str(v) if isinstance(v, Path) else v)
                                                 for k, v in vars(args).items()}}
        self.summary: list[list[str]] = []
        self.ok = True
        self.warm_ms: list[float] = []  # the engine's warm run at --profiles (section a)

    def engine(self, st: ProfileStore, threads: int) -> tuple[Any, Any, float]:
        """An `engine.Engine` over ``st`` with the ten B10 segments defined and run once
        (compiling, or loading from the kernel cache, and waiting for any background
        compilation): (engine, first result, seconds of the first run)."""
        import engine

        options = {"tier": self.args.tier} if self.args.tier else {}
        eng = engine.Engine(st, threads=threads, **options)
        for name, text in b10_segments().items():
            eng.define(name, text)
        started = time.perf_counter()
        first = eng.run(at=B10_NOW_MS)
        took = time.perf_counter() - started
        if hasattr(eng, "wait"):
            eng.wait()
        return eng, first, took

    def note(self, section: str, what: str, value: str, target: str = "") -> None:
        self.summary.append([section, what, value, target])

    def store(self, profiles: int) -> Path | None:
        path = ensure_data(self.args.data, profiles, self.args.build)
        if path is None:
            print(f"no B10 data for {profiles:,} profiles in {self.args.data} "
                  "(--build generates it): skipped", flush=True)
        return path

    # ------------------------------------------------------------------ a. compare

    def compare(self) -> None:
        import pyarrow.parquet as pq
        from benches.baselines import numba_b10 as nb
        from benches.baselines.b10 import NAMES, SEGMENTS
        from benches.baselines.check_b10 import cpu_snapshot, other_cpus
        from benches.baselines.duckdb_b10 import DuckDBB10
        from benches.baselines.polars_b10 import PolarsB10

        args = self.args
        store = self.store(args.profiles)
        if store is None:
            return
        pfile, efile, _ = data_paths(args.data, args.profiles)
        print(f"\n[a] compare at {args.profiles:,} profiles: loading ...", flush=True)
        loads: dict[str, float] = {}
        started = time.perf_counter()
        st = open_store(store, not args.mmap)
        loads["store"] = time.perf_counter() - started
        segs = b10_segments()
        assert list(segs) == [NAMES[s] for s in SEGMENTS], "segments.toml and B10 differ"
        eng, first, loads["engine first run"] = self.engine(st, args.threads)
        nb.set_threads(args.threads)
        kernels = nb.Kernels(nb.arrays_from_store(st, B10_NOW_MS))
        flags = np.zeros(len(st), np.uint16)
        started = time.perf_counter()
        numba_maps = nb.flags_to_bitmaps(kernels.run_all(flags), len(SEGMENTS))
        loads["numba first run"] = time.perf_counter() - started

        def numba_run() -> list[Any]:
            return nb.flags_to_bitmaps(kernels.run_all(flags), len(SEGMENTS))

        # Baselines and their modes (each returns sorted profile_id members per segment).
        started = time.perf_counter()
        duck_arrow = DuckDBB10.arrow(pq.read_table(pfile), pq.read_table(efile),
                                     threads=args.threads)
        loads["DuckDB on Arrow"] = time.perf_counter() - started
        started = time.perf_counter()
        duck_native = DuckDBB10.native(pfile, efile, threads=args.threads)
        loads["DuckDB native tables"] = time.perf_counter() - started
        started = time.perf_counter()
        polars = PolarsB10.load(pfile, efile)
        loads["Polars DataFrames"] = time.perf_counter() - started

        def separate(g: Any, alt: bool = False) -> Callable[[], list[Any]]:
            segs_ = [("S8_alt" if alt and s == "S8" else s) for s in SEGMENTS]
            return lambda: [g.run(s) for s in segs_]

        modes: dict[str, dict[str, Callable[[], Any]]] = {
            "DuckDB": {
                "Arrow, separate queries": separate(duck_arrow),
                "Arrow, separate, S8 as GROUP BY": separate(duck_arrow, alt=True),
                "Arrow, one fused query": duck_arrow.run_all,
                "native, separate queries": separate(duck_native),
                "native, separate, S8 as GROUP BY": separate(duck_native, alt=True),
                "native, one fused query": duck_native.run_all,
            },
            "Polars": {
                "separate queries": separate(polars),
                "one fused query": polars.run_all,
            },
        }

        def members_of(mode: str, out: Any) -> list[np.ndarray]:
            if "fused" in mode:
                pids, f = out
                return [np.sort(pids[(f >> i) & 1 == 1]) for i in range(len(SEGMENTS))]
            return [np.sort(x) for x in out]

        # -------------------------------------------------- agreement (also the warm-up)
        print("checking that every engine and mode returns the same members ...", flush=True)
        want = [member_keys(st, first[NAMES[s]]) for s in SEGMENTS]
        problems: list[str] = []
        for i, s in enumerate(SEGMENTS):
            if first[NAMES[s]] != numba_maps[i]:
                problems.append(f"{s} ({NAMES[s]}): engine {len(first[NAMES[s]]):,} members, "
                                f"hand-written Numba {len(numba_maps[i]):,}")
        for engine_name, by_mode in modes.items():
            for mode, run in by_mode.items():
                got = members_of(mode, run())
                for i, s in enumerate(SEGMENTS):
                    if not np.array_equal(got[i], want[i]):
                        problems.append(f"{s} ({NAMES[s]}): engine {len(want[i]):,} members, "
                                        f"{engine_name} ({mode}) {len(got[i]):,}")
        print_table(
            f"Members at {len(st):,} profiles (the engine's; every engine and mode compared "
            "as exact sets of profile_id)",
            ["seg", "name", "members", "share"],
            [[s, NAMES[s], f"{len(want[i]):,}", f"{len(want[i]) / len(st):.3%}"]
             for i, s in enumerate(SEGMENTS)])
        self.results["compare_members"] = {NAMES[s]: len(want[i])
                                           for i, s in enumerate(SEGMENTS)}
        if problems:
            self.ok = False
            print("\n" + "!" * 78 + "\nMEMBERS DIFFER: the engine does not agree with the "
                  "baselines\n" + "\n".join(f"  {p}" for p in problems) + "\n" + "!" * 78)
            self.note("a", "agreement", "FAIL: members differ", "identical")
            return
        n_checks = 1 + sum(len(m) for m in modes.values())
        print(f"agreement: PASS (engine, hand-written Numba and {n_checks - 1} baseline modes, "
              "every segment identical)")

        # -------------------------------------------------- best mode of each baseline
        probes = interleave({f"{e}|{m}": run for e, by_mode in modes.items()
                             for m, run in by_mode.items()}, args.probe)
        best: dict[str, str] = {}
        rows = []
        for engine_name, by_mode in modes.items():
            times = {m: min(probes[f"{engine_name}|{m}"]) for m in by_mode}
            best[engine_name] = min(times, key=times.__getitem__)
            rows += [[engine_name, m, f"{t * 1e3:,.0f}", "best" if m == best[engine_name] else ""]
                     for m, t in times.items()]
        print_table(f"Baseline modes, best of {args.probe} probe run(s), ms", ["engine", "mode",
                    "ms", ""], rows)
        duck_label = f"DuckDB ({best['DuckDB']})"
        polars_label = f"Polars ({best['Polars']})"
        cases: dict[str, Callable[[], object]] = {
            "engine": lambda: eng.run(at=B10_NOW_MS),
            "numba": numba_run,
            duck_label: modes["DuckDB"][best["DuckDB"]],
            polars_label: modes["Polars"][best["Polars"]],
        }
        # Let the DuckDB database not timed go (only the chosen mode's closure keeps its own).
        loaded = memory_note()
        modes.clear()
        del duck_arrow, duck_native, polars, run, probes
        gc.collect()
        print(f"memory with every baseline loaded: {loaded}; with the timed ones only: "
              f"{memory_note()}")

        # -------------------------------------------------- timings
        print(f"timing {len(cases)} cases x {args.rounds} interleaved rounds ...", flush=True)
        before = cpu_snapshot()
        samples = {k: ms(v) for k, v in interleave(cases, args.rounds).items()}
        others = other_cpus(before, cpu_snapshot())
        last = eng.run(at=B10_NOW_MS)
        tiers = tiers_note(dict(Counter(getattr(last, "tiers", {}).values())))
        maps = numba_run()
        if any(last[NAMES[s]] != maps[i] for i, s in enumerate(SEGMENTS)):
            self.ok = False
            print("MEMBERS DIFFER after the timings (engine vs hand-written Numba)")
            self.note("a", "agreement after timings", "FAIL", "identical")
        e = samples["engine"]
        vs_numba = [x / y for x, y in zip(e, samples["numba"], strict=True)]
        vs_duck = [y / x for x, y in zip(e, samples[duck_label], strict=True)]
        vs_polars = [y / x for x, y in zip(e, samples[polars_label], strict=True)]
        print_table(
            f"The 10 B10 segments together at {len(st):,} profiles, {args.threads} threads, "
            f"warm, in one process: ms, median (min–max) of {args.rounds} interleaved rounds",
            ["engine", "ms", "ratio (per round)", "target", "doc, 10M (ms)"],
            [["pqlite engine.Engine.run (BitMaps)", cell(e), "", "", "510 (docs/engine.md)"],
             ["hand-written Numba fused + BitMaps", cell(samples["numba"]),
              f"engine / it: {ratio_cell(vs_numba)}",
              verdict(median(vs_numba), TARGET_VS_NUMBA, at_least=False),
              f"{DOC_MS['numba fused']:g} (no BitMaps)"],
             [duck_label, cell(samples[duck_label]),
              f"it / engine: {ratio_cell(vs_duck)}",
              verdict(median(vs_duck), TARGET_VS_DUCKDB, at_least=True),
              f"{DOC_MS['DuckDB best (Arrow, separate)']:g} (Arrow, separate)"],
             [polars_label, cell(samples[polars_label]),
              f"it / engine: {ratio_cell(vs_polars)}",
              verdict(median(vs_polars), TARGET_VS_POLARS, at_least=True),
              f"{DOC_MS['Polars best (separate)']:g} (separate)"]])
        print("DuckDB and Polars return each segment's members as a numpy array of profile_id "
              "(fused modes: flags for every profile); the engine and the hand-written kernels "
              "return pyroaring BitMaps of profile indices.")
        print(f"Other processes used {others:.2f} of the {os.cpu_count()} CPUs on average "
              "during the timings (0 on a quiet machine)."
              + (f" Engine tiers in the timed runs{tiers}." if tiers else ""))
        for label, took in loads.items():
            print(f"  load/first: {label} {took:.1f} s")
        self.warm_ms = e
        self.results["compare"] = {"profiles": len(st), "samples_ms": samples,
                                   "best_modes": best, "loads_s": loads,
                                   "ratio_engine_over_numba": vs_numba,
                                   "ratio_duckdb_over_engine": vs_duck,
                                   "ratio_polars_over_engine": vs_polars,
                                   "other_cpus": others}
        n = f"{len(st) / 1e6:g}M"
        self.note("a", f"engine, 10 segments, {n}, warm (ms)", cell(e))
        self.note("a", "hand-written fused + BitMaps (ms)", cell(samples["numba"]))
        self.note("a", "  engine / hand-written", ratio_cell(vs_numba),
                  verdict(median(vs_numba), TARGET_VS_NUMBA, at_least=False))
        self.note("a", f"{duck_label} (ms)", cell(samples[duck_label]))
        self.note("a", "  DuckDB / engine", ratio_cell(vs_duck),
                  verdict(median(vs_duck), TARGET_VS_DUCKDB, at_least=True))
        self.note("a", f"{polars_label} (ms)", cell(samples[polars_label]))
        self.note("a", "  Polars / engine", ratio_cell(vs_polars),
                  verdict(median(vs_polars), TARGET_VS_POLARS, at_least=True))

    # ------------------------------------------------------------------ b. threads

    def threads(self) -> None:
        from benches.baselines import numba_b10 as nb
        from benches.baselines.b10 import NAMES, SEGMENTS


        args = self.args
        store = self.store(args.profiles)
        if store is None:
            return
        print(f"\n[b] one thread at {args.profiles:,} profiles ...", flush=True)
        st = open_store(store, not args.mmap)
        engines = {}
        for threads in (1, args.threads):
            engines[threads] = self.engine(st, threads)[0]
        kernels = nb.Kernels(nb.arrays_from_store(st, B10_NOW_MS))
        flags = np.zeros(len(st), np.uint16)

        def numba_on(threads: int) -> Callable[[], object]:
            def run() -> object:
                nb.set_threads(threads)
                try:
                    return nb.flags_to_bitmaps(kernels.run_all(flags), len(SEGMENTS))
                finally:
                    nb.set_threads(args.threads)
            return run

        numba_on(1)()
        res = engines[1].run(at=B10_NOW_MS)
        maps = numba_on(1)()
        if any(res[NAMES[s]] != maps[i] for i, s in enumerate(SEGMENTS)):
            self.ok = False
            print("MEMBERS DIFFER (engine with 1 thread vs hand-written Numba)")
            self.note("b", "agreement", "FAIL", "identical")
            return
        cases: dict[str, Callable[[], object]] = {
            "engine 1": lambda: engines[1].run(at=B10_NOW_MS),
            "numba 1": numba_on(1),
            f"engine {args.threads}": lambda: engines[args.threads].run(at=B10_NOW_MS),
            f"numba {args.threads}": numba_on(args.threads),
        }
        samples = {k: ms(v) for k, v in interleave(cases, args.rounds).items()}
        one = [x / y for x, y in zip(samples["engine 1"], samples["numba 1"], strict=True)]
        speedup_e = [x / y for x, y in zip(samples["engine 1"],
                                           samples[f"engine {args.threads}"], strict=True)]
        speedup_n = [x / y for x, y in zip(samples["numba 1"],
                                           samples[f"numba {args.threads}"], strict=True)]
        print_table(
            f"Threads at {len(st):,} profiles: the 10 segments with BitMaps, ms, median "
            f"(min–max) of {args.rounds} interleaved rounds",
            ["", "1 thread", f"{args.threads} threads", "speed-up"],
            [["pqlite engine", cell(samples["engine 1"]),
              cell(samples[f"engine {args.threads}"]), ratio_cell(speedup_e)],
             ["hand-written Numba fused", cell(samples["numba 1"]),
              cell(samples[f"numba {args.threads}"]), ratio_cell(speedup_n)],
             ["engine / hand-written", ratio_cell(one), "", ""]])
        self.results["threads"] = {"samples_ms": samples, "ratio_1_thread": one}
        self.note("b", "engine, 1 thread (ms)", cell(samples["engine 1"]))
        self.note("b", "hand-written fused, 1 thread (ms)", cell(samples["numba 1"]))
        self.note("b", "  engine / hand-written, 1 thread", ratio_cell(one),
                  verdict(median(one), TARGET_VS_NUMBA, at_least=False))

    # ------------------------------------------------------------------ c. cold / warm

    def cold(self) -> None:
        args = self.args
        store = self.store(args.profiles)
        if store is None:
            return
        print(f"\n[c] cold and warm processes at {args.profiles:,} profiles ...", flush=True)
        spec = {"what": "engine", "store": str(store), "definitions": b10_segments(),
                "threads": args.threads, "at": B10_NOW_MS, "rounds": args.rounds, "fork": True,
                "tier": args.tier}
        runs: dict[str, list[dict[str, Any]]] = {"cold": [], "warm": []}
        cache_mb = 0.0
        for _ in range(args.process_rounds):
            cache = Path(tempfile.mkdtemp(prefix="pqlite-kernels-"))
            try:
                runs["cold"].append(run_child(spec, cache, args.timeout))
                cache_mb = dir_mb(cache)
                if "error" not in runs["cold"][-1]:
                    runs["warm"].append(run_child(spec, cache, args.timeout))
            finally:
                shutil.rmtree(cache, ignore_errors=True)
        errors = [r["error"] for rs in runs.values() for r in rs if "error" in r]
        if errors:
            print("child process failed: " + "; ".join(errors))
        good = {k: [r for r in v if "error" not in r] for k, v in runs.items()}
        counts = {json.dumps(r["counts"], sort_keys=True) for v in good.values() for r in v}
        if len(counts) > 1:
            self.ok = False
            print("MEMBER COUNTS DIFFER between processes")

        def col(kind: str, key: str, scale: float = 1.0, digits: int = 2) -> str:
            values = [r[key] * scale for r in good[kind]]
            return fmt(values, digits) if values else ("timeout" if any(
                r.get("error") == "timeout" for r in runs[kind]) else "–")

        inproc = [w * 1e3 for r in good["warm"] for w in r["warm"]]
        rows = [[f"{label}: to first results (spawn to BitMaps), s", col(k, "first_wall")]
                for label, k in (("empty kernel cache", "cold"), ("warm kernel cache", "warm"))]
        rows += [
            ["  empty cache: import, open, define, first run (s)",
             " / ".join(col("cold", k) for k in ("import", "open", "define", "first_run"))],
            ["  warm cache: import, open, define, first run (s)",
             " / ".join(col("warm", k) for k in ("import", "open", "define", "first_run"))],
            ["tiers of the first run, empty / warm cache",
             f"{tiers_note(good['cold'][0].get('first_tiers') if good['cold'] else None)[2:]}"
             f" / {tiers_note(good['warm'][0].get('first_tiers') if good['warm'] else None)[2:]}"],
            ["warm run in a process (ms)", cell(inproc)],
            ["peak RSS, empty / warm cache (MB)",
             f"{col('cold', 'maxrss_mb', digits=0)} / {col('warm', 'maxrss_mb', digits=0)}"],
            ["kernel cache on disk (MB)", f"{cache_mb:.2f}"],
        ]
        if self.warm_ms:
            rows.append(["warm run in this process (section a, ms)", cell(self.warm_ms)])
        print_table(f"Cold and warm at {args.profiles:,} profiles: the 10 B10 segments, "
                    f"{args.process_rounds} round(s) of processes; median (min–max)",
                    ["", "value"], rows)
        self.results["cold"] = runs
        self.note("c", "process, empty kernel cache, to first results (s)",
                  col("cold", "first_wall"))
        self.note("c", "process, warm kernel cache, to first results (s)",
                  col("warm", "first_wall"))
        self.note("c", "warm run in a process (ms)", cell(inproc))

    # ------------------------------------------------------------------ d. memory

    def memory(self) -> None:
        args = self.args
        store = self.store(args.profiles)
        if store is None:
            return
        print(f"\n[d] peak memory at {args.profiles:,} profiles ...", flush=True)
        cache = Path(tempfile.mkdtemp(prefix="pqlite-kernels-"))
        spec = {"what": "engine", "store": str(store), "definitions": b10_segments(),
                "threads": args.threads, "at": B10_NOW_MS, "rounds": 2, "fork": True,
                "tier": args.tier}
        try:
            warmup = run_child(spec, cache, args.timeout)  # fills the kernel cache
            eng = run_child(spec, cache, args.timeout) if "error" not in warmup else warmup
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        hand = run_child({**spec, "what": "numba", "repo": str(REPO)}, None, args.timeout)
        rows = []
        for label, r in (("pqlite engine (kernel cache warm)", eng),
                         ("pqlite engine (kernel cache empty: compiles)", warmup),
                         ("hand-written Numba fused", hand)):
            if "error" in r:
                rows.append([label, r["error"], "", "", ""])
                continue
            rows.append([label, f"{r['maxrss_mb']:,.0f}", f"{r['hwm_mb']:,.0f}",
                         f"{r['rss_mb']:,.0f}", f"{r['store_mb']:,.0f}"])
        print_table(
            f"Peak memory of a process at {args.profiles:,} profiles (open the store, "
            "define the 10 segments, run them 3 times), MB",
            ["process", "peak RSS (getrusage)", "VmHWM", "RSS at end", "store arrays"], rows)
        print("Reference (performance-baselines.md, 10M profiles, its own layout): "
              + ", ".join(f"{k} {v:g} GB" for k, v in DOC_PEAK_GB.items()))
        self.results["memory"] = {"engine": eng, "engine_cold": warmup, "numba": hand}
        if "error" not in eng:
            self.note("d", "engine process peak RSS (MB)", f"{eng['maxrss_mb']:,.0f}")
        if "error" not in hand:
            self.note("d", "hand-written process peak RSS (MB)", f"{hand['maxrss_mb']:,.0f}")

    # ------------------------------------------------------------------ e. profiles

    def profiles(self) -> None:
        from benches.baselines import numba_b10 as nb
        from benches.baselines.b10 import SEGMENTS


        args = self.args
        print(f"\n[e] scaling with profiles: {', '.join(f'{n:,}' for n in args.sizes)} ...",
              flush=True)
        rows = []
        out: dict[str, Any] = {}
        nb.set_threads(args.threads)
        for n in args.sizes:
            store = self.store(n)
            if store is None:
                rows.append([f"{n:,}", "missing (--build)", "", "", "", ""])
                continue
            st = open_store(store, not args.mmap)
            eng = self.engine(st, args.threads)[0]
            kernels = nb.Kernels(nb.arrays_from_store(st, B10_NOW_MS))
            flags = np.zeros(len(st), np.uint16)
            nb.flags_to_bitmaps(kernels.run_all(flags), len(SEGMENTS))
            cases: dict[str, Callable[[], object]] = {
                "engine": lambda eng=eng: eng.run(at=B10_NOW_MS),
                "numba": lambda k=kernels, f=flags: nb.flags_to_bitmaps(k.run_all(f),
                                                                        len(SEGMENTS)),
            }
            samples = {k: ms(v) for k, v in interleave(cases, args.rounds).items()}
            ratio = [x / y for x, y in zip(samples["engine"], samples["numba"], strict=True)]
            events = len(st.events)
            rows.append([f"{n:,}", f"{events:,}", cell(samples["engine"]),
                         f"{median(samples['engine']) / (n / 1e6):,.1f}",
                         cell(samples["numba"]), ratio_cell(ratio)])
            out[str(n)] = {"events": events, "samples_ms": samples, "ratio": ratio}
            self.note("e", f"engine warm, {n / 1e6:g}M profiles (ms)", cell(samples["engine"]))
            del eng, kernels, st, cases
            gc.collect()
        print_table(
            f"Scaling with profiles: the 10 B10 segments, {args.threads} threads, warm, "
            f"BitMaps included; ms, median (min–max) of {args.rounds} interleaved rounds",
            ["profiles", "events", "engine ms", "engine ms per 1M profiles",
             "hand-written fused ms", "engine / hand-written"], rows)
        self.results["profiles"] = out

    # ------------------------------------------------------------------ f. segments

    def segments(self) -> None:
        args = self.args
        n = args.segments_profiles
        store = self.store(n)
        if store is None:
            return
        print(f"\n[f] scaling with definitions at {n:,} profiles: "
              f"{', '.join(map(str, args.segment_counts))} (timeout {args.timeout:g} s per "
              "process) ...", flush=True)
        rows = []
        out: dict[str, Any] = {}
        for count in args.segment_counts:
            shapes = SHAPES_FOR.get(count, max(1, count // 5))
            defs = b10_workload(count, shapes, args.seed)
            spec = {"what": "engine", "store": str(store), "definitions": defs,
                    "threads": args.threads, "at": B10_NOW_MS, "rounds": args.rounds,
                    "fork": True, "tier": args.tier}
            cache = Path(tempfile.mkdtemp(prefix="pqlite-kernels-"))
            try:
                print(f"  {count} definitions ({shapes} shapes): empty kernel cache ...",
                      flush=True)
                cold = run_child(spec, cache, args.timeout)
                warm: dict[str, Any] = {"error": "skipped (the empty-cache process did not "
                                                 "finish)"}
                if "error" not in cold:
                    print(f"  {count} definitions: warm kernel cache ...", flush=True)
                    warm = run_child(spec, cache, args.timeout)
                cache_mb = dir_mb(cache)
            finally:
                shutil.rmtree(cache, ignore_errors=True)

            def first(r: dict[str, Any]) -> str:
                if "first_wall" not in r:
                    return (f"timeout (> {args.timeout:g} s)" if r.get("error") == "timeout"
                            else r.get("error", "–"))
                return (f"{r['first_wall']:,.1f} (define {r['define']:.1f}, first run "
                        f"{r['first_run']:,.1f}{tiers_note(r.get('first_tiers'))})")

            def background(r: dict[str, Any]) -> str:
                if r.get("background") is not None:
                    return f"{r['background']:,.1f}"
                if "background_error" in r:
                    return f"unfinished ({r['background_error']})"
                if r.get("error") == "timeout" and "first_wall" in r:
                    return f"timeout (process > {args.timeout:g} s)"
                return "–"

            # The warm run: in the warm-cache process, else in the empty-cache one.
            source = warm if warm.get("warm") else cold
            inproc = [w * 1e3 for w in source.get("warm", [])]
            warm_cell = cell(inproc) + tiers_note(source.get("warm_tiers"))
            counts = warm.get("counts") or cold.get("counts")
            empty = sum(1 for c in (counts or {}).values() if c == 0)
            rows.append([str(count), str(shapes), first(cold), background(cold), first(warm),
                         warm_cell, f"{empty} of {count}" if counts else "–",
                         f"{cache_mb:.1f}"])
            out[str(count)] = {"shapes": shapes, "cold": cold, "warm": warm,
                               "cache_mb": cache_mb}
            self.note("f", f"{count} definitions: empty-cache process, to first results (s)",
                      first(cold))
            if background(cold) != "–":
                self.note("f", f"{count} definitions:   then background compiles done (s)",
                          background(cold))
            self.note("f", f"{count} definitions: warm-cache process, to first results (s)",
                      first(warm))
            self.note("f", f"{count} definitions: warm run in a process (ms)", warm_cell)
        print_table(
            f"Scaling with definitions at {n:,} profiles (benches/workloads.py, seed "
            f"{args.seed}): seconds from spawning a process to its first results; then, "
            "in that process, until the kernels left to the background compiler are done; "
            f"the warm run (ms, median (min–max) of {args.rounds}); tiers: how many segments "
            "each tier evaluated (engine.Engine's tier option)",
            ["definitions", "shapes", "empty kernel cache, s", "+ background compile, s",
             "warm kernel cache, s", "warm run, ms", "empty segments", "cache MB"], rows)
        self.results["segments"] = out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections: {','.join(SECTIONS)} (default all)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke check on 200k profiles: fewer rounds, sizes 200k, "
                             "10 and 100 definitions, shorter timeout")
    parser.add_argument("--profiles", type=int, help="profiles for sections a-d (default 10M)")
    parser.add_argument("--sizes", help="profile counts of section e (default "
                        "1000000,3000000,10000000)")
    parser.add_argument("--segments-profiles", type=int,
                        help="profiles of section f (default 1000000)")
    parser.add_argument("--segment-counts", help="definitions of section f (default "
                        "10,100,1000; shapes 10, 50, 200)")
    parser.add_argument("--rounds", type=int, help="timed rounds (default 5)")
    parser.add_argument("--probe", type=int, help="probe runs per baseline mode (default 2)")
    parser.add_argument("--process-rounds", type=int,
                        help="pairs of cold/warm processes in section c (default 2)")
    parser.add_argument("--timeout", type=float, help="seconds per child process (default "
                        "900; --quick: 120)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tier", choices=["auto", "kernel", "vector"],
                        help="engine.Engine's tier option (default: the engine's own default)")
    parser.add_argument("--seed", type=int, default=0, help="workload seed (section f)")
    parser.add_argument("--data", type=Path, default=REPO / ".bench-data")
    parser.add_argument("--build", action="store_true",
                        help="generate and import B10 sizes whose data is missing")
    parser.add_argument("--mmap", action="store_true",
                        help="time on the memory-mapped store as opened (default: its arrays "
                             "copied into memory, as performance-baselines.md measured)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write every measurement")
    args = parser.parse_args(argv)

    quick = args.quick
    defaults = {
        "profiles": 200_000 if quick else 10_000_000,
        "sizes": "200000" if quick else "1000000,3000000,10000000",
        "segments_profiles": 200_000 if quick else 1_000_000,
        "segment_counts": "10,100" if quick else "10,100,1000",
        "rounds": 3 if quick else 5,
        "probe": 1 if quick else 2,
        "process_rounds": 1 if quick else 2,
        "timeout": 120.0 if quick else 900.0,
    }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.sizes = [int(x) for x in str(args.sizes).split(",") if x]
    args.segment_counts = [int(x) for x in str(args.segment_counts).split(",") if x]
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from "
                     f"{', '.join(SECTIONS)}")

    bench = Bench(args)
    started = time.perf_counter()
    # Processes first (this one is still small), then the in-process sections.
    for section in ("cold", "memory", "segments", "compare", "threads", "profiles"):
        if section in only:
            getattr(bench, section)()
            gc.collect()
    order = {s: i for i, s in enumerate("abcdef")}
    bench.summary.sort(key=lambda row: order[row[0]])
    print_table("Summary", ["", "measurement", "value: median (min–max)", "target"],
                bench.summary)
    total = time.perf_counter() - started
    print(f"total {total:.0f} s; {'all engines agree' if bench.ok else 'DISAGREEMENT: see above'}")
    if args.json:
        bench.results["summary"] = bench.summary
        bench.results["ok"] = bench.ok
        bench.results["seconds"] = total
        args.json.write_text(json.dumps(bench.results, indent=1, default=str))
        print(f"wrote {args.json}")
    return 0 if bench.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
