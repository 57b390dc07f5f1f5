"""Ticket pages: the queue and its filters, a ticket's page, a new ticket from the
customer page, the technician's phone page, and the cards on the customer and jobs
pages (with their query cost)."""

import datetime as dt

import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context

from tickets import services
from tickets.models import Ticket


def _numbers(response):
    return {t.number for t in response.context["page"]}


def test_queue_filters_by_status_assignee_and_risk(alpha, make_ticket):
    now = dt.datetime.now(dt.UTC)
    with tenant_context(alpha.isp):
        with time_machine.travel(now - dt.timedelta(hours=30), tick=False):
            late = make_ticket(subject="Late one", priority="normal")
        mine = make_ticket(subject="Mine", assignee=alpha.technician)
        done = make_ticket(subject="Done")
        services.change_status(done, "resolved", actor=alpha.support)
    client = alpha.client(alpha.technician)
    queue = client.get("/tickets/")
    assert queue.status_code == 200
    assert {late.number, mine.number} <= _numbers(queue) and done.number not in _numbers(queue)
    assert _numbers(client.get("/tickets/", {"assignee": "me"})) == {mine.number}
    breached = _numbers(client.get("/tickets/", {"risk": "breached"}))
    assert late.number in breached and mine.number not in breached
    assert done.number in _numbers(client.get("/tickets/", {"status": "resolved"}))
    assert _numbers(client.get("/tickets/", {"q": mine.number})) == {mine.number}
    partial = client.get("/tickets/", {"q": "Late"}, HTTP_HX_REQUEST="true")
    assert "<h1>" not in partial.content.decode() and "Late one" in partial.content.decode()
    assert client.get("/tickets/", {"status": "bogus"}).context["page"].paginator.count == 0


def test_ticket_page_shows_the_history(alpha, make_ticket):
    with tenant_context(alpha.isp):
        ticket = make_ticket(assignee=alpha.technician)
        services.add_comment(ticket, "Checked the cable", actor=alpha.technician)
        services.change_status(ticket, "in_progress", actor=alpha.technician)
    html = alpha.client(alpha.finance).get(f"/tickets/{ticket.pk}/").content.decode()
    for text in ("Checked the cable", "In progress", "Opened", str(alpha.technician), "internal"):
        assert text in html


def test_new_ticket_from_the_customer_page(alpha, make_customer):
    with tenant_context(alpha.isp):
        customer = make_customer(name="From Page")
        account = customer.service_accounts.get()
    client = alpha.client(alpha.support)
    page = client.get(f"/subscribers/{customer.pk}/").content.decode()
    assert f"/tickets/new/?customer={customer.pk}" in page
    form = client.get("/tickets/new/", {"customer": customer.pk})
    assert form.status_code == 200 and customer.account in form.content.decode()
    response = client.post(
        "/tickets/new/",
        {
            "account": customer.account,
            "service_account": account.pk,
            "subject": "Slow in the evenings",
            "category": "slow_speed",
            "priority": "normal",
            "assignee": alpha.technician.pk,
            "tell_customer": "on",
        },
    )
    assert response.status_code == 302
    with tenant_context(alpha.isp):
        ticket = Ticket.objects.get(subject="Slow in the evenings")
        assert (ticket.customer, ticket.service_account, ticket.status) == (
            customer,
            account,
            "assigned",
        )
        assert ticket.created_by == alpha.support
    page = client.get(f"/subscribers/{customer.pk}/").content.decode()
    assert "Slow in the evenings" in page


def test_new_ticket_refuses_an_unknown_account_and_changes_nothing(alpha):
    response = alpha.client(alpha.support).post(
        "/tickets/new/",
        {"account": "NOPE99", "subject": "x", "category": "other", "priority": "low"},
    )
    assert response.status_code == 400
    with tenant_context(alpha.isp):
        assert not Ticket.objects.filter(subject="x").exists()


def test_customer_tickets_card_costs_one_query(alpha, make_customer, make_ticket):
    from django.template import Context, Template

    with tenant_context(alpha.isp):
        customer = make_customer()
        for i in range(5):
            make_ticket(customer=customer, subject=f"Q{i}", assignee=alpha.technician)
        template = Template('{% include "tickets/_customer_tickets.html" %}')
        with CaptureQueriesContext(connection) as queries:
            html = template.render(Context({"customer": customer}))
    assert len(queries) == 1
    assert "Q4" in html


def test_technician_phone_page_and_jobs_page_list_their_open_tickets(alpha, make_ticket):
    with tenant_context(alpha.isp):
        mine = make_ticket(subject="Fix my dish", assignee=alpha.technician)
        make_ticket(subject="Someone else's", assignee=alpha.support)
    client = alpha.client(alpha.technician)
    for url in ("/tickets/mine/", "/jobs/"):
        html = client.get(url).content.decode()
        assert "Fix my dish" in html and "Someone else" not in html, url
        assert f"/tickets/{mine.pk}/" in html
