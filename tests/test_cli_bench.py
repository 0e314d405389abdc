"""``pqlite bench`` (engine.cli_bench): its figures are there and plausible, on the demo's
B10 store and on a store of another schema (whose own latest events are streamed again)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from engine.cli import main
from store import ProfileStore


def bench(capsys: pytest.CaptureFixture[str], *args: str) -> dict:  # type: ignore[type-arg]
    assert main(["bench", *args, "--json"]) == 0
    report: dict = json.loads(capsys.readouterr().out)  # type: ignore[type-arg]
    return report


def test_bench_on_the_demo_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PQLITE_DEMO_DIR", str(tmp_path))
    report = bench(capsys, "--profiles", "2000", "--rounds", "2", "--events", "600",
                   "--batch", "200")
    assert report["profiles"] == 2000 and report["segments"] == 10
    assert len(report["batch"]["warm_s"]) == 2 and report["batch"]["profiles_per_s"] > 0
    stream = report["stream"]
    assert stream["events"] == 600 and len(stream["events_per_s"]) == 3
    assert 0 < report["edge"]["p50_ms"] <= report["edge"]["p99_ms"]


def test_bench_on_another_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ts = pa.timestamp("ms", tz="UTC")
    profiles = pa.table({"id": [1, 2, 3], "country": ["FR", "US", "FR"]})
    events = pa.table({"id": [1, 1, 2, 3], "kind": ["view", "buy", "view", "buy"],
                       "ts": pa.array([1, 2, 3, 4], pa.int64()).cast(ts)})
    store = ProfileStore.from_arrow(profiles, events, profile_id="id", event_time="ts",
                                    event_type="kind")
    store.save(tmp_path / "store")
    (tmp_path / "s.toml").write_text(
        "[segment.fr]\npql = 'country = \"FR\"'\n"
        "[segment.buyers]\npql = 'xEvent[kind = \"buy\"].count() > 0'\n")
    report = bench(capsys, str(tmp_path / "store"), "--segments", str(tmp_path / "s.toml"),
                   "--at", "2025-01-01T00:00:00Z", "--rounds", "1", "--events", "3")
    assert report["segments"] == 2 and report["stream"]["events"] == 3
    assert main(["bench", str(tmp_path / "store"), "--segments", str(tmp_path / "s.toml"),
                 "--rounds", "1", "--events", "0"]) == 0
    assert "edge, evaluate_profile" in capsys.readouterr().out


def test_bench_refuses_bad_input_without_a_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PQLITE_DEMO_DIR", str(tmp_path))
    assert main(["bench", "--profiles", "500", "--at", "yesterday"]) == 2
    assert "--at 'yesterday'" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("[segment.x]\npql = 'agee > 3'\n")
    assert main(["bench", "--profiles", "500", "--segments", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "unknown field 'agee'" in err and "did you mean 'age'" in err
