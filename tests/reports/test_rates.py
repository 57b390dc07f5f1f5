"""Rates (reports.rates): churn, retention and ARPU from a period's movement, and hotspot
ARPU from what the hotspot sold (cards and M-Pesa purchases, per distinct buyer)."""

from datetime import date
from decimal import Decimal

import time_machine
from django.utils import timezone

from hotspot import entitlements, vouchers
from hotspot.models import Entitlement, Package
from network.models import Router
from payments.models import Payment
from reports.movement import Movement, period_of
from reports.rates import hotspot_sales, percent, rates

D = Decimal
MAY = period_of("month", date(2026, 5, 1))


def test_rates_follow_their_definitions():
    # 10 customers at the start with 10000; one churned (800), one down 200, one up 500.
    m = Movement(MAY, start=D("10000"), new=D("300"), expansion=D("500"), contraction=D("200"),
                 churn=D("800"), end=D("9800"), customers_start=10, customers_end=10,
                 counts={"new": 1, "expansion": 1, "contraction": 1, "churn": 1,
                         "reactivation": 0}).check()  # fmt: skip
    r = rates(m)
    assert r.logo_churn == D("0.1")
    assert r.gross_mrr_churn == D("0.1")  # (800 + 200) / 10000
    assert r.net_mrr_churn == D("0.05")  # (800 + 200 - 500) / 10000
    assert r.net_revenue_retention == D("0.95")  # (10000 + 500 - 200 - 800) / 10000
    assert r.arpu == D("980")
    assert (percent(r.net_mrr_churn), percent(None)) == ("5.0 %", "-")


def test_net_mrr_churn_is_negative_when_expansion_outweighs_losses():
    m = Movement(MAY, start=D("1000"), expansion=D("300"), contraction=D("100"),
                 end=D("1200"), customers_start=2, customers_end=2).check()  # fmt: skip
    assert rates(m).net_mrr_churn == D("-0.2")
    assert rates(m).net_revenue_retention == D("1.2")


def test_no_customers_at_the_start_gives_no_rate_rather_than_a_division_by_zero():
    r = rates(Movement(MAY).check())
    assert (r.logo_churn, r.gross_mrr_churn, r.arpu, r.hotspot_arpu) == (None,) * 4


@time_machine.travel("2026-05-12 10:00 +03:00", tick=False)
def test_hotspot_arpu_is_revenue_per_distinct_paying_buyer(in_alpha):
    package = Package.objects.create(
        name="1 hour", price="20.00", validity_minutes=60, download_kbps=2000, upload_kbps=1000
    )
    router = Router.objects.create(name="stage-ap", host="10.9.0.2", username="api")
    batch = vouchers.generate_batch(package, 3, actor=in_alpha.owner, price=D("20.00"))
    cards = list(batch.vouchers.all())
    vouchers.sell(cards[0], actor=in_alpha.owner, phone="254712345601")
    vouchers.sell(cards[1], actor=in_alpha.owner, phone="")  # an unknown buyer
    for n, amount in enumerate(["50.00", "30.00"]):
        payment = Payment.objects.create(
            method="mpesa", reference=f"UC1ABC2DE{n}", amount=D(amount), state="credited"
        )
        entitlements.grant(router=router, package=package, source="staff",
                           now=timezone.now(), payment=payment,
                           phone="254712345601")  # fmt: skip
        Entitlement.objects.filter(payment=payment).update(source=Entitlement.Source.PURCHASE)
    revenue, buyers = hotspot_sales(MAY.first, MAY.last)
    # Cards 20 + 20, purchases 50 + 30; buyers: 254712345601 and the unknown card.
    assert (revenue, buyers) == (D("120.00"), 2)
    m = Movement(MAY).check()
    assert rates(m, hotspot=(revenue, buyers)).hotspot_arpu == D("60")
    assert hotspot_sales(date(2026, 4, 1), date(2026, 4, 30)) == (D("0.00"), 0)
