"""Find ``segment.lark``, the only source of the grammar, in a wheel or in a source checkout."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["grammar_path", "grammar_text"]


def grammar_path() -> Path:
    """Where the grammar file is.

    A built wheel carries it as package data (``engine/grammar/segment.lark``, placed by the
    build's force-include); an editable install or a checkout does not, so fall back to the
    repository's ``grammar/`` directory.
    """
    packaged = resources.files("engine") / "grammar" / "segment.lark"
    if packaged.is_file():
        return Path(str(packaged))
    checkout = Path(__file__).resolve().parents[2] / "grammar" / "segment.lark"
    if checkout.is_file():
        return checkout
    raise FileNotFoundError(
        "segment.lark not found: looked for package data engine/grammar/segment.lark and "
        f"{checkout}; reinstall pqlite"
    )


def grammar_text() -> str:
    return grammar_path().read_text(encoding="utf-8")
