"""The whole M-Pesa path over real HTTP: the Daraja simulator posts to the live server's
callback views, a real Celery worker credits the payment and restores the subscriber on
the RouterOS emulator. Nothing in between is called by the test."""

import threading
from decimal import Decimal

import pytest
import requests
from django.db import connection
from django_tenants.utils import tenant_context

from billing import services as billing
from payments import services
from payments.models import Callback, MpesaSettings, Payment, StkRequest
from subscribers import services as subscribers
from subscribers.models import ServiceAccount
from tests.payments.world import PAYER, SHORTCODE, new_subscriber, secret_disabled, wait_for

pytestmark = [pytest.mark.committed, pytest.mark.worker]


@pytest.fixture
def world(pay_world, django_db_blocker, celery_worker_process):
    with django_db_blocker.unblock(), tenant_context(pay_world.isp):
        yield pay_world
    connection.set_schema_to_public()


def suspended_prepaid(world):
    """A prepaid subscriber whose time ran out: suspended, disabled on the router."""
    account = new_subscriber(world)
    subscribers.change_status(account, "suspended", actor="test", reason="Expired")
    assert wait_for(lambda: secret_disabled(world, account.username) is True), "not suspended"
    return account


def post(world, path: str, **kwargs):
    """POST to the live server as the ISP's host (*.localhost may not resolve here)."""
    headers = {"Host": f"{world.tenant.host}:{world.port}", **kwargs.pop("headers", {})}
    url = f"http://127.0.0.1:{world.port}{path}"
    return requests.post(url, headers=headers, timeout=10, **kwargs)


def payment_state(receipt: str) -> str | None:
    return Payment.objects.filter(reference=receipt).values_list("state", flat=True).first()


def test_c2b_payment_credits_the_customer_and_restores_them_on_the_router(world):
    account = suspended_prepaid(world)
    typed = " " + account.customer.account.lower() + " "  # as a payer types it
    result = world.sim.pay_c2b(SHORTCODE, PAYER, "1500", typed)

    assert result["validation"]["response"] == {"ResultCode": "0", "ResultDesc": "Accepted"}
    assert result["confirmation"]["status"] == 200
    assert result["confirmation"]["response"] == {"ResultCode": 0, "ResultDesc": "Accepted"}
    assert wait_for(lambda: payment_state(result["TransID"]) == "credited")
    assert wait_for(lambda: secret_disabled(world, account.username) is False), "not restored"

    payment = Payment.objects.get(reference=result["TransID"])
    assert payment.customer_id == account.customer_id
    assert payment.matched_by == "account" and payment.via_c2b and not payment.via_stk
    account.refresh_from_db()
    assert account.status == "active"
    assert account.expires_at > payment.credited_at
    assert billing.customer_balance(account.customer) == Decimal("0.00")
    assert account.customer.messages.filter(template_key="payment_received").exists()
    assert payment.callbacks.get().state == Callback.State.PROCESSED


def test_the_same_transid_twice_credits_once(world):
    account = new_subscriber(world)
    receipt = "UKN1DUPE01"
    for _ in range(2):
        result = world.sim.pay_c2b(
            SHORTCODE, PAYER, "700", account.customer.account, trans_id=receipt
        )
        assert result["confirmation"]["status"] == 200
    assert wait_for(lambda: payment_state(receipt) == "credited")
    assert Payment.objects.filter(reference=receipt).count() == 1
    assert Callback.objects.filter(payment__reference=receipt).count() == 2
    assert billing.customer_balance(account.customer) == Decimal("-700.00")


def test_an_stk_payment_also_reported_by_c2b_credits_once(world):
    account = new_subscriber(world, plan=world.postpaid)
    world.sim.stk_confirms_c2b = True
    try:
        stk = services.start_stk_push(account.customer, phone=PAYER, amount="1200", actor="test")
        assert wait_for(lambda: StkRequest.objects.get(pk=stk.pk).state == "paid")
        assert world.sim.wait_idle()
    finally:
        world.sim.stk_confirms_c2b = False
    stk.refresh_from_db()
    assert wait_for(lambda: payment_state(stk.receipt) == "credited")
    payment = Payment.objects.get(reference=stk.receipt)
    assert payment.via_stk and payment.via_c2b
    assert payment.callbacks.count() == 2
    assert billing.customer_balance(account.customer) == Decimal("-1200.00")


def test_two_payments_for_one_account_at_the_same_moment_both_land(world):
    account = new_subscriber(world)
    number = account.customer.account  # threads have no schema: read it here
    go = threading.Barrier(2)
    results = []

    def pay(amount):
        go.wait()
        results.append(world.sim.pay_c2b(SHORTCODE, PAYER, amount, number))

    threads = [threading.Thread(target=pay, args=(a,)) for a in ("400", "650")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    receipts = [r["TransID"] for r in results]
    assert all(r["confirmation"]["status"] == 200 for r in results)
    assert wait_for(lambda: all(payment_state(r) == "credited" for r in receipts))
    assert billing.customer_balance(account.customer) == Decimal("-1050.00")


def test_an_unknown_account_lands_in_the_unmatched_queue_and_can_be_assigned(world):
    cfg = MpesaSettings.load()
    cfg.reject_unknown_accounts = False
    cfg.save()
    try:
        result = world.sim.pay_c2b(SHORTCODE, PAYER, "900", "NOSUCH-99")
    finally:
        cfg.reject_unknown_accounts = True
        cfg.save()
    assert wait_for(lambda: payment_state(result["TransID"]) == "unmatched")
    payment = Payment.objects.get(reference=result["TransID"])
    account = suspended_prepaid(world)
    services.assign_payment(payment, account.customer, actor=world.tenant.finance)
    payment.refresh_from_db()
    assert payment.state == "credited" and payment.matched_by == "staff"
    assert billing.customer_balance(account.customer) == Decimal("-900.00")


def test_validation_rejects_an_unknown_account(world):
    result = world.sim.pay_c2b(SHORTCODE, PAYER, "900", "NOSUCH-98")
    assert result["outcome"] == "rejected"
    assert result["validation"]["response"]["ResultCode"] == "C2B00012"
    assert not Payment.objects.filter(reference=result["TransID"]).exists()


def test_a_wrong_token_gets_404_and_stores_nothing(world):
    before = Callback.objects.count(), Payment.objects.count()
    body = {"TransID": "UKN1WRONG1", "TransAmount": "100.00", "BillRefNumber": "X"}
    response = post(world, "/payments/c2b/confirmation/not-the-token/", json=body)
    assert response.status_code == 404
    assert (Callback.objects.count(), Payment.objects.count()) == before


def test_malformed_json_gets_400_with_a_reason(world):
    path = services.callback_paths(MpesaSettings.load())["confirmation"]
    response = post(world, path, data=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert "not JSON" in response.json()["ResultDesc"]
    stored = Callback.objects.order_by("-id").first()
    assert stored.body == "{not json" and stored.state == Callback.State.FAILED


def test_an_oversized_body_gets_400(world):
    path = services.callback_paths(MpesaSettings.load())["confirmation"]
    response = post(world, path, data=b"x" * 20_000)
    assert response.status_code == 400
    assert "bytes" in response.json()["ResultDesc"]


def test_a_cancelled_stk_push_leaves_no_payment(world):
    account = new_subscriber(world)
    world.sim.stk_outcome(PAYER, "cancelled")
    stk = services.start_stk_push(account.customer, phone=PAYER, amount=1500, actor="test")
    assert wait_for(lambda: StkRequest.objects.get(pk=stk.pk).state != "pending")
    stk.refresh_from_db()
    assert stk.state == "failed" and stk.result_code == "1032"
    assert "cancelled" in stk.failure_reason
    assert not stk.payments.exists()
    assert billing.customer_balance(account.customer) == Decimal("0.00")


def test_a_lost_stk_callback_is_found_by_the_query(world):
    account = new_subscriber(world)
    world.sim.stk_outcome(PAYER, "insufficient")
    stk = services.start_stk_push(account.customer, phone=PAYER, amount=1500, actor="test")
    world.sim.wait_idle()
    # Pretend the callback never came: the request is still pending, due for a query.
    StkRequest.objects.filter(pk=stk.pk).update(state="pending", result_code="")
    services.query_stk(StkRequest.objects.get(pk=stk.pk))
    stk.refresh_from_db()
    assert stk.state == "failed" and stk.result_code == "1"


def test_an_allowlist_refuses_other_sources(world):
    cfg = MpesaSettings.load()
    cfg.allowed_ips = "196.201.214.0/24"
    cfg.save()
    try:
        before = Callback.objects.count()
        path = services.callback_paths(cfg)["confirmation"]
        response = post(world, path, json={"TransID": "UKN1ALLOW1"})
        assert response.status_code == 404
        assert Callback.objects.count() == before
    finally:
        cfg.allowed_ips = ""
        cfg.save()
    assert ServiceAccount.objects.exists()
