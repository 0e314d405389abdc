"""A delivering process for tests/test_delivery.py's webhook test (run as a script).

``python -m tests.activation_worker STORE STATE URL [--crash-at K]`` opens (or resumes) an
activation in STATE that delivers to the webhook URL, then runs the `plan` from the first
step whose batch the session does not hold: before step k the clock advances to
``step_time(k)``, then batch k is ingested (events, and every third step a consent upsert);
``ack k`` is printed once ``ingest`` returned; a checkpoint every third step. With
``--crash-at K``, step K's batch goes to the session alone (logged, not turned into records)
and the process kills itself: a crash between the two. At the end the clock moves to `END`,
everything is checkpointed and flushed, and ``done`` is printed.

`plan` and `destination` are shared with the in-process reference run of the test.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from engine.delivery import Activation
from engine.destinations import Consent, Destination
from store.profile_store import ProfileStore
from tests.activation_fixtures import HOUR, NOW, TS, engine_of

STEPS = 12
END = NOW + STEPS * 6 * HOUR + 4 * 24 * HOUR
MAPPED = ("recent", "us_recent", "big")


def step_time(k: int) -> int:
    return NOW + k * 6 * HOUR


def batch(k: int) -> tuple[pa.Table, list[dict[str, Any]] | None]:
    """Step k's events (price k*1000 + row, so a session tells which steps it holds) and
    consent upserts: withdrawals and grants that alternate."""
    rows = 6
    ids = [(k * 37 + i * 11) % 90 for i in range(rows)]
    events = pa.table({
        "id": pa.array(ids, pa.int64()),
        "timestamp": pa.array([step_time(k) - (i + 1) * 60_000 for i in range(rows)], TS),
        "eventType": pa.array(["purchase" if (k + i) % 2 else "view" for i in range(rows)]),
        "price": pa.array([float(k * 1000 + i) for i in range(rows)]),
    })
    upserts = None
    if k % 3 == 1:
        upserts = [{"id": (k * 13 + j) % 90, "email_opt_in": (k // 3 + j) % 2 == 0}
                   for j in range(4)]
    return events, upserts


def destination(url: str, sink: Any = None) -> Destination:
    kind = "webhook" if sink is None else "callable"
    return Destination("hook", kind, MAPPED, "onsite_personalization", url=url or None,
                       sink=sink, attributes=("country",), batch_size=7, batch_seconds=0.05,
                       retry_seconds=0.02, retry_max_seconds=0.2,
                       consent=Consent("email", "email_opt_in"))


def plan(act: Activation, start: int) -> Iterator[int]:
    """Run the steps from ``start``; yield each step's number once it is acknowledged."""
    for k in range(start, STEPS):
        if act.clock < step_time(k):
            act.advance(step_time(k))
        events, upserts = batch(k)
        act.ingest(events, profiles=upserts)
        yield k
        if k % 3 == 2:
            act.checkpoint()


def held_steps(act: Activation) -> set[int]:
    assert act.session is not None
    prices = [p for b in act.session.store.delta.batches if b.events is not None
              for p in b.events.column("price").to_pylist()]
    return {int(p) // 1000 for p in prices}


def main() -> None:
    store_dir, state, url = sys.argv[1], sys.argv[2], sys.argv[3]
    crash_at = int(sys.argv[5]) if len(sys.argv) > 5 and sys.argv[4] == "--crash-at" else None
    eng = engine_of(ProfileStore.open(store_dir))
    act = Activation(eng, [destination(url)], state, at=NOW)
    done = held_steps(act)
    print("resumed" if act.resumed else "started", *sorted(done), flush=True)
    start = max(done, default=-1) + 1
    if crash_at is not None:
        for k in plan(act, start):
            print("ack", k, flush=True)
            if k + 1 == crash_at:
                break
        if act.clock < step_time(crash_at):
            act.advance(step_time(crash_at))
        events, upserts = batch(crash_at)
        assert act.session is not None
        act.session.ingest(events, profiles=upserts)  # logged; its records never made
        os.kill(os.getpid(), signal.SIGKILL)
    for k in plan(act, start):
        print("ack", k, flush=True)
    act.advance(END)
    act.checkpoint()
    delivered = act.flush(timeout=60)
    print("done" if delivered else "NOT DELIVERED", flush=True)
    act.close()


if __name__ == "__main__":
    main()
