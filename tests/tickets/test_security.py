"""Security issue 12 in tickets: a NUL byte in the new ticket form is a form error, not
a 500 (finding 9)."""

from django_tenants.utils import tenant_context

from tickets.models import Ticket


def test_new_ticket_with_a_nul_in_the_account_is_a_400_and_opens_nothing(alpha, make_customer):
    with tenant_context(alpha.isp):
        customer = make_customer()
    for account in (customer.account + "\x00", "\x00", "A" * 10_000):
        response = alpha.client(alpha.support).post(
            "/tickets/new/",
            {"account": account, "subject": "nul", "category": "other", "priority": "low"},
        )
        assert response.status_code == 400
    with tenant_context(alpha.isp):
        assert not Ticket.objects.exists()
