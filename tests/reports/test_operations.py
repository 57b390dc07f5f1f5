"""The operations report on a scripted March 2026: installations by two technicians,
leads activated after known durations, a repeat visit, tickets resolved within and past
their SLA; a branch-limited admin sees their branch only; CSV and XLSX."""

import io
from datetime import date, datetime
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone
from django_tenants.utils import tenant_context
from openpyxl import load_workbook

from ispops.staff.models import Branch, Role, User
from reports import operations
from subscribers import services
from subscribers.models import Installation, Plan
from tickets import services as tickets
from tickets.models import Category, Status

Stage = Installation.Stage
MARCH = operations.Period("month", date(2026, 3, 1), date(2026, 3, 31))


def at(month, day, hour=9):
    return datetime(2026, month, day, hour, tzinfo=timezone.get_current_timezone())


def lead_installed(alpha, plan, *, name, phone, tech, created, installed, activated, branch=None):
    """A lead recorded at `created`, installed by `tech` at `installed`, active at
    `activated` (moved through the pipeline service)."""
    with time_machine.travel(created, tick=False):
        inst = services.create_lead(
            services.LeadDetails(name=name, phone=phone, plan=plan, branch=branch),
            actor=alpha.owner,
        )
        for to in (Stage.SURVEY, Stage.QUOTED, Stage.SCHEDULED, Stage.EQUIPPED):
            services.advance_installation(
                inst,
                to,
                actor=alpha.owner,
                quote_amount=Decimal("3500"),
                technician=tech,
                scheduled_for=created.date(),
                serials=["ONU-1"],
            )
    with time_machine.travel(installed, tick=False):
        services.advance_installation(inst, Stage.INSTALLED, actor=tech)
    with time_machine.travel(activated, tick=False):
        services.advance_installation(inst, Stage.ACTIVATED, actor=alpha.owner)
    inst.refresh_from_db()
    return inst


def ticket(alpha, customer, category, *, opened, resolved=None):
    with time_machine.travel(opened, tick=False):
        t = tickets.open_ticket(
            customer=customer,
            subject="Help",
            category=category,
            actor=alpha.owner,
            tell_customer=False,
        )
    if resolved:
        with time_machine.travel(resolved, tick=False):
            tickets.change_status(t, Status.RESOLVED, actor=alpha.owner)
    return t


@pytest.fixture
def history(alpha):
    """Three installations in March: Kamau by the technician (27 h lead to activation,
    a no-connection ticket 17 days later: a repeat visit, resolved in 10 minutes),
    Otieno by the technician (24 h, a billing ticket: no repeat, resolved 10 days late),
    Njeri by a second technician in the east branch (72 h, nothing after)."""
    with tenant_context(alpha.isp):
        plan = Plan.objects.create(
            name="Home 10M", price=Decimal("2500"), download_kbps=10_000, upload_kbps=10_000
        )
        east = Branch.objects.create(name="East", code="alpha-east")
        second = User.objects.create_user(
            "tech2@alpha.test", "pw-12345678", role=Role.TECHNICIAN, full_name="Baraka Tech"
        )
        kamau = lead_installed(
            alpha, plan, name="Kamau", phone="0712000001", tech=alpha.technician,
            created=at(3, 2), installed=at(3, 3, 10), activated=at(3, 3, 12),
        )  # fmt: skip
        otieno = lead_installed(
            alpha, plan, name="Otieno", phone="0712000002", tech=alpha.technician,
            created=at(3, 5), installed=at(3, 6, 8), activated=at(3, 6, 9),
        )  # fmt: skip
        lead_installed(
            alpha, plan, name="Njeri", phone="0712000003", tech=second, branch=east,
            created=at(3, 10), installed=at(3, 13, 8), activated=at(3, 13, 9),
        )  # fmt: skip
        ticket(alpha, kamau.service_account.customer, Category.NO_CONNECTION,
               opened=at(3, 20), resolved=at(3, 20, 9).replace(minute=10))  # fmt: skip
        ticket(alpha, otieno.service_account.customer, Category.BILLING,
               opened=at(3, 10), resolved=at(3, 25))  # fmt: skip
        # Opened in April, 45 days after the installation: outside the period and the window.
        ticket(alpha, otieno.service_account.customer, Category.SLOW_SPEED, opened=at(4, 20))
        limited = User.objects.create_user(
            "east-admin@alpha.test", "pw-12345678", role=Role.ADMIN, full_name="East Admin"
        )
        limited.branches.set([east])
    return {"east": east, "limited": limited, "second": second}


def test_installations_per_technician_with_their_repeat_visits(alpha, history):
    with tenant_context(alpha.isp):
        rows = operations.installations_by_technician(MARCH)
    assert rows == [
        {"technician": alpha.technician.full_name, "installations": 2, "repeat_visits": 1},
        {"technician": "Baraka Tech", "installations": 1, "repeat_visits": 0},
    ]


def test_median_lead_to_activation_is_the_middle_of_27_24_and_72_hours(alpha, history):
    with tenant_context(alpha.isp):
        assert operations.lead_to_activation_hours(MARCH) == 27.0
        april = operations.month_of(date(2026, 4, 1))
        assert operations.lead_to_activation_hours(april) is None


def test_tickets_opened_resolved_and_sla_met_by_category(alpha, history):
    with tenant_context(alpha.isp):
        data = operations.report(MARCH)
    by = {r["category"]: r for r in data["categories"]}
    assert by["No connection"] == {"category": "No connection", "opened": 1, "resolved": 1,
                                   "sla_met": 1, "sla_met_pct": 100.0}  # fmt: skip
    assert by["Billing"] == {"category": "Billing", "opened": 1, "resolved": 1,
                             "sla_met": 0, "sla_met_pct": 0.0}  # fmt: skip
    assert "Slow speed" not in by
    assert (data["opened"], data["resolved"], data["sla_met_pct"]) == (2, 2, 50.0)
    assert (data["installations"], data["repeat_visits"]) == (3, 1)


def test_a_branch_limited_admin_sees_only_their_branch(alpha, history):
    with tenant_context(alpha.isp):
        limited = User.objects.get(pk=history["limited"].pk)
        data = operations.report(MARCH, limited)
    assert data["technicians"] == [
        {"technician": "Baraka Tech", "installations": 1, "repeat_visits": 0}
    ]
    assert data["median_hours"] == 72.0
    assert data["categories"] == []
    client = alpha.client(history["limited"])
    page = client.get("/reports/operations/?period=month&month=2026-03").content.decode()
    assert "Baraka Tech" in page and alpha.technician.full_name not in page


def test_the_period_comes_from_the_url():
    today = date(2026, 3, 18)
    assert operations.period_from({}, today) == MARCH
    week = operations.period_from({"period": "week", "week": "2026-03-18"}, today)
    assert (week.start, week.end) == (date(2026, 3, 16), date(2026, 3, 22))
    custom = operations.period_from(
        {"period": "custom", "start": "2026-03-02", "end": "2026-03-09"}, today
    )
    assert (custom.start, custom.end) == (date(2026, 3, 2), date(2026, 3, 9))
    assert operations.period_from({"period": "custom", "start": "x"}, today) == MARCH


@pytest.mark.parametrize("role,status", [("owner", 200), ("admin", 200), ("finance", 200),
                                         ("support", 403), ("technician", 403)])  # fmt: skip
def test_the_page_is_for_report_readers(alpha, role, status):
    response = alpha.client(alpha.people[role]).get("/reports/operations/")
    assert response.status_code == status


def test_the_page_draws_the_chart_and_downloads_csv_and_xlsx(alpha, history):
    client = alpha.client(alpha.owner)
    url = "/reports/operations/?period=month&month=2026-03"
    page = client.get(url).content.decode()
    assert "<svg" in page and 'class="table-wrap' in page and "Baraka Tech" in page
    csv = client.get(url + "&table=technicians&format=csv").content.decode().splitlines()
    assert csv[0] == "Technician,Installations,Repeat visits within 30 days"
    assert f"{alpha.technician.full_name},2,1" in csv
    response = client.get(url + "&table=tickets&format=xlsx")
    sheet = load_workbook(io.BytesIO(response.content)).active
    rows = {r[0]: r[1:] for r in sheet.iter_rows(min_row=2, values_only=True)}
    assert rows["Billing"] == (1, 1, 0, 0)
