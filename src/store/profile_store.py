"""`ProfileStore`: profiles and their event histories, as columns the kernels scan.

A store is built from Arrow tables (`from_arrow`), Parquet (`from_parquet`) or CSV
(`from_csv`), saved as a directory (`save`) and memory-mapped back (`open`). Appends
(`append`) go to a delta on top of the immutable base; `compact` folds them in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from store import delta as _delta
from store.columns import Column
from store.disk import read_generation, write_generation
from store.errors import DataError
from store.events import EventStore
from store.keys import KeyIndex
from store.loading import Loaded, load_tables, read_table
from store.schema import Schema

if TYPE_CHECKING:
    from store.subset import Subset

__all__ = ["ProfileStore"]

PathLike = str | Path


class ProfileStore:
    """Profiles (dense index 0..n-1) with attribute columns and time-ordered event histories.

    ``profiles[name]`` is an attribute `Column`; ``events`` the partitioned event histories
    (`store.events.EventStore`); ``keys`` the profile keys by index.
    """

    def __init__(
        self,
        schema: Schema,
        keys: pa.Array,
        profiles: Mapping[str, Column],
        events: EventStore,
        *,
        path: Path | None = None,
        generation: str | None = None,
    ) -> None:
        self.schema = schema
        self.keys = keys
        self.profiles = dict(profiles)
        self.events = events
        self.path = path
        self.generation = generation
        self.delta = _delta.Delta()
        self._index = KeyIndex(keys)

    # ------------------------------------------------------------ building

    @classmethod
    def from_arrow(
        cls,
        profiles: pa.Table | None = None,
        events: pa.Table | None = None,
        *,
        profile_id: str,
        event_profile_id: str | None = None,
        event_time: str | None = None,
        event_type: str | None = None,
        time_units: Mapping[str, str] | None = None,
        assume_tz: str = "UTC",
        progress: Callable[[str, int, int], None] | None = None,
    ) -> ProfileStore:
        """Build a store from a profiles table and/or an events table.

        ``profile_id`` names the profiles' key column (and the events' unless
        ``event_profile_id`` is given). ``event_time`` defaults to ``timestamp`` and
        ``event_type`` to ``eventType`` when such columns exist. Timestamps may be Arrow
        timestamps of any unit, dates, ISO 8601 text, or epoch numbers whose unit
        ``time_units`` gives per column (``{"ts": "s"}``); text and zone-less timestamps
        without an offset are read in ``assume_tz``. Bad input raises `store.DataError`
        naming the column and row. ``progress(step, done, total)``, if given, is called as
        the load goes (for progress bars).
        """
        loaded = load_tables(
            profiles, events, profile_id=profile_id, event_profile_id=event_profile_id,
            event_time=event_time, event_type=event_type, time_units=time_units,
            assume_tz=assume_tz, progress=progress,
        )
        return cls._of(loaded)

    @classmethod
    def from_parquet(
        cls,
        profiles: PathLike | Sequence[PathLike] | None = None,
        events: PathLike | Sequence[PathLike] | None = None,
        **options: Any,
    ) -> ProfileStore:
        """`from_arrow` over Parquet files or directories of them (same keywords)."""
        return cls._from_files(profiles, events, "parquet", None, options)

    @classmethod
    def from_csv(
        cls,
        profiles: PathLike | Sequence[PathLike] | None = None,
        events: PathLike | Sequence[PathLike] | None = None,
        *,
        csv_options: Mapping[str, object] | None = None,
        **options: Any,
    ) -> ProfileStore:
        """`from_arrow` over CSV files (``.csv``, ``.csv.gz``...) read by pyarrow.

        ``csv_options`` go to `pyarrow.csv.read_csv` (e.g. ``convert_options``).
        """
        return cls._from_files(profiles, events, "csv", csv_options, options)

    @classmethod
    def from_files(
        cls,
        profiles: PathLike | Sequence[PathLike] | None = None,
        events: PathLike | Sequence[PathLike] | None = None,
        *,
        format: str | None = None,
        csv_options: Mapping[str, object] | None = None,
        **options: Any,
    ) -> ProfileStore:
        """`from_arrow` over Parquet, CSV or Arrow IPC files, each read by its name's suffix
        (``.parquet``, ``.csv``, ``.csv.gz``, ``.arrow``...) unless ``format`` says."""
        return cls._from_files(profiles, events, format, csv_options, options)

    @classmethod
    def _from_files(
        cls,
        profiles: PathLike | Sequence[PathLike] | None,
        events: PathLike | Sequence[PathLike] | None,
        fmt: str | None,
        csv_options: Mapping[str, object] | None,
        options: dict[str, Any],
    ) -> ProfileStore:
        tables: dict[str, tuple[pa.Table, str] | None] = {}
        for side, paths in (("profiles", profiles), ("events", events)):
            tables[side] = (
                None if paths is None else read_table(paths, format=fmt, csv_options=csv_options)
            )
        p, e = tables["profiles"], tables["events"]
        loaded = load_tables(
            None if p is None else p[0],
            None if e is None else e[0],
            profile_source=p[1] if p else "profiles",
            event_source=e[1] if e else "events",
            **options,
        )
        return cls._of(loaded)

    @classmethod
    def _of(cls, loaded: Loaded) -> ProfileStore:
        return cls(loaded.schema, loaded.keys, loaded.profiles, loaded.events)

    # ------------------------------------------------------------ disk

    def save(self, path: PathLike) -> None:
        """Write the store (base and delta, compacted) as a directory, atomically.

        A crash mid-save leaves the previous store at ``path`` intact.
        """
        source = self.compacted() if self.delta else self
        target = Path(path)
        self.generation = write_generation(
            target, schema=source.schema, keys=source.keys, profiles=source.profiles,
            events=source.events,
        )
        if source is not self:
            self._adopt(source)
        self.path = target

    @classmethod
    def open(cls, path: PathLike) -> ProfileStore:
        """Memory-map a saved store; columns are read from disk only when used."""
        target = Path(path)
        manifest, schema, keys, profiles, events = read_generation(target)
        store = cls(schema, keys, profiles, events, path=target,
                    generation=manifest["generation"])
        store.delta.batches.extend(_delta.read_batches(store._delta_dir()))
        return store

    def _delta_dir(self) -> Path:
        assert self.path is not None and self.generation is not None
        return self.path / f"{self.generation}.delta"

    # ------------------------------------------------------------ appends

    def append(
        self,
        events: pa.Table | None = None,
        profiles: pa.Table | None = None,
        *,
        time_units: Mapping[str, str] | None = None,
        assume_tz: str = "UTC",
    ) -> None:
        """Add events and upsert profile attributes (persisted at once for a saved store).

        ``profiles`` carries the key and the attributes to set (a null sets null); keys the
        store has not seen become new profiles. Reads (`to_arrow`, `profile`) include the
        appended data; the columns the kernels scan do after `compact`.
        """
        batch = _delta.normalize_batch(
            self.schema, events, profiles, time_units=dict(time_units or {}), assume_tz=assume_tz
        )
        if self.path is not None and self.generation is not None:
            _delta.write_batch(self._delta_dir(), len(self.delta.batches) + 1, batch)
        self.delta.batches.append(batch)

    def compacted(self) -> ProfileStore:
        """A new in-memory store equal to base + delta (profile indices are kept)."""
        profiles, events = self.to_arrow()
        s = self.schema
        assert s.profile_key is not None
        return ProfileStore.from_arrow(
            profiles, events if s.has_events else None, profile_id=s.profile_key,
            event_profile_id=s.event_profile_key, event_time=s.event_time,
            event_type=s.event_type,
        )

    def subset(self, profiles: Sequence[int] | np.ndarray | None = None, **options: Any
               ) -> Subset:
        """A small store of ``profiles`` with new data, laid out like this one (for streaming:
        `store.subset.subset`, whose keywords these are)."""
        from store.subset import subset

        return subset(self, profiles, **options)

    def compact(self) -> None:
        """Fold the delta into the base (for a saved store: a new generation, atomically)."""
        if not self.delta:
            return
        if self.path is not None:
            self.save(self.path)  # save compacts, then drops the old generation and its delta
        else:
            self._adopt(self.compacted())

    def _adopt(self, other: ProfileStore) -> None:
        self.schema, self.keys, self.profiles, self.events = (
            other.schema, other.keys, other.profiles, other.events
        )
        self.delta = _delta.Delta()
        self._index = KeyIndex(self.keys)

    # ------------------------------------------------------------ reading

    def __len__(self) -> int:
        """Profiles in the base (appended new keys count after `compact`)."""
        return len(self.keys)

    @property
    def nbytes(self) -> int:
        """Bytes of the base's arrays (mapped or in memory)."""
        return int(
            sum(c.nbytes for c in self.profiles.values()) + self.events.nbytes + self.keys.nbytes
        )

    def index_of(self, keys: Sequence[object] | pa.Array) -> np.ndarray:
        """Profile indices of ``keys`` (-1 where unknown)."""
        return self._index.lookup(self._as_keys(keys))

    def _as_keys(self, keys: Sequence[object] | pa.Array) -> pa.Array:
        """``keys`` as an array of this store's key type."""
        array = keys if isinstance(keys, pa.Array) else pa.array(list(keys))
        if len(array) and array.type != self.keys.type:
            try:
                array = array.cast(self.keys.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise DataError(f"keys of type {array.type} cannot match this store's "
                                f"{self.keys.type} keys",
                                hint=f"look profiles up by {self.keys.type} keys") from None
        return array

    def to_arrow(self) -> tuple[pa.Table, pa.Table]:
        """(profiles, events) as Arrow tables with base and delta applied.

        Profiles come in index order; events in (profile, time) order, ties in arrival order.
        """
        s = self.schema
        assert s.profile_key is not None
        profiles = pa.table({
            name: self.profiles[name].to_arrow() for name in s.profile
        })
        events = self._base_events()
        if not self.delta:
            return profiles, events
        key = s.profile_key
        batches = self.delta.batches
        event_keys = [
            b.events.column(s.event_profile_key).combine_chunks()
            if b.events is not None and s.event_profile_key else None
            for b in batches
        ]
        profiles, all_keys = _delta.apply_upserts(profiles, self.keys, key, batches, event_keys)
        appended = [b.events for b in batches if b.events is not None]
        if appended:
            events = _ordered_events(pa.concat_tables([events, *appended]), all_keys, s)
        return profiles, events

    def _base_events(self) -> pa.Table:
        s = self.schema
        if not s.has_events:
            return pa.table({})
        profile, time, arrays = self.events.to_arrow_columns()
        assert s.event_profile_key is not None and s.event_time is not None
        columns = {}
        for name in s.events:
            if name == s.event_profile_key:
                columns[name] = self.keys.take(pa.array(profile, pa.int64()))
            elif name == s.event_time:
                columns[name] = pa.array(time, pa.int64()).cast(pa.timestamp("ms", tz="UTC"))
            else:
                columns[name] = arrays[name]
        return pa.table(columns)

    def profile(self, key: object) -> dict[str, Any] | None:
        """One profile's attributes and events (base + delta), or None if it does not exist.

        Returns ``{"attributes": {...}, "events": [{...}, ...]}`` with events in time order.
        """
        profiles, events = self.to_arrow() if self.delta else (None, None)
        if profiles is not None and events is not None:
            key_col = profiles.column(self.schema.profile_key or "")
            wanted = self._as_keys([key])[0]
            rows = pc.equal(key_col, wanted)
            found = profiles.filter(rows).to_pylist()
            if not found:
                return None
            assert self.schema.event_profile_key is not None or not self.schema.has_events
            mine = (events.filter(pc.equal(events.column(self.schema.event_profile_key or ""),
                                           wanted)).to_pylist()
                    if self.schema.has_events else [])
            return {"attributes": found[0], "events": mine}
        index = int(self.index_of([key])[0])
        if index < 0:
            return None
        attributes = {name: _value_at(col, index) for name, col in self.profiles.items()}
        return {"attributes": attributes, "events": self._history(index)}

    def _history(self, index: int) -> list[dict[str, Any]]:
        """One profile's events from every partition, merged in (time, arrival) order."""
        s = self.schema
        if not s.has_events:
            return []
        assert s.event_profile_key is not None and s.event_time is not None
        pieces = []
        for part in self.events.partitions:
            rows = part.slice_of(index)
            if rows.stop == rows.start:
                continue
            columns: dict[str, pa.Array] = {}
            for name in s.events:
                if name == s.event_profile_key:
                    columns[name] = pa.array([self.keys[index].as_py()] * (rows.stop - rows.start),
                                             self.keys.type)
                elif name == s.event_time:
                    columns[name] = pa.array(part.time[rows], pa.int64()).cast(
                        pa.timestamp("ms", tz="UTC"))
                else:
                    columns[name] = _slice(self.events.field(part, name), rows).to_arrow()
            seq = part.seq[rows] if part.seq is not None else np.arange(rows.start, rows.stop)
            columns["__seq"] = pa.array(np.asarray(seq, np.int64))
            pieces.append(pa.table(columns))
        if not pieces:
            return []
        merged = pa.concat_tables(pieces).sort_by([(s.event_time, "ascending"),
                                                   ("__seq", "ascending")])
        history: list[dict[str, Any]] = merged.drop_columns(["__seq"]).to_pylist()
        return history


def _slice(col: Column, rows: slice) -> Column:
    """Rows ``rows`` of a column (lists re-based onto their elements)."""
    valid = None if col.valid is None else col.valid[rows]
    if col.offsets is None:
        return Column(col.dtype, col.values[rows], valid, None, col.dictionary)
    offsets = np.asarray(col.offsets[rows.start : rows.stop + 1], np.int64)
    values = col.values[int(offsets[0]) : int(offsets[-1])]
    return Column(col.dtype, values, valid, offsets - offsets[0], col.dictionary)


def _value_at(col: Column, row: int) -> Any:
    if col.valid is not None and not col.valid[row]:
        return None
    if col.offsets is not None:
        start, stop = int(col.offsets[row]), int(col.offsets[row + 1])
        sub = Column(col.dtype.element, col.values[start:stop], None, None, col.dictionary)
        return sub.to_arrow().to_pylist()
    one = Column(col.dtype, col.values[row : row + 1], None, None, col.dictionary)
    return one.to_arrow()[0].as_py()


def _ordered_events(events: pa.Table, keys: pa.Array, s: Schema) -> pa.Table:
    from store.events import sort_order

    assert s.event_profile_key is not None and s.event_time is not None
    index = pc.index_in(events.column(s.event_profile_key).combine_chunks(), value_set=keys)
    profile = np.asarray(index.to_numpy(zero_copy_only=False), dtype=np.int64)
    time = np.asarray(
        events.column(s.event_time).combine_chunks().cast(pa.int64()).to_numpy(
            zero_copy_only=False), dtype=np.int64)
    return events.take(pa.array(sort_order(profile, time)))

