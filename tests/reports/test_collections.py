"""Collections (reports.collections, /reports/collections/) on the scripted January in
tests/reports/money_history.py, figures worked out by hand."""

from datetime import date
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context

from billing import services as billing
from billing.models import Invoice
from reports import collections
from tests.reports import money_history
from tests.reports.money_history import at

D = Decimal
history = money_history.history  # the fixture
JAN = collections.month_of(date(2026, 1, 15))


def test_the_scripted_history_is_what_the_figures_are_worked_out_from(history):
    totals = sorted(Invoice.objects.values_list("kind", "total", "amount_paid"))
    assert totals == [
        ("credit_note", D("-550.00"), D("0.00")),
        ("invoice", D("1550.00"), D("500.00")),
        ("invoice", D("2000.00"), D("0.00")),
        ("invoice", D("3100.00"), D("3100.00")),
    ]


def test_billed_is_invoices_less_credit_notes_and_collected_is_by_channel(history):
    figures = collections.summary(JAN)
    # 3,100 + 1,550 + 2,000 invoiced, 550 credited.
    assert figures["invoiced"] == D("6650.00")
    assert figures["credit_notes"] == D("-550.00")
    assert figures["billed"] == D("6100.00")
    assert figures["by_channel"] == {
        "stk": D("0.00"), "paybill": D("0.00"), "cash": D("3100.00"),
        "bank": D("500.00"), "other": D("0.00"), "voucher": D("0.00"),
    }  # fmt: skip
    assert figures["collected"] == D("3600.00")
    # Paid of January's invoices: 3,100 + 500 over 6,100 billed net of credit notes.
    assert figures["settled"] == D("3600.00")
    assert figures["rate"] == D("59.02")


def test_a_later_month_bills_and_collects_nothing_and_has_no_rate(history):
    feb = collections.summary(collections.month_of(date(2026, 2, 1)))
    assert (feb["billed"], feb["collected"], feb["rate"]) == (D("0.00"), D("0.00"), None)


def test_unallocated_credit_is_billings_own_figure(history):
    with at(date(2026, 1, 25)):
        billing.record_payment(history.baraka, D("800"), actor="t", reference="OVER-1")
    # 500 of the 800 settles Baraka's invoice; 300 is held.
    assert collections.unallocated() == {"credit": D("300.00"), "unmatched": D("0.00")}
    assert collections.summary(JAN)["by_channel"]["other"] == D("800.00")


def test_by_branch_and_by_site_with_sub_sites_rolled_up(history):
    places = collections.by_place(JAN)
    branches = {r["name"]: (r["billed"], r["collected"]) for r in places["branches"]}
    assert branches == {"North": (D("5100.00"), D("3100.00")), "South": (D("1000.00"), D("500.00"))}
    sites = {r["name"]: (r["billed"], r["collected"]) for r in places["sites"]}
    # Pop holds Baraka and, through Tower, Akinyi.
    assert sites == {"Pop": (D("6100.00"), D("3600.00")), "Tower": (D("5100.00"), D("3100.00"))}


def test_a_branch_limited_reader_sees_their_branch_only(alpha, history):
    with tenant_context(alpha.isp):
        alpha.finance.branches.add(history.south)
    client = alpha.client(alpha.finance)
    limited = client.get("/reports/collections/?until=2026-01-31&count=1").context["current"]
    owner = alpha.client(alpha.owner).get("/reports/collections/?until=2026-01-31&count=1")
    assert (limited["billed"], limited["collected"]) == (D("1000.00"), D("500.00"))
    assert (owner.context["current"]["billed"], owner.context["current"]["collected"]) == (
        D("6100.00"),
        D("3600.00"),
    )


@pytest.mark.parametrize("role,status", [("owner", 200), ("admin", 200), ("finance", 200),
                                         ("support", 403), ("technician", 403)])  # fmt: skip
def test_collections_are_for_owners_admins_and_finance(alpha, role, status):
    assert alpha.client(alpha.people[role]).get("/reports/collections/").status_code == status


def test_every_table_downloads_as_csv_and_xlsx_with_the_filters(alpha, history):
    client = alpha.client(alpha.owner)
    csv = client.get("/reports/collections/?until=2026-01-31&count=1&table=periods&format=csv")
    assert csv["Content-Type"].startswith("text/csv")
    assert "Jan 2026,6100.00,-550.00,3600.00" in csv.content.decode()
    for table in ("branches", "sites"):
        xlsx = client.get(f"/reports/collections/?until=2026-01-31&table={table}&format=xlsx")
        assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"


def test_the_page_shows_a_chart_and_its_queries_do_not_grow_with_periods(alpha, history):
    client = alpha.client(alpha.owner)
    with CaptureQueriesContext(connection) as few:
        page = client.get("/reports/collections/?until=2026-01-31&count=2")
    with CaptureQueriesContext(connection) as many:
        client.get("/reports/collections/?until=2026-01-31&count=12")
    assert b"<svg" in page.content
    # Each period costs a fixed handful of queries (documents, loose credit notes,
    # payments by channel, hotspot sales), never one per customer.
    assert len(many) - len(few) <= 10 * 10
    assert len(few) < 60
