"""Batch file exports (`engine.exports`): full and incremental files over successive runs,
checked against the set differences of the memberships; idempotent re-runs; consent;
retention of exits; a rebuilt store; crashes between the steps of an export."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from engine.destinations import Consent, Destination
from engine.exports import Exporter, ExportError, _State
from engine.governance import Governance, Policy, PolicyViolation, parse_labels
from tests.activation_fixtures import DAY, NOW, engine_of, store


@pytest.fixture(scope="module")
def eng() -> Any:
    return engine_of(store())


@pytest.fixture(scope="module")
def runs(eng: Any) -> list[Any]:
    """Runs a day apart (each `Engine.run` keeps one run back, so keep our own)."""
    return [eng.run(NOW + k * DAY) for k in range(6)]


def read_export(directory: Path, at_stamp: str) -> dict[str, list[dict[str, Any]]]:
    """The rows of an export by segment, after checking the manifest's checksums."""
    manifest = json.loads((directory / f"manifest_{at_stamp}.json").read_text())
    out: dict[str, list[dict[str, Any]]] = {s: [] for s in manifest["segments"]}
    for f in sorted(manifest["files"], key=lambda f: (f["segment"], f["part"])):
        data = (directory / f["name"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == f["sha256"] and len(data) == f["bytes"]
        path = directory / f["name"]
        table = pq.read_table(path) if path.suffix == ".parquet" else pcsv.read_csv(path)
        assert table.num_rows == f["rows"]
        out[f["segment"]] += table.to_pylist()
    return out


def keys(st: Any, bitmap: Any) -> set[int]:
    return set(st.keys.take(np.asarray(bitmap.to_array(), np.int64)).to_pylist())


def consented(st: Any) -> set[int]:
    opt = st.profiles["email_opt_in"]
    ok = opt.values.astype(bool) & (opt.valid if opt.valid is not None else True)
    return set(st.keys.to_numpy()[ok].tolist())


def stamp(k: int) -> str:
    return f"202501{1 + k:02d}T000000Z"


def by_status(rows: list[dict[str, Any]]) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {"realized": set(), "existing": set(), "exited": set()}
    for r in rows:
        out[r["status"]].add(r["id"])
    return out


SEGS = ("recent", "big", "us_recent")


def test_incremental_files_are_the_set_differences_of_successive_runs(
        eng: Any, runs: list[Any], tmp_path: Path) -> None:
    d = Destination("crm", "parquet", SEGS, "email_targeting", attributes=("country",),
                    path=tmp_path / "out", mode="incremental",
                    consent=Consent("email", "email_opt_in"))
    ex = Exporter(eng, tmp_path / "state")
    ok = consented(eng.store)
    held: dict[str, set[int]] = {s: set() for s in SEGS}  # what the destination holds
    changed = 0
    for k, result in enumerate(runs):
        report = ex.export(d, result, force=True)
        assert report.status == "written"
        rows = read_export(tmp_path / "out", stamp(k))
        for s in SEGS:
            now = keys(eng.store, result[s]) & ok
            got = by_status(rows[s])
            assert got["realized"] == now - held[s], (k, s)
            assert got["exited"] == held[s] - now, (k, s)
            assert not got["existing"]  # incremental files carry changes only
            assert report.segments[s].backfill == (k == 0)
            changed += len(got["realized"]) + len(got["exited"]) if k else 0
            held[s] = now
        assert all(r["country"] in ("US", "FR", "DE") for rs in rows.values() for r in rs)
    assert changed > 50  # the windows move: the test sees real changes


def test_full_files_hold_every_consented_member_with_its_status(
        eng: Any, runs: list[Any], tmp_path: Path) -> None:
    d = Destination("ads", "csv", SEGS, "ad_targeting", path=tmp_path / "out", mode="full",
                    consent=Consent("email", "email_opt_in"), split_rows=10)
    ex = Exporter(eng, tmp_path / "state")
    ok = consented(eng.store)
    before: dict[str, set[int]] = {s: set() for s in SEGS}
    for k, result in enumerate(runs[:3]):
        report = ex.export(d, result, force=True)
        rows = read_export(tmp_path / "out", stamp(k))
        for s in SEGS:
            now = keys(eng.store, result[s]) & ok
            got = by_status(rows[s])
            assert got["realized"] | got["existing"] == now
            assert got["existing"] == now & before[s] and got["realized"] == now - before[s]
            assert not got["exited"]
            before[s] = now
        assert all(f.rows <= 10 for f in report.files)
        assert len(report.files) > len(SEGS)  # some segment needed more than one part
        # Profiles without consent (false or null) are never written.
        assert not {r["id"] for rs in rows.values() for r in rs} - ok


def test_rerun_writes_the_same_bytes_and_does_not_move_the_baseline(
        eng: Any, runs: list[Any], tmp_path: Path) -> None:
    d = Destination("crm", "parquet", SEGS, "email_targeting", path=tmp_path / "out",
                    mode="incremental", split_rows=30)
    ex = Exporter(eng, tmp_path / "state")
    ex.export(d, runs[0], force=True)
    first = ex.export(d, runs[2], force=True)
    out = tmp_path / "out"
    snapshot = {p.name: p.read_bytes() for p in out.iterdir()}
    again = ex.export(d, runs[2], force=True)
    assert again.status == "unchanged" and again.export_id == first.export_id
    assert {p.name: p.read_bytes() for p in out.iterdir()} == snapshot
    lost = first.files[0].name
    (out / lost).unlink()  # a receiver deleted a file: the re-run writes it again, the same
    assert ex.export(d, runs[2], force=True).status == "unchanged"
    assert (out / lost).read_bytes() == snapshot[lost]
    # A fresh exporter (another process) re-running it is idempotent too.
    assert Exporter(eng, tmp_path / "state").export(d, runs[2], force=True).status == "unchanged"
    # The next export is relative to run 2, not to a baseline advanced by the re-runs.
    ex.export(d, runs[4], force=True)
    rows = read_export(out, stamp(4))
    for s in SEGS:
        now, then = keys(eng.store, runs[4][s]), keys(eng.store, runs[2][s])
        got = by_status(rows[s])
        assert got["realized"] == now - then and got["exited"] == then - now
    # An earlier export is left as it is.
    assert ex.export(d, runs[2], force=True).status == "already exported"
    with pytest.raises(ExportError, match="back in time"):
        ex.export(d, runs[3], force=True)


def test_a_crash_before_the_state_is_saved_loses_nothing(
        eng: Any, runs: list[Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = Destination("crm", "parquet", SEGS, "email_targeting", path=tmp_path / "out",
                    mode="incremental")
    ex = Exporter(eng, tmp_path / "state")
    ex.export(d, runs[0], force=True)

    def crash(*args: Any, **kwargs: Any) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(_State, "commit", crash)
    with pytest.raises(OSError):
        ex.export(d, runs[1], force=True)  # files and manifest written, state not saved
    written = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    monkeypatch.undo()
    report = ex.export(d, runs[1], force=True)  # the same export, made again from run 0
    assert report.status == "written"
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == written
    ex.export(d, runs[3], force=True)
    rows = read_export(tmp_path / "out", stamp(3))
    for s in SEGS:
        now, then = keys(eng.store, runs[3][s]), keys(eng.store, runs[1][s])
        assert by_status(rows[s])["realized"] == now - then


def test_exits_are_kept_for_the_retention_then_dropped(
        eng: Any, runs: list[Any], tmp_path: Path) -> None:
    d = Destination("web", "parquet", ("recent",), "onsite_personalization",
                    path=tmp_path / "out", mode="full", include_exited=True, retention_days=2)
    ex = Exporter(eng, tmp_path / "state")
    exits: dict[int, int] = {}  # profile -> day of its last exit
    shown: list[int] = []
    for k, result in enumerate(runs):
        ex.export(d, result, force=True)
        rows = read_export(tmp_path / "out", stamp(k))["recent"]
        now = keys(eng.store, result["recent"])
        if k:
            for p in keys(eng.store, runs[k - 1]["recent"]) - now:
                exits[p] = k
        expected = {p for p, day in exits.items() if p not in now and k - day <= 2}
        got = {r["id"]: r for r in rows if r["status"] == "exited"}
        assert set(got) == expected, k
        shown.append(len(got))
        for p, r in got.items():  # each exit carries its own instant
            assert r["at"].timestamp() * 1000 == NOW + exits[p] * DAY
    dropped = [p for p, day in exits.items() if 5 - day > 2]
    assert max(shown) > 0 and dropped  # exits were shown, and some were dropped later


def test_a_rebuilt_store_is_matched_by_profile_keys(eng: Any, tmp_path: Path) -> None:
    d = Destination("crm", "parquet", SEGS, "email_targeting", path=tmp_path / "out",
                    mode="incremental")
    first = Exporter(eng, tmp_path / "state")
    r0 = eng.run(NOW)
    first.export(d, r0, force=True)
    shuffled = np.random.default_rng(1).permutation(600)
    other = engine_of(store(order=shuffled))  # same profiles, other indices
    assert other.store.keys.to_pylist() != eng.store.keys.to_pylist()
    r2 = other.run(NOW + 2 * DAY)
    Exporter(other, tmp_path / "state").export(d, r2, force=True)
    rows = read_export(tmp_path / "out", stamp(2))
    for s in SEGS:
        now, then = keys(other.store, r2[s]), keys(eng.store, r0[s])
        got = by_status(rows[s])
        assert got["realized"] == now - then and got["exited"] == then - now


def test_cadence_and_policies(eng: Any, runs: list[Any], tmp_path: Path) -> None:
    d = Destination("weekly", "parquet", ("us",), "email_targeting", path=tmp_path / "out",
                    cadence="weekly")
    ex = Exporter(eng, tmp_path / "state")
    assert ex.export(d, runs[0]).status == "written"
    not_due = ex.export(d, runs[3])
    assert not_due.status == "not due" and not_due.next_due_ms == NOW + 7 * DAY
    assert ex.export(d, runs[3], force=True).status == "written"
    # Policies refuse before anything is written, with the lineage.
    governance = Governance({"country": frozenset({"C4"})}, (),
                            (Policy("geo", frozenset({"ad_targeting"}), parse_labels("C4")),))
    ads = Destination("ads", "parquet", ("recent", "us_recent"), "ad_targeting",
                      path=tmp_path / "ads")
    with pytest.raises(PolicyViolation) as refused:
        Exporter(eng, tmp_path / "state", governance=governance).export_all([ads], runs[0])
    assert not (tmp_path / "ads").exists()
    text = str(refused.value)
    assert "segment 'us_recent' to destination 'ads'" in text and "policy 'geo'" in text
    assert "attribute 'country' (read by segment 'us_recent')" in text
    assert "'recent' to destination" not in text  # recent reads no labelled field
