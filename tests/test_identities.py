"""The identity graph (`store.identities`): linking, the collapse guards, expiry, replay.

The property test drives `IdentityGraph` and a naive oracle (below: every graph recomputed
from the surviving links by a search at every step) with the same random records, and
requires the same people after every step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

from store.errors import DataError, StoreFormatError
from store.identities import (
    DAY_MS,
    DEFAULT_BLOCKED,
    IdentityConfig,
    IdentityGraph,
    Namespace,
    Tier,
)

SPACES = (
    Namespace("crm_id", Tier.PERSON, unique=True),
    Namespace("email", Tier.PERSON),
    Namespace("idfa", Tier.DEVICE),
    Namespace("ecid", Tier.COOKIE),
)


def graph(**options: Any) -> IdentityGraph:
    return IdentityGraph(IdentityConfig(SPACES, **options))


def people(g: IdentityGraph) -> set[frozenset[tuple[str, str]]]:
    return {frozenset(g.identities(x)) for x in g.graphs()}


# ================================================================ the oracle


class Oracle:
    """The rules of the module docstring, written the slow, obvious way: a set of live
    identities and a set of links; people are the connected parts, found anew each time."""

    def __init__(self, config: IdentityConfig) -> None:
        self.config = config
        self.rank = {n.name: i for i, n in enumerate(config.namespaces)}
        self.space = {n.name: n for n in config.namespaces}
        self.created: dict[tuple[str, str], int] = {}  # first time ever seen: a tie-break
        self.first: dict[tuple[str, str], int] = {}
        self.seen: dict[tuple[str, str], int] = {}
        self.edges: set[frozenset[tuple[str, str]]] = set()

    def part(self, start: tuple[str, str]) -> set[tuple[str, str]]:
        out, todo = {start}, [start]
        while todo:
            x = todo.pop()
            for e in self.edges:
                if x in e:
                    (y,) = e - {x}
                    if y not in out:
                        out.add(y)
                        todo.append(y)
        return out

    def people(self) -> set[frozenset[tuple[str, str]]]:
        left, out = set(self.seen), set()
        while left:
            p = self.part(next(iter(left)))
            out.add(frozenset(p))
            left -= p
        return out

    def remove(self, x: tuple[str, str]) -> None:
        del self.seen[x], self.first[x]
        self.edges = {e for e in self.edges if x not in e}

    def observe(self, record: list[tuple[str, str]], at: int) -> bool:
        wanted = []
        for ident in record:
            if ident[1] is None:  # no value: not an identity
                continue
            if ident[1].strip().lower() not in self.config.blocked and ident not in wanted:
                wanted.append(ident)
        for x in wanted:
            self.created.setdefault(x, len(self.created))
            if x not in self.seen:
                self.first[x] = at
            self.seen[x] = max(self.seen.get(x, at), at)
        if not wanted:
            return True
        joined = set().union(*(self.part(x) for x in wanted))
        for space in self.config.namespaces:
            if space.unique and len({v for n, v in joined if n == space.name}) > 1:
                return False
        self.edges |= {frozenset((a, b)) for a in wanted for b in wanted if a != b}
        whole = self.part(wanted[0])
        excess = len(whole) - self.config.max_identities
        if excess > 0:
            removable = sorted(whole - set(wanted), key=lambda x: (
                self.space[x[0]].tier, self.seen[x], self.first[x], self.created[x]))
            for x in removable[:excess]:
                self.remove(x)
        return True

    def expire(self, now: int) -> None:
        for x in list(self.seen):
            if (self.space[x[0]].tier is Tier.COOKIE
                    and self.seen[x] < now - self.config.cookie_lifetime_ms):
                self.remove(x)


VALUES = {"crm_id": ["c1", "c2", "c3"], "email": ["a@x.io", "b@x.io", "test@test.com"],
          "idfa": ["d1", "d2"], "ecid": ["e1", "e2", "e3", "e4", "null", 'e"\\5\u00e9\n']}
# (the last cookie must survive the log's hand-written JSON: a quote, a backslash, an accent)
identity = st.sampled_from([(n, v) for n, vs in VALUES.items() for v in vs] + [("idfa", None)])
steps = st.lists(st.one_of(
    st.tuples(st.just("observe"), st.lists(identity, min_size=1, max_size=4),
              st.integers(0, 3 * DAY_MS)),
    st.tuples(st.just("expire"), st.just([]), st.integers(0, 3 * DAY_MS)),
), min_size=1, max_size=25)


@settings(max_examples=300, deadline=None)
@given(steps=steps, cap=st.integers(2, 6), unique_devices=st.booleans())
def test_graph_equals_the_oracle(steps: list[Any], cap: int, unique_devices: bool) -> None:
    # Unique device ids: a unique namespace that is not the first, so a new one joins a
    # person rather than founding one.
    spaces = (*SPACES[:2], Namespace("idfa", Tier.DEVICE, unique=unique_devices), SPACES[3])
    config = IdentityConfig(spaces, max_identities=cap, max_per_record=min(cap, 4),
                            cookie_lifetime_ms=2 * DAY_MS)
    g, oracle = IdentityGraph(config), Oracle(config)
    now = 0
    for kind, drawn, gap in steps:
        now += gap
        note(f"{kind} {drawn} at {now}")
        if kind == "expire":
            g.expire(now)
            oracle.expire(now)
        else:
            record = drawn[: config.max_per_record]
            accepted = oracle.observe(record, now)
            out = g.observe(record, now, "test")
            assert (out.refusal is None) == accepted, out.refusal
        assert people(g) == oracle.people()
        for x in g.graphs():  # every graph names its person by its best-ranked identity
            ranked = sorted(g.identities(x), key=lambda i: (
                oracle.rank[i[0]], oracle.first[i], oracle.created[i]))
            assert g.primary(x) == ranked[0]
    replayed = IdentityGraph(config)
    for call in map(json.loads, g._calls.values()):  # the log replays to the same people
        if call[0] == "observe":
            replayed.observe([tuple(x) for x in call[3]], call[1], call[2])
        else:
            replayed.expire(call[1])
    assert people(replayed) == people(g)


# ================================================================ the rules, one by one


def test_login_stitches_the_anonymous_visitor_to_the_customer() -> None:
    g = graph()
    visitor = g.observe([("ecid", "E1")], 1_000, "web#1").graph
    g.observe([("ecid", "E1")], 2_000, "web#2")
    out = g.observe([("ecid", "E1"), ("crm_id", "C42")], 3_000, "login#1")
    customer = g.graph_of(("crm_id", "C42"))
    assert out.merged == [(customer, visitor)] and out.graph == customer != visitor
    assert g.graph_of(("ecid", "E1")) == customer and len(g) == 1
    assert g.primary(customer) == ("crm_id", "C42")
    # A second device of the same customer joins the known profile, which survives.
    known = g.observe([("crm_id", "C42")], 3_500).graph
    other = g.observe([("ecid", "E2")], 4_000).graph
    out = g.observe([("ecid", "E2"), ("crm_id", "C42")], 5_000, "login#2")
    assert known == customer and out.merged == [(customer, other)]
    assert [link.source for link in g.links(customer)] == ["login#1", "login#2"]


def test_unique_namespace_refuses_a_second_crm_id() -> None:
    g = graph()
    g.observe([("crm_id", "C1"), ("email", "shared@x.io")], 1)
    g.observe([("crm_id", "C2")], 2)
    out = g.observe([("crm_id", "C2"), ("email", "shared@x.io")], 3, "orders.csv:row 7")
    assert out.refusal is not None and "crm_id" in out.refusal.reason
    assert out.refusal.source == "orders.csv:row 7" and g.refusals == [out.refusal]
    assert g.graph_of(("crm_id", "C1")) != g.graph_of(("crm_id", "C2"))
    assert len(g.log) == 1  # the refused record linked nothing


def test_a_unique_namespace_of_lower_priority_holds_one_value_per_person() -> None:
    # A new device id joins the customer's graph (it does not found one): the graph must
    # still know its device id, and refuse a second.
    g = IdentityGraph(IdentityConfig((SPACES[0], Namespace("idfa", Tier.DEVICE, unique=True))))
    g.observe([("crm_id", "C1")], 1)
    assert g.observe([("crm_id", "C1"), ("idfa", "D1")], 2).refusal is None
    out = g.observe([("crm_id", "C1"), ("idfa", "D2")], 3)
    assert out.refusal is not None and "idfa" in out.refusal.reason
    assert g.graph_of(("idfa", "D2")) not in (None, g.graph_of(("crm_id", "C1")))


def test_blocked_values_are_reported_and_never_link() -> None:
    g = graph(blocked=DEFAULT_BLOCKED | {"nobody@x.io"})
    a = g.observe([("ecid", "E1"), ("email", "Test@Test.com ")], 1)
    b = g.observe([("ecid", "E2"), ("email", "test@test.com")], 2)
    c = g.observe([("email", "NOBODY@x.io")], 3)
    assert a.blocked == [("email", "Test@Test.com ")] and a.graph != b.graph
    assert c.graph == -1 and c.blocked == [("email", "NOBODY@x.io")] and len(g) == 2


def test_a_full_graph_drops_cookies_first_then_devices_oldest_first() -> None:
    g = graph(max_identities=4, max_per_record=2)
    g.observe([("crm_id", "C"), ("idfa", "D1")], 1)
    g.observe([("crm_id", "C"), ("ecid", "old")], 2)
    g.observe([("crm_id", "C"), ("ecid", "new")], 3)
    out = g.observe([("crm_id", "C"), ("email", "c@x.io")], 4)  # five: one must go
    assert out.removed == [("ecid", "old")]
    out = g.observe([("crm_id", "C"), ("idfa", "D2")], 5)
    assert out.removed == [("ecid", "new")]
    out = g.observe([("crm_id", "C"), ("idfa", "D3")], 6)
    assert out.removed == [("idfa", "D1")]  # no cookie left: the oldest device
    assert set(g.identities(g.graph_of(("crm_id", "C")))) == {
        ("crm_id", "C"), ("email", "c@x.io"), ("idfa", "D2"), ("idfa", "D3")}
    assert [why for _, _, why in g.removals] == ["graph full"] * 3


def test_removing_a_bridge_splits_the_person() -> None:
    g = graph(max_identities=3, max_per_record=2)
    g.observe([("ecid", "bridge"), ("email", "a@x.io")], 1)
    g.observe([("ecid", "bridge"), ("idfa", "D")], 2)
    assert len(g) == 1
    out = g.observe([("email", "a@x.io"), ("crm_id", "C")], 3)  # four: the cookie goes
    assert out.removed == [("ecid", "bridge")]
    assert people(g) == {frozenset({("email", "a@x.io"), ("crm_id", "C")}),
                         frozenset({("idfa", "D")})}
    assert out.split == [g.graph_of(("idfa", "D"))]


def test_cookies_expire_after_a_year_without_a_visit() -> None:
    g = graph()
    g.observe([("ecid", "lonely")], 0)
    g.observe([("ecid", "kept"), ("crm_id", "C")], 0)
    g.observe([("ecid", "kept")], 200 * DAY_MS)  # a visit resets the clock
    customer = g.graph_of(("crm_id", "C"))
    assert g.expire(365 * DAY_MS + 1) == [(("ecid", "lonely"), None, ())]
    assert g.graph_of(("ecid", "lonely")) is None and len(g) == 1
    assert g.expire(565 * DAY_MS + 1) == [(("ecid", "kept"), customer, ())]
    assert g.identities(customer) == [("crm_id", "C")]
    again = g.observe([("ecid", "lonely")], 600 * DAY_MS)
    assert again.created == [again.graph]  # seen again: a new visitor


def test_save_and_load_replay_the_log(tmp_path: Path) -> None:
    g = graph(max_identities=3, max_per_record=2)
    g.observe([("ecid", "E1"), ("crm_id", "C1")], 1, "a")
    g.observe([("ecid", "E2"), ("crm_id", "C1")], 2, "b")
    g.observe([("ecid", "E3"), ("crm_id", "C1")], 3, "c")
    g.observe([("crm_id", "C2"), ("ecid", "E3")], 4, "d")  # refused
    g.expire(400 * DAY_MS)
    g.save(tmp_path / "identities.json")
    back = IdentityGraph.load(tmp_path / "identities.json")
    assert people(back) == people(g) and back.log == g.log and back.refusals == g.refusals
    assert back.config == g.config
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(StoreFormatError, match="not a pqlite identity graph"):
        IdentityGraph.load(tmp_path / "bad.json")


# ================================================================ bad input


def test_configuration_from_toml_like_data() -> None:
    config = IdentityConfig.from_dict({
        "namespaces": [{"name": "crm_id", "unique": True}, "email",
                       {"name": "ecid", "tier": "cookie"}],
        "max_identities": 10, "blocked": ["guest"], "cookie_lifetime_days": 30,
    })
    assert [n.name for n in config.namespaces] == ["crm_id", "email", "ecid"]
    assert config.namespaces[0].unique and config.namespaces[2].tier is Tier.COOKIE
    assert "guest" in config.blocked and "null" in config.blocked
    assert config.cookie_lifetime_ms == 30 * DAY_MS
    assert IdentityConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(("data", "message"), [
    ({"namespaces": ["a"], "max_identity": 3}, "unknown key 'max_identity'"),
    ({"namespaces": [{"name": "a", "tier": "browser"}]}, "tier 'browser' is not one of"),
    ({"namespaces": [{"tier": "cookie"}]}, r"namespaces\[0\] must be a name"),
    ({"namespaces": ["a", "a"]}, "namespace 'a' is declared twice"),
    ({"namespaces": []}, "at least one namespace"),
    ({"namespaces": ["a"], "max_identities": 1}, "max_identities must be at least 2"),
])
def test_configuration_errors(data: dict[str, Any], message: str) -> None:
    with pytest.raises(DataError, match=message):
        IdentityConfig.from_dict(data, source="store.toml [identity]")


def test_bad_records_raise_and_change_nothing() -> None:
    g = graph(max_per_record=2)
    with pytest.raises(DataError, match="unknown identity namespace 'phone'") as e:
        g.observe([("ecid", "E1"), ("phone", "555")], 1, "events.jsonl:3")
    assert "events.jsonl:3" in str(e.value) and e.value.hint and "crm_id" in e.value.hint
    with pytest.raises(DataError, match="carries 3 identities"):
        g.observe([("ecid", "E1"), ("ecid", "E2"), ("ecid", "E3")], 1)
    with pytest.raises(DataError, match="characters"):
        g.observe([("email", "x" * 2000)], 1)
    assert len(g) == 0 and not g.log and not g._calls
