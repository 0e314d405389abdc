"""Several merge policies at once (`store.stitching.stitch_policies`, `engine.policies`):
each segment evaluates over the people its own policy makes."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.cli import main
from engine.policies import Policies, PolicyError
from engine.segments import SegmentFile
from store.errors import DataError
from store.identities import DAY_MS, IdentityConfig, Namespace, Tier
from store.merging import MergePolicy
from store.stitching import Records, stitch_policies

CONFIG = IdentityConfig((
    Namespace("crm_id", Tier.PERSON, unique=True),
    Namespace("email", Tier.PERSON),
    Namespace("ecid", Tier.COOKIE),
))
TS = pa.timestamp("ms", tz="UTC")
POLICIES = [MergePolicy("latest"), MergePolicy("crm_first", "precedence", ("crm",)),
            MergePolicy("apart", stitching="none")]


def records() -> tuple[list[Records], Records]:
    crm = Records("crm", pa.table({"customer": ["C1"], "mail": ["a@x.io"], "city": ["Lyon"]}),
                  {"customer": "crm_id", "mail": "email"})
    newsletter = Records("newsletter", pa.table({
        "mail": ["a@x.io"], "city": ["Paris"], "at": pa.array([5 * DAY_MS], pa.int64())}),
        {"mail": "email"}, time="at")
    web = Records("web", pa.table({
        "cookie": ["K1", "K1"], "customer": [None, "C1"],
        "timestamp": pa.array([1, 2], pa.int64()).cast(TS),
        "eventType": ["view", "purchase"]}), {"customer": "crm_id", "cookie": "ecid"},
        time="timestamp")
    return [crm, newsletter], web


def test_each_policy_merges_its_way_and_stitching_off_keeps_identities_apart() -> None:
    profiles, web = records()
    people = stitch_policies(profiles, web, CONFIG, POLICIES, event_type="eventType")
    assert list(people) == ["latest", "crm_first", "apart"]
    city = {name: p.store.profile("crm_id:C1")["attributes"]["city"]  # type: ignore[index]
            for name, p in people.items()}
    assert city == {"latest": "Paris", "crm_first": "Lyon", "apart": "Lyon"}
    assert people["latest"].people is people["crm_first"].people  # stitched once
    assert people["crm_first"].policy.name == "crm_first"
    assert "ecid:K1" in people["apart"].store.keys.to_pylist()
    assert "ecid:K1" not in people["latest"].store.keys.to_pylist()
    with pytest.raises(DataError, match="distinct names"):
        stitch_policies(profiles, web, CONFIG, [MergePolicy("x"), MergePolicy("x")])


def test_a_segment_evaluates_under_the_policy_it_names() -> None:
    profiles, web = records()
    engines = Policies.of(stitch_policies(profiles, web, CONFIG, POLICIES,
                                          event_type="eventType"), tier="vector")
    assert engines.default == "latest"
    engines.define("parisians", 'city = "Paris"')
    engines.define("lyonnais", 'city = "Lyon"', merge_policy="crm_first")
    engines.define("viewers", 'xEvent[eventType = "view"].count() > 0', merge_policy="apart")
    engines.define("lyon_viewers", 'inSegment("lyonnais") and '
                   'xEvent[eventType = "view"].count() > 0', merge_policy="crm_first")
    result = engines.run(10 * DAY_MS)
    assert result.ids("parisians").to_pylist() == ["crm_id:C1"]
    assert result.ids("lyonnais").to_pylist() == ["crm_id:C1"]
    assert result.ids("viewers").to_pylist() == ["ecid:K1"]  # no stitching: the cookie's own
    assert result.ids("lyon_viewers").to_pylist() == ["crm_id:C1"]  # stitched: C1 viewed
    assert result.policy_of == {"parisians": "latest", "lyonnais": "crm_first",
                                "viewers": "apart", "lyon_viewers": "crm_first"}
    with pytest.raises(PolicyError, match="under merge policy 'crm_first'"):
        engines.define("mixed", 'inSegment("lyonnais")')  # under the default
    with pytest.raises(PolicyError, match="no merge policy 'nope'"):
        engines.define("x", "true", merge_policy="nope")
    with pytest.raises(PolicyError, match="already defined under"):
        engines.define("parisians", 'city = "Paris"', merge_policy="apart")


PLAN = """
[identity]
namespaces = [{ name = "crm_id", unique = true }, "email", { name = "ecid", tier = "cookie" }]

[merge_policy]
attributes = "timestamp"

[merge_policies.crm_first]
attributes = "precedence"
order = ["crm"]

[[profiles]]
name = "crm"
path = "crm.parquet"
identities = { customer = "crm_id", mail = "email" }

[[profiles]]
name = "newsletter"
path = "newsletter.parquet"
identities = { mail = "email" }
time = "at"
"""

SEGMENTS = """
[segment.parisians]
pql = 'city = "Paris"'

[segment.lyonnais]
pql = 'city = "Lyon"'
merge_policy = "crm_first"
"""


def test_pqlite_stitch_and_run_under_each_policy(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    profiles, _ = records()
    pq.write_table(profiles[0].table, tmp_path / "crm.parquet")
    pq.write_table(profiles[1].table, tmp_path / "newsletter.parquet")
    (tmp_path / "plan.toml").write_text(PLAN)
    (tmp_path / "segments.toml").write_text(SEGMENTS)
    assert SegmentFile.load(tmp_path / "segments.toml")["lyonnais"].merge_policy == "crm_first"
    out = tmp_path / "people"
    assert main(["stitch", str(tmp_path / "plan.toml"), "--out", str(out)]) == 0
    assert (out / "store").is_dir() and (out / "policies" / "crm_first" / "store").is_dir()
    capsys.readouterr()
    at = ["--at", "2025-01-01T00:00:00Z"]
    assert main(["run", str(out / "store"), str(tmp_path / "segments.toml"), *at]) == 0
    shown = capsys.readouterr().out
    assert "parisians" in shown and "lyonnais" not in shown
    assert main(["run", str(out / "policies" / "crm_first" / "store"),
                 str(tmp_path / "segments.toml"), *at, "--merge-policy", "crm_first"]) == 0
    shown = capsys.readouterr().out
    assert "lyonnais" in shown and "parisians" not in shown
    assert main(["run", str(out / "store"), str(tmp_path / "segments.toml"), *at,
                 "--merge-policy", "web_first"]) == 2
    assert "no segment under merge policy 'web_first'" in capsys.readouterr().err
