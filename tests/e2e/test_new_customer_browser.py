"""A new prepaid customer signed up and activated from one form on a 360 px phone, with
a cash first payment (issue 16): the account is active and paid to a day to come, the
payment has our own RC- receipt number, and the welcome SMS is in the message log."""

import re
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import tenant_context
from playwright.sync_api import expect

from ispops.messaging.models import Message
from ispops.tenancy.models import Isp
from payments.models import Payment
from subscribers.models import Plan, ServiceAccount, StatusChange
from tests.e2e.test_lead_to_activation import OWNER, assert_fits_the_phone, field, log_in

pytestmark = pytest.mark.browser

PLAN = "E2E Prepaid 8M"


@pytest.fixture(scope="module")
def prepaid_plan(django_db_setup, django_db_blocker):
    """A monthly prepaid plan in the demo ISP, committed for the live server's threads."""
    with django_db_blocker.unblock():
        with tenant_context(Isp.objects.get(schema_name="demo")):
            plan, _ = Plan.objects.get_or_create(
                name=PLAN,
                defaults={
                    "price": "1500.00",
                    "download_kbps": 8_000,
                    "upload_kbps": 4_000,
                    "billing": "prepaid",
                    "cycle": "monthly",
                },
            )
        connection.set_schema_to_public()
    return plan


def test_a_prepaid_customer_is_signed_up_activated_and_welcomed_from_a_phone(
    phone, live_server_url, prepaid_plan
):
    base = f"http://demo.localhost:{live_server_url}"
    name = f"E2E Signup {uuid.uuid4().hex[:8]}"
    number = f"07{uuid.uuid4().int % 10**8:08d}"
    started = timezone.now()

    log_in(phone, base, OWNER, "/subscribers/sign-up/")
    assert_fits_the_phone(phone)
    field(phone, "Name").fill(name)
    field(phone, "Phone").fill(number)
    field(phone, "Branch").select_option(label="Nairobi West")
    field(phone, "Address").fill("House 4, Kahawa Sukari")
    field(phone, "Plan").select_option(value=str(prepaid_plan.pk))
    field(phone, "Activate now").check()
    field(phone, "First payment (KES)").fill("1500")
    field(phone, "Paid by").select_option(label="Cash")
    # No reference: cash gets our receipt number.
    assert_fits_the_phone(phone)
    phone.get_by_role("button", name="Create customer").click()

    phone.wait_for_url(re.compile(r"/subscribers/\d+/$"))
    notice = phone.get_by_text(re.compile(rf"{re.escape(name)} \(.+\) is active"))
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("receipt RC-")
    assert_fits_the_phone(phone)

    with tenant_context(Isp.objects.get(schema_name="demo")):
        account = ServiceAccount.objects.select_related("customer").get(customer__name=name)
        payment = Payment.objects.select_related("ledger_entry").get(customer=account.customer)
        moves = list(
            StatusChange.objects.filter(service_account=account).values_list("to_status", "reason")
        )
        welcome = list(
            Message.objects.filter(customer=account.customer, template_key="welcome").values_list(
                "channel", "body"
            )
        )
        customer_account = account.customer.account
    connection.set_schema_to_public()

    # Active AND paid: the first term runs about a month from now, not "expired now".
    assert account.status == "active"
    assert account.expires_at > started + timedelta(days=27)
    # One status change into service, its reason written by the system.
    assert [m for m in moves if m[0] == "active"] == [
        ("active", "Activated at sign-up by Grace Wanjiku")
    ]
    assert re.fullmatch(r"RC-\d{6}", payment.receipt_number)
    assert (payment.method, str(payment.amount)) == ("cash", "1500.00")
    assert payment.ledger_entry.reference == payment.receipt_number
    ((channel, body),) = welcome
    assert channel == "sms"
    assert customer_account in body and PLAN in body and account.username in body

    # The welcome SMS is in the staff message log.
    phone.goto(f"{base}/messages/?q={customer_account}")
    expect(phone.get_by_text(re.compile(r"welcome to", re.I)).first).to_be_visible()
    # And the payment page shows our receipt number.
    phone.goto(f"{base}/payments/{payment.pk}/")
    expect(phone.get_by_test_id("receipt-number")).to_have_text(payment.receipt_number)
    assert_fits_the_phone(phone)
