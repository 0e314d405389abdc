"""Identity stitching on real data: Online Retail customers who browsed anonymously first.

The UCI Online Retail invoices (`store.datasets.online_retail`) know customers only by
CustomerID. This example invents what a web shop would also have seen: each customer browsed
anonymously (a cookie, a few page views in the two weeks before the first invoice) and logged
in at that first purchase, whose record carries both the cookie and the CustomerID; some
visitors never buy. `store.stitching.stitch` puts every record through the identity graph:
each customer's profile then holds the anonymous page views too, keyed ``crm_id:<id>``, and
the visitors who never logged in stay ``ecid:<cookie>`` profiles.

With ``--stream DATE`` the records up to DATE are stitched in batch and the rest stream
through a stitching session (`Engine.stitching`) in time order, a day per `ingest` call: each
first purchase merges a visitor into its customer at that instant (the visitor's profile
exits its segments, reason ``merged``), and at the end the session's members equal the
batch's over all records.

Run: ``python examples/stitch_online_retail.py [--customers N] [--stream 2011-09-01]`` (all
4,372 customers by default).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from store.datasets import online_retail  # noqa: E402
from store.identities import DAY_MS, IdentityConfig, Namespace, Tier  # noqa: E402
from store.stitching import Records, Stitched, stitch  # noqa: E402

CONFIG = IdentityConfig((
    Namespace("crm_id", Tier.PERSON, unique=True),
    Namespace("ecid", Tier.COOKIE),
))
SEGMENTS = {
    "browsed_then_bought": 'chain(xEvent, timestamp, [V: WHAT(eventType = "page_view"), '
                           'P: WHAT(eventType = "purchase")])',
    "bought_without_browsing": 'xEvent[eventType = "purchase"].count() > 0 and '
                               'xEvent[eventType = "page_view"].count() = 0',
    "never_purchased": 'xEvent[eventType = "purchase"].count() = 0',
}
TS = pa.timestamp("ms", tz="UTC")


def records(customers: int | None = None, visitors: int = 500, seed: int = 7
            ) -> tuple[list[Records], Records]:
    """The customer dataset and the events (invoice lines plus the invented browsing) of
    the first ``customers`` customers (None: all), with identities as columns."""
    shop = online_retail()
    keys = shop.keys.to_numpy()
    if customers is not None:
        keys = keys[:customers]
    rows = shop.to_arrow()[1]
    rows = rows.filter(pc.is_in(rows.column("customer_id"), pa.array(keys)))
    first = {}  # customer -> row of the first invoice line
    times = pc.cast(rows.column("timestamp"), pa.int64()).to_numpy()
    who = rows.column("customer_id").to_numpy()
    for i in np.argsort(times, kind="stable"):
        first.setdefault(int(who[i]), int(i))
    rng = np.random.default_rng(seed)
    cookie_of = {c: f"K{rng.integers(1 << 40):010x}" for c in first}
    # Invoice lines: the customer; the first one also carries the cookie (the login).
    cookies = [None] * rows.num_rows
    for c, i in first.items():
        cookies[i] = cookie_of[c]
    invoices = pa.table({
        "crm": pa.array([str(c) for c in who.tolist()], pa.string()),
        "cookie": pa.array(cookies, pa.string()),
        "timestamp": rows.column("timestamp"),
        "eventType": rows.column("eventType"),
        "amount": rows.column("amount"),
    })
    # Anonymous page views: 1-5 per customer in the 14 days before the first invoice, and
    # 1-3 per visitor who never buys.
    view_cookie, view_time = [], []
    for c, i in first.items():
        for _ in range(rng.integers(1, 6)):
            view_cookie.append(cookie_of[c])
            view_time.append(int(times[i]) - int(rng.integers(1, 14 * DAY_MS)))
    start, end = int(times.min()), int(times.max())
    for v in range(visitors):
        for _ in range(rng.integers(1, 4)):
            view_cookie.append(f"V{v:06d}")
            view_time.append(int(rng.integers(start, end)))
    views = pa.table({
        "crm": pa.nulls(len(view_cookie), pa.string()),
        "cookie": pa.array(view_cookie, pa.string()),
        "timestamp": pa.array(view_time, pa.int64()).cast(TS),
        "eventType": pa.array(["page_view"] * len(view_cookie), pa.string()),
        "amount": pa.nulls(len(view_cookie), pa.float64()),
    })
    events = pa.concat_tables([invoices.cast(views.schema), views])
    profiles = shop.to_arrow()[0]
    profiles = profiles.filter(pc.is_in(profiles.column("customer_id"), pa.array(keys)))
    crm = pa.table({"crm": pa.array([str(c) for c in profiles.column("customer_id").to_pylist()]),
                    "country": profiles.column("country")})
    identities = {"crm": "crm_id", "cookie": "ecid"}
    return [Records("crm", crm, {"crm": "crm_id"})], Records("web", events, identities,
                                                             time="timestamp")


def run(customers: int | None = None, visitors: int = 500) -> tuple[Stitched, dict[str, int]]:
    """Stitch, then evaluate `SEGMENTS` at the end of the data: (the people, the counts)."""
    import engine

    profiles, events = records(customers, visitors)
    people = stitch(profiles, events, CONFIG, event_type="eventType")
    eng = engine.Engine(people.store, tier="vector", background=False)
    for name, text in SEGMENTS.items():
        eng.define(name, text)
    result = eng.run(at="2011-12-10T00:00:00Z")
    return people, {name: result.count(name) for name in SEGMENTS}


def stream(customers: int | None = None, visitors: int = 500, split: str = "2011-09-01"
           ) -> dict[str, Any]:
    """Stitch the records before ``split`` in batch, stream the rest a day per call; return
    the counts of changes by kind and whether the end agrees with a batch over everything."""
    import engine
    from engine.session import to_epoch_ms

    profiles, events = records(customers, visitors)
    times = events.instants()
    cut = to_epoch_ms(split)
    before = Records(events.name, events.table.filter(pa.array(times < cut)),
                     events.identities, events.time)
    people = stitch(profiles, before, CONFIG, event_type="eventType", at=cut)
    eng = engine.Engine(people.store, background=False)
    for name, text in SEGMENTS.items():
        eng.define(name, text)
    session = eng.stitching(people, at=cut)
    later = np.flatnonzero(times >= cut)
    later = later[np.argsort(times[later], kind="stable")]
    kinds: dict[str, int] = {"calls": 0, "merged": 0, "realized": 0, "exited": 0}
    started = time.perf_counter()
    for day in np.unique(times[later] // DAY_MS):
        rows = later[times[later] // DAY_MS == day]
        for change in session.ingest(events.table.take(pa.array(rows))):
            kinds["merged" if change.reason == "merged" else change.status] += 1
        kinds["calls"] += 1
    end = int(times.max())
    session.advance(end)
    took = time.perf_counter() - started
    whole = stitch(profiles, events, CONFIG, event_type="eventType", at=end)
    batch = engine.Engine(whole.store, tier="vector", background=False)
    for name, text in SEGMENTS.items():
        batch.define(name, text)
    result = batch.run(end)
    same = all(session.members(n) == set(result.ids(n).to_pylist()) for n in SEGMENTS)
    return {**kinds, "events": len(later), "seconds": took, "same_as_batch": same}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=None)
    parser.add_argument("--visitors", type=int, default=500)
    parser.add_argument("--stream", metavar="DATE", default=None,
                        help="stitch up to DATE in batch, stream the rest")
    args = parser.parse_args(argv)
    if args.stream:
        out = stream(args.customers, args.visitors, args.stream)
        print(f"streamed {out['events']:,} records in {out['calls']:,} calls (a day each) in "
              f"{out['seconds']:.1f} s: {out['merged']:,} visitor memberships exited as "
              f"merged into their customer, {out['realized']:,} realized, "
              f"{out['exited']:,} exited otherwise; the same members as a batch over "
              f"everything: {out['same_as_batch']}")
        return 0 if out["same_as_batch"] else 1
    started = time.perf_counter()
    people, counts = run(args.customers, args.visitors)
    took = time.perf_counter() - started
    keys = people.store.keys.to_pylist()
    known = sum(k.startswith("crm_id:") for k in keys)
    print(f"{len(keys):,} people ({known:,} customers, {len(keys) - known:,} anonymous "
          f"visitors), {len(people.graph.log):,} links, in {took:.1f} s")
    for name, count in counts.items():
        print(f"  {name:24s} {count:,}")
    sample = next(k for k in keys if k.startswith("crm_id:"))
    profile = people.store.profile(sample)
    assert profile is not None
    print(f"{sample}: {len(profile['events'])} events, the first ones "
          f"{[e['eventType'] for e in profile['events'][:4]]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
