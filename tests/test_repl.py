"""The REPL's core (`engine.repl.Repl`) and its text helpers, without a terminal.

Counts are held to the reference evaluator (tests/reference.py), clause by clause; the
instants `:why` announces are checked by evaluating the profile one millisecond before and
at them. The terminal front end is driven through a pseudo-terminal in test_repl_pty.py.
"""

from __future__ import annotations

import io
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from engine import vector
from engine.checker import check
from engine.cli import main
from engine.passes import optimize
from engine.repl import Repl, format_instant, segments_toml
from engine.repl_text import complete, join_continued, keywords, needs_more, tokens
from engine.segments import SegmentFile
from engine.session import Engine, to_epoch_ms
from store import ProfileStore
from store.synth import B10_NOW_MS
from tests import reference

ROOT = Path(__file__).resolve().parents[1]
SEGMENTS = ROOT / "examples" / "segments.toml"
EXAMPLES = {d.name: d.pql for d in SegmentFile.load(SEGMENTS)}
PURCHASE_7D = 'xEvent[eventType = "purchase" and timestamp occurs < 7 days before now].count() >= 1'
NO_PURCHASE_30D = 'xEvent[eventType = "purchase" and timestamp occurs < 30 days before now].count() = 0'


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ProfileStore:
    directory = tmp_path_factory.mktemp("b10")
    assert main(["generate", str(directory), "--profiles", "1500"]) == 0
    return ProfileStore.open(directory / "store")


@pytest.fixture(scope="module")
def expected(store: ProfileStore) -> dict[str, set[object]]:
    """Reference members of the examples, of each clause of S4, and of a few more."""
    texts = dict(EXAMPLES)
    texts.update({
        "s4_views": 'xEvent[eventType = "product_view" and category = "c0003" and timestamp '
                    "occurs < 30 days before now].count() >= 3",
        "s4_no_purchase": NO_PURCHASE_30D,
        "us": 'country = "US"',
        "young": "age < 30",
        "opted": "email_opt_in",
    })
    return reference.run(store, texts, at_ms=B10_NOW_MS)


def text_of(reply: object) -> str:
    console = Console(file=io.StringIO(), width=160, color_system=None)
    for part in reply.output:  # type: ignore[attr-defined]
        console.print(part)
    return console.file.getvalue()  # type: ignore[attr-defined]


# ---------------------------------------------------------------- counts


def test_the_session_instant_is_the_midnight_after_the_latest_event(store: ProfileStore) -> None:
    repl = Repl(store)
    assert repl.at_ms == B10_NOW_MS
    assert repl.handle(":at").data["at"] == "2025-01-01T00:00:00Z"


def test_every_example_counts_exactly_as_the_reference(store: ProfileStore,
                                                       expected: dict[str, set[object]]) -> None:
    repl = Repl(store)
    for name, text in EXAMPLES.items():
        reply = repl.handle(text)
        assert reply.ok, text_of(reply)
        assert reply.data["count"] == len(expected[name]), name
        assert reply.data["total"] == len(store)
        assert set(reply.data["sample"]) <= expected[name]
        assert len(reply.data["sample"]) == min(8, len(expected[name]))


def test_clauses_and_their_running_combination(store: ProfileStore,
                                               expected: dict[str, set[object]]) -> None:
    repl = Repl(store)
    reply = repl.handle(f'{EXAMPLES["c0003_browsers_not_buying"]} and country = "US"')
    clauses = reply.data["clauses"]
    assert reply.data["op"] == "and" and len(clauses) == 3
    views, no_purchase, us = expected["s4_views"], expected["s4_no_purchase"], expected["us"]
    assert [c["count"] for c in clauses] == [len(views), len(no_purchase), len(us)]
    assert [c["running"] for c in clauses] == [
        len(views), len(views & no_purchase), len(views & no_purchase & us)]
    assert clauses[2]["text"] == 'country = "US"'  # as typed
    assert clauses[-1]["running"] == reply.data["count"]


def test_or_clauses_run_as_a_union(store: ProfileStore,
                                   expected: dict[str, set[object]]) -> None:
    reply = Repl(store).handle("(country = 'US' or age < 30) or email_opt_in")
    us, young, opted = expected["us"], expected["young"], expected["opted"]
    assert reply.data["op"] == "or"
    assert [c["running"] for c in reply.data["clauses"]] == [
        len(us), len(us | young), len(us | young | opted)]


def test_the_clause_that_empties_the_audience_is_pointed_out(store: ProfileStore) -> None:
    reply = Repl(store).handle('country = "US" and country = "XX" and age > 3')
    out = text_of(reply)
    assert [c["running"] for c in reply.data["clauses"]][1:] == [0, 0]
    line = next(line for line in out.splitlines() if "empties" in line)
    assert 'country = "XX"' in line and out.count("empties") == 1


def test_an_expression_shows_count_share_sample_and_time(store: ProfileStore) -> None:
    reply = Repl(store).handle('country = "US"')
    out = text_of(reply)
    count = reply.data["count"]
    assert f"{count:,} profiles ({count / len(store):.2%} of {len(store):,})" in out
    assert "at 2025-01-01T00:00:00Z in " in out and " ms" in out
    assert "e.g. " + ", ".join(map(str, reply.data["sample"])) in out


def test_what_the_vector_tier_does_not_evaluate_is_compiled(store: ProfileStore) -> None:
    text = 'if(age > 40, "older", "younger") = "older"'  # a string computed by if()
    assert not vector.supports(optimize(check(text, store.schema)), store)
    reply = Repl(store).handle(text)
    assert reply.ok, text_of(reply)
    ages = store.profiles["age"]
    assert reply.data["count"] == int(((ages.values > 40) & ages.valid).sum())


# ---------------------------------------------------------------- errors


def test_a_syntax_error_shows_the_caret_and_the_hint(store: ProfileStore) -> None:
    reply = Repl(store).handle('age > 3 and country == "US"')
    assert not reply.ok
    out = text_of(reply)
    assert "error: '==' is not an operator (line 1, column 21)" in out
    assert '  age > 3 and country == "US"\n                      ^^\n' in out
    assert "hint: write a single '=' to test equality" in out


def test_a_name_error_suggests_the_field(store: ProfileStore) -> None:
    out = text_of(Repl(store).handle("agee > 3 and lifetime_valu > 2"))
    assert "unknown field 'agee'" in out and "did you mean 'age'?" in out
    assert "unknown field 'lifetime_valu'" in out and "did you mean 'lifetime_value'?" in out
    assert "  agee > 3 and lifetime_valu > 2\n               ^^^^^^^^^^^^^\n" in out


def test_unknown_commands_segments_and_profiles(store: ProfileStore) -> None:
    repl = Repl(store)
    assert repl.handle(":segmnets").data["hint"] == "did you mean ':segments'?"
    repl.handle(f":define recent_buyers {PURCHASE_7D}")
    assert "did you mean 'recent_buyers'" in repl.handle(":explain recent_buyer").data["hint"]
    bad = repl.handle(":why 99999999 recent_buyers")
    assert not bad.ok and bad.data["error"] == "no profile with key 99999999"
    assert "integers" in repl.handle(":why abc").data["error"]
    out = text_of(repl.handle('inSegment("recent_buyer") and age > 3'))
    assert "unknown segment 'recent_buyer'" in out and "did you mean 'recent_buyers'" in out


# ---------------------------------------------------------------- definitions


def test_define_segments_and_references(store: ProfileStore,
                                        expected: dict[str, set[object]]) -> None:
    repl = Repl(store)
    defined = repl.handle(f":define recent_buyers {PURCHASE_7D}")
    assert defined.data["defined"] == "recent_buyers"
    assert defined.data["count"] == len(expected["recent_buyers"])
    repl.handle(':define vip inSegment("recent_buyers") and lifetime_value > 100')
    counts = repl.handle(":segments").data["segments"]
    vip = reference.run(store, {"recent_buyers": PURCHASE_7D,
                                "vip": 'inSegment("recent_buyers") and lifetime_value > 100'},
                        at_ms=B10_NOW_MS)["vip"]
    assert counts == {"recent_buyers": len(expected["recent_buyers"]), "vip": len(vip)}
    # A redefinition changes what refers to it.
    repl.handle(":define recent_buyers age > 200")
    assert repl.handle(":segments").data["segments"] == {"recent_buyers": 0, "vip": 0}


def test_a_definition_that_would_make_a_cycle_is_refused(store: ProfileStore) -> None:
    repl = Repl(store)
    repl.handle(":define a age > 3")
    repl.handle(':define b inSegment("a")')
    reply = repl.handle(':define a inSegment("b")')
    assert not reply.ok and "a → b → a" in reply.data["error"]
    assert repl.handle(":segments").data["segments"]["a"] > 0  # the old definition stays


def test_a_long_definition_over_several_lines(store: ProfileStore) -> None:
    repl = Repl(store)
    typed = ":define s4\nxEvent[eventType = \"product_view\" and category = \"c0003\" \\\n" \
            "  and timestamp occurs < 30 days before now].count() >= 3 \\\n" \
            f"and {NO_PURCHASE_30D}"
    reply = repl.handle(typed)
    assert reply.ok, text_of(reply)
    assert reply.data["count"] == len(reference.run(
        store, {"s4": EXAMPLES["c0003_browsers_not_buying"]}, at_ms=B10_NOW_MS)["s4"])


def test_save_writes_a_segments_file_that_loads_back(store: ProfileStore, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    repl = Repl(store)
    for name, text in EXAMPLES.items():
        repl.handle(f":define {name} {text}")
    quoted = "country = \"it's\" or country = 'US'"
    assert repl.handle(f":define quoted_strings {quoted}").ok
    target = tmp_path / "mine.toml"
    reply = repl.handle(f":save {target}")
    assert reply.ok and reply.data["saved"] == str(target)
    loaded = {d.name: d.pql for d in SegmentFile.load(target)}
    assert loaded == {**EXAMPLES, "quoted_strings": quoted}
    assert main(["check", str(target), "--schema", str(ROOT / "examples" / "b10.schema.toml"),
                 "-q"]) == 0
    assert tomllib.loads(segments_toml({"x": "a = 1"}))["segment"]["x"]["pql"] == "a = 1"
    capsys.readouterr()


def test_explain_shows_the_plan_and_the_kernel(store: ProfileStore) -> None:
    repl = Repl(store, definitions={"recent_buyers": PURCHASE_7D})
    out = text_of(repl.handle(":explain recent_buyers"))
    assert "(checked and optimized)" in out and "reads" in out and "def kernel" in out


# ---------------------------------------------------------------- one profile


def member_of(store: ProfileStore, text: str, at_ms: int) -> list[object]:
    eng = Engine(store, tier="vector", background=False)
    eng.define("s", text)
    return eng.run(at_ms).ids("s").to_pylist()


def test_why_gives_each_clause_its_values_and_the_exit_instant(store: ProfileStore) -> None:
    repl = Repl(store, definitions={"recent_buyers": PURCHASE_7D})
    key = member_of(store, PURCHASE_7D, B10_NOW_MS)[0]
    reply = repl.handle(f":why {key} recent_buyers")
    why = reply.data
    assert why["member"] is True and why["clauses"][0]["value"] is True
    count = why["clauses"][0]["values"]["xEvent[…].count()"]
    assert count >= 1
    exit_ms = to_epoch_ms(why["next"])
    eng = Engine(store, background=False)
    eng.define("recent_buyers", PURCHASE_7D)
    assert eng.evaluate_profile(key, exit_ms - 1) == ["recent_buyers"]
    assert eng.evaluate_profile(key, exit_ms) == []
    # Exactly 7 days after one of its purchases.
    purchases = [e["timestamp"] for e in store.profile(key)["events"]  # type: ignore[index]
                 if e["eventType"] == "purchase"]
    assert format_instant(exit_ms - 7 * 86_400_000) in {
        format_instant(int(p.timestamp() * 1000)) for p in purchases}
    out = text_of(reply)
    assert f"profile {key} at 2025-01-01T00:00:00Z: in recent_buyers" in out
    assert f"it exits at {why['next']}" in out and "xEvent[…].count() = " in out


def test_why_for_the_last_expression_and_a_clause_that_will_flip(store: ProfileStore) -> None:
    repl = Repl(store)
    text = f'{NO_PURCHASE_30D} and country = "US"'
    reply = repl.handle(text)
    with_purchase = set(member_of(store, 'xEvent[eventType = "purchase" and timestamp '
                                  'occurs < 30 days before now].count() >= 1 and country = "US"',
                                  B10_NOW_MS))
    key = sorted(with_purchase)[0]
    why = repl.handle(f":why {key}").data
    assert why["segment"] == text and why["member"] is False
    first, second = why["clauses"]
    assert first["value"] is False and second == {
        "text": 'country = "US"', "value": True, "values": {"country": "US"}, "next": None}
    enters = to_epoch_ms(why["next"])
    assert first["next"] == why["next"]  # the purchase leaves the window: it enters
    assert key not in member_of(store, text, enters - 1)
    assert key in member_of(store, text, enters)
    assert reply.data["count"] == len(member_of(store, text, B10_NOW_MS))


def test_why_without_time_windows_says_time_does_not_change_it(store: ProfileStore) -> None:
    repl = Repl(store)
    repl.handle("age >= 30 and email_opt_in")
    reply = repl.handle(":why 3")
    assert reply.data["next"] is None
    assert all(c["next"] is None for c in reply.data["clauses"])
    assert "it stays " in text_of(reply) and "time alone does not change it" in text_of(reply)
    age = store.profile(3)["attributes"]["age"]  # type: ignore[index]
    assert reply.data["clauses"][0]["values"] == {"age": age}
    assert not Repl(store).handle(":why 3").ok  # nothing typed yet


def test_profile_shows_attributes_and_latest_events(store: ProfileStore) -> None:
    counts = np.diff(np.asarray(store.events.partitions[0].offsets))
    key = int(store.keys[int(np.argmax(counts))].as_py())
    reply = Repl(store).handle(f":profile {key}")
    out = text_of(reply)
    profile = store.profile(key)
    assert profile is not None
    assert reply.data["events"] == len(profile["events"]) > 10
    assert f"{len(profile['events']):,} events; the latest 10" in out
    latest = profile["events"][-1]
    assert format_instant(int(latest["timestamp"].timestamp() * 1000)) in out
    assert f'"{profile["attributes"]["country"]}"' in out


def test_the_instant_moves(store: ProfileStore) -> None:
    repl = Repl(store)
    before = repl.handle(PURCHASE_7D).data["count"]
    assert repl.handle(":at +7d").data["at"] == "2025-01-08T00:00:00Z"
    assert repl.handle(PURCHASE_7D).data["count"] < before
    assert repl.handle(":at 2025-01-01").data["at"] == "2025-01-01T00:00:00Z"
    assert repl.handle(PURCHASE_7D).data["count"] == before
    assert not repl.handle(":at next tuesday").ok


def test_quit_and_help(store: ProfileStore) -> None:
    repl = Repl(store)
    assert repl.handle(":quit").quit and repl.handle(":q").quit
    out = text_of(repl.handle(":help"))
    for command in (":define", ":segments", ":why", ":at", ":profile", ":explain", ":save"):
        assert command in out


# ---------------------------------------------------------------- text helpers


@pytest.mark.parametrize(("text", "more"), [
    ("age > 3", False),
    ("xEvent[eventType = 'purchase'", True),
    ("age in [1, 2", True),
    ('country = "U', True),
    ('country = "[" and (age > 3)', False),
    ("age > 3 and \\", True),
    ("`first name", True),
])
def test_needs_more(text: str, more: bool) -> None:
    assert needs_more(text) is more


def test_continued_lines_are_joined() -> None:
    assert join_continued("a = 1 and \\\n  b = 2") == "a = 1 and \n  b = 2"


def test_highlighting_uses_the_grammars_keywords() -> None:
    assert {"and", "notIn", "xEvent", "occurs", "days", "exists", "where"} <= keywords()
    kinds = {piece: kind for kind, piece in tokens(
        ':define x xEvent[eventType = "purchase"].count() >= 1 and inSegment("y") and a.count')}
    assert kinds[":define"] == "command" and kinds["xEvent"] == "keyword"
    assert kinds['"purchase"'] == "string" and kinds["count"] == "name"  # a field after a dot
    assert kinds["inSegment"] == "function" and kinds[">="] == "operator"
    text = "age > 3 and\n  country = 'US' @2025-01-01"
    assert "".join(piece for _, piece in tokens(text)) == text


def test_completion(store: ProfileStore) -> None:
    schema = store.schema

    def texts(before: str, segments: tuple[str, ...] = ()) -> list[str]:
        return [c.text for c in complete(before, schema, segments)]

    assert texts("lifetime") == ["lifetime_value"]
    assert "country" in texts("cou") and "count" not in texts("cou")
    assert "category" in texts("xEvent[cat")  # event fields
    assert texts("country.sta") == ["startsWith"]
    assert "eventType" in texts("exists P from xEvent where P.ev")
    assert texts('inSegment("rec', ("recent_buyers", "vip")) == ["recent_buyers"]
    assert texts(":def") == [":define"]
    assert texts(":explain v", ("recent_buyers", "vip")) == ["vip"]
    assert texts(":why 42 re", ("recent_buyers",)) == ["recent_buyers"]
    assert texts(":define x lifetime") == ["lifetime_value"]
    assert "xEvent" in texts("xE") and "exists" in texts("exi")
    meta = {c.text: c.meta for c in complete("ag", schema, ())}
    assert meta == {"age": "profile int"}


# ---------------------------------------------------------------- the command, piped


def test_piped_input_is_evaluated_line_by_line(store: ProfileStore, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = Path(store.path)  # type: ignore[arg-type]
    segments = tmp_path / "s.toml"
    segments.write_text(f"[segment.recent_buyers]\npql = '{PURCHASE_7D}'\n")
    lines = 'xEvent[eventType = "purchase"\n].count() >= 1\n:segments\n'
    monkeypatch.setattr(sys, "stdin", io.StringIO(lines))
    assert main(["repl", str(path), "--segments", str(segments)]) == 0
    out = capsys.readouterr().out
    assert "profiles (" in out and "recent_buyers" in out
    monkeypatch.setattr(sys, "stdin", io.StringIO("agee > 3\n:quit\nage > 3\n"))
    assert main(["repl", str(path), "--at", "2025-01-08T00:00:00Z"]) == 1
    out = capsys.readouterr().out
    assert "did you mean 'age'" in out and "profiles (" not in out  # stopped at :quit
    segments.write_text("[segment.bad]\npql = 'agee > 3'\n")
    monkeypatch.setattr(sys, "stdin", io.StringIO(":segments\n"))
    assert main(["repl", str(path), "--segments", str(segments)]) == 0
    out = capsys.readouterr().out
    assert "segment bad not defined:" in out and "did you mean 'age'" in out


def test_without_a_store_it_opens_the_demo_store(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PQLITE_DEMO_DIR", str(tmp_path))
    monkeypatch.setattr(sys, "stdin", io.StringIO("age > 3\n"))
    assert main(["repl", "--profiles", "300"]) == 0
    assert "of 300)" in capsys.readouterr().out
    assert (tmp_path / "b10-300" / "store" / "manifest.json").is_file()
    assert main(["repl", str(tmp_path), "--profiles", "300"]) == 2
    assert "without STORE" in capsys.readouterr().err
