"""The ten B10 segments as Polars lazy queries over in-memory DataFrames.

`PolarsB10.load` reads the Parquet files into DataFrames once (strings become
``Categorical``, times ``Datetime("ms", "UTC")``); every query is a ``LazyFrame`` plan
collected on demand (Polars' best mode, performance-baselines.md §2.1). ``run(seg)``
returns the members' ``profile_id`` values (numpy int64, unsorted); ``members(seg)`` sorts
them; ``run_all()`` is one fused query giving every profile's ``profile_id`` and uint16
flags (bit i = ``SEGMENTS[i]``).

Semantics are pqlite's (`benches.baselines.b10`): windows ``lo < ts <= now``; S6 compares
the latest add_to_cart in the 24 h window with the latest purchase of all time; S10 is
``P.ts <= V.ts <= P.ts + 2 days`` on equal non-null categories: an equi-join of purchases
and product views on (profile_id, category), then the time filter. (An as-of join, each
purchase's first same-category view at or after it, was 2-3x slower at 1M and 10M.)
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl

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

__all__ = ["PolarsB10"]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _lit(ms: int) -> pl.Expr:
    return pl.lit(_EPOCH + dt.timedelta(milliseconds=ms), dtype=pl.Datetime("ms", "UTC"))


class PolarsB10:
    """The B10 DataFrames and one lazy query per segment."""

    def __init__(self, profiles: pl.DataFrame, events: pl.DataFrame,
                 now_ms: int = B10_NOW_MS) -> None:
        self.profiles = profiles
        self.events = events
        self.now_ms = now_ms

    @classmethod
    def load(cls, profiles: Path, events: Path, now_ms: int = B10_NOW_MS) -> PolarsB10:
        return cls(pl.read_parquet(profiles), pl.read_parquet(events), now_ms)

    def memory_bytes(self) -> int:
        return int(self.profiles.estimated_size() + self.events.estimated_size())

    # ------------------------------------------------------------------ expressions

    def _window(self, span_ms: int) -> pl.Expr:
        ts = pl.col("timestamp")
        return (ts > _lit(self.now_ms - span_ms)) & (ts <= _lit(self.now_ms))

    @staticmethod
    def _type(name: str) -> pl.Expr:
        return pl.col("eventType") == name

    def _s1(self) -> pl.Expr:
        age = pl.col("age")
        return (pl.col("country") == S1_COUNTRY) & (age >= S1_AGE_MIN) & (age <= S1_AGE_MAX)

    def _s2(self) -> pl.Expr:
        return pl.col("loyalty_tier").is_in(S2_TIERS) | (pl.col("lifetime_value") > S2_LTV)

    def _s9(self) -> pl.Expr:
        return pl.col("age").is_null() & pl.col("country").is_in(EU)

    def _s10(self) -> pl.LazyFrame:
        e = self.events.lazy()
        known = pl.col("category").is_not_null()
        buys = (e.filter(self._type("purchase") & known)
                .select("profile_id", "category", "timestamp"))
        views = (e.filter(self._type("product_view") & known)
                 .select("profile_id", "category", pl.col("timestamp").alias("view_ts")))
        ts, view_ts = pl.col("timestamp"), pl.col("view_ts")
        return (buys.join(views, on=["profile_id", "category"], how="inner")
                .filter((view_ts >= ts)
                        & (view_ts <= ts + pl.duration(milliseconds=S10_WITHIN_MS)))
                .select("profile_id").unique())

    # ------------------------------------------------------------------ queries

    def query(self, seg: str) -> pl.LazyFrame:
        p, e = self.profiles.lazy(), self.events.lazy()
        w7, w30, w24 = (self._window(7 * DAY_MS), self._window(30 * DAY_MS),
                        self._window(24 * HOUR_MS))
        t = self._type
        pid = "profile_id"
        if seg == "S1":
            return p.filter(self._s1()).select(pid)
        if seg == "S2":
            return p.filter(self._s2()).select(pid)
        if seg == "S3":
            return e.filter(t("purchase") & w7).select(pid).unique()
        if seg == "S4":
            return (e.filter(w30 & (t("purchase") | (t("product_view")
                                                     & (pl.col("category") == S4_CATEGORY))))
                    .group_by(pid)
                    .agg(views=t("product_view").sum(), buys=t("purchase").sum())
                    .filter((pl.col("views") >= S4_VIEWS) & (pl.col("buys") == 0))
                    .select(pid))
        if seg == "S5":
            return (e.filter(t("purchase") & w30).group_by(pid)
                    .agg(pl.col("price").sum())
                    .filter(pl.col("price") > S5_SPEND).select(pid))
        if seg == "S6":
            ts = pl.col("timestamp")
            return (e.filter(t("add_to_cart") | t("purchase")).group_by(pid)
                    .agg(atc=ts.filter(t("add_to_cart") & w24).max(),
                         buy=ts.filter(t("purchase")).max())
                    .filter(pl.col("atc").is_not_null()
                            & (pl.col("buy").is_null() | (pl.col("buy") <= pl.col("atc"))))
                    .select(pid))
        if seg == "S7":
            opted = p.filter(pl.col("email_opt_in")).select(pid)
            return (e.filter(t("page_view") & w24).group_by(pid).len()
                    .filter(pl.col("len") >= S7_VIEWS).select(pid)
                    .join(opted, on=pid, how="semi"))
        if seg == "S8":
            return (e.filter(t("product_view") & w30).group_by(pid)
                    .agg(pl.col("category").drop_nulls().n_unique())
                    .filter(pl.col("category") >= S8_CATEGORIES).select(pid))
        if seg == "S9":
            return p.filter(self._s9()).select(pid)
        if seg == "S10":
            return self._s10()
        raise KeyError(seg)

    def query_all(self) -> pl.LazyFrame:
        p, e = self.profiles.lazy(), self.events.lazy()
        w7, w30, w24 = (self._window(7 * DAY_MS), self._window(30 * DAY_MS),
                        self._window(24 * HOUR_MS))
        t, ts, pid = self._type, pl.col("timestamp"), "profile_id"
        agg = e.group_by(pid).agg(
            buys7=(t("purchase") & w7).sum(),
            views_c=(t("product_view") & (pl.col("category") == S4_CATEGORY) & w30).sum(),
            buys30=(t("purchase") & w30).sum(),
            spend30=pl.col("price").filter(t("purchase") & w30).sum(),
            atc=ts.filter(t("add_to_cart") & w24).max(),
            last_buy=ts.filter(t("purchase")).max(),
            views24=(t("page_view") & w24).sum(),
            cats30=pl.col("category").filter(t("product_view") & w30).drop_nulls().n_unique(),
        )
        s10 = self._s10().with_columns(s10=pl.lit(True))
        c = pl.col
        bits = [
            self._s1(),
            self._s2(),
            c("buys7") >= 1,
            (c("views_c") >= S4_VIEWS) & (c("buys30") == 0),
            c("spend30") > S5_SPEND,
            c("atc").is_not_null() & (c("last_buy").is_null() | (c("last_buy") <= c("atc"))),
            c("email_opt_in") & (c("views24") >= S7_VIEWS),
            c("cats30") >= S8_CATEGORIES,
            self._s9(),
            c("s10"),
        ]
        flags = pl.sum_horizontal(
            [b.fill_null(False).cast(pl.UInt16) * (1 << i) for i, b in enumerate(bits)]
        ).cast(pl.UInt16)
        return (p.join(agg, on=pid, how="left").join(s10, on=pid, how="left")
                .select(pl.col(pid), flags.alias("flags")))

    # ------------------------------------------------------------------ running

    def run(self, seg: str) -> np.ndarray:
        return np.asarray(self.query(seg).collect().to_series(0).to_numpy(), dtype=np.int64)

    def members(self, seg: str) -> np.ndarray:
        return np.sort(self.run(seg))

    def run_all(self) -> tuple[np.ndarray, np.ndarray]:
        df = self.query_all().collect()
        return (np.asarray(df["profile_id"].to_numpy(), dtype=np.int64),
                np.asarray(df["flags"].to_numpy(), dtype=np.uint16))

    def all_members(self) -> dict[str, np.ndarray]:
        pids, flags = self.run_all()
        return {seg: np.sort(pids[(flags >> i) & 1 == 1]) for i, seg in enumerate(SEGMENTS)}
