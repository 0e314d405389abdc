"""``pqlite import`` and ``pqlite generate``: building profile stores from files.

Both print what they built (profiles, events, partitions, bytes, seconds) and show progress
while they work. Input problems are `store.DataError`s, reported by ``pqlite`` as one
message with the file, row and column (exit 2).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

__all__ = ["add_commands"]


def add_commands(sub: Any) -> None:
    imp = sub.add_parser(
        "import",
        help="build a profile store from Parquet or CSV files",
        description="Load profiles and/or events (Parquet or CSV files, or directories of "
        "them), check them, and save a profile store directory (see docs/store.md).",
    )
    imp.add_argument("store", type=Path, help="store directory to create or replace")
    imp.add_argument("--profiles", type=Path, nargs="+", help="profile file(s) or directory")
    imp.add_argument("--events", type=Path, nargs="+", help="event file(s) or directory")
    imp.add_argument("--profile-id", required=True, help="the profiles' key column")
    imp.add_argument("--event-profile-id", help="the events' key column (default: --profile-id)")
    imp.add_argument("--event-time", help="the events' time column (default: timestamp)")
    imp.add_argument("--event-type", help="the events' type column (default: eventType)")
    imp.add_argument(
        "--time-unit",
        action="append",
        default=[],
        metavar="COLUMN=UNIT",
        help="read COLUMN's numbers as epoch time in UNIT (s, ms, us, ns); repeatable",
    )
    imp.add_argument(
        "--assume-tz",
        default="UTC",
        help="time zone of timestamps written without an offset (default: UTC)",
    )
    imp.add_argument("--format", choices=["parquet", "csv", "arrow"],
                     help="input format (default: from each file's name)")
    imp.set_defaults(run=_import)

    gen = sub.add_parser(
        "generate",
        help="generate the B10 reference workload (Parquet and a store)",
        description="Write the synthetic workload B10 (performance-baselines.md section 1) as "
        "DIR/profiles.parquet and DIR/events.parquet, then import it as the store DIR/store.",
    )
    gen.add_argument("directory", type=Path, help="output directory")
    gen.add_argument("--profiles", type=int, default=10_000_000, help="profiles (default 10M)")
    gen.add_argument("--seed", type=int, default=None, help="random seed (default: B10's)")
    gen.add_argument("--no-store", action="store_true", help="write the Parquet files only")
    gen.set_defaults(run=_generate)


def _import(args: argparse.Namespace) -> int:
    from store import ProfileStore

    if not args.profiles and not args.events:
        from engine.cli import UsageError

        raise UsageError("give --profiles, --events or both")
    units = dict(_unit(item) for item in args.time_unit)
    options = {
        "profile_id": args.profile_id,
        "event_profile_id": args.event_profile_id,
        "event_time": args.event_time,
        "event_type": args.event_type,
        "time_units": units,
        "assume_tz": args.assume_tz,
    }
    started = time.perf_counter()
    with _steps("loading") as progress:
        st = ProfileStore.from_files(
            args.profiles, args.events, format=args.format, progress=progress, **options
        )
    loaded = time.perf_counter()
    with _stage(f"saving {args.store}"):
        st.save(args.store)
    _summary(st, args.store, loaded - started, time.perf_counter() - loaded)
    return 0


def _unit(item: str) -> tuple[str, str]:
    from engine.cli import UsageError

    column, sep, unit = item.rpartition("=")
    if not sep or unit not in ("s", "ms", "us", "ns"):
        raise UsageError(f"--time-unit {item!r}: write COLUMN=UNIT with UNIT one of s, ms, us, ns")
    return column, unit


def _generate(args: argparse.Namespace) -> int:
    from store.synth import B10_SEED

    args.directory.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    profiles, events = write_b10(args.directory, args.profiles,
                                 B10_SEED if args.seed is None else args.seed)
    generated = time.perf_counter()
    Console(highlight=False).print(
        f"wrote {profiles} and {events} in {generated - started:.1f} s"
    )
    if args.no_store:
        return 0
    st, load_s, save_s = import_b10(profiles, events, args.directory / "store")
    _summary(st, args.directory / "store", load_s, save_s)
    return 0


def write_b10(directory: Path, profiles: int, seed: int) -> tuple[Path, Path]:
    """B10's Parquet files in ``directory``, with a progress bar on a terminal."""
    from store.synth import write_b10_parquet

    with _bar(f"generating B10 ({profiles:,} profiles)", profiles) as advance:
        return write_b10_parquet(directory, n_profiles=profiles, seed=seed, progress=advance)


def import_b10(profiles: Path, events: Path, target: Path) -> tuple[Any, float, float]:
    """The store of B10's Parquet files, saved at ``target`` (a spinner meanwhile), with
    the seconds loading and saving took."""
    from store import ProfileStore

    started = time.perf_counter()
    with _steps("importing into a store") as progress:
        st = ProfileStore.from_parquet(profiles, events, profile_id="profile_id",
                                       progress=progress)
    loaded = time.perf_counter()
    with _stage("saving"):
        st.save(target)
    return st, loaded - started, time.perf_counter() - loaded


@contextmanager
def _stage(label: str) -> Iterator[None]:
    """A spinner with the elapsed time while a step runs (plain text when not a terminal)."""
    console = Console(stderr=True)
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
        console=console, transient=True, disable=not console.is_terminal,
    ) as progress:
        progress.add_task(label, total=None)
        yield


@contextmanager
def _steps(label: str) -> Iterator[Callable[[str, int, int], None]]:
    """A bar over a load's steps (reading, then each column, then sorting events)."""
    console = Console(stderr=True)
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
        TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
        console=console, transient=True, disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task(f"{label}: reading files", total=None)

        def advance(step: str, done: int, total: int) -> None:
            progress.update(task, description=f"{label}: {step}", completed=done, total=total)

        yield advance


@contextmanager
def _bar(label: str, total: int) -> Iterator[Callable[[int, int], None]]:
    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(), console=console, transient=True, disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task(label, total=total)

        def advance(done: int, _total: int) -> None:
            progress.update(task, completed=done)

        yield advance


def _summary(st: Any, path: Path, load_s: float, save_s: float) -> None:
    table = Table(title=f"store {path}", title_justify="left", show_header=False)
    table.add_column("", justify="left")
    table.add_column("", justify="right")
    table.add_row("profiles", f"{len(st):,}")
    table.add_row("events", f"{len(st.events):,}")
    for part in st.events.partitions:
        name = "all" if part.types is None else ", ".join(part.types)
        table.add_row(f"  partition {name}", f"{len(part):,}")
    table.add_row("bytes", f"{st.nbytes / 1e6:,.1f} MB")
    table.add_row("load, s", f"{load_s:.2f}")
    table.add_row("save, s", f"{save_s:.2f}")
    Console(highlight=False).print(table)
