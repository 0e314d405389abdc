"""Readers for the text fixtures in tests/fixtures (one format each, shared by the tests)."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"


def load_pairs(path: Path) -> list[tuple[int, str, str]]:
    """Blocks of an input line and an expected line, separated by blank lines.

    Lines starting with ``--`` are comments. Returns (line number, input, expected).
    """
    pairs: list[tuple[int, str, str]] = []
    block: list[tuple[int, str]] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate([*lines, ""], start=1):
        if line.startswith("--"):
            continue
        if line.strip():
            block.append((number, line))
            continue
        if block:
            assert len(block) == 2, f"{path.name}:{block[0][0]}: a block needs input and expected"
            pairs.append((block[0][0], block[0][1], block[1][1]))
            block = []
    return pairs
