"""Streaming delivery (`engine.delivery`): every change of a mapped segment reaches the
destination at least once, with consent, micro-batching, retries, dead letters, restarts;
and a real webhook on loopback that fails and recovers while the sender is killed twice."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from engine.delivery import Activation, Rejected, Retry, idempotency_key
from engine.destinations import Consent, Destination
from tests import activation_worker as worker
from tests.activation_fixtures import DAY, HOUR, NOW, engine_of, store

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def eng() -> Any:
    return engine_of(store(200))


class Collect:
    """A sink that keeps what it receives, a batch at a time (and when)."""

    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.times: list[float] = []

    def __call__(self, records: list[dict[str, Any]]) -> None:
        self.batches.append(list(records))
        self.times.append(time.monotonic())

    @property
    def records(self) -> list[dict[str, Any]]:
        return [r for b in self.batches for r in b]


def dest(sink: Any, **options: Any) -> Destination:
    base: dict[str, Any] = {"attributes": ("country",), "batch_size": 50, "batch_seconds": 0.01,
                            "retry_seconds": 0.01, "consent": Consent("email", "email_opt_in")}
    base.update(options)
    return Destination("web", "callable", ("recent", "us_recent"), "onsite_personalization",
                       sink=sink, **base)


def purchases(ids: list[int], at: int) -> list[dict[str, Any]]:
    return [{"id": i, "timestamp": at - 60_000, "eventType": "purchase", "price": 5.0}
            for i in ids]


def consenting(eng: Any) -> set[int]:
    opt = eng.store.profiles["email_opt_in"]
    valid = opt.valid if opt.valid is not None else True
    return {int(k) for k, ok in zip(eng.store.keys.to_pylist(), opt.values.astype(bool) & valid,
                                    strict=True) if ok}


def test_every_change_of_a_mapped_segment_reaches_the_destination(eng: Any,
                                                                   tmp_path: Path) -> None:
    got = Collect()
    act = Activation(eng, [dest(got)], tmp_path / "state", at=NOW)
    ok = consenting(eng)
    start = {s: set(act.session.ids(s).to_pylist()) for s in ("recent", "us_recent")}
    changes = act.ingest(purchases([1, 2, 3, 4, 5, 6, 7, 8], NOW), time_units={"timestamp": "ms"})
    changes += act.advance(NOW + 5 * DAY)
    assert act.flush(timeout=10)
    act.close()
    records = got.records
    backfill = {(r["identities"]["id"], r["segment"]) for r in records
                if r.get("reason") == "backfill"}
    assert backfill == {(p, s) for s, ps in start.items() for p in ps if p in ok}
    assert all(r["status"] == "existing" for r in records if r.get("reason") == "backfill")
    live = [(r["identities"]["id"], r["segment"], r["status"], r["at"]) for r in records
            if not r.get("reason")]
    expected = [(c.profile_id, c.segment, c.status, c.to_dict()["at"]) for c in changes
                if c.segment in ("recent", "us_recent") and c.profile_id in ok]
    assert sorted(live) == sorted(expected) and len(expected) > 10
    assert [r["sequence"] for r in records] == list(range(1, len(records) + 1))
    assert all(r["attributes"]["country"] in ("US", "FR", "DE") for r in records)
    for r in records:
        assert r["idempotency_key"].split(":")[0] == idempotency_key(
            "web", r["identities"]["id"], r["segment"], r["status"],
            _ms(r["at"])).split(":")[0]


def _ms(iso: str) -> int:
    import datetime as dt

    t = dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return int(t.timestamp() * 1000)


def test_consent_withdrawal_exits_and_consent_given_enters(eng: Any, tmp_path: Path) -> None:
    got = Collect()
    act = Activation(eng, [dest(got, backfill=False)], tmp_path / "state", at=NOW)
    ok = consenting(eng)
    yes = next(p for p in sorted(ok) if eng.store.profiles["country"].values[p] >= 0)
    no = next(p for p in range(200) if p not in ok)
    act.ingest(purchases([yes, no], NOW), time_units={"timestamp": "ms"})
    act.ingest(profiles=[{"id": yes, "email_opt_in": False}, {"id": no, "email_opt_in": True}])
    act.ingest(profiles=[{"id": yes, "email_opt_in": True}])
    act.ingest(profiles=[{"id": yes, "email_opt_in": False}])  # again, the same millisecond
    act.ingest(purchases([no], NOW + 1), time_units={"timestamp": "ms"})  # nothing new
    assert act.flush(timeout=10)
    act.close()
    mine = [(r["identities"]["id"], r["segment"], r["status"], r.get("reason", ""),
             r["idempotency_key"]) for r in got.records if r["segment"] == "recent"]
    rows = [m[:4] for m in mine]
    assert rows == [(yes, "recent", "realized", ""),  # `no` has not consented yet
                    (yes, "recent", "exited", "consent"), (no, "recent", "realized", "consent"),
                    (yes, "recent", "realized", "consent"), (yes, "recent", "exited", "consent")]
    exits = [m[4] for m in mine if m[0] == yes and m[2] == "exited"]
    assert exits[1] == exits[0] + ":1"  # the same change twice in one ms: distinct keys


def test_micro_batches_by_count_and_by_time(eng: Any, tmp_path: Path) -> None:
    got = Collect()
    d = dest(got, batch_size=4, batch_seconds=0.3, consent=None, backfill=False)
    with Activation(eng, [d], tmp_path / "state", at=NOW) as act:
        act.ingest(purchases(list(range(10, 20)), NOW), time_units={"timestamp": "ms"})
        started = time.monotonic()  # the records are queued when ingest returns
        deadline = time.monotonic() + 5
        while sum(map(len, got.batches)) < act.stats()["web"].enqueued and time.monotonic() < deadline:
            time.sleep(0.01)
        sizes = [len(b) for b in got.batches]
        assert sizes[:-1] == [4] * (len(sizes) - 1) and 0 < sizes[-1] <= 4
        assert got.times[0] - started < 0.25  # a full batch goes at once...
        if sizes[-1] < 4:
            assert got.times[-1] - started >= 0.29  # ...a partial one after batch_seconds
        act.checkpoint()  # everything delivered: the outbox starts afresh
        outbox = sorted((tmp_path / "state/destinations/web").glob("outbox-*.jsonl"))
        assert outbox == []


def test_transient_failures_are_retried_with_backoff(eng: Any, tmp_path: Path) -> None:
    attempts: list[float] = []
    got = Collect()

    def flaky(records: list[dict[str, Any]]) -> None:
        attempts.append(time.monotonic())
        if len(attempts) <= 4:
            raise Retry("503") if len(attempts) % 2 else ConnectionError("reset")
        got(records)

    d = dest(flaky, retry_seconds=0.02, retry_max_seconds=1, batch_size=1000, consent=None)
    with Activation(eng, [d], tmp_path / "state", at=NOW) as act:
        act.ingest(purchases([30, 31], NOW), time_units={"timestamp": "ms"})
        assert act.flush(timeout=10)
        stats = act.stats()["web"]
    assert stats.retries == 4 and stats.delivered == stats.enqueued == len(got.records)
    gaps = [b - a for a, b in itertools.pairwise(attempts)][:4]
    assert all(g >= 0.02 * 2**i * 0.9 for i, g in enumerate(gaps)), gaps  # 0.02, 0.04, ...
    keys = [r["idempotency_key"] for r in got.records]
    assert len(keys) == len(set(keys))


def test_permanent_rejections_go_to_the_dead_letter_file(eng: Any, tmp_path: Path) -> None:
    got = Collect()
    members = set(eng.run(NOW)["recent"])
    good1, bad, good2 = [p for p in range(40, 200) if p not in members][:3]

    def picky(records: list[dict[str, Any]]) -> None:
        if any(r["identities"]["id"] == bad for r in records):
            raise Rejected(f"profile {bad} is unknown here")
        got(records)

    d = dest(picky, consent=None, backfill=False, batch_size=100)
    with Activation(eng, [d], tmp_path / "state", at=NOW) as act:
        act.ingest(purchases([good1, bad, good2], NOW), time_units={"timestamp": "ms"})
        assert act.flush(timeout=10)
        stats = act.stats()["web"]
    dead = [json.loads(line) for line in
            (tmp_path / "state/destinations/web/dead-letter.jsonl").read_text().splitlines()]
    assert {r["record"]["identities"]["id"] for r in dead} == {bad}
    assert all("unknown here" in r["reason"] for r in dead)
    assert {r["identities"]["id"] for r in got.records} == {good1, good2}
    assert stats.dead_lettered == len(dead) and stats.pending == 0


def test_a_restart_sends_what_was_not_delivered_and_rederives_what_was_not_logged(
        eng: Any, tmp_path: Path) -> None:
    """Records in the outbox go again; changes the session logged but whose records were
    never made (a crash between the two) are made again from the log: nothing is lost."""
    reference = Collect()
    with Activation(eng, [dest(reference)], tmp_path / "reference", at=NOW) as act:
        act.ingest(purchases([50, 51, 52], NOW), time_units={"timestamp": "ms"})
        act.advance(NOW + HOUR)
        act.ingest(purchases([53, 54], NOW + HOUR), time_units={"timestamp": "ms"},
                   profiles=[{"id": 50, "email_opt_in": False}])
        act.advance(NOW + 4 * DAY)
        assert act.flush(timeout=10)

    def down(records: list[dict[str, Any]]) -> None:
        raise ConnectionError("down")

    state = tmp_path / "state"
    act = Activation(eng, [dest(down)], state, at=NOW)
    act.ingest(purchases([50, 51, 52], NOW), time_units={"timestamp": "ms"})
    act.checkpoint()
    act.advance(NOW + HOUR)
    assert act.session is not None
    # The session logs these, but the crash comes before they become records.
    act.session.ingest(purchases([53, 54], NOW + HOUR), time_units={"timestamp": "ms"},
                       profiles=[{"id": 50, "email_opt_in": False}])
    act.session.advance(NOW + 4 * DAY)
    assert not act.close(timeout=0)  # nothing delivered: the destination is down
    got = Collect()
    again = Activation(eng, [dest(got)], state)
    assert again.resumed
    assert again.flush(timeout=10)
    again.close()
    strip = lambda rs: sorted(json.dumps({k: v for k, v in r.items() if k != "sequence"},  # noqa: E731
                                         sort_keys=True) for r in rs)
    assert strip(got.records) == strip(reference.records)
    assert any(r.get("reason") == "consent" for r in got.records)


# ---------------------------------------------------------------- a real webhook


class Hook:
    """A webhook receiver on loopback: keeps every record it accepts; can refuse (503)
    the next requests, or accept and still answer 503 (the sender then sends again)."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.refuse = 0  # requests to answer 503 without keeping them
        self.refuse_all = False
        self.lose_answer = 0  # requests to keep and answer 503 anyway
        self.failures = 0
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with hook.lock:
                    refuse = hook.refuse_all or hook.refuse > 0
                    hook.refuse = max(0, hook.refuse - 1)
                    if not refuse:
                        hook.received += body["changes"]
                    lose = not refuse and hook.lose_answer > 0
                    hook.lose_answer = max(0, hook.lose_answer - (1 if lose else 0))
                    hook.failures += refuse or lose
                self.send_response(503 if refuse or lose else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/changes"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.server.shutdown()
    h.server.server_close()


CRASH = 7  # a step with consent upserts and changes


def _iso(ms: int) -> str:
    from store.times import iso_ms as iso

    return iso(ms)


def _worker(store_dir: Path, state: Path, url: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.activation_worker", str(store_dir), str(state), url, *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_webhook_gets_every_change_at_least_once_through_failures_and_kills(
        tmp_path: Path, hook: Hook) -> None:
    store(600).save(tmp_path / "store")
    state = tmp_path / "state"
    # 1. The receiver is down (503); the sender is killed after four steps.
    hook.refuse_all = True
    proc = _worker(tmp_path / "store", state, hook.url)
    assert proc.stdout is not None
    first = proc.stdout.readline().split()
    assert first[0] == "started", [*first, proc.stderr.read() if proc.stderr else ""]
    for line in proc.stdout:
        if line.startswith("ack 4"):
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not hook.received and hook.failures > 0
    # 2. It recovers, but loses its answer to two requests (the sender sends them again);
    #    the sender resumes, and dies between logging step 7 and making its records.
    hook.refuse_all, hook.lose_answer = False, 2
    proc = _worker(tmp_path / "store", state, hook.url, "--crash-at", str(CRASH))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL and out.startswith("resumed"), out + err
    # 3. Three more refusals, then the sender resumes and finishes.
    hook.refuse = 3
    proc = _worker(tmp_path / "store", state, hook.url)
    out, err = proc.communicate(timeout=120)
    assert out.splitlines()[-1] == "done", out + err
    # The same plan without crashes or failures: what must have arrived.
    expected = Collect()
    eng = engine_of(store(600))
    with Activation(eng, [worker.destination("", expected)], tmp_path / "reference",
                    at=worker.NOW) as act:
        for _ in worker.plan(act, 0):
            pass
        act.advance(worker.END)
        assert act.flush(timeout=30)
    want = {r["idempotency_key"]: r for r in expected.records}
    copies: dict[str, list[dict[str, Any]]] = {}
    for r in hook.received:
        copies.setdefault(r["idempotency_key"], []).append(r)
    assert set(copies) == set(want)  # every change arrived; nothing else did
    without_seq = lambda r: {k: v for k, v in r.items() if k not in ("sequence", "destination")}  # noqa: E731
    for key, rs in copies.items():
        assert all(without_seq(r) == without_seq(want[key]) for r in rs), key
        assert all(r == rs[0] for r in rs)  # duplicates are the same record, same key
    duplicates = sum(len(rs) - 1 for rs in copies.values())
    assert duplicates > 0 and hook.failures >= 5
    reasons = {r.get("reason") for r in want.values()}
    assert {"backfill", "consent", None} <= reasons
    assert len(want) > 100
    # The crash lost records that only the log could give back.
    assert any(r["at"] == _iso(worker.step_time(CRASH)) for r in want.values())
