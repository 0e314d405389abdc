"""``pqlite run`` and ``pqlite explain``: evaluating a segments file over a store.

``run`` writes, into the output directory, one portable roaring bitmap per segment
(``SEGMENT.roaring``, the members' profile indices), ``memberships.parquet`` (profile key,
segment, status: realized, existing or exited relative to the bitmaps already in the
directory from the previous run) and ``run.json`` (instant, counts, timings). Every file is
written under a temporary name and renamed.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.syntax import Syntax
from rich.table import Table

__all__ = ["add_commands"]


def add_commands(sub: Any) -> None:
    run = sub.add_parser(
        "run",
        help="evaluate a segments file over a profile store",
        description="Evaluate every segment of a segments file at an instant over a store "
        "and write the memberships (see docs/engine.md).",
    )
    run.add_argument("store", type=Path, help="profile store directory")
    run.add_argument("file", type=Path, help="segments file (.toml or .pql)")
    run.add_argument("--at", required=True,
                     help="the evaluation instant, ISO 8601 (e.g. 2025-01-01T00:00:00Z)")
    run.add_argument("--out", type=Path, help="write memberships into this directory")
    run.add_argument("--threads", type=int, help="threads (default: all cores, at most 8)")
    run.add_argument("--tier", choices=("auto", "kernel", "vector"), default="auto",
                     help="auto (default): compile at most a couple of missing kernels, else "
                          "answer with the vector tier and compile in the background; kernel: "
                          "always compile first; vector: no compiling where avoidable "
                          "(docs/engine.md)")
    run.add_argument("--merge-policy", default="default", metavar="NAME",
                     help="evaluate the segments under this merge policy (their "
                          "merge_policy key; none: 'default'), over a store of people "
                          "stitched under it (pqlite stitch writes one per policy)")
    run.set_defaults(run=_run)

    explain = sub.add_parser(
        "explain",
        help="show how a segment is evaluated: IR, plan and kernel source",
        description="Print a segment's checked, optimized definition, what it reads, and "
        "the generated kernel source.",
    )
    explain.add_argument("store", type=Path, help="profile store directory")
    explain.add_argument("file", type=Path, help="segments file (.toml or .pql)")
    explain.add_argument("name", help="the segment to explain")
    explain.set_defaults(run=_explain)


def _engine(args: argparse.Namespace, store: Any = None) -> tuple[Any, Any, int]:
    """(engine with every definition of ``args.file``, the segments file, exit code if
    definitions failed), over ``store`` (default: the one at ``args.store``)."""
    from engine.cli import FAILED, OK, UsageError, _located
    from engine.codegen import CompileError
    from engine.errors import SegmentError
    from engine.segments import SegmentFile
    from engine.session import Engine
    from store import ProfileStore

    segments = SegmentFile.load(args.file)
    st = ProfileStore.open(args.store) if store is None else store
    eng = Engine(st, threads=getattr(args, "threads", None), tier=getattr(args, "tier", "auto"))
    err = Console(stderr=True, highlight=False)
    code = OK
    wanted = getattr(args, "merge_policy", "default")
    mine = [d for d in segments.definitions.values() if (d.merge_policy or "default") == wanted]
    if not mine:
        named = sorted({d.merge_policy or "default" for d in segments.definitions.values()})
        raise UsageError(f"{args.file}: no segment under merge policy {wanted!r}; its "
                         f"segments are under {', '.join(named)} (--merge-policy NAME)")
    for d in mine:
        try:
            eng.define(d.name, d.pql)
        except SegmentError as e:
            err.print(_located(args.file, d, e), markup=False, soft_wrap=True)
            code = FAILED
        except CompileError as e:
            err.print(f"{args.file}: segment {d.name}: cannot compile: {e}", markup=False)
            code = FAILED
    if not eng.names and code == OK:
        raise UsageError(f"{args.file}: no segments defined")
    return eng, segments, code


def _run(args: argparse.Namespace) -> int:
    from engine.cli import UsageError
    from engine.session import to_epoch_ms

    try:
        at_ms = to_epoch_ms(args.at)
    except (TypeError, ValueError) as e:
        raise UsageError(f"--at {args.at!r}: {e}") from None
    eng, _, code = _engine(args)
    if code:
        return code
    started = time.perf_counter()
    previous = _previous(args.out) if args.out else {}
    with Progress(TextColumn("evaluating"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task("segments", total=len(eng.names))
        result = eng.run(at_ms, progress=lambda done, _: bar.update(task, completed=done))
    elapsed = time.perf_counter() - started
    console = Console(highlight=False)
    table = Table(title=f"{len(eng.names)} segments over {len(eng.store):,} profiles at "
              f"{args.at}", title_justify="left")
    for column in ("segment", "members", "realized", "exited", "ms", "tier"):
        table.add_column(column, justify="left" if column in ("segment", "tier") else "right")
    for name in eng.names:
        before = previous.get(name)
        realized = len(result[name] - before) if before is not None else len(result[name])
        exited = len(before - result[name]) if before is not None else 0
        table.add_row(name, f"{result.count(name):,}", f"{realized:,}", f"{exited:,}",
                      f"{result.timings_ms.get(name, 0):.1f}", result.tiers.get(name, ""))
    console.print(table)
    console.print(f"evaluated in {elapsed:.2f} s (kernel: compiled, one pass per group of "
                  "segments, ms shared; vector: while kernels compile)")
    if eng.compiling:
        console.print("compiling kernels in the background for the next runs")
    if args.out:
        _write(args.out, eng, result, previous, at_ms)
        console.print(f"wrote {args.out}/memberships.parquet and one .roaring file per segment")
    return 0


def _previous(out: Path) -> dict[str, Any]:
    from pyroaring import BitMap

    found = {}
    if out.is_dir():
        for path in out.glob("*.roaring"):
            found[path.stem] = BitMap.deserialize(path.read_bytes())
    return found


def _write(out: Path, eng: Any, result: Any, previous: dict[str, Any], at_ms: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyroaring import BitMap

    from store.files import write_atomic

    out.mkdir(parents=True, exist_ok=True)
    keys, segments, statuses = [], [], []
    for name in eng.names:
        now = result[name]
        before = previous.get(name, BitMap())
        for status, members in (("realized", now - before), ("existing", now & before),
                                ("exited", before - now)):
            ids = np.fromiter(members, np.int64, len(members))
            keys.append(eng.store.keys.take(pa.array(ids)))
            segments.append(pa.array([name] * len(ids), pa.string()))
            statuses.append(pa.array([status] * len(ids), pa.string()))
        write_atomic(out / f"{name}.roaring", now.serialize())
    table = pa.table({
        "profile_key": pa.concat_arrays(keys) if keys else pa.array([], eng.store.keys.type),
        "segment": pa.concat_arrays(segments) if segments else pa.array([], pa.string()),
        "status": pa.concat_arrays(statuses) if statuses else pa.array([], pa.string()),
    })
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    write_atomic(out / "memberships.parquet", sink.getvalue().to_pybytes())
    summary = {"at_ms": at_ms, "counts": {n: result.count(n) for n in eng.names},
               "timings_ms": result.timings_ms, "tiers": result.tiers}
    write_atomic(out / "run.json", json.dumps(summary, indent=1))


def _explain(args: argparse.Namespace) -> int:
    from engine.cli import UsageError

    eng, _, code = _engine(args)
    if args.name not in eng.names:
        if code:
            return code
        raise UsageError(f"no segment {args.name!r} in {args.file}; it has {', '.join(eng.names)}")
    console = Console(highlight=False)
    for part in explanation(eng, args.name):
        console.print(part)
    return 0


def explanation(eng: Any, name: str) -> list[Any]:
    """What ``pqlite explain`` shows of segment ``name`` (also the REPL's ``:explain``):
    its checked and optimized definition, the arrays and parameters its kernel reads, and
    the kernel's source, as rich renderables."""
    from rich.text import Text

    from engine.unparse import unparse

    ks = eng.source([name])
    reads = [f"  {a.name}: {a.kind} {a.ref}" for a in ks.args if a.kind not in ("param",)]
    return [
        Text.assemble((name, "bold"), " (checked and optimized):"),
        Text(unparse(eng.expr(name), pretty=True)),
        Text.assemble("\n", ("reads", "bold"), ":"),
        Text("\n".join(reads)),
        Text.assemble("\n", ("kernel", "bold"), ":"),
        Syntax(ks.source, "python", theme="ansi_dark", word_wrap=True),
    ]
