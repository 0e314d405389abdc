"""A small store and segments for the activation tests (exports, delivery, the webhook worker).

Profiles ``id`` 0..N-1 with ``country`` and a consent attribute ``email_opt_in`` (true, false
or null); purchases spread over the 60 days before `NOW`, so memberships of the time-window
segments change from one day to the next.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from engine.session import Engine
from store.profile_store import ProfileStore

NOW = 1_735_689_600_000  # 2025-01-01T00:00:00Z
HOUR = 3_600_000
DAY = 24 * HOUR
TS = pa.timestamp("ms", tz="UTC")

SEGMENTS = {
    "recent": 'xEvent[eventType = "purchase" and timestamp occurs < 3 days before now].count() >= 1',
    "big": 'xEvent[eventType = "purchase" and timestamp occurs < 10 days before now].sum(price) > 60',
    "us": 'country = "US"',
    "us_recent": 'inSegment("recent") and country = "US"',
}


def store(n: int = 600, seed: int = 5, *, order: np.ndarray | None = None) -> ProfileStore:
    """The store; ``order`` lists the profiles in another order (a rebuilt store whose
    indices differ, with the same keys and data)."""
    rng = np.random.default_rng(seed)
    ids = np.arange(n, dtype=np.int64)
    countries = rng.choice(["US", "FR", "DE"], n)
    opt = rng.choice([1, 0, -1], n, p=[0.6, 0.3, 0.1])
    consent = pa.array([None if o < 0 else bool(o) for o in opt], pa.bool_())
    rows = order if order is not None else ids
    profiles = pa.table({"id": pa.array(ids[rows]), "country": pa.array(countries[rows]),
                         "email_opt_in": consent.take(pa.array(rows))})
    k = 6 * n
    who = rng.integers(0, n, k)
    times = NOW - rng.integers(0, 60 * DAY, k)
    events = pa.table({"id": pa.array(who, pa.int64()), "timestamp": pa.array(times, TS),
                       "eventType": pa.array(rng.choice(["purchase", "view"], k)),
                       "price": pa.array(rng.uniform(1, 40, k))})
    return ProfileStore.from_arrow(profiles, events, profile_id="id", event_time="timestamp",
                                   event_type="eventType")


def engine_of(st: ProfileStore, segments: dict[str, str] | None = None) -> Engine:
    eng = Engine(st, threads=1, tier="kernel", background=False)
    for name, text in (segments or SEGMENTS).items():
        eng.define(name, text)
    return eng
