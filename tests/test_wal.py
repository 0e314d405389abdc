"""The write-ahead log: round trips, numbering, trimming, torn tails, damage, and SIGKILL.

A torn tail (what a crash in the middle of a write leaves at the end of the newest segment)
must be cut off and reported; damage anywhere else must raise `WalError` naming the file and
byte. The crash test kills a child process that appends in a loop at random moments and
checks that every record it acknowledged is replayed exactly once, intact and in order.
"""

from __future__ import annotations

import errno
import inspect
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from store import StoreError
from store import wal as wal_module
from store.errors import WalError
from store.wal import HEADER_SIZE, MAGIC, WriteAheadLog


def payload(seq: int) -> bytes:
    """What record ``seq`` holds in the tests that check payloads by number (0 to ~10 KB)."""
    return (b"%d." % seq) * (seq * 7919 % 1500)


def small(seq: int) -> bytes:
    """A short record, for tests that damage every byte of a log one at a time."""
    return b"record %d" % seq


def record_offsets(path: Path) -> list[int]:
    """Where each record of a clean segment starts (read with the documented header)."""
    data, offsets, off = path.read_bytes(), [], 0
    while off < len(data):
        assert data[off : off + 4] == MAGIC
        offsets.append(off)
        off += HEADER_SIZE + int.from_bytes(data[off + 8 : off + 12], "little")
    return offsets


def filled(
    directory: Path, count: int, *, make: Callable[[int], bytes] = payload, **options: int
) -> None:
    with WriteAheadLog(directory, sync="none", **options) as log:
        for seq in range(1, count + 1):
            assert log.append(make(seq)) == seq


def replayed(directory: Path, after: int = 0) -> list[tuple[int, bytes]]:
    with WriteAheadLog(directory, sync="none") as log:
        assert log.recovered_tail is None
        return list(log.replay(after))


def expected(
    first: int, last: int, make: Callable[[int], bytes] = payload
) -> list[tuple[int, bytes]]:
    return [(seq, make(seq)) for seq in range(first, last + 1)]


# --- round trips and numbering ------------------------------------------------------------


@settings(max_examples=60)
@given(
    groups=st.lists(st.lists(st.binary(max_size=300), min_size=1, max_size=6), max_size=25),
    segment_bytes=st.integers(min_value=1, max_value=3000),
    reopen_every=st.integers(min_value=1, max_value=10),
    after=st.integers(min_value=0, max_value=200),
)
def test_random_payloads_round_trip(
    groups: list[list[bytes]], segment_bytes: int, reopen_every: int, after: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "log"
        written: list[bytes] = []
        log = WriteAheadLog(directory, sync="none", segment_bytes=segment_bytes)
        try:
            for i, group in enumerate(groups):
                if i % reopen_every == reopen_every - 1:
                    log.close()
                    log = WriteAheadLog(directory, sync="none", segment_bytes=segment_bytes)
                    assert log.recovered_tail is None
                first = len(written) + 1
                if len(group) == 1:
                    assert log.append(group[0]) == first
                else:
                    assert log.append_many(group) == list(range(first, first + len(group)))
                written += group
            assert log.last_seq == len(written)
            assert list(log.replay()) == list(enumerate(written, 1))
        finally:
            log.close()
        after = min(after, len(written))
        assert replayed(directory, after) == list(enumerate(written, 1))[after:]


def test_empty_and_large_payloads(tmp_path: Path) -> None:
    records = [b"", os.urandom(5 << 20), b"", bytearray(b"\0" * 1000), memoryview(b"view")]
    with WriteAheadLog(tmp_path, segment_bytes=1 << 20) as log:
        assert [log.append(r) for r in records] == [1, 2, 3, 4, 5]
        assert log.durable_seq == 5
    assert replayed(tmp_path) == [(i, bytes(r)) for i, r in enumerate(records, 1)]


def test_a_payload_must_be_bytes(tmp_path: Path) -> None:
    with WriteAheadLog(tmp_path) as log:
        with pytest.raises(TypeError, match="bytes, not str"):
            log.append("text")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            log.append_many([b"ok", 5])  # type: ignore[list-item]
        assert log.last_seq == 0  # nothing of a rejected group is written
        assert log.append_many([]) == []


def test_numbering_continues_across_reopening_and_rotation(tmp_path: Path) -> None:
    for round_ in range(4):
        with WriteAheadLog(tmp_path, sync="none", segment_bytes=4000) as log:
            assert log.last_seq == round_ * 30
            for seq in range(round_ * 30 + 1, round_ * 30 + 31):
                assert log.append(payload(seq)) == seq
            if round_ == 1:
                log.rotate()
                log.rotate()  # an empty segment is not rotated again
    with WriteAheadLog(tmp_path) as log:
        names = [p.name for p in log.segments]
        assert len(names) > 5
        assert all(p.parent == tmp_path for p in log.segments)
    # Each segment is named by its first record's number, and the numbers run on.
    firsts = [int(name.removesuffix(".wal")) for name in names]
    assert names == [f"{first:020d}.wal" for first in firsts]
    assert firsts[0] == 1 and firsts == sorted(firsts)
    assert replayed(tmp_path) == expected(1, 120)
    assert replayed(tmp_path, after=77) == expected(78, 120)
    assert replayed(tmp_path, after=120) == []


def test_a_full_segment_is_closed_but_a_record_is_never_split(tmp_path: Path) -> None:
    with WriteAheadLog(tmp_path, segment_bytes=100) as log:
        log.append(b"x" * 500)  # larger than a segment: it gets one of its own
        log.append(b"y")
        log.append_many([b"z" * 60, b"z" * 60])  # a group stays in one segment
        sizes = [p.stat().st_size for p in log.segments]
    assert sizes == [HEADER_SIZE + 500, HEADER_SIZE + 1, 2 * (HEADER_SIZE + 60)]


def test_group_commit_is_one_write_and_one_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    write, datasync = os.write, wal_module._datasync

    def counting_write(fd: int, data: bytes) -> int:
        calls.append("write")
        return write(fd, data)

    def counting_sync(fd: int) -> None:
        calls.append("fsync")
        datasync(fd)

    with WriteAheadLog(tmp_path) as log:
        monkeypatch.setattr(wal_module.os, "write", counting_write)
        monkeypatch.setattr(wal_module, "_datasync", counting_sync)
        assert log.append_many([payload(s) for s in range(1, 101)]) == list(range(1, 101))
        assert calls == ["write", "fsync"]
        assert log.durable_seq == 100
        calls.clear()
        log.append(b"one")
        assert calls == ["write", "fsync"]
    assert replayed(tmp_path) == [*expected(1, 100), (101, b"one")]


# --- fsync policies -----------------------------------------------------------------------


def test_sync_always_is_durable_on_return(tmp_path: Path) -> None:
    with WriteAheadLog(tmp_path, sync="always") as log:
        for seq in range(1, 6):
            log.append(b"r")
            assert log.durable_seq == seq


def test_sync_none_waits_for_sync_rotate_or_close(tmp_path: Path) -> None:
    with WriteAheadLog(tmp_path, sync="none") as log:
        log.append_many([b"a", b"b"])
        assert (log.last_seq, log.durable_seq) == (2, 0)
        assert log.sync() == 2
        log.append(b"c")
        assert log.durable_seq == 2
        log.rotate()
        assert log.durable_seq == 3
        log.append(b"d")
    with WriteAheadLog(tmp_path, sync="none") as log:
        assert log.durable_seq == log.last_seq == 4  # close synced, and so does opening


def test_sync_batch_by_bytes(tmp_path: Path) -> None:
    with WriteAheadLog(
        tmp_path, sync="batch", sync_bytes=3 * (HEADER_SIZE + 10), sync_interval=None
    ) as log:
        log.append(b"0" * 10)
        log.append(b"0" * 10)
        assert log.durable_seq == 0
        log.append(b"0" * 10)  # reaches sync_bytes: this append waits for the fsync
        assert log.durable_seq == 3
        log.append(b"0" * 10)
        assert log.durable_seq == 3


def test_sync_batch_by_time(tmp_path: Path) -> None:
    interval = 0.05
    with WriteAheadLog(tmp_path, sync="batch", sync_interval=interval, sync_bytes=None) as log:
        for round_ in range(2):
            start = time.monotonic()
            log.append(b"a")
            log.append(b"b")
            while log.durable_seq < log.last_seq and time.monotonic() < start + 10:
                time.sleep(0.002)
            # The background thread fsyncs once sync_interval has passed since the first
            # unsynced write, not before.
            assert log.durable_seq == 2 * (round_ + 1)
            assert time.monotonic() - start >= interval
    assert not [t for t in threading.enumerate() if t.name == f"wal-sync {tmp_path}"]


def test_bad_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sync must be"):
        WriteAheadLog(tmp_path, sync="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sync_interval"):
        WriteAheadLog(tmp_path, sync="batch", sync_interval=0)
    with pytest.raises(ValueError, match="sync_bytes"):
        WriteAheadLog(tmp_path, sync="batch", sync_bytes=0)
    with pytest.raises(ValueError, match="segment_bytes"):
        WriteAheadLog(tmp_path, segment_bytes=0)


# --- trim ---------------------------------------------------------------------------------


def test_trim_deletes_only_segments_a_checkpoint_covers(tmp_path: Path) -> None:
    with WriteAheadLog(tmp_path, sync="none", segment_bytes=1) as log:  # one record a segment
        for seq in range(1, 11):
            log.append(payload(seq))
        assert log.trim(0) == 0
        assert log.trim(3) == 3
        assert log.first_seq == 4
        assert [int(p.stem) for p in log.segments] == list(range(4, 11))
        assert list(log.replay(3)) == expected(4, 10)
        with pytest.raises(WalError, match=r"seq 2 to 3 have been trimmed"):
            log.replay(1)
        with pytest.raises(WalError, match="log ends at seq 10"):
            log.replay(11)
        with pytest.raises(ValueError, match="log ends at seq 10"):
            log.trim(11)
        # The newest segment stays: its name carries the numbering. Rotate to drop it too.
        assert log.trim(10) == 6
        assert [int(p.stem) for p in log.segments] == [10]
        log.rotate()
        assert log.trim(10) == 1
        assert [int(p.stem) for p in log.segments] == [11]
        assert (log.first_seq, log.last_seq) == (11, 10)
        assert list(log.replay(10)) == []
    with WriteAheadLog(tmp_path) as log:
        assert log.last_seq == 10
        assert log.append(b"next") == 11
        assert list(log.replay(10)) == [(11, b"next")]


def test_checkpoint_path_rotate_then_trim(tmp_path: Path) -> None:
    with WriteAheadLog(tmp_path, sync="none", segment_bytes=10_000) as log:
        for seq in range(1, 41):
            log.append(payload(seq))
        checkpoint = log.last_seq
        log.rotate()
        assert log.durable_seq == checkpoint  # rotate syncs what the checkpoint covers
        log.trim(checkpoint)
        assert len(log.segments) == 1
        for seq in range(41, 46):
            log.append(payload(seq))
    assert replayed(tmp_path, after=checkpoint) == expected(41, 45)


def test_a_crash_during_trim_leaves_a_log_that_opens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    filled(tmp_path, 10, segment_bytes=1)
    unlink, deleted = Path.unlink, []

    def crash_on_third(self: Path, missing_ok: bool = False) -> None:
        if len(deleted) == 2:
            raise KeyboardInterrupt  # stands in for the process dying here
        deleted.append(self.name)
        unlink(self, missing_ok=missing_ok)

    with WriteAheadLog(tmp_path) as log:
        monkeypatch.setattr(Path, "unlink", crash_on_third)
        with pytest.raises(KeyboardInterrupt):
            log.trim(8)
        monkeypatch.undo()
    assert deleted == [f"{1:020d}.wal", f"{2:020d}.wal"]  # oldest first
    assert replayed(tmp_path, after=2) == expected(3, 10)
    assert replayed(tmp_path, after=8) == expected(9, 10)


# --- torn tails ---------------------------------------------------------------------------


def test_torn_tail_at_every_byte_of_the_last_record(tmp_path: Path) -> None:
    template = tmp_path / "template"
    filled(template, 6, make=small, segment_bytes=70)  # segments of records 1-2, 3-4, 5-6
    newest = sorted(template.iterdir())[-1]
    assert newest.name == f"{5:020d}.wal"
    start = record_offsets(newest)[-1]
    end = newest.stat().st_size
    assert start > 0 and end - start == HEADER_SIZE + len(small(6))
    for cut in range(start, end):
        directory = tmp_path / f"cut-{cut}"
        shutil.copytree(template, directory)
        os.truncate(directory / newest.name, cut)
        with WriteAheadLog(directory, sync="none") as log:
            tail = log.recovered_tail
            if cut == start:
                assert tail is None  # the write never began: nothing to report
            else:
                assert tail is not None
                assert (tail.path, tail.offset, tail.discarded) == (
                    directory / newest.name,
                    start,
                    cut - start,
                )
                assert (tail.seq, tail.records) == (6, 0)
                assert ("fewer than a record header" in tail.reason) == (cut - start < HEADER_SIZE)
                assert str(tail).startswith(
                    f"{directory / newest.name}: discarded {cut - start} bytes"
                )
            assert (directory / newest.name).stat().st_size == start
            assert list(log.replay()) == expected(1, 5, small)
            assert log.append(small(6)) == 6
            assert log.append(small(7)) == 7
        assert replayed(directory) == expected(1, 7, small)


@pytest.mark.parametrize("damage", ["flip", "zeros", "zero-extended"])
def test_a_bad_final_record_is_a_torn_tail(tmp_path: Path, damage: str) -> None:
    filled(tmp_path, 3)
    (segment,) = tmp_path.iterdir()
    start = record_offsets(segment)[-1]
    data = bytearray(segment.read_bytes())
    if damage == "flip":
        data[-1] ^= 0x01
    elif damage == "zeros":  # the file grew but the blocks never reached the disk
        data[start:] = bytes(len(data) - start)
    else:
        data += bytes(4096)
        start = len(data) - 4096
    segment.write_bytes(bytes(data))
    with WriteAheadLog(tmp_path) as log:
        tail = log.recovered_tail
        assert (
            tail is not None
            and tail.offset == start
            and tail.seq == (4 if damage == "zero-extended" else 3)
        )
        assert ("checksum mismatch" in tail.reason) == (damage == "flip")
        assert log.append(b"new") == tail.seq
    assert replayed(tmp_path)[-1] == (tail.seq, b"new")


def test_an_unfinished_group_is_discarded_whole(tmp_path: Path) -> None:
    template = tmp_path / "template"
    with WriteAheadLog(template) as log:
        log.append(payload(1))
        log.append_many([payload(2), payload(3), payload(4)])
    (segment,) = template.iterdir()
    offsets = record_offsets(segment)
    # Cut at a record boundary inside the group, and in the middle of its last record.
    for cut, intact in [(offsets[2], 1), (offsets[3], 2), (offsets[3] + 30, 2)]:
        directory = tmp_path / f"cut-{cut}"
        shutil.copytree(template, directory)
        os.truncate(directory / segment.name, cut)
        with WriteAheadLog(directory) as log:
            tail = log.recovered_tail
            assert tail is not None
            assert (tail.offset, tail.discarded, tail.records, tail.seq) == (
                offsets[1],
                cut - offsets[1],
                intact,
                2,
            )
            assert "append_many group" in tail.reason
            assert list(log.replay()) == expected(1, 1)
            assert log.append(b"after") == 2


# --- damage -------------------------------------------------------------------------------


def test_a_flipped_byte_before_the_last_record_raises(tmp_path: Path) -> None:
    template = tmp_path / "template"
    filled(template, 4, make=small)
    (segment,) = template.iterdir()
    offsets = record_offsets(segment)
    data = segment.read_bytes()
    for pos in range(offsets[-1]):
        record = max(o for o in offsets if o <= pos)
        damaged = bytearray(data)
        damaged[pos] ^= 0xFF
        directory = tmp_path / f"flip-{pos}"
        directory.mkdir()
        (directory / segment.name).write_bytes(bytes(damaged))
        with pytest.raises(WalError) as caught:
            WriteAheadLog(directory)
        err = caught.value
        assert (err.path, err.offset) == (str(directory / segment.name), record), pos
        assert f"{directory / segment.name}, byte {record}: damaged write-ahead log" in str(err)
        assert "an intact record follows" in str(err)
        assert err.hint is not None and f"truncate -s {record}" in err.hint
        # Nothing was changed: the file is as it was found, for whoever repairs it.
        assert (directory / segment.name).read_bytes() == damaged


def test_damage_in_an_older_segment_raises(tmp_path: Path) -> None:
    filled(tmp_path, 6, segment_bytes=1)
    older = sorted(tmp_path.iterdir())[2]
    size = older.stat().st_size
    os.truncate(older, size - 1)  # a torn end is only acceptable in the newest segment
    with pytest.raises(
        WalError, match="only the newest segment can end in an unfinished write"
    ) as caught:
        WriteAheadLog(tmp_path)
    assert (caught.value.path, caught.value.offset) == (str(older), 0)
    assert "every later segment" in str(caught.value)


def test_a_missing_segment_is_a_sequence_gap(tmp_path: Path) -> None:
    filled(tmp_path, 6, segment_bytes=1)
    segments = sorted(tmp_path.iterdir())
    segments[3].unlink()
    with pytest.raises(
        WalError,
        match=r"do not continue: this segment starts at seq 5, but the one before it ends at seq 3",
    ):
        WriteAheadLog(tmp_path)


@pytest.mark.parametrize("which", ["newest", "older"])
def test_a_garbage_segment_raises(tmp_path: Path, which: str) -> None:
    filled(tmp_path, 3, segment_bytes=1)
    segments = sorted(tmp_path.iterdir())
    target = segments[-1] if which == "newest" else segments[0]
    target.write_bytes(random.Random(1).randbytes(200))
    with pytest.raises(WalError) as caught:
        WriteAheadLog(tmp_path)
    assert (caught.value.path, caught.value.offset) == (str(target), 0)
    assert "no record starts here" in str(caught.value)


def test_a_valid_record_with_the_wrong_number_raises(tmp_path: Path) -> None:
    filled(tmp_path, 3)
    (segment,) = tmp_path.iterdir()
    size = segment.stat().st_size
    with segment.open("ab") as f:  # intact checksum, but seq 7 where 4 belongs
        f.write(wal_module._encode(7, b"stray", wal_module._payload_crc(b"stray"), 0))
    with pytest.raises(WalError, match="sequence number 7 where 4 was expected") as caught:
        WriteAheadLog(tmp_path)
    assert caught.value.offset == size


def test_replay_checks_records_again(tmp_path: Path) -> None:
    filled(tmp_path, 5, segment_bytes=1)
    with WriteAheadLog(tmp_path) as log:
        second = log.segments[1]
        second.write_bytes(b"\0" + second.read_bytes()[1:])  # damaged after opening
        records = log.replay()
        assert next(records) == (1, payload(1))
        with pytest.raises(WalError) as caught:
            next(records)
        assert (caught.value.path, caught.value.offset) == (str(second), 0)


def test_wal_error_is_a_store_error() -> None:
    assert issubclass(WalError, StoreError)


# --- failures, locking, threads -----------------------------------------------------------


def test_a_failed_write_leaves_no_partial_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write = os.write

    def half_then_disk_full(fd: int, data: bytes) -> int:
        if len(data) > 40:
            write(fd, bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return write(fd, data)

    with WriteAheadLog(tmp_path) as log:
        log.append(b"first")
        monkeypatch.setattr(wal_module.os, "write", half_then_disk_full)
        with pytest.raises(OSError, match="No space"):
            log.append(b"x" * 100)
        monkeypatch.undo()
        assert log.last_seq == 1
        assert log.append(b"second") == 2
    assert replayed(tmp_path) == [(1, b"first"), (2, b"second")]


def test_a_failed_fsync_stops_the_log_until_reopened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    with WriteAheadLog(tmp_path) as log:
        log.append(b"first")
        monkeypatch.setattr(wal_module, "_datasync", failing)
        with pytest.raises(OSError, match="Input/output"):
            log.append(b"unacknowledged")
        monkeypatch.undo()
        with pytest.raises(WalError, match="fsync failed") as caught:
            log.append(b"refused")
        assert caught.value.hint is not None and "open it again" in caught.value.hint
    with WriteAheadLog(tmp_path) as log:
        assert log.last_seq == 2  # the record reached the file; it was just never acknowledged
        assert log.append(b"third") == 3


def test_one_writer_at_a_time(tmp_path: Path) -> None:
    with WriteAheadLog(tmp_path), pytest.raises(WalError, match="already open"):
        WriteAheadLog(tmp_path)
    with WriteAheadLog(tmp_path):  # the lock went with close
        pass


def test_a_closed_log_refuses_calls(tmp_path: Path) -> None:
    log = WriteAheadLog(tmp_path)
    log.close()
    log.close()
    for call in (lambda: log.append(b"x"), log.sync, log.rotate, lambda: log.trim(0), log.replay):
        with pytest.raises(WalError, match="closed"):
            call()
    assert "closed" in repr(log)


def test_appends_from_several_threads_are_serialized(tmp_path: Path) -> None:
    got: list[list[int]] = [[] for _ in range(4)]

    def worker(i: int) -> None:
        for n in range(150):
            if n % 3:
                got[i].append(log.append(b"%d:%d" % (i, n)))
            else:
                got[i] += log.append_many([b"%d:%d" % (i, n), b"%d:%d+" % (i, n)])

    with WriteAheadLog(tmp_path, sync="batch", sync_interval=0.001, segment_bytes=2000) as log:
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        records = dict(log.replay())
    seqs = sorted(s for g in got for s in g)
    assert seqs == list(range(1, len(seqs) + 1)) == sorted(records)
    for i, mine in enumerate(got):
        assert mine == sorted(mine)  # each thread's records are in its own order
        assert all(records[s].startswith(b"%d:" % i) for s in mine)


# --- SIGKILL ------------------------------------------------------------------------------

CHILD = (
    textwrap.dedent(inspect.getsource(payload))
    + """
import random, sys
from store.wal import WriteAheadLog

directory, groups, seed = sys.argv[1], sys.argv[2] == "groups", int(sys.argv[3])
rng = random.Random(seed)
log = WriteAheadLog(directory, sync="always", segment_bytes=48 * 1024)
print("open", log.last_seq, flush=True)
while True:
    first = log.last_seq + 1
    count = rng.randint(1, 6) if groups else 1
    seqs = log.append_many([payload(s) for s in range(first, first + count)])
    assert seqs == list(range(first, first + count)), seqs
    print(*seqs, flush=True)  # acknowledged: append_many has returned
"""
)


@pytest.mark.slow
def test_sigkill_at_random_points_loses_and_repeats_nothing(tmp_path: Path) -> None:
    rng = random.Random(20250101)
    directory = tmp_path / "log"
    acknowledged: set[int] = set()
    for round_ in range(8):
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                CHILD,
                str(directory),
                "groups" if round_ % 2 else "single",
                str(round_),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        try:
            opening = child.stdout.readline().split()
            assert opening[:1] == ["open"], child.stderr.read() if child.stderr else ""
            # No acknowledged record is lost, and the numbering goes on from the last one.
            assert int(opening[1]) >= max(acknowledged, default=0)
            target = rng.randint(1, 400)
            seen = 0
            while seen < target:
                line = child.stdout.readline()
                assert line.endswith("\n"), child.stderr.read() if child.stderr else ""
                acknowledged.update(int(s) for s in line.split())
                seen += 1
            time.sleep(rng.random() * 0.01)
        finally:
            child.send_signal(signal.SIGKILL)
            rest, _ = child.communicate()
        assert child.returncode == -signal.SIGKILL
        for line in rest.splitlines(keepends=True):
            if line.endswith("\n"):  # a line cut short was not fully printed: ignore it
                acknowledged.update(int(s) for s in line.split())
        with WriteAheadLog(directory) as log:  # what a restart sees
            records = list(log.replay())
            seqs = [seq for seq, _ in records]
            assert seqs == list(range(1, len(seqs) + 1))  # contiguous, each once
            assert acknowledged <= set(seqs)
            assert all(data == payload(seq) for seq, data in records)  # intact, none torn
    assert len(acknowledged) > 8


def test_docs_example_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The write-ahead log example in docs/store.md, with its output as printed there."""
    docs = (Path(__file__).resolve().parents[1] / "docs" / "store.md").read_text()
    monkeypatch.chdir(tmp_path)
    with WriteAheadLog("ingest-wal", sync="batch") as log:
        assert (log.append(b"batch 1"), log.append_many([b"batch 2", b"batch 3"])) == (1, [2, 3])
        assert (log.last_seq, log.durable_seq, log.sync()) == (3, 0, 3)
    segment = "ingest-wal/00000000000000000001.wal"
    os.truncate(segment, 90)
    with WriteAheadLog("ingest-wal") as log:
        assert f"\n{log.recovered_tail}\n" in docs
        assert list(log.replay(after=0)) == [(1, b"batch 1")]
        assert log.append_many([b"batch 2", b"batch 3"]) == [2, 3]
    with open(segment, "r+b") as f:
        f.seek(40)
        f.write(b"?")
    with pytest.raises(WalError) as caught:
        WriteAheadLog("ingest-wal")
    assert f"\nstore.errors.WalError: {caught.value}\n" in docs
