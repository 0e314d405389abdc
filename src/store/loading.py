"""From Arrow tables (and Parquet or CSV files) to a store's columns, validating as it goes.

The profiles table has one row per profile and its key column; the events table has one row
per event, its profile's key and its time. Either may be missing. Events whose key has no
profile row create a profile with no attributes; such profiles follow the profile rows in
key order. Struct columns are flattened to dotted names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from store.columns import Column, column_from_arrow, concat_columns, empty_column
from store.errors import DataError
from store.events import EventStore, build_events
from store.keys import first_duplicate, normalize_keys
from store.schema import DType, Field, Kind, Schema, SchemaError

__all__ = ["Loaded", "load_tables", "read_table"]

T = TypeVar("T")
Progress = Callable[[str, int, int], None]  # (step, steps done, steps in all)


@dataclass(frozen=True, eq=False)
class Loaded:
    """What a store is made of."""

    schema: Schema
    keys: pa.Array
    profiles: dict[str, Column]
    events: EventStore


def load_tables(
    profiles: pa.Table | None,
    events: pa.Table | None,
    *,
    profile_id: str,
    event_profile_id: str | None = None,
    event_time: str | None = None,
    event_type: str | None = None,
    time_units: Mapping[str, str] | None = None,
    assume_tz: str = "UTC",
    profile_source: str = "profiles",
    event_source: str = "events",
    progress: Progress | None = None,
) -> Loaded:
    """Validate and convert the two tables (see `store.ProfileStore.from_arrow`).

    ``progress(step, done, total)`` is called before each step (keys, a column, sorting).
    """
    time_units = dict(time_units or {})
    event_profile_id = event_profile_id or profile_id
    if profiles is None and events is None:
        raise DataError("nothing to load", hint="give a profiles table, an events table or both")
    profiles = _flat(profiles, profile_source) if profiles is not None else None
    events = _flat(events, event_source) if events is not None else None
    steps = 2 + (profiles.num_columns if profiles is not None else 0) + (
        events.num_columns if events is not None else 0
    )
    done = 0

    def step(label: str) -> None:
        nonlocal done
        if progress is not None:
            progress(label, done, steps)
        done += 1

    step("checking keys")

    # Keys: profile rows first, then keys only events mention, in key order.
    if profiles is not None:
        _require(profiles, profile_id, "profile key", profile_source)
        keys = _located(lambda: normalize_keys(profiles.column(profile_id), profile_id),
                        profile_source)
        dup = first_duplicate(keys)
        if dup is not None:
            raise DataError(
                f"profile key {keys[dup[0]].as_py()!r} appears twice (rows {dup[0]} and "
                f"{dup[1]})",
                column=profile_id,
                row=dup[1],
                source=profile_source,
                hint="a profile table has one row per profile: merge or drop the duplicates",
            )
    event_index = None
    if events is not None:
        _require(events, event_profile_id, "event profile key", event_source)
        event_time = event_time or ("timestamp" if "timestamp" in events.column_names else None)
        if event_time is None:
            raise DataError(
                "no event time column given and none is named 'timestamp'",
                source=event_source,
                hint="pass event_time= with the column holding each event's time",
            )
        _require(events, event_time, "event time", event_source)
        if event_type is None and "eventType" in events.column_names:
            event_type = "eventType"
        if event_type is not None:
            _require(events, event_type, "event type", event_source)
        event_keys = _located(
            lambda: normalize_keys(events.column(event_profile_id), event_profile_id),
            event_source,
        )
        if profiles is None:
            keys = pa.array([], event_keys.type)
        elif keys.type != event_keys.type:
            raise DataError(
                f"event keys are {event_keys.type} but profile keys are {keys.type}",
                column=event_profile_id,
                source=event_source,
                hint="cast one key column to the other's type",
            )
        keys, event_index = _index_events(keys, event_keys)

    n = len(keys)
    profile_rows = 0 if profiles is None else profiles.num_rows
    profile_fields: dict[str, Field] = {}
    columns: dict[str, Column] = {}
    if profiles is not None:
        for f in profiles.schema:
            dtype = _dtype(f, time_units, profile_source)
            profile_fields[f.name] = Field(f.name, dtype, f.nullable)
            step(f"profile column {f.name}")
            if f.name == profile_id:
                continue  # the key column is built from the normalized keys below
            col = _convert(profiles, f.name, dtype, time_units=time_units, assume_tz=assume_tz,
                           source=profile_source)
            if n > profile_rows:  # profiles that only events mention: no attributes
                col = concat_columns([col, empty_column(dtype, n - profile_rows)])
            columns[f.name] = col
    # The key column holds the normalized keys (whole floats read as integers).
    key_type = DType(Kind.INT if pa.types.is_integer(keys.type) else Kind.STRING)
    profile_fields[profile_id] = Field(profile_id, key_type, False)
    columns[profile_id] = column_from_arrow(keys, key_type, profile_id)

    event_fields: dict[str, Field] = {}
    if events is not None:
        assert event_time is not None and event_index is not None
        event_columns: dict[str, Column] = {}
        time = None
        for f in events.schema:
            if f.name == event_profile_id:
                event_fields[f.name] = Field(f.name, profile_fields[profile_id].dtype, False)
                continue
            if f.name == event_time:
                dtype = DType(Kind.TIMESTAMP)
            else:
                dtype = _dtype(f, time_units, event_source)
            if f.name == event_type and dtype != DType(Kind.STRING):
                raise DataError(
                    f"the event type column holds {dtype} values, not strings",
                    column=f.name,
                    source=event_source,
                    hint=f"cast the column to string, or name another with event_type= "
                    f"(the columns are {', '.join(events.column_names)})",
                )
            event_fields[f.name] = Field(f.name, dtype, f.nullable)
            step(f"event column {f.name}")
            col = _convert(events, f.name, dtype, time_units=time_units, assume_tz=assume_tz,
                           source=event_source)
            if f.name in (event_time, event_type) and col.valid is not None:
                row = int(np.flatnonzero(~col.valid)[0])
                what = "time" if f.name == event_time else "type"
                raise DataError(f"the event {what} is missing (null)", column=f.name, row=row,
                                source=event_source,
                                hint=f"every event needs its {what}; drop or fill such rows")
            if f.name == event_time:
                time = col.values
            else:
                event_columns[f.name] = col
        assert time is not None
        stored = {name: f.dtype for name, f in event_fields.items()
                  if name not in (event_profile_id, event_time)}
        step("sorting and partitioning events")
        event_store = build_events(
            event_index, time, event_columns, fields=stored, time_field=event_time,
            type_field=event_type, profiles=n,
        )
    else:
        event_store = build_events(
            np.zeros(0, np.int64), np.zeros(0, np.int64), {}, fields={}, time_field="timestamp",
            type_field=None, profiles=n,
        )
    try:
        schema = Schema(
            profile=profile_fields,
            events=event_fields,
            profile_key=profile_id,
            event_time=event_time if events is not None else None,
            event_type=event_type if events is not None else None,
            event_profile_key=event_profile_id if events is not None else None,
        )
    except SchemaError as e:  # pragma: no cover - the checks above come first
        raise DataError(str(e)) from None
    if progress is not None:
        progress("done", steps, steps)
    return Loaded(schema, keys, columns, event_store)


def _index_events(keys: pa.Array, event_keys: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """(all keys, each event's profile index), adding the keys only events mention."""
    index = pc.index_in(event_keys, value_set=keys)
    unknown = index.is_null()
    if unknown.null_count == 0 and pc.any(unknown).as_py():
        extra = pc.unique(event_keys.filter(unknown))
        extra = extra.take(pc.sort_indices(extra))
        base = len(keys)
        keys = pa.concat_arrays([keys, extra])
        extra_index = pc.add(pc.index_in(event_keys, value_set=extra), base)
        index = pc.coalesce(index, extra_index)
    return keys, np.asarray(index.cast(pa.int64()).to_numpy(zero_copy_only=False))


def _dtype(f: pa.Field, time_units: Mapping[str, str], source: str) -> DType:
    if f.name in time_units:
        is_list = pa.types.is_list(f.type) or pa.types.is_large_list(f.type)
        return DType(Kind.TIMESTAMP, is_list=is_list)
    try:
        return Schema.from_arrow(pa.schema([f])).profile[f.name].dtype
    except SchemaError as e:
        raise DataError(str(e), column=f.name, source=source,
                        hint="cast the column to a supported type, or drop it") from None


def _flat(table: pa.Table | pa.RecordBatch, source: str) -> pa.Table:
    """``table`` with struct columns flattened to dotted names, as one chunk per column."""
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    if not isinstance(table, pa.Table):
        raise DataError(f"expected an Arrow table, got {type(table).__name__}",
                        hint="pass a pyarrow.Table (or use from_parquet / from_csv for files)")
    while any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()
    names = table.column_names
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise DataError(f"column name(s) {dup} appear more than once", column=dup[0],
                        source=source, hint="rename the columns so each name is unique "
                        "(struct fields count as dotted names, like address.city)")
    return table


def _require(table: pa.Table, name: str, role: str, source: str) -> None:
    if name not in table.column_names:
        raise DataError(
            f"there is no {role} column {name!r}",
            column=name,
            source=source,
            hint=f"the columns are {', '.join(table.column_names)}",
        )


def _convert(
    table: pa.Table,
    name: str,
    dtype: DType,
    *,
    time_units: Mapping[str, str],
    assume_tz: str,
    source: str,
) -> Column:
    try:
        return column_from_arrow(
            table.column(name), dtype, name, time_unit=time_units.get(name), assume_tz=assume_tz
        )
    except DataError as e:
        raise e.located(source) from None


def _located(fn: Callable[[], T], source: str) -> T:
    try:
        return fn()
    except DataError as e:
        raise e.located(source) from None


def read_table(
    paths: str | Path | Sequence[str | Path],
    *,
    format: str | None = None,
    csv_options: Mapping[str, object] | None = None,
) -> tuple[pa.Table, str]:
    """Read Parquet or CSV file(s) or a directory of them; returns (table, source name).

    The format follows the file name (``.parquet``, ``.csv``, ``.csv.gz``...) unless given.
    A file that is not what its name says is a `DataError` naming it.
    """
    import pyarrow.csv as pcsv
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    items = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    files: list[Path] = []
    for item in items:
        if item.is_dir():
            files.extend(sorted(p for p in item.rglob("*") if p.is_file()
                                and not p.name.startswith((".", "_"))))
        elif item.exists():
            files.append(item)
        else:
            raise DataError(f"no such file or directory: {item}", source=str(item),
                            hint="check the path (relative paths start at the working "
                            "directory)")
    if not files:
        raise DataError(f"no data files in {', '.join(map(str, items))}",
                        source=str(items[0]) if items else None,
                        hint="give files or directories holding .parquet or .csv files")
    source = str(items[0]) if len(items) == 1 else f"{items[0]} (+{len(items) - 1})"
    tables = []
    for path in files:
        kind = format or _format_of(path)
        try:
            if kind == "parquet":
                tables.append(pq.read_table(path))
            elif kind == "csv":
                options = dict(csv_options or {})
                tables.append(pcsv.read_csv(path, **options))
            else:
                tables.append(ds.dataset(path, format="ipc" if kind == "arrow" else kind
                                         ).to_table())
        except (pa.ArrowInvalid, OSError) as e:
            raise DataError(
                f"cannot read {path} as {kind}: {str(e).splitlines()[0]}",
                source=str(path),
                hint="check the file is complete and of the type its name says",
            ) from None
    try:
        table = pa.concat_tables(tables, promote_options="permissive")
    except pa.ArrowInvalid as e:
        raise DataError(f"the files' columns do not agree: {e}", source=source,
                        hint="give files of one table the same column names and types"
                        ) from None
    return table, source


def _format_of(path: Path) -> str:
    name = path.name.lower()
    for suffix, kind in ((".parquet", "parquet"), (".pq", "parquet"), (".csv", "csv"),
                         (".csv.gz", "csv"), (".csv.bz2", "csv"), (".tsv", "csv"),
                         (".arrow", "arrow"), (".feather", "arrow"), (".ipc", "arrow")):
        if name.endswith(suffix):
            return kind
    raise DataError(
        f"cannot tell the format of {path} from its name",
        source=str(path),
        hint="name files .parquet, .csv (.csv.gz) or .arrow, or say the format",
    )
