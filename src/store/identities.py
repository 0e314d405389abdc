"""The identity graph: (namespace, value) identities seen together are one person.

A record (a profile row or an event) carries one or more identities: a cookie, a CRM id, an
email. Identities seen in one record are *linked*; linked identities form a *graph*, one
graph per person, and a person is one profile. `IdentityGraph.observe` takes the records in
time order and keeps, per graph, its identities and the links between them; every accepted
record is kept in an append-only log (`Link`: what was linked, when, from which record), so a
graph can be explained and rebuilt: replaying the log gives the same graphs, whether the
records came one by one (streaming) or all at once (a batch build).

Guards against *profile collapse*, where one shared device or junk value would merge
thousands of people (the commonest complaint about peers):

* **Blocked values**: "null", "anonymous", "", "test@test.com" and the like (configurable)
  are never identities; a record's blocked values are reported and left out.
* **Unique namespaces**: a graph holds at most one identity of a unique namespace (e.g.
  ``crm_id``). A record that would put two into one graph is refused, reported (`Refusal`)
  and links nothing; its new identities stand alone.
* **At most ``max_identities`` per graph** (default 50): before a graph grows past it, its
  oldest identities are removed, cookies first, then devices, then people-level ids (by
  tier, then last seen, then first seen). Their links go with them, which may split the
  rest of the graph into several people.
* **Cookie lifetime**: an identity of a cookie namespace expires after ``cookie_lifetime_ms``
  without being seen (default one year, rolling); `expire` removes it. A graph left without
  identities is gone: its profile is removed.

Which graph survives a merge: the one whose *primary* identity ranks first (namespace
priority, the order of `IdentityConfig.namespaces`; then the earliest seen), so a known
customer absorbs an anonymous visitor, never the reverse. Graph ids are stable: the survivor
keeps its id, an absorbed graph's id is retired.
"""

from __future__ import annotations

import enum
import heapq
import json
import operator
import os
from array import array
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii as _quote
from pathlib import Path
from typing import Any, NamedTuple

from store.errors import DataError, StoreFormatError
from store.files import write_atomic

__all__ = [
    "DEFAULT_BLOCKED",
    "Expired",
    "IdentityConfig",
    "IdentityGraph",
    "Link",
    "Namespace",
    "Observation",
    "Refusal",
    "Tier",
]

DAY_MS = 86_400_000
DEFAULT_BLOCKED = frozenset({
    "", "null", "none", "nil", "nan", "undefined", "unknown", "anonymous", "invalid", "n/a",
    "na", "0", "-1", "test", "test@test.com", "test@example.com", "noemail@noemail.com",
    "email@email.com", "no@email.com",
})

Identity = tuple[str, str]  # (namespace, value)


class Tier(enum.IntEnum):
    """What an identity names: removed in this order when a graph is full."""

    COOKIE = 0  # a browser: anonymous, expires
    DEVICE = 1  # a device id (IDFA, GAID, ...)
    PERSON = 2  # a person across devices: CRM id, email, phone


@dataclass(frozen=True)
class Namespace:
    """An identity namespace: its tier, and whether a graph may hold more than one."""

    name: str
    tier: Tier = Tier.PERSON
    unique: bool = False


@dataclass(frozen=True)
class IdentityConfig:
    """How identities link. ``namespaces`` in priority order (first: the primary identity of
    a graph that holds it); values of other namespaces are refused."""

    namespaces: tuple[Namespace, ...]
    max_identities: int = 50
    blocked: frozenset[str] = DEFAULT_BLOCKED  # compared stripped and case-insensitively
    cookie_lifetime_ms: int = 365 * DAY_MS
    max_per_record: int = 0  # 0: 20, or max_identities if smaller
    max_value_length: int = 1024

    def __post_init__(self) -> None:
        if not self.max_per_record:
            object.__setattr__(self, "max_per_record", min(20, self.max_identities))
        names = [n.name for n in self.namespaces]
        for name in names:
            if not name or any(ord(c) < 32 for c in name):
                raise ValueError(f"namespace name {name!r} must be non-empty, without "
                                 "control characters")
        if not names:
            raise ValueError("an identity configuration needs at least one namespace")
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"namespace {twice[0]!r} is declared twice")
        if self.max_identities < 2:
            raise ValueError(f"max_identities must be at least 2, not {self.max_identities}")
        if not 1 <= self.max_per_record <= self.max_identities:
            raise ValueError(f"max_per_record must be between 1 and max_identities "
                             f"({self.max_identities}), not {self.max_per_record}")
        object.__setattr__(self, "blocked", frozenset(b.strip().lower() for b in self.blocked))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "identity configuration"
                  ) -> IdentityConfig:
        """From a mapping as in a TOML ``[identity]`` table::

            namespaces = [
              { name = "crm_id", tier = "person", unique = true },
              { name = "email", tier = "person" },
              { name = "ecid", tier = "cookie" },
            ]
            max_identities = 50
            blocked = ["test@test.com"]        # added to the defaults
            cookie_lifetime_days = 365
        """
        known = {"namespaces", "max_identities", "blocked", "cookie_lifetime_days",
                 "max_per_record", "max_value_length"}
        extra = sorted(set(data) - known)
        if extra:
            raise DataError(f"{source}: unknown key {extra[0]!r}",
                            hint=f"the keys are {', '.join(sorted(known))}")
        spaces = []
        for i, given in enumerate(data.get("namespaces", ())):
            where = f"{source}: namespaces[{i}]"
            entry = {"name": given} if isinstance(given, str) else given
            if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
                raise DataError(f"{where} must be a name or a table with a name")
            tier = entry.get("tier", "person")
            if tier not in {t.name.lower() for t in Tier}:
                raise DataError(f"{where}: tier {tier!r} is not one of cookie, device, person")
            bad = sorted(set(entry) - {"name", "tier", "unique"})
            if bad:
                raise DataError(f"{where}: unknown key {bad[0]!r}",
                                hint="a namespace has name, tier and unique")
            spaces.append(Namespace(entry["name"], Tier[tier.upper()],
                                    bool(entry.get("unique", False))))
        try:
            return cls(
                tuple(spaces),
                max_identities=int(data.get("max_identities", 50)),
                blocked=DEFAULT_BLOCKED | frozenset(map(str, data.get("blocked", ()))),
                cookie_lifetime_ms=int(float(data.get("cookie_lifetime_days", 365)) * DAY_MS),
                max_per_record=int(data.get("max_per_record", 0)),
                max_value_length=int(data.get("max_value_length", 1024)),
            )
        except ValueError as e:
            raise DataError(f"{source}: {e}") from None

    def blocks(self, value: str) -> bool:
        """Whether ``value`` is a junk value no identity may have."""
        return value.strip().lower() in self.blocked

    def to_dict(self) -> dict[str, Any]:
        return {
            "namespaces": [{"name": n.name, "tier": n.tier.name.lower(), "unique": n.unique}
                           for n in self.namespaces],
            "max_identities": self.max_identities,
            "blocked": sorted(self.blocked - DEFAULT_BLOCKED),
            "cookie_lifetime_days": self.cookie_lifetime_ms / DAY_MS,
            "max_per_record": self.max_per_record,
            "max_value_length": self.max_value_length,
        }


class Link(NamedTuple):
    """An accepted record: its identities were linked at ``at`` (epoch ms)."""

    seq: int
    at: int
    identities: tuple[Identity, ...]
    source: str  # the dataset, file or stream the record came from, and where in it


class Refusal(NamedTuple):
    """A record whose identities were not linked, and why."""

    at: int
    identities: tuple[Identity, ...]
    source: str
    reason: str


class Expired(NamedTuple):
    """A cookie `IdentityGraph.expire` removed."""

    identity: Identity
    graph: int | None  # the graph it left, None if that graph is gone
    split: tuple[int, ...] = ()  # graphs split off it


@dataclass(slots=True)
class Observation:
    """What one record did to the graph."""

    graph: int  # the graph its identities are in now (-1: none, all were blocked)
    merged: list[tuple[int, int]] = field(default_factory=list)  # (survivor, absorbed)
    removed: list[Identity] = field(default_factory=list)  # evicted from a full graph
    split: list[int] = field(default_factory=list)  # graphs made by removals
    created: list[int] = field(default_factory=list)  # graphs of identities new here
    blocked: list[Identity] = field(default_factory=list)
    refusal: Refusal | None = None


class IdentityGraph:
    """Identities, their links and their graphs (see the module docstring). Not thread-safe."""

    def __init__(self, config: IdentityConfig) -> None:
        self.config = config
        self._space = {n.name: n for n in config.namespaces}
        self._rank = {n.name: i for i, n in enumerate(config.namespaces)}
        # Python's garbage collector walks every element of every container it tracks at
        # each full pass, a cache miss each: with millions of identities that took 60% of the
        # time. So only dicts of strings and numbers (which it does not track) and arrays of
        # numbers; a graph's members and an identity's links are strings of ids ("3 17 42"):
        # a graph holds at most `max_identities`, so they stay short.
        self._id: dict[str, int] = {}  # "namespace\x1fvalue" -> identity id
        self._json_name = {n.name: json.dumps(n.name) for n in config.namespaces}
        self._identity = _Names()
        self._graph = array("q")  # graph of each identity id; -1 once removed
        self._ns = array("q")  # its namespace's priority rank
        self._first = array("q")
        self._seen = array("q")
        self._adj: dict[int, str] = {}  # identity id -> the ids linked to it
        self._members: dict[int, str] = {}  # graph id -> its identity ids
        self._size: dict[int, int] = {}  # graph id -> how many
        self._primary: dict[int, int] = {}  # graph id -> its primary identity id
        # unique namespace -> graph id -> its value there
        self._unique: dict[str, dict[int, str]] = {
            n.name: {} for n in config.namespaces if n.unique}
        self._next_graph = 0
        self._log: dict[int, int] = {}  # accepted link -> its call in `_calls`
        self.refusals: list[Refusal] = []
        self.removals: list[tuple[int, Identity, str]] = []  # (at, identity, why)
        self._calls: dict[int, str] = {}  # every change, as `load` replays it (JSON)
        # Cookies by the instant they were last seen, as ints (seen << 32 | id): a heap
        # entry may be stale (seen again since, or removed); `_expiring` checks on the way.
        self._cookies: list[int] = []
        self._cookie_spaces = {n.name for n in config.namespaces if n.tier is Tier.COOKIE}

    # ------------------------------------------------------------ reading

    def __len__(self) -> int:
        """The number of graphs (people)."""
        return len(self._primary)

    def __contains__(self, graph: object) -> bool:
        """Whether graph id ``graph`` exists (absorbed and emptied graphs do not)."""
        return graph in self._primary

    def graphs(self) -> list[int]:
        return sorted(self._members)

    def graph_of(self, identity: Identity) -> int | None:
        """The graph holding ``identity``; None if it is unknown or was removed."""
        i = self._id.get(_key(identity))
        return None if i is None or self._graph[i] < 0 else self._graph[i]

    def identities(self, graph: int) -> list[Identity]:
        """The identities of ``graph``, primary first, then by priority and first seen."""
        return [self._identity[i] for i in sorted(self._ids(graph), key=self._order)]

    def primary(self, graph: int) -> Identity:
        """The identity that names the person: highest namespace priority, earliest seen."""
        return self._identity[self._primary[graph]]

    @property
    def log(self) -> list[Link]:
        """Every accepted link, in order."""
        out = []
        for seq, call in self._log.items():
            _, at, source, items = json.loads(self._calls[call])
            keys = self._read(items, source)[0]
            out.append(Link(seq, at, tuple(map(_identity, keys)), source))
        return out

    def links(self, graph: int) -> list[Link]:
        """The log entries that touched any identity of ``graph`` now, in order."""
        mine = {self._identity[i] for i in self._ids(graph)}
        return [link for link in self.log if mine.intersection(link.identities)]

    def last_seen(self, identity: Identity) -> int:
        return self._seen[self._id[_key(identity)]]

    # ------------------------------------------------------------ records

    def observe(self, identities: Iterable[tuple[str, Any]], at: int, source: str = ""
                ) -> Observation:
        """Link the identities of one record seen at ``at`` (epoch ms; records must come in
        time order for `expire` and the removal order to mean what they say). Bad input (an
        unknown namespace, too many identities, a value too long) raises `DataError` and
        changes nothing."""
        # The hot path of a stream and of a batch build (issue 6: 100,000 links/s), so one
        # pass over the record checks it, finds its known identities and writes its log
        # entry; nothing changes until the whole record has passed.
        keys, found, blocked, logged = self._read(identities, source)
        if type(at) is not int:
            at = operator.index(at)
        self._calls[len(self._calls)] = (
            f'["observe",{at},{_quote(source)},[{",".join(logged)}]]')
        out = Observation(-1, [], [], [], [], blocked)  # (positional: no default factories)
        if not keys:
            return out
        graph_of, seen = self._graph, self._seen
        ids = []
        # A new identity gets a graph id, but its graph is opened only if it stays its own:
        # most join a known person at once (a login's cookie), and then joining beats
        # opening a graph and absorbing it (`Observation` reports the same either way).
        fresh: dict[int, int] = {}  # graph id -> the new identity alone in it
        for key, known in zip(keys, found, strict=True):
            if type(known) is int and graph_of[known] >= 0:
                i = known
                seen[i] = max(seen[i], at)
            else:
                i = self._new_identity(key, known, at)
                fresh[graph_of[i]] = i
                out.created.append(graph_of[i])
            ids.append(i)
        if len(ids) == 1:  # a sighting: it links nothing
            if fresh:
                self._open(ids[0])
            out.graph = graph_of[ids[0]]
            return out
        graphs = sorted({graph_of[i] for i in ids})
        conflict = self._unique_conflict(graphs) if len(graphs) > 1 and self._unique else None
        if conflict is not None:  # the new identities stand alone
            for i in fresh.values():
                self._open(i)
            refusal = Refusal(at, tuple(map(_identity, keys)), source, conflict)
            self.refusals.append(refusal)
            out.refusal = refusal
            out.graph = graph_of[ids[0]]
            return out
        survivor = graphs[0]
        if len(graphs) > 1:
            primary = self._primary
            best = min([fresh[g] if g in fresh else primary[g] for g in graphs],
                       key=self._order)
            survivor = graph_of[best]
            if survivor in fresh:
                self._open(best)
            for g in graphs:
                if g != survivor:
                    if g in fresh:
                        self._join(survivor, fresh[g])
                    else:
                        self._absorb(survivor, g)
                    out.merged.append((survivor, g))  # (``best`` stays its primary)
        self._log[len(self._log)] = len(self._calls) - 1
        adj = self._adj
        for a in ids:
            linked = adj[a]
            for b in ids:
                if b != a and f" {b} " not in linked:
                    linked += f"{b} "
            adj[a] = linked
        out.graph = survivor
        if self._size[survivor] > self.config.max_identities:
            self._shrink(survivor, set(ids), at, out)
        return out

    def _read(self, identities: Iterable[tuple[str, Any]], source: str
              ) -> tuple[list[str], list[int | Identity], list[Identity], list[str]]:
        """A record's identities, checked: the keys of the wanted ones (each once, in
        order) with their ids (the identity itself where unknown), the blocked ones, and
        each item as JSON for the log. Raises `DataError` for an unknown namespace, a
        value too long, or too many."""
        keys: list[str] = []
        found: list[int | Identity] = []
        blocked: list[Identity] = []
        logged: list[str] = []
        names, known = self._json_name, self._id
        for namespace, given in identities:
            name = names.get(namespace) if type(namespace) is str else None
            if name is None:
                raise DataError(f"{source or 'a record'}: unknown identity namespace "
                                f"{namespace!r}", hint="declare it in the identity "
                                f"configuration; known: {', '.join(self._space)}")
            if given is None:
                logged.append(f"[{name},null]")
                continue
            value = given if type(given) is str else str(given)
            logged.append(f"[{name},{_quote(value)}]")
            key = f"{namespace}\x1f{value}"
            i = known.get(key)
            # A known value passed these checks when it was first seen.
            if i is None and self.config.blocks(value):
                blocked.append((namespace, value))
            elif i is None and len(value) > self.config.max_value_length:
                raise DataError(f"{source or 'a record'}: a {namespace} value of {len(value)} "
                                f"characters (at most {self.config.max_value_length})")
            elif key not in keys:
                keys.append(key)
                found.append((namespace, value) if i is None else i)
        if len(keys) > self.config.max_per_record:
            raise DataError(f"{source or 'a record'} carries {len(keys)} identities (at most "
                            f"{self.config.max_per_record})",
                            hint="raise max_per_record in the identity configuration")
        return keys, found, blocked, logged

    def check(self, identities: Iterable[tuple[str, Any]], source: str = "") -> None:
        """Raise the `DataError` `observe` would raise for this record, changing nothing."""
        self._read(identities, source)

    def expire(self, now: int) -> list[Expired]:
        """Remove the cookies not seen for ``cookie_lifetime_ms`` before ``now`` (seen at
        ``now - cookie_lifetime_ms - 1`` or earlier): each with the graph it leaves (None
        when that graph is gone: no identity left) and the graphs split off it (parts that
        only the cookie held together). Cheap when nothing is due (a heap peek), so it can
        run before every record."""
        limit = now - self.config.cookie_lifetime_ms
        due = self._expiring(limit)
        if not due:
            return []
        self._calls[len(self._calls)] = json.dumps(["expire", now])
        out: list[Expired] = []
        for i in sorted(due):  # in id order, so a replay removes them in the same order
            g = self._graph[i]
            self._remove(i, now, "expired")
            split = tuple(self._components(g, None))
            out.append(Expired(self._identity[i], g if g in self._primary else None, split))
        return out

    def next_expiry(self) -> int | None:
        """The first instant at which `expire` would remove a cookie; None if never."""
        while self._cookies:
            top = self._cookies[0]
            i = top & _ID_MASK
            if self._graph[i] < 0 or self._seen[i] != top >> 32:
                heapq.heappop(self._cookies)
                if self._graph[i] >= 0:  # seen since: its current deadline
                    heapq.heappush(self._cookies, self._seen[i] << 32 | i)
                continue
            return (top >> 32) + self.config.cookie_lifetime_ms + 1
        return None

    def _expiring(self, limit: int) -> set[int]:
        """The cookies last seen before ``limit``, taken off the heap."""
        due: set[int] = set()
        cookies = self._cookies
        while cookies and cookies[0] >> 32 < limit:
            top = heapq.heappop(cookies)
            i = top & _ID_MASK
            if self._graph[i] < 0:
                continue
            if self._seen[i] < limit:
                due.add(i)
            else:  # seen since: its current deadline
                heapq.heappush(cookies, self._seen[i] << 32 | i)
        return due

    # ------------------------------------------------------------ persistence

    def save(self, path: str | os.PathLike[str]) -> None:
        """The configuration and the log, atomically (a JSON document); `load` replays it."""
        head = json.dumps({"format": "pqlite-identities", "version": 1,
                           "config": self.config.to_dict()}, separators=(",", ":"))
        # The calls are JSON already: joined, not parsed and written again.
        write_atomic(path, f'{head[:-1]},"records":[{",".join(self._calls.values())}]}}')

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> IdentityGraph:
        try:
            doc = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            raise StoreFormatError(f"{path}: not a readable identity graph ({e})") from None
        if not isinstance(doc, dict) or doc.get("format") != "pqlite-identities":
            raise StoreFormatError(f"{path} is not a pqlite identity graph")
        graph = cls(IdentityConfig.from_dict(doc["config"], source=str(path)))
        for entry in doc["records"]:
            if entry[0] == "observe":
                graph.observe([tuple(x) for x in entry[3]], entry[1], entry[2])
            else:
                graph.expire(entry[1])
        return graph

    # ------------------------------------------------------------ internals

    def _order(self, i: int) -> tuple[int, int, int]:
        return self._ns[i], self._first[i], i

    def _new_identity(self, key: str, known: int | Identity, at: int) -> int:
        """An id for an identity new to the graph (``known``: its id if it was removed
        before, else the identity) and a graph id, the graph not opened yet (`_open`)."""
        if not isinstance(known, int):
            namespace, value = known
            i = len(self._graph)
            self._id[key] = i
            self._identity.names[i] = key
            self._graph.append(-1)
            self._ns.append(self._rank[namespace])
            self._first.append(at)
            self._seen.append(at)
            self._adj[i] = " "
        else:  # removed before, seen again: a new identity under the same id
            i = known
            namespace, value = _identity(key)
            self._first[i] = self._seen[i] = at
        if namespace in self._cookie_spaces:
            heapq.heappush(self._cookies, at << 32 | i)
        g = self._next_graph
        self._next_graph += 1
        self._graph[i] = g
        if namespace in self._unique:
            self._unique[namespace][g] = value
        return i

    def _open(self, i: int) -> None:
        """The graph of new identity ``i`` alone (`_new_identity` gave it an id)."""
        g = self._graph[i]
        self._members[g] = str(i)
        self._size[g] = 1
        self._primary[g] = i

    def _join(self, survivor: int, i: int) -> None:
        """New identity ``i`` joins graph ``survivor`` (its own graph never opened)."""
        g = self._graph[i]
        self._graph[i] = survivor
        self._members[survivor] += f" {i}"
        self._size[survivor] += 1
        for by_graph in self._unique.values():
            if g in by_graph:
                by_graph[survivor] = by_graph.pop(g)

    def _unique_conflict(self, graphs: list[int]) -> str | None:
        """Why joining ``graphs`` (the record's identities are in them) would put two values
        of a unique namespace into one graph."""
        for namespace, by_graph in self._unique.items():
            values = {by_graph[g] for g in graphs if g in by_graph}
            if len(values) > 1:
                shown = ", ".join(repr(v) for v in sorted(values)[:3])
                return (f"namespace {namespace!r} is unique, and this record would join "
                        f"{len(values)} of its values into one graph ({shown})")
        return None

    def _absorb(self, survivor: int, other: int) -> None:
        """Graph ``other`` joins ``survivor`` (whose primary identity the caller sets)."""
        for i in self._ids(other):
            self._graph[i] = survivor
        self._members[survivor] += " " + self._members.pop(other)
        self._size[survivor] += self._size.pop(other)
        del self._primary[other]
        for by_graph in self._unique.values():
            if other in by_graph:
                by_graph[survivor] = by_graph.pop(other)

    def _shrink(self, graph: int, keep: set[int], at: int, out: Observation) -> None:
        """Remove the oldest identities of a graph that grew too large (never the record's
        own), then split off what no longer hangs together."""
        members = self._ids(graph)
        removable = sorted(set(members) - keep, key=lambda i: (
            self._space[self._identity[i][0]].tier, self._seen[i], self._first[i], i))
        excess = len(members) - self.config.max_identities
        for i in removable[:excess]:
            out.removed.append(self._identity[i])
            self._remove(i, at, "graph full")
        out.split += self._components(graph, next(iter(keep)))

    def _remove(self, i: int, at: int, why: str) -> None:
        g = self._graph[i]
        self._members[g] = " ".join(str(x) for x in self._ids(g) if x != i)
        self._size[g] -= 1
        for j in map(int, self._adj[i].split()):
            self._adj[j] = self._adj[j].replace(f" {i} ", " ")
        self._adj[i] = " "
        self._graph[i] = -1
        self.removals.append((at, self._identity[i], why))

    def _components(self, graph: int, anchor: int | None) -> list[int]:
        """Split ``graph`` into its connected parts: the one holding ``anchor`` (else the one
        holding the primary identity) keeps the id, the others get new ones (returned). A
        graph with no identity left is dropped."""
        members = self._ids(graph)
        if not members:
            del self._members[graph], self._size[graph], self._primary[graph]
            for by_graph in self._unique.values():
                by_graph.pop(graph, None)
            return []
        parts = []
        todo = set(members)
        while todo:
            start = min(todo, key=self._order)
            part, stack = {start}, [start]
            while stack:
                for j in map(int, self._adj[stack.pop()].split()):
                    if j not in part:
                        part.add(j)
                        stack.append(j)
            todo -= part
            parts.append(part)
        main = next((p for p in parts if anchor in p), parts[0])
        self._refresh(graph, main)
        made = []
        for part in parts:
            if part is main:
                continue
            g = self._next_graph
            self._next_graph += 1
            for i in part:
                self._graph[i] = g
            self._refresh(g, part)
            made.append(g)
        return made

    def _ids(self, graph: int) -> list[int]:
        return [int(x) for x in self._members[graph].split()]

    def _refresh(self, graph: int, members: set[int]) -> None:
        """A graph's members, and its primary identity and unique values from them."""
        self._members[graph] = " ".join(map(str, members))
        self._size[graph] = len(members)
        self._primary[graph] = min(members, key=self._order)
        for namespace, by_graph in self._unique.items():
            by_graph.pop(graph, None)
            for i in members:
                if self._identity[i][0] == namespace:
                    by_graph[graph] = self._identity[i][1]


_ID_MASK = (1 << 32) - 1


def _key(identity: Identity) -> str:
    return f"{identity[0]}\x1f{identity[1]}"


def _identity(key: str) -> Identity:
    namespace, value = key.split("\x1f", 1)  # a namespace has no control characters
    return namespace, value


class _Names:
    """Identity id -> (namespace, value), kept as strings in a dict (see `_id`)."""

    __slots__ = ("names",)

    def __init__(self) -> None:
        self.names: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> Identity:
        return _identity(self.names[i])

    def __iter__(self) -> Iterator[Identity]:
        return (self[i] for i in range(len(self.names)))
