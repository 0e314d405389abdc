"""The ten B10 segments as DuckDB SQL (what a user would otherwise query with).

Two modes over the same SQL:

* `DuckDBB10.native`: DuckDB tables created from the Parquet files (``CREATE TABLE AS``);
* `DuckDBB10.arrow`: DuckDB scanning in-memory Arrow tables (registered views).

Tables: ``profiles(profile_id, age, country, loyalty_tier, lifetime_value, email_opt_in,
signup_ts)`` and ``events(profile_id, timestamp, eventType, category, price)``, as
`store.synth.write_b10_parquet` writes them (times are ``TIMESTAMPTZ``). ``run(seg)``
returns the members' ``profile_id`` values (numpy int64, in DuckDB's order);
``members(seg)`` sorts them. ``run_all()`` is one fused query: every profile's
``profile_id`` and uint16 flags (bit i = ``SEGMENTS[i]``).

The SQL states pqlite's semantics exactly (`benches.baselines.b10`): windows are
``lo < ts <= now``; S6 is ``NOT EXISTS`` a purchase strictly after the add_to_cart (the
fused query compares the latest add_to_cart in the window with the latest purchase of all
time, which is equivalent); S10 is ``EXISTS`` a product view with
``P.ts <= V.ts <= P.ts + 2 days`` and the same non-null category. S8 has a second form,
``S8_alt``: the same count as a two-level GROUP BY, which DuckDB runs much faster than
``count(DISTINCT ...)`` (performance-baselines.md §2.1). Of the forms tried, these were the
fastest (S6: NOT EXISTS vs GROUP BY with FILTERed max; S7: aggregate then semi-join vs
semi-join first; S10: EXISTS vs join + DISTINCT vs ASOF JOIN).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from store.synth import B10_NOW_MS

from .b10 import (
    DAY_MS,
    EU,
    HOUR_MS,
    S1_AGE_MAX,
    S1_AGE_MIN,
    S1_COUNTRY,
    S2_LTV,
    S2_TIERS,
    S4_CATEGORY,
    S4_VIEWS,
    S5_SPEND,
    S7_VIEWS,
    S8_CATEGORIES,
    S10_WITHIN_MS,
    SEGMENTS,
)

__all__ = ["DuckDBB10", "sql_of"]


def _ts(ms: int) -> str:
    """A TIMESTAMPTZ literal for epoch milliseconds (exact: DuckDB keeps microseconds)."""
    t = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=ms)
    return f"TIMESTAMPTZ '{t.strftime('%Y-%m-%d %H:%M:%S')}.{ms % 1000:03d}+00'"


def _list(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def sql_of(now_ms: int = B10_NOW_MS, profiles: str = "profiles",
           events: str = "events") -> dict[str, str]:
    """The SQL of every segment (S1..S10, S8_alt) and of the fused ``ALL`` query."""
    now = _ts(now_ms)
    w7 = f'"timestamp" > {_ts(now_ms - 7 * DAY_MS)} AND "timestamp" <= {now}'
    w30 = f'"timestamp" > {_ts(now_ms - 30 * DAY_MS)} AND "timestamp" <= {now}'
    w24 = f'"timestamp" > {_ts(now_ms - 24 * HOUR_MS)} AND "timestamp" <= {now}'
    a_w24 = w24.replace('"timestamp"', 'a."timestamp"')
    within = f"INTERVAL {S10_WITHIN_MS // 1000} SECOND"
    s1 = (f"country = '{S1_COUNTRY}' AND age >= {S1_AGE_MIN} AND age <= {S1_AGE_MAX}")
    s2 = f"loyalty_tier IN ({_list(S2_TIERS)}) OR lifetime_value > {S2_LTV}"
    s9 = f"age IS NULL AND country IN ({_list(EU)})"
    # S10, as the PQL says it: a purchase P with a product view V of the same category at
    # P.ts <= V.ts <= P.ts + 2 days (EXISTS: 25% faster than joining then DISTINCT).
    s10 = f"""
        SELECT DISTINCT pu.profile_id FROM {events} pu
        WHERE pu.eventType = 'purchase' AND pu.category IS NOT NULL AND EXISTS (
            SELECT 1 FROM {events} pv
            WHERE pv.eventType = 'product_view' AND pv.profile_id = pu.profile_id
              AND pv.category = pu.category AND pv."timestamp" >= pu."timestamp"
              AND pv."timestamp" <= pu."timestamp" + {within})"""
    q = {
        "S1": f"SELECT profile_id FROM {profiles} WHERE {s1}",
        "S2": f"SELECT profile_id FROM {profiles} WHERE {s2}",
        "S3": f"""
            SELECT DISTINCT profile_id FROM {events}
            WHERE eventType = 'purchase' AND {w7}""",
        "S4": f"""
            SELECT profile_id FROM {events}
            WHERE (eventType = 'purchase' OR (eventType = 'product_view'
                                              AND category = '{S4_CATEGORY}'))
              AND {w30}
            GROUP BY profile_id
            HAVING count(*) FILTER (WHERE eventType = 'product_view') >= {S4_VIEWS}
               AND count(*) FILTER (WHERE eventType = 'purchase') = 0""",
        "S5": f"""
            SELECT profile_id FROM {events}
            WHERE eventType = 'purchase' AND {w30}
            GROUP BY profile_id HAVING sum(price) > {S5_SPEND}""",
        # As the PQL says it: an add_to_cart A in the last 24 h with no purchase strictly
        # after it (DuckDB plans NOT EXISTS as an anti-join; as fast as the max/max rewrite
        # the fused query uses).
        "S6": f"""
            SELECT DISTINCT a.profile_id FROM {events} a
            WHERE a.eventType = 'add_to_cart' AND {a_w24}
              AND NOT EXISTS (
                SELECT 1 FROM {events} p
                WHERE p.eventType = 'purchase' AND p.profile_id = a.profile_id
                  AND p."timestamp" > a."timestamp")""",
        "S7": f"""
            SELECT profile_id FROM (
                SELECT profile_id FROM {events} WHERE eventType = 'page_view' AND {w24}
                GROUP BY profile_id HAVING count(*) >= {S7_VIEWS})
            WHERE profile_id IN (SELECT profile_id FROM {profiles} WHERE email_opt_in)""",
        "S8": f"""
            SELECT profile_id FROM {events}
            WHERE eventType = 'product_view' AND {w30}
            GROUP BY profile_id HAVING count(DISTINCT category) >= {S8_CATEGORIES}""",
        "S8_alt": f"""
            SELECT profile_id FROM (
                SELECT DISTINCT profile_id, category FROM {events}
                WHERE eventType = 'product_view' AND {w30} AND category IS NOT NULL)
            GROUP BY profile_id HAVING count(*) >= {S8_CATEGORIES}""",
        "S9": f"SELECT profile_id FROM {profiles} WHERE {s9}",
        "S10": s10,
    }
    q["ALL"] = f"""
        WITH agg AS (
            SELECT profile_id,
                count(*) FILTER (WHERE eventType = 'purchase' AND {w7}) AS buys7,
                count(*) FILTER (WHERE eventType = 'product_view'
                                 AND category = '{S4_CATEGORY}' AND {w30}) AS views_c,
                count(*) FILTER (WHERE eventType = 'purchase' AND {w30}) AS buys30,
                sum(price) FILTER (WHERE eventType = 'purchase' AND {w30}) AS spend30,
                max("timestamp") FILTER (WHERE eventType = 'add_to_cart' AND {w24}) AS atc,
                max("timestamp") FILTER (WHERE eventType = 'purchase') AS last_buy,
                count(*) FILTER (WHERE eventType = 'page_view' AND {w24}) AS views24,
                count(DISTINCT category) FILTER (WHERE eventType = 'product_view'
                                                 AND {w30}) AS cats30
            FROM {events} GROUP BY profile_id),
        s10 AS ({s10})
        SELECT p.profile_id, (
              coalesce({s1}, false)::USMALLINT
            + (coalesce({s2}, false)::USMALLINT << 1)
            + (coalesce(a.buys7 >= 1, false)::USMALLINT << 2)
            + (coalesce(a.views_c >= {S4_VIEWS} AND a.buys30 = 0, false)::USMALLINT << 3)
            + (coalesce(a.spend30 > {S5_SPEND}, false)::USMALLINT << 4)
            + (coalesce(a.atc >= coalesce(a.last_buy, TIMESTAMPTZ '-infinity'),
                        false)::USMALLINT << 5)
            + (coalesce(p.email_opt_in AND a.views24 >= {S7_VIEWS}, false)::USMALLINT << 6)
            + (coalesce(a.cats30 >= {S8_CATEGORIES}, false)::USMALLINT << 7)
            + (coalesce({s9}, false)::USMALLINT << 8)
            + ((s10.profile_id IS NOT NULL)::USMALLINT << 9)
            ) AS flags
        FROM {profiles} p
        LEFT JOIN agg a ON a.profile_id = p.profile_id
        LEFT JOIN s10 ON s10.profile_id = p.profile_id"""
    return q


class DuckDBB10:
    """One DuckDB connection with the B10 tables (native or Arrow) and the segment SQL."""

    def __init__(self, con: duckdb.DuckDBPyConnection, now_ms: int = B10_NOW_MS,
                 keep: object = None) -> None:
        self.con = con
        self.sql = sql_of(now_ms)
        self._keep = keep  # Arrow tables a registered view reads from

    @staticmethod
    def _connect(threads: int) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect()
        con.execute(f"SET threads = {threads}")
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET preserve_insertion_order = false")
        return con

    @classmethod
    def native(cls, profiles: Path, events: Path, *, threads: int = 2,
               now_ms: int = B10_NOW_MS) -> DuckDBB10:
        """Load the Parquet files into native (in-memory) DuckDB tables."""
        con = cls._connect(threads)
        con.execute(f"CREATE TABLE profiles AS SELECT * FROM read_parquet('{profiles}')")
        con.execute(f"CREATE TABLE events AS SELECT * FROM read_parquet('{events}')")
        return cls(con, now_ms)

    @classmethod
    def arrow(cls, profiles: pa.Table, events: pa.Table, *, threads: int = 2,
              now_ms: int = B10_NOW_MS) -> DuckDBB10:
        """Query in-memory Arrow tables (scanned on every query)."""
        con = cls._connect(threads)
        con.register("profiles", profiles)
        con.register("events", events)
        return cls(con, now_ms, keep=(profiles, events))

    def memory_bytes(self) -> int:
        rows = self.con.sql("SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchall()
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0

    def run(self, seg: str) -> np.ndarray:
        """The members' profile_id values (unsorted), as numpy int64."""
        table = self.con.sql(self.sql[seg]).to_arrow_table()
        return np.asarray(table.column(0).to_numpy(), dtype=np.int64)

    def members(self, seg: str) -> np.ndarray:
        return np.sort(self.run(seg))

    def run_all(self) -> tuple[np.ndarray, np.ndarray]:
        """(profile_id, uint16 flags) of every profile, in DuckDB's order."""
        table = self.con.sql(self.sql["ALL"]).to_arrow_table()
        return (np.asarray(table.column(0).to_numpy(), dtype=np.int64),
                np.asarray(table.column(1).to_numpy(), dtype=np.uint16))

    def all_members(self) -> dict[str, np.ndarray]:
        pids, flags = self.run_all()
        return {seg: np.sort(pids[(flags >> i) & 1 == 1]) for i, seg in enumerate(SEGMENTS)}
