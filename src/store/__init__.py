"""pqlite's storage layer: schema types, profile columns, event histories, memberships on disk.

This package never imports `engine`; the engine builds on it.
"""

from store.columns import Column as Column
from store.errors import DataError as DataError
from store.errors import StoreError as StoreError
from store.errors import StoreFormatError as StoreFormatError
from store.events import EventStore as EventStore
from store.events import Partition as Partition
from store.profile_store import ProfileStore as ProfileStore
from store.schema import DType as DType
from store.schema import Field as Field
from store.schema import Kind as Kind
from store.schema import Schema as Schema
from store.schema import SchemaError as SchemaError

__all__ = [
    "Column",
    "DType",
    "DataError",
    "EventStore",
    "Field",
    "Kind",
    "Partition",
    "ProfileStore",
    "Schema",
    "SchemaError",
    "StoreError",
    "StoreFormatError",
]
