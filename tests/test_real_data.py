"""The real datasets (`store.datasets`) against DuckDB as an independent oracle.

DuckDB reads the same files with its own CSV and Parquet readers and answers every count, sum
and choice here in SQL; the store must agree. Each dataset is loaded once per module. Tests
that need the data skip when ``shared/data`` (or ``$PQLITE_DATA``) is absent; the small
synthetic CSV tests of `online_retail`'s rules always run.
"""

from __future__ import annotations

import gzip
import mmap
from collections.abc import Iterator
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from store import DataError, ProfileStore
from store.datasets import DATA_ENV, complete_journey, data_dir, online_retail

RETAIL_CSV = data_dir() / "online_retail" / "online_retail.csv.gz"
JOURNEY_DIR = data_dir() / "complete_journey"

# DuckDB's view of the CSV, with the types stated (nothing sniffed).
RETAIL_SQL = """
CREATE TABLE retail AS SELECT * FROM read_csv('{path}', header = true, columns = {{
    'InvoiceNo': 'VARCHAR', 'StockCode': 'VARCHAR', 'Description': 'VARCHAR',
    'Quantity': 'BIGINT', 'InvoiceDate': 'TIMESTAMP', 'UnitPrice': 'DOUBLE',
    'CustomerID': 'DOUBLE', 'Country': 'VARCHAR'}});
CREATE TABLE lines AS SELECT CustomerID::BIGINT AS customer_id, *,
    epoch_ms(timezone('Europe/London', InvoiceDate)) AS ms,
    CASE WHEN InvoiceNo LIKE 'C%' THEN 'cancellation' ELSE 'purchase' END AS event_type
    FROM retail WHERE CustomerID IS NOT NULL;
"""
JOURNEY_TABLES = (
    "transactions",
    "demographics",
    "products",
    "campaigns",
    "campaign_descriptions",
    "coupon_redemptions",
)


def rows(con: Any, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in con.sql(sql).fetchall()]


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def retail() -> ProfileStore:
    if not RETAIL_CSV.is_file():
        pytest.skip(f"no {RETAIL_CSV} (set ${DATA_ENV} to the shared data directory)")
    return online_retail()


@pytest.fixture(scope="module")
def retail_arrow(retail: ProfileStore) -> tuple[pa.Table, pa.Table]:
    return retail.to_arrow()


@pytest.fixture(scope="module")
def retail_sql() -> Iterator[Any]:
    if not RETAIL_CSV.is_file():
        pytest.skip(f"no {RETAIL_CSV}")
    con = pytest.importorskip("duckdb").connect()
    for statement in RETAIL_SQL.format(path=RETAIL_CSV).split(";"):
        if statement.strip():
            con.execute(statement)
    yield con
    con.close()


@pytest.fixture(scope="module")
def journey() -> ProfileStore:
    if not (JOURNEY_DIR / "transactions.parquet").is_file():
        pytest.skip(f"no {JOURNEY_DIR} (set ${DATA_ENV} to the shared data directory)")
    return complete_journey()


@pytest.fixture(scope="module")
def journey_arrow(journey: ProfileStore) -> tuple[pa.Table, pa.Table]:
    return journey.to_arrow()


@pytest.fixture(scope="module")
def journey_sql() -> Iterator[Any]:
    if not (JOURNEY_DIR / "transactions.parquet").is_file():
        pytest.skip(f"no {JOURNEY_DIR}")
    con = pytest.importorskip("duckdb").connect()
    for name in JOURNEY_TABLES:
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM '{JOURNEY_DIR / name}.parquet'")
    yield con
    con.close()


def per_profile(
    events: pa.Table, key: str, aggregates: list[tuple[str, str]]
) -> dict[int, tuple[Any, ...]]:
    """{key: (aggregates...)} of an events table, via pyarrow's group_by."""
    grouped = events.group_by(key).aggregate(aggregates)
    names = [f"{column}_{fn}" for column, fn in aggregates]
    return {row[key]: tuple(row[n] for n in names) for row in grouped.to_pylist()}


def assert_time_ordered(store: ProfileStore) -> None:
    """Within every profile's slice of every partition (and the merged view), time ascends."""
    for part in [*store.events.partitions, store.events.view(None)]:
        offsets = np.asarray(part.offsets, np.int64)
        times = np.asarray(part.time)
        step_down = np.flatnonzero(np.diff(times) < 0) + 1  # rows whose time is below the last
        starts = set(offsets[:-1].tolist())
        assert all(int(r) in starts for r in step_down), part.types
        assert offsets[0] == 0 and offsets[-1] == len(part)
        assert np.all(np.diff(offsets) >= 0)


def memory_mapped(array: Any) -> bool:
    """Whether ``array`` is a view of a memory-mapped file."""
    while isinstance(array, np.ndarray):
        if isinstance(array, np.memmap):
            return True
        array = array.base
    return isinstance(array, mmap.mmap)


def assert_same_store(a: ProfileStore, b: ProfileStore) -> None:
    # Types and roles; not `Field.nullable`, which the manifest does not keep (the loaded key
    # field says False, the reopened one True).
    assert a.schema.to_dict() == b.schema.to_dict()
    assert len(a) == len(b) and len(a.events) == len(b.events)
    assert a.keys.equals(b.keys)
    pa_, ea = a.to_arrow()
    pb, eb = b.to_arrow()
    assert pa_.equals(pb)
    assert ea.equals(eb)
    assert [p.types for p in a.events.partitions] == [p.types for p in b.events.partitions]
    for x, y in zip(a.events.partitions, b.events.partitions, strict=True):
        assert np.array_equal(x.offsets, y.offsets) and np.array_equal(x.time, y.time)


# ------------------------------------------------------------------ Online Retail


def test_retail_profiles_are_the_customers(retail: ProfileStore, retail_sql: Any) -> None:
    expected = [r[0] for r in rows(retail_sql, "SELECT DISTINCT customer_id FROM lines ORDER BY 1")]
    assert len(retail) == len(expected) == 4372
    assert retail.keys.type == pa.int64()
    assert retail.keys.to_pylist() == expected  # profile rows in key order
    guests = rows(retail_sql, "SELECT count(*) FROM retail WHERE CustomerID IS NULL")[0][0]
    assert guests == 135_080


def test_retail_event_counts(
    retail: ProfileStore, retail_arrow: tuple[pa.Table, pa.Table], retail_sql: Any
) -> None:
    total = rows(retail_sql, "SELECT count(*) FROM lines")[0][0]
    assert len(retail.events) == retail_arrow[1].num_rows == total == 406_829
    by_type = dict(rows(retail_sql, "SELECT event_type, count(*) FROM lines GROUP BY 1"))
    assert by_type == {"purchase": 397_924, "cancellation": 8_905}
    assert {t: len(retail.events.view([t])) for t in by_type} == by_type
    assert retail.events.types == ["cancellation", "purchase"]


def test_retail_per_customer_counts_and_sums(
    retail_arrow: tuple[pa.Table, pa.Table], retail_sql: Any
) -> None:
    _, events = retail_arrow
    got = per_profile(
        events,
        "customer_id",
        [
            ("quantity", "count"),
            ("quantity", "sum"),
            ("amount", "sum"),
            ("timestamp", "min"),
            ("timestamp", "max"),
        ],
    )
    expected = rows(
        retail_sql,
        """
        SELECT customer_id, count(*), sum(Quantity), sum(Quantity * UnitPrice), min(ms), max(ms)
        FROM lines GROUP BY 1""",
    )
    assert len(got) == len(expected) == 4372
    for key, count, quantity, amount, first, last in expected:
        g = got[key]
        assert g[:2] == (count, quantity), key
        assert g[2] == pytest.approx(amount, rel=1e-9, abs=1e-6), key
        # Times: Europe/London wall time (BST in summer) to UTC, as DuckDB's ICU does it.
        assert (_ms(g[3]), _ms(g[4])) == (first, last), key


def _ms(value: Any) -> int:
    return int(pa.scalar(value, pa.timestamp("ms", tz="UTC")).cast(pa.int64()).as_py())


SAMPLE = [12346, 12347, 12370, 12748, 13089, 14096, 14911, 15311, 17841, 18287]


@pytest.mark.parametrize("customer", SAMPLE)
def test_retail_customer_events_are_its_lines(
    retail_arrow: tuple[pa.Table, pa.Table], retail_sql: Any, customer: int
) -> None:
    _, all_events = retail_arrow
    mine = all_events.filter(pc.equal(all_events["customer_id"], customer)).to_pylist()
    expected = rows(
        retail_sql,
        f"""
        SELECT ms, event_type, InvoiceNo, StockCode, Description, Quantity, UnitPrice, Country
        FROM lines WHERE customer_id = {customer}""",
    )
    assert len(mine) == len(expected)
    events = [
        (
            _ms(e["timestamp"]),
            e["eventType"],
            e["invoice"],
            e["stock_code"],
            e["description"],
            e["quantity"],
            e["unit_price"],
            e["country"],
        )
        for e in mine
    ]
    assert [e[0] for e in events] == sorted(e[0] for e in events)
    # Same lines (ties at one instant may come in any order from DuckDB).
    assert sorted(events) == sorted(expected)
    for e in mine:
        assert e["amount"] == e["quantity"] * e["unit_price"]
        assert (e["quantity"] < 0) == (e["eventType"] == "cancellation")


MULTI_COUNTRY_LATEST = {
    12370: "Cyprus",
    12394: "Denmark",
    12417: "Belgium",
    12422: "Australia",
    12429: "Denmark",
    12431: "Australia",
    12455: "Spain",
    12457: "Switzerland",
}


def test_retail_country_is_that_of_the_latest_line(
    retail: ProfileStore, retail_arrow: tuple[pa.Table, pa.Table], retail_sql: Any
) -> None:
    multi = rows(
        retail_sql,
        """SELECT customer_id FROM lines GROUP BY 1
                                HAVING count(DISTINCT Country) > 1 ORDER BY 1""",
    )
    assert [m[0] for m in multi] == sorted(MULTI_COUNTRY_LATEST)
    # No customer has two countries at their latest instant, so arg_max is unambiguous.
    assert (
        rows(
            retail_sql,
            """
        WITH latest AS (SELECT customer_id, max(InvoiceDate) AS at FROM lines GROUP BY 1)
        SELECT count(*) FROM (SELECT l.customer_id FROM lines l JOIN latest
            ON l.customer_id = latest.customer_id AND l.InvoiceDate = latest.at
            GROUP BY 1 HAVING count(DISTINCT l.Country) > 1)""",
        )[0][0]
        == 0
    )
    latest = dict(
        rows(retail_sql, "SELECT customer_id, arg_max(Country, InvoiceDate) FROM lines GROUP BY 1")
    )
    profiles, _ = retail_arrow
    assert (
        dict(zip(profiles["customer_id"].to_pylist(), profiles["country"].to_pylist(), strict=True))
        == latest
    )
    for key, country in MULTI_COUNTRY_LATEST.items():
        got = retail.profile(key)
        assert got is not None and got["attributes"]["country"] == country
        assert len({e["country"] for e in got["events"]}) == 2  # events keep their own


def test_retail_no_line_in_a_dst_change(retail_sql: Any) -> None:
    """Europe/London's 2011 changes (01:00-02:00 on 27 Mar and 30 Oct) hold no line."""
    assert (
        rows(
            retail_sql,
            """
        SELECT count(*) FROM retail WHERE InvoiceDate::DATE IN ('2011-03-27', '2011-10-30')
            AND hour(InvoiceDate) = 1""",
        )[0][0]
        == 0
    )
    assert rows(retail_sql, "SELECT min(InvoiceDate::TIME), max(InvoiceDate::TIME) FROM retail")[
        0
    ] == (_time("06:10"), _time("20:38"))


def _time(text: str) -> time:
    return time.fromisoformat(text)


def test_retail_profile_lookup(
    retail: ProfileStore, retail_arrow: tuple[pa.Table, pa.Table]
) -> None:
    profiles, events = retail_arrow
    for key in (12346, 12370, 18287):  # profile() is per value: keep to small histories
        got = retail.profile(key)
        assert got is not None
        row = profiles.filter(pc.equal(profiles["customer_id"], key)).to_pylist()
        assert got["attributes"] == row[0]
        assert got["events"] == events.filter(pc.equal(events["customer_id"], key)).to_pylist()
    assert retail.profile(1) is None
    assert retail.index_of([12346, 1, 18287]).tolist() == [0, -1, 4371]


def test_retail_save_open_round_trip(retail: ProfileStore, tmp_path: Path) -> None:
    retail.save(tmp_path / "retail")
    opened = ProfileStore.open(tmp_path / "retail")
    assert opened.generation == "gen-000001"
    assert memory_mapped(opened.events.partitions[0].time)
    assert memory_mapped(opened.profiles["country"].values)
    assert_same_store(opened, retail)
    for key in (12346, 12370):
        assert opened.profile(key) == retail.profile(key)


def test_retail_events_time_ordered(retail: ProfileStore) -> None:
    assert_time_ordered(retail)


# ------------------------------------------------------------------ Online Retail rules, small

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"


def write_csv(path: Path, lines: list[str]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(HEADER + "".join(line + "\n" for line in lines))
    return path


def test_retail_rules_on_a_small_file(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "r.csv.gz",
        [
            "536365,85123A,HEART,6,2011-06-01 10:00:00,2.55,17850.0,United Kingdom",
            "C536379,D,Discount,-1,2011-06-01 11:00:00,27.5,17850.0,France",
            "536380,00123,NA,2,2011-01-01 10:00:00,1.5,,United Kingdom",  # a guest: dropped
            "536381,22,Two at once,1,2011-01-01 10:00:00,1.0,12346.0,Spain",
            "536382,22,Two at once,1,2011-01-01 10:00:00,1.0,12346.0,Norway",
        ],
    )
    store = online_retail(path)
    assert store.keys.to_pylist() == [12346, 17850]
    profiles, events = store.to_arrow()
    # Latest line wins; at one instant, the later line in the file.
    assert profiles["country"].to_pylist() == ["Norway", "France"]
    assert events.num_rows == 4
    first = store.profile(17850)
    assert first is not None
    purchase, cancellation = first["events"]
    assert purchase["stock_code"] == "85123A" and purchase["invoice"] == "536365"
    assert purchase["amount"] == 6 * 2.55
    assert purchase["timestamp"] == datetime(2011, 6, 1, 9, tzinfo=UTC)  # BST is UTC+1
    assert cancellation["eventType"] == "cancellation" and cancellation["quantity"] == -1
    assert cancellation["amount"] == -27.5 and cancellation["invoice"] == "C536379"


def test_retail_codes_are_text_not_numbers(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "r.csv.gz",
        [
            "000123,00456,NA,1,2011-01-01 10:00:00,1.0,1.0,United Kingdom",
        ],
    )
    event = online_retail(path).profile(1)
    assert event is not None
    (line,) = event["events"]
    assert (line["invoice"], line["stock_code"], line["description"]) == ("000123", "00456", "NA")


def test_retail_dst_ambiguous_time_is_an_error(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "r.csv.gz",
        [
            "1,1,x,1,2011-10-30 00:59:00,1.0,1.0,United Kingdom",
            "2,1,x,1,2011-10-30 01:30:00,1.0,1.0,United Kingdom",
        ],
    )
    with pytest.raises(DataError, match=r"2011-10-30 01:30:00 is ambiguous.*Europe/London") as e:
        online_retail(path)
    assert e.value.row == 1 and e.value.column == "timestamp"


def test_retail_missing_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        online_retail(tmp_path / "absent.csv.gz")
    with pytest.raises(DataError, match="no such file"):
        complete_journey(tmp_path)


def test_data_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert data_dir() == tmp_path
    monkeypatch.delenv(DATA_ENV)
    assert data_dir().parts[-2:] == ("shared", "data")


# ------------------------------------------------------------------ Complete Journey


def test_journey_households(
    journey: ProfileStore, journey_arrow: tuple[pa.Table, pa.Table], journey_sql: Any
) -> None:
    households = rows(
        journey_sql,
        """SELECT count(DISTINCT household_id) FROM (
        SELECT household_id FROM transactions UNION ALL SELECT household_id FROM campaigns
        UNION ALL SELECT household_id FROM coupon_redemptions
        UNION ALL SELECT household_id FROM demographics)""",
    )[0][0]
    assert len(journey) == households == 2469
    profiles, _ = journey_arrow
    demographics = rows(journey_sql, "SELECT * FROM demographics")  # in file order
    assert len(demographics) == 801
    attributes = [c for c in profiles.column_names if c != "household_id"]
    got = [
        tuple(r.values())
        for r in profiles.select(["household_id", *attributes]).slice(0, 801).to_pylist()
    ]
    assert got == demographics
    rest = profiles.slice(801)
    assert all(rest[c].null_count == rest.num_rows == 1668 for c in attributes)
    assert rest["household_id"].to_pylist() == sorted(rest["household_id"].to_pylist())


def test_journey_event_counts(journey: ProfileStore, journey_sql: Any) -> None:
    expected = {
        "transaction": rows(journey_sql, "SELECT count(*) FROM transactions")[0][0],
        "campaign_received": rows(journey_sql, "SELECT count(*) FROM campaigns")[0][0],
        "coupon_redemption": rows(journey_sql, "SELECT count(*) FROM coupon_redemptions")[0][0],
    }
    assert expected["transaction"] == 1_469_307
    assert {t: len(journey.events.view([t])) for t in expected} == expected
    assert len(journey.events) == sum(expected.values())


def test_journey_per_household_transactions(
    journey_arrow: tuple[pa.Table, pa.Table], journey_sql: Any
) -> None:
    _, events = journey_arrow
    tx = events.filter(pc.equal(events["eventType"], "transaction"))
    got = per_profile(
        tx,
        "household_id",
        [
            ("basket_id", "count"),
            ("quantity", "sum"),
            ("sales_value", "sum"),
            ("timestamp", "min"),
            ("timestamp", "max"),
        ],
    )
    expected = rows(
        journey_sql,
        """
        SELECT household_id, count(*), sum(quantity), sum(sales_value),
               epoch_ms(min(transaction_timestamp)), epoch_ms(max(transaction_timestamp))
        FROM transactions GROUP BY 1""",
    )
    assert len(got) == len(expected) == 2469
    for key, count, quantity, sales, first, last in expected:
        g = got[key]
        assert g[:2] == (count, quantity), key
        assert g[2] == pytest.approx(sales, rel=1e-9, abs=1e-6), key
        assert (_ms(g[3]), _ms(g[4])) == (first, last), key  # naive times read as UTC


def test_journey_products_joined(
    journey_arrow: tuple[pa.Table, pa.Table], journey_sql: Any
) -> None:
    _, events = journey_arrow
    tx = events.filter(pc.equal(events["eventType"], "transaction"))
    every = pc.CountOptions(mode="all")  # the null department is a group too
    got = {
        r["department"]: r["department_count"]
        for r in tx.group_by("department").aggregate([("department", "count", every)]).to_pylist()
    }
    expected = dict(
        rows(
            journey_sql,
            """SELECT p.department, count(*) FROM transactions t
        LEFT JOIN products p USING (product_id) GROUP BY 1""",
        )
    )
    assert got == expected
    assert got[None] == 4836  # lines whose product is not in products.parquet


def test_journey_campaigns_and_coupons(
    journey_arrow: tuple[pa.Table, pa.Table], journey_sql: Any
) -> None:
    _, events = journey_arrow

    def of(kind: str, columns: list[str]) -> list[tuple[Any, ...]]:
        picked = events.filter(pc.equal(events["eventType"], kind)).select(columns)
        return sorted(
            (_ms(r[columns[0]]), *[r[c] for c in columns[1:]]) for r in picked.to_pylist()
        )

    assert of(
        "campaign_received", ["timestamp", "household_id", "campaign_id", "campaign_type"]
    ) == sorted(
        rows(
            journey_sql,
            """
        SELECT epoch_ms(d.start_date), c.household_id, c.campaign_id, d.campaign_type
        FROM campaigns c JOIN campaign_descriptions d USING (campaign_id)""",
        )
    )
    assert of(
        "coupon_redemption",
        ["timestamp", "household_id", "coupon_upc", "campaign_id", "campaign_type"],
    ) == sorted(
        rows(
            journey_sql,
            """
        SELECT epoch_ms(r.redemption_date), r.household_id, r.coupon_upc, r.campaign_id,
               d.campaign_type
        FROM coupon_redemptions r JOIN campaign_descriptions d USING (campaign_id)""",
        )
    )


def test_journey_events_time_ordered(journey: ProfileStore) -> None:
    assert_time_ordered(journey)
