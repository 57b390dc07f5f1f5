"""A scripted January 2026 for the money reports, through the real services (VAT 16 %
inclusive, 7 days to pay):

- Akinyi (north branch, site Tower under Pop): Home10 3,100 from 1 Jan, billed 1 Jan
  (due 8 Jan); an installation fee of 2,000 charged 3 Jan (due 10 Jan); pays 3,100 cash
  on 5 Jan (settles the 3,100 invoice, the older due).
- Baraka (south branch, site Pop): Home5 1,550 from 1 Jan, billed 1 Jan (due 8 Jan); a
  credit note of 550 on it on 10 Jan; pays 500 by bank on 20 Jan.
"""

from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from billing import services as billing
from ispops.staff.models import Branch
from payments import services as payments
from subscribers import services as subscribers
from subscribers.models import Customer, NetworkSite, Plan

D = Decimal


def at(day: date, hour: int = 9):
    return time_machine.travel(timezone.make_aware(datetime.combine(day, time(hour))), tick=False)


@dataclass
class History:
    akinyi: Customer
    baraka: Customer
    north: Branch
    south: Branch
    pop: NetworkSite
    tower: NetworkSite
    home10: Plan
    home5: Plan


def _customer(name, phone, plan, on):
    with at(on):
        customer = subscribers.create_customer(actor="t", name=name, phone=phone)
        subscribers.create_service_account(
            actor="t", customer=customer, plan=plan, username=f"u{customer.pk}", status="active"
        )
    return customer


@pytest.fixture
def history(in_alpha) -> History:
    def plan(name, price):
        return Plan.objects.create(
            name=name, price=D(price), billing="postpaid", cycle="monthly",
            download_kbps=10_000, upload_kbps=5_000,
        )  # fmt: skip

    home10, home5 = plan("Home10", "3100"), plan("Home5", "1550")
    north = Branch.objects.create(name="North", code="north")
    south = Branch.objects.create(name="South", code="south")
    pop = NetworkSite.objects.create(name="Pop", kind="pop")
    tower = NetworkSite.objects.create(name="Tower", kind="tower", parent=pop)
    akinyi = _customer("Akinyi", "0712000101", home10, date(2026, 1, 1))
    baraka = _customer("Baraka", "0712000102", home5, date(2026, 1, 1))
    Customer.objects.filter(pk=akinyi.pk).update(branch=north, site=tower)
    Customer.objects.filter(pk=baraka.pk).update(branch=south, site=pop)
    with at(date(2026, 1, 1), 1):
        billing.run_billing(date(2026, 1, 1), actor="t")
    with at(date(2026, 1, 3)):
        billing.charge_once(akinyi, D("2000"), actor="t", reason="Installation")
    with at(date(2026, 1, 5)):
        payments.record_manual_payment(
            akinyi, method="cash", amount="3100", reference="CASH-1", actor="t"
        )
    with at(date(2026, 1, 10)):
        invoice = baraka.invoices.get(kind="invoice")
        billing.issue_credit_note(baraka, D("550"), actor="t", reason="Outage", invoice=invoice)
    with at(date(2026, 1, 20)):
        payments.record_manual_payment(
            baraka, method="bank", amount="500", reference="SLIP-1", actor="t"
        )
    akinyi.refresh_from_db()
    baraka.refresh_from_db()
    return History(akinyi, baraka, north, south, pop, tower, home10, home5)
