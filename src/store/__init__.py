"""pqlite's storage layer: schema types, profile columns, event histories, memberships on disk.

This package never imports `engine`; the engine builds on it. The store classes (which need
numpy and pyarrow) load on first use, so tools that only need the schema start quickly.
"""

from typing import TYPE_CHECKING, Any

from store.errors import DataError as DataError
from store.errors import StoreError as StoreError
from store.errors import StoreFormatError as StoreFormatError
from store.schema import DType as DType
from store.schema import Field as Field
from store.schema import Kind as Kind
from store.schema import Schema as Schema
from store.schema import SchemaError as SchemaError

if TYPE_CHECKING:
    from store.columns import Column as Column
    from store.events import EventStore as EventStore
    from store.events import Partition as Partition
    from store.profile_store import ProfileStore as ProfileStore

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

_LAZY = {
    "Column": "store.columns",
    "EventStore": "store.events",
    "Partition": "store.events",
    "ProfileStore": "store.profile_store",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'store' has no attribute {name!r}")
