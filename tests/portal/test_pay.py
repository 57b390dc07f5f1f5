"""Paying from the portal, over real HTTP to the Daraja simulator and back to the live
server's callback views, with a real Celery worker crediting the payment and restoring
the subscriber on the RouterOS emulator: the amounts asked, one prompt per account, the
waiting page's countdown and its words for each result code, the query that replaces
a lost callback, and "back online"."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from billing import services as billing
from payments.models import Payment, StkRequest
from portal import pay
from subscribers import services as subscribers
from tests.payments.world import new_subscriber, secret_disabled, wait_for
from tests.portal.conftest import sign_in

pytestmark = [pytest.mark.committed, pytest.mark.worker]


@pytest.fixture
def world(pay_world, django_db_blocker, celery_worker_process):
    with django_db_blocker.unblock(), tenant_context(pay_world.isp):
        yield pay_world
    connection.set_schema_to_public()


def signed_in(world, account):
    client = world.tenant.client()
    response = sign_in(world.tenant, client, account.customer.phone)
    assert response.status_code == 302, response.content.decode()
    connection.set_schema_to_public()
    return client


def suspended(world, **kwargs):
    account = new_subscriber(world, **kwargs)
    subscribers.change_status(account, "suspended", actor="test", reason="Expired")
    assert wait_for(lambda: secret_disabled(world, account.username) is True)
    return account


def status_text(client, url: str) -> str:
    return client.get(url).content.decode()


def test_a_suspended_subscriber_pays_the_plan_price_and_is_back_online(world):
    account = suspended(world)
    client = signed_in(world, account)
    page = client.get("/my/pay/").content.decode()
    assert "KES 1,500.00" in page and "1 month" in page and "3 months" in page
    assert "Pay Bill" in page and account.customer.account in page  # the fallback

    response = client.post("/my/pay/", {"phone": account.customer.phone, "terms": "1"})
    assert response.status_code == 302
    url = response["Location"]
    with tenant_context(world.isp):
        stk = StkRequest.objects.get(customer=account.customer)
    assert stk.source == "portal" and stk.amount == Decimal("1500")
    assert url == f"/my/pay/{stk.public_id}/"
    ok = wait_for(lambda: "You are back online" in status_text(client, url), seconds=30)
    assert ok, status_text(client, url)
    with tenant_context(world.isp):
        assert secret_disabled(world, account.username) is False
        payment = Payment.objects.get(customer=account.customer)
        assert payment.state == "credited" and payment.amount == Decimal("1500")


def test_three_months_ahead_in_one_payment_buys_three_terms(world):
    account = new_subscriber(world, plan=world.prepaid)  # activated, nothing paid yet
    client = signed_in(world, account)
    response = client.post("/my/pay/", {"phone": account.customer.phone, "terms": "3"})
    assert response.status_code == 302
    with tenant_context(world.isp):
        stk = StkRequest.objects.get(customer=account.customer)
        assert stk.amount == Decimal("4500")  # 3 x 1,500, VAT inclusive
        assert wait_for(
            lambda: Payment.objects.filter(customer=account.customer, state="credited").exists()
        )
        terms = list(account.prepaid_terms.order_by("starts_at"))
        assert len(terms) == 3
        assert [t.starts_at for t in terms[1:]] == [t.ends_at for t in terms[:2]]  # a chain
        account.refresh_from_db()
        assert account.expires_at == terms[-1].ends_at
        assert billing.to_pay(account.customer, stk.created_at) == 0


def test_one_pending_prompt_per_account(world):
    account = suspended(world)
    client = signed_in(world, account)
    world.sim.callback_delay = 3.0  # the phone is still showing the first prompt
    try:
        first = client.post("/my/pay/", {"phone": account.customer.phone, "terms": "1"})
        second = client.post("/my/pay/", {"phone": account.customer.phone, "terms": "2"})
        assert first["Location"] == second["Location"]
        with tenant_context(world.isp):
            assert StkRequest.objects.filter(customer=account.customer).count() == 1
        assert "Check your phone" in status_text(client, first["Location"])
        assert "seconds left" in status_text(client, first["Location"])
    finally:
        world.sim.callback_delay = 0.0
    assert wait_for(lambda: "back online" in status_text(client, first["Location"]), seconds=30)


@pytest.mark.parametrize(
    ("outcome", "words"),
    [
        ("cancelled", "You cancelled the payment on your phone."),
        ("timeout", "Your phone could not be reached."),
        ("insufficient", "Your M-Pesa balance is not enough"),
        ("wrong_pin", "The M-Pesa PIN was wrong."),
        ("expired", "The payment request expired before the PIN was entered."),
    ],
)
def test_each_result_code_gets_plain_words_try_again_and_the_paybill(world, outcome, words):
    account = suspended(world)
    client = signed_in(world, account)
    world.sim.stk_outcome(account.customer.phone, outcome)
    response = client.post("/my/pay/", {"phone": account.customer.phone, "terms": "1"})
    url = response["Location"]
    assert wait_for(lambda: words in status_text(client, url), seconds=20)
    page = status_text(client, url)
    assert "Try again" in page and "Pay Bill" in page and account.customer.account in page
    with tenant_context(world.isp):
        assert not Payment.objects.filter(customer=account.customer).exists()
        assert secret_disabled(world, account.username) is True


def test_a_lost_callback_is_replaced_by_a_query_and_nothing_says_failed_before(world):
    account = suspended(world)
    client = signed_in(world, account)
    world.sim.stk_outcome(account.customer.phone, "lost")
    response = client.post("/my/pay/", {"phone": account.customer.phone, "terms": "1"})
    assert response.status_code == 302
    with tenant_context(world.isp):
        stk = StkRequest.objects.get(customer=account.customer)
        assert world.sim.wait_idle()
        # Within the first 5 s nobody asks Daraja; the countdown runs.
        early = pay.progress(stk, stk.created_at + timedelta(seconds=3))
        assert early.state == "waiting" and early.seconds_left == 87
        assert StkRequest.objects.get(pk=stk.pk).queries == 0
        # No callback at 6 s: the page asks Daraja, which says it was paid.
        later = pay.progress(stk, stk.created_at + timedelta(seconds=6))
        assert later.state == "paid" and "failed" not in later.message.lower()
        assert StkRequest.objects.get(pk=stk.pk).queries == 1


def test_no_answer_after_the_countdown_is_late_never_failed(world):
    account = suspended(world)
    client = signed_in(world, account)
    world.sim.callback_delay = 8.0
    try:
        client.post("/my/pay/", {"phone": account.customer.phone, "terms": "1"})
        with tenant_context(world.isp):
            stk = StkRequest.objects.get(customer=account.customer)
            late = pay.progress(stk, stk.created_at + timedelta(seconds=95))
            assert late.state == "late" and not late.final
            assert "do not need to pay again" in late.message
    finally:
        world.sim.callback_delay = 0.0


def test_another_customers_prompt_is_not_found(world):
    payer = suspended(world)
    other = new_subscriber(world)
    payer_client = signed_in(world, payer)
    response = payer_client.post("/my/pay/", {"phone": payer.customer.phone, "terms": "1"})
    other_client = signed_in(world, other)
    assert other_client.get(response["Location"]).status_code == 404


def test_a_bad_phone_is_a_form_error_and_sends_nothing(world):
    account = suspended(world)
    client = signed_in(world, account)
    response = client.post("/my/pay/", {"phone": "12345", "terms": "1"})
    assert response.status_code == 400
    assert "Enter a Safaricom number" in response.content.decode()
    response = client.post("/my/pay/", {"phone": account.customer.phone, "terms": "7"})
    assert response.status_code == 400
    with tenant_context(world.isp):
        assert not StkRequest.objects.filter(customer=account.customer).exists()


def test_two_taps_at_once_send_one_prompt(world):
    import threading

    from django.db import connections
    from django.utils import timezone

    account = suspended(world)
    world.sim.callback_delay = 3.0
    results, barrier = [], threading.Barrier(2)

    def tap():
        try:
            with tenant_context(world.isp):
                barrier.wait()
                sent = pay.send_prompt(
                    account.customer,
                    phone=account.customer.phone,
                    amount=Decimal("1500"),
                    actor="test",
                    now=timezone.now(),
                )
                results.append(sent.stk.pk)
        finally:
            connections.close_all()

    try:
        threads = [threading.Thread(target=tap) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        world.sim.callback_delay = 0.0
    assert len(results) == 2 and results[0] == results[1]
    with tenant_context(world.isp):
        assert StkRequest.objects.filter(customer=account.customer).count() == 1
