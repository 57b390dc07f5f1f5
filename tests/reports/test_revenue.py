"""Revenue (reports.revenue, /reports/revenue/) on the scripted January of
tests/reports/money_history.py: VAT excluded (16 % inclusive prices, so each amount is
amount / 1.16 to the cent), credit notes deducted, one-off apart."""

from datetime import date
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context

from billing.models import InvoiceLine
from reports import collections, revenue
from subscribers import services as subscribers
from tests.reports import money_history
from tests.reports.money_history import at

D = Decimal
history = money_history.history  # the fixture
JAN = collections.month_of(date(2026, 1, 15))


def rows(table):
    return {r["name"]: (r["recurring"], r["one_off"]) for r in table}


def test_revenue_by_plan_recurring_and_one_off_apart(history):
    data = revenue.report(JAN)
    # Home10: 3,100 / 1.16 = 2,672.41. Home5: 1,336.21 less the 550 credit note's
    # 474.14 = 862.07. The installation fee: 2,000 / 1.16 = 1,724.14, on no plan.
    assert rows(data["plans"]) == {
        "Home10": (D("2672.41"), D("0.00")),
        "Home5": (D("862.07"), D("0.00")),
        "No plan": (D("0.00"), D("1724.14")),
    }
    assert (data["recurring"], data["one_off"], data["total"]) == (
        D("3534.48"),
        D("1724.14"),
        D("5258.62"),
    )
    assert data["hotspot"] == D("0.00")


def test_revenue_by_branch_site_with_sub_sites_and_router(history):
    data = revenue.report(JAN)
    # The installation fee is on no service account: the customer's site, no router.
    assert rows(data["sites"]) == {
        "Pop": (D("3534.48"), D("1724.14")),
        "Tower": (D("2672.41"), D("1724.14")),
    }
    assert rows(data["branches"]) == {
        "North": (D("2672.41"), D("1724.14")),
        "South": (D("862.07"), D("0.00")),
    }
    assert rows(data["routers"]) == {"No router": (D("3534.48"), D("1724.14"))}


def test_a_plan_change_leaves_earlier_months_revenue_on_the_plan_then_in_force(history):
    account = history.akinyi.service_accounts.get()
    with at(date(2026, 1, 1), 10):
        subscribers.add_addon(
            account, actor="t", kind="static_ip", name="Static IP", price=D("580"),
            starts_on=date(2026, 1, 1),
        )  # fmt: skip
    addon = InvoiceLine.objects.get(kind="addon")
    assert (addon.amount, addon.period_start) == (D("580.00"), date(2026, 1, 1))
    before = rows(revenue.report(JAN)["plans"])
    with at(date(2026, 2, 10)):
        subscribers.change_plan(account, history.home5, actor="t")
    # January's add-on (580 / 1.16 = 500) was charged while Akinyi was on Home10, and
    # stays there after she moved to Home5 in February.
    assert (
        rows(revenue.report(JAN)["plans"])
        == before
        == {
            "Home10": (D("3172.41"), D("0.00")),
            "Home5": (D("862.07"), D("0.00")),
            "No plan": (D("0.00"), D("1724.14")),
        }
    )


def test_a_month_with_no_invoices_has_no_revenue(history):
    assert revenue.report(collections.month_of(date(2026, 2, 1)))["total"] == D("0.00")


def test_a_branch_limited_reader_sees_their_branch_only(alpha, history):
    with tenant_context(alpha.isp):
        alpha.finance.branches.add(history.south)
    url = "/reports/revenue/?until=2026-01-31"
    limited = alpha.client(alpha.finance).get(url).context["data"]
    everyone = alpha.client(alpha.owner).get(url).context["data"]
    assert (limited["total"], everyone["total"]) == (D("862.07"), D("5258.62"))


@pytest.mark.parametrize("role,status", [("owner", 200), ("admin", 200), ("finance", 200),
                                         ("support", 403), ("technician", 403)])  # fmt: skip
def test_revenue_is_for_owners_admins_and_finance(alpha, role, status):
    assert alpha.client(alpha.people[role]).get("/reports/revenue/").status_code == status


def test_tables_download_the_filtered_period_and_queries_stay_bounded(alpha, history):
    client = alpha.client(alpha.owner)
    csv = client.get("/reports/revenue/?since=2026-01-01&until=2026-01-31&table=plans&format=csv")
    assert "Home10,2672.41,0.00,2672.41" in csv.content.decode()
    for table in ("sites", "branches", "routers"):
        xlsx = client.get(f"/reports/revenue/?until=2026-01-31&table={table}&format=xlsx")
        assert xlsx.content[:2] == b"PK"
    with CaptureQueriesContext(connection) as queries:
        page = client.get("/reports/revenue/?until=2026-01-31")
    assert b"<svg" in page.content
    assert len(queries) < 40
