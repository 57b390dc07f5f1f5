"""Billing periods and proration: plain date arithmetic, no database.

Periods are half-open [start, end): `end` is the first day of the next period.
- monthly, anniversary: from the activation day, month by month; a start on the 29th-31st
  falls on the last day of shorter months (Jan 31 -> Feb 28/29 -> Mar 31).
- monthly, fixed day: from that day of each month; the first period after activation is
  partial (activation day to the next fixed day) and prorated.
- weekly / daily: 7 days / 1 day from the activation day.

Proration is price x days used / days in that period, rounded half-up to the cent
(ROUND_HALF_UP on the final amount only, never on intermediate ratios), so a 30-day
month and a 31-day month charge a day differently, as a customer's receipt would show.
"""

import calendar
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


def add_months(day: date, months: int, anchor_day: int | None = None) -> date:
    """`day` moved by whole months, keeping `anchor_day` (default day.day) where the
    month has it and the month's last day where it does not."""
    anchor_day = anchor_day or day.day
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(anchor_day, calendar.monthrange(year, month)[1]))


def period_containing(cycle: str, anchor: date, day: date, fixed_day: int | None = None):
    """The period of a plan with `cycle` that contains `day`, for an account whose
    periods are anchored at `anchor` (its activation date). Returns (start, end)."""
    if day < anchor:
        raise ValueError("day is before the anchor")
    if cycle == "daily" or cycle == "hourly":
        return day, day + timedelta(days=1)
    if cycle == "weekly":
        weeks = (day - anchor).days // 7
        start = anchor + timedelta(days=7 * weeks)
        return start, start + timedelta(days=7)
    if fixed_day:
        start = date(day.year, day.month, fixed_day)
        if start > day:
            start = add_months(start, -1, fixed_day)
        first = start if start >= anchor else anchor
        return first, add_months(start, 1, fixed_day)
    months = (day.year - anchor.year) * 12 + day.month - anchor.month
    start = add_months(anchor, months, anchor.day)
    if start > day:
        months -= 1
        start = add_months(anchor, months, anchor.day)
    return start, add_months(anchor, months + 1, anchor.day)


def full_period_days(cycle: str, start: date, anchor: date, fixed_day: int | None = None) -> int:
    """Days in the whole period that `start` falls in (a partial first period counts the
    whole month it belongs to, so its proration is against that month)."""
    if cycle in ("daily", "hourly"):
        return 1
    if cycle == "weekly":
        return 7
    if fixed_day:
        period_start = date(start.year, start.month, fixed_day)
        if period_start > start:
            period_start = add_months(period_start, -1, fixed_day)
        return (add_months(period_start, 1, fixed_day) - period_start).days
    s, e = period_containing(cycle, anchor, start)
    return (e - s).days


def prorate(amount: Decimal, days_used: int, days_in_period: int) -> Decimal:
    """amount x used/period, rounded half-up to the cent (0 <= used <= period)."""
    if days_in_period <= 0 or not 0 <= days_used <= days_in_period:
        raise ValueError("days used must be between 0 and the period's days")
    return (Decimal(amount) * days_used / days_in_period).quantize(CENT, rounding=ROUND_HALF_UP)


def split_vat(amount: Decimal, rate: Decimal, inclusive: bool) -> tuple[Decimal, Decimal, Decimal]:
    """(subtotal, vat, total) of an invoice whose lines sum to `amount`. VAT is worked out
    once on the invoice's sum and rounded half-up to the cent; inclusive prices hold
    the VAT (vat = amount x rate / (100 + rate)), exclusive ones get it added."""
    amount = Decimal(amount).quantize(CENT, rounding=ROUND_HALF_UP)
    rate = Decimal(rate)
    if inclusive:
        vat = (amount * rate / (100 + rate)).quantize(CENT, rounding=ROUND_HALF_UP)
        return amount - vat, vat, amount
    vat = (amount * rate / 100).quantize(CENT, rounding=ROUND_HALF_UP)
    return amount, vat, amount + vat


def last_day(end: date) -> date:
    """The last day of a half-open range [start, end)."""
    return end - timedelta(days=1)
