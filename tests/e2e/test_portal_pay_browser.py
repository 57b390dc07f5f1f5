"""A subscriber on a 360 x 780 phone signs in to the portal with the SMS code (read from
the message log), pays a suspended account by STK push against the Daraja simulator,
and sees "back online" once the RouterOS emulator has the secret enabled again; a
cancelled prompt gets its plain message, "Try again" and the paybill fallback."""

import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from payments.models import Payment
from subscribers import services as subscribers
from tests.e2e.portal import assert_fits, sign_in_by_code
from tests.payments.world import new_subscriber, secret_disabled, wait_for

pytestmark = [pytest.mark.committed, pytest.mark.worker, pytest.mark.browser]


@pytest.fixture
def world(pay_world, django_db_blocker, celery_worker_process):
    with django_db_blocker.unblock(), tenant_context(pay_world.isp):
        yield pay_world
    connection.set_schema_to_public()


def suspended(world):
    account = new_subscriber(world)
    subscribers.change_status(account, "suspended", actor="test", reason="Expired")
    assert wait_for(lambda: secret_disabled(world, account.username) is True)
    return account


def test_sign_in_by_code_pay_by_stk_and_see_back_online(world, phone):
    account = suspended(world)
    mobile = account.customer.phone
    sign_in_by_code(phone, world.base_url, world.isp, mobile)
    assert phone.get_by_text("Limited until paid").or_(phone.get_by_text("Suspended")).count()
    assert_fits(phone)
    world.sim.callback_delay = 2.0  # the subscriber takes a moment to type the PIN
    try:
        phone.get_by_role("link", name="Pay KES 1,500.00").click()
        phone.get_by_text("1 month").wait_for()
        assert_fits(phone)
        phone.get_by_role("button", name="Send the M-Pesa prompt to my phone").click()
        status = phone.locator("#pay-status")
        status.get_by_text("enter your M-Pesa PIN").wait_for()
        assert "seconds left" in status.inner_text()
        status.get_by_text("You are back online").wait_for(timeout=30_000)
    finally:
        world.sim.callback_delay = 0.0
    assert_fits(phone)
    assert secret_disabled(world, account.username) is False
    payment = Payment.objects.get(customer=account.customer)
    assert payment.state == "credited" and payment.via_stk


def test_a_cancelled_prompt_says_so_with_try_again_and_the_paybill(world, phone):
    account = suspended(world)
    sign_in_by_code(phone, world.base_url, world.isp, account.customer.phone)
    world.sim.stk_outcome(account.customer.phone, "cancelled")
    phone.goto(f"{world.base_url}/my/pay/")
    phone.get_by_role("button", name="Send the M-Pesa prompt to my phone").click()
    phone.locator("#pay-status").get_by_text("You cancelled the payment on your phone.").wait_for(
        timeout=20_000
    )
    assert phone.get_by_role("link", name="Try again").is_visible()
    assert phone.locator("#paybill").get_by_text(account.customer.account).is_visible()
    assert_fits(phone)
    assert not Payment.objects.filter(customer=account.customer).exists()
    assert secret_disabled(world, account.username) is True


@pytest.fixture
def phone_without_js(browser):
    """A 360 x 780 phone whose browser runs no JavaScript (htmx never loads)."""
    context = browser.new_context(viewport={"width": 360, "height": 780}, java_script_enabled=False)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def test_sign_in_home_and_pay_work_without_javascript(world, phone_without_js):
    page = phone_without_js
    account = suspended(world)
    sign_in_by_code(page, world.base_url, world.isp, account.customer.phone)
    assert page.get_by_role("link", name="Pay KES 1,500.00").is_visible()
    page.goto(f"{world.base_url}/my/pay/")
    page.get_by_role("button", name="Send the M-Pesa prompt to my phone").click()
    # No htmx: the waiting page reloads itself (a <noscript> refresh) until the end.
    status = page.locator("#pay-status")
    try:
        status.get_by_text("You are back online").wait_for(timeout=60_000)
    except Exception:
        raise AssertionError(page.content()) from None
    assert secret_disabled(world, account.username) is False
    assert_fits(page)
