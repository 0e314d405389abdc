"""``pqlite demo`` on a small store, and the live traffic it streams (`store.synth.live_events`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from engine.cli import main
from engine.cli_demo import example_segments
from engine.segments import SegmentFile
from store import ProfileStore
from store.synth import B10_NOW_MS, EVENT_TYPES, EVENTS_SCHEMA, live_events
from tests import reference


def demo(capsys: pytest.CaptureFixture[str], *args: str) -> dict:  # type: ignore[type-arg]
    assert main(["demo", *args, "--json"]) == 0
    out = capsys.readouterr().out
    report: dict = json.loads(out)  # type: ignore[type-arg]
    return report


def test_demo_runs_the_examples_and_streams_changes(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    args = ("--profiles", "1000", "--dir", str(tmp_path), "--seconds", "4", "--rate", "300")
    first = demo(capsys, *args)
    assert first["store"]["profiles"] == 1000 and first["store"]["generated_s"] is not None
    st = ProfileStore.open(first["store"]["path"])
    texts = {d.name: d.pql for d in SegmentFile.load(example_segments())}
    expected = reference.run(st, texts, at_ms=B10_NOW_MS)
    assert first["batch"]["segments"] == {n: len(keys) for n, keys in expected.items()}
    stream = first["stream"]
    assert 600 < stream["events"] < 1500  # about 300 a second for 4 seconds
    changed = 0
    for name, s in stream["segments"].items():
        assert s["before"] == len(expected[name])
        assert s["before"] + s["realized"] - s["exited"] == s["after"], name
        changed += s["realized"] + s["exited"]
    assert changed == stream["changes"] > 0
    # The second run finds the store where the first left it.
    second = demo(capsys, *args)
    assert second["store"]["generated_s"] is None
    assert second["batch"] == {**first["batch"], "seconds": second["batch"]["seconds"],
                               "compiled_kernels": 0}
    assert second["stream"]["segments"] == stream["segments"]  # the same minute


def test_demo_prints_tables(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--profiles", "500", "--dir", str(tmp_path), "--seconds", "2"]) == 0
    out = capsys.readouterr().out
    for wanted in ("demo store", "500 profiles", "batch: 10 example segments at "
                   "2025-01-01T00:00:00Z", "recent_buyers", "stream: ", "realized",
                   "a sample of the changes", "done in", "pqlite repl"):
        assert wanted in out, wanted


@pytest.mark.parametrize("args", [["--profiles", "0"], ["--rate", "0"], ["--seconds", "-1"]])
def test_demo_refuses_bad_options(args: list[str], tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--dir", str(tmp_path), *args]) == 2
    assert "error:" in capsys.readouterr().err


def test_live_events_look_like_b10_traffic() -> None:
    start = B10_NOW_MS
    events = live_events(5000, start, 60_000, per_second=400)
    assert events.schema == EVENTS_SCHEMA
    assert events.equals(live_events(5000, start, 60_000, per_second=400))  # deterministic
    times = pc.cast(events.column("timestamp"), "int64").to_numpy()
    assert times.min() >= start and times.max() < start + 60_000
    assert (np.diff(times) >= 0).all()
    assert 0.6 * 400 * 60 < len(events) < 1.2 * 400 * 60
    ids = events.column("profile_id").to_numpy()
    assert ids.min() >= 0 and ids.max() < 5000
    types = pc.value_counts(events.column("eventType").combine_chunks().cast("string"))
    shares = {t["values"]: t["counts"] / len(events) for t in types.to_pylist()}
    assert set(shares) <= set(EVENT_TYPES) and 0.6 < shares["page_view"] < 0.8
    commerce = pc.is_in(events.column("eventType").combine_chunks().cast("string"),
                        value_set=pa.array(["product_view", "add_to_cart", "purchase"]))
    assert pc.all(pc.equal(pc.is_valid(events.column("price")), commerce)).as_py()
    with pytest.raises(ValueError):
        live_events(0, start)
