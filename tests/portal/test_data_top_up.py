"""Data top-ups bought in the portal (issue 14), over real HTTP to the Daraja simulator
and back to the live server's callback view, with a real Celery worker crediting the
payment and running the router jobs on the RouterOS emulator: the data page shows
usage against the allowance and "Buy 5 GB for KES 250"; a paid prompt adds the pack,
records its sale paid by that payment, and puts the blocked account back on its
plan's profile on the router; a duplicate callback tops up once; a cancelled prompt
changes nothing; staff viewing as the customer cannot buy; bad input is a form error."""

import uuid
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import tenant_context

from billing import services as billing
from billing.models import Invoice
from network import fup
from network.models import DataTopUp, UsageMeter, UsagePeriod
from payments import services as payment_services
from payments.models import Payment, StkRequest
from portal import data_top_up
from subscribers.models import Plan
from tests.payments.world import new_subscriber, wait_for
from tests.portal.conftest import sign_in

pytestmark = [pytest.mark.committed, pytest.mark.worker]

PACK_GB, PACK_PRICE = 5, Decimal("250.00")


@pytest.fixture
def world(pay_world, django_db_blocker, celery_worker_process):
    with django_db_blocker.unblock(), tenant_context(pay_world.isp):
        yield pay_world
    connection.set_schema_to_public()


def capped_plan(**fields) -> Plan:
    """A postpaid plan with a 10 GB cap, blocked when used up, selling 5 GB packs."""
    return Plan.objects.create(
        name=f"Capped {uuid.uuid4().hex[:6]}", price="2000.00", billing="postpaid",
        download_kbps=20_000, upload_kbps=10_000, data_cap_gb=10,
        **{"top_up_gb": PACK_GB, "top_up_price": PACK_PRICE, **fields},
    )  # fmt: skip


def profile(world, username: str) -> str | None:
    for row in world.emulator.rows("/ppp/secret"):
        if row.get("name") == username:
            return row.get("profile")
    return None


def blocked(world, **plan_fields):
    """An active subscriber who used 11 GB of 10: blocked, the capped profile on the
    router (the worker ran the job)."""
    account = new_subscriber(world, plan=capped_plan(**plan_fields))
    now = timezone.now()
    UsageMeter.objects.get_or_create(service_account=account)
    UsagePeriod.objects.create(
        service_account=account,
        period_start=fup.period_start(account, now),
        bytes_out=11 * fup.GB,
    )
    fup.evaluate([account.pk], now=now)
    capped = f"{account.plan.name}-capped"
    assert wait_for(lambda: profile(world, account.username) == capped), profile(
        world, account.username
    )
    return account


def signed_in(world, account):
    client = world.tenant.client()
    response = sign_in(world.tenant, client, account.customer.phone)
    assert response.status_code == 302, response.content.decode()
    connection.set_schema_to_public()
    return client


def buy(client, account):
    return client.post("/my/data/", {"account": account.pk, "phone": account.customer.phone})


def text(client, url: str) -> str:
    return client.get(url).content.decode()


def test_a_paid_prompt_adds_the_pack_records_its_sale_paid_and_restores_the_router(world):
    account = blocked(world)
    before = billing.customer_balance(account.customer)
    client = signed_in(world, account)
    assert "Data used and top-ups" in text(client, "/my/")
    page = text(client, "/my/data/")
    assert "11.0 GB</b> of 10 GB" in page and "Blocked until a top-up" in page
    assert "Buy 5 GB for KES 250.00" in page

    response = buy(client, account)
    assert response.status_code == 302, response.content.decode()
    with tenant_context(world.isp):
        stk = StkRequest.objects.get(customer=account.customer)
    assert stk.purpose == "data_topup" and stk.amount == PACK_PRICE
    assert stk.account_reference == f"DATA{account.pk}"
    url = response["Location"]
    assert url == f"/my/data/{stk.public_id}/"
    assert wait_for(lambda: "5 GB added" in text(client, url), seconds=30), text(client, url)

    with tenant_context(world.isp):
        top_up = DataTopUp.objects.get(service_account=account)
        assert top_up.gigabytes == PACK_GB and top_up.created_by == "M-Pesa"
        payment = Payment.objects.get(stk_request=stk)
        assert payment.state == "credited" and payment.matched_by == "data_topup"
        assert payment.customer_id == account.customer_id and payment.amount == PACK_PRICE
        invoice = Invoice.objects.get(service_account=account, lines__kind="other")
        assert invoice.total == PACK_PRICE and invoice.vat == Decimal("34.48")
        assert invoice.status == "paid" and invoice.amount_paid == PACK_PRICE
        assert payment.ledger_entry.amount == -PACK_PRICE
        assert payment.ledger_entry.reference == payment.reference
        # Charged and paid: the balance is where it was, no credit left over.
        assert billing.customer_balance(account.customer) == before
        assert UsageMeter.objects.get(service_account=account).fup_level == "full"
    # Full speed on the router: the plan's own profile, well within 60 s.
    assert wait_for(lambda: profile(world, account.username) == account.plan.name, seconds=30)
    page = text(client, "/my/data/")
    assert "of 15 GB" in page and "5 GB this period" in page and "Full speed" in page


def test_a_duplicate_callback_tops_up_once(world):
    account = blocked(world)
    client = signed_in(world, account)
    world.sim.stk_outcome(account.customer.phone, "duplicate")
    url = buy(client, account)["Location"]
    assert wait_for(lambda: "5 GB added" in text(client, url), seconds=30)
    assert world.sim.wait_idle()
    with tenant_context(world.isp):
        assert wait_for(lambda: not Payment.objects.filter(state="received").exists())
        assert DataTopUp.objects.filter(service_account=account).count() == 1
        assert Payment.objects.filter(customer=account.customer).count() == 1
        assert Invoice.objects.filter(service_account=account, lines__kind="other").count() == 1


@pytest.mark.parametrize("outcome", ["cancelled", "insufficient"])
def test_a_failed_prompt_changes_nothing(world, outcome):
    account = blocked(world)
    before = billing.customer_balance(account.customer)
    client = signed_in(world, account)
    world.sim.stk_outcome(account.customer.phone, outcome)
    url = buy(client, account)["Location"]
    assert wait_for(lambda: "Try again" in text(client, url), seconds=20)
    assert world.sim.wait_idle()
    with tenant_context(world.isp):
        assert not DataTopUp.objects.filter(service_account=account).exists()
        assert not Payment.objects.filter(customer=account.customer).exists()
        assert not Invoice.objects.filter(service_account=account, lines__kind="other").exists()
        assert billing.customer_balance(account.customer) == before
        assert UsageMeter.objects.get(service_account=account).fup_level == "blocked"
    assert profile(world, account.username) == f"{account.plan.name}-capped"


def test_money_that_no_longer_buys_the_pack_is_credited_to_the_account(world):
    """The plan stopped selling packs while the prompt was on the phone."""
    account = blocked(world)
    client = signed_in(world, account)
    world.sim.callback_delay = 2.0
    try:
        url = buy(client, account)["Location"]
        Plan.objects.filter(pk=account.plan_id).update(top_up_gb=None, top_up_price=None)
        assert wait_for(lambda: "could not be added" in text(client, url), seconds=30)
    finally:
        world.sim.callback_delay = 0.0
    with tenant_context(world.isp):
        payment = Payment.objects.get(customer=account.customer)
        assert payment.state == "credited" and "not made" in payment.note
        assert payment.ledger_entry.amount == -PACK_PRICE
        assert not DataTopUp.objects.filter(service_account=account).exists()
        assert (
            billing.unallocated_credit(account.customer)
            + sum(i.amount_paid for i in Invoice.objects.filter(customer=account.customer))
            == PACK_PRICE
        )


def test_bad_input_is_a_form_error_and_sends_nothing(world):
    account = blocked(world)
    other = blocked(world)
    client = signed_in(world, account)
    for data in (
        {"account": account.pk, "phone": "12345"},
        {"account": other.pk, "phone": account.customer.phone},  # not theirs
        {"account": "x", "phone": account.customer.phone},
        {"phone": account.customer.phone},
    ):
        response = client.post("/my/data/", data)
        assert response.status_code == 400, data
        body = response.content.decode()
        assert "Enter a Safaricom number" in body or "Choose one of your accounts" in body
    with tenant_context(world.isp):
        assert not StkRequest.objects.filter(customer=account.customer).exists()
        assert not StkRequest.objects.filter(customer=other.customer).exists()
    # The other customer's purchase page is not found either.
    other_client = signed_in(world, other)
    url = buy(other_client, other)["Location"]
    assert client.get(url).status_code == 404
    assert wait_for(lambda: "5 GB added" in text(other_client, url), seconds=30)


def test_a_plan_without_a_pack_shows_usage_and_no_buy_button(world):
    account = new_subscriber(world, plan=capped_plan(top_up_gb=None, top_up_price=None))
    client = signed_in(world, account)
    page = text(client, "/my/data/")
    assert "of 10 GB" in page and "Buy " not in page
    assert buy(client, account).status_code == 400
    with tenant_context(world.isp):
        assert not StkRequest.objects.filter(customer=account.customer).exists()


def test_staff_viewing_as_the_customer_cannot_buy(world):
    account = blocked(world)
    staff = world.tenant.client(world.tenant.owner)
    assert staff.post(f"/my/as/{account.customer_id}/").status_code == 302
    assert "Buy 5 GB" in text(staff, "/my/data/")
    refused = buy(staff, account)
    assert refused.status_code == 403 and "Read only" in refused.content.decode()
    with tenant_context(world.isp):
        assert not StkRequest.objects.filter(customer=account.customer).exists()


def test_the_purpose_is_registered(world):
    from payments import purposes

    assert purposes.get(data_top_up.PURPOSE).on_paid is data_top_up.paid


def test_a_lost_callback_is_replaced_by_the_c2b_confirmation_and_still_buys_the_pack(world):
    """M-Pesa's paybill confirmation of the same payment arrives alone: it is the push's,
    so it buys the pack instead of lying on the account as credit."""
    account = blocked(world)
    client = signed_in(world, account)
    world.sim.stk_outcome(account.customer.phone, "lost")  # no STK callback ever comes
    world.sim.stk_confirms_c2b = True  # but the paybill's C2B confirmation does
    try:
        buy(client, account)
        with tenant_context(world.isp):
            assert wait_for(
                lambda: DataTopUp.objects.filter(service_account=account).exists(), seconds=30
            )
            stk = StkRequest.objects.get(customer=account.customer)
            payment = Payment.objects.get(customer=account.customer)
            assert payment.via_c2b and not payment.via_stk
            assert payment.stk_request_id == stk.pk and payment.matched_by == "data_topup"
            assert DataTopUp.objects.filter(service_account=account).count() == 1
    finally:
        world.sim.stk_confirms_c2b = False
        world.sim.wait_idle()


def test_a_paybill_payment_naming_a_push_already_paid_is_not_that_push(world):
    """An earlier top-up's push is paid; a later paybill payment typed with the same
    account reference is ordinary money for the customer, not a second pack."""
    account = blocked(world)
    client = signed_in(world, account)
    url = buy(client, account)["Location"]
    assert wait_for(lambda: "5 GB added" in text(client, url), seconds=30)
    with tenant_context(world.isp):
        stk = StkRequest.objects.get(customer=account.customer)
        later = Payment.objects.create(
            method="mpesa", reference="UC3LATER01", amount=PACK_PRICE,
            account_reference=stk.account_reference, msisdn=account.customer.phone,
        )  # fmt: skip
        assert payment_services.credit_payment(later.pk) == "credited"
        later.refresh_from_db()
        assert later.stk_request_id is None and later.matched_by != "data_topup"
        assert later.customer_id == account.customer_id  # the customer's money, as credit
        assert DataTopUp.objects.filter(service_account=account).count() == 1
