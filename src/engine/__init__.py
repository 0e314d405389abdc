"""pqlite's engine: the segment language, its compiler and evaluation.

The public API is what this module exports; everything else is private.

>>> import engine
>>> engine.unparse(engine.parse("NOT(age < 18)"))
'not (age < 18)'
"""

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

__all__ = [
    "Analysis",
    "Definition",
    "EngineError",
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
