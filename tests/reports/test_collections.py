"""Collections (reports.collections, /reports/collections/) on the scripted January in
tests/reports/money_history.py, figures worked out by hand."""

from datetime import date
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import tenant_context

from billing import services as billing
from billing.models import Invoice, LedgerEntry
from hotspot import bypass_sales, entitlements, vouchers
from hotspot.models import Package
from network.models import Router
from payments import services as payments
from payments.models import Payment, StkRequest
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
        "bank": D("500.00"), "other": D("0.00"), "voucher": D("0.00"), "hotspot": D("0.00"),
    }  # fmt: skip
    assert figures["collected"] == D("3600.00")
    # Paid of January's invoices: 3,100 + 500 over 6,100 billed net of credit notes.
    assert figures["settled"] == D("3600.00")
    assert figures["rate"] == D("59.02")


def c2b_confirmation(receipt, amount, account, when):
    """A paybill payment as Safaricom confirms it (C2B)."""
    return {
        "TransactionType": "Pay Bill", "TransID": receipt, "TransTime": when,
        "TransAmount": amount, "BusinessShortCode": "174379", "BillRefNumber": account,
        "MSISDN": "2547 ***** 101", "FirstName": "AKINYI",
    }  # fmt: skip


def stk_callback(checkout, receipt, amount, phone, when):
    """A successful STK push's callback."""
    items = [
        {"Name": "Amount", "Value": amount}, {"Name": "MpesaReceiptNumber", "Value": receipt},
        {"Name": "TransactionDate", "Value": int(when)}, {"Name": "PhoneNumber", "Value": phone},
    ]  # fmt: skip
    return {
        "Body": {
            "stkCallback": {
                "MerchantRequestID": "29115-34620561-1", "CheckoutRequestID": checkout,
                "ResultCode": 0, "ResultDesc": "The service request is processed successfully.",
                "CallbackMetadata": {"Item": items},
            }
        }
    }  # fmt: skip


def test_stk_and_paybill_payments_land_in_their_channels_and_the_channels_add_up(history):
    # 12 Jan: Akinyi pays 1,000 to the paybill with her account number; the worker
    # credits the stored confirmation.
    with at(date(2026, 1, 12)):
        taken = payments.take_confirmation(
            c2b_confirmation("UCJ1PAY001", "1000.00", history.akinyi.account, "20260112090000")
        )
        assert payments.credit_payment(taken.payment_id) == "credited"
    # 15 Jan: Baraka pays 300 on an STK prompt; the paybill reports the same receipt
    # afterwards (every STK payment to a paybill is also confirmed): STK, counted once.
    with at(date(2026, 1, 15)):
        StkRequest.objects.create(
            customer=history.baraka, phone="254712000102", amount=D("300"),
            account_reference=history.baraka.account, checkout_request_id="ws_CO_RPT0001",
        )  # fmt: skip
        taken = payments.take_stk_callback(
            stk_callback("ws_CO_RPT0001", "UCJ2STK002", 300, 254712000102, "20260115090000")
        )
        assert payments.credit_payment(taken.payment_id) == "credited"
        again = payments.take_confirmation(
            c2b_confirmation("UCJ2STK002", "300.00", history.baraka.account, "20260115090000")
        )
        assert again.error == "repeat"
        assert payments.credit_payment(taken.payment_id) == "nothing to do"
    assert Payment.objects.get(reference="UCJ2STK002").via_c2b is True
    # Hotspot cards of 50: two sold in January, one in February.
    package = Package.objects.create(
        name="1 day", price="50.00", validity_minutes=1440, download_kbps=2000, upload_kbps=1000
    )
    with at(date(2026, 1, 14)):
        cards = list(vouchers.generate_batch(package, 3, actor="t").vouchers.order_by("id"))
        vouchers.sell(cards[0], actor="t")
        vouchers.sell(cards[1], actor="t")
    with at(date(2026, 2, 2)):
        vouchers.sell(cards[2], actor="t")
    # 16 Jan: a package of 50 bought by M-Pesa on the captive page, and a device let
    # through for 70 cash: hotspot money, on no customer's ledger.
    router = Router.objects.create(name="lobby-ap", host="10.9.0.7", username="api")
    with at(date(2026, 1, 16)):
        bought = Payment.objects.create(
            method="mpesa", reference="UCJ3HSP003", amount=D("50.00"), via_stk=True,
            state="credited",
        )  # fmt: skip
        entitlements.grant(
            router=router, package=package, source="purchase", login="0712999000",
            password="pw", payment=bought, now=timezone.now(), actor="t",
        )  # fmt: skip
        bypass_sales.sell(
            router=router, mac="a4-5e-60-12-34-56", offer=None, minutes=60, method="cash",
            amount=D("70"), note="lobby TV", token="ST-rpt-1", actor="t", now=timezone.now(),
        )  # fmt: skip

    figures = collections.summary(JAN)
    assert figures["by_channel"] == {
        "stk": D("300.00"), "paybill": D("1000.00"), "cash": D("3100.00"),
        "bank": D("500.00"), "other": D("0.00"), "voucher": D("100.00"), "hotspot": D("120.00"),
    }  # fmt: skip
    assert figures["collected"] == sum(figures["by_channel"].values()) == D("5120.00")
    # What reached customers' ledgers in January is the collected money less the
    # hotspot's, and it is what the branches and sites collected.
    ledger = -sum(
        LedgerEntry.objects.filter(
            kind="payment", at__gte=JAN.bounds[0], at__lt=JAN.bounds[1]
        ).values_list("amount", flat=True)
    )
    hotspot = figures["by_channel"]["voucher"] + figures["by_channel"]["hotspot"]
    assert ledger == figures["collected"] - hotspot == D("4900.00")
    places = collections.by_place(JAN)
    assert sum(r["collected"] for r in places["branches"]) == ledger
    assert {r["name"]: r["collected"] for r in places["sites"]}["Pop"] == ledger
    feb = collections.summary(collections.month_of(date(2026, 2, 1)))["by_channel"]
    assert (feb["voucher"], feb["stk"], feb["paybill"]) == (D("50.00"), D("0.00"), D("0.00"))


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


def test_the_page_shows_a_chart_and_its_queries_are_the_same_for_2_or_12_periods(alpha, history):
    client = alpha.client(alpha.owner)
    client.get("/reports/collections/")  # the session and caches warm, as for any reader
    with CaptureQueriesContext(connection) as few:
        page = client.get("/reports/collections/?until=2026-01-31&count=2")
    with CaptureQueriesContext(connection) as many:
        client.get("/reports/collections/?until=2026-01-31&count=12")
    assert b"<svg" in page.content
    # Each total is grouped by period in one query (documents, loose credit notes,
    # payments by channel, hotspot sales): 12 periods cost what 2 do.
    assert len(many) == len(few) < 25
