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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from store.errors import DataError
from store.identities import Identity, IdentityConfig, IdentityGraph
from store.merging import Fragment, Merged, MergePolicy, merge
from store.profile_store import ProfileStore

__all__ = ["Records", "Stitched", "person_key", "stitch"]


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
    person_of: dict[Identity, str]  # every identity seen -> its person's key
    attributes: dict[str, Merged]  # person key -> merged attributes and their fragments
    dropped_events: list[int] = field(default_factory=list)  # rows with no usable identity


def person_key(identity: Identity) -> str:
    return f"{identity[0]}:{identity[1]}"


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
            (n, str(v)) for n, v in record if str(v).strip().lower() in config.blocked}
        usable = [(n, str(v)) for n, v in record if (n, str(v)) not in blocked]
        if usable:
            primary[s][i] = min(usable, key=lambda x: rank[x[0]])

    def person(identity: Identity) -> str:
        g = graph.graph_of(identity) if policy.stitching == "graph" else None
        return person_key(graph.primary(g) if g is not None else identity)

    person_of = {x: person(x) for s in primary for x in s if x is not None}
    # A fragment per (dataset, identity): its rows in time order, later values over earlier.
    values = [{c: source.table.column(c).to_pylist() for c in source.table.column_names
               if c not in source.identities and c != source.time} for source in profiles]
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
        for f in source.table.schema:
            if f.name in source.identities or f.name == source.time:
                continue
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
