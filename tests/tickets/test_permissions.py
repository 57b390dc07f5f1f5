"""Who may resolve and close: the assignee, support and managers; a technician cannot
finish a ticket assigned to someone else. Branch-limited staff see only their own
customers' tickets; another ISP sees none."""

import pytest
from django_tenants.utils import tenant_context

from ispops.staff.models import Branch, User
from tickets import services
from tickets.models import Ticket


@pytest.fixture
def other_tech(in_alpha, alpha):
    return User.objects.create_user(
        "tech2@alpha.test", "x-pass-2026-long", role="technician", full_name="Other Tech"
    )


@pytest.mark.parametrize("to", ["closed", "resolved"])
def test_technician_cannot_finish_a_ticket_assigned_to_someone_else(
    alpha, make_ticket, other_tech, to
):
    ticket = make_ticket(assignee=other_tech)
    response = alpha.client(alpha.technician).post(f"/tickets/{ticket.pk}/status/", {"to": to})
    assert response.status_code == 403
    with tenant_context(alpha.isp):
        ticket.refresh_from_db()
        assert ticket.status == "assigned" and ticket.closed_at is None
        assert not ticket.events.filter(kind="status").exists()
        with pytest.raises(services.NotAllowed):
            services.change_status(ticket, to, actor=alpha.technician)


def test_technician_can_close_their_own_ticket(alpha, make_ticket):
    ticket = make_ticket(assignee=alpha.technician)
    response = alpha.client(alpha.technician).post(
        f"/tickets/{ticket.pk}/status/", {"to": "closed", "note": "Replaced the ONT"}
    )
    assert response.status_code == 302
    with tenant_context(alpha.isp):
        ticket.refresh_from_db()
        assert ticket.status == "closed" and ticket.closed_at is not None
        event = ticket.events.get(kind="status")
        assert (event.actor, event.to_value, event.body) == (
            alpha.technician,
            "Closed",
            "Replaced the ONT",
        )


def test_support_may_close_anyones_ticket_and_a_closed_ticket_stays_closed(
    alpha, make_ticket, other_tech
):
    ticket = make_ticket(assignee=other_tech)
    client = alpha.client(alpha.support)
    assert client.post(f"/tickets/{ticket.pk}/status/", {"to": "closed"}).status_code == 302
    again = client.post(f"/tickets/{ticket.pk}/status/", {"to": "in_progress"})
    assert again.status_code == 400
    with tenant_context(alpha.isp):
        ticket.refresh_from_db()
    assert ticket.status == "closed"


def test_technician_may_move_someone_elses_ticket_short_of_finishing_it(
    alpha, make_ticket, other_tech
):
    ticket = make_ticket(assignee=other_tech)
    client = alpha.client(alpha.technician)
    assert client.post(f"/tickets/{ticket.pk}/status/", {"to": "in_progress"}).status_code == 302


def test_only_dispatchers_assign(alpha, make_ticket):
    ticket = make_ticket()
    tech = alpha.client(alpha.technician)
    assert (
        tech.post(f"/tickets/{ticket.pk}/assign/", {"assignee": alpha.technician.pk}).status_code
        == 403
    )
    ok = alpha.client(alpha.support).post(
        f"/tickets/{ticket.pk}/assign/", {"assignee": alpha.technician.pk}
    )
    assert ok.status_code == 302
    with tenant_context(alpha.isp):
        ticket.refresh_from_db()
        assert (ticket.assignee, ticket.status) == (alpha.technician, "assigned")
        assert ticket.events.filter(kind="assigned", to_value=str(alpha.technician)).exists()


def test_branch_limited_staff_see_only_their_branches_tickets(alpha, make_customer, make_ticket):
    with tenant_context(alpha.isp):
        mine = Branch.objects.create(name="TK Mine", code="tk-mine")
        other = Branch.objects.create(name="TK Other", code="tk-other")
        visible = make_ticket(customer=make_customer(name="TK Visible", branch=mine))
        hidden = make_ticket(customer=make_customer(name="TK Hidden", branch=other))
        alpha.support.branches.set([mine])
    try:
        client = alpha.client(alpha.support)
        assert client.get(f"/tickets/{hidden.pk}/").status_code == 404
        assert client.get(f"/tickets/{visible.pk}/").status_code == 200
        assert client.post(f"/tickets/{hidden.pk}/status/", {"to": "closed"}).status_code == 404
        listing = client.get("/tickets/")
        shown = {t.pk for t in listing.context["page"]}
        assert visible.pk in shown and hidden.pk not in shown
    finally:
        with tenant_context(alpha.isp):
            alpha.support.branches.clear()


def test_another_isp_cannot_reach_a_ticket(alpha, beta, make_ticket):
    ticket = make_ticket(subject="Alpha only ticket")
    response = beta.client(beta.owner).get(f"/tickets/{ticket.pk}/")
    assert response.status_code == 404 or "Alpha only ticket" not in response.content.decode()
    with tenant_context(beta.isp):
        assert not Ticket.objects.filter(subject="Alpha only ticket").exists()


def test_a_ticket_cannot_go_to_staff_of_another_branch(in_alpha):
    from ispops.staff.models import Branch, Role, User
    from subscribers import services as subscribers
    from tickets import services as tickets

    home, other = (
        Branch.objects.create(name="Home B", code="hb"),
        Branch.objects.create(name="Other B", code="ob"),
    )
    customer = subscribers.create_customer(
        actor="t", name="Branch Bound", phone="0712000999", branch=home
    )
    outsider = User.objects.create_user("far@alpha.test", "pw-pw-pw-9", role=Role.TECHNICIAN)
    outsider.branches.add(other)
    with pytest.raises(tickets.TicketError, match="other branches"):
        tickets.open_ticket(customer=customer, subject="No link", actor="t", assignee=outsider)
    insider = User.objects.create_user("near@alpha.test", "pw-pw-pw-9", role=Role.TECHNICIAN)
    insider.branches.add(home)
    ticket = tickets.open_ticket(customer=customer, subject="No link", actor="t", assignee=insider)
    assert ticket.assignee == insider
