"""A streaming process for tests/test_stream.py's crash test (run as a script).

``python -m tests.stream_worker STORE LOG BATCHES`` resumes the session logged in LOG (or
starts one), prints ``recovered K1 K2 ...`` (the batch numbers the session holds, from the
events' ``price``: batch * 1000 + row), then ingests batches from the next one up to BATCHES,
printing ``ack K`` once ``ingest`` returned; it advances the clock every third batch and
checkpoints every fifth. At the end it prints ``equal`` if its memberships equal a batch run
over the same data at the same instant.
"""

from __future__ import annotations

import sys

import pyarrow as pa

from engine.session import Engine
from store.profile_store import ProfileStore

NOW = 1_711_897_200_000  # 2024-03-31T15:00:00Z
HOUR = 3_600_000
DEFINITIONS = {
    "recent": 'xEvent[eventType = "purchase" and timestamp occurs < 2 hours before now]'
              '.count() >= 1',
    "quiet": 'not inSegment("recent") and xEvent.count() > 0',
    "spent": 'xEvent[timestamp occurs < 5 hours before now].sum(price) > 3000',
}


def batch(k: int) -> pa.Table:
    rows = 4
    return pa.table({
        "id": pa.array([(k * 7 + i) % 13 for i in range(rows)], pa.int64()),
        "timestamp": pa.array([NOW + k * HOUR // 2 + i * 60_000 for i in range(rows)],
                              pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
        "eventType": pa.array(["purchase" if (k + i) % 3 == 0 else "view"
                               for i in range(rows)]),
        "price": pa.array([float(k * 1000 + i) for i in range(rows)]),
    })


def engine_of(store: ProfileStore) -> Engine:
    eng = Engine(store, threads=1, tier="kernel", background=False)
    for name, text in DEFINITIONS.items():
        eng.define(name, text)
    return eng


def main() -> None:
    store_dir, log_dir, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = ProfileStore.open(store_dir)
    session = engine_of(store).stream(NOW, log=log_dir, sync="batch")
    held = [b.events for b in session.store.delta.batches if b.events is not None]
    held += [t for _, _, t in session._pending]
    prices = [p for t in held for p in t.column("price").to_pylist()]
    done = sorted({int(p) // 1000 for p in prices})
    print("recovered", *done, flush=True)
    print("prices", *sorted(int(p) for p in prices), flush=True)
    for k in range(max(done, default=-1) + 1, total):
        session.ingest(batch(k))
        print("ack", k, flush=True)
        if k % 3 == 2:
            session.advance(session.clock + HOUR // 2)
        if k % 5 == 4:
            session.checkpoint()
    batch_run = engine_of(session.store.compacted()).run(session.clock)
    same = all(session.memberships()[n] == batch_run[n] for n in DEFINITIONS)
    print("equal" if same else "DIFFERENT", flush=True)
    session.close()


if __name__ == "__main__":
    main()
