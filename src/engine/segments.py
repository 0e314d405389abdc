"""Segment-definition files: TOML with one ``[segment.NAME]`` table per segment.

    [segment.recent_buyers]
    description = "Bought something in the last week"
    pql = 'xEvent[eventType = "purchase" and timestamp occurs < 7 days before now].count() > 0'
    merge_policy = "crm_first"    # optional: over people stitched under that policy

(``merge_policy`` matters where the store is people under several policies:
`engine.policies`, ``pqlite run`` on a ``pqlite stitch`` directory.)

A ``.pql`` file holds a single definition named after the file. Errors in a definition are
reported at their position in the file, not just in the definition's text.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import EngineError, Span

__all__ = ["Definition", "SegmentFile", "SegmentFileError", "dependency_cycle"]

_KEYS = {"pql", "description", "merge_policy"}


class SegmentFileError(EngineError, ValueError):
    """A segments file that cannot be read: not TOML, or not laid out as segment tables."""

    def __init__(
        self,
        message: str,
        path: Path | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.message, self.path, self.line, self.column = message, path, line, column
        where = str(path) if path else ""
        if line is not None:
            where += f":{line}" + (f":{column}" if column is not None else "")
        super().__init__(f"{where}: {message}" if where else message)


@dataclass(frozen=True)
class Definition:
    """One segment: its name, its text and where the text starts in its file."""

    name: str
    pql: str
    description: str | None = None
    origin: tuple[int, int] | None = None  # (line, column) of the text's first character
    merge_policy: str | None = None  # the merge policy it evaluates under (None: default)

    def locate(self, span: Span | None) -> tuple[int, int] | None:
        """File (line, column) of a position in the definition's text, when it maps exactly."""
        if span is None or self.origin is None:
            return None
        line0, col0 = self.origin
        return line0 + span.line - 1, span.column + (col0 - 1 if span.line == 1 else 0)


@dataclass(frozen=True)
class SegmentFile:
    """The definitions of a file, in file order."""

    path: Path | None
    definitions: Mapping[str, Definition]

    def __iter__(self) -> Iterator[Definition]:
        return iter(self.definitions.values())

    def __len__(self) -> int:
        return len(self.definitions)

    def __getitem__(self, name: str) -> Definition:
        return self.definitions[name]

    @classmethod
    def load(cls, path: str | Path) -> SegmentFile:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SegmentFileError("no such file", p) from None
        except (UnicodeDecodeError, IsADirectoryError) as e:
            raise SegmentFileError(f"not a text file ({e})", p) from None
        if p.suffix == ".pql":
            return cls(p, {p.stem: Definition(p.stem, text.strip(), None, _pql_origin(text))})
        return cls.from_toml(text, p)

    @classmethod
    def from_toml(cls, text: str, path: Path | None = None) -> SegmentFile:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            m = re.search(r"\(at line (\d+), column (\d+)\)", str(e))
            line, col = (int(m.group(1)), int(m.group(2))) if m else (None, None)
            raise SegmentFileError(
                f"not valid TOML: {str(e).split(' (at line')[0]}", path, line, col
            ) from None
        segments = data.get("segment")
        extra = sorted(set(data) - {"segment"})
        if extra:
            raise SegmentFileError(
                f"unexpected top-level key(s) {extra}; put each definition in a [segment.NAME] table",
                path,
            )
        if not isinstance(segments, dict) or not segments:
            raise SegmentFileError("no [segment.NAME] tables found", path)
        definitions: dict[str, Definition] = {}
        for name, table in segments.items():
            definitions[name] = _definition(name, table, text, path)
        return cls(path, definitions)


def _definition(name: str, table: Any, text: str, path: Path | None) -> Definition:
    line = _header_line(text, name)
    if not isinstance(table, dict):
        raise SegmentFileError(f"segment.{name} must be a table with a pql key", path, line)
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise SegmentFileError(
            f"segment {name!r} has unknown key(s) {unknown}; expected {sorted(_KEYS)}", path, line
        )
    pql, description = table.get("pql"), table.get("description")
    if not isinstance(pql, str) or not pql.strip():
        raise SegmentFileError(f"segment {name!r} needs a non-empty pql string", path, line)
    if description is not None and not isinstance(description, str):
        raise SegmentFileError(f"segment {name!r}: description must be a string", path, line)
    policy = table.get("merge_policy")
    if policy is not None and (not isinstance(policy, str) or not policy):
        raise SegmentFileError(f"segment {name!r}: merge_policy must be a policy's name",
                               path, line)
    return Definition(name, pql, description, _toml_origin(text, line, pql), policy)


def _header_line(text: str, name: str) -> int | None:
    pattern = re.compile(
        r"^\s*\[\s*segment\s*\.\s*(?:"
        + re.escape(name)
        + r"|\""
        + re.escape(name)
        + r"\"|'"
        + re.escape(name)
        + r"')\s*\]",
        re.MULTILINE,
    )
    m = pattern.search(text)
    return text.count("\n", 0, m.start()) + 1 if m else None


def _toml_origin(text: str, header_line: int | None, pql: str) -> tuple[int, int] | None:
    """Where the pql value's text starts, if its characters stand verbatim in the file."""
    if header_line is None:
        return None
    lines = text.split("\n")
    offset = sum(len(x) + 1 for x in lines[:header_line])
    m = re.compile(r"^\s*pql\s*=\s*('''|\"\"\"|'|\")", re.MULTILINE).search(text, offset)
    if not m:
        return None
    start = m.end()
    if m.group(1) in ("'''", '"""') and text.startswith("\n", start):
        start += 1  # TOML drops a newline right after the opening delimiter
    if not text.startswith(pql, start):
        return None  # escapes make the value differ from its source text
    line = text.count("\n", 0, start) + 1
    return line, start - (text.rfind("\n", 0, start) + 1) + 1


def _pql_origin(text: str) -> tuple[int, int]:
    stripped = text.lstrip()
    start = len(text) - len(stripped)
    return text.count("\n", 0, start) + 1, start - (text.rfind("\n", 0, start) + 1) + 1


def dependency_cycle(refs: Mapping[str, frozenset[str]]) -> list[str] | None:
    """A cycle of inSegment references, as the path of names that closes it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        path.append(name)
        for ref in sorted(refs.get(name, ())):
            if state.get(ref) == 1:
                return [*path[path.index(ref) :], ref]
            if ref in refs and ref not in state:
                found = visit(ref)
                if found:
                    return found
        path.pop()
        state[name] = 2
        return None

    for name in refs:
        if name not in state:
            found = visit(name)
            if found:
                return found
    return None
