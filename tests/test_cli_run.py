"""``pqlite run`` and ``pqlite explain`` over a small generated B10 store."""

from __future__ import annotations

import functools
import json
import tomllib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyroaring import BitMap

from engine.cli import main
from store import ProfileStore
from tests import reference

ROOT = Path(__file__).resolve().parents[1]
SEGMENTS = ROOT / "examples" / "segments.toml"


@pytest.fixture(scope="module")
def b10(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("b10")
    assert main(["generate", str(directory), "--profiles", "3000"]) == 0
    return directory / "store"


@functools.cache
def expected(b10: Path) -> dict[str, set[object]]:
    """The reference evaluator's members of examples/segments.toml at 2025-01-01."""
    texts = {k: v["pql"] for k, v in tomllib.loads(SEGMENTS.read_text())["segment"].items()}
    return reference.run(ProfileStore.open(b10), texts, at_ms=1_735_689_600_000)


def test_run_writes_memberships_equal_to_the_reference(b10: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["run", str(b10), str(SEGMENTS), "--at", "2025-01-01T00:00:00Z",
                 "--out", str(out)]) == 0
    st = ProfileStore.open(b10)
    table = pq.read_table(out / "memberships.parquet").to_pylist()
    for name, keys in expected(b10).items():
        got = {r["profile_key"] for r in table if r["segment"] == name}
        assert got == keys, name
        assert {r["status"] for r in table if r["segment"] == name} <= {"realized"}
        members = BitMap.deserialize((out / f"{name}.roaring").read_bytes())
        assert set(st.keys.take(pa.array(list(members), pa.int64())).to_pylist()) == keys
    summary = json.loads((out / "run.json").read_text())
    assert summary["counts"] == {k: len(v) for k, v in expected(b10).items()}


@pytest.mark.parametrize("tier", ["vector", "kernel"])
def test_both_tiers_give_the_same_memberships(b10: Path, tmp_path: Path, tier: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / tier
    assert main(["run", str(b10), str(SEGMENTS), "--at", "2025-01-01T00:00:00Z",
                 "--out", str(out), "--tier", tier]) == 0
    summary = json.loads((out / "run.json").read_text())
    assert set(summary["tiers"].values()) == {tier}
    assert tier in capsys.readouterr().out
    assert summary["counts"] == {k: len(v) for k, v in expected(b10).items()}


def test_a_second_run_reports_entered_and_exited_profiles(b10: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["run", str(b10), str(SEGMENTS), "--out", str(out), "--at"]
    assert main([*args, "2025-01-01T00:00:00Z"]) == 0
    first = {n: BitMap.deserialize(p.read_bytes()) for n in ["recent_buyers"]
             for p in [out / f"{n}.roaring"]}
    assert main([*args, "2025-01-05T00:00:00Z"]) == 0
    now = BitMap.deserialize((out / "recent_buyers.roaring").read_bytes())
    rows = [r for r in pq.read_table(out / "memberships.parquet").to_pylist()
            if r["segment"] == "recent_buyers"]
    statuses = {s: sum(r["status"] == s for r in rows) for s in ("realized", "existing", "exited")}
    assert statuses == {"realized": len(now - first["recent_buyers"]),
                        "existing": len(now & first["recent_buyers"]),
                        "exited": len(first["recent_buyers"] - now)}
    assert statuses["exited"] > 0  # a week on, some buyers' last purchase is out of the window


def test_run_reports_definition_errors_with_positions(
    b10: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[segment.x]\npql = 'agee > 3'\n", encoding="utf-8")
    assert main(["run", str(b10), str(bad), "--at", "2025-01-01"]) == 1
    err = capsys.readouterr().err
    assert "bad.toml:2:8" in err and "did you mean 'age'" in err


def test_run_refuses_a_bad_instant(b10: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(b10), str(SEGMENTS), "--at", "yesterday-ish"]) == 2
    assert "ISO 8601" in capsys.readouterr().err


def test_explain_prints_the_definition_and_the_kernel(
    b10: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["explain", str(b10), str(SEGMENTS), "recent_buyers"]) == 0
    out = capsys.readouterr().out
    assert 'eventType = "purchase"' in out and "def kernel" in out and "event_offsets" in out
