"""The lead workflow: equipment recorded on an installation is checked against inventory
when allocated, and becomes installed at the service account when installed."""

import pytest
from django.utils import timezone

from inventory.models import Item, Movement
from subscribers import services as subscribers
from subscribers.models import Installation

Stage = Installation.Stage


def scheduled_lead(alpha, plan, name="Otieno Lead"):
    inst = subscribers.create_lead(
        subscribers.LeadDetails(name=name, phone="0722 000 111", plan=plan), actor=alpha.owner
    )
    for to in (Stage.SURVEY, Stage.QUOTED, Stage.SCHEDULED):
        subscribers.advance_installation(
            inst,
            to,
            actor=alpha.owner,
            quote_amount=1000,
            technician=alpha.technician,
            scheduled_for=timezone.localdate(),
        )
    return inst


def test_completing_the_job_installs_the_equipment_at_the_service_account(alpha, plan, receive):
    ont = receive("ONT-LEAD-1")
    router = receive("RTR-LEAD-2")
    from inventory import services

    services.move(router, Movement.Kind.ISSUED, actor="test", holder=alpha.technician)
    inst = scheduled_lead(alpha, plan)
    subscribers.complete_job(
        inst, actor=alpha.technician, notes="Mounted", serials="ont-lead-1\nRTR-LEAD-2"
    )
    inst.refresh_from_db()
    assert inst.stage == Stage.INSTALLED
    for item in (ont, router):
        item.refresh_from_db()
        assert item.state == "installed"
        assert item.service_account == inst.service_account
        last = item.movements.order_by("at", "id").last()
        assert last.kind == "installed" and last.actor == alpha.technician
        assert last.note == f"Installation #{inst.pk}"


def test_unknown_serials_are_refused_with_their_names_and_nothing_changes(alpha, plan, receive):
    receive("KNOWN-1")
    inst = scheduled_lead(alpha, plan)
    with pytest.raises(subscribers.SubscriberError, match="not in inventory: GHOST-9"):
        subscribers.advance_installation(
            inst, Stage.EQUIPPED, actor=alpha.owner, serials=["KNOWN-1", "ghost-9"]
        )
    inst.refresh_from_db()
    assert inst.stage == Stage.SCHEDULED
    assert Item.objects.get(serial="KNOWN-1").state == "in_stock"


def test_equipment_installed_elsewhere_is_refused_at_installation(
    alpha, plan, receive, make_account
):
    item = receive("TAKEN-1")
    inst = scheduled_lead(alpha, plan)
    subscribers.advance_installation(inst, Stage.EQUIPPED, actor=alpha.owner, serials="TAKEN-1")
    # Meanwhile the office installs the same router at another customer.
    from inventory import services

    other = make_account("Someone Else")
    services.move(item, Movement.Kind.INSTALLED, actor="test", service_account=other)
    with pytest.raises(subscribers.SubscriberError, match="TAKEN-1 is installed at Someone Else"):
        subscribers.advance_installation(inst, Stage.INSTALLED, actor=alpha.owner)
    inst.refresh_from_db()
    assert inst.stage == Stage.EQUIPPED
    item.refresh_from_db()
    assert item.service_account == other


def test_equipment_allocated_to_one_lead_cannot_be_allocated_to_another(alpha, plan, receive):
    receive("ONE-ONLY-1")
    first = scheduled_lead(alpha, plan, name="First Lead")
    second = scheduled_lead(alpha, plan, name="Second Lead")
    subscribers.advance_installation(first, Stage.EQUIPPED, actor=alpha.owner, serials="one-only-1")
    with pytest.raises(subscribers.SubscriberError, match=r"another installation.*ONE-ONLY-1"):
        subscribers.advance_installation(
            second, Stage.EQUIPPED, actor=alpha.owner, serials="ONE-ONLY-1"
        )
    second.refresh_from_db()
    assert second.stage == Stage.SCHEDULED
    # Once the first is installed, the item is theirs; the second must pick another.
    subscribers.advance_installation(first, Stage.INSTALLED, actor=alpha.owner)
    assert Item.objects.get(serial="ONE-ONLY-1").service_account == first.service_account


def test_an_isp_without_stores_records_serials_on_the_installation_only(alpha, plan):
    inst = scheduled_lead(alpha, plan)
    subscribers.complete_job(inst, actor=alpha.technician, serials="FREE-TEXT-1")
    inst.refresh_from_db()
    assert inst.stage == Stage.INSTALLED and inst.equipment_serials == ["FREE-TEXT-1"]
    assert not Item.objects.exists()


def test_the_customer_page_shows_installed_equipment(alpha, plan, receive):
    receive("CPE-SHOWN", mac="00:11:22:33:44:66")
    inst = scheduled_lead(alpha, plan, name="Page Customer")
    subscribers.complete_job(inst, actor=alpha.technician, serials="CPE-SHOWN")
    customer = inst.service_account.customer
    html = alpha.client(alpha.support).get(f"/subscribers/{customer.pk}/").content.decode()
    item = Item.objects.get(serial="CPE-SHOWN")
    assert f'href="/inventory/items/{item.pk}/"><code>CPE-SHOWN</code></a>' in html
    assert "00:11:22:33:44:66" in html
    finance = alpha.client(alpha.finance).get(f"/subscribers/{customer.pk}/").content.decode()
    assert "/inventory/items/" not in finance
    assert "CPE-SHOWN" in finance  # the installation's serials, as before


def test_the_equipment_panel_adds_one_query_to_the_customer_page(
    alpha, plan, receive, django_assert_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    inst = scheduled_lead(alpha, plan, name="Counted")
    receive("COUNT-1")
    subscribers.complete_job(inst, actor=alpha.technician, serials="COUNT-1")
    customer = inst.service_account.customer
    client = alpha.client(alpha.owner)
    client.get("/")
    with CaptureQueriesContext(connection) as ctx:
        client.get(f"/subscribers/{customer.pk}/")
    inventory_queries = [q for q in ctx.captured_queries if "inventory_" in q["sql"]]
    assert len(inventory_queries) == 1
