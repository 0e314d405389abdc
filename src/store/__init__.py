"""pqlite's storage layer: schema types, profile columns, event histories, memberships on disk.

This package never imports `engine`; the engine builds on it.
"""

from store.schema import DType as DType
from store.schema import Field as Field
from store.schema import Kind as Kind
from store.schema import Schema as Schema
from store.schema import SchemaError as SchemaError

__all__ = ["DType", "Field", "Kind", "Schema", "SchemaError"]
