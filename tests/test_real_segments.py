"""Realistic marketing segments over the two real datasets, checked against DuckDB.

Every segment below is written twice: in pqlite's segment language (evaluated by the compiled
engine over `store.datasets`) and as an independent SQL query that DuckDB runs over its own
reading of the raw files in ``shared/data`` (never over pqlite's arrays). The SQL follows
docs/language.md literally: window bounds (``occurs < 30 days before now`` is
``now - 30 days < t <= now``), calendar periods and date parts in UTC, null rules (a
comparison with null is false, ``not`` then negates), ``sum`` over nothing is 0 and
``average``/``min``/``max`` over nothing null, chains matched earliest first. Both must give
exactly the same profile keys, and every segment must be neither empty nor everyone.

Each dataset is loaded once per module; all its segments are defined on one `engine.Engine`
and evaluated in one ``run`` at a fixed instant near the end of the data:

* Online Retail at 2011-12-09T12:00:00Z, a Friday. The last lines are at 12:50 that day, so
  some events lie after ``now`` (``today`` and ``this week`` include them, rolling windows
  do not). Times are Europe/London wall times (GMT in winter, BST in summer) converted to UTC
  by the loader; DuckDB converts them with its own time zone database.
* The Complete Journey at 2018-01-01T02:00:00Z, a Monday: ``last year`` is 2017, ``last
  month`` December 2017, and 534 basket lines of 2018-01-01 run to 04:01, partly after ``now``.
  The files' naive times are UTC.

Segments named in ``inSegment`` come earlier in their table; the SQL side reads them as the
tables ``seg_<name>`` that the earlier queries left behind. Tests skip when the data is absent.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import engine
from store import ProfileStore
from store.datasets import DATA_ENV, complete_journey, data_dir, online_retail

pytestmark = pytest.mark.slow

RETAIL_CSV = data_dir() / "online_retail" / "online_retail.csv.gz"
JOURNEY_DIR = data_dir() / "complete_journey"

RETAIL_NOW = "2011-12-09T12:00:00Z"
JOURNEY_NOW = "2018-01-01T02:00:00Z"


@dataclass(frozen=True)
class Segment:
    name: str
    meaning: str
    pql: str
    sql: str  # SELECT ... AS id: the member keys
    marks: tuple[Any, ...] = ()


# ====================================================================== Online Retail
#
# DuckDB tables (built by RETAIL_SETUP below from the CSV):
#   ev(id, ts, type, invoice, stock_code, description, quantity, unit_price, amount, country)
#       one row per line with a CustomerID; ts = InvoiceDate as London wall time, in UTC
#       (a naive TIMESTAMP); type 'cancellation' for InvoiceNo 'C...', else 'purchase'
#   prof(id, country)   each customer with the Country of their latest line
#   now_ts()            the evaluation instant, TIMESTAMP '2011-12-09 12:00:00'

RETAIL: list[Segment] = [
    # ------------------------------------------------------------ recency
    Segment(
        "r_recent_buyers",
        "bought in the last 30 days (rolling)",
        'xEvent[eventType = "purchase" and timestamp occurs < 30 days before now].count() > 0',
        """SELECT id FROM ev WHERE type = 'purchase'
             AND ts > now_ts() - INTERVAL 30 DAY AND ts <= now_ts()""",
    ),
    Segment(
        "r_lapsed",
        "has bought, but nothing in the last 90 days",
        """xEvent[eventType = "purchase"]
           and not xEvent[eventType = "purchase" and timestamp occurs <= 90 days before now]""",
        """SELECT id FROM ev WHERE type = 'purchase' GROUP BY id
           HAVING NOT bool_or(ts >= now_ts() - INTERVAL 90 DAY AND ts <= now_ts())""",
    ),
    Segment(
        "r_dormant_6_months",
        "last purchase more than 6 calendar months ago",
        'xEvent[eventType = "purchase"].max(timestamp) occurs > 6 months before now',
        """SELECT id FROM ev WHERE type = 'purchase' GROUP BY id
           HAVING max(ts) < now_ts() - INTERVAL 6 MONTH""",
    ),
    Segment(
        "r_new_since_september",
        "first purchase between 1 September 2011 and now",
        'xEvent[eventType = "purchase"].min(timestamp) occurs between date(2011, 9, 1) and now',
        """SELECT id FROM ev WHERE type = 'purchase' GROUP BY id
           HAVING min(ts) >= TIMESTAMP '2011-09-01' AND min(ts) <= now_ts()""",
    ),
    Segment(
        "r_bought_a_month_ago",
        "a purchase in the 1-month bucket (replenishment reminder)",
        'xEvent[eventType = "purchase"].timestamp occurs = 1 month before now',
        """SELECT id FROM ev WHERE type = 'purchase'
             AND ts > now_ts() - INTERVAL 2 MONTH AND ts <= now_ts() - INTERVAL 1 MONTH""",
    ),
    Segment(
        "r_active_this_week",
        "any line this calendar week (Monday 5 December on, later lines included)",
        "xEvent.timestamp occurs this week",
        """SELECT id FROM ev WHERE ts >= date_trunc('week', now_ts())
             AND ts < date_trunc('week', now_ts()) + INTERVAL 7 DAY""",
    ),
    Segment(
        "r_bought_today",
        "a purchase today, also after now",
        'xEvent[eventType = "purchase" and timestamp occurs today].count() >= 1',
        """SELECT id FROM ev WHERE type = 'purchase'
             AND ts >= date_trunc('day', now_ts()) AND ts < date_trunc('day', now_ts()) + INTERVAL 1 DAY""",
    ),
    # ------------------------------------------------------------ frequency
    Segment(
        "r_frequent_orders",
        "at least 10 distinct purchase invoices",
        'xEvent[eventType = "purchase"].invoice.distinct().count() >= 10',
        """SELECT id FROM ev WHERE type = 'purchase' GROUP BY id
           HAVING count(DISTINCT invoice) >= 10""",
    ),
    Segment(
        "r_busy_last_month",
        "at least 3 orders in November 2011 (last calendar month)",
        'xEvent[eventType = "purchase" and timestamp occurs last month].invoice.distinct().count() >= 3',
        """SELECT id FROM ev WHERE type = 'purchase'
             AND ts >= date_trunc('month', now_ts()) - INTERVAL 1 MONTH
             AND ts < date_trunc('month', now_ts())
           GROUP BY id HAVING count(DISTINCT invoice) >= 3""",
    ),
    Segment(
        "r_broad_assortment",
        "bought at least 150 different products",
        'xEvent[eventType = "purchase"].stock_code.distinct().count() >= 150',
        """SELECT id FROM ev WHERE type = 'purchase' GROUP BY id
           HAVING count(DISTINCT stock_code) >= 150""",
    ),
    # ------------------------------------------------------------ monetary
    Segment(
        "r_high_spend_12m",
        "spent over 5,000 on purchases in the last 365 days",
        'xEvent[eventType = "purchase" and timestamp occurs < 365 days before now].sum(amount) > 5000',
        """SELECT id FROM ev WHERE type = 'purchase'
             AND ts > now_ts() - INTERVAL 365 DAY AND ts <= now_ts()
           GROUP BY id HAVING sum(amount) > 5000""",
    ),
    Segment(
        "r_net_spend",
        "net spend (cancellations subtracted) of at least 3,000",
        "xEvent.sum(amount) >= 3000",
        "SELECT id FROM ev GROUP BY id HAVING sum(amount) >= 3000",
    ),
    Segment(
        "r_high_average_line",
        "average purchase line over 100",
        'xEvent[eventType = "purchase"].average(amount) > 100',
        """SELECT id FROM ev WHERE type = 'purchase' GROUP BY id HAVING avg(amount) > 100""",
    ),
    Segment(
        "r_wholesale_line",
        "some purchase line of at least 1,000 units",
        'xEvent[eventType = "purchase"].max(quantity) >= 1000',
        """SELECT id FROM ev WHERE type = 'purchase' GROUP BY id HAVING max(quantity) >= 1000""",
    ),
    Segment(
        "r_big_cancellation",
        "a single cancelled line worth more than 500",
        'xEvent[eventType = "cancellation"].min(amount) < -500',
        """SELECT id FROM ev WHERE type = 'cancellation' GROUP BY id HAVING min(amount) < -500""",
    ),
    Segment(
        "r_budget_only",
        "has purchases and every purchase line costs at most 2.10 a unit",
        """xEvent[eventType = "purchase"]
           and (forall X from xEvent[eventType = "purchase"] where X.unit_price <= 2.1)""",
        """SELECT id FROM ev WHERE type = 'purchase' GROUP BY id
           HAVING bool_and(unit_price <= 2.1)""",
    ),
    Segment(
        "r_cancel_rate",
        "cancelled lines are more than 5% of purchase lines (null without purchases)",
        'xEvent[eventType = "cancellation"].count() / xEvent[eventType = "purchase"].count() > 0.05',
        """SELECT id FROM ev GROUP BY id
           HAVING count(*) FILTER (type = 'cancellation')::DOUBLE
                  / nullif(count(*) FILTER (type = 'purchase'), 0) > 0.05""",
    ),
    Segment(
        "r_market_threshold",
        "purchases over 5,000 in the UK, over 2,000 elsewhere (if)",
        'xEvent[eventType = "purchase"].sum(amount) > if(country = "United Kingdom", 5000, 2000)',
        """SELECT p.id FROM prof p
             LEFT JOIN (SELECT id, sum(amount) AS s FROM ev WHERE type = 'purchase' GROUP BY id) e
             ON e.id = p.id
           WHERE coalesce(e.s, 0) > CASE WHEN p.country = 'United Kingdom' THEN 5000 ELSE 2000 END""",
    ),
    # ------------------------------------------------------------ profile attributes
    Segment(
        "r_overseas",
        "customers outside the British Isles",
        'country notIn ["United Kingdom", "EIRE", "Channel Islands"]',
        """SELECT id FROM prof WHERE country NOT IN ('United Kingdom', 'EIRE', 'Channel Islands')""",
    ),
    Segment(
        "r_dach",
        "German-speaking markets (regular expression)",
        'country matches "^(Germany|Austria|Switzerland)$"',
        """SELECT id FROM prof WHERE regexp_matches(country, '^(Germany|Austria|Switzerland)$')""",
    ),
    # ------------------------------------------------------------ products (string functions)
    Segment(
        "r_christmas_shoppers",
        "at least 5 Christmas lines (any case) from 1 October to now",
        """xEvent[eventType = "purchase" and description.contains("christmas", false)
                  and timestamp occurs between date(2011, 10, 1) and now].count() >= 5""",
        """SELECT id FROM ev WHERE type = 'purchase' AND lower(description) LIKE '%christmas%'
             AND ts >= TIMESTAMP '2011-10-01' AND ts <= now_ts()
           GROUP BY id HAVING count(*) >= 5""",
    ),
    Segment(
        "r_tea_party",
        "at least 3 lines of tea cups, pots or sets (regular expression)",
        r'xEvent[eventType = "purchase" and description matches "\\bTEA ?(CUP|POT|SET)S?\\b"].count() >= 3',
        r"""SELECT id FROM ev WHERE type = 'purchase'
             AND regexp_matches(description, '\bTEA ?(CUP|POT|SET)S?\b')
           GROUP BY id HAVING count(*) >= 3""",
    ),
    Segment(
        "r_jumbo_bag_fans",
        "at least 5 lines of jumbo bags (startsWith)",
        'xEvent[eventType = "purchase" and description.startsWith("JUMBO BAG")].count() >= 5',
        """SELECT id FROM ev WHERE type = 'purchase' AND starts_with(description, 'JUMBO BAG')
           GROUP BY id HAVING count(*) >= 5""",
    ),
    Segment(
        "r_lunch_bag_not_box",
        "bought lunch bags (like) but never a lunch box",
        """xEvent[eventType = "purchase" and description like "LUNCH BAG%"]
           and not xEvent[eventType = "purchase" and description like "%LUNCH BOX%"]""",
        """SELECT id FROM ev WHERE type = 'purchase' GROUP BY id
           HAVING bool_or(description LIKE 'LUNCH BAG%') AND NOT bool_or(description LIKE '%LUNCH BOX%')""",
    ),
    # ------------------------------------------------------------ basket patterns
    Segment(
        "r_bought_then_cancelled",
        "cancelled a product within 30 days after buying it",
        """exists P from xEvent where P.eventType = "purchase",
                  C from xEvent where C.eventType = "cancellation" and C.stock_code = P.stock_code
                                  and C.timestamp occurs <= 30 days after P.timestamp""",
        """SELECT p.id FROM ev p JOIN ev c ON c.id = p.id AND c.stock_code = p.stock_code
           WHERE p.type = 'purchase' AND c.type = 'cancellation'
             AND c.ts >= p.ts AND c.ts <= p.ts + INTERVAL 30 DAY""",
    ),
    Segment(
        "r_heart_then_cakestand",
        "bought the heart T-light holder, then the cakestand strictly later within 14 days",
        """exists H from xEvent where H.eventType = "purchase" and H.stock_code = "85123A",
                  C from xEvent where C.eventType = "purchase" and C.stock_code = "22423"
                                  and C.timestamp > H.timestamp
                                  and C.timestamp occurs < 14 days after H.timestamp""",
        """SELECT h.id FROM ev h JOIN ev c ON c.id = h.id
           WHERE h.type = 'purchase' AND h.stock_code = '85123A'
             AND c.type = 'purchase' AND c.stock_code = '22423'
             AND c.ts > h.ts AND c.ts < h.ts + INTERVAL 14 DAY""",
    ),
    Segment(
        "r_rebought_after_cancel",
        "at least 3 (cancellation, later purchase of that product) pairs (select)",
        """(select C from xEvent where C.eventType = "cancellation",
                   P from xEvent where P.eventType = "purchase" and P.stock_code = C.stock_code
                                   and P.timestamp occurs after C.timestamp).count() >= 3""",
        """SELECT c.id FROM ev c JOIN ev p ON p.id = c.id AND p.stock_code = c.stock_code
           WHERE c.type = 'cancellation' AND p.type = 'purchase' AND p.ts > c.ts
           GROUP BY c.id HAVING count(*) >= 3""",
    ),
    Segment(
        "r_reorder_within_48h",
        "two different orders within 48 hours",
        """exists F from xEvent where F.eventType = "purchase",
                  S from xEvent where S.eventType = "purchase" and S.invoice != F.invoice
                                  and S.timestamp occurs <= 48 hours after F.timestamp""",
        """WITH o AS (SELECT DISTINCT id, invoice, ts FROM ev WHERE type = 'purchase')
           SELECT f.id FROM o f JOIN o s ON s.id = f.id
           WHERE s.invoice <> f.invoice AND s.ts >= f.ts AND s.ts <= f.ts + INTERVAL 48 HOUR""",
    ),
    # ------------------------------------------------------------ sequences (chain)
    Segment(
        "r_comeback_after_cancel",
        "bought before March 2011, then cancelled something, then bought in the last 30 days",
        """chain(xEvent, timestamp, [
               A: WHAT(eventType = "purchase") WHEN(before @2011-03-01),
               B: WHAT(eventType = "cancellation"),
               C: WHAT(eventType = "purchase") WHEN(< 30 days before now)])""",
        """WITH a AS (SELECT id, min(ts) AS t FROM ev
                      WHERE type = 'purchase' AND ts < TIMESTAMP '2011-03-01' GROUP BY id),
                b AS (SELECT e.id, min(e.ts) AS t FROM ev e JOIN a ON a.id = e.id
                      WHERE e.type = 'cancellation' AND e.ts > a.t GROUP BY e.id)
           SELECT e.id FROM ev e JOIN b ON b.id = e.id
           WHERE e.type = 'purchase' AND e.ts > b.t
             AND e.ts > now_ts() - INTERVAL 30 DAY AND e.ts <= now_ts()""",
    ),
    Segment(
        "r_heart_x3_then_cakestand",
        "bought the heart T-light holder 3 times, later the cakestand (chain COUNT)",
        """chain(xEvent, timestamp, [
               H: WHAT(eventType = "purchase" and stock_code = "85123A") COUNT(3),
               C: WHAT(eventType = "purchase" and stock_code = "22423")])""",
        """WITH h AS (SELECT id, ts, row_number() OVER (PARTITION BY id ORDER BY ts) AS k
                      FROM ev WHERE type = 'purchase' AND stock_code = '85123A')
           SELECT e.id FROM ev e JOIN h ON h.id = e.id AND h.k = 3
           WHERE e.type = 'purchase' AND e.stock_code = '22423' AND e.ts > h.ts""",
    ),
    # ------------------------------------------------------------ calendar
    Segment(
        "r_first_season_back",
        "bought in December 2010 (date parts) and again this month",
        """xEvent[eventType = "purchase" and timestamp.getYear() = 2010 and timestamp.getMonth() = 12]
           and xEvent[eventType = "purchase" and timestamp occurs this month]""",
        """SELECT id FROM ev WHERE type = 'purchase' GROUP BY id
           HAVING bool_or(year(ts) = 2010 AND month(ts) = 12)
              AND bool_or(ts >= date_trunc('month', now_ts())
                          AND ts < date_trunc('month', now_ts()) + INTERVAL 1 MONTH)""",
    ),
    Segment(
        "r_month_start_buyers",
        "at least 5 orders placed in the first 3 days of a month",
        """xEvent[eventType = "purchase" and timestamp.getDayOfMonth() <= 3].invoice.distinct().count() >= 5""",
        """SELECT id FROM ev WHERE type = 'purchase' AND day(ts) <= 3
           GROUP BY id HAVING count(DISTINCT invoice) >= 5""",
    ),
    # ------------------------------------------------------------ segment references
    Segment(
        "r_at_risk_vip",
        "high spenders of the last 12 months who did not buy in the last 30 days",
        'inSegment("r_high_spend_12m") and not inSegment("r_recent_buyers")',
        """SELECT id FROM seg_r_high_spend_12m EXCEPT SELECT id FROM seg_r_recent_buyers""",
    ),
    Segment(
        "r_overseas_wholesale",
        "overseas customers with a wholesale line or at least 10 orders",
        'inAudience("r_overseas") and (inSegment("r_wholesale_line") or inSegment("r_frequent_orders"))',
        """SELECT id FROM seg_r_overseas
           INTERSECT (SELECT id FROM seg_r_wholesale_line UNION SELECT id FROM seg_r_frequent_orders)""",
    ),
]


# ====================================================================== The Complete Journey
#
# DuckDB tables (built by JOURNEY_SETUP below from the Parquet files):
#   tx(id, ts, store_id, basket_id, product_id, quantity, sales_value, retail_disc,
#      coupon_disc, coupon_match_disc, week, department, brand, product_category)
#       transactions LEFT JOIN products (null product fields where the product is unknown)
#   rcv(id, ts, campaign_id, campaign_type)     campaigns at their campaign's start_date
#   red(id, ts, coupon_upc, campaign_id, campaign_type)   coupon redemptions
#   hh(id, age, income, home_ownership, marital_status, household_size, household_comp,
#      kids_count)   every household of any table, demographics where known (else nulls)
#   now_ts()         the evaluation instant, TIMESTAMP '2018-01-01 02:00:00'

JOURNEY: list[Segment] = [
    # ------------------------------------------------------------ demographics
    Segment(
        "j_young_families",
        "head aged 19-34 with children (kids_count known and not 0)",
        'age in ["19-24", "25-34"] and kids_count != "0"',
        """SELECT id FROM hh WHERE age IN ('19-24', '25-34') AND kids_count <> '0'""",
    ),
    Segment(
        "j_affluent",
        "household income of 100K or more (like)",
        'income like "1__-%" or income like "2__-%" or income.endsWith("K+")',
        """SELECT id FROM hh WHERE income LIKE '1__-%' OR income LIKE '2__-%' OR ends_with(income, 'K+')""",
    ),
    Segment(
        "j_not_homeowners",
        "home ownership known and not 'Home...' (negative predicates are false on null)",
        'home_ownership.doesNotStartWith("Home")',
        """SELECT id FROM hh WHERE NOT starts_with(home_ownership, 'Home')""",
    ),
    Segment(
        "j_not_known_married",
        "not known to be married: unmarried, unknown status, or no demographics",
        'not (marital_status = "Married")',
        """SELECT id FROM hh WHERE NOT coalesce(marital_status = 'Married', false)""",
    ),
    Segment(
        "j_single_adults",
        "one adult without kids (startsWith and matches)",
        'household_comp.startsWith("1 Adult") and household_comp matches "No Kids$"',
        """SELECT id FROM hh WHERE starts_with(household_comp, '1 Adult')
             AND regexp_matches(household_comp, 'No Kids$')""",
    ),
    Segment(
        "j_big_households",
        "4 or more people, or 3+ kids",
        'household_size in ["4", "5+"] or kids_count = "3+"',
        """SELECT id FROM hh WHERE household_size IN ('4', '5+') OR kids_count = '3+'""",
    ),
    Segment(
        "j_parents_no_baby_food",
        "households with kids who never bought baby food",
        """household_comp.contains("Kids") and household_comp.doesNotContain("No Kids")
           and xEvent[eventType = "transaction" and product_category in ["BABY FOODS", "BABYFOOD"]].count() = 0""",
        """SELECT id FROM hh WHERE contains(household_comp, 'Kids')
             AND NOT contains(household_comp, 'No Kids')
             AND id NOT IN (SELECT id FROM tx WHERE product_category IN ('BABY FOODS', 'BABYFOOD'))""",
    ),
    Segment(
        "j_unknown_but_frequent",
        "no demographics, at least 8 baskets in the last 4 weeks (survey candidates)",
        """age.isNull()
           and xEvent[eventType = "transaction" and timestamp occurs < 4 weeks before now].basket_id.distinct().count() >= 8""",
        """SELECT id FROM hh WHERE age IS NULL AND id IN (
             SELECT id FROM tx WHERE ts > now_ts() - INTERVAL 28 DAY AND ts <= now_ts()
             GROUP BY id HAVING count(DISTINCT basket_id) >= 8)""",
    ),
    # ------------------------------------------------------------ recency and frequency
    Segment(
        "j_weekly_shoppers",
        "at least 24 baskets in the last 12 weeks",
        """xEvent[eventType = "transaction" and timestamp occurs < 12 weeks before now].basket_id.distinct().count() >= 24""",
        """SELECT id FROM tx WHERE ts > now_ts() - INTERVAL 84 DAY AND ts <= now_ts()
           GROUP BY id HAVING count(DISTINCT basket_id) >= 24""",
    ),
    Segment(
        "j_lapsed_60d",
        "last transaction more than 60 days ago",
        'xEvent[eventType = "transaction"].max(timestamp) occurs > 60 days before now',
        """SELECT id FROM tx GROUP BY id HAVING max(ts) < now_ts() - INTERVAL 60 DAY""",
    ),
    Segment(
        "j_new_in_h2",
        "first transaction on or after 1 July 2017 (after the day 30 June)",
        'xEvent[eventType = "transaction"].min(timestamp) occurs after date(2017, 6, 30)',
        """SELECT id FROM tx GROUP BY id HAVING min(ts) >= TIMESTAMP '2017-07-01'""",
    ),
    Segment(
        "j_shopped_two_weeks_ago",
        "a transaction in the 1-week bucket (between 2 and 1 weeks before now)",
        'xEvent[eventType = "transaction"].timestamp occurs = 1 week before now',
        """SELECT id FROM tx WHERE ts > now_ts() - INTERVAL 14 DAY AND ts <= now_ts() - INTERVAL 7 DAY""",
    ),
    Segment(
        "j_new_year_shoppers",
        "a transaction today, 1 January (also after now)",
        'xEvent[eventType = "transaction"].timestamp occurs today',
        """SELECT id FROM tx WHERE ts >= date_trunc('day', now_ts())
             AND ts < date_trunc('day', now_ts()) + INTERVAL 1 DAY""",
    ),
    Segment(
        "j_december_redeemers",
        "redeemed a coupon between the start of last month and the end of yesterday",
        'xEvent[eventType = "coupon_redemption" and timestamp occurs between last month and yesterday]',
        """SELECT id FROM red WHERE ts >= date_trunc('month', now_ts()) - INTERVAL 1 MONTH
             AND ts < date_trunc('day', now_ts())""",
    ),
    # ------------------------------------------------------------ monetary
    Segment(
        "j_big_spenders_2017",
        "spent over 4,000 in 2017 (last year)",
        'xEvent[eventType = "transaction" and timestamp occurs last year].sum(sales_value) > 4000',
        """SELECT id FROM tx WHERE year(ts) = year(now_ts()) - 1
           GROUP BY id HAVING sum(sales_value) > 4000""",
    ),
    Segment(
        "j_premium_items",
        "average line value (positive quantity) of at least 4.50",
        'xEvent[eventType = "transaction" and quantity > 0].average(sales_value) >= 4.5',
        """SELECT id FROM tx WHERE quantity > 0 GROUP BY id HAVING avg(sales_value) >= 4.5""",
    ),
    Segment(
        "j_meat_big_ticket",
        "a single meat line of at least 40",
        'xEvent[eventType = "transaction" and department = "MEAT"].max(sales_value) >= 40',
        """SELECT id FROM tx WHERE department = 'MEAT' GROUP BY id HAVING max(sales_value) >= 40""",
    ),
    Segment(
        "j_coupon_savvy",
        "coupon discounts of at least 10 in the last 90 days",
        """xEvent[eventType = "transaction" and timestamp occurs < 90 days before now].sum(coupon_disc + coupon_match_disc) >= 10""",
        """SELECT id FROM tx WHERE ts > now_ts() - INTERVAL 90 DAY AND ts <= now_ts()
           GROUP BY id HAVING sum(coupon_disc + coupon_match_disc) >= 10""",
    ),
    Segment(
        "j_deal_seekers",
        "retail discounts above 25% of sales value",
        'xEvent[eventType = "transaction"].sum(retail_disc) / xEvent[eventType = "transaction"].sum(sales_value) > 0.25',
        """SELECT id FROM tx GROUP BY id HAVING sum(retail_disc) / nullif(sum(sales_value), 0) > 0.25""",
    ),
    Segment(
        "j_private_label",
        "at least 40% of lines are private-label",
        'xEvent[eventType = "transaction" and brand = "Private"].count() / xEvent[eventType = "transaction"].count() >= 0.4',
        """SELECT id FROM tx GROUP BY id
           HAVING count(*) FILTER (brand = 'Private')::DOUBLE / count(*) >= 0.4""",
    ),
    Segment(
        "j_family_threshold",
        "spent last month over 600 for big households, over 300 otherwise (if)",
        """xEvent[eventType = "transaction" and timestamp occurs last month].sum(sales_value)
           > if(household_size in ["4", "5+"], 600, 300)""",
        """SELECT h.id FROM hh h LEFT JOIN (
               SELECT id, sum(sales_value) AS s FROM tx
               WHERE ts >= date_trunc('month', now_ts()) - INTERVAL 1 MONTH
                 AND ts < date_trunc('month', now_ts())
               GROUP BY id) t
             ON t.id = h.id
           WHERE coalesce(t.s, 0)
                 > CASE WHEN coalesce(h.household_size IN ('4', '5+'), false) THEN 600 ELSE 300 END""",
    ),
    # ------------------------------------------------------------ product mix (null event fields)
    Segment(
        "j_specialty_regulars",
        "at least 200 lines outside grocery, produce and drugs (unknown products: notIn is false)",
        """xEvent[eventType = "transaction"
                  and department notIn ["GROCERY", "PRODUCE", "DRUG GM"]].count() >= 200""",
        """SELECT id FROM tx WHERE department NOT IN ('GROCERY', 'PRODUCE', 'DRUG GM')
           GROUP BY id HAVING count(*) >= 200""",
    ),
    Segment(
        "j_uncatalogued_buyers",
        "at least 5 lines of products missing from the catalogue (data quality)",
        'xEvent[eventType = "transaction" and department.isNull()].count() >= 5',
        """SELECT id FROM tx WHERE department IS NULL GROUP BY id HAVING count(*) >= 5""",
    ),
    # ------------------------------------------------------------ distinct counts
    Segment(
        "j_department_explorers",
        "at least 12 departments last month",
        'xEvent[eventType = "transaction" and timestamp occurs last month].department.distinct().count() >= 12',
        """SELECT id FROM tx WHERE ts >= date_trunc('month', now_ts()) - INTERVAL 1 MONTH
             AND ts < date_trunc('month', now_ts())
           GROUP BY id HAVING count(DISTINCT department) >= 12""",
    ),
    Segment(
        "j_one_store",
        "every transaction in one store",
        'xEvent[eventType = "transaction"].store_id.distinct().count() = 1',
        """SELECT id FROM tx GROUP BY id HAVING count(DISTINCT store_id) = 1""",
    ),
    Segment(
        "j_fuel_or_travel",
        "some event in the fuel or travel department (comparisons on a field list)",
        'xEvent.department = "FUEL" or xEvent.department = "TRAVEL & LEISURE"',
        """SELECT id FROM tx WHERE department IN ('FUEL', 'TRAVEL & LEISURE')""",
    ),
    # ------------------------------------------------------------ campaigns and basket patterns
    Segment(
        "j_campaign_responders",
        "redeemed a coupon of a received campaign within 30 days of its start",
        """exists C from xEvent where C.eventType = "campaign_received",
                  R from xEvent where R.eventType = "coupon_redemption" and R.campaign_id = C.campaign_id
                                  and R.timestamp occurs <= 30 days after C.timestamp""",
        """SELECT c.id FROM rcv c JOIN red r ON r.id = c.id AND r.campaign_id = c.campaign_id
           WHERE r.ts >= c.ts AND r.ts <= c.ts + INTERVAL 30 DAY""",
    ),
    Segment(
        "j_type_a_silent",
        "received a Type A campaign in the last 90 days, never redeemed a coupon",
        """xEvent[eventType = "campaign_received" and campaign_type = "Type A"
                  and timestamp occurs <= 90 days before now]
           and not xEvent[eventType = "coupon_redemption"]""",
        """SELECT id FROM rcv WHERE campaign_type = 'Type A'
             AND ts >= now_ts() - INTERVAL 90 DAY AND ts <= now_ts()
           EXCEPT SELECT id FROM red""",
    ),
    Segment(
        "j_active_before_type_c",
        "shopped in the 7 days up to the start of a Type C campaign they received",
        """exists C from xEvent where C.eventType = "campaign_received" and C.campaign_type = "Type C",
                  T from xEvent where T.eventType = "transaction"
                                  and T.timestamp occurs < 7 days before C.timestamp""",
        """SELECT c.id FROM rcv c JOIN tx t ON t.id = c.id
           WHERE c.campaign_type = 'Type C'
             AND t.ts > c.ts - INTERVAL 7 DAY AND t.ts <= c.ts""",
    ),
    Segment(
        "j_diapers_then_baby_food",
        "bought diapers, then baby food strictly later within 7 days",
        """exists D from xEvent where D.eventType = "transaction" and D.product_category = "DIAPERS & DISPOSABLES",
                  B from xEvent where B.eventType = "transaction" and B.product_category in ["BABY FOODS", "BABYFOOD"]
                                  and B.timestamp > D.timestamp
                                  and B.timestamp occurs < 7 days after D.timestamp""",
        """SELECT d.id FROM tx d JOIN tx b ON b.id = d.id
           WHERE d.product_category = 'DIAPERS & DISPOSABLES'
             AND b.product_category IN ('BABY FOODS', 'BABYFOOD')
             AND b.ts > d.ts AND b.ts < d.ts + INTERVAL 7 DAY""",
    ),
    Segment(
        "j_multi_redeemer_pairs",
        "at least 5 (redemption, later redemption of the same campaign) pairs (select)",
        """(select A from xEvent where A.eventType = "coupon_redemption",
                   B from xEvent where B.eventType = "coupon_redemption"
                                   and B.campaign_id = A.campaign_id and B.timestamp > A.timestamp).count() >= 5""",
        """SELECT a.id FROM red a JOIN red b ON b.id = a.id AND b.campaign_id = a.campaign_id
           WHERE b.ts > a.ts GROUP BY a.id HAVING count(*) >= 5""",
    ),
    # ------------------------------------------------------------ sequences (chain)
    Segment(
        "j_redeem_then_produce",
        "redeemed a coupon, then 5 produce lines in the last 14 days (chain COUNT)",
        """chain(xEvent, timestamp, [
               R: WHAT(eventType = "coupon_redemption"),
               P: WHAT(eventType = "transaction" and department = "PRODUCE")
                  WHEN(< 14 days before now) COUNT(5)])""",
        """WITH r AS (SELECT id, min(ts) AS t FROM red GROUP BY id)
           SELECT p.id FROM tx p JOIN r ON r.id = p.id
           WHERE p.department = 'PRODUCE' AND p.ts > r.t
             AND p.ts > now_ts() - INTERVAL 14 DAY AND p.ts <= now_ts()
           GROUP BY p.id HAVING count(*) >= 5""",
    ),
    Segment(
        "j_campaign_redeem_discount",
        "received a Type B campaign, redeemed one of its kind, then a coupon-discounted line this month",
        """chain(xEvent, timestamp, [
               C: WHAT(eventType = "campaign_received" and campaign_type = "Type B"),
               R: WHAT(eventType = "coupon_redemption") WHERE(campaign_type = "Type B"),
               T: WHAT(eventType = "transaction") WHERE(coupon_disc > 0) WHEN(last month)])""",
        """WITH c AS (SELECT id, min(ts) AS t FROM rcv WHERE campaign_type = 'Type B' GROUP BY id),
                r AS (SELECT e.id, min(e.ts) AS t FROM red e JOIN c ON c.id = e.id
                      WHERE e.campaign_type = 'Type B' AND e.ts > c.t GROUP BY e.id)
           SELECT t.id FROM tx t JOIN r ON r.id = t.id
           WHERE t.coupon_disc > 0 AND t.ts > r.t
             AND t.ts >= date_trunc('month', now_ts()) - INTERVAL 1 MONTH
             AND t.ts < date_trunc('month', now_ts())""",
    ),
    # ------------------------------------------------------------ calendar
    Segment(
        "j_christmas_eve",
        "spent at least 50 on 24 December 2017",
        'xEvent[eventType = "transaction" and timestamp occurs on date(2017, 12, 24)].sum(sales_value) >= 50',
        """SELECT id FROM tx WHERE ts >= TIMESTAMP '2017-12-24' AND ts < TIMESTAMP '2017-12-25'
           GROUP BY id HAVING sum(sales_value) >= 50""",
    ),
    Segment(
        "j_thanksgiving_stockup",
        "at least 20 lines on 21-23 November (date parts)",
        """xEvent[eventType = "transaction" and timestamp.getMonth() = 11
                  and timestamp.getDayOfMonth() in [21, 22, 23]].count() >= 20""",
        """SELECT id FROM tx WHERE month(ts) = 11 AND day(ts) IN (21, 22, 23)
           GROUP BY id HAVING count(*) >= 20""",
    ),
    # ------------------------------------------------------------ segment references
    Segment(
        "j_vip_responders",
        "big 2017 spenders who respond to campaigns",
        'inSegment("j_big_spenders_2017") and inSegment("j_campaign_responders")',
        """SELECT id FROM seg_j_big_spenders_2017 INTERSECT SELECT id FROM seg_j_campaign_responders""",
    ),
    Segment(
        "j_loyal_families",
        "weekly shoppers among big or young families",
        'inSegment("j_weekly_shoppers") and (inSegment("j_big_households") or inSegment("j_young_families"))',
        """SELECT id FROM seg_j_weekly_shoppers
           INTERSECT (SELECT id FROM seg_j_big_households UNION SELECT id FROM seg_j_young_families)""",
    ),
    Segment(
        "j_vip_outreach",
        "VIP responders or loyal families (a reference to references)",
        'inSegment("j_vip_responders") or inSegment("j_loyal_families")',
        """SELECT id FROM seg_j_vip_responders UNION SELECT id FROM seg_j_loyal_families""",
    ),
]


# ====================================================================== DuckDB's view of the files

RETAIL_SETUP = """
SET TimeZone = 'UTC';
CREATE TABLE raw AS SELECT * FROM read_csv('{csv}', header = true, columns = {{
    'InvoiceNo': 'VARCHAR', 'StockCode': 'VARCHAR', 'Description': 'VARCHAR',
    'Quantity': 'BIGINT', 'InvoiceDate': 'TIMESTAMP', 'UnitPrice': 'DOUBLE',
    'CustomerID': 'DOUBLE', 'Country': 'VARCHAR'}});
CREATE TABLE ev AS SELECT
    CustomerID::BIGINT AS id,
    timezone('UTC', timezone('Europe/London', InvoiceDate)) AS ts,
    CASE WHEN starts_with(InvoiceNo, 'C') THEN 'cancellation' ELSE 'purchase' END AS type,
    InvoiceNo AS invoice, StockCode AS stock_code, Description AS description,
    Quantity AS quantity, UnitPrice AS unit_price, Quantity::DOUBLE * UnitPrice AS amount,
    Country AS country
    FROM raw WHERE CustomerID IS NOT NULL;
CREATE TABLE prof AS SELECT id, arg_max(country, ts) AS country FROM ev GROUP BY id;
CREATE MACRO now_ts() AS TIMESTAMP '{now}';
"""

JOURNEY_SETUP = """
SET TimeZone = 'UTC';
CREATE TABLE tx AS SELECT
    t.household_id AS id, t.transaction_timestamp AS ts, t.store_id, t.basket_id, t.product_id,
    t.quantity, t.sales_value, t.retail_disc, t.coupon_disc, t.coupon_match_disc, t.week,
    p.department, p.brand, p.product_category
    FROM '{dir}/transactions.parquet' t LEFT JOIN '{dir}/products.parquet' p USING (product_id);
CREATE TABLE rcv AS SELECT c.household_id AS id, d.start_date AS ts, c.campaign_id, d.campaign_type
    FROM '{dir}/campaigns.parquet' c JOIN '{dir}/campaign_descriptions.parquet' d USING (campaign_id);
CREATE TABLE red AS SELECT r.household_id AS id, r.redemption_date AS ts, r.coupon_upc,
    r.campaign_id, d.campaign_type
    FROM '{dir}/coupon_redemptions.parquet' r
    LEFT JOIN '{dir}/campaign_descriptions.parquet' d USING (campaign_id);
CREATE TABLE hh AS SELECT k.id, d.* EXCLUDE (household_id) FROM (
        SELECT household_id AS id FROM '{dir}/transactions.parquet'
        UNION SELECT household_id FROM '{dir}/campaigns.parquet'
        UNION SELECT household_id FROM '{dir}/coupon_redemptions.parquet'
        UNION SELECT household_id FROM '{dir}/demographics.parquet') k
    LEFT JOIN '{dir}/demographics.parquet' d ON d.household_id = k.id;
CREATE MACRO now_ts() AS TIMESTAMP '{now}';
"""


def _sql_instant(iso: str) -> str:
    return iso.replace("T", " ").removesuffix("Z")


# ====================================================================== evaluation


@dataclass
class Evaluation:
    """One dataset's segments, evaluated by the engine and by DuckDB."""

    total: int  # profiles in the store
    profiles_in_sql: int
    engine_keys: dict[str, set[int]] = field(default_factory=dict)
    sql_keys: dict[str, set[int]] = field(default_factory=dict)
    errors: dict[str, Exception] = field(default_factory=dict)  # definitions that failed
    seconds: dict[str, float] = field(default_factory=dict)


def evaluate(
    store: ProfileStore, segments: list[Segment], at: str, setup: str, profiles_table: str
) -> Evaluation:
    duckdb = pytest.importorskip("duckdb")
    started = time.perf_counter()
    eng = engine.Engine(store)
    errors: dict[str, Exception] = {}
    for seg in segments:
        failed = [r for r in references(seg) if r in errors]
        if failed:
            errors[seg.name] = RuntimeError(f"refers to {failed}, which failed")
            continue
        try:
            eng.define(seg.name, seg.pql)
        except (engine.SegmentError, engine.CompileError) as e:
            errors[seg.name] = e
    res = eng.run(at=at)
    out = Evaluation(total=len(store), profiles_in_sql=0, errors=errors)
    out.engine_keys = {name: set(res.ids(name).to_pylist()) for name in eng.names}
    out.seconds["engine"] = time.perf_counter() - started

    started = time.perf_counter()
    con = duckdb.connect()
    try:
        for statement in setup.split(";"):
            if statement.strip():
                con.execute(statement)
        out.profiles_in_sql = con.execute(f"SELECT count(*) FROM {profiles_table}").fetchone()[0]
        for seg in segments:
            con.execute(f"CREATE TABLE seg_{seg.name} AS SELECT DISTINCT id FROM ({seg.sql})")
            out.sql_keys[seg.name] = {
                r[0] for r in con.execute(f"SELECT id FROM seg_{seg.name}").fetchall()
            }
    finally:
        con.close()
    out.seconds["duckdb"] = time.perf_counter() - started
    return out


def references(seg: Segment) -> list[str]:
    return re.findall(r'in(?:Segment|Audience)\("([^"]+)"\)', seg.pql)


def check(evaluation: Evaluation, seg: Segment) -> None:
    if seg.name in evaluation.errors:
        raise evaluation.errors[seg.name]
    got = evaluation.engine_keys[seg.name]
    expected = evaluation.sql_keys[seg.name]
    assert evaluation.total == evaluation.profiles_in_sql
    missing, extra = sorted(expected - got), sorted(got - expected)
    assert not missing and not extra, (
        f"{seg.name}: {len(got)} members, DuckDB {len(expected)}; "
        f"missing {len(missing)} (e.g. {missing[:5]}), extra {len(extra)} (e.g. {extra[:5]})"
    )
    assert 0 < len(got) < evaluation.total, f"{seg.name} is trivial: {len(got)} members"


# ====================================================================== fixtures and tests


@pytest.fixture(scope="module")
def retail() -> Iterator[Evaluation]:
    if not RETAIL_CSV.is_file():
        pytest.skip(f"no {RETAIL_CSV} (set ${DATA_ENV} to the shared data directory)")
    setup = RETAIL_SETUP.format(csv=RETAIL_CSV, now=_sql_instant(RETAIL_NOW))
    yield evaluate(online_retail(), RETAIL, RETAIL_NOW, setup, "prof")


@pytest.fixture(scope="module")
def journey() -> Iterator[Evaluation]:
    if not (JOURNEY_DIR / "transactions.parquet").is_file():
        pytest.skip(f"no {JOURNEY_DIR} (set ${DATA_ENV} to the shared data directory)")
    setup = JOURNEY_SETUP.format(dir=JOURNEY_DIR, now=_sql_instant(JOURNEY_NOW))
    yield evaluate(complete_journey(), JOURNEY, JOURNEY_NOW, setup, "hh")


def _params(segments: list[Segment]) -> list[Any]:
    return [pytest.param(s, id=s.name, marks=s.marks) for s in segments]


@pytest.mark.parametrize("seg", _params(RETAIL))
def test_retail_segment(retail: Evaluation, seg: Segment) -> None:
    check(retail, seg)


@pytest.mark.parametrize("seg", _params(JOURNEY))
def test_journey_segment(journey: Evaluation, seg: Segment) -> None:
    check(journey, seg)


def test_the_tables() -> None:
    """Unique names, references to earlier segments only, the required breadth."""
    names = [s.name for s in RETAIL + JOURNEY]
    assert len(names) == len(set(names)) >= 30
    for table in (RETAIL, JOURNEY):
        seen: set[str] = set()
        for seg in table:
            assert set(references(seg)) <= seen, seg.name
            seen.add(seg.name)


def test_retail_example_file_is_the_table() -> None:
    """examples/retail_segments.toml holds the Online Retail definitions above, in order."""
    path = Path(__file__).resolve().parents[1] / "examples" / "retail_segments.toml"
    example = engine.SegmentFile.load(path)
    assert [d.name for d in example] == [s.name for s in RETAIL]
    for seg in RETAIL:
        canonical = engine.unparse(engine.parse(seg.pql))
        assert engine.unparse(engine.parse(example[seg.name].pql)) == canonical, seg.name
