"""Data types and the schema of a profile store: profile attributes and event fields.

The schema is the contract between the store (which holds columns of these types) and the
engine (which type-checks segment definitions against it). Struct columns are flattened to
dotted paths (``homeAddress.countryCode``), so every field is a scalar or a list of scalars.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from store.errors import StoreError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["DType", "Field", "Kind", "Schema", "SchemaError"]


class SchemaError(StoreError, ValueError):
    """A schema description or an Arrow schema that pqlite cannot use."""


class Kind(enum.StrEnum):
    """The scalar kinds a field can hold."""

    BOOL = "bool"
    INT = "int"
    FLOAT = "float"
    STRING = "string"
    TIMESTAMP = "timestamp"  # an instant, int64 milliseconds since the epoch, UTC
    DATE = "date"  # a calendar day, int32 days since the epoch

    @property
    def is_numeric(self) -> bool:
        return self in (Kind.INT, Kind.FLOAT)

    @property
    def is_temporal(self) -> bool:
        return self in (Kind.TIMESTAMP, Kind.DATE)


@dataclass(frozen=True, slots=True)
class DType:
    """A field's type: a scalar kind, or a list of that kind."""

    kind: Kind
    is_list: bool = False

    @classmethod
    def parse(cls, text: str) -> DType:
        """Read ``int``, ``list<string>`` and the other names `str` produces."""
        if not isinstance(text, str):
            raise SchemaError(f'a type must be written as a string such as "int", not {text!r}')
        spec = text.strip().lower()
        is_list = spec.startswith("list<") and spec.endswith(">")
        name = spec[5:-1].strip() if is_list else spec
        name = _KIND_ALIASES.get(name, name)
        try:
            return cls(Kind(name), is_list)
        except ValueError:
            names = ", ".join(k.value for k in Kind)
            raise SchemaError(
                f"unknown type {text!r}; use one of {names}, or list<...> of one of them"
            ) from None

    @property
    def element(self) -> DType:
        return DType(self.kind)

    def __str__(self) -> str:
        return f"list<{self.kind}>" if self.is_list else str(self.kind)


_KIND_ALIASES = {
    "boolean": "bool",
    "integer": "int",
    "long": "int",
    "int64": "int",
    "double": "float",
    "float64": "float",
    "str": "string",
    "datetime": "timestamp",
}


@dataclass(frozen=True, slots=True)
class Field:
    """One named field of the profile or of the events."""

    name: str
    dtype: DType
    nullable: bool = True


@dataclass(frozen=True)
class Schema:
    """Profile attributes and event fields, with the store's key fields.

    ``profile_key`` names the user's profile identifier (an attribute like any other);
    ``event_time`` names the events' timestamp field, ``event_type`` the field holding the
    event's type (used to index segments by the event types they read), and
    ``event_profile_key`` the events' reference to their profile.
    """

    profile: Mapping[str, Field]
    events: Mapping[str, Field] = field(default_factory=dict)
    profile_key: str | None = None
    event_time: str | None = None
    event_type: str | None = None
    event_profile_key: str | None = None

    def __post_init__(self) -> None:
        for role, name, fields in (
            ("profile_key", self.profile_key, self.profile),
            ("event_time", self.event_time, self.events),
            ("event_type", self.event_type, self.events),
            ("event_profile_key", self.event_profile_key, self.events),
        ):
            if name is not None and name not in fields:
                raise SchemaError(f"{role} {name!r} is not a field of the schema")
        if self.event_time is not None:
            kind = self.events[self.event_time].dtype
            if kind != DType(Kind.TIMESTAMP):
                raise SchemaError(
                    f"event_time {self.event_time!r} has type {kind}; it must be a timestamp"
                )

    @property
    def has_events(self) -> bool:
        return bool(self.events)

    @classmethod
    def of(
        cls,
        profile: Mapping[str, str | DType],
        events: Mapping[str, str | DType] | None = None,
        **keys: str | None,
    ) -> Schema:
        """Build a schema from ``{name: type}`` mappings, e.g. ``{"age": "int"}``.

        When events are given, ``event_time`` defaults to ``timestamp`` and ``event_type`` to
        ``eventType`` if such fields exist.
        """
        events = events or {}
        keys = dict(keys)
        if events:
            keys.setdefault("event_time", "timestamp" if "timestamp" in events else None)
            keys.setdefault("event_type", "eventType" if "eventType" in events else None)
        return cls(
            profile=_fields(profile.items()),
            events=_fields(events.items()),
            **keys,
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Schema:
        """Read the ``schema.toml`` layout: ``[profile]``, ``[events]`` and ``[keys]`` tables."""
        unknown = set(data) - {"profile", "events", "keys"}
        if unknown:
            raise SchemaError(
                f"unknown schema section(s) {sorted(unknown)}; expected profile, events, keys"
            )
        keys = dict(data.get("keys", {}))
        allowed = {"profile_key", "event_time", "event_type", "event_profile_key"}
        if set(keys) - allowed:
            raise SchemaError(
                f"unknown key(s) {sorted(set(keys) - allowed)} in [keys]; expected {sorted(allowed)}"
            )
        return cls.of(data.get("profile", {}), data.get("events", {}), **keys)

    @classmethod
    def from_arrow(
        cls,
        profiles: pa.Schema,
        events: pa.Schema | None = None,
        *,
        profile_key: str | None = None,
        event_time: str | None = None,
        event_type: str | None = None,
        event_profile_key: str | None = None,
    ) -> Schema:
        """Build a schema from the Arrow schemas of a profiles table and an events table.

        Struct columns flatten to dotted paths; dictionary-encoded strings are strings;
        a column of a type pqlite cannot evaluate raises `SchemaError` naming it.
        """
        profile_fields = _fields(_flatten_arrow(profiles))
        event_fields = _fields(_flatten_arrow(events)) if events is not None else {}
        if event_fields:
            event_time = event_time or ("timestamp" if "timestamp" in event_fields else None)
            if event_type is None and "eventType" in event_fields:
                event_type = "eventType"
        return cls(
            profile=profile_fields,
            events=event_fields,
            profile_key=profile_key,
            event_time=event_time,
            event_type=event_type,
            event_profile_key=event_profile_key,
        )

    def to_dict(self) -> dict[str, Any]:
        """The inverse of `from_dict` (for manifests and ``--json`` output)."""
        keys = {
            "profile_key": self.profile_key,
            "event_time": self.event_time,
            "event_type": self.event_type,
            "event_profile_key": self.event_profile_key,
        }
        return {
            "profile": {n: str(f.dtype) for n, f in self.profile.items()},
            "events": {n: str(f.dtype) for n, f in self.events.items()},
            "keys": {k: v for k, v in keys.items() if v is not None},
        }


def _fields(items: Iterable[tuple[str, str | DType | Field]]) -> dict[str, Field]:
    out: dict[str, Field] = {}
    for name, spec in items:
        if name in out:
            raise SchemaError(f"field {name!r} is defined twice")
        if isinstance(spec, Field):
            out[name] = spec
        else:
            out[name] = Field(name, spec if isinstance(spec, DType) else DType.parse(spec))
    return out


def _flatten_arrow(schema: pa.Schema) -> Iterable[tuple[str, Field]]:
    for arrow_field in schema:
        yield from _flatten_field(arrow_field.name, arrow_field.type, arrow_field.nullable)


def _flatten_field(
    name: str, arrow_type: pa.DataType, nullable: bool
) -> Iterable[tuple[str, Field]]:
    import pyarrow as pa

    if pa.types.is_struct(arrow_type):
        for child in arrow_type:
            yield from _flatten_field(
                f"{name}.{child.name}", child.type, nullable or child.nullable
            )
        return
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        kind = _arrow_kind(name, arrow_type.value_type, column_type=arrow_type)
        yield name, Field(name, DType(kind, is_list=True), nullable)
        return
    yield name, Field(name, DType(_arrow_kind(name, arrow_type)), nullable)


def _arrow_kind(name: str, arrow_type: pa.DataType, column_type: pa.DataType | None = None) -> Kind:
    """The kind of ``arrow_type`` (a column's type, or the element type of ``column_type``)."""
    import pyarrow as pa

    t = arrow_type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_boolean(t):
        return Kind.BOOL
    if pa.types.is_integer(t):
        return Kind.INT
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return Kind.FLOAT
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return Kind.STRING
    if pa.types.is_timestamp(t):
        return Kind.TIMESTAMP
    if pa.types.is_date(t):
        return Kind.DATE
    hint = _UNSUPPORTED_HINTS.get(str(t).split("[")[0].split("<")[0], "")
    raise SchemaError(
        f"column {name!r} has Arrow type {arrow_type if column_type is None else column_type}, "
        "which pqlite cannot evaluate; "
        "supported: bool, integers, floats, decimals, strings, timestamps, dates, "
        f"structs of these and lists of these{hint}"
    )


_UNSUPPORTED_HINTS = {
    "binary": "; cast binary columns to string (utf8) or drop them",
    "large_binary": "; cast binary columns to string (utf8) or drop them",
    "duration": "; store durations as integers (e.g. milliseconds)",
    "time32": "; store times of day as integers (e.g. seconds since midnight)",
    "time64": "; store times of day as integers (e.g. seconds since midnight)",
    "map": "; flatten the map into struct columns or two list columns",
    "list": "; lists of lists are not supported: flatten the inner lists",
    "large_list": "; lists of lists are not supported: flatten the inner lists",
    "struct": "; lists of structs are not supported: store each struct field as a list column",
    "fixed_size_list": "; cast fixed-size lists to list<...>",
    "list_view": "; cast list views to list<...>",
    "large_list_view": "; cast list views to list<...>",
    "null": "; the column holds only nulls: give it a type or drop it",
}
