"""Write-ahead log: every record is on disk, checksummed and numbered, before it is acknowledged.

A log is a directory of segment files, ``<first seq, 20 digits>.wal``. Each record is a
24-byte header and the payload::

    offset  size  field
    0       4     magic  b"PQW\\x01" (the last byte is the format version)
    4       4     crc    zlib.crc32 of the payload, then of bytes 8..24 of this header
    8       4     length payload bytes (uint32, little-endian)
    12      4     flags  bit 0: another record of the same `append_many` group follows
    16      8     seq    sequence number (uint64): 1, 2, 3, … across segments and reopenings

Why zlib's CRC-32 and not CRC-32C: it is in the standard library and runs at C speed, while
CRC-32C needs a new dependency or a slow pure-Python loop. Both miss a random corruption with
probability 2⁻³² and catch every burst of up to 32 bits, which is what a torn write or a bad
sector looks like; CRC-32C's edge is hardware speed, not detection. The checksum covers the
length, flags and seq as well as the payload, so a record cannot be renumbered, resized or
regrouped without the check failing. The payload is hashed first, so that work happens before
the log's lock is taken; the seq is only known under the lock.

Durability (``sync=``): every policy writes each append straight to the operating system, with
no buffer in this process, so an acknowledged record (`append` returned) survives the process
being killed. Surviving power loss or an OS crash needs an fsync: ``"always"`` fsyncs before
`append` returns; ``"batch"`` fsyncs on `sync`, once ``sync_bytes`` are pending (that append
waits for it), and from a background thread at most ``sync_interval`` seconds after the first
pending write; ``"none"`` only on `sync`, `rotate` and `close`. `durable_seq` says how far the
disk is known to hold. Group commit: `append_many` writes all its records with one write and
one fsync, and they are replayed all or none after a crash.

Recovery: opening a log reads every segment. What a crash in the middle of a write leaves, a
record cut short or failing its checksum at the very end of the newest segment (or zeros
where it should be), was never acknowledged: it is cut off and described in
`WriteAheadLog.recovered_tail`. Anything else (damage followed by intact records, a damaged
older segment, a gap in the sequence numbers, bytes that are no record at all) raises
`WalError` naming the file and byte offset: the log never skips a record silently.

Rotation fsyncs the old segment before the next one is created, so only the newest segment
can ever have a torn end. `trim` deletes whole segments oldest first, fsyncing the directory
after each, so a crash in the middle leaves a contiguous suffix that opens and replays.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from store.errors import WalError

__all__ = ["HEADER_SIZE", "MAGIC", "SyncPolicy", "TornTail", "WalError", "WriteAheadLog"]

SyncPolicy = Literal["always", "batch", "none"]

MAGIC = b"PQW\x01"
_HEADER = struct.Struct("<4sIIIQ")  # magic, crc, length, flags, seq
_CHECKED = struct.Struct("<IIQ")  # length, flags, seq: the header bytes the crc covers
HEADER_SIZE = _HEADER.size
_CRC_START = 8  # the crc covers header bytes 8..HEADER_SIZE
GROUP_CONTINUES = 1  # flag: the next record belongs to the same append_many
_KNOWN_FLAGS = GROUP_CONTINUES
MAX_PAYLOAD = 2**32 - 1
MAX_SEQ = 2**64 - 1
_SEGMENT = re.compile(r"(\d{20})\.wal")

# fdatasync flushes the data and the file size, all a reader needs; fsync where it is missing.
_datasync: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)


@dataclass(frozen=True)
class TornTail:
    """The unfinished write cut off the end of the newest segment when the log was opened.

    ``offset`` is where the cut was made in ``path``, ``discarded`` how many bytes went,
    ``records`` how many intact records among them (the start of an `append_many` group whose
    last record is missing) and ``seq`` the number the log continues with.
    """

    path: Path
    offset: int
    discarded: int
    records: int
    seq: int
    reason: str

    def __str__(self) -> str:
        return (
            f"{self.path}: discarded {self.discarded} bytes from byte {self.offset}, a write "
            f"that never completed and so was never acknowledged ({self.reason}); "
            f"the log continues at seq {self.seq}"
        )


class _Damage(Exception):
    """Internal: the bytes at ``offset`` are not the intact record expected there."""

    def __init__(self, offset: int, reason: str, *, tearable: bool) -> None:
        super().__init__(reason)
        # tearable: an interrupted write can leave this (a short or failing record); a valid
        # checksum over the wrong seq or unknown flags cannot come from a crash.
        self.offset, self.reason, self.tearable = offset, reason, tearable


@dataclass(frozen=True)
class _Record:
    offset: int
    seq: int
    flags: int
    start: int  # payload
    end: int


def _payload_crc(payload: bytes) -> int:
    return zlib.crc32(payload)


def _encode(seq: int, payload: bytes, payload_crc: int, flags: int) -> bytes:
    checked = _CHECKED.pack(len(payload), flags, seq)
    crc = zlib.crc32(checked, payload_crc)
    return MAGIC + crc.to_bytes(4, "little") + checked + payload


def _walk(data: bytes, seq: int) -> Iterator[_Record]:
    """The records of one segment, which must start at ``seq``; `_Damage` at the first bad one."""
    view, off, size = memoryview(data), 0, len(data)
    while off < size:
        if size - off < HEADER_SIZE:
            raise _Damage(
                off,
                f"{size - off} bytes remain, fewer than a record header ({HEADER_SIZE})",
                tearable=True,
            )
        magic, crc, length, flags, found = _HEADER.unpack_from(data, off)
        if magic != MAGIC:
            raise _Damage(off, f"no record starts here (found {bytes(magic)!r})", tearable=True)
        end = off + HEADER_SIZE + length
        if end > size:
            raise _Damage(
                off,
                f"the record's {length} payload bytes run {end - size} bytes past the end "
                "of the file",
                tearable=True,
            )
        actual = zlib.crc32(
            view[off + _CRC_START : off + HEADER_SIZE], zlib.crc32(view[off + HEADER_SIZE : end])
        )
        if actual != crc:
            raise _Damage(
                off,
                f"checksum mismatch (stored {crc:#010x}, computed {actual:#010x})",
                tearable=True,
            )
        if flags & ~_KNOWN_FLAGS:
            raise _Damage(
                off, f"unknown flags {flags:#x}: written by a newer pqlite?", tearable=False
            )
        if found != seq:
            raise _Damage(off, f"sequence number {found} where {seq} was expected", tearable=False)
        yield _Record(off, seq, flags, off + HEADER_SIZE, end)
        off, seq = end, seq + 1


def _intact_record_from(data: bytes, start: int) -> int | None:
    """Offset of the first intact record (magic, fits, checksum) at or after ``start``."""
    at = data.find(MAGIC, start)
    while at != -1:
        if len(data) - at >= HEADER_SIZE:
            _, crc, length, _, _ = _HEADER.unpack_from(data, at)
            end = at + HEADER_SIZE + length
            if end <= len(data):
                view = memoryview(data)
                payload_crc = zlib.crc32(view[at + HEADER_SIZE : end])
                if zlib.crc32(view[at + _CRC_START : at + HEADER_SIZE], payload_crc) == crc:
                    return at
        at = data.find(MAGIC, at + 1)
    return None


def _looks_unwritten(head: bytes) -> bool:
    """Can ``head`` (up to 4 bytes at a record boundary) be what an interrupted append left?

    Yes for the start of our own marker, and for zeros: after a power loss a file can keep its
    new length while blocks that never reached the disk read as zeros.
    """
    return MAGIC.startswith(head) or not any(head)


@dataclass(frozen=True)
class _Scan:
    next_seq: int  # one past the last record kept
    end: int  # where the kept records end (the file's length unless there is a torn tail)
    tail: TornTail | None


def _scan(path: Path, data: bytes, first: int, *, newest: bool) -> _Scan:
    """Check a whole segment; decide whether a bad end is a torn write or damage."""
    end, seq = 0, first  # after the last complete group
    group_start, group_records = None, 0
    damage: _Damage | None = None
    try:
        for rec in _walk(data, first):
            if rec.flags & GROUP_CONTINUES:
                if group_start is None:
                    group_start, group_records = rec.offset, 0
                group_records += 1
            else:
                group_start, group_records, end, seq = None, 0, rec.end, rec.seq + 1
    except _Damage as exc:
        damage = exc
    if damage is None and group_start is None:
        return _Scan(seq, len(data), None)
    if damage is not None:
        where, what = damage.offset, damage.reason
    else:
        assert group_start is not None
        where = len(data)
        what = (
            f"the segment ends in the middle of an append_many group ({_count(group_records)} "
            "written, the group's last record missing)"
        )
    later = _intact_record_from(data, where + 1) if damage is not None else None
    torn = (
        newest
        and later is None
        and (damage is None or (damage.tearable and _looks_unwritten(data[where : where + 4])))
    )
    if not torn:
        raise _damage_error(path, where, what, seq, later=later, newest=newest)
    kept_group = group_records if group_start is not None else 0
    reason = what if damage is None or where == end else f"at byte {where}: {what}"
    if damage is not None and kept_group:
        reason += (
            f"; discarded with it: the {_count(kept_group)} of its append_many group before it"
        )
    return _Scan(seq, end, TornTail(path, end, len(data) - end, kept_group, seq, reason))


def _damage_error(
    path: Path, offset: int, what: str, seq: int, *, later: int | None, newest: bool
) -> WalError:
    if later is not None:
        why = f"{what}; an intact record follows at byte {later}, so this is not a torn write"
    elif not newest:
        why = f"{what}; only the newest segment can end in an unfinished write"
    else:
        why = f"{what}; these bytes are not what an interrupted write leaves"
    later_segments = "" if newest else ", delete every later segment"
    return WalError(
        f"damaged write-ahead log: {why}",
        path=str(path),
        offset=offset,
        hint=(
            f"records up to seq {seq - 1} are intact. pqlite will not guess past damage: "
            "restore the log directory from a backup, or, accepting the loss of seq "
            f"{seq} and after, cut the file there (`truncate -s {offset} {path}`){later_segments} "
            "and reopen"
        ),
    )


def _count(records: int) -> str:
    return f"{records} record" + ("" if records == 1 else "s")


def _fsync_dir(fd: int) -> None:
    try:
        os.fsync(fd)
    except OSError as exc:  # some filesystems cannot fsync a directory; anything else is real
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _as_bytes(payload: object) -> bytes:
    if isinstance(payload, bytes):
        data = payload
    elif isinstance(payload, bytearray | memoryview):
        data = bytes(payload)
    else:
        raise TypeError(f"a log record is bytes, not {type(payload).__name__}")
    if len(data) > MAX_PAYLOAD:
        raise ValueError(f"a log record holds at most {MAX_PAYLOAD} bytes, not {len(data)}")
    return data


class WriteAheadLog:
    """An append-only, checksummed log of byte records in a directory (see the module docs).

    ``sync`` is the fsync policy: ``"always"`` (default), ``"batch"`` or ``"none"``.
    Under ``"batch"``, ``sync_interval`` (seconds, or None for no timer) and ``sync_bytes``
    (or None) bound how much acknowledged data can be lost to a power cut. A segment that
    has reached ``segment_bytes`` is closed and a new one started; a single record or group is
    never split, so a segment can exceed the limit by one write.

    Thread safety: one lock serializes `append`, `append_many`, `sync`, `rotate`, `trim` and
    `close`, so records from several threads get distinct, contiguous numbers in file order.
    `replay` reads the records that existed when it was called and may run alongside appends,
    but not alongside a `trim` that removes the segments it reads. The directory is locked
    (``flock``) so that a second `WriteAheadLog`, in this process or another, cannot open it.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        sync: SyncPolicy = "always",
        sync_interval: float | None = 0.05,
        sync_bytes: int | None = 1 << 20,
        segment_bytes: int = 64 << 20,
    ) -> None:
        if sync not in ("always", "batch", "none"):
            raise ValueError(f"sync must be 'always', 'batch' or 'none', not {sync!r}")
        if sync_interval is not None and not sync_interval > 0:
            raise ValueError(
                f"sync_interval must be positive seconds or None, not {sync_interval!r}"
            )
        if sync_bytes is not None and sync_bytes <= 0:
            raise ValueError(f"sync_bytes must be positive or None, not {sync_bytes!r}")
        if segment_bytes <= 0:
            raise ValueError(f"segment_bytes must be positive, not {segment_bytes!r}")
        self.directory = Path(directory)
        self.sync_policy: SyncPolicy = sync
        self.sync_interval = sync_interval
        self.sync_bytes = sync_bytes
        self.segment_bytes = segment_bytes
        self.recovered_tail: TornTail | None = None
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)  # the batch flusher sleeps on it
        self._closed = False
        self._broken: str | None = None  # after a failed write or fsync: why appends stop
        self._pending_bytes = 0  # written since the last fsync
        self._pending_since: float | None = None  # monotonic time of the first such write
        self._flusher: threading.Thread | None = None

        if not self.directory.is_dir():
            self.directory.mkdir(parents=True)
            parent = os.open(self.directory.parent, os.O_RDONLY | os.O_CLOEXEC)
            try:
                _fsync_dir(parent)  # the new directory's own entry
            finally:
                os.close(parent)
        self._dir_fd = os.open(self.directory, os.O_RDONLY | os.O_CLOEXEC)
        try:
            try:
                fcntl.flock(self._dir_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise WalError(
                    "the write-ahead log is already open (in this process or another)",
                    path=str(self.directory),
                    hint="close the other WriteAheadLog first; one writer owns a log",
                ) from None
            self._fd = self._recover()
        except BaseException:
            os.close(self._dir_fd)
            raise
        if sync == "batch" and sync_interval is not None:
            self._flusher = threading.Thread(
                target=self._flush_loop, name=f"wal-sync {self.directory}", daemon=True
            )
            self._flusher.start()

    # --- opening -------------------------------------------------------------------------

    def _path(self, first: int) -> Path:
        return self.directory / f"{first:020d}.wal"

    def _recover(self) -> int:
        """Scan every segment, cut a torn tail, and open the newest segment for appending."""
        firsts = sorted(
            int(m.group(1))
            for name in os.listdir(self.directory)
            if (m := _SEGMENT.fullmatch(name))
        )
        if not firsts:
            os.close(self._create(1))
            firsts = [1]
        seq = firsts[0]
        scan = _Scan(seq, 0, None)
        for i, first in enumerate(firsts):
            path = self._path(first)
            if first != seq:
                raise WalError(
                    f"the sequence numbers do not continue: this segment starts at seq {first}, "
                    f"but the one before it ends at seq {seq - 1}",
                    path=str(path),
                    offset=0,
                    hint="a segment file is missing or was copied in from elsewhere; restore "
                    "the log directory from a backup",
                )
            scan = _scan(path, path.read_bytes(), first, newest=i == len(firsts) - 1)
            seq = scan.next_seq
        newest = self._path(firsts[-1])
        fd = os.open(newest, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        try:
            if scan.tail is not None:
                os.ftruncate(fd, scan.end)
            # What we read may have been only in the page cache (a crash under "none"):
            # make it durable before building on it.
            _datasync(fd)
        except BaseException:
            os.close(fd)
            raise
        self.recovered_tail = scan.tail
        self._segments = firsts
        self._size = scan.end
        self._next_seq = seq
        self._durable_seq = seq - 1
        return fd

    def _create(self, first: int) -> int:
        fd = os.open(
            self._path(first),
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC,
            0o644,
        )
        try:
            _fsync_dir(self._dir_fd)
        except BaseException:
            os.close(fd)
            raise
        return fd

    # --- state ---------------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        """The number of the last record appended (0 for a new log)."""
        return self._next_seq - 1

    @property
    def durable_seq(self) -> int:
        """Every record up to this number is fsynced: it survives a power cut."""
        return self._durable_seq

    @property
    def first_seq(self) -> int:
        """The number of the oldest record the log still holds (`last_seq` + 1 when none)."""
        return self._segments[0]

    @property
    def segments(self) -> list[Path]:
        """The segment files, oldest first; the last one is being appended to."""
        return [self._path(first) for first in self._segments]

    def _usable(self) -> None:
        if self._closed:
            raise WalError("the write-ahead log is closed", path=str(self.directory))
        if self._broken is not None:
            raise WalError(
                self._broken,
                path=str(self.directory),
                hint="close the log and open it again: opening checks what reached the disk",
            )

    # --- appending -----------------------------------------------------------------------

    def append(self, payload: bytes | bytearray | memoryview) -> int:
        """Write one record; return its sequence number once the policy's guarantee holds."""
        return self.append_many([payload])[0]

    def append_many(self, payloads: Iterable[bytes | bytearray | memoryview]) -> list[int]:
        """Group commit: write all records with one write (and one fsync), all or none.

        The records get consecutive numbers. After a crash, replay yields either the whole
        group or none of it, even if part of the write reached the disk.
        """
        blobs = [_as_bytes(p) for p in payloads]
        if not blobs:
            return []
        crcs = [_payload_crc(b) for b in blobs]  # the bulk of the hashing, outside the lock
        with self._lock:
            self._usable()
            first = self._next_seq
            if first + len(blobs) - 1 > MAX_SEQ:
                raise WalError("the log has used every 64-bit sequence number")
            last = len(blobs) - 1
            data = b"".join(
                _encode(first + i, blob, crc, GROUP_CONTINUES if i < last else 0)
                for i, (blob, crc) in enumerate(zip(blobs, crcs, strict=True))
            )
            if self._size and self._size + len(data) > self.segment_bytes:
                self._rotate_locked()
            self._write_locked(data)
            self._next_seq += len(blobs)
            self._pending_bytes += len(data)
            if self.sync_policy == "always" or (
                self.sync_policy == "batch"
                and self.sync_bytes is not None
                and self._pending_bytes >= self.sync_bytes
            ):
                self._sync_locked()
            elif self._pending_since is None:
                self._pending_since = time.monotonic()
                self._wake.notify()
            return list(range(first, first + len(blobs)))

    def _write_locked(self, data: bytes) -> None:
        try:
            _write_all(self._fd, data)
        except BaseException:
            # A partial record left in place would be followed by the next append's records:
            # damage in the middle of the log. Cut it off, or refuse to go on.
            try:
                os.ftruncate(self._fd, self._size)
            except OSError as exc:
                self._broken = f"a failed write could not be undone ({exc})"
            raise
        self._size += len(data)

    def _sync_locked(self) -> None:
        if self._durable_seq == self._next_seq - 1:
            return
        try:
            _datasync(self._fd)
        except OSError as exc:
            # After a failed fsync the kernel may have dropped the pages it could not write:
            # what is on disk is unknown until the log is read again.
            self._broken = (
                f"fsync failed ({exc}); records after seq {self._durable_seq} may be lost"
            )
            raise
        self._durable_seq = self._next_seq - 1
        self._pending_bytes, self._pending_since = 0, None

    def sync(self) -> int:
        """Fsync what has been written; return `durable_seq` (now equal to `last_seq`)."""
        with self._lock:
            self._usable()
            self._sync_locked()
            return self._durable_seq

    def _flush_loop(self) -> None:
        """Under ``sync="batch"``: fsync pending writes ``sync_interval`` after the first."""
        assert self.sync_interval is not None
        with self._lock:
            while not self._closed and self._broken is None:
                if self._pending_since is None:
                    self._wake.wait()
                    continue
                delay = self._pending_since + self.sync_interval - time.monotonic()
                if delay > 0:
                    self._wake.wait(delay)
                    continue
                try:
                    self._sync_locked()
                except OSError:
                    return  # the log is broken now; the next call on it says so

    # --- segments ------------------------------------------------------------------------

    def rotate(self) -> None:
        """Fsync the current segment and start a new one (nothing happens if it is empty).

        The checkpoint path: `rotate`, write the state (covering up to `last_seq`)
        atomically, then `trim` to that seq. Rotating first also makes every record the
        checkpoint covers durable, whatever the sync policy.
        """
        with self._lock:
            self._usable()
            self._rotate_locked()

    def _rotate_locked(self) -> None:
        if self._size == 0:
            return
        # The old segment must be complete on disk before a newer one exists: recovery
        # treats a bad end of any segment but the newest as damage, not as a torn write.
        self._sync_locked()
        fd = self._create(self._next_seq)
        os.close(self._fd)
        self._fd, self._size = fd, 0
        self._segments.append(self._next_seq)

    def trim(self, upto: int) -> int:
        """Delete the segments that hold only records numbered ``upto`` or less.

        Call it once a checkpoint covers ``upto``. The newest segment is kept (its name
        carries the next sequence number), so rotate first to drop everything. Segments go
        oldest first, each deletion fsynced, so a crash midway leaves a log that opens and
        replays. Returns how many segment files were deleted.
        """
        with self._lock:
            self._usable()
            if upto > self.last_seq:
                raise ValueError(
                    f"cannot trim up to seq {upto}: the log ends at seq {self.last_seq}"
                )
            removed = 0
            while len(self._segments) > 1 and self._segments[1] - 1 <= upto:
                self._path(self._segments[0]).unlink(missing_ok=True)
                _fsync_dir(self._dir_fd)
                del self._segments[0]
                removed += 1
            return removed

    # --- reading -------------------------------------------------------------------------

    def replay(self, after: int = 0) -> Iterator[tuple[int, bytes]]:
        """Yield ``(seq, payload)`` for every record numbered above ``after``, in order.

        Records are checked again as they are read. It is an error to ask for records the
        log no longer has (trimmed: ``after`` < `first_seq` - 1) or never had (``after`` >
        `last_seq`: the log is behind whoever asks, so a checkpoint and its log do not
        belong together).
        """
        if after < 0:
            raise ValueError(f"after must be a sequence number (0 or more), not {after}")
        with self._lock:
            if self._closed:
                raise WalError("the write-ahead log is closed", path=str(self.directory))
            segments, size, last = list(self._segments), self._size, self.last_seq
        if after < segments[0] - 1:
            raise WalError(
                f"records after seq {after} were asked for, but the log starts at seq "
                f"{segments[0]}: seq {after + 1} to {segments[0] - 1} have been trimmed",
                path=str(self.directory),
                hint="replay from a checkpoint at least as new as the last trim",
            )
        if after > last:
            raise WalError(
                f"records after seq {after} were asked for, but the log ends at seq {last}",
                path=str(self.directory),
                hint="this log is older than the checkpoint replaying it: they do not belong "
                "together (rotate, which syncs, before writing a checkpoint)",
            )
        return self._replay(segments, size, last, after)

    def _replay(
        self, segments: list[int], size: int, last: int, after: int
    ) -> Iterator[tuple[int, bytes]]:
        ends = [*segments[1:], last + 1]
        for i, (first, stop) in enumerate(zip(segments, ends, strict=True)):
            if stop - 1 <= after:
                continue
            path = self._path(first)
            try:
                with path.open("rb") as f:
                    data = f.read(size if i == len(segments) - 1 else -1)
            except FileNotFoundError:
                raise WalError(
                    "the segment was deleted while the log was being replayed",
                    path=str(path),
                    hint="do not trim a log while replaying it",
                ) from None
            seq, in_group = first, False
            try:
                for rec in _walk(data, first):
                    seq, in_group = rec.seq + 1, bool(rec.flags & GROUP_CONTINUES)
                    if rec.seq > after:
                        yield rec.seq, data[rec.start : rec.end]
            except _Damage as exc:
                raise _damage_error(
                    path, exc.offset, exc.reason, seq, later=None, newest=False
                ) from None
            if seq != stop or in_group:
                raise WalError(
                    f"damaged write-ahead log: the segment ends at seq {seq - 1}, but the "
                    f"log continues at seq {stop}",
                    path=str(path),
                    offset=len(data),
                    hint="the file changed after the log was opened; restore it from a backup",
                )

    # --- closing -------------------------------------------------------------------------

    def close(self) -> None:
        """Fsync (under every policy), stop the flusher, close the files and unlock."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._wake.notify_all()
            try:
                if self._broken is None:
                    self._sync_locked()
            finally:
                os.close(self._fd)
                os.close(self._dir_fd)  # releases the flock
        if self._flusher is not None:
            self._flusher.join()

    def __enter__(self) -> WriteAheadLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"seq {self.first_seq}..{self.last_seq}"
        return f"WriteAheadLog({str(self.directory)!r}, sync={self.sync_policy!r}, {state})"
