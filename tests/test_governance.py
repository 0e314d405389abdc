"""Governance (`engine.governance`) and activation files (`engine.destinations`): label
expressions, policies with lineage, and configuration errors that name the file and key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.destinations import ActivationConfig, Cadence, ConfigError, Destination
from engine.governance import (
    Dataset,
    Governance,
    LabelError,
    Policy,
    PolicyViolation,
    parse_labels,
)
from tests.activation_fixtures import engine_of, store

SEGMENTS = {
    "buyers": 'xEvent[eventType = "purchase"].count() >= 1',
    "viewers": 'xEvent[eventType = "view"].count() >= 1',
    "french": 'country = "FR"',
    "french_buyers": 'inSegment("buyers") and inSegment("french")',
    "top": 'inSegment("french_buyers")',
}


@pytest.fixture(scope="module")
def analyses() -> dict[str, Any]:
    eng = engine_of(store(50), SEGMENTS)
    return {n: eng.analysis(n) for n in eng.names}


# ---------------------------------------------------------------- label expressions


@pytest.mark.parametrize(("text", "shown", "true_for", "false_for"), [
    ("C4", "C4", [{"C4"}], [set(), {"C5"}]),
    ("C1 and C3", "C1 and C3", [{"C1", "C3"}], [{"C1"}, {"C3"}]),
    ("C1 OR C2 and C3", "C1 or (C2 and C3)", [{"C1"}, {"C2", "C3"}], [{"C2"}, {"C3"}]),
    ("(C1 or C2) AND C3", "(C1 or C2) and C3", [{"C2", "C3"}], [{"C1", "C2"}]),
    ("custom_x and (S1 or I2)", "custom_x and (S1 or I2)", [{"custom_x", "I2"}], [{"S1"}]),
])
def test_label_expressions(text: str, shown: str, true_for: list[set[str]],
                           false_for: list[set[str]]) -> None:
    expr = parse_labels(text)
    assert str(expr) == shown
    assert all(expr.holds(labels) for labels in true_for)
    assert not any(expr.holds(labels) for labels in false_for)


@pytest.mark.parametrize(("text", "message", "column"), [
    ("C1 and", "expected a label, found the end", 7),
    ("(C1 or C2", "missing ')'", 10),
    ("C1 C2", "expected 'and', 'or' or the end, found 'C2'", 4),
    ("C1 & C2", "unexpected '&'", 4),
    ("", "empty label expression", 1),
    ("and C1", "expected a label, found 'and'", 1),
])
def test_label_expression_errors(text: str, message: str, column: int) -> None:
    with pytest.raises(LabelError) as e:
        parse_labels(text)
    assert message in e.value.message and e.value.column == column


def test_witness_is_what_makes_the_policy_true() -> None:
    expr = parse_labels("C9 or (C1 and C3) or C3")
    assert expr.witness(frozenset({"C1", "C3", "C5"})) == {"C1", "C3"}
    assert expr.witness(frozenset({"C3"})) == {"C3"}
    assert expr.witness(frozenset({"C1"})) is None


# ---------------------------------------------------------------- lineage and policies


def test_lineage_follows_fields_datasets_references_and_mapped_attributes(
        analyses: dict[str, Any]) -> None:
    gov = Governance(
        {"country": frozenset({"C4"}), "price": frozenset({"C9"})},
        (Dataset("crm", frozenset({"C2"}), attributes=frozenset({"country"})),
         Dataset("orders", frozenset({"C5"}), attributes=frozenset(),
                 event_types=frozenset({"purchase"})),
         Dataset("clicks", frozenset({"C6"}), attributes=frozenset(), event_types=None)))
    viewers = {(s.label, s.via) for s in gov.lineage("viewers", analyses)}
    assert viewers == {("C6", "dataset 'clicks' (its events of type 'view', read by segment "
                              "'viewers')")}  # purchases are another dataset
    top = [f"{s.label}: {s.via}" for s in gov.lineage("top", analyses, ["country"], "ads")]
    assert ("C4: attribute 'country' (read by segment 'french', which 'top' refers to through "
            "top → french_buyers → french)") in top
    assert ("C5: dataset 'orders' (its events of type 'purchase', read by segment 'buyers', "
            "which 'top' refers to through top → french_buyers → buyers)") in top
    assert "C4: attribute 'country' (mapped for export to 'ads')" in top
    assert "C2: dataset 'crm' (its attribute 'country', mapped for export to 'ads')" in top


def test_an_and_policy_needs_both_labels_in_the_same_activation(
        analyses: dict[str, Any]) -> None:
    gov = Governance({"country": frozenset({"C1"})},
                     (Dataset("orders", frozenset({"C3"}), event_types=frozenset({"purchase"})),),
                     (Policy("p", frozenset({"ad_targeting"}), parse_labels("C1 and C3")),))
    apart = Destination("ads", "webhook", ("french", "buyers"), "ad_targeting", url="http://x")
    gov.check([apart], analyses)  # C1 in one segment, C3 in the other: allowed
    together = Destination("ads", "webhook", ("french_buyers",), "ad_targeting", url="http://x")
    with pytest.raises(PolicyViolation) as e:
        gov.check([together], analyses)
    assert [v.segment for v in e.value.violations] == ["french_buyers"]
    mapped = Destination("ads", "webhook", ("buyers",), "ad_targeting", url="http://x",
                         attributes=("country",))
    with pytest.raises(PolicyViolation, match="mapped for export to 'ads'"):
        gov.check([mapped], analyses)
    email = Destination("mail", "webhook", ("french_buyers",), "email_targeting", url="http://x")
    gov.check([email], analyses)  # the policy denies ad targeting only


# ---------------------------------------------------------------- activation files


def write(tmp_path: Path, text: str, name: str = "activation.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


GOOD = """
governance = "gov.toml"
state = "st"

[destination.crm]
kind = "parquet"
path = "out/crm"
segments = ["buyers"]
marketing_action = "email_targeting"
attributes = ["country"]
mode = "incremental"
cadence = "every 6 hours"
consent = { purpose = "email", field = "email_opt_in", granted = [true] }

[destination.web]
kind = "webhook"
url = "http://127.0.0.1:9/hook"
segments = ["buyers", "french"]
marketing_action = "onsite_personalization"
headers = { Authorization = "Bearer x" }
batch_size = 10
"""
GOV = """
custom_labels = ["Mine"]
[labels]
country = ["C4", "Mine"]
[datasets.orders]
labels = ["C5"]
events = ["purchase"]
[[policies]]
name = "geo"
deny = "ad_targeting"
when = "C4 or (C5 and Mine)"
"""


def test_an_activation_file_is_read_with_paths_relative_to_it(tmp_path: Path) -> None:
    write(tmp_path, GOV, "gov.toml")
    config = ActivationConfig.load(write(tmp_path, GOOD))
    crm, web = config.destinations["crm"], config.destinations["web"]
    assert crm.path == tmp_path / "out/crm" and crm.is_batch and crm.mode == "incremental"
    assert crm.schedule == Cadence("every 6 hours", 6 * 3_600_000)
    assert crm.consent is not None and crm.consent.granted == (True,)
    assert web.headers == {"Authorization": "Bearer x"} and web.cadence == "streaming"
    assert config.state_dir() == tmp_path / "st"
    policy = config.governance.policies[0]
    assert policy.actions == {"ad_targeting"} and str(policy.when) == "C4 or (C5 and Mine)"
    assert [d.name for d in config.select(None, batch=True)] == ["crm"]
    with pytest.raises(ConfigError, match="did you mean 'web'"):
        config.select(["wbe"])


@pytest.mark.parametrize(("text", "message"), [
    ('[destination.x]\nkind = "parquett"\n', "[destination.x] kind: unknown kind 'parquett'\n  hint: did you mean 'parquet'"),
    ('[destination.x]\nkind = "csv"\npath = "o"\nsegments = ["a"]\n', "[destination.x]: marketing_action is missing"),
    ('[destination.x]\nkind = "csv"\npath = "o"\nsegments = ["a"]\nmarketing_action = "m"\nurl = "h"\n',
     "[destination.x] url: only for webhook destinations"),
    ('[destination.x]\nkind = "csv"\npath = "o"\nsegments = ["a"]\nmarketing_action = "m"\nsplit_row = 5\n',
     "[destination.x] split_row: unknown key\n  hint: did you mean 'split_rows'"),
    ('[destination.x]\nkind = "csv"\npath = "o"\nsegments = "a"\nmarketing_action = "m"\n',
     "segments: expected a list of strings, got a string"),
    ('[destination.x]\nkind = "csv"\npath = "o"\nsegments = ["a"]\nmarketing_action = "m"\ncadence = "dayly"\n',
     "unknown cadence 'dayly'"),
    ('[destination.x]\nkind = "webhook"\nsegments = ["a"]\nmarketing_action = "m"\n',
     "a webhook destination needs url"),
    ('[destination.x]\nkind = "jsonl"\npath = "o"\nsegments = ["a"]\nmarketing_action = "m"\ncadence = "daily"\n',
     "its cadence is streaming"),
    ('[governance.labels]\nage = ["C13"]\n[destination.x]\nkind = "jsonl"\npath = "o"\nsegments = ["a"]\nmarketing_action = "m"\n',
     "governance.labels.age: unknown label 'C13'"),
    ('[[governance.policies]]\ndeny = "ads"\nwhen = "C1 and"\n', "governance.policies[0].when: expected a label, found the end (column 7"),
    ('[[governance.policies]]\ndeny = "ads"\nwhen = "C1 and X9"\n', "governance.policies[0].when: unknown label 'X9'"),
    ('destinations = 1\n', "destinations: unknown key\n  hint: did you mean 'destination'"),
    ('[destination]\n', "no destinations"),
    ('[destination.x\n', "not valid TOML"),
])
def test_configuration_errors_name_the_file_and_key(tmp_path: Path, text: str,
                                                    message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        ActivationConfig.load(path)
    assert str(e.value).startswith(str(path)) and message in str(e.value), str(e.value)


def test_validation_against_the_store_and_the_segments(tmp_path: Path) -> None:
    st = store(20)

    def problem(body: str) -> str:
        config = ActivationConfig.load(write(tmp_path, "[destination.x]\n" + body))
        with pytest.raises(ConfigError) as e:
            config.validate(st.schema, ["buyers", "french"])
        return str(e.value)

    base = 'kind = "csv"\npath = "o"\nmarketing_action = "m"\n'
    assert "segments: no segment 'buyer' is defined\n  hint: did you mean 'buyers'" in problem(
        base + 'segments = ["buyer"]\n')
    assert "attributes: 'contry' is not a profile attribute" in problem(
        base + 'segments = ["buyers"]\nattributes = ["contry"]\n')
    assert "did you mean 'country'" in problem(base + 'segments = ["buyers"]\nattributes = ["contry"]\n')
    assert "consent.field: 'opt_in' is not a profile attribute" in problem(
        base + 'segments = ["buyers"]\nconsent = { purpose = "email", field = "opt_in" }\n')
    ok = ActivationConfig.load(write(tmp_path, "[destination.x]\n" + base
                                     + 'segments = ["buyers"]\nidentities = ["id"]\n'))
    ok.validate(st.schema, ["buyers"])
