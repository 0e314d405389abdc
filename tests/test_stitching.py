"""People from records of identities (`store.stitching`) and merge policies (`store.merging`)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

from store.errors import DataError
from store.identities import DAY_MS, IdentityConfig, Namespace, Tier
from store.merging import Fragment, MergePolicy, merge
from store.stitching import Records, person_key, stitch

CONFIG = IdentityConfig((
    Namespace("crm_id", Tier.PERSON, unique=True),
    Namespace("email", Tier.PERSON),
    Namespace("ecid", Tier.COOKIE),
))
TS = pa.timestamp("ms", tz="UTC")
ROOT = Path(__file__).resolve().parents[1]


def frag(dataset: str, updated: int, arrival: int = 0, **values: Any) -> Fragment:
    return Fragment(dataset, ("crm_id", "C"), updated, values, arrival)


# ================================================================ merge policies


def test_timestamp_policy_takes_the_latest_value_per_attribute() -> None:
    crm = frag("crm", 100, 0, tier="gold", city="Lyon", phone=None)
    web = frag("web", 200, 1, tier="silver", city=None)
    out = merge([crm, web], MergePolicy())
    assert out.values == {"tier": "silver", "city": "Lyon"}  # a null erases nothing
    assert out.sources == {"tier": web, "city": crm}
    tie = frag("web", 100, 1, tier="bronze")
    assert merge([tie, crm], MergePolicy()).values["tier"] == "gold"  # tie: first arrived
    ordered = MergePolicy(order=("web", "crm"))
    assert merge([crm, tie], ordered).values["tier"] == "bronze"  # tie: dataset order


def test_precedence_policy_follows_the_dataset_order_and_ignores_others() -> None:
    crm = frag("crm", 100, tier="gold")
    web = frag("web", 900, tier="silver", city="Paris")
    app = frag("app", 999, tier="platinum", phone="555")
    out = merge([crm, web, app], MergePolicy("p", "precedence", ("crm", "web")))
    assert out.values == {"tier": "gold", "city": "Paris"}  # app is not listed


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"attributes": "newest"}, "attributes must be 'timestamp' or 'precedence'"),
    ({"attributes": "precedence"}, "needs the datasets in order"),
    ({"stitching": "fuzzy"}, "stitching must be 'graph' or 'none'"),
    ({"order": ("a", "a")}, "lists a dataset twice"),
])
def test_bad_policies(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(DataError, match=message):
        MergePolicy("p", **kwargs)
    with pytest.raises(DataError, match="unknown key 'orderr'"):
        MergePolicy.from_dict("p", {"orderr": []})


# ================================================================ a worked example


def example() -> tuple[list[Records], Records]:
    crm = Records("crm", pa.table({
        "customer": ["C1", "C2"], "mail": ["a@x.io", None],
        "tier": ["gold", "silver"], "city": ["Lyon", None],
    }), {"customer": "crm_id", "mail": "email"})
    newsletter = Records("newsletter", pa.table({
        "mail": ["a@x.io", "b@x.io"], "city": ["Paris", "Nice"],
        "at": pa.array([5 * DAY_MS, 6 * DAY_MS], pa.int64()),
    }), {"mail": "email"}, time="at")
    web = Records("web", pa.table({
        "cookie": ["K1", "K1", "K1", "K2", "K3", None],
        "customer": [None, None, "C1", None, None, None],
        "timestamp": pa.array([1, 2, 3, 4, 5, 6], pa.int64()).cast(TS),
        "eventType": ["view", "view", "purchase", "view", "view", "view"],
    }), {"customer": "crm_id", "cookie": "ecid"}, time="timestamp")
    return [crm, newsletter], web


def test_browsing_before_login_belongs_to_the_customer() -> None:
    profiles, web = example()
    out = stitch(profiles, web, CONFIG, event_type="eventType")
    store = out.store
    assert sorted(store.keys.to_pylist()) == ["crm_id:C1", "crm_id:C2", "ecid:K2", "ecid:K3",
                                              "email:b@x.io"]
    c1 = store.profile("crm_id:C1")
    assert c1 is not None
    assert [e["eventType"] for e in c1["events"]] == ["view", "view", "purchase"]
    # The newsletter's city is newer than the CRM's (day 5 against instant 0).
    assert c1["attributes"]["city"] == "Paris" and c1["attributes"]["tier"] == "gold"
    assert out.attributes["crm_id:C1"].sources["city"].dataset == "newsletter"
    assert out.person_of[("ecid", "K1")] == "crm_id:C1" and out.dropped_events == [5]
    by_crm = stitch(profiles, web, CONFIG, MergePolicy("p", "precedence", ("crm",)))
    assert by_crm.store.profile("crm_id:C1")["attributes"]["city"] == "Lyon"  # type: ignore[index]
    alone = stitch(profiles, web, CONFIG, MergePolicy(stitching="none"))
    assert "ecid:K1" in alone.store.keys.to_pylist()  # no graph: the cookie stays a person


def test_conflicting_column_types_and_missing_columns() -> None:
    profiles, web = example()
    other = Records("other", pa.table({"customer": ["C9"], "tier": [3]}),
                    {"customer": "crm_id"})
    with pytest.raises(DataError, match="column 'tier' is string in one profile dataset"):
        stitch([*profiles, other], web, CONFIG)
    with pytest.raises(DataError, match="has no column 'cookie'"):
        Records("web", pa.table({"x": [1]}), {"cookie": "ecid"})


# ================================================================ against brute force

POOL = {"crm_id": ["C1", "C2"], "email": ["a@x.io", "b@x.io", "null"],
        "ecid": ["K1", "K2", "K3", "K4"]}
cells = {ns: st.none() | st.sampled_from(values) for ns, values in POOL.items()}
record = st.fixed_dictionaries({**cells, "t": st.integers(0, 20),
                                "tier": st.none() | st.sampled_from(["gold", "silver"])})


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(record, max_size=12), events=st.lists(record, max_size=15),
       cap=st.integers(3, 6))
def test_people_events_and_attributes_by_brute_force(rows: list[dict[str, Any]],
                                                      events: list[dict[str, Any]],
                                                      cap: int) -> None:
    config = IdentityConfig(CONFIG.namespaces, max_identities=cap, max_per_record=3)
    cols = {"crm_id": "crm", "email": "mail", "ecid": "cookie"}

    def table(records: list[dict[str, Any]], extra: dict[str, Any]) -> pa.Table:
        return pa.table({**{cols[ns]: pa.array([r[ns] for r in records], pa.string())
                            for ns in POOL}, **extra})

    profiles = Records("crm", table(rows, {
        "tier": pa.array([r["tier"] for r in rows], pa.string()),
        "at": pa.array([r["t"] for r in rows], pa.int64())}),
        {v: k for k, v in cols.items()}, time="at")
    web = Records("web", table(events, {
        "timestamp": pa.array([r["t"] for r in events], pa.int64()).cast(TS)}),
        {v: k for k, v in cols.items()}, time="timestamp")
    out = stitch([profiles], web, config)
    g = out.graph
    note(f"people {[g.identities(x) for x in g.graphs()]}")

    def owner(r: dict[str, Any]) -> str | None:
        """The person of a record: its best-ranked usable identity's graph's primary."""
        usable = [(ns, r[ns]) for ns in ("crm_id", "email", "ecid")
                  if r[ns] is not None and r[ns] != "null"]
        if not usable:
            return None
        found = g.graph_of(usable[0])
        return person_key(g.primary(found) if found is not None else usable[0])

    want = Counter(o for o in map(owner, events) if o is not None)
    got = Counter()
    for key in out.store.keys.to_pylist():
        got[key] = len(out.store.profile(key)["events"])  # type: ignore[index]
    assert +got == want
    # Attributes: per person, the tier of its latest profile row that has one (ties: the
    # fragment that arrived first).
    ordered = sorted(range(len(rows)), key=lambda i: rows[i]["t"])
    latest: dict[Any, tuple[int, int, str]] = {}  # identity -> (time, arrival, tier)
    arrival: dict[Any, int] = {}
    for i in ordered:
        usable = [(ns, rows[i][ns]) for ns in ("crm_id", "email", "ecid")
                  if rows[i][ns] is not None and rows[i][ns] != "null"]
        if not usable:
            continue
        ident = usable[0]
        arrival.setdefault(ident, len(arrival))
        if rows[i]["tier"] is not None:
            latest[ident] = (rows[i]["t"], arrival[ident], rows[i]["tier"])
        elif ident in latest:  # a later row with no tier still makes the fragment newer
            latest[ident] = (rows[i]["t"], arrival[ident], latest[ident][2])
    for key in out.store.keys.to_pylist():
        mine = [v for ident, v in latest.items() if out.person_of[ident] == key]
        tier = min(mine, key=lambda v: (-v[0], v[1]))[2] if mine else None
        assert out.store.profile(key)["attributes"]["tier"] == tier, key  # type: ignore[index]


# ================================================================ the worked example


CONFIG_LIFETIME = 365 * DAY_MS


def test_online_retail_customers_get_their_anonymous_browsing() -> None:
    """docs/identity.md's example on a sample: every customer's page views before the
    first invoice are theirs once stitched; visitors who never log in stay anonymous."""
    import importlib.util

    from store.datasets import DATA_ENV, data_dir

    if not (data_dir() / "online_retail" / "online_retail.csv.gz").is_file():
        pytest.skip(f"no Online Retail data (set ${DATA_ENV} to the shared data directory)")
    path = ROOT / "examples" / "stitch_online_retail.py"
    spec = importlib.util.spec_from_file_location("stitch_online_retail", path)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    _, events = example.records(200, visitors=50)
    people, counts = example.run(200, visitors=50)
    keys = people.store.keys.to_pylist()
    assert sum(k.startswith("crm_id:") for k in keys) == 200
    # A visitor unseen for a year before the last record has expired, with its views.
    times = events.instants()
    end = int(times.max())
    last: dict[str, int] = {}
    for cookie, t in zip(events.table.column("cookie").to_pylist(), times.tolist(),
                         strict=True):
        if cookie and cookie.startswith("V"):
            last[cookie] = max(last.get(cookie, t), t)
    alive = {c for c, t in last.items() if t >= end - CONFIG_LIFETIME}
    assert 0 < len(alive) < 50  # the sample has both
    assert {k for k in keys if k.startswith("ecid:V")} == {f"ecid:{c}" for c in alive}
    assert not any(k.startswith("ecid:K") for k in keys)  # every shopper's cookie stitched
    views = pc.equal(events.table.column("eventType"), "page_view")
    total = sum(len(people.store.profile(k)["events"]) for k in keys)  # type: ignore[index]
    expired = sum(1 for c in events.table.column("cookie").to_pylist()
                  if c in last and c not in alive)
    assert total == events.table.num_rows - expired  # nothing else lost, nothing doubled
    shoppers = [k for k in keys if k.startswith("crm_id:")]
    for key in shoppers[:20]:
        history = people.store.profile(key)["events"]  # type: ignore[index]
        kinds = [e["eventType"] for e in history]
        assert kinds[0] == "page_view" and "page_view" not in kinds[kinds.index(
            next(k for k in kinds if k != "page_view")):]
    assert counts["bought_without_browsing"] == 0
    assert counts["browsed_then_bought"] + counts["never_purchased"] == len(keys)
    assert pc.sum(views).as_py() > 200
