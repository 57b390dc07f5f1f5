"""The billing run tells each customer of a new invoice, on the ISP's channels, with a
signed link to its PDF: the run hands the work to a worker (billing.announce), which
tells each customer once however often the day or the job is run, never of an invoice
their credit already paid, not at all when the ISP says so."""

from datetime import date, datetime
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from billing import announce, services
from billing.models import BillingSettings, Invoice
from ispops.messaging.models import Message
from subscribers.models import Plan
from tests.billing.test_billing import make_active

DAY = date(2026, 3, 10)


@pytest.fixture
def postpaid(in_alpha):
    return Plan.objects.create(
        name="Biz 20M",
        price=Decimal("3000.00"),
        billing="postpaid",
        download_kbps=20_000,
        upload_kbps=10_000,
    )


def announced(customer):
    return Message.objects.filter(customer=customer, template_key="invoice_issued")


def test_a_run_announces_each_new_invoice_once_with_its_signed_link(postpaid, alpha):
    account = make_active(postpaid, on=DAY)
    services.run_billing(DAY, actor="t")
    invoice = Invoice.objects.get(service_account=account)
    assert invoice.announced_at is None and not announced(account.customer).exists()
    assert announce.announce_due() == 1
    services.run_billing(DAY, actor="t")  # the same day again: nothing new to announce
    assert announce.announce_due() == 0  # and the job again: told once
    message = announced(account.customer).get()
    assert message.channel == "sms" and message.related == f"invoice:{invoice.pk}"
    assert invoice.number in message.body and "3,000.00" in message.body
    link = message.body.split()[-1]
    assert "/d/" in link
    # The link works for 30 days from the run (dated the day it bills).
    noon = datetime(2026, 3, 20, 12, tzinfo=timezone.get_current_timezone())
    with time_machine.travel(noon, tick=False):
        response = alpha.client().get(link[link.index("/d/") :])
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"


def test_an_invoice_paid_from_credit_is_not_announced_as_due(postpaid):
    account = make_active(postpaid, on=DAY)
    services.record_payment(
        account.customer, "5000", actor="t", reference="ADV-1", at=timezone.now()
    )
    services.run_billing(DAY, actor="t")
    assert Invoice.objects.get(service_account=account).status == Invoice.Status.PAID
    assert announce.announce_due() == 0
    assert not announced(account.customer).exists()
    assert Invoice.objects.get(service_account=account).announced_at is not None


@pytest.mark.parametrize(("setting", "channels"), [("none", set()), ("both", {"sms", "email"})])
def test_the_isp_chooses_the_channels(postpaid, setting, channels):
    BillingSettings.objects.filter(pk=BillingSettings.load().pk).update(announce_invoices=setting)
    account = make_active(postpaid, on=DAY)
    account.customer.email = "akinyi@example.com"
    account.customer.save(update_fields=["email"])
    services.run_billing(DAY, actor="t")
    announce.announce_due()
    assert set(announced(account.customer).values_list("channel", flat=True)) == channels


def test_invoices_made_outside_a_run_are_not_announced(postpaid):
    account = make_active(postpaid, on=DAY)
    services.charge_once(account.customer, "500", actor="t", reason="Call-out fee")
    assert announce.announce_due() == 0
    assert not announced(account.customer).exists()


def test_beat_sweeps_announcements_in_every_isp():
    from django.conf import settings

    entry = settings.CELERY_BEAT_SCHEDULE["announce-invoices"]
    assert entry["args"] == ["billing.tasks.announce_invoices"]
