"""SLA clocks: warnings at the warn point, escalation on breach (once), and time waiting
on the customer not counting against resolution."""

import datetime as dt

import pytest
import time_machine
from django.utils import timezone
from django_tenants.utils import tenant_context

from ispops.messaging.models import Message
from tickets import services
from tickets.models import SlaTarget, TicketEvent, TicketSettings
from tickets.tasks import check_ticket_slas

START = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
MIN = dt.timedelta(minutes=1)


def _escalations(ticket):
    return TicketEvent.objects.filter(ticket=ticket, kind="escalated").count()


def test_defaults_fill_the_whole_table_once(in_alpha):
    targets = services.sla_targets()
    assert len(targets) == 6 * 4
    assert targets[("no_connection", "urgent")].first_response_minutes == 15
    # installation and relocation need a visit: three times as long to resolve
    assert targets[("installation", "normal")].resolution_minutes == 3 * 24 * 60
    services.sla_targets()
    assert SlaTarget.objects.count() == 24


def test_first_response_breach_escalates_at_the_target_and_only_once(in_alpha, make_ticket):
    SlaTarget.objects.all().delete()
    services.sla_targets()
    with time_machine.travel(START, tick=False) as clock:
        ticket = make_ticket(category="no_connection", priority="high")  # 30 min / 8 h
        due = START + dt.timedelta(minutes=30)
        assert ticket.first_response_due == due

        clock.move_to(due - MIN)
        check_ticket_slas()
        ticket.refresh_from_db()
        assert ticket.escalated_at is None
        assert _escalations(ticket) == 0

        clock.move_to(due + MIN)
        assert services.check_slas() == {"escalated": 1, "warned": 0}
        ticket.refresh_from_db()
        assert ticket.escalated_at == due + MIN
        assert ticket.escalated_to is not None and ticket.escalated_to.role in ("owner", "admin")
        assert _escalations(ticket) == 1
        assert ticket.sla_state() == "breached"
        mails = Message.objects.filter(related=f"ticket:{ticket.pk}", channel="email")
        assert mails.filter(subject__startswith="Escalated").count() >= 1

        clock.move_to(due + 60 * MIN)
        assert services.check_slas()["escalated"] == 0
        assert _escalations(ticket) == 1
        assert mails.filter(subject__startswith="Escalated").count() == len(services._supervisors())


def test_warning_comes_at_75_percent_once_and_goes_to_the_assignee(in_alpha, alpha, make_ticket):
    with time_machine.travel(START, tick=False) as clock:
        ticket = make_ticket(priority="normal", assignee=alpha.technician)  # 2 h response
        warn_at = START + dt.timedelta(minutes=90)
        clock.move_to(warn_at - MIN)
        assert services.check_slas()["warned"] == 0
        clock.move_to(warn_at)
        assert services.check_slas()["warned"] == 1
        assert services.check_slas()["warned"] == 0
        ticket.refresh_from_db()
        assert ticket.response_warned_at == warn_at and ticket.escalated_at is None
        assert ticket.sla_state() == "at_risk"
        warning = Message.objects.get(related=f"ticket:{ticket.pk}", subject__contains="due")
        assert warning.to == alpha.technician.email and warning.customer is None


def test_a_chosen_supervisor_gets_the_escalation(in_alpha, alpha, make_ticket):
    TicketSettings.load()
    TicketSettings.objects.filter(pk=1).update(supervisor=alpha.support)
    with time_machine.travel(START, tick=False) as clock:
        ticket = make_ticket(priority="urgent")
        clock.move_to(START + dt.timedelta(minutes=16))
        services.check_slas()
    ticket.refresh_from_db()
    assert ticket.escalated_to == alpha.support
    escalation = Message.objects.get(related=f"ticket:{ticket.pk}", subject__startswith="Escal")
    assert escalation.to == alpha.support.email


def test_a_responded_ticket_escalates_only_when_resolution_is_late(in_alpha, alpha, make_ticket):
    with time_machine.travel(START, tick=False) as clock:
        ticket = make_ticket(priority="high", assignee=alpha.technician)  # 30 min / 8 h
        clock.move_to(START + 10 * MIN)
        services.change_status(ticket, "in_progress", actor=alpha.technician)
        clock.move_to(START + dt.timedelta(hours=8) - MIN)
        assert services.check_slas()["escalated"] == 0
        clock.move_to(START + dt.timedelta(hours=8))
        assert services.check_slas()["escalated"] == 1


def test_time_waiting_on_the_customer_pauses_the_resolution_clock(in_alpha, alpha, make_ticket):
    with time_machine.travel(START, tick=False) as clock:
        ticket = make_ticket(priority="high", assignee=alpha.technician)  # resolve in 8 h
        clock.move_to(START + dt.timedelta(hours=1))
        services.change_status(ticket, "waiting", actor=alpha.technician)
        # 10 hours waiting: past the original target, yet nothing is escalated
        clock.move_to(START + dt.timedelta(hours=11))
        assert services.check_slas()["escalated"] == 0
        services.change_status(ticket, "in_progress", actor=alpha.technician)
        ticket.refresh_from_db()
        assert ticket.resolution_due == START + dt.timedelta(hours=18)
        clock.move_to(START + dt.timedelta(hours=18) - MIN)
        assert services.check_slas()["escalated"] == 0
        clock.move_to(START + dt.timedelta(hours=18))
        assert services.check_slas()["escalated"] == 1


def test_resolved_tickets_are_never_escalated(in_alpha, alpha, make_ticket):
    with time_machine.travel(START, tick=False) as clock:
        ticket = make_ticket(priority="urgent")
        services.change_status(ticket, "resolved", actor=alpha.support)
        clock.move_to(START + dt.timedelta(days=3))
        assert services.check_slas() == {"escalated": 0, "warned": 0}


@pytest.mark.parametrize("bad", ["0", "-5", "x"])
def test_sla_table_refuses_bad_targets_and_changes_nothing(alpha, in_alpha, bad):
    data = {**_table_post(), "no_connection__urgent__response": bad, "warn_percent": "75"}
    response = alpha.client(alpha.owner).post("/tickets/settings/", data)
    assert response.status_code == 400
    with tenant_context(alpha.isp):
        target = SlaTarget.objects.get(category="no_connection", priority="urgent")
    assert target.first_response_minutes == 15


def test_sla_table_saves_and_new_tickets_use_it(alpha, in_alpha, make_ticket):
    data = {**_table_post(), "billing__low__response": "30", "warn_percent": "80"}
    assert alpha.client(alpha.owner).post("/tickets/settings/", data).status_code == 302
    now = timezone.now()
    with tenant_context(alpha.isp), time_machine.travel(now, tick=False):
        assert TicketSettings.load().warn_percent == 80
        ticket = make_ticket(category="billing", priority="low")
    assert ticket.first_response_due == now + dt.timedelta(minutes=30)
    assert ticket.response_warn_at == now + dt.timedelta(minutes=24)


def test_only_managers_edit_sla_settings(alpha):
    assert alpha.client(alpha.support).get("/tickets/settings/").status_code == 403
    assert alpha.client(alpha.technician).get("/tickets/settings/").status_code == 403
    assert alpha.client(alpha.admin).get("/tickets/settings/").status_code == 200


def _table_post():
    return {
        f"{t.category}__{t.priority}__{part}": str(value)
        for t in services.sla_targets().values()
        for part, value in (
            ("response", t.first_response_minutes),
            ("resolution", t.resolution_minutes),
        )
    }
