"""Who has consented to what: a destination's consent rule read over a store, and kept up to
date by the attribute upserts of a stream.

`consent_mask` gives a byte per profile of the store (1: consent given for the purpose), from
a profile attribute or from a consent table keyed by profile; `ConsentState` adds the
upserts a streaming session receives, so a withdrawal is seen at the instant it arrives.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.destinations import ConfigError, Consent
from store.profile_store import ProfileStore
from store.schema import Kind

__all__ = ["ConsentState", "consent_mask"]


def consent_mask(store: ProfileStore, consent: Consent) -> np.ndarray:
    """A bool per profile of ``store`` (its base): whether the profile's consent for
    ``consent.purpose`` is given. A null value, or a profile absent from a consent table,
    is no consent."""
    if consent.file is not None:
        return _from_table(store, consent)
    column = store.profiles.get(consent.field)
    if column is None:
        raise ConfigError(f"consent field {consent.field!r} is not a profile attribute")
    valid = np.ones(len(column), bool) if column.valid is None else column.valid.astype(bool)
    kind = column.dtype.kind
    if column.dtype.is_list:
        raise ConfigError(f"consent field {consent.field!r} is a list: give a scalar field")
    if kind is Kind.BOOL:
        values = column.values.astype(bool)
        return np.asarray(np.where(values, consent.accepts(True), consent.accepts(False)) & valid)
    if kind is Kind.STRING:
        assert column.dictionary is not None
        table = np.array([consent.accepts(v) for v in column.dictionary.to_pylist()] + [False])
        codes = np.where(column.values < 0, len(table) - 1, column.values)
        return np.asarray(table[codes] & valid)
    if kind in (Kind.INT, Kind.FLOAT):
        numbers = [g for g in consent.granted if isinstance(g, int | float)
                   and not isinstance(g, bool)]
        return np.asarray(np.isin(column.values, numbers) & valid)
    raise ConfigError(f"consent field {consent.field!r} is a {kind}: consent is a boolean, a "
                      "text such as \"y\", or a number")


def _from_table(store: ProfileStore, consent: Consent) -> np.ndarray:
    from store.loading import read_table

    assert consent.file is not None
    path = Path(consent.file)
    if not path.exists():
        raise ConfigError(f"consent file {path}: no such file")
    table, source = read_table(path)
    key = consent.key or store.schema.profile_key or ""
    for name in (key, consent.field):
        if name not in table.column_names:
            raise ConfigError(f"{source}: no column {name!r} (the consent table needs the "
                              f"profile key {key!r} and the consent column {consent.field!r}); "
                              f"its columns are {', '.join(table.column_names)}")
    keys = table.column(key).combine_chunks()
    index = store.index_of(keys)
    values = table.column(consent.field).combine_chunks()
    distinct = pc.unique(values)
    accepted = pa.array([consent.accepts(v) for v in distinct.to_pylist()], pa.bool_())
    given = accepted.take(pc.index_in(values, value_set=distinct)).fill_null(False)
    mask = np.zeros(len(store), bool)
    known = index >= 0
    # The last row of a key wins, as an upsert would.
    mask[index[known]] = given.to_numpy(zero_copy_only=False)[known]
    return mask


class ConsentState:
    """A destination's consent over a streaming session's profiles: the store's, then the
    values its attribute upserts set (a null sets no consent)."""

    def __init__(self, consent: Consent, store: ProfileStore) -> None:
        self.consent = consent
        self.base = consent_mask(store, consent)
        self.overrides: dict[Any, bool] = {}  # profile key -> consent, after upserts

    @property
    def streams(self) -> bool:
        """Whether upserts can change it (the consent is an attribute, not a table)."""
        return self.consent.file is None

    def granted(self, index: int, key: Any) -> bool:
        if key in self.overrides:
            return self.overrides[key]
        return 0 <= index < len(self.base) and bool(self.base[index])

    def upsert(self, profiles: pa.Table, key_name: str) -> dict[Any, bool]:
        """Apply an upsert table; return the profiles whose consent it sets, with the new
        value (in the order of their last row)."""
        if not self.streams or self.consent.field not in profiles.column_names:
            return {}
        keys = profiles.column(key_name).to_pylist()
        values = profiles.column(self.consent.field).to_pylist()
        out: dict[Any, bool] = {}
        for key, value in zip(keys, values, strict=True):
            out.pop(key, None)  # the last row of a key wins, in its place
            out[key] = self.consent.accepts(value)
        self.overrides.update(out)
        return out
