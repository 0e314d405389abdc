"""A store directory on disk: one file per array, a manifest, and generations for atomicity.

Layout::

    STORE/manifest.json          format, version, schema, counts, and every file's size
    STORE/gen-000003/            the arrays of generation 3
        profile/<i>.<part>.npy   attribute i: values, valid, offsets (lists)
        events/<p>.offsets.npy   partition p: offsets, time, seq (if kept; see `store.events`)
                                 and <p>.<i>.<part>.npy fields
        dict/<name>.arrow        string dictionaries (Arrow IPC), shared by partitions
        keys.arrow               the profile keys (Arrow IPC)
    STORE/gen-000003.delta/      appends since generation 3 (see `store.delta`)

Why ``.npy`` and not one Arrow IPC file per table: the arrays of a store have different
lengths (offsets, rows, list elements, per-partition events), numpy memory-maps each file
without decoding and with the exact dtype, and an ``.npy`` header is the whole format.
Variable-length strings (dictionaries, string keys) are Arrow IPC, also memory-mapped.

Saving writes a whole new generation under a temporary name, fsyncs it, renames it into
place and only then replaces the manifest (atomically); old generations are removed after.
A crash at any point leaves the manifest naming a complete generation.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from store.columns import Column
from store.errors import StoreFormatError
from store.events import EventStore, Partition
from store.files import write_atomic
from store.schema import DType, Field, Schema, SchemaError

__all__ = ["FORMAT", "FORMAT_VERSION", "read_generation", "write_generation"]

FORMAT = "pqlite-store"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


def write_generation(
    path: Path,
    *,
    schema: Schema,
    keys: pa.Array,
    profiles: Mapping[str, Column],
    events: EventStore,
) -> str:
    """Write a new generation of the store at ``path`` and point the manifest at it."""
    path.mkdir(parents=True, exist_ok=True)
    previous = _manifest_or_none(path)
    number = 1 + (int(previous["generation"].split("-")[1]) if previous else 0)
    generation = f"gen-{number:06d}"
    tmp = path / f".{generation}.tmp"
    # Leftovers of a save that crashed before its manifest: nothing refers to them.
    for stale in (tmp, path / generation, path / f"{generation}.delta"):
        if stale.exists():
            shutil.rmtree(stale)
    writer = _Writer(tmp)
    try:
        writer.arrow("keys.arrow", keys)
        profile_entries = [
            {"name": name, "dtype": str(col.dtype), **writer.column(f"profile/{i}", col)}
            for i, (name, col) in enumerate(profiles.items())
        ]
        field_ids = {name: i for i, name in enumerate(events.fields)}
        partitions = []
        for p, part in enumerate(events.partitions):
            partitions.append({
                "types": None if part.types is None else list(part.types),
                "events": len(part),
                "offsets": writer.array(f"events/{p}.offsets", part.offsets),
                "time": writer.array(f"events/{p}.time", part.time),
                "columns": {
                    name: writer.column(f"events/{p}.{field_ids[name]}", col,
                                        dictionary_name=f"event-{field_ids[name]}")
                    for name, col in part.columns.items()
                },
                **({} if part.seq is None else {
                    "seq": writer.array(f"events/{p}.seq", part.seq)
                }),
            })
        writer.sync()
        os.replace(tmp, path / generation)
        _fsync_dir(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    manifest = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "generation": generation,
        "schema": schema.to_dict(),
        "not_null": {  # the schema file format has no nullability; keep it here
            "profile": [n for n, f in schema.profile.items() if not f.nullable],
            "events": [n for n, f in schema.events.items() if not f.nullable],
        },
        "profiles": len(keys),
        "events": len(events),
        "profile_columns": profile_entries,
        "event_fields": {name: str(dtype) for name, dtype in events.fields.items()},
        "time_field": events.time_field,
        "type_field": events.type_field,
        "partitions": partitions,
        "files": writer.sizes,
    }
    write_atomic(path / MANIFEST, json.dumps(manifest, indent=1))
    remove_stale(path, generation)
    return generation


def remove_stale(path: Path, generation: str) -> None:
    """Delete generations (and their deltas) other than ``generation``."""
    for child in path.iterdir():
        name = child.name.lstrip(".")
        if name.startswith("gen-") and not name.startswith(generation):
            shutil.rmtree(child, ignore_errors=True)


def read_manifest(path: Path) -> dict[str, Any]:
    manifest = _manifest_or_none(path)
    if manifest is None:
        what = "is not a directory" if path.exists() and not path.is_dir() else "has no manifest"
        raise StoreFormatError(
            f"{path} {what}, so it is not a pqlite store; create one with `pqlite import` "
            "or ProfileStore.save"
        )
    if manifest.get("format") != FORMAT:
        raise StoreFormatError(f"{path / MANIFEST} is not a pqlite store manifest")
    version = manifest.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise StoreFormatError(f"{path / MANIFEST} is damaged: its version is {version!r}")
    if version > FORMAT_VERSION:
        raise StoreFormatError(
            f"{path} was written by a newer pqlite (store format {version}); this pqlite reads "
            f"format {FORMAT_VERSION} and older: upgrade pqlite to open it"
        )
    return manifest


def read_generation(path: Path) -> tuple[dict[str, Any], Schema, pa.Array, dict[str, Column],
                                          EventStore]:
    """Memory-map the current generation: (manifest, schema, keys, profile columns, events)."""
    manifest = read_manifest(path)
    try:
        return _read_generation(path, manifest)
    except (KeyError, TypeError, AttributeError) as e:
        what = f"entry {e} is missing" if isinstance(e, KeyError) else f"an entry is malformed ({e})"
        raise StoreFormatError(
            f"{path / MANIFEST} is damaged: {what}; save the store again from its source data"
        ) from None


def _read_generation(
    path: Path, manifest: dict[str, Any]
) -> tuple[dict[str, Any], Schema, pa.Array, dict[str, Column], EventStore]:
    root = path / manifest["generation"]
    reader = _Reader(root, manifest["files"])
    try:
        schema = _with_nullability(Schema.from_dict(manifest["schema"]),
                                   manifest.get("not_null", {}))
    except SchemaError as e:
        raise StoreFormatError(f"{path / MANIFEST}: damaged schema: {e}") from None
    keys = reader.arrow("keys.arrow")
    n = manifest["profiles"]
    if len(keys) != n:
        raise StoreFormatError(f"{root}: keys.arrow has {len(keys)} keys, the manifest {n}")
    profiles = {
        entry["name"]: reader.column(entry, DType.parse(entry["dtype"]), n)
        for entry in manifest["profile_columns"]
    }
    fields = {name: DType.parse(t) for name, t in manifest["event_fields"].items()}
    partitions = []
    for entry in manifest["partitions"]:
        count = entry["events"]
        offsets = reader.array(entry["offsets"], n + 1)
        time = reader.array(entry["time"], count)
        columns = {
            name: reader.column(col, fields[name], count)
            for name, col in entry["columns"].items()
        }
        types = None if entry["types"] is None else tuple(entry["types"])
        seq = reader.array(entry["seq"], count) if "seq" in entry else None
        partitions.append(Partition(types, offsets, time, columns, seq))
    events = EventStore(partitions, fields, manifest["time_field"], manifest["type_field"], n)
    return manifest, schema, keys, profiles, events


def _with_nullability(schema: Schema, not_null: Mapping[str, list[str]]) -> Schema:
    def fields(side: Mapping[str, Field], names: list[str]) -> dict[str, Field]:
        return {n: replace(f, nullable=n not in names) for n, f in side.items()}

    return replace(
        schema,
        profile=fields(schema.profile, not_null.get("profile", [])),
        events=fields(schema.events, not_null.get("events", [])),
    )


def _manifest_or_none(path: Path) -> dict[str, Any] | None:
    try:
        text = (path / MANIFEST).read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as e:
        raise StoreFormatError(f"{path / MANIFEST} is damaged: {e}") from None
    if not isinstance(manifest, dict):
        raise StoreFormatError(f"{path / MANIFEST} is damaged: not a JSON object")
    return manifest


class _Writer:
    """Writes arrays under a directory, remembering sizes; shared dictionaries once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sizes: dict[str, int] = {}
        self._dictionaries: dict[int, str] = {}
        root.mkdir(parents=True)

    def _file(self, name: str) -> Path:
        target = self.root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def array(self, name: str, values: np.ndarray) -> str:
        rel = f"{name}.npy"
        with open(self._file(rel), "wb") as f:
            np.save(f, np.ascontiguousarray(values), allow_pickle=False)
        self.sizes[rel] = self._file(rel).stat().st_size
        return rel

    def arrow(self, rel: str, array: pa.Array) -> str:
        table = pa.table({"values": array})
        with pa.OSFile(str(self._file(rel)), "wb") as sink, pa.ipc.new_file(
            sink, table.schema
        ) as writer:
            writer.write_table(table)
        self.sizes[rel] = self._file(rel).stat().st_size
        return rel

    def column(self, stem: str, col: Column, dictionary_name: str | None = None) -> dict[str, str]:
        files = {"values": self.array(f"{stem}.values", col.values)}
        if col.valid is not None:
            files["valid"] = self.array(f"{stem}.valid", col.valid)
        if col.offsets is not None:
            files["offsets"] = self.array(f"{stem}.offsets", col.offsets)
        if col.dictionary is not None:
            known = self._dictionaries.get(id(col.dictionary))
            if known is None:
                name = dictionary_name or stem.replace("/", "-")
                rel = f"dict/{name}.arrow"
                if rel in self.sizes:  # same field, another dictionary: keep both
                    rel = f"dict/{stem.replace('/', '-')}.arrow"
                known = self._dictionaries[id(col.dictionary)] = self.arrow(rel, col.dictionary)
            files["dictionary"] = known
        return files

    def sync(self) -> None:
        for rel in self.sizes:
            fd = os.open(self.root / rel, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        for directory in {self.root, *(p for p in self.root.rglob("*") if p.is_dir())}:
            _fsync_dir(directory)


class _Reader:
    """Memory-maps a generation's files, checking each against the manifest."""

    def __init__(self, root: Path, sizes: Mapping[str, int]) -> None:
        self.root, self.sizes = root, sizes

    def _path(self, rel: str) -> Path:
        target = self.root / rel
        try:
            size = target.stat().st_size
        except FileNotFoundError:
            raise StoreFormatError(f"{target} is missing: the store is damaged") from None
        if size != self.sizes.get(rel):
            raise StoreFormatError(
                f"{target} has {size} bytes, the manifest says {self.sizes.get(rel)}: "
                "the store is damaged"
            )
        return target

    def array(self, rel: str, length: int | None = None) -> np.ndarray:
        target = self._path(rel)
        try:
            values = np.load(target, mmap_mode="r", allow_pickle=False)
        except ValueError as e:
            raise StoreFormatError(f"{target} is not a numpy array file: {e}") from None
        if length is not None and len(values) != length:
            raise StoreFormatError(
                f"{target} holds {len(values)} values where {length} belong: the store is damaged"
            )
        return np.asarray(values)

    def arrow(self, rel: str) -> pa.Array:
        target = self._path(rel)
        try:
            table = pa.ipc.open_file(pa.memory_map(str(target))).read_all()
        except pa.ArrowInvalid as e:
            raise StoreFormatError(f"{target} is not an Arrow IPC file: {e}") from None
        column = table.column("values")
        return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()

    def column(self, files: Mapping[str, str], dtype: DType, rows: int) -> Column:
        offsets = self.array(files["offsets"], rows + 1) if "offsets" in files else None
        count = int(offsets[-1]) if offsets is not None else rows
        values = self.array(files["values"], count)
        valid = self.array(files["valid"], rows) if "valid" in files else None
        dictionary = self.arrow(files["dictionary"]) if "dictionary" in files else None
        return Column(dtype, values, valid, offsets, dictionary)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # some filesystems cannot fsync a directory
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
