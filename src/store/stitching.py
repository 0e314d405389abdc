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
from collections.abc import Iterator, Mapping, Sequence
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

__all__ = ["Records", "StitchPlan", "Stitched", "person_key", "stitch"]


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
    dropped_events: list[int] = field(default_factory=list)  # rows with no usable identity


    def person(self, identity: Identity) -> str:
        """The key of the person ``identity`` belongs to (its own, if the graph dropped it)."""
        return _person(self.graph, identity)

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
        attributes = "timestamp"

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

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> StitchPlan:
        import tomllib

        from store.loading import read_table

        where = Path(path)
        try:
            doc = tomllib.loads(where.read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise DataError(f"{where}: {e}") from None
        extra = sorted(set(doc) - {"identity", "merge_policy", "profiles", "events"})
        if extra:
            raise DataError(f"{where}: unknown table [{extra[0]}]",
                            hint="the tables are identity, merge_policy, profiles, events")
        if "identity" not in doc:
            raise DataError(f"{where} has no [identity] table", hint="declare the namespaces")
        config = IdentityConfig.from_dict(doc["identity"], source=f"{where} [identity]")
        policy = MergePolicy.from_dict("default", doc.get("merge_policy", {}))

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
                   events.get("type") if events else None)

    def stitch(self) -> Stitched:
        return stitch(self.profiles, self.events, self.config, self.policy,
                      event_type=self.event_type)


def person_key(identity: Identity) -> str:
    return f"{identity[0]}:{identity[1]}"


def _person(graph: IdentityGraph, identity: Identity) -> str:
    """The key of the person ``identity`` belongs to (its own, if the graph dropped it)."""
    g = graph.graph_of(identity)
    return person_key(graph.primary(g) if g is not None else identity)


def stitch(profiles: Sequence[Records], events: Records | None, config: IdentityConfig,
           policy: MergePolicy | None = None, *, key: str = "person",
           event_type: str | None = None) -> Stitched:
    """People from records (see the module docstring). ``key`` names the profile key column
    of the result; ``event_type`` the events' type column, if any."""
    policy = policy or MergePolicy()
    graph = IdentityGraph(config)
    rank = {n.name: i for i, n in enumerate(config.namespaces)}
    sources = [*profiles, *([events] if events is not None else [])]
    # Every record in time order (equal times: datasets in the order given, then rows).
    times = [r.instants() for r in sources]
    rows = [r.rows() for r in sources]
    order = sorted((int(t), s, i) for s, ts in enumerate(times) for i, t in enumerate(ts))
    primary: list[list[Identity | None]] = [[None] * len(r) for r in rows]
    for at, s, i in order:
        record = rows[s][i]
        out = graph.observe(record, at, f"{sources[s].name}:row {i}") if policy.stitching == (
            "graph") else None
        blocked = set(out.blocked) if out is not None else {
            (n, str(v)) for n, v in record if config.blocks(str(v))}
        usable = [(n, str(v)) for n, v in record if (n, str(v)) not in blocked]
        if usable:
            primary[s][i] = min(usable, key=lambda x: rank[x[0]])

    # (Without stitching the graph saw nothing: each identity is its own person.)
    person_of = {x: _person(graph, x) for s in primary for x in s if x is not None}
    # A fragment per (dataset, identity): its rows in time order, later values over earlier.
    values = [{c: source.table.column(c).to_pylist() for c in source.attributes}
              for source in profiles]
    fragments: dict[tuple[str, Identity], Fragment] = {}
    for at, s, i in order:
        ident = primary[s][i] if s < len(profiles) else None
        if ident is None:
            continue
        name = profiles[s].name
        old = fragments.get((name, ident))
        now = dict(old.values) if old is not None else {}
        now.update({c: v[i] for c, v in values[s].items() if v[i] is not None})
        fragments[(name, ident)] = Fragment(name, ident, at, now,
                                            old.arrival if old is not None else len(fragments))
    by_person: dict[str, list[Fragment]] = {}
    for (_, ident), frag in fragments.items():
        by_person.setdefault(person_of[ident], []).append(frag)
    people = sorted(set(person_of.values()))
    merged = {p: merge(by_person.get(p, ()), policy) for p in people}
    table = _profiles_table(profiles, people, merged, key)
    event_table, dropped = None, []
    if events is not None:
        owners = [None if x is None else person_of[x] for x in primary[-1]]
        dropped = [i for i, o in enumerate(owners) if o is None]
        keep = [i for i, o in enumerate(owners) if o is not None]
        event_table = events.table.drop_columns(list(events.identities)).take(
            pa.array(keep, pa.int64()))
        event_table = event_table.append_column(
            key, pa.array([owners[i] for i in keep], pa.string()))
    store = ProfileStore.from_arrow(table, event_table, profile_id=key,
                                    event_time=events.time if events is not None else None,
                                    event_type=event_type)
    return Stitched(store, graph, person_of, merged, dropped)


def _profiles_table(profiles: Sequence[Records], people: list[str],
                    merged: Mapping[str, Merged], key: str) -> pa.Table:
    """A row per person: the key, then every attribute column of the profile datasets."""
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
    columns = {key: pa.array(people, pa.string())}
    for name, kind in types.items():
        columns[name] = pa.array([merged[p].values.get(name) for p in people], kind)
    return pa.table(columns)
