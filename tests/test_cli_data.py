"""``pqlite import`` and ``pqlite generate``: stores built from files, errors, exit codes."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from engine.cli import main
from store import ProfileStore

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    profiles = pa.table({"id": [10, 11, 12], "country": ["US", "DE", None], "age": [30, None, 41]})
    events = pa.table({
        "id": [10, 10, 13, 11],
        "ts": [1_700_000_000, 1_700_000_100, 1_700_000_050, 1_700_000_001],
        "kind": ["view", "buy", "view", "view"],
        "price": [None, 9.5, None, None],
    })
    p, e = tmp_path / "profiles.parquet", tmp_path / "events.csv"
    pq.write_table(profiles, p)
    pcsv.write_csv(events, e)
    return p, e


def test_import_builds_a_store_and_prints_a_summary(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p, e = files
    out = tmp_path / "store"
    code = main(["import", str(out), "--profiles", str(p), "--events", str(e), "--profile-id",
                 "id", "--event-time", "ts", "--event-type", "kind", "--time-unit", "ts=s"])
    assert code == 0
    assert "profiles" in capsys.readouterr().out
    st = ProfileStore.open(out)
    assert st.keys.to_pylist() == [10, 11, 12, 13]  # 13 only has events
    assert len(st.events) == 4


def test_import_of_events_with_epoch_seconds(files: tuple[Path, Path], tmp_path: Path) -> None:
    _, e = files
    out = tmp_path / "store"
    code = main(["import", str(out), "--events", str(e), "--profile-id", "id", "--event-time",
                 "ts", "--event-type", "kind", "--time-unit", "ts=s"])
    assert code == 0
    st = ProfileStore.open(out)
    assert sorted(st.keys.to_pylist()) == [10, 11, 13]
    assert len(st.events) == 4
    assert sorted(t for part in st.events.partitions for t in part.types or ()) == ["buy", "view"]
    first = st.profile(10)
    assert first is not None
    assert [ev["kind"] for ev in first["events"]] == ["view", "buy"]
    assert first["events"][0]["ts"].timestamp() == 1_700_000_000


def test_import_error_names_file_row_and_column_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "dup.parquet"
    pq.write_table(pa.table({"id": [1, 2, 1]}), bad)
    out = tmp_path / "store"
    assert main(["import", str(out), "--profiles", str(bad), "--profile-id", "id"]) == 2
    err = capsys.readouterr().err
    assert "dup.parquet" in err and "row 2" in err and "'id'" in err and "hint:" in err
    assert not out.exists()


def test_import_without_unit_for_numeric_times_explains(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, e = files
    code = main(["import", str(tmp_path / "s"), "--events", str(e), "--profile-id", "id",
                 "--event-time", "ts", "--event-type", "kind"])
    assert code == 2
    err = capsys.readouterr().err
    assert "'ts'" in err and "unit" in err


def test_import_needs_some_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import", str(tmp_path / "s"), "--profile-id", "id"]) == 2
    assert "--profiles" in capsys.readouterr().err


def test_bad_time_unit_is_a_usage_error(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, e = files
    code = main(["import", str(tmp_path / "s"), "--events", str(e), "--profile-id", "id",
                 "--time-unit", "ts=hours"])
    assert code == 2
    assert "COLUMN=UNIT" in capsys.readouterr().err


def test_generate_writes_parquet_and_a_store(tmp_path: Path) -> None:
    assert main(["generate", str(tmp_path), "--profiles", "3000"]) == 0
    assert pq.read_metadata(tmp_path / "profiles.parquet").num_rows == 3000
    st = ProfileStore.open(tmp_path / "store")
    assert len(st) == 3000
    assert len(st.events) == pq.read_metadata(tmp_path / "events.parquet").num_rows


def test_check_takes_the_schema_from_a_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["generate", str(tmp_path), "--profiles", "500"]) == 0
    segments = ROOT / "examples" / "segments.toml"
    assert main(["check", str(segments), "--store", str(tmp_path / "store"), "-q"]) == 0
    bad = tmp_path / "bad.toml"
    bad.write_text("[segment.x]\npql = 'agee > 3'\n", encoding="utf-8")
    assert main(["check", str(bad), "--store", str(tmp_path / "store")]) == 1
    assert "age" in capsys.readouterr().out
