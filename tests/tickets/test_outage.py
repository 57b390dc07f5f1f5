"""Outage tickets: a site's outage reaches exactly the customers served from it and the
sites below it; closing the parent closes the children and tells those customers."""

from django_tenants.utils import tenant_context

from ispops.messaging.models import Message
from ispops.staff.models import Branch
from subscribers.models import NetworkSite
from tickets import services
from tickets.models import Ticket, TicketEvent


def _tree():
    pop = NetworkSite.objects.create(name="OT POP", kind="pop")
    tower = NetworkSite.objects.create(name="OT Tower", kind="tower", parent=pop)
    sector = NetworkSite.objects.create(name="OT Sector", kind="sector", parent=tower)
    sibling = NetworkSite.objects.create(name="OT Other Tower", kind="tower", parent=pop)
    return pop, tower, sector, sibling


def test_outage_reaches_exactly_the_customers_under_the_site(alpha, in_alpha, make_customer):
    pop, tower, sector, sibling = _tree()
    at_tower = make_customer(name="At Tower", site=tower)
    at_sector = make_customer(name="At Sector", site=sector)
    via_account = make_customer(name="Account At Sector", account_site=sector)
    make_customer(name="At Sibling", site=sibling)
    make_customer(name="At Pop", site=pop)
    make_customer(name="Nowhere")
    make_customer(name="Lead At Tower", site=tower, status="lead")

    outage = services.open_outage(tower, subject="Fibre cut on Tower", actor=alpha.support)

    children = Ticket.objects.filter(parent=outage.parent)
    reached = set(children.values_list("customer__name", flat=True))
    assert reached == {at_tower.name, at_sector.name, via_account.name}
    assert outage.children == 3
    assert outage.parent.customer is None and outage.parent.site == tower
    told = Message.objects.filter(template_key="outage_opened")
    assert set(told.values_list("customer__name", flat=True)) == reached
    assert "OT Tower" in told.first().body
    assert TicketEvent.objects.filter(ticket__in=children, kind="created").count() == 3


def test_closing_the_parent_closes_the_children_and_tells_their_customers(
    alpha, in_alpha, make_customer
):
    _pop, tower, sector, _sibling = _tree()
    a = make_customer(name="Child A", site=sector)
    b = make_customer(name="Child B", site=tower)
    outage = services.open_outage(tower, subject="Power at Tower", actor=alpha.support)
    # one child was already sorted out on its own
    early = Ticket.objects.get(parent=outage.parent, customer=b)
    services.change_status(early, "resolved", actor=alpha.support)
    before = Message.objects.filter(template_key="outage_resolved").count()

    services.change_status(outage.parent, "closed", actor=alpha.support)

    statuses = set(Ticket.objects.filter(parent=outage.parent).values_list("status", flat=True))
    assert statuses == {"closed"}
    resolved = Message.objects.filter(template_key="outage_resolved")
    # only the customer whose ticket was still open is told the outage is over
    assert resolved.count() - before == 1
    assert resolved.get().customer == a
    child = Ticket.objects.get(parent=outage.parent, customer=a)
    assert child.events.filter(kind="status", to_value="Closed").exists()


def test_outage_page_opens_it_and_branch_limited_staff_see_only_their_sites(alpha, make_customer):
    with tenant_context(alpha.isp):
        mine = Branch.objects.create(name="OT Mine", code="ot-mine")
        other = Branch.objects.create(name="OT Other", code="ot-other")
        site = NetworkSite.objects.create(name="OT Branch Site", kind="tower", branch=other)
        make_customer(name="OT Far", site=site, branch=other)
    alpha.support.branches.set([mine])
    try:
        client = alpha.client(alpha.support)
        response = client.post(
            "/tickets/outage/", {"site": site.pk, "subject": "x", "priority": "high"}
        )
        assert response.status_code == 400  # not one of their sites
        with tenant_context(alpha.isp):
            assert not Ticket.objects.filter(is_outage=True, site=site).exists()
        ok = alpha.client(alpha.owner).post(
            "/tickets/outage/", {"site": site.pk, "subject": "Tower down", "priority": "high"}
        )
        assert ok.status_code == 302
        with tenant_context(alpha.isp):
            parent = Ticket.objects.get(is_outage=True, site=site)
        assert client.get(f"/tickets/{parent.pk}/").status_code == 404
        assert alpha.client(alpha.technician).post("/tickets/outage/", {}).status_code == 403
    finally:
        with tenant_context(alpha.isp):
            alpha.support.branches.clear()


def test_an_outage_escalates_once_not_once_per_customer(alpha, in_alpha, make_customer):
    import time_machine
    from django.utils import timezone

    _pop, tower, _sector, _sibling = _tree()
    for n in range(3):
        make_customer(name=f"Outage Payer {n}", site=tower)
    outage = services.open_outage(tower, subject="Mast down", actor=alpha.support)
    later = timezone.now() + timezone.timedelta(days=3)  # every target long missed
    with time_machine.travel(later, tick=False):
        done = services.check_slas()
    assert done["escalated"] == 1  # the parent only; the children were answered by SMS
    outage.parent.refresh_from_db()
    assert outage.parent.escalated_at is not None
    assert not Ticket.objects.filter(parent=outage.parent, escalated_at__isnull=False).exists()
