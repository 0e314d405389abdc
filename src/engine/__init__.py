"""pqlite's engine: the segment language, its compiler and evaluation.

The public API is what this module exports; everything else is private.

>>> import engine
>>> engine.unparse(engine.parse("NOT(age < 18)"))
'not (age < 18)'
"""

from typing import TYPE_CHECKING, Any

from engine.analysis import Analysis as Analysis
from engine.analysis import analyze as analyze
from engine.checker import check as check
from engine.checker import validate as validate
from engine.errors import EngineError as EngineError
from engine.errors import SegmentError as SegmentError
from engine.errors import SegmentErrorGroup as SegmentErrorGroup
from engine.errors import SegmentNameError as SegmentNameError
from engine.errors import SegmentSyntaxError as SegmentSyntaxError
from engine.errors import SegmentTypeError as SegmentTypeError
from engine.errors import SegmentValueError as SegmentValueError
from engine.errors import Span as Span
from engine.parser import parse as parse
from engine.passes import optimize as optimize
from engine.segments import Definition as Definition
from engine.segments import SegmentFile as SegmentFile
from engine.unparse import unparse as unparse
from store.schema import Schema as Schema

if TYPE_CHECKING:
    from engine.codegen import CompileError as CompileError
    from engine.session import Engine as Engine
    from engine.session import Result as Result

__all__ = [
    "Analysis",
    "CompileError",
    "Definition",
    "Engine",
    "EngineError",
    "Result",
    "Schema",
    "SegmentError",
    "SegmentErrorGroup",
    "SegmentFile",
    "SegmentNameError",
    "SegmentSyntaxError",
    "SegmentTypeError",
    "SegmentValueError",
    "Span",
    "analyze",
    "check",
    "optimize",
    "parse",
    "unparse",
    "validate",
]

# The evaluation side needs Numba (a third of a second to import): loaded on first use, so
# checking and formatting definitions start quickly.
_LAZY = {
    "CompileError": "engine.codegen",
    "Engine": "engine.session",
    "Result": "engine.session",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
