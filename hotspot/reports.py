"""What staff read about the hotspot: who is on it now (live entitlements per router,
with time and data left), and what it sold (cards, M-Pesa purchases and devices let
through for money per day, by package and by agent). Read-only queries; the pages are
hotspot.views_live."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db.models import Count, DateField, Sum, Value
from django.db.models.functions import Coalesce, Concat, Trunc
from django.utils import timezone

from hotspot.models import BypassSale, Entitlement, Voucher

ZERO = Decimal("0.00")


def live(routers):
    """Live entitlements on `routers` (a queryset the viewer may see), newest first."""
    return (
        Entitlement.objects.filter(state=Entitlement.State.LIVE, router__in=routers)
        .select_related("package", "router")
        .order_by("-created_at", "-id")
    )


@dataclass(frozen=True)
class Day:
    day: date
    cards: int
    card_amount: Decimal
    purchases: int
    purchase_amount: Decimal
    devices: int = 0  # devices let through (hotspot.bypass_sales), cash or M-Pesa
    device_amount: Decimal = ZERO

    @property
    def amount(self) -> Decimal:
        return self.card_amount + self.purchase_amount + self.device_amount


@dataclass(frozen=True)
class Sales:
    days: list[Day]
    by_package: list[dict]
    by_agent: list[dict]

    @property
    def total(self) -> Decimal:
        return sum((d.amount for d in self.days), ZERO)

    @property
    def best_day(self) -> Decimal:
        return max((d.amount for d in self.days), default=ZERO)


def sales(*, since: date, until: date, routers, batches) -> Sales:
    """Money taken from `since` to `until` (local days, inclusive): a card counts when
    it was sold (or, never recorded as sold, when it was redeemed) at its batch's
    price; a purchase when its entitlement was granted, at the payment's amount; a
    device let through when its sale was granted, at the amount taken (free passes are
    no sale).
    `batches`: the voucher batches the viewer may see; `routers`: the routers."""
    start, end = _bounds(since, until)
    tz = timezone.get_current_timezone()
    cards = (
        Voucher.objects.filter(batch__in=batches)
        .annotate(sold=Coalesce("sold_at", "redeemed_at"))
        .filter(sold__gte=start, sold__lt=end)
    )
    purchases = Entitlement.objects.filter(
        source=Entitlement.Source.PURCHASE,
        router__in=routers,
        payment__isnull=False,
        created_at__gte=start,
        created_at__lt=end,
    )
    devices = BypassSale.objects.filter(
        router__in=routers, granted_at__gte=start, granted_at__lt=end
    ).exclude(method=BypassSale.Method.FREE)
    per_day: dict[date, list] = defaultdict(lambda: [0, ZERO, 0, ZERO, 0, ZERO])
    for row in (
        cards.annotate(day=Trunc("sold", "day", output_field=DateField(), tzinfo=tz))
        .values("day")
        .annotate(n=Count("id"), amount=Sum("batch__price"))
    ):
        per_day[row["day"]][0:2] = [row["n"], row["amount"] or ZERO]
    for row in (
        purchases.annotate(day=Trunc("created_at", "day", output_field=DateField(), tzinfo=tz))
        .values("day")
        .annotate(n=Count("id"), amount=Sum("payment__amount"))
    ):
        per_day[row["day"]][2:4] = [row["n"], row["amount"] or ZERO]
    for row in (
        devices.annotate(day=Trunc("granted_at", "day", output_field=DateField(), tzinfo=tz))
        .values("day")
        .annotate(n=Count("id"), amount=Sum("amount"))
    ):
        per_day[row["day"]][4:6] = [row["n"], row["amount"] or ZERO]
    days = [Day(d, *per_day[d]) for d in _each_day(since, until)]
    by_package = _merge(
        cards.values("batch__package__name").annotate(n=Count("id"), amount=Sum("batch__price")),
        purchases.values("package__name").annotate(n=Count("id"), amount=Sum("payment__amount")),
        devices.annotate(
            name=Coalesce(Concat(Value("Device: "), "offer__name"), Value("Device: own length"))
        )
        .values("name")
        .annotate(n=Count("id"), amount=Sum("amount")),
    )
    by_agent = list(
        cards.filter(batch__agent__isnull=False)
        .values("batch__agent__full_name", "batch__agent__email")
        .annotate(n=Count("id"), amount=Sum("batch__price"))
        .order_by("-amount")
    )
    return Sales(days=days, by_package=by_package, by_agent=by_agent)


def _merge(card_rows, purchase_rows, device_rows) -> list[dict]:
    merged: dict[str, dict] = {}
    for name_key, rows, kind in (
        ("batch__package__name", card_rows, "cards"),
        ("package__name", purchase_rows, "purchases"),
        ("name", device_rows, "devices"),
    ):
        for row in rows:
            name = row[name_key]
            entry = merged.setdefault(
                name, {"package": name, "cards": 0, "purchases": 0, "devices": 0, "amount": ZERO}
            )
            entry[kind] += row["n"]
            entry["amount"] += row["amount"] or ZERO
    return sorted(merged.values(), key=lambda e: e["amount"], reverse=True)


def _bounds(since: date, until: date) -> tuple[datetime, datetime]:
    tz = timezone.get_current_timezone()
    start = datetime.combine(since, datetime.min.time(), tzinfo=tz)
    end = datetime.combine(until + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    return start, end


def _each_day(since: date, until: date):
    day = since
    while day <= until:
        yield day
        day += timedelta(days=1)
