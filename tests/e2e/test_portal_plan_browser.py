"""A prepaid subscriber on a 360 px phone signs in by SMS code, opens My plan, reads the
priced preview of an upgrade, confirms it, and the charge that lands on the ledger is
the amount the preview showed (issue 13 acceptance)."""

import re
import uuid
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum
from django_tenants.utils import tenant_context

from billing import services as billing
from billing.models import BillingSettings, LedgerEntry
from ispops.tenancy.models import Isp
from subscribers import services as subscribers
from subscribers.models import Customer, Plan, ServiceAccount

from .portal import assert_fits, sign_in_by_code

pytestmark = [pytest.mark.committed, pytest.mark.browser]


def _free_phone(tag: str) -> str:
    """A 2547... number no demo customer has (committed rows stay between runs)."""
    seed = int(tag, 16)
    for n in range(50):
        phone = f"254746{(seed + n) % 1_000_000:06d}"
        if not Customer.objects.filter(phone=phone).exists():
            return phone
    raise AssertionError("no free phone number")


@pytest.fixture
def subscriber(django_db_setup, django_db_blocker):
    """A demo customer on a prepaid plan paid for a month, and a dearer plan to move to,
    committed so the live server sees them; retired and terminated afterwards."""
    tag = uuid.uuid4().hex[:8]
    with django_db_blocker.unblock():
        isp = Isp.objects.get(schema_name="demo")
        with tenant_context(isp):
            BillingSettings.load()
            policy = BillingSettings.objects.values_list("portal_upgrade", flat=True).get(pk=1)
            BillingSettings.objects.filter(pk=1).update(portal_upgrade="at_once")
            basic = Plan.objects.create(
                name=f"E2E Basic {tag}",
                price=Decimal("1200"),
                download_kbps=4_000,
                upload_kbps=2_000,
            )
            better = Plan.objects.create(
                name=f"E2E Better {tag}",
                price=Decimal("2700"),
                download_kbps=12_000,
                upload_kbps=6_000,
            )
            phone = _free_phone(tag)
            customer = subscribers.create_customer(
                actor="e2e", name=f"Plan Mover {tag}", phone=phone
            )
            account = subscribers.create_service_account(
                actor="e2e",
                customer=customer,
                plan=basic,
                username=f"e2e-plan-{tag}",
                password="pw",
                status="active",
            )
            billing.record_payment(customer, basic.price, actor="e2e", reference=f"E2E{tag}")
        connection.set_schema_to_public()
    yield isp, phone, account, better
    with django_db_blocker.unblock(), tenant_context(isp):
        subscribers.change_status(
            ServiceAccount.objects.get(pk=account.pk), "terminated", actor="e2e", reason="e2e"
        )
        Plan.objects.filter(pk__in=[basic.pk, better.pk]).update(is_active=False)
        BillingSettings.objects.filter(pk=1).update(portal_upgrade=policy)
    connection.set_schema_to_public()


def _ledger(isp, customer_id) -> Decimal:
    with tenant_context(isp):
        total = LedgerEntry.objects.filter(customer_id=customer_id).aggregate(s=Sum("amount"))
    connection.set_schema_to_public()
    return total["s"] or Decimal("0.00")


def test_a_subscriber_changes_plan_and_is_charged_what_the_preview_showed(
    phone, live_server_url, subscriber, django_db_blocker
):
    isp, mobile, account, better = subscriber
    base = f"http://demo.localhost:{live_server_url}"
    with django_db_blocker.unblock():
        sign_in_by_code(phone, base, isp, mobile)
        phone.get_by_role("link", name="My plan").click()
        phone.wait_for_url(f"{base}/my/plan/")
        assert_fits(phone)
        phone.locator("a", has_text=better.name).click()
        phone.wait_for_url(re.compile(rf"/my/plan/{account.pk}/to/{better.pk}/$"))
        assert_fits(phone)
        shown = Decimal(phone.locator("#plan-net").get_attribute("data-amount"))
        text = phone.locator("#plan-net").inner_text()
        assert shown > 0 and f"{shown:,.2f}" in text
        before = _ledger(isp, account.customer_id)
        phone.get_by_role("button", name=f"Change to {better.name} now").click()
        phone.wait_for_url(f"{base}/my/plan/")
        phone.get_by_text(f"your plan is now {better.name}").wait_for()
        assert f"KES {shown:,.2f} was added to your bill" in phone.content()
        assert_fits(phone)
        assert _ledger(isp, account.customer_id) - before == shown
        with tenant_context(isp):
            assert ServiceAccount.objects.get(pk=account.pk).plan_id == better.pk
        connection.set_schema_to_public()
