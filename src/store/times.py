"""Normalizing instants to int64 milliseconds since the epoch, UTC.

Input may be an Arrow timestamp of any unit (with or without a zone), a date, an epoch number
whose unit the caller states, or ISO 8601 text. Text and zone-less timestamps without an
offset are read in ``assume_tz`` (UTC unless said otherwise); a local time that a daylight
saving change makes ambiguous or skips is an error naming the row, as is text that is not
ISO 8601. Nothing is rounded silently: a value finer than a millisecond is an error too.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from store.errors import DataError

__all__ = ["EPOCH_UNITS", "iso_ms", "to_epoch_ms"]

EPOCH_UNITS = {"s": 1000, "ms": 1, "us": 1000, "ns": 1_000_000}  # ms per unit, or units per ms
_MS = pa.timestamp("ms", tz="UTC")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# An offset after a time of day (a date alone ends in "-DD", which is not an offset).
_ZONED = r"\d\d:\d\d(:\d\d(\.\d*)?)?\s*(Z|z|[+-]\d\d(:?\d\d)?)$"


def iso_ms(at: int | dt.datetime) -> str:
    """An instant (epoch milliseconds, or an aware datetime) as ISO 8601 in UTC to the
    millisecond: ``2025-01-01T00:00:00.000Z``, as pqlite writes instants everywhere."""
    when = at if isinstance(at, dt.datetime) else _EPOCH + dt.timedelta(milliseconds=at)
    return when.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_epoch_ms(
    array: pa.Array, column: str, *, unit: str | None = None, assume_tz: str = "UTC"
) -> pa.Array:
    """``array`` as timestamp[ms, UTC] (nulls kept), or a `DataError` naming the bad row.

    ``unit`` (s, ms, us, ns) is required for numbers, which are read as epoch offsets.
    """
    t = array.type
    if pa.types.is_dictionary(t):
        array, t = array.dictionary_decode(), t.value_type
    if pa.types.is_timestamp(t):
        if t.tz is None:
            array = _localize(array, column, assume_tz)
        return _to_ms(array, column)
    if pa.types.is_date(t):
        return array.cast(pa.timestamp("ms")).cast(_MS)
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        return _from_epoch(array, column, unit)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return _from_text(array.cast(pa.string()), column, assume_tz)
    raise DataError(
        f"cannot read {t} values as timestamps",
        column=column,
        hint="give timestamps as an Arrow timestamp or date column, ISO 8601 text, "
        "or epoch numbers with their unit",
    )


def _to_ms(array: pa.Array, column: str) -> pa.Array:
    try:
        return array.cast(_MS)
    except pa.ArrowInvalid:
        if array.type.unit == "s":  # seconds lose no precision as milliseconds: they overflow
            seconds = array.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
            _check_range(seconds, (2**63 - 1) // 1000, "s", column)
        exact = pc.equal(array.cast(_MS, safe=False).cast(array.type), array)
        row = _first_false(exact)
        raise DataError(
            f"timestamp {_text(array, row)} is more precise than a millisecond",
            column=column,
            row=row,
            hint="pqlite keeps timestamps in whole milliseconds: truncate the column first, "
            "e.g. pyarrow.compute.floor_temporal(col, unit='millisecond')",
        ) from None


def _localize(array: pa.Array, column: str, tz: str) -> pa.Array:
    """Read zone-less timestamps as wall-clock times in ``tz``."""
    if tz == "UTC":
        return array.cast(pa.timestamp(array.type.unit, tz="UTC"))
    try:
        return pc.assume_timezone(array, tz, ambiguous="raise", nonexistent="raise")
    except pa.ArrowInvalid:
        pass
    # Error path. A time a daylight saving change repeats or skips has an earliest and a
    # latest reading that differ; the first such row is the one to report.
    try:
        early = pc.assume_timezone(array, tz, ambiguous="earliest", nonexistent="earliest")
        late = pc.assume_timezone(array, tz, ambiguous="latest", nonexistent="latest")
    except pa.ArrowInvalid:
        raise DataError(
            f"unknown time zone {tz!r}",
            column=column,
            hint="give assume_tz as a time zone database name, such as 'Europe/London'",
        ) from None
    row = _first_false(pc.equal(early, late))
    try:
        pc.assume_timezone(array.slice(row, 1), tz, ambiguous="earliest", nonexistent="raise")
        problem = "is ambiguous"
    except pa.ArrowInvalid:
        problem = "does not exist"
    raise DataError(
        f"local time {_text(array, row)} {problem} in time zone {tz} "
        "(a daylight saving change)",
        column=column,
        row=row,
        hint="give such times with an explicit UTC offset",
    )


def _from_epoch(array: pa.Array, column: str, unit: str | None) -> pa.Array:
    if unit not in EPOCH_UNITS:
        raise DataError(
            f"column holds {array.type} numbers, not timestamps, and no epoch unit was given",
            column=column,
            hint=f"say which unit the numbers count since 1970-01-01 UTC: one of "
            f"{', '.join(EPOCH_UNITS)} (for example time_units={{{column!r}: 'ms'}})",
        )
    # Integers stay integers (a null would make numpy floats, inexact beyond 2**53).
    filled = array.fill_null(0) if pa.types.is_integer(array.type) else array
    values = filled.to_numpy(zero_copy_only=False)
    valid = ~np.asarray(array.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    factor = EPOCH_UNITS[unit]
    if values.dtype.kind in "iu":
        _check_range(values, (2**63 - 1) // (factor if unit == "s" else 1), unit, column)
    with np.errstate(invalid="ignore", over="ignore"):
        if unit == "s":
            ms = values.astype(np.float64) * factor if values.dtype.kind == "f" else values * factor
        elif unit == "ms":
            ms = values
        else:
            ms = values / factor if values.dtype.kind == "f" else values // factor
            exact = values % factor == 0
            bad = valid & ~exact
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise DataError(
                    f"{values[row]} {unit} is not a whole number of milliseconds",
                    column=column,
                    row=row,
                    hint="pqlite keeps timestamps in whole milliseconds: round the column first",
                )
    if ms.dtype.kind == "f":
        whole = np.isfinite(ms) & (ms == np.round(ms)) & (np.abs(ms) < 2**62)
        bad = valid & ~whole
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{values[row]} is not a whole number of milliseconds since the epoch",
                column=column,
                row=row,
                hint="pqlite keeps timestamps in whole milliseconds: round the column first",
            )
        ms = np.where(valid, ms, 0).astype(np.int64)
    ms = np.asarray(ms, dtype=np.int64)
    return pa.array(ms, type=pa.int64(), mask=~valid).cast(_MS)


def _from_text(array: pa.Array, column: str, tz: str) -> pa.Array:
    """ISO 8601 text; rows with an offset (or Z) are exact, the others read in ``tz``."""
    stripped = pc.utf8_trim_whitespace(array)
    zoned = pc.fill_null(pc.match_substring_regex(stripped, _ZONED), False)
    out = pa.nulls(len(array), _MS)
    parts = []
    for mask, target in ((zoned, _MS), (pc.invert(zoned), pa.timestamp("ms"))):
        picked = stripped.filter(mask)
        if not len(picked):
            continue
        try:
            parsed = picked.cast(target)
        except pa.ArrowInvalid:
            rows = np.flatnonzero(np.asarray(mask.to_numpy(zero_copy_only=False)))
            raise _bad_text(picked, rows, target, column) from None
        if parsed.type.tz is None:
            try:
                localized = _localize(parsed, column, tz)
            except DataError as e:
                if e.row is None:
                    raise
                rows = np.flatnonzero(np.asarray(mask.to_numpy(zero_copy_only=False)))
                raise DataError(e.message, column=column, row=int(rows[e.row]),
                                hint=e.hint) from None
            parsed = localized.cast(_MS)
        parts.append((mask, parsed))
    if not parts:
        return out
    if len(parts) == 1 and len(parts[0][1]) == len(array):
        return parts[0][1]
    # Both kinds present: scatter each back to its rows.
    values = np.zeros(len(array), np.int64)
    valid = np.zeros(len(array), bool)
    for mask, parsed in parts:
        rows = np.asarray(mask.to_numpy(zero_copy_only=False))
        values[rows] = parsed.cast(pa.int64()).fill_null(0).to_numpy()
        valid[rows] = np.asarray(parsed.is_valid().to_numpy(zero_copy_only=False))
    return pa.array(values, pa.int64(), mask=~valid).cast(_MS)


def _bad_text(picked: pa.Array, rows: np.ndarray, target: pa.DataType, column: str) -> DataError:
    for i, value in enumerate(picked.to_pylist()):
        if value is None:
            continue
        try:
            pa.array([value]).cast(target)
        except pa.ArrowInvalid:
            try:
                pa.array([value]).cast(pa.timestamp("ns", tz=target.tz))
            except pa.ArrowInvalid:
                pass
            else:
                return DataError(
                    f"timestamp {value!r} is more precise than a millisecond",
                    column=column,
                    row=int(rows[i]),
                    hint="pqlite keeps timestamps in whole milliseconds: write at most three "
                    "digits of fractional seconds",
                )
            return DataError(
                f"{value!r} is not an ISO 8601 date or timestamp",
                column=column,
                row=int(rows[i]),
                hint="write instants like 2024-05-01T12:00:00Z, 2024-05-01 12:00:00+02:00 "
                "or 2024-05-01",
            )
    return DataError("unparsable timestamps", column=column)  # pragma: no cover


def _check_range(values: np.ndarray, limit: int, unit: str, column: str) -> None:
    """A `DataError` for the first of ``values`` (in ``unit``) beyond int64 milliseconds."""
    bad = (values > limit) | (values < -limit - 1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{values[row]} {unit} since the epoch is out of range",
            column=column,
            row=row,
            hint="pqlite's timestamps are int64 milliseconds since 1970-01-01 UTC; check the "
            "column's unit (time_units) or drop such values",
        )


def _text(array: pa.Array, row: int) -> str:
    """Row ``row`` of a timestamp array as text (nanoseconds do not fit a Python datetime)."""
    return str(array.slice(row, 1).cast(pa.string())[0].as_py())


def _first_false(mask: pa.Array) -> int:
    values = np.asarray(pc.fill_null(mask, True).to_numpy(zero_copy_only=False))
    return int(np.flatnonzero(~values)[0])
