"""The vector tier (`engine.vector`) against the reference, and the engine's choice of tier.

The vector tier must give exactly the reference's members wherever it answers, as the
kernels must (tests/test_compiled.py); it compiles nothing per definition, so the random
test affords more examples. Definitions it does not support are dropped (and counted as
Hypothesis events); `test_core_constructs_vectorize` makes sure that hides nothing common.
"""

from __future__ import annotations

import collections
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, note, settings
from hypothesis import strategies as st

import engine
from engine import kernels, session, vector
from engine.codegen import CompileError
from engine.session import Engine
from store import synth
from tests import reference
from tests import typed_strategies as typed
from tests.conftest import fresh_kernel_cache
from tests.test_compiled import CORE, CORE_STORE_EVENTS, CORE_STORE_PROFILES, b10, members, store_of

NOW = typed.NOW
UNSUPPORTED: collections.Counter[str] = collections.Counter()

__all__ = ["b10"]  # a fixture shared with test_compiled


@pytest.fixture(scope="module", autouse=True)
def kernel_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with fresh_kernel_cache(tmp_path_factory):
        yield
    if UNSUPPORTED:
        print(f"\nnot vectorized in {sum(UNSUPPORTED.values())} random definitions:",
              file=sys.stderr)
        for what, count in UNSUPPORTED.most_common():
            print(f"  {count:4d}  {what}", file=sys.stderr)


def vectorized(store: Any, definitions: dict[str, str], at: int) -> session.Result:
    eng = Engine(store, threads=1, tier="vector", background=False)
    for name, text in definitions.items():
        eng.define(name, text)
    return eng.run(at)


# ================================================================ random differential test


def _differential(data: st.DataObject, *, max_definitions: int, depth: int) -> None:
    ds = data.draw(typed.datasets(), label="dataset")
    store = ds.load()
    note(ds.describe())
    definitions: dict[str, str] = {}
    scratch = Engine(store, threads=1)
    for k in range(data.draw(st.integers(1, max_definitions), label="n")):
        names = list(definitions)
        text = data.draw(typed.definitions(ds.world, names, depth=depth), label=f"s{k}")
        try:
            engine.check(text, store.schema, segments=names)
            scratch.define(f"s{k}", text)
        except (engine.SegmentError, CompileError):
            event("not checked or not compiled")
            continue
        if not vector.supports(scratch._segments[f"s{k}"].expr, store):
            UNSUPPORTED[_first_unsupported(text)] += 1
            event("not vectorized")
            continue
        definitions[f"s{k}"] = text
    assume(definitions)
    at = data.draw(typed.at_instants(), label="at")
    note(f"definitions: {definitions!r}, at={at}")
    result = vectorized(store, definitions, at)
    expected = reference.run(store, definitions, at_ms=at)
    for name, text in definitions.items():
        assert result.tiers[name] == "vector", (name, text)
        got = members(result, name)
        assert got == expected[name], (
            f"{name} = {text!r} at {at}: vector has {sorted(got - expected[name], key=str)} "
            f"too many, {sorted(expected[name] - got, key=str)} too few"
        )


def _first_unsupported(text: str) -> str:
    for word in ("includes", "intersects", "subsetOf", "supersetOf", "regexGroup", "if("):
        if word in text:
            return word
    return "other"


@settings(max_examples=100, deadline=None, report_multiple_bugs=False,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(st.data())
def test_vector_equals_reference(data: st.DataObject) -> None:
    _differential(data, max_definitions=3, depth=2)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, report_multiple_bugs=False,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(st.data())
def test_vector_equals_reference_deeper(data: st.DataObject) -> None:
    _differential(data, max_definitions=6, depth=3)


# ================================================================ what must vectorize

# CORE constructs (tests/test_compiled.py) the vector tier leaves to the kernels: lists beyond
# emptiness and length, strings computed by if() or regexGroup, string functions with
# computed arguments, distinct() of floats, chains over another time field, in/notIn with a
# list on the left.
NOT_VECTORIZED = {
    "list_some_element", "list_some_ne", "list_some_order", "list_membership", "list_not_in",
    "list_includes", "in_field_list", "in_field_list_value", "list_in_list", "intersects",
    "subset", "superset", "field_list_intersects", "lists_equal", "lists_differ",
    "list_distinct", "list_sum", "list_aggregates", "list_string_fn", "list_occurs",
    "if_list", "in_values", "string_if", "regex_group", "string_fn_value",
    "string_fn_value_fold", "chain_other_time_field", "distinct_float",
    "field_list_membership", "field_list_not_in",
}


def test_core_constructs_vectorize() -> None:
    store = store_of(CORE_STORE_PROFILES, CORE_STORE_EVENTS)
    eng = Engine(store, threads=1)
    checked = {}
    for name, text in CORE.items():
        eng.define(name, text)
        checked[name] = eng._segments[name].expr
    supported = {n for n, expr in checked.items() if vector.supports(expr, store)}
    assert supported == set(CORE) - NOT_VECTORIZED
    definitions = {n: CORE[n] for n in CORE if n in supported or n == "compare_int"}
    result = vectorized(store, definitions, NOW)
    expected = reference.run(store, definitions, at_ms=NOW)
    assert {n for n in definitions if result.tiers[n] != "vector"} == set()
    wrong = {n: (members(result, n), expected[n]) for n in definitions
             if members(result, n) != expected[n]}
    assert not wrong


def test_unsupported_definitions_fall_back_to_kernels() -> None:
    store = store_of(CORE_STORE_PROFILES, CORE_STORE_EVENTS)
    definitions = {"tags": CORE["list_membership"], "age": CORE["compare_int"]}
    result = vectorized(store, definitions, NOW)
    assert result.tiers == {"tags": "kernel", "age": "vector"}
    expected = reference.run(store, definitions, at_ms=NOW)
    assert {n: members(result, n) for n in definitions} == expected


# Shared event queries (B10's definitions share several) kept as usual; every event
# query's gathered fields kept too (runs of 3,000 profiles keep none of them); and nothing
# kept, each forgotten when the next is (as a long run forgets them all at MEMO_BYTES).
@pytest.mark.parametrize("memo", [{}, {"GATHERED_MIN": 0},
                                  {"GATHERED_MIN": 0, "MEMO_BYTES": 0}])
def test_b10_vector_equals_reference(b10, monkeypatch, memo) -> None:
    store, definitions = b10
    for name, value in memo.items():
        monkeypatch.setattr(vector, name, value)
    result = vectorized(store, definitions, synth.B10_NOW_MS)
    expected = reference.run(store, definitions, at_ms=synth.B10_NOW_MS)
    for name in definitions:
        assert result.tiers[name] == "vector"
        assert members(result, name) == expected[name], name


def test_queries_that_reach_too_many_events_go_to_the_kernels(monkeypatch, b10) -> None:
    store, definitions = b10
    monkeypatch.setattr(vector, "MAX_ROWS", 10)
    result = vectorized(store, {"s": definitions["bought_then_browsed"]}, synth.B10_NOW_MS)
    assert result.tiers["s"] == "kernel"


# ================================================================ the engine's choice


def test_auto_tier_answers_with_vectors_then_compiles_in_the_background(monkeypatch, b10,
                                                                       tmp_path) -> None:
    store, definitions = b10
    monkeypatch.setenv("PQLITE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(session, "GROUP", 4)  # 10 segments: three kernels
    monkeypatch.setattr(session, "COMPILE_NOW", 1)
    eng = Engine(store, threads=1, background=True)
    for name, text in definitions.items():
        eng.define(name, text)
    first = eng.run(synth.B10_NOW_MS)
    assert set(first.tiers.values()) == {"vector"}
    assert eng.wait(timeout=600)  # the worker compiled the three kernels into the cache
    assert all(kernels.is_ready(eng.source(g).source) for g in eng.groups())
    second = eng.run(synth.B10_NOW_MS)
    assert set(second.tiers.values()) == {"kernel"}
    assert second.bitmaps == first.bitmaps


def test_kernel_tier_compiles_first(b10) -> None:
    store, definitions = b10
    eng = Engine(store, threads=1, tier="kernel")
    eng.define("s", definitions["us_25_40"])
    assert eng.run(synth.B10_NOW_MS).tiers == {"s": "kernel"}


def test_tier_is_checked() -> None:
    store = store_of(CORE_STORE_PROFILES, CORE_STORE_EVENTS)
    with pytest.raises(ValueError, match="tier"):
        Engine(store, tier="fast")


def test_vector_tier_evaluates_each_row_once_per_frame() -> None:
    """Counts of a nested query are per outer row, not per profile."""
    store = store_of(CORE_STORE_PROFILES, CORE_STORE_EVENTS)
    text = ('exists A from xEvent where (select B from xEvent where B.timestamp > A.timestamp)'
            '.count() = 2')
    result = vectorized(store, {"x": text}, NOW)
    assert members(result, "x") == reference.run(store, {"x": text}, at_ms=NOW)["x"]
    assert np.array_equal(sorted(members(result, "x")), ["a"])


def test_a_kernel_in_numbas_own_cache_directory_is_ready(tmp_path: Any) -> None:
    """With $NUMBA_CACHE_DIR set, Numba keeps machine code there, not beside the module:
    `is_ready` must look there too, or every cached kernel would look missing (and the
    auto tier would evaluate with the vector tier for nothing)."""
    import os
    import subprocess

    script = """
import pyarrow as pa
import engine
from engine import kernels
from store import ProfileStore
st = ProfileStore.from_arrow(pa.table({"id": [1, 2], "age": [3, 40]}), None, profile_id="id")
eng = engine.Engine(st, tier="kernel", background=False)
eng.define("old", "age > 30")
source = eng.source(eng.groups()[0]).source
assert not kernels.is_ready(source)
eng.run(0)
kernels._loaded.clear()  # as a new process sees it
assert kernels.is_ready(source)
"""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba"),
           "PQLITE_CACHE_DIR": str(tmp_path / "kernels")}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert any((tmp_path / "numba").rglob("*.nbi"))


def test_a_kernel_is_named_after_the_helpers_it_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Numba revalidates a cached module against its own file only: when the runtime helpers
    change (a new pqlite), kernels must get new names rather than run stale machine code."""
    source = "def kernel():\n    return 1\n"
    before = kernels._digest(source)
    monkeypatch.setattr(kernels, "_helpers_digest", lambda: "other helpers")
    assert kernels._digest(source) != before
