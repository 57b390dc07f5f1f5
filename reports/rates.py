"""Rates (issue 15; /work/shared/hotspot.md C.2): logo churn, gross and net MRR churn,
net revenue retention and ARPU from a period's MRR movement (reports.movement), and
hotspot ARPU from what the hotspot sold (the same sales as hotspot.reports.sales:
cards at their batch's price when sold, or redeemed if never recorded as sold, and
M-Pesa purchases at the payment's amount when granted).

Rates are Decimal fractions (0.05 is 5 %), None where the base is zero; rounding is for
display only (`percent`).
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from hotspot.models import Entitlement, Voucher
from reports.movement import Movement, Period

ZERO = Decimal("0.00")


def _ratio(top: Decimal, bottom) -> Decimal | None:
    return None if not bottom else Decimal(top) / Decimal(bottom)


def percent(rate: Decimal | None) -> str:
    """'5.3 %' for 0.0530..., '-' for no rate: display only."""
    if rate is None:
        return "-"
    return f"{(rate * 100).quantize(Decimal('0.1'), rounding=ROUND_HALF_UP)} %"


@dataclass(frozen=True)
class Rates:
    period: Period
    logo_churn: Decimal | None  # customers at start who are not at the end / at start
    gross_mrr_churn: Decimal | None  # (churn + contraction) / start MRR
    net_mrr_churn: Decimal | None  # (churn + contraction - expansion) / start MRR
    net_revenue_retention: Decimal | None  # (start + expansion - contraction - churn) / start
    arpu: Decimal | None  # end MRR / paying customers at the end
    hotspot_revenue: Decimal = ZERO
    hotspot_buyers: int = 0
    hotspot_arpu: Decimal | None = None


def rates(m: Movement, *, hotspot: tuple[Decimal, int] = (ZERO, 0)) -> Rates:
    """The period's rates from its movement and its hotspot (revenue, buyers)."""
    lost = m.churn + m.contraction
    revenue, buyers = hotspot
    return Rates(
        period=m.period,
        logo_churn=_ratio(Decimal(m.counts["churn"]), m.customers_start),
        gross_mrr_churn=_ratio(lost, m.start),
        net_mrr_churn=_ratio(lost - m.expansion, m.start),
        net_revenue_retention=_ratio(m.start + m.expansion - lost, m.start),
        arpu=_ratio(m.end, m.customers_end),
        hotspot_revenue=revenue,
        hotspot_buyers=buyers,
        hotspot_arpu=_ratio(revenue, buyers),
    )


def _bounds(first: date, last: date) -> tuple[datetime, datetime]:
    tz = timezone.get_current_timezone()
    return (
        datetime.combine(first, time.min, tzinfo=tz),
        datetime.combine(last + timedelta(days=1), time.min, tzinfo=tz),
    )


def hotspot_sales(first: date, last: date, *, branch_ids=None) -> tuple[Decimal, int]:
    """Hotspot revenue from `first` to `last` (local days, inclusive) and its distinct
    paying buyers: a buyer is a phone (a purchase's, or the phone a card was sold to);
    a card sold to no recorded phone counts as a buyer of its own. Branch-limited:
    purchases on the branches' routers and cards of batches for their sites."""
    start, end = _bounds(first, last)
    cards = Voucher.objects.annotate(sold=Coalesce("sold_at", "redeemed_at")).filter(
        sold__gte=start, sold__lt=end
    )
    purchases = Entitlement.objects.filter(
        source=Entitlement.Source.PURCHASE,
        payment__isnull=False,
        created_at__gte=start,
        created_at__lt=end,
    )
    if branch_ids is not None:
        cards = cards.filter(batch__site__branch__in=branch_ids)
        purchases = purchases.filter(router__branch__in=branch_ids)
    card_totals = cards.aggregate(
        amount=Sum("batch__price"), anonymous=Count("id", filter=Q(sold_to=""))
    )
    amount = (card_totals["amount"] or ZERO) + (
        purchases.aggregate(amount=Sum("payment__amount"))["amount"] or ZERO
    )
    phones = set(cards.exclude(sold_to="").values_list("sold_to", flat=True)) | set(
        purchases.exclude(phone="").values_list("phone", flat=True)
    )
    return Decimal(amount), len(phones) + card_totals["anonymous"]
