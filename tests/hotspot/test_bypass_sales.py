"""Devices let through the hotspot (a TV, a camera) as something sold: staff add one for
cash or free and end it early, by role and branch; a bad MAC is a form error that
writes nothing; the sales page counts what was taken; and on the captive page a phone
pays by STK push for another device's MAC, over real HTTP (the Daraja simulator calls
the live server, a real worker grants, the RouterOS emulator gets one binding), once
for a duplicated callback, never for a cancelled prompt, and the binding leaves the
router when the time is up."""

from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context

from hotspot import bypass_sales, entitlements
from hotspot import router as hotspot_router
from hotspot.models import Bypass, BypassOffer, BypassSale
from ispops.staff.models import Branch
from network.models import Router
from payments.models import Callback, Payment
from tests.hotspot.test_hotspot_purchase import device, new_mac, new_phone, world  # noqa: F401
from tests.payments.world import wait_for


@pytest.fixture
def router(in_alpha):
    return Router.objects.create(name="lobby-ap", host="10.9.0.7", username="api")


@pytest.fixture
def week(in_alpha):
    return BypassOffer.objects.create(name="TV week", minutes=7 * 24 * 60, price=Decimal("300"))


def form(router, **fields) -> dict:
    return {
        "router": router.pk,
        "mac": "a4-5e-60-12-34-56",
        "offer": "",
        "length": "",
        "length_unit": "days",
        "paid": "cash",
        "amount": "",
        "note": "lobby TV",
        "token": "ST-test-1",
        **fields,
    }


def written(alpha) -> tuple[int, int]:
    with tenant_context(alpha.isp):
        return Bypass.objects.count(), BypassSale.objects.count()


# --- staff ------------------------------------------------------------------------------------


def test_staff_let_a_device_through_for_cash_and_a_double_post_records_one_sale(
    alpha, router, week
):
    staff = alpha.client(alpha.support)
    response = staff.post("/hotspot/bypasses/new/", form(router, offer=week.pk))
    assert response.status_code == 302, response.content.decode()
    again = staff.post("/hotspot/bypasses/new/", form(router, offer=week.pk))
    assert again.status_code == 302
    with tenant_context(alpha.isp):
        bypass = Bypass.objects.get(router=router, mac="A4:5E:60:12:34:56")
        assert bypass.state == "active" and bypass.note == "lobby TV"
        length = bypass.ends_at - bypass.starts_at
        assert timedelta(days=7) - timedelta(seconds=5) < length <= timedelta(days=7)
        (sale,) = BypassSale.objects.filter(mac=bypass.mac)
        assert sale.method == "cash" and sale.amount == Decimal("300.00")
        assert sale.bypass == bypass and sale.offer == week and sale.granted_at
    page = staff.get(f"/hotspot/bypasses/?router={router.pk}").content.decode()
    assert "A4:5E:60:12:34:56" in page and "lobby TV" in page and "lobby-ap" in page
    assert "Cash KES 300" in page and "End now" in page


def test_a_bad_mac_is_a_form_error_and_writes_nothing(alpha, router, week):
    before = written(alpha)
    response = alpha.client(alpha.owner).post(
        "/hotspot/bypasses/new/", form(router, offer=week.pk, mac="TV in the lobby")
    )
    assert response.status_code == 400
    assert "is not a MAC address" in response.content.decode()
    assert written(alpha) == before


def test_a_custom_length_needs_the_cash_taken_and_no_end_lasts_until_ended(alpha, router):
    staff = alpha.client(alpha.owner)
    before = written(alpha)
    response = staff.post("/hotspot/bypasses/new/", form(router, length="3"))
    assert response.status_code == 400 and "Give the cash taken" in response.content.decode()
    response = staff.post("/hotspot/bypasses/new/", form(router))
    assert response.status_code == 400 and "Choose an offer" in response.content.decode()
    assert written(alpha) == before
    response = staff.post("/hotspot/bypasses/new/", form(router, no_end="on", amount="500"))
    assert response.status_code == 302
    with tenant_context(alpha.isp):
        sale = BypassSale.objects.get(reference="ST-test-1")
        assert sale.minutes is None and sale.bypass.ends_at is None
        assert sale.amount == Decimal("500.00")


def test_a_free_pass_needs_a_reason_and_finance_may_only_sell(alpha, router, week):
    before = written(alpha)
    response = alpha.client(alpha.finance).post(
        "/hotspot/bypasses/new/", form(router, offer=week.pk, paid="free")
    )
    assert response.status_code == 400
    support = alpha.client(alpha.support)
    response = support.post(
        "/hotspot/bypasses/new/", form(router, paid="free", no_end="on", note="")
    )
    assert response.status_code == 400 and "Say why it is free" in response.content.decode()
    assert written(alpha) == before
    response = support.post(
        "/hotspot/bypasses/new/", form(router, paid="free", no_end="on", note="office camera")
    )
    assert response.status_code == 302
    with tenant_context(alpha.isp):
        sale = BypassSale.objects.get(reference="ST-test-1")
        assert sale.method == "free" and sale.amount == 0
    # A gift is no sale on the sales page.
    assert (
        "Device: own length"
        not in alpha.client(alpha.owner).get("/hotspot/sales/").content.decode()
    )


def test_who_may_see_add_and_end(alpha, router, week):
    with tenant_context(alpha.isp):
        bypass = entitlements.add_bypass(
            router=router, mac="02:00:00:00:00:01", minutes=60, actor="test", now=timezone.now()
        )
    for person in (alpha.technician, alpha.agent):
        assert alpha.client(person).get("/hotspot/bypasses/").status_code == 403
        assert alpha.client(person).get("/hotspot/bypasses/new/").status_code == 403
    assert alpha.client(alpha.finance).get("/hotspot/bypasses/").status_code == 200
    end = f"/hotspot/bypasses/{bypass.pk}/end/"
    assert alpha.client(alpha.finance).post(end).status_code == 403
    assert alpha.client(alpha.support).get(end).status_code == 405
    assert alpha.client(alpha.support).post(end).status_code == 302
    with tenant_context(alpha.isp):
        bypass.refresh_from_db()
        assert bypass.state == "ended" and bypass.router_pending
    # Offers: everyone who sells sees them, owners and admins change them.
    assert alpha.client(alpha.support).get("/hotspot/bypass-offers/").status_code == 200
    assert alpha.client(alpha.support).get("/hotspot/bypass-offers/new/").status_code == 403
    response = alpha.client(alpha.admin).post(
        "/hotspot/bypass-offers/new/",
        {"name": "Camera month", "price": "800", "length": "30", "length_unit": "days",
         "routers": [router.pk], "is_active": "on"},
    )  # fmt: skip
    assert response.status_code == 302
    with tenant_context(alpha.isp):
        offer = BypassOffer.objects.get(name="Camera month")
        assert offer.minutes == 30 * 24 * 60 and list(offer.routers.all()) == [router]
        assert bypass_sales.offers_for(router)[-1] == offer


def test_branch_limited_staff_see_and_sell_only_at_their_routers(alpha, week):
    with tenant_context(alpha.isp):
        mine = Branch.objects.create(name="Mine", code="m1")
        theirs = Branch.objects.create(name="Theirs", code="t1")
        here = Router.objects.create(name="here-ap", host="10.9.0.5", username="api", branch=mine)
        there = Router.objects.create(
            name="there-ap", host="10.9.0.6", username="api", branch=theirs
        )
        now = timezone.now()
        seen = entitlements.add_bypass(
            router=here, mac="02:00:00:00:01:01", minutes=60, actor="t", now=now
        )
        hidden = entitlements.add_bypass(
            router=there, mac="02:00:00:00:02:02", minutes=60, actor="t", now=now
        )
        alpha.support.branches.set([mine])
    staff = alpha.client(alpha.support)
    page = staff.get("/hotspot/bypasses/").content.decode()
    assert seen.mac in page and hidden.mac not in page
    assert hidden.mac not in staff.get(f"/hotspot/bypasses/?router={there.pk}").content.decode()
    assert staff.post(f"/hotspot/bypasses/{hidden.pk}/end/").status_code == 404
    before = written(alpha)
    response = staff.post("/hotspot/bypasses/new/", form(there, offer=week.pk))
    assert response.status_code == 400 and written(alpha) == before
    with tenant_context(alpha.isp):
        hidden.refresh_from_db()
        assert hidden.state == "active"


def test_the_sales_page_counts_devices_let_through_for_money(alpha, router, week):
    staff = alpha.client(alpha.owner)
    staff.post("/hotspot/bypasses/new/", form(router, offer=week.pk))
    staff.post("/hotspot/bypasses/new/", form(router, offer=week.pk, token="ST-test-2"))
    page = staff.get("/hotspot/sales/?days=7").content.decode()
    assert "Device: TV week" in page and "2 devices let through" in page
    assert "KES 600" in page
    csv = staff.get("/hotspot/sales/?days=7&format=csv").content.decode().splitlines()
    assert csv[0].endswith("total_kes,devices,devices_kes")
    assert csv[-1].endswith(",600.00,2,600.00")


@pytest.mark.parametrize("devices", [1, 15])
def test_the_device_list_reads_the_same_with_few_or_many_devices(
    alpha, router, week, devices, django_assert_max_num_queries
):
    staff = alpha.client(alpha.owner)
    for i in range(devices):
        mac = f"02:00:00:00:10:{i:02X}"
        staff.post("/hotspot/bypasses/new/", form(router, offer=week.pk, mac=mac, token=f"ST-{i}"))
    assert written(alpha)[1] == devices
    with django_assert_max_num_queries(14):
        page = staff.get("/hotspot/bypasses/")
    assert page.status_code == 200 and page.content.decode().count("Cash KES 300") == devices


# --- the captive page, rolled back ---------------------------------------------------------


def test_the_captive_page_links_to_devices_and_without_m_pesa_sells_nothing(alpha, router, week):
    visitor = alpha.client()
    home = visitor.get("/hs/?" + urlencode(device(router, new_mac())))
    assert home.status_code == 200 and "Connect a TV or camera" in home.content.decode()
    assert "not available here yet" in visitor.get("/hs/device/").content.decode()
    before = written(alpha)
    response = visitor.post(
        "/hs/device/", {"mac": new_mac(), "offer": week.pk, "phone": "0712345678"}
    )
    assert response.status_code == 400
    assert "Nothing was sent: M-Pesa is not available" in response.content.decode()
    assert written(alpha) == before


# --- over the wire ------------------------------------------------------------------------


@pytest.fixture
def tv_day(world):  # noqa: F811
    offer = BypassOffer.objects.create(name="TV day", minutes=24 * 60, price=Decimal("30"))
    offer.routers.add(world.router)
    return offer


def bindings(world, mac):  # noqa: F811
    return [
        row
        for row in world.emulator.rows("/ip/hotspot/ip-binding")
        if row.get("mac-address") == mac
    ]


@pytest.mark.committed
@pytest.mark.worker
def test_a_device_paid_by_a_duplicated_callback_gets_one_binding_until_its_end(world, tv_day):  # noqa: F811
    phone, tv = new_phone(), new_mac()
    mobile = "254" + phone[1:]
    client = world.tenant.client()
    assert client.get("/hs/?" + urlencode(device(world.router, new_mac()))).status_code == 200
    # A bad MAC is a form error that writes nothing.
    bad = client.post("/hs/device/", {"mac": "TV-LOBBY", "offer": tv_day.pk, "phone": phone})
    assert bad.status_code == 400 and "not a MAC address" in bad.content.decode()
    assert not BypassSale.objects.filter(phone=mobile).exists()
    world.sim.stk_outcome(mobile, "duplicate")
    response = client.post(
        "/hs/device/", {"mac": tv.replace(":", "-").lower(), "offer": tv_day.pk, "phone": phone}
    )
    assert response.status_code == 302, response.content.decode()
    sale = BypassSale.objects.select_related("stk").get(phone=mobile)
    assert response["Location"] == f"/hs/device/pay/{sale.stk.public_id}/"
    assert sale.stk.purpose == "bypass" and sale.stk.account_reference == sale.reference
    assert sale.mac == tv and sale.granted_at is None

    def both_callbacks_taken():
        return (
            Callback.objects.filter(kind="stk", body__contains=sale.stk.checkout_request_id).count()
            == 2
            and Payment.objects.filter(stk_request=sale.stk, state="credited").exists()
        )

    assert wait_for(both_callbacks_taken, seconds=30)
    assert world.sim.wait_idle()
    payment = Payment.objects.get(stk_request=sale.stk)
    assert payment.customer_id is None and payment.matched_by == "bypass"
    sale.refresh_from_db()
    assert sale.payment == payment and sale.amount == Decimal("30.00") and sale.granted_at
    (bypass,) = Bypass.objects.filter(mac=tv)
    assert bypass.payment == payment and bypass.state == "active"
    assert timedelta(hours=23, minutes=59) < bypass.ends_at - bypass.starts_at <= timedelta(days=1)

    def on_router():
        bypass.refresh_from_db()
        return not bypass.router_pending

    assert wait_for(on_router, seconds=20), bypass.router_error
    (binding,) = bindings(world, tv)
    assert binding["type"] == "bypassed"
    assert (
        "is let through until"
        in client.get(f"/hs/device/pay/{sale.stk.public_id}/").content.decode()
    )
    # The time is up: the beat ends it and the push takes the binding away.
    assert entitlements.end_due_bypasses(bypass.ends_at + timedelta(seconds=1)) == [world.router.pk]
    hotspot_router.push(world.router.pk)
    assert wait_for(lambda: bindings(world, tv) == [], seconds=20)
    bypass.refresh_from_db()
    assert bypass.state == "ended"


@pytest.mark.committed
@pytest.mark.worker
def test_a_cancelled_prompt_lets_nothing_through_and_offers_try_again(world, tv_day):  # noqa: F811
    phone, tv = new_phone(), new_mac()
    client = world.tenant.client()
    client.get("/hs/?" + urlencode(device(world.router, new_mac())))
    world.sim.stk_outcome("254" + phone[1:], "cancelled")
    url = client.post("/hs/device/", {"mac": tv, "offer": tv_day.pk, "phone": phone})["Location"]

    def says_cancelled():
        return "You cancelled the payment" in client.get(url).content.decode()

    assert wait_for(says_cancelled, seconds=20)
    assert "Try again" in client.get(url).content.decode()
    assert not Bypass.objects.filter(mac=tv).exists()
    assert BypassSale.objects.get(mac=tv).granted_at is None
    assert bindings(world, tv) == []
