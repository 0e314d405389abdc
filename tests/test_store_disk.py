"""A store on disk: save / open round trips, memory-mapping, damage detection, crash safety.

`ProfileStore.save` writes a new generation under a temporary name, renames it into place
and only then replaces the manifest; `ProfileStore.open` memory-maps the generation the
manifest names and checks each file against it. A crash at any point must leave the
previous store readable, and the next save must clean up after it.
"""

from __future__ import annotations

import json
import mmap
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings

from store import ProfileStore, StoreError, StoreFormatError
from store import disk as store_disk
from store.disk import FORMAT_VERSION, MANIFEST
from tests.store_tables import Input, expected, rows, tables, ts


def sample(extra: int = 0) -> ProfileStore:
    profiles = pa.table(
        {
            "id": pa.array([10, 20, 30 + extra]),
            "name": ["Ann", None, "Ünal"],
            "score": [1.5, float("nan"), -2.0],
            "tags": pa.array([["a", None], [], None], pa.list_(pa.string())),
            "seen": ts([0, None, 86_400_000]),
            "vip": [True, False, None],
        }
    )
    types = ["view"] * 6 + ["buy", "refund", "note"]
    events = pa.table(
        {
            "id": pa.array([10, 20, 10, 99, 10, 20, 10, 99, 20]),
            "timestamp": ts([5, 5, 1, 3, 5, 2, 5, 3, 0]),
            "eventType": pa.array(types),
            "price": [None, 1.0, 2.0, None, 3.0, 4.0, 5.0, 6.0, 7.0],
            "items": pa.array([["x"], None, [], ["y", "z"], None, ["x"], [None], [], ["q"]]),
            "n": pa.array(range(9)),
        }
    )
    return ProfileStore.from_arrow(profiles, events, profile_id="id")


def same(a: ProfileStore, b: ProfileStore) -> None:
    a_profiles, a_events = a.to_arrow()
    b_profiles, b_events = b.to_arrow()
    assert a_profiles.equals(b_profiles)
    assert a_events.equals(b_events)
    assert a.schema.to_dict() == b.schema.to_dict()
    assert [p.types for p in a.events.partitions] == [p.types for p in b.events.partitions]


def generations(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.name != MANIFEST)


# ---------------------------------------------------------------- round trips


def test_save_open_round_trip(tmp_path: Path) -> None:
    store = sample()
    store.save(tmp_path / "s")
    assert store.path == tmp_path / "s" and store.generation == "gen-000001"
    opened = ProfileStore.open(tmp_path / "s")
    same(store, opened)
    assert opened.generation == "gen-000001" and opened.path == tmp_path / "s"
    assert list(opened.index_of([30, 99, 10, 7])) == [2, 3, 0, -1]
    assert opened.profile(99) == store.profile(99)
    assert opened.profile(10) == store.profile(10)
    assert len(opened) == len(store) == 4
    assert len(opened.events) == 9
    assert opened.nbytes > 0


def test_open_memory_maps_read_only_arrays(tmp_path: Path) -> None:
    sample().save(tmp_path / "s")
    opened = ProfileStore.open(tmp_path / "s")
    arrays = []
    for col in opened.profiles.values():
        arrays += [a for a in (col.values, col.valid, col.offsets) if a is not None]
    for part in opened.events.partitions:
        arrays += [part.offsets, part.time]
        for col in part.columns.values():
            arrays += [a for a in (col.values, col.valid, col.offsets) if a is not None]
    assert arrays
    for a in arrays:
        assert mapped(a), type(a)
        assert not a.flags.writeable
        with pytest.raises(ValueError):
            a[...] = 0
    in_memory = sample()
    assert not mapped(in_memory.events.partitions[0].time)


def mapped(a: np.ndarray) -> bool:
    """Whether ``a`` views a memory-mapped file (np.memmap, or an ndarray over one)."""
    while a is not None:
        if isinstance(a, (np.memmap, mmap.mmap)):
            return True
        a = getattr(a, "base", None)
    return False


def test_manifest_contents(tmp_path: Path) -> None:
    sample().save(tmp_path / "s")
    manifest = json.loads((tmp_path / "s" / MANIFEST).read_text())
    assert manifest["format"] == "pqlite-store"
    assert manifest["version"] == FORMAT_VERSION
    assert manifest["generation"] == "gen-000001"
    assert manifest["profiles"] == 4 and manifest["events"] == 9
    root = tmp_path / "s" / "gen-000001"
    for rel, size in manifest["files"].items():
        assert (root / rel).stat().st_size == size, rel
    on_disk = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    assert on_disk == set(manifest["files"])


@settings(max_examples=40)
@given(tables())
def test_random_tables_survive_save_and_open(data: Input) -> None:
    store = data.load()
    with tempfile.TemporaryDirectory() as tmp:
        store.save(Path(tmp) / "s")
        opened = ProfileStore.open(Path(tmp) / "s")
        out_profiles, out_events = opened.to_arrow()
        want_profiles, want_events = expected(data)
        assert rows(out_profiles) == want_profiles
        if data.events is not None:
            assert rows(out_events) == want_events
        same(store, opened)


@pytest.mark.parametrize(
    "kind", ["profiles only", "events only", "zero events", "zero profiles", "no type field"]
)
def test_small_and_empty_stores(tmp_path: Path, kind: str) -> None:
    empty_events = pa.table(
        {
            "id": pa.array([], pa.int64()),
            "timestamp": ts([]),
            "eventType": pa.array([], pa.string()),
            "tags": pa.array([], pa.list_(pa.string())),
        }
    )
    store = {
        "profiles only": lambda: ProfileStore.from_arrow(
            pa.table(
                {"id": ["a"], "x": [None]},
                schema=pa.schema([("id", pa.string()), ("x", pa.int64())]),
            ),
            profile_id="id",
        ),
        "events only": lambda: ProfileStore.from_arrow(
            None, pa.table({"id": [2, 1], "timestamp": ts([1, 0])}), profile_id="id"
        ),
        "zero events": lambda: ProfileStore.from_arrow(
            pa.table({"id": [1, 2]}), empty_events, profile_id="id"
        ),
        "zero profiles": lambda: ProfileStore.from_arrow(
            pa.table({"id": pa.array([], pa.int64()), "s": pa.array([], pa.string())}),
            empty_events,
            profile_id="id",
        ),
        "no type field": lambda: ProfileStore.from_arrow(
            pa.table({"id": [1]}),
            pa.table({"id": [1, 1, 3], "timestamp": ts([2, 1, 2]), "v": [None, "x", ""]}),
            profile_id="id",
        ),
    }[kind]()
    store.save(tmp_path / "s")
    opened = ProfileStore.open(tmp_path / "s")
    same(store, opened)
    opened.save(tmp_path / "t")  # and a mapped store saves again
    same(store, ProfileStore.open(tmp_path / "t"))


def test_save_twice_leaves_one_generation(tmp_path: Path) -> None:
    path = tmp_path / "s"
    sample().save(path)
    assert generations(path) == ["gen-000001"]
    second = sample(extra=1)
    second.save(path)
    assert generations(path) == ["gen-000002"]
    assert second.generation == "gen-000002"
    same(second, ProfileStore.open(path))
    # An opened store saved over itself (its own files mapped) is fine too.
    opened = ProfileStore.open(path)
    opened.save(path)
    assert generations(path) == ["gen-000003"]
    same(second, ProfileStore.open(path))
    same(second, opened)


def test_save_next_to_other_files(tmp_path: Path) -> None:
    path = tmp_path / "s"
    path.mkdir()
    (path / "README").write_text("mine")
    sample().save(path)
    sample().save(path)
    assert (path / "README").read_text() == "mine"
    assert generations(path) == ["README", "gen-000002"]


# ---------------------------------------------------------------- damage


def damaged(path: Path) -> str:
    with pytest.raises(StoreFormatError) as info:
        ProfileStore.open(path)
    assert isinstance(info.value, StoreError)
    return str(info.value)


def test_not_a_store(tmp_path: Path) -> None:
    assert "no manifest" in damaged(tmp_path)
    assert "pqlite import" in damaged(tmp_path)
    assert str(tmp_path / "missing") in damaged(tmp_path / "missing")
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert "not a directory" in damaged(a_file)


def test_newer_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s"
    sample().save(path)
    manifest = json.loads((path / MANIFEST).read_text())
    manifest["version"] = FORMAT_VERSION + 1
    (path / MANIFEST).write_text(json.dumps(manifest))
    message = damaged(path)
    assert "upgrade" in message and str(FORMAT_VERSION + 1) in message


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda text: text[: len(text) // 2], "damaged"),
        (lambda text: "", "damaged"),
        (lambda text: "[1, 2]", "not a JSON object"),
        (lambda text: text.replace('"pqlite-store"', '"something-else"'), "not a pqlite store"),
        (lambda text: text.replace('"version": 1', '"version": "1"'), "damaged: its version"),
    ],
)
def test_damaged_manifest(tmp_path: Path, edit: Any, words: str) -> None:
    path = tmp_path / "s"
    sample().save(path)
    (path / MANIFEST).write_text(edit((path / MANIFEST).read_text()))
    message = damaged(path)
    assert MANIFEST in message or str(path) in message
    assert words in message


@pytest.mark.parametrize("drop", ["generation", "files", "schema", "partitions", "profiles"])
def test_manifest_missing_an_entry(tmp_path: Path, drop: str) -> None:
    path = tmp_path / "s"
    sample().save(path)
    manifest = json.loads((path / MANIFEST).read_text())
    del manifest[drop]
    (path / MANIFEST).write_text(json.dumps(manifest))
    message = damaged(path)
    assert MANIFEST in message and drop in message


def test_missing_generation_and_array_files(tmp_path: Path) -> None:
    path = tmp_path / "s"
    sample().save(path)
    root = path / "gen-000001"
    files = json.loads((path / MANIFEST).read_text())["files"]
    for rel in (
        "keys.arrow",
        "profile/1.values.npy",
        "events/0.time.npy",
        next(r for r in files if r.startswith("dict/")),
    ):
        original = (root / rel).read_bytes()
        (root / rel).unlink()
        message = damaged(path)
        assert str(root / rel) in message and "missing" in message
        (root / rel).write_bytes(original)
    ProfileStore.open(path)
    os.rename(root, path / "elsewhere")
    assert "gen-000001" in damaged(path)


@pytest.mark.parametrize("how", ["grow", "shrink", "garbage same size"])
def test_resized_or_damaged_array_files(tmp_path: Path, how: str) -> None:
    path = tmp_path / "s"
    sample().save(path)
    root = path / "gen-000001"
    for rel in ("profile/2.values.npy", "events/0.offsets.npy", "keys.arrow"):
        target = root / rel
        original = target.read_bytes()
        if how == "grow":
            target.write_bytes(original + b"\0" * 8)
        elif how == "shrink":
            target.write_bytes(original[:-8])
        else:
            target.write_bytes(b"\x93NUMPY garbage".ljust(len(original), b"!"))
        message = damaged(path)
        assert str(target) in message, message
        target.write_bytes(original)
    ProfileStore.open(path)


def test_array_of_the_wrong_length(tmp_path: Path) -> None:
    path = tmp_path / "s"
    sample().save(path)
    target = path / "gen-000001" / "events" / "0.time.npy"
    np.save(target, np.zeros(3, np.int64))  # a valid file, but not this partition's
    manifest = json.loads((path / MANIFEST).read_text())
    manifest["files"]["events/0.time.npy"] = target.stat().st_size
    (path / MANIFEST).write_text(json.dumps(manifest))
    message = damaged(path)
    assert str(target) in message and "3 values" in message


# ---------------------------------------------------------------- crash safety


def no_temporaries(path: Path) -> None:
    stray = [p.name for p in path.iterdir() if p.name.startswith(".") or "tmp" in p.name]
    assert stray == []


class Crash(Exception):
    """A simulated crash (power loss, kill -9) in the middle of a save."""


def crash_after(monkeypatch: pytest.MonkeyPatch, target: Any, name: str, calls: int) -> None:
    real = getattr(target, name)
    seen = [0]

    def flaky(*args: Any, **kwargs: Any) -> Any:
        seen[0] += 1
        if seen[0] > calls:
            raise Crash(f"{name} call {seen[0]}")
        return real(*args, **kwargs)

    monkeypatch.setattr(target, name, flaky)


@pytest.mark.parametrize("calls", [0, 3, 10])
def test_crash_while_writing_arrays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, calls: int
) -> None:
    path = tmp_path / "s"
    old = sample()
    old.save(path)
    new = sample(extra=5)
    with monkeypatch.context() as m:
        crash_after(m, store_disk.np, "save", calls)
        with pytest.raises(Crash):
            new.save(path)
    assert new.path is None and new.generation is None  # the failed save changed nothing
    same(old, ProfileStore.open(path))
    assert generations(path) == ["gen-000001"]
    new.save(path)
    same(new, ProfileStore.open(path))
    assert generations(path) == ["gen-000002"]
    no_temporaries(path)


def test_crash_leaving_a_temporary_generation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real crash gets no chance to clean up: the half-written directory stays behind.
    path = tmp_path / "s"
    old = sample()
    old.save(path)
    with monkeypatch.context() as m:
        crash_after(m, store_disk.np, "save", 4)
        m.setattr(store_disk.shutil, "rmtree", lambda *a, **k: None)
        with pytest.raises(Crash):
            sample(extra=5).save(path)
    assert any(p.name.startswith(".gen-") for p in path.iterdir())
    same(old, ProfileStore.open(path))
    new = sample(extra=6)
    new.save(path)
    same(new, ProfileStore.open(path))
    assert generations(path) == ["gen-000002"]
    no_temporaries(path)


def test_crash_after_rename_before_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The new generation is complete and in place, but the manifest still names the old.
    path = tmp_path / "s"
    old = sample()
    old.save(path)
    with monkeypatch.context() as m:
        crash_after(m, store_disk, "write_atomic", 0)
        with pytest.raises(Crash):
            sample(extra=5).save(path)
    assert (path / "gen-000002").is_dir()
    same(old, ProfileStore.open(path))
    new = sample(extra=6)
    new.save(path)  # must not trip over the unreferenced gen-000002
    same(new, ProfileStore.open(path))
    assert len(generations(path)) == 1
    no_temporaries(path)


def test_crash_after_manifest_before_cleanup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s"
    sample().save(path)
    new = sample(extra=5)
    with monkeypatch.context() as m:
        crash_after(m, store_disk, "remove_stale", 0)
        with pytest.raises(Crash):
            new.save(path)
    same(new, ProfileStore.open(path))  # the manifest was replaced: the new store is in
    assert generations(path) == ["gen-000001", "gen-000002"]
    newer = sample(extra=6)
    newer.save(path)
    assert generations(path) == ["gen-000003"]
    same(newer, ProfileStore.open(path))


@pytest.mark.parametrize("renaming", ["gen-000002", MANIFEST])
def test_crash_while_renaming(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, renaming: str
) -> None:
    path = tmp_path / "s"
    old = sample()
    old.save(path)
    real = os.replace

    def crash_on(src: Any, dst: Any) -> None:
        if Path(dst).name == renaming:
            raise Crash(f"rename to {renaming}")
        real(src, dst)

    with monkeypatch.context() as m:
        m.setattr(os, "replace", crash_on)
        with pytest.raises(Crash):
            sample(extra=5).save(path)
    same(old, ProfileStore.open(path))
    assert not [p for p in path.iterdir() if p.name.startswith(f".{MANIFEST}")]
    assert generations(path) == ["gen-000001"] + (["gen-000002"] if renaming == MANIFEST else [])
    new = sample(extra=6)
    new.save(path)
    same(new, ProfileStore.open(path))
    assert len(generations(path)) == 1
    no_temporaries(path)
