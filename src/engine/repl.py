"""The segment-language REPL without a terminal: a line of input in, renderables out.

`Repl.handle` takes what the user typed (one line, or several for a long definition) and
returns a `Reply`: rich renderables to print, the same facts as plain data (for tests and
programs), and whether to quit. An expression is evaluated at the session instant over the
whole store (`engine.repl_eval`); a line starting with ``:`` is a command (`COMMANDS`).
`engine.cli_repl` puts a prompt_toolkit line editor in front of it; tests drive it directly.
"""

from __future__ import annotations

import datetime as dt
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from engine import ir
from engine.checker import check, did_you_mean
from engine.codegen import CompileError
from engine.errors import EngineError, SegmentError, caret_block
from engine.repl_eval import Count, Evaluations, Why
from engine.repl_text import COMMANDS, join_continued
from engine.session import Engine, to_epoch_ms
from engine.timeops import DAY_MS
from store.errors import StoreError
from store.profile_store import ProfileStore
from store.schema import DType, Kind

__all__ = ["Repl", "Reply", "default_instant", "format_instant"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*\Z")
_SHIFT = re.compile(r"([+-])(\d+)\s*(ms|s|m|h|d|w)\Z")
_SHIFT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": DAY_MS, "w": 7 * DAY_MS}
SAMPLE = 8  # member keys shown with a count
EVENTS_SHOWN = 10  # latest events shown by :profile


@dataclass
class Reply:
    """What one input produced: ``output`` to print, ``data`` for programs, ``ok`` False
    for an error, ``quit`` to end the session."""

    output: list[RenderableType] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    ok: bool = True
    quit: bool = False


def format_instant(ms: int) -> str:
    """ISO 8601 in UTC, milliseconds only when there are some: 2025-01-01T00:00:00Z."""
    when = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=int(ms))
    text = when.isoformat(timespec="milliseconds" if ms % 1000 else "seconds")
    return text.replace("+00:00", "Z")


def default_instant(store: ProfileStore) -> int:
    """The midnight (UTC) after the store's latest event: "now" for data recorded up to a
    day, so that windows like "in the last 7 days" see its latest week. Without events,
    the wall clock."""
    latest = [int(p.time.max()) for p in store.events.partitions if len(p.time)]
    if not latest:
        return int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    return (max(latest) // DAY_MS + 1) * DAY_MS


class Repl:
    """A REPL session over one store: definitions, an instant, the last expression."""

    def __init__(self, store: ProfileStore, *, at: Any = None,
                 definitions: Mapping[str, str] | None = None) -> None:
        self.store = store
        self.engine = Engine(store, tier="vector", background=False)
        self.at_ms = default_instant(store) if at is None else to_epoch_ms(at)
        self.evaluations = Evaluations(store)
        self.last: tuple[str, str, ir.Expr] | None = None  # (label, text, checked IR)
        self._commands: dict[str, Callable[[str], Reply]] = {
            ":define": self._define, ":segments": self._segments, ":why": self._why,
            ":profile": self._profile, ":at": self._at, ":explain": self._explain,
            ":save": self._save, ":help": self._help, ":quit": self._quit,
            ":q": self._quit, ":exit": self._quit,
        }
        self.startup: list[RenderableType] = []  # what loading ``definitions`` reported
        for name, text in (definitions or {}).items():
            reply = self.define(name, text, evaluate=False)
            if not reply.ok:
                self.startup.append(Text.assemble("segment ", (name, "bold"), " not defined:"))
                self.startup.extend(reply.output)

    @property
    def names(self) -> list[str]:
        return list(self.evaluations.definitions)

    @property
    def schema(self) -> Any:
        return self.store.schema

    def handle(self, line: str) -> Reply:
        """Evaluate an expression or run a ``:command``."""
        text = join_continued(line).strip()
        if not text:
            return Reply()
        if not text.startswith(":"):
            return self.expression(text)
        word, _, rest = text.partition(" ")
        if word.startswith(":") and "\n" in word:
            word, _, more = word.partition("\n")
            rest = more + rest
        command = self._commands.get(word)
        if command is None:
            hint = did_you_mean(word, list(COMMANDS))
            return _error(f"unknown command {word}", hint or "type :help for the commands")
        try:
            return command(rest.strip())
        except (EngineError, StoreError) as e:
            return _error(str(e))

    # ------------------------------------------------------------ expressions

    def expression(self, text: str, *, label: str | None = None) -> Reply:
        """Check ``text`` and count its members at the session instant, clause by clause."""
        try:
            checked = check(text, self.schema, segments=self.names)
        except SegmentError as e:
            return _segment_error(e, text)
        self.last = (label or text, text, checked)
        return self._counted(self.evaluations.count(checked, text, self.at_ms))

    def _counted(self, c: Count) -> Reply:
        share = c.count / c.total if c.total else 0.0
        head = Text.assemble(
            (f"{c.count:,}", "bold cyan"), f" profile{'s' * (c.count != 1)} ",
            (f"({share:.2%} of {c.total:,})", "dim"), f" at {format_instant(self.at_ms)} ",
            (f"in {_duration(c.seconds)}", "dim"),
        )
        sample = self.evaluations.sample(c.mask, SAMPLE)
        output: list[RenderableType] = [head]
        if sample:
            more = " …" if c.count > len(sample) else ""
            output.append(Text.assemble(("e.g. ", "dim"), ", ".join(map(str, sample)) + more))
        data: dict[str, Any] = {"count": c.count, "total": c.total, "share": share,
                                "seconds": c.seconds, "sample": sample, "op": c.op,
                                "at": format_instant(self.at_ms)}
        if c.op is not None:
            output.append(_clause_table(c))
            data["clauses"] = [{"text": k.text, "count": k.count, "running": k.running}
                               for k in c.clauses]
        return Reply(output, data)

    # ------------------------------------------------------------ definitions

    def define(self, name: str, text: str, *, evaluate: bool = True) -> Reply:
        """Define (or redefine) segment ``name`` as ``text``; count it unless told not to."""
        if not _NAME.match(name):
            return _error(f"{name!r} is not a segment name",
                          "use letters, digits, _ and -, starting with a letter or _")
        try:
            checked = check(text, self.schema, segments={*self.names, name})
        except SegmentError as e:
            return _segment_error(e, text)
        cycle = self.evaluations.cycle(name, checked)
        if cycle:
            return _error("inSegment references would form a cycle: " + " → ".join(cycle))
        try:
            self.engine.define(name, text)
        except CompileError as e:
            return _error(f"cannot compile {name}: {e}")
        self.evaluations.definitions[name] = text
        self.evaluations.exprs[name] = self.engine.expr(name)
        self.evaluations.changed()
        if not evaluate:
            return Reply(data={"defined": name})
        reply = self.expression(text, label=name)
        reply.output.insert(0, Text.assemble(("defined ", "green"), (name, "bold")))
        reply.data["defined"] = name
        return reply

    def _define(self, rest: str) -> Reply:
        name, _, text = rest.partition(" ")
        if "\n" in name:
            name, _, more = name.partition("\n")
            text = more + " " + text
        if not name or not text.strip():
            return _error("write :define NAME EXPR", 'e.g. :define us_buyers country = "US"')
        return self.define(name.strip(), text.strip())

    def _segments(self, rest: str) -> Reply:
        if not self.names:
            return Reply([Text("no segments yet: define one with :define NAME EXPR", "dim")],
                         {"segments": {}})
        masks = self.evaluations.segments(self.at_ms)
        n = len(self.names)
        table = Table(title=f"{n} segment{'s' * (n != 1)} at {format_instant(self.at_ms)}",
                      title_justify="left", box=None, padding=(0, 2, 0, 0), expand=True)
        table.add_column("segment", style="bold", no_wrap=True,
                         min_width=max(map(len, self.names)))
        table.add_column("members", justify="right", no_wrap=True)
        table.add_column("share", justify="right", no_wrap=True)
        table.add_column("definition", overflow="ellipsis", no_wrap=True, ratio=1)
        counts = {}
        total = len(self.store)
        for name, text in self.evaluations.definitions.items():
            counts[name] = int(masks[name].sum())
            share = counts[name] / total if total else 0.0
            table.add_row(name, f"{counts[name]:,}", f"{share:.2%}", Text(" ".join(text.split())))
        return Reply([table], {"segments": counts})

    def _save(self, rest: str) -> Reply:
        if not rest:
            return _error("write :save FILE", "e.g. :save my_segments.toml")
        if not self.names:
            return _error("nothing to save: define segments with :define NAME EXPR first")
        path = Path(shlex.split(rest)[0]).expanduser()
        from store.files import write_atomic

        try:
            write_atomic(path, segments_toml(self.evaluations.definitions))
        except OSError as e:
            return _error(f"cannot write {path}: {e.strerror or e}")
        n = len(self.names)
        return Reply([Text(f"saved {n} definition{'s' * (n != 1)} to {path}", "green")],
                     {"saved": str(path), "segments": self.names})

    def _explain(self, rest: str) -> Reply:
        if rest not in self.evaluations.definitions:
            return self._unknown_segment(rest, ":explain NAME")
        from engine.cli_run import explanation

        return Reply(explanation(self.engine, rest), {"explained": rest})

    # ------------------------------------------------------------ profiles

    def _why(self, rest: str) -> Reply:
        words = shlex.split(rest) if rest else []
        if not words or len(words) > 2:
            return _error("write :why KEY [NAME]",
                          "NAME: a defined segment; without it, the last expression")
        if len(words) == 2:
            name = words[1]
            if name not in self.evaluations.definitions:
                return self._unknown_segment(name, ":why KEY NAME")
            text = self.evaluations.definitions[name]
            target = (name, text, check(text, self.schema, segments=self.names))
        elif self.last is not None:
            target = self.last
        else:
            return _error("nothing to explain yet", "type an expression first, or name a "
                          "segment: :why KEY NAME")
        key = self._key(words[0])
        label, text, checked = target
        try:
            why = self.evaluations.why(key, checked, text, self.at_ms)
        except LookupError:
            return self._unknown_key(words[0])
        return Reply(_why_output(why, label), _why_data(why, label))

    def _profile(self, rest: str) -> Reply:
        words = shlex.split(rest) if rest else []
        if len(words) != 1:
            return _error("write :profile KEY")
        found = self.store.profile(self._key(words[0]))
        if found is None:
            return self._unknown_key(words[0])
        attributes = Table(title=f"profile {words[0]}", title_justify="left", box=None,
                           show_header=False, padding=(0, 2, 0, 0))
        attributes.add_column("field", style="bold")
        attributes.add_column("value")
        for name, value in found["attributes"].items():
            attributes.add_row(name, Text(_show(value)))
        events = found["events"]
        latest = events[-EVENTS_SHOWN:][::-1]
        output: list[RenderableType] = [attributes]
        title = f"{len(events):,} events" + (f"; the latest {len(latest)}" if latest else "")
        if latest:
            skip = {self.schema.event_profile_key}
            fields = [f for f in latest[0] if f not in skip
                      and any(e.get(f) is not None for e in latest)]
            table = Table(title=title, title_justify="left", box=None, padding=(0, 2, 0, 0))
            for f in fields:
                table.add_column(f)
            for e in latest:
                table.add_row(*(Text(_show(e.get(f))) for f in fields))
            output.append(table)
        else:
            output.append(Text(title, "dim"))
        return Reply(output, {"attributes": found["attributes"], "events": len(events)})

    def _key(self, text: str) -> Any:
        if pa.types.is_integer(self.store.keys.type):
            try:
                return int(text)
            except ValueError:
                raise EngineError(f"profile keys are integers here, not {text!r}") from None
        return text

    def _unknown_key(self, text: str) -> Reply:
        first = self.store.keys.slice(0, 3).to_pylist()
        return _error(f"no profile with key {text}",
                      "keys look like " + ", ".join(map(str, first)) if first else None)

    def _unknown_segment(self, name: str, usage: str) -> Reply:
        if not name:
            return _error(f"write {usage}")
        return _error(f"no segment {name!r}",
                      did_you_mean(name, self.names) or "see :segments for the defined ones")

    # ------------------------------------------------------------ the session

    def _at(self, rest: str) -> Reply:
        if rest:
            shift = _SHIFT.match(rest.replace(" ", ""))
            if shift:
                sign = 1 if shift.group(1) == "+" else -1
                self.at_ms += sign * int(shift.group(2)) * _SHIFT_MS[shift.group(3)]
            else:
                try:
                    self.at_ms = to_epoch_ms(rest)
                except (TypeError, ValueError) as e:
                    return _error(str(e), "or shift the instant: :at +7d, :at -12h")
        at = format_instant(self.at_ms)
        return Reply([Text.assemble("evaluating at ", (at, "bold"))], {"at": at})

    def _help(self, rest: str) -> Reply:
        table = Table(box=None, show_header=False, padding=(0, 2, 0, 0))
        table.add_column("command", style="bold")
        table.add_column("what")
        table.add_row("EXPR", "count the profiles EXPR selects now, clause by clause")
        for command, what in COMMANDS.items():
            args, _, meaning = what.partition("  ")
            table.add_row(f"{command} {args.strip()}".strip(), meaning.strip())
        tips = Text("A line with an open bracket or quote, or ending with \\, continues on "
                    "the next. Tab completes fields, functions and segments.", "dim")
        return Reply([table, tips])

    def _quit(self, rest: str) -> Reply:
        return Reply(quit=True)


# ---------------------------------------------------------------- rendering


def _error(message: str, hint: str | None = None) -> Reply:
    out: list[RenderableType] = [Text.assemble(("error: ", "bold red"), message)]
    if hint:
        out.append(Text.assemble(("hint: ", "yellow"), hint))
    return Reply(out, {"error": message, "hint": hint}, ok=False)


def _segment_error(e: SegmentError, text: str) -> Reply:
    """Every error of a definition: the message, the source line with a caret under the
    offending text, and the hint."""
    output: list[RenderableType] = []
    errors = []
    for err in e.errors:
        where = f" (line {err.span.line}, column {err.span.column})" if err.span else ""
        output.append(Text.assemble(("error: ", "bold red"), err.message + where))
        if err.span is not None:
            # Never wrapped: the caret must stay under the text it points at.
            output.append(Text(caret_block(text, err.span), no_wrap=True, overflow="ignore"))
        if err.hint:
            output.append(Text.assemble(("hint: ", "yellow"), err.hint))
        errors.append(err.to_dict())
    return Reply(output, {"errors": errors}, ok=False)


def _clause_table(c: Count) -> Table:
    table = Table(box=None, padding=(0, 2, 0, 0))
    table.add_column("#", justify="right", style="dim")
    table.add_column("clause", overflow="fold")
    table.add_column("members", justify="right")
    table.add_column(f"running ({c.op})", justify="right")
    table.add_column("")
    emptied = False
    for k, clause in enumerate(c.clauses, start=1):
        note = ""
        if c.op == "and" and clause.running == 0 and not emptied:
            emptied = True
            note = "← empties the audience"
        table.add_row(str(k), Text(clause.text), f"{clause.count:,}", f"{clause.running:,}",
                      Text(note, "red"))
    return table


def _why_output(why: Why, label: str) -> list[RenderableType]:
    status = Text("in", "bold green") if why.member else Text("not in", "bold red")
    head = Text.assemble(f"profile {why.key} at {format_instant(why.at_ms)}: ", status,
                         " ", (_short(label, 60), "bold"))
    table = Table(box=None, padding=(0, 2, 0, 0), show_header=True, expand=True)
    table.add_column("", no_wrap=True)
    table.add_column("clause" if why.op else "condition", overflow="fold", ratio=3)
    table.add_column("values", overflow="fold", ratio=2)
    flips = ["" if c.next_flip is None else
             f"{'false' if c.value else 'true'} at {format_instant(c.next_flip)}"
             for c in why.clauses]
    table.add_column("next, with time alone", no_wrap=True, min_width=max(map(len, flips)))
    for c, flip in zip(why.clauses, flips, strict=True):
        mark = Text("true", "green") if c.value else Text("false", "red")
        values = "\n".join(f"{_short(text, 48)} = {_show(v, t)}" for text, v, t in c.values)
        table.add_row(mark, Text(c.text), Text(values), flip)
    if why.next_flip is not None:
        verb = "exits" if why.member else "enters"
        tail = Text.assemble(f"with no new events, it {verb} at ",
                             (format_instant(why.next_flip), "bold"))
    elif why.capped:
        tail = Text(f"no change within the next {why.searched:,} instants at which time "
                    "could change it (searched no further)", "dim")
    else:
        tail = Text(f"with no new events it stays {'in' if why.member else 'out'}: time "
                    "alone does not change it", "dim")
    return [head, table, tail]


def _why_data(why: Why, label: str) -> dict[str, Any]:
    return {
        "key": why.key, "segment": label, "member": why.member, "op": why.op,
        "next": None if why.next_flip is None else format_instant(why.next_flip),
        "clauses": [{"text": c.text, "value": c.value,
                     "values": {text: v for text, v, _ in c.values},
                     "next": None if c.next_flip is None else format_instant(c.next_flip)}
                    for c in why.clauses],
    }


def _show(value: Any, dtype: Any = None) -> str:
    """A value as the language would write it (instants in ISO 8601, UTC)."""
    if value is None:
        return "null"
    if isinstance(dtype, DType) and not dtype.is_list:
        if dtype.kind is Kind.TIMESTAMP and isinstance(value, int | np.integer):
            return format_instant(int(value))
        if dtype.kind is Kind.DATE and isinstance(value, int | np.integer):
            return (dt.date(1970, 1, 1) + dt.timedelta(days=int(value))).isoformat()
    if isinstance(value, dt.datetime):
        ms = int(value.timestamp() * 1000)
        return format_instant(ms)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, float):
        return f"{value:g}" if abs(value) < 1e15 else repr(value)
    return str(value)


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def segments_toml(definitions: Mapping[str, str]) -> str:
    """Definitions as a segments file (`engine.segments`): a ``[segment.NAME]`` table each,
    the text as a TOML literal string where it can be one, so it reads as typed."""
    import tomlkit

    from engine.cli import _toml_string

    doc = tomlkit.document()
    doc.add(tomlkit.comment("Segments saved from pqlite repl; check them with pqlite check"))
    segment = tomlkit.table(is_super_table=True)
    for name, text in definitions.items():
        table = tomlkit.table()
        table["pql"] = _toml_string(text)
        segment[name] = table
    doc["segment"] = segment
    return tomlkit.dumps(doc)
