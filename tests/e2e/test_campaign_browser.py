"""A campaign in a real browser (issue 16): the office filters the subscribers list to
51 customers, one of whom turned reminders off in the portal; the campaign's preview
says 50 will get it and 1 opted out, and once sent (by a real Celery worker, through
the message queue) 50 messages are written and the opted-out customer gets none."""

import re
import uuid
from types import SimpleNamespace

import pytest
from django.db import connection
from django_tenants.utils import tenant_context
from playwright.sync_api import expect

from ispops.messaging import preferences
from ispops.messaging.models import Campaign, Message
from ispops.tenancy.models import Isp
from subscribers import services
from subscribers.models import Plan, ServiceAccount
from tests.e2e.test_lead_to_activation import OWNER, field, log_in

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def audience(django_db_setup, django_db_blocker):
    """51 demo customers on a plan of their own (committed: the live server and the
    worker read them); the second turned payment reminders by SMS off."""
    tag = uuid.uuid4().hex[:6]
    with django_db_blocker.unblock():
        isp = Isp.objects.get(schema_name="demo")
        with tenant_context(isp):
            plan = Plan.objects.create(
                name=f"E2E Campaign {tag}", price="999.00", download_kbps=4000, upload_kbps=4000
            )
            customers = []
            for i in range(51):
                customer = services.create_customer(
                    actor="test", name=f"Campaign Kamau {tag} {i}", phone=f"0798{i:06d}"
                )
                services.create_service_account(
                    actor="test",
                    customer=customer,
                    plan=plan,
                    username=f"cmp{tag}{i}",
                    password="p",
                )
                customers.append(customer)
            # The bulk test's own: three customers on a plan, and the plan they move to.
            bulk_plan = Plan.objects.create(
                name=f"E2E Bulk {tag}", price="999.00", download_kbps=4000, upload_kbps=4000
            )
            Plan.objects.create(
                name=f"E2E Bulk {tag} Plus", price="1999.00", download_kbps=8000, upload_kbps=8000
            )
            bulk_customers = []
            for i in range(3):
                customer = services.create_customer(
                    actor="test", name=f"Bulk Otieno {tag} {i}", phone=f"0799{i:06d}"
                )
                services.create_service_account(
                    actor="test", customer=customer, plan=bulk_plan, username=f"blk{tag}{i}"
                )
                bulk_customers.append(customer)
            opted_out = customers[1]
            preferences.set_preferences(
                opted_out, {(preferences.REMINDERS, "sms"): False}, actor="test"
            )
        connection.set_schema_to_public()
    return SimpleNamespace(
        isp=isp,
        plan=plan,
        customers=customers,
        opted_out=opted_out,
        bulk_plan=bulk_plan,
        bulk_customers=bulk_customers,
    )


def test_a_bulk_plan_change_from_a_phone_confirms_the_count_then_runs(
    phone, live_server_url, audience, django_db_blocker
):
    isp, plan, customers = audience.isp, audience.bulk_plan, audience.bulk_customers
    base = f"http://demo.localhost:{live_server_url}"
    page = phone
    log_in(page, base, OWNER, f"/subscribers/?plan={plan.pk}")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    for customer in customers[-2:]:
        page.get_by_label(f"Choose {customer.name}").check()
    page.get_by_label("With them:").select_option(label="Change plan")
    # Choosing the action must not reload the list (the filter form once reacted to
    # every select on the page, and the ticks were lost).
    page.wait_for_timeout(800)
    for customer in customers[-2:]:
        expect(page.get_by_label(f"Choose {customer.name}")).to_be_checked()
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_test_id("bulk-summary")).to_have_text(
        "Move 2 accounts to the one you choose."
    )
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    field(page, "Plan").select_option(label=f"{plan.name} Plus")
    field(page, "Reason").fill("Upgrade offer accepted")
    page.get_by_role("button", name="Move 2").click()
    expect(page.get_by_text("Finished: 2 of 2.")).to_be_visible()
    with django_db_blocker.unblock(), tenant_context(isp):
        moved = ServiceAccount.objects.filter(customer__in=customers[-2:])
        assert {a.plan.name for a in moved} == {f"{plan.name} Plus"}
        assert ServiceAccount.objects.get(customer=customers[0]).plan == plan
    connection.set_schema_to_public()


def test_a_campaign_to_a_filtered_list_queues_one_message_each_but_the_opted_out(
    desktop, live_server_url, celery_worker_process, audience, django_db_blocker
):
    isp, plan, customers, opted_out = (
        audience.isp,
        audience.plan,
        audience.customers,
        audience.opted_out,
    )
    base = f"http://demo.localhost:{live_server_url}"
    page = desktop
    log_in(page, base, OWNER, f"/subscribers/?plan={plan.pk}")
    expect(page.get_by_text("All 51 matching this filter")).to_be_visible()

    page.get_by_role("link", name="Campaign to all matching").click()
    page.wait_for_url(re.compile(r"/messages/campaigns/new/\?"))
    expect(page.get_by_test_id("matching")).to_have_text("51")
    field(page, "Name").fill("Renewal reminder E2E")
    field(page, "Channel").select_option(label="SMS")
    field(page, "Kind of message").select_option(label="Payment and renewal reminders")
    field(page, "Message").fill(
        "Hi {{ customer.first_name }}, renew {{ isp_name }} account {{ customer.account }}."
    )
    page.get_by_role("button", name="Save and preview").click()
    page.wait_for_url(re.compile(r"/messages/campaigns/\d+/$"))

    expect(page.get_by_test_id("recipients")).to_have_text("50")
    expect(page.get_by_test_id("preview-matching")).to_have_text("51")
    expect(page.get_by_test_id("refused")).to_have_text("1")
    expect(page.get_by_test_id("sample")).to_have_text(
        f"Hi Campaign, renew {isp.name} account {customers[0].account}."
    )

    page.get_by_role("button", name="Send to 50 customers").click()
    # The worker writes the messages; the page polls its progress.
    expect(page.get_by_test_id("written")).to_have_text("51", timeout=30_000)
    expect(page.get_by_test_id("skipped")).to_have_text("1")
    expect(page.get_by_test_id("state")).to_have_text("Sent to the queue")

    with django_db_blocker.unblock(), tenant_context(isp):
        campaign = Campaign.objects.get(name="Renewal reminder E2E")
        messages = Message.objects.filter(related=campaign.related)
        going = messages.exclude(state=Message.State.SKIPPED)
        assert going.count() == 50
        assert set(going.values_list("customer_id", flat=True)) == {
            c.pk for c in customers if c.pk != opted_out.pk
        }
        # The opted-out customer gets none: only the log's "skipped" line says why.
        theirs = list(messages.filter(customer=opted_out).values_list("state", flat=True))
        assert theirs == [Message.State.SKIPPED]
        assert campaign.recipient_count == 51
    connection.set_schema_to_public()
