"""``pqlite repl`` on a pseudo-terminal, driven as a person would: type, then read the screen.

pexpect runs the command on a pty; pyte is the terminal: it interprets what the program
writes (colours, cursor moves, redraws) into a screen of text, and answers the program's
cursor-position requests as a terminal does. The assertions are on that screen.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.cli import main

pexpect = pytest.importorskip("pexpect")
pyte = pytest.importorskip("pyte")

ROWS, COLUMNS = 50, 140


def _prompt_after(text: str, wanted: str) -> bool:
    """Whether a fresh prompt line follows the last ``wanted`` on the screen."""
    below = text[text.rindex(wanted) + len(wanted) :].split("\n")[1:]
    return any(line.startswith("pqlite>") for line in below)


class Terminal:
    """A program on a pty and the screen a terminal would show for it."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.screen = pyte.Screen(COLUMNS, ROWS)
        self.stream = pyte.ByteStream(self.screen)
        self.child = pexpect.spawn(argv[0], argv[1:], env=env, dimensions=(ROWS, COLUMNS))
        self.child.delaybeforesend = None  # pexpect waits 50 ms before each send otherwise
        # Replies to "where is the cursor?" go back to the program, as from a terminal.
        self.screen.write_process_input = self.child.send

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display).strip("\n")

    def read(self, seconds: float = 0.2) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                self.stream.feed(self.child.read_nonblocking(65536, timeout=0.05))
            except pexpect.TIMEOUT:
                continue
            except pexpect.EOF:
                return

    def wait_for(self, wanted: str, timeout: float = 30.0, times: int = 1, whole: bool = True) -> str:
        """Read until ``wanted`` is on the screen (``times`` times); the screen then.

        With ``whole``, also until the prompt is back below it: the program writes a
        command's output in pieces, and an assertion on a screen caught between two
        pieces would fail by chance. Text on the prompt line itself (a continuation,
        a completion, a search) passes ``whole=False``.
        """
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.read(0.1)
            text = self.text()
            if text.count(wanted) >= times and (not whole or _prompt_after(text, wanted)):
                return text
            if not self.child.isalive():
                self.read(0.2)
                break
        raise AssertionError(f"{wanted!r} not on the screen:\n{self.text()}")

    def type(self, keys: str) -> None:
        for ch in keys:  # one key at a time, as typed
            self.child.send(ch)
        self.read(0.05)

    def clear(self) -> None:
        """Forget what is on the screen (new output is then easy to tell apart)."""
        self.screen.reset()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("b10")
    assert main(["generate", str(directory), "--profiles", "1000"]) == 0
    return directory / "store"


@pytest.fixture
def term(store: Path, tmp_path: Path) -> Iterator[Terminal]:
    env = dict(os.environ, PQLITE_HISTORY=str(tmp_path / "history"), PQLITE_BACKGROUND="0",
               TERM="xterm-256color", COLUMNS=str(COLUMNS), LINES=str(ROWS))
    pqlite = Path(sys.executable).with_name("pqlite")
    t = Terminal([str(pqlite) if pqlite.exists() else "pqlite", "repl", str(store)], env)
    t.wait_for("pqlite>", whole=False)
    yield t
    if t.child.isalive():
        t.child.terminate(force=True)


def test_a_person_at_the_repl(term: Terminal, tmp_path: Path) -> None:
    screen = term.text()
    assert "1,000 profiles" in screen and "evaluating at 2025-01-01T00:00:00Z" in screen

    # An expression: the count, the share, the clauses.
    term.type('country = "US" and age >= 25\r')
    screen = term.wait_for("running (and)")
    assert "pqlite> country = \"US\" and age >= 25" in screen
    assert "of 1,000) at 2025-01-01T00:00:00Z" in screen
    assert "1  country = \"US\"" in screen and "2  age >= 25" in screen

    # A mistake: the caret under it and the suggestion.
    term.clear()
    term.type("agee > 3\r")
    screen = term.wait_for("hint:")
    assert "error: unknown field 'agee' (line 1, column 1)" in screen
    assert "  agee > 3\n  ^^^^\nhint: did you mean 'age'?" in screen

    # A long definition over two lines: Enter continues while a bracket is open.
    term.clear()
    term.type(':define buyers xEvent[eventType = "purchase"\r')
    term.wait_for("...>", whole=False)
    term.type("  and timestamp occurs < 7 days before now].count() >= 1\r")
    screen = term.wait_for("defined buyers")
    assert "profiles (" in screen

    term.clear()
    term.type(":segments\r")
    screen = term.wait_for("1 segment at")
    assert "buyers" in screen and "xEvent[eventType" in screen

    # Tab completes a field of the schema.
    term.clear()
    term.type("lifetime\t")
    term.wait_for("lifetime_value", whole=False)
    term.type(" > 1000\r")
    term.wait_for("profiles (")

    term.clear()
    term.type(":why 0 buyers\r")
    screen = term.wait_for("profile 0 at 2025-01-01T00:00:00Z")
    assert "in buyers" in screen and "xEvent[…].count() = " in screen

    term.type(":quit\r")
    term.child.expect(pexpect.EOF, timeout=10)
    term.child.close()
    assert term.child.exitstatus == 0
    # The history persists for the next session.
    history = (tmp_path / "history").read_text()
    assert 'country = "US" and age >= 25' in history and ":why 0 buyers" in history


def test_ctrl_c_history_search_and_ctrl_d(term: Terminal) -> None:
    term.type("age > ")
    term.type("\x03")  # Ctrl-C: the line is dropped
    term.type("age > 200\r")
    screen = term.wait_for("0 profiles (0.00% of 1,000)")
    assert screen.count("pqlite> ") >= 2
    term.type('country = "US"\r')
    term.wait_for("% of 1,000)", times=2)
    term.type("\x12age >")  # Ctrl-R: search the history
    term.wait_for("I-search backward: age >", whole=False)
    term.type("\r")  # take what it found...
    term.type("\r")  # ...and evaluate it
    screen = term.wait_for("0 profiles (0.00% of 1,000)", times=2)
    assert screen.count("pqlite> age > 200") == 2
    term.type("\x04")  # Ctrl-D leaves
    term.child.expect(pexpect.EOF, timeout=10)
    term.child.close()
    assert term.child.exitstatus == 0
