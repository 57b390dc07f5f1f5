"""A subscriber on a 360 x 780 phone whose capped PPPoE account is blocked (its data
used up) opens "Data used and top-ups" from the portal's home, buys the plan's pack by
STK push against the Daraja simulator, and sees "5 GB added" while the RouterOS
emulator's secret goes back to the plan's own profile; every page fits the phone."""

import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from network.models import DataTopUp
from tests.e2e.portal import assert_fits, sign_in_by_code
from tests.payments.world import wait_for
from tests.portal.test_data_top_up import blocked, profile

pytestmark = [pytest.mark.committed, pytest.mark.worker, pytest.mark.browser]


@pytest.fixture
def world(pay_world, django_db_blocker, celery_worker_process):
    with django_db_blocker.unblock(), tenant_context(pay_world.isp):
        yield pay_world
    connection.set_schema_to_public()


def test_a_blocked_subscriber_buys_a_data_pack_on_a_phone_and_is_back_at_full_speed(world, phone):
    account = blocked(world)
    sign_in_by_code(phone, world.base_url, world.isp, account.customer.phone)
    phone.get_by_role("link", name="Data used and top-ups").click()
    phone.get_by_text("Blocked until a top-up").wait_for()
    assert_fits(phone)
    world.sim.callback_delay = 2.0  # the subscriber takes a moment to type the PIN
    try:
        phone.get_by_role("button", name="Buy 5 GB for KES 250.00").click()
        status = phone.locator("#pay-status")
        status.get_by_text("enter your M-Pesa PIN").wait_for()
        assert_fits(phone)
        status.get_by_text("5 GB added").wait_for(timeout=30_000)
    finally:
        world.sim.callback_delay = 0.0
    assert_fits(phone)
    assert DataTopUp.objects.filter(service_account=account).count() == 1
    assert wait_for(lambda: profile(world, account.username) == account.plan.name, seconds=30)
    phone.get_by_role("link", name="See my data").click()
    phone.get_by_text("Full speed", exact=True).wait_for()
    assert_fits(phone)
