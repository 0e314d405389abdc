"""Hand-made profiles on the edges of the B10 segments' meaning, with the expected members.

B10 itself never exercises some of the rules `benches.baselines.b10` states (it has no events
after ``now``, no null categories or prices on purchases, no ties at window bounds), so a
baseline could get them wrong and still agree with the others on B10. Each profile below
tests one rule of docs/language.md; `EXPECTED` lists the segments it must be in (derived by
hand from the language reference, not from any engine). `tables()` gives the profiles and
events as Arrow tables with the B10 column names and types.
"""

from __future__ import annotations

import pyarrow as pa

from store.synth import B10_NOW_MS

from .b10 import DAY_MS, HOUR_MS, SEGMENTS

__all__ = ["CASES", "expected", "tables"]

N = B10_NOW_MS
D, H = DAY_MS, HOUR_MS
T0 = N - 40 * D  # an old instant: outside every window relative to now

PV, PROD, ATC, BUY = "page_view", "product_view", "add_to_cart", "purchase"
BASE = {"age": 50, "country": "GB", "loyalty_tier": "bronze", "lifetime_value": 10.0,
        "email_opt_in": False}

Event = tuple[int, str, str | None, float | None]  # (timestamp ms, type, category, price)

# (what it tests, attribute overrides, events, expected segments)
CASES: list[tuple[str, dict[str, object], list[Event], set[str]]] = [
    # S3: now - 7 d < t <= now
    ("S3: purchase exactly 7 days before now is outside", {},
     [(N - 7 * D, BUY, "c0001", 1.0)], set()),
    ("S3: 1 ms later is inside", {}, [(N - 7 * D + 1, BUY, "c0001", 1.0)], {"S3"}),
    ("S3: a purchase after now is outside", {}, [(N + 1, BUY, "c0001", 1.0)], set()),
    ("S3: a purchase at now is inside", {}, [(N, BUY, "c0001", 1.0)], {"S3"}),
    ("S3: a purchase without price or category still counts", {},
     [(N - D, BUY, None, None)], {"S3"}),
    # S6: A in (now - 24 h, now], no purchase strictly after A (at any time)
    ("S6: purchase in the same ms as the add_to_cart is not after it", {},
     [(N - H, ATC, "c0001", 5.0), (N - H, BUY, "c0001", 5.0)], {"S3", "S6"}),
    ("S6: a purchase after now still cancels", {},
     [(N - H, ATC, "c0001", 5.0), (N + H, BUY, "c0001", 5.0)], set()),
    ("S6: add_to_cart exactly 24 h before now is outside", {},
     [(N - 24 * H, ATC, "c0001", 5.0)], set()),
    ("S6: 1 ms later is inside", {}, [(N - 24 * H + 1, ATC, "c0001", 5.0)], {"S6"}),
    ("S6: a later add_to_cart after the purchase", {},
     [(N - 2 * H, ATC, "c0001", 5.0), (N - 90 * 60_000, BUY, "c0001", 5.0),
      (N - H, ATC, "c0002", 5.0)], {"S3", "S6"}),
    ("S6: add_to_cart after now is outside", {}, [(N + 1, ATC, "c0001", 5.0)], set()),
    ("S6: an old purchase does not cancel", {},
     [(T0, BUY, "c0001", 5.0), (N - H, ATC, "c0001", 5.0)], {"S6"}),
    # S10: P.ts <= V.ts <= P.ts + 2 d, same non-null category, any time
    ("S10: view in the same ms as the purchase", {},
     [(T0, BUY, "c0001", 9.0), (T0, PROD, "c0001", 9.0)], {"S10"}),
    ("S10: view exactly 2 days later", {},
     [(T0, BUY, "c0001", 9.0), (T0 + 2 * D, PROD, "c0001", 9.0)], {"S10"}),
    ("S10: 1 ms more is too late", {},
     [(T0, BUY, "c0001", 9.0), (T0 + 2 * D + 1, PROD, "c0001", 9.0)], set()),
    ("S10: a view before the purchase does not count", {},
     [(T0 - 1, PROD, "c0001", 9.0), (T0, BUY, "c0001", 9.0)], set()),
    ("S10: null categories are not equal", {},
     [(T0, BUY, None, 9.0), (T0 + 1, PROD, None, 9.0)], set()),
    ("S10: another category does not count", {},
     [(T0, BUY, "c0001", 9.0), (T0 + 1, PROD, "c0002", 9.0)], set()),
    ("S10: after now too", {},
     [(N + D, BUY, "c0005", 9.0), (N + 2 * D, PROD, "c0005", 9.0)], {"S10"}),
    ("S10: a second purchase finds its view", {},
     [(T0, BUY, "c0001", 9.0), (T0 + D, BUY, "c0002", 9.0), (T0 + 3 * D, PROD, "c0001", 9.0),
      (T0 + 2 * D, PROD, "c0002", 9.0)], {"S10"}),
    # S5: sum of prices over (now - 30 d, now] > 500; nulls skipped
    ("S5: exactly 500.00 is not more than 500", {},
     [(N - 2 * D, BUY, "c0001", 472.46), (N - D, BUY, "c0001", 27.54)], {"S3"}),
    ("S5: 500.01 is", {},
     [(N - 20 * D, BUY, "c0001", 250.0), (N - 10 * D, BUY, "c0001", 250.01)], {"S5"}),
    ("S5: purchase exactly 30 days before now is outside", {},
     [(N - 30 * D, BUY, "c0001", 900.0)], set()),
    ("S5: a null price adds nothing", {},
     [(N - 31 * D, BUY, "c0001", 600.0), (N - D, BUY, "c0001", None),
      (N - 2 * D, BUY, "c0001", 499.0)], {"S3"}),
    ("S5: a purchase after now adds nothing", {},
     [(N - D, BUY, "c0001", 400.0), (N + 1, BUY, "c0001", 400.0)], {"S3"}),
    # S4: >= 3 views of c0003 in 30 d and no purchase in 30 d
    ("S4: a view exactly 30 days before now is outside", {},
     [(N - 30 * D, PROD, "c0003", 1.0), (N - 10 * D, PROD, "c0003", 1.0),
      (N - 5 * D, PROD, "c0003", 1.0)], set()),
    ("S4: a purchase exactly 30 days before now is outside", {},
     [(N - 30 * D, BUY, "c0009", 1.0), (N - 10 * D, PROD, "c0003", 1.0),
      (N - 5 * D, PROD, "c0003", 1.0), (N - D, PROD, "c0003", 1.0)], {"S4"}),
    ("S4: a purchase after now does not count", {},
     [(N - 10 * D, PROD, "c0003", 1.0), (N - 5 * D, PROD, "c0003", 1.0),
      (N - D, PROD, "c0003", 1.0), (N + H, BUY, "c0003", 1.0)], {"S4"}),
    ("S4: a purchase in the window excludes", {},
     [(N - 10 * D, PROD, "c0003", 1.0), (N - 5 * D, PROD, "c0003", 1.0),
      (N - D, PROD, "c0003", 1.0), (N - 29 * D, BUY, "c0001", 1.0)], set()),
    # S7: email_opt_in and >= 5 page views in (now - 24 h, now]
    ("S7: opted in, 5 page views", {"email_opt_in": True},
     [(N - k * H, PV, None, None) for k in range(1, 6)], {"S7"}),
    ("S7: opt-in unknown (null) is false", {"email_opt_in": None},
     [(N - k * H, PV, None, None) for k in range(1, 6)], set()),
    ("S7: one of the 5 after now", {"email_opt_in": True},
     [(N - k * H, PV, None, None) for k in range(1, 5)] + [(N + 1, PV, None, None)], set()),
    ("S7: one of the 5 exactly 24 h before now", {"email_opt_in": True},
     [(N - 24 * H, PV, None, None)] + [(N - k * H, PV, None, None) for k in range(1, 5)],
     set()),
    # S8: >= 3 distinct non-null categories of product views in 30 d
    ("S8: a null category is not a category", {},
     [(N - 3 * D, PROD, "c0001", 1.0), (N - 2 * D, PROD, "c0002", 1.0),
      (N - D, PROD, None, 1.0)], set()),
    ("S8: three distinct, one repeated", {},
     [(N - 4 * D, PROD, "c0001", 1.0), (N - 3 * D, PROD, "c0002", 1.0),
      (N - 2 * D, PROD, "c0001", 1.0), (N - D, PROD, "c0004", 1.0)], {"S8"}),
    ("S8: the third exactly 30 days before now is outside", {},
     [(N - 30 * D, PROD, "c0001", 1.0), (N - 3 * D, PROD, "c0002", 1.0),
      (N - D, PROD, "c0004", 1.0)], set()),
    # attributes
    ("S1: US, age 25", {"country": "US", "age": 25}, [], {"S1"}),
    ("S1: US, age 40", {"country": "US", "age": 40}, [], {"S1"}),
    ("S1: US, age 41", {"country": "US", "age": 41}, [], set()),
    ("S1: US, age unknown", {"country": "US", "age": None}, [], set()),
    ("S2: lifetime value exactly 1000 is not more", {"lifetime_value": 1000.0}, [], set()),
    ("S2: lifetime value 1000.01", {"lifetime_value": 1000.01}, [], {"S2"}),
    ("S2: platinum, value unknown", {"loyalty_tier": "platinum", "lifetime_value": None},
     [], {"S2"}),
    ("S2: tier and value unknown", {"loyalty_tier": None, "lifetime_value": None}, [], set()),
    ("S9: age unknown, DE", {"country": "DE", "age": None}, [], {"S9"}),
    ("S9: age unknown, GB", {"age": None}, [], set()),
    ("S9: age unknown, country unknown", {"country": None, "age": None}, [], set()),
    ("S9: age 30, IE", {"country": "IE", "age": 30}, [], set()),
    ("nothing: no events at all", {}, [], set()),
]


def expected() -> dict[str, list[int]]:
    """Segment -> sorted profile_ids that must be members."""
    out: dict[str, list[int]] = {seg: [] for seg in SEGMENTS}
    for pid, (_, _, _, segs) in enumerate(CASES):
        for seg in segs:
            out[seg].append(pid)
    return out


def tables() -> tuple[pa.Table, pa.Table]:
    """(profiles, events) with B10's column names and types (strings dictionary-encoded)."""
    rows = [{**BASE, **attrs} for _, attrs, _, _ in CASES]
    string = pa.dictionary(pa.int32(), pa.string())
    ts = pa.timestamp("ms", tz="UTC")
    profiles = pa.table({
        "profile_id": pa.array(range(len(CASES)), pa.int64()),
        "age": pa.array([r["age"] for r in rows], pa.int64()),
        "country": pa.array([r["country"] for r in rows], pa.string()).cast(string),
        "loyalty_tier": pa.array([r["loyalty_tier"] for r in rows], pa.string()).cast(string),
        "lifetime_value": pa.array([r["lifetime_value"] for r in rows], pa.float64()),
        "email_opt_in": pa.array([r["email_opt_in"] for r in rows], pa.bool_()),
        "signup_ts": pa.array([N - 400 * D] * len(CASES), pa.int64()).cast(ts),
    })
    events = sorted((pid, *event) for pid, (_, _, evs, _) in enumerate(CASES) for event in evs)
    events_table = pa.table({
        "profile_id": pa.array([e[0] for e in events], pa.int64()),
        "timestamp": pa.array([e[1] for e in events], pa.int64()).cast(ts),
        "eventType": pa.array([e[2] for e in events], pa.string()).cast(string),
        "category": pa.array([e[3] for e in events], pa.string()).cast(string),
        "price": pa.array([e[4] for e in events], pa.float64()),
    })
    return profiles, events_table
