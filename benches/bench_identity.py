"""Identity graph throughput (issue 6): records linked per second by `IdentityGraph.observe`.

Run: ``python benches/bench_identity.py`` (``--customers N``, ``--rounds R``). Not collected by
pytest.

Workload: ``N`` customers (``crm_id``, unique), each with 1-3 browser cookies (``ecid``) and
an email; a stream of records in time order: anonymous page views (a cookie alone: a
sighting), logins (a cookie with the customer's crm_id: a link) and newsletter sign-ups
(email with crm_id: a link), shuffled in time. Also a collapse attempt: 1% of logins come
from a shared cookie, which the unique crm_id namespace refuses.

Reported per round (median, min–max over rounds): records/s over all records, and links/s
(records of two or more identities) measured alone. Target (issue 6): at least 100,000
links/s. Also, in the same rounds, the links through a bare union in Python
(`baselines.union_python`: keys, a log line, merges; none of the rules): what Python itself
costs on this machine now, and the ratio to it. The ratio holds steadier than links/s when
the machine's speed drifts. The baseline is first checked to find the same people as the
graph on the links that no rule touches (all but the shared cookie's).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT / "src", ROOT / "benches"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from baselines.union_python import run as bare_union  # noqa: E402
from common import fmt, print_table  # noqa: E402
from store.identities import IdentityConfig, IdentityGraph, Namespace, Tier  # noqa: E402

CONFIG = IdentityConfig((
    Namespace("crm_id", Tier.PERSON, unique=True),
    Namespace("email", Tier.PERSON),
    Namespace("ecid", Tier.COOKIE),
))
TARGET_LINKS_PER_S = 100_000
SHARED = ("ecid", "shared-kiosk")  # a kiosk's cookie: logins of many customers


def workload(customers: int, seed: int) -> tuple[list[tuple[tuple[str, str], ...]], list[bool]]:
    """Records in time order, and which of them are links."""
    rng = np.random.default_rng(seed)
    cookies = rng.integers(1, 4, customers)
    first = np.concatenate([[0], np.cumsum(cookies)[:-1]])
    records: list[list[tuple[str, str]]] = []
    for c in range(customers):
        crm, mail = ("crm_id", f"C{c}"), ("email", f"u{c}@example.com")
        for k in range(int(cookies[c])):
            cookie = ("ecid", f"K{first[c] + k:09d}")
            records += [[cookie]] * int(rng.integers(1, 4))  # anonymous views
            records.append([cookie, crm])  # a login
        records.append([mail, crm])
    shared = SHARED
    for c in rng.choice(customers, max(1, customers // 100), replace=False):
        records.append([shared, ("crm_id", f"C{c}")])  # refused after the first
    order = rng.permutation(len(records))
    ordered = [tuple(records[i]) for i in order]  # as read from a table: no lists to track
    return ordered, [len(r) > 1 for r in ordered]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    records, links = workload(args.customers, args.seed)
    only_links = [r for r, is_link in zip(records, links, strict=True) if is_link]
    check_baseline([r for r in only_links if SHARED not in r])
    all_rates, link_rates, bare_rates, refused = [], [], [], 0
    for _ in range(args.rounds):
        g = IdentityGraph(CONFIG)
        started = time.perf_counter()
        for at, r in enumerate(records):
            g.observe(r, at)
        all_rates.append(len(records) / (time.perf_counter() - started))
        refused = len(g.refusals)
        g = IdentityGraph(CONFIG)
        started = time.perf_counter()
        for at, r in enumerate(only_links):
            g.observe(r, at)
        link_rates.append(len(only_links) / (time.perf_counter() - started))
        started = time.perf_counter()
        bare_union(only_links)
        bare_rates.append(len(only_links) / (time.perf_counter() - started))
    ratios = [b / g for g, b in zip(link_rates, bare_rates, strict=True)]
    ok = "PASS" if np.median(link_rates) >= TARGET_LINKS_PER_S else "FAIL"
    print_table(
        f"IdentityGraph.observe, {args.customers:,} customers: {len(records):,} records "
        f"({len(only_links):,} links, {refused:,} refused); median (min–max) of "
        f"{args.rounds} rounds",
        ["", "per second", "target"],
        [["all records", fmt(all_rates, 0), ""],
         ["links alone", fmt(link_rates, 0), f">= {TARGET_LINKS_PER_S:,} {ok}"],
         ["links, bare union in Python (baseline)", fmt(bare_rates, 0), ""],
         ["time per link / the baseline's (same round)", fmt(ratios, 2), ""]])
    return 0


def check_baseline(records: list[tuple[tuple[str, str], ...]]) -> None:
    """The baseline finds the graph's people on records no rule touches."""
    g = IdentityGraph(CONFIG)
    for at, r in enumerate(records):
        g.observe(r, at)
    if bare_union(records).people() != {frozenset(g.identities(x)) for x in g.graphs()}:
        raise SystemExit("the bare union baseline does not find the graph's people")


if __name__ == "__main__":
    raise SystemExit(main())
