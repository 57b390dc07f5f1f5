"""Topping up on the captive page (issue 14: "top-ups bought in the portal or captive
page take effect within 60 s"): the hotspot's top-up is buying the same package again,
which the stacking rule "extend" adds to the live one (time and data). Over real HTTP:
a phone's package is used up, the router's guard (limit-bytes-total on the RouterOS
emulator) cuts the session and refuses the login; the same package bought again by STK
extends the entitlement, the router user's limit moves with it, and the device logs in
again well within a minute of M-Pesa's callback."""

import time
import uuid
from urllib.parse import urlencode

import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from hotspot import captive
from hotspot.models import Entitlement, Grant, Package, Purchase
from payments.models import Payment
from tests.payments.world import wait_for

pytestmark = [pytest.mark.committed, pytest.mark.worker]

LIMIT = 200_000  # bytes: used up in about a second at 200 kB/s


@pytest.fixture
def world(pay_world, django_db_blocker, celery_worker_process):
    with django_db_blocker.unblock(), tenant_context(pay_world.isp):
        yield pay_world
    connection.set_schema_to_public()


@pytest.fixture
def small(world):
    package = Package.objects.create(
        name=f"200 kB {uuid.uuid4().hex[:6]}", price=10, validity_minutes=60,
        data_limit_bytes=LIMIT, download_kbps=2000, upload_kbps=1000,
    )  # fmt: skip
    package.routers.add(world.router)
    return package


def device(router, mac: str) -> dict:
    return {
        "r": captive.router_ref(router.pk),
        "mac": mac,
        "ip": "10.5.50.78",
        "link-login-only": "http://10.5.50.1/login",
        "link-orig": "http://example.com/",
    }


def user_row(world, login: str) -> dict | None:
    return next((r for r in world.emulator.rows("/ip/hotspot/user") if r["name"] == login), None)


def on_router(entitlement) -> bool:
    entitlement.refresh_from_db()
    return not entitlement.router_pending


def sessions_of(world, login: str) -> list[dict]:
    """This login's sessions (the emulator is shared with other tests' hotspots)."""
    return [r for r in world.emulator.rows("/ip/hotspot/active") if r.get("user") == login]


def can_log_in(world, login: str, mac: str) -> bool:
    try:
        world.emulator.hotspot.login(login, mac=mac)
    except Exception:
        return False
    return True


def buy(client, package, phone: str, **extra):
    response = client.post("/hs/buy/", {"package": package.pk, "phone": phone, **extra})
    assert response.status_code == 302, response.content.decode()[:2000]
    return response


def test_the_same_package_bought_again_after_the_data_cut_puts_the_phone_back_online(world, small):
    phone = f"0712{uuid.uuid4().int % 10**6:06d}"
    mobile, mac = "254" + phone[1:], "02:00:00:AB:CD:" + uuid.uuid4().hex[:2].upper()
    client = world.tenant.client()
    assert client.get("/hs/?" + urlencode(device(world.router, mac))).status_code == 200

    buy(client, small, phone)
    with tenant_context(world.isp):
        assert wait_for(lambda: Entitlement.objects.filter(phone=mobile).exists(), seconds=30)
        entitlement = Entitlement.objects.get(phone=mobile)
        login = entitlement.login
        assert wait_for(lambda: on_router(entitlement), seconds=20), entitlement.router_error

    assert wait_for(lambda: user_row(world, login) is not None, seconds=20), [
        (r["name"], r.get("comment")) for r in world.emulator.rows("/ip/hotspot/user")
    ]
    # Used up: the router's guard cuts the session at the limit and refuses a new one.
    world.emulator.hotspot.login(login, mac=mac)
    world.emulator.hotspot.set_rate(login, 800_000, 800_000)  # 200 kB/s in total
    assert wait_for(lambda: not sessions_of(world, login), seconds=5)
    assert not can_log_in(world, login, mac)

    # The same package again from the same device: the page asks to confirm the
    # extension, then sends the prompt; M-Pesa's callback extends the live one.
    confirm = client.post("/hs/buy/", {"package": small.pk, "phone": phone})
    assert confirm.status_code == 200 and "confirm" in confirm.content.decode().lower()
    buy(client, small, phone, confirm="1")
    paid_at = time.monotonic()
    with tenant_context(world.isp):
        second = Purchase.objects.filter(phone=mobile).order_by("-id").first()
        assert second.login == login

        def extended():
            return Grant.objects.filter(entitlement=entitlement, outcome="extend").exists()

        assert wait_for(extended, seconds=30), (
            list(Grant.objects.filter(phone=mobile).values_list("outcome", "entitlement_id")),
            list(Purchase.objects.filter(phone=mobile).values_list("login", "stk__state")),
            list(Entitlement.objects.filter(phone=mobile).values_list("id", "state", "login")),
            list(
                Payment.objects.filter(stk_request__phone=mobile).values_list(
                    "state", "last_error", "note"
                )
            ),
        )
        entitlement.refresh_from_db()
        assert entitlement.state == "live" and entitlement.data_limit_bytes == 2 * LIMIT
        assert Entitlement.objects.filter(login=login).count() == 1
        assert wait_for(lambda: on_router(entitlement), seconds=20), entitlement.router_error
    user = user_row(world, login)
    assert user is not None and user.get("disabled") != "true"
    assert int(user["limit-bytes-total"]) > int(user["bytes-in"]) + int(user["bytes-out"])
    assert wait_for(lambda: can_log_in(world, login, mac), seconds=10)
    assert time.monotonic() - paid_at < 60
