"""The two real retail datasets of ``shared/data`` as profile stores (for tests, docs, the CLI).

`online_retail` reads UCI "Online Retail" (one CSV of invoice lines, UK customers of a gift
shop, 2010-12-01 .. 2011-12-09); `complete_journey` reads 84.51° "The Complete Journey"
(Parquet tables of 2,469 grocery households over 2017). Both return an in-memory
`ProfileStore` whose event time field is ``timestamp`` and event type field ``eventType``.

The data directory is ``$PQLITE_DATA`` when set, else ``shared/data`` beside the project
checkout (``<checkout>/../shared/data``); see `data_dir`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from store.errors import DataError
from store.keys import normalize_keys
from store.loading import read_table
from store.profile_store import ProfileStore

__all__ = ["DATA_ENV", "complete_journey", "data_dir", "online_retail"]

DATA_ENV = "PQLITE_DATA"

# Every column of the CSV with its type, so pyarrow guesses nothing (InvoiceNo and StockCode
# look numeric on most lines but are not: C536379, 85123A).
_RETAIL_COLUMNS = {
    "InvoiceNo": pa.string(),
    "StockCode": pa.string(),
    "Description": pa.string(),
    "Quantity": pa.int64(),
    "InvoiceDate": pa.timestamp("s"),
    "UnitPrice": pa.float64(),
    "CustomerID": pa.float64(),  # written as 17850.0
    "Country": pa.string(),
}


def data_dir() -> Path:
    """The directory holding ``online_retail/`` and ``complete_journey/``.

    ``$PQLITE_DATA`` if set; otherwise ``shared/data`` next to the checkout this module is in
    (``src/store/`` → ``../../../shared/data``) or, for an installed pqlite, beside the
    current directory (``../shared/data``), whichever exists first. The path is returned even
    if it does not exist (the loaders then raise `DataError` naming the missing file).
    """
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    here = Path(__file__).resolve()
    candidates = [Path.cwd().parent / "shared" / "data"]
    if len(here.parents) > 3:
        candidates.insert(0, here.parents[3] / "shared" / "data")
    return next((c for c in candidates if c.is_dir()), candidates[0])


def online_retail(path: str | Path | None = None) -> ProfileStore:
    """UCI Online Retail as a store: customers and their invoice lines.

    ``path`` is the CSV (``.csv`` or ``.csv.gz``); by default
    ``data_dir()/online_retail/online_retail.csv.gz``.

    - Profiles: ``customer_id`` (int; the CSV's ``CustomerID``, written as ``17850.0``) and
      ``country``. The 135,080 guest lines without a CustomerID are dropped, leaving 406,829
      lines of 4,372 customers. A customer's ``country`` is the Country of their latest line
      (ties at the same instant: the last such line in the file); 8 customers appear under
      two countries, and each event keeps its own line's ``country``.
    - Events: one per invoice line, at ``timestamp`` = InvoiceDate read as Europe/London wall
      time (the data has no time in a daylight-saving gap or overlap: lines fall between
      06:10 and 20:38, the changes happen at 01:00-02:00; were one there, loading would raise
      a `DataError` naming its row rather than guess). ``eventType`` is ``"cancellation"``
      when InvoiceNo starts with ``C`` (8,905 lines) and ``"purchase"`` otherwise (397,924).
      Fields: ``invoice`` (InvoiceNo, text), ``stock_code`` (text), ``description``,
      ``quantity`` (as in the file, so negative on cancellations), ``unit_price`` (GBP),
      ``amount`` (quantity × unit_price as a float, not rounded: negative on cancellations,
      so summing ``amount`` over all events nets them out) and ``country``.
    - Kept as in the source: 5,225 exact duplicate lines and 40 lines with a zero price.
    """
    import pyarrow.csv as pcsv

    path = Path(path) if path is not None else data_dir() / "online_retail" / "online_retail.csv.gz"
    convert = pcsv.ConvertOptions(
        column_types=_RETAIL_COLUMNS,
        include_columns=list(_RETAIL_COLUMNS),
        null_values=[""],  # only an empty field is missing ("NA" is text)
        strings_can_be_null=True,
        timestamp_parsers=["%Y-%m-%d %H:%M:%S"],
    )
    table, source = read_table(path, format="csv", csv_options={"convert_options": convert})
    lines = table.filter(pc.is_valid(table.column("CustomerID")))
    try:
        customer = normalize_keys(lines.column("CustomerID"), "CustomerID")
    except DataError as e:
        raise e.located(f"{source} (lines with a CustomerID)") from None
    quantity = lines.column("Quantity")
    unit_price = lines.column("UnitPrice")
    cancelled = pc.starts_with(lines.column("InvoiceNo"), "C")
    events = pa.table(
        {
            "customer_id": customer,
            "timestamp": lines.column("InvoiceDate"),
            "eventType": pc.if_else(cancelled, "cancellation", "purchase"),
            "invoice": lines.column("InvoiceNo"),
            "stock_code": lines.column("StockCode"),
            "description": lines.column("Description"),
            "quantity": quantity,
            "unit_price": unit_price,
            "amount": pc.multiply(quantity.cast(pa.float64()), unit_price),
            "country": lines.column("Country"),
        }
    )
    # Each customer's latest line: order by (customer, time), stable, and take each last row.
    ids = customer.to_numpy()
    seconds = lines.column("InvoiceDate").cast(pa.int64()).to_numpy()
    order = np.lexsort((seconds, ids))
    ranked = ids[order]
    last = np.flatnonzero(np.append(ranked[1:] != ranked[:-1], True))
    profiles = pa.table(
        {
            "customer_id": pa.array(ranked[last], pa.int64()),
            "country": lines.column("Country").take(pa.array(order[last])),
        }
    )
    return ProfileStore.from_arrow(
        profiles,
        events,
        profile_id="customer_id",
        event_time="timestamp",
        event_type="eventType",
        assume_tz="Europe/London",
    )


def complete_journey(directory: str | Path | None = None) -> ProfileStore:
    """84.51° The Complete Journey as a store: households and what they bought and received.

    ``directory`` holds the Parquet tables; by default ``data_dir()/complete_journey``.

    - Profiles: ``household_id`` (int). The 801 households of ``demographics.parquet`` come
      first, in its row order, with its attributes ``age``, ``income``, ``home_ownership``, ``marital_status``,
      ``household_size``, ``household_comp`` and ``kids_count`` (all text, as in the source:
      bands like ``45-54``, ``35-49K``, ``5+``); the other 1,668 households, known from their
      events only, follow in key order with every attribute null. 2,469 in all.
    - ``transaction`` events (1,469,307, one per basket line) at ``transaction_timestamp``
      with the line's ``store_id``, ``basket_id``, ``product_id``, ``quantity``,
      ``sales_value``, ``retail_disc``, ``coupon_disc``, ``coupon_match_disc`` and ``week``,
      plus ``department``, ``brand`` and ``product_category`` from ``products.parquet``
      (null for the 4,836 lines whose product is not in it).
    - ``campaign_received`` events (6,589, one per row of ``campaigns.parquet``) at the
      campaign's start date, with ``campaign_id`` and ``campaign_type`` (``Type A``/``B``/
      ``C``). Events rather than a list attribute: the time lets a segment ask "received a
      campaign in the last 30 days" and every household keeps a single profile row.
    - ``coupon_redemption`` events (2,102) at ``redemption_date`` with ``coupon_upc``,
      ``campaign_id`` and ``campaign_type``.

    The shifted dates (2016-11-14 .. 2018-01-01) carry no time zone and are read as UTC, so a
    wall-clock time in the files is the same time in the store. Fields an event type does not
    have are null (a campaign has no ``basket_id``).
    """
    root = Path(directory) if directory is not None else data_dir() / "complete_journey"
    demographics = _parquet(root, "demographics")
    products = _parquet(root, "products")
    descriptions = _parquet(root, "campaign_descriptions")

    tx = _parquet(root, "transactions")
    transactions = pa.table(
        {
            "household_id": tx.column("household_id"),
            "timestamp": tx.column("transaction_timestamp"),
            "eventType": pa.repeat("transaction", tx.num_rows),
            **{name: tx.column(name) for name in _BASKET_LINE},
            **_lookup(tx.column("product_id"), products, "product_id", _PRODUCT),
        }
    )
    received = _parquet(root, "campaigns")
    campaign = _lookup(
        received.column("campaign_id"), descriptions, "campaign_id", ["start_date", "campaign_type"]
    )
    campaigns = pa.table(
        {
            "household_id": received.column("household_id"),
            "timestamp": campaign["start_date"],
            "eventType": pa.repeat("campaign_received", received.num_rows),
            "campaign_id": received.column("campaign_id"),
            "campaign_type": campaign["campaign_type"],
        }
    )
    redeemed = _parquet(root, "coupon_redemptions")
    redemptions = pa.table(
        {
            "household_id": redeemed.column("household_id"),
            "timestamp": redeemed.column("redemption_date"),
            "eventType": pa.repeat("coupon_redemption", redeemed.num_rows),
            "coupon_upc": redeemed.column("coupon_upc"),
            "campaign_id": redeemed.column("campaign_id"),
            **_lookup(
                redeemed.column("campaign_id"), descriptions, "campaign_id", ["campaign_type"]
            ),
        }
    )
    # One events table: each type's missing fields are null.
    events = pa.concat_tables([transactions, campaigns, redemptions], promote_options="default")
    return ProfileStore.from_arrow(
        demographics,
        events,
        profile_id="household_id",
        event_time="timestamp",
        event_type="eventType",
    )


_BASKET_LINE = (
    "store_id",
    "basket_id",
    "product_id",
    "quantity",
    "sales_value",
    "retail_disc",
    "coupon_disc",
    "coupon_match_disc",
    "week",
)
_PRODUCT = ["department", "brand", "product_category"]


def _parquet(root: Path, name: str) -> pa.Table:
    import pyarrow.parquet as pq

    path = root / f"{name}.parquet"
    if not path.is_file():
        raise DataError(
            f"no such file: {path}",
            source=str(path),
            hint=f"point the directory (or ${DATA_ENV}) at complete_journey/",
        )
    return pq.read_table(path).replace_schema_metadata(None)


def _lookup(
    ids: pa.ChunkedArray, table: pa.Table, key: str, columns: list[str]
) -> dict[str, pa.Array]:
    """``columns`` of ``table`` for each of ``ids`` (null where absent), in the order of ``ids``.

    Unlike a hash join this keeps the rows' order, so events at one instant keep file order.
    """
    rows = pc.index_in(ids, value_set=table.column(key))
    return {c: table.column(c).take(rows) for c in columns}
