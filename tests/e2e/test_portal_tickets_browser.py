"""A subscriber on a 360 px phone signs in by the SMS code (read from the message log),
asks for help with a photo from the phone's camera input, finds the request in their
list, turns off SMS reminders on the settings page, and every page fits the phone (no
sideways scroll)."""

import io
import re
import uuid

import pytest
from django.db import connection
from django_tenants.utils import tenant_context
from PIL import Image
from playwright.sync_api import expect

from ispops.messaging import preferences
from ispops.messaging.models import Message, PhoneCode
from ispops.tenancy.models import Isp
from portal.models import SignInAttempt
from subscribers import services as subscribers
from subscribers.models import Customer
from tests.e2e.portal import assert_fits, sign_in_by_code
from tickets.models import Attachment, Ticket

pytestmark = [pytest.mark.committed, pytest.mark.browser]


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), (200, 40, 40)).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture
def demo_subscriber(django_db_setup, django_db_blocker):
    """A demo customer with a phone no one else has (committed, so the live server sees
    it); removed afterwards with their tickets and messages."""
    tag = uuid.uuid4().hex[:8]
    mobile = f"2547{int(tag, 16) % 100_000_000:08d}"
    with django_db_blocker.unblock():
        isp = Isp.objects.get(schema_name="demo")
        with tenant_context(isp):
            customer = subscribers.create_customer(
                actor="e2e", name=f"Portal Help {tag}", phone="0" + mobile[3:]
            )
        connection.set_schema_to_public()
    yield isp, customer, mobile, tag
    with django_db_blocker.unblock():
        with tenant_context(isp):
            Ticket.objects.filter(customer=customer).delete()
            Message.objects.filter(customer=customer).delete()
            Customer.objects.filter(pk=customer.pk).delete()
            # The sign-in left rows that count against the ISP's per-address daily cap,
            # which every browser test signs in from.
            SignInAttempt.objects.filter(phone=mobile).delete()
            PhoneCode.objects.filter(phone=mobile).delete()
        connection.set_schema_to_public()


def test_a_subscriber_asks_for_help_with_a_photo_on_a_phone(
    phone, live_server_url, demo_subscriber, django_db_blocker, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path  # the live server runs in this process
    isp, customer, mobile, tag = demo_subscriber
    base = f"http://demo.localhost:{live_server_url}"
    with django_db_blocker.unblock():
        sign_in_by_code(phone, base, isp, mobile)
        phone.get_by_role("link", name="Help").click()
        phone.wait_for_url(re.compile(r"/my/tickets/$"))
        assert_fits(phone)
        phone.get_by_role("link", name="Ask for help").click()
        phone.wait_for_url(re.compile(r"/my/tickets/new/$"))
        assert_fits(phone)

        phone.get_by_label("What is it about?").select_option(label="No connection")
        phone.get_by_label("Tell us what happened").fill(f"Red light on the router {tag}")
        photo = phone.locator("input[name=photo]")
        expect(photo).to_have_attribute("accept", "image/*")
        expect(photo).to_have_attribute("capture", "environment")
        photo.set_input_files({"name": "router.jpg", "mimeType": "image/jpeg", "buffer": _jpeg()})
        phone.get_by_role("button", name="Send my request").click()

        phone.wait_for_url(re.compile(r"/my/tickets/\d+/$"))
        expect(phone.get_by_text("is with our team")).to_be_visible()
        expect(phone.get_by_test_id("status")).to_have_text("Received, waiting for our team")
        image = phone.get_by_role("img", name="Your photo 1")
        expect(image).to_be_visible()
        # The photo really loads (served to its owner), and a large one fits the screen.
        assert phone.evaluate("img => img.naturalWidth", image.element_handle()) == 640
        assert_fits(phone)

        phone.get_by_role("link", name="Back to my requests").first.click()
        phone.wait_for_url(re.compile(r"/my/tickets/$"))
        with tenant_context(isp):
            ticket = Ticket.objects.get(customer=customer)
            assert ticket.category == "no_connection"
            assert Attachment.objects.filter(ticket=ticket, uploaded_by__isnull=True).count() == 1
        connection.set_schema_to_public()
        row = phone.locator("li", has_text=ticket.number)
        expect(row).to_be_visible()
        expect(row.get_by_test_id("status")).to_have_text("Received, waiting for our team")
        assert_fits(phone)

        phone.get_by_role("link", name="Settings").click()
        phone.wait_for_url(re.compile(r"/my/settings/$"))
        assert_fits(phone)
        phone.get_by_label("Payment and renewal reminders by SMS").uncheck()
        phone.get_by_role("button", name="Save my choices").click()
        expect(phone.get_by_text("Your choices are saved.")).to_be_visible()
        expect(phone.get_by_label("Payment and renewal reminders by SMS")).not_to_be_checked()
        assert_fits(phone)
        with tenant_context(isp):
            assert not preferences.allows(customer, "reminders", "sms")
        connection.set_schema_to_public()
