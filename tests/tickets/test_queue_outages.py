"""The queue shows an outage as one line with how many customers it holds (their own
tickets on request), and a ticket's status select starts at the status it has."""

import re

from django_tenants.utils import tenant_context

from subscribers.models import NetworkSite
from tickets import services


def _outage(alpha, make_customer, customers=3):
    with tenant_context(alpha.isp):
        tower = NetworkSite.objects.create(name="QO Tower", kind="tower")
        for n in range(customers):
            make_customer(name=f"QO Customer {n}", site=tower)
        return services.open_outage(tower, subject="QO fibre cut", actor=alpha.support)


def test_queue_shows_the_outage_once_with_its_customer_count(alpha, make_customer):
    outage = _outage(alpha, make_customer)
    page = alpha.client(alpha.support).get("/tickets/").content.decode()
    assert page.count("QO fibre cut") == 1
    assert "QO Customer" not in page
    assert "3 customers" in page
    assert outage.parent.number in page


def test_the_outages_filter_shows_each_customers_ticket(alpha, make_customer):
    _outage(alpha, make_customer)
    client = alpha.client(alpha.support)
    page = client.get("/tickets/", {"outages": "each"}).content.decode()
    assert page.count("QO fibre cut") == 4  # the outage and its three customers
    assert "QO Customer 0" in page and "QO Customer 2" in page
    # Searching by a customer's name finds their outage ticket without the filter.
    found = client.get("/tickets/", {"q": "QO Customer 1"}).content.decode()
    assert "QO Customer 1" in found


def test_an_assigned_tickets_status_select_shows_assigned(alpha, make_ticket):
    with tenant_context(alpha.isp):
        ticket = make_ticket(subject="QO assigned one")
        services.assign(ticket, alpha.technician, actor=alpha.support)
        ticket.refresh_from_db()
        assert ticket.status == "assigned"
    page = alpha.client(alpha.support).get(f"/tickets/{ticket.pk}/").content.decode()
    select = re.search(r'<select name="to"[^>]*>(.*?)</select>', page, re.S).group(1)
    selected = re.findall(r'<option value="(\w+)"[^>]*selected', select)
    assert selected == ["assigned"]
    assert select.index('value="assigned"') < select.index('value="new"')
    # Its history names people, not their emails.
    assert f"<strong>{alpha.support}</strong> · Assigned" in page


def test_choosing_the_status_it_already_has_is_a_clear_error(alpha, make_ticket):
    with tenant_context(alpha.isp):
        ticket = make_ticket(subject="QO same status")
    response = alpha.client(alpha.support).post(f"/tickets/{ticket.pk}/status/", {"to": "new"})
    assert response.status_code == 400
    assert "It is new already" in response.content.decode()
