"""A subscriber paid the paybill with a wrong account number: the Daraja simulator's C2B
confirmation reaches the live server, the worker finds nobody for it and leaves it
unmatched. On a 360 px phone the subscriber signs in by SMS code, types the M-Pesa code
under "I already paid", and sees the money on their account; the worker that credits it
restores them on the router, as when finance assigns a payment."""

import random
import re
from decimal import Decimal

import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from billing.models import LedgerEntry
from payments.models import MpesaSettings, Payment
from portal.models import PaymentClaim
from subscribers import services as subscribers
from tests.e2e.portal import assert_fits, sign_in_by_code
from tests.payments.world import SHORTCODE, new_subscriber, secret_disabled, wait_for

pytestmark = [pytest.mark.committed, pytest.mark.worker, pytest.mark.browser]


def test_a_subscriber_claims_an_unmatched_payment_by_its_code_on_a_phone(
    pay_world, django_db_blocker, celery_worker_process, phone
):
    world = pay_world
    mobile = f"2547125{random.randrange(10**5):05d}"
    with django_db_blocker.unblock():
        with tenant_context(world.isp):
            account, code = _paid_with_a_wrong_account_number(world, mobile)
        customer = account.customer

        sign_in_by_code(phone, world.base_url, world.isp, mobile)
        phone.get_by_role("link", name="I already paid").click()
        phone.wait_for_url(re.compile(r"/my/claim/$"))
        assert_fits(phone)
        phone.fill("input[name=code]", code.lower())
        phone.fill("input[name=amount]", "1500")
        phone.get_by_role("button", name="Check my payment").click()
        phone.get_by_text("is now on your account").wait_for()
        assert code in phone.locator(".msgs").inner_text()
        assert_fits(phone)

        phone.goto(f"{world.base_url}/my/invoices/payments/")
        phone.get_by_text(f"Receipt {code}").wait_for()
        assert_fits(phone)

        with tenant_context(world.isp):
            payment = Payment.objects.get(reference=code)
            assert payment.state == "credited" and payment.customer_id == customer.pk
            assert payment.matched_by == "claim"
            entries = LedgerEntry.objects.filter(customer=customer, kind="payment")
            assert [e.amount for e in entries] == [Decimal("-1500.00")]
            assert PaymentClaim.objects.get(code=code).outcome == "assigned"
            assert wait_for(lambda: secret_disabled(world, account.username) is False)
            account.refresh_from_db()
            assert account.status == "active"
    connection.set_schema_to_public()


def _paid_with_a_wrong_account_number(world, mobile: str):
    """A suspended subscriber with phone `mobile` who paid KES 1,500 with a typo in the
    account number: accepted (no validation refusal), confirmed by the simulator, and
    left unmatched by the worker. Returns (service account, M-Pesa code)."""
    account = new_subscriber(world, mobile="0" + mobile[3:])
    subscribers.change_status(account, "suspended", actor="test", reason="Expired")
    assert wait_for(lambda: secret_disabled(world, account.username) is True)
    cfg = MpesaSettings.load()
    cfg.reject_unknown_accounts = False
    cfg.save()
    try:
        result = world.sim.pay_c2b(SHORTCODE, mobile, "1500", account.customer.account + "X9")
    finally:
        cfg.reject_unknown_accounts = True
        cfg.save()
    code = result["TransID"]
    assert result["confirmation"]["status"] == 200

    def state():
        return Payment.objects.filter(reference=code).values_list("state", flat=True).first()

    assert wait_for(lambda: state() == "unmatched"), state()
    assert "*" in Payment.objects.get(reference=code).msisdn  # masked, as C2B v2 sends it
    return account, code
