"""Streaming delivery: membership changes sent to destinations as they happen, at least once.

``Activation(engine, destinations, state_dir, at=...)`` runs a streaming session
(`engine.stream.StreamSession`, its log in ``STATE/session``) and turns each membership change
of a segment mapped to a streaming destination into a *record* for that destination::

    {"idempotency_key": "3f0c…", "sequence": 17, "destination": "web", "segment": "recent",
     "status": "realized", "at": "2025-01-01T00:00:00.000Z",
     "identities": {"profile_id": 42}, "attributes": {"country": "FR"}}

Each destination has a *channel*: records are numbered (``sequence``, increasing), appended
to an outbox on disk (``STATE/destinations/NAME/outbox-*.jsonl``, fsynced per append unless
``sync="none"``) and sent by a sender thread in micro-batches (``batch_size`` records, or
whatever waited ``batch_seconds``) to its sink: a Python callable, a JSON-lines file, or an
HTTP webhook (POST of ``{"destination": ..., "changes": [records]}``). A transient failure
(an exception, HTTP 408/425/429/5xx, a connection error) is retried with exponential backoff
(``retry_seconds`` doubling up to ``retry_max_seconds``, or the server's Retry-After) and
never drops a record unless ``max_attempts`` says so; a permanent rejection (another HTTP
4xx, `Rejected`) of a batch is retried record by record, and the records still rejected go
to ``dead-letter.jsonl`` with the reason. The delivered offset is written after every batch.

**At least once, across crashes.** `Activation.checkpoint` fsyncs the outboxes, checkpoints
the session, then saves each channel's state. Reopening the state directory resumes the
session from its log and, because re-applying the log reproduces the same changes, re-derives
the records of every change made since the checkpoint: those missing from the outbox (a crash
before they were written) are added, the others are recognized by their idempotency key.
Every record after the delivered offset is sent again. So a receiver may see a record twice
(the same ``idempotency_key``), never zero times.

**Idempotency key**: a digest of (destination, profile key, segment, status, instant); a
profile that flips back to the same status within the same millisecond gets ``:1``, ``:2``…
appended, so distinct changes never share a key.

**Consent.** A destination with a consent rule receives only profiles that consented to its
purpose. An attribute upsert that withdraws consent sends ``exited`` (``"reason": "consent"``)
for each mapped segment the profile is in; one that grants it sends ``realized``.

**Backfill.** When delivery to a destination starts (and for a segment newly mapped to it),
its current members are sent with status ``existing`` (``"reason": "backfill"``), unless
``backfill = false``.

Governance is checked first: a destination that a policy forbids a segment raises
`engine.governance.PolicyViolation` before anything is sent.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import fcntl
import functools
import hashlib
import itertools
import json
import os
import shutil
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from engine.consent import ConsentState
from engine.destinations import Destination
from engine.errors import EngineError
from engine.governance import Governance
from engine.sinks import (
    RECORD_TEXT,
    CallableSink,
    JsonLinesSink,
    Rejected,
    Retry,
    Sink,
    WebhookSink,
    jsonable,
    sink_for,
)
from engine.stream import MembershipChange, Step, StreamSession
from store.files import write_atomic
from store.times import iso_ms

if TYPE_CHECKING:
    from engine.session import Engine
    from store.profile_store import ProfileStore

__all__ = [
    "Activation",
    "CallableSink",
    "DeliveryError",
    "DeliveryStats",
    "JsonLinesSink",
    "Rejected",
    "Retry",
    "Sink",
    "WebhookSink",
    "idempotency_key",
]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_VERSION = 1
_ROTATE_BYTES = 64 << 20  # a new outbox file at a checkpoint once the current one is this big

class DeliveryError(EngineError):
    """An activation that cannot start as asked."""


def idempotency_key(destination: str, profile_id: Any, segment: str, status: str, at_ms: int,
                    *, repeat: int = 0) -> str:
    """The key receivers de-duplicate on: the same change always gets the same key."""
    text = _KEY_TEXT([destination, profile_id, segment, status, at_ms])
    key = hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
    return f"{key}:{repeat}" if repeat else key


# Made once: json.dumps with options builds a new encoder at every call.
_KEY_TEXT = json.JSONEncoder(default=str).encode


@functools.lru_cache(maxsize=4096)  # the records of one step mostly share their instant
def _ms(at: dt.datetime) -> int:
    return (at - _EPOCH) // dt.timedelta(milliseconds=1)


# ---------------------------------------------------------------- the session


class _Recorder:
    """Hears the session's steps (`engine.stream.Step`): the upserts of the last call, and
    every step its log replay re-applied on opening (which returns them to no one)."""

    def __init__(self) -> None:
        self.replayed: list[tuple[pa.Table | None, list[MembershipChange], int]] = []
        self.last_profiles: pa.Table | None = None

    def __call__(self, step: Step) -> None:
        self.last_profiles = step.profiles
        if step.replayed:
            self.replayed.append((step.profiles, step.changes, step.clock))


class _Profiles:
    """The identity and attribute values a destination receives, for the session's profiles:
    the store's columns, then the values upserts set."""

    def __init__(self, store: ProfileStore, names: Iterable[str]) -> None:
        self.store = store
        self.key_name = store.schema.profile_key
        self.names = [n for n in dict.fromkeys(names) if n != self.key_name]
        self.overrides: dict[Any, dict[str, Any]] = {}

    def upsert(self, profiles: pa.Table) -> None:
        present = [n for n in self.names if n in profiles.column_names]
        if not present or self.key_name is None:
            return
        keys = profiles.column(self.key_name).to_pylist()
        columns = {n: profiles.column(n).to_pylist() for n in present}
        for i, key in enumerate(keys):
            self.overrides.setdefault(key, {}).update({n: columns[n][i] for n in present})

    def values(self, indices: Sequence[int], keys: Sequence[Any]) -> list[dict[str, Any]]:
        """{name: value} per profile (index in the session's numbering, and key)."""
        n = len(self.store.keys)
        rows = np.asarray(indices, np.int64)
        inside = (rows >= 0) & (rows < n)
        out: list[dict[str, Any]] = [{} for _ in rows]
        for name in self.names:
            col = self.store.profiles[name]
            values = col.take(np.where(inside, rows, 0)).to_arrow().to_pylist() if len(rows) else []
            for i, v in enumerate(values):
                out[i][name] = v if inside[i] else None
        if self.overrides:
            for i, key in enumerate(keys):
                extra = self.overrides.get(key)
                if extra:
                    out[i].update(extra)
        return out


# ---------------------------------------------------------------- channels


@dataclass
class DeliveryStats:
    """A destination's delivery so far (this process; ``pending`` includes what a restart
    found undelivered)."""

    enqueued: int = 0
    delivered: int = 0
    dead_lettered: int = 0
    batches: int = 0
    retries: int = 0
    pending: int = 0
    skipped_no_consent: int = 0
    last_error: str | None = None


@dataclass
class _Item:
    seq: int
    record: dict[str, Any]
    since: float  # monotonic time it was queued, for batching by time


class _Outbox:
    """Records not yet known to be delivered, as JSON lines in numbered files (named by their
    first sequence number); appended to, fsynced per append unless told not to."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._file: Any = None
        self._rotated = False  # the next append starts a new file

    def files(self) -> list[tuple[int, Path]]:
        found = [(int(p.stem.split("-")[1]), p) for p in self.directory.glob("outbox-*.jsonl")]
        return sorted(found)

    def read(self) -> list[dict[str, Any]]:
        """Every record, in order. A torn last line (a crash while appending: never
        acknowledged) is cut off; damage anywhere else is an error naming the byte."""
        out: list[dict[str, Any]] = []
        files = self.files()
        for k, (_, path) in enumerate(files):
            data = path.read_bytes()
            lines = data.splitlines(keepends=True)
            end = 0
            for j, line in enumerate(lines):
                try:
                    if not line.endswith(b"\n"):
                        raise ValueError("no end of line")
                    out.append(json.loads(line))
                except ValueError:
                    if k != len(files) - 1 or j != len(lines) - 1:
                        raise DeliveryError(f"{path}: damaged record at byte {end}") from None
                    with open(path, "r+b") as f:
                        f.truncate(end)
                    break
                end += len(line)
        return out

    def append(self, seq: int, lines: list[bytes], sync: bool) -> None:
        if self._file is None:
            tail = self.files()
            if tail and not self._rotated:
                path = tail[-1][1]
            else:
                path = self.directory / f"outbox-{seq:012d}.jsonl"
            self._rotated = False
            self._file = open(path, "ab")  # noqa: SIM115 - kept open across appends
        self._file.write(b"".join(lines))
        self._file.flush()
        if sync:
            os.fsync(self._file.fileno())

    def sync(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())

    def compact(self, delivered: int, next_seq: int) -> None:
        """Drop the files every record of which is delivered; start a new file when the
        current one is all delivered or big."""
        files = self.files()
        current = self._file
        everything = delivered >= next_seq - 1
        if everything or (current is not None
                          and os.fstat(current.fileno()).st_size > _ROTATE_BYTES):
            if current is not None:
                current.close()
                self._file = None
            self._rotated = True
            if everything:
                files.append((next_seq, Path()))  # everything before next_seq can go
        for (_, path), (following, _) in itertools.pairwise(files):
            if following - 1 <= delivered and path.name:
                path.unlink(missing_ok=True)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class _Channel:
    """One destination: numbering, outbox, sender thread, offsets, dead letters."""

    def __init__(self, d: Destination, directory: Path, sink: Sink, sync: bool) -> None:
        self.d = d
        self.directory = directory
        self.sink = sink
        self.sync = sync
        self.outbox = _Outbox(directory)
        self.stats = DeliveryStats()
        self.pending: collections.deque[_Item] = collections.deque()
        self.cond = threading.Condition()
        self.stopping = threading.Event()
        self.flushing = False
        self.delivered = 0  # every sequence number up to it is delivered (or dead-lettered)
        self.next_seq = 1
        self.counters: dict[tuple[Any, str, str], int] = {}  # repeats at `counter_at`
        self.counter_at: int | None = None
        self.checkpoint: dict[str, Any] = {"seq": 1, "counters": [], "counter_at": None,
                                           "segments": list(d.segments)}
        self.recent: set[str] = set()  # keys of the records since the checkpoint (recovery)
        self.thread: threading.Thread | None = None
        self.state_lock = threading.Lock()

    # ------------------------------------------------------------ state

    @property
    def state_path(self) -> Path:
        return self.directory / "offsets.json"

    def recover(self) -> bool:
        """Read the saved offsets and the outbox; False when there is no saved state."""
        if not self.state_path.exists():
            return False
        state = json.loads(self.state_path.read_text())
        self.delivered = int(state["delivered"])
        self.checkpoint = state["checkpoint"]
        self.counters = {(p, s, st): n for p, s, st, n in self.checkpoint["counters"]}
        self.counter_at = self.checkpoint["counter_at"]
        records = self.outbox.read()
        self.next_seq = max([self.checkpoint["seq"], *(r["sequence"] + 1 for r in records)])
        now = time.monotonic()
        for r in records:
            if r["sequence"] > self.delivered:
                self.pending.append(_Item(r["sequence"], r, now))
            if r["sequence"] >= self.checkpoint["seq"]:
                self.recent.add(r["idempotency_key"])
        self.stats.pending = len(self.pending)
        return True

    def save(self, *, durable: bool) -> None:
        """The offsets file: after every batch (no fsync: losing it only re-sends), and at a
        checkpoint (fsynced)."""
        with self.state_lock:
            text = json.dumps({"version": _VERSION, "delivered": self.delivered,
                               "checkpoint": self.checkpoint})
            write_atomic(self.state_path, text, durable=durable)

    def mark_checkpoint(self) -> None:
        with self.cond:
            self.checkpoint = {"seq": self.next_seq,
                               "counters": [[*k, n] for k, n in self.counters.items()],
                               "counter_at": self.counter_at, "segments": list(self.d.segments)}
        self.save(durable=True)
        with self.cond:
            self.outbox.compact(self.delivered, self.next_seq)
        self.recent.clear()

    # ------------------------------------------------------------ enqueue

    def enqueue(self, items: list[tuple[Any, str, str, int, str, dict[str, Any],
                                        dict[str, Any]]]) -> int:
        """Number, log and queue records: (profile key, segment, status, at_ms, reason,
        identities, attributes) each. Returns how many were new (not already in the outbox)."""
        lines: list[bytes] = []
        queued: list[_Item] = []
        now = time.monotonic()
        for profile, segment, status, at_ms, reason, identities, attributes in items:
            if self.counter_at != at_ms:
                self.counters.clear()
                self.counter_at = at_ms
            tag = (profile, segment, status)
            repeat = self.counters.get(tag, 0)
            self.counters[tag] = repeat + 1
            key = idempotency_key(self.d.name, profile, segment, status, at_ms, repeat=repeat)
            if key in self.recent:
                continue  # recovery: this change is in the outbox already
            record = {"idempotency_key": key, "sequence": self.next_seq,
                      "destination": self.d.name, "segment": segment, "status": status,
                      "at": iso_ms(at_ms), "identities": identities, "attributes": attributes}
            if reason:
                record["reason"] = reason
            lines.append(RECORD_TEXT(record).encode() + b"\n")
            queued.append(_Item(self.next_seq, record, now))
            self.next_seq += 1
        if not queued:
            return 0
        with self.cond:
            self.outbox.append(queued[0].seq, lines, self.sync)
            self.pending.extend(queued)
            self.stats.enqueued += len(queued)
            self.stats.pending = len(self.pending)
            self.cond.notify_all()
        return len(queued)

    # ------------------------------------------------------------ sending

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name=f"deliver-{self.d.name}",
                                       daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            with self.cond:
                while True:
                    if self.stopping.is_set():
                        return
                    timeout = None
                    if self.pending:
                        waited = time.monotonic() - self.pending[0].since
                        if (len(self.pending) >= self.d.batch_size or self.flushing
                                or waited >= self.d.batch_seconds):
                            break
                        timeout = self.d.batch_seconds - waited
                    self.cond.wait(timeout)
                batch = [self.pending[i] for i in range(min(self.d.batch_size, len(self.pending)))]
            if not self._deliver(batch):
                return  # stopping in the middle of retries: the batch stays pending

    def _deliver(self, batch: list[_Item]) -> bool:
        """Send ``batch`` until accepted, dead-lettered or stopped (False)."""
        attempt = 0
        while True:
            try:
                self.sink.send([item.record for item in batch])
            except Rejected as e:
                if len(batch) > 1:  # find which records the destination refuses
                    return all(self._deliver([item]) for item in batch)
                self._dead(batch, str(e))
                return True
            except Exception as e:  # transient: retry; nothing is dropped by default
                attempt += 1
                with self.cond:
                    self.stats.retries += 1
                    self.stats.last_error = f"{type(e).__name__}: {e}"
                if self.d.max_attempts is not None and attempt >= self.d.max_attempts:
                    self._dead(batch, f"gave up after {attempt} attempts: {e}")
                    return True
                after = e.after if isinstance(e, Retry) and e.after is not None else None
                delay = after if after is not None else min(
                    self.d.retry_max_seconds, self.d.retry_seconds * 2 ** (attempt - 1))
                if self.stopping.wait(delay):
                    return False
                continue
            self._done(batch)
            return True

    def _dead(self, batch: list[_Item], reason: str) -> None:
        lines = "".join(json.dumps({"reason": reason, "record": item.record},
                                   default=jsonable) + "\n" for item in batch)
        with open(self.directory / "dead-letter.jsonl", "a", encoding="utf-8") as f:
            f.write(lines)
            f.flush()
            os.fsync(f.fileno())
        with self.cond:
            self.stats.dead_lettered += len(batch)
        self._done(batch, delivered=False)

    def _done(self, batch: list[_Item], *, delivered: bool = True) -> None:
        with self.cond:
            last = batch[-1].seq
            while self.pending and self.pending[0].seq <= last:
                self.pending.popleft()
            self.delivered = max(self.delivered, last)
            if delivered:
                self.stats.delivered += len(batch)
                self.stats.batches += 1
            self.stats.pending = len(self.pending)
            if not self.pending:
                self.flushing = False
            self.cond.notify_all()
        self.save(durable=False)

    def flush(self, timeout: float | None) -> bool:
        """Send what is pending now; wait until it is sent (True) or ``timeout`` passes."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.cond:
            self.flushing = bool(self.pending)
            self.cond.notify_all()
            while self.pending:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self.cond.wait(left)
        return True

    def stop(self) -> None:
        self.stopping.set()
        with self.cond:
            self.cond.notify_all()
        if self.thread is not None:
            self.thread.join()
        self.outbox.close()


# ---------------------------------------------------------------- the activation


class Activation:
    """A streaming session whose membership changes are delivered to streaming destinations;
    see the module docstring. Not thread-safe: one caller at a time (the senders are threads
    of their own)."""

    def __init__(self, engine: Engine, destinations: Iterable[Destination],
                 state: str | os.PathLike[str], *, at: Any = None,
                 governance: Governance | None = None, sync: str = "batch",
                 sinks: Mapping[str, Sink] | None = None) -> None:
        self.destinations = list(destinations)
        if not self.destinations:
            raise DeliveryError("no streaming destinations to deliver to")
        for d in self.destinations:
            if d.is_batch:
                raise DeliveryError(f"destination {d.name!r} is a {d.kind} destination: "
                                    "file destinations are exported by pqlite export")
            unknown = [s for s in d.segments if s not in engine.names]
            if unknown:
                raise DeliveryError(f"destination {d.name!r}: segment {unknown[0]!r} is not "
                                    "defined")
        # Refused before anything is sent, or even started.
        (governance or Governance()).check(
            self.destinations, {n: engine.analysis(n) for n in engine.names})
        self.engine = engine
        self.directory = Path(state)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.directory / ".lock", "a")  # noqa: SIM115 - held while open
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise DeliveryError(f"{self.directory} is in use by another activation") from None
        self._sync = sync != "none"
        self.session: StreamSession | None = None
        self.channels: dict[str, _Channel] = {}
        self.resumed = False
        self.backfilled: dict[str, int] = {}
        try:
            self._open(at, sync, sinks or {})
        except BaseException:
            self.close(timeout=0)
            raise

    # ------------------------------------------------------------ opening

    def _open(self, at: Any, sync: str, sinks: Mapping[str, Sink]) -> None:
        marker = self.directory / "activation.json"
        self.resumed = marker.exists()
        if self.resumed:
            info = json.loads(marker.read_text())
            if info.get("segments") != self.engine.levels_flat():
                raise DeliveryError(
                    f"{self.directory} is the activation of segments {info.get('segments')}; "
                    "define the same segments to resume it, or use another state directory")
        else:  # nothing there was promised to anyone: start clean
            for leftover in ("session", "destinations"):
                shutil.rmtree(self.directory / leftover, ignore_errors=True)
        if not self.resumed and at is None:
            raise DeliveryError("a new activation needs its starting instant (at=...)")
        self._recorder = _Recorder()
        session = StreamSession(self.engine, at, log=self.directory / "session", sync=sync,
                                on_step=self._recorder)
        self.session = session
        known = session.restored_batches
        batches = session.store.delta.batches
        self._profiles = _Profiles(session.store, [n for d in self.destinations
                                                   for n in (*d.identities, *d.attributes)])
        self._consent: dict[str, ConsentState] = {}
        for d in self.destinations:
            if d.consent is not None:
                self._consent[d.name] = ConsentState(d.consent, self.engine.store)
        for batch in batches[:len(batches) if known is None else known]:
            if batch.profiles is not None:
                self._upsert(batch.profiles)
        mapped = sorted({s for d in self.destinations for s in d.segments})
        replayed = self._recorder.replayed
        now = session.memberships()
        self._mirror = {s: now[s] for s in mapped}
        for _, changes, _ in reversed(replayed):  # back to the checkpoint's memberships
            for c in reversed(changes):
                self._flip(c, undo=True)
        fresh: dict[str, list[str]] = {}  # destination -> segments to backfill
        for d in self.destinations:
            channel = _Channel(d, self.directory / "destinations" / d.name,
                               sinks.get(d.name) or sink_for(d), self._sync)
            self.channels[d.name] = channel
            if channel.recover():
                before = channel.checkpoint.get("segments", [])
                fresh[d.name] = [s for s in d.segments if s not in before]
            else:
                fresh[d.name] = list(d.segments)
        # Re-derive the records of what the log re-applied; the outbox keeps the rest.
        for profiles, changes, clock in replayed:
            self._route(changes, profiles, clock, skip=fresh)
        for channel in self.channels.values():
            channel.recent.clear()
        for d in self.destinations:
            if d.backfill and fresh[d.name]:
                self.backfilled[d.name] = self._backfill(d, fresh[d.name])
        for channel in self.channels.values():
            channel.start()
        if not self.resumed:
            self.checkpoint()
            write_atomic(marker, json.dumps({"version": _VERSION,
                                             "segments": self.engine.levels_flat()}))

    def _upsert(self, profiles: pa.Table) -> dict[str, dict[Any, tuple[bool, bool]]]:
        """Apply attribute upserts; return each destination's consent changes (key ->
        (before, after))."""
        self._profiles.upsert(profiles)
        key_name = self.engine.store.schema.profile_key or ""
        moved: dict[str, dict[Any, tuple[bool, bool]]] = {}
        for name, consent in self._consent.items():
            if not consent.streams or consent.consent.field not in profiles.column_names:
                continue
            keys = list(dict.fromkeys(profiles.column(key_name).to_pylist()))
            before = {k: consent.granted(self._index(k), k) for k in keys}
            after = consent.upsert(profiles, key_name)
            moved[name] = {k: (before[k], after[k]) for k in after if before[k] != after[k]}
        return moved

    def _index(self, key: Any) -> int:
        assert self.session is not None
        return self.session.index_of(key)

    def _flip(self, c: MembershipChange, *, undo: bool = False) -> None:
        bm = self._mirror.get(c.segment)
        if bm is None:
            return
        if (c.status == "realized") != undo:
            bm.add(c.index)
        else:
            bm.discard(c.index)

    # ------------------------------------------------------------ routing

    def _route(self, changes: list[MembershipChange], profiles: pa.Table | None, clock: int,
               *, skip: Mapping[str, list[str]] | None = None) -> None:
        """Turn one step's upserts and changes into each destination's records (what the
        upserts cause is stamped with ``clock``, the session's clock after the step)."""
        moved = self._upsert(profiles) if profiles is not None else {}
        items: dict[str, list[tuple[Any, int, str, str, int, str]]] = {
            d.name: [] for d in self.destinations}
        live = {d.name: [s for s in d.segments if s not in (skip or {}).get(d.name, ())]
                for d in self.destinations}  # (a segment to backfill gets nothing yet)
        for d in self.destinations:  # consent withdrawn: exit what the destination holds
            for key, (_, now) in moved.get(d.name, {}).items():
                index = self._index(key)
                if not now:
                    items[d.name] += [(key, index, s, "exited", clock, "consent")
                                      for s in live[d.name] if index in self._mirror[s]]
        for c in changes:
            self._flip(c)
        by_segment: dict[str, list[MembershipChange]] = {}
        for c in changes:
            by_segment.setdefault(c.segment, []).append(c)
        for d in self.destinations:
            consent = self._consent.get(d.name)
            changed = moved.get(d.name, {})
            wanted = [c for s in live[d.name] for c in by_segment.get(s, ())]
            wanted.sort(key=lambda c: c.at)  # the session's order across segments, by time
            for c in wanted:
                if c.profile_id in changed:
                    continue  # its consent changed in this step: handled around it
                if consent is not None and not consent.granted(c.index, c.profile_id):
                    self.channels[d.name].stats.skipped_no_consent += 1
                    continue
                items[d.name].append((c.profile_id, c.index, c.segment, c.status, _ms(c.at),
                                      c.reason))
            for key, (_, now) in changed.items():  # consent given: enter what it is in
                index = self._index(key)
                if now:
                    items[d.name] += [(key, index, s, "realized", clock, "consent")
                                      for s in live[d.name] if index in self._mirror[s]]
        for d in self.destinations:
            self._enqueue(d, items[d.name])

    def _enqueue(self, d: Destination, items: list[tuple[Any, int, str, str, int, str]]) -> int:
        if not items:
            return 0
        keys = [i[0] for i in items]
        values = self._profiles.values([i[1] for i in items], keys)
        key_name = self.engine.store.schema.profile_key or ""
        ids = d.identities or (key_name,)
        records = []
        for (key, _, segment, status, at_ms, reason), v in zip(items, values, strict=True):
            identities: dict[str, Any] = {n: key if n == key_name else v.get(n) for n in ids}
            attributes: dict[str, Any] = {n: v.get(n) for n in d.attributes}
            records.append((key, segment, status, at_ms, reason, identities, attributes))
        return self.channels[d.name].enqueue(records)

    def _backfill(self, d: Destination, segments: list[str]) -> int:
        """Records ``existing`` for the current members of ``segments`` that may receive it."""
        assert self.session is not None
        consent = self._consent.get(d.name)
        clock = self.session.clock
        total = 0
        for s in segments:
            members = np.frombuffer(self._mirror[s].to_array(), np.uint32).astype(np.int64)
            keys = self.session.ids(s).to_pylist()
            items = [(k, int(i), s, "existing", clock, "backfill")
                     for i, k in zip(members.tolist(), keys, strict=True)
                     if consent is None or consent.granted(i, k)]
            total += self._enqueue(d, items)
        return total

    # ------------------------------------------------------------ the session's calls

    def ingest(self, events: Any = None, *, profiles: Any = None,
               time_units: Mapping[str, str] | None = None,
               assume_tz: str = "UTC") -> list[MembershipChange]:
        """`StreamSession.ingest`, and the records its changes (and consent upserts) make."""
        assert self.session is not None
        self._recorder.last_profiles = None
        changes = self.session.ingest(events, profiles=profiles, time_units=time_units,
                                      assume_tz=assume_tz)
        self._route(changes, self._recorder.last_profiles, self.session.clock)
        return changes

    def advance(self, to: Any) -> list[MembershipChange]:
        """`StreamSession.advance`, and the records its changes make."""
        assert self.session is not None
        changes = self.session.advance(to)
        self._route(changes, None, self.session.clock)
        return changes

    @property
    def clock(self) -> int:
        assert self.session is not None
        return self.session.clock

    def flush(self, timeout: float | None = None) -> bool:
        """Send every pending record now (without waiting for a batch to fill); True when all
        were delivered or dead-lettered within ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        done = True
        for channel in self.channels.values():
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            done = channel.flush(left) and done
        return done

    def checkpoint(self) -> None:
        """Make everything so far survive a crash: the outboxes fsynced, the session
        checkpointed (its log trimmed), then each destination's offsets and numbering."""
        assert self.session is not None
        for channel in self.channels.values():
            with channel.cond:
                channel.outbox.sync()
        self.session.checkpoint()
        for channel in self.channels.values():
            channel.mark_checkpoint()

    def stats(self) -> dict[str, DeliveryStats]:
        out = {}
        for name, channel in self.channels.items():
            with channel.cond:
                out[name] = DeliveryStats(**asdict(channel.stats))
        return out

    def close(self, timeout: float | None = 10.0) -> bool:
        """Deliver what is pending (up to ``timeout`` seconds; 0: not at all), stop the
        senders and close the session. Undelivered records stay in the outboxes and are
        sent when the state directory is opened again. Returns whether all were delivered.
        Does not checkpoint: call `checkpoint` first to keep the log short."""
        done = True
        if self.channels and timeout != 0:
            done = self.flush(timeout)
        for channel in self.channels.values():
            channel.stop()
            if channel.thread is not None:
                channel.save(durable=True)
        if self.session is not None:
            self.session.close()
            self.session = None
        if not self._lock.closed:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock.fileno(), fcntl.LOCK_UN)
            self._lock.close()
        return done and all(not c.pending for c in self.channels.values())

    def __enter__(self) -> Activation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

