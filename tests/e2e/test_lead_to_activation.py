"""A lead walks the whole pipeline in real browsers: the office records and schedules it
on a desktop, the technician installs it from a 360 px phone, the office activates it
and the customer confirms.
"""

import re
import uuid

import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import tenant_context
from playwright.sync_api import expect

from ispops.tenancy.management.commands.seed_demo import DEMO_PASSWORD
from ispops.tenancy.models import Isp
from network.models import RouterJob
from subscribers.models import Plan, ServiceAccount, ServiceIntent

pytestmark = pytest.mark.browser

OWNER = "owner@demo.ispops.local"
TECH = "tech@demo.ispops.local"
PLAN = "E2E Fibre 20M"


@pytest.fixture(scope="module")
def demo_plan(django_db_setup, django_db_blocker):
    """A plan in the demo ISP, committed, so the live server's threads can see it; and
    the equipment the test installs, received into the demo's store (the demo keeps an
    inventory, so allocated serials must be in it)."""
    from inventory import services as inventory
    from inventory.models import EquipmentModel, Item, Store

    with django_db_blocker.unblock():
        isp = Isp.objects.get(schema_name="demo")
        with tenant_context(isp):
            plan, _ = Plan.objects.get_or_create(
                name=PLAN,
                defaults={"price": "2999.00", "download_kbps": 20_000, "upload_kbps": 20_000},
            )
            store, model = Store.objects.order_by("id").first(), EquipmentModel.objects.first()
            for serial in ("ONU-E2E-1", "RTR-E2E-2"):
                if store and not Item.objects.filter(serial=serial).exists():
                    inventory.receive_item(actor="test", model=model, store=store, serial=serial)
        connection.set_schema_to_public()
    return plan


def log_in(page, base, email, path):
    """Open `path`, log in on the page it redirects to, and land back on `path`."""
    page.goto(f"{base}{path}")
    assert "/login/" in page.url
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}{path}")


def field(page, label):
    """The form field labelled `label` (Django adds a colon to labels)."""
    return page.get_by_label(re.compile(rf"^{re.escape(label)}:?$"))


def assert_fits_the_phone(page):
    assert page.evaluate("document.documentElement.scrollWidth") <= 360


def test_a_lead_goes_from_first_call_to_confirmed_service(
    desktop, phone, live_server_url, demo_plan
):
    base = f"http://demo.localhost:{live_server_url}"
    name = f"E2E Customer {uuid.uuid4().hex[:8]}"
    today = timezone.localdate().isoformat()

    # --- the office records the lead and takes it to Equipment allocated -------------
    office = desktop
    log_in(office, base, OWNER, "/pipeline/new/")
    field(office, "Name").fill(name)
    field(office, "Phone").fill("0712 345 678")
    field(office, "Address").fill("Plot 12, Kamakis, Ruiru")
    field(office, "Latitude").fill("-1.150000")
    field(office, "Longitude").fill("36.960000")
    field(office, "Plan").select_option(label=PLAN)
    field(office, "Branch").select_option(label="Nairobi West")
    field(office, "Source").fill("Walk-in")
    office.get_by_role("button", name="Record the lead").click()
    office.wait_for_url(re.compile(r"/pipeline/\d+/$"))
    lead_url = office.url
    stage = office.get_by_test_id("stage")
    expect(stage).to_have_text("Lead")

    field(office, "Survey notes").fill("Roof mount, 25 m cable, line of sight to mast")
    office.get_by_role("button", name="Record the survey").click()
    expect(stage).to_have_text("Site survey")

    field(office, "Quote amount (KES)").fill("3500")
    office.get_by_role("button", name="Quotation approved").click()
    expect(stage).to_have_text("Quotation approved")

    field(office, "Technician").select_option(label="Peter Kamau")
    field(office, "Date").fill(today)
    office.get_by_role("button", name="Schedule", exact=True).click()
    expect(stage).to_have_text("Installation scheduled")

    field(office, "Serial numbers").fill("ONU-E2E-1\nRTR-E2E-2")
    office.get_by_role("button", name="Equipment allocated").click()
    expect(stage).to_have_text("Equipment allocated")
    expect(office.get_by_text("ONU-E2E-1, RTR-E2E-2")).to_be_visible()

    # --- the technician does the job from a phone -------------------------------------
    log_in(phone, base, TECH, "/jobs/")
    today_jobs = phone.get_by_role("region", name="Today")
    card = today_jobs.locator("article", has_text=name)
    expect(card).to_be_visible()
    expect(card.get_by_role("link", name="Directions")).to_have_attribute(
        "href", re.compile(r"google\.com/maps/dir/.*destination=-1\.150000,36\.960000")
    )
    expect(card.get_by_role("link", name=re.compile(r"^Call"))).to_have_attribute(
        "href", "tel:+254712345678"
    )
    assert_fits_the_phone(phone)

    card.get_by_role("link", name=name).click()
    phone.wait_for_url(re.compile(r"/jobs/\d+/$"))
    expect(phone.get_by_text("Roof mount, 25 m cable")).to_be_visible()
    expect(phone.get_by_text("RTR-E2E-2")).to_be_visible()
    assert_fits_the_phone(phone)

    phone.get_by_role("button", name="Start", exact=True).click()
    expect(phone.get_by_text("Job started.")).to_be_visible()
    expect(phone.get_by_role("button", name="Start", exact=True)).to_have_count(0)
    field(phone, "What was done").fill("Mounted on the roof, signal -61 dBm")
    phone.get_by_role("button", name="Complete", exact=True).click()
    phone.wait_for_url(f"{base}/jobs/")
    expect(phone.get_by_role("region", name="Done today").get_by_text(name)).to_be_visible()
    assert_fits_the_phone(phone)

    # --- the office sees it installed, activates it, the customer confirms ----------------
    office.goto(f"{base}/pipeline/")
    installed = office.locator("section[data-stage=installed]")
    expect(installed.get_by_role("link", name=name)).to_be_visible()

    office.goto(lead_url)
    expect(stage).to_have_text("Installed")
    expect(office.get_by_text("Mounted on the roof, signal -61 dBm").first).to_be_visible()
    office.get_by_role("button", name="Activate service").click()
    expect(stage).to_have_text("Activated")

    field(office, "What the customer said").fill("Streaming works")
    office.get_by_role("button", name="Customer confirmed").click()
    expect(stage).to_have_text("Customer confirmed")
    intents = office.get_by_role("region", name="Billing and network")
    expect(intents).to_contain_text("Billing")
    expect(intents).to_contain_text("Router")

    # Activation asked billing and the router once each (the live server committed it).
    with tenant_context(Isp.objects.get(schema_name="demo")):
        kinds = sorted(
            ServiceIntent.objects.filter(service_account__customer__name=name).values_list(
                "kind", flat=True
            )
        )
        jobs = list(
            RouterJob.objects.filter(service_account__customer__name=name).values_list(
                "action", flat=True
            )
        )
        served = ServiceAccount.objects.get(customer__name=name).router_id is not None
    assert kinds == []  # billing acted in the activation's transaction: nothing pending
    # With a router serving the lead's site or branch, activation asked it once.
    assert jobs == (["provision"] if served else [])
