"""Profile store on B10: import from Parquet, save, open, and memory against the raw bytes.

Run: ``python benches/bench_store.py`` (10M profiles; ``--profiles 1000000`` for a quicker
run). The Parquet input is generated once into ``--data`` (default ``.bench-data/``) and
reused. Not collected by pytest.

* **import**: `ProfileStore.from_parquet` of profiles.parquet + events.parquet (read, check,
  convert, sort and partition events).
* **save**: `ProfileStore.save` to a fresh directory (fsynced).
* **open**: `ProfileStore.open` in a fresh process (memory-maps; nothing is read yet), and
  the process's resident memory after opening.
* **memory**: the store's bytes per profile and per event against the raw column bytes
  (every input column as a dense array: 8 bytes per int, float and timestamp, 1 per bool,
  4 per string code, plus the events' profile ids) and against the Arrow tables Parquet
  decodes to.

Rounds are interleaved and reported as median (min–max): the machine's speed drifts.
Targets: import < 60 s, open < 1 s, memory within 1.3x of raw.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from common import fmt, print_table, summary
from store import Kind, ProfileStore
from store.synth import B10_SEED, write_b10_parquet

REPO = Path(__file__).resolve().parents[1]
TARGETS = {"import": 60.0, "open": 1.0, "memory": 1.3}
RAW_BYTES = {Kind.BOOL: 1, Kind.INT: 8, Kind.FLOAT: 8, Kind.STRING: 4, Kind.TIMESTAMP: 8,
             Kind.DATE: 4}

OPEN_SCRIPT = """
import json, time
t0 = time.perf_counter()
from store import ProfileStore
t1 = time.perf_counter()
st = ProfileStore.open({path!r})
t2 = time.perf_counter()
# Current resident memory (ru_maxrss would include the parent's, inherited across exec).
rss_kb = next(int(line.split()[1]) for line in open("/proc/self/status")
              if line.startswith("VmRSS:"))
print(json.dumps({{"import": t1 - t0, "open": t2 - t1, "profiles": len(st),
                  "rss_mb": rss_kb / 1024}}))
"""


def data_files(directory: Path, profiles: int) -> tuple[Path, Path]:
    target = directory / f"b10-{profiles}"
    p, e = target / "profiles.parquet", target / "events.parquet"
    if not (p.exists() and e.exists()):
        target.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        write_b10_parquet(target, n_profiles=profiles, seed=B10_SEED)
        print(f"generated {target} in {time.perf_counter() - started:.1f} s")
    return p, e


def raw_bytes(st: ProfileStore) -> tuple[int, int]:
    """Dense bytes of the input columns: (profiles, events)."""
    s = st.schema
    per_profile = sum(RAW_BYTES[f.dtype.kind] for f in s.profile.values() if not f.dtype.is_list)
    per_event = sum(RAW_BYTES[f.dtype.kind] for f in s.events.values() if not f.dtype.is_list)
    return per_profile * len(st), per_event * len(st.events)


def open_in_fresh_process(path: Path) -> dict[str, float]:
    code = OPEN_SCRIPT.format(path=str(path))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=REPO)
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data", type=Path, default=REPO / ".bench-data")
    args = parser.parse_args(argv)

    profiles_file, events_file = data_files(args.data, args.profiles)
    arrow_bytes = (pq.read_table(profiles_file).nbytes, pq.read_table(events_file).nbytes)
    times: dict[str, list[float]] = {
        "import": [], "peak": [], "save": [], "open": [], "open_rss": []
    }
    st = None
    scratch = Path(tempfile.mkdtemp(prefix="pqlite-bench-", dir=args.data))
    try:
        for r in range(args.rounds):
            st = None  # let the previous round's store go before building the next
            started = time.perf_counter()
            st = ProfileStore.from_parquet(profiles_file, events_file, profile_id="profile_id")
            times["import"].append(time.perf_counter() - started)
            times["peak"].append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
            target = scratch / f"round-{r}"
            started = time.perf_counter()
            st.save(target)
            times["save"].append(time.perf_counter() - started)
            opened = open_in_fresh_process(target)
            times["open"].append(opened["open"])
            times["open_rss"].append(opened["rss_mb"])
            if r:
                shutil.rmtree(scratch / f"round-{r - 1}", ignore_errors=True)
        assert st is not None
        opened_store = ProfileStore.open(scratch / f"round-{args.rounds - 1}")
        same = all(
            opened_store.profiles[name].values.shape == col.values.shape
            for name, col in st.profiles.items()
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    n, e = len(st), len(st.events)
    raw_p, raw_e = raw_bytes(st)
    profile_bytes = sum(c.nbytes for c in st.profiles.values()) + st.keys.nbytes
    event_bytes = st.events.nbytes
    ratio = (profile_bytes + event_bytes) / (raw_p + raw_e)
    print(f"B10: {n:,} profiles, {e:,} events; partitions: "
          + ", ".join(f"{'/'.join(p.types or ('all',))} {len(p):,}" for p in st.events.partitions))
    print_table(
        f"Seconds: median (min–max) over {args.rounds} rounds",
        ["step", "s", "target"],
        [
            ["import from Parquet", fmt(times["import"], 2), _verdict("import", times["import"])],
            ["peak RSS of the process so far, MB", fmt(times["peak"], 0), ""],
            ["save (fsynced)", fmt(times["save"], 2), ""],
            ["open (fresh process)", fmt(times["open"], 3), _verdict("open", times["open"])],
            ["RSS after open (fresh process), MB", fmt(times["open_rss"], 0), ""],
        ],
    )
    print_table(
        "Memory",
        ["", "store", "raw columns", "ratio", "Arrow tables"],
        [
            ["per profile, bytes", f"{profile_bytes / n:.1f}", f"{raw_p / n:.1f}",
             f"{profile_bytes / raw_p:.2f}", f"{arrow_bytes[0] / n:.1f}"],
            ["per event, bytes", f"{event_bytes / e:.1f}", f"{raw_e / e:.1f}",
             f"{event_bytes / raw_e:.2f}", f"{arrow_bytes[1] / e:.1f}"],
            ["total, MB", f"{(profile_bytes + event_bytes) / 1e6:,.0f}",
             f"{(raw_p + raw_e) / 1e6:,.0f}", f"{ratio:.2f} "
             f"{'PASS' if ratio <= TARGETS['memory'] else 'FAIL'}",
             f"{sum(arrow_bytes) / 1e6:,.0f}"],
        ],
    )
    print(f"reopened store has the same column shapes: {same}")
    return 0


def _verdict(name: str, values: list[float]) -> str:
    return f"< {TARGETS[name]:g} s " + ("PASS" if summary(values)[0] < TARGETS[name] else "FAIL")


if __name__ == "__main__":
    raise SystemExit(main())
