"""The payments, tickets and inventory pages staff open on a phone fit a 360 px screen
(nothing wider than the viewport), with the demo ISP's data on them."""

import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from ispops.tenancy.models import Isp
from tests.e2e.test_lead_to_activation import log_in

pytestmark = [pytest.mark.committed, pytest.mark.browser]

PAGES = [
    "/payments/",
    "/payments/unmatched/",
    "/payments/stk/",
    "/payments/reconcile/",
    "/payments/settings/",
    "/tickets/",
    "/tickets/new/",
    "/tickets/outage/",
    "/inventory/",
    "/inventory/stock/",
]


def test_payments_tickets_and_inventory_pages_fit_a_phone(
    django_db_setup, django_db_blocker, live_server_url, phone
):
    from payments.models import Payment
    from tickets.models import Ticket

    with django_db_blocker.unblock(), tenant_context(Isp.objects.get(schema_name="demo")):
        # Detail pages too: one payment, one ticket of the demo.
        pages = [*PAGES, f"/payments/{Payment.objects.first().pk}/"]
        pages.append(f"/tickets/{Ticket.objects.filter(is_outage=False).first().pk}/")
    connection.set_schema_to_public()
    base = f"http://demo.localhost:{live_server_url}"
    too_wide = {}
    with django_db_blocker.unblock():  # the live server's threads use the database
        log_in(phone, base, "owner@demo.ispops.local", pages[0])
        for path in pages:
            response = phone.goto(f"{base}{path}")
            assert response.status == 200, path
            width = phone.evaluate("document.documentElement.scrollWidth")
            if width > 360:
                too_wide[path] = width
    assert not too_wide, f"wider than the phone: {too_wide}"
