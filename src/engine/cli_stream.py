"""``pqlite stream``: replaying an event file through a streaming session.

``pqlite stream STORE SEGMENTS EVENTS`` starts a `engine.stream.StreamSession` (a batch run
of every segment at ``--at``), feeds it the events of EVENTS (Parquet, JSON lines, or ``-``
for JSON lines on stdin) ``--batch`` rows at a time, and writes every membership change as a
JSON line. Replay follows event time: each chunk is ingested, which holds the events later
than the clock, then the clock advances to the chunk's latest event, which applies each held
event at its own timestamp and fires the time-based changes in between, in order. So, for
input in time order, the changes do not depend on ``--batch``. ``--until`` lets the clock run
on at the end.

Bad input stops the command with exit code 2 and one message naming the line (JSON lines,
1-based) or row (Parquet, 0-based, as ``pqlite import`` counts) and the column; the chunk
that holds it changes nothing. A summary goes to stderr (a table on a terminal, plain text
otherwise, one JSON object with ``--json``). See docs/cli.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

__all__ = ["add_commands"]

_UNITS = ("s", "ms", "us", "ns")
_JSONL = (".jsonl", ".ndjson")


def add_commands(sub: Any) -> None:
    stream = sub.add_parser(
        "stream",
        help="replay events through a streaming session and print the membership changes",
        description="Start a streaming session over a store at --at, replay the events of "
        "EVENTS in event-time order, and write every membership change (a profile entering "
        "or leaving a segment, and when) as a JSON line (see docs/cli.md).",
    )
    stream.add_argument("store", type=Path, help="profile store directory")
    stream.add_argument("file", type=Path, help="segments file (.toml or .pql)")
    stream.add_argument("events", help="events: a .parquet or .jsonl/.ndjson file, or - for "
                                       "JSON lines on stdin")
    stream.add_argument("--at", metavar="TIME", help="where the clock starts, ISO 8601 (default: the earliest "
                                     "event of the first chunk)")
    stream.add_argument("--until", metavar="TIME", help="at the end, advance the clock to this instant, "
                                        "ISO 8601 (time-based changes up to it are written)")
    stream.add_argument("--batch", type=int, default=1000, metavar="N",
                        help="events per ingest (default 1000); with --follow, at most N of "
                             "the lines already arrived")
    stream.add_argument("--out", type=Path, metavar="FILE",
                        help="write the changes to FILE instead of stdout (replaced atomically "
                             "at the end; appended to and flushed per batch with --follow)")
    stream.add_argument("--follow", action="store_true",
                        help="EVENTS is -: ingest the lines as they arrive, writing the changes "
                             "at once, until end of input")
    stream.add_argument("--time-unit", choices=_UNITS,
                        help="read numbers in timestamp fields as epoch time in this unit")
    stream.add_argument("--assume-tz", default="UTC", metavar="ZONE",
                        help="time zone of timestamps written without an offset (default: UTC)")
    stream.add_argument("--format", choices=("parquet", "jsonl"),
                        help="the format of EVENTS (default: from its name)")
    stream.add_argument("--log", type=Path, metavar="DIR",
                        help="append every ingested batch to the write-ahead log in DIR")
    stream.add_argument("--sync", choices=("batch", "always", "none"),
                        help="the log's fsync policy (default: batch; see docs/store.md)")
    stream.add_argument("--threads", type=int, metavar="N", help="threads for the starting batch run")
    stream.add_argument("--json", action="store_true", help="the summary on stderr as JSON")
    stream.set_defaults(run=_stream)


# ---------------------------------------------------------------- the command


def _stream(args: argparse.Namespace) -> int:
    from engine.cli import OK, UsageError
    from engine.cli_run import _engine

    at_ms = _instant(args.at, "--at") if args.at is not None else None
    until_ms = _instant(args.until, "--until") if args.until is not None else None
    if at_ms is not None and until_ms is not None and until_ms < at_ms:
        raise UsageError(f"--until {args.until} is before --at {args.at}")
    if args.batch < 1:
        raise UsageError(f"--batch {args.batch}: give a positive number of events")
    if args.sync is not None and args.log is None:
        raise UsageError("--sync is the write-ahead log's policy: give --log DIR as well")
    if args.log is not None and args.log.exists() and not args.log.is_dir():
        raise UsageError(f"--log {args.log}: not a directory; give the write-ahead log's "
                         "directory (created if missing)")
    stdin = args.events == "-"
    if args.follow and not stdin:
        raise UsageError(f"--follow reads stdin: give - as EVENTS, e.g. "
                         f"tail -f {args.events} | pqlite stream STORE SEGMENTS - --follow")
    source = _Source.of(args)
    eng, _, code = _engine(args)
    if code:
        return code
    replay = _Replay(args, eng, _Output(args.out, append=args.follow))
    try:
        if at_ms is not None:
            replay.start(at_ms)
        interrupted = False
        try:
            replay.run(source, until_ms)
        except KeyboardInterrupt:
            if not args.follow:
                raise
            interrupted = True  # the natural end of following: keep what was written
        if until_ms is not None and not interrupted:
            replay.finish(until_ms)
        replay.output.commit()
    except BrokenPipeError:
        # The reader went away (`| head`): not an error of ours; say nothing more on stdout.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        replay.output.discard()
        return OK
    except BaseException as e:
        replay.output.discard()
        if isinstance(e, OSError):  # a file that cannot be read or written: no traceback
            where = f"{e.filename}: " if e.filename else ""
            raise UsageError(f"{where}{e.strerror or e}") from None
        raise
    finally:
        replay.close()
    replay.summary(args.json)
    return 130 if interrupted else OK


def _instant(text: str, option: str) -> int:
    from engine.cli import UsageError
    from engine.session import to_epoch_ms

    try:
        return to_epoch_ms(text)
    except (TypeError, ValueError) as e:
        raise UsageError(f"{option} {text!r}: {e}") from None


def _iso(ms: int) -> str:
    from store.times import iso_ms

    return iso_ms(ms)


@dataclass
class _Chunk:
    """Events read from the input (or attribute upserts: ``profiles``), and where each row
    came from."""

    table: Any  # pa.Table with the input's columns
    lines: list[int] | None = None  # JSON lines: the line of each row (1-based)
    offset: int = 0  # Parquet: the file row of the chunk's first row
    profiles: bool = False  # the rows are ``{"$profile": {...}}`` lines: attribute upserts


class _Replay:
    """The session, the clock and the counts."""

    def __init__(self, args: argparse.Namespace, eng: Any, output: _Output) -> None:
        from store.schema import Kind

        self.args, self.eng, self.output = args, eng, output
        self.schema = eng.store.schema
        self.session: Any = None
        self.started_at: int | None = None
        self.events = 0
        self.counts: dict[str, dict[str, int]] = {
            n: {"realized": 0, "exited": 0} for n in eng.names
        }
        self.startup_s = 0.0
        self.began = time.perf_counter()
        self.units = {n: args.time_unit for n, f in self.schema.events.items()
                      if args.time_unit and f.dtype.kind is Kind.TIMESTAMP}
        self.err = Console(stderr=True, highlight=False)

    def start(self, at_ms: int) -> None:
        from engine.cli_data import _stage

        began = time.perf_counter()
        options: dict[str, Any] = {}
        if self.args.log is not None:
            options = {"log": self.args.log, "sync": self.args.sync or "batch"}
        with _stage(f"starting: every segment at {_iso(at_ms)}"):
            self.session = self.eng.stream(at_ms, **options)
        self.started_at = at_ms
        self.startup_s = time.perf_counter() - began
        self.began = time.perf_counter()

    def run(self, source: _Source, until_ms: int | None) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        from store.errors import DataError

        console = Console(stderr=True)
        quiet = not console.is_terminal or (self.output.path is None and sys.stdout.isatty())
        with Progress(
            SpinnerColumn(), TextColumn("replaying: {task.completed:,} events"),
            TimeElapsedColumn(), console=console, transient=True, disable=quiet,
        ) as progress:
            task = progress.add_task("replay", total=None)
            for chunk in source.chunks(self.args.batch, self.schema):
                if chunk.profiles:
                    self._upsert(chunk, source.name)
                    continue
                events = self._normalize(chunk, source.name)
                if not events.num_rows:
                    continue
                times = pc.cast(events.column(self.schema.event_time), pa.int64())
                low, high = (int(v.as_py()) for v in pc.min_max(times).values())
                if until_ms is not None and high > until_ms:
                    row = int(pc.index(pc.greater(times, until_ms), True).as_py())
                    late = DataError(f"this event, at {_iso(int(times[row].as_py()))}, is "
                                     f"after --until {self.args.until}",
                                     column=self.schema.event_time,
                                     hint="give a later --until, or leave it out")
                    raise self._located(chunk, source.name, row, late)
                if self.session is None:
                    self.start(low)
                changes = self.session.ingest(events)
                if high > self.session.clock:
                    changes += self.session.advance(high)
                self.events += events.num_rows
                self._write(changes)
                progress.update(task, completed=self.events)

    def finish(self, until_ms: int) -> None:
        from engine.cli import UsageError

        if self.session is None:
            raise UsageError("no events to start the clock from: give --at as well as --until")
        self._write(self.session.advance(until_ms))

    def close(self) -> None:
        if self.session is not None:
            self.session.close()

    def _write(self, changes: list[Any]) -> None:
        for c in changes:
            self.counts[c.segment][c.status] += 1
        self.output.write(json.dumps(c.to_dict()) + "\n" for c in changes)

    def _upsert(self, chunk: _Chunk, name: str) -> None:
        """Attribute upserts, applied at the clock: after the events read before them."""
        from engine.cli import UsageError
        from store.delta import normalize_batch
        from store.errors import DataError

        if self.session is None:
            assert chunk.lines is not None
            raise UsageError(f"{name}, line {chunk.lines[0]}: a profile line before any event "
                             "starts the clock: give --at")
        try:
            batch = normalize_batch(self.schema, None, chunk.table, time_units={},
                                    assume_tz=self.args.assume_tz)
        except DataError as e:
            raise self._located(chunk, name, e.row, e) from None
        self._write(self.session.ingest(None, profiles=batch.profiles))

    def _normalize(self, chunk: _Chunk, name: str) -> Any:
        from store.delta import normalize_batch
        from store.errors import DataError

        try:
            batch = normalize_batch(self.schema, chunk.table, None, time_units=self.units,
                                    assume_tz=self.args.assume_tz)
        except DataError as e:
            raise self._located(chunk, name, e.row, e) from None
        return batch.events

    def _located(self, chunk: _Chunk, name: str, row: int | None, e: Any) -> Any:
        """``e`` (a DataError about ``row`` of the chunk), saying where that is in the input."""
        from store.errors import DataError

        hint = e.hint
        if "no epoch unit" in e.message:
            hint = ("say which unit the numbers count since 1970-01-01 UTC with --time-unit "
                    "(s, ms, us or ns), or write ISO 8601 text such as 2025-01-01T12:00:00Z")
        if chunk.lines is not None:
            if row is not None:
                where = f"{name}, line {chunk.lines[row]}"
            elif chunk.lines:
                where = f"{name}, lines {chunk.lines[0]}-{chunk.lines[-1]}"
            else:
                where = name
        else:
            where = name if row is None else f"{name}, row {chunk.offset + row}"
        return DataError(e.message, column=e.column, source=where, hint=hint)

    def summary(self, as_json: bool) -> None:
        elapsed = time.perf_counter() - self.began
        rate = self.events / elapsed if elapsed > 0 else 0.0
        total = sum(sum(c.values()) for c in self.counts.values())
        clock = None if self.session is None else self.session.clock
        data = {
            "events": self.events,
            "changes": total,
            "segments": self.counts,
            "from": None if self.started_at is None else _iso(self.started_at),
            "to": None if clock is None else _iso(clock),
            "startup_s": round(self.startup_s, 3),
            "elapsed_s": round(elapsed, 3),
            "events_per_s": round(rate, 1),
        }
        if self.output.path is not None:
            data["out"] = str(self.output.path)
        if as_json:
            print(json.dumps(data), file=sys.stderr)
            return
        span = "" if clock is None else f", clock {data['from']} → {data['to']}"
        headline = (f"{self.events:,} events, {total:,} changes in {elapsed:.2f} s "
                    f"({rate:,.0f} events/s; start-up {self.startup_s:.2f} s){span}")
        if not self.err.is_terminal:
            lines = [headline] + [
                f"{name}: {c['realized']:,} realized, {c['exited']:,} exited"
                for name, c in self.counts.items()
            ]
            if self.output.path is not None:
                lines.append(f"wrote {self.output.path}")
            sys.stderr.write("\n".join(lines) + "\n")
            return
        self.err.print(headline, markup=False)
        table = Table()
        for column in ("segment", "realized", "exited"):
            table.add_column(column, justify="left" if column == "segment" else "right")
        for name, c in self.counts.items():
            table.add_row(name, f"{c['realized']:,}", f"{c['exited']:,}")
        self.err.print(table)
        if self.output.path is not None:
            self.err.print(f"wrote {self.output.path}", markup=False)


# ---------------------------------------------------------------- output


class _Output:
    """Change lines to stdout, or to a file: a temporary file renamed over it at the end, or,
    when following, the file itself, appended to."""

    def __init__(self, path: Path | None, *, append: bool) -> None:
        self.path = path
        self._tmp: str | None = None
        self._file: IO[str]
        if path is None:
            self._file = sys.stdout
        elif append:
            self._file = _open(path, "a")
        else:
            directory = path.parent if str(path.parent) else Path(".")
            if not directory.is_dir():
                from engine.cli import UsageError

                raise UsageError(f"--out {path}: no such directory {directory}")
            fd, self._tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                             dir=directory)
            self._file = os.fdopen(fd, "w", encoding="utf-8")

    def write(self, lines: Iterable[str]) -> None:
        self._file.writelines(lines)
        self._file.flush()

    def commit(self) -> None:
        if self.path is None:
            self._file.flush()
            return
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        if self._tmp is not None:
            if self.path.exists():
                os.chmod(self._tmp, self.path.stat().st_mode & 0o7777)
            else:  # as a new file opened for writing would be, not mkstemp's 0600
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(self._tmp, 0o666 & ~umask)
            os.replace(self._tmp, self.path)
            self._tmp = None
            directory = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)

    def discard(self) -> None:
        """After an error: remove the temporary file (an appended file keeps its lines)."""
        if self.path is None:
            return
        with contextlib.suppress(OSError):
            self._file.close()
        if self._tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._tmp)
            self._tmp = None


def _open(path: Path, mode: str) -> IO[str]:
    from engine.cli import UsageError

    try:
        return path.open(mode, encoding="utf-8")
    except OSError as e:
        raise UsageError(f"--out {path}: cannot open it: {e.strerror}") from None


# ---------------------------------------------------------------- input


@dataclass
class _Source:
    """Where the events come from: a Parquet file, a JSON lines file, or stdin."""

    name: str
    kind: str  # "parquet" or "jsonl"
    path: Path | None  # None: stdin
    follow: bool
    time_unit: str | None

    @classmethod
    def of(cls, args: argparse.Namespace) -> _Source:
        from engine.cli import UsageError

        if args.events == "-":
            if args.format == "parquet":
                raise UsageError("stdin is read as JSON lines: give a Parquet file by its name")
            return cls("stdin", "jsonl", None, args.follow, args.time_unit)
        path = Path(args.events)
        if not path.exists():
            raise UsageError(f"{path}: no such file")
        if path.is_dir():
            raise UsageError(f"{path} is a directory: give one events file")
        kind = args.format
        if kind is None:
            name = path.name.lower()
            if name.endswith(".parquet"):
                kind = "parquet"
            elif name.endswith(_JSONL):
                kind = "jsonl"
            else:
                raise UsageError(f"{path}: unknown file type; name it .parquet, .jsonl or "
                                 ".ndjson, or give --format")
        return cls(str(path), kind, path, False, args.time_unit)

    def chunks(self, size: int, schema: Any) -> Iterator[_Chunk]:
        if self.kind == "parquet":
            assert self.path is not None
            yield from _parquet_chunks(self.path, size)
            return
        reader = _JsonLines(schema, self.name, self.time_unit)
        if self.path is None:
            stream = getattr(sys.stdin, "buffer", sys.stdin)
            groups = _arriving(stream, size) if self.follow else _groups(stream, size)
            for group in groups:
                yield from reader.chunks(group)
            return
        with self.path.open("rb") as f:
            for group in _groups(f, size):
                yield from reader.chunks(group)


def _parquet_chunks(path: Path, size: int) -> Iterator[_Chunk]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from engine.cli import UsageError

    try:
        f = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise UsageError(f"{path}: not a readable Parquet file: {e}") from None
    offset = 0
    for batch in f.iter_batches(batch_size=size):
        yield _Chunk(pa.Table.from_batches([batch]), offset=offset)
        offset += batch.num_rows


_Line = tuple[int, bytes | str]  # (line number, 1-based; the line's text)
UPSERT = "$profile"  # the key of a JSON line that upserts attributes


def _groups(stream: IO[Any], size: int) -> Iterator[list[_Line]]:
    """The non-blank lines of ``stream``, ``size`` at a time."""
    yield from _chunks(enumerate(stream, 1), size)


def _chunks(lines: Iterable[_Line], size: int) -> Iterator[list[_Line]]:
    """The non-blank ones of numbered ``lines``, at most ``size`` to a list."""
    group: list[_Line] = []
    for number, line in lines:
        if line.strip():
            group.append((number, line))
            if len(group) == size:
                yield group
                group = []
    if group:
        yield group


def _arriving(stream: IO[Any], size: int) -> Iterator[list[_Line]]:
    """The non-blank lines of ``stream`` as they arrive: waits for a line, then takes the
    lines already there too, at most ``size``. Reads the file descriptor itself (select and
    os.read), so a line is handled as soon as it is written, not when a buffer fills."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # e.g. io.StringIO in tests: line by line
        for number, line in enumerate(stream, 1):
            if line.strip():
                yield [(number, line)]
        return
    pending = b""
    number = 0
    eof = False
    while not eof:
        data = os.read(fd, 1 << 16)  # blocks until something arrives
        eof = not data
        pending += data
        while not eof and pending.count(b"\n") < size and _readable(fd):
            data = os.read(fd, 1 << 16)
            eof = not data
            pending += data
        *complete, pending = pending.split(b"\n")
        if eof and pending:
            complete, pending = [*complete, pending], b""
        yield from _chunks(enumerate(complete, number + 1), size)
        number += len(complete)


def _readable(fd: int) -> bool:
    try:
        return bool(select.select([fd], [], [], 0)[0])
    except (OSError, ValueError):  # no select on this kind of file (Windows pipes)
        return False


class _JsonLines:
    """JSON lines checked against the store's event fields, one line at a time, so that an
    error names its line; then built into an Arrow table of the fields' types. A line
    ``{"$profile": {...}}`` is an attribute upsert instead (the profile key and attributes,
    checked against the store's profile fields): it applies at the clock, after the lines
    before it."""

    def __init__(self, schema: Any, name: str, time_unit: str | None) -> None:
        self.schema = schema
        self.name = name
        self.unit = time_unit
        self.example = _example(schema)

    def chunks(self, lines: list[_Line]) -> Iterator[_Chunk]:
        """The lines as chunks of events and of upserts, in their order."""
        rows: list[tuple[int, dict[str, Any], bool]] = []
        for number, text in lines:
            value = self._object(number, text)
            upsert = UPSERT in value
            rows.append((number, self._row(number, value, upsert), upsert))
        start = 0
        for end in range(1, len(rows) + 1):
            if end == len(rows) or rows[end][2] != rows[start][2]:
                part = rows[start:end]
                numbers = [n for n, _, _ in part]
                upsert = part[0][2]
                fields = self.schema.profile if upsert else self.schema.events
                yield _Chunk(self._table([r for _, r, _ in part], numbers, fields),
                             lines=numbers, profiles=upsert)
                start = end

    def _error(self, number: int, message: str, *, column: str | None = None,
               hint: str | None = None, at: int | None = None) -> Exception:
        from store.errors import DataError

        where = f"{self.name}, line {number}" + ("" if at is None else f", column {at}")
        return DataError(message, column=column, source=where, hint=hint)

    def _object(self, number: int, text: bytes | str) -> dict[str, Any]:
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as e:
                raise self._error(number, f"not UTF-8 text (byte {e.start + 1} of the line)",
                                  hint="write JSON lines in UTF-8") from None
        text = text.lstrip("\ufeff")
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            raise self._error(number, f"not valid JSON: {e.msg}", at=e.colno,
                              hint=f"write one JSON object per line, e.g. {self.example}"
                              ) from None
        if not isinstance(value, dict):
            raise self._error(number, f"expected a JSON object, got {_describe(value)}",
                              hint=f"write one JSON object per line, e.g. {self.example}")
        if UPSERT in value and (len(value) != 1 or not isinstance(value[UPSERT], dict)):
            raise self._error(number, f"a {UPSERT} line holds one object: the profile key "
                              "and the attributes to set", column=UPSERT,
                              hint=f'e.g. {{"{UPSERT}": {{"{self.schema.profile_key}": 42, '
                              '...}}')
        return value

    def _row(self, number: int, value: dict[str, Any], upsert: bool) -> dict[str, Any]:
        s = self.schema
        if upsert:
            fields, what, value = s.profile, "profile", value[UPSERT]
            required = [s.profile_key]
        else:
            fields, what = s.events, "event"
            required = [n for n in (s.event_profile_key, s.event_time, s.event_type)
                        if n is not None]
        row: dict[str, Any] = {}
        for key, v in _flatten(value, fields):
            if key not in fields:
                article = "an" if what == "event" else "a"
                raise self._error(number, f"{key!r} is not {article} {what} field of this store",
                                  column=key,
                                  hint=f"the {what} fields are {', '.join(fields)}")
            problem = _type_problem(v, fields[key].dtype, self.unit,
                                    nullable=key not in required)
            if problem is not None:
                raise self._error(number, problem[0], column=key, hint=problem[1])
            row[key] = v
        for key in required:
            if row.get(key) is None:
                absent = "this field is missing" if key not in row else "this field is null"
                raise self._error(number, absent, column=key,
                                  hint=f"every {what} line needs {', '.join(required)}"
                                  + ("" if upsert else f", e.g. {self.example}"))
        return row

    def _table(self, rows: list[dict[str, Any]], numbers: list[int],
               fields: dict[str, Any]) -> Any:
        import pyarrow as pa

        from store.errors import DataError

        seen = {k for row in rows for k in row}
        columns = {}
        for name, f in fields.items():
            if name not in seen:
                continue
            values = [row.get(name) for row in rows]
            try:
                columns[name] = pa.array(values, _arrow_type(f.dtype, values, self.unit))
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as e:
                raise DataError(str(e), column=name,
                                source=f"{self.name}, lines {numbers[0]}-{numbers[-1]}") from None
        return pa.table(columns)


def _flatten(obj: dict[str, Any], fields: dict[str, Any],
             prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted name, value): nested objects are struct fields, as the store flattens them."""
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and name not in fields:
            yield from _flatten(value, fields, name + ".")
        else:
            yield name, value


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    text = json.dumps(value)
    text = text if len(text) <= 40 else text[:37] + "..."
    return f"the number {text}" if isinstance(value, int | float) else f"the string {text}"


def _type_problem(value: Any, dtype: Any, unit: str | None, *,
                  nullable: bool = True) -> tuple[str, str] | None:
    """(what is wrong, how to fix it) if ``value`` cannot be a ``dtype`` value."""
    if value is None:
        return None
    if dtype.is_list:
        if not isinstance(value, list):
            return (f"expected a list of {dtype.kind} values, got {_describe(value)}",
                    "write a JSON list, e.g. [\"a\", \"b\"], or null")
        for item in value:
            problem = _type_problem(item, dtype.element, unit)
            if problem is not None:
                return f"in the list: {problem[0]}", problem[1]
        return None
    from store.schema import Kind

    kind = dtype.kind
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind is Kind.BOOL and isinstance(value, bool):
        return None
    if kind is Kind.INT and number and isinstance(value, int):
        if -(2**63) <= value < 2**63:
            return None
        return f"{value} does not fit a 64-bit integer", "use a smaller number"
    if kind is Kind.FLOAT and number:
        return None
    if kind in (Kind.STRING, Kind.DATE) and isinstance(value, str):
        return None
    if kind is Kind.TIMESTAMP:
        if unit is None and isinstance(value, str):
            return None
        if unit is not None and number:
            return None
        if number:
            return (f"{_describe(value)} is not a timestamp: no --time-unit was given",
                    "write ISO 8601 text such as \"2025-01-01T12:00:00Z\", or give --time-unit "
                    "(s, ms, us or ns) to read numbers as epoch time")
        if isinstance(value, str):
            return (f"{_describe(value)} is text, but --time-unit {unit} says timestamps are "
                    "epoch numbers",
                    f"write the time as a number of {unit} since 1970-01-01 UTC, or drop "
                    "--time-unit to read ISO 8601 text")
        return (f"expected a timestamp, got {_describe(value)}",
                "write ISO 8601 text such as \"2025-01-01T12:00:00Z\"")
    expected = {Kind.BOOL: "true or false", Kind.INT: "an integer", Kind.FLOAT: "a number",
                Kind.STRING: "a string", Kind.DATE: "a date as text, e.g. \"2025-01-31\""}[kind]
    return (f"expected {expected} (the field is {dtype}), got {_describe(value)}",
            f"write {expected}" + (" or null" if nullable else ""))


def _arrow_type(dtype: Any, values: list[Any], unit: str | None) -> Any:
    import pyarrow as pa

    from store.schema import Kind

    if dtype.is_list:
        flat = [v for items in values if items for v in items]
        return pa.list_(_arrow_type(dtype.element, flat, unit))
    kind = dtype.kind
    if kind is Kind.TIMESTAMP:
        if unit is None:
            return pa.string()
        whole = all(isinstance(v, int) for v in values if v is not None)
        return pa.int64() if whole else pa.float64()
    return {Kind.BOOL: pa.bool_(), Kind.INT: pa.int64(), Kind.FLOAT: pa.float64(),
            Kind.STRING: pa.string(), Kind.DATE: pa.string()}[kind]


def _example(schema: Any) -> str:
    from store.schema import Kind

    example: dict[str, Any] = {}
    key = schema.event_profile_key
    if key is not None:
        example[key] = 42 if schema.events[key].dtype.kind is Kind.INT else "p42"
    if schema.event_time is not None:
        example[schema.event_time] = "2025-01-01T12:00:00Z"
    if schema.event_type is not None:
        example[schema.event_type] = "purchase"
    return json.dumps(example)
