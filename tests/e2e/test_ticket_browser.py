"""A technician on a 360 px phone opens a ticket assigned to them, adds a note and a
photo from the phone's camera input, and resolves it; the customer is told by SMS
(a row in the message log)."""

import io
import re
import uuid

import pytest
from django.db import connection
from django_tenants.utils import tenant_context
from PIL import Image
from playwright.sync_api import expect

from ispops.messaging.models import Message
from ispops.staff.models import Branch, User
from ispops.tenancy.models import Isp
from subscribers import services as subscribers
from tickets import services
from tickets.models import Attachment, Ticket

from .test_lead_to_activation import TECH, assert_fits_the_phone, field, log_in

pytestmark = [pytest.mark.committed, pytest.mark.browser]


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), (20, 120, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def assigned_ticket(django_db_setup, django_db_blocker):
    """A demo customer in the technician's branch with a ticket assigned to them,
    committed so the live server sees it (unique names: committed rows stay)."""
    tag = uuid.uuid4().hex[:8]
    with django_db_blocker.unblock():
        isp = Isp.objects.get(schema_name="demo")
        with tenant_context(isp):
            tech = User.objects.get(email=TECH)
            customer = subscribers.create_customer(
                actor="e2e",
                name=f"Ticket Customer {tag}",
                phone=f"0722{int(tag, 16) % 1_000_000:06d}",
                branch=Branch.objects.get(code="nrb-west"),
                address="House 4, Kabiria Road",
            )
            ticket = services.open_ticket(
                customer=customer,
                subject=f"No signal {tag}",
                category="no_connection",
                priority="high",
                assignee=tech,
                actor="e2e",
                tell_customer=False,
            )
        connection.set_schema_to_public()
    return isp, ticket


def test_technician_adds_a_note_and_photo_and_resolves_from_a_phone(
    phone, live_server_url, assigned_ticket, django_db_blocker, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path  # the live server runs in this process
    isp, ticket = assigned_ticket
    base = f"http://demo.localhost:{live_server_url}"
    # The live server's threads and this one read and write committed rows.
    with django_db_blocker.unblock():
        _walk_through(phone, base, isp, ticket)


def _walk_through(phone, base, isp, ticket):
    log_in(phone, base, TECH, "/tickets/mine/")
    card = phone.locator("article", has_text=ticket.subject)
    expect(card).to_be_visible()
    assert_fits_the_phone(phone)
    card.get_by_role("link", name=re.compile(re.escape(ticket.subject))).click()
    phone.wait_for_url(f"{base}/tickets/{ticket.pk}/")
    assert_fits_the_phone(phone)

    field(phone, "Comment").fill("Realigned the dish, signal -58 dBm")
    phone.get_by_role("button", name="Add comment").click()
    expect(phone.get_by_text("Note added.")).to_be_visible()

    photo = phone.locator("input[name=photo]")
    expect(photo).to_have_attribute("accept", "image/*")
    expect(photo).to_have_attribute("capture", "environment")
    photo.set_input_files({"name": "dish.png", "mimeType": "image/png", "buffer": _png()})
    phone.get_by_role("button", name="Upload photo").click()
    expect(phone.get_by_text("Photo added.")).to_be_visible()
    expect(phone.get_by_role("img", name="Photo 1")).to_be_visible()

    field(phone, "New status").select_option(label="Resolved")
    phone.get_by_role("button", name="Change status").click()
    expect(phone.get_by_test_id("status")).to_have_text("Resolved")
    expect(phone.get_by_text("Realigned the dish, signal -58 dBm")).to_be_visible()
    assert_fits_the_phone(phone)

    with tenant_context(isp):
        ticket = Ticket.objects.get(pk=ticket.pk)
        assert ticket.status == "resolved"
        assert Attachment.objects.filter(ticket=ticket).count() == 1
        kinds = list(ticket.events.values_list("kind", flat=True))
        assert kinds[-3:] == ["comment", "attachment", "status"]
        told = Message.objects.filter(customer=ticket.customer, template_key="ticket_resolved")
        assert told.count() == 1
        assert ticket.number in told.get().body
    connection.set_schema_to_public()
