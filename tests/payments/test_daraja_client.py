"""The Daraja client against the simulator over real HTTP: one token shared through
Redis, a token Daraja no longer accepts replaced once, Nairobi timestamps, the pending
STK query's HTTP 500 read as "still waiting"; and the intake of callbacks in-process."""

import json
import threading
from decimal import Decimal

import pytest
import requests
from django.db import connection, connections
from django_tenants.utils import tenant_context

from billing import services as billing
from payments import services
from payments.daraja import Daraja, DarajaError
from payments.models import Callback, MpesaSettings, Payment, StkRequest
from payments.simulator import DarajaSimulator
from payments.simulator.server import SANDBOX_PASSKEY
from subscribers import services as subscribers

PHONE = "254712345678"


@pytest.fixture
def sim():
    simulator = DarajaSimulator(port=0).start()
    yield simulator
    simulator.stop()


@pytest.fixture
def mpesa(in_alpha, sim):
    return services.configure(
        actor="test",
        base_url=sim.base_url,
        shortcode="174379",
        kind="paybill",
        consumer_key="ck",
        consumer_secret="cs",
        passkey=SANDBOX_PASSKEY,
        public_url="http://alpha.localhost:9",
    )


def oauth_calls(sim) -> int:
    return sum(1 for method, path, *_ in sim.requests if path.startswith("/oauth/"))


def test_one_token_is_fetched_and_shared_by_every_client(mpesa, sim):
    first, second = Daraja(mpesa), Daraja(MpesaSettings.load())
    assert first.token() == second.token()
    first.stk_push(
        phone=PHONE, amount=10, account_reference="A1", callback_url="http://127.0.0.1:9/", desc="x"
    )
    second.stk_push(
        phone=PHONE, amount=10, account_reference="A1", callback_url="http://127.0.0.1:9/", desc="x"
    )
    assert oauth_calls(sim) == 1


def test_a_token_daraja_stopped_accepting_is_replaced_once(mpesa, sim):
    client = Daraja(mpesa)
    client.token()
    # Another app instance asks for a token: Daraja invalidates ours.
    requests.get(
        f"{sim.base_url}/oauth/v1/generate?grant_type=client_credentials",
        auth=("ck", "cs"),
        timeout=5,
    )
    reply = client.stk_push(
        phone=PHONE, amount=10, account_reference="A1", callback_url="http://127.0.0.1:9/", desc="x"
    )
    assert reply["CheckoutRequestID"].startswith("ws_CO_")
    assert oauth_calls(sim) == 3  # ours, the other one, ours again


def test_wrong_credentials_are_a_clear_error(mpesa, sim):
    mpesa.consumer_secret = "wrong"
    with pytest.raises(DarajaError, match="refused the consumer key and secret"):
        Daraja(mpesa).stk_push(
            phone=PHONE,
            amount=10,
            account_reference="A1",
            callback_url="http://127.0.0.1:9/",
            desc="x",
        )


def test_a_pending_stk_query_means_still_waiting(mpesa, sim):
    sim.callback_delay = 5
    customer = subscribers.create_customer(actor="t", name="Query Me", phone="0712000111")
    stk = services.start_stk_push(customer, phone=PHONE, amount="99.50", actor="t")
    assert stk.amount == Decimal("100")  # whole shillings, rounded up
    result = Daraja(mpesa).stk_query(stk.checkout_request_id)
    assert result.pending
    stk = services.query_stk(stk)
    assert stk.state == "pending" and stk.queries == 1 and stk.next_query_at is not None


def test_stk_push_refuses_bad_input_and_changes_nothing(mpesa):
    customer = subscribers.create_customer(actor="t", name="Bad Input", phone="0712000112")
    for phone, amount, reason in (
        ("12345", 100, "phone"),
        (PHONE, 0, "between KES 1"),
        (PHONE, 300_000, "between KES 1"),
    ):
        with pytest.raises(services.PaymentError, match=reason):
            services.start_stk_push(customer, phone=phone, amount=amount, actor="t")
    assert not StkRequest.objects.exists()


def test_an_stk_callback_for_an_unknown_request_is_stored_and_acknowledged(mpesa):
    body = b'{"Body": {"stkCallback": {"CheckoutRequestID": "ws_CO_nobody", "ResultCode": 1032}}}'
    outcome = services.receive(Callback.Kind.STK, body, {}, "127.0.0.1")
    assert not outcome.bad_request
    stored = Callback.objects.get()
    assert stored.state == "failed" and "unknown CheckoutRequestID" in stored.error
    assert not Payment.objects.exists()


def test_a_paid_stk_callback_for_an_unknown_request_keeps_the_money(mpesa):
    """The push's reply timed out before the request was saved, but the payer paid."""
    body = json.dumps(
        {
            "Body": {
                "stkCallback": {
                    "CheckoutRequestID": "ws_CO_lost",
                    "ResultCode": 0,
                    "CallbackMetadata": {
                        "Item": [
                            {"Name": "Amount", "Value": 750},
                            {"Name": "MpesaReceiptNumber", "Value": "UKN3LOST01"},
                            {"Name": "PhoneNumber", "Value": 254799000111},
                        ]
                    },
                }
            }
        }
    ).encode()
    outcome = services.receive(Callback.Kind.STK, body, {}, "127.0.0.1")
    payment = Payment.objects.get(reference="UKN3LOST01")
    assert outcome.payment_id == payment.pk and payment.amount == Decimal("750.00")
    assert services.credit_payment(payment.pk) == "unmatched"  # finance assigns it


def test_a_callback_that_cannot_be_taken_is_kept_for_the_sweep(mpesa, monkeypatch):
    def broken(data):
        raise RuntimeError("database hiccup")

    monkeypatch.setattr(services, "take_confirmation", broken)
    body = b'{"TransID": "UKN1KEPT01", "TransAmount": "100.00", "BillRefNumber": "X"}'
    outcome = services.receive(Callback.Kind.CONFIRMATION, body, {}, "127.0.0.1")
    assert outcome.state == "received" and not outcome.bad_request
    monkeypatch.undo()
    stored = Callback.objects.get()
    assert services.retake(stored).state == "processed"
    assert Payment.objects.get(reference="UKN1KEPT01").amount == Decimal("100.00")


def test_the_pay_page_knows_a_walled_garden_subscriber_by_address(alpha, mpesa):
    from network.models import ActiveSession, Router

    customer = subscribers.create_customer(actor="t", name="Walled In", phone="0712000113")
    from subscribers.models import Plan

    plan = Plan.objects.create(name="WG", price=1200, download_kbps=1000, upload_kbps=500)
    subscribers.create_service_account(
        actor="t", customer=customer, plan=plan, username="walled1", status="active"
    )
    router = Router.objects.create(name="wg", host="127.0.0.1", port=1, username="a", password="b")
    from django.utils import timezone

    ActiveSession.objects.create(
        router=router,
        username="walled1",
        service="pppoe",
        address="10.9.8.7",
        seen_at=timezone.now(),
    )
    page = alpha.client().get("/pay/", REMOTE_ADDR="10.9.8.7")
    assert page.status_code == 200
    assert page.context["form"].initial["account"] == customer.account
    assert b"paused until your bill is paid" in page.content
    stranger = alpha.client().get("/pay/", REMOTE_ADDR="10.9.8.8")
    assert not stranger.context["form"].initial.get("account")


def test_the_pay_page_refuses_an_unknown_account(alpha, mpesa):
    response = alpha.client().post("/pay/", {"account": "NOPE1", "phone": PHONE, "amount": "100"})
    assert response.status_code == 400
    assert b"do not know this account" in response.content
    assert not StkRequest.objects.exists()


def test_the_pay_page_limits_prompts_per_account(alpha, mpesa):
    customer = subscribers.create_customer(actor="t", name="Spammed", phone="0712000114")
    client = alpha.client()
    data = {"account": customer.account, "phone": PHONE, "amount": "100"}
    for _ in range(5):
        assert client.post("/pay/", data).status_code == 302
    refused = client.post("/pay/", data)
    assert refused.status_code == 400 and b"Too many payment requests" in refused.content
    assert StkRequest.objects.filter(customer=customer).count() == 5


@pytest.mark.committed
def test_two_workers_crediting_one_customer_at_once_both_land(pay_world, django_db_blocker):
    """Two payments of one customer credited on two connections at the same moment: the
    customer row lock serialises them and the balance counts both."""
    with django_db_blocker.unblock(), tenant_context(pay_world.isp):
        customer = subscribers.create_customer(actor="t", name="Twice", phone="0712000115")
        ids = [
            Payment.objects.create(
                method="mpesa", reference=f"UKN2PAR{n}{customer.pk:03d}"[:20], amount=amount,
                account_reference=customer.account, via_c2b=True,
            ).pk
            for n, amount in ((1, 300), (2, 450))
        ]  # fmt: skip
        go = threading.Barrier(2)
        results = []

        def credit(pk):
            with tenant_context(pay_world.isp):
                go.wait()
                results.append(services.credit_payment(pk))
            connections.close_all()

        threads = [threading.Thread(target=credit, args=(pk,)) for pk in ids]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == ["credited", "credited"]
        assert billing.customer_balance(customer) == Decimal("-750.00")
    connection.set_schema_to_public()


def test_the_keys_and_the_callback_token_are_encrypted_at_rest(mpesa):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT consumer_secret, passkey, callback_token FROM payments_mpesasettings"
        )
        stored = cursor.fetchone()
    for raw, plain in zip(stored, ("cs", SANDBOX_PASSKEY, mpesa.callback_token), strict=True):
        assert raw != plain and raw.startswith("gAAAA")  # a Fernet token


def test_a_rejected_callback_is_logged_without_its_token(alpha, mpesa, settings):
    import io
    import logging

    from ispops.lib.logfilters import RedactCallbackTokens

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactCallbackTokens())
    logging.getLogger("django.request").addHandler(handler)
    path = services.callback_paths(mpesa)["confirmation"]
    try:
        response = alpha.client().post(path, data="{bad", content_type="application/json")
    finally:
        logging.getLogger("django.request").removeHandler(handler)
    assert response.status_code == 400
    logged = stream.getvalue()
    assert "Bad Request: /payments/c2b/confirmation/[token]/" in logged
    assert mpesa.callback_token not in logged
    # The handler every log line goes through has the same filter.
    assert settings.LOGGING["handlers"]["console"]["filters"] == ["redact_tokens"]
