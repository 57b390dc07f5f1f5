"""Comments: internal ones stay on the ticket; ones sent to the customer go through the
messaging log (and count as the first response). Resolving tells the customer."""

from django_tenants.utils import tenant_context

from ispops.messaging.models import Message


def _messages(ticket):
    return Message.objects.filter(related=f"ticket:{ticket.pk}", customer=ticket.customer)


def test_a_comment_sent_to_the_customer_creates_a_message(alpha, make_customer, make_ticket):
    with tenant_context(alpha.isp):
        ticket = make_ticket(customer=make_customer(email="wk@example.com"))
    response = alpha.client(alpha.support).post(
        f"/tickets/{ticket.pk}/comment/",
        {"body": "A technician visits you at 2 pm.", "send": "sms,email"},
    )
    assert response.status_code == 302
    with tenant_context(alpha.isp):
        sent = _messages(ticket)
        assert sorted(sent.values_list("channel", flat=True)) == ["email", "sms"]
        sms = sent.get(channel="sms")
        assert "A technician visits you at 2 pm." in sms.body and ticket.number in sms.body
        assert sms.to == ticket.customer.phone.replace("07", "2547", 1)
        event = ticket.events.get(kind="comment")
        assert not event.internal and event.sent_by == "sms,email"
        ticket.refresh_from_db()
        assert ticket.first_response_at is not None


def test_an_internal_comment_creates_no_message(alpha, make_ticket):
    with tenant_context(alpha.isp):
        ticket = make_ticket()
    response = alpha.client(alpha.technician).post(
        f"/tickets/{ticket.pk}/comment/", {"body": "Customer's router looks burnt", "send": ""}
    )
    assert response.status_code == 302
    with tenant_context(alpha.isp):
        assert not Message.objects.filter(related=f"ticket:{ticket.pk}").exists()
        event = ticket.events.get(kind="comment")
        assert event.internal and event.actor == alpha.technician
        ticket.refresh_from_db()
        assert ticket.first_response_at is None  # a note to colleagues is not a response


def test_an_empty_comment_is_refused(alpha, make_ticket):
    with tenant_context(alpha.isp):
        ticket = make_ticket()
    response = alpha.client(alpha.support).post(
        f"/tickets/{ticket.pk}/comment/", {"body": "  ", "send": "sms"}
    )
    assert response.status_code == 400
    with tenant_context(alpha.isp):
        assert not ticket.events.filter(kind="comment").exists()
        assert not Message.objects.filter(related=f"ticket:{ticket.pk}").exists()


def test_opening_with_tell_customer_and_resolving_each_send_one_sms(in_alpha, alpha, make_ticket):
    from tickets import services

    ticket = make_ticket(tell_customer=True)
    assert list(_messages(ticket).values_list("template_key", flat=True)) == ["ticket_opened"]
    services.change_status(ticket, "resolved", actor=alpha.support)
    services.change_status(ticket, "closed", actor=alpha.support)
    keys = sorted(_messages(ticket).values_list("template_key", flat=True))
    assert keys == ["ticket_opened", "ticket_resolved"]  # closing after resolving: no repeat
