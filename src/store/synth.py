"""Deterministic generator of the reference workload B10 (synthetic profiles and events).

B10 is the dataset of ``shared/reference/performance-baselines.md`` (section 1): 10M profiles
and about 60M events, with the column names and types of ``examples/b10.schema.toml``.

* profiles: ``profile_id`` 0..n-1, ``age`` (12% null), ``country`` (26.1% "US", 22.8% in the
  ten EU countries of `B10_EU_COUNTRIES`), ``loyalty_tier`` (15% gold or platinum),
  ``lifetime_value`` (lognormal, 3.2% above 1000), ``email_opt_in`` (42% true) and
  ``signup_ts`` (between 7 years and 90 days before ``now``).
* events: per profile, a count from the truncated power law p(k) ∝ (k+3)^-2.369, k ≤ 10,000
  (mean 6, median 1, 36% of profiles without events); iid event types with the shares of
  `EVENT_TYPE_SHARES`; ``timestamp`` uniform over the 90 days before ``now``; on commerce
  events only (product_view, add_to_cart, purchase) a ``category`` among "c0000".."c0999"
  (Zipf(1); half of a profile's commerce events use its favourite category, itself drawn
  from Zipf(1)) and a ``price`` (lognormal(4, 1), rounded to cents). Events are sorted by
  (profile_id, timestamp).

Everything is vectorised with numpy. Random numbers are drawn per unit of 65,536 profiles
from a generator seeded by ``(seed, first profile_id of the unit)``, and every unit is always
generated whole. So the output depends only on ``(seed, now_ms)``: never on the block size
the caller streams with, and the first n profiles (with their events) of a larger dataset
are exactly the dataset of n profiles.

String columns are Arrow dictionary arrays (int8 indices; int16 for ``category``).
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np
import numpy.typing as npt
import pyarrow as pa

__all__ = [
    "B10_EU_COUNTRIES",
    "B10_NOW_MS",
    "B10_PROFILES",
    "B10_SEED",
    "EVENTS_SCHEMA",
    "EVENT_TYPES",
    "EVENT_TYPE_SHARES",
    "PROFILES_SCHEMA",
    "generate_b10",
    "live_events",
    "write_b10_parquet",
]

B10_NOW_MS: int = 1_735_689_600_000
"""The fixed "now" of B10: 2025-01-01T00:00Z, in milliseconds since the epoch."""
B10_SEED: int = 20250101
"""The seed of the reference dataset."""
B10_PROFILES: int = 10_000_000
"""The number of profiles of the full-size reference dataset."""

EVENT_TYPES: tuple[str, ...] = (
    "page_view",
    "product_view",
    "search",
    "add_to_cart",
    "email_open",
    "purchase",
    "email_click",
)
EVENT_TYPE_SHARES: tuple[float, ...] = (0.70, 0.15, 0.06, 0.04, 0.03, 0.015, 0.005)
_COMMERCE = np.isin(EVENT_TYPES, ("product_view", "add_to_cart", "purchase"))

B10_EU_COUNTRIES: tuple[str, ...] = ("DE", "FR", "IT", "ES", "NL", "PL", "SE", "BE", "AT", "IE")
"""The ten EU countries of segment S9 (``age IS NULL AND country IN (...)``)."""

# Shares in basis points. US and the EU ten are fixed by the baselines (26.1% and, from the S9
# member count, 22.8%); the rest is a plausible spread.
_COUNTRY_BP: dict[str, int] = {
    "US": 2610,
    **dict(zip(B10_EU_COUNTRIES, (500, 420, 340, 300, 200, 180, 120, 100, 70, 50), strict=True)),
    "GB": 650, "IN": 600, "BR": 550, "CA": 450, "JP": 400, "MX": 300, "AU": 250, "KR": 200,
    "ID": 200, "TR": 150, "ZA": 150, "AR": 150, "PH": 150, "CH": 120, "CO": 90, "PT": 90,
    "DK": 90, "NO": 80, "NG": 80, "FI": 70, "NZ": 60, "SG": 60, "AE": 60, "CL": 60, "IL": 50,
}  # fmt: skip
assert sum(_COUNTRY_BP.values()) == 10_000

# 15% gold or platinum, independent of lifetime value: with LTV > 1000 at 3.2% that gives the
# baseline's S2 count (17.7%).
_TIERS: dict[str, float] = {"bronze": 0.55, "silver": 0.30, "gold": 0.11, "platinum": 0.04}

_N_CATEGORIES = 1000
_MAX_EVENTS = 10_000  # per profile
_POWER = 2.369
_DAY_MS = 86_400_000
_WINDOW_MS = 90 * _DAY_MS  # events fall in [now - 90 days, now)
_UNIT = 1 << 16  # profiles per random-number unit; fixed, so results never depend on `block`
_ROW_GROUP = 1 << 20

_AGE_NULL = 0.12
# Ages: normal(38, 13.6), rounded, outside 18..90 redrawn uniformly. That puts 42.7% of known
# ages in 25..40, which reproduces the baseline's S1 count (US and age 25..40: 9.81%).
_AGE_MEAN, _AGE_SD, _AGE_MIN, _AGE_MAX = 38.0, 13.6, 18, 90
_OPT_IN = 0.42
_LTV_SIGMA = 1.2
_LTV_MU = math.log(1000.0) - _LTV_SIGMA * NormalDist().inv_cdf(1.0 - 0.032)  # P(LTV > 1000) = 3.2%
_FAVOURITE_SHARE = 0.5


def _string_type(index: pa.DataType) -> pa.DataType:
    return pa.dictionary(index, pa.string())


_TS = pa.timestamp("ms", tz="UTC")

PROFILES_SCHEMA: pa.Schema = pa.schema(
    [
        pa.field("profile_id", pa.int64(), nullable=False),
        pa.field("age", pa.int64()),
        pa.field("country", _string_type(pa.int8()), nullable=False),
        pa.field("loyalty_tier", _string_type(pa.int8()), nullable=False),
        pa.field("lifetime_value", pa.float64(), nullable=False),
        pa.field("email_opt_in", pa.bool_(), nullable=False),
        pa.field("signup_ts", _TS, nullable=False),
    ]
)
"""Arrow schema of the profile batches `generate_b10` yields."""

EVENTS_SCHEMA: pa.Schema = pa.schema(
    [
        pa.field("profile_id", pa.int64(), nullable=False),
        pa.field("timestamp", _TS, nullable=False),
        pa.field("eventType", _string_type(pa.int8()), nullable=False),
        pa.field("category", _string_type(pa.int16())),
        pa.field("price", pa.float64()),
    ]
)
"""Arrow schema of the event batches `generate_b10` yields."""

_I64 = npt.NDArray[np.int64]
_F64 = npt.NDArray[np.float64]
_Array = npt.NDArray[np.generic]
_UnitSlice = tuple[dict[str, _Array], dict[str, _Array]]


def _cdf(weights: npt.ArrayLike) -> _F64:
    """Cumulative shares for inverse-CDF sampling with ``searchsorted(cdf, u, "right")``."""
    cdf = np.cumsum(np.asarray(weights, dtype=np.float64))
    cdf /= cdf[-1]
    cdf[-1] = 1.0  # u < 1 always lands on a valid index
    return cdf


_COUNT_CDF = _cdf((np.arange(_MAX_EVENTS + 1) + 3.0) ** -_POWER)
# The type shares are multiples of 1/200: one uint8 draw and a table lookup per event.
_TYPE_TABLE = np.repeat(
    np.arange(len(EVENT_TYPES), dtype=np.int8),
    np.rint(np.asarray(EVENT_TYPE_SHARES) * 200).astype(np.int64),
)
assert _TYPE_TABLE.size == 200
_CATEGORY_CDF = _cdf(1.0 / np.arange(1, _N_CATEGORIES + 1))  # Zipf(1): c0000 is the most popular
_COUNTRY_CDF = _cdf(list(_COUNTRY_BP.values()))
_TIER_CDF = _cdf(list(_TIERS.values()))

_COUNTRY_DICT = pa.array(list(_COUNTRY_BP), pa.string())
_TIER_DICT = pa.array(list(_TIERS), pa.string())
_TYPE_DICT = pa.array(EVENT_TYPES, pa.string())
_CATEGORY_DICT = pa.array([f"c{i:04d}" for i in range(_N_CATEGORIES)], pa.string())


@dataclass(frozen=True, slots=True)
class _Unit:
    """The columns of `_UNIT` consecutive profiles and of their events, as numpy arrays."""

    profiles: dict[str, _Array]
    events: dict[str, _Array]
    offsets: _I64  # events of profile i (unit-local) are events[offsets[i]:offsets[i + 1]]

    def slice(self, start: int, stop: int) -> _UnitSlice:
        lo, hi = int(self.offsets[start]), int(self.offsets[stop])
        return (
            {k: v[start:stop] for k, v in self.profiles.items()},
            {k: v[lo:hi] for k, v in self.events.items()},
        )


def _draw(rng: np.random.Generator, cdf: _F64, size: int, dtype: type[np.integer]) -> _Array:
    return np.searchsorted(cdf, rng.random(size), side="right").astype(dtype)


def _generate_unit(unit: int, seed: int, now_ms: int) -> _Unit:
    first = unit * _UNIT
    n = _UNIT
    profile_seq, event_seq = np.random.SeedSequence((seed, first)).spawn(2)
    prng = np.random.Generator(np.random.PCG64(profile_seq))
    erng = np.random.Generator(np.random.PCG64(event_seq))

    # ---- profiles
    age_valid = prng.random(n) >= _AGE_NULL
    age = np.rint(prng.normal(_AGE_MEAN, _AGE_SD, n)).astype(np.int64)
    out_of_range = (age < _AGE_MIN) | (age > _AGE_MAX)
    age[out_of_range] = prng.integers(_AGE_MIN, _AGE_MAX + 1, int(out_of_range.sum()))
    profiles: dict[str, _Array] = {
        "profile_id": np.arange(first, first + n, dtype=np.int64),
        "age": age,
        "age_valid": age_valid,
        "country": _draw(prng, _COUNTRY_CDF, n, np.int8),
        "loyalty_tier": _draw(prng, _TIER_CDF, n, np.int8),
        "lifetime_value": np.round(prng.lognormal(_LTV_MU, _LTV_SIGMA, n), 2),
        "email_opt_in": prng.random(n) < _OPT_IN,
        "signup_ts": now_ms - prng.integers(_WINDOW_MS, 7 * 365 * _DAY_MS, n, dtype=np.int64),
    }

    # ---- events: counts, then (pid, ts) sorted together through one int64 key
    counts = np.searchsorted(_COUNT_CDF, erng.random(n), side="right").astype(np.int64)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    n_events = int(offsets[-1])
    local = np.repeat(np.arange(n, dtype=np.int64), counts)
    key = (local << 33) | erng.integers(0, _WINDOW_MS, n_events, dtype=np.int64)  # 90 d < 2**33
    key.sort()
    ts = (key & ((1 << 33) - 1)) + (now_ms - _WINDOW_MS)
    del key

    types = _TYPE_TABLE[erng.integers(0, 200, n_events, dtype=np.uint8)]
    commerce = _COMMERCE[types]
    where = np.flatnonzero(commerce)
    favourite = _draw(erng, _CATEGORY_CDF, n, np.int16)
    use_favourite = erng.random(where.size) < _FAVOURITE_SHARE
    any_category = _draw(erng, _CATEGORY_CDF, where.size, np.int16)
    category = np.zeros(n_events, dtype=np.int16)
    category[where] = np.where(use_favourite, favourite[local[where]], any_category)
    price = np.full(n_events, np.nan)
    price[where] = np.round(erng.lognormal(4.0, 1.0, where.size), 2)

    events: dict[str, _Array] = {
        "profile_id": local + first,
        "timestamp": ts,
        "eventType": types,
        "commerce": commerce,
        "category": category,
        "price": price,
    }
    return _Unit(profiles, events, offsets)


def _units(n_profiles: int, block: int, seed: int, now_ms: int) -> Iterator[list[_UnitSlice]]:
    """Per block of profiles, the unit slices that make it up (each unit generated once)."""
    cached: tuple[int, _Unit] | None = None
    for lo in range(0, n_profiles, block):
        hi = min(lo + block, n_profiles)
        parts: list[_UnitSlice] = []
        for u in range(lo // _UNIT, (hi - 1) // _UNIT + 1):
            if cached is None or cached[0] != u:
                cached = (u, _generate_unit(u, seed, now_ms))
            base = u * _UNIT
            parts.append(cached[1].slice(max(lo, base) - base, min(hi, base + _UNIT) - base))
        yield parts


def _join(parts: list[dict[str, _Array]]) -> dict[str, _Array]:
    if len(parts) == 1:
        return parts[0]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _plain(arrow_type: pa.DataType, values: _Array, valid: _Array | None = None) -> pa.Array:
    """Wrap a numpy column without copying its values (a validity bitmap when ``valid``)."""
    values = np.ascontiguousarray(values)
    bitmap, nulls = None, 0
    if valid is not None:
        nulls = int(valid.size - np.count_nonzero(valid))
        if nulls:
            bitmap = pa.py_buffer(np.packbits(valid.astype(np.bool_), bitorder="little"))
    return pa.Array.from_buffers(arrow_type, len(values), [bitmap, pa.py_buffer(values)], nulls)


def _dictionary(
    dictionary: pa.Array, indices: _Array, index_type: pa.DataType, valid: _Array | None = None
) -> pa.Array:
    return pa.DictionaryArray.from_arrays(_plain(index_type, indices, valid), dictionary)


def _to_arrow(
    profiles: dict[str, _Array], events: dict[str, _Array]
) -> tuple[pa.RecordBatch, pa.RecordBatch]:
    p = pa.RecordBatch.from_arrays(
        [
            _plain(pa.int64(), profiles["profile_id"]),
            _plain(pa.int64(), profiles["age"], profiles["age_valid"]),
            _dictionary(_COUNTRY_DICT, profiles["country"], pa.int8()),
            _dictionary(_TIER_DICT, profiles["loyalty_tier"], pa.int8()),
            _plain(pa.float64(), profiles["lifetime_value"]),
            pa.array(profiles["email_opt_in"], pa.bool_()),
            _plain(_TS, profiles["signup_ts"]),
        ],
        schema=PROFILES_SCHEMA,
    )
    commerce = events["commerce"]
    e = pa.RecordBatch.from_arrays(
        [
            _plain(pa.int64(), events["profile_id"]),
            _plain(_TS, events["timestamp"]),
            _dictionary(_TYPE_DICT, events["eventType"], pa.int8()),
            _dictionary(_CATEGORY_DICT, events["category"], pa.int16(), commerce),
            _plain(pa.float64(), events["price"], commerce),
        ],
        schema=EVENTS_SCHEMA,
    )
    return p, e


def generate_b10(
    n_profiles: int = B10_PROFILES,
    *,
    seed: int = B10_SEED,
    now_ms: int = B10_NOW_MS,
    block: int = 1 << 20,
) -> Iterator[tuple[pa.RecordBatch, pa.RecordBatch]]:
    """Yield ``(profiles, events)`` record batches of B10, ``block`` profiles at a time.

    Profiles come in ``profile_id`` order; each events batch holds exactly the events of its
    profiles, sorted by (profile_id, timestamp). The batches have the schemas
    `PROFILES_SCHEMA` and `EVENTS_SCHEMA`. The data depends only on ``seed`` and ``now_ms``
    (and its length on ``n_profiles``), never on ``block``.
    """
    if n_profiles < 0:
        raise ValueError(f"n_profiles must be >= 0, not {n_profiles}")
    if block < 1:
        raise ValueError(f"block must be >= 1, not {block}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, not {seed}")
    if now_ms < _WINDOW_MS:
        raise ValueError(f"now_ms must leave room for 90 days of events, not {now_ms}")
    for parts in _units(n_profiles, block, seed, now_ms):
        yield _to_arrow(_join([p for p, _ in parts]), _join([e for _, e in parts]))


_SESSION_EVENTS = 5.0  # mean events per visit of live traffic
_SESSION_GAP_MS = 4_000  # mean time between two events of a visit


def live_events(
    n_profiles: int,
    start_ms: int,
    duration_ms: int = 60_000,
    *,
    per_second: float = 500.0,
    seed: int = B10_SEED,
) -> pa.Table:
    """Plausible live traffic on a B10 store of ``n_profiles``: about ``per_second`` events a
    second over ``[start_ms, start_ms + duration_ms)``, in time order (`EVENTS_SCHEMA`).

    Events come in visits, as on a shop's site: a visit is a profile (uniform among the
    store's) starting at a uniform instant, with a geometric number of events (mean 5) a few
    seconds apart; event types, categories and prices are drawn as `generate_b10` draws them
    (its type shares, Zipf(1) categories on commerce events, lognormal prices). So a minute
    holds carts, purchases and bursts of page views, and the changes they cause. The table
    depends only on the arguments.
    """
    if n_profiles < 1:
        raise ValueError(f"n_profiles must be >= 1, not {n_profiles}")
    if duration_ms < 1 or per_second <= 0:
        raise ValueError("duration_ms and per_second must be positive")
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence((seed, start_ms, 1))))
    # Visits start from a while before the window, so that it opens on traffic in full
    # swing (visits under way) rather than on visits that all begin inside it.
    lead = int(_SESSION_EVENTS * _SESSION_GAP_MS)
    visits = max(1, round(per_second * (duration_ms + lead) / 1000 / _SESSION_EVENTS))
    lengths = rng.geometric(1 / _SESSION_EVENTS, visits)
    visit = np.repeat(np.arange(visits), lengths)
    first = np.zeros(visits + 1, np.int64)
    np.cumsum(lengths, out=first[1:])
    gaps = rng.exponential(_SESSION_GAP_MS, visit.size).astype(np.int64)
    gaps[first[:-1]] = 0  # a visit starts at its own instant
    elapsed = np.cumsum(gaps) - np.repeat(np.cumsum(gaps)[first[:-1]], lengths)
    ts = start_ms - lead + rng.integers(0, duration_ms + lead, visits)[visit] + elapsed
    keep = (ts >= start_ms) & (ts < start_ms + duration_ms)
    profile = rng.integers(0, n_profiles, visits, dtype=np.int64)[visit][keep]
    ts = ts[keep]
    order = np.argsort(ts, kind="stable")
    profile, ts = profile[order], ts[order]
    n = ts.size
    types = _TYPE_TABLE[rng.integers(0, 200, n, dtype=np.uint8)]
    commerce = _COMMERCE[types]
    category = np.zeros(n, np.int16)
    category[commerce] = _draw(rng, _CATEGORY_CDF, int(commerce.sum()), np.int16)
    price = np.full(n, np.nan)
    price[commerce] = np.round(rng.lognormal(4.0, 1.0, int(commerce.sum())), 2)
    batch = pa.RecordBatch.from_arrays(
        [
            _plain(pa.int64(), profile),
            _plain(_TS, ts),
            _dictionary(_TYPE_DICT, types, pa.int8()),
            _dictionary(_CATEGORY_DICT, category, pa.int16(), commerce),
            _plain(pa.float64(), price, commerce),
        ],
        schema=EVENTS_SCHEMA,
    )
    return pa.Table.from_batches([batch])


def _write_row_groups(
    writer: pa.parquet.ParquetWriter, batches: list[pa.RecordBatch], *, final: bool
) -> list[pa.RecordBatch]:
    """Write whole row groups of ``_ROW_GROUP`` rows (and the rest too if ``final``).

    Blocks of profiles hold varying numbers of events; carrying the remainder over keeps every
    row group of the events file full except the last. Returns the batches left unwritten.
    """
    table = pa.Table.from_batches(batches, EVENTS_SCHEMA)
    rows = table.num_rows if final else table.num_rows - table.num_rows % _ROW_GROUP
    if rows:
        writer.write_table(table.slice(0, rows), row_group_size=_ROW_GROUP)
    rest: list[pa.RecordBatch] = table.slice(rows).to_batches()
    return rest


def write_b10_parquet(
    directory: str | os.PathLike[str],
    n_profiles: int = B10_PROFILES,
    *,
    seed: int = B10_SEED,
    now_ms: int = B10_NOW_MS,
    progress: Callable[[int, int], object] | None = None,
) -> tuple[Path, Path]:
    """Write B10 to ``directory/profiles.parquet`` and ``directory/events.parquet``.

    Snappy-compressed, dictionary-encoded, row groups of 2**20 rows, streamed block by block.
    Both files are written under temporary names in ``directory``, fsynced, and renamed into
    place only when both are complete, so a crash never leaves a half-written file under
    either name. ``progress(done_profiles, n_profiles)`` is called after every block.
    Returns the paths of the profiles file and the events file.
    """
    import pyarrow.parquet as pq

    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    finals = (target / "profiles.parquet", target / "events.parquet")
    temps: list[str] = []
    try:
        with contextlib.ExitStack() as stack:
            files = []
            for final in finals:
                fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=target)
                temps.append(tmp)
                files.append(stack.enter_context(os.fdopen(fd, "wb")))
                os.chmod(tmp, 0o644)  # mkstemp's 0600 would otherwise stick after the rename
            writers = [
                stack.enter_context(
                    pq.ParquetWriter(f, schema, compression="snappy", use_dictionary=True)
                )
                for f, schema in zip(files, (PROFILES_SCHEMA, EVENTS_SCHEMA), strict=True)
            ]
            done = 0
            pending: list[pa.RecordBatch] = []  # events not yet written: < one row group
            for profiles, events in generate_b10(
                n_profiles, seed=seed, now_ms=now_ms, block=_ROW_GROUP
            ):
                writers[0].write_batch(profiles, row_group_size=_ROW_GROUP)
                pending.append(events)
                pending = _write_row_groups(writers[1], pending, final=False)
                done += profiles.num_rows
                if progress is not None:
                    progress(done, n_profiles)
            _write_row_groups(writers[1], pending, final=True)
            for w in writers:
                w.close()
            for f in files:
                f.flush()
                os.fsync(f.fileno())
        for tmp, final in zip(temps, finals, strict=True):
            os.replace(tmp, final)
    except BaseException:
        for tmp in temps:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise
    dir_fd = os.open(target, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return finals
