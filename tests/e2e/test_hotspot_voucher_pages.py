"""The voucher pages fit a 360 px phone (nothing wider than the screen): staff's
packages, batches, cards and agents, and an agent's own page, on the demo ISP with a
batch and an agent made for the test (committed, removed afterwards)."""

import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from hotspot import agents, vouchers
from hotspot.models import AgentEntry, Package, Voucher, VoucherBatch
from ispops.staff.models import Role, User
from ispops.tenancy.management.commands.seed_demo import DEMO_PASSWORD
from ispops.tenancy.models import Isp
from tests.e2e.test_lead_to_activation import log_in

pytestmark = [pytest.mark.committed, pytest.mark.browser]

OWNER = "owner@demo.ispops.local"
AGENT = "phone-agent@demo.ispops.local"


@pytest.fixture
def demo_cards(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock(), tenant_context(Isp.objects.get(schema_name="demo")):
        agent = User.objects.create_user(
            AGENT, DEMO_PASSWORD, role=Role.AGENT, full_name="Mama Mboga Kiosk Agent"
        )
        package = Package.objects.create(
            name="Phone test 2 hours with a long name",
            price="30",
            validity_minutes=120,
            data_limit_bytes=1_000_000_000,
            download_kbps=3000,
            upload_kbps=1000,
        )
        agents.give_float(agent, "1000", note="M-Pesa RKT12ABC34 float", actor="test")
        batch = vouchers.generate_batch(
            package, 30, agent=agent, commission_percent=10, note="for the phone", actor="test"
        )
        card = batch.vouchers.order_by("id").first()
        vouchers.sell(card, phone="0712345678", actor=agent)
    connection.set_schema_to_public()
    yield batch, agent, card
    with django_db_blocker.unblock(), tenant_context(Isp.objects.get(schema_name="demo")):
        AgentEntry.objects.filter(agent=agent).delete()
        Voucher.objects.filter(batch=batch).delete()
        VoucherBatch.objects.filter(pk=batch.pk).delete()
        package.delete()
        agent.delete()
    connection.set_schema_to_public()


def _too_wide(phone, base, paths) -> dict:
    wide = {}
    for path in paths:
        response = phone.goto(f"{base}{path}")
        assert response.status == 200, path
        width = phone.evaluate("document.documentElement.scrollWidth")
        if width > 360:
            wide[path] = width
    return wide


def test_voucher_pages_fit_a_phone(demo_cards, django_db_blocker, live_server_url, browser):
    batch, agent, card = demo_cards
    base = f"http://demo.localhost:{live_server_url}"
    staff_pages = [
        "/hotspot/batches/",
        "/hotspot/batches/new/",
        f"/hotspot/batches/{batch.pk}/",
        "/hotspot/packages/",
        "/hotspot/packages/new/",
        f"/hotspot/packages/{batch.package_id}/",
        "/hotspot/agents/",
        f"/hotspot/agents/{agent.pk}/",
        f"/hotspot/vouchers/{card.pk}/sms/",
    ]
    agent_pages = ["/hotspot/my/", f"/hotspot/batches/{batch.pk}/"]
    wide = {}
    with django_db_blocker.unblock():  # the live server's threads use the database
        for email, pages in ((OWNER, staff_pages), (AGENT, agent_pages)):
            context = browser.new_context(viewport={"width": 360, "height": 780})
            phone = context.new_page()
            phone.set_default_timeout(15_000)
            log_in(phone, base, email, pages[0])
            wide.update({f"{email} {p}": w for p, w in _too_wide(phone, base, pages).items()})
            context.close()
    assert not wide, f"wider than the phone: {wide}"
