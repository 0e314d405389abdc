"""The ten B10 segments and the exact bounds every baseline engine uses.

The segments are those of ``examples/segments.toml`` (performance-baselines.md §2). Their
meaning is pqlite's (``docs/language.md``), which fixes a few points the baselines document
leaves open:

* ``t occurs < N UNIT before now`` is the half-open window ``now - N < t <= now``
  (language.md, Time / occurs, form 1, ``before`` row of ``< N u``). Events after ``now``
  are outside every such window (``t <= a`` is required). B10 has none (its events fall in
  ``[now - 90 days, now)``), but every baseline applies the upper bound anyway.
* S6: ``exists A ... and not (exists P ... where P.timestamp occurs after A.timestamp)``.
  ``occurs after`` an instant is ``t > r`` (form 2), strictly; no window applies to ``P``,
  so a purchase at any time (also after ``now``) strictly later than ``A`` cancels ``A``.
  A profile is a member iff its latest add_to_cart in the 24 h window is at or after its
  latest purchase of all time (or it has no purchase).
* S10: ``V.timestamp occurs <= 2 days after P.timestamp`` is ``P.ts <= V.ts <= P.ts + 2 d``
  (form 1, ``after`` row of ``<= N u``): a view in the same millisecond counts, no window
  relative to ``now`` applies, and ``V.category = P.category`` is false when either is null.
* S8 counts distinct non-null categories (field lists leave out nulls); S5's ``sum``
  skips null prices and is 0 over nothing; null ``age``/``country``/``lifetime_value``/
  ``email_opt_in`` make their comparisons false.
"""

from __future__ import annotations

from store.synth import B10_EU_COUNTRIES, B10_NOW_MS

__all__ = [
    "ALL",
    "DAY_MS",
    "EU",
    "HOUR_MS",
    "NAMES",
    "SEGMENTS",
    "Window",
    "window",
]

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS

SEGMENTS: tuple[str, ...] = ("S1", "S2", "S3", "S4", "S5", "S6", "S7", "S8", "S9", "S10")
"""Segment ids; bit ``i`` of an "all 10" flags value is ``SEGMENTS[i]``."""
ALL = "ALL"

NAMES: dict[str, str] = {
    "S1": "us_25_40",
    "S2": "high_value",
    "S3": "recent_buyers",
    "S4": "c0003_browsers_not_buying",
    "S5": "big_spenders_30d",
    "S6": "cart_abandoners",
    "S7": "engaged_subscribers",
    "S8": "category_explorers",
    "S9": "eu_unknown_age",
    "S10": "bought_then_browsed",
}
"""The segments' names in ``examples/segments.toml``."""

EU: tuple[str, ...] = tuple(sorted(B10_EU_COUNTRIES))
S1_COUNTRY, S1_AGE_MIN, S1_AGE_MAX = "US", 25, 40
S2_TIERS, S2_LTV = ("gold", "platinum"), 1000.0
S4_CATEGORY, S4_VIEWS = "c0003", 3
S5_SPEND = 500.0
S7_VIEWS = 5
S8_CATEGORIES = 3
S10_WITHIN_MS = 2 * DAY_MS


class Window:
    """``t occurs < span before now``: ``lo < t <= hi`` with ``lo = now - span``, ``hi = now``."""

    __slots__ = ("hi", "lo")

    def __init__(self, span_ms: int, now_ms: int) -> None:
        self.lo = now_ms - span_ms
        self.hi = now_ms

    def __repr__(self) -> str:
        return f"Window({self.lo} < t <= {self.hi})"


def window(span_ms: int, now_ms: int = B10_NOW_MS) -> Window:
    return Window(span_ms, now_ms)
