"""A bare union of identities in Python: the floor `store.identities.IdentityGraph` is held to.

Records arrive one at a time, as `IdentityGraph.observe` takes them. For each record this
does the least that any Python implementation must do: it makes a key per identity, looks
the key up, writes one log line, and merges the graphs the record joins. It moves the
smaller graph's members into the larger one.

It applies none of the rules: no blocked values, no unique namespaces, no size limit, no
primary identity, and it keeps no links between identities, so it cannot split a graph.
Given records that no rule touches, it finds the same people as the graph
(`benches/bench_identity.py` checks this). Its time is what Python itself costs at this
machine's current speed. The ratio to it is steadier than links/s on a machine whose speed
drifts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


class BareUnion:
    """Identity keys, each one's graph, and each graph's members."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.graph: list[int] = []
        self.members: dict[int, list[int]] = {}
        self.log: dict[int, str] = {}

    def observe(self, record: Sequence[tuple[str, str]], at: int) -> None:
        keys = [f"{n}\x1f{v}" for n, v in record]
        self.log[len(self.log)] = f"{at} {' '.join(keys)}"
        graph, ids = self.graph, self.ids
        graphs = []
        for key in keys:
            i = ids.get(key)
            if i is None:
                i = ids[key] = len(graph)
                graph.append(i)
                self.members[i] = [i]
            graphs.append(graph[i])
        into = max(set(graphs), key=lambda g: len(self.members[g]))
        for g in set(graphs) - {into}:
            moved = self.members.pop(g)
            for i in moved:
                graph[i] = into
            self.members[into] += moved

    def people(self) -> set[frozenset[tuple[str, str]]]:
        """Each graph's identities, as (namespace, value)."""
        name = {i: tuple(key.split("\x1f", 1)) for key, i in self.ids.items()}
        return {frozenset(name[i] for i in m) for m in self.members.values()}


def run(records: Iterable[Sequence[tuple[str, str]]]) -> BareUnion:
    union = BareUnion()
    for at, record in enumerate(records):
        union.observe(record, at)
    return union
