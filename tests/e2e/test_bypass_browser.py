"""A phone on the hotspot, at 360 x 780, buys time for a TV: from the captive page's
"Connect a TV or camera" it types the TV's MAC, picks the offer, pays by STK push (the
Daraja simulator over real HTTP, a real worker) and the router (the RouterOS emulator)
gets a bypassed binding for the TV; every page fits the phone."""

import re
import uuid
from decimal import Decimal

import pytest

from hotspot.models import BypassOffer
from tests.e2e.portal import assert_fits
from tests.e2e.test_hotspot_browser import servlet, world  # noqa: F401

pytestmark = [pytest.mark.committed, pytest.mark.worker, pytest.mark.browser]


def test_a_phone_buys_a_day_for_a_tv_and_the_router_lets_it_through(world, servlet, phone):  # noqa: F811
    offer = BypassOffer.objects.create(
        name=f"TV day {uuid.uuid4().hex[:4]}", minutes=24 * 60, price=Decimal("30")
    )
    offer.routers.add(world.router)
    tail = uuid.uuid4().hex[:6].upper()
    tv = "A4:5E:60:" + ":".join(tail[i : i + 2] for i in range(0, 6, 2))
    mobile = f"0712{uuid.uuid4().int % 10**6:06d}"
    phone.goto(f"{servlet.url}/")
    phone.wait_for_url(re.compile(r"/hs/"))
    phone.get_by_role("link", name="Connect a TV or camera").click()
    phone.locator("input[name=mac]").wait_for()
    assert_fits(phone)
    phone.get_by_text("Where do I find it?").click()
    assert_fits(phone)
    phone.fill("input[name=mac]", tv.replace(":", "").lower())
    phone.get_by_label(re.compile(re.escape(offer.name))).check()
    phone.fill("input[name=phone]", mobile)
    phone.get_by_role("button", name="Send the M-Pesa prompt to my phone").click()
    phone.locator("#pay-status").wait_for()
    assert_fits(phone)
    phone.get_by_text(f"Done: {tv} is let through until").wait_for(timeout=30_000)
    assert_fits(phone)
    bindings = [
        r for r in world.emulator.rows("/ip/hotspot/ip-binding") if r.get("mac-address") == tv
    ]
    assert len(bindings) == 1 and bindings[0]["type"] == "bypassed"
