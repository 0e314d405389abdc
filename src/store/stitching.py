"""Profiles of people from records of identities: the batch side of identity stitching.

Records (profile rows of several datasets, and events) carry identities in some columns
(`Records.identities`: column -> namespace). `stitch` takes every record in time order
through an `IdentityGraph` (`store.identities`), then builds a `ProfileStore` with a profile
per person:

* its key is the person's primary identity written ``namespace:value`` (a known customer's
  ``crm_id:42`` once a cookie is stitched to it, the cookie ``ecid:...`` before);
* its events are every event whose record's primary identity (the best-ranked one it
  carries: namespace priority, as Adobe's "primary identity for event fragments") belongs
  to the person, whenever it happened, so browsing done before a login is the customer's;
* its attributes merge the fragments of its identities under a `MergePolicy`
  (`store.merging`): a fragment is one dataset's latest values for one identity.

An identity a guard removed (a full graph, an expired cookie) is a person of its own again,
with the records that name it. Events with no usable identity (all null or blocked) are left
out and counted. With ``stitching="none"`` each identity is its own person.

A streaming session applying the same records in time order reaches the same graph, hence
the same people (the graph is a function of the record sequence), which is what makes a
batch rebuild and a stream agree.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from store.errors import DataError
from store.files import write_atomic
from store.identities import Identity, IdentityConfig, IdentityGraph
from store.merging import Fragment, Merged, MergePolicy, merge
from store.profile_store import ProfileStore

__all__ = ["People", "Records", "StitchPlan", "Stitched", "person_key", "stitch",
           "stitch_policies"]


@dataclass(frozen=True)
class Records:
    """A dataset of records: which columns hold identities, and when each record happened
    (``time``: a timestamp or epoch-millisecond column; None: all at instant 0, e.g. a
    profile dataset loaded once)."""

    name: str
    table: pa.Table
    identities: Mapping[str, str]  # column -> namespace
    time: str | None = None

    def __post_init__(self) -> None:
        names = set(self.table.column_names)
        for column in [*self.identities, *([self.time] if self.time else [])]:
            if column not in names:
                raise DataError(f"dataset {self.name!r} has no column {column!r}",
                                column=column, source=self.name)

    def instants(self) -> np.ndarray:
        if self.time is None:
            return np.zeros(self.table.num_rows, np.int64)
        col = self.table.column(self.time)
        if pa.types.is_timestamp(col.type):
            col = pc.cast(col, pa.timestamp("ms", col.type.tz))
        values = pc.cast(col, pa.int64())
        if values.null_count:
            row = int(np.flatnonzero(pc.is_null(values).to_numpy(zero_copy_only=False))[0])
            raise DataError(f"dataset {self.name!r}: a record without a time",
                            column=self.time, row=row, source=self.name)
        return np.asarray(values.to_numpy(), np.int64)

    @property
    def attributes(self) -> list[str]:
        """The columns that are neither identities nor the time."""
        return [c for c in self.table.column_names
                if c not in self.identities and c != self.time]

    def rows(self) -> list[list[tuple[str, Any]]]:
        """Each record's identities, in the order of ``identities``."""
        columns = [(ns, self.table.column(c).to_pylist()) for c, ns in self.identities.items()]
        return [[(ns, values[r]) for ns, values in columns if values[r] is not None]
                for r in range(self.table.num_rows)]


@dataclass
class Stitched:
    """The people, their store, and how they came to be."""

    store: ProfileStore
    graph: IdentityGraph
    person_of: dict[Identity, str]  # each record's primary identity -> its person's key
    attributes: dict[str, Merged]  # person key -> merged attributes and their fragments
    people: People  # what built them: a streaming session carries it on
    policy: MergePolicy  # the one the store is under
    dropped_events: list[int] = field(default_factory=list)  # rows with no usable identity

    def person(self, identity: Identity) -> str:
        """The key of the person ``identity`` belongs to (its own, if the graph dropped it)."""
        return self.people.person(identity)

    def explain(self) -> Iterator[dict[str, Any]]:
        """Per person: its identities, the links and refusals that concern them (with their
        times and sources), and where each attribute's value came from."""
        links: dict[str, list[dict[str, Any]]] = {}
        for link in self.graph.log:
            links.setdefault(self.person(link.identities[0]), []).append({
                "at": link.at, "source": link.source,
                "identities": [person_key(x) for x in link.identities]})
        refusals: dict[str, list[dict[str, Any]]] = {}
        for r in self.graph.refusals:
            for who in sorted({self.person(x) for x in r.identities}):
                refusals.setdefault(who, []).append({
                    "at": r.at, "source": r.source, "reason": r.reason,
                    "identities": [person_key(x) for x in r.identities]})
        members: dict[str, list[str]] = {}
        for g in self.graph.graphs():
            members[person_key(self.graph.primary(g))] = [
                person_key(x) for x in self.graph.identities(g)]
        for key in self.store.keys.to_pylist():
            merged = self.attributes.get(key)
            yield {
                "person": key,
                "identities": members.get(key, [key]),
                "links": links.get(key, []),
                "refusals": refusals.get(key, []),
                "attributes": {} if merged is None else {
                    name: {"value": value, "dataset": merged.sources[name].dataset,
                           "identity": person_key(merged.sources[name].identity),
                           "updated": merged.sources[name].updated}
                    for name, value in merged.values.items()},
            }

    def save(self, directory: str | os.PathLike[str]) -> None:
        """``directory/store`` (the people), ``identities.json`` (the graph's log, which
        `IdentityGraph.load` replays) and ``people.jsonl`` (`explain`, a line per person),
        each written atomically."""
        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        self.store.save(root / "store")
        self.graph.save(root / "identities.json")
        lines = (json.dumps(entry, default=str) for entry in self.explain())
        write_atomic(root / "people.jsonl", "".join(f"{line}\n" for line in lines))


@dataclass(frozen=True)
class StitchPlan:
    """What `pqlite stitch` reads: a TOML file (paths relative to it)::

        [identity]                      # store.identities.IdentityConfig.from_dict
        namespaces = [{ name = "crm_id", unique = true }, { name = "ecid", tier = "cookie" }]

        [merge_policy]                  # optional: store.merging.MergePolicy.from_dict
        attributes = "timestamp"        # (the default policy, named "default")

        [merge_policies.crm_first]      # optional: more policies, each a store of its own
        attributes = "precedence"
        order = ["crm", "web"]

        [[profiles]]                    # any number of profile datasets
        name = "crm"
        path = "crm.parquet"            # Parquet or CSV, a file or a directory
        identities = { customer = "crm_id" }
        time = "updated"                # optional

        [events]                        # optional
        name = "web"
        path = "web.parquet"
        identities = { customer = "crm_id", cookie = "ecid" }
        time = "timestamp"
        type = "eventType"              # optional
    """

    config: IdentityConfig
    policy: MergePolicy
    profiles: tuple[Records, ...]
    events: Records | None
    event_type: str | None
    others: tuple[MergePolicy, ...] = ()  # the named policies besides the default

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> StitchPlan:
        import tomllib

        from store.loading import read_table

        where = Path(path)
        try:
            doc = tomllib.loads(where.read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise DataError(f"{where}: {e}") from None
        tables = {"identity", "merge_policy", "merge_policies", "profiles", "events"}
        extra = sorted(set(doc) - tables)
        if extra:
            raise DataError(f"{where}: unknown table [{extra[0]}]",
                            hint=f"the tables are {', '.join(sorted(tables))}")
        if "identity" not in doc:
            raise DataError(f"{where} has no [identity] table", hint="declare the namespaces")
        config = IdentityConfig.from_dict(doc["identity"], source=f"{where} [identity]")
        policy = MergePolicy.from_dict("default", doc.get("merge_policy", {}))
        named = doc.get("merge_policies", {})
        if "default" in named:
            raise DataError(f"{where}: [merge_policies.default]: the default policy is "
                            "[merge_policy]", hint="name the others otherwise")
        others = tuple(MergePolicy.from_dict(n, t) for n, t in named.items())

        def records(entry: Mapping[str, Any], what: str) -> Records:
            bad = sorted(set(entry) - {"name", "path", "identities", "time", "type"})
            if bad or "path" not in entry or "identities" not in entry:
                raise DataError(f"{where} [{what}]: needs path and identities"
                                + (f"; unknown key {bad[0]!r}" if bad else ""),
                                hint="keys: name, path, identities, time, type")
            table, _ = read_table(where.parent / entry["path"])
            return Records(str(entry.get("name", Path(entry["path"]).stem)), table,
                           dict(entry["identities"]), entry.get("time"))

        profiles = tuple(records(e, "[profiles]") for e in doc.get("profiles", ()))
        events = doc.get("events")
        return cls(config, policy, profiles, records(events, "events") if events else None,
                   events.get("type") if events else None, others)

    def stitch_all(self) -> dict[str, Stitched]:
        """The people under every policy of the plan, the default first."""
        return stitch_policies(self.profiles, self.events, self.config,
                               [self.policy, *self.others], event_type=self.event_type)


def person_key(identity: Identity) -> str:
    return f"{identity[0]}:{identity[1]}"


def stitch(profiles: Sequence[Records], events: Records | None, config: IdentityConfig,
           policy: MergePolicy | None = None, *, key: str = "person",
           event_type: str | None = None, at: int | None = None) -> Stitched:
    """People from records (see the module docstring). ``key`` names the profile key column
    of the result; ``event_type`` the events' type column, if any; ``at`` (epoch ms), the
    instant the people are built for: cookies unseen for their lifetime by then expire
    (default: the last record's time)."""
    people = People(config, policy, profiles=profiles, events=events, key=key,
                    event_type=event_type)
    # Not atomic: on bad input these people are dropped with the error.
    people.add([*profiles, *([events] if events is not None else [])], atomic=False,
               track=False)
    if at is not None:
        people.expire(at)
    return people.stitched()


def stitch_policies(profiles: Sequence[Records], events: Records | None,
                    config: IdentityConfig, policies: Sequence[MergePolicy], *,
                    key: str = "person", event_type: str | None = None,
                    at: int | None = None) -> dict[str, Stitched]:
    """The people under each of several merge policies, by policy name: the records go
    through the graph once per stitching mode ("graph", "none"), and each policy's store
    merges the attributes its way. (A store per policy: the events are in each.)"""
    names = [p.name for p in policies]
    if len(set(names)) != len(names) or not names:
        raise DataError(f"merge policies need distinct names, and one at least: {names}")
    out: dict[str, Stitched] = {}
    for mode in dict.fromkeys(p.stitching for p in policies):
        group = [p for p in policies if p.stitching == mode]
        first = stitch(profiles, events, config, group[0], key=key, event_type=event_type,
                       at=at)
        for policy in group:
            out[policy.name] = first if policy is group[0] else first.people.stitched(policy)
    return {name: out[name] for name in names}


class People:
    """The people records make, kept up to date as records arrive: the identity graph,
    each identity's records (the events whose primary identity it is, and its fragment per
    profile dataset) and the merged attributes. `stitch` feeds it every record at once; a
    streaming session (`engine.StitchingSession`) feeds it as records come and rebuilds the
    people `add` and `expire` say changed. The same records in the same order give the same
    people either way.

    ``profiles`` and ``events`` declare the datasets (their rows, if any, are not added:
    `add` them). Records of an expired cookie are forgotten with it; those of an identity
    removed from a full graph stay its own, as a person of its own."""

    def __init__(self, config: IdentityConfig, policy: MergePolicy | None = None, *,
                 profiles: Sequence[Records] = (), events: Records | None = None,
                 key: str = "person", event_type: str | None = None) -> None:
        self.config = config
        self.policy = policy or MergePolicy()
        self.graph = IdentityGraph(config)
        self.key = key
        self.event_type = event_type
        self._rank = {n.name: i for i, n in enumerate(config.namespaces)}
        self.profile_datasets = {r.name: r for r in profiles}  # name -> its declaration
        if events is not None and events.name in self.profile_datasets:
            raise DataError(f"dataset name {events.name!r} is used twice", source=events.name)
        self._order = [*self.profile_datasets, *([events.name] if events is not None else [])]
        self.events = events
        self.attribute_types = _attribute_types(profiles, key)
        self._event_tables: list[pa.Table] = []  # the events, identity columns dropped
        self._event_count = 0
        self._rows: dict[Identity, list[int]] = {}  # primary identity -> its event rows
        # identity -> its fragments, by (dataset, the identity that gave it: itself, or an
        # expired cookie whose records it took)
        self._fragments: dict[Identity, dict[tuple[str, Identity], Fragment]] = {}
        self._arrivals = 0
        self.dropped_events: list[int] = []  # event rows with no usable identity

    # ------------------------------------------------------------ records

    @property
    def event_count(self) -> int:
        """Events added so far: the next one's row number."""
        return self._event_count

    def check(self, records: Records) -> None:
        """Raise `DataError` if `add` would refuse ``records``: a dataset not declared, other
        columns, a record without a time, an unknown namespace, too many identities."""
        self._check(records)
        if records.time is not None:
            records.instants()
        for i, record in enumerate(records.rows()):
            self.graph.check(record, f"{records.name}:row {i}")

    def add(self, sources: Sequence[Records], *, default_time: int = 0,
            atomic: bool = True, track: bool = True) -> set[Identity]:
        """Take the records of ``sources`` in time order (equal times: datasets in the order
        declared, then rows; records of a dataset without a time column are at
        ``default_time``); return the identities whose person may have changed (their
        graph, records or attributes; with ``track`` only). Bad input raises `DataError`
        before any change, unless not ``atomic`` (for a caller that checked the records
        already, or that drops these people on an error)."""
        for r in sources:
            self._check(r)
        times = [r.instants() if r.time is not None else
                 np.full(r.table.num_rows, default_time, np.int64) for r in sources]
        rows = [r.rows() for r in sources]
        for r, records in zip(sources, rows, strict=True):
            for i, record in enumerate(records if atomic else []):
                self.graph.check(record, f"{r.name}:row {i}")
        position = [self._order.index(r.name) for r in sources]
        order = sorted((int(t), position[s], s, i)
                       for s, ts in enumerate(times) for i, t in enumerate(ts))
        first_row = {}
        for s, r in enumerate(sources):
            if self.events is not None and r.name == self.events.name:
                first_row[s] = self._append_events(r.table)
        values = [{c: r.table.column(c).to_pylist() for c in r.attributes}
                  if s not in first_row else {} for s, r in enumerate(sources)]
        touched: set[Identity] = set()
        graph = self.graph
        stitching = self.policy.stitching == "graph"
        for at, _, s, i in order:
            record = rows[s][i]
            if stitching:
                expired = self.expire(at)
                out = graph.observe(record, at, f"{sources[s].name}:row {i}")
                blocked = set(out.blocked)
                if track:
                    touched |= expired
                    if out.merged or out.removed or out.split:
                        for g in [out.graph, *out.split]:
                            touched.update(graph.identities(g))
                        touched.update(out.removed)
            else:
                blocked = {(n, str(v)) for n, v in record if self.config.blocks(str(v))}
            usable = [(n, str(v)) for n, v in record if (n, str(v)) not in blocked]
            if track:
                touched.update(usable)
            primary = min(usable, key=lambda x: self._rank[x[0]]) if usable else None
            if s in first_row:
                row = first_row[s] + i
                if primary is None:
                    self.dropped_events.append(row)
                else:
                    self._rows.setdefault(primary, []).append(row)
            elif primary is not None:
                self._fragment(sources[s].name, primary, at,
                               {c: v[i] for c, v in values[s].items() if v[i] is not None})
        return touched

    def expire(self, now: int) -> set[Identity]:
        """Expire the cookies unseen for their lifetime before ``now``; return the
        identities whose person changed. A cookie that leaves a graph leaves its records
        to the graph's primary identity (a customer keeps the browsing done before logging
        in); a cookie that leaves nothing behind is forgotten with its records."""
        touched: set[Identity] = set()
        # Each cookie at its own instant, however late the call: a batch build and a stream
        # (which expires as its clock passes each instant) then expire alike.
        while (due := self.next_expiry()) is not None and due <= now:
            touched |= self._expire(due)
        return touched

    def _expire(self, now: int) -> set[Identity]:
        touched: set[Identity] = set()
        for ident, g, split in self.graph.expire(now):
            rows = self._rows.pop(ident, None)
            fragments = self._fragments.pop(ident, None)
            touched.add(ident)
            for part in split:  # (a later cookie of the same call may have emptied it)
                if part in self.graph:
                    touched.update(self.graph.identities(part))
            if g is None or g not in self.graph:
                continue
            heir = self.graph.primary(g)
            if rows:
                self._rows[heir] = sorted([*self._rows.get(heir, []), *rows])
            if fragments:
                self._fragments.setdefault(heir, {}).update(fragments)
            touched.update(self.graph.identities(g))
        return touched

    def next_expiry(self) -> int | None:
        return self.graph.next_expiry() if self.policy.stitching == "graph" else None

    # ------------------------------------------------------------ people

    def person(self, identity: Identity) -> str:
        """The key of the person ``identity`` belongs to (its own, if the graph dropped it
        or stitching is off)."""
        g = None if self.policy.stitching == "none" else self.graph.graph_of(identity)
        return person_key(identity if g is None else self.graph.primary(g))

    def composition(self, identity: Identity) -> tuple[str, tuple[Identity, ...]]:
        """The person of ``identity`` and the identities holding its records (sorted; none:
        the person has no records, so no profile)."""
        g = None if self.policy.stitching == "none" else self.graph.graph_of(identity)
        if g is None:
            members = [identity]
            who = person_key(identity)
        else:
            members = self.graph.identities(g)
            who = person_key(self.graph.primary(g))
        return who, tuple(sorted(x for x in members if x in self._rows or x in self._fragments))

    def event_rows(self, identities: Iterable[Identity]) -> np.ndarray:
        """The rows (in `events_table`'s numbering) of events owned by ``identities``."""
        parts = [np.asarray(self._rows[x], np.int64) for x in identities if x in self._rows]
        return np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)

    def events_table(self, rows: np.ndarray, keys: pa.Array) -> pa.Table:
        """Events ``rows`` (in order), their profile key column set to ``keys`` (one per
        row). Each table is asked only for its own rows: a take over all of them at once
        would cost their size, not the rows'."""
        starts = np.cumsum([0] + [t.num_rows for t in self._event_tables])
        which = np.searchsorted(starts, rows, side="right") - 1
        parts = []
        for k in np.unique(which).tolist():
            mine = rows[which == k] - starts[k]
            parts.append(self._event_tables[k].take(pa.array(mine, pa.int64())))
        if not parts:
            assert self.events is not None
            table = self.events.table.drop_columns(list(self.events.identities)).slice(0, 0)
        else:
            table = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
        if len(parts) > 1 and (np.diff(which) < 0).any():
            # The parts hold the rows table by table: back to the order asked for.
            order = np.argsort(np.argsort(which, kind="stable"), kind="stable")
            table = table.take(pa.array(order, pa.int64()))
        return table.append_column(self.key, keys)

    def merged(self, identities: Iterable[Identity], policy: MergePolicy | None = None
               ) -> Merged:
        """The attributes of the person holding ``identities``, under ``policy`` (default:
        the people's own)."""
        return merge([f for x in identities for f in self._fragments.get(x, {}).values()],
                     policy or self.policy)

    def profiles_table(self, people: Sequence[str], values: Sequence[Mapping[str, Any]]
                       ) -> pa.Table:
        """A row per person: the key, then every attribute column of the profile datasets
        (``values``: each person's attributes by name)."""
        columns = {self.key: pa.array(people, pa.string())}
        for name, kind in self.attribute_types.items():
            columns[name] = pa.array([v.get(name) for v in values], kind)
        return pa.table(columns)

    def stitched(self, policy: MergePolicy | None = None) -> Stitched:
        """Every person now, as a store (see the module docstring), with the attributes
        ``policy`` merges (default: the people's own policy; another must stitch alike,
        since the people are the same)."""
        policy = policy or self.policy
        if policy.stitching != self.policy.stitching:
            raise ValueError(f"merge policy {policy.name!r} stitches {policy.stitching!r}, "
                             f"these people {self.policy.stitching!r}: build them apart "
                             "(stitch_policies does)")
        compositions: dict[str, tuple[Identity, ...]] = {}
        person_of: dict[Identity, str] = {}
        for ident in [*self._rows, *self._fragments]:
            if ident not in person_of:
                who, members = self.composition(ident)
                compositions[who] = members
                person_of.update(dict.fromkeys(members, who))
        people = sorted(compositions)
        merged = {p: self.merged(compositions[p], policy) for p in people}
        table = self.profiles_table(people, [merged[p].values for p in people])
        event_table = None
        if self.events is not None:
            owners = np.full(self._event_count, -1, np.int64)
            number = {p: i for i, p in enumerate(people)}
            for ident, mine in self._rows.items():
                owners[mine] = number[person_of[ident]]
            rows = np.flatnonzero(owners >= 0)
            event_table = self.events_table(
                rows, pa.array(people, pa.string()).take(pa.array(owners[rows])))
        store = ProfileStore.from_arrow(
            table, event_table, profile_id=self.key,
            event_time=self.events.time if self.events is not None else None,
            event_type=self.event_type)
        return Stitched(store, self.graph, person_of, merged, self, policy,
                        list(self.dropped_events))

    # ------------------------------------------------------------ internals

    def _check(self, records: Records) -> None:
        if records.name in self.profile_datasets:
            expected = self.profile_datasets[records.name].table.schema
        elif self.events is not None and records.name == self.events.name:
            expected = self.events.table.schema
        else:
            raise DataError(f"no dataset {records.name!r} was declared", source=records.name,
                            hint=f"the datasets: {', '.join(self._order) or 'none'}")
        if records.table.schema.names != expected.names:
            raise DataError(f"dataset {records.name!r}: columns {records.table.schema.names}, "
                            f"expected {expected.names}", source=records.name)

    def _append_events(self, table: pa.Table) -> int:
        """Keep an events table (identity columns dropped); return its first row's number.
        Tables merge as they come, the last two whenever the older is at most twice the
        newer: a few tables at any time, each row copied O(log n) times."""
        assert self.events is not None
        first = self._event_count
        kept = table.drop_columns(list(self.events.identities))
        self._event_tables.append(kept)
        self._event_count += table.num_rows
        tables = self._event_tables
        while len(tables) > 1 and tables[-2].num_rows <= 2 * tables[-1].num_rows:
            last = tables.pop()
            tables[-1] = pa.concat_tables([tables[-1], last]).combine_chunks()
        return first

    def _fragment(self, dataset: str, identity: Identity, at: int, values: dict[str, Any]
                  ) -> None:
        """One profile record: later values over earlier, per (dataset, identity)."""
        mine = self._fragments.setdefault(identity, {})
        old = mine.get((dataset, identity))
        if old is None:
            self._arrivals += 1
            mine[dataset, identity] = Fragment(dataset, identity, at, values, self._arrivals)
        else:
            mine[dataset, identity] = Fragment(dataset, identity, at, {**old.values, **values},
                                               old.arrival)


def _attribute_types(profiles: Sequence[Records], key: str) -> dict[str, pa.DataType]:
    types: dict[str, pa.DataType] = {}
    for source in profiles:
        for f in (source.table.schema.field(c) for c in source.attributes):
            if f.name == key:
                raise DataError(f"dataset {source.name!r} has a column {key!r}, the name of "
                                "the people's key", column=key, source=source.name,
                                hint="rename the column or pass another key=")
            if f.name in types and types[f.name] != f.type:
                raise DataError(f"column {f.name!r} is {types[f.name]} in one profile "
                                f"dataset and {f.type} in {source.name!r}", column=f.name,
                                source=source.name, hint="cast them to one type")
            types.setdefault(f.name, f.type)
    return types


