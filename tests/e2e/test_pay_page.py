"""A suspended subscriber on a 360 px phone pays on the pay page: the simulator plays
the STK push, the worker credits the payment and restores them on the router, and the
page, polling, says they are back online."""

import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from payments.models import Payment
from subscribers import services as subscribers
from tests.payments.world import new_subscriber, secret_disabled, wait_for

pytestmark = [pytest.mark.committed, pytest.mark.worker, pytest.mark.browser]


def test_a_suspended_subscriber_pays_by_stk_and_sees_back_online(
    pay_world, django_db_blocker, celery_worker_process, phone
):
    world = pay_world
    with django_db_blocker.unblock(), tenant_context(world.isp):
        account = new_subscriber(world, mobile="0712555123")
        subscribers.change_status(account, "suspended", actor="test", reason="Expired")
        assert wait_for(lambda: secret_disabled(world, account.username) is True)
        number = account.customer.account
        world.sim.callback_delay = 1.0  # the payer takes a moment to type the PIN
        try:
            phone.goto(f"{world.base_url}/pay/?account={number}")
            assert phone.locator("#id_account").input_value() == number
            assert phone.locator("#id_phone").input_value() == ""  # not told to strangers
            phone.fill("#id_phone", "0712 555 123")
            phone.fill("#id_amount", "1500")
            phone.get_by_role("button", name="Send the M-Pesa request").click()
            status = phone.locator("#pay-status")
            status.get_by_text("enter your M-Pesa PIN").wait_for()
            status.get_by_text("You are back online").wait_for(timeout=30_000)
        finally:
            world.sim.callback_delay = 0.0
        assert phone.evaluate("document.documentElement.scrollWidth") <= 360
        assert secret_disabled(world, account.username) is False
        payment = Payment.objects.get(customer=account.customer)
        assert payment.state == "credited" and payment.via_stk
    connection.set_schema_to_public()
