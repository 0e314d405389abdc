"""``pqlite export`` and ``pqlite activate``: memberships sent to destinations.

``export STORE SEGMENTS ACTIVATION --at TIME`` evaluates the segments at TIME and writes the
files of every file destination of the activation file that is due (`engine.exports`);
``activate STORE SEGMENTS ACTIVATION [EVENTS]`` replays events through a streaming session
and delivers the membership changes to its streaming destinations (`engine.delivery`),
resuming the activation kept in the state directory if there is one.

Both check the governance policies first: a refused activation prints the lineage and exits
3 with nothing sent. ``activate`` exits 4 when records are still undelivered at the end (they
stay in the outbox; the next run sends them). See docs/activation.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["add_commands"]

REFUSED, UNDELIVERED = 3, 4


def add_commands(sub: Any) -> None:
    export = sub.add_parser(
        "export",
        help="write segment memberships to file destinations (Parquet, CSV)",
        description="Evaluate the segments at --at and export the members of the segments "
        "mapped to each file destination of ACTIVATION that is due: full or incremental "
        "files, consent and governance applied, a manifest per export (docs/activation.md).",
    )
    export.add_argument("store", type=Path, help="profile store directory")
    export.add_argument("file", type=Path, help="segments file (.toml or .pql)")
    export.add_argument("activation", type=Path, help="activation file: destinations and governance (TOML)")
    export.add_argument("--at", required=True, metavar="TIME",
                        help="the evaluation instant, ISO 8601 (e.g. 2025-01-01T00:00:00Z)")
    export.add_argument("--destination", "-d", action="append", metavar="NAME",
                        help="export to this destination only (repeatable; default: every "
                             "file destination)")
    export.add_argument("--force", action="store_true",
                        help="export even when the destination's cadence says it is not due")
    export.add_argument("--state", type=Path, metavar="DIR",
                        help="state directory (default: the activation file's state, else "
                             ".pqlite-activation beside it)")
    export.add_argument("--threads", type=int, metavar="N", help="threads (default: all cores, at most 8)")
    export.add_argument("--json", action="store_true", help="print the reports as JSON")
    export.set_defaults(run=_export, tier="auto")

    act = sub.add_parser(
        "activate",
        help="deliver membership changes of a stream of events to streaming destinations",
        description="Replay EVENTS through a streaming session and deliver every membership "
        "change of the mapped segments to each streaming destination of ACTIVATION (JSON "
        "lines, webhook), at least once, with consent and governance applied. The activation "
        "is kept in the state directory: a later run resumes it and re-sends what was not "
        "delivered (docs/activation.md).",
    )
    act.add_argument("store", type=Path, help="profile store directory")
    act.add_argument("file", type=Path, help="segments file (.toml or .pql)")
    act.add_argument("activation", type=Path, help="activation file: destinations and governance (TOML)")
    act.add_argument("events", nargs="?",
                     help="events: .parquet, .jsonl/.ndjson, or - for JSON lines on stdin "
                          "(none: resume and deliver what is pending)")
    act.add_argument("--destination", "-d", action="append", metavar="NAME",
                     help="deliver to this destination only (repeatable)")
    act.add_argument("--state", type=Path, metavar="DIR",
                     help="state directory (default: the activation file's state, else "
                          ".pqlite-activation beside it)")
    act.add_argument("--at", metavar="TIME",
                     help="where a new activation's clock starts (default: the first event)")
    act.add_argument("--until", metavar="TIME", help="at the end, advance the clock to TIME")
    act.add_argument("--batch", type=int, default=1000, metavar="N", help="events per ingest (default 1000)")
    act.add_argument("--drain", type=float, default=30.0, metavar="SECONDS",
                     help="at the end, wait this long for deliveries (default 30)")
    act.add_argument("--time-unit", choices=("s", "ms", "us", "ns"),
                     help="read numbers in timestamp fields as epoch time in this unit")
    act.add_argument("--assume-tz", default="UTC", metavar="ZONE",
                     help="time zone of timestamps without an offset (default: UTC)")
    act.add_argument("--format", choices=("parquet", "jsonl"), help="the format of EVENTS")
    act.add_argument("--sync", choices=("batch", "always", "none"), default="batch",
                     help="fsync policy of the session log and the outboxes (default: batch)")
    act.add_argument("--threads", type=int, metavar="N", help="threads for the starting batch run")
    act.add_argument("--json", action="store_true", help="the summary as JSON")
    act.set_defaults(run=_activate, tier="auto")


def _config(args: argparse.Namespace, batch: bool) -> tuple[Any, list[Any]]:
    from engine.cli import UsageError
    from engine.destinations import ActivationConfig, ConfigError

    try:
        config = ActivationConfig.load(args.activation)
        chosen = config.select(args.destination, batch=batch)
    except ConfigError as e:
        raise UsageError(str(e)) from None
    if not chosen:
        kinds = "file (parquet, csv)" if batch else "streaming (jsonl, webhook)"
        raise UsageError(f"{args.activation}: no {kinds} destinations")
    return config, chosen


def _validate(config: Any, chosen: list[Any], eng: Any) -> None:
    from engine.cli import UsageError
    from engine.destinations import ConfigError

    try:
        config.validate(eng.store.schema, eng.names, chosen)
    except ConfigError as e:
        raise UsageError(str(e)) from None


def _refused(e: Exception) -> int:
    err = Console(stderr=True, highlight=False)
    err.print("[red]refused:[/red] ", end="", markup=True)
    err.print(str(e), markup=False, soft_wrap=True)
    return REFUSED


# ---------------------------------------------------------------- export


def _export(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from engine.cli import UsageError
    from engine.cli_run import _engine
    from engine.cli_stream import _instant
    from engine.destinations import ConfigError
    from engine.exports import Exporter, ExportError
    from engine.governance import PolicyViolation

    at_ms = _instant(args.at, "--at")
    config, chosen = _config(args, batch=True)
    eng, _, code = _engine(args)
    if code:
        return code
    _validate(config, chosen, eng)
    exporter = Exporter(eng, config.state_dir(args.state) / "exports",
                        governance=config.governance,
                        threads=args.threads)
    try:
        exporter.check(chosen)
    except PolicyViolation as e:
        return _refused(e)
    started = time.perf_counter()
    err = Console(stderr=True)
    with Progress(TextColumn("evaluating"), BarColumn(), MofNCompleteColumn(), transient=True,
                  console=err, disable=not err.is_terminal) as bar:
        task = bar.add_task("segments", total=len(eng.names))
        result = eng.run(at_ms, progress=lambda done, _: bar.update(task, completed=done))
    run_s = time.perf_counter() - started
    reports = []
    for d in chosen:
        try:
            reports.append(exporter.export(d, result, force=args.force, checked=True))
        except (ExportError, ConfigError) as e:
            raise UsageError(str(e)) from None
        except OSError as e:
            where = f"{e.filename}: " if e.filename else ""
            raise UsageError(f"destination {d.name!r}: {where}{e.strerror or e}") from None
    if args.json:
        print(json.dumps({"at": args.at, "evaluate_s": round(run_s, 3),
                          "exports": [r.to_dict() for r in reports]}, indent=1))
        return 0
    _print_exports(reports, chosen, len(eng.store), args.at, run_s)
    return 0


def _print_exports(reports: list[Any], chosen: list[Any], profiles: int, at: str,
                   run_s: float) -> None:

    console = Console(highlight=False)
    console.print(f"{len(reports)} destination(s) at {at}; segments evaluated over "
                  f"{profiles:,} profiles in {run_s:.2f} s", soft_wrap=True)
    by_name = {d.name: d for d in chosen}
    for r in reports:
        d = by_name[r.destination]
        where = d.path
        if r.status == "not due":
            due = "" if r.next_due_ms is None else f", next due at {_iso(r.next_due_ms)}"
            console.print(f"{r.destination}: not due ({d.cadence}{due}); --force exports now",
                          markup=False, soft_wrap=True)
            continue
        if r.status == "already exported":
            console.print(f"{r.destination}: already exported at this instant "
                          f"({where}/{r.manifest}); nothing written", markup=False,
                          soft_wrap=True)
            continue
        table = Table(title=f"{r.destination}: {d.mode} {d.kind} files, {d.marketing_action}",
                      title_justify="left")
        for column in ("segment", "members", "consented", "realized", "existing", "exited",
                       "rows"):
            table.add_column(column, justify="left" if column == "segment" else "right")
        for segment, c in r.segments.items():
            table.add_row(segment, f"{c.members:,}", f"{c.consented:,}", f"{c.realized:,}",
                          f"{c.existing:,}", f"{c.exited:,}", f"{c.rows:,}")
        console.print(table)
        backfill = [s for s, c in r.segments.items() if c.backfill]
        if backfill:
            console.print(f"first incremental file of {', '.join(backfill)}: every member "
                          "(a full backfill)", markup=False, soft_wrap=True)
        files = f"{len(r.files)} file(s), {r.rows:,} rows, {r.bytes:,} bytes"
        what = {"written": f"wrote {files}",
                "rewritten": f"re-ran the last export: wrote its {files} again",
                "unchanged": f"re-ran the last export: its {len(r.files)} file(s) are there "
                             "and identical, nothing written"}[r.status]
        console.print(f"{what}; manifest {where}/{r.manifest} ({r.seconds:.2f} s)",
                      markup=False, soft_wrap=True)


# ---------------------------------------------------------------- activate


def _activate(args: argparse.Namespace) -> int:
    from engine.cli import UsageError
    from engine.cli_run import _engine
    from engine.cli_stream import _instant, _Output, _Replay, _Source
    from engine.delivery import Activation, DeliveryError
    from engine.governance import PolicyViolation

    at_ms = _instant(args.at, "--at") if args.at is not None else None
    until_ms = _instant(args.until, "--until") if args.until is not None else None
    if args.batch < 1:
        raise UsageError(f"--batch {args.batch}: give a positive number of events")
    config, chosen = _config(args, batch=False)
    state = config.state_dir(args.state) / "activation"
    args.follow, args.out, args.log = False, None, None
    source = _Source.of(args) if args.events is not None else None
    eng, _, code = _engine(args)
    if code:
        return code
    _validate(config, chosen, eng)
    try:
        config.governance.check(chosen, {n: eng.analysis(n) for n in eng.names})
    except PolicyViolation as e:
        return _refused(e)
    resuming = (state / "activation.json").exists()
    if not resuming and at_ms is None and source is None:
        raise UsageError(f"{state}: no activation to resume; give EVENTS or --at to start one")

    class Delivering(_Replay):
        """`pqlite stream`'s replay, feeding an `Activation` instead of printing changes."""

        activation: Any = None
        final_clock: int | None = None

        def start(self, at: int | None) -> None:
            from engine.cli_data import _stage

            began = time.perf_counter()
            label = (f"resuming the activation in {state}" if resuming
                     else f"starting: every segment at {_iso(at)}")
            with _stage(label):
                try:
                    self.activation = Activation(eng, chosen, state, at=at,
                                                 governance=config.governance, sync=args.sync)
                except (DeliveryError, ValueError) as e:
                    raise UsageError(str(e)) from None
            self.session = self.activation
            self.started_at = self.activation.clock
            self.startup_s = time.perf_counter() - began
            self.began = time.perf_counter()
            self.chunks = 0

        def _write(self, changes: list[Any]) -> None:
            for c in changes:
                self.counts[c.segment][c.status] += 1
            self.chunks = getattr(self, "chunks", 0) + 1
            if self.chunks % 50 == 0:  # keep the log short and the outboxes durable
                self.activation.checkpoint()

    replay = Delivering(args, eng, _Output(None, append=False))
    interrupted = False
    try:
        if resuming or at_ms is not None:
            replay.start(at_ms)
        try:
            if source is not None:
                replay.run(source, until_ms)
            if until_ms is not None:
                replay.finish(until_ms)
        except KeyboardInterrupt:
            interrupted = True
        if replay.activation is not None:
            replay.activation.checkpoint()
            delivered = replay.activation.flush(args.drain)
        else:
            delivered = True
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        raise UsageError(f"{where}{e.strerror or e}") from None
    finally:
        if replay.activation is not None:
            replay.final_clock = replay.activation.clock
            replay.activation.close(timeout=0)
    _summary(replay, state, args.json, delivered)
    if interrupted:
        return 130
    return 0 if delivered else UNDELIVERED


def _iso(ms: int | None) -> str:
    from store.times import iso_ms

    return "?" if ms is None else iso_ms(ms)


def _summary(replay: Any, state: Path, as_json: bool, delivered: bool) -> None:
    act = replay.activation
    stats = {} if act is None else act.stats()
    elapsed = time.perf_counter() - replay.began
    data = {
        "state": str(state),
        "resumed": bool(act is not None and act.resumed),
        "events": replay.events,
        "changes": {n: c for n, c in replay.counts.items() if any(c.values())},
        "from": None if replay.started_at is None else _iso(replay.started_at),
        "to": None if act is None else _iso(replay.final_clock),
        "elapsed_s": round(elapsed, 3),
        "backfilled": {} if act is None else act.backfilled,
        "destinations": {n: vars(s) for n, s in stats.items()},
        "all_delivered": delivered,
    }
    if as_json:
        print(json.dumps(data, indent=1))
        return
    console = Console(highlight=False)
    what = "resumed" if data["resumed"] else "started"
    realized = sum(c["realized"] for c in replay.counts.values())
    exited = sum(c["exited"] for c in replay.counts.values())
    span = "" if data["from"] is None else f", clock {data['from']} → {data['to']}"
    console.print(f"activation {what} in {state}: {replay.events:,} events{span}; "
                  f"{realized + exited:,} membership changes ({realized:,} realized, "
                  f"{exited:,} exited) in {elapsed:.2f} s", markup=False, soft_wrap=True)
    table = Table(title="deliveries", title_justify="left")
    for column in ("destination", "records", "backfill", "delivered", "retries",
                   "rejected", "no consent", "pending"):
        table.add_column(column, justify="left" if column == "destination" else "right")
    for name, s in stats.items():
        table.add_row(name, f"{s.enqueued:,}", f"{data['backfilled'].get(name, 0):,}",
                      f"{s.delivered:,}", f"{s.retries:,}", f"{s.dead_lettered:,}",
                      f"{s.skipped_no_consent:,}", f"{s.pending:,}")
    console.print(table)
    for name, s in stats.items():
        if s.last_error and s.pending:
            console.print(f"{name}: last error: {s.last_error}", markup=False)
        if s.dead_lettered:
            console.print(f"{name}: {s.dead_lettered:,} record(s) rejected: see "
                          f"{state}/destinations/{name}/dead-letter.jsonl", markup=False)
    if not delivered:
        pending = sum(s.pending for s in stats.values())
        print(f"{pending:,} record(s) not delivered yet: kept in {state}; run pqlite activate "
              "again (without EVENTS) to send them", file=sys.stderr)
