"""The B10 generator: determinism, schema, statistics of the reference workload, parquet output."""

from __future__ import annotations

import math
import os
import tomllib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from store import synth
from store.schema import Schema
from store.synth import (
    B10_EU_COUNTRIES,
    B10_NOW_MS,
    B10_SEED,
    EVENTS_SCHEMA,
    PROFILES_SCHEMA,
    generate_b10,
    write_b10_parquet,
)

B10_TOML = Path(__file__).resolve().parents[1] / "examples" / "b10.schema.toml"
DAY_MS = 86_400_000
N_STATS = 200_000


def tables(n: int, **kwargs: int) -> tuple[pa.Table, pa.Table]:
    profiles, events = [], []
    for p, e in generate_b10(n, **kwargs):
        profiles.append(p)
        events.append(e)
    return (
        pa.Table.from_batches(profiles, PROFILES_SCHEMA),
        pa.Table.from_batches(events, EVENTS_SCHEMA),
    )


def strings(column: pa.ChunkedArray) -> np.ndarray:
    return column.cast(pa.string()).to_numpy(zero_copy_only=False)


@pytest.fixture(scope="module")
def b10() -> tuple[pa.Table, pa.Table]:
    return tables(N_STATS)


# ---------------------------------------------------------------- determinism


def test_block_size_never_changes_the_data():
    reference = tables(150_000)
    for block in (7_777, 65_536, 100_000, 1 << 20):
        profiles, events = tables(150_000, block=block)
        assert profiles.equals(reference[0]), block
        assert events.equals(reference[1]), block


def test_batches_hold_their_profiles_events():
    for p, e in generate_b10(50_000, block=9_999):
        ids = p["profile_id"].to_numpy()
        assert len(ids) == 9_999 or ids[-1] == 49_999
        pids = e["profile_id"].to_numpy()
        assert pids.size == 0 or (pids[0] >= ids[0] and pids[-1] <= ids[-1])


def test_smaller_dataset_is_a_prefix_of_a_larger_one():
    small_p, small_e = tables(70_000)  # ends inside a random-number unit
    big_p, big_e = tables(140_000)
    assert big_p.slice(0, 70_000).equals(small_p)
    assert big_e.slice(0, small_e.num_rows).equals(small_e)
    assert big_e["profile_id"][small_e.num_rows].as_py() >= 70_000


def test_seed_and_now_select_the_data():
    p1, e1 = tables(20_000, seed=1)
    p2, e2 = tables(20_000, seed=2)
    assert not p1.equals(p2)
    assert not e1.equals(e2)
    assert tables(20_000, seed=1)[1].equals(e1)
    _, shifted = tables(20_000, seed=1, now_ms=B10_NOW_MS + DAY_MS)
    ts = e1["timestamp"].cast(pa.int64()).to_numpy()
    assert np.array_equal(shifted["timestamp"].cast(pa.int64()).to_numpy(), ts + DAY_MS)


def test_defaults_and_arguments():
    assert B10_SEED == 20250101
    assert B10_NOW_MS == 1_735_689_600_000
    assert list(generate_b10(0)) == []
    for kwargs in ({"n_profiles": -1}, {"block": 0}, {"seed": -1}, {"now_ms": 0}):
        with pytest.raises(ValueError):
            next(generate_b10(**{"n_profiles": 10, **kwargs}))


# ---------------------------------------------------------------- schema


def test_schema_matches_b10_schema_toml(b10):
    declared = tomllib.loads(B10_TOML.read_text())
    profiles, events = b10
    assert profiles.schema == PROFILES_SCHEMA
    assert events.schema == EVENTS_SCHEMA
    schema = Schema.from_arrow(profiles.schema, events.schema).to_dict()
    assert list(schema["profile"].items()) == list(declared["profile"].items())
    assert list(schema["events"].items()) == list(declared["events"].items())
    # the physical types behind the schema's kinds
    assert profiles.schema.field("profile_id").type == pa.int64()
    assert profiles.schema.field("age").type == pa.int64()
    assert profiles.schema.field("lifetime_value").type == pa.float64()
    assert profiles.schema.field("email_opt_in").type == pa.bool_()
    for ts in (profiles.schema.field("signup_ts"), events.schema.field("timestamp")):
        assert ts.type == pa.timestamp("ms", tz="UTC")
    assert events.schema.field("price").type == pa.float64()


# ---------------------------------------------------------------- statistics (section 1)


def test_profile_attributes(b10):
    profiles, _ = b10
    n = profiles.num_rows
    assert np.array_equal(profiles["profile_id"].to_numpy(), np.arange(n))
    age = profiles["age"]
    assert age.null_count / n == pytest.approx(0.12, abs=0.005)
    known = age.drop_null().to_numpy()
    assert known.min() >= 18 and known.max() <= 90
    assert np.mean((known >= 25) & (known <= 40)) == pytest.approx(0.427, abs=0.01)
    country = strings(profiles["country"])
    assert np.mean(country == "US") == pytest.approx(0.261, abs=0.005)
    assert np.mean(np.isin(country, B10_EU_COUNTRIES)) == pytest.approx(0.228, abs=0.005)
    assert all(len(c) == 2 and c.isupper() for c in set(country))
    tier = strings(profiles["loyalty_tier"])
    assert set(tier) == {"bronze", "silver", "gold", "platinum"}
    assert np.mean(np.isin(tier, ["gold", "platinum"])) == pytest.approx(0.15, abs=0.005)
    ltv = profiles["lifetime_value"].to_numpy()
    assert ltv.min() >= 0
    assert np.mean(ltv > 1000) == pytest.approx(0.032, abs=0.002)
    assert np.mean(profiles["email_opt_in"].to_numpy()) == pytest.approx(0.42, abs=0.005)
    signup = profiles["signup_ts"].cast(pa.int64()).to_numpy()
    assert signup.max() <= B10_NOW_MS - 90 * DAY_MS
    assert signup.min() >= B10_NOW_MS - 8 * 365 * DAY_MS


def test_events_per_profile(b10):
    profiles, events = b10
    counts = np.bincount(events["profile_id"].to_numpy(), minlength=profiles.num_rows)
    assert counts.size == profiles.num_rows
    assert counts.mean() == pytest.approx(6.0, abs=0.6)
    assert np.median(counts) == 1
    assert np.mean(counts == 0) == pytest.approx(0.363, abs=0.006)
    assert np.mean(counts <= 5) == pytest.approx(0.809, abs=0.006)
    assert np.percentile(counts, 90) == pytest.approx(11, abs=1)
    assert np.percentile(counts, 99) == pytest.approx(70, abs=8)
    assert counts.max() <= 10_000
    heavy = counts >= 100
    assert counts[heavy].sum() / counts.sum() == pytest.approx(0.32, abs=0.06)


def test_event_types(b10):
    _, events = b10
    counts = events["eventType"].cast(pa.string()).value_counts().to_pylist()
    shares = {c["values"]: c["counts"] / events.num_rows for c in counts}
    expected = dict(zip(synth.EVENT_TYPES, synth.EVENT_TYPE_SHARES, strict=True))
    assert shares.keys() == expected.keys()
    assert math.isclose(sum(expected.values()), 1.0)
    for kind, share in expected.items():
        assert shares[kind] == pytest.approx(share, abs=0.003), kind


def test_events_sorted_and_in_the_window(b10):
    profiles, events = b10
    pid = events["profile_id"].to_numpy()
    ts = events["timestamp"].cast(pa.int64()).to_numpy()
    dp, dt = np.diff(pid), np.diff(ts)
    assert np.all((dp > 0) | ((dp == 0) & (dt >= 0)))
    assert pid.min() >= 0 and pid.max() < profiles.num_rows
    assert ts.min() >= B10_NOW_MS - 90 * DAY_MS and ts.max() < B10_NOW_MS
    assert ts.mean() == pytest.approx(B10_NOW_MS - 45 * DAY_MS, abs=DAY_MS)
    recent = np.mean(ts >= B10_NOW_MS - 7 * DAY_MS)
    assert recent == pytest.approx(7 / 90, abs=0.005)


def test_category_and_price_only_on_commerce_events(b10):
    _, events = b10
    kind = strings(events["eventType"])
    commerce = np.isin(kind, ["product_view", "add_to_cart", "purchase"])
    assert np.array_equal(events["category"].is_valid().to_numpy(zero_copy_only=False), commerce)
    assert np.array_equal(events["price"].is_valid().to_numpy(zero_copy_only=False), commerce)
    assert events["category"].null_count == events["price"].null_count == (~commerce).sum()


def test_categories(b10):
    _, events = b10
    commerce = events.filter(events["category"].is_valid())
    names = strings(commerce["category"])
    assert all(len(c) == 5 and c[0] == "c" for c in set(names))
    number = np.char.lstrip(names.astype(str), "c").astype(np.int64)
    assert number.min() >= 0 and number.max() <= 999
    freq = np.bincount(number, minlength=1000) / number.size
    # Zipf(1) over 1000 values: c0000 gets 1/H(1000) = 13.4%, c0001 half of that
    assert freq[0] == pytest.approx(0.134, abs=0.03)
    assert freq[0] > freq[1] > freq[3] > freq[99]
    assert (freq > 0).sum() > 900
    # half of a profile's commerce events use its favourite category: the most frequent
    # category of a profile with many commerce events holds a little over half of them
    pid = commerce["profile_id"].to_numpy()
    per_profile = np.bincount(pid)
    busy = np.flatnonzero(per_profile >= 40)
    assert busy.size > 50
    pairs = np.unique(pid * 1000 + number, return_counts=True)
    top = np.zeros(per_profile.size, dtype=np.int64)
    np.maximum.at(top, pairs[0] // 1000, pairs[1])
    assert np.mean(top[busy] / per_profile[busy]) == pytest.approx(0.53, abs=0.05)


def test_prices(b10):
    _, events = b10
    price = events["price"].drop_null().to_numpy()
    assert price.min() > 0
    assert np.array_equal(price, np.round(price, 2))
    logs = np.log(price)
    assert logs.mean() == pytest.approx(4.0, abs=0.02)
    assert logs.std() == pytest.approx(1.0, abs=0.02)


# ---------------------------------------------------------------- parquet


def test_parquet_round_trip(tmp_path, monkeypatch):
    monkeypatch.setattr(synth, "_ROW_GROUP", 4_096)  # several blocks and row groups at small scale
    calls: list[tuple[int, int]] = []
    out = tmp_path / "b10"
    paths = write_b10_parquet(out, 30_000, progress=lambda done, total: calls.append((done, total)))
    assert paths == (out / "profiles.parquet", out / "events.parquet")
    assert sorted(os.listdir(out)) == ["events.parquet", "profiles.parquet"]
    assert [d for d, _ in calls] == [*range(4_096, 30_000, 4_096), 30_000]
    assert {t for _, t in calls} == {30_000}
    profiles, events = tables(30_000)
    assert pq.read_table(paths[0]).equals(profiles)
    assert pq.read_table(paths[1]).equals(events)
    for path in paths:
        meta = pq.ParquetFile(path).metadata
        sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        assert all(s == 4_096 for s in sizes[:-1]) and 0 < sizes[-1] <= 4_096
        column = meta.row_group(0).column(0)
        assert column.compression == "SNAPPY"
        assert (path.stat().st_mode & 0o777) == 0o644
    encodings = pq.ParquetFile(paths[1]).metadata.row_group(0).column(2).encodings
    assert any("DICTIONARY" in e for e in encodings)


def test_parquet_writer_leaves_no_half_written_files(tmp_path):
    (tmp_path / "profiles.parquet").write_bytes(b"old")

    def fail(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_b10_parquet(tmp_path, 100_000, progress=fail)
    assert sorted(os.listdir(tmp_path)) == ["profiles.parquet"]
    assert (tmp_path / "profiles.parquet").read_bytes() == b"old"


def test_parquet_of_no_profiles(tmp_path):
    profiles, events = write_b10_parquet(tmp_path, 0)
    assert pq.read_table(profiles).schema == PROFILES_SCHEMA
    assert pq.read_table(events).num_rows == 0
