"""Batch file exports: memberships of a run written to a file destination, with nothing lost.

``Exporter(engine, state_dir).export(destination, result)`` writes, for each segment mapped to
a ``parquet`` or ``csv`` destination, the profiles it should receive:

* **full** files: every current member (status ``realized`` if new since the previous export,
  else ``existing``), plus, with ``include_exited``, the exits still within the retention;
* **incremental** files: only the profiles whose membership changed since the previous export
  of the destination (``realized``, ``exited``); a segment's first file is a full backfill.

Members are filtered by consent first (a profile without consent for the destination's
purpose is never written; losing consent is an exit), and the activation is checked against
the governance policies before anything is written (`engine.governance`).

Files are named ``SEGMENT_STAMP_PART.parquet`` (``STAMP`` the run instant, e.g.
``20250101T000000Z``; a new part every ``split_rows`` rows), then a manifest
``manifest_STAMP.json`` lists them with rows, bytes and SHA-256: the manifest is written last,
so a receiver that waits for it never reads a partial export. Rows hold the mapped identity
namespaces, the mapped attributes, ``segment``, ``status`` and ``at``.

An export is identified by (destination, segments, run instant). Running it again writes the
same bytes (or nothing, when its files are intact) and does not move the incremental
baseline twice: the baseline before each export is kept in the destination's state
directory (``STATE/DESTINATION/``: the members per segment as portable roaring bitmaps of
profile indices, the exits within the retention, and the key array the indices refer to, so a
rebuilt store is mapped through its keys). Every file is written atomically; the state file is
replaced last, so a crash at any point leaves the previous export's state whole.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyroaring import BitMap

from engine.consent import consent_mask
from engine.destinations import Destination
from engine.errors import EngineError
from engine.governance import Governance
from store.bitmaps import mask_to_bitmap
from store.files import write_atomic
from store.times import iso_ms

if TYPE_CHECKING:
    from engine.session import Engine, Result

__all__ = ["ExportError", "ExportFile", "ExportReport", "Exporter", "LocalWriter", "Writer"]

STATUSES = ("realized", "existing", "exited")
_RESERVED = ("segment", "status", "at")
_VERSION = 1


class ExportError(EngineError):
    """An export that cannot be made as asked (e.g. before the destination's last one)."""


class Writer(Protocol):
    """Where a file destination's files go. ``put`` must make a file visible whole or not at
    all (local files: a temporary name renamed; object stores: a single PUT)."""

    def put(self, name: str, data: bytes) -> None: ...

    def get(self, name: str) -> bytes | None: ...

    def exists(self, name: str) -> bool: ...

    def location(self, name: str) -> str: ...


class LocalWriter:
    """Files in a local directory (created when first written)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def put(self, name: str, data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / name
        new = not path.exists()
        write_atomic(path, data)
        if new:  # readable as a file created by open() would be, not the temporary's 0600
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(path, 0o666 & ~umask)

    def get(self, name: str) -> bytes | None:
        try:
            return (self.directory / name).read_bytes()
        except FileNotFoundError:
            return None

    def exists(self, name: str) -> bool:
        return (self.directory / name).is_file()

    def location(self, name: str) -> str:
        return str(self.directory / name)


@dataclass(frozen=True)
class ExportFile:
    name: str
    segment: str
    part: int
    rows: int
    bytes: int
    sha256: str


@dataclass
class SegmentCounts:
    members: int = 0  # in the segment at the run
    consented: int = 0  # of which the destination may receive (consent)
    realized: int = 0
    existing: int = 0
    exited: int = 0
    rows: int = 0  # written
    backfill: bool = False  # an incremental export's first file of the segment: every member


@dataclass
class ExportReport:
    """What one export did. ``status``: ``written`` (a new export), ``rewritten`` / ``unchanged``
    (a re-run of the last export: files written again, or already intact), ``already
    exported`` (an earlier export, left as it is), ``not due`` (the cadence says later)."""

    destination: str
    export_id: str
    at_ms: int
    mode: str
    status: str
    segments: dict[str, SegmentCounts] = field(default_factory=dict)
    files: list[ExportFile] = field(default_factory=list)
    manifest: str | None = None
    seconds: float = 0.0
    next_due_ms: int | None = None

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["at"] = iso_ms(self.at_ms)
        out["rows"], out["bytes"] = self.rows, self.bytes
        return out


def _stamp(ms: int) -> str:
    """An instant for file names: 20250101T000000Z (milliseconds only when not zero)."""
    t = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=ms)
    frac = f".{ms % 1000:03d}" if ms % 1000 else ""
    return t.strftime("%Y%m%dT%H%M%S") + frac + "Z"


def export_id(destination: str, segments: Iterable[str], at_ms: int) -> str:
    """The identity of an export: (destination, the set of segments, the run instant)."""
    text = json.dumps([destination, sorted(segments), at_ms])
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def keys_fingerprint(keys: pa.Array) -> str:
    """A digest of a store's profile numbering (its key array), to know whether profile
    indices of an earlier baseline still name the same profiles."""
    h = hashlib.blake2b(digest_size=12)
    h.update(f"{keys.type}:{len(keys)}:{keys.offset}".encode())
    for buffer in keys.buffers():
        if buffer is not None:
            h.update(memoryview(buffer))
    return h.hexdigest()


# ---------------------------------------------------------------- the baseline


@dataclass
class _Baseline:
    """What the destination was sent up to an export: per segment, the members it holds
    (profile indices of the numbering ``fingerprint``) and the exits within the retention."""

    fingerprint: str
    members: dict[str, BitMap]
    exits: dict[str, tuple[np.ndarray, np.ndarray]]  # segment -> (indices, exit instants)

    def files(self) -> dict[str, bytes]:
        names = list(self.members)
        out = {"meta.json": json.dumps({"fingerprint": self.fingerprint,
                                        "segments": names}).encode()}
        for i, name in enumerate(names):
            out[f"{i}.roaring"] = self.members[name].serialize()
            buf = io.BytesIO()
            idx, at = self.exits.get(name, (np.zeros(0, np.uint32), np.zeros(0, np.int64)))
            np.savez(buf, index=idx.astype(np.uint32), at=at.astype(np.int64))
            out[f"{i}.exits.npz"] = buf.getvalue()
        return out

    @classmethod
    def read(cls, directory: Path) -> _Baseline:
        meta = json.loads((directory / "meta.json").read_text())
        members, exits = {}, {}
        for i, name in enumerate(meta["segments"]):
            members[name] = BitMap.deserialize((directory / f"{i}.roaring").read_bytes())
            with np.load(directory / f"{i}.exits.npz") as z:
                exits[name] = (z["index"], z["at"])
        return cls(meta["fingerprint"], members, exits)


class _State:
    """A destination's export state: ``STATE/DESTINATION/state.json`` names the last two
    exports and their baselines (``baselines/b-N``); key arrays in ``keys/``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        path = directory / "state.json"
        data = json.loads(path.read_text()) if path.exists() else {}
        if data and data.get("version") != _VERSION:
            raise ExportError(f"{path}: state of another version ({data.get('version')}); "
                              "export to a new state directory")
        self.last: dict[str, Any] | None = data.get("last")
        self.previous: dict[str, Any] | None = data.get("previous")
        self.history: list[dict[str, Any]] = data.get("history", [])
        self.generation: int = data.get("generation", 0)

    def baseline(self, entry: dict[str, Any] | None) -> _Baseline | None:
        if entry is None:
            return None
        return _Baseline.read(self.directory / "baselines" / entry["baseline"])

    def keys(self, fingerprint: str) -> pa.Array:
        with pa.memory_map(str(self.directory / "keys" / f"{fingerprint}.arrow")) as f:
            return pa.ipc.open_file(f).read_all().column(0).combine_chunks()

    def commit(self, entry: dict[str, Any], baseline: _Baseline, keys: pa.Array,
               rerun: bool) -> None:
        """Save ``baseline`` as the state after export ``entry`` (replacing the last one on
        a re-run), then the state file (the commit point), then drop what it no longer names."""
        self.generation += 1
        entry = {**entry, "baseline": f"b-{self.generation:06d}"}
        target = self.directory / "baselines" / entry["baseline"]
        target.mkdir(parents=True, exist_ok=True)
        for name, data in baseline.files().items():
            write_atomic(target / name, data)
        key_file = self.directory / "keys" / f"{baseline.fingerprint}.arrow"
        if not key_file.exists():
            key_file.parent.mkdir(parents=True, exist_ok=True)
            sink = pa.BufferOutputStream()
            with pa.ipc.new_file(sink, pa.schema([("key", keys.type)])) as w:
                w.write_table(pa.table({"key": keys}))
            write_atomic(key_file, sink.getvalue().to_pybytes())
        if not rerun:
            self.previous = self.last
            self.history.append({k: entry[k] for k in ("id", "at_ms", "manifest")})
        self.last = entry
        write_atomic(self.directory / "state.json", json.dumps({
            "version": _VERSION, "generation": self.generation, "last": self.last,
            "previous": self.previous, "history": self.history}, indent=1))
        self._tidy()

    def _tidy(self) -> None:
        kept = [e for e in (self.last, self.previous) if e is not None]
        names = {e["baseline"] for e in kept}
        prints = set()
        for e in kept:
            meta = self.directory / "baselines" / e["baseline"] / "meta.json"
            prints.add(json.loads(meta.read_text())["fingerprint"])
        for d in (self.directory / "baselines").iterdir():
            if d.name not in names:
                shutil.rmtree(d, ignore_errors=True)
        for f in (self.directory / "keys").glob("*.arrow"):
            if f.stem not in prints:
                f.unlink(missing_ok=True)


def _remap(base: _Baseline, old_keys: pa.Array, store_keys: pa.Array, index_of: Callable[
        [pa.Array], np.ndarray]) -> tuple[_Baseline, pa.Array]:
    """``base`` in the current numbering. Profiles no longer in the store are given indices
    after the store's (``len(store_keys) + i`` for the i-th returned key): they exit."""
    n = len(store_keys)
    gone: dict[Any, int] = {}

    def move(indices: np.ndarray) -> np.ndarray:
        keys = old_keys.take(pa.array(indices.astype(np.int64)))
        new = index_of(keys)
        for j in np.flatnonzero(new < 0).tolist():
            new[j] = n + gone.setdefault(keys[j].as_py(), len(gone))
        return new

    members = {}
    for name, bm in base.members.items():
        members[name] = BitMap(move(np.asarray(bm.to_array(), np.int64)).astype(np.uint32))
    exits = {}
    for name, (idx, at) in base.exits.items():
        moved = move(idx.astype(np.int64))
        keep = moved < n  # an exit of a profile now gone is not kept in the retention
        exits[name] = (moved[keep].astype(np.uint32), at[keep])
    return (_Baseline("", members, exits),
            pa.array(list(gone), store_keys.type) if gone else pa.array([], store_keys.type))


# ---------------------------------------------------------------- the exporter


class Exporter:
    """Exports of an engine's memberships to file destinations; see the module docstring.

    ``writer(destination)`` gives where a destination's files go (default: a `LocalWriter`
    on its ``path``); ``threads`` write segments in parallel (default: the engine's)."""

    def __init__(self, engine: Engine, state: str | Path, *,
                 governance: Governance | None = None,
                 writer: Callable[[Destination], Writer] | None = None,
                 threads: int | None = None) -> None:
        self.engine = engine
        self.store = engine.store
        self.state = Path(state)
        self.governance = governance or Governance()
        self.writer = writer or (lambda d: LocalWriter(d.path or Path(".")))
        self.threads = threads or engine.thread_count()
        self._fingerprint: str | None = None
        self._consent: dict[Any, BitMap] = {}

    def export_all(self, destinations: Iterable[Destination], result: Result, *,
                   force: bool = False) -> list[ExportReport]:
        """Export ``result`` to each destination, after checking every one against the
        policies: a refusal (`PolicyViolation`) comes before any file is written."""
        chosen = list(destinations)
        self.check(chosen)
        return [self.export(d, result, force=force, checked=True) for d in chosen]

    def check(self, destinations: Iterable[Destination]) -> None:
        analyses = {n: self.engine.analysis(n) for n in self.engine.names}
        self.governance.check(destinations, analyses)

    def export(self, destination: Destination, result: Result, *, force: bool = False,
               checked: bool = False) -> ExportReport:
        """Export the memberships of ``result`` (an `Engine.run`) to ``destination``.
        ``force``: export even if the cadence says it is not due."""
        started = time.perf_counter()
        d = destination
        if not d.is_batch:
            raise ExportError(f"destination {d.name!r} is a {d.kind} destination: streaming "
                              "destinations are fed by engine.delivery.Activation")
        missing = [s for s in d.segments if s not in result.bitmaps]
        if missing:
            raise ExportError(f"destination {d.name!r}: segment {missing[0]!r} is not in the run")
        if not checked:
            self.check([d])
        at = result.at_ms
        state = _State(self.state / d.name)
        xid = export_id(d.name, d.segments, at)
        report = ExportReport(d.name, xid, at, d.mode, "written")
        rerun = state.last is not None and state.last["id"] == xid
        if not rerun:
            earlier = next((e for e in state.history if e["id"] == xid), None)
            if earlier is not None:
                report.status, report.manifest = "already exported", earlier["manifest"]
                return report
            if state.last is not None and at < state.last["at_ms"]:
                raise ExportError(
                    f"destination {d.name!r} was last exported at {iso_ms(state.last['at_ms'])}"
                    f"; an export at {iso_ms(at)} would go back in time (its incremental "
                    "files would be wrong): export at a later instant")
            last_at = None if state.last is None else state.last["at_ms"]
            if not force and not d.schedule.due(last_at, at):
                report.status = "not due"
                report.next_due_ms = None if last_at is None else d.schedule.next_after(last_at)
                return report
        base_entry = state.previous if rerun else state.last
        base, gone = self._baseline(state, state.baseline(base_entry))
        writer = self.writer(d)
        name = f"manifest_{_stamp(at)}.json"
        old = writer.get(name)
        if old is not None and json.loads(old).get("export_id") != xid:
            raise ExportError(
                f"{writer.location(name)} is the manifest of another export at the same "
                f"instant (other segments); export these segments at another instant, or to "
                "another destination")
        files, blobs, after = self._build(d, result, base, gone, report)
        report.files, report.manifest = files, name
        manifest = self._manifest(d, xid, base_entry, report)
        unchanged = old is not None and old == manifest
        for f, blob in zip(files, blobs, strict=True):
            if not (unchanged and writer.exists(f.name)):
                writer.put(f.name, blob)
        if not unchanged:
            writer.put(name, manifest)
        report.status = ("unchanged" if unchanged else "rewritten") if rerun else "written"
        state.commit({"id": xid, "at_ms": at, "segments": list(d.segments), "manifest": name},
                     after, self.store.keys, rerun)
        report.seconds = time.perf_counter() - started
        return report

    # ------------------------------------------------------------ internals

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = keys_fingerprint(self.store.keys)
        return self._fingerprint

    def _baseline(self, state: _State, base: _Baseline | None) -> tuple[_Baseline | None, pa.Array]:
        none = pa.array([], self.store.keys.type)
        if base is None or base.fingerprint == self.fingerprint():
            return base, none
        return _remap(base, state.keys(base.fingerprint), self.store.keys, self.store.index_of)

    def _eligible(self, d: Destination) -> BitMap | None:
        if d.consent is None:
            return None
        key = (d.consent.field, d.consent.granted, d.consent.file, d.consent.key)
        if key not in self._consent:
            self._consent[key] = mask_to_bitmap(consent_mask(self.store, d.consent).view(np.uint8))
        return self._consent[key]

    def _build(self, d: Destination, result: Result, base: _Baseline | None, gone: pa.Array,
               report: ExportReport) -> tuple[list[ExportFile], list[bytes], _Baseline]:
        """Every segment's rows, files and bytes (segments in parallel), and the baseline after."""
        consented = self._eligible(d)
        at = result.at_ms
        horizon = at - d.retention_ms

        def one(segment: str) -> tuple[SegmentCounts, list[tuple[ExportFile, bytes]],
                                       BitMap, tuple[np.ndarray, np.ndarray]]:
            now = result[segment]
            eligible = now if consented is None else now & consented
            counts = SegmentCounts(members=len(now), consented=len(eligible))
            before = None if base is None else base.members.get(segment)
            old_idx, old_at = (np.zeros(0, np.uint32), np.zeros(0, np.int64))
            if base is not None and segment in base.exits:
                old_idx, old_at = base.exits[segment]
            if before is None:
                before = BitMap()
                counts.backfill = d.mode == "incremental"
            realized, existing, exited = eligible - before, eligible & before, before - eligible
            counts.realized, counts.existing, counts.exited = (
                len(realized), len(existing), len(exited))
            # Exits within the retention: the earlier ones still recent and not back in the
            # segment, then this run's (of profiles still in the store).
            recent = (old_at >= horizon) & ~_contains(eligible, old_idx)
            new_exits = _array(exited)
            new_exits = new_exits[new_exits < len(self.store.keys)]
            kept_idx = np.concatenate([old_idx[recent], new_exits.astype(np.uint32)])
            kept_at = np.concatenate([old_at[recent], np.full(len(new_exits), at, np.int64)])
            groups: list[tuple[str, np.ndarray, np.ndarray | None]]
            if d.mode == "incremental":
                groups = [("realized", _array(realized), None), ("exited", _array(exited), None)]
            else:
                groups = [("realized", _array(realized), None), ("existing", _array(existing), None)]
                if d.include_exited:
                    order = np.argsort(kept_idx, kind="stable")
                    groups.append(("exited", kept_idx[order].astype(np.int64), kept_at[order]))
            table = self._rows(d, segment, groups, at, gone)
            counts.rows = table.num_rows
            parts = self._files(d, segment, table, at)
            return counts, parts, eligible, (kept_idx, kept_at)

        if self.threads > 1 and len(d.segments) > 1:
            with ThreadPoolExecutor(min(self.threads, len(d.segments))) as pool:
                done = list(pool.map(one, d.segments))
        else:
            done = [one(s) for s in d.segments]
        files, blobs = [], []
        members, exits = {}, {}
        if base is not None:  # segments no longer mapped keep their baseline, for a remap back
            members.update(base.members)
            exits.update(base.exits)
        for segment, (counts, parts, eligible, kept) in zip(d.segments, done, strict=True):
            report.segments[segment] = counts
            files += [f for f, _ in parts]
            blobs += [b for _, b in parts]
            members[segment] = eligible
            exits[segment] = kept
        return files, blobs, _Baseline(self.fingerprint(), members, exits)

    def _rows(self, d: Destination, segment: str,
              groups: list[tuple[str, np.ndarray, np.ndarray | None]], at: int,
              gone: pa.Array) -> pa.Table:
        """The table of rows: identities, attributes, segment, status, at."""
        st = self.store
        n = len(st.keys)
        index = np.concatenate([g[1] for g in groups]) if groups else np.zeros(0, np.int64)
        count = len(index)
        inside = index < n
        everyone_inside = bool(inside.all())
        columns: dict[str, pa.Array] = {}
        key_name = st.schema.profile_key
        for name in (*(d.identities or (key_name,)), *d.attributes):
            if name in columns:
                continue
            if name == key_name:
                if everyone_inside:
                    columns[name] = st.keys.take(pa.array(index))
                else:  # profiles gone from the store since the baseline: their old keys
                    both = pa.concat_arrays([st.keys, gone])
                    columns[name] = both.take(pa.array(index))
                continue
            col = st.profiles[name]
            rows = np.where(inside, index, 0)
            values = col.take(rows).to_arrow()
            if not everyone_inside:  # profiles gone from the store: no attributes
                values = pc.if_else(pa.array(~inside), pa.nulls(count, values.type), values)
            columns[name] = values
        columns["segment"] = pa.DictionaryArray.from_arrays(
            pa.array(np.zeros(count, np.int8)), pa.array([segment]))
        codes = np.concatenate([np.full(len(g[1]), STATUSES.index(g[0]), np.int8)
                                for g in groups]) if groups else np.zeros(0, np.int8)
        columns["status"] = pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(STATUSES))
        times = np.concatenate([np.full(len(g[1]), at, np.int64) if g[2] is None else g[2]
                                for g in groups]) if groups else np.zeros(0, np.int64)
        columns["at"] = pa.array(times).cast(pa.timestamp("ms", tz="UTC"))
        return pa.table(columns)

    def _files(self, d: Destination, segment: str, table: pa.Table,
               at: int) -> list[tuple[ExportFile, bytes]]:
        import pyarrow.csv as pcsv
        import pyarrow.parquet as pq

        out = []
        parts = max(1, -(-table.num_rows // d.split_rows))
        for part in range(parts):
            piece = table.slice(part * d.split_rows, d.split_rows)
            sink = pa.BufferOutputStream()
            if d.kind == "parquet":
                pq.write_table(piece, sink, compression="snappy")
            else:
                pcsv.write_csv(piece, sink)
            data = sink.getvalue().to_pybytes()
            name = f"{segment}_{_stamp(at)}_{part:03d}.{'parquet' if d.kind == 'parquet' else 'csv'}"
            out.append((ExportFile(name, segment, part, piece.num_rows, len(data),
                                   hashlib.sha256(data).hexdigest()), data))
        return out

    def _manifest(self, d: Destination, xid: str, base: dict[str, Any] | None,
                  report: ExportReport) -> bytes:
        at, files = report.at_ms, report.files
        body = {
            "destination": d.name, "export_id": xid, "at": iso_ms(at), "at_ms": at,
            "mode": d.mode, "format": d.kind, "marketing_action": d.marketing_action,
            "previous_export": None if base is None else base["id"],
            "columns": [*(d.identities or (self.store.schema.profile_key,)),
                        *d.attributes, *_RESERVED],
            "segments": {s: asdict(c) for s, c in report.segments.items()},
            "files": [asdict(f) for f in files],
            "rows": sum(f.rows for f in files),
            "mapping": d.mapping_fingerprint(),
            "created_by": f"pqlite {_version()}",  # the bytes of a re-run depend on it
        }
        return (json.dumps(body, indent=1) + "\n").encode()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pqlite")
    except PackageNotFoundError:  # pragma: no cover - a checkout without install
        return "0+unknown"


def _array(bm: BitMap) -> np.ndarray:
    return np.frombuffer(bm.to_array(), np.uint32).astype(np.int64)


def _contains(bm: BitMap, indices: np.ndarray) -> np.ndarray:
    if not len(indices):
        return np.zeros(0, bool)
    both = _array(BitMap(indices.astype(np.uint32)) & bm)  # small: the test below stays cheap
    return np.isin(indices.astype(np.int64), both)

