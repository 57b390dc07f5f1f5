"""Buying a package on the captive page by STK push, over real HTTP: the page sends the
prompt, the Daraja simulator calls back the live server, a real worker hands the stored
payment to the "hotspot" purpose, which grants the package on the buyer's phone login,
and the router (the RouterOS emulator) gets the login. A payment grants once: the same
callback twice stores one payment and one grant. And the seam itself, rolled back:
payments hands a purpose's payment over once, never to a customer's ledger."""

import uuid
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from billing.models import LedgerEntry
from hotspot import captive, captive_purchase
from hotspot.models import Entitlement, Grant, Package, Purchase
from network.models import Router
from payments import services as payments
from payments.models import Callback, Payment, StkRequest
from tests.payments.world import wait_for


def device(router, mac: str) -> dict:
    return {
        "r": captive.router_ref(router.pk),
        "mac": mac,
        "ip": "10.5.50.77",
        "link-login-only": "http://10.5.50.1/login",
        "link-orig": "http://example.com/",
    }


def new_mac() -> str:
    tail = uuid.uuid4().hex[:6].upper()
    return "02:00:00:" + ":".join(tail[i : i + 2] for i in range(0, 6, 2))


def new_phone() -> str:
    return f"0712{uuid.uuid4().int % 10**6:06d}"


# --- over the wire ------------------------------------------------------------------------


@pytest.fixture
def world(pay_world, django_db_blocker, celery_worker_process):
    with django_db_blocker.unblock(), tenant_context(pay_world.isp):
        yield pay_world
    connection.set_schema_to_public()


@pytest.fixture
def hour(world):
    package = Package.objects.create(
        name=f"1 hour {uuid.uuid4().hex[:6]}",
        price=10,
        validity_minutes=60,
        download_kbps=2000,
        upload_kbps=1000,
    )
    package.routers.add(world.router)
    return package


@pytest.mark.committed
@pytest.mark.worker
def test_a_purchase_paid_by_a_duplicated_callback_grants_once_and_reaches_the_router(world, hour):
    phone, mac = new_phone(), new_mac()
    client = world.tenant.client()
    assert client.get("/hs/?" + urlencode(device(world.router, mac))).status_code == 200
    mobile = "254" + phone[1:]
    world.sim.stk_outcome(mobile, "duplicate")  # Daraja sends the same callback twice
    response = client.post("/hs/buy/", {"package": hour.pk, "phone": phone})
    assert response.status_code == 302, response.content.decode()
    with tenant_context(world.isp):
        purchase = Purchase.objects.select_related("stk").get(phone=mobile)
        assert response["Location"] == f"/hs/pay/{purchase.stk.public_id}/"
        stk = purchase.stk
        assert stk.customer_id is None and stk.purpose == "hotspot"
        assert stk.account_reference == purchase.reference and stk.amount == Decimal("10")

        def both_callbacks_taken():
            return (
                Callback.objects.filter(kind="stk", body__contains=stk.checkout_request_id).count()
                == 2
                and Payment.objects.filter(stk_request=stk, state="credited").exists()
            )

        assert wait_for(both_callbacks_taken, seconds=30)
        assert world.sim.wait_idle()
        payment = Payment.objects.get(stk_request=stk)
        assert payment.customer_id is None and payment.matched_by == "hotspot"
        assert not LedgerEntry.objects.filter(reference=payment.reference).exists()
        repeat = Callback.objects.filter(kind="stk", body__contains=stk.checkout_request_id)
        assert sorted(repeat.values_list("error", flat=True)) == ["", "repeat"]
        grants = Grant.objects.filter(payment=payment)
        assert grants.count() == 1 and grants.get().outcome == "new"
        entitlement = Entitlement.objects.get(payment=payment)
        assert entitlement.login == phone and entitlement.minutes == 60
        assert entitlement.phone == mobile and entitlement.mac == mac

        def on_router():
            entitlement.refresh_from_db()
            return not entitlement.router_pending

        assert wait_for(on_router, seconds=20), entitlement.router_error
        users = [r for r in world.emulator.rows("/ip/hotspot/user") if r.get("name") == phone]
        assert len(users) == 1 and users[0]["profile"] == hour.profile_name
    # The waiting page hands over to the login form once the router has the login.
    page = client.get(f"/hs/pay/{purchase.stk.public_id}/")
    assert page.status_code == 302 and page["Location"] == "/hs/connect/"
    connect = client.get("/hs/connect/").content.decode()
    assert 'action="http://10.5.50.1/login"' in connect and f'value="{phone}"' in connect


@pytest.mark.committed
@pytest.mark.worker
def test_a_cancelled_prompt_grants_nothing_and_says_so_with_try_again(world, hour):
    phone = new_phone()
    client = world.tenant.client()
    client.get("/hs/?" + urlencode(device(world.router, new_mac())))
    world.sim.stk_outcome("254" + phone[1:], "cancelled")
    url = client.post("/hs/buy/", {"package": hour.pk, "phone": phone})["Location"]

    def says_cancelled():
        return "You cancelled the payment" in client.get(url).content.decode()

    assert wait_for(says_cancelled, seconds=20)
    assert "Try again" in client.get(url).content.decode()
    with tenant_context(world.isp):
        assert not Entitlement.objects.filter(phone="254" + phone[1:]).exists()


@pytest.mark.committed
@pytest.mark.worker
def test_a_lost_callback_is_replaced_by_the_c2b_confirmation_of_the_same_payment(world, hour):
    phone = new_phone()
    mobile = "254" + phone[1:]
    client = world.tenant.client()
    client.get("/hs/?" + urlencode(device(world.router, new_mac())))
    world.sim.stk_outcome(mobile, "lost")  # no STK callback ever comes
    world.sim.stk_confirms_c2b = True  # but the paybill's C2B confirmation does
    try:
        client.post("/hs/buy/", {"package": hour.pk, "phone": phone})
        with tenant_context(world.isp):
            purchase = Purchase.objects.select_related("stk").get(phone=mobile)

            def granted():
                purchase.refresh_from_db()
                return purchase.entitlement_id is not None

            assert wait_for(granted, seconds=30)
            payment = Payment.objects.get(account_reference=purchase.reference)
            assert payment.via_c2b and not payment.via_stk
            assert payment.stk_request_id == purchase.stk_id and payment.matched_by == "hotspot"
            assert payment.customer_id is None
    finally:
        world.sim.stk_confirms_c2b = False
        world.sim.wait_idle()


# --- the seam, rolled back -----------------------------------------------------------------


@pytest.fixture
def bought(in_alpha, package):
    router = Router.objects.create(name="seam-ap", host="10.9.0.9", username="api")
    purchase = Purchase.objects.create(
        reference=captive_purchase.new_reference(),
        package=package,
        router=router,
        phone="254712000111",
        login="0712000111",
        mac="02:00:00:00:00:01",
    )
    stk = StkRequest.objects.create(
        phone=purchase.phone,
        amount=package.price,
        account_reference=purchase.reference,
        purpose="hotspot",
        source="hotspot",
        checkout_request_id="ws_CO_seam_1",
    )
    Purchase.objects.filter(pk=purchase.pk).update(stk=stk)
    payment = Payment.objects.create(
        method="mpesa", reference="UC3SEAM001", amount=package.price, stk_request=stk
    )
    return purchase, payment


def test_a_purpose_payment_is_handed_over_once_and_touches_no_ledger(bought):
    purchase, payment = bought
    assert payments.credit_payment(payment.pk) == "credited"
    assert payments.credit_payment(payment.pk) == "nothing to do"
    payment.refresh_from_db()
    assert payment.state == "credited" and payment.matched_by == "hotspot"
    assert payment.customer_id is None and payment.ledger_entry_id is None
    assert Grant.objects.filter(payment=payment).count() == 1
    purchase.refresh_from_db()
    assert purchase.entitlement.payment_id == payment.pk


def test_money_short_of_the_price_grants_nothing_and_is_noted(bought):
    _, payment = bought
    Payment.objects.filter(pk=payment.pk).update(amount=Decimal("5"))
    payments.credit_payment(payment.pk)
    payment.refresh_from_db()
    assert not Grant.objects.exists() and "short of" in payment.note


def test_a_payment_for_a_purpose_nobody_registered_stays_received(bought):
    _, payment = bought
    StkRequest.objects.filter(pk=payment.stk_request_id).update(purpose="nobody")
    with pytest.raises(LookupError):
        payments.credit_payment(payment.pk)
    payment.refresh_from_db()
    assert payment.state == "received"


def test_a_push_without_a_customer_needs_a_registered_purpose(in_alpha):
    with pytest.raises(LookupError):
        payments.start_stk_push(
            None, phone="0712000111", amount=10, actor="test", purpose="nobody",
            account_reference="HSX",
        )  # fmt: skip
