"""Real-time identity stitching: a streaming session over people, not profile keys.

``s = eng.stitching(people, at=...)`` (``people``: a `store.stitching.Stitched`, the batch
stitch of the records so far, whose store the engine evaluates) takes records as they come:
events and profile rows that carry identities (a cookie, a CRM id...) instead of a profile
key. Each record goes through the identity graph (`store.stitching.People`); then every
person whose records changed is brought up to date in a `StreamSession` over the people:

* new records of an unchanged person are appended to its profile, as any streamed event;
* a person whose identities changed (a cookie linked to a known customer, an identity
  removed from a full graph, a cookie expired) is *rebuilt*: a new profile holding every
  record of its identities, in time order, that inherits the memberships of the person's
  old profile, so only what the new records change is reported;
* a person who is gone exits every segment, with reason ``merged`` and the ``survivor``
  that took its records (the known customer who logged in), or ``expired``.

Records later than the clock move it (`advance`) to their time first; cookie expiry happens
at its exact instant, inside `advance`. Changes name people by their person keys
(``crm_id:42``), and so do `ids` and `members`. Streaming the records of a batch stitch in
time order gives the same people and the same memberships as the batch (the tests check
it), because both build them with the same `People`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.stream import MembershipChange, StreamSession, _decode, _encode
from store.delta import Batch, normalize_batch
from store.errors import DataError
from store.files import write_atomic
from store.identities import Identity
from store.stitching import People, Records, Stitched, person_key
from store.subset import as_table
from store.wal import WriteAheadLog

if TYPE_CHECKING:
    from engine.session import Engine

__all__ = ["StitchingSession"]

_REBUILT = "\x00"  # person key + _REBUILT + n: the n-th rebuilt profile of the person


class StitchingSession:
    """See the module docstring. Not thread-safe. With ``log`` (a directory), every call is
    logged before it applies, and a session opened on the directory again replays them."""

    def __init__(self, engine: Engine, people: Stitched, at: Any, *,
                 log: str | os.PathLike[str] | None = None, sync: str = "batch") -> None:
        if engine.store is not people.store:
            raise ValueError("stitching needs the engine of a stitched store: "
                             "Engine(stitched.store).stitching(stitched, at=...)")
        self.people: People = people.people
        self._stream = StreamSession(engine, at)
        self._key_type = people.store.keys.type
        # What each person's profile was built from: its key in the store and the
        # identities whose records it holds; and the attributes it was given.
        self._built: dict[str, tuple[str, tuple[Identity, ...]]] = {}
        self._attributes: dict[str, dict[str, Any]] = {}
        self._person_of: dict[Identity, str] = dict(people.person_of)
        members: dict[str, list[Identity]] = {}
        for ident, who in people.person_of.items():
            members.setdefault(who, []).append(ident)
        for who in people.store.keys.to_pylist():
            self._built[who] = (who, tuple(sorted(members.get(who, ()))))
            merged = people.attributes.get(who)
            self._attributes[who] = dict(merged.values) if merged else {}
        self._rebuilds: dict[str, int] = {}  # person -> how many times it was rebuilt
        self._seen_rows = self.people.event_count  # events before it are in the profiles
        # The batch stitch expired cookies up to its last record; the session starts later.
        self._rebuild(self.people.expire(self.clock))
        self._log: WriteAheadLog | None = None
        if log is not None:
            self._open_log(Path(log), sync)

    def _open_log(self, directory: Path, sync: str) -> None:
        """Log every call before applying it; replay what a previous session logged.

        The log holds the calls since the batch stitch the session started from, which
        must be the same one again (checked: its start instant and sizes). Without a
        checkpoint, reopening replays the whole log: fine for hours of records, not for
        months (then stitch in batch again and start a new log)."""
        start = {"format": "pqlite-stitching-log", "at": self.clock,
                 "profiles": self._stream.size, "events": self._seen_rows,
                 "links": len(self.people.graph.log)}
        marker = directory / "start.json"
        if marker.exists():
            found = json.loads(marker.read_text())
            if found != start:
                raise ValueError(
                    f"the log in {directory} was started from another batch stitch "
                    f"({found}, not {start}): start from the same records and instant, or "
                    "use another log directory")
        else:
            directory.mkdir(parents=True, exist_ok=True)
            write_atomic(marker, json.dumps(start))
        self._log = WriteAheadLog(directory / "wal", sync=sync)  # type: ignore[arg-type]
        try:
            for _, payload in self._log.replay(0):
                header, batch = _decode(payload)
                if header["op"] == "advance":
                    self._advance(int(header["to"]))
                else:
                    self._ingest(batch.events, batch.profiles, header.get("dataset"))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
        self._stream.close()

    # ------------------------------------------------------------ reading

    @property
    def clock(self) -> int:
        return self._stream.clock

    @property
    def names(self) -> list[str]:
        return self._stream.names

    def members(self, name: str) -> set[str]:
        """The person keys of segment ``name``'s members now."""
        return set(self.ids(name).to_pylist())

    def ids(self, name: str) -> pa.Array:
        """The person keys of segment ``name``'s members now."""
        keys = self._stream.ids(name)
        if not any(_REBUILT in k for k in keys.to_pylist()):
            return keys
        return pa.array([_person(k) for k in keys.to_pylist()], pa.string())

    def person(self, identity: tuple[str, Any]) -> str:
        """The key of the person ``identity`` belongs to now."""
        return self.people.person((identity[0], str(identity[1])))

    # ------------------------------------------------------------ records

    def ingest(self, events: Any = None, *, profiles: Any = None, dataset: str | None = None
               ) -> list[MembershipChange]:
        """Take records: ``events`` with the columns of the stitched events dataset
        (identities, time, fields), ``profiles`` rows of profile dataset ``dataset`` (by
        default the only one); one dict, a list of dicts or an Arrow table. Records at or
        before the clock apply at the clock; later ones move it to their time. Returns the
        membership changes, in time order. Bad input raises `DataError` and changes
        nothing."""
        event_table = None if events is None else self._events(events)
        profile_table = None
        if profiles is not None:
            dataset = self._dataset(dataset)
            profile_table = self._profiles(profiles, dataset)
        if self._log is not None:
            self._log.append(_encode({"op": "ingest", "dataset": dataset},
                                     Batch(event_table, profile_table)))
        return self._ingest(event_table, profile_table, dataset)

    def _ingest(self, events: pa.Table | None, profiles: pa.Table | None,
                dataset: str | None) -> list[MembershipChange]:
        """Apply checked records (see `ingest`)."""
        sources = []
        if events is not None and self.people.events is not None:
            spec = self.people.events
            sources.append(Records(spec.name, events, spec.identities, spec.time))
        if profiles is not None and dataset is not None:
            spec = self.people.profile_datasets[dataset]
            sources.append(Records(dataset, profiles, spec.identities, spec.time))
        sources = [r for r in sources if r.table.num_rows]
        if not sources:
            return []
        # When each record applies: at its time, or at the clock if that is later.
        times = [np.maximum(self._times(r), self.clock) for r in sources]
        changes: list[MembershipChange] = []
        for t in np.unique(np.concatenate(times)).tolist():
            if t > self.clock:
                # Time (and expiry) up to just before: what is due at t itself is
                # evaluated with the records (`StreamSession.replace`), once.
                changes += self._advance(t - 1)
            now = [Records(r.name, r.table.filter(pa.array(ts == t)), r.identities, r.time)
                   for r, ts in zip(sources, times, strict=True)]
            touched = self.people.add([r for r in now if r.table.num_rows],
                                      default_time=t, atomic=False)  # checked
            changes += self._rebuild(touched, t)
        return changes

    def advance(self, to: Any) -> list[MembershipChange]:
        """Move the clock to ``to``: what time changes (`StreamSession.advance`), and the
        cookies that expire on the way, each at its instant."""
        from engine.session import to_epoch_ms

        target = to_epoch_ms(to)
        if target < self.clock:
            raise ValueError(f"the clock is at {self.clock} ms; it cannot go back to {target}")
        if self._log is not None:
            self._log.append(_encode({"op": "advance", "to": target}, None))
        return self._advance(target)

    def _advance(self, target: int) -> list[MembershipChange]:
        changes: list[MembershipChange] = []
        while (due := self.people.next_expiry()) is not None and due <= target:
            changes += self._named(self._stream.advance(max(due, self.clock)))
            changes += self._rebuild(self.people.expire(due))
        return changes + self._named(self._stream.advance(target))

    # ------------------------------------------------------------ people

    def _rebuild(self, touched: Iterable[Identity], at: int | None = None
                 ) -> list[MembershipChange]:
        """Bring the people of ``touched`` identities up to date at ``at`` (default: the
        clock; a later instant moves the clock there)."""
        now: dict[str, tuple[Identity, ...]] = {}
        before: set[str] = set()
        for ident in touched:
            if ident in self._person_of:
                before.add(self._person_of[ident])
            who, members = self.people.composition(ident)
            if members:
                now[who] = members
        for who in before - set(now):  # still there, through identities not touched?
            for ident in self._built[who][1]:
                other, members = self.people.composition(ident)
                if other == who and members:
                    now[who] = members
                    break
        events: list[tuple[str, np.ndarray]] = []  # (store key, rows of events)
        upserts: list[tuple[str, dict[str, Any]]] = []
        inherit: dict[str, int] = {}
        for who, members in now.items():
            built = self._built.get(who)
            attributes = self.people.merged(members).values
            if built is not None and built[1] == members:
                key = built[0]
                fresh = self.people.event_rows(members)
                events.append((key, fresh[fresh >= self._seen_rows]))
                if attributes != self._attributes[who]:
                    upserts.append((key, attributes))
            else:
                key = self._new_key(who)
                events.append((key, self.people.event_rows(members)))
                upserts.append((key, attributes))
                if built is not None:
                    inherit[key] = self._stream.index_of(built[0])
            if built is not None:  # identities whose records left (an expired cookie's)
                for x in set(built[1]) - set(members):
                    if self._person_of.get(x) == who:
                        del self._person_of[x]
            self._built[who] = (key, members)
            self._attributes[who] = attributes
            self._person_of.update(dict.fromkeys(members, who))
        retire = {}
        for who in before - set(now):
            key, members = self._built.pop(who)
            del self._attributes[who]
            heirs = {p for x in members if (p := self._person_of.get(x)) not in (who, None)}
            for x in members:
                if self._person_of.get(x) == who:
                    del self._person_of[x]
            # The survivor: who holds the records of the identity that named the person.
            named = [self._person_of.get(x) for x in members if person_key(x) == who]
            survivor = named[0] if named and named[0] else min(heirs, default=None)
            retire[self._stream.index_of(key)] = ("merged" if heirs else "expired", survivor)
        self._seen_rows = self.people.event_count
        batches = self._batches(events, upserts)
        changes = self._stream.replace(batches, inherit=inherit, retire=retire, at=at)
        return self._named(changes)

    def _new_key(self, who: str) -> str:
        """A key the store has not seen for person ``who``: the person key the first time,
        then the person key with a number."""
        if self._stream.index_of(who) < 0:
            return who
        self._rebuilds[who] = n = self._rebuilds.get(who, 0) + 1
        return f"{who}{_REBUILT}{n}"

    def _batches(self, events: list[tuple[str, np.ndarray]],
                 upserts: list[tuple[str, dict[str, Any]]]) -> list[Batch]:
        rows = [r for _, r in events]
        table = None
        if rows and sum(map(len, rows)):
            keys = pa.array([k for k, r in events for _ in range(len(r))], self._key_type)
            table = self.people.events_table(np.concatenate(rows), keys)
        profiles = None
        if upserts:
            profiles = self.people.profiles_table([k for k, _ in upserts],
                                                  [v for _, v in upserts])
        if table is None and profiles is None:
            return []
        schema = self._stream.store.schema
        return [normalize_batch(schema, table, profiles, time_units={}, assume_tz="UTC")]

    def _named(self, changes: list[MembershipChange]) -> list[MembershipChange]:
        """The changes with person keys in place of rebuilt profiles' store keys."""
        return [MembershipChange(_person(c.profile_id), c.segment, c.status, c.at, c.index,
                                 c.reason, c.survivor)
                if isinstance(c.profile_id, str) and _REBUILT in c.profile_id else c
                for c in changes]

    # ------------------------------------------------------------ input

    def _events(self, data: Any) -> pa.Table:
        """Event records, checked: the columns of the events dataset, and the rows as the
        store will take them (bad data is refused before anything changes)."""
        spec = self.people.events
        if spec is None:
            raise DataError("the stitched people have no events dataset",
                            hint="stitch with events=Records(...) to stream events")
        table = _conform(as_table(data), spec.table.schema, spec.name)
        probe = table.drop_columns(list(spec.identities)).append_column(
            self.people.key, pa.nulls(table.num_rows, self._key_type).fill_null(""))
        normalize_batch(self._stream.store.schema, probe, None, time_units={},
                        assume_tz="UTC")
        self.people.check(Records(spec.name, table, spec.identities, spec.time))
        return table

    def _dataset(self, dataset: str | None) -> str:
        declared = self.people.profile_datasets
        if dataset is None and len(declared) == 1:
            dataset = next(iter(declared))
        if dataset not in declared:
            raise DataError(f"profile rows need their dataset: one of {sorted(declared)}",
                            hint="ingest(profiles=..., dataset=NAME)")
        return dataset

    def _profiles(self, data: Any, dataset: str) -> pa.Table:
        spec = self.people.profile_datasets[dataset]
        table = _conform(as_table(data), spec.table.schema, dataset)
        self.people.check(Records(dataset, table, spec.identities, spec.time))
        return table

    def _times(self, records: Records) -> np.ndarray:
        if records.time is None:
            return np.full(records.table.num_rows, self.clock, np.int64)
        return records.instants()

    def __enter__(self) -> StitchingSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _person(key: str) -> str:
    return key.split(_REBUILT, 1)[0]


def _conform(table: pa.Table, schema: pa.Schema, dataset: str) -> pa.Table:
    """``table`` with the columns of ``schema``, in its order and types (a column it lacks,
    say an identity a record does not carry, is null)."""
    extra = [n for n in table.column_names if n not in schema.names]
    if extra:
        raise DataError(f"dataset {dataset!r} has no column {extra[0]!r}", source=dataset,
                        column=extra[0], hint=f"its columns: {', '.join(schema.names)}")
    out = []
    for f in schema:
        if f.name not in table.column_names:
            out.append(pa.nulls(table.num_rows, f.type))
            continue
        column = table.column(f.name)
        if column.type != f.type:
            try:
                column = pc.cast(column, f.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                raise DataError(f"dataset {dataset!r}: column {f.name!r} is {column.type}, "
                                f"not {f.type} ({e})", column=f.name, source=dataset) from None
        out.append(column)
    return pa.table(out, schema=schema)
