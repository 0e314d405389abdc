"""Where pqlite keeps things for its user: the XDG base directories, each use overridable.

Compiled kernels and the demo store are caches (``$XDG_CACHE_HOME``, else ``~/.cache``); the
REPL's history is data (``$XDG_DATA_HOME``, else ``~/.local/share``).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["user_path"]

_BASES = {"cache": ("XDG_CACHE_HOME", (".cache",)),
          "data": ("XDG_DATA_HOME", (".local", "share"))}


def user_path(override: str, kind: str, *parts: str) -> Path:
    """``$override`` if it is set, else ``pqlite/PARTS`` in the user's ``kind`` directory
    ("cache" or "data")."""
    configured = os.environ.get(override)
    if configured:
        return Path(configured).expanduser()
    variable, default = _BASES[kind]
    base = os.environ.get(variable) or Path.home().joinpath(*default)
    return Path(base) / "pqlite" / Path(*parts)
