"""Revenue for a period: what was invoiced (documents issued in the period, VAT
excluded, net of credit notes, voided documents left out), line by line, by plan, by
site (with its sub-sites), branch and router; recurring (plan and add-on charges with
their discounts, prorations and credits for unused days) and one-off (installation
fees and other one-off charges) apart; hotspot money (cards sold, purchases, devices
let through: hotspot.reports.sales) as its own section.

A line's amount without VAT is its share of its document's subtotal (amount x subtotal
/ total); groups are rounded to the cent once summed. Place is the line's service
account's (else its document's, else for a credit note the credited invoice's): its
router, its site (else the customer's site), and the customer's branch. Plan: the plan
the line charged (`_plan`): a plan line's own ("plan:<id>"), else the plan in force on
the account's timeline on the first day the line charged for, never the account's plan
of today (a plan change would move last month's add-ons to the new plan).
"""

from collections import defaultdict
from decimal import Decimal

from django.db.models import (
    Case,
    DecimalField,
    ExpressionWrapper,
    F,
    IntegerField,
    OuterRef,
    Subquery,
    Sum,
    When,
)
from django.db.models.functions import Cast, Coalesce, NullIf, Substr

from billing.models import Invoice, InvoiceLine, TimelineEntry
from hotspot import reports as hotspot_reports
from hotspot.models import VoucherBatch
from ispops.staff.models import Branch
from network.models import Router
from reports.collections import Period, roll_up, site_tree
from subscribers.models import Plan

ZERO = Decimal("0.00")
CENT = Decimal("0.01")
ONE_OFF = (InvoiceLine.Kind.OTHER,)


def _account(field: str):
    """The line's service account's `field`, else its document's, else (a credit note)
    the credited invoice's."""
    return Coalesce(
        f"service_account__{field}",
        f"invoice__service_account__{field}",
        f"invoice__credits__service_account__{field}",
    )


def _plan():
    """The plan a line charged, the one rule for it: a plan line names its plan in its
    key ("plan:<id>"); any other line (add-on, discount, proration, credit for unused
    days, a credit note) belongs to the plan on the account's timeline on the first day
    it charged for (the line's days, else its document's period, else for a credit note
    the credited invoice's, else the day it was issued); the last timeline entry on or
    before that day is that day's state (billing.models.TimelineEntry). An account with
    no timeline (never in service) falls back to its plan."""
    in_force = (
        TimelineEntry.objects.filter(
            service_account_id=OuterRef("line_account"), starts_on__lte=OuterRef("line_day")
        )
        .order_by("-starts_on", "-id")
        .values("plan_id")[:1]
    )
    return Case(
        When(key__startswith="plan:", then=Cast(Substr("key", 6), IntegerField())),
        default=Coalesce(Subquery(in_force), _account("plan_id"), output_field=IntegerField()),
        output_field=IntegerField(),
    )


def _lines(period: Period, customers):
    lines = InvoiceLine.objects.filter(
        invoice__issued_on__gte=period.since, invoice__issued_on__lte=period.until
    ).exclude(invoice__status=Invoice.Status.VOID)
    if customers is not None:
        lines = lines.filter(invoice__customer__in=customers)
    return lines.annotate(
        line_account=_account("id"),
        line_day=Coalesce(
            "period_start",
            "invoice__period_start",
            "invoice__credits__period_start",
            "invoice__issued_on",
        ),
    ).annotate(
        plan_id=_plan(),
        site_id=Coalesce(_account("site_id"), "invoice__customer__site_id"),
        router_id=_account("router_id"),
        net=ExpressionWrapper(
            F("amount") * F("invoice__subtotal") / NullIf(F("invoice__total"), 0),
            output_field=DecimalField(max_digits=20, decimal_places=6),
        ),
    )


def report(period: Period, customers=None) -> dict:
    rows = (
        _lines(period, customers)
        .values(
            "kind",
            "plan_id",
            "site_id",
            "router_id",
            "invoice__customer__branch_id",
        )
        .annotate(s=Sum("net"))
        .order_by()
    )
    plans, sites, branches, routers = (defaultdict(lambda: [ZERO, ZERO]) for _ in range(4))
    recurring = one_off = ZERO
    for r in rows:
        amount = r["s"] or ZERO
        slot = 1 if r["kind"] in ONE_OFF else 0
        if slot:
            one_off += amount
        else:
            recurring += amount
        plans[r["plan_id"]][slot] += amount
        sites[r["site_id"]][slot] += amount
        branches[r["invoice__customer__branch_id"]][slot] += amount
        routers[r["router_id"]][slot] += amount
    parents, site_names = site_tree()
    rolled = [roll_up({k: v[i] for k, v in sites.items()}, parents) for i in (0, 1)]
    hotspot = ZERO
    if customers is None:
        hotspot = hotspot_reports.sales(
            since=period.since,
            until=period.until,
            routers=Router.objects.all(),
            batches=VoucherBatch.objects.all(),
        ).total
    return {
        "period": period,
        "recurring": recurring.quantize(CENT),
        "one_off": one_off.quantize(CENT),
        "total": (recurring + one_off).quantize(CENT),
        "hotspot": hotspot,
        "plans": _table(plans, dict(Plan.objects.values_list("id", "name")), "No plan"),
        "sites": _table(
            {
                pk: [rolled[0].get(pk, ZERO), rolled[1].get(pk, ZERO)]
                for pk in set(rolled[0]) | set(rolled[1])
            },
            site_names,
            "No site",
        ),
        "branches": _table(branches, dict(Branch.objects.values_list("id", "name")), "No branch"),
        "routers": _table(routers, dict(Router.objects.values_list("id", "name")), "No router"),
    }


def _table(groups: dict, names: dict, none: str) -> list[dict]:
    return sorted(
        (
            {
                "id": pk,
                "name": names.get(pk, none),
                "recurring": rec.quantize(CENT),
                "one_off": once.quantize(CENT),
                "total": (rec + once).quantize(CENT),
            }
            for pk, (rec, once) in groups.items()
        ),
        key=lambda r: (-r["total"], r["name"]),
    )
