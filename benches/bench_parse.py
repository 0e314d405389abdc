"""Parse + check cost of segment definitions on the B10 schema (warm, batch and cold).

Run: ``python benches/bench_parse.py`` (``--help`` for the knobs). Not collected by pytest.

* **warm**: a realistic ~200-character definition (B10's S4), parsed and checked many times
  in one process after warm-up; also parse only and check only (of the parsed IR).
* **batch**: 1,000 distinct definitions (B10 shapes with other literals, fields, operators
  and windows), each parsed and checked once per round; total and per-definition median.
* **cold**: the first parse + check in a fresh interpreter, which includes building the LALR
  parser, measured in subprocesses.

Every case runs round by round, interleaved with the others, and the tables report the
median over rounds with (min–max): this machine's speed drifts by 1.2–2× over tens of seconds.
The target is < 500 µs per definition, warm.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

from common import fmt, print_table, summary
from engine.checker import check
from engine.parser import _parse, parse
from store.schema import Schema

REPO = Path(__file__).resolve().parents[1]
SCHEMA_FILE = REPO / "examples" / "b10.schema.toml"
TARGET_US = 500.0

# B10's S4: "≥3 product views of category c0003 in the last 30 days and no purchase in them".
DEFINITION = (
    'xEvent[eventType = "product_view" and category = "c0003" and timestamp occurs < 30 days '
    'before now].count() >= 3 and xEvent[eventType = "purchase" and timestamp occurs < 30 days '
    "before now].count() = 0"
)

# Shapes of the ten B10 segments; the generator fills the {slots}.
SHAPES = [
    '{geo} = "{country}" and age >= {lo} and age <= {hi}',
    'loyalty_tier in ["{tier}", "{tier2}"] {andor} lifetime_value {cmp} {amount}',
    'xEvent[eventType = "{etype}" and timestamp occurs {cmp} {n} {unit} before now].count() '
    "{cmp2} {k}",
    'xEvent[eventType = "{etype}" and category = "{cat}" and timestamp occurs < {n} {unit} '
    'before now].count() >= {k} and xEvent[eventType = "{etype2}" and timestamp occurs < {n} '
    "{unit} before now].count() = 0",
    'xEvent[eventType = "{etype}" and timestamp occurs < {n} {unit} before now].{agg}(price) '
    "{cmp} {amount}",
    'email_opt_in {andor} xEvent[eventType = "{etype}" and timestamp occurs <= {n} {unit} '
    "before now].count() {cmp2} {k}",
    'xEvent[eventType = "{etype}" and timestamp occurs < {n} {unit} before now].category'
    ".distinct().count() {cmp2} {k}",
    "age.isNull() and country in [{countries}] {andor} signup_ts occurs {period}",
    'exists P from xEvent where P.eventType = "{etype}", V from xEvent[timestamp occurs <= {n} '
    '{unit} after P.timestamp] where V.eventType = "{etype2}" and V.category = P.category',
    'chain(xEvent, timestamp, [A: WHAT(eventType = "{etype}") WHEN(< {n} {unit} before now), '
    'B: WHAT(eventType = "{etype2}" and price > {amount}) COUNT({k})])',
]
COUNTRIES = ["US", "CA", "DE", "FR", "GB", "IT", "ES", "NL", "BE", "AT", "DK", "FI", "IE", "PL"]
EVENT_TYPES = ["purchase", "product_view", "add_to_cart", "page_view", "checkout", "refund"]
UNITS = ["days", "hours", "weeks", "minutes"]
PERIODS = ["today", "yesterday", "last month", "this year", "last week"]

# parse() caches trees by text; the uncached function is what a new definition costs.
parse_new = _parse.__wrapped__


def variants(count: int, seed: int = 10) -> list[str]:
    """``count`` distinct, valid definitions in B10's shapes."""
    rng = random.Random(seed)
    out: dict[str, None] = {}
    while len(out) < count:
        shape = SHAPES[len(out) % len(SHAPES)]
        lo = rng.randint(18, 60)
        text = shape.format(
            geo=rng.choice(["country", "loyalty_tier"]),
            country=rng.choice(COUNTRIES),
            lo=lo,
            hi=lo + rng.randint(1, 30),
            tier=rng.choice(["gold", "silver", "bronze"]),
            tier2=rng.choice(["platinum", "diamond", "basic"]),
            andor=rng.choice(["and", "or"]),
            cmp=rng.choice(["<", "<=", ">", ">="]),
            cmp2=rng.choice(["=", "!=", "<", "<=", ">", ">="]),
            amount=rng.choice([str(rng.randint(1, 5000)), f"{rng.uniform(1, 5000):.2f}"]),
            etype=rng.choice(EVENT_TYPES),
            etype2=rng.choice(EVENT_TYPES),
            cat=f"c{rng.randint(0, 9999):04d}",
            n=rng.randint(1, 90),
            unit=rng.choice(UNITS),
            k=rng.randint(1, 9),
            agg=rng.choice(["sum", "average", "max", "min"]),
            countries=", ".join(f'"{c}"' for c in rng.sample(COUNTRIES, rng.randint(2, 10))),
            period=rng.choice(PERIODS),
        )
        out[text] = None
    return list(out)


def load_schema() -> Schema:
    return Schema.from_dict(tomllib.loads(SCHEMA_FILE.read_text(encoding="utf-8")))


# ---------------------------------------------------------------- measuring


def per_call_us(fn: Callable[[], object], reps: int) -> float:
    """Mean microseconds per call of ``fn`` over ``reps`` back-to-back calls."""
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - start) / reps * 1e6


def batch_us(texts: list[str], schema: Schema) -> tuple[float, float]:
    """(total ms, median µs per definition) for parse + check of every text once."""
    times = []
    perf = time.perf_counter
    for text in texts:
        start = perf()
        check(parse_new(text), schema)
        times.append(perf() - start)
    return sum(times) * 1e3, statistics.median(times) * 1e6


COLD_SCRIPT = """
import json, time, tomllib
t0 = time.perf_counter()
from engine.checker import check
from store.schema import Schema
t1 = time.perf_counter()
schema = Schema.from_dict(tomllib.loads(open({schema!r}, encoding="utf-8").read()))
t2 = time.perf_counter()
check({text!r}, schema)
t3 = time.perf_counter()
check({text!r}, schema)
t4 = time.perf_counter()
print(json.dumps({{"import": t1 - t0, "first": t3 - t2, "second": t4 - t3}}))
"""


def cold_run() -> dict[str, float]:
    """One fresh interpreter: import, first parse + check (builds the parser), second one."""
    code = COLD_SCRIPT.format(schema=str(SCHEMA_FILE), text=DEFINITION)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    wall = time.perf_counter() - start
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    result["process"] = wall
    return result


def verdict(median_us: float) -> str:
    return "PASS" if median_us < TARGET_US else "FAIL"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds (default 15)")
    parser.add_argument(
        "--reps", type=int, default=300, help="calls per round for the warm cases (default 300)"
    )
    parser.add_argument("--batch", type=int, default=1000, help="distinct definitions (1000)")
    parser.add_argument("--cold", type=int, default=5, help="fresh processes for cold (5)")
    parser.add_argument("--gc", action="store_true", help="keep the garbage collector on")
    parser.add_argument("--json", action="store_true", help="print the raw numbers as JSON")
    args = parser.parse_args(argv)

    schema = load_schema()
    tree = parse(DEFINITION)
    texts = variants(args.batch)
    for text in texts:  # every variant must be valid (and this warms everything up)
        check(text, schema)
    assert check(DEFINITION, schema) == check(tree, schema)

    warm: dict[str, Callable[[], object]] = {
        "parse + check": lambda: check(parse_new(DEFINITION), schema),
        "parse only": lambda: parse_new(DEFINITION),
        "check only (parsed IR)": lambda: check(tree, schema),
        "parse + check, text seen before (cached)": lambda: check(DEFINITION, schema),
    }
    samples: dict[str, list[float]] = {name: [] for name in warm}
    batch_total: list[float] = []
    batch_median: list[float] = []

    if not args.gc:
        gc.collect()
        gc.disable()
    try:
        for r in range(args.rounds):
            cases: list[str] = [*warm, "batch"]
            shift = r % len(cases)  # rotate the order so no case always runs first
            for name in cases[shift:] + cases[:shift]:
                if name == "batch":
                    total, med = batch_us(texts, schema)
                    batch_total.append(total)
                    batch_median.append(med)
                else:
                    samples[name].append(per_call_us(warm[name], args.reps))
                if not args.gc:
                    gc.collect()
    finally:
        gc.enable()

    cold = [cold_run() for _ in range(args.cold)]

    if args.json:
        print(
            json.dumps(
                {
                    "warm_us": samples,
                    "batch_total_ms": batch_total,
                    "batch_median_us": batch_median,
                    "cold_s": cold,
                },
                indent=2,
            )
        )

    print(
        f"definition ({len(DEFINITION)} characters, B10 schema): {DEFINITION}\n"
        f"python {sys.version.split()[0]}, {args.rounds} interleaved rounds, "
        f"{args.reps} calls per warm case per round, gc {'on' if args.gc else 'off'} while timing"
    )
    rows = []
    for name, values in samples.items():
        target = verdict(summary(values)[0]) if name == "parse + check" else ""
        rows.append([name, fmt(values), target])
    rows.append(
        [
            f"batch: {len(texts):,} distinct, per definition",
            fmt(batch_median),
            verdict(summary(batch_median)[0]),
        ]
    )
    rows.append([f"batch: {len(texts):,} distinct, total (ms)", fmt(batch_total), ""])
    print_table(
        "Warm, µs per definition: median (min–max) over rounds",
        ["case", "µs", f"< {TARGET_US:.0f} µs"],
        rows,
    )
    cold_rows = [
        ["import engine.checker + store.schema", fmt([c["import"] * 1e3 for c in cold], 1)],
        ["first parse + check (builds the LALR parser)", fmt([c["first"] * 1e3 for c in cold], 1)],
        ["second parse + check, same process", fmt([c["second"] * 1e3 for c in cold], 2)],
        ["whole process (interpreter start to exit)", fmt([c["process"] * 1e3 for c in cold], 1)],
    ]
    print_table(
        f"Cold, ms: median (min–max) over {len(cold)} fresh processes", ["step", "ms"], cold_rows
    )
    ok = verdict(summary(samples["parse + check"])[0]) == "PASS"
    print(f"warm parse + check < {TARGET_US:.0f} µs per definition: {'PASS' if ok else 'FAIL'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
