"""A billing run and a dunning run for the same day at once, on committed rows in real
threads (each its own database connection): both finish with no error, whatever order
their transactions meet in, and the money is right afterwards."""

import threading
from datetime import date, datetime, time
from decimal import Decimal

import pytest
import time_machine
from django.db import connection, connections
from django.db.models import Sum
from django.utils import timezone
from django_tenants.utils import tenant_context

from billing import dunning
from billing import services as billing
from billing.models import BillingSettings, Invoice, InvoiceLine
from subscribers import services as subscribers
from subscribers.models import Plan, ServiceAccount

D = Decimal
ACCOUNTS = 60
AHEAD = 10  # subscribers who paid ahead: the billing run settles March from their credit


def moment(day: date, hour: int) -> datetime:
    return timezone.make_aware(datetime.combine(day, time(hour)))


@pytest.mark.committed
def test_billing_and_dunning_for_the_same_day_at_once_finish_without_errors(django_db_blocker):
    from ispops.tenancy.services import create_isp

    with django_db_blocker.unblock():
        isp, _ = create_isp(
            schema="conc_dunning",
            name="Concurrency dunning",
            domain="conc-dunning.localhost",
            owner_email="o@conc-dunning.test",
            owner_password="conc-pass-2026-y",
        )
        try:
            with tenant_context(isp):
                _subscribers_owing_february()
            results, errors = {}, []

            def work(name, call):
                try:
                    with tenant_context(isp):
                        results[name] = call()
                except Exception as exc:  # reported by the assertion below
                    errors.append(repr(exc))
                finally:
                    connections.close_all()

            day = date(2026, 3, 1)
            with time_machine.travel(moment(day, 9), tick=False):
                threads = [
                    threading.Thread(
                        target=work,
                        args=("billing", lambda: billing.run_billing(day, actor="t", chunk=7)),
                    ),
                    threading.Thread(
                        target=work, args=("dunning", lambda: dunning.run_dunning(day, actor="t"))
                    ),
                ]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(timeout=120)
            assert errors == []
            assert results["billing"].errors == []
            assert results["dunning"].errors == [] and results["dunning"].soft == ACCOUNTS
            with tenant_context(isp):
                _check_the_money_after(day)
        finally:
            connection.set_schema_to_public()
            isp.delete(force_drop=True)


def _subscribers_owing_february():
    """60 postpaid subscribers billed on 1 February (due the 8th), reminded on the 9th,
    and 10 more who paid 5,000 on the 2nd (1,900 of credit)."""
    plan = Plan.objects.create(
        name="Home10", price=D("3100"), billing="postpaid", download_kbps=1, upload_kbps=1
    )
    feb = date(2026, 2, 1)
    with time_machine.travel(moment(feb, 8), tick=False):
        for n in range(ACCOUNTS + AHEAD):
            customer = subscribers.create_customer(actor="t", name=f"C{n}", phone=f"07130{n:05d}")
            subscribers.create_service_account(
                actor="t", customer=customer, plan=plan, username=f"c{n}", status="active"
            )
    with time_machine.travel(moment(feb, 9), tick=False):
        billing.run_billing(feb, actor="t")
    with time_machine.travel(moment(date(2026, 2, 2), 9), tick=False):
        for account in ServiceAccount.objects.select_related("customer").order_by("-id")[:AHEAD]:
            billing.record_payment(account.customer, D("5000"), actor="t", reference="AHEAD")
    with time_machine.travel(moment(date(2026, 2, 9), 9), tick=False):
        dunning.run_dunning(date(2026, 2, 9), actor="t")


def _check_the_money_after(day: date):
    # Suspended on 1 March under "pause charges": March costs nothing, whichever run's
    # transaction came first (billed then credited, or never billed).
    assert BillingSettings.load().when_suspended == "pause"
    suspended = ServiceAccount.objects.filter(status="suspended")
    assert suspended.count() == ACCOUNTS
    march = InvoiceLine.objects.filter(billing_period=day, service_account__in=suspended).aggregate(
        s=Sum("amount")
    )["s"]
    assert (march or D("0.00")) == D("0.00")
    for account in ServiceAccount.objects.select_related("customer"):
        owed = D("3100.00") if account.status == "suspended" else D("1200.00")
        assert billing.customer_balance(account.customer) == owed
    invoices = sorted(
        int(n.split("-")[1]) for n in Invoice.objects.invoices().values_list("number", flat=True)
    )
    assert invoices == list(range(1, len(invoices) + 1))  # gapless
