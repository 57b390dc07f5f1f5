"""Collections: billed against collected for a period, by channel, branch and site.

Definitions (local Africa/Nairobi days, `since` to `until` inclusive):
- billed: invoices issued in the period (VAT included, voided ones left out) less the
  credit notes of the period (credit-note documents and credit notes on the ledger).
- collected: payments on the ledger in the period (billing.LedgerEntry kind payment),
  by channel from the Payment that credited it: STK (M-Pesa, via_stk), paybill
  (M-Pesa C2B confirmation only), cash, bank (bank transfer or cheque), other
  (M-Pesa typed in by staff, or a payment recorded on the ledger without a Payment);
  voucher: hotspot cards sold in the period; and hotspot: packages bought on the captive
  page (M-Pesa) and devices let through for money (cash or M-Pesa), both by
  hotspot.reports.sales, money that never reaches a customer's ledger.
- collection rate: what payments have settled so far of the period's invoices
  (billing's allocation: amount_paid), over those invoices' total less the credit
  notes written against them in the period.
- unallocated: credit customers hold that no invoice has taken (billing.credits_many),
  today; unmatched M-Pesa payments (no customer found) apart.
Place: the customer's branch and site; a site's figures include its sub-sites.
Hotspot money and unmatched payments belong to no customer, so a branch-limited view leaves
them out.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.db.models import (
    Case,
    CharField,
    IntegerField,
    OuterRef,
    Q,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce

from billing import services as billing
from billing.models import Invoice, LedgerEntry
from hotspot import reports as hotspot_reports
from hotspot.models import VoucherBatch
from ispops.staff.models import Branch
from network.models import Router
from payments.models import Payment
from subscribers.models import Customer, NetworkSite

ZERO = billing.ZERO
CENT = Decimal("0.01")
CHANNELS = (
    ("stk", "M-Pesa STK"),
    ("paybill", "Paybill (C2B)"),
    ("cash", "Cash"),
    ("bank", "Bank"),
    ("other", "Other"),
    ("voucher", "Vouchers"),
    ("hotspot", "Hotspot sales"),
)


@dataclass
class Period:
    since: date
    until: date
    label: str

    @property
    def bounds(self):
        return billing.day_start(self.since), billing.day_start(self.until + timedelta(days=1))


def month_of(day: date) -> Period:
    first = day.replace(day=1)
    last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    return Period(first, last, f"{first:%b %Y}")


def week_of(day: date) -> Period:
    monday = day - timedelta(days=day.weekday())
    return Period(monday, monday + timedelta(days=6), f"Week of {monday:%d %b %Y}")


def periods(kind: str, until: date, count: int) -> list[Period]:
    """The `count` months or weeks up to the one holding `until`, oldest first."""
    out = []
    current = week_of(until) if kind == "week" else month_of(until)
    for _ in range(count):
        out.append(current)
        back = current.since - timedelta(days=1)
        current = week_of(back) if kind == "week" else month_of(back)
    return out[::-1]


def _customers(customers):
    return Customer.objects.all() if customers is None else customers


def _mine(customers) -> Q:
    """Rows of `customers` (a queryset), or every row for the whole ISP: no filter, not
    an IN over every customer."""
    return Q() if customers is None else Q(customer__in=customers)


def billed_rows(period: Period, customers=None):
    """Documents of the period: (customer id, total, paid, credited), credit notes negative."""
    return (
        Invoice.objects.filter(
            _mine(customers),
            issued_on__gte=period.since,
            issued_on__lte=period.until,
        )
        .exclude(status=Invoice.Status.VOID)
        .values("customer_id", "customer__branch_id", "customer__site_id")
    )


def _channel():
    return Case(
        When(Q(method="mpesa", via_stk=True), then=Value("stk")),
        When(Q(method="mpesa", via_c2b=True), then=Value("paybill")),
        When(method="cash", then=Value("cash")),
        When(method__in=["bank", "cheque"], then=Value("bank")),
        default=Value("other"),
        output_field=CharField(),
    )


def _period_of(field: str, periods: list[Period], *, moment: bool):
    """The index in `periods` of the period a row falls in by `field` (a date, or with
    `moment` an aware datetime compared with the periods' bounds); None outside them."""
    whens = []
    for i, p in enumerate(periods):
        if moment:
            start, end = p.bounds
            whens.append(When(**{f"{field}__gte": start, f"{field}__lt": end}, then=Value(i)))
        else:
            whens.append(
                When(**{f"{field}__gte": p.since, f"{field}__lte": p.until}, then=Value(i))
            )
    return Case(*whens, default=None, output_field=IntegerField())


def _payments(periods: list[Period], customers):
    """Payments on the ledger from the first period's start to the last one's end."""
    payment = Payment.objects.filter(ledger_entry=OuterRef("pk"))
    return LedgerEntry.objects.filter(
        _mine(customers),
        kind=LedgerEntry.Kind.PAYMENT,
        at__gte=periods[0].bounds[0],
        at__lt=periods[-1].bounds[1],
    ).annotate(
        method=Subquery(payment.values("method")[:1]),
        via_stk=Subquery(payment.values("via_stk")[:1]),
        via_c2b=Subquery(payment.values("via_c2b")[:1]),
    )


def hotspot_days(since: date, until: date) -> dict[date, tuple[Decimal, Decimal]]:
    """Each day's hotspot money by hotspot.reports.sales (what counts, when, at what):
    (cards sold, packages bought and devices let through)."""
    days = hotspot_reports.sales(
        since=since, until=until, routers=Router.objects.all(), batches=VoucherBatch.objects.all()
    ).days
    return {d.day: (d.card_amount, d.purchase_amount + d.device_amount) for d in days}


def summary(
    period: Period, customers=None, *, vouchers: bool = True, channels: bool = True
) -> dict:
    """The period's figures (`summaries` of one period)."""
    return summaries([period], customers, vouchers=vouchers, channels=channels)[0]


def summaries(
    periods: list[Period], customers=None, *, vouchers: bool = True, channels: bool = True
) -> list[dict]:
    """Each period's figures: billed, collected (and by channel), settled of the period's
    bills, collection rate (None when nothing was billed). `periods`: oldest first, not
    overlapping. `vouchers`: with the hotspot's money (cards and hotspot sales), which
    only the ISP's figures have (no customer's). Without `channels` what was collected
    is not read (the owner's home shows the rate only). A fixed number of queries however
    many periods and customers: each total is grouped by period in one query."""
    if not periods:
        return []
    docs = {
        row["i"]: row
        for row in Invoice.objects.filter(
            _mine(customers),
            issued_on__gte=periods[0].since,
            issued_on__lte=periods[-1].until,
        )
        .exclude(status=Invoice.Status.VOID)
        .annotate(i=_period_of("issued_on", periods, moment=False))
        .values("i")
        .annotate(
            billed=Coalesce(Sum("total"), ZERO),
            invoiced=Coalesce(Sum("total", filter=Q(kind=Invoice.Kind.INVOICE)), ZERO),
            settled=Coalesce(Sum("amount_paid", filter=Q(kind=Invoice.Kind.INVOICE)), ZERO),
        )
        .order_by()
    }
    loose_credit = dict(
        LedgerEntry.objects.filter(
            _mine(customers),
            kind=LedgerEntry.Kind.CREDIT_NOTE,
            invoice__isnull=True,
            at__gte=periods[0].bounds[0],
            at__lt=periods[-1].bounds[1],
        )
        .annotate(i=_period_of("at", periods, moment=True))
        .values("i")
        .annotate(s=Sum("amount"))
        .order_by()
        .values_list("i", "s")
    )
    by_channel = [dict.fromkeys((key for key, _ in CHANNELS), ZERO) for _ in periods]
    paid = (
        _payments(periods, customers)
        .annotate(channel=_channel(), i=_period_of("at", periods, moment=True))
        .values("i", "channel")
        .annotate(s=Sum("amount"))
        .order_by()
    )
    for row in paid if channels else ():
        if row["i"] is not None:
            by_channel[row["i"]][row["channel"]] = -row["s"]
    if vouchers and customers is None:
        hotspot = hotspot_days(periods[0].since, periods[-1].until)
        for i, p in enumerate(periods):
            days = [money for day, money in hotspot.items() if p.since <= day <= p.until]
            by_channel[i]["voucher"] = sum((cards for cards, _ in days), ZERO)
            by_channel[i]["hotspot"] = sum((sold for _, sold in days), ZERO)
    out = []
    for i, period in enumerate(periods):
        d = docs.get(i, {"billed": ZERO, "invoiced": ZERO, "settled": ZERO})
        credit_notes = d["billed"] - d["invoiced"] + loose_credit.get(i, ZERO)
        # The period's invoices less the credit notes written against them.
        net_invoiced = d["billed"]
        out.append(
            {
                "period": period,
                "billed": d["invoiced"] + credit_notes,
                "invoiced": d["invoiced"],
                "credit_notes": credit_notes,
                "collected": sum(by_channel[i].values(), ZERO),
                "by_channel": by_channel[i],
                "settled": d["settled"],
                "rate": (d["settled"] / net_invoiced * 100).quantize(CENT)
                if net_invoiced > 0
                else None,
            }
        )
    return out


def unallocated(customers=None) -> dict:
    """Credit held now (billing.credits_many) and unmatched payments, apart."""
    held = sum(billing.credits_many(_customers(customers).values("id")).values(), ZERO)
    unmatched = Payment.objects.filter(state=Payment.State.UNMATCHED).aggregate(
        s=Coalesce(Sum("amount"), ZERO)
    )["s"]
    return {"credit": held, "unmatched": unmatched if customers is None else None}


def by_place(period: Period, customers=None) -> dict[str, list[dict]]:
    """Billed and collected by branch and by site (with sub-sites) for the period."""
    billed = defaultdict(lambda: ZERO)
    collected = defaultdict(lambda: ZERO)
    for row in (
        billed_rows(period, customers)
        .values("customer__branch_id", "customer__site_id")
        .annotate(s=Sum("total"))
        .order_by()
    ):
        billed[(row["customer__branch_id"], row["customer__site_id"])] += row["s"]
    for row in (
        _payments([period], customers)
        .values("customer__branch_id", "customer__site_id")
        .annotate(s=Sum("amount"))
        .order_by()
    ):
        collected[(row["customer__branch_id"], row["customer__site_id"])] -= row["s"]
    return {
        "branches": _group(billed, collected, 0, _branch_names()),
        "sites": rolled_up_sites(billed, collected),
    }


def _branch_names() -> dict:
    return dict(Branch.objects.values_list("id", "name"))


def _group(billed, collected, index, names) -> list[dict]:
    rows = defaultdict(lambda: {"billed": ZERO, "collected": ZERO})
    for key, amount in billed.items():
        rows[key[index]]["billed"] += amount
    for key, amount in collected.items():
        rows[key[index]]["collected"] += amount
    return sorted(
        ({"id": pk, "name": names.get(pk, "None"), **figures} for pk, figures in rows.items()),
        key=lambda r: (-r["billed"], r["name"]),
    )


def site_tree() -> tuple[dict, dict]:
    """Every site's parent and name (one query): the tree sub-sites roll up in."""
    parents, names = {}, {}
    for pk, parent, name in NetworkSite.objects.values_list("id", "parent_id", "name"):
        parents[pk], names[pk] = parent, name
    return parents, names


def roll_up(amounts: dict, parents: dict) -> dict:
    """Each site's amount plus its sub-sites' (every ancestor gets a site's figure);
    None (no site) stays as is."""
    out = defaultdict(lambda: ZERO)
    for site, amount in amounts.items():
        seen = set()
        while site is not None and site not in seen:
            out[site] += amount
            seen.add(site)
            site = parents.get(site)
        if not seen:
            out[None] += amount
    return out


def rolled_up_sites(billed, collected) -> list[dict]:
    parents, names = site_tree()
    b, c = defaultdict(lambda: ZERO), defaultdict(lambda: ZERO)
    for (_, site), amount in billed.items():
        b[site] += amount
    for (_, site), amount in collected.items():
        c[site] += amount
    b, c = roll_up(b, parents), roll_up(c, parents)
    return sorted(
        (
            {
                "id": pk,
                "name": names.get(pk, "No site"),
                "billed": b.get(pk, ZERO),
                "collected": c.get(pk, ZERO),
            }
            for pk in set(b) | set(c)
        ),
        key=lambda r: (-r["billed"], r["name"]),
    )
