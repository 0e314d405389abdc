"""``pqlite repl [STORE]``: the segment-language REPL on a terminal.

A thin prompt_toolkit front end over `engine.repl.Repl`: syntax highlighting
(`engine.repl_text.tokens`), Tab completion of fields, functions, keywords and segment names
(`engine.repl_text.complete`), history kept across sessions in a file, suggestions from it,
and multi-line input: Enter continues the definition while a bracket or quote is open or the
line ends with ``\\``. Without a terminal (input from a pipe or a file) it reads definitions
line by line and prints the same output, exiting 1 if any input had an error.

Without STORE it opens the demo store of ``pqlite demo`` (generated on first use).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from engine.userdirs import user_path

__all__ = ["add_commands", "history_path"]

HISTORY_ENV = "PQLITE_HISTORY"
PROMPT = "pqlite> "
CONTINUATION = "   ...> "

# Token kinds of `engine.repl_text.tokens` → prompt_toolkit styles (ANSI colours, so the
# terminal's theme decides the exact shades).
_STYLES = {
    "keyword": "ansimagenta bold",
    "function": "ansicyan",
    "string": "ansigreen",
    "timestamp": "ansiyellow",
    "number": "ansiyellow",
    "command": "ansiblue bold",
    "operator": "",
    "name": "",
    "punct": "",
    "space": "",
}


def add_commands(sub: Any) -> None:
    repl = sub.add_parser(
        "repl",
        help="an interactive session: type a segment expression, see who it selects",
        description="Evaluate segment expressions over a store as you type them: member "
        "count, share, sample keys and the count of each clause; explain why a profile is "
        "in or out (:why), define and save segments. Without STORE, opens the demo store of "
        "'pqlite demo'. See docs/repl.md.",
    )
    repl.add_argument("store", type=Path, nargs="?",
                      help="profile store directory (default: the demo store)")
    repl.add_argument("--segments", type=Path, metavar="FILE",
                      help="define the segments of this file (.toml or .pql) first")
    repl.add_argument("--at", metavar="TIME",
                      help="the evaluation instant, ISO 8601 (default: the midnight after "
                           "the store's latest event)")
    repl.add_argument("--profiles", type=int, default=None, metavar="N",
                      help="without STORE: profiles of the demo store (default 200,000)")
    repl.add_argument("--dir", type=Path, metavar="DIR",
                      help="without STORE: where the demo store is kept (as pqlite demo)")
    repl.set_defaults(run=_repl)


def history_path() -> Path:
    """``$PQLITE_HISTORY``, else ``repl_history`` in the user's data directory."""
    return user_path(HISTORY_ENV, "data", "repl_history")


def _repl(args: argparse.Namespace) -> int:
    from engine.cli import UsageError
    from engine.repl import Repl, format_instant
    from engine.session import to_epoch_ms
    from store import ProfileStore

    if args.store is not None and (args.profiles is not None or args.dir is not None):
        raise UsageError("--profiles and --dir choose the demo store: give them without STORE")
    at = None
    if args.at is not None:
        try:
            at = to_epoch_ms(args.at)
        except (TypeError, ValueError) as e:
            raise UsageError(f"--at {args.at!r}: {e}") from None
    if args.store is None:
        from engine.cli_demo import DEMO_PROFILES, demo_store

        st, path, _ = demo_store(args.dir, args.profiles or DEMO_PROFILES)
    else:
        st, path = ProfileStore.open(args.store), args.store
    definitions = {}
    if args.segments is not None:
        from engine.segments import SegmentFile

        definitions = {d.name: d.pql for d in SegmentFile.load(args.segments)}
    session = Repl(st, at=at, definitions=definitions)
    console = Console(highlight=False)
    for line in session.startup:
        console.print(line)
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    if interactive:
        console.print(Text.assemble(
            ("pqlite repl", "bold"), f" on {path}: {len(st):,} profiles, "
            f"{len(st.events):,} events; evaluating at ", (format_instant(session.at_ms), "bold"),
            f"; {len(session.names)} segments defined.\n",
            ("Type an expression, :help for the commands, Ctrl-D to leave.", "dim")))
        return _interactive(session, console)
    return _piped(session, console, sys.stdin)


def _piped(session: Any, console: Console, lines: Iterable[str]) -> int:
    """Input from a pipe or file: each complete input in turn, no prompt."""
    from engine.repl_text import needs_more

    failed = False
    pending = ""
    for line in lines:
        pending += line
        if needs_more(pending.rstrip("\n")):
            continue
        reply = session.handle(pending)
        pending = ""
        for part in reply.output:
            console.print(part)
        failed |= not reply.ok
        if reply.quit:
            break
    else:
        if pending.strip():
            reply = session.handle(pending)
            for part in reply.output:
                console.print(part)
            failed |= not reply.ok
    return 1 if failed else 0


def _interactive(session: Any, console: Console) -> int:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    history: Any
    path = history_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        history = FileHistory(str(path))
    except OSError:  # a read-only home: history for this session only
        history = InMemoryHistory()
    prompt: PromptSession[str] = PromptSession(
        history=history,
        lexer=_lexer(),
        completer=_completer(session),
        style=_style(),
        multiline=True,
        key_bindings=_keys(),
        # A new line of the input gets the continuation prompt; a long line wrapped by
        # the screen only an indent.
        prompt_continuation=lambda width, line, wrap: " " * width if wrap else CONTINUATION,
        auto_suggest=AutoSuggestFromHistory(),
        complete_while_typing=False,
        enable_history_search=False,
    )
    while True:
        try:
            text = prompt.prompt(PROMPT)
        except KeyboardInterrupt:
            continue  # Ctrl-C clears the line, as in a shell
        except EOFError:
            return 0
        try:
            reply = session.handle(text)
        except KeyboardInterrupt:
            console.print(Text("interrupted", "yellow"))
            continue
        for part in reply.output:
            console.print(part)
        if reply.quit:
            return 0


def _keys() -> Any:
    """Enter evaluates a complete input and continues an unfinished one (a search of the
    history keeps its own Enter)."""
    from prompt_toolkit.filters import is_searching
    from prompt_toolkit.key_binding import KeyBindings

    from engine.repl_text import needs_more

    keys = KeyBindings()

    @keys.add("enter", filter=~is_searching)
    def _enter(event: Any) -> None:
        buffer = event.current_buffer
        state = buffer.complete_state
        if state is not None and state.current_completion is not None:
            buffer.apply_completion(state.current_completion)  # Enter picks from the menu
        elif needs_more(buffer.text):
            buffer.insert_text("\n")
        else:
            buffer.validate_and_handle()

    return keys


def _style() -> Any:
    from prompt_toolkit.styles import Style

    return Style.from_dict({f"pql.{kind}": style for kind, style in _STYLES.items() if style})


def _lexer() -> Any:
    from prompt_toolkit.document import Document
    from prompt_toolkit.lexers import Lexer

    from engine.repl_text import tokens

    class SegmentLexer(Lexer):
        """Highlights segment text: the whole input is cut into tokens, then into lines."""

        def lex_document(self, document: Document) -> Any:
            lines: list[list[tuple[str, str]]] = [[]]
            for kind, piece in tokens(document.text):
                for k, part in enumerate(piece.split("\n")):
                    if k:
                        lines.append([])
                    if part:
                        lines[-1].append((f"class:pql.{kind}", part))
            return lambda number: lines[number] if number < len(lines) else []

    return SegmentLexer()


def _completer(session: Any) -> Any:
    from prompt_toolkit.completion import CompleteEvent, Completer, Completion
    from prompt_toolkit.document import Document

    from engine.repl_text import complete

    class SegmentCompleter(Completer):
        """Fields of the store's schema, functions, keywords, segment names, commands."""

        def get_completions(self, document: Document, complete_event: CompleteEvent
                            ) -> Iterator[Completion]:
            for c in complete(document.text_before_cursor, session.schema, session.names):
                yield Completion(c.text, start_position=c.start, display_meta=c.meta)

    return SegmentCompleter()
