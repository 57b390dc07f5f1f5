"""Portal tickets: a subscriber opens a request with a phone photo, follows it (status in
plain words, only the replies meant for them), replies (the assignee is told, the staff
page shows it as the customer's, a resolved ticket reopens); never another customer's
ticket or photo; staff viewing as the customer cannot change anything."""

import io
from datetime import timedelta

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from django_tenants.utils import tenant_context
from PIL import Image

from ispops.messaging.models import Message
from portal.tickets import OPENS_PER_DAY
from subscribers import services as subscribers
from tests.portal.conftest import sign_in
from tickets import services
from tickets.models import Attachment, Status, Ticket

PHONE = "254712345601"


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def png(name="router.png") -> SimpleUploadedFile:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), (20, 120, 200)).save(buffer, format="PNG")
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="image/png")


@pytest.fixture
def subscriber(alpha, make_customer):
    """(customer, signed-in portal client)."""
    customer = make_customer("0712345601", name="Akinyi Otieno")
    client = alpha.client()
    sign_in(alpha, client, PHONE)
    return customer, client


def staff_ticket(customer, **fields):
    fields.setdefault("subject", "No internet since morning")
    return services.open_ticket(customer=customer, actor="test", tell_customer=False, **fields)


def test_a_subscriber_opens_a_request_with_a_photo_and_sees_it(alpha, subscriber, media):
    customer, client = subscriber
    assert client.get("/my/tickets/new/").status_code == 200
    response = client.post(
        "/my/tickets/new/",
        {"category": "no_connection", "description": "Red light on the router", "photo": png()},
    )
    assert response.status_code == 302
    with tenant_context(alpha.isp):
        ticket = Ticket.objects.get(customer=customer)
        assert ticket.category == "no_connection" and ticket.status == Status.NEW
        assert ticket.subject == "No connection: Red light on the router"
        assert ticket.created_by is None
        assert ticket.service_account == customer.service_accounts.get()
        photo = Attachment.objects.get(ticket=ticket)
        assert photo.uploaded_by is None
        created = ticket.events.get(kind="created")
        assert created.actor_label == f"Akinyi Otieno (customer {customer.account})"
        # The usual "we have received your request" SMS.
        assert Message.objects.filter(customer=customer, template_key="ticket_opened").exists()
    assert response["Location"] == f"/my/tickets/{ticket.pk}/"

    page = client.get(response["Location"]).content.decode()
    assert ticket.number in page and "Red light on the router" in page
    assert "Received, waiting for our team" in page
    assert f"/my/tickets/photos/{photo.pk}/" in page
    served = client.get(f"/my/tickets/photos/{photo.pk}/")
    assert served.status_code == 200 and served["Content-Type"] == "image/png"
    assert served["X-Content-Type-Options"] == "nosniff"

    listing = client.get("/my/tickets/").content.decode()
    assert ticket.number in listing and "Received, waiting for our team" in listing
    # The staff queue has it, from the customer.
    staff_page = alpha.client(alpha.support).get(f"/tickets/{ticket.pk}/").content.decode()
    assert "Akinyi Otieno (customer" in staff_page


def test_the_list_is_the_customers_own_newest_first_and_paginated(alpha, subscriber, make_customer):
    customer, client = subscriber
    with tenant_context(alpha.isp):
        other = staff_ticket(make_customer("0722000002", name="Stranger Person"))
        mine = [staff_ticket(customer, subject=f"Request {n}") for n in range(12)]
    first = client.get("/my/tickets/").content.decode()
    assert mine[-1].number in first and mine[2].number in first
    assert mine[1].number not in first and other.number not in first
    second = client.get("/my/tickets/?page=2").content.decode()
    assert mine[0].number in second and mine[1].number in second
    assert client.get("/my/tickets/?page=x").status_code == 200


def test_the_ticket_page_shows_replies_for_the_customer_not_internal_notes(
    alpha, subscriber, media
):
    customer, client = subscriber
    with tenant_context(alpha.isp):
        ticket = staff_ticket(customer, description="Staff-only: customer called twice, rude")
        services.add_comment(ticket, "Checked the OLT port", actor=alpha.technician)
        services.add_comment(
            ticket, "A technician comes tomorrow", actor=alpha.technician, channels=["sms"]
        )
        services.change_status(
            ticket, "in_progress", actor=alpha.technician, note="Internal: ladder needed"
        )
        staff_photo = services.add_attachment(ticket, png("pole.png"), actor=alpha.technician)
    page = client.get(f"/my/tickets/{ticket.pk}/").content.decode()
    assert "A technician comes tomorrow" in page
    assert "Being worked on" in page
    for hidden in ("OLT port", "ladder", "rude", alpha.technician.email, "pole"):
        assert hidden not in page
    # A staff photo is not the customer's to see.
    assert client.get(f"/my/tickets/photos/{staff_photo.pk}/").status_code == 404


def test_a_reply_reaches_the_assignee_and_shows_as_the_customers(alpha, subscriber):
    customer, client = subscriber
    with tenant_context(alpha.isp):
        ticket = staff_ticket(customer, assignee=alpha.technician)
    response = client.post(f"/my/tickets/{ticket.pk}/reply/", {"body": "Still no light"})
    assert response.status_code == 302
    with tenant_context(alpha.isp):
        event = ticket.events.get(kind="comment")
        assert not event.internal and event.sent_by == "portal" and event.actor is None
        told = Message.objects.get(
            template_key="ticket_staff",
            to=alpha.technician.email,
            subject__contains="the customer replied",
        )
        assert "Still no light" in told.body
        assert Ticket.objects.get(pk=ticket.pk).status == Status.ASSIGNED
    page = client.get(f"/my/tickets/{ticket.pk}/").content.decode()
    assert "Still no light" in page and "You" in page
    staff_page = alpha.client(alpha.technician).get(f"/tickets/{ticket.pk}/").content.decode()
    assert "Still no light" in staff_page
    assert f"Akinyi Otieno (customer {customer.account})" in staff_page


def test_a_reply_reopens_a_resolved_ticket_and_wakes_a_waiting_one(alpha, subscriber):
    customer, client = subscriber
    with tenant_context(alpha.isp):
        ticket = staff_ticket(customer, assignee=alpha.technician)
        services.change_status(ticket, "resolved", actor=alpha.technician)
    page = client.get(f"/my/tickets/{ticket.pk}/").content.decode()
    assert "Resolved" in page
    response = client.post(f"/my/tickets/{ticket.pk}/reply/", {"body": "It is down again"})
    assert response.status_code == 302
    assert "open again" in client.get(response["Location"]).content.decode()
    with tenant_context(alpha.isp):
        ticket.refresh_from_db()
        assert ticket.status == Status.ASSIGNED and ticket.resolved_at is None
        assert ticket.events.filter(kind="status", to_value="Assigned").exists()
        services.change_status(ticket, "waiting", actor=alpha.technician)
    client.post(f"/my/tickets/{ticket.pk}/reply/", {"body": "I am home now"})
    with tenant_context(alpha.isp):
        ticket.refresh_from_db()
        assert ticket.status == Status.IN_PROGRESS and ticket.paused_at is None


def test_a_closed_ticket_takes_no_reply(alpha, subscriber):
    customer, client = subscriber
    with tenant_context(alpha.isp):
        ticket = staff_ticket(customer, assignee=alpha.technician)
        services.change_status(ticket, "closed", actor=alpha.technician)
    response = client.post(f"/my/tickets/{ticket.pk}/reply/", {"body": "Hello?"})
    assert response.status_code == 400
    assert "closed" in response.content.decode()
    with tenant_context(alpha.isp):
        assert not ticket.events.filter(kind="comment").exists()


def test_bad_input_is_a_form_error_and_nothing_changes(alpha, subscriber, media):
    customer, client = subscriber
    fake = SimpleUploadedFile("photo.png", b"<html>not a photo</html>", content_type="image/png")
    cases = [
        {"category": "no_connection", "description": "", "photo": ""},
        {"category": "not-a-category", "description": "Help"},
        {"category": "billing", "description": "x" * 2001},
        {"category": "billing", "description": "Nul \x00 byte"},
        {"category": "billing", "description": "With a fake photo", "photo": fake},
    ]
    for data in cases:
        response = client.post("/my/tickets/new/", data)
        assert response.status_code == 400, data
        assert 'class="errorlist' in response.content.decode()
    with tenant_context(alpha.isp):
        ticket = staff_ticket(customer)
    assert client.post(f"/my/tickets/{ticket.pk}/reply/", {"body": "  "}).status_code == 400
    with tenant_context(alpha.isp):
        assert Ticket.objects.filter(customer=customer).count() == 1
        assert not ticket.events.filter(kind="comment").exists()
        assert not Attachment.objects.exists()
    assert not list(media.rglob("*.*"))


def test_another_customers_ticket_and_photo_are_404(alpha, beta, subscriber, make_customer, media):
    _customer, client = subscriber
    with tenant_context(alpha.isp):
        other = staff_ticket(make_customer("0722000002", name="Stranger Person"))
        photo = services.add_attachment(other, png(), actor="Stranger Person (customer)")
    for path in (
        f"/my/tickets/{other.pk}/",
        f"/my/tickets/photos/{photo.pk}/",
        "/my/tickets/999999/",
    ):
        assert client.get(path).status_code == 404, path
    response = client.post(f"/my/tickets/{other.pk}/reply/", {"body": "Mine now"})
    assert response.status_code == 404
    with tenant_context(alpha.isp):
        assert not other.events.filter(kind="comment").exists()
    # A subscriber of another ISP with the same phone, signed in there, finds nothing
    # of alpha's under the same ids.
    with tenant_context(beta.isp):
        subscribers.create_customer(actor="test", name="Beta Person", phone="0712345601")
    foreign = beta.client()
    sign_in(beta, foreign, PHONE)
    for path in (f"/my/tickets/{other.pk}/", f"/my/tickets/photos/{photo.pk}/"):
        assert foreign.get(path).status_code == 404, path
    assert "Stranger Person" not in foreign.get("/my/tickets/").content.decode()


def test_signed_out_visitors_are_sent_to_sign_in(alpha, make_customer):
    client = alpha.client()
    for path in ("/my/tickets/", "/my/tickets/new/"):
        response = client.get(path)
        assert response.status_code in (302, 403)


def test_staff_viewing_as_the_customer_can_read_but_not_write(alpha, make_customer, media):
    customer = make_customer("0712345601", name="Akinyi Otieno")
    with tenant_context(alpha.isp):
        ticket = staff_ticket(customer)
    staff = alpha.client(alpha.support)
    assert staff.post(f"/my/as/{customer.pk}/").status_code == 302
    assert ticket.number in staff.get("/my/tickets/").content.decode()
    assert staff.get(f"/my/tickets/{ticket.pk}/").status_code == 200
    new = staff.post("/my/tickets/new/", {"category": "billing", "description": "By staff"})
    reply = staff.post(f"/my/tickets/{ticket.pk}/reply/", {"body": "By staff"})
    assert new.status_code == reply.status_code == 403
    with tenant_context(alpha.isp):
        assert Ticket.objects.filter(customer=customer).count() == 1
        assert not ticket.events.filter(kind="comment").exists()


def test_the_pages_keep_to_a_few_queries(alpha, subscriber, django_assert_max_num_queries):
    customer, client = subscriber
    with tenant_context(alpha.isp):
        tickets = [staff_ticket(customer, subject=f"Request {n}") for n in range(10)]
        for ticket in tickets[:3]:
            services.add_comment(ticket, "On it", actor=alpha.technician, channels=["sms"])
    with django_assert_max_num_queries(10):
        assert client.get("/my/tickets/").status_code == 200
    with django_assert_max_num_queries(8):
        assert client.get(f"/my/tickets/{tickets[0].pk}/").status_code == 200


def test_opening_is_capped_per_day_and_staff_tickets_do_not_count(alpha, subscriber):
    customer, client = subscriber
    with tenant_context(alpha.isp):
        staff_ticket(customer)  # opened by staff: not the customer's to count
    data = {"category": "billing", "description": "Wrong bill"}
    for _ in range(OPENS_PER_DAY):
        assert client.post("/my/tickets/new/", data).status_code == 302
    refused = client.post("/my/tickets/new/", data)
    assert refused.status_code == 429
    assert "opened several requests today" in refused.content.decode()
    with tenant_context(alpha.isp):
        assert Ticket.objects.filter(customer=customer).count() == OPENS_PER_DAY + 1
    with time_machine.travel(timezone.now() + timedelta(hours=25)):
        assert client.post("/my/tickets/new/", data).status_code == 302
