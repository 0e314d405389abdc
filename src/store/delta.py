"""Appends on top of an immutable base: new events and attribute upserts, kept in order.

Each `append` is normalized exactly as a load would be (same key, time and type rules), kept
in memory and, for a store on disk, written as one batch directory under
``gen-NNNNNN.delta/`` (temporary name, fsync, rename: a crash loses at most the batch being
written, never an earlier one). Reads of base + delta apply the batches in order: an upsert
sets the columns it carries (a null sets null), a new key becomes a new profile after the
existing ones. Compaction rebuilds the base from those reads as a new generation.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from store.columns import canonical_type, column_from_arrow
from store.disk import _fsync_dir
from store.errors import DataError, StoreFormatError
from store.keys import normalize_keys
from store.schema import DType, Field, Kind, Schema

__all__ = ["Batch", "Delta"]

_EVENTS, _PROFILES = "events.arrow", "profiles.arrow"


@dataclass(frozen=True, eq=False)
class Batch:
    """One append: events (key, time, fields) and profile upserts (key, some attributes)."""

    events: pa.Table | None
    profiles: pa.Table | None
    # Base-store indices of the keys, by (table, the base's keys): a streamed batch is
    # numbered several times (its ingest, its subset, the store catching up with its delta),
    # and a lookup among millions of string keys is the dear part.
    _indices: dict[tuple[str, int], tuple[pa.Array, np.ndarray]] = field(
        default_factory=dict, repr=False, compare=False)

    def base_index(self, table: str, keys: pa.Array, lookup: Callable[[pa.Array], np.ndarray],
                   base: pa.Array) -> np.ndarray:
        """``lookup(keys)`` (the keys of ``table``, "events" or "profiles", in a store whose
        key array is ``base``), computed once per batch and base; a fresh copy each call."""
        memo = (table, id(base))
        hit = self._indices.get(memo)
        if hit is None or hit[0] is not base:  # (the array is kept, so its id stays its own)
            hit = self._indices[memo] = (base, lookup(keys))
        return hit[1].copy()


@dataclass(eq=False)
class Delta:
    """The batches appended since the base was written."""

    batches: list[Batch] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.batches)

    @property
    def event_count(self) -> int:
        return sum(b.events.num_rows for b in self.batches if b.events is not None)


def normalize_batch(
    schema: Schema,
    events: pa.Table | None,
    profiles: pa.Table | None,
    *,
    time_units: dict[str, str] | None = None,
    assume_tz: str = "UTC",
) -> Batch:
    """Check an append against the schema and bring it to the store's canonical types."""
    return Batch(
        _normalize(schema, events, "events", time_units or {}, assume_tz),
        _normalize(schema, profiles, "profiles", time_units or {}, assume_tz),
    )


def _normalize(
    schema: Schema, table: pa.Table | None, side: str, units: dict[str, str], tz: str
) -> pa.Table | None:
    if table is None:
        return None
    while any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()
    source = f"appended {side}"
    fields, key, required = _checked_names(schema, tuple(table.column_names), side)
    out = {}
    for name in table.column_names:
        f = fields[name]
        if name == key:
            try:
                keys = normalize_keys(table.column(name), name)
            except DataError as e:
                raise e.located(source) from None
            want = pa.int64() if f.dtype.kind is Kind.INT else pa.string()
            if keys.type != want:
                raise DataError(
                    f"the keys are {keys.type}, but this store's keys are {want}",
                    column=name,
                    source=source,
                    hint="cast the key column to the store's key type",
                )
            out[name] = keys
            continue
        array = _canonical(table.column(name), f.dtype, name in units)
        if array is None:
            try:
                col = column_from_arrow(table.column(name), f.dtype, name,
                                        time_unit=units.get(name), assume_tz=tz)
            except DataError as e:
                raise e.located(source) from None
            valid = col.valid
            array = col.to_arrow()
        else:
            valid = None if not array.null_count else np.asarray(
                array.is_valid().to_numpy(zero_copy_only=False), bool)
        if name in required and valid is not None:
            row = int(np.flatnonzero(~valid)[0])
            raise DataError("this field may not be null", column=name, row=row,
                            source=source, hint="drop or fill such rows")
        out[name] = array
    if side == "events":  # every event field, in schema order; absent ones are null
        return pa.table({
            name: out[name] if name in out else pa.nulls(table.num_rows,
                                                         _arrow_type(schema, name))
            for name in fields
        })
    return pa.table(out)


_CHECKED: dict[tuple[int, tuple[str, ...], str], tuple[Schema, Any]] = {}


def _checked_names(schema: Schema, names: tuple[str, ...], side: str
                   ) -> tuple[Mapping[str, Field], str, list[str]]:
    """(fields, key, required) of an append with columns ``names``, or the `DataError` of a
    column that is repeated, unknown or missing. Checked once per set of columns: a
    session streaming one event a call appends the same columns millions of times."""
    memo = (id(schema), names, side)
    hit = _CHECKED.get(memo)
    if hit is not None and hit[0] is schema:
        return hit[1]  # type: ignore[no-any-return]
    source = f"appended {side}"
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise DataError(f"column name(s) {dup} appear more than once", column=dup[0],
                        source=source, hint="rename the columns so each name is unique")
    fields = schema.events if side == "events" else schema.profile
    key = schema.event_profile_key if side == "events" else schema.profile_key
    if side == "events" and not fields:
        raise DataError("this store has no events", source="append",
                        hint="load events when creating the store")
    assert key is not None
    unknown = [n for n in names if n not in fields]
    if unknown:
        raise DataError(
            f"column(s) {unknown} are not {side} fields of this store",
            column=unknown[0],
            source=source,
            hint=f"the {side} fields are {', '.join(fields)}",
        )
    required: list[str] = [key]
    if side == "events":
        assert schema.event_time is not None
        required.append(schema.event_time)
        if schema.event_type:
            required.append(schema.event_type)
    for name in required:
        if name not in names:
            raise DataError(f"the {name!r} column is required", column=name, source=source,
                            hint=f"give every appended row its {name}")
    if len(_CHECKED) > 256:
        _CHECKED.clear()
    found = (fields, key, required)
    _CHECKED[memo] = (schema, found)
    return found


def _canonical(column: pa.ChunkedArray, dtype: DType, has_unit: bool) -> pa.Array | None:
    """``column`` as it is already, if it is in the store's canonical Arrow type (or a
    dictionary of strings) with nothing to convert; else None (`column_from_arrow` then
    checks and converts it). Converting a canonical column changes nothing but costs
    tens of microseconds a column, what a streamed event pays on every call."""
    if has_unit or dtype.is_list:
        return None
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    t = array.type
    if dtype.kind is Kind.STRING and pa.types.is_dictionary(t) and pa.types.is_string(
            t.value_type):
        return array.dictionary_decode()  # a method call: no compute-function lookup
    if t != canonical_type(dtype.kind):
        return None
    nulls = array.null_count
    if dtype.kind is Kind.FLOAT and nulls < len(array) and (
            pc.any(pc.is_nan(array)).as_py() if nulls else np.isnan(array.to_numpy()).any()):
        return None  # NaN means null: the conversion says so
    return array


def _arrow_type(schema: Schema, name: str) -> pa.DataType:
    from store.columns import empty_column

    return empty_column(schema.events[name].dtype, 0).to_arrow().type


def write_batch(directory: Path, number: int, batch: Batch) -> None:
    """Persist ``batch`` as ``directory/NNNNNN`` (atomically, by renaming a finished dir)."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"{number:06d}"
    tmp = directory / f".{number:06d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for name, table in ((_EVENTS, batch.events), (_PROFILES, batch.profiles)):
        if table is None:
            continue
        with pa.OSFile(str(tmp / name), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
            w.write_table(table)
        fd = os.open(tmp / name, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    _fsync_dir(tmp)
    os.replace(tmp, final)
    _fsync_dir(directory)


def read_batches(directory: Path) -> list[Batch]:
    """The finished batches under ``directory`` in order (unfinished ones are ignored)."""
    if not directory.is_dir():
        return []
    batches = []
    for child in sorted(directory.iterdir()):
        if child.name.startswith(".") or not child.is_dir():
            continue
        tables = []
        for name in (_EVENTS, _PROFILES):
            path = child / name
            try:
                tables.append(
                    pa.ipc.open_file(pa.memory_map(str(path))).read_all() if path.exists()
                    else None
                )
            except (pa.ArrowInvalid, OSError) as e:
                raise StoreFormatError(
                    f"{path} is damaged ({e}): the appended batch cannot be read; move "
                    f"{child} aside to open the store without it"
                ) from None
        batches.append(Batch(tables[0], tables[1]))
    return batches


def apply_upserts(
    profiles: pa.Table, keys: pa.Array, key_name: str, batches: list[Batch], events_keys: list[
        pa.Array]
) -> tuple[pa.Table, pa.Array]:
    """Profiles table and keys with new keys appended and upserts applied, in batch order."""
    # New keys in arrival order: a batch's upserts, then its events.
    known = keys
    extra: list[pa.Array] = []
    for batch, event_keys in zip(batches, events_keys, strict=True):
        for arriving in (
            batch.profiles.column(key_name).combine_chunks() if batch.profiles is not None
            else None,
            event_keys,
        ):
            if arriving is None or not len(arriving):
                continue
            seen = pa.concat_arrays([known, *extra]) if extra else known
            new = pc.unique(arriving.filter(pc.invert(pc.is_in(arriving, value_set=seen))))
            if len(new):
                extra.append(new)
    all_keys = pa.concat_arrays([keys, *extra]) if extra else keys
    added = len(all_keys) - len(keys)
    columns = {}
    for name in profiles.column_names:
        base = profiles.column(name).combine_chunks()
        if name == key_name:
            columns[name] = all_keys
            continue
        columns[name] = pa.concat_arrays([base, pa.nulls(added, base.type)]) if added else base
    for batch in batches:
        if batch.profiles is None:
            continue
        upsert = batch.profiles
        where = pc.index_in(all_keys, value_set=upsert.column(key_name).combine_chunks())
        # A key upserted twice in one batch: the last row wins.
        rows = _last_row_per_key(upsert.column(key_name).combine_chunks(), where)
        has = pc.is_valid(rows)
        for name in upsert.column_names:
            if name == key_name:
                continue
            update = upsert.column(name).combine_chunks().take(rows)
            columns[name] = pc.if_else(has, update, columns[name])
    return pa.table(columns), all_keys


def _last_row_per_key(upsert_keys: pa.Array, where: pa.Array) -> pa.Array:
    if len(pc.unique(upsert_keys)) == len(upsert_keys):
        return where
    last: dict[object, int] = {}
    for row, key in enumerate(upsert_keys.to_pylist()):
        last[key] = row
    uniq = pc.unique(upsert_keys)
    first_of = pc.index_in(upsert_keys, value_set=uniq).to_numpy(zero_copy_only=False)
    remap = np.array([last[k] for k in uniq.to_pylist()], np.int64)
    to_last = remap[first_of]
    values = np.asarray(where.fill_null(0).to_numpy(zero_copy_only=False), np.int64)
    return pa.array(to_last[values], pa.int64(), mask=np.asarray(
        where.is_null().to_numpy(zero_copy_only=False)))
