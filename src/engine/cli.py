"""The ``pqlite`` command line.

Exit codes: 0 success; 1 the definitions have errors (or ``fmt --check`` would reformat);
2 the command could not run (bad arguments, unreadable file or schema).
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from engine import ir
from engine.analysis import Analysis, analyze
from engine.checker import check, did_you_mean
from engine.cli_activation import add_commands as add_activation_commands
from engine.cli_bench import add_commands as add_bench_commands
from engine.cli_data import add_commands
from engine.cli_demo import add_commands as add_demo_commands
from engine.cli_identity import add_commands as add_identity_commands
from engine.cli_repl import add_commands as add_repl_commands
from engine.cli_run import add_commands as add_run_commands
from engine.cli_stream import add_commands as add_stream_commands
from engine.errors import SegmentError, SegmentNameError, raise_all
from engine.parser import parse
from engine.segments import Definition, SegmentFile, SegmentFileError, dependency_cycle
from engine.unparse import unparse
from store.errors import StoreError
from store.files import write_atomic
from store.schema import Schema, SchemaError

__all__ = ["main"]

OK, FAILED, UNUSABLE = 0, 1, 2


class UsageError(Exception):
    """The command cannot run; the message says why and how to fix it."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return UNUSABLE
    try:
        code: int = args.run(args)
        return code
    except (UsageError, SegmentFileError, StoreError) as e:
        console = Console(stderr=True, highlight=False)
        console.print("[red]error:[/red] ", end="", markup=True)
        console.print(str(e), markup=False, soft_wrap=True)
        return UNUSABLE
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pqlite",
        description="Compiled customer segmentation with a PQL-like language.",
        epilog="Run 'pqlite COMMAND --help' for a command's options.",
    )
    p.add_argument("--version", action="version", version=f"pqlite {_version()}")
    sub = p.add_subparsers(title="commands", metavar="COMMAND")

    check = sub.add_parser(
        "check",
        help="check segment definitions against a schema",
        description="Parse and type-check every definition of a segments file (TOML with "
        "[segment.NAME] tables, or a .pql file), report all errors with their position, and "
        "show what each definition reads and how it can be evaluated.",
    )
    check.add_argument("file", type=Path, help="segments file (.toml or .pql)")
    _schema_options(check)
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    check.set_defaults(run=_check)

    fmt = sub.add_parser(
        "fmt",
        help="format segment definitions canonically",
        description="Rewrite every definition in canonical form (see docs/language.md). "
        "Prints the formatted file unless --check or --write is given.",
    )
    fmt.add_argument("file", type=Path, help="segments file (.toml or .pql)")
    mode = fmt.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if any definition would change")
    mode.add_argument("--write", action="store_true", help="rewrite the file in place (atomically)")
    fmt.add_argument("--width", type=int, default=88, help="line width for long definitions")
    fmt.set_defaults(run=_fmt)
    add_commands(sub)
    add_run_commands(sub)
    add_stream_commands(sub)
    add_activation_commands(sub)
    add_identity_commands(sub)
    add_repl_commands(sub)
    add_demo_commands(sub)
    add_bench_commands(sub)
    return p


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pqlite")
    except PackageNotFoundError:  # pragma: no cover - running from a checkout without install
        return "0+unknown"


def _schema_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("schema (without one, only syntax and segment references are checked)")
    g.add_argument("--schema", type=Path, help="schema TOML: [profile], [events] and [keys] tables")
    g.add_argument("--store", type=Path, help="use the schema of this profile store directory")
    g.add_argument(
        "--profiles",
        type=Path,
        help="read the profile fields from this Parquet, Arrow IPC or CSV file's schema",
    )
    g.add_argument("--events", type=Path, help="read the event fields from this file's schema")
    g.add_argument("--event-time", help="events' timestamp field (default: timestamp)")
    g.add_argument("--event-type", help="events' type field (default: eventType)")


def load_schema(args: argparse.Namespace) -> Schema | None:
    """The schema the options describe, or None when none is given."""
    if sum(map(bool, (args.schema, args.store, args.profiles or args.events))) > 1:
        raise UsageError("give one of --schema, --store or --profiles/--events")
    if args.store:
        from store.disk import read_manifest

        return Schema.from_dict(read_manifest(args.store)["schema"])
    if args.schema:
        try:
            data = tomllib.loads(args.schema.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UsageError(f"{args.schema}: no such schema file") from None
        except tomllib.TOMLDecodeError as e:
            raise UsageError(f"{args.schema}: not valid TOML: {e}") from None
        try:
            return Schema.from_dict(data)
        except SchemaError as e:
            raise UsageError(f"{args.schema}: {e}") from None
    if args.profiles or args.events:
        if not args.profiles:
            raise UsageError("--events needs --profiles as well")
        profiles = _arrow_schema(args.profiles)
        events = _arrow_schema(args.events) if args.events else None
        return Schema.from_arrow(
            profiles, events, event_time=args.event_time, event_type=args.event_type
        )
    return None


def _arrow_schema(path: Path) -> Any:
    import pyarrow as pa
    import pyarrow.csv
    import pyarrow.ipc
    import pyarrow.parquet

    if not path.exists():
        raise UsageError(f"{path}: no such file")
    if path.is_dir():
        raise UsageError(f"{path} is a directory: give a profile store with --store {path}")
    name = path.name.lower()
    try:
        if path.is_dir():
            import pyarrow.dataset

            return pyarrow.dataset.dataset(path).schema
        if name.endswith(".parquet"):
            return pyarrow.parquet.read_schema(path)
        if name.endswith((".arrow", ".feather", ".ipc")):
            with pa.memory_map(str(path)) as source:
                return pyarrow.ipc.open_file(source).schema
        if name.endswith((".csv", ".csv.gz", ".tsv")):
            return pyarrow.csv.open_csv(path).schema
    except (pa.ArrowInvalid, OSError) as e:
        raise UsageError(f"{path}: cannot read its schema: {e}") from None
    raise UsageError(f"{path}: unknown file type; use .parquet, .arrow/.feather or .csv")


# ---------------------------------------------------------------- check


@dataclass
class _Report:
    definition: Definition
    errors: list[SegmentError] = field(default_factory=list)
    analysis: Analysis | None = None


def check_file(segments: SegmentFile, schema: Schema | None) -> list[_Report]:
    """Check every definition, the references between them, and analyze the valid ones."""
    names = set(segments.definitions)
    reports = {d.name: _Report(d) for d in segments}
    refs: dict[str, frozenset[str]] = {}
    checked: dict[str, ir.Expr] = {}
    for d in segments:
        report = reports[d.name]
        try:
            tree = parse(d.pql)
        except SegmentError as e:
            report.errors = e.errors
            continue
        refs[d.name] = frozenset(n.name for n in ir.walk(tree) if isinstance(n, ir.SegmentRef))
        try:
            if schema is None:
                check_references(tree, names)
            else:
                checked[d.name] = check(tree, schema, segments=names)
        except SegmentError as e:
            report.errors = e.errors
    cycle = dependency_cycle(refs)
    if cycle:
        for name in set(cycle[:-1]):
            reports[name].errors.append(
                SegmentNameError("inSegment references form a cycle: " + " → ".join(cycle))
            )
    analyses: dict[str, Analysis] = {}
    for name in _dependency_order(refs):
        if schema is not None and name in checked and not reports[name].errors:
            analyses[name] = analyze(checked[name], schema, references=analyses.get)
            reports[name].analysis = analyses[name]
    return [reports[d.name] for d in segments]


def check_references(tree: ir.Expr, names: set[str]) -> None:
    """Raise for inSegment references to segments not among ``names``."""
    errors: list[SegmentError] = [
        SegmentNameError(
            f"unknown segment {ref.name!r}", ref.span, hint=did_you_mean(ref.name, names)
        )
        for ref in ir.walk(tree)
        if isinstance(ref, ir.SegmentRef) and ref.name not in names
    ]
    raise_all(errors)


def _dependency_order(refs: dict[str, frozenset[str]]) -> list[str]:
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        for r in sorted(refs.get(name, ())):
            visit(r)
        order.append(name)

    for name in sorted(refs):
        visit(name)
    return order


def _check(args: argparse.Namespace) -> int:
    schema = load_schema(args)
    segments = SegmentFile.load(args.file)
    reports = check_file(segments, schema)
    failed = sum(bool(r.errors) for r in reports)
    if args.json:
        print(json.dumps(_check_json(args.file, reports, schema is not None), indent=2))
        return FAILED if failed else OK
    out = Console(highlight=False, soft_wrap=True)
    for r in reports:
        if r.errors:
            for e in r.errors:
                out.print(_located(args.file, r.definition, e), markup=False)
                out.print()
        elif not args.quiet:
            methods = ""
            if r.analysis is not None:
                eligible = [k for k, v in r.analysis.methods.items() if v.eligible]
                methods = f"  [dim]({', '.join(eligible)})[/dim]"
            out.print(f"[green]ok[/green]  {r.definition.name}{methods}")
    total = len(reports)
    scope = "" if schema is not None else " (syntax and references only: no schema given)"
    summary = (
        f"{total} segment{'s' * (total != 1)}: {total - failed} ok, {failed} with errors{scope}"
    )
    if failed or not args.quiet:
        out.print(summary, style="red" if failed else None)
    return FAILED if failed else OK


def _located(path: Path, d: Definition, e: SegmentError) -> str:
    pos = d.locate(e.span)
    if pos is not None:
        where = f"{path}:{pos[0]}:{pos[1]}"
    elif e.span is not None:
        where = f"{path}: segment {d.name!r}, line {e.span.line}, column {e.span.column} of its pql"
    else:
        where = f"{path}: segment {d.name!r}"
    body = e.with_source(d.pql).render() if e.source is None else e.render()
    return f"{where}: [{d.name}] {body}"


def _check_json(path: Path, reports: list[_Report], with_schema: bool) -> dict[str, Any]:
    def error(d: Definition, e: SegmentError) -> dict[str, Any]:
        out = e.to_dict()
        pos = d.locate(e.span)
        out["file_line"], out["file_column"] = pos if pos else (None, None)
        return out

    return {
        "file": str(path),
        "schema_checked": with_schema,
        "ok": not any(r.errors for r in reports),
        "segments": [
            {
                "name": r.definition.name,
                "ok": not r.errors,
                "errors": [error(r.definition, e) for e in r.errors],
                "analysis": r.analysis.to_dict() if r.analysis else None,
            }
            for r in reports
        ],
    }


# ---------------------------------------------------------------- fmt


def _fmt(args: argparse.Namespace) -> int:
    segments = SegmentFile.load(args.file)
    errors = 0
    formatted: dict[str, str] = {}
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    for d in segments:
        try:
            formatted[d.name] = unparse(parse(d.pql), pretty=True, width=args.width)
        except SegmentError as e:
            errors += 1
            err.print(_located(args.file, d, e), markup=False)
    if errors:
        err.print(f"{errors} definition(s) not formatted: fix the syntax errors first", style="red")
        return FAILED
    original = args.file.read_text(encoding="utf-8")
    if args.file.suffix == ".pql":
        new_text = next(iter(formatted.values())) + "\n"
    else:
        new_text = _format_toml(original, formatted)
    changed = [d.name for d in segments if formatted[d.name] != d.pql.strip()]
    if args.check:
        for name in changed:
            print(f"would reformat {args.file}: segment {name}")
        return FAILED if new_text != original else OK
    if args.write:
        if new_text != original:
            write_atomic(args.file, new_text)
        print(f"{args.file}: {len(changed)} definition(s) reformatted")
        return OK
    sys.stdout.write(new_text)
    return OK


def _toml_string(text: str) -> Any:
    """A TOML string item for ``text``: literal when possible, multi-line text as a block
    that starts on the line after the quotes (so positions in the file stay readable)."""
    import tomlkit

    if "\n" in text and "'''" not in text:
        return tomlkit.parse("v = '''\n" + text + "\n'''")["v"]
    return tomlkit.string(
        text, literal="\n" not in text and "'" not in text, multiline="\n" in text
    )


def _format_toml(original: str, formatted: dict[str, str]) -> str:
    """The file with each pql value replaced, comments and layout kept (tomlkit)."""
    import tomlkit

    doc = tomlkit.parse(original)
    tables = doc["segment"]
    for name, text in formatted.items():
        table = tables[name]
        if table["pql"] == text:
            continue
        table["pql"] = _toml_string(text)
    return tomlkit.dumps(doc)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
